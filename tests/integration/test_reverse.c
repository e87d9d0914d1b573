/*
 * test_reverse.c -- the reverse replication engine (`kmigrate replicate
 * --reverse --wave W`, issue 11): what the target got after a wave's switch,
 * copied back onto the source, exactly once, in order, with its own exact
 * offset map, on real clusters.
 *
 * Source: the `plain` cluster (4.3, no authorizer: the config fence);
 * target: the 4.3 target.  One estate for the file: topic A (3 partitions,
 * PRE records each, plain writes) in wave w1 with group G.  Every command
 * a migration runs before cutover runs in setup.  Cases, in order (they
 * share the estate):
 *   - before the switch: --reverse is refused (no start points), one line;
 *   - the wave cut over (source fenced by config): --reverse is refused
 *     while the config fence is there (it refuses kmigrate too), nothing
 *     journaled; the forward replicator excludes A (nothing left to copy);
 *   - records written on the target (plain, a committed and an aborted
 *     transaction, every partition), the fence lifted through the admin API
 *     as rollback will: the reverse copy makes each source partition equal,
 *     record for record, to the target's committed records (the pre-cutover
 *     ones, then the new ones, once, in order, none aborted), read back by
 *     an independent reader; its map (`offsets map --reverse`) sends every
 *     copied target offset to the source offset holding the same record;
 *   - kill -9 mid-copy of a large batch (after the first committed
 *     progress), run again: equal again, nothing duplicated or lost;
 *   - a run when caught up copies nothing; the forward replicator still
 *     copies nothing of A (its authority is the target);
 *   - records deleted on the target before they were copied back: a loud
 *     loss, journaled.
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
#define PARTS 3
#define PRE 20       /* records per partition before the cutover */
#define BIG 3000     /* records per partition of the kill -9 batch (3 transactions) */

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

static int facts(const char *kind)
{
	km_journal_t *jr = NULL;
	json_t *fs = NULL;
	char errstr[512];
	int n;

	if (km_journal_open(journal, 0, &jr, errstr, sizeof(errstr)) ||
	    km_journal_facts(jr, 0, kind, &fs, errstr, sizeof(errstr)))
		fail_msg("journal %s: %s", journal, errstr);
	n = (int)json_array_size(fs);
	json_decref(fs);
	km_journal_close(jr);
	return n;
}

/* The records a replicate --json run says it copied (its "done" event),
 * -1 without one. */
static int64_t done_records(const char *out)
{
	char *text = km_strdup(out);
	int64_t n = -1;
	for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n")) {
		json_t *j = json_loads(l, 0, NULL);
		const char *ev = j ? json_string_value(json_object_get(j, "event")) : NULL;
		if (ev && !strcmp(ev, "done"))
			n = json_integer_value(json_object_get(j, "records"));
		json_decref(j);
	}
	if (n < 0)
		fprintf(stderr, "no done event in:\n%s\n", out);
	free(text);
	return n;
}

/* n records to every partition of A on c, values "<tag>-<p>-<i>" of 100
 * bytes; with txn, in one transaction committed (commit) or aborted. */
static void write_records(const tk_cluster_t *c, const char *tag, int n, const char *txn,
			  bool commit)
{
	rd_kafka_t *p = tk_producer(c, txn);
	rd_kafka_error_t *e;
	char v[128];

	if (txn && (e = rd_kafka_begin_transaction(p)))
		fail_msg("begin_transaction: %s", rd_kafka_error_string(e));
	for (int part = 0; part < PARTS; part++)
		for (int i = 0; i < n; i++) {
			snprintf(v, sizeof(v), "%s-%d-%06d-%-70s", tag, part, i, "x");
			rd_kafka_resp_err_t r;
			while ((r = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(A), RD_KAFKA_V_PARTITION(part),
						      RD_KAFKA_V_KEY(v, 12),
						      RD_KAFKA_V_VALUE(v, strlen(v)),
						      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
						      RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
				rd_kafka_poll(p, 10);
			if (r)
				fail_msg("produce: %s", rd_kafka_err2str(r));
		}
	/* Delivered before the end: an abort purges what is still queued,
	 * and the aborted records must be in the log to test anything. */
	tk_flush(p);
	if (txn) {
		e = commit ? rd_kafka_commit_transaction(p, 60000)
			   : rd_kafka_abort_transaction(p, 60000);
		if (e)
			fail_msg("end transaction: %s", rd_kafka_error_string(e));
	}
	rd_kafka_destroy(p);
}

/* Every source partition holds exactly the target's committed records,
 * same order (pre-cutover copies, then the records copied back); the
 * count of each is want per partition. */
static void assert_source_equals_target(int want)
{
	for (int p = 0; p < PARTS; p++) {
		tk_digests_t ds, dt;
		tk_digest_partition(&src, A, p, true, &ds);
		tk_digest_partition(&tgt, A, p, true, &dt);
		fprintf(stderr, "partition %d: source %zu records, target %zu\n", p, ds.n, dt.n);
		assert_int_equal(dt.n, (size_t)want);
		assert_int_equal(ds.n, dt.n);
		for (size_t i = 0; i < ds.n; i++)
			if (ds.d[i] != dt.d[i])
				fail_msg("%s[%d]: record %zu differs (source offset %lld, target %lld)",
					 A, p, i, (long long)ds.off[i], (long long)dt.off[i]);
		tk_digests_free(&ds);
		tk_digests_free(&dt);
	}
}

/* The reverse map (`offsets map --reverse`, read from the source): every
 * run's target offsets hold the same records as its source offsets, and
 * the runs cover the copied records: want per partition. */
static void assert_reverse_map(int want)
{
	for (int p = 0; p < PARTS; p++) {
		char *out, pb[16];
		tk_digests_t ds, dt;
		int64_t covered = 0;
		json_t *r;
		size_t i;

		snprintf(pb, sizeof(pb), "%d", p);
		assert_int_equal(tk_kmv(&out, NULL, "offsets", "map", "-p", plan, "--topic", A,
				    "--partition", pb, "--reverse", "--json", NULL),
				 0);
		json_t *map = tk_json(out);
		assert_string_equal(json_string_value(json_object_get(map, "direction")), "reverse");
		tk_digest_partition(&src, A, p, true, &ds);
		tk_digest_partition(&tgt, A, p, true, &dt);
		json_array_foreach(json_object_get(map, "runs"), i, r) {
			int64_t t0 = json_integer_value(json_object_get(r, "src_first"));
			int64_t s0 = json_integer_value(json_object_get(r, "tgt_first"));
			int64_t n = json_integer_value(json_object_get(r, "count"));
			for (int64_t k = 0; k < n; k++) {
				size_t a, b;
				for (a = 0; a < dt.n && dt.off[a] != t0 + k; a++)
					;
				for (b = 0; b < ds.n && ds.off[b] != s0 + k; b++)
					;
				if (a == dt.n || b == ds.n || dt.d[a] != ds.d[b])
					fail_msg("%s[%d]: the reverse map says target %lld -> source "
						 "%lld, but %s",
						 A, p, (long long)(t0 + k), (long long)(s0 + k),
						 a == dt.n ? "the target has no committed record there"
						 : b == ds.n ? "the source has no record there"
							     : "the records differ");
				/* Copied records come after the pre-cutover ones. */
				assert_true(b >= PRE);
			}
			covered += n;
		}
		assert_int_equal(covered, want);
		tk_digests_free(&ds);
		tk_digests_free(&dt);
		json_decref(map);
		free(out);
	}
}

static int setup(void **state)
{
	int id = (int)getpid();
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_PLAIN");
	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	snprintf(A, sizeof(A), "rev-%d.a", id);
	snprintf(G, sizeof(G), "g-reverse-%d", id);
	snprintf(M, sizeof(M), "it-reverse-%d", id);
	tk_create_topic(&src, A, PARTS, NULL);
	write_records(&src, "pre", PRE, NULL, false);
	for (int p = 0; p < PARTS; p++)
		tk_commit(&src, G, A, p, 5);
	dir = tk_tmpdir("reverse");
	journal = km_asprintf("%s/kmigrate.db", dir);
	plan = write_plan();
	tk_ready_for_cutover(plan);
	return 0;
}

/* No switch journaled: no start points, refused (exit 1, one line). */
static void test_refused_before_switch(void **state)
{
	char *err;
	(void)state;
	assert_int_equal(tk_kmv(NULL, &err, "replicate", "-p", plan, "--reverse", "--wave", "w1",
			    "--until-caught-up", NULL),
			 1);
	assert_non_null(strstr(err, "wave 'w1' has no journaled start of the target's new history"));
	assert_true(strchr(err, '\n') == err + strlen(err) - 1);
	free(err);
	assert_int_equal(tk_kmv(NULL, NULL, "replicate", "-p", plan, "--reverse", NULL), 2);
	assert_int_equal(tk_kmv(NULL, NULL, "replicate", "-p", plan, "--reverse", "--wave", "nope",
			    NULL),
			 2);
}

/* The cutover; then, fenced by config: refused, nothing journaled; the
 * forward replicator has nothing left to copy (A's authority is the
 * target). */
static void test_fenced_refused(void **state)
{
	char *out, *err;
	(void)state;
	assert_int_equal(tk_kmv(NULL, NULL, "cutover", "-p", plan, "--wave", "w1", NULL), 0);
	int runs = facts("replicate.reverse");
	assert_int_equal(tk_kmv(NULL, &err, "replicate", "-p", plan, "--reverse", "--wave", "w1",
			    "--until-caught-up", NULL),
			 1);
	assert_non_null(strstr(err, "the config fence must be lifted first"));
	assert_non_null(strstr(err, A));
	assert_true(strchr(err, '\n') == err + strlen(err) - 1);
	free(err);
	assert_int_equal(facts("replicate.reverse"), runs);

	int64_t before = tk_total_hwm(&tgt, A);
	assert_int_equal(tk_kmv(&out, NULL, "replicate", "-p", plan, "--until-caught-up", NULL), 0);
	assert_non_null(strstr(out, "Nothing left to copy"));
	free(out);
	assert_int_equal(tk_total_hwm(&tgt, A), before);
}

/* Written on the target after the switch, copied back: source = target. */
static void test_reverse_copy(void **state)
{
	char *out;
	(void)state;
	write_records(&tgt, "post", 3, NULL, false);
	write_records(&tgt, "txn", 4, "rev-test-txn", true);
	write_records(&tgt, "aborted", 3, "rev-test-txn", false);
	write_records(&tgt, "tail", 2, NULL, false);
	/* Lift the config fence as rollback will: the topic's own value back
	 * (here: no override). */
	tk_set_topic_config(&src, A, "max.message.bytes", NULL);
	assert_int_equal(tk_kmv(&out, NULL, "replicate", "-p", plan, "--reverse", "--wave", "w1",
			    "--until-caught-up", "--json", NULL),
			 0);
	assert_non_null(strstr(out, "\"direction\":\"reverse\""));
	assert_int_equal(done_records(out), 27);
	free(out);
	assert_source_equals_target(PRE + 9);
	assert_reverse_map(9);
	assert_true(facts("replicate.reverse") >= 1);
}

/* kill -9 after the first committed progress of a large batch, run again:
 * nothing lost, nothing duplicated. */
static void test_kill9_resume(void **state)
{
	char *log = km_asprintf("%s/reverse-kill.log", dir);
	(void)state;
	for (int k = 0; k < 3; k++)
		write_records(&tgt, "big", BIG / 3, "rev-test-big", true);
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, "--reverse", "--wave", "w1",
			      "--until-caught-up", "--json", "--max-bytes-per-sec", "200000",
			      NULL};
	pid_t pid = tk_spawn(argv, log);
	bool progressed = false;
	for (int64_t end = tk_mono_ms() + WAIT_MS; !progressed && tk_mono_ms() < end;) {
		char *text = tk_read_file(log, NULL);
		for (char *l = text ? strtok(text, "\n") : NULL; l && !progressed;
		     l = strtok(NULL, "\n")) {
			json_t *j = l[0] == '{' ? json_loads(l, 0, NULL) : NULL;
			const char *ev = j ? json_string_value(json_object_get(j, "event")) : NULL;
			progressed = ev && !strcmp(ev, "progress") &&
				     json_integer_value(json_object_get(j, "records")) > 0;
			json_decref(j);
		}
		free(text);
		if (!progressed)
			tk_sleep_ms(100);
	}
	assert_true(progressed);
	kill(pid, SIGKILL);
	assert_int_equal(tk_wait_exit(pid, WAIT_MS), 128 + SIGKILL);
	/* Killed mid-copy: part of the batch is on the source, not all. */
	int64_t copied = 0;
	for (int p = 0; p < PARTS; p++) {
		tk_digests_t ds;
		tk_digest_partition(&src, A, p, true, &ds);
		copied += (int64_t)ds.n - (PRE + 9);
		tk_digests_free(&ds);
	}
	fprintf(stderr, "killed with %lld of %d records copied back\n", (long long)copied,
		PARTS * BIG);
	assert_true(copied > 0 && copied < PARTS * BIG);
	assert_int_equal(tk_kmv(NULL, NULL, "replicate", "-p", plan, "--reverse", "--wave", "w1",
			    "--until-caught-up", NULL),
			 0);
	assert_source_equals_target(PRE + 9 + BIG);
	assert_reverse_map(9 + BIG);
	free(log);
}

/* Caught up: a second run copies nothing; the forward replicator still
 * copies nothing of A (the records appended to the source are not sent
 * forward again). */
static void test_caught_up(void **state)
{
	char *out;
	(void)state;
	int64_t s = tk_total_hwm(&src, A), t = tk_total_hwm(&tgt, A);
	assert_int_equal(tk_kmv(&out, NULL, "replicate", "-p", plan, "--reverse", "--wave", "w1",
			    "--until-caught-up", "--json", NULL),
			 0);
	assert_int_equal(done_records(out), 0);
	free(out);
	assert_int_equal(tk_total_hwm(&src, A), s);
	assert_int_equal(tk_kmv(&out, NULL, "replicate", "-p", plan, "--until-caught-up", NULL), 0);
	assert_non_null(strstr(out, "Nothing left to copy"));
	free(out);
	assert_int_equal(tk_total_hwm(&tgt, A), t);
}

/* Records written on the target after the switch and deleted there before
 * they were copied back: a loud loss (exit 1, journaled), never a skip. */
static void test_target_deleted_is_loss(void **state)
{
	char *err;
	(void)state;
	write_records(&tgt, "lost", 5, NULL, false);
	tk_digests_t d;
	tk_digest_partition(&tgt, A, 0, true, &d);
	tk_delete_records(&tgt, A, 0, d.off[d.n - 1] + 1); /* through "lost" */
	tk_digests_free(&d);
	int losses = facts("replicate.loss");
	assert_int_equal(tk_kmv(NULL, &err, "replicate", "-p", plan, "--reverse", "--wave", "w1",
				"--until-caught-up", NULL),
			 1);
	assert_non_null(strstr(err, "were deleted by retention before they were copied"));
	assert_non_null(strstr(err, "target '"));
	free(err);
	assert_int_equal(facts("replicate.loss"), losses + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused_before_switch),
		cmocka_unit_test(test_fenced_refused),
		cmocka_unit_test(test_reverse_copy),
		cmocka_unit_test(test_kill9_resume),
		cmocka_unit_test(test_caught_up),
		cmocka_unit_test(test_target_deleted_is_loss),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
