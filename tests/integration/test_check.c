/*
 * The compatibility gate against real clusters, driving the kmigrate binary:
 *   - a healthy Kafka 4.3 target (plaintext, authorizer) and the SASL_SSL
 *     SCRAM-SHA-512 one: every check GO, exit 0, one journal fact per check
 *     and a gate.compat fact; leftovers of a "killed" earlier run removed;
 *   - the unhealthy target (no transaction coordinator can exist,
 *     message.max.bytes=4000): exit 1, the transactional canary NO-GO with
 *     the coordinator as the reason, every other check still reported;
 *   - declared clients too old or without a version, and a source whose
 *     configs the principal may not read: NO-GO with the reason;
 *   - bad input, an unreachable cluster or a wrong password (target or
 *     source): one line, exit 2/3, journal untouched.
 * After every run, no topic or group with the canary prefix is left on the
 * target (listed with librdkafka, independently of kmigrate).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tk.h"
#include "util.h"

#define MIGRATION "it-check"
#define PREFIX "kmigrate-canary." MIGRATION "."
/* The source topic with the largest max.message.bytes the plan needs: an
 * override above the 1048588 every broker here defaults to. */
#define BIG_TOPIC "it-check.orders"
#define BIG_BYTES "2097152"

/* Every check the gate reports for a plan with one producer and one
 * consumer; the per-client ones are added by each test. */
static const char *const CHECKS[] = {
	"connect", "api.versions", "admin.create_topic", "admin.describe_configs",
	"admin.alter_configs", "admin.describe_acls", "produce.idempotent",
	"transactions", "compression.none", "compression.gzip",
	"compression.snappy", "compression.lz4", "compression.zstd",
	"max.message.bytes", "consumer.group", "cleanup", NULL};

static char *dir;

static const char *GOOD_CLIENTS =
	"producers:\n"
	"  - name: checkout\n"
	"    client: librdkafka\n"
	"    client_version: \"2.8.0\"\n"
	"    idempotence: true\n"
	"    transactions: true\n"
	"consumers:\n"
	"  - name: billing\n"
	"    client: java\n"
	"    client_version: \"3.9.1\"\n";

/* A plan: source, target block (already indented YAML), clients. */
static char *write_plan(const char *name, const char *source, const char *target,
			const char *clients)
{
	char text[4096], jname[128];

	snprintf(jname, sizeof(jname), "%s.db", name);
	snprintf(text, sizeof(text),
		 "migration: " MIGRATION "\n"
		 "journal: %s\n"
		 "source:\n  bootstrap: %s\n"
		 "target:\n%s"
		 "topics:\n  include: [\"^it-check\\\\.\"]\n"
		 "%s",
		 jname, source, target, clients);
	return tk_write_file(dir, name, text);
}

static json_t *check_row(json_t *doc, const char *name)
{
	json_t *c;
	size_t i;

	json_array_foreach(json_object_get(doc, "checks"), i, c)
		if (!strcmp(json_string_value(json_object_get(c, "name")), name))
			return c;
	fail_msg("check '%s' missing from the report", name);
	return NULL;
}

static const char *result(json_t *doc, const char *name)
{
	return json_string_value(json_object_get(check_row(doc, name), "result"));
}

static const char *text_of(json_t *doc, const char *name)
{
	json_t *c = check_row(doc, name);
	const char *s = json_string_value(json_object_get(c, "error"));
	return s ? s : json_string_value(json_object_get(c, "detail"));
}

static void expect_text(json_t *doc, const char *name, const char *needle)
{
	if (!strstr(text_of(doc, name), needle))
		fail_msg("check '%s' says '%s', expected '%s' in it", name,
			 text_of(doc, name), needle);
}

/* Runs `kmigrate check --json` and parses its output. */
static json_t *run_check(const char *plan, int want_rc, const char *const *extra)
{
	const char *argv[16] = {tk_kmigrate(), "check", "-p", plan, "--json"};
	char *out, *err;
	int n = 5, rc;
	json_t *doc;

	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	rc = tk_run(&out, &err, argv);
	if (rc != want_rc)
		fail_msg("kmigrate check exit %d (want %d); stderr: %s; stdout: %s", rc,
			 want_rc, err, out);
	doc = tk_json(out);
	free(out);
	free(err);
	return doc;
}

/* Independent proof that nothing with the canary prefix is left: topics
 * from metadata, groups from ListConsumerGroups, both via librdkafka. */
static void assert_no_canaries(const tk_cluster_t *c)
{
	rd_kafka_t *rk = tk_admin(c);
	const struct rd_kafka_metadata *md;
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_event_t *ev;
	const rd_kafka_ConsumerGroupListing_t **gl;
	size_t n;

	assert_int_equal(rd_kafka_metadata(rk, 1, NULL, &md, 10000), 0);
	for (int i = 0; i < md->topic_cnt; i++)
		if (!strncmp(md->topics[i].topic, "kmigrate-canary.", 16))
			fail_msg("canary topic '%s' left on %s", md->topics[i].topic,
				 c->bootstrap);
	rd_kafka_metadata_destroy(md);
	rd_kafka_ListConsumerGroups(rk, NULL, q);
	ev = rd_kafka_queue_poll(q, 10000);
	assert_non_null(ev);
	assert_int_equal(rd_kafka_event_error(ev), 0);
	gl = rd_kafka_ListConsumerGroups_result_valid(
		rd_kafka_event_ListConsumerGroups_result(ev), &n);
	for (size_t i = 0; i < n; i++)
		if (!strncmp(rd_kafka_ConsumerGroupListing_group_id(gl[i]),
			     "kmigrate-canary.", 16))
			fail_msg("canary group '%s' left on %s",
				 rd_kafka_ConsumerGroupListing_group_id(gl[i]),
				 c->bootstrap);
	rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

/* Every check ran and was reported, GO or not. */
static void assert_all_reported(json_t *doc)
{
	for (int i = 0; CHECKS[i]; i++) {
		const char *r = result(doc, CHECKS[i]);
		assert_true(!strcmp(r, "GO") || !strcmp(r, "NO-GO"));
		assert_true(json_is_integer(json_object_get(check_row(doc, CHECKS[i]),
							    "latency_ms")));
		assert_true(strlen(json_string_value(json_object_get(
			check_row(doc, CHECKS[i]), "tried"))) > 0);
	}
}

/* The NO-GO checks are exactly `names` (NULL-terminated), in any order. */
static void assert_no_go(json_t *doc, const char *const *names)
{
	json_t *no_go = json_object_get(doc, "no_go"), *n;
	size_t i, want = 0;
	char *got = json_dumps(no_go, JSON_COMPACT);

	while (names[want])
		want++;
	if (json_array_size(no_go) != want) {
		json_array_foreach(no_go, i, n)
			fprintf(stderr, "NO-GO %s: %s\n", json_string_value(n),
				text_of(doc, json_string_value(n)));
		fail_msg("NO-GO checks %s, expected %zu of them", got, want);
	}
	json_array_foreach(no_go, i, n) {
		int found = 0;
		for (size_t j = 0; names[j]; j++)
			found |= !strcmp(names[j], json_string_value(n));
		if (!found)
			fail_msg("unexpected NO-GO %s (%s): %s", json_string_value(n), got,
				 text_of(doc, json_string_value(n)));
	}
	free(got);
}

static void assert_all_go(json_t *doc)
{
	json_t *c;
	size_t i;

	json_array_foreach(json_object_get(doc, "checks"), i, c)
		if (strcmp(json_string_value(json_object_get(c, "result")), "GO"))
			fail_msg("check %s is %s: %s",
				 json_string_value(json_object_get(c, "name")),
				 json_string_value(json_object_get(c, "result")),
				 json_string_value(json_object_get(c, "error")));
	assert_string_equal(json_string_value(json_object_get(doc, "verdict")), "GO");
	assert_int_equal(json_array_size(json_object_get(doc, "no_go")), 0);
}

/* The run's evidence: one "check" fact per check with its verdict and
 * body, and the gate.compat fact, all under the run the output names. */
static void assert_journal(const char *journal, json_t *doc)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	json_int_t run_id = json_integer_value(json_object_get(doc, "run_id"));
	json_t *c;
	size_t i;

	assert_true(run_id > 0);
	assert_int_equal(sqlite3_open_v2(journal, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT verdict, body FROM facts WHERE run_id = ? "
					    "AND kind = ? AND subject = ?",
					    -1, &st, NULL),
			 SQLITE_OK);
	json_array_foreach(json_object_get(doc, "checks"), i, c) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, run_id);
		sqlite3_bind_text(st, 2, "check", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, json_string_value(json_object_get(c, "name")), -1,
				  SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(st, 0),
				    json_string_value(json_object_get(c, "result")));
		json_t *body = tk_json((const char *)sqlite3_column_text(st, 1));
		assert_non_null(json_object_get(body, "tried"));
		assert_true(json_is_integer(json_object_get(body, "latency_ms")));
		assert_non_null(json_object_get(body, "result"));
		assert_non_null(json_object_get(body, "error"));
		json_decref(body);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	}
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_text(st, 2, "gate.compat", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, "target", -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0),
			    json_string_value(json_object_get(doc, "verdict")));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_setup(void **state)
{
	tk_cluster_t src;
	const char *big[] = {"max.message.bytes", BIG_BYTES, NULL};
	(void)state;

	dir = tk_tmpdir("check");
	tk_cluster_from_env(&src, "KM_TEST_SOURCE");
	tk_create_topic(&src, BIG_TOPIC, 1, big);
	/* Inherits the source broker's 1048588. */
	tk_create_topic(&src, "it-check.plain", 1, NULL);
}

static void test_healthy_target(void **state)
{
	tk_cluster_t tgt;
	char target[256], journal[1024], *plan;
	json_t *doc;
	(void)state;

	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	/* A run killed earlier left a topic and a group behind. */
	tk_create_topic(&tgt, PREFIX "deadbeef0001", 1, NULL);
	tk_commit(&tgt, PREFIX "deadbeef0001", PREFIX "deadbeef0001", 0, 0);

	snprintf(target, sizeof(target), "  bootstrap: %s\n", tgt.bootstrap);
	plan = write_plan("healthy.yaml", getenv("KM_TEST_SOURCE"), target, GOOD_CLIENTS);
	doc = run_check(plan, 0, NULL);
	assert_all_reported(doc);
	assert_all_go(doc);
	assert_string_equal(result(doc, "client.producer.checkout"), "GO");
	assert_string_equal(result(doc, "client.consumer.billing"), "GO");

	/* What the GO rests on. */
	expect_text(doc, "transactions", "read_committed saw only the 3 committed");
	expect_text(doc, "max.message.bytes", "max.message.bytes=" BIG_BYTES);
	expect_text(doc, "max.message.bytes", "refused with MSG_SIZE_TOO_LARGE");
	assert_non_null(strstr(json_string_value(json_object_get(
				       check_row(doc, "max.message.bytes"), "tried")),
			       "'" BIG_TOPIC "', a topic override"));
	expect_text(doc, "consumer.group", "protocol COOPERATIVE");
	expect_text(doc, "consumer.group", "visible through ListConsumerGroupOffsets");
	expect_text(doc, "admin.describe_acls", "StandardAuthorizer");
	expect_text(doc, "cleanup", "removed 2 leftovers of earlier runs");

	snprintf(journal, sizeof(journal), "%s/healthy.yaml.db", dir);
	assert_journal(journal, doc);
	assert_no_canaries(&tgt);
	json_decref(doc);
	free(plan);
}

static void test_secure_target(void **state)
{
	tk_cluster_t sec;
	char target[1024], *plan;
	json_t *doc;
	(void)state;

	tk_cluster_from_env(&sec, "KM_TEST_SECURE");
	setenv("KM_IT_CHECK_PW", getenv("KM_TEST_SECURE_PASSWORD"), 1);
	snprintf(target, sizeof(target),
		 "  bootstrap: %s\n  security_protocol: sasl_ssl\n"
		 "  sasl_mechanism: SCRAM-SHA-512\n  username: %s\n"
		 "  password_env: KM_IT_CHECK_PW\n  ssl_ca: %s\n",
		 sec.bootstrap, getenv("KM_TEST_SECURE_USER"), getenv("KM_TEST_SECURE_CA"));
	plan = write_plan("secure.yaml", getenv("KM_TEST_SOURCE"), target, GOOD_CLIENTS);
	doc = run_check(plan, 0, NULL);
	assert_all_reported(doc);
	assert_all_go(doc);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(doc, "target"), "sasl_mechanism")),
			    "SCRAM-SHA-512");
	assert_no_canaries(&sec);
	json_decref(doc);
	free(plan);
}

static void test_unhealthy_target(void **state)
{
	tk_cluster_t bad;
	char target[256], *plan;
	const char *extra[] = {"--timeout", "8", NULL};
	json_t *doc;
	(void)state;

	tk_cluster_from_env(&bad, "KM_TEST_UNHEALTHY");
	snprintf(target, sizeof(target), "  bootstrap: %s\n", bad.bootstrap);
	plan = write_plan("unhealthy.yaml", getenv("KM_TEST_SOURCE"), target, GOOD_CLIENTS);
	doc = run_check(plan, 1, extra);
	assert_all_reported(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "verdict")), "NO-GO");

	/* No transaction coordinator can exist there, and the gate says why. */
	assert_string_equal(result(doc, "transactions"), "NO-GO");
	expect_text(doc, "transactions", "init_transactions");
	expect_text(doc, "transactions", "COORDINATOR_NOT_AVAILABLE");
	expect_text(doc, "transactions", "transaction.state.log.replication.factor=3");

	/* message.max.bytes=4000 is only the broker's default for topics: a
	 * topic's own max.message.bytes wins, and kmigrate's target design
	 * gives every migrated topic the source's effective value.  The
	 * canary proves exactly that limit: the plan's largest record is
	 * accepted, one byte more is refused. */
	assert_string_equal(result(doc, "max.message.bytes"), "GO");
	expect_text(doc, "max.message.bytes", "max.message.bytes=" BIG_BYTES " accepted");
	expect_text(doc, "max.message.bytes", "refused with MSG_SIZE_TOO_LARGE");
	expect_text(doc, "admin.describe_configs", "message.max.bytes=4000");

	/* Everything else still ran and passed: the NO-GO is specific. */
	assert_no_go(doc, (const char *const[]){"transactions", NULL});
	assert_string_equal(result(doc, "compression.zstd"), "GO");
	assert_string_equal(result(doc, "consumer.group"), "GO");
	assert_string_equal(result(doc, "cleanup"), "GO");
	assert_no_canaries(&bad);
	json_decref(doc);
	free(plan);
}

static void test_old_and_undeclared_clients(void **state)
{
	tk_cluster_t tgt;
	char target[256], source[1024], *plan;
	json_t *doc;
	(void)state;

	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	snprintf(target, sizeof(target), "  bootstrap: %s\n", tgt.bootstrap);
	/* The source is read as alice, who may not describe its configs:
	 * the size the plan needs is unknown.  (An unreachable source is no
	 * verdict but a failure: see test_bad_input.) */
	setenv("KM_IT_ALICE_PW", "alice-secret", 1);
	snprintf(source, sizeof(source),
		 "%s\n  security_protocol: sasl_ssl\n  sasl_mechanism: SCRAM-SHA-512\n"
		 "  username: alice\n  password_env: KM_IT_ALICE_PW\n  ssl_ca: %s",
		 getenv("KM_TEST_SECURE"), getenv("KM_TEST_SECURE_CA"));
	plan = write_plan("clients.yaml", source, target,
			  "producers:\n"
			  "  - name: legacy-billing\n"
			  "    client: java\n"
			  "    client_version: \"0.10.2\"\n"
			  "    idempotence: false\n"
			  "    transactions: false\n"
			  "  - name: mystery\n"
			  "    client: java\n"
			  "    idempotence: false\n"
			  "    transactions: false\n"
			  "consumers:\n"
			  "  - name: legacy-reader\n"
			  "    client: java\n"
			  "    client_version: \"0.10.2\"\n"
			  "  - name: modern\n"
			  "    client: librdkafka\n"
			  "    client_version: \"2.6.1\"\n");
	doc = run_check(plan, 1, NULL);
	assert_all_reported(doc);
	assert_string_equal(result(doc, "client.producer.legacy-billing"), "NO-GO");
	expect_text(doc, "client.producer.legacy-billing", "java 0.10.2 is older than 2.1.0");
	expect_text(doc, "client.producer.legacy-billing",
		    "Produce: java 0.10.2 speaks v0..2, the target accepts v3..");
	assert_string_equal(result(doc, "client.consumer.legacy-reader"), "NO-GO");
	expect_text(doc, "client.consumer.legacy-reader",
		    "Fetch: java 0.10.2 speaks v0..3, the target accepts v4..");
	assert_string_equal(result(doc, "client.producer.mystery"), "NO-GO");
	expect_text(doc, "client.producer.mystery", "unknown: client_version not declared");
	assert_string_equal(result(doc, "client.consumer.modern"), "GO");
	assert_string_equal(result(doc, "max.message.bytes"), "NO-GO");
	expect_text(doc, "max.message.bytes", "unknown");
	expect_text(doc, "max.message.bytes", "message.max.bytes could not be read");
	/* Exactly those. */
	assert_no_go(doc, (const char *const[]){"client.producer.legacy-billing",
						 "client.consumer.legacy-reader",
						 "client.producer.mystery",
						 "max.message.bytes", NULL});
	assert_string_equal(result(doc, "transactions"), "GO");
	assert_no_canaries(&tgt);
	json_decref(doc);
	free(plan);
}


static void test_bad_input(void **state)
{
	char *out, *err, *plan, journal[1024], *before, *after;
	size_t blen = 0, alen = 0;
	(void)state;

	/* The healthy run's journal: an unreachable target must not touch it. */
	snprintf(journal, sizeof(journal), "%s/healthy.yaml.db", dir);
	before = tk_read_file(journal, &blen);
	assert_non_null(before);
	plan = tk_write_file(dir, "unreachable.yaml",
			     "migration: " MIGRATION "\njournal: healthy.yaml.db\n"
			     "source:\n  bootstrap: 127.0.0.1:1\n"
			     "target:\n  bootstrap: 127.0.0.1:2\n");
	const char *a1[] = {tk_kmigrate(), "check", "-p", plan, NULL};
	assert_int_equal(tk_run(&out, &err, a1), 3);
	assert_non_null(strstr(err, "cannot reach the target cluster at '127.0.0.1:2'"));
	assert_non_null(strchr(err, '\n'));
	assert_true(strchr(err, '\n')[1] == '\0');
	after = tk_read_file(journal, &alen);
	assert_true(blen == alen && !memcmp(before, after, blen));
	free(out);
	free(err);

	/* A wrong source password is a failure too, not a NO-GO verdict: the
	 * source is opened before any check runs. */
	char *badpw = km_asprintf(
		"migration: " MIGRATION "\njournal: healthy.yaml.db\n"
		"source:\n  bootstrap: %s\n  security_protocol: sasl_ssl\n"
		"  sasl_mechanism: SCRAM-SHA-512\n  username: admin\n"
		"  password_env: KM_IT_WRONG_PW\n  ssl_ca: %s\n"
		"target:\n  bootstrap: %s\n",
		getenv("KM_TEST_SECURE"), getenv("KM_TEST_SECURE_CA"), getenv("KM_TEST_TARGET"));
	char *badpw_plan = tk_write_file(dir, "badpw.yaml", badpw);
	setenv("KM_IT_WRONG_PW", "not-the-password", 1);
	const char *a3[] = {tk_kmigrate(), "check", "-p", badpw_plan, NULL};
	assert_int_equal(tk_run(&out, &err, a3), 3);
	assert_non_null(strstr(err, "authentication to the source cluster"));
	assert_true(strchr(err, '\n')[1] == '\0');
	free(after);
	after = tk_read_file(journal, &alen);
	assert_true(blen == alen && !memcmp(before, after, blen));
	free(out);
	free(err);
	free(badpw);
	free(badpw_plan);

	const char *a2[] = {tk_kmigrate(), "check", "-p", plan, "--timeout", "soon", NULL};
	assert_int_equal(tk_run(&out, &err, a2), 2);
	assert_non_null(strstr(err, "--timeout takes seconds"));
	free(out);
	free(err);
	free(before);
	free(after);
	free(plan);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_setup),
		cmocka_unit_test(test_healthy_target),
		cmocka_unit_test(test_secure_target),
		cmocka_unit_test(test_unhealthy_target),
		cmocka_unit_test(test_old_and_undeclared_clients),
		cmocka_unit_test(test_bad_input),
	};
	/* TK_ONLY=test_name (a glob) runs a subset, e.g. while working on one. */
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
