/* kestate -- builds the estate of bench/run-offsets (not part of kmigrate).
 *
 *   kestate -b BOOT [-T TOPICS] [-P PARTITIONS] [-r RECORDS] [-g GROUPS] [-t TOPICS_PER_GROUP]
 *
 * Creates TOPICS topics bo.NNN of PARTITIONS partitions (default 200 x 5),
 * writes RECORDS records to each partition (default 40) in transactions of
 * ten topics each, every fourth transaction aborted (so the logs hold
 * commit and abort markers and aborted records, as a transactional estate
 * does), then commits GROUPS groups bench-g-NN (default 10) on
 * TOPICS_PER_GROUP topics each (default 20, i.e. 100 group-partitions per
 * group).  Group g takes topics g*T/2 .. g*T/2+T-1 (mod TOPICS): every
 * partition is in two groups, at different positions, so the proof reads
 * one partition at several positions.  A position is a mid-log offset, or
 * the end (the high watermark, after the final marker) for one partition
 * in five.  Prints the number of group-partitions committed.
 *
 * Options added for bench/run-scale (the defaults keep run-offsets' estate):
 *   -x PREFIX   topics PREFIX.NNN and groups PREFIX-g-NN (default "bo", whose
 *               groups keep their old names bench-g-NN)
 *   -s BYTES    value size: the value is padded to BYTES (default: unpadded)
 *   -A GEN      append: the topics may exist already, keys carry "-gGEN" (so a
 *               second load's keys stay unique in their partition), no group
 *               commits (prints 0)
 * Prints "kestate: C records committed, A aborted" on stderr.
 *
 *   kestate -b SOURCE -x PREFIX -T T -P P -V TARGET [-R TPREFIX]
 *       verify: reads every partition of the estate on the source and its copy
 *       TPREFIX+<source topic> on TARGET (read_committed, to the last stable
 *       offset) and compares the keys in order.  Prints "partitions= records=
 *       lost= duplicated= reordered= extra=" and exits 0 only when the copy is
 *       exactly the source (nothing lost, duplicated, reordered or extra).
 *
 *   kestate -b SOURCE -x PREFIX -T T -P P -W TARGET [-R TPREFIX] -n RECORDS [-D SECONDS]
 *       watch: reads the copy on TARGET as it is written (read_committed; topics
 *       assigned as they appear) until RECORDS records are there.  Prints
 *       "first_ts= done_ts= records= status=" (epoch seconds); exit 1 at the
 *       deadline (default 900 s).
 *
 * Talks to librdkafka directly; exits non-zero with a message on any error.
 */
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("kestate: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *boot, const char *txn_id)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char err[512];
	rd_kafka_t *rk;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", boot, err, sizeof(err)) ||
	    (txn_id && rd_kafka_conf_set(conf, "transactional.id", txn_id, err, sizeof(err))) ||
	    (type == RD_KAFKA_PRODUCER &&
	     rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err))))
		die("config: %s", err);
	if (!(rk = rd_kafka_new(type, conf, err, sizeof(err))))
		die("client: %s", err);
	return rk;
}

static rd_kafka_event_t *wait_ev(rd_kafka_queue_t *q, const char *what)
{
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 120000);
	if (!ev)
		die("%s: timed out", what);
	if (rd_kafka_event_error(ev))
		die("%s: %s", what, rd_kafka_event_error_string(ev));
	return ev;
}

static void create_topics(rd_kafka_t *rk, const char *prefix, int topics, int partitions,
			  int append)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	for (int first = 0; first < topics; first += 50) {
		int n = topics - first < 50 ? topics - first : 50;
		rd_kafka_NewTopic_t *nt[50];
		char name[64], err[256];
		for (int i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "%s.%03d", prefix, first + i);
			if (!(nt[i] = rd_kafka_NewTopic_new(name, partitions, 1, err, sizeof(err))))
				die("NewTopic %s: %s", name, err);
		}
		rd_kafka_CreateTopics(rk, nt, (size_t)n, NULL, q);
		rd_kafka_event_t *ev = wait_ev(q, "CreateTopics");
		size_t cnt;
		const rd_kafka_topic_result_t **tr =
			rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
		for (size_t i = 0; i < cnt; i++)
			if (rd_kafka_topic_result_error(tr[i]) &&
			    !(append && rd_kafka_topic_result_error(tr[i]) ==
						RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS))
				die("CreateTopics %s: %s", rd_kafka_topic_result_name(tr[i]),
				    rd_kafka_topic_result_error_string(tr[i]));
		rd_kafka_event_destroy(ev);
		rd_kafka_NewTopic_destroy_array(nt, (size_t)n);
	}
	rd_kafka_queue_destroy(q);
}

static void check(rd_kafka_error_t *e, const char *what)
{
	if (e)
		die("%s: %s", what, rd_kafka_error_string(e));
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* FNV-1a of a key: what verify compares (a collision would hide a swap of
 * two records, never a loss or a duplicate, which the counts show). */
static uint64_t fnv(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

typedef struct keys_s {
	uint64_t *v;
	size_t n, cap;
	int64_t end; /* last stable offset to read to */
	int done;
} keys_t;

static rd_kafka_t *reader(const char *boot)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char err[512];
	rd_kafka_t *rk;
	if (rd_kafka_conf_set(conf, "bootstrap.servers", boot, err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "group.id", "kestate-reader", err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "isolation.level", "read_committed", err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err)))
		die("config: %s", err);
	if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))))
		die("consumer: %s", err);
	return rk;
}

/* Reads every partition of the estate (topics tprefix+prefix.NNN) from the
 * start to its end into keys[t*parts+p]. */
static void read_all(const char *boot, const char *tprefix, const char *prefix, int topics,
		     int parts, keys_t *keys)
{
	rd_kafka_t *rk = reader(boot);
	rd_kafka_topic_partition_list_t *tps = rd_kafka_topic_partition_list_new(topics * parts);
	char name[256];
	int left = 0;

	for (int t = 0; t < topics; t++)
		for (int p = 0; p < parts; p++) {
			snprintf(name, sizeof(name), "%s%s.%03d", tprefix, prefix, t);
			rd_kafka_topic_partition_list_add(tps, name, p)->offset =
				RD_KAFKA_OFFSET_BEGINNING;
			left++;
		}
	rd_kafka_assign(rk, tps);
	double deadline = now_s() + 900;
	while (left > 0) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
		if (now_s() > deadline)
			die("reading %s: %d partitions not read to their end in 900 s", boot, left);
		if (!m)
			continue;
		const char *tn = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
		const char *dot = strrchr(tn, '.');
		int t = dot ? atoi(dot + 1) : -1;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			keys_t *k = &keys[t * parts + m->partition];
			if (t >= 0 && t < topics && !k->done) {
				k->done = 1;
				left--;
			}
		} else if (m->err) {
			die("reading %s %s[%d]: %s", boot, tn, m->partition, rd_kafka_message_errstr(m));
		} else if (t >= 0 && t < topics && m->partition < parts) {
			keys_t *k = &keys[t * parts + m->partition];
			if (k->n == k->cap) {
				k->cap = k->cap ? k->cap * 2 : 256;
				if (!(k->v = realloc(k->v, k->cap * sizeof(*k->v))))
					die("out of memory");
			}
			k->v[k->n++] = fnv(m->key, m->key_len);
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_topic_partition_list_destroy(tps);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int verify(const char *src, const char *dst, const char *tprefix, const char *prefix,
		  int topics, int parts)
{
	size_t n = (size_t)topics * parts;
	keys_t *a = calloc(n, sizeof(*a)), *b = calloc(n, sizeof(*b));
	long long records = 0, lost = 0, dup = 0, reordered = 0, extra = 0;

	if (!a || !b)
		die("out of memory");
	read_all(src, "", prefix, topics, parts, a);
	read_all(dst, tprefix, prefix, topics, parts, b);
	for (size_t i = 0; i < n; i++) {
		records += (long long)a[i].n;
		if (a[i].n == b[i].n && !memcmp(a[i].v, b[i].v, a[i].n * sizeof(uint64_t)))
			continue;
		/* Not the same sequence: count what differs as multisets;
		 * the same multiset in another order is a reorder. */
		qsort(a[i].v, a[i].n, sizeof(uint64_t), cmp_u64);
		qsort(b[i].v, b[i].n, sizeof(uint64_t), cmp_u64);
		size_t x = 0, y = 0;
		long long l0 = lost, d0 = dup, e0 = extra;
		while (x < a[i].n || y < b[i].n) {
			if (y >= b[i].n || (x < a[i].n && a[i].v[x] < b[i].v[y]))
				lost++, x++;
			else if (x >= a[i].n || b[i].v[y] < a[i].v[x]) {
				/* a second copy of a key just matched is a duplicate */
				if (y > 0 && b[i].v[y] == b[i].v[y - 1])
					dup++;
				else
					extra++;
				y++;
			} else
				x++, y++;
		}
		if (lost == l0 && dup == d0 && extra == e0)
			reordered++;
		fprintf(stderr, "kestate: partition %s.%03zu[%zu]: %zu records on the source, %zu on the copy\n",
			prefix, i / parts, i % parts, a[i].n, b[i].n);
	}
	printf("partitions=%zu records=%lld lost=%lld duplicated=%lld reordered=%lld extra=%lld\n", n,
	       records, lost, dup, reordered, extra);
	return lost || dup || reordered || extra;
}

static int watch(const char *dst, const char *tprefix, const char *prefix, int topics, int parts,
		 long long want, double deadline_s)
{
	rd_kafka_t *rk = reader(dst);
	char name[256];
	double first = 0, deadline = now_s() + deadline_s, next_md = 0;
	long long got = 0;
	int assigned = 0;
	int *seen = calloc((size_t)topics, sizeof(int));

	if (!seen)
		die("out of memory");
	while (got < want && now_s() < deadline) {
		if (assigned < topics && now_s() >= next_md) {
			/* Topics the replicator has created so far, assigned from
			 * their start (positions of those already assigned kept:
			 * rd_kafka_position gives them back). */
			const struct rd_kafka_metadata *md;
			if (!rd_kafka_metadata(rk, 1, NULL, &md, 10000)) {
				int added = 0;
				for (int i = 0; i < md->topic_cnt; i++) {
					size_t lp = strlen(tprefix);
					const char *tn = md->topics[i].topic, *dot;
					if (strncmp(tn, tprefix, lp) || strncmp(tn + lp, prefix, strlen(prefix)) ||
					    tn[lp + strlen(prefix)] != '.' ||
					    !(dot = strrchr(tn, '.')) || md->topics[i].err ||
					    md->topics[i].partition_cnt < parts)
						continue;
					int t = atoi(dot + 1);
					if (t >= 0 && t < topics && !seen[t])
						seen[t] = 1, added++;
				}
				rd_kafka_metadata_destroy(md);
				if (added) {
					rd_kafka_topic_partition_list_t *cur = NULL, *tps =
						rd_kafka_topic_partition_list_new(topics * parts);
					rd_kafka_assignment(rk, &cur);
					if (cur)
						rd_kafka_position(rk, cur);
					for (int t = 0; t < topics; t++)
						for (int p = 0; seen[t] && p < parts; p++) {
							snprintf(name, sizeof(name), "%s%s.%03d", tprefix, prefix, t);
							rd_kafka_topic_partition_t *c =
								cur ? rd_kafka_topic_partition_list_find(cur, name, p) : NULL;
							rd_kafka_topic_partition_list_add(tps, name, p)->offset =
								c && c->offset >= 0 ? c->offset : RD_KAFKA_OFFSET_BEGINNING;
						}
					rd_kafka_assign(rk, tps);
					rd_kafka_topic_partition_list_destroy(tps);
					if (cur)
						rd_kafka_topic_partition_list_destroy(cur);
					assigned += added;
				}
			}
			next_md = now_s() + 1;
		}
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		if (!m)
			continue;
		if (!m->err) {
			if (!got)
				first = now_s();
			got++;
		}
		rd_kafka_message_destroy(m);
	}
	printf("first_ts=%.3f done_ts=%.3f records=%lld status=%s\n", first, now_s(), got,
	       got >= want ? "done" : "deadline");
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	free(seen);
	return got >= want ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *boot = NULL, *prefix = "bo", *verify_boot = NULL, *watch_boot = NULL;
	const char *tprefix = "";
	int topics = 200, parts = 5, records = 40, groups = 10, per_group = 20, c, size = 0;
	int append = 0;
	long long want = 0, committed = 0, aborted = 0;
	double deadline_s = 900;
	char name[64], val[4096];

	while ((c = getopt(argc, argv, "b:T:P:r:g:t:x:s:V:W:R:n:D:A:")) != -1) {
		switch (c) {
		case 'x': prefix = optarg; break;
		case 'A': append = atoi(optarg); break;
		case 's': size = atoi(optarg); break;
		case 'V': verify_boot = optarg; break;
		case 'W': watch_boot = optarg; break;
		case 'R': tprefix = optarg; break;
		case 'n': want = atoll(optarg); break;
		case 'D': deadline_s = atof(optarg); break;
		case 'b': boot = optarg; break;
		case 'T': topics = atoi(optarg); break;
		case 'P': parts = atoi(optarg); break;
		case 'r': records = atoi(optarg); break;
		case 'g': groups = atoi(optarg); break;
		case 't': per_group = atoi(optarg); break;
		default: die("usage: kestate -b BOOT [-T topics] [-P partitions] [-r records] "
			     "[-g groups] [-t topics-per-group]");
		}
	}
	if (!boot || topics < 1 || parts < 1 || records < 2 || groups < 1 || per_group < 1 ||
	    (per_group > topics && !verify_boot && !watch_boot))
		die("usage: kestate -b BOOT [-T topics] [-P partitions] [-r records] [-g groups] "
		    "[-t topics-per-group]");

	if (size < 0 || size >= (int)sizeof(val) || strlen(prefix) > 40)
		die("-s takes 0..%zu, -x at most 40 characters", sizeof(val) - 1);
	if (verify_boot)
		return verify(boot, verify_boot, tprefix, prefix, topics, parts);
	if (watch_boot)
		return watch(watch_boot, tprefix, prefix, topics, parts, want, deadline_s);

	rd_kafka_t *adm = client(RD_KAFKA_PRODUCER, boot, NULL);
	create_topics(adm, prefix, topics, parts, append);

	rd_kafka_t *p = client(RD_KAFKA_PRODUCER, boot, "kestate");
	check(rd_kafka_init_transactions(p, 60000), "init_transactions");
	/* Transactions of ten topics, two per ten topics, every fourth
	 * one aborted: markers and aborted records in the logs. */
	for (int first = 0, tx = 0; first < topics; first += 10) {
		for (int half = 0; half < 2; half++, tx++) {
			check(rd_kafka_begin_transaction(p), "begin_transaction");
			for (int t = first; t < first + 10 && t < topics; t++) {
				snprintf(name, sizeof(name), "%s.%03d", prefix, t);
				for (int part = 0; part < parts; part++)
					for (int i = 0; i < records / 2; i++) {
						/* The key is unique in its partition (the
						 * topic's number, half and index; verify
						 * compares keys); the value is the key,
						 * padded to -s bytes. */
						int kl = append ? snprintf(val, sizeof(val),
									   "%.40s-%d-%d-%d-g%d", name,
									   part % 1000, half, i, append)
								: snprintf(val, sizeof(val), "%.40s-%d-%d-%d", name,
									   part % 1000, half, i);
						size_t vl = (size_t)kl;
						if (size > kl) {
							memset(val + kl, 'v', (size_t)(size - kl));
							vl = (size_t)size;
						}
						rd_kafka_resp_err_t e;
						while ((e = rd_kafka_producev(
								p, RD_KAFKA_V_TOPIC(name),
								RD_KAFKA_V_PARTITION(part),
								RD_KAFKA_V_KEY(val, (size_t)kl),
								RD_KAFKA_V_VALUE(val, vl),
								RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
								RD_KAFKA_V_END)) ==
						       RD_KAFKA_RESP_ERR__QUEUE_FULL)
							rd_kafka_poll(p, 50);
						if (e)
							die("produce %s: %s", name, rd_kafka_err2str(e));
						if (tx % 4 == 3)
							aborted++;
						else
							committed++;
					}
			}
			/* Everything sent before the end: an abort racing the
			 * partitions' registration is refused by the broker. */
			if (rd_kafka_flush(p, 60000))
				die("flush: timed out");
			if (tx % 4 == 3)
				check(rd_kafka_abort_transaction(p, 60000), "abort_transaction");
			else
				check(rd_kafka_commit_transaction(p, 60000), "commit_transaction");
		}
	}
	rd_kafka_destroy(p);

	/* Commits: one AlterConsumerGroupOffsets per group. */
	rd_kafka_queue_t *q = rd_kafka_queue_new(adm);
	int total = 0;
	for (int g = 0; g < groups && !append; g++) {
		rd_kafka_topic_partition_list_t *tps = rd_kafka_topic_partition_list_new(per_group * parts);
		for (int k = 0; k < per_group; k++) {
			int t = (g * per_group / 2 + k) % topics;
			snprintf(name, sizeof(name), "%s.%03d", prefix, t);
			for (int part = 0; part < parts; part++) {
				int64_t lo, hi;
				rd_kafka_resp_err_t e =
					rd_kafka_query_watermark_offsets(adm, name, part, &lo, &hi, 30000);
				if (e)
					die("watermarks %s[%d]: %s", name, part, rd_kafka_err2str(e));
				int64_t off = (k * parts + part + g) % 5 == 0 ? hi : 1 + (g * 7 + k * 3 + part) % (records - 1);
				rd_kafka_topic_partition_list_add(tps, name, part)->offset = off;
				total++;
			}
		}
		if (!strcmp(prefix, "bo"))
			snprintf(name, sizeof(name), "bench-g-%02d", g);
		else
			snprintf(name, sizeof(name), "%s-g-%02d", prefix, g);
		/* Per-partition errors too (the group coordinator may still be
		 * loading right after the start): retried, then fatal. */
		for (int attempt = 0;; attempt++) {
			rd_kafka_AlterConsumerGroupOffsets_t *a =
				rd_kafka_AlterConsumerGroupOffsets_new(name, tps);
			rd_kafka_AlterConsumerGroupOffsets(adm, &a, 1, NULL, q);
			rd_kafka_event_t *ev = wait_ev(q, "AlterConsumerGroupOffsets");
			size_t n;
			const char *bad = NULL;
			const rd_kafka_group_result_t **gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
				rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
			for (size_t i = 0; i < n && !bad; i++) {
				const rd_kafka_topic_partition_list_t *r =
					rd_kafka_group_result_partitions(gr[i]);
				if (rd_kafka_group_result_error(gr[i]))
					bad = rd_kafka_error_string(rd_kafka_group_result_error(gr[i]));
				for (int j = 0; !bad && r && j < r->cnt; j++)
					if (r->elems[j].err)
						bad = rd_kafka_err2str(r->elems[j].err);
			}
			if (bad && attempt >= 20)
				die("AlterConsumerGroupOffsets %s: %s", name, bad);
			rd_kafka_event_destroy(ev);
			rd_kafka_AlterConsumerGroupOffsets_destroy(a);
			if (!bad)
				break;
			sleep(1);
		}
		rd_kafka_topic_partition_list_destroy(tps);
	}
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(adm);
	fprintf(stderr, "kestate: %lld records committed, %lld aborted\n", committed, aborted);
	printf("%d\n", total);
	return 0;
}
