/*
 * `kmigrate validate` on real clusters (Kafka 3.9 source -> 4.3 target):
 *   - a real replication of a topic with keys, null keys, duplicate
 *     headers, tombstones and set timestamps, and of a transactional topic
 *     with aborted transactions, validates as a match (exit 0, GO), and the
 *     gate and the per-partition facts are in the journal;
 *   - --sample 10 labels the verdict sampled, in the output and the journal;
 *   - a partition with nothing replicated is NO-GO;
 *   - a topic of the saved design that the source principal cannot see
 *     (alice on the SASL_SSL cluster, no ACL) is NO-GO naming the topic and
 *     the ACL to grant; with DESCRIBE but no READ the partition is "not
 *     validated", naming READ;
 *   - records the replicator copies while validate runs (after its
 *     snapshot of the offset map) are not extra: validate GO with a
 *     replicator and a producer running;
 *   - a record written on the target after the last copied record (a
 *     stray writer before cutover) is an extra record, NO-GO, though the
 *     target partition ends with kmigrate's commit markers;
 *   - proof the check can fail: the test forges a broken copy -- it writes a
 *     source topic, a target topic and the offset-map runs itself -- with a
 *     changed value, a missing record, an extra record, a changed header, a
 *     swapped pair and a changed timestamp; each is reported with its kind
 *     and both offsets, the swapped pair breaks the per-key ordering, exit 1;
 *   - records of aborted transactions on the target (between two runs, and
 *     after the last) are counted per partition as aborted_on_target, and
 *     are not mismatches;
 *   - a compacted topic matches after replication even once the source
 *     compacted further behind the snapshot, and a forged latest-value
 *     difference in a compacted pair is detected.
 *
 * Forging the replication state: the test creates __kmigrate.<m>.tasks and
 * __kmigrate.<m>.offsetmap with ONE partition each, so every source
 * partition belongs to task 0 (anything % 1 == 0) and its runs go to
 * partition 0 of the offset map: no copy of lib/replicate.c's task_of() is
 * needed.  The runs are written as replicate writes them (key
 * "topic:partition", value {"s":..,"t":..,"n":..}) and read back by
 * kmigrate's own offset-map store (km_mapstore_open), so validate sees exactly what it
 * would see after a replicator that broke the copy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tk.h"

static tk_cluster_t src, tgt;
static char V1[64], V2[64], V3[64], VF[64], VFC[64], VC[64];
static char *match_plan; /* the plan of the matching replication */
static int64_t t_start;

/* Runs validate --json with extra arguments; @returns the report, *rcp the
 * exit code.  The human output is checked separately. */
static json_t *validate(const char *plan, int *rcp, const char *a1, const char *a2)
{
	char *out, *err;
	const char *argv[] = {tk_kmigrate(), "validate", "-p", plan, "--json", a1, a2, NULL};
	int64_t t0 = tk_mono_ms();
	*rcp = tk_run(&out, &err, argv);
	fprintf(stderr, "validate %s%s%s: exit %d in %lld ms\n", a1 ? a1 : "", a2 ? " " : "",
		a2 ? a2 : "", *rcp, (long long)(tk_mono_ms() - t0));
	if (*rcp != 0 && *rcp != 1)
		fail_msg("validate: exit %d: %s%s", *rcp, out, err);
	json_t *doc = tk_json(out);
	free(out);
	free(err);
	return doc;
}

static bool has_shown(json_t *pj, const char *kind, int64_t so, int64_t to);

static json_t *part_of(json_t *rep, const char *topic, int partition)
{
	json_t *p;
	size_t i;
	json_array_foreach(json_object_get(rep, "partitions"), i, p)
		if (!strcmp(json_string_value(json_object_get(p, "topic")), topic) &&
		    json_integer_value(json_object_get(p, "partition")) == partition)
			return p;
	fail_msg("no partition %s[%d] in the report", topic, partition);
	return NULL;
}

static int64_t jint(json_t *o, const char *k)
{
	return (int64_t)json_integer_value(json_object_get(o, k));
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* The latest fact of a kind in the plan's journal: verdict and body. */
static json_t *journal_fact(const char *plan, const char *kind, char *verdict, size_t vsize)
{
	char path[600];
	sqlite3 *db;
	sqlite3_stmt *st;
	json_t *body = NULL;
	snprintf(path, sizeof(path), "%s", plan);
	*strrchr(path, '/') = '\0';
	strncat(path, "/kmigrate.db", sizeof(path) - strlen(path) - 1);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT verdict, body FROM facts WHERE kind = ? "
					    "ORDER BY id DESC LIMIT 1",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(verdict, vsize, "%s", (const char *)sqlite3_column_text(st, 0));
		body = tk_json((const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (!body)
		fail_msg("no '%s' fact in %s", kind, path);
	return body;
}

static void test_setup(void **state)
{
	(void)state;
	t_start = tk_mono_ms();
	tk_cluster_from_env(&src, "KM_TEST_SOURCE");
	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	int id = (int)getpid();
	snprintf(V1, sizeof(V1), "v1-%d.data", id);
	snprintf(V2, sizeof(V2), "v2-%d.txn", id);
	snprintf(V3, sizeof(V3), "v3-%d.late", id);
	snprintf(VF, sizeof(VF), "vf-%d.forged", id);
	snprintf(VFC, sizeof(VFC), "vf-%d.forged-compact", id);
	snprintf(VC, sizeof(VC), "vc-%d.compact", id);
}

/* ---- a real replication validates as a match ------------------------------------- */

static void test_match_after_replication(void **state)
{
	const int N = 3000, P = 3;
	char key[32], val[128], inc[300], rules[300], mig[64];
	int64_t base_ts = (int64_t)time(NULL) * 1000 - 3600000;
	int tombstones = 0, committed = 0, rc;
	(void)state;

	tk_create_topic(&src, V1, P, NULL);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < N; i++) {
		const char *hdrs[] = {"h", "a", "trace", "t", "h", "b", NULL};
		snprintf(key, sizeof(key), "k%d", i % 200);
		snprintf(val, sizeof(val), "value-%d-%040d", i, i);
		tk_msg_t m = {.key = i % 97 == 0 ? NULL : key,
			      .value = i % 31 == 0 ? NULL : val,
			      .partition = i % P,
			      .timestamp = base_ts + i,
			      .headers = i % 3 ? hdrs : NULL};
		tombstones += i % 31 == 0;
		tk_produce(p, V1, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);

	/* Committed and aborted transactions: only committed records are
	 * copied, and validate reads read_committed on both sides. */
	tk_create_topic(&src, V2, 2, NULL);
	snprintf(key, sizeof(key), "it-v2-%d", (int)getpid());
	p = tk_producer(&src, key);
	for (int t = 0; t < 12; t++) {
		rd_kafka_error_t *e = rd_kafka_begin_transaction(p);
		if (e)
			fail_msg("begin: %s", rd_kafka_error_string(e));
		for (int i = 0; i < 20; i++) {
			snprintf(key, sizeof(key), "t%d-%d", t, i);
			tk_msg_t m = {.key = key, .value = t % 4 == 3 ? "ABORTED" : "committed",
				      .partition = i % 2};
			tk_produce(p, V2, &m);
		}
		tk_flush(p);
		e = t % 4 == 3 ? rd_kafka_abort_transaction(p, 30000)
			       : rd_kafka_commit_transaction(p, 30000);
		if (e)
			fail_msg("end txn: %s", rd_kafka_error_string(e));
		committed += t % 4 == 3 ? 0 : 20;
	}
	rd_kafka_destroy(p);

	snprintf(mig, sizeof(mig), "it-v1-%d", (int)getpid());
	snprintf(inc, sizeof(inc), "\"^%s$\", \"^%s$\"", V1, V2);
	/* Strict ordering on the data topic: the per-key check runs and
	 * must pass. */
	snprintf(rules, sizeof(rules), "  rules:\n    - match: \"^v1-\"\n      ordering: strict\n");
	char extra[400];
	snprintf(extra, sizeof(extra), "%s", rules);
	match_plan = tk_plan(&src, &tgt, "it-v1", mig, inc, extra);
	tk_km(match_plan, "plan", NULL, NULL, 0, NULL);
	tk_km(match_plan, "apply", NULL, NULL, 0, NULL);
	tk_catch_up(match_plan, 120000, NULL);

	json_t *rep = validate(match_plan, &rc, NULL, NULL);
	if (rc != 0) {
		char *s = json_dumps(json_object_get(rep, "no_go"), 0);
		fail_msg("validate after a real replication: exit %d, no_go %s", rc, s);
	}
	assert_string_equal(jstr(rep, "verdict"), "GO");
	assert_string_equal(jstr(rep, "label"), "GO");
	assert_false(json_is_true(json_object_get(rep, "sampled")));
	assert_int_equal(jint(rep, "mismatches"), 0);
	assert_int_equal(jint(rep, "partitions_total"), P + 2);
	int64_t recs = 0, tombs = 0, v2recs = 0;
	for (int i = 0; i < P; i++) {
		json_t *pj = part_of(rep, V1, i);
		json_t *s = json_object_get(pj, "source"), *t = json_object_get(pj, "target");
		assert_string_equal(jstr(pj, "state"), "validated");
		assert_string_equal(jstr(pj, "mode"), "sequence");
		assert_int_equal(jint(s, "records"), jint(t, "records"));
		assert_int_equal(jint(s, "bytes"), jint(t, "bytes"));
		assert_int_equal(jint(s, "headers"), jint(t, "headers"));
		assert_int_equal(jint(s, "timestamp_min"), jint(t, "timestamp_min"));
		assert_int_equal(jint(pj, "paired"), jint(s, "records"));
		assert_int_equal(jint(pj, "digested"), jint(s, "records"));
		json_t *ord = json_object_get(pj, "ordering");
		assert_true(json_is_true(json_object_get(ord, "checked")));
		assert_int_equal(jint(ord, "violations"), 0);
		assert_true(jint(ord, "keys") > 0);
		recs += jint(s, "records");
		tombs += jint(s, "tombstones");
		assert_int_equal(jint(s, "tombstones"), jint(t, "tombstones"));
	}
	assert_int_equal(recs, N);
	assert_int_equal(tombs, tombstones);
	for (int i = 0; i < 2; i++) {
		json_t *pj = part_of(rep, V2, i);
		assert_string_equal(jstr(pj, "verdict"), "GO");
		assert_int_equal(jint(json_object_get(pj, "source"), "records"),
				 jint(json_object_get(pj, "target"), "records"));
		v2recs += jint(json_object_get(pj, "target"), "records");
	}
	assert_int_equal(v2recs, committed);
	assert_true(json_real_value(json_object_get(json_object_get(rep, "throughput"),
						    "mb_per_sec")) > 0);
	json_decref(rep);

	/* The evidence: the gate and a fact per partition. */
	char verdict[32];
	json_t *gate = journal_fact(match_plan, "gate.validate", verdict, sizeof(verdict));
	assert_string_equal(verdict, "GO");
	assert_false(json_is_true(json_object_get(gate, "sampled")));
	json_decref(gate);
	json_t *pf = journal_fact(match_plan, "validate.partition", verdict, sizeof(verdict));
	assert_string_equal(verdict, "GO");
	json_decref(pf);

	/* The human output names the verdict and the throughput. */
	char *out, *err;
	const char *argv[] = {tk_kmigrate(), "validate", "-p", match_plan, NULL};
	assert_int_equal(tk_run(&out, &err, argv), 0);
	assert_non_null(strstr(out, "Verdict: GO"));
	assert_non_null(strstr(out, "MB/s"));
	free(out);
	free(err);
}

static void test_sampled(void **state)
{
	int rc;
	char verdict[32];
	(void)state;
	json_t *rep = validate(match_plan, &rc, "--sample", "10");
	assert_int_equal(rc, 0);
	assert_string_equal(jstr(rep, "verdict"), "GO");
	assert_true(json_is_true(json_object_get(rep, "sampled")));
	assert_string_equal(jstr(rep, "label"), "GO (sampled 10%)");
	/* About a tenth of the pairs were digested, and not none. */
	json_t *pj = part_of(rep, V1, 0);
	int64_t paired = jint(pj, "paired"), dig = jint(pj, "digested");
	assert_true(dig > 0 && dig < paired / 4);
	json_decref(rep);
	json_t *gate = journal_fact(match_plan, "gate.validate", verdict, sizeof(verdict));
	assert_true(json_is_true(json_object_get(gate, "sampled")));
	assert_string_equal(jstr(gate, "label"), "GO (sampled 10%)");
	json_decref(gate);

	char *out, *err;
	const char *argv[] = {tk_kmigrate(), "validate", "-p", match_plan, "--sample", "10", NULL};
	assert_int_equal(tk_run(&out, &err, argv), 0);
	assert_non_null(strstr(out, "Verdict: GO (sampled 10%)"));
	free(out);
	free(err);
	const char *bad[] = {tk_kmigrate(), "validate", "-p", match_plan, "--sample", "100", NULL};
	assert_int_equal(tk_run(NULL, NULL, bad), 2);
}

/* A topic in scope that the replicator never copied: NO-GO, named. */
static void test_nothing_replicated(void **state)
{
	int rc;
	char inc[300], mig[64];
	(void)state;
	tk_create_topic(&src, V3, 1, NULL);
	tk_create_topic(&tgt, V3, 1, NULL);
	rd_kafka_t *p = tk_producer(&src, NULL);
	tk_msg_t m = {.key = "k", .value = "v", .partition = 0};
	tk_produce(p, V3, &m);
	tk_flush(p);
	rd_kafka_destroy(p);
	/* Same migration as the matching replication, one more topic. */
	snprintf(mig, sizeof(mig), "it-v1-%d", (int)getpid());
	snprintf(inc, sizeof(inc), "\"^%s$\", \"^%s$\"", V1, V3);
	char *plan = tk_plan(&src, &tgt, "it-v3", mig, inc, NULL);
	json_t *rep = validate(plan, &rc, NULL, NULL);
	assert_int_equal(rc, 1);
	assert_string_equal(jstr(rep, "verdict"), "NO-GO");
	json_t *pj = part_of(rep, V3, 0);
	assert_string_equal(jstr(pj, "state"), "nothing replicated");
	assert_string_equal(jstr(pj, "verdict"), "NO-GO");
	assert_int_equal(jint(rep, "partitions_nothing_replicated"), 1);
	assert_string_equal(jstr(part_of(rep, V1, 0), "verdict"), "GO");
	json_decref(rep);
	free(plan);
}

/* ---- the target after the last copied record --------------------------------------- */

typedef struct writer_s {
	pthread_t th;
	volatile int stop;
	int64_t written;
} writer_t;

/* Produces to V1 at a few hundred records a second until stopped. */
static void *writer_main(void *arg)
{
	writer_t *w = arg;
	rd_kafka_t *p = tk_producer(&src, NULL);
	char key[32], val[64];
	while (!w->stop) {
		snprintf(key, sizeof(key), "k%lld", (long long)(w->written % 200));
		snprintf(val, sizeof(val), "live-%lld", (long long)w->written);
		tk_msg_t m = {.key = key, .value = val, .partition = (int)(w->written % 3)};
		tk_produce(p, V1, &m);
		w->written++;
		if (w->written % 20 == 0)
			tk_flush(p);
		poll(NULL, 0, 3);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	return NULL;
}

/* Records copied after validate read its snapshot of the offset map land
 * on the target after the last mapped record: they must not be called
 * extra.  A replicator and a producer run during validate; the run is
 * repeated until one of them read such records (so the case was really
 * exercised), and every run must be GO. */
static void test_copied_during_validate(void **state)
{
	writer_t w = {0};
	int rc;
	int64_t after = 0;
	char *livedir;
	char *log = tk_write_file(livedir = tk_tmpdir("it-v1-live"), "replicate.log", "");
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", match_plan, NULL};
	(void)state;

	pid_t pid = tk_spawn(argv, log);
	pthread_create(&w.th, NULL, writer_main, &w);
	/* Until a run has seen the case, for at most 90 s: the replicator
	 * needs a moment to join its group and start copying, and on a fast
	 * machine six quick runs could all fall before it does. */
	int64_t deadline = tk_mono_ms() + 90000;
	for (int k = 0; after == 0 && (k < 6 || tk_mono_ms() < deadline); k++) {
		json_t *rep = validate(match_plan, &rc, NULL, NULL);
		json_t *pj;
		size_t i;
		json_array_foreach(json_object_get(rep, "partitions"), i, pj) {
			json_t *tail = json_object_get(pj, "target_tail");
			if (!tail) {
				char *d = json_dumps(pj, JSON_COMPACT);
				fail_msg("no target_tail in the partition's report: %s", d);
			}
			after += jint(tail, "copied_after_snapshot");
			if (jint(pj, "mismatches") || jint(tail, "extra")) {
				char *d = json_dumps(pj, JSON_COMPACT);
				fail_msg("records copied during validate called mismatches: %s", d);
			}
		}
		assert_int_equal(rc, 0);
		json_decref(rep);
	}
	w.stop = 1;
	pthread_join(w.th, NULL);
	kill(pid, SIGTERM);
	assert_int_equal(tk_wait_exit(pid, 60000), 0);
	fprintf(stderr, "live: %lld records produced, %lld copied after a snapshot seen\n",
		(long long)w.written, (long long)after);
	if (after == 0)
		fail_msg("validate runs for 90 s never read a record copied after their "
			 "snapshot: the case was not exercised");
	tk_catch_up(match_plan, 120000, NULL);
	free(log);
	free(livedir);
}

/* A stray writer on the target before cutover: one record produced into a
 * replicated target partition after the last copied record (the partition
 * ends with kmigrate's commit marker, and V2's target holds markers of
 * every transaction).  It is an extra record, NO-GO, with its offset. */
static void test_stray_record_after_tail(void **state)
{
	int rc;
	(void)state;
	int64_t before = tk_total_hwm(&tgt, V2);
	json_t *rep = validate(match_plan, &rc, NULL, NULL);
	assert_int_equal(rc, 0);
	json_decref(rep);

	/* The target's high watermark of V2[1] is the stray record's offset. */
	int64_t lo, hi;
	rd_kafka_t *pt = tk_producer(&tgt, NULL);
	assert_int_equal(rd_kafka_query_watermark_offsets(pt, V2, 1, &lo, &hi, 10000), 0);
	tk_msg_t m = {.key = "stray", .value = "written on the target", .partition = 1};
	tk_produce(pt, V2, &m);
	tk_flush(pt);
	rd_kafka_destroy(pt);
	assert_int_equal(tk_total_hwm(&tgt, V2), before + 1);

	rep = validate(match_plan, &rc, NULL, NULL);
	json_t *pj = part_of(rep, V2, 1);
	char *dump = json_dumps(pj, JSON_COMPACT);
	if (rc != 1 || strcmp(jstr(rep, "verdict"), "NO-GO") || jint(pj, "mismatches") != 1 ||
	    !has_shown(pj, "extra", -1, hi))
		fail_msg("a stray record at target offset %lld: exit %d, partition %s", (long long)hi,
			 rc, dump);
	free(dump);
	assert_int_equal(jint(json_object_get(pj, "by_kind"), "extra"), 1);
	assert_int_equal(jint(json_object_get(pj, "target_tail"), "extra"), 1);
	assert_string_equal(jstr(part_of(rep, V2, 0), "verdict"), "GO");
	json_decref(rep);
}

/* ---- what the source principal cannot see -------------------------------------------- */

/* A plan on the SASL_SSL cluster as `user` (password in KM_IT_VS_PW). */
static void write_secure_plan(const char *path, const tk_cluster_t *sec, const char *mig,
			      const char *topic, const char *user)
{
	char text[2048], *dir = strdup(path);
	*strrchr(dir, '/') = '\0';
	snprintf(text, sizeof(text),
		 "migration: %s\nsource:\n  bootstrap: %s\n  security_protocol: sasl_ssl\n"
		 "  sasl_mechanism: SCRAM-SHA-512\n  username: %s\n  password_env: KM_IT_VS_PW\n"
		 "  ssl_ca: %s\ntarget:\n  bootstrap: %s\ntopics:\n  include: [\"^%s$\"]\n",
		 mig, sec->bootstrap, user, getenv("KM_TEST_SECURE_CA"), tgt.bootstrap, topic);
	free(tk_write_file(dir, "migration.yaml", text));
	free(dir);
}

static bool no_go_has(json_t *rep, const char *a, const char *b)
{
	json_t *m;
	size_t i;
	json_array_foreach(json_object_get(rep, "no_go"), i, m)
		if (strstr(json_string_value(m), a) && strstr(json_string_value(m), b))
			return true;
	return false;
}

static void test_source_topic_not_visible(void **state)
{
	tk_cluster_t sec;
	char topic[64], mig[64], want[300];
	char *vsdir;
	int rc;
	(void)state;

	tk_cluster_from_env(&sec, "KM_TEST_SECURE");
	snprintf(topic, sizeof(topic), "vs-%d.hidden", (int)getpid());
	snprintf(mig, sizeof(mig), "it-vs-%d", (int)getpid());
	tk_create_topic(&sec, topic, 1, NULL);
	rd_kafka_t *p = tk_producer(&sec, NULL);
	tk_msg_t m = {.key = "k", .value = "v", .partition = 0};
	tk_produce(p, topic, &m);
	tk_flush(p);
	rd_kafka_destroy(p);

	/* The design is saved by an administrator ... */
	char *plan = tk_write_file(vsdir = tk_tmpdir("it-vs"), "migration.yaml", "");
	setenv("KM_IT_VS_PW", getenv("KM_TEST_SECURE_PASSWORD"), 1);
	write_secure_plan(plan, &sec, mig, topic, getenv("KM_TEST_SECURE_USER"));
	/* Exit 1: the SCRAM users and quotas are manual items. */
	tk_km(plan, "plan", NULL, NULL, 1, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);

	/* ... and validate runs as alice, who has no ACL: Kafka leaves the
	 * topic out of her metadata without a word. */
	setenv("KM_IT_VS_PW", "alice-secret", 1);
	write_secure_plan(plan, &sec, mig, topic, "alice");
	json_t *rep = validate(plan, &rc, NULL, NULL);
	char *dump = json_dumps(json_object_get(rep, "no_go"), JSON_COMPACT);
	snprintf(want, sizeof(want), "grant DESCRIBE and READ on topic '%s' to User:alice", topic);
	if (rc != 1 || !no_go_has(rep, want, "not visible"))
		fail_msg("a design topic alice cannot see: exit %d, no_go %s", rc, dump);
	free(dump);
	json_t *hidden = json_array_get(json_object_get(rep, "topics_not_visible"), 0);
	assert_string_equal(jstr(hidden, "topic"), topic);
	assert_string_equal(jstr(hidden, "error"), "TOPIC_AUTHORIZATION_FAILED");
	json_decref(rep);

	/* Each missing right in turn: the partition is seen, and not
	 * validated, with the right named. */
	static const struct {
		rd_kafka_AclOperation_t grant;
		const char *want;
	} steps[] = {{RD_KAFKA_ACL_OPERATION_DESCRIBE, "DESCRIBE_CONFIGS"},
		     {RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS, "READ"}};
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		tk_acl(&sec, RD_KAFKA_RESOURCE_TOPIC, topic, RD_KAFKA_RESOURCE_PATTERN_LITERAL,
		       "User:alice", "*", steps[k].grant, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
		rep = validate(plan, &rc, NULL, NULL);
		json_t *pj = part_of(rep, topic, 0);
		snprintf(want, sizeof(want), "grant %s on topic '%s' to User:alice", steps[k].want,
			 topic);
		dump = json_dumps(pj, JSON_COMPACT);
		if (rc != 1 || strcmp(jstr(pj, "state"), "not validated") ||
		    !strstr(jstr(pj, "reason"), want))
			fail_msg("alice without %s: exit %d, %s", steps[k].want, rc, dump);
		free(dump);
		assert_int_equal(json_array_size(json_object_get(rep, "topics_not_visible")), 0);
		json_decref(rep);
	}
	free(plan);
	free(vsdir);
}

/* ---- forged broken copies ---------------------------------------------------------- */

/* The replication state of a forged migration: tasks and offsetmap with one
 * partition, so every source partition is task 0. */
static void forge_state(const char *migration)
{
	char t[300];
	snprintf(t, sizeof(t), "__kmigrate.%s.tasks", migration);
	tk_create_topic(&tgt, t, 1, NULL);
	snprintf(t, sizeof(t), "__kmigrate.%s.offsetmap", migration);
	tk_create_topic(&tgt, t, 1, NULL);
}

static void forge_run(rd_kafka_t *p, const char *migration, const char *topic, int partition,
		      int64_t s, int64_t t, int64_t n)
{
	char om[300], key[300], val[200];
	snprintf(om, sizeof(om), "__kmigrate.%s.offsetmap", migration);
	snprintf(key, sizeof(key), "%s:%d", topic, partition);
	snprintf(val, sizeof(val), "{\"s\":%lld,\"t\":%lld,\"n\":%lld}", (long long)s, (long long)t,
		 (long long)n);
	tk_msg_t m = {.key = key, .value = val, .partition = 0};
	tk_produce(p, om, &m);
}

typedef struct rec_s {
	const char *key, *value, *hval;
	int64_t ts;
} rec_t;

static void put(rd_kafka_t *p, const char *topic, const rec_t *r)
{
	const char *hdrs[] = {"h", r->hval, "fixed", "1", NULL};
	tk_msg_t m = {.key = r->key, .value = r->value, .partition = 0, .timestamp = r->ts,
		      .headers = hdrs};
	tk_produce(p, topic, &m);
	tk_flush(p); /* one at a time: the offsets are the test's */
}

static bool has_shown(json_t *pj, const char *kind, int64_t so, int64_t to)
{
	json_t *m;
	size_t i;
	json_array_foreach(json_object_get(pj, "shown"), i, m) {
		json_t *s = json_object_get(m, "source_offset"), *t = json_object_get(m, "target_offset");
		if (!strcmp(jstr(m, "kind"), kind) &&
		    (so < 0 ? json_is_null(s) : json_integer_value(s) == so) &&
		    (to < 0 ? json_is_null(t) : json_integer_value(t) == to))
			return true;
	}
	return false;
}

static void test_detects_forged_differences(void **state)
{
	char mig[64], inc[300], extra[300], k[16][16], v[16][16], h[16][16];
	int64_t ts = (int64_t)time(NULL) * 1000 - 600000;
	rec_t s[16];
	int rc;
	(void)state;

	snprintf(mig, sizeof(mig), "it-vf-%d", (int)getpid());
	forge_state(mig);
	tk_create_topic(&src, VF, 1, NULL);
	tk_create_topic(&tgt, VF, 1, NULL);
	/* Source offsets 0..15.  Records 8 and 9 share a key, so that their
	 * swap breaks the key's order. */
	for (int i = 0; i < 16; i++) {
		snprintf(k[i], sizeof(k[i]), "k%d", i == 9 ? 8 : i);
		snprintf(v[i], sizeof(v[i]), "v%d", i);
		snprintf(h[i], sizeof(h[i]), "x%d", i);
		s[i] = (rec_t){k[i], v[i], h[i], ts + i};
	}
	rd_kafka_t *ps = tk_producer(&src, NULL), *pt = tk_producer(&tgt, NULL);
	for (int i = 0; i < 16; i++)
		put(ps, VF, &s[i]);
	/* The broken copy, target offsets 0..15:
	 *   t0..t2 = s0..s2   t3 = s3, value changed   (s4 not copied)
	 *   t4 = s5           t5 = a record copied from nowhere
	 *   t6 = s6, header changed   t7 = s7   t8 = s9, t9 = s8 (swapped)
	 *   t10 = s10, timestamp changed   t11..t15 = s11..s15 */
	for (int i = 0; i < 16; i++) {
		rec_t r;
		if (i == 4)
			r = s[5];
		else if (i == 5)
			r = (rec_t){"intruder", "extra", "x", ts};
		else if (i == 8)
			r = s[9];
		else if (i == 9)
			r = s[8];
		else
			r = s[i];
		if (i == 3)
			r.value = "CHANGED";
		if (i == 6)
			r.hval = "CHANGED";
		if (i == 10)
			r.ts += 1000;
		put(pt, VF, &r);
	}
	/* The runs a replicator would have written for that copy. */
	forge_run(pt, mig, VF, 0, 0, 0, 4);
	forge_run(pt, mig, VF, 0, 5, 4, 1);
	forge_run(pt, mig, VF, 0, 6, 6, 10);
	tk_flush(pt);
	rd_kafka_destroy(ps);
	rd_kafka_destroy(pt);

	snprintf(inc, sizeof(inc), "\"^%s$\"", VF);
	snprintf(extra, sizeof(extra), "  rules:\n    - match: \"forged\"\n      ordering: key\n");
	char *plan = tk_plan(&src, &tgt, "it-vf", mig, inc, extra);
	json_t *rep = validate(plan, &rc, "--max-mismatches-shown", "20");
	assert_int_equal(rc, 1);
	assert_string_equal(jstr(rep, "verdict"), "NO-GO");
	json_t *pj = part_of(rep, VF, 0);
	char *dump = json_dumps(json_object_get(pj, "shown"), JSON_COMPACT);
	fprintf(stderr, "forged mismatches: %s\n", dump);
	assert_true(has_shown(pj, "value", 3, 3));
	assert_true(has_shown(pj, "missing", 4, -1));
	assert_true(has_shown(pj, "extra", -1, 5));
	assert_true(has_shown(pj, "header", 6, 6));
	assert_true(has_shown(pj, "reordered", 8, 8));
	assert_true(has_shown(pj, "reordered", 9, 9));
	assert_true(has_shown(pj, "timestamp", 10, 10));
	if (jint(pj, "mismatches") != 7)
		fail_msg("want exactly 7 mismatches, got %lld: %s", (long long)jint(pj, "mismatches"),
			 dump);
	free(dump);
	json_t *ord = json_object_get(pj, "ordering");
	assert_int_equal(jint(ord, "keys_reordered"), 1);
	assert_int_equal(jint(json_array_get(json_object_get(ord, "examples"), 0),
			      "first_source_offset"),
			 8);
	assert_int_equal(jint(json_object_get(pj, "source"), "records"), 16);
	assert_int_equal(jint(json_object_get(pj, "target"), "records"), 16);
	json_decref(rep);

	/* The human output lists them with both offsets. */
	char *out, *err;
	const char *argv[] = {tk_kmigrate(), "validate", "-p", plan, NULL};
	assert_int_equal(tk_run(&out, &err, argv), 1);
	assert_non_null(strstr(out, "reordered  source 8        target 8"));
	assert_non_null(strstr(out, "Verdict: NO-GO"));
	free(out);
	free(err);
	free(plan);
}

/* Target: a committed transaction (t0, t1, marker t2), an aborted one (t3,
 * t4, marker t5), a committed one (t6, t7, marker t8), an aborted one after
 * the last copied record (t9, t10, marker t11).  Runs (s0 -> t0, 2) and
 * (s2 -> t6, 2).  The copy matches; four aborted records are counted. */
static void test_aborted_on_target(void **state)
{
	char mig[64], inc[300], topic[64], txn[64];
	int rc;
	(void)state;

	snprintf(mig, sizeof(mig), "it-va-%d", (int)getpid());
	snprintf(topic, sizeof(topic), "va-%d.aborted", (int)getpid());
	snprintf(txn, sizeof(txn), "it-va-%d", (int)getpid());
	forge_state(mig);
	tk_create_topic(&src, topic, 1, NULL);
	tk_create_topic(&tgt, topic, 1, NULL);
	rd_kafka_t *ps = tk_producer(&src, NULL), *pt = tk_producer(&tgt, txn);
	/* Recent timestamps: a record stamped in 1970 rolls its segment at
	 * the next append and is then deleted by time retention whenever the
	 * broker's retention check runs (every 5 minutes), which made this
	 * case fail at random with every mapped record "expired". */
	int64_t ts = (int64_t)time(NULL) * 1000 - 60000;
	rec_t r[4] = {{"a", "1", "x", ts}, {"b", "2", "x", ts + 1}, {"c", "3", "x", ts + 2},
		      {"d", "4", "x", ts + 3}};
	for (int i = 0; i < 4; i++)
		put(ps, topic, &r[i]);
	for (int t = 0; t < 4; t++) {
		rd_kafka_error_t *e = rd_kafka_begin_transaction(pt);
		if (e)
			fail_msg("begin: %s", rd_kafka_error_string(e));
		rec_t junk[2] = {{"junk", "aborted", "x", ts + 5}, {"junk", "aborted", "x", ts + 6}};
		for (int i = 0; i < 2; i++)
			put(pt, topic, t % 2 ? &junk[i] : &r[t + i]);
		e = t % 2 ? rd_kafka_abort_transaction(pt, 30000) : rd_kafka_commit_transaction(pt, 30000);
		if (e)
			fail_msg("end: %s", rd_kafka_error_string(e));
	}
	rd_kafka_destroy(pt);
	rd_kafka_destroy(ps);
	pt = tk_producer(&tgt, NULL);
	forge_run(pt, mig, topic, 0, 0, 0, 2);
	forge_run(pt, mig, topic, 0, 2, 6, 2);
	tk_flush(pt);
	rd_kafka_destroy(pt);

	snprintf(inc, sizeof(inc), "\"^%s$\"", topic);
	char *plan = tk_plan(&src, &tgt, "it-va", mig, inc, NULL);
	json_t *rep = validate(plan, &rc, NULL, NULL);
	json_t *pj = part_of(rep, topic, 0);
	char *dump = json_dumps(pj, JSON_COMPACT);
	if (rc != 0 || !json_is_integer(json_object_get(pj, "aborted_on_target")) ||
	    jint(pj, "aborted_on_target") != 4 || jint(pj, "aborted_ranges_read") != 2)
		fail_msg("4 aborted records on the target: exit %d, %s", rc, dump);
	free(dump);
	assert_int_equal(jint(pj, "mismatches"), 0);
	assert_int_equal(jint(json_object_get(pj, "target_tail"), "records"), 0);
	json_decref(rep);

	/* The replication of V1 had no aborted transaction: nothing re-read. */
	rep = validate(match_plan, &rc, NULL, NULL);
	pj = part_of(rep, V1, 0);
	assert_int_equal(jint(pj, "aborted_on_target"), 0);
	assert_int_equal(jint(pj, "aborted_ranges_read"), 0);
	json_decref(rep);
	free(plan);
}

/* ---- compacted topics --------------------------------------------------------------- */

/* Whether the source still holds a record of key below offset `below`. */
static bool source_has_key_below(const char *topic, const char *key, int64_t below)
{
	char errbuf[256];
	rd_kafka_conf_t *cf = rd_kafka_conf_new();
	rd_kafka_conf_set(cf, "bootstrap.servers", src.bootstrap, errbuf, sizeof(errbuf));
	rd_kafka_conf_set(cf, "group.id", "it-validate-probe", errbuf, sizeof(errbuf));
	rd_kafka_conf_set(cf, "enable.partition.eof", "true", errbuf, sizeof(errbuf));
	rd_kafka_conf_set(cf, "isolation.level", "read_committed", errbuf, sizeof(errbuf));
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, cf, errbuf, sizeof(errbuf));
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
	bool found = false;
	int64_t deadline = tk_mono_ms() + 30000;
	rd_kafka_topic_partition_list_add(tp, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_assign(rk, tp);
	rd_kafka_topic_partition_list_destroy(tp);
	while (tk_mono_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		if (!m)
			continue;
		bool end = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ||
			   (!m->err && m->offset >= below);
		if (!m->err && m->offset < below && m->key_len == strlen(key) &&
		    !memcmp(m->key, key, m->key_len))
			found = true;
		rd_kafka_message_destroy(m);
		if (end || found)
			break;
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return found;
}

static void test_compacted(void **state)
{
	const char *cfg[] = {"cleanup.policy", "compact", "segment.ms", "100",
			     "min.cleanable.dirty.ratio", "0.01", "min.compaction.lag.ms", "0",
			     "delete.retention.ms", "100", NULL};
	char key[32], val[64], mig[64], inc[300];
	int rc;
	(void)state;

	tk_create_topic(&src, VC, 1, cfg);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "key-%d", i % 20);
		snprintf(val, sizeof(val), "round-1-%d", i);
		tk_msg_t m = {.key = key, .value = i % 40 == 39 ? NULL : val, .partition = 0};
		tk_produce(p, VC, &m);
	}
	tk_flush(p);
	snprintf(mig, sizeof(mig), "it-vc-%d", (int)getpid());
	snprintf(inc, sizeof(inc), "\"^%s$\"", VC);
	char *plan = tk_plan(&src, &tgt, "it-vc", mig, inc, NULL);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	tk_catch_up(plan, 120000, NULL);
	int64_t snapshot_end = tk_total_hwm(&src, VC);

	/* After the copy the source rewrites keys 0..9: the cleaner then
	 * removes their in-range records, which validate must not call
	 * missing.  Ticks roll segments so the cleaner has work. */
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		tk_msg_t m = {.key = key, .value = "round-2", .partition = 0};
		tk_produce(p, VC, &m);
	}
	tk_flush(p);
	int64_t deadline = tk_mono_ms() + 60000;
	while (source_has_key_below(VC, "key-0", snapshot_end)) {
		if (tk_mono_ms() > deadline)
			fail_msg("the source did not compact %s within 60 s", VC);
		tk_msg_t m = {.key = "tick", .value = "t", .partition = 0};
		tk_produce(p, VC, &m);
		tk_flush(p);
		poll(NULL, 0, 500);
	}
	rd_kafka_destroy(p);

	json_t *rep = validate(plan, &rc, NULL, NULL);
	json_t *pj = part_of(rep, VC, 0);
	if (rc != 0) {
		char *s = json_dumps(pj, JSON_COMPACT);
		fail_msg("compacted topic after further compaction: exit %d: %s", rc, s);
	}
	assert_string_equal(jstr(pj, "mode"), "latest-per-key");
	assert_int_equal(jint(pj, "mismatches"), 0);
	assert_true(jint(pj, "superseded_after_snapshot") > 0);
	json_decref(rep);

	/* Copy the rewrites too: still a match, now with nothing superseded. */
	tk_catch_up(plan, 120000, NULL);
	rep = validate(plan, &rc, NULL, NULL);
	assert_int_equal(rc, 0);
	assert_int_equal(jint(part_of(rep, VC, 0), "mismatches"), 0);
	json_decref(rep);
	free(plan);

	/* A latest-value difference in a forged compacted pair:
	 *   source  0 k1=a  1 k2=b  2 k1=c  3 k2=(tombstone)  4 k3=d
	 *   target  0 k1=a  1 k2=b  2 k1=X  3 k2=(tombstone)  4 k3=d */
	const char *ccfg[] = {"cleanup.policy", "compact", NULL};
	snprintf(mig, sizeof(mig), "it-vfc-%d", (int)getpid());
	forge_state(mig);
	tk_create_topic(&src, VFC, 1, ccfg);
	tk_create_topic(&tgt, VFC, 1, ccfg);
	rd_kafka_t *ps = tk_producer(&src, NULL), *pt = tk_producer(&tgt, NULL);
	const char *keys[] = {"k1", "k2", "k1", "k2", "k3"};
	const char *svals[] = {"a", "b", "c", NULL, "d"}, *tvals[] = {"a", "b", "X", NULL, "d"};
	int64_t ts = (int64_t)time(NULL) * 1000 - 60000;
	for (int i = 0; i < 5; i++) {
		tk_msg_t a = {.key = keys[i], .value = svals[i], .partition = 0, .timestamp = ts + i};
		tk_msg_t b = {.key = keys[i], .value = tvals[i], .partition = 0, .timestamp = ts + i};
		tk_produce(ps, VFC, &a);
		tk_flush(ps);
		tk_produce(pt, VFC, &b);
		tk_flush(pt);
	}
	forge_run(pt, mig, VFC, 0, 0, 0, 5);
	tk_flush(pt);
	rd_kafka_destroy(ps);
	rd_kafka_destroy(pt);
	snprintf(inc, sizeof(inc), "\"^%s$\"", VFC);
	plan = tk_plan(&src, &tgt, "it-vfc", mig, inc, NULL);
	rep = validate(plan, &rc, NULL, NULL);
	assert_int_equal(rc, 1);
	pj = part_of(rep, VFC, 0);
	assert_string_equal(jstr(pj, "mode"), "latest-per-key");
	assert_int_equal(jint(pj, "mismatches"), 1);
	assert_true(has_shown(pj, "value", 2, 2));
	json_decref(rep);
	free(plan);
	fprintf(stderr, "test_validate: %lld ms so far\n", (long long)(tk_mono_ms() - t_start));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_setup),
		cmocka_unit_test(test_detects_forged_differences),
		cmocka_unit_test(test_match_after_replication),
		cmocka_unit_test(test_sampled),
		cmocka_unit_test(test_nothing_replicated),
		cmocka_unit_test(test_copied_during_validate),
		cmocka_unit_test(test_stray_record_after_tail),
		cmocka_unit_test(test_source_topic_not_visible),
		cmocka_unit_test(test_aborted_on_target),
		cmocka_unit_test(test_compacted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
