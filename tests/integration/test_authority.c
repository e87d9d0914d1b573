/*
 * test_authority.c -- the readers of the target's authority topic and the
 * cutover lock, on real clusters (issue 10 item 4, step 6's status).
 *
 * Source: the 'plain' cluster (4.3, no authorizer: the config fence, as in
 * test_cutover.c); target: the 4.3 target.  One estate for the file: topic
 * A (wave w1, group G with committed source positions) and topic B (wave
 * w2, `all`).  Every command a migration runs before cutover runs in the
 * setup.  Cases, in order (they share the estate):
 *   - status before any cutover: w1 has no step, A and B are source; with
 *     the target unreachable the authority is "unknown (target
 *     unreachable: ...)", the journal's view shown apart, exit 3;
 *   - the lock: a cutover of w1 blocks in its drain (a record written after
 *     the catch-up, no replicator running); a second cutover (either wave)
 *     is refused, exit 1, naming the holder; the first is killed with -9
 *     and a third, with a replicator now running, gets the lock within the
 *     bounded wait and cuts w1 over for real (its authority records);
 *   - status after: w1's last step is authority, A's authority target;
 *   - the running replicator excludes A (once, journaled) and copies
 *     nothing of it even with the source fence lifted and a record written
 *     there, while it keeps copying B; a fresh replicate excludes A from
 *     its start; a replicate whose scope is A alone has nothing left;
 *   - offsets --commit for G is refused (A is cut over), the target group's
 *     offsets unchanged; offsets without --commit says A is cut over.
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
#include <time.h>
#include <unistd.h>

#include "cutover.h"
#include "journal.h"
#include "tk.h"
#include "util.h"

#define WAIT_MS 90000

static tk_cluster_t src, tgt;
static char A[64], B[64], G[64], M[64];
static char *plan, *dir, *journal, *replog;
static pid_t repl;

static char *write_plan(const char *name, const char *target, const char *include)
{
	char *text = km_asprintf(
		"migration: %s\n"
		"journal: %s\n"
		"source:\n  bootstrap: %s\n  owner: platform\n"
		"target:\n  bootstrap: %s\n  owner: platform\n"
		"topics:\n  include: [%s]\n"
		"  rules:\n    - {match: \".*\", owner: qa}\n"
		"consumer_groups:\n  - {id: %s, restart: translated, owner: team-a, chosen_by: qa}\n"
		"consumers:\n  - {name: reader-a, group: %s, isolation_level: read_committed, "
		"owner: team-a, validation: \"reads on the target\", client: librdkafka, "
		"client_version: 2.8.0}\n"
		"gates:\n  max_lag_records: 1000000\n"
		"cutover:\n  fence: config\n  fence_owner: platform\n  quiet_period: 1s\n"
		"  waves:\n"
		"    - {name: w1, topics: [%s], groups: [%s], consumers: [reader-a], owner: team-a}\n"
		"    - {name: w2, all: true}\n",
		M, journal, src.bootstrap, target, include, G, G, A, G);
	char *p = tk_write_file(dir, name, text);
	free(text);
	return p;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Runs kmigrate with the arguments (NULL ends them), @returns the exit
 * status; *outp / *errp receive stdout / stderr (owned) when given. */
static int km(char **outp, char **errp, ...)
{
	const char *argv[24] = {tk_kmigrate()};
	char *out, *err;
	va_list ap;
	int n = 1;

	va_start(ap, errp);
	for (const char *a; n < 23 && (a = va_arg(ap, const char *));)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	int rc = tk_run(&out, &err, argv);
	fprintf(stderr, "kmigrate %s %s %s: exit %d%s%s", argv[1], argv[4] ? argv[4] : "",
		argv[5] && argv[4] ? argv[5] : "", rc, *err ? ": " : "\n", err);
	if (outp)
		*outp = out;
	else
		free(out);
	if (errp)
		*errp = err;
	else
		free(err);
	return rc;
}

/* The row of topic t in status --json's authority.topics. */
static json_t *auth_row(json_t *st, const char *t)
{
	json_t *r;
	size_t i;
	json_array_foreach(json_object_get(json_object_get(st, "authority"), "topics"), i, r)
		if (!strcmp(json_string_value(json_object_get(r, "topic")), t))
			return r;
	fail_msg("status has no authority row for '%s'", t);
	return NULL;
}

static json_t *wave_row(json_t *st, const char *w)
{
	json_t *r;
	size_t i;
	json_array_foreach(json_object_get(st, "waves"), i, r)
		if (!strcmp(json_string_value(json_object_get(r, "wave")), w))
			return r;
	fail_msg("status has no wave '%s'", w);
	return NULL;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* The JSON lines of a log file whose "event" is ev (and "topic" topic, when
 * given): how many. */
static int log_events(const char *path, const char *ev, const char *topic)
{
	char *text = tk_read_file(path, NULL);
	int n = 0;
	if (!text)
		return 0;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		json_t *j = line[0] == '{' ? json_loads(line, 0, NULL) : NULL;
		if (j && !strcmp(jstr(j, "event"), ev) && (!topic || !strcmp(jstr(j, "topic"), topic)))
			n++;
		json_decref(j);
	}
	free(text);
	return n;
}

static bool wait_log(const char *path, const char *needle, int timeout_ms)
{
	for (int64_t end = tk_mono_ms() + timeout_ms; tk_mono_ms() < end; sleep_ms(200)) {
		char *text = tk_read_file(path, NULL);
		bool ok = text && strstr(text, needle);
		free(text);
		if (ok)
			return true;
	}
	return false;
}

static bool wait_events(const char *path, const char *ev, const char *topic, int timeout_ms)
{
	for (int64_t end = tk_mono_ms() + timeout_ms; tk_mono_ms() < end; sleep_ms(200))
		if (log_events(path, ev, topic) > 0)
			return true;
	return false;
}

static int facts(const char *kind, const char *subject)
{
	/* Subjects here are whole ("topic:<t>"): no other subject starts with
	 * one of them. */
	return tk_journal_count(journal, kind, subject);
}

static pid_t start_replicator(void)
{
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, "--json", NULL};
	return tk_spawn(argv, replog);
}

static int setup(void **state)
{
	int id = (int)getpid();
	char inc[200];
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_PLAIN");
	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	snprintf(A, sizeof(A), "au-%d.a", id);
	snprintf(B, sizeof(B), "au-%d.b", id);
	snprintf(G, sizeof(G), "g-authority-%d", id);
	snprintf(M, sizeof(M), "it-authority-%d", id);
	tk_create_topic(&src, A, 1, NULL);
	tk_create_topic(&src, B, 1, NULL);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < 10; i++) {
		tk_msg_t m = {.key = "k", .value = "seed", .partition = 0};
		tk_produce(p, A, &m);
		tk_produce(p, B, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	tk_commit(&src, G, A, 0, 4);
	dir = tk_tmpdir("authority");
	journal = km_asprintf("%s/kmigrate.db", dir);
	replog = km_asprintf("%s/replicate.log", dir);
	snprintf(inc, sizeof(inc), "\"^%s$\", \"^%s$\"", A, B);
	plan = write_plan("migration.yaml", tgt.bootstrap, inc);
	tk_km(plan, "inventory", NULL, NULL, 1, NULL); /* the "no authorizer" finding */
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	tk_km(plan, "check", NULL, NULL, 0, NULL);
	tk_catch_up(plan, 120000, NULL);
	tk_km(plan, "validate", NULL, NULL, 0, NULL);
	tk_km(plan, "offsets", NULL, NULL, 0, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (repl > 0) {
		kill(repl, SIGTERM);
		tk_wait_exit(repl, WAIT_MS);
	}
	return 0;
}

/* Before any cutover: no step, every authority source (no authority topic
 * yet); with the target unreachable: unknown, exit 3, the journal's view
 * still there. */
static void test_status_before(void **state)
{
	char *out, *err;
	(void)state;

	assert_int_equal(km(&out, NULL, "status", "-p", plan, "--json", NULL), 0);
	json_t *st = tk_json(out);
	free(out);
	json_t *w1 = wave_row(st, "w1");
	assert_true(json_is_null(json_object_get(w1, "last_step")) ||
		    !json_object_get(w1, "last_step"));
	assert_false(json_is_true(json_object_get(w1, "complete")));
	assert_string_equal(json_string_value(json_array_get(json_object_get(w1, "topics"), 0)), A);
	assert_string_equal(jstr(auth_row(st, A), "authority"), "source");
	assert_string_equal(jstr(auth_row(st, B), "authority"), "source");
	assert_string_equal(jstr(auth_row(st, A), "wave"), "w1");
	assert_string_equal(jstr(auth_row(st, B), "wave"), "w2");
	json_decref(st);

	/* A target nobody listens on (port 1). */
	char inc[200];
	snprintf(inc, sizeof(inc), "\"^%s$\", \"^%s$\"", A, B);
	char *down = write_plan("down.yaml", "127.0.0.1:1", inc);
	assert_int_equal(km(&out, &err, "status", "-p", down, "--json", NULL), 3);
	st = tk_json(out);
	free(out);
	free(err);
	json_t *ra = auth_row(st, A);
	assert_string_equal(jstr(ra, "authority"), "unknown");
	assert_string_equal(jstr(ra, "journal_says"), "source");
	assert_non_null(strstr(jstr(json_object_get(st, "authority"), "error"),
			       "target unreachable"));
	json_decref(st);
	assert_int_equal(km(&out, &err, "status", "-p", down, NULL), 3);
	assert_non_null(strstr(out, "unknown (target unreachable: "));
	free(out);
	free(err);
	free(down);
}

/* The cutover lock: refused while a cutover runs, from the same migration
 * on any wave; after the holder dies (kill -9) the next run takes it. */
static void test_lock(void **state)
{
	char *out, *err, *log1 = km_asprintf("%s/cutover1.log", dir);
	char pidbuf[64];
	(void)state;

	/* No replicator, and a record it has not copied: the drain waits. */
	tk_produce_one(&src, A, "after-catch-up");
	const char *argv1[] = {tk_kmigrate(), "cutover", "-p",  plan, "--wave", "w1",
			       "--json",      "--drain-timeout", "600", NULL};
	pid_t first = tk_spawn(argv1, log1);
	assert_true(wait_log(log1, "\"step\":\"drain\"", WAIT_MS));

	/* A second cutover, the same wave or another: refused, naming the
	 * holder (its pid), nothing done. */
	snprintf(pidbuf, sizeof(pidbuf), "pid=%d ", (int)first);
	assert_int_equal(km(&out, &err, "cutover", "-p", plan, "--wave", "w1", "--lock-wait", "1", NULL),
			 1);
	char *msg = km_asprintf("cutover of migration '%s' is already running (held by "
				"kmigrate-cutover host=",
				M);
	assert_non_null(strstr(err, msg));
	assert_non_null(strstr(err, pidbuf));
	assert_non_null(strstr(err, "wave=w1"));
	assert_non_null(strstr(err, "): wait for it or stop it"));
	assert_true(strchr(err, '\n') == err + strlen(err) - 1); /* one line */
	free(out);
	free(err);
	assert_int_equal(km(&out, &err, "cutover", "-p", plan, "--wave", "w2", "--lock-wait", "0", NULL),
			 1);
	assert_non_null(strstr(err, msg));
	free(out);
	free(err);
	free(msg);
	/* The first is still there, waiting in its drain. */
	assert_int_equal(kill(first, 0), 0);

	/* kill -9: its membership lives until the session times out; the
	 * next run waits for that (bounded) and goes on, now with a
	 * replicator to drain against. */
	kill(first, SIGKILL);
	tk_wait_exit(first, WAIT_MS);
	repl = start_replicator();
	int64_t t0 = tk_mono_ms();
	assert_int_equal(km(&out, &err, "cutover", "-p", plan, "--wave", "w1", "--json", NULL),
			 0);
	fprintf(stderr, "the run after kill -9 took the lock and finished the wave in %lld ms\n",
		(long long)(tk_mono_ms() - t0));
	assert_non_null(strstr(out, "\"step\":\"authority\""));
	free(out);
	free(err);
	/* Released at exit: the next one gets it at once (and has nothing
	 * left to do). */
	assert_int_equal(km(&out, &err, "cutover", "-p", plan, "--wave", "w1", "--lock-wait", "0", NULL),
			 0);
	free(out);
	free(err);
	free(log1);
}

static void test_status_after(void **state)
{
	char *out;
	(void)state;

	assert_int_equal(km(&out, NULL, "status", "-p", plan, "--json", NULL), 0);
	json_t *st = tk_json(out);
	free(out);
	json_t *w1 = wave_row(st, "w1");
	assert_string_equal(jstr(w1, "last_step"), KM_CUTOVER_LAST_STEP);
	assert_true(json_is_true(json_object_get(w1, "complete")));
	assert_false(json_is_true(json_object_get(wave_row(st, "w2"), "complete")));
	json_t *ra = auth_row(st, A);
	assert_string_equal(jstr(ra, "authority"), "target");
	assert_string_equal(jstr(ra, "journal_says"), "target");
	assert_string_equal(jstr(json_object_get(ra, "record"), "wave"), "w1");
	assert_string_equal(jstr(auth_row(st, B), "authority"), "source");
	json_decref(st);
	assert_int_equal(km(&out, NULL, "status", "-p", plan, NULL), 0);
	assert_non_null(strstr(out, "Cutover waves"));
	assert_non_null(strstr(out, "authority"));
	assert_non_null(strstr(out, "target"));
	free(out);
}

/* The replicator that ran through the cutover excluded A: a record written
 * to A on the source (its fence lifted) is not copied, while B goes on
 * being copied; a fresh replicator excludes A from its start; a replicator
 * whose scope is A alone has nothing left to copy. */
static void test_replicate_excludes(void **state)
{
	char *out, *err;
	(void)state;

	assert_true(wait_events(replog, "excluded", A, WAIT_MS));
	char *subj = km_asprintf("topic:%s", A);
	assert_int_equal(facts("replicate.excluded", subj), 1);
	free(subj);
	int64_t ta = tk_total_hwm(&tgt, A), tb = tk_total_hwm(&tgt, B);
	/* Lift the fence on A (as a rollback would) and write to it. */
	tk_set_topic_config(&src, A, "max.message.bytes", "1048588");
	tk_produce_one(&src, A, "stale-after-cutover");
	tk_produce_one(&src, B, "b-after-cutover");
	for (int64_t end = tk_mono_ms() + WAIT_MS; tk_total_hwm(&tgt, B) == tb;) {
		assert_true(tk_mono_ms() < end);
		sleep_ms(200);
	}
	/* B was copied after A's record was written; give A a moment more. */
	sleep_ms(3000);
	assert_int_equal(tk_total_hwm(&tgt, A), ta);
	assert_int_equal(log_events(replog, "excluded", A), 1); /* said once */
	assert_int_equal(log_events(replog, "excluded", B), 0);
	kill(repl, SIGTERM);
	assert_int_equal(tk_wait_exit(repl, WAIT_MS), 0);
	repl = 0;

	/* Fresh: excludes A at start, copies B to its end, exit 0. */
	tk_produce_one(&src, B, "b-fresh");
	char *log2 = km_asprintf("%s/replicate2.log", dir);
	const char *argv2[] = {tk_kmigrate(), "replicate", "-p", plan, "--json",
			       "--until-caught-up", NULL};
	assert_int_equal(tk_wait_exit(tk_spawn(argv2, log2), WAIT_MS), 0);
	assert_int_equal(log_events(log2, "excluded", A), 1);
	assert_int_equal(tk_total_hwm(&tgt, A), ta);
	/* Every record of B on the target (offsets differ: markers). */
	tk_digests_t ds, dt;
	tk_digest_partition(&src, B, 0, true, &ds);
	tk_digest_partition(&tgt, B, 0, true, &dt);
	assert_int_equal(dt.n, ds.n);
	assert_true(dt.d[dt.n - 1] == ds.d[ds.n - 1]);
	tk_digests_free(&ds);
	tk_digests_free(&dt);
	free(log2);

	/* A scope of A alone: every topic cut over, nothing left, exit 0. */
	char inc[100];
	snprintf(inc, sizeof(inc), "\"^%s$\"", A);
	char *only_a = write_plan("only-a.yaml", tgt.bootstrap, inc);
	assert_int_equal(km(&out, &err, "replicate", "-p", only_a, "--until-caught-up", NULL),
			 0);
	assert_non_null(strstr(out, "Nothing left to copy"));
	assert_non_null(strstr(err, "excluded"));
	free(out);
	free(err);
	assert_int_equal(tk_total_hwm(&tgt, A), ta);
	free(only_a);
}

/* offsets --commit for G (its topic A is cut over): refused, one line
 * naming group, topic and wave, exit 1, the target group untouched;
 * without --commit the translation says A is cut over. */
static void test_offsets_refused(void **state)
{
	char *out, *err;
	(void)state;

	int64_t before = tk_committed(&tgt, G, A, 0);
	assert_true(before >= 0); /* committed by the cutover */
	/* The source group moved back: a translated commit would rewind. */
	tk_commit(&src, G, A, 0, 1);
	assert_int_equal(km(&out, &err, "offsets", "-p", plan, "--commit", "--group", G, NULL),
			 1);
	char *msg = km_asprintf("group '%s' not committed: topic '%s' is cut over to the target "
				"(wave 'w1', ",
				G, A);
	assert_non_null(strstr(err, msg));
	free(msg);
	free(out);
	free(err);
	assert_int_equal(tk_committed(&tgt, G, A, 0), before);

	assert_int_equal(km(&out, &err, "offsets", "-p", plan, "--group", G, "--json", NULL),
			 0);
	json_t *doc = tk_json(out);
	json_t *g0 = json_array_get(json_object_get(doc, "groups"), 0);
	json_t *row = json_array_get(json_object_get(g0, "partitions"), 0);
	assert_string_equal(jstr(json_object_get(row, "cut_over"), "wave"), "w1");
	assert_string_equal(jstr(row, "status"), "translated");
	json_decref(doc);
	free(out);
	free(err);
	assert_int_equal(km(&out, &err, "offsets", "-p", plan, "--group", G, NULL),
			 0);
	assert_non_null(strstr(out, "CUT OVER: topic '"));
	free(out);
	free(err);
	assert_int_equal(tk_committed(&tgt, G, A, 0), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_before),
		cmocka_unit_test(test_lock),
		cmocka_unit_test(test_status_after),
		cmocka_unit_test(test_replicate_excludes),
		cmocka_unit_test(test_offsets_refused),
	};
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
