/*
 * test_cutover.c -- `kmigrate cutover` (gate, fence, drain, validate,
 * offsets, authority, switch) and `--verify` on real clusters.
 *
 * Source: the 'plain' cluster (Kafka 4.3, no authorizer), so the plan's
 * fence is `config` (the test clusters' authorizer source is plaintext with
 * ANONYMOUS a super user: an ACL fence could not be proven there, and
 * cutover does not build the acl fence yet).  Target: the 4.3 target.  One
 * estate for the file: topic A (2 partitions) in wave canary, topics B
 * and C in wave rest (C's log ends with a transaction's commit marker when
 * the rest wave drains).  Every command a migration runs before cutover runs first (as
 * test_gate.c does), then a replicator runs in the background for the rest
 * of the file, and real idempotent acks=all writers write A and B
 * continuously.
 *
 * Cases, in order: a gate NO-GO and a wave out of order each leave both
 * clusters untouched and journal no step, and --verify before the switch
 * is exit 1; then both waves with a crash (KM_CUTOVER_CRASH_AFTER, the
 * command's test hook) at every step in turn (canary: gate, fence-plan,
 * fence, offsets, authority-record, authority, switch; rest: gate, drain,
 * validate), a refusal at offsets while the group has a live member on the
 * target, and a final validation NO-GO on a stray target record (the fence
 * stays; a plan accepting one mismatch resumes there).  The re-runs
 * converge with one fact per step, the group's positions committed once,
 * and the authority topic's latest records the journaled ones.  After each
 * fence the live writer is refused (MSG_SIZE_TOO_LARGE) and the HWMs stay
 * still; after each switch the writer is re-pointed at the target and goes
 * on.  --verify is NO-GO before the clients move and GO after (a stale
 * writer still knocking on the source).  At the end an independent reader
 * finds every acknowledged record exactly once, in order, on the target,
 * and the source took nothing after its fence was proven.
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
#include <poll.h>
#include <unistd.h>

#include "journal.h"
#include "tk.h"
#include "util.h"

#define WAIT_MS 60000

static tk_cluster_t src, tgt;
static char A[64], B[64], C[64], G[64];
static char *plan, *dir, *journal, *replog;
static pid_t repl;
static tk_writer_t *wa, *wb;

static char *write_plan(const char *name, const char *gates)
{
	char *text = km_asprintf(
		"migration: it-cutover-%d\n"
		"source:\n  bootstrap: %s\n  owner: platform\n"
		"target:\n  bootstrap: %s\n  owner: platform\n"
		"topics:\n  include: [\"^%s$\", \"^%s$\", \"^%s$\"]\n"
		"  rules:\n    - {match: \".*\", owner: qa}\n"
		"consumer_groups:\n  - {id: %s, restart: translated, owner: team-a, chosen_by: qa}\n"
		"consumers:\n  - {name: reader-a, group: %s, isolation_level: read_committed, "
		"owner: team-a, validation: \"reads on the target\", client: librdkafka, "
		"client_version: 2.8.0}\n"
		"producers:\n"
		"  - {name: writer-a, topics: [%s], idempotence: yes, transactions: no, owner: team-a, "
		"validation: \"acks on the target\", client: librdkafka, client_version: 2.8.0}\n"
		"  - {name: writer-b, topics: [%s], idempotence: yes, transactions: no, owner: team-b, "
		"validation: \"acks on the target\", client: librdkafka, client_version: 2.8.0}\n"
		"gates:\n%s"
		"cutover:\n  fence: config\n  fence_owner: platform\n  quiet_period: 1s\n"
		"  waves:\n"
		"    - {name: canary, topics: [%s], groups: [%s], consumers: [reader-a], "
		"producers: [writer-a], owner: team-a}\n"
		"    - {name: rest, all: true, producers: [writer-b]}\n",
		(int)getpid(), src.bootstrap, tgt.bootstrap, A, B, C, G, G, A, B, gates, A, G);
	char *p = tk_write_file(dir, name, text);
	free(text);
	return p;
}
/* Runs `kmigrate cutover -p p --wave w --json [extra]` (extra: options
 * separated by spaces) with the crash hook set to crash (NULL: unset);
 * @returns the exit status, *evsp (if given) the JSON lines. */
static int cutover(const char *p, const char *w, const char *extra, const char *crash,
		   json_t **evsp)
{
	const char *argv[12] = {tk_kmigrate(), "cutover", "-p", p, "--wave", w, "--json"};
	char *ex = extra ? km_strdup(extra) : NULL, *sv = NULL;
	int a = 7;
	for (char *t = ex ? strtok_r(ex, " ", &sv) : NULL; t && a < 11; t = strtok_r(NULL, " ", &sv))
		argv[a++] = t;
	int rc = tk_km_events(evsp, "KM_CUTOVER_CRASH_AFTER", crash, argv);
	free(ex);
	return rc;
}
static const char *state_of(const json_t *evs, const char *step)
{
	return tk_event_state(evs, step);
}
static int facts(const char *kind, const char *prefix)
{
	return tk_journal_count(journal, kind, prefix);
}
/* The body of the step fact of wave/step (a new reference), or NULL. */
static json_t *step_body(const char *wave, const char *step)
{
	char subj[200];
	snprintf(subj, sizeof(subj), "wave:%s step:%s", wave, step);
	return tk_journal_body(journal, "cutover.step", subj);
}

/* The group G, reading A on the target from the positions cutover
 * committed, reads exactly the source's records from G's committed source
 * positions on: no duplicate, no skip. */
static void assert_group_resumes(void)
{
	const int64_t committed[2] = {5, 7};
	tk_digests_t t[2];

	tk_group_read(&tgt, G, A, 2, t);
	for (int p = 0; p < 2; p++) {
		tk_digests_t s;
		size_t k = 0;
		tk_digest_partition(&src, A, p, true, &s);
		while (k < s.n && s.off[k] < committed[p])
			k++;
		assert_true(s.n > k);
		assert_int_equal(t[p].n, s.n - k);
		for (size_t i = 0; i < t[p].n; i++)
			assert_true(t[p].d[i] == s.d[k + i]);
		tk_digests_free(&s);
		tk_digests_free(&t[p]);
	}
}

static int step_facts(const char *wave, const char *step)
{
	char p[200];
	snprintf(p, sizeof(p), "wave:%s step:%s", wave, step);
	return facts("cutover.step", p);
}

/* The topic override of max.message.bytes on the source, or NULL. */
static char *fence_config(const char *topic)
{
	json_t *cs = tk_topic_config_sources(&src, topic);
	json_t *c = json_object_get(cs, "max.message.bytes");
	const char *from = json_string_value(json_object_get(c, "source"));
	const char *val = json_string_value(json_object_get(c, "value"));
	char *v = from && !strcmp(from, "topic") && val ? km_strdup(val) : NULL;
	json_decref(cs);
	return v;
}

/* One record (key = value = text) to topic[0] on c. */
static void produce_one(const tk_cluster_t *c, const char *topic, const char *text)
{
	rd_kafka_t *p = tk_producer(c, NULL);
	tk_msg_t m = {.key = text, .value = text, .partition = 0};
	tk_produce(p, topic, &m);
	tk_flush(p);
	rd_kafka_destroy(p);
}

/* n records to topic[0] on the source in one committed transaction. */
static void commit_txn(const char *topic, int n)
{
	char txn[80];
	snprintf(txn, sizeof(txn), "it-cutover-%d", (int)getpid());
	int64_t end = tk_total_hwm(&src, topic) + n + 1, deadline = tk_mono_ms() + WAIT_MS;
	rd_kafka_t *tp = tk_producer(&src, txn);
	assert_null(rd_kafka_begin_transaction(tp));
	for (int i = 0; i < n; i++) {
		tk_msg_t m = {.key = "k", .value = "txn", .partition = 0};
		tk_produce(tp, topic, &m);
	}
	assert_null(rd_kafka_commit_transaction(tp, WAIT_MS));
	rd_kafka_destroy(tp);
	/* The commit returns before the coordinator writes the marker: wait
	 * for it (until then the transaction is open on the partition). */
	while (tk_total_hwm(&src, topic) < end && tk_mono_ms() < deadline)
		poll(NULL, 0, 100);
	assert_int_equal(tk_total_hwm(&src, topic), end);
}

static void hwms(int64_t out[4])
{
	out[0] = tk_total_hwm(&src, A);
	out[1] = tk_total_hwm(&src, B);
	out[2] = tk_total_hwm(&tgt, A);
	out[3] = tk_total_hwm(&tgt, B);
}

static int setup(void **state)
{
	int id = (int)getpid();
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_PLAIN");
	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	snprintf(A, sizeof(A), "co-%d.a", id);
	snprintf(B, sizeof(B), "co-%d.b", id);
	snprintf(C, sizeof(C), "co-%d.c", id);
	snprintf(G, sizeof(G), "g-cutover-%d", id);
	tk_create_topic(&src, A, 2, NULL);
	tk_create_topic(&src, B, 1, NULL);
	tk_create_topic(&src, C, 1, NULL);
	produce_one(&src, C, "plain");
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
	dir = tk_tmpdir("cutover");
	journal = km_asprintf("%s/kmigrate.db", dir);
	replog = km_asprintf("%s/replicate.log", dir);
	/* Lag is measured while the producers write: the threshold lets the
	 * gate be GO with the replicator a little behind. */
	plan = write_plan("migration.yaml", "  max_lag_records: 1000000\n");
	/* Exit 1: the finding "no authorizer, ACLs cannot fence" (this file
	 * uses the config fence). */
	tk_km(plan, "inventory", NULL, NULL, 1, NULL);
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
	if (wa)
		tk_writer_stop(wa);
	if (wb)
		tk_writer_stop(wb);
	if (repl > 0) {
		kill(repl, SIGTERM);
		tk_wait_exit(repl, WAIT_MS);
	}
	return 0;
}

/* A gate that is NO-GO (lag over 0 records with records written after the
 * catch-up), and a wave whose predecessor is not complete: exit 1, no
 * fence, no step journaled, both clusters untouched. */
static void test_nogo_untouched(void **state)
{
	int64_t before[4], after[4];
	json_t *evs;
	(void)state;

	char *strict = write_plan("strict.yaml", "  max_lag_records: 0\n");
	produce_one(&src, A, "late");

	hwms(before);
	assert_int_equal(cutover(strict, "canary", NULL, NULL, &evs), 1);
	assert_string_equal(state_of(evs, "gate"), "nogo");
	assert_null(state_of(evs, "fence"));
	json_decref(evs);
	assert_int_equal(cutover(plan, "rest", NULL, NULL, &evs), 1);
	assert_string_equal(state_of(evs, "gate"), "nogo");
	json_decref(evs);
	hwms(after);
	assert_memory_equal(before, after, sizeof(before));
	assert_null(fence_config(A));
	assert_null(fence_config(B));
	assert_int_equal(facts("cutover.step", "wave:"), 0);
	assert_int_equal(facts("cutover.fence", "wave:"), 0);
	/* A dry run shows each step and changes nothing. */
	assert_int_equal(cutover(plan, "canary", "--dry-run", NULL, &evs), 0);
	assert_string_equal(state_of(evs, "gate"), "would");
	assert_string_equal(state_of(evs, "fence"), "would");
	assert_string_equal(state_of(evs, "drain"), "would");
	assert_string_equal(state_of(evs, "validate"), "would");
	assert_string_equal(state_of(evs, "offsets"), "would");
	assert_string_equal(state_of(evs, "authority"), "would");
	assert_string_equal(state_of(evs, "switch"), "would");
	json_decref(evs);
	assert_null(fence_config(A));
	/* --verify before the switch: exit 1 naming the next step, nothing
	 * journaled. */
	assert_int_equal(cutover(plan, "canary", "--verify --verify-window 1", NULL, &evs), 1);
	assert_string_equal(state_of(evs, "verify"), "nogo");
	json_decref(evs);
	assert_int_equal(facts("cutover.step", "wave:"), 0);
	free(strict);
}

/* The evidence of the last non-start event of step (borrowed), or NULL. */
static json_t *evidence_of(const json_t *evs, const char *step)
{
	json_t *e, *ev = NULL;
	size_t i;
	json_array_foreach(evs, i, e) {
		const char *s = json_string_value(json_object_get(e, "step"));
		const char *x = json_string_value(json_object_get(e, "state"));
		if (s && !strcmp(s, step) && x && strcmp(x, "start"))
			ev = json_object_get(e, "evidence");
	}
	return ev;
}

/* The value of the last record of topic[0] on c (owned), or NULL. */
static char *last_value(const tk_cluster_t *c, const char *topic)
{
	rd_kafka_conf_t *cf = tk_conf(c);
	rd_kafka_t *rk;
	int64_t lo, hi, deadline = tk_mono_ms() + WAIT_MS;
	char e[256], *v = NULL;

	tk_conf_set(cf, "group.id", "it-cutover-last");
	tk_conf_set(cf, "enable.auto.commit", "false");
	if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, cf, e, sizeof(e))))
		fail_msg("consumer: %s", e);
	if (rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, 10000))
		fail_msg("watermarks of %s", topic);
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(tp, topic, 0)->offset = hi - 1;
	rd_kafka_assign(rk, tp);
	rd_kafka_topic_partition_list_destroy(tp);
	while (!v && tk_mono_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		if (m && !m->err)
			v = km_asprintf("%.*s", (int)m->len, (const char *)m->payload);
		if (m)
			rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return v;
}

/* The group G's committed target positions equal what the offsets step
 * journaled: committed once, at the positions of its fact. */
static void assert_offsets_as_journaled(void)
{
	json_t *b = step_body("canary", "offsets"), *r;
	size_t i;
	json_array_foreach(json_object_get(json_array_get(json_object_get(b, "groups"), 0),
					   "positions"),
			   i, r)
		assert_int_equal(tk_committed(&tgt, G, A,
					      (int)json_integer_value(json_object_get(r, "partition"))),
				 json_integer_value(json_object_get(r, "target_offset")));
	json_decref(b);
}

/* The verdict of check name in a verify event's evidence. */
static const char *check_verdict(const json_t *evs, const char *name)
{
	json_t *c;
	size_t i;
	json_array_foreach(json_object_get(evidence_of(evs, "verify"), "checks"), i, c)
		if (!strcmp(json_string_value(json_object_get(c, "check")), name))
			return json_string_value(json_object_get(c, "verdict"));
	return NULL;
}

/* Sum of the drain fact's HWMs of topic. */
static int64_t drained(const char *wave, const char *topic)
{
	json_t *b = step_body(wave, "drain"), *r;
	int64_t sum = 0;
	size_t i;
	json_array_foreach(json_object_get(b, "partitions"), i, r)
		if (!strcmp(json_string_value(json_object_get(r, "topic")), topic))
			sum += json_integer_value(json_object_get(r, "hwm"));
	json_decref(b);
	return sum;
}

/* Both waves, with a crash at every step in turn (canary: gate,
 * fence-plan, fence, offsets, authority-record, authority, switch; rest:
 * drain, validate), while the replicator runs and the application writers
 * of A and B write; each writer is re-pointed at the target after its
 * wave's switch and goes on. */
static void test_go_with_crashes(void **state)
{
	json_t *evs;
	(void)state;

	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, NULL};
	repl = tk_spawn(argv, replog);
	wa = tk_writer_start(&src, A, NULL);
	wb = tk_writer_start(&src, B, NULL);
	assert_true(tk_writer_wait(wa, 20, 0, WAIT_MS));
	assert_true(tk_writer_wait(wb, 20, 0, WAIT_MS));

	/* kill -9 right after each journaled step: the re-run resumes at the
	 * next one. */
	assert_int_equal(cutover(plan, "canary", NULL, "gate", NULL), 137);
	assert_int_equal(step_facts("canary", "gate"), 1);
	assert_int_equal(step_facts("canary", "fence"), 0);

	assert_int_equal(cutover(plan, "canary", NULL, "fence-plan", &evs), 137);
	assert_string_equal(state_of(evs, "gate"), "already-done");
	json_decref(evs);
	assert_int_equal(facts("cutover.fence", "wave:canary"), 1);
	/* Journaled before applied: the crash came before the change. */
	assert_null(fence_config(A));

	assert_int_equal(cutover(plan, "canary", NULL, "fence", NULL), 137);
	assert_int_equal(facts("cutover.fence", "wave:canary"), 1); /* the journaled plan */
	assert_int_equal(step_facts("canary", "fence"), 1);
	char *v = fence_config(A);
	assert_non_null(v);
	assert_string_equal(v, "0");
	free(v);
	tk_writer_assert_fenced(wa, &src, A, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, WAIT_MS);
	/* What the source holds of A once the fence is proven: nothing more
	 * may be accepted there, to the end of the file. */
	int64_t src_a = tk_total_hwm(&src, A);

	/* Through drain and validate; a live member of the group on the
	 * target stops it at offsets: exit 1, nothing of the step journaled. */
	pid_t member = tk_member_start(&tgt, G, A, "live-on-target");
	assert_int_equal(cutover(plan, "canary", NULL, NULL, &evs), 1);
	assert_string_equal(state_of(evs, "gate"), "already-done");
	assert_string_equal(state_of(evs, "fence"), "already-done");
	assert_string_equal(state_of(evs, "drain"), "done");
	assert_string_equal(state_of(evs, "validate"), "done");
	assert_string_equal(state_of(evs, "offsets"), "nogo");
	json_decref(evs);
	assert_int_equal(step_facts("canary", "offsets"), 0);
	assert_int_equal(tk_committed(&tgt, G, A, 0), -1);
	tk_member_stop(member);
	assert_int_equal(drained("canary", A), src_a);

	/* Offsets once the member is gone, then a crash. */
	assert_int_equal(cutover(plan, "canary", NULL, "offsets", &evs), 137);
	assert_string_equal(state_of(evs, "validate"), "already-done");
	assert_string_equal(state_of(evs, "offsets"), "done");
	assert_null(state_of(evs, "authority"));
	json_decref(evs);
	json_t *b = step_body("canary", "validate");
	assert_string_equal(json_string_value(json_object_get(b, "verdict")), "GO");
	json_decref(b);
	b = step_body("canary", "offsets");
	json_t *g0 = json_array_get(json_object_get(b, "groups"), 0);
	assert_string_equal(json_string_value(json_object_get(g0, "group")), G);
	assert_int_equal(json_array_size(json_object_get(g0, "positions")), 2);
	json_decref(b);
	assert_group_resumes();
	assert_offsets_as_journaled();

	/* The authority records written and read back, then a crash before
	 * their fact: the step is not done, the re-run writes them again. */
	char atopic[300];
	snprintf(atopic, sizeof(atopic), "__kmigrate.it-cutover-%d.authority", (int)getpid());
	assert_int_equal(cutover(plan, "canary", NULL, "authority-record", &evs), 137);
	assert_string_equal(state_of(evs, "offsets"), "already-done");
	assert_null(state_of(evs, "authority"));
	json_decref(evs);
	assert_int_equal(step_facts("canary", "authority"), 0);
	assert_int_equal(tk_total_hwm(&tgt, atopic), 1);

	assert_int_equal(cutover(plan, "canary", NULL, "authority", &evs), 137);
	assert_string_equal(state_of(evs, "offsets"), "already-done");
	assert_string_equal(state_of(evs, "authority"), "done");
	json_decref(evs);
	/* The crashed run's record and the re-run's: the latest is the
	 * journaled one (compaction keeps it). */
	assert_int_equal(tk_total_hwm(&tgt, atopic), 2);
	b = step_body("canary", "authority");
	json_t *ra = json_object_get(json_object_get(b, "records"), A);
	assert_string_equal(json_string_value(json_object_get(ra, "authority")), "target");
	assert_string_equal(json_string_value(json_object_get(ra, "wave")), "canary");
	char *lv = last_value(&tgt, atopic), *want = km_asprintf(
		"\"run_id\":%lld", (long long)json_integer_value(json_object_get(ra, "run_id")));
	assert_non_null(lv);
	assert_non_null(strstr(lv, want));
	free(lv);
	free(want);
	json_decref(b);

	/* The switch instructions, journaled, then a crash. */
	assert_int_equal(cutover(plan, "canary", NULL, "switch", &evs), 137);
	assert_string_equal(state_of(evs, "authority"), "already-done");
	assert_string_equal(state_of(evs, "switch"), "done");
	json_t *sw = evidence_of(evs, "switch");
	assert_string_equal(json_string_value(json_object_get(sw, "bootstrap")), tgt.bootstrap);
	json_t *p0 = json_array_get(json_object_get(sw, "producers"), 0);
	assert_string_equal(json_string_value(json_object_get(p0, "name")), "writer-a");
	assert_string_equal(json_string_value(json_object_get(p0, "owner")), "team-a");
	assert_string_equal(json_string_value(json_object_get(p0, "validation")),
			    "acks on the target");
	assert_string_equal(json_string_value(json_array_get(json_object_get(p0, "target_topics"), 0)),
			    A);
	json_t *c0 = json_array_get(json_object_get(sw, "consumers"), 0);
	assert_string_equal(json_string_value(json_object_get(c0, "name")), "reader-a");
	assert_string_equal(json_string_value(json_object_get(c0, "validation")),
			    "reads on the target");
	assert_int_equal(json_array_size(json_object_get(sw, "target_hwms")), 2);
	json_decref(evs);
	/* A re-run of a finished wave does nothing again and shows the
	 * instructions again. */
	assert_int_equal(cutover(plan, "canary", NULL, NULL, &evs), 0);
	assert_string_equal(state_of(evs, "switch"), "already-done");
	assert_non_null(evidence_of(evs, "switch"));
	json_decref(evs);
	const char *steps[] = {"gate",    "fence",     "drain", "validate",
			       "offsets", "authority", "switch"};
	for (size_t i = 0; i < 7; i++)
		assert_int_equal(step_facts("canary", steps[i]), 1);
	assert_int_equal(tk_total_hwm(&tgt, atopic), 2);
	assert_offsets_as_journaled(); /* not committed twice */
	/* Still fenced, and the rest wave's producer was never stopped. */
	tk_writer_assert_fenced(wa, &src, A, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, WAIT_MS);
	assert_null(fence_config(B));
	tk_writer_stats_t sb;
	tk_writer_stats(wb, &sb);
	assert_true(tk_writer_wait(wb, sb.acked + 5, 0, WAIT_MS));

	/* --verify before the clients moved: NO-GO, each failed check named,
	 * the verdict journaled. */
	assert_int_equal(cutover(plan, "canary", "--verify --verify-window 2", NULL, &evs), 1);
	assert_string_equal(state_of(evs, "verify"), "nogo");
	assert_string_equal(check_verdict(evs, "target_writes"), "NO-GO");
	assert_string_equal(check_verdict(evs, "groups_consume"), "NO-GO");
	assert_string_equal(check_verdict(evs, "source_fenced"), "GO");
	assert_string_equal(check_verdict(evs, "no_stale_writes"), "GO");
	json_decref(evs);
	assert_int_equal(step_facts("canary", "verify"), 1);

	/* The application moves: the writer re-pointed at the target goes on,
	 * the reader's group consumes there; a stale instance of the writer
	 * left on the source fails fast with a non-retriable error. */
	tk_writer_repoint(wa, &tgt);
	tk_writer_stats_t sa;
	tk_writer_stats(wa, &sa);
	assert_true(tk_writer_wait(wa, sa.acked + 20, 0, WAIT_MS));
	tk_writer_t *stale = tk_writer_start(&src, A, NULL);
	tk_writer_assert_fenced(stale, &src, A, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, WAIT_MS);
	pid_t reader = tk_member_start_committing(&tgt, G, A, "reader-a");
	int64_t deadline = tk_mono_ms() + WAIT_MS;
	b = step_body("canary", "offsets");
	json_t *pos0 = json_array_get(
		json_object_get(json_array_get(json_object_get(b, "groups"), 0), "positions"), 0);
	int64_t from = json_integer_value(json_object_get(pos0, "target_offset"));
	int part = (int)json_integer_value(json_object_get(pos0, "partition"));
	json_decref(b);
	while (tk_committed(&tgt, G, A, part) <= from && tk_mono_ms() < deadline)
		poll(NULL, 0, 200);
	assert_true(tk_committed(&tgt, G, A, part) > from);
	/* GO while the stale writer keeps knocking on the source. */
	assert_int_equal(cutover(plan, "canary", "--verify --verify-window 5", NULL, &evs), 0);
	assert_string_equal(state_of(evs, "verify"), "go");
	assert_string_equal(check_verdict(evs, "groups_lag"), "GO");
	json_decref(evs);
	assert_int_equal(step_facts("canary", "verify"), 2);

	/* The rest wave (its predecessor is complete) up to the drain; then a
	 * stray record on the target makes the final validation NO-GO: exit
	 * 1, the step not journaled, the source stays fenced. */
	assert_int_equal(cutover(plan, "rest", NULL, "gate", &evs), 137);
	assert_string_equal(state_of(evs, "gate"), "done");
	json_decref(evs);
	/* After the gate, C takes a committed transaction: its log now ends
	 * with the commit marker, which the replicator's committed progress
	 * never passes (it moves with the records it copies).  The drain
	 * completes all the same: nothing is left to copy there. */
	commit_txn(C, 3);
	assert_int_equal(cutover(plan, "rest", "--drain-timeout 30", "drain", &evs), 137);
	assert_string_equal(state_of(evs, "gate"), "already-done");
	assert_string_equal(state_of(evs, "fence"), "done");
	assert_string_equal(state_of(evs, "drain"), "done");
	json_decref(evs);
	int64_t src_b = tk_total_hwm(&src, B);
	assert_int_equal(drained("rest", B), src_b);
	produce_one(&tgt, B, "stray");
	assert_int_equal(cutover(plan, "rest", NULL, NULL, &evs), 1);
	assert_string_equal(state_of(evs, "validate"), "nogo");
	assert_null(state_of(evs, "offsets"));
	json_decref(evs);
	assert_int_equal(step_facts("rest", "validate"), 0);
	v = fence_config(B);
	assert_non_null(v);
	assert_string_equal(v, "0");
	free(v);
	/* Accepting one mismatch (the plan's gate), the re-run resumes at the
	 * validation and goes through, with a crash after it. */
	char *lenient = write_plan("lenient.yaml", "  max_lag_records: 1000000\n"
						   "  max_mismatches: 1\n");
	assert_int_equal(cutover(lenient, "rest", NULL, "validate", &evs), 137);
	assert_string_equal(state_of(evs, "drain"), "already-done");
	assert_string_equal(state_of(evs, "validate"), "done");
	json_decref(evs);
	assert_int_equal(cutover(lenient, "rest", NULL, NULL, &evs), 0);
	assert_string_equal(state_of(evs, "validate"), "already-done");
	assert_string_equal(state_of(evs, "offsets"), "done");
	assert_string_equal(state_of(evs, "authority"), "done");
	assert_string_equal(state_of(evs, "switch"), "done");
	json_decref(evs);
	tk_writer_assert_fenced(wb, &src, B, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, WAIT_MS);
	/* Nine steps: issue 10's seven and the two Connect steps (issue 14),
	 * which journal {"connectors": []} for a plan without Connect. */
	assert_int_equal(facts("cutover.step", "wave:rest"), 9);
	/* One record per wave topic (B, C), and the canary's two. */
	assert_int_equal(tk_total_hwm(&tgt, atopic), 4);
	assert_int_equal(facts("cutover.fence", "wave:rest"), 1);

	tk_writer_repoint(wb, &tgt);
	tk_writer_stats(wb, &sb);
	assert_true(tk_writer_wait(wb, sb.acked + 20, 0, WAIT_MS));
	/* C's producer (transactional, occasional) writes once, on the target. */
	produce_one(&tgt, C, "after");
	assert_int_equal(cutover(lenient, "rest", "--verify --verify-window 2", NULL, &evs), 0);
	assert_string_equal(state_of(evs, "verify"), "go");
	json_decref(evs);
	free(lenient);

	/* The end: every acknowledged record of each writer exactly once, in
	 * order, on the target (an independent reader), and none accepted by
	 * the source after its fence was proven. */
	tk_writer_stop(stale);
	tk_member_stop(reader);
	tk_writer_assert_acked_once(wa, &tgt, A);
	tk_writer_assert_acked_once(wb, &tgt, B);
	tk_writer_stats(wa, &sa);
	tk_writer_stats(wb, &sb);
	fprintf(stderr, "writer A: %lld acknowledged, %lld failed; writer B: %lld acknowledged, "
		"%lld failed\n", (long long)sa.acked, (long long)sa.failed, (long long)sb.acked,
		(long long)sb.failed);
	tk_writer_stop(wa);
	tk_writer_stop(wb);
	wa = wb = NULL;
	assert_int_equal(tk_total_hwm(&src, A), src_a);
	assert_int_equal(tk_total_hwm(&src, B), src_b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nogo_untouched),
		cmocka_unit_test(test_go_with_crashes),
	};
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
