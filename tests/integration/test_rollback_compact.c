/*
 * test_rollback_compact.c -- the proof of offsets-back (the rollback's
 * translation of a group's target position to the source) when the
 * target compacted the record at the group's position, on real clusters
 * (source the 3.9 `source`, target the 4.3 `target`).
 *
 * Topic C is compacted (cleanup.policy=compact, a dirty ratio of 0.01,
 * min.compaction.lag.ms 90 s: nothing younger is compacted, so the reverse
 * copy reads every record first).  After the cutover the target topic gets
 * segment.ms 1 s (the source keeps its week: what the reverse copy appends
 * there stays in the active segment, never compacted), and the
 * applications write key x twice on the target (x1 at offset a, then x2),
 * with other keys after so the segments roll; the group commits a on the
 * target.  The rollback runs to its reverse step (which copies x1 and x2
 * back), then the target's cleaner removes x1; the rollback resumes.  A proof reading only the first record at both
 * positions sees x2 on the target and x1's copy on the source and refuses
 * (NO-GO); the proof that walks both sides to the first record surviving
 * on both (as the forward proof does) proves it, and the group resumes on
 * the source at x1's copy, before x2's.
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

#include "tk.h"
#include "util.h"

#define WAIT_MS 240000

static tk_cluster_t src, tgt;
static char C[64], G[64], M[64];
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
		"consumers:\n  - {name: reader-c, group: %s, isolation_level: read_committed, "
		"owner: team-a, validation: \"reads on the target\", client: librdkafka, "
		"client_version: 2.8.0}\n"
		"gates:\n  max_lag_records: 1000000\n"
		"cutover:\n  fence: config\n  fence_owner: platform\n  quiet_period: 1s\n"
		"  waves:\n"
		"    - {name: w1, topics: [%s], groups: [%s], consumers: [reader-c], owner: team-a}\n",
		M, journal, src.bootstrap, tgt.bootstrap, C, G, G, C, G);
	char *p = tk_write_file(dir, "migration.yaml", text);
	free(text);
	return p;
}

static int rollback(const char *crash, json_t **evsp)
{
	const char *argv[] = {tk_kmigrate(), "rollback", "-p", plan, "--wave", "w1", "--json",
			      NULL};
	return tk_km_events(evsp, "KM_ROLLBACK_CRASH_AFTER", crash, argv);
}

/* Whether the committed records of C[0] on c hold offset off. */
static bool holds(const tk_cluster_t *c, int64_t off)
{
	tk_digests_t d;
	bool in = false;
	tk_digest_partition(c, C, 0, true, &d);
	for (size_t i = 0; i < d.n; i++)
		in = in || d.off[i] == off;
	tk_digests_free(&d);
	return in;
}

static int setup(void **state)
{
	int id = (int)getpid();
	const char *cfg[] = {"cleanup.policy", "compact", "min.cleanable.dirty.ratio", "0.01",
			     "min.compaction.lag.ms", "90000", NULL};
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_SOURCE");
	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	snprintf(C, sizeof(C), "rbc-%d.c", id);
	snprintf(G, sizeof(G), "g-rbc-%d", id);
	snprintf(M, sizeof(M), "it-rbc-%d", id);
	tk_create_topic(&src, C, 1, cfg);
	rd_kafka_t *p = tk_producer(&src, NULL);
	char k[16];
	for (int i = 0; i < 5; i++) {
		snprintf(k, sizeof(k), "pre-%d", i);
		tk_msg_t m = {.key = k, .value = "pre", .partition = 0};
		tk_produce(p, C, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	tk_commit(&src, G, C, 0, 2);
	dir = tk_tmpdir("rollback-compact");
	journal = km_asprintf("%s/kmigrate.db", dir);
	plan = write_plan();
	tk_ready_for_cutover(plan);
	return 0;
}

static void test_target_compacted(void **state)
{
	json_t *evs;
	(void)state;

	char *replog = km_asprintf("%s/replicate.log", dir);
	const char *rargv[] = {tk_kmigrate(), "replicate", "-p", plan, NULL};
	pid_t repl = tk_spawn(rargv, replog);
	assert_int_equal(tk_kmv(NULL, NULL, "cutover", "-p", plan, "--wave", "w1", NULL), 0);
	assert_int_equal(tk_wait_exit(repl, WAIT_MS), 0);
	free(replog);

	/* x1 at a, then x2; y and z roll the target's segments (segment.ms
	 * 1 s there only: the authority moved, no gate compares designs any
	 * more), so x1's segment is closed and the cleaner may take it. */
	tk_set_topic_config(&tgt, C, "segment.ms", "1000");
	int64_t a = tk_total_hwm(&tgt, C);
	const char *keys[] = {"x", "x", "y", "z"}, *vals[] = {"x1", "x2", "y", "z"};
	for (int i = 0; i < 4; i++) {
		rd_kafka_t *p = tk_producer(&tgt, NULL);
		tk_msg_t m = {.key = keys[i], .value = vals[i], .partition = 0};
		tk_produce(p, C, &m);
		tk_flush(p);
		rd_kafka_destroy(p);
		usleep(1200 * 1000);
	}
	tk_commit(&tgt, G, C, 0, a);

	/* To the reverse step: the source gets x1 and x2 back. */
	assert_int_equal(rollback("reverse", &evs), 137);
	json_decref(evs);
	/* Then the target's cleaner removes x1 (once it is 90 s old). */
	int64_t end = tk_mono_ms() + WAIT_MS;
	while (holds(&tgt, a) && tk_mono_ms() < end)
		sleep(2);
	assert_false(holds(&tgt, a));

	assert_int_equal(rollback(NULL, &evs), 0);
	json_decref(evs);
	/* The group resumes on the source at x1's copy: the first record it
	 * reads there is x1. */
	int64_t cs = tk_committed(&src, G, C, 0);
	tk_digests_t d;
	tk_digest_partition(&src, C, 0, true, &d);
	size_t i = 0;
	while (i < d.n && d.off[i] < cs)
		i++;
	assert_true(i + 1 < d.n);
	fprintf(stderr, "group %s: target %lld -> source %lld\n", C, (long long)a, (long long)cs);
	assert_int_equal(d.off[i], cs);
	tk_digests_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_target_compacted),
	};
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, setup, NULL);
}
