/*
 * test_cutover_acl.c -- `kmigrate cutover` with the ACL fence
 * (cutover.fence: acl) on a Kafka 3.9 SASL_SSL/SCRAM source with
 * StandardAuthorizer ('secure39'), target the 4.3 'target'.
 *
 * On the source, User:app (the application, idempotent acks=all, and a
 * transactional id) has LITERAL ALLOW WRITE on both topics; User:probe (the
 * fence proof's canary) a PREFIXED ALLOW WRITE covering both; admin is the
 * declared super user, covered by an external fence.  Two waves: canary
 * (topic A, 2 partitions, group G) and rest (B).
 *
 * Cases, in order: NO-GO before anything changes without
 * cutover.super_users, without cutover.fence_probe, with the super users
 * covered by the config fence while a transactional id writes the topics,
 * and with an ACL added after the inventory that lets a new principal
 * write: each leaves the source's ACLs as they were.  Then both waves are
 * cut over while app writes continuously (re-pointed at the target after
 * each wave): the stale app producer fails fast with
 * TOPIC_AUTHORIZATION_FAILED, an open transaction of app cannot commit
 * after the fence, every acknowledged record is on the target exactly
 * once and in order, G resumes on the target at exactly the next record,
 * and the journaled inverses name exactly the DENYs added and the ALLOW
 * removed and restore the ACLs of before (km_fence_undo).
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

#include "fence.h"
#include "journal.h"
#include "tk.h"
#include "util.h"

#define WAIT_MS 60000

static tk_cluster_t src, tgt, app;
static char A[80], B[80], G[64], TX[64], PFX[48];
/* The users, per process: a cluster kept between runs still has the last
 * run's ACLs for them (the fence denies every transactional id its
 * principals may write). */
static char APPU[32], PRBU[32], UAPP[40], UPRB[40];
static char *dir, *journal, *replog, *acls_before;
static pid_t repl;

/* text with every `from` replaced by to + tail (owned); for "username:
 * probe," the replacement keeps the key: "username: <to>,". */
static char *subst(const char *text, const char *from, const char *to, const char *tail)
{
	bool key = !strncmp(from, "username: ", 10);
	size_t fl = strlen(from), n = 0;
	for (const char *q = text; (q = strstr(q, from)); q += fl)
		n++;
	char *out = malloc(strlen(text) + n * (strlen(to) + strlen(tail) + 20) + 1), *o = out;
	for (const char *q = text, *h; ; q = h + fl) {
		if (!(h = strstr(q, from))) {
			strcpy(o, q);
			break;
		}
		memcpy(o, q, (size_t)(h - q));
		o += h - q;
		o += sprintf(o, key ? "username: %s,%s" : "%s%s", to, tail);
	}
	return out;
}

/* The plan; acl is the cutover's ACL-fence keys (YAML lines). */
static char *write_plan(const char *name, const char *acl)
{
	char *text = km_asprintf(
		"migration: it-coacl-%d\n"
		"source:\n  bootstrap: %s\n  security_protocol: sasl_ssl\n"
		"  sasl_mechanism: SCRAM-SHA-512\n  username: admin\n"
		"  password_env: KM_TEST_SECURE39_PASSWORD\n  ssl_ca: %s\n  owner: platform\n"
		"target:\n  bootstrap: %s\n  owner: platform\n"
		"topics:\n  include: [\"^%s$\", \"^%s$\"]\n"
		"  rules:\n    - {match: \".*\", owner: qa}\n"
		"consumer_groups:\n  - {id: %s, restart: translated, owner: team-a, chosen_by: qa}\n"
		"consumers:\n  - {name: reader-a, group: %s, isolation_level: read_committed, "
		"owner: team-a, validation: \"reads on the target\", client: librdkafka, "
		"client_version: 2.8.0}\n"
		/* One principal, two producers, one per wave: a producer moves
		 * with the wave of the topics it writes (the gate says so). */
		"producers:\n  - {name: app-a, principal: \"User:app\", idempotence: true, "
		"transactions: false, topics: [%s], owner: team-a, "
		"validation: \"writes on the target\", client: librdkafka, client_version: 2.8.0}\n"
		"  - {name: app-b, principal: \"User:app\", transactional_id: %s, "
		"idempotence: true, transactions: true, topics: [%s], owner: team-a, "
		"validation: \"writes on the target\", client: librdkafka, client_version: 2.8.0}\n"
		"gates:\n  max_lag_records: 1000000\n"
		"cutover:\n  fence: acl\n  fence_owner: platform\n  quiet_period: 1s\n%s"
		"  waves:\n"
		"    - {name: canary, topics: [%s], groups: [%s], consumers: [reader-a], "
		"producers: [app-a], owner: team-a}\n"
		"    - {name: rest, all: true, producers: [app-b], owner: team-a}\n",
		(int)getpid(), src.bootstrap, getenv("KM_TEST_SECURE39_CA"), tgt.bootstrap, A, B, G, G,
		A, TX, B, acl, A, G);
	char *t1 = subst(text, "User:app\"", UAPP, "\"");
	char *t2 = subst(t1, "User:probe\"", UPRB, "\"");
	char *t3 = subst(t2, "username: probe,", PRBU, "");
	char *p = tk_write_file(dir, name, t3);
	free(text);
	free(t1);
	free(t2);
	free(t3);
	return p;
}

#define SUPERS "  super_users: [\"User:admin\"]\n"
#define EXTERNAL "  super_users_fence: external\n  super_users_fence_owner: platform\n"
#define PROBE                                                                            \
	"  fence_probe: {principal: \"User:probe\", username: probe, password_env: "   \
	"KM_TEST_PROBE_PASSWORD}\n"

static int cutover(const char *p, const char *w, const char *crash, json_t **evsp)
{
	const char *argv[] = {tk_kmigrate(), "cutover", "-p", p, "--wave", w, "--json", NULL};
	return tk_km_events(evsp, "KM_CUTOVER_CRASH_AFTER", crash, argv);
}

static const char *state_of(const json_t *evs, const char *step)
{
	return tk_event_state(evs, step);
}
/* The body of the first fact of kind with subject subj (new reference). */
static json_t *fact_body(const char *kind, const char *subj)
{
	return tk_journal_body(journal, kind, subj);
}

static void assert_acls_untouched(void)
{
	char *now = tk_acl_lines(&src);
	assert_string_equal(now, acls_before);
	free(now);
}

static bool has_acl(const json_t *arr, const char *rt, const char *name, const char *pt,
		    const char *principal, const char *op, const char *perm)
{
	size_t i;
	json_t *a;
	json_array_foreach(arr, i, a)
		if (!strcmp(json_string_value(json_object_get(a, "resource_type")), rt) &&
		    !strcmp(json_string_value(json_object_get(a, "name")), name) &&
		    !strcmp(json_string_value(json_object_get(a, "pattern_type")), pt) &&
		    !strcmp(json_string_value(json_object_get(a, "principal")), principal) &&
		    !strcmp(json_string_value(json_object_get(a, "operation")), op) &&
		    !strcmp(json_string_value(json_object_get(a, "permission")), perm))
			return true;
	return false;
}

/* The journaled inverse of wave w's fence names exactly: delete the DENY
 * WRITEs of app and probe on topic (and, for the wave that denied it
 * first, on TX: a later wave finds those DENYs present, not its own, and
 * its inverse leaves them), create app's removed ALLOW WRITE on topic. */
static json_t *assert_inverse(const char *w, const char *topic, bool txn)
{
	char subj[100];
	snprintf(subj, sizeof(subj), "wave:%s", w);
	json_t *body = fact_body("cutover.fence", subj);
	assert_non_null(body);
	json_t *inv = json_object_get(body, "inverse");
	json_t *del = json_object_get(inv, "delete"), *cre = json_object_get(inv, "create");
	if (json_array_size(del) != (txn ? 4 : 2) || json_array_size(cre) != 1)
		fail_msg("unexpected inverse: %s", json_dumps(inv, JSON_COMPACT));
	assert_true(has_acl(del, "TOPIC", topic, "LITERAL", UAPP, "WRITE", "DENY"));
	assert_true(has_acl(del, "TOPIC", topic, "LITERAL", UPRB, "WRITE", "DENY"));
	assert_true(has_acl(del, "TRANSACTIONAL_ID", TX, "LITERAL", UAPP, "WRITE", "DENY") == txn);
	assert_true(has_acl(del, "TRANSACTIONAL_ID", TX, "LITERAL", UPRB, "WRITE", "DENY") == txn);
	assert_true(has_acl(cre, "TOPIC", topic, "LITERAL", UAPP, "WRITE", "ALLOW"));
	/* The super user is said, and its external cover recorded. */
	json_t *nf = json_array_get(json_object_get(json_object_get(body, "plan"), "not_fenceable"), 0);
	if (nf)
		assert_string_equal(json_string_value(json_object_get(nf, "principal")), "User:admin");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(body, "super_users_cover"), "kind")),
			    "external");
	json_t *r = json_incref(inv);
	json_decref(body);
	return r;
}

static void assert_group_resumes(const int64_t committed[2])
{
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

static int setup(void **state)
{
	int id = (int)getpid();
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_SECURE39");
	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	tk_cluster_as(&app, &src, APPU, "app-secret");
	setenv("KM_TEST_PROBE_PASSWORD", "probe-secret", 1);
	snprintf(APPU, sizeof(APPU), "app-%d", id);
	snprintf(PRBU, sizeof(PRBU), "probe-%d", id);
	snprintf(UAPP, sizeof(UAPP), "User:%s", APPU);
	snprintf(UPRB, sizeof(UPRB), "User:%s", PRBU);
	snprintf(PFX, sizeof(PFX), "coacl-%d.", id);
	snprintf(A, sizeof(A), "%sa", PFX);
	snprintf(B, sizeof(B), "%sb", PFX);
	snprintf(G, sizeof(G), "g-coacl-%d", id);
	snprintf(TX, sizeof(TX), "coacl-%d-tx", id);
	tk_scram_user(&src, APPU, "app-secret");
	tk_scram_user(&src, PRBU, "probe-secret");
	tk_create_topic(&src, A, 2, NULL);
	tk_create_topic(&src, B, 1, NULL);
	const rd_kafka_ResourcePatternType_t LIT = RD_KAFKA_RESOURCE_PATTERN_LITERAL,
					     PRE = RD_KAFKA_RESOURCE_PATTERN_PREFIXED;
	const rd_kafka_AclPermissionType_t OK = RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW;
	tk_acl(&src, RD_KAFKA_RESOURCE_TOPIC, A, LIT, UAPP, "*", RD_KAFKA_ACL_OPERATION_WRITE, OK);
	tk_acl(&src, RD_KAFKA_RESOURCE_TOPIC, B, LIT, UAPP, "*", RD_KAFKA_ACL_OPERATION_WRITE, OK);
	tk_acl(&src, RD_KAFKA_RESOURCE_TOPIC, PFX, PRE, UAPP, "*", RD_KAFKA_ACL_OPERATION_READ, OK);
	tk_acl(&src, RD_KAFKA_RESOURCE_BROKER, "kafka-cluster", LIT, UAPP, "*",
	       RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE, OK);
	tk_acl(&src, RD_KAFKA_RESOURCE_TRANSACTIONAL_ID, TX, LIT, UAPP, "*",
	       RD_KAFKA_ACL_OPERATION_WRITE, OK);
	tk_acl(&src, RD_KAFKA_RESOURCE_TOPIC, PFX, PRE, UPRB, "*",
	       RD_KAFKA_ACL_OPERATION_WRITE, OK);
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
	dir = tk_tmpdir("cutover-acl");
	journal = km_asprintf("%s/kmigrate.db", dir);
	replog = km_asprintf("%s/replicate.log", dir);
	char *plan = write_plan("migration.yaml", SUPERS EXTERNAL PROBE);
	const char *inv[] = {tk_kmigrate(), "inventory", "-p", plan, NULL};
	char *out, *err;
	int rc = tk_run(&out, &err, inv);
	if (rc != 0 && rc != 1)
		fail_msg("inventory: exit %d: %s", rc, err);
	free(out);
	free(err);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	tk_km(plan, "check", NULL, NULL, 0, NULL);
	tk_catch_up(plan, 120000, NULL);
	tk_km(plan, "validate", NULL, NULL, 0, NULL);
	tk_km(plan, "offsets", NULL, NULL, 0, NULL);
	free(plan);
	acls_before = tk_acl_lines(&src);
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

/* Missing declarations and an unreviewed writer: exit 1, no fence
 * journaled, the source's ACLs as they were. */
static void test_nogo_untouched(void **state)
{
	json_t *evs;
	(void)state;

	char *p = write_plan("no-supers.yaml", EXTERNAL PROBE);
	assert_int_equal(cutover(p, "canary", NULL, &evs), 1);
	assert_null(state_of(evs, "fence"));
	json_decref(evs);
	free(p);
	p = write_plan("no-probe.yaml", SUPERS EXTERNAL);
	assert_int_equal(cutover(p, "canary", NULL, &evs), 1);
	assert_null(state_of(evs, "fence"));
	json_decref(evs);
	free(p);
	assert_acls_untouched();
	/* The config fence cannot cover the super users: a transactional id
	 * writes the topics. */
	p = write_plan("config-cover.yaml", SUPERS "  super_users_fence: config\n" PROBE);
	assert_int_equal(cutover(p, "canary", NULL, &evs), 1);
	assert_string_equal(state_of(evs, "fence"), "nogo");
	json_decref(evs);
	free(p);
	assert_acls_untouched();
	/* A writer the inventory never saw. */
	tk_acl(&src, RD_KAFKA_RESOURCE_TOPIC, A, RD_KAFKA_RESOURCE_PATTERN_LITERAL, "User:intruder",
	       "*", RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	char *with = tk_acl_lines(&src);
	p = write_plan("migration.yaml", SUPERS EXTERNAL PROBE);
	assert_int_equal(cutover(p, "canary", NULL, &evs), 1);
	assert_string_equal(state_of(evs, "fence"), "nogo");
	json_decref(evs);
	char *now = tk_acl_lines(&src);
	assert_string_equal(now, with);
	free(now);
	free(with);
	tk_acl_delete(&src, RD_KAFKA_RESOURCE_TOPIC, A, RD_KAFKA_RESOURCE_PATTERN_LITERAL,
		      "User:intruder", "*", RD_KAFKA_ACL_OPERATION_WRITE,
		      RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	assert_acls_untouched();
	assert_null(fact_body("cutover.fence", "wave:canary"));
	free(p);
}

static void test_two_waves(void **state)
{
	json_t *evs;
	(void)state;
	char *plan = km_asprintf("%s/migration.yaml", dir);
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, NULL};
	repl = tk_spawn(argv, replog);
	tk_writer_t *wa = tk_writer_start(&app, A, NULL);
	tk_writer_t *wb = tk_writer_start(&app, B, NULL);
	assert_true(tk_writer_wait(wa, 20, 0, WAIT_MS));
	assert_true(tk_writer_wait(wb, 20, 0, WAIT_MS));

	/* app's open transaction when the canary fence lands (on B: the
	 * fence denies app's transactional id whatever topic it writes; see
	 * the report: a partition whose last entry is an abort marker never
	 * drains, the replicator's progress stops before the marker). */
	rd_kafka_conf_t *cf = tk_conf(&app);
	tk_conf_set(cf, "transactional.id", TX);
	tk_conf_set(cf, "transaction.timeout.ms", "10000");
	char e[256];
	rd_kafka_t *txp = rd_kafka_new(RD_KAFKA_PRODUCER, cf, e, sizeof(e));
	assert_non_null(txp);
	assert_null(rd_kafka_init_transactions(txp, WAIT_MS));
	assert_null(rd_kafka_begin_transaction(txp));
	tk_msg_t m = {.key = "tx", .value = "open", .partition = 0};
	tk_produce(txp, B, &m);
	rd_kafka_flush(txp, WAIT_MS);

	/* The fence, then a crash: the step is journaled. */
	assert_int_equal(cutover(plan, "canary", "fence", &evs), 137);
	assert_string_equal(state_of(evs, "fence"), "done");
	json_decref(evs);
	tk_writer_assert_fenced(wa, &src, A, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, WAIT_MS);
	tk_writer_stats_t st;
	tk_writer_stats(wa, &st);
	assert_int_equal(st.fatal, 0);
	/* EndTxn needs WRITE on the transactional id: refused. */
	rd_kafka_error_t *ce = rd_kafka_commit_transaction(txp, WAIT_MS);
	assert_non_null(ce);
	fprintf(stderr, "commit after the fence: %s\n", rd_kafka_error_string(ce));
	assert_int_equal(rd_kafka_error_code(ce),
			 RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
	rd_kafka_error_destroy(ce);
	rd_kafka_destroy(txp);
	/* The re-run resumes at the drain (the coordinator aborts the
	 * transaction at its timeout) and goes through. */
	assert_int_equal(cutover(plan, "canary", NULL, &evs), 0);
	assert_string_equal(state_of(evs, "fence"), "already-done");
	assert_string_equal(state_of(evs, "authority"), "done");
	json_decref(evs);
	json_t *inv_a = assert_inverse("canary", A, true);
	/* G resumes on the target at exactly the next record (read before
	 * the re-pointed writer adds more). */
	const int64_t committed[2] = {5, 7};
	assert_group_resumes(committed);
	/* Re-pointed at the target, it goes on. */
	tk_writer_stats(wa, &st);
	tk_writer_repoint(wa, &tgt);
	assert_true(tk_writer_wait(wa, st.acked + 10, 0, WAIT_MS));

	/* The rest wave. */
	assert_int_equal(cutover(plan, "rest", NULL, &evs), 0);
	assert_string_equal(state_of(evs, "fence"), "done");
	assert_string_equal(state_of(evs, "authority"), "done");
	json_decref(evs);
	tk_writer_assert_fenced(wb, &src, B, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, WAIT_MS);
	json_t *inv_b = assert_inverse("rest", B, false);
	tk_writer_stats(wb, &st);
	tk_writer_repoint(wb, &tgt);
	assert_true(tk_writer_wait(wb, st.acked + 10, 0, WAIT_MS));
	tk_writer_stats(wa, &st);
	assert_true(tk_writer_wait(wa, st.acked + 5, 0, WAIT_MS));
	/* Everything the app was told was acknowledged (on either cluster)
	 * is on the target once, in order; a record it was told failed may
	 * be there too (appended, its answer lost), never twice. */
	tk_writer_assert_acked_once(wa, &tgt, A);
	tk_writer_assert_acked_once(wb, &tgt, B);
	tk_writer_stop(wa);
	tk_writer_stop(wb);

	/* None accepted by the source after the fence: its HWMs are the
	 * drain's. */
	json_t *drain = fact_body("cutover.step", "wave:canary step:drain");
	json_t *pp;
	size_t i;
	int64_t sum = 0;
	json_array_foreach(json_object_get(drain, "partitions"), i, pp)
		sum += json_integer_value(json_object_get(pp, "hwm"));
	assert_int_equal(sum, tk_total_hwm(&src, A));
	json_decref(drain);

	/* The inverses give back the ACLs of before. */
	km_kafka_endpoint_t ep = {.role = "source", .bootstrap = src.bootstrap,
				  .security_protocol = "sasl_ssl", .sasl_mechanism = "SCRAM-SHA-512",
				  .username = "admin", .ssl_ca = getenv("KM_TEST_SECURE39_CA")};
	ep.password = km_strdup(getenv("KM_TEST_SECURE39_PASSWORD"));
	km_kafka_t *ks = NULL;
	char errstr[512];
	if (km_kafka_open(&ep, 0, &ks, errstr, sizeof(errstr)) ||
	    km_fence_undo(ks, inv_b, errstr, sizeof(errstr)) ||
	    km_fence_undo(ks, inv_a, errstr, sizeof(errstr)))
		fail_msg("undo: %s", errstr);
	km_kafka_close(ks);
	km_kafka_endpoint_clear(&ep);
	assert_acls_untouched();
	json_decref(inv_a);
	json_decref(inv_b);
	free(plan);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nogo_untouched),
		cmocka_unit_test(test_two_waves),
	};
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
