/* kbench -- the small librdkafka tool behind bench/run-replicate.
 *
 *   kbench load   -b BOOT -t TOPIC -n N -s SIZE -p PARTITIONS
 *       Produce N records (key, two headers, SIZE-byte incompressible value) to
 *       TOPIC. Record i goes to partition i % PARTITIONS, so every partition holds
 *       its records in sequence order; header "bench.seq" carries i, header
 *       "bench.ts" the produce time (us). Idempotent, acks=all, no compression.
 *
 *   kbench watch  --source BOOT --source-topic T -b BOOT -t TOPIC
 *                 [--pid PID] [--deadline S] [--interval MS]
 *       Wait until TOPIC on the target holds every record of the source topic.
 *       Completion test (correct under transactions, where the high watermark
 *       also counts commit markers): for each partition p the source holds
 *       c_p records (an idempotent, non-transactional load: offsets 0..c_p-1);
 *       p is complete on the target once its last-stable offset is >= c_p AND
 *       the last committed data record before it, read with
 *       isolation.level=read_committed, is source record p + P*(c_p-1) (its
 *       bench.seq header). Replicators keep per-partition order, so the last
 *       record arriving means all earlier ones did (checked afterwards by
 *       `verify`). With --pid, samples CPU (utime+stime, incl. reaped
 *       children) and RSS of the process tree under PID at every poll.
 *       Prints key=value lines on stdout: start_ts first_ts done_ts cpu_s
 *       rss_peak_kb hwm_kb pid_exited status.
 *
 *   kbench verify -b BOOT -t TOPIC -n N -s SIZE -p PARTITIONS
 *       Read TOPIC from the beginning (read_committed) and check: every source
 *       sequence 0..N-1 present, in its own partition, with a key, both
 *       headers and a SIZE-byte value. Prints records, missing, duplicates, bad.
 *
 *   kbench offsets -b BOOT -t TOPIC      per-partition high watermarks and their sum
 *
 * Build: see bench/Makefile (static librdkafka 2.8.0 from .deps).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define SEQ_HDR "bench.seq"
#define TS_HDR "bench.ts"

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("kbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void conf_set(rd_kafka_conf_t *c, const char *k, const char *v)
{
	char err[512];
	if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
		die("config %s=%s: %s", k, v, err);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	if (level <= 4)
		fprintf(stderr, "kbench: librdkafka %s: %s\n", fac, buf);
}

/* ------------------------------------------------------------------------------ */
/* options */

struct opts {
	const char *bootstrap, *topic, *src_bootstrap, *src_topic;
	long long n;
	int size, partitions, interval_ms;
	long pid;
	double deadline;
};

static long long parse_ll(const char *s, const char *what)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < 0)
		die("bad %s '%s'", what, s);
	return v;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof *o);
	o->size = 512;
	o->partitions = 12;
	o->interval_ms = 100;
	o->deadline = 600;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV() \
	do { \
		if (!v) \
			die("%s needs a value", a); \
		i++; \
	} while (0)
		if (!strcmp(a, "-b")) { NEEDV(); o->bootstrap = v; }
		else if (!strcmp(a, "-t")) { NEEDV(); o->topic = v; }
		else if (!strcmp(a, "-n")) { NEEDV(); o->n = parse_ll(v, "-n"); }
		else if (!strcmp(a, "-s")) { NEEDV(); o->size = (int)parse_ll(v, "-s"); }
		else if (!strcmp(a, "-p")) { NEEDV(); o->partitions = (int)parse_ll(v, "-p"); }
		else if (!strcmp(a, "--source")) { NEEDV(); o->src_bootstrap = v; }
		else if (!strcmp(a, "--source-topic")) { NEEDV(); o->src_topic = v; }
		else if (!strcmp(a, "--pid")) { NEEDV(); o->pid = (long)parse_ll(v, "--pid"); }
		else if (!strcmp(a, "--deadline")) { NEEDV(); o->deadline = (double)parse_ll(v, "--deadline"); }
		else if (!strcmp(a, "--interval")) { NEEDV(); o->interval_ms = (int)parse_ll(v, "--interval"); }
		else die("unknown argument '%s'", a);
#undef NEEDV
	}
	if (!o->bootstrap || !o->topic)
		die("-b and -t are required");
	if (o->partitions < 1)
		die("-p must be >= 1");
}

/* ------------------------------------------------------------------------------ */
/* load */

static long long dr_ok, dr_err;
static char dr_first_err[256];

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	if (m->err) {
		if (!dr_err++)
			snprintf(dr_first_err, sizeof dr_first_err, "%s", rd_kafka_err2str(m->err));
	} else
		dr_ok++;
}

static uint64_t xs_state = 0x9E3779B97F4A7C15ull;
static inline uint64_t xs_next(void)
{
	uint64_t x = xs_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	xs_state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static int cmd_load(struct opts *o)
{
	char err[512];
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	conf_set(c, "bootstrap.servers", o->bootstrap);
	conf_set(c, "enable.idempotence", "true");
	conf_set(c, "acks", "all");
	conf_set(c, "compression.type", "none");
	conf_set(c, "linger.ms", "20");
	conf_set(c, "batch.size", "1000000");
	conf_set(c, "queue.buffering.max.messages", "500000");
	conf_set(c, "queue.buffering.max.kbytes", "262144");
	conf_set(c, "client.id", "kbench-load");
	rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
	rd_kafka_conf_set_log_cb(c, log_cb);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
	if (!rk)
		die("producer: %s", err);

	size_t vsize = (size_t)o->size;
	unsigned char *val = malloc(vsize + 8);
	if (!val)
		die("out of memory");
	double t0 = mono_s();
	for (long long i = 0; i < o->n && !stop_flag; i++) {
		for (size_t k = 0; k < vsize; k += 8) {
			uint64_t r = xs_next();
			memcpy(val + k, &r, 8);
		}
		char key[32], seq[32], ts[32];
		int klen = snprintf(key, sizeof key, "key-%012lld", i);
		int slen = snprintf(seq, sizeof seq, "%lld", i);
		struct timespec tsn;
		clock_gettime(CLOCK_REALTIME, &tsn);
		int tlen = snprintf(ts, sizeof ts, "%lld",
				    (long long)tsn.tv_sec * 1000000LL + tsn.tv_nsec / 1000);
		int32_t part = (int32_t)(i % o->partitions);
		for (;;) {
			rd_kafka_resp_err_t e = rd_kafka_producev(
			    rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_PARTITION(part),
			    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, (size_t)klen),
			    RD_KAFKA_V_VALUE(val, vsize), RD_KAFKA_V_HEADER(SEQ_HDR, seq, slen),
			    RD_KAFKA_V_HEADER(TS_HDR, ts, tlen), RD_KAFKA_V_END);
			if (!e)
				break;
			if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
				die("produce: %s", rd_kafka_err2str(e));
			rd_kafka_poll(rk, 5);
		}
		if ((i & 1023) == 0)
			rd_kafka_poll(rk, 0);
	}
	while (rd_kafka_outq_len(rk) > 0 && !stop_flag)
		rd_kafka_flush(rk, 1000);
	double dt = mono_s() - t0;
	rd_kafka_destroy(rk);
	free(val);
	double mb = (double)dr_ok * (double)vsize / (1024.0 * 1024.0);
	printf("records=%lld errors=%lld seconds=%.3f rate=%.0f mbps=%.2f\n", dr_ok, dr_err, dt,
	       dt > 0 ? dr_ok / dt : 0, dt > 0 ? mb / dt : 0);
	if (dr_err)
		fprintf(stderr, "kbench: %lld delivery errors, first: %s\n", dr_err, dr_first_err);
	return (dr_err || dr_ok != o->n) ? 1 : 0;
}

/* ------------------------------------------------------------------------------ */
/* offsets via the admin ListOffsets API (one request for all partitions) */

static int partition_count(rd_kafka_t *rk, const char *topic)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	int n = -1;
	if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (md->topic_cnt == 1 && !md->topics[0].err)
			n = md->topics[0].partition_cnt;
		rd_kafka_metadata_destroy(md);
	}
	rd_kafka_topic_destroy(rkt);
	return n;
}

/* Fills out[0..np-1] with the latest (HW, or LSO when committed) offsets.
 * Returns 0, or -1 when the request failed (e.g. topic not there yet). */
static int list_latest(rd_kafka_t *rk, rd_kafka_queue_t *q, const char *topic, int np,
		       int committed, int64_t *out)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
	for (int p = 0; p < np; p++)
		rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_SPEC_LATEST;
	rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_LISTOFFSETS);
	char err[256];
	rd_kafka_AdminOptions_set_request_timeout(ao, 5000, err, sizeof err);
	rd_kafka_error_t *e = rd_kafka_AdminOptions_set_isolation_level(
	    ao, committed ? RD_KAFKA_ISOLATION_LEVEL_READ_COMMITTED
			  : RD_KAFKA_ISOLATION_LEVEL_READ_UNCOMMITTED);
	if (e)
		rd_kafka_error_destroy(e);
	rd_kafka_ListOffsets(rk, l, ao, q);
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_AdminOptions_destroy(ao);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 10000);
	int rc = -1;
	if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_LISTOFFSETS_RESULT &&
	    !rd_kafka_event_error(ev)) {
		const rd_kafka_ListOffsets_result_t *res = rd_kafka_event_ListOffsets_result(ev);
		size_t cnt;
		const rd_kafka_ListOffsetsResultInfo_t **infos =
		    rd_kafka_ListOffsets_result_infos(res, &cnt);
		rc = 0;
		for (size_t i = 0; i < cnt; i++) {
			const rd_kafka_topic_partition_t *tp =
			    rd_kafka_ListOffsetsResultInfo_topic_partition(infos[i]);
			if (tp->err || tp->partition < 0 || tp->partition >= np) {
				rc = -1;
				continue;
			}
			out[tp->partition] = tp->offset;
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	return rc;
}

static rd_kafka_t *new_consumer(const char *bootstrap, const char *client_id)
{
	char err[512];
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	conf_set(c, "bootstrap.servers", bootstrap);
	conf_set(c, "group.id", client_id); /* never joined: assign() only, no commits */
	conf_set(c, "enable.auto.commit", "false");
	conf_set(c, "enable.auto.offset.store", "false");
	conf_set(c, "isolation.level", "read_committed");
	conf_set(c, "enable.partition.eof", "true");
	conf_set(c, "client.id", client_id);
	conf_set(c, "fetch.max.bytes", "52428800");
	conf_set(c, "max.partition.fetch.bytes", "4194304");
	conf_set(c, "queued.max.messages.kbytes", "131072");
	rd_kafka_conf_set_log_cb(c, log_cb);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
	if (!rk)
		die("consumer: %s", err);
	rd_kafka_poll_set_consumer(rk);
	return rk;
}

static int cmd_offsets(struct opts *o)
{
	rd_kafka_t *rk = new_consumer(o->bootstrap, "kbench-offsets");
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	int np = partition_count(rk, o->topic);
	if (np < 1)
		die("topic %s not found", o->topic);
	int64_t *hw = calloc((size_t)np, sizeof *hw);
	if (list_latest(rk, q, o->topic, np, 0, hw) != 0)
		die("ListOffsets failed");
	long long sum = 0;
	for (int p = 0; p < np; p++) {
		printf("%s:%d %" PRId64 "\n", o->topic, p, hw[p]);
		sum += hw[p];
	}
	printf("sum %lld\n", sum);
	free(hw);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
	return 0;
}

/* ------------------------------------------------------------------------------ */
/* process-tree sampling from /proc */

struct procsample {
	double cpu_s;    /* utime+stime+cutime+cstime over the tree */
	long rss_kb;     /* sum of VmRSS over the tree */
	long hwm_kb;     /* max VmHWM over the tree */
	int alive;
};

static int read_stat(long pid, long *ppid, unsigned long long *ticks)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	/* after ") ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
	 * cmajflt utime stime cutime cstime (proc(5)) */
	char state;
	long pp;
	unsigned long long v[13];
	if (sscanf(p + 2, "%c %ld %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
		   &state, &pp, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8],
		   &v[9], &v[10], &v[11], &v[12]) != 15)
		return -1;
	*ppid = pp;
	*ticks = v[9] + v[10] + v[11] + v[12];
	return state == 'Z' ? 1 : 0;
}

static void read_status(long pid, long *rss, long *hwm)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%ld/status", pid);
	FILE *f = fopen(path, "r");
	*rss = *hwm = 0;
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, "VmRSS:", 6))
			*rss = atol(line + 6);
		else if (!strncmp(line, "VmHWM:", 6))
			*hwm = atol(line + 6);
	}
	fclose(f);
}

static void sample_tree(long root, struct procsample *s)
{
	static long pids[8192], ppids[8192];
	int n = 0;
	memset(s, 0, sizeof *s);
	DIR *d = opendir("/proc");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) && n < 8192) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		long pid = atol(de->d_name), pp;
		unsigned long long t;
		if (read_stat(pid, &pp, &t) < 0)
			continue;
		pids[n] = pid;
		ppids[n] = pp;
		n++;
	}
	closedir(d);
	/* the tree: root plus every process whose ancestor chain reaches root */
	static long tree[8192];
	int tn = 0;
	tree[tn++] = root;
	for (int i = 0; i < tn; i++)
		for (int j = 0; j < n; j++)
			if (ppids[j] == tree[i] && tn < 8192)
				tree[tn++] = pids[j];
	long hz = sysconf(_SC_CLK_TCK);
	for (int i = 0; i < tn; i++) {
		long pp, rss, hwm;
		unsigned long long t;
		int st = read_stat(tree[i], &pp, &t);
		if (st < 0)
			continue;
		if (i == 0 && st == 0)
			s->alive = 1;
		s->cpu_s += (double)t / (double)hz;
		read_status(tree[i], &rss, &hwm);
		s->rss_kb += rss;
		if (hwm > s->hwm_kb)
			s->hwm_kb = hwm;
	}
}

/* ------------------------------------------------------------------------------ */
/* watch */

static long long hdr_seq(rd_kafka_message_t *m)
{
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t sz;
	if (rd_kafka_message_headers(m, &h) || !h)
		return -1;
	if (rd_kafka_header_get_last(h, SEQ_HDR, &v, &sz) || !v || sz == 0 || sz > 20)
		return -1;
	char buf[24];
	memcpy(buf, v, sz);
	buf[sz] = 0;
	char *end;
	long long s = strtoll(buf, &end, 10);
	return *end ? -1 : s;
}

static int cmd_watch(struct opts *o)
{
	if (!o->src_bootstrap || !o->src_topic)
		die("watch needs --source and --source-topic");
	double start_ts = now_s(), t0 = mono_s();
	printf("start_ts=%.3f\n", start_ts);
	fflush(stdout);

	/* expected: per-partition record counts on the source */
	rd_kafka_t *src = new_consumer(o->src_bootstrap, "kbench-watch-src");
	rd_kafka_queue_t *sq = rd_kafka_queue_new(src);
	int np = partition_count(src, o->src_topic);
	if (np < 1)
		die("source topic %s not found", o->src_topic);
	int64_t *expect = calloc((size_t)np, sizeof *expect);
	if (list_latest(src, sq, o->src_topic, np, 0, expect) != 0)
		die("ListOffsets on the source failed");
	long long total = 0;
	for (int p = 0; p < np; p++)
		total += expect[p];
	rd_kafka_queue_destroy(sq);
	rd_kafka_destroy(src);

	rd_kafka_t *rk = new_consumer(o->bootstrap, "kbench-watch");
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	int64_t *hw = calloc((size_t)np, sizeof *hw), *lso = calloc((size_t)np, sizeof *lso),
		*checked_at = calloc((size_t)np, sizeof *checked_at);
	int *done = calloc((size_t)np, sizeof *done), *window = calloc((size_t)np, sizeof *window);
	for (int p = 0; p < np; p++) {
		done[p] = expect[p] == 0;
		window[p] = 16;
		checked_at[p] = -1;
	}
	double first_ts = 0, done_ts = 0, last_report = 0;
	struct procsample s, peak = {0}, at_done = {0};
	int pid_exited = 0, tgt_np = -1;
	double exited_at = 0;
	const char *status = "deadline";

	while (!stop_flag) {
		double el = mono_s() - t0;
		if (o->pid > 0) {
			sample_tree(o->pid, &s);
			if (s.alive) {
				at_done = s;
				if (s.rss_kb > peak.rss_kb)
					peak.rss_kb = s.rss_kb;
				if (s.hwm_kb > peak.hwm_kb)
					peak.hwm_kb = s.hwm_kb;
			} else if (!pid_exited) {
				pid_exited = 1;
				exited_at = el;
				fprintf(stderr, "kbench: watched process %ld exited at %.1fs\n", o->pid, el);
			}
		}
		if (tgt_np < 0) {
			tgt_np = partition_count(rk, o->topic);
			if (tgt_np >= 0 && tgt_np != np)
				fprintf(stderr, "kbench: target %s has %d partitions, source %d\n",
					o->topic, tgt_np, np);
		}
		if (tgt_np > 0 && list_latest(rk, q, o->topic, np, 0, hw) == 0 &&
		    list_latest(rk, q, o->topic, np, 1, lso) == 0) {
			/* the offsets just read were there by now: the time for first/done */
			double polled = now_s();
			long long sum = 0;
			for (int p = 0; p < np; p++)
				sum += hw[p];
			if (sum > 0 && first_ts == 0)
				first_ts = polled;
			/* tail check of partitions whose committed end could hold everything */
			rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
			for (int p = 0; p < np; p++)
				if (!done[p] && lso[p] >= expect[p] && lso[p] != checked_at[p]) {
					int64_t from = lso[p] - window[p];
					rd_kafka_topic_partition_list_add(l, o->topic, p)->offset =
					    from < 0 ? 0 : from;
				}
			if (l->cnt > 0) {
				int pending = l->cnt;
				long long *lastseq = malloc((size_t)np * sizeof *lastseq);
				int *eof = calloc((size_t)np, sizeof *eof);
				for (int p = 0; p < np; p++)
					lastseq[p] = -1;
				rd_kafka_assign(rk, l);
				double until = mono_s() + 5;
				while (pending > 0 && mono_s() < until) {
					rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
					if (!m)
						continue;
					int p = m->partition;
					if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
						if (p >= 0 && p < np && !eof[p]) {
							eof[p] = 1;
							pending--;
						}
					} else if (!m->err && p >= 0 && p < np) {
						long long sq2 = hdr_seq(m);
						if (sq2 > lastseq[p])
							lastseq[p] = sq2;
					}
					rd_kafka_message_destroy(m);
				}
				rd_kafka_assign(rk, NULL);
				for (int i = 0; i < l->cnt; i++) {
					int p = l->elems[i].partition;
					if (!eof[p])
						continue;
					long long want = p + (long long)np * (expect[p] - 1);
					if (lastseq[p] == want)
						done[p] = 1;
					else if (lastseq[p] < 0 && window[p] < (1 << 20))
						window[p] *= 4; /* only markers/nothing in the window */
					checked_at[p] = lso[p];
				}
				free(lastseq);
				free(eof);
			}
			rd_kafka_topic_partition_list_destroy(l);
			int all = 1;
			for (int p = 0; p < np; p++)
				all &= done[p];
			if (el - last_report >= 5) {
				fprintf(stderr, "kbench: %6.1fs  target high watermarks %lld / %lld%s\n", el,
					sum, total, all ? "  (complete)" : "");
				last_report = el;
			}
			if (all) {
				done_ts = polled;
				status = "done";
				if (o->pid > 0) {
					sample_tree(o->pid, &s);
					if (s.alive) {
						at_done = s;
						if (s.rss_kb > peak.rss_kb)
							peak.rss_kb = s.rss_kb;
						if (s.hwm_kb > peak.hwm_kb)
							peak.hwm_kb = s.hwm_kb;
					}
				}
				break;
			}
		}
		if (el > o->deadline) {
			status = "deadline";
			break;
		}
		if (pid_exited && el - exited_at > 15) {
			status = "exited";
			break;
		}
		usleep((useconds_t)o->interval_ms * 1000);
	}
	if (stop_flag)
		status = "interrupted";
	printf("status=%s\nrecords=%lld\nfirst_ts=%.3f\ndone_ts=%.3f\n", status, total, first_ts,
	       done_ts);
	if (o->pid > 0)
		printf("cpu_s=%.2f\nrss_peak_kb=%ld\nhwm_kb=%ld\npid_exited=%d\n", at_done.cpu_s,
		       peak.rss_kb, peak.hwm_kb, pid_exited);
	fflush(stdout);
	rd_kafka_queue_destroy(q);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	free(expect); free(hw); free(lso); free(checked_at); free(done); free(window);
	return strcmp(status, "done") ? 1 : 0;
}

/* ------------------------------------------------------------------------------ */
/* verify */

static int cmd_verify(struct opts *o)
{
	if (o->n <= 0)
		die("verify needs -n");
	rd_kafka_t *rk = new_consumer(o->bootstrap, "kbench-verify");
	int np = partition_count(rk, o->topic);
	if (np < 1)
		die("topic %s not found", o->topic);
	size_t nbytes = (size_t)(o->n + 7) / 8;
	unsigned char *seen = calloc(nbytes, 1);
	if (!seen)
		die("out of memory");
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
	for (int p = 0; p < np; p++)
		rd_kafka_topic_partition_list_add(l, o->topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_assign(rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	int pending = np;
	int *eof = calloc((size_t)np, sizeof *eof);
	long long records = 0, dups = 0, bad = 0, wrongpart = 0, distinct = 0;
	double t0 = mono_s(), last = t0;
	while (pending > 0 && !stop_flag) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
		if (!m) {
			if (mono_s() - last > 60) {
				fprintf(stderr, "kbench: verify: no progress for 60 s\n");
				break;
			}
			continue;
		}
		last = mono_s();
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			/* EOF is reported each time the end is reached; count once per partition */
			if (m->partition >= 0 && m->partition < np && !eof[m->partition]) {
				eof[m->partition] = 1;
				pending--;
			}
		} else if (m->err) {
			fprintf(stderr, "kbench: verify: %s\n", rd_kafka_message_errstr(m));
			bad++;
		} else {
			records++;
			long long s = hdr_seq(m);
			rd_kafka_headers_t *h = NULL;
			size_t hc = (!rd_kafka_message_headers(m, &h) && h) ? rd_kafka_header_cnt(h) : 0;
			if (s < 0 || s >= o->n || hc != 2 || !m->key || m->key_len == 0 ||
			    m->len != (size_t)o->size) {
				bad++;
			} else {
				if (s % np != m->partition)
					wrongpart++;
				if (seen[s / 8] & (1u << (s % 8)))
					dups++;
				else {
					seen[s / 8] |= (unsigned char)(1u << (s % 8));
					distinct++;
				}
			}
		}
		rd_kafka_message_destroy(m);
	}
	double dt = mono_s() - t0;
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	long long missing = o->n - distinct;
	printf("records=%lld distinct=%lld missing=%lld duplicates=%lld bad=%lld wrong_partition=%lld "
	       "seconds=%.1f\n",
	       records, distinct, missing, dups, bad, wrongpart, dt);
	free(seen);
	free(eof);
	return (missing || bad || wrongpart || pending) ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: kbench load|watch|verify|offsets ARGS (see bench/kbench.c)\n");
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	struct opts o;
	parse_opts(argc - 2, argv + 2, &o);
	if (!strcmp(argv[1], "load"))
		return cmd_load(&o);
	if (!strcmp(argv[1], "watch"))
		return cmd_watch(&o);
	if (!strcmp(argv[1], "verify"))
		return cmd_verify(&o);
	if (!strcmp(argv[1], "offsets"))
		return cmd_offsets(&o);
	die("unknown command '%s'", argv[1]);
	return 2;
}
