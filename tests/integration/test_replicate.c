/*
 * Replication on real clusters (Kafka 3.9 source -> 4.3 target).  Every
 * verdict comes from an independent reader (the test kit reading both
 * clusters with librdkafka), never from kmigrate's own code:
 *   - 1,000,000 records, 12 partitions, keys, duplicate headers, null keys,
 *     tombstones and set timestamps arrive identical per partition;
 *   - SIGKILL at 10 moments while producers keep writing: 0 lost, 0
 *     duplicated, order kept;
 *   - two replicators share the work, one is killed, the other takes over;
 *   - committed and aborted source transactions: only committed arrive and
 *     the offset map translates around the control-record gaps;
 *   - a compacted source with offset gaps;
 *   - records deleted before they were copied: the loud error;
 *   - a malformed progress or offset-map record: a loud error, never skipped;
 *   - a failure before any work (wrong password, unreachable) leaves the
 *     journal byte for byte as it was;
 *   - a design topic the source user cannot see, partitions added while
 *     running: NO-GO with a journal fact;
 *   - the throttle holds per process; a restart after kill -9 reuses its
 *     group.instance.id, two live processes never share one.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "offmap.h"
#include "tk.h"
#include "util.h"

static tk_cluster_t src, tgt;

/* Topic names unique to this run, so the suite can run against clusters
 * that already hold an earlier run's topics and migrations. */
static char R1[64], R2[64], R3[64], R4[64], R5[64], R6[64], R7[64], R8[64], R9[64], R10[64],
	R11[64], R12[64], R13[64], R14[64], R15[64], R16[64], R17[64], R18[64], R19[64], R20[64], R21[64], R22[64];

/* A plan for one scenario: its own migration name and topic. */
static char *make_plan(const char *name, const char *topic)
{
	char mig[128], inc[160];
	snprintf(mig, sizeof(mig), "%s-%d", name, (int)getpid());
	snprintf(inc, sizeof(inc), "\"^%s$\"", topic);
	return tk_plan(&src, &tgt, name, mig, inc, NULL);
}
/* make_plan(), planned and applied: the target topic exists. */
static char *applied_plan(const char *name, const char *topic)
{
	char *plan = make_plan(name, topic);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	return plan;
}

/* The internal topic `what` of make_plan(name, ...)'s migration. */
static char *internal_topic(const char *name, const char *what)
{
	return km_asprintf("__kmigrate.%s-%d.%s", name, (int)getpid(), what);
}

/* Produces one raw record to partition p of a topic on the target. */
static void put_raw(const char *topic, int p, const char *key, const char *value)
{
	rd_kafka_t *pr = tk_producer(&tgt, NULL);
	tk_msg_t m = {.key = key, .value = value, .partition = p};
	tk_produce(pr, topic, &m);
	tk_flush(pr);
	rd_kafka_destroy(pr);
}

/* Creates topic with `partitions` partitions on the source and writes n
 * records (key "k", the given value) round-robin over them. */
static void fill_topic(const char *topic, int partitions, int n, const char *value)
{
	tk_create_topic(&src, topic, partitions, NULL);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < n; i++) {
		tk_msg_t m = {.key = "k", .value = value, .partition = i % partitions};
		tk_produce(p, topic, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
}

static char *log_path(const char *plan)
{
	return km_asprintf("%s.log", plan);
}

/* The target partition must hold exactly the source partition's committed
 * records, in order. */
static void assert_same_partition(const char *topic, int p)
{
	tk_digests_t a, b;
	tk_digest_partition(&src, topic, p, true, &a);
	tk_digest_partition(&tgt, topic, p, true, &b);
	size_t common = a.n < b.n ? a.n : b.n, i;
	for (i = 0; i < common; i++)
		if (a.d[i] != b.d[i])
			break;
	if (a.n != b.n || i != common)
		fail_msg("%s[%d]: source has %zu records, target %zu; first difference at record "
			 "%zu (source offset %lld)",
			 topic, p, a.n, b.n, i, i < a.n ? (long long)a.off[i] : -1LL);
	tk_digests_free(&a);
	tk_digests_free(&b);
}

static void assert_same_topic(const char *topic)
{
	int parts = tk_partitions(&src, topic);
	assert_int_equal(parts, tk_partitions(&tgt, topic));
	for (int p = 0; p < parts; p++)
		assert_same_partition(topic, p);
}

static int group_setup(void **state)
{
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_SOURCE");
	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	int id = (int)getpid();
	snprintf(R1, sizeof(R1), "r1-%d.data", id);
	snprintf(R2, sizeof(R2), "r2-%d.data", id);
	snprintf(R3, sizeof(R3), "r3-%d.data", id);
	snprintf(R4, sizeof(R4), "r4-%d.txn", id);
	snprintf(R5, sizeof(R5), "r5-%d.compact", id);
	snprintf(R6, sizeof(R6), "r6-%d.loss", id);
	snprintf(R7, sizeof(R7), "r7-%d.recreated", id);
	snprintf(R8, sizeof(R8), "r8-%d.big", id);
	snprintf(R9, sizeof(R9), "r9-%d.recreated-live", id);
	snprintf(R10, sizeof(R10), "r10-%d.deleted-live", id);
	snprintf(R11, sizeof(R11), "r11-%d.corrupt", id);
	snprintf(R12, sizeof(R12), "r12-%d.hidden", id);
	snprintf(R13, sizeof(R13), "r13-%d.grown", id);
	snprintf(R14, sizeof(R14), "r14-%d.throttle", id);
	snprintf(R15, sizeof(R15), "r15-%d.restart", id);
	snprintf(R16, sizeof(R16), "r16-%d.journal", id);
	snprintf(R17, sizeof(R17), "r17-%d.tasks", id);
	snprintf(R18, sizeof(R18), "r18-%d.gzip", id);
	snprintf(R19, sizeof(R19), "r19-%d.producer", id);
	snprintf(R20, sizeof(R20), "r20-%d.small", id);
	snprintf(R21, sizeof(R21), "r21-%d.wide", id);
	snprintf(R22, sizeof(R22), "r22-%d.many", id);
	return 0;
}

/* ---- fidelity --------------------------------------------------------------- */

static void test_fidelity_million(void **state)
{
	const int N = 1000000, P = 12;
	char key[32], val[128];
	(void)state;
	/* Set timestamps, an hour in the past: older ones would be deleted
	 * by the source's 7-day retention (kmigrate then rightly stops). */
	int64_t base_ts = (int64_t)time(NULL) * 1000 - 3600000;
	tk_create_topic(&src, R1, P, NULL);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < N; i++) {
		/* Duplicate header names, in a given order, must survive. */
		const char *hdrs[] = {"h", "a", "trace", "t", "h", "b", NULL};
		snprintf(key, sizeof(key), "k%d", i % 5000);
		snprintf(val, sizeof(val), "value-%d-%064d", i, i);
		tk_msg_t m = {.key = i % 97 == 0 ? NULL : key,
			      .value = i % 101 == 0 ? NULL : val,
			      .partition = i % P,
			      .timestamp = base_ts + i,
			      .headers = i % 3 ? hdrs : NULL};
		tk_produce(p, R1, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);

	char *plan = make_plan("it-r1", R1);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	int64_t t0 = tk_mono_ms();
	tk_catch_up(plan, 600000, NULL);
	fprintf(stderr, "replicated %d records in %lld ms\n", N, (long long)(tk_mono_ms() - t0));
	assert_same_topic(R1);
	free(plan);
}

/* ---- SIGKILL loop ------------------------------------------------------------ */

typedef struct writer_s {
	pthread_t th;
	volatile int stop;
	const char *topic;
	int partitions;
	int64_t written;
} writer_t;

static void *writer_main(void *arg)
{
	writer_t *w = arg;
	rd_kafka_t *p = tk_producer(&src, NULL);
	char key[32], val[64];
	int64_t i = 0;

	while (!w->stop) {
		for (int b = 0; b < 200; b++, i++) {
			const char *hdrs[] = {"seq", "x", NULL};
			snprintf(key, sizeof(key), "k%lld", (long long)(i % 100));
			snprintf(val, sizeof(val), "v%lld", (long long)i);
			tk_msg_t m = {.key = key, .value = val, .partition = (int)(i % w->partitions),
				      .headers = hdrs};
			tk_produce(p, w->topic, &m);
		}
		/* Paces the load generator at ~5,000 records/s: a steady
		 * stream, not a flood the kill loop must wait out. */
		rd_kafka_poll(p, 0);
		poll(NULL, 0, 40);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	w->written = i;
	return NULL;
}

static void writer_start(writer_t *w, const char *topic, int partitions)
{
	memset(w, 0, sizeof(*w));
	w->topic = topic;
	w->partitions = partitions;
	pthread_create(&w->th, NULL, writer_main, w);
}

static void writer_stop(writer_t *w)
{
	w->stop = 1;
	pthread_join(w->th, NULL);
}

/* Waits until the target topic grew by at least `grow` records. */
static void wait_target_growth(const char *topic, int64_t from, int64_t grow)
{
	int64_t deadline = tk_mono_ms() + 90000;
	while (tk_total_hwm(&tgt, topic) < from + grow) {
		if (tk_mono_ms() > deadline)
			fail_msg("target %s did not grow by %lld records within 90 s", topic,
				 (long long)grow);
		poll(NULL, 0, 50);
	}
}

static void test_sigkill_loop(void **state)
{
	writer_t w;
	(void)state;
	tk_create_topic(&src, R2, 4, NULL);
	char *plan = make_plan("it-r2", R2);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	char *log = log_path(plan);
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, "--txn-ms", "50", NULL};

	writer_start(&w, R2, 4);
	srand((unsigned)time(NULL));
	for (int k = 0; k < 10; k++) {
		int64_t before = tk_total_hwm(&tgt, R2);
		pid_t pid = tk_spawn(argv, log);
		/* Kill at a random point of the copy: after 1..3000 more
		 * records reached the target. */
		wait_target_growth(R2, before, 1 + rand() % 3000);
		kill(pid, SIGKILL);
		assert_int_equal(tk_wait_exit(pid, 10000), 128 + SIGKILL);
	}
	writer_stop(&w);
	fprintf(stderr, "writer produced %lld records during 10 SIGKILLs\n", (long long)w.written);
	tk_catch_up(plan, 300000, NULL);
	assert_same_topic(R2);
	free(log);
	free(plan);
}

/* ---- two replicators ----------------------------------------------------------- */

static int count_in_file(const char *path, const char *needle)
{
	FILE *fp = fopen(path, "r");
	char line[4096];
	int n = 0;
	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp))
		if (strstr(line, needle))
			n++;
	fclose(fp);
	return n;
}

static void wait_log(const char *path, const char *needle, int count)
{
	int64_t deadline = tk_mono_ms() + 90000;
	while (count_in_file(path, needle) < count) {
		if (tk_mono_ms() > deadline)
			fail_msg("%s: fewer than %d lines with '%s' after 90 s", path, count, needle);
		poll(NULL, 0, 100);
	}
}

static void test_two_replicators_takeover(void **state)
{
	writer_t w;
	(void)state;
	tk_create_topic(&src, R3, 6, NULL);
	char *plan = make_plan("it-r3", R3);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	char loga[600], logb[600];
	snprintf(loga, sizeof(loga), "%s.a.log", plan);
	snprintf(logb, sizeof(logb), "%s.b.log", plan);
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, "--json", "--tasks", "6", NULL};

	writer_start(&w, R3, 6);
	pid_t a = tk_spawn(argv, loga);
	wait_log(loga, "\"state\":\"started\"", 6);
	pid_t b = tk_spawn(argv, logb);
	/* The group splits the six tasks: B starts some of them. */
	wait_log(logb, "\"state\":\"started\"", 1);
	int64_t before = tk_total_hwm(&tgt, R3);
	kill(a, SIGKILL);
	assert_int_equal(tk_wait_exit(a, 10000), 128 + SIGKILL);
	/* B takes over every task (A's session times out) and copies on. */
	wait_log(logb, "\"state\":\"started\"", 6 + count_in_file(logb, "\"state\":\"revoked\""));
	wait_target_growth(R3, before, 2000);
	writer_stop(&w);
	kill(b, SIGTERM);
	assert_int_equal(tk_wait_exit(b, 60000), 0);
	tk_catch_up(plan, 300000, NULL);
	assert_same_topic(R3);
	free(plan);
}

/* ---- transactions and the offset map ----------------------------------------- */

/* Reads the offset map through kmigrate's debug view and checks, for every
 * committed source record, that translation lands on the target record
 * with the same digest -- and that an offset with no record (a marker, a
 * compacted or aborted record) translates to the next copied record. */
static void assert_offmap_exact(const char *plan, const char *topic, int p)
{
	char *out, *err, part[16];
	snprintf(part, sizeof(part), "%d", p);
	const char *argv[] = {tk_kmigrate(), "offsets", "map", "-p", plan, "--topic", topic,
			      "--partition", part, "--json", NULL};
	assert_int_equal(tk_run(&out, &err, argv), 0);
	json_t *doc = tk_json(out), *r;
	km_offmap_t m = KM_OFFMAP_INIT;
	size_t i;
	json_array_foreach(json_object_get(doc, "runs"), i, r)
		assert_int_equal(km_offmap_add(&m, json_integer_value(json_object_get(r, "src_first")),
					       json_integer_value(json_object_get(r, "tgt_first")),
					       json_integer_value(json_object_get(r, "count"))),
				 0);
	tk_digests_t a, b;
	tk_digest_partition(&src, topic, p, true, &a);
	tk_digest_partition(&tgt, topic, p, true, &b);
	size_t j = 0;
	for (i = 0; i < a.n; i++) {
		int64_t t;
		if (km_offmap_translate(&m, a.off[i], &t))
			fail_msg("%s[%d]: source offset %lld not translatable", topic, p,
				 (long long)a.off[i]);
		while (j < b.n && b.off[j] < t)
			j++;
		if (j == b.n || b.off[j] != t || b.d[j] != a.d[i])
			fail_msg("%s[%d]: source offset %lld translates to %lld, which does not hold "
				 "the same record",
				 topic, p, (long long)a.off[i], (long long)t);
		/* Offsets between this record and the previous one (markers,
		 * aborted or compacted records) translate to this record. */
		if (i > 0 && a.off[i] > a.off[i - 1] + 1) {
			int64_t t2;
			assert_int_equal(km_offmap_translate(&m, a.off[i - 1] + 1, &t2), 0);
			assert_int_equal(t2, t);
		}
	}
	tk_digests_free(&a);
	tk_digests_free(&b);
	km_offmap_clear(&m);
	json_decref(doc);
	free(out);
	free(err);
}

static void test_transactions(void **state)
{
	char key[32], val[64];
	(void)state;
	tk_create_topic(&src, R4, 3, NULL);
	rd_kafka_t *p = tk_producer(&src, "it-r4-tx");
	int committed = 0;
	for (int t = 0; t < 30; t++) {
		rd_kafka_error_t *e = rd_kafka_begin_transaction(p);
		if (e)
			fail_msg("begin: %s", rd_kafka_error_string(e));
		for (int i = 0; i < 25; i++) {
			snprintf(key, sizeof(key), "t%d-%d", t, i);
			snprintf(val, sizeof(val), "%s", t % 3 == 2 ? "ABORTED" : "committed");
			tk_msg_t m = {.key = key, .value = val, .partition = i % 3};
			tk_produce(p, R4, &m);
		}
		tk_flush(p);
		e = t % 3 == 2 ? rd_kafka_abort_transaction(p, 30000)
			       : rd_kafka_commit_transaction(p, 30000);
		if (e)
			fail_msg("end txn: %s", rd_kafka_error_string(e));
		committed += t % 3 == 2 ? 0 : 25;
	}
	rd_kafka_destroy(p);

	char *plan = make_plan("it-r4", R4);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	tk_catch_up(plan, 120000, NULL);
	assert_same_topic(R4);
	/* Nothing aborted reached the target, even for a read_uncommitted
	 * reader: kmigrate copies only committed data. */
	size_t total = 0;
	for (int part = 0; part < 3; part++) {
		tk_digests_t d;
		tk_digest_partition(&tgt, R4, part, false, &d);
		total += d.n;
		tk_digests_free(&d);
		assert_offmap_exact(plan, R4, part);
	}
	assert_int_equal(total, committed);
	free(plan);
}

/* ---- memory bound ------------------------------------------------------------ */

/* Large records must shorten the transactions, not grow the footprint: a
 * transaction holds its records until the commit, so one bounded only by
 * its record count and time (10,000 records, 20 s here) would hold the
 * whole topic. */
static void test_large_records_bounded(void **state)
{
	enum { N = 150, SIZE = 900 * 1000 };
	char key[32], *plan;
	char *val = malloc(SIZE);
	long rss_kb = 0;
	(void)state;

	/* Random bytes: the source broker recompresses with gzip, and a
	 * compressible value would test the compression ratio instead. */
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < SIZE; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		val[i] = (char)(x >> 24);
	}
	tk_create_topic(&src, R8, 2, NULL);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "big-%d", i);
		val[0] = (char)i;
		tk_msg_t m = {.key = key, .value = val, .value_len = SIZE, .partition = i % 2};
		tk_produce(p, R8, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	tk_wait_total_hwm(&src, R8, N);
	free(val);

	plan = make_plan("it-r8", R8);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	rss_kb = tk_catch_up(plan, 120000, "--max-buffer-mb", "8", "--txn-ms", "20000", NULL);
	assert_same_topic(R8);
	/* 135 MB of records went through; the budget is 8 MB, the process
	 * itself (librdkafka clients, threads) ~35 MB.  AddressSanitizer's
	 * quarantine alone holds more than that (make asan). */
#ifndef __SANITIZE_ADDRESS__
	if (rss_kb > 100 * 1024)
		fail_msg("replicate's peak RSS was %ld MB with --max-buffer-mb 8 and %d records "
			 "of %d bytes: the memory budget does not bound it",
			 rss_kb / 1024, N, SIZE);
#else
	(void)rss_kb;
#endif
	free(plan);
}

static bool has_gaps(const char *topic, int p)
{
	tk_digests_t d;
	bool gaps = false;
	tk_digest_partition(&src, topic, p, true, &d);
	for (size_t i = 1; i < d.n; i++)
		if (d.off[i] != d.off[i - 1] + 1)
			gaps = true;
	if (d.n && d.off[0] != 0)
		gaps = true;
	tk_digests_free(&d);
	return gaps;
}

static void test_compacted_gaps(void **state)
{
	char key[32], val[64];
	const char *cfg[] = {"cleanup.policy", "compact", "segment.ms", "100",
			     "min.cleanable.dirty.ratio", "0.01", "min.compaction.lag.ms", "0",
			     "delete.retention.ms", "100", NULL};
	(void)state;
	tk_create_topic(&src, R5, 1, cfg);
	rd_kafka_t *p = tk_producer(&src, NULL);
	int64_t deadline = tk_mono_ms() + 120000;
	int round = 0;
	/* Keep updating ten keys until the cleaner has compacted a closed
	 * segment and the log has offset gaps. */
	do {
		for (int i = 0; i < 200; i++) {
			snprintf(key, sizeof(key), "key-%d", i % 10);
			snprintf(val, sizeof(val), "round-%d-%d", round, i);
			tk_msg_t m = {.key = key, .value = i % 50 == 49 ? NULL : val, .partition = 0};
			tk_produce(p, R5, &m);
		}
		tk_flush(p);
		round++;
		if (tk_mono_ms() > deadline)
			fail_msg("the source never compacted r5.compact within 120 s");
		poll(NULL, 0, 200);
	} while (!has_gaps(R5, 0));
	rd_kafka_destroy(p);

	char *plan = make_plan("it-r5", R5);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	/* apply pinned the source's eager compaction on the target too: hold
	 * it back there, or the target's cleaner may remove a copied record
	 * the source still has before the comparison reads it (seen under
	 * ASan's slower pace). */
	tk_set_topic_config(&tgt, R5, "min.compaction.lag.ms", "3600000");
	tk_catch_up(plan, 120000, NULL);
	/* The source may compact further after the copy: every record it
	 * still has must be at its translated position on the target. */
	assert_offmap_exact(plan, R5, 0);
	free(plan);
}

/* ---- retention loss -------------------------------------------------------------- */

static void test_retention_loss_is_loud(void **state)
{
	char val[32], *out, *err;
	(void)state;
	tk_create_topic(&src, R6, 1, NULL);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < 200; i++) {
		snprintf(val, sizeof(val), "v%d", i);
		tk_msg_t m = {.key = "k", .value = val, .partition = 0};
		tk_produce(p, R6, &m);
		if (i == 99) {
			tk_flush(p);
			char *plan = make_plan("it-r6", R6);
			tk_km(plan, "plan", NULL, NULL, 0, NULL);
			tk_km(plan, "apply", NULL, NULL, 0, NULL);
			tk_catch_up(plan, 120000, NULL); /* copies 0..99 */
			setenv("KM_IT_R6_PLAN", plan, 1);
			free(plan);
		}
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	/* Records 100..149 are deleted before anyone copied them. */
	tk_delete_records(&src, R6, 0, 150);
	const char *plan = getenv("KM_IT_R6_PLAN");
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, "--until-caught-up", NULL};
	int rc = tk_run(&out, &err, argv);
	char named[100];
	snprintf(named, sizeof(named), "'%s'[0]", R6);
	if (rc != 1 || !strstr(err, "50 records") || !strstr(err, "deleted by retention") ||
	    !strstr(err, named))
		fail_msg("want exit 1 naming r6.loss[0] and 50 lost records, got %d: %s", rc, err);
	free(out);
	free(err);
	/* The loss is a NO-GO fact in the journal. */
	const char *st[] = {tk_kmigrate(), "status", "-p", plan, "--json", NULL};
	assert_int_equal(tk_run(&out, &err, st), 0);
	assert_non_null(strstr(out, "replicate.loss"));
	assert_non_null(strstr(out, "NO-GO"));
	free(out);
	free(err);
}

static void test_recreated_topic_stops(void **state)
{
	char *out, *err;
	(void)state;
	tk_create_topic(&src, R7, 2, NULL);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < 20; i++) {
		tk_msg_t m = {.key = "k", .value = "old", .partition = i % 2};
		tk_produce(p, R7, &m);
	}
	tk_flush(p);
	char *plan = make_plan("it-r7", R7);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	tk_catch_up(plan, 120000, NULL);
	tk_delete_topic(&src, R7);
	int64_t deadline = tk_mono_ms() + 60000;
	while (tk_partitions(&src, R7) >= 0) {
		if (tk_mono_ms() > deadline)
			fail_msg("%s still exists 60 s after its deletion", R7);
		poll(NULL, 0, 100);
	}
	tk_create_topic(&src, R7, 2, NULL);
	for (int i = 0; i < 5; i++) {
		tk_msg_t m = {.key = "k", .value = "new", .partition = 0};
		tk_produce(p, R7, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, "--until-caught-up", NULL};
	int rc = tk_run(&out, &err, argv);
	if (rc != 1 || !strstr(err, "deleted and recreated"))
		fail_msg("want exit 1 and 'deleted and recreated', got %d: %s", rc, err);
	free(out);
	free(err);
	free(plan);
}

/* A one-partition source topic of 20 records and a replicate (no
 * --until-caught-up) that has copied them and keeps running.  @returns its
 * pid; *planp and *logp are the caller's. */
static pid_t live_replicate(const char *name, const char *topic, char **planp, char **logp)
{
	fill_topic(topic, 1, 20, "old");
	*planp = make_plan(name, topic);
	tk_km(*planp, "plan", NULL, NULL, 0, NULL);
	tk_km(*planp, "apply", NULL, NULL, 0, NULL);
	*logp = log_path(*planp);
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", *planp, NULL};
	pid_t pid = tk_spawn(argv, *logp);
	wait_log(*logp, "caught up 1/1", 1);
	return pid;
}

/* The replicate must stop by itself with an error naming one of the
 * wanted texts, and never blame retention. */
static void expect_stop(pid_t pid, const char *log, const char *want1, const char *want2)
{
	int rc = tk_wait_exit(pid, 90000);
	char *text = tk_read_file(log, NULL);
	if (rc <= 0 || (!strstr(text, want1) && !(want2 && strstr(text, want2))) ||
	    strstr(text, "retention"))
		fail_msg("want a failure naming '%s'%s%s%s (never 'retention'), got exit %d: %s",
			 want1, want2 ? " or '" : "", want2 ? want2 : "", want2 ? "'" : "", rc,
			 text);
	free(text);
}

/* The same, while replicate runs: depending on when the source's metadata
 * reaches the replicator it sees the deletion first, or only the new
 * topic, whose range the partition's next offset falls out of.  Either way
 * it must stop naming what happened, never blaming retention. */
static void test_recreated_while_running(void **state)
{
	char *plan, *log;
	(void)state;
	pid_t pid = live_replicate("it-r9", R9, &plan, &log);
	tk_delete_topic(&src, R9);
	int64_t deadline = tk_mono_ms() + 60000;
	while (tk_partitions(&src, R9) >= 0) {
		if (tk_mono_ms() > deadline) {
			tk_wait_exit(pid, 0);
			fail_msg("%s still exists 60 s after its deletion", R9);
		}
		poll(NULL, 0, 100);
	}
	tk_create_topic(&src, R9, 1, NULL);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < 5; i++) {
		tk_msg_t m = {.key = "k", .value = "new", .partition = 0};
		tk_produce(p, R9, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	expect_stop(pid, log, "deleted and recreated", "was deleted while it was being copied");
	free(log);
	free(plan);
}

/* A source topic deleted while replicate runs stops it, loudly, instead of
 * leaving it waiting for records that will never come. */
static void test_deleted_while_running(void **state)
{
	char *plan, *log;
	(void)state;
	pid_t pid = live_replicate("it-r10", R10, &plan, &log);
	tk_delete_topic(&src, R10);
	expect_stop(pid, log, "was deleted while it was being copied", NULL);
	free(log);
	free(plan);
}

/* ---- the engine's bookkeeping ------------------------------------------------ */

/* A progress or offset-map record that does not decode is a loud error
 * naming where it is, never a skipped record: a skipped progress record
 * restarted the partition from an older offset (or the log start) and
 * duplicated it; a skipped run made translation land late. */
static void test_corrupt_state_is_loud(void **state)
{
	char key[100], *out, *err, where[300];
	(void)state;
	fill_topic(R11, 1, 10, "v");
	char *plan = make_plan("it-r11", R11);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	tk_catch_up(plan, 120000, NULL);
	/* One partition, one task: the state is on partition 0. */
	snprintf(key, sizeof(key), "%s:0", R11);
	char *t_off = internal_topic("it-r11", "offsetmap");
	char *t_prog = internal_topic("it-r11", "progress");
	int64_t at = tk_total_hwm(&tgt, t_off);
	put_raw(t_off, 0, key, "{\"s\":10,\"t\":20,\"n\":\"3\"}"); /* n: a string */
	snprintf(where, sizeof(where), "offset %lld of '%s'[0]", (long long)at, t_off);
	char part[] = "0";
	const char *mapv[] = {tk_kmigrate(), "offsets", "map", "-p", plan, "--topic", R11,
			      "--partition", part, "--json", NULL};
	int rc = tk_run(&out, &err, mapv);
	if (rc == 0 || !strstr(err, "corrupt") || !strstr(err, where) || !strstr(err, "'n'"))
		fail_msg("offsets map over a malformed run: want a failure naming %s, got exit "
			 "%d: %s%s",
			 where, rc, out, err);
	free(out);
	free(err);

	at = tk_total_hwm(&tgt, t_prog);
	put_raw(t_prog, 0, key, "{\"next\":\"3\",\"tgt_next\":11,\"topic_id\":\"\"}");
	snprintf(where, sizeof(where), "offset %lld of '%s'[0]", (long long)at, t_prog);
	const char *rv[] = {tk_kmigrate(), "replicate", "-p", plan, "--until-caught-up", NULL};
	rc = tk_run(&out, &err, rv);
	if (rc == 0 || !strstr(err, "corrupt") || !strstr(err, where) || !strstr(err, "'next'"))
		fail_msg("replicate over a malformed progress record: want a failure naming %s, got "
			 "exit %d: %s%s",
			 where, rc, out, err);
	free(out);
	free(err);
	free(t_off);
	free(t_prog);
	free(plan);
}

/* ---- failures before work leave the journal alone ------------------------------ */

/* Runs replicate on a plan whose target cannot be used and checks it fails
 * with exit 3 naming want, leaving the file `journal` byte for byte as it
 * was (or absent). */
static void expect_untouched(const char *dir, const char *name, const char *target_yaml,
			     const char *journal, const char *want)
{
	char *out, *err, *before, *after;
	size_t blen = 0, alen = 0;
	char *text = km_asprintf("migration: it-r16-%d\nsource:\n  bootstrap: %s\ntarget:\n%s"
				 "topics:\n  include: [\"^%s$\"]\n",
				 (int)getpid(), src.bootstrap, target_yaml, R16);
	char *plan = tk_write_file(dir, name, text);
	before = tk_read_file(journal, &blen);
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, "--until-caught-up", NULL};
	int rc = tk_run(&out, &err, argv);
	if (rc != 3 || !strstr(err, want))
		fail_msg("%s: want exit 3 naming '%s', got %d: %s", name, want, rc, err);
	after = tk_read_file(journal, &alen);
	if ((before == NULL) != (after == NULL) ||
	    (before && (blen != alen || memcmp(before, after, blen))))
		fail_msg("%s: a replicate that failed before copying changed the journal %s (%s)",
			 name, journal, before ? "its bytes" : "it was created");
	free(before);
	free(after);
	free(out);
	free(err);
	free(plan);
	free(text);
}

static void test_failed_run_leaves_journal(void **state)
{
	(void)state;
	tk_create_topic(&src, R16, 1, NULL);
	char *plan = make_plan("it-r16", R16);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	char *dir = km_strdup(plan);
	*strrchr(dir, '/') = '\0';
	char *journal = km_asprintf("%s/kmigrate.db", dir);
	char *secure = km_asprintf("  bootstrap: %s\n  security_protocol: sasl_ssl\n"
				   "  sasl_mechanism: SCRAM-SHA-512\n  username: admin\n"
				   "  password_env: KM_IT_R16_PW\n  ssl_ca: %s\n",
				   getenv("KM_TEST_SECURE"), getenv("KM_TEST_SECURE_CA"));
	setenv("KM_IT_R16_PW", "not-the-password", 1);
	/* A journal that exists: byte-identical after. */
	expect_untouched(dir, "badpw.yaml", secure, journal, "authentication to the target");
	expect_untouched(dir, "unreachable.yaml", "  bootstrap: 127.0.0.1:2\n", journal,
			 "cannot reach the target cluster at '127.0.0.1:2'");
	/* No journal yet: none created. */
	char *fresh = tk_tmpdir("r16-fresh");
	char *none = km_asprintf("%s/kmigrate.db", fresh);
	expect_untouched(fresh, "badpw.yaml", secure, none, "authentication to the target");
	unsetenv("KM_IT_R16_PW");
	free(none);
	free(fresh);
	free(secure);
	free(journal);
	free(dir);
	free(plan);
}

/* ---- topics the source user cannot see ----------------------------------------- */

/* A plan on the SASL_SSL cluster as `user`, in dir (same journal). */
static char *secure_plan(const char *dir, const char *name, const char *user, const char *pwenv)
{
	char *text = km_asprintf("migration: it-r12-%d\nsource:\n  bootstrap: %s\n"
				 "  security_protocol: sasl_ssl\n  sasl_mechanism: SCRAM-SHA-512\n"
				 "  username: %s\n  password_env: %s\n  ssl_ca: %s\n"
				 "target:\n  bootstrap: %s\ntopics:\n  include: [\"^%s$\"]\n",
				 (int)getpid(), getenv("KM_TEST_SECURE"), user, pwenv,
				 getenv("KM_TEST_SECURE_CA"), tgt.bootstrap, R12);
	char *plan = tk_write_file(dir, name, text);
	free(text);
	return plan;
}

/* The saved design lists the topic; the replicating user (alice, no ACLs
 * on a deny-by-default cluster) cannot see it.  Before: "Replicated 0
 * records ... 0/0 partitions caught up", exit 0. */
static void test_unseen_design_topic_is_nogo(void **state)
{
	tk_cluster_t sec;
	char *out, *err;
	(void)state;
	tk_cluster_from_env(&sec, "KM_TEST_SECURE");
	tk_create_topic(&sec, R12, 2, NULL);
	rd_kafka_t *p = tk_producer(&sec, NULL);
	tk_msg_t m = {.key = "k", .value = "v", .partition = 0};
	tk_produce(p, R12, &m);
	tk_flush(p);
	rd_kafka_destroy(p);
	setenv("KM_IT_R12_ADMIN", getenv("KM_TEST_SECURE_PASSWORD"), 1);
	setenv("KM_IT_R12_ALICE", "alice-secret", 1);
	char *dir = tk_tmpdir("it-r12");
	char *admin = secure_plan(dir, "admin.yaml", "admin", "KM_IT_R12_ADMIN");
	tk_km(admin, "plan", NULL, NULL, 1, NULL); /* 1: manual items (users, quotas) */
	tk_km(admin, "apply", NULL, NULL, 0, NULL);
	char *alice = secure_plan(dir, "alice.yaml", "alice", "KM_IT_R12_ALICE");
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", alice, "--until-caught-up", NULL};
	int rc = tk_run(&out, &err, argv);
	char named[100];
	snprintf(named, sizeof(named), "'%s'", R12);
	if (rc != 1 || !strstr(err, named) || !strstr(err, "DESCRIBE") || !strstr(err, "alice"))
		fail_msg("want exit 1 (NO-GO) naming %s, the user and the ACL to grant, got %d: %s%s",
			 named, rc, out, err);
	free(out);
	free(err);
	/* The NO-GO is a fact in the journal. */
	const char *st[] = {tk_kmigrate(), "status", "-p", admin, "--json", NULL};
	assert_int_equal(tk_run(&out, &err, st), 0);
	if (!strstr(out, "replicate.unseen") || !strstr(out, R12))
		fail_msg("no replicate.unseen fact for %s in the journal: %s", R12, out);
	free(out);
	free(err);
	free(alice);
	free(admin);
	free(dir);
}

/* ---- partitions added while replicating ----------------------------------------- */

/* Grows a source topic to `to` partitions (CreatePartitions). */
static void add_partitions(const char *topic, int to)
{
	rd_kafka_t *a = tk_admin(&src);
	rd_kafka_queue_t *q = rd_kafka_queue_new(a);
	char e[256];
	rd_kafka_NewPartitions_t *np = rd_kafka_NewPartitions_new(topic, (size_t)to, e, sizeof(e));
	rd_kafka_CreatePartitions(a, &np, 1, NULL, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
	assert_non_null(ev);
	size_t n;
	const rd_kafka_topic_result_t **res =
		rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev), &n);
	if (n != 1 || rd_kafka_topic_result_error(res[0]))
		fail_msg("CreatePartitions %s to %d: %s", topic, to,
			 n ? rd_kafka_topic_result_error_string(res[0]) : "no result");
	rd_kafka_event_destroy(ev);
	rd_kafka_NewPartitions_destroy(np);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(a);
}

/* Before: the running replicator kept printing "lag 0, caught up 2/2" and
 * exited 0 on SIGTERM with the new partitions' records uncopied. */
static void test_partitions_added_while_running(void **state)
{
	char *out, *err;
	(void)state;
	fill_topic(R13, 2, 20, "v");
	char *plan = make_plan("it-r13", R13);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	char *log = log_path(plan);
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, NULL};
	pid_t pid = tk_spawn(argv, log);
	wait_log(log, "caught up 2/2", 1);
	add_partitions(R13, 4);
	rd_kafka_t *p = tk_producer(&src, NULL); /* a new one: it learns the 4 partitions */
	for (int i = 0; i < 20; i++) {
		tk_msg_t m = {.key = "k", .value = "new", .partition = 2 + i % 2};
		tk_produce(p, R13, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	/* It stops by itself; if it did not, SIGTERM must not end in exit 0. */
	int rc = -1, wst;
	for (int64_t end = tk_mono_ms() + 60000; rc < 0 && tk_mono_ms() < end; poll(NULL, 0, 100))
		if (waitpid(pid, &wst, WNOHANG) == pid)
			rc = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst);
	if (rc < 0) {
		kill(pid, SIGTERM);
		rc = tk_wait_exit(pid, 60000);
	}
	char *text = tk_read_file(log, NULL);
	char named[100];
	snprintf(named, sizeof(named), "'%s'", R13);
	if (rc != 1 || !strstr(text, named) || !strstr(text, "from 2 to 4 partitions"))
		fail_msg("want exit 1 naming %s grown from 2 to 4 partitions, got %d: %s", named, rc,
			 text);
	free(text);
	/* At start the same mismatch (the target still has 2) is a NO-GO,
	 * journaled like a loss. */
	const char *again[] = {tk_kmigrate(), "replicate", "-p", plan, "--until-caught-up", NULL};
	rc = tk_run(&out, &err, again);
	if (rc != 1 || !strstr(err, named))
		fail_msg("restart: want exit 1 naming %s, got %d: %s", named, rc, err);
	free(out);
	free(err);
	const char *st[] = {tk_kmigrate(), "status", "-p", plan, "--json", NULL};
	assert_int_equal(tk_run(&out, &err, st), 0);
	if (!strstr(out, "replicate.partitions") || !strstr(out, R13))
		fail_msg("no replicate.partitions fact for %s in the journal: %s", R13, out);
	free(out);
	free(err);
	free(log);
	free(plan);
}

/* ---- the throttle ----------------------------------------------------------- */

/* --max-bytes-per-sec is per process: 4 tasks at 1,000,000 B/s copied
 * ~4.3 MB/s before.  The rate is measured from the first record on the
 * target to the exit (a slow machine only makes it lower: being slower
 * than the limit is fine, exceeding it by more than 30 % is not). */
static void test_throttle_per_process(void **state)
{
	const int N = 10000, P = 4, SIZE = 1000;
	const int64_t LIMIT = 1000000;
	char key[16], *val = km_calloc(1, SIZE + 1);
	(void)state;
	memset(val, 'x', SIZE - 8);
	tk_create_topic(&src, R14, P, NULL);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "%07d", i); /* 7 bytes + 992 = 999 */
		tk_msg_t m = {.key = key, .value = val, .partition = i % P};
		tk_produce(p, R14, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	int64_t total = (int64_t)N * (7 + SIZE - 8);
	char *plan = make_plan("it-r14", R14);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	char *log = log_path(plan);
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, "--until-caught-up",
			      "--tasks", "4", "--max-bytes-per-sec", "1000000", NULL};
	pid_t pid = tk_spawn(argv, log);
	int64_t first = 0, end, deadline = tk_mono_ms() + 120000;
	while (tk_total_hwm(&tgt, R14) == 0 && tk_mono_ms() < deadline)
		poll(NULL, 0, 100);
	first = tk_mono_ms();
	assert_int_equal(tk_wait_exit(pid, 300000), 0);
	end = tk_mono_ms();
	double rate = (double)total * 1000.0 / (double)(end - first);
	fprintf(stderr, "throttled copy: %lld bytes in %lld ms = %.0f B/s (limit %lld)\n",
		(long long)total, (long long)(end - first), rate, (long long)LIMIT);
	if (rate > 1.3 * (double)LIMIT)
		fail_msg("4 tasks copied %.0f B/s with --max-bytes-per-sec %lld: the limit is per "
			 "process",
			 rate, (long long)LIMIT);
	assert_same_topic(R14);
	free(log);
	free(plan);
	free(val);
}

/* ---- static membership ---------------------------------------------------------- */

/* The group.instance.id a replicate logged in its "start" event (--json). */
static char *instance_of(const char *log)
{
	wait_log(log, "\"event\":\"start\"", 1);
	char *text = tk_read_file(log, NULL), *at = strstr(text, "\"instance\":\""), *id = NULL;
	if (at) {
		at += strlen("\"instance\":\"");
		id = km_asprintf("%.*s", (int)strcspn(at, "\""), at);
	}
	free(text);
	if (!id)
		fail_msg("%s: the start event names no instance (static membership)", log);
	return id;
}

/* A replicator restarted after kill -9 rejoins under its predecessor's
 * group.instance.id, so the group hands its tasks back at once instead of
 * after the dead member's session timeout (bench/failover measures it:
 * 11-12 s before, ~1.2 s after); two live processes never share an id.
 * Asserted on the ids, not on time. */
static void test_restart_reuses_instance(void **state)
{
	char *out, *err;
	(void)state;
	tk_create_topic(&src, R15, 2, NULL);
	char *plan = make_plan("it-r15", R15);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	char *la = km_asprintf("%s.a.log", plan), *lb = km_asprintf("%s.b.log", plan),
	     *la2 = km_asprintf("%s.a2.log", plan);
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, "--json", NULL};
	pid_t a = tk_spawn(argv, la);
	char *ida = instance_of(la);
	wait_log(la, "\"state\":\"started\"", 2);
	pid_t b = tk_spawn(argv, lb);
	char *idb = instance_of(lb);
	if (!strcmp(ida, idb))
		fail_msg("two live replicators share the instance id '%s'", ida);
	kill(a, SIGKILL);
	assert_int_equal(tk_wait_exit(a, 10000), 128 + SIGKILL);
	pid_t a2 = tk_spawn(argv, la2);
	char *ida2 = instance_of(la2);
	if (strcmp(ida, ida2))
		fail_msg("restarted after kill -9 as '%s', its predecessor was '%s'", ida2, ida);
	/* The same explicit id twice on one host is refused. */
	const char *first[] = {tk_kmigrate(), "replicate", "-p", plan, "--instance", "x", "--json",
			       NULL};
	const char *dup[] = {tk_kmigrate(), "replicate", "-p", plan, "--instance", "x", NULL};
	char *lx = km_asprintf("%s.x.log", plan);
	pid_t x = tk_spawn(first, lx);
	free(instance_of(lx)); /* it holds the id from before its start event */
	int rc = tk_run(&out, &err, dup);
	if (rc != 2 || !strstr(err, "runs as instance 'x'"))
		fail_msg("a second --instance x: want exit 2, got %d: %s", rc, err);
	free(out);
	free(err);
	kill(x, SIGTERM);
	kill(b, SIGTERM);
	kill(a2, SIGTERM);
	assert_int_equal(tk_wait_exit(x, 60000), 0);
	assert_int_equal(tk_wait_exit(b, 60000), 0);
	assert_int_equal(tk_wait_exit(a2, 60000), 0);
	free(lx);
	free(ida);
	free(idb);
	free(ida2);
	free(la);
	free(lb);
	free(la2);
	free(plan);
}

/* ---- the task count of a running migration ------------------------------------- */

/* The task count is fixed by the migration's first replicator (the
 * partitions of __kmigrate.<m>.tasks, which also lay out the progress and
 * the offset map).  `--tasks` with another count on an existing migration
 * was silently ignored: the run went on with the old count.  It is refused
 * now, naming the count and how to change it; the same count, or none, runs. */
static void test_tasks_on_existing_migration(void **state)
{
	char *out, *err;
	(void)state;
	fill_topic(R17, 3, 60, "v");
	char *plan = make_plan("it-r17", R17);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	tk_catch_up(plan, 120000, "--tasks", "2", NULL);

	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, "--until-caught-up",
			      "--tasks", "3", NULL};
	int rc = tk_run(&out, &err, argv);
	if (rc != 2 || !strstr(err, "2 tasks") || !strstr(err, "--tasks 3") ||
	    strchr(err, '\n') != strrchr(err, '\n'))
		fail_msg("--tasks 3 on a migration started with 2 tasks: want exit 2 and one line "
			 "naming both counts, got %d: %s", rc, err);
	free(out);
	free(err);
	/* The same count, and no count, run as before. */
	tk_catch_up(plan, 120000, "--tasks", "2", NULL);
	tk_catch_up(plan, 120000, NULL);
	assert_same_topic(R17);
	free(plan);
}

/* ---- compression follows the target topic ------------------------------------- */

/* The producer's codec is per target topic (it was lz4 for all): a gzip
 * topic gets gzip, a `producer` topic the plan's replication.compression.
 * Both copies must arrive byte for byte through either codec. */
static void test_compression_per_topic(void **state)
{
	const char *gz[] = {"compression.type", "gzip", NULL};
	char mig[128], inc[200];
	(void)state;
	tk_create_topic(&src, R18, 2, gz);
	fill_topic(R19, 2, 300, "a value that compresses well, well, well, well, well");
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < 300; i++) {
		tk_msg_t m = {.key = "k", .value = "gzip topic value, value, value", .partition = i % 2};
		tk_produce(p, R18, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	snprintf(mig, sizeof(mig), "it-r18-%d", (int)getpid());
	snprintf(inc, sizeof(inc), "\"^%s$\", \"^%s$\"", R18, R19);
	char *plan = tk_plan(&src, &tgt, "it-r18", mig, inc, "replication:\n  compression: zstd\n");
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	tk_catch_up(plan, 120000, NULL);
	assert_same_topic(R18);
	assert_same_topic(R19);
	free(plan);
}

/* ---- batches under a small topic's limit -------------------------------------- */

/* A topic whose max.message.bytes (10,000) admits each record (3,000
 * random bytes) but not a batch of four: the source's producer wrote
 * them one per batch, the replicator batches what it fetched.  Its
 * batches must stay under the target topic's limit (they were up to
 * 1 MB: the target refused the batch, the run stopped). */
static void test_small_topic_batches(void **state)
{
	const char *small[] = {"max.message.bytes", "10000", NULL};
	char val[3000];
	unsigned seed = 12;
	(void)state;
	tk_create_topic(&src, R20, 1, small);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < 40; i++) {
		for (size_t j = 0; j < sizeof(val); j++)
			val[j] = (char)(rand_r(&seed) & 0xff);
		tk_msg_t m = {.key = "k", .value = val, .value_len = sizeof(val), .partition = 0};
		tk_produce(p, R20, &m);
		tk_flush(p); /* one record per batch: a batch of two is too large */
	}
	rd_kafka_destroy(p);
	assert_int_equal(tk_total_hwm(&src, R20), 40);
	char *plan = applied_plan("it-r20", R20);
	tk_catch_up(plan, 120000, NULL);
	assert_same_topic(R20);
	free(plan);
}

/* ---- a transaction's length follows its partitions ----------------------------- */

/* A transaction costs something per partition it touches (AddPartitionsToTxn,
 * a batch, a commit marker, a progress record and an offset-map run each):
 * at 10,000 records per transaction a task of 500 partitions put ~20 into
 * each, and 2,000 partitions copied at a third of the rate of 12.  A task of
 * 300 partitions takes 30,000 records per transaction, filled in chunks of
 * 10,000 released once delivered (the memory held is one chunk): 45,000
 * records in 2 transactions (5 before), the last committed as soon as
 * everything to copy is in it (--txn-ms 60000 would hold it a minute),
 * copied exactly. */
static void test_txn_sized_by_partitions(void **state)
{
	(void)state;
	fill_topic(R21, 300, 45000, "a record of a wide topic");
	char *plan = applied_plan("it-r21", R21);
	int64_t t0 = tk_mono_ms();
	tk_catch_up(plan, 120000, "--tasks", "1", "--txn-ms", "60000", NULL);
	int64_t took = tk_mono_ms() - t0;
	char *log = log_path(plan);
	char *out = tk_read_file(log, NULL);
	const char *in = out ? strstr(out, "Replicated 45000 records") : NULL;
	if (!in || !strstr(in, " in 2 transactions"))
		fail_msg("want 45000 records in 2 transactions of 30000 records at most; the log "
			 "%s says: %s",
			 log, out ? out : "(nothing)");
	if (took > 50000)
		fail_msg("the run took %lld ms: its last transaction waited out --txn-ms",
			 (long long)took);
	/* Record by record over every partition (validate's digests; a
	 * digest read per partition here takes ~0.5 s each), then two edges. */
	tk_km(plan, "validate", NULL, NULL, 0, NULL);
	assert_same_partition(R21, 0);
	assert_same_partition(R21, 299);
	assert_offmap_exact(plan, R21, 0);
	assert_offmap_exact(plan, R21, 299);
	free(out);
	free(log);
	free(plan);
}

/* ---- the layout of a many-partition map ---------------------------------------- */

static int count_in(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* From 1,000 partitions a new map places runs of partitions on a task
 * (runs of 1000 / (8 x 4) = 32 here) instead of spreading every topic over
 * every task, so that each task's clients know their own partitions only.
 * The layout is written once, as the first record of the tasks topic, and
 * every later run reads it back: the second run finds its progress where
 * the first put it (nothing copied twice), and writes no second layout. */
static void test_layout_many_partitions(void **state)
{
	(void)state;
	fill_topic(R22, 1000, 3000, "one of many partitions");
	char *plan = applied_plan("it-r22", R22);
	tk_catch_up(plan, 180000, "--json", NULL);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < 1000; i++) {
		tk_msg_t m = {.key = "k", .value = "after the first run", .partition = i};
		tk_produce(p, R22, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	tk_catch_up(plan, 180000, "--json", NULL);
	char *log = log_path(plan);
	char *out = tk_read_file(log, NULL);
	if (count_in(out, "\"layout_group\":32") != 2)
		fail_msg("want two runs with layout_group 32 in %s: %s", log, out ? out : "");
	/* Runs of 32 from the task the name picks: 8 runs on each of 3
	 * tasks, 7 on the fourth (and 8 partitions of the 32nd run). */
	int tasks_of[4] = {0};
	for (const char *q = out; q && (q = strstr(q, "\"partitions\":")); q++) {
		int n = atoi(q + 13);
		const char *ev = strstr(q, "\"state\":\"started\"");
		const char *nl = strchr(q, '\n');
		if (ev && (!nl || ev < nl) && n > 0) {
			const char *tk = strstr(q, "\"task\":");
			if (tk && (!nl || tk < nl))
				tasks_of[atoi(tk + 7) & 3] = n;
		}
	}
	int sum = 0;
	for (int k = 0; k < 4; k++) {
		sum += tasks_of[k];
		if (tasks_of[k] != 256 && tasks_of[k] != 232)
			fail_msg("task %d owns %d partitions, want 256 or 232 (runs of 32): %s", k,
				 tasks_of[k], log);
	}
	assert_int_equal(sum, 1000);
	char *tasks = internal_topic("it-r22", "tasks");
	assert_int_equal(tk_total_hwm(&tgt, tasks), 1); /* one layout record */
	/* Record by record (validate's digests over every partition: a
	 * digest read per partition here takes ~0.5 s each), then the edges
	 * of runs and tasks one by one. */
	tk_km(plan, "validate", NULL, NULL, 0, NULL);
	const int edge[] = {0, 31, 32, 991, 992, 999};
	for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
		assert_same_partition(R22, edge[i]);
		assert_offmap_exact(plan, R22, edge[i]);
	}
	free(tasks);
	free(out);
	free(log);
	free(plan);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tasks_on_existing_migration),
		cmocka_unit_test(test_compression_per_topic),
		cmocka_unit_test(test_small_topic_batches),
		cmocka_unit_test(test_txn_sized_by_partitions),
		cmocka_unit_test(test_layout_many_partitions),
		cmocka_unit_test(test_corrupt_state_is_loud),
		cmocka_unit_test(test_failed_run_leaves_journal),
		cmocka_unit_test(test_unseen_design_topic_is_nogo),
		cmocka_unit_test(test_partitions_added_while_running),
		cmocka_unit_test(test_throttle_per_process),
		cmocka_unit_test(test_restart_reuses_instance),
		cmocka_unit_test(test_transactions),
		cmocka_unit_test(test_large_records_bounded),
		cmocka_unit_test(test_compacted_gaps),
		cmocka_unit_test(test_retention_loss_is_loud),
		cmocka_unit_test(test_recreated_topic_stops),
		cmocka_unit_test(test_recreated_while_running),
		cmocka_unit_test(test_deleted_while_running),
		cmocka_unit_test(test_two_replicators_takeover),
		cmocka_unit_test(test_sigkill_loop),
		cmocka_unit_test(test_fidelity_million),
	};
	/* TK_ONLY=test_name (a glob) runs a subset, e.g. while working on one. */
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	/* TK_ONLY=glob runs a subset, e.g. while working on one. */
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
