/*
 * test_guard.c -- the split-brain guards on the target (issue 10 item 4):
 * the target write guard and the replication gate's foreign-record check.
 *
 * Source: the 'plain' cluster (Kafka 4.3, no authorizer, so the cutover's
 * fence is `config`).  Target: the SASL_SSL 'secure' cluster (Kafka 4.3,
 * StandardAuthorizer, admin a super user and kmigrate's principal), where
 * the application user alice (created by tests/cluster/test-clusters) has
 * a PREFIXED ALLOW WRITE on the migration's target topics.  One estate for
 * the file: topic A in wave one, topic B in wave two.
 *
 * Cases, in order: plan shows the guard (a DENY WRITE per topic for
 * alice); apply creates it, alice's produce is refused with
 * TOPIC_AUTHORIZATION_FAILED, a second apply changes nothing; with a
 * replicator running (transactions) and producers writing the source, the
 * replication gate's guard and no-foreign criteria are GO; the cutover of
 * wave one lifts A's guard (alice writes A, still not B) and a later apply
 * does not put it back; one record written by the super user straight to
 * B makes the replication gate NO-GO naming B's partition 0.
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

#define WAIT_MS 60000

static tk_cluster_t src, tgt, alice;
static char A[64], B[64], PREFIX[64];
static char *plan, *dir, *journal, *replog;
static pid_t repl;
static tk_writer_t *wa, *wb;

static char *write_plan(const char *name)
{
	char *text = km_asprintf(
		"migration: it-guard-%d\n"
		"source:\n  bootstrap: %s\n  owner: platform\n"
		"target:\n  bootstrap: %s\n  owner: platform\n  security_protocol: sasl_ssl\n"
		"  sasl_mechanism: SCRAM-SHA-512\n  username: admin\n"
		"  password_env: KM_IT_GUARD_PW\n  ssl_ca: %s\n"
		"topics:\n  include: [\"^%s$\", \"^%s$\"]\n"
		"  rules:\n    - {match: \".*\", owner: qa}\n"
		"consumer_groups:\n  - {id: g-guard-%d, restart: translated, owner: team-a, "
		"chosen_by: qa}\n"
		"consumers:\n  - {name: reader, group: g-guard-%d, isolation_level: read_committed, "
		"owner: team-a, validation: \"reads on the target\", client: librdkafka, "
		"client_version: 2.8.0}\n"
		"gates:\n  max_lag_records: 1000000\n"
		"cutover:\n  fence: config\n  fence_owner: platform\n  quiet_period: 1s\n"
		"  waves:\n"
		"    - {name: one, topics: [%s], owner: team-a}\n"
		"    - {name: two, all: true}\n",
		(int)getpid(), src.bootstrap, tgt.bootstrap, getenv("KM_TEST_SECURE_CA"), A, B,
		(int)getpid(), (int)getpid(), A);
	char *p = tk_write_file(dir, name, text);
	free(text);
	return p;
}

/* Runs kmigrate cmd -p plan --json [extra [extra2]]; @returns the exit code
 * and the JSON document it printed in *docp (may be NULL). */
static int km_json(const char *cmd, const char *extra, const char *extra2, json_t **docp)
{
	const char *argv[] = {tk_kmigrate(), cmd, "-p", plan, "--json", extra, extra2, NULL};
	char *out, *err;
	int rc = tk_run(&out, &err, argv);
	fprintf(stderr, "kmigrate %s %s: exit %d%s%s\n", cmd, extra ? extra : "", rc,
		*err ? ": " : "", err);
	if (docp && !(*docp = json_loads(out, 0, NULL)))
		fail_msg("kmigrate %s printed no JSON document: %s", cmd, out);
	free(out);
	free(err);
	return rc;
}

static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	*(rd_kafka_resp_err_t *)m->_private = m->err;
}

/* One record to topic[0] as cluster c's principal: @returns the delivery
 * report's error (0: appended). */
static rd_kafka_resp_err_t produce_as(const tk_cluster_t *c, const char *topic)
{
	rd_kafka_conf_t *cf = tk_conf(c);
	rd_kafka_resp_err_t res = RD_KAFKA_RESP_ERR__IN_PROGRESS;
	char e[256];

	tk_conf_set(cf, "message.timeout.ms", "20000");
	tk_conf_set(cf, "acks", "all");
	rd_kafka_conf_set_dr_msg_cb(cf, dr);
	rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, cf, e, sizeof(e));
	TK_ASSERT(p, "producer: %s", e);
	TK_ASSERT(!rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
				     RD_KAFKA_V_VALUE("x", 1), RD_KAFKA_V_OPAQUE(&res),
				     RD_KAFKA_V_END),
		  "producev");
	while (res == RD_KAFKA_RESP_ERR__IN_PROGRESS)
		rd_kafka_poll(p, 100);
	rd_kafka_destroy(p);
	fprintf(stderr, "produce to %s: %s\n", topic, rd_kafka_err2name(res));
	return res;
}

/* The criterion `name` of a gate report. */
static const json_t *criterion(const json_t *rep, const char *name)
{
	json_t *c;
	size_t i;
	json_array_foreach(json_object_get(rep, "criteria"), i, c)
		if (!strcmp(json_string_value(json_object_get(c, "name")), name))
			return c;
	fail_msg("no criterion %s in the report", name);
	return NULL;
}

static const char *verdict(const json_t *c)
{
	return json_string_value(json_object_get(c, "verdict"));
}

static int count_op(const json_t *actions, const char *op, const char *topic)
{
	json_t *a;
	size_t i;
	int n = 0;
	json_array_foreach(actions, i, a)
		if (!strcmp(json_string_value(json_object_get(a, "op")), op) &&
		    (!topic || !strcmp(json_string_value(json_object_get(a, "topic")), topic)))
			n++;
	return n;
}

static int setup(void **state)
{
	int id = (int)getpid();
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_PLAIN");
	tk_cluster_from_env(&tgt, "KM_TEST_SECURE");
	setenv("KM_IT_GUARD_PW", getenv("KM_TEST_SECURE_PASSWORD"), 1);
	alice = tgt;
	for (int i = 0; alice.props[i]; i += 2) {
		if (!strcmp(alice.props[i], "sasl.username"))
			alice.props[i + 1] = "alice";
		if (!strcmp(alice.props[i], "sasl.password"))
			alice.props[i + 1] = "alice-secret";
	}
	snprintf(PREFIX, sizeof(PREFIX), "gd-%d.", id);
	snprintf(A, sizeof(A), "gd-%d.a", id);
	snprintf(B, sizeof(B), "gd-%d.b", id);
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
	/* The application's right on the target: a prefixed ALLOW WRITE that
	 * covers both target topics. */
	tk_acl(&tgt, RD_KAFKA_RESOURCE_TOPIC, PREFIX, RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
	       "User:alice", "*", RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	dir = tk_tmpdir("guard");
	journal = km_asprintf("%s/kmigrate.db", dir);
	replog = km_asprintf("%s/replicate.log", dir);
	plan = write_plan("migration.yaml");
	tk_km(plan, "inventory", NULL, NULL, 1, NULL); /* no authorizer: a finding */
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

/* plan lists one DENY WRITE per target topic for alice, never for
 * kmigrate's own principal (admin). */
static void test_plan_shows_guard(void **state)
{
	json_t *doc;
	char *out, *err;
	(void)state;

	assert_int_equal(km_json("plan", NULL, NULL, &doc), 0);
	json_t *actions = json_object_get(doc, "actions"), *a;
	size_t i;
	assert_int_equal(count_op(actions, "create-guard", A), 1);
	assert_int_equal(count_op(actions, "create-guard", B), 1);
	json_array_foreach(actions, i, a)
		if (!strcmp(json_string_value(json_object_get(a, "op")), "create-guard")) {
			assert_string_equal(json_string_value(json_object_get(a, "principal")),
					    "User:alice");
			json_t *acl = json_object_get(a, "acl");
			assert_string_equal(json_string_value(json_object_get(acl, "permission")),
					    "DENY");
			assert_string_equal(json_string_value(json_object_get(acl, "pattern_type")),
					    "LITERAL");
		}
	json_decref(doc);
	const char *argv[] = {tk_kmigrate(), "plan", "-p", plan, NULL};
	assert_int_equal(tk_run(&out, &err, argv), 0);
	char want[160];
	snprintf(want, sizeof(want), "+ guard DENY WRITE on '%s' for User:alice", A);
	if (!strstr(out, want))
		fail_msg("plan does not show '%s':\n%s", want, out);
	free(out);
	free(err);
}

/* apply creates the guard: alice is refused, a second apply changes
 * nothing. */
static void test_apply_guards_idempotent(void **state)
{
	json_t *doc;
	(void)state;

	assert_int_equal(km_json("apply", NULL, NULL, &doc), 0);
	assert_int_equal(count_op(json_object_get(doc, "actions"), "create-guard", NULL), 2);
	json_decref(doc);
	assert_int_equal(produce_as(&alice, A), RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
	assert_int_equal(produce_as(&alice, B), RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
	assert_int_equal(km_json("apply", NULL, NULL, &doc), 0);
	assert_int_equal(json_integer_value(json_object_get(doc, "applied")), 0);
	json_decref(doc);
}

/* With a replicator committing transactions and producers writing the
 * source, the guard and no-foreign criteria are GO: no false alarm. */
static void test_gate_go_live(void **state)
{
	json_t *doc;
	(void)state;

	tk_km(plan, "check", NULL, NULL, 0, NULL);
	tk_catch_up(plan, 120000, NULL);
	tk_km(plan, "validate", NULL, NULL, 0, NULL);
	tk_km(plan, "offsets", NULL, NULL, 0, NULL);
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, NULL};
	repl = tk_spawn(argv, replog);
	wa = tk_writer_start(&src, A, NULL);
	wb = tk_writer_start(&src, B, NULL);
	assert_true(tk_writer_wait(wa, 20, 0, WAIT_MS));
	assert_true(tk_writer_wait(wb, 20, 0, WAIT_MS));
	for (int round = 0; round < 3; round++) {
		assert_int_equal(km_json("gate", "replication", NULL, &doc), 0);
		assert_string_equal(verdict(criterion(doc, "replication.guard")), "GO");
		assert_string_equal(verdict(criterion(doc, "replication.no_foreign")), "GO");
		json_decref(doc);
	}
}

/* The cutover of wave one lifts A's guard only, journaled in the
 * authority step; a later apply does not put it back. */
static void test_cutover_lifts_guard(void **state)
{
	json_t *doc;
	(void)state;

	const char *argv[] = {tk_kmigrate(), "cutover", "-p", plan, "--wave", "one", NULL};
	char *out, *err;
	int rc = tk_run(&out, &err, argv);
	if (rc)
		fail_msg("cutover --wave one: exit %d: %s%s", rc, out, err);
	free(out);
	free(err);
	tk_writer_stop(wa);
	wa = NULL;

	/* The lifted binding is the step's evidence. */
	km_journal_t *jr = NULL;
	json_t *fs = NULL, *f, *lifted = NULL;
	char errstr[512];
	size_t i;
	if (km_journal_open(journal, 0, &jr, errstr, sizeof(errstr)) ||
	    km_journal_facts(jr, 0, "cutover.step", &fs, errstr, sizeof(errstr)))
		fail_msg("journal: %s", errstr);
	json_array_foreach(fs, i, f)
		if (!strcmp(json_string_value(json_object_get(f, "subject")),
			    "wave:one step:authority"))
			lifted = json_object_get(json_object_get(f, "body"), "guard_lifted");
	assert_int_equal(json_array_size(lifted), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(lifted, 0), "name")),
			    A);
	json_decref(fs);
	km_journal_close(jr);

	assert_int_equal(produce_as(&alice, A), RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(produce_as(&alice, B), RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);

	assert_int_equal(km_json("apply", NULL, NULL, &doc), 0);
	assert_int_equal(json_integer_value(json_object_get(doc, "applied")), 0);
	assert_int_equal(count_op(json_object_get(doc, "actions"), "create-guard", NULL), 0);
	json_decref(doc);
	assert_int_equal(produce_as(&alice, A), RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* One record the super user writes straight to B on the target: the
 * replication gate is NO-GO naming B's partition 0.  A's new records
 * (alice's, after its cutover) are its history, not foreign. */
static void test_foreign_record_nogo(void **state)
{
	json_t *doc;
	(void)state;

	/* Quiet first: a record written while a kmigrate transaction is open
	 * on B lands inside kmigrate's committed range, where only
	 * `validate` sees it (docs/internals/gates.md). */
	tk_writer_stop(wb);
	wb = NULL;
	int64_t deadline = tk_mono_ms() + WAIT_MS;
	for (;;) {
		assert_true(tk_mono_ms() < deadline);
		km_json("gate", "replication", NULL, &doc);
		json_int_t lag = json_integer_value(json_object_get(
			json_object_get(criterion(doc, "replication.lag_records"), "measured"),
			"records"));
		json_decref(doc);
		if (lag == 0)
			break;
		usleep(200 * 1000);
	}
	assert_int_equal(produce_as(&tgt, B), RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(km_json("gate", "replication", NULL, &doc), 1);
	const json_t *c = criterion(doc, "replication.no_foreign");
	assert_string_equal(verdict(c), "NO-GO");
	const char *r = json_string_value(json_object_get(c, "reason"));
	char want[160];
	snprintf(want, sizeof(want), "foreign record(s) on target topic '%s' partition 0", B);
	if (!r || !strstr(r, want))
		fail_msg("reason should name %s[0]: %s", B, r ? r : "(none)");
	json_t *fr = json_object_get(json_object_get(c, "measured"), "foreign");
	assert_int_equal(json_array_size(fr), 1);
	json_decref(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_shows_guard),
		cmocka_unit_test(test_apply_guards_idempotent),
		cmocka_unit_test(test_gate_go_live),
		cmocka_unit_test(test_cutover_lifts_guard),
		cmocka_unit_test(test_foreign_record_nogo),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
