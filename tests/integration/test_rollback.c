/*
 * test_rollback.c -- `kmigrate rollback` of a cutover that stopped before
 * the authority moved, on real clusters.
 *
 * Source: the `plain` cluster (Kafka 4.3, no authorizer: the config
 * fence); target: the 4.3 target.  One estate for the file: topic A
 * (2 partitions, its own max.message.bytes override, restored by SET) and
 * topic B (the broker default, restored by DELETE), both in wave canary.
 * Every command a migration runs before cutover runs in setup; no
 * replicator runs afterwards, so a cutover fences the source and then
 * stops at its drain (the records written after the catch-up are never
 * copied): the state a rollback before the authority moved starts from.
 *
 * Cases, in order: the rollback, killed after each step in turn, converges
 * with one fact per step, gives back the topics' configurations exactly
 * (every config's value and source re-read and compared with before the
 * fence) and the source takes writes again; a second rollback finds
 * nothing to do; a cutover refused while a rollback of its attempt is
 * unfinished; a new cutover attempt starts again at its gate with a fresh
 * fence plan and is rolled back too; a wave whose authority moved to the
 * target (its record on the target's authority topic) is refused with
 * nothing changed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"
#include "mapstore.h"
#include "tk.h"
#include "util.h"

static tk_cluster_t src, tgt;
static char A[64], B[64], G[64], migration[64];
static char *plan, *dir, *journal;
static json_t *configs_before; /* topic -> its config sources, before any fence */

static char *write_plan(void)
{
	char *text = km_asprintf(
		"migration: %s\n"
		"source:\n  bootstrap: %s\n  owner: platform\n"
		"target:\n  bootstrap: %s\n  owner: platform\n"
		"topics:\n  include: [\"^%s$\", \"^%s$\"]\n"
		"  rules:\n    - {match: \".*\", owner: qa}\n"
		"consumer_groups:\n  - {id: %s, restart: translated, owner: team-a, chosen_by: qa}\n"
		"consumers:\n  - {name: reader-a, group: %s, isolation_level: read_committed, "
		"owner: team-a, validation: \"reads on the target\", client: librdkafka, "
		"client_version: 2.8.0}\n"
		"gates:\n  max_lag_records: 1000000\n"
		"cutover:\n  fence: config\n  fence_owner: platform\n  quiet_period: 1s\n"
		"  waves:\n"
		"    - {name: canary, topics: [%s, %s], groups: [%s], consumers: [reader-a], "
		"owner: team-a}\n",
		migration, src.bootstrap, tgt.bootstrap, A, B, G, G, A, B, G);
	char *p = tk_write_file(dir, "migration.yaml", text);
	free(text);
	return p;
}
/* Runs `kmigrate CMD -p plan --wave canary --json [extra]` with env var
 * crash_var set to crash (NULL: unset); @returns the exit status, *evsp
 * the JSON lines as an array. */
static int run(const char *cmd, const char *extra, const char *extra2, const char *crash_var,
	       const char *crash, json_t **evsp)
{
	const char *argv[] = {tk_kmigrate(), cmd, "-p", plan, "--wave", "canary", "--json",
			      extra, extra2, NULL};
	return tk_km_events(evsp, crash_var, crash, argv);
}

static int rollback(const char *crash, json_t **evsp)
{
	return run("rollback", NULL, NULL, "KM_ROLLBACK_CRASH_AFTER", crash, evsp);
}

/* A cutover that fences and then stops at its drain: no replicator runs. */
static int cutover_to_drain(json_t **evsp)
{
	return run("cutover", "--drain-timeout", "3", NULL, NULL, evsp);
}
static const char *state_of(const json_t *evs, const char *step)
{
	return tk_event_state(evs, step);
}

static const char *result_of(const json_t *evs)
{
	json_t *e;
	size_t i;
	json_array_foreach(evs, i, e)
		if (json_object_get(e, "result"))
			return json_string_value(json_object_get(e, "result"));
	return NULL;
}
/* How many facts of kind whose subject starts with prefix. */
static int facts(const char *kind, const char *prefix)
{
	return tk_journal_count(journal, kind, prefix);
}

static const char *mmb(const tk_cluster_t *c, const char *topic, char *buf, size_t size)
{
	json_t *cs = tk_topic_config_sources(c, topic);
	json_t *m = json_object_get(cs, "max.message.bytes");
	snprintf(buf, size, "%s (%s)", json_string_value(json_object_get(m, "value")),
		 json_string_value(json_object_get(m, "source")));
	json_decref(cs);
	return buf;
}

/* Every configuration of A and B, value and source, as before the first
 * fence. */
static void assert_configs_restored(void)
{
	const char *ts[] = {A, B};
	for (int i = 0; i < 2; i++) {
		json_t *now = tk_topic_config_sources(&src, ts[i]);
		json_t *was = json_object_get(configs_before, ts[i]);
		if (!json_equal(now, was)) {
			char *a = json_dumps(was, JSON_COMPACT | JSON_SORT_KEYS);
			char *b = json_dumps(now, JSON_COMPACT | JSON_SORT_KEYS);
			fail_msg("topic %s's configuration is not restored:\nbefore %s\nafter  %s",
				 ts[i], a, b);
		}
		json_decref(now);
	}
}

static void assert_fenced(void)
{
	char buf[128];
	assert_string_equal(mmb(&src, A, buf, sizeof(buf)), "0 (topic)");
	assert_string_equal(mmb(&src, B, buf, sizeof(buf)), "0 (topic)");
}

/* One record to topic on the source: it must be accepted. */
static void produce_ok(const char *topic, const char *text)
{
	rd_kafka_t *p = tk_producer(&src, NULL);
	tk_msg_t m = {.key = text, .value = text, .partition = 0};
	tk_produce(p, topic, &m);
	tk_flush(p);
	rd_kafka_destroy(p);
}

/* `status --json`'s rollback object of wave canary (owned). */
static json_t *status_rollback(void)
{
	const char *argv[] = {tk_kmigrate(), "status", "-p", plan, "--json", NULL};
	char *out, *err;
	json_t *w, *rb = NULL;
	size_t i;
	assert_int_equal(tk_run(&out, &err, argv), 0);
	json_t *st = tk_json(out);
	json_array_foreach(json_object_get(st, "waves"), i, w)
		if (!strcmp(json_string_value(json_object_get(w, "wave")), "canary"))
			rb = json_incref(json_object_get(w, "rollback"));
	json_decref(st);
	free(out);
	free(err);
	assert_non_null(rb);
	return rb;
}

static void assert_status(bool possible, const char *why, const char *source_fence)
{
	json_t *rb = status_rollback();
	const char *w = json_string_value(json_object_get(rb, "why"));
	const char *f = json_string_value(json_object_get(json_object_get(rb, "fence"), "source"));
	if (json_is_true(json_object_get(rb, "possible")) != possible || !w || !strstr(w, why) ||
	    !f || strncmp(f, source_fence, strlen(source_fence)))
		fail_msg("status: want possible=%d why~'%s' source fence '%s', got %s", possible,
			 why, source_fence, json_dumps(rb, JSON_COMPACT));
	json_decref(rb);
}

static int setup(void **state)
{
	int id = (int)getpid();
	const char *a_cfg[] = {"max.message.bytes", "300000", NULL};
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_PLAIN");
	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	snprintf(A, sizeof(A), "rb-%d.a", id);
	snprintf(B, sizeof(B), "rb-%d.b", id);
	snprintf(G, sizeof(G), "g-rollback-%d", id);
	snprintf(migration, sizeof(migration), "it-rollback-%d", id);
	tk_create_topic(&src, A, 2, a_cfg);
	tk_create_topic(&src, B, 1, NULL);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < 20; i++) {
		tk_msg_t m = {.key = "k", .value = "seed", .partition = i % 2};
		tk_produce(p, A, &m);
		m.partition = 0;
		tk_produce(p, B, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	tk_commit(&src, G, A, 0, 5);
	tk_commit(&src, G, A, 1, 7);
	configs_before = json_object();
	json_object_set_new(configs_before, A, tk_topic_config_sources(&src, A));
	json_object_set_new(configs_before, B, tk_topic_config_sources(&src, B));
	dir = tk_tmpdir("rollback");
	journal = km_asprintf("%s/kmigrate.db", dir);
	plan = write_plan();
	/* Exit 1: the finding "no authorizer, ACLs cannot fence". */
	tk_km(plan, "inventory", NULL, NULL, 1, NULL);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	tk_km(plan, "check", NULL, NULL, 0, NULL);
	tk_catch_up(plan, 120000, NULL);
	tk_km(plan, "validate", NULL, NULL, 0, NULL);
	tk_km(plan, "offsets", NULL, NULL, 0, NULL);
	/* Written after the catch-up and never copied: the cutover's drain
	 * cannot finish. */
	produce_ok(A, "late");
	return 0;
}

/* The cutover fences and stops at its drain; the rollback, killed after
 * each step, converges and gives the configs back exactly. */
static void test_rollback_before_authority(void **state)
{
	json_t *evs;
	(void)state;

	assert_int_equal(cutover_to_drain(&evs), 1);
	assert_string_equal(state_of(evs, "fence"), "done");
	assert_null(state_of(evs, "validate"));
	json_decref(evs);
	assert_fenced();
	assert_status(true, "possible: the source is still authoritative", "config");

	/* A dry run changes nothing and journals nothing. */
	assert_int_equal(run("rollback", "--dry-run", NULL, NULL, NULL, &evs), 0);
	assert_string_equal(state_of(evs, "unfence"), "would");
	assert_string_equal(result_of(evs), "would");
	json_decref(evs);
	assert_fenced();
	assert_int_equal(facts("rollback.step", "wave:canary"), 0);

	const char *crashes[] = {"assess", "unfence"};
	for (int i = 0; i < 2; i++) {
		assert_int_equal(rollback(crashes[i], &evs), 137);
		json_decref(evs);
	}
	/* Killed after unfence: already undone, the attempt not closed yet. */
	assert_int_equal(facts("cutover.reset", "wave:canary"), 0);
	assert_int_equal(rollback(NULL, &evs), 0);
	assert_string_equal(state_of(evs, "assess"), "already-done");
	assert_string_equal(state_of(evs, "unfence"), "already-done");
	assert_string_equal(state_of(evs, "reset"), "done");
	assert_string_equal(result_of(evs), "rolled-back");
	json_decref(evs);
	assert_int_equal(facts("rollback.step", "wave:canary step:assess"), 1);
	assert_int_equal(facts("rollback.step", "wave:canary step:unfence"), 1);
	assert_int_equal(facts("rollback.step", "wave:canary step:reset"), 1);
	assert_int_equal(facts("cutover.reset", "wave:canary"), 1);
	assert_configs_restored();
	assert_status(false, "nothing to roll back", "none");
	produce_ok(A, "after-rollback");
	produce_ok(B, "after-rollback");

	/* Nothing left to roll back. */
	assert_int_equal(rollback(NULL, &evs), 0);
	assert_string_equal(result_of(evs), "nothing");
	json_decref(evs);
	assert_int_equal(facts("rollback.step", "wave:canary"), 3);
}

/* A new attempt starts again at its gate, with a fresh fence plan (the
 * first attempt's inverse is never reused); while its rollback is
 * unfinished, cutover is refused. */
static void test_second_attempt(void **state)
{
	json_t *evs;
	(void)state;

	assert_int_equal(cutover_to_drain(&evs), 1);
	assert_string_equal(state_of(evs, "gate"), "done");
	assert_string_equal(state_of(evs, "fence"), "done");
	json_decref(evs);
	assert_int_equal(facts("cutover.fence", "wave:canary"), 2);
	assert_fenced();

	assert_int_equal(rollback("assess", &evs), 137);
	json_decref(evs);
	assert_int_equal(cutover_to_drain(&evs), 1);
	json_decref(evs);
	assert_int_equal(facts("cutover.step", "wave:canary step:drain"), 0);
	assert_fenced();

	assert_int_equal(rollback(NULL, &evs), 0);
	assert_string_equal(result_of(evs), "rolled-back");
	json_decref(evs);
	assert_int_equal(facts("cutover.reset", "wave:canary"), 2);
	assert_configs_restored();
}

/* The authority record says target: refused, nothing changed. */
static void test_refused_after_authority(void **state)
{
	char topic[KM_MAPSTORE_NAME_MAX], val[512];
	json_t *evs;
	(void)state;

	assert_int_equal(cutover_to_drain(&evs), 1);
	json_decref(evs);
	assert_fenced();
	km_mapstore_authority_topic(migration, topic, sizeof(topic));
	const char *cfg[] = {"cleanup.policy", "compact", NULL};
	tk_create_topic(&tgt, topic, 1, cfg);
	km_mapstore_authority_t a = {.at = km_now_ms(), .run_id = 1};
	snprintf(a.authority, sizeof(a.authority), "target");
	snprintf(a.wave, sizeof(a.wave), "canary");
	km_mapstore_authority_encode(&a, val, sizeof(val));
	rd_kafka_t *p = tk_producer(&tgt, NULL);
	tk_msg_t m = {.key = A, .value = val, .partition = 0};
	tk_produce(p, topic, &m);
	tk_flush(p);
	rd_kafka_destroy(p);

	assert_status(false, "authority records say target", "config");
	int before = facts("rollback.step", "wave:canary");
	assert_int_equal(rollback(NULL, &evs), 1);
	assert_string_equal(state_of(evs, "assess"), "nogo");
	json_decref(evs);
	assert_int_equal(facts("rollback.step", "wave:canary"), before);
	assert_fenced();
}

static int teardown(void **state)
{
	(void)state;
	json_decref(configs_before);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rollback_before_authority),
		cmocka_unit_test(test_second_attempt),
		cmocka_unit_test(test_refused_after_authority),
	};
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
