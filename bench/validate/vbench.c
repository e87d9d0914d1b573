/* vbench -- the validate benchmark's two tools (see README.md).
 *
 *   vbench digest [-s SIZE[,SIZE...]] [-m MB] [-t SECONDS]
 *       Builds an in-memory arena of realistic records (a 16-byte key, two
 *       headers "bench.seq" and "bench.ts" like bench/kbench's, a SIZE-byte
 *       incompressible value, a timestamp) of about MB megabytes -- larger
 *       than the caches, so the data is local but not cached -- and digests
 *       it on ONE thread with km_digest_record(), the function validate
 *       uses, for at least SECONDS.  Prints records/s and GB/s of record
 *       bytes (key + value + header names and values) per core.
 *
 *   vbench load -b BOOT -t TOPIC -n N -s SIZE -p PARTITIONS [-T TOPICS]
 *       Creates TOPIC with PARTITIONS partitions (an existing one is used as
 *       is) and produces N such records to it (record i to partition
 *       i % PARTITIONS), idempotent, acks=all, for the end-to-end run.
 *       With -T, TOPICS topics TOPIC.0 .. TOPIC.<TOPICS-1> get N records
 *       each (the many-small-partitions estate of run-small).
 *
 *   vbench delete BOOT TOPIC...
 *       Deletes the run's topics afterwards (missing ones are fine).
 *
 * Build: make -C bench/validate (links build/libkm.a: run `make build`).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "validate.h"

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	/* splitmix64: incompressible enough for values, and reproducible. */
	uint64_t z = (rnd_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

typedef struct rec_s {
	const char *key;
	size_t key_len;
	const unsigned char *value;
	size_t value_len;
	km_digest_header_t hdrs[2];
	int64_t ts;
} rec_t;

static void digest_bench(size_t size, size_t arena_mb, double seconds)
{
	size_t per = 16 + size + 64, n = arena_mb * 1000000 / per, i;
	unsigned char *arena = malloc(n * per);
	rec_t *recs = malloc(n * sizeof(*recs));
	uint64_t acc = 0, bytes_per_pass = 0;
	double t0, t;
	size_t passes = 0;

	if (!arena || !recs) {
		fprintf(stderr, "vbench: cannot allocate %zu MB\n", arena_mb);
		exit(2);
	}
	for (i = 0; i < n; i++) {
		unsigned char *p = arena + i * per;
		char *k = (char *)p, *seq = (char *)p + 16 + size, *ts = seq + 24, kb[32];
		snprintf(kb, sizeof(kb), "key-%012zu", i % 1000000000000u);
		memcpy(k, kb, 16);
		for (size_t j = 0; j < size; j += 8) {
			uint64_t r = rnd();
			memcpy(p + 16 + j, &r, size - j < 8 ? size - j : 8);
		}
		snprintf(seq, 24, "%zu", i);
		snprintf(ts, 24, "%" PRId64, (int64_t)1764000000000000 + (int64_t)i);
		recs[i] = (rec_t){k, 16, p + 16, size,
				  {{"bench.seq", seq, strlen(seq)}, {"bench.ts", ts, strlen(ts)}},
				  (int64_t)1764000000000 + (int64_t)i};
		bytes_per_pass += 16 + size + strlen("bench.seq") + strlen(seq) + strlen("bench.ts") +
				  strlen(ts);
	}
	t0 = mono_s();
	do {
		for (i = 0; i < n; i++) {
			km_digest_t d;
			km_digest_record(recs[i].key, recs[i].key_len, recs[i].value,
					   recs[i].value_len, recs[i].hdrs, 2, recs[i].ts, &d);
			acc += d.all;
		}
		passes++;
		t = mono_s() - t0;
	} while (t < seconds);
	printf("value %5zu B  %9zu records x %3zu passes  %6.2f s  %11.0f records/s  %6.2f GB/s"
	       "  (sum %016" PRIx64 ")\n",
	       size, n, passes, t, (double)(n * passes) / t,
	       (double)(bytes_per_pass * passes) / t / 1e9, acc);
	free(recs);
	free(arena);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	if (m->err) {
		fprintf(stderr, "vbench: delivery failed: %s\n", rd_kafka_err2str(m->err));
		exit(1);
	}
}

/* Creates the topic (an existing one is fine) and waits for its leaders. */
static int create_topic(rd_kafka_t *rk, const char *topic, int parts)
{
	char err[512];
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, parts, 1, err, sizeof(err));
	rd_kafka_event_t *ev;
	size_t n;
	int rc = 0;

	rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
	if (!(ev = rd_kafka_queue_poll(q, 30000))) {
		fprintf(stderr, "vbench: CreateTopics timed out\n");
		return 1;
	}
	const rd_kafka_topic_result_t **res =
		rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
	if (rd_kafka_event_error(ev) ||
	    (n == 1 && rd_kafka_topic_result_error(res[0]) &&
	     rd_kafka_topic_result_error(res[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)) {
		fprintf(stderr, "vbench: CreateTopics '%s': %s\n", topic,
			rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev)
						 : rd_kafka_topic_result_error_string(res[0]));
		rc = 1;
	}
	rd_kafka_event_destroy(ev);
	rd_kafka_NewTopic_destroy(nt);
	rd_kafka_queue_destroy(q);
	for (int tries = 0; !rc && tries < 100; tries++) {
		const struct rd_kafka_metadata *md = NULL;
		rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
		int ok = 0;
		if (!rd_kafka_metadata(rk, 0, rkt, &md, 5000)) {
			ok = md->topic_cnt == 1 && !md->topics[0].err &&
			     md->topics[0].partition_cnt == parts;
			for (int p = 0; ok && p < parts; p++)
				ok = md->topics[0].partitions[p].leader >= 0;
			rd_kafka_metadata_destroy(md);
		}
		rd_kafka_topic_destroy(rkt);
		if (ok)
			return 0;
		usleep(100000);
	}
	if (!rc)
		fprintf(stderr, "vbench: '%s' has no leaders\n", topic);
	return 1;
}

static int load(const char *boot, const char *topic_arg, long n, size_t size, int parts,
		int ntopics)
{
	char err[512], key[32], seq[32], ts[32], topic[300];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	unsigned char *val = malloc(size ? size : 1);
	rd_kafka_t *rk;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", boot, err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "batch.size", "1000000", err, sizeof(err))) {
		fprintf(stderr, "vbench: %s\n", err);
		return 2;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)))) {
		fprintf(stderr, "vbench: %s\n", err);
		return 2;
	}
	for (int tn = 0; tn < (ntopics ? ntopics : 1); tn++) {
	if (ntopics)
		snprintf(topic, sizeof(topic), "%s.%d", topic_arg, tn);
	else
		snprintf(topic, sizeof(topic), "%s", topic_arg);
	if (create_topic(rk, topic, parts))
		return 1;
	for (long i = 0; i < n; i++) {
		rd_kafka_headers_t *h = rd_kafka_headers_new(2);
		rd_kafka_resp_err_t e;
		for (size_t j = 0; j < size; j += 8) {
			uint64_t r = rnd();
			memcpy(val + j, &r, size - j < 8 ? size - j : 8);
		}
		snprintf(key, sizeof(key), "key-%012ld", i);
		snprintf(seq, sizeof(seq), "%ld", i);
		snprintf(ts, sizeof(ts), "%.0f", mono_s() * 1e6);
		rd_kafka_header_add(h, "bench.seq", -1, seq, -1);
		rd_kafka_header_add(h, "bench.ts", -1, ts, -1);
		while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
					      RD_KAFKA_V_PARTITION((int32_t)(i % parts)),
					      RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(val, size),
					      RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
					      RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(rk, 10);
		if (e) {
			fprintf(stderr, "vbench: produce: %s\n", rd_kafka_err2str(e));
			return 1;
		}
		rd_kafka_poll(rk, 0);
	}
	}
	if (rd_kafka_flush(rk, 120000)) {
		fprintf(stderr, "vbench: flush timed out\n");
		return 1;
	}
	rd_kafka_destroy(rk);
	free(val);
	printf("loaded %ld records of %zu bytes into %s%s\n", n, size, topic_arg,
	       ntopics ? ".*" : "");
	return 0;
}

/* Deletes topics (missing ones are fine): the end-to-end run cleans up. */
static int delete_topics(const char *boot, char **topics, int n)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	rd_kafka_DeleteTopic_t **dt = calloc((size_t)n, sizeof(*dt));
	rd_kafka_queue_t *q;
	rd_kafka_event_t *ev;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", boot, err, sizeof(err)) ||
	    !(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)))) {
		fprintf(stderr, "vbench: %s\n", err);
		return 2;
	}
	q = rd_kafka_queue_new(rk);
	for (int i = 0; i < n; i++)
		dt[i] = rd_kafka_DeleteTopic_new(topics[i]);
	rd_kafka_DeleteTopics(rk, dt, (size_t)n, NULL, q);
	if ((ev = rd_kafka_queue_poll(q, 30000)))
		rd_kafka_event_destroy(ev);
	for (int i = 0; i < n; i++)
		rd_kafka_DeleteTopic_destroy(dt[i]);
	free(dt);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: vbench digest [-s SIZE[,SIZE...]] [-m MB] [-t SECONDS]\n"
			"       vbench load -b BOOT -t TOPIC -n N -s SIZE -p PARTITIONS [-T TOPICS]\n"
			"       vbench delete BOOT TOPIC...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "digest")) {
		char sizes[256] = "100,512,1024,4096";
		size_t mb = 512;
		double secs = 3;
		int c;
		optind = 2;
		while ((c = getopt(argc, argv, "s:m:t:")) != -1) {
			if (c == 's')
				snprintf(sizes, sizeof(sizes), "%s", optarg);
			else if (c == 'm')
				mb = (size_t)atol(optarg);
			else if (c == 't')
				secs = atof(optarg);
			else
				usage();
		}
		printf("km_digest_record on one thread, %zu MB arena per size\n", mb);
		for (char *tok = strtok(sizes, ","); tok; tok = strtok(NULL, ","))
			digest_bench((size_t)atol(tok), mb, secs);
		return 0;
	}
	if (!strcmp(argv[1], "load")) {
		const char *boot = NULL, *topic = NULL;
		long n = 0;
		size_t size = 512;
		int parts = 1, ntopics = 0, c;
		optind = 2;
		while ((c = getopt(argc, argv, "b:t:n:s:p:T:")) != -1) {
			if (c == 'b')
				boot = optarg;
			else if (c == 't')
				topic = optarg;
			else if (c == 'n')
				n = atol(optarg);
			else if (c == 's')
				size = (size_t)atol(optarg);
			else if (c == 'p')
				parts = atoi(optarg);
			else if (c == 'T')
				ntopics = atoi(optarg);
			else
				usage();
		}
		if (!boot || !topic || n <= 0 || parts < 1 || ntopics < 0)
			usage();
		return load(boot, topic, n, size, parts, ntopics);
	}
	if (!strcmp(argv[1], "delete") && argc >= 4)
		return delete_topics(argv[2], argv + 3, argc - 3);
	usage();
	return 2;
}
