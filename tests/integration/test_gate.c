/*
 * Gates on real clusters (source Kafka 3.9, target Kafka 4.3, both with
 * StandardAuthorizer).  One estate for the whole file: two topics, a canary
 * wave (topic A, group GA declared) and a rest wave (topic B).  The GO path
 * runs every command a migration runs before cutover -- inventory, plan,
 * apply, check, replicate --until-caught-up, validate, offsets -- and `gate
 * cutover --wave canary` must be GO with evidence from each.  Then each
 * NO-GO case: lag over threshold, a validation mismatch (a stray record on
 * the target), an undeclared group, stale evidence, a missing
 * cutover.fence, a producer or group that spans two waves (and a producer
 * writing outside the scope), no WRITE on the source for the rollback path (the
 * SASL_SSL cluster, read as alice), an unreachable cluster (exit 3, nothing
 * journaled); every
 * gate leaves both clusters' topics exactly as they were.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mapstore.h"
#include "tk.h"
#include "util.h"

static tk_cluster_t src, tgt;
static char A[64], B[64], GA[64], GB[64];
static char *plan, *dir;

/* The plan, with `extra_gates` inside gates: and `fence` as the
 * cutover.fence line (may be ""). */
static char *write_plan(const char *name, const char *extra_gates, const char *fence)
{
	char *text = km_asprintf(
		"migration: it-gate-%d\n"
		"source:\n  bootstrap: %s\n  owner: platform\n"
		"target:\n  bootstrap: %s\n  owner: platform\n"
		"topics:\n  include: [\"^%s$\", \"^%s$\"]\n"
		"  rules:\n    - {match: \".*\", owner: qa}\n"
		"consumer_groups:\n  - {id: %s, restart: translated, owner: team-a, chosen_by: qa}\n"
		"consumers:\n  - {name: reader-a, group: %s, isolation_level: read_committed, "
		"owner: team-a, validation: \"reads on the target\", client: librdkafka, client_version: 2.8.0}\n"
		"gates:\n  max_lag_records: 0\n%s"
		"cutover:\n%s"
		"  waves:\n"
		"    - {name: canary, topics: [%s], groups: [%s], consumers: [reader-a], owner: "
		"team-a}\n"
		"    - {name: rest, all: true}\n",
		(int)getpid(), src.bootstrap, tgt.bootstrap, A, B, GA, GA, extra_gates, fence, A, GA);
	char *p = tk_write_file(dir, name, text);
	free(text);
	return p;
}

/* Runs `kmigrate gate -p p NAME [--wave W] --json`; @returns the report
 * (owned), *rcp the exit status. */
static json_t *gate_json(const char *p, const char *name, const char *wave, int *rcp)
{
	const char *argv[] = {tk_kmigrate(), "gate", "-p", p, name, "--json",
			      wave ? "--wave" : NULL, wave, NULL};
	char *out, *err;
	*rcp = tk_run(&out, &err, argv);
	json_t *j = tk_json(out);
	free(out);
	free(err);
	return j;
}

static const json_t *crit(const json_t *rep, const char *name)
{
	json_t *c;
	size_t i;
	json_array_foreach(json_object_get(rep, "criteria"), i, c)
		if (!strcmp(json_string_value(json_object_get(c, "name")), name))
			return c;
	char *s = json_dumps(rep, JSON_INDENT(1));
	fail_msg("no criterion %s in %s", name, s);
	return NULL;
}

static const char *verdict(const json_t *c)
{
	return json_string_value(json_object_get(c, "verdict"));
}

static void assert_crit(const json_t *rep, const char *name, const char *want, const char *reason)
{
	const json_t *c = crit(rep, name);
	const char *r = json_string_value(json_object_get(c, "reason"));
	if (strcmp(verdict(c), want) || (reason && (!r || !strstr(r, reason)))) {
		char *s = json_dumps(c, JSON_INDENT(1));
		fail_msg("criterion %s: want %s%s%s, got %s", name, want, reason ? " with reason ~ " : "",
			 reason ? reason : "", s);
	}
}

/* Every partition's high watermark of both topics on both clusters: what
 * "untouched" means here (a gate must change no topic). */
static void hwms(int64_t out[4])
{
	out[0] = tk_total_hwm(&src, A);
	out[1] = tk_total_hwm(&src, B);
	out[2] = tk_total_hwm(&tgt, A);
	out[3] = tk_total_hwm(&tgt, B);
}

static void assert_untouched(const int64_t before[4])
{
	int64_t after[4];
	hwms(after);
	for (int i = 0; i < 4; i++)
		if (after[i] != before[i])
			fail_msg("a gate changed a topic: high watermark sum %d went %lld -> %lld", i,
				 (long long)before[i], (long long)after[i]);
}

static void produce(const char *topic, int partitions, int n, const char *tag)
{
	rd_kafka_t *p = tk_producer(&src, NULL);
	char key[32], val[64];
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		snprintf(val, sizeof(val), "%s-%d", tag, i);
		tk_msg_t m = {.key = key, .value = val, .partition = i % partitions};
		tk_produce(p, topic, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
}

/* How many gate.<name> facts the journal holds (from `status --json`). */
static long long gate_facts(const char *p, const char *kind)
{
	const char *argv[] = {tk_kmigrate(), "status", "-p", p, "--json", NULL};
	char *out, *err;
	long long n = 0;
	json_t *f;
	size_t i;
	assert_int_equal(tk_run(&out, &err, argv), 0);
	json_t *j = tk_json(out);
	json_array_foreach(json_object_get(j, "facts"), i, f)
		if (!strcmp(json_string_value(json_object_get(f, "kind")), kind))
			n += json_integer_value(json_object_get(f, "subjects"));
	json_decref(j);
	free(out);
	free(err);
	return n;
}

static int setup(void **state)
{
	int id = (int)getpid();
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_SOURCE");
	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	snprintf(A, sizeof(A), "gt-%d.a", id);
	snprintf(B, sizeof(B), "gt-%d.b", id);
	snprintf(GA, sizeof(GA), "g-gate-a-%d", id);
	snprintf(GB, sizeof(GB), "g-gate-b-%d", id);
	tk_create_topic(&src, A, 2, NULL);
	tk_create_topic(&src, B, 1, NULL);
	produce(A, 2, 40, "a");
	produce(B, 1, 10, "b");
	tk_commit(&src, GA, A, 0, 5);
	tk_commit(&src, GA, A, 1, 7);
	dir = tk_tmpdir("gate");
	plan = write_plan("migration.yaml", "", "  fence: acl\n  fence_owner: platform\n");
	return 0;
}

/* Every step of a migration before cutover, then gate cutover for the
 * canary wave: GO, each criterion with its evidence, journaled. */
static void test_go(void **state)
{
	int rc;
	int64_t before[4];
	(void)state;

	tk_km(plan, "inventory", NULL, NULL, 0, NULL);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	tk_km(plan, "check", NULL, NULL, 0, NULL);
	tk_catch_up(plan, 120000, NULL);
	tk_km(plan, "validate", NULL, NULL, 0, NULL);
	tk_km(plan, "offsets", NULL, NULL, 0, NULL);

	hwms(before);
	json_t *rep = gate_json(plan, "cutover", "canary", &rc);
	if (rc != 0) {
		char *s = json_dumps(rep, JSON_INDENT(1));
		fail_msg("gate cutover --wave canary: exit %d, want 0 (GO): %s", rc, s);
	}
	assert_string_equal(json_string_value(json_object_get(rep, "verdict")), "GO");
	assert_string_equal(json_string_value(json_object_get(rep, "wave")), "canary");
	/* Only the wave's topic. */
	assert_int_equal(json_array_size(json_object_get(rep, "topics")), 1);
	static const char *const want[] = {
		"design.blocked", "design.applied", "design.topics", "compatibility.check",
		"replication.lag_records", "replication.lag_seconds", "replication.no_loss",
		"validation.mismatches", "rollback.source_readable", "rollback.source_writable",
		"rollback.fence", "cutover.inventory", "cutover.owner"};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_crit(rep, want[i], "GO", NULL);
	char gname[120];
	snprintf(gname, sizeof(gname), "offsets.group:%s", GA);
	assert_crit(rep, gname, "GO", NULL);
	/* Evidence names the command and the journal rows. */
	const json_t *ev = json_object_get(crit(rep, "validation.mismatches"), "evidence");
	assert_string_equal(json_string_value(json_object_get(ev, "command")), "validate");
	assert_true(json_is_integer(json_object_get(ev, "run_id")));
	assert_true(json_is_integer(json_object_get(ev, "fact_id")));
	assert_true(json_is_string(json_object_get(ev, "measured_at")));
	assert_string_equal(json_string_value(json_object_get(crit(rep, gname), "owner")), "team-a");
	assert_string_equal(json_string_value(json_object_get(crit(rep, "design.applied"), "owner")),
			    "team-a");
	json_decref(rep);
	assert_untouched(before);
	/* The verdict is journaled. */
	assert_true(gate_facts(plan, "gate.cutover") >= 1);
}

/* Records written after the replicator caught up: lag over 0 records. */
static void test_nogo_lag(void **state)
{
	int rc;
	int64_t before[4];
	(void)state;

	produce(A, 2, 6, "late");
	hwms(before);
	json_t *rep = gate_json(plan, "replication", "canary", &rc);
	assert_int_equal(rc, 1);
	assert_crit(rep, "replication.lag_records", "NO-GO", "6 records not yet copied");
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(crit(rep, "replication.lag_records"), "measured"),
				 "records")),
			 6);
	assert_crit(rep, "replication.lag_seconds", "GO", NULL);
	json_decref(rep);
	assert_untouched(before);
	/* Caught up again: GO. */
	tk_catch_up(plan, 120000, NULL);
	rep = gate_json(plan, "replication", "canary", &rc);
	assert_int_equal(rc, 0);
	json_decref(rep);
}

/* A stray record on the target's rest-wave topic: validate counts it, the
 * rest wave's validation is NO-GO, the canary's stays GO. */
/* A partition whose last entries are a transaction's marker (commit) and
 * an aborted transaction with its marker: nothing there is left to copy,
 * so the replicator's committed progress must reach the high watermark
 * (the cutover's drain waits for exactly that) and the lag is 0. */
static void test_trailing_markers_no_lag(void **state)
{
	int rc;
	char txid[64];
	(void)state;

	snprintf(txid, sizeof(txid), "gate-tx-%d", (int)getpid());
	rd_kafka_t *p = tk_producer(&src, txid);
	rd_kafka_error_t *e;
	for (int round = 0; round < 2; round++) {
		if ((e = rd_kafka_begin_transaction(p)))
			fail_msg("begin_transaction: %s", rd_kafka_error_string(e));
		for (int i = 0; i < 3; i++) {
			tk_msg_t m = {.key = "tx", .value = round ? "aborted" : "committed",
				      .partition = 0};
			tk_produce(p, B, &m);
		}
		tk_flush(p); /* written, then committed or aborted */
		e = round ? rd_kafka_abort_transaction(p, 30000)
			  : rd_kafka_commit_transaction(p, 30000);
		if (e)
			fail_msg("end transaction: %s", rd_kafka_error_string(e));
	}
	rd_kafka_destroy(p);
	tk_catch_up(plan, 120000, NULL);
	json_t *rep = gate_json(plan, "replication", NULL, &rc);
	assert_crit(rep, "replication.lag_records", "GO", NULL);
	assert_int_equal(rc, 0);
	json_decref(rep);
}

static void test_nogo_validation_mismatch(void **state)
{
	int rc;
	int64_t before[4];
	(void)state;

	rd_kafka_t *p = tk_producer(&tgt, NULL);
	tk_msg_t m = {.key = "stray", .value = "written on the target", .partition = 0};
	tk_produce(p, B, &m);
	tk_flush(p);
	rd_kafka_destroy(p);
	tk_km(plan, "validate", NULL, NULL, 1, NULL);

	hwms(before);
	json_t *rep = gate_json(plan, "validation", "rest", &rc);
	assert_int_equal(rc, 1);
	assert_crit(rep, "validation.mismatches", "NO-GO", "mismatches on the wave's topics");
	json_decref(rep);
	rep = gate_json(plan, "validation", "canary", &rc);
	assert_int_equal(rc, 0);
	json_decref(rep);
	assert_untouched(before);
}

/* A group with commits on the rest wave's topic that the plan does not
 * declare: unknown, so NO-GO, never a default policy. */
static void test_nogo_undeclared_group(void **state)
{
	int rc;
	int64_t before[4];
	char name[120];
	(void)state;

	tk_commit(&src, GB, B, 0, 3);
	tk_km(plan, "offsets", NULL, NULL, 0, NULL);
	hwms(before);
	json_t *rep = gate_json(plan, "offsets", "rest", &rc);
	assert_int_equal(rc, 1);
	snprintf(name, sizeof(name), "offsets.group:%s", GB);
	assert_crit(rep, name, "NO-GO", "is not declared in consumer_groups");
	assert_true(json_is_null(json_object_get(crit(rep, name), "owner")));
	json_decref(rep);
	rep = gate_json(plan, "offsets", "canary", &rc);
	assert_int_equal(rc, 0);
	json_decref(rep);
	assert_untouched(before);
}

/* gates.max_evidence_age: 1 -- the evidence ages past it: NO-GO, stale. */
static void test_nogo_stale(void **state)
{
	int rc = 0;
	int64_t before[4];
	json_t *rep = NULL;
	(void)state;

	char *stale = write_plan("stale.yaml", "  max_evidence_age: 1\n",
				 "  fence: acl\n  fence_owner: platform\n");
	hwms(before);
	/* Wait on the condition, not a sleep: the check run is stale once it
	 * is more than a second old. */
	int64_t deadline = tk_mono_ms() + 60000;
	for (;;) {
		rep = gate_json(stale, "compatibility", "canary", &rc);
		const char *r = json_string_value(
			json_object_get(crit(rep, "compatibility.check"), "reason"));
		if (rc == 1 && r && strstr(r, "stale"))
			break;
		if (tk_mono_ms() > deadline)
			fail_msg("compatibility never became stale with max_evidence_age 1");
		json_decref(rep);
		poll(NULL, 0, 500);
	}
	assert_crit(rep, "compatibility.check", "NO-GO", "gates.max_evidence_age (1 s)");
	json_decref(rep);
	assert_untouched(before);
	free(stale);
}

/* No cutover.fence: rollback-ready is NO-GO (unknown), the rest GO. */
static void test_nogo_no_fence(void **state)
{
	int rc;
	int64_t before[4];
	(void)state;

	char *nofence = write_plan("nofence.yaml", "", "");
	hwms(before);
	json_t *rep = gate_json(nofence, "rollback-ready", "canary", &rc);
	assert_int_equal(rc, 1);
	assert_crit(rep, "rollback.fence", "NO-GO", "declares no cutover.fence");
	assert_crit(rep, "rollback.source_readable", "GO", NULL);
	assert_crit(rep, "rollback.source_writable", "GO", NULL);
	json_decref(rep);
	assert_untouched(before);
	free(nofence);
}

/* A cluster that cannot be reached: the gate cannot be evaluated, exit 3,
 * and nothing is journaled. */
static void test_unreachable_journals_nothing(void **state)
{
	(void)state;
	long long n = gate_facts(plan, "gate.design");
	char *text = tk_read_file(plan, NULL);
	char *dead = strstr(text, tgt.bootstrap);
	assert_non_null(dead);
	/* Same plan, target on a port nothing listens on. */
	char *t2 = km_asprintf("%.*s127.0.0.1:1%s", (int)(dead - text), text,
			       dead + strlen(tgt.bootstrap));
	char *p = tk_write_file(dir, "dead.yaml", t2);
	const char *argv[] = {tk_kmigrate(), "gate", "-p", p, "design", NULL};
	char *out, *err;
	assert_int_equal(tk_run(&out, &err, argv), 3);
	free(out);
	free(err);
	assert_int_equal(gate_facts(plan, "gate.design"), n);
	free(p);
	free(t2);
	free(text);
}

/* @returns s with the first `from` replaced by `to` (owned). */
static char *replace(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	assert_non_null(at);
	return km_asprintf("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
}

/* A producer of the canary topic whose rule says duplicates: none: with
 * idempotence undeclared, unknown, NO-GO; declared true, GO.  Left out of
 * the wave, NO-GO (it would keep writing to the fenced source). */
static void test_nogo_producer_idempotence_undeclared(void **state)
{
	int rc;
	int64_t before[4];
	(void)state;

	char *text = tk_read_file(plan, NULL);
	char rule[200];
	snprintf(rule, sizeof(rule), "  rules:\n    - {match: \"^%s$\", duplicates: none, owner: qa}\n",
		 A);
	char *t1 = replace(text, "  rules:\n", rule);
	char *t2 = replace(t1, "consumers: [reader-a], owner:",
			   "consumers: [reader-a], producers: [writer-a], owner:");
	char *prod = km_asprintf("producers:\n  - {name: writer-a, topics: [%s], owner: team-a, "
				 "validation: \"writes on the target\"%%s}\ncutover:\n",
				 A);
	char *undeclared = km_asprintf(prod, "");
	char *t3 = replace(t2, "cutover:\n", undeclared);
	char *p1 = tk_write_file(dir, "producer.yaml", t3);
	hwms(before);
	json_t *rep = gate_json(p1, "cutover", "canary", &rc);
	assert_int_equal(rc, 1);
	assert_crit(rep, "cutover.producer:writer-a", "NO-GO",
		    "does not declare idempotence and topic");
	json_decref(rep);

	char *declared = km_asprintf(prod, ", idempotence: true");
	char *t4 = replace(t2, "cutover:\n", declared);
	char *p2 = tk_write_file(dir, "producer2.yaml", t4);
	rep = gate_json(p2, "cutover", "canary", &rc);
	assert_crit(rep, "cutover.producer:writer-a", "GO", NULL);
	json_decref(rep);

	char *t5 = replace(t1, "cutover:\n", declared);
	char *p3 = tk_write_file(dir, "producer3.yaml", t5);
	rep = gate_json(p3, "cutover", "canary", &rc);
	assert_int_equal(rc, 1);
	assert_crit(rep, "cutover.producer:writer-a", "NO-GO", "is not in the wave's producers");
	json_decref(rep);
	assert_untouched(before);
	free(text), free(t1), free(t2), free(t3), free(t4), free(t5), free(prod);
	free(undeclared), free(declared), free(p1), free(p2), free(p3);
}

/* The config fence with a transactional producer in the wave: NO-GO (its
 * transaction markers would be refused, a transaction open at the fence
 * could never end); the same producer without transactions: GO. */
static void test_nogo_config_fence_transactional(void **state)
{
	int rc;
	(void)state;

	char *p0 = write_plan("cfg.yaml", "", "  fence: config\n  fence_owner: platform\n");
	char *text = tk_read_file(p0, NULL);
	char *prod = km_asprintf("producers:\n  - {name: writer-a, topics: [%s], owner: team-a, "
				 "validation: \"writes on the target\", idempotence: true, "
				 "transactions: %%s}\ncutover:\n",
				 A);
	char *tx = km_asprintf(prod, "true"), *notx = km_asprintf(prod, "false");
	char *t1 = replace(text, "consumers: [reader-a], owner:",
			   "consumers: [reader-a], producers: [writer-a], owner:");
	char *t2 = replace(t1, "cutover:\n", tx), *t3 = replace(t1, "cutover:\n", notx);
	char *p1 = tk_write_file(dir, "cfg-tx.yaml", t2), *p2 = tk_write_file(dir, "cfg-notx.yaml", t3);
	json_t *rep = gate_json(p1, "rollback-ready", "canary", &rc);
	assert_int_equal(rc, 1);
	assert_crit(rep, "rollback.fence", "NO-GO", "refuses transaction markers");
	assert_crit(rep, "rollback.fence", "NO-GO", "writer-a");
	json_decref(rep);
	rep = gate_json(p2, "rollback-ready", "canary", &rc);
	assert_crit(rep, "rollback.fence", "GO", NULL);
	json_decref(rep);
	free(p0), free(text), free(prod), free(tx), free(notx), free(t1), free(t2), free(t3);
	free(p1), free(p2);
}

/* The plan of the file with `producers` (a producers: list) and the canary
 * wave's `producers: [...]` as wave_producers; written as name. */
static char *plan_with_producers(const char *name, const char *producers,
				 const char *wave_producers)
{
	char *text = tk_read_file(plan, NULL);
	char *wp = km_asprintf("consumers: [reader-a], producers: [%s], owner:", wave_producers);
	char *pr = km_asprintf("%scutover:\n", producers);
	char *t1 = replace(text, "consumers: [reader-a], owner:", wp);
	char *t2 = replace(t1, "cutover:\n", pr);
	char *p = tk_write_file(dir, name, t2);
	free(text), free(wp), free(pr), free(t1), free(t2);
	return p;
}

/* A producer writing topics of two waves (A of canary, B of rest): at the
 * canary's cutover it moves to the target, where B is not authoritative
 * yet, and the ACL fence denies its transactional id on the source, so its
 * writes to B fail there too -- NO-GO naming the producer, both topics,
 * both waves, the transactional id and the fix; the rest wave's gate says
 * the same from the other side.  A producer writing a topic outside the
 * migration's scope: NO-GO (the topic does not exist on the target).  Once
 * B's authority record on the target says "target" (its wave cut over),
 * the same producer moving with the canary is GO.  The same for a group
 * of the canary that also reads B (the offsets gate). */
static void test_nogo_producer_spans_waves(void **state)
{
	char outside[64], txid[64], *prod, *p1, *p2;
	int rc;
	(void)state;

	/* Run alone (TK_ONLY), the steps test_go runs first: a gate reads
	 * the journal, offsets needs the replication state. */
	char *db = km_asprintf("%s/kmigrate.db", dir);
	if (access(db, F_OK)) {
		tk_km(plan, "inventory", NULL, NULL, 0, NULL);
		tk_km(plan, "plan", NULL, NULL, 0, NULL);
		tk_km(plan, "apply", NULL, NULL, 0, NULL);
		tk_catch_up(plan, 120000, NULL);
	}
	free(db);
	snprintf(outside, sizeof(outside), "gt-%d.outside", (int)getpid());
	snprintf(txid, sizeof(txid), "tx-ab-%d", (int)getpid());
	prod = km_asprintf("producers:\n  - {name: writer-ab, topics: [%s, %s], owner: team-a, "
			   "validation: \"writes on the target\", idempotence: true, "
			   "transactions: true, transactional_id: %s, principal: "
			   "\"User:writer-ab\"}\n",
			   A, B, txid);
	p1 = plan_with_producers("span.yaml", prod, "writer-ab");
	json_t *rep = gate_json(p1, "cutover", "canary", &rc);
	assert_int_equal(rc, 1);
	const char *want[] = {"writer-ab", A, B, "'canary'", "'rest'", txid,
			      "still the source", "put all topics"};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_crit(rep, "cutover.producer:writer-ab", "NO-GO", want[i]);
	json_decref(rep);
	/* The rest wave's gate: the producer writes B of rest and A of the
	 * canary, whose authority is still the source. */
	rep = gate_json(p1, "cutover", "rest", &rc);
	assert_int_equal(rc, 1);
	assert_crit(rep, "cutover.producer:writer-ab", "NO-GO", "still the source");
	json_decref(rep);
	free(prod);

	/* A topic outside the migration's scope. */
	prod = km_asprintf("producers:\n  - {name: writer-ax, topics: [%s, %s], owner: team-a, "
			   "validation: \"writes on the target\", idempotence: true}\n",
			   A, outside);
	p2 = plan_with_producers("span-outside.yaml", prod, "writer-ax");
	rep = gate_json(p2, "cutover", "canary", &rc);
	assert_int_equal(rc, 1);
	assert_crit(rep, "cutover.producer:writer-ax", "NO-GO", outside);
	assert_crit(rep, "cutover.producer:writer-ax", "NO-GO", "outside the migration's scope");
	json_decref(rep);
	free(prod);
	free(p2);

	/* The canary's group GA also reads B (a commit there): once its
	 * consumers move with the canary they read B on the target, where
	 * the group has no committed position until B's wave cuts over (and
	 * that cutover's offsets step refuses a group live on the target). */
	tk_commit(&src, GA, B, 0, 3);
	const char *off[] = {tk_kmigrate(), "offsets", "-p", plan, NULL};
	char *out, *err;
	tk_run(&out, &err, off); /* its verdict is the gate's to judge */
	free(out);
	free(err);
	char gname[120];
	snprintf(gname, sizeof(gname), "offsets.group:%s", GA);
	rep = gate_json(plan, "offsets", "canary", &rc);
	assert_int_equal(rc, 1);
	const char *gwant[] = {GA, B, "'canary'", "'rest'", "still the source", "one wave"};
	for (size_t i = 0; i < sizeof(gwant) / sizeof(gwant[0]); i++)
		assert_crit(rep, gname, "NO-GO", gwant[i]);
	json_decref(rep);

	/* B's wave cut over: its authority record on the target says target
	 * (as cutover's authority step writes it).  The producer moves with
	 * the canary to a target that is authoritative for both topics. */
	char atopic[KM_MAPSTORE_NAME_MAX], val[KM_MAPSTORE_AUTHORITY_MAX], mig[64];
	km_mapstore_authority_t a = {.at = km_now_ms(), .run_id = 1};
	snprintf(mig, sizeof(mig), "it-gate-%d", (int)getpid());
	snprintf(a.authority, sizeof(a.authority), "target");
	snprintf(a.wave, sizeof(a.wave), "rest");
	km_mapstore_authority_topic(mig, atopic, sizeof(atopic));
	assert_true(km_mapstore_authority_encode(&a, val, sizeof(val)) > 0);
	tk_create_topic(&tgt, atopic, 1, NULL);
	rd_kafka_t *pr = tk_producer(&tgt, NULL);
	tk_msg_t m = {.key = B, .value = val, .partition = 0};
	tk_produce(pr, atopic, &m);
	tk_flush(pr);
	rd_kafka_destroy(pr);
	rep = gate_json(p1, "cutover", "canary", &rc);
	assert_crit(rep, "cutover.producer:writer-ab", "GO", NULL);
	/* The group reads B where its position is committed now. */
	const char *r = json_string_value(json_object_get(crit(rep, gname), "reason"));
	assert_true(!r || !strstr(r, B));
	json_decref(rep);
	free(p1);
}

/* rollback-ready: the source principal may READ the wave's topic but not
 * WRITE it, so rollback could not copy the target's records back: NO-GO
 * naming the topic and the fix, nothing changed; granting WRITE makes the
 * same criterion GO.  The source is the SASL_SSL cluster read as alice,
 * who is no super user (on the plaintext clusters ANONYMOUS is one, and
 * Kafka reports every operation to a super user). */
static void test_nogo_rollback_write(void **state)
{
	tk_cluster_t sec;
	char topic[64], *text, *p;
	int rc;
	(void)state;

	tk_cluster_from_env(&sec, "KM_TEST_SECURE");
	snprintf(topic, sizeof(topic), "gt-%d.rb", (int)getpid());
	tk_create_topic(&sec, topic, 1, NULL);
	rd_kafka_AclOperation_t ops[] = {RD_KAFKA_ACL_OPERATION_READ,
					  RD_KAFKA_ACL_OPERATION_DESCRIBE,
					  RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		tk_acl(&sec, RD_KAFKA_RESOURCE_TOPIC, topic, RD_KAFKA_RESOURCE_PATTERN_LITERAL,
		       "User:alice", "*", ops[i], RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	setenv("KM_IT_ALICE_PW", "alice-secret", 1);
	text = km_asprintf(
		"migration: it-gate-rb-%d\njournal: rollback.db\n"
		"source:\n  bootstrap: %s\n  owner: platform\n  security_protocol: sasl_ssl\n"
		"  sasl_mechanism: SCRAM-SHA-512\n  username: alice\n"
		"  password_env: KM_IT_ALICE_PW\n  ssl_ca: %s\n"
		"target:\n  bootstrap: %s\n  owner: platform\n"
		"topics:\n  include: [\"^%s$\"]\n"
		"  rules:\n    - {match: \".*\", owner: qa}\n"
		"cutover:\n  fence: external\n  fence_owner: platform\n"
		"  waves:\n    - {name: canary, topics: [%s], owner: team-a}\n",
		(int)getpid(), sec.bootstrap, getenv("KM_TEST_SECURE_CA"), tgt.bootstrap, topic,
		topic);
	p = tk_write_file(dir, "rollback.yaml", text);
	int64_t hwm = tk_total_hwm(&sec, topic);
	/* A gate reads the journal: the migration's first command makes it. */
	const char *inv[] = {tk_kmigrate(), "inventory", "-p", p, "--no-sample", NULL};
	char *out, *err;
	rc = tk_run(&out, &err, inv);
	if (rc != 0 && rc != 1)
		fail_msg("inventory as alice: exit %d: %s", rc, err);
	free(out);
	free(err);

	json_t *rep = gate_json(p, "rollback-ready", "canary", &rc);
	assert_int_equal(rc, 1);
	assert_string_equal(json_string_value(json_object_get(rep, "verdict")), "NO-GO");
	assert_crit(rep, "rollback.source_readable", "GO", NULL);
	assert_crit(rep, "rollback.source_writable", "NO-GO", "may not WRITE");
	assert_crit(rep, "rollback.source_writable", "NO-GO", topic);
	assert_crit(rep, "rollback.source_writable", "NO-GO", "grant WRITE");
	json_decref(rep);
	assert_int_equal(tk_total_hwm(&sec, topic), hwm);

	/* The same criterion with WRITE granted: it can pass, so the NO-GO
	 * above is about WRITE alone. */
	tk_acl(&sec, RD_KAFKA_RESOURCE_TOPIC, topic, RD_KAFKA_RESOURCE_PATTERN_LITERAL, "User:alice",
	       "*", RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	rep = gate_json(p, "rollback-ready", "canary", &rc);
	assert_crit(rep, "rollback.source_writable", "GO", NULL);
	json_decref(rep);
	assert_int_equal(tk_total_hwm(&sec, topic), hwm);
	free(text);
	free(p);
}

/* An unknown gate or wave is a usage error, exit 2, nothing journaled. */
static void test_bad_args(void **state)
{
	(void)state;
	long long n = gate_facts(plan, "gate.cutover");
	const char *a1[] = {tk_kmigrate(), "gate", "-p", plan, "cutovr", NULL};
	const char *a2[] = {tk_kmigrate(), "gate", "-p", plan, "--wave", "canery", NULL};
	char *out, *err;
	assert_int_equal(tk_run(&out, &err, a1), 2);
	assert_non_null(strstr(err, "unknown gate 'cutovr'"));
	free(out);
	free(err);
	assert_int_equal(tk_run(&out, &err, a2), 2);
	assert_non_null(strstr(err, "no wave 'canery'"));
	free(out);
	free(err);
	assert_int_equal(gate_facts(plan, "gate.cutover"), n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_go),
		cmocka_unit_test(test_nogo_lag),
		cmocka_unit_test(test_trailing_markers_no_lag),
		cmocka_unit_test(test_nogo_validation_mismatch),
		cmocka_unit_test(test_nogo_undeclared_group),
		cmocka_unit_test(test_nogo_stale),
		cmocka_unit_test(test_nogo_no_fence),
		cmocka_unit_test(test_nogo_producer_idempotence_undeclared),
		cmocka_unit_test(test_nogo_config_fence_transactional),
		cmocka_unit_test(test_nogo_producer_spans_waves),
		cmocka_unit_test(test_nogo_rollback_write),
		cmocka_unit_test(test_unreachable_journals_nothing),
		cmocka_unit_test(test_bad_args),
	};
	/* TK_ONLY=glob runs a subset, e.g. while working on one. */
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, setup, NULL);
}
