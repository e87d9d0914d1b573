/*
 * test_rollback_after.c -- `kmigrate rollback` of a wave whose authority
 * moved to the target (issue 11), on real clusters.
 *
 * Source: the `source` cluster (Kafka 3.9, the version the issue names;
 * its authorizer lets every plaintext client, ANONYMOUS, be a super user,
 * so the fence is the config fence); target: the 4.3 target.  Topic A (2 partitions, PRE records
 * each) in wave w1 with group G.  Every command a migration runs before
 * cutover runs in setup.  One case, in order:
 *   - a writer writes A on the source while the replicator runs; the wave
 *     is cut over; the writer is re-pointed at the target and goes on;
 *   - written on the target besides: a committed and an aborted
 *     transaction on every partition;
 *   - the group consumed part of the post-cutover records of partition 0
 *     on the target (committed there past the switch); partition 1 stays
 *     where the cutover committed it (before the switch point);
 *   - `rollback --wave w1`, killed after each step from assess to authority-source,
 *     re-run to the end while the writer keeps trying to write the target;
 *   - then: an independent reader finds each source partition equal to the
 *     target's committed records (pre-cutover records, then the target's
 *     post-cutover ones, each once, in order, none aborted), and every
 *     record the writer was told was acknowledged on the source exactly
 *     once; the group resumes on the source at exactly the next record on
 *     both partitions; a stale producer on the target fails fast; status
 *     says authority source; one fact per step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"
#include "tk.h"
#include "util.h"

#define WAIT_MS 180000
#define PARTS 2
#define PRE 10

static tk_cluster_t src, tgt;
static char A[64], G[64], M[64];
static char *plan, *dir, *journal;

static char *write_plan(void)
{
	char *text = km_asprintf(
		"migration: %s\n"
		"journal: %s\n"
		"source:\n  bootstrap: %s\n  owner: platform\n"
		"target:\n  bootstrap: %s\n  owner: platform\n"
		"topics:\n  include: [\"^%s$\"]\n"
		"  rules:\n    - {match: \".*\", owner: qa}\n"
		"consumer_groups:\n  - {id: %s, restart: translated, owner: team-a, chosen_by: qa}\n"
		"consumers:\n  - {name: reader-a, group: %s, isolation_level: read_committed, "
		"owner: team-a, validation: \"reads on the target\", client: librdkafka, "
		"client_version: 2.8.0}\n"
		"gates:\n  max_lag_records: 1000000\n"
		"cutover:\n  fence: config\n  fence_owner: platform\n  quiet_period: 1s\n"
		"  waves:\n"
		"    - {name: w1, topics: [%s], groups: [%s], consumers: [reader-a], owner: team-a}\n",
		M, journal, src.bootstrap, tgt.bootstrap, A, G, G, A, G);
	char *p = tk_write_file(dir, "migration.yaml", text);
	free(text);
	return p;
}
/* How many facts of kind with subject starting with prefix. */
static int facts(const char *kind, const char *prefix)
{
	return tk_journal_count(journal, kind, prefix);
}

/* n records to every partition of A on c in one transaction, committed
 * or aborted. */
static void write_txn(const tk_cluster_t *c, const char *tag, int n, bool commit)
{
	rd_kafka_t *p = tk_producer(c, "rb-after-txn");
	rd_kafka_error_t *e;
	char v[64];

	if ((e = rd_kafka_begin_transaction(p)))
		fail_msg("begin_transaction: %s", rd_kafka_error_string(e));
	for (int part = 0; part < PARTS; part++)
		for (int i = 0; i < n; i++) {
			snprintf(v, sizeof(v), "%s-%d-%d", tag, part, i);
			tk_msg_t m = {.key = v, .value = v, .partition = part};
			tk_produce(p, A, &m);
		}
	tk_flush(p);
	e = commit ? rd_kafka_commit_transaction(p, 60000) : rd_kafka_abort_transaction(p, 60000);
	if (e)
		fail_msg("end transaction: %s", rd_kafka_error_string(e));
	rd_kafka_destroy(p);
}
/* Runs `kmigrate rollback --wave w1 --json` (crash: the step after which
 * it dies, NULL: none); @returns its exit status, *evsp its events. */
static int rollback(const char *crash, json_t **evsp)
{
	const char *argv[] = {tk_kmigrate(), "rollback", "-p", plan, "--wave", "w1", "--json",
			      NULL};
	return tk_km_events(evsp, "KM_ROLLBACK_CRASH_AFTER", crash, argv);
}

static const char *state_of(const json_t *evs, const char *step)
{
	return tk_event_state(evs, step);
}

/* The index of the first record at or after offset off in d (d.n when
 * none). */
static size_t index_at(const tk_digests_t *d, int64_t off)
{
	size_t i;
	for (i = 0; i < d->n && d->off[i] < off; i++)
		;
	return i;
}

static int setup(void **state)
{
	int id = (int)getpid();
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_SOURCE");
	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	snprintf(A, sizeof(A), "rba-%d.a", id);
	snprintf(G, sizeof(G), "g-rba-%d", id);
	snprintf(M, sizeof(M), "it-rba-%d", id);
	tk_create_topic(&src, A, PARTS, NULL);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < PRE * PARTS; i++) {
		tk_msg_t m = {.key = "k", .value = "pre", .partition = i % PARTS};
		tk_produce(p, A, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	for (int part = 0; part < PARTS; part++)
		tk_commit(&src, G, A, part, 4);
	dir = tk_tmpdir("rollback-after");
	journal = km_asprintf("%s/kmigrate.db", dir);
	plan = write_plan();
	tk_ready_for_cutover(plan);
	return 0;
}

static void test_rollback_after_authority(void **state)
{
	json_t *evs;
	char *out;
	(void)state;

	/* The cutover while the writer writes and the replicator runs. */
	char *replog = km_asprintf("%s/replicate.log", dir);
	const char *rargv[] = {tk_kmigrate(), "replicate", "-p", plan, NULL};
	pid_t repl = tk_spawn(rargv, replog);
	tk_writer_t *w = tk_writer_start(&src, A, NULL);
	assert_true(tk_writer_wait(w, 20, 0, WAIT_MS));
	assert_int_equal(tk_kmv(NULL, NULL, "cutover", "-p", plan, "--wave", "w1", NULL), 0);
	/* Every topic cut over: the replicator has nothing left and ends. */
	assert_int_equal(tk_wait_exit(repl, WAIT_MS), 0);
	tk_writer_repoint(w, &tgt);
	tk_writer_stats_t st;
	tk_writer_stats(w, &st);
	assert_true(tk_writer_wait(w, st.acked + 20, 0, WAIT_MS));
	write_txn(&tgt, "txn", 3, true);
	write_txn(&tgt, "aborted", 2, false);
	tk_writer_stats(w, &st);
	assert_true(tk_writer_wait(w, st.acked + 5, 0, WAIT_MS));

	/* The group on the target: partition 0 read 3 records past the
	 * switch; partition 1 where the cutover put it (before the switch). */
	json_t *sw = NULL;
	{
		km_journal_t *jr = NULL;
		json_t *fs = NULL, *f;
		char e[512];
		size_t i;
		if (km_journal_open(journal, 0, &jr, e, sizeof(e)) ||
		    km_journal_facts(jr, 0, "cutover.step", &fs, e, sizeof(e)))
			fail_msg("journal: %s", e);
		json_array_foreach(fs, i, f)
			if (!strcmp(json_string_value(json_object_get(f, "subject")),
				    "wave:w1 step:switch"))
				sw = json_incref(json_object_get(
					json_object_get(f, "body"), "target_hwms"));
		json_decref(fs);
		km_journal_close(jr);
	}
	assert_int_equal(json_array_size(sw), PARTS);
	int64_t sw0 = json_integer_value(json_object_get(json_array_get(sw, 0), "hwm"));
	/* (Not read here: a reader never reaches the end of a partition the
	 * writer keeps writing.) */
	assert_true(tk_total_hwm(&tgt, A) > json_integer_value(json_object_get(
						    json_array_get(sw, 0), "hwm")) + 3);
	tk_commit(&tgt, G, A, 0, sw0 + 3);
	json_decref(sw);
	int64_t c1 = tk_committed(&tgt, G, A, 1);
	assert_true(c1 >= 0);

	/* The rollback, killed after each step in turn (kill -9's moment: the
	 * step's fact committed), while the writer keeps trying to write the
	 * target; each re-run resumes at the next step. */
	assert_int_equal(rollback("assess", &evs), 137);
	assert_string_equal(state_of(evs, "assess"), "done");
	assert_null(state_of(evs, "fence-target"));
	json_decref(evs);
	assert_int_equal(facts("rollback.fence", "wave:w1"), 0);
	assert_int_equal(rollback("fence-target", &evs), 137);
	assert_string_equal(state_of(evs, "assess"), "already-done");
	assert_string_equal(state_of(evs, "fence-target"), "done");
	json_decref(evs);
	assert_int_equal(facts("rollback.fence", "wave:w1"), 1);
	tk_writer_assert_fenced(w, &tgt, A, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, WAIT_MS);

	const char *crashes[] = {"drain-target", "unfence", "reverse", "offsets-back",
				 "authority-source"};
	for (size_t k = 0; k < sizeof(crashes) / sizeof(crashes[0]); k++) {
		assert_int_equal(rollback(crashes[k], &evs), 137);
		assert_string_equal(state_of(evs, k ? crashes[k - 1] : "fence-target"),
				    "already-done");
		assert_string_equal(state_of(evs, crashes[k]), "done");
		json_decref(evs);
	}

	assert_int_equal(rollback(NULL, &evs), 0);
	assert_string_equal(state_of(evs, "authority-source"), "already-done");
	assert_string_equal(state_of(evs, "reset"), "done");
	json_decref(evs);
	const char *steps[] = {"assess",  "fence-target", "drain-target",     "unfence",
			       "reverse", "offsets-back", "authority-source", "reset"};
	for (size_t i = 0; i < 8; i++) {
		char pfx[100];
		snprintf(pfx, sizeof(pfx), "wave:w1 step:%s", steps[i]);
		assert_int_equal(facts("rollback.step", pfx), 1);
	}
	assert_int_equal(facts("rollback.fence", "wave:w1"), 1);
	assert_int_equal(facts("cutover.reset", "wave:w1"), 1);

	/* The independent reader: source = target's committed records, in
	 * order, each once (pre-cutover, then post-cutover; none aborted). */
	for (int p = 0; p < PARTS; p++) {
		tk_digests_t ds, dt;
		tk_digest_partition(&src, A, p, true, &ds);
		tk_digest_partition(&tgt, A, p, true, &dt);
		fprintf(stderr, "partition %d: source %zu records, target %zu\n", p, ds.n, dt.n);
		assert_int_equal(ds.n, dt.n);
		for (size_t i = 0; i < ds.n; i++)
			if (ds.d[i] != dt.d[i])
				fail_msg("%s[%d]: record %zu differs (source offset %lld, target %lld)",
					 A, p, i, (long long)ds.off[i], (long long)dt.off[i]);
		/* The group resumes on the source at exactly the next record. */
		int64_t ct = tk_committed(&tgt, G, A, p), cs = tk_committed(&src, G, A, p);
		fprintf(stderr, "group %s[%d]: target %lld -> source %lld\n", A, p, (long long)ct,
			(long long)cs);
		assert_true(cs >= 0);
		assert_int_equal(index_at(&ds, cs), index_at(&dt, ct));
		tk_digests_free(&ds);
		tk_digests_free(&dt);
	}
	tk_writer_assert_acked_once(w, &src, A);
	tk_writer_stop(w);

	/* A stale producer on the target fails fast. */
	tk_writer_t *stale = tk_writer_start(&tgt, A, NULL);
	tk_writer_assert_fenced(stale, &tgt, A, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, WAIT_MS);
	tk_writer_stop(stale);

	/* status: authority source. */
	assert_int_equal(tk_kmv(&out, NULL, "status", "-p", plan, "--json", NULL), 0);
	json_t *s = tk_json(out), *t;
	size_t i;
	bool seen = false;
	json_array_foreach(json_object_get(json_object_get(s, "authority"), "topics"), i, t)
		if (!strcmp(json_string_value(json_object_get(t, "topic")), A)) {
			assert_string_equal(json_string_value(json_object_get(t, "authority")),
					    "source");
			seen = true;
		}
	assert_true(seen);
	json_decref(s);
	free(out);

	/* A second rollback finds nothing to do. */
	assert_int_equal(rollback(NULL, &evs), 0);
	json_decref(evs);
	free(replog);
}

/* The round trip: the source takes writes again; with the target's fence
 * lifted (its journaled inverse: no override), the forward replicator
 * copies only what is new -- the records the rollback appended to the
 * source are already on the target per the forward map -- so the target
 * equals the source record for record; `offsets` translates the group
 * exactly; and the wave cuts over again. */
static void test_round_trip(void **state)
{
	(void)state;
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < 6; i++) {
		tk_msg_t m = {.key = "k", .value = "again", .partition = i % PARTS};
		tk_produce(p, A, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	/* The forward copy refuses the fenced target up front, naming the
	 * topic, the wave and the way back. */
	char *err = NULL;
	assert_int_not_equal(
		tk_kmv(NULL, &err, "replicate", "-p", plan, "--until-caught-up", NULL), 0);
	assert_non_null(strstr(err, A));
	assert_non_null(strstr(err, "wave 'w1'"));
	assert_non_null(strstr(err, "--release-target"));
	free(err);
	/* --release-target lifts the rollback's config fence from its
	 * journaled inverse (no override before: none after); twice is
	 * nothing the second time. */
	char *out = NULL;
	assert_int_equal(tk_kmv(&out, NULL, "rollback", "-p", plan, "--wave", "w1",
				"--release-target", "--json", NULL),
			 0);
	assert_non_null(strstr(out, "\"result\":\"released\""));
	free(out);
	assert_int_equal(facts("rollback.fence-lifted", "wave:w1"), 1);
	json_t *cfg = tk_topic_configs(&tgt, A);
	assert_string_not_equal(json_string_value(json_object_get(cfg, "max.message.bytes")), "0");
	json_decref(cfg);
	assert_int_equal(tk_kmv(&out, NULL, "rollback", "-p", plan, "--wave", "w1",
				"--release-target", "--json", NULL),
			 0);
	assert_non_null(strstr(out, "\"result\":\"nothing\""));
	free(out);
	tk_catch_up(plan, WAIT_MS, NULL);
	for (int part = 0; part < PARTS; part++) {
		tk_digests_t ds, dt;
		tk_digest_partition(&src, A, part, true, &ds);
		tk_digest_partition(&tgt, A, part, true, &dt);
		fprintf(stderr, "round trip, partition %d: source %zu records, target %zu\n", part,
			ds.n, dt.n);
		assert_int_equal(ds.n, dt.n);
		for (size_t i = 0; i < ds.n; i++)
			if (ds.d[i] != dt.d[i])
				fail_msg("%s[%d]: record %zu differs after the round trip", A, part, i);
		tk_digests_free(&ds);
		tk_digests_free(&dt);
	}
	tk_km(plan, "offsets", NULL, NULL, 0, NULL);
	assert_int_equal(tk_kmv(NULL, NULL, "cutover", "-p", plan, "--wave", "w1", NULL), 0);
	/* The cutover's authority step closed what the rollback left on the
	 * target: nothing open any more. */
	assert_int_equal(facts("rollback.fence-lifted", "wave:w1"),
			 1 + facts("rollback.guard", "wave:w1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rollback_after_authority),
		cmocka_unit_test(test_round_trip),
	};
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, setup, NULL);
}
