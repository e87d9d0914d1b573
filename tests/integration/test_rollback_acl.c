/*
 * test_rollback_acl.c -- `kmigrate rollback` with the ACL fence
 * (cutover.fence: acl), on real clusters with authorizers and distinct
 * principals: source the 3.9 SASL_SSL/SCRAM 'secure39', target the 4.3
 * SASL_SSL/SCRAM 'secure' (the plaintext 'target' authenticates nobody:
 * every client there is the super user ANONYMOUS, so no ACL fence could
 * tell a stale producer from kmigrate).
 *
 * kmigrate is admin on both (a super user).  User:app (the application)
 * has LITERAL ALLOW WRITE on topic A and IDEMPOTENT_WRITE, User:probe (the
 * fence proof's canary) a PREFIXED ALLOW WRITE covering A, on both
 * clusters.  One wave w1 (A, group G).  Cases, in order (shared estate):
 *   - before the authority moved (the cutover killed after its fence):
 *     the rollback restores the source's ACLs and A's configs exactly
 *     (sorted binding lists and config maps re-read and compared);
 *   - after the authority moved (the cutover done, app writes the
 *     target): the rollback fences the target with one DENY WRITE per
 *     writer but kmigrate (app, probe); a stale app producer on the target
 *     then fails fast with TOPIC_AUTHORIZATION_FAILED; --release-target has
 *     nothing to release (the ACL fence leaves kmigrate out); kmigrate's
 *     forward copy still writes the target (new source records reach it,
 *     the target equals the source); the next cutover lifts the target
 *     fence at its authority step, and app writes the target again.
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

#include "tk.h"
#include "util.h"

#define WAIT_MS 120000

static tk_cluster_t src, tgt, app_tgt;
static char A[80], G[64], APPU[32], PRBU[32], UAPP[40], UPRB[40];
static char *dir, *journal, *plan;

static char *write_plan(void)
{
	char *text = km_asprintf(
		"migration: it-rbacl-%d\n"
		"journal: %s\n"
		"source:\n  bootstrap: %s\n  security_protocol: sasl_ssl\n"
		"  sasl_mechanism: SCRAM-SHA-512\n  username: admin\n"
		"  password_env: KM_TEST_SECURE39_PASSWORD\n  ssl_ca: %s\n  owner: platform\n"
		"target:\n  bootstrap: %s\n  security_protocol: sasl_ssl\n"
		"  sasl_mechanism: SCRAM-SHA-512\n  username: admin\n"
		"  password_env: KM_TEST_SECURE_PASSWORD\n  ssl_ca: %s\n  owner: platform\n"
		"topics:\n  include: [\"^%s$\"]\n"
		"  rules:\n    - {match: \".*\", owner: qa}\n"
		"consumer_groups:\n  - {id: %s, restart: translated, owner: team-a, chosen_by: qa}\n"
		"consumers:\n  - {name: reader-a, group: %s, isolation_level: read_committed, "
		"owner: team-a, validation: \"reads on the target\", client: librdkafka, "
		"client_version: 2.8.0}\n"
		"producers:\n  - {name: app-a, principal: \"%s\", idempotence: true, "
		"transactions: false, topics: [%s], owner: team-a, "
		"validation: \"writes on the target\", client: librdkafka, client_version: 2.8.0}\n"
		"gates:\n  max_lag_records: 1000000\n"
		"cutover:\n  fence: acl\n  fence_owner: platform\n  quiet_period: 1s\n"
		"  super_users: [\"User:admin\"]\n"
		"  super_users_fence: external\n  super_users_fence_owner: platform\n"
		"  fence_probe: {principal: \"%s\", username: %s, password_env: "
		"KM_TEST_PROBE_PASSWORD}\n"
		"  waves:\n"
		"    - {name: w1, topics: [%s], groups: [%s], consumers: [reader-a], "
		"producers: [app-a], owner: team-a}\n",
		(int)getpid(), journal, src.bootstrap, getenv("KM_TEST_SECURE39_CA"), tgt.bootstrap,
		getenv("KM_TEST_SECURE_CA"), A, G, G, UAPP, A, UPRB, PRBU, A, G);
	char *p = tk_write_file(dir, "migration.yaml", text);
	free(text);
	return p;
}

/* app's and probe's users and ACLs on c (the same on both clusters). */
static void principals_on(const tk_cluster_t *c)
{
	const rd_kafka_ResourcePatternType_t LIT = RD_KAFKA_RESOURCE_PATTERN_LITERAL;
	const rd_kafka_AclPermissionType_t OK = RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW;
	char pfx[80];

	snprintf(pfx, sizeof(pfx), "rbacl-%d.", (int)getpid());
	tk_scram_user(c, APPU, "app-secret");
	tk_scram_user(c, PRBU, "probe-secret");
	tk_acl(c, RD_KAFKA_RESOURCE_TOPIC, A, LIT, UAPP, "*", RD_KAFKA_ACL_OPERATION_WRITE, OK);
	tk_acl(c, RD_KAFKA_RESOURCE_TOPIC, A, LIT, UAPP, "*", RD_KAFKA_ACL_OPERATION_DESCRIBE, OK);
	tk_acl(c, RD_KAFKA_RESOURCE_BROKER, "kafka-cluster", LIT, UAPP, "*",
	       RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE, OK);
	tk_acl(c, RD_KAFKA_RESOURCE_TOPIC, pfx, RD_KAFKA_RESOURCE_PATTERN_PREFIXED, UPRB, "*",
	       RD_KAFKA_ACL_OPERATION_WRITE, OK);
}

static int cutover(const char *crash, json_t **evsp)
{
	const char *argv[] = {tk_kmigrate(), "cutover", "-p", plan, "--wave", "w1", "--json", NULL};
	return tk_km_events(evsp, "KM_CUTOVER_CRASH_AFTER", crash, argv);
}

static int rollback(json_t **evsp)
{
	const char *argv[] = {tk_kmigrate(), "rollback", "-p", plan, "--wave", "w1", "--json",
			      NULL};
	return tk_km_events(evsp, NULL, NULL, argv);
}

/* status's target fence of wave w1 ("acl (fact N)", "none", ...). */
static char *status_target_fence(void)
{
	char *out = NULL;
	json_t *w;
	size_t i;
	char *f = NULL;
	assert_int_equal(tk_kmv(&out, NULL, "status", "-p", plan, "--json", NULL), 0);
	json_t *st = tk_json(out);
	json_array_foreach(json_object_get(st, "waves"), i, w)
		if (!strcmp(json_string_value(json_object_get(w, "wave")), "w1"))
			f = km_strdup(json_string_value(json_object_get(
				json_object_get(json_object_get(w, "rollback"), "fence"), "target")));
	json_decref(st);
	free(out);
	assert_non_null(f);
	return f;
}

static void assert_same_records(void)
{
	for (int p = 0; p < 2; p++) {
		tk_digests_t ds, dt;
		tk_digest_partition(&src, A, p, true, &ds);
		tk_digest_partition(&tgt, A, p, true, &dt);
		fprintf(stderr, "partition %d: source %zu records, target %zu\n", p, ds.n, dt.n);
		assert_int_equal(ds.n, dt.n);
		for (size_t i = 0; i < ds.n; i++)
			if (ds.d[i] != dt.d[i])
				fail_msg("%s[%d]: record %zu differs", A, p, i);
		tk_digests_free(&ds);
		tk_digests_free(&dt);
	}
}

static int setup(void **state)
{
	int id = (int)getpid();
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_SECURE39");
	tk_cluster_from_env(&tgt, "KM_TEST_SECURE");
	setenv("KM_TEST_PROBE_PASSWORD", "probe-secret", 1);
	snprintf(APPU, sizeof(APPU), "app-%d", id);
	snprintf(PRBU, sizeof(PRBU), "probe-%d", id);
	snprintf(UAPP, sizeof(UAPP), "User:%s", APPU);
	snprintf(UPRB, sizeof(UPRB), "User:%s", PRBU);
	snprintf(A, sizeof(A), "rbacl-%d.a", id);
	snprintf(G, sizeof(G), "g-rbacl-%d", id);
	tk_cluster_as(&app_tgt, &tgt, APPU, "app-secret");
	tk_create_topic(&src, A, 2, NULL);
	principals_on(&src);
	principals_on(&tgt);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < 20; i++) {
		tk_msg_t m = {.key = "k", .value = "seed", .partition = i % 2};
		tk_produce(p, A, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	tk_commit(&src, G, A, 0, 5);
	tk_commit(&src, G, A, 1, 7);
	dir = tk_tmpdir("rollback-acl");
	journal = km_asprintf("%s/kmigrate.db", dir);
	plan = write_plan();
	tk_ready_for_cutover(plan);
	return 0;
}

static bool wait_log(const char *path, const char *needle, int timeout_ms)
{
	for (int64_t end = tk_mono_ms() + timeout_ms; tk_mono_ms() < end; usleep(200 * 1000)) {
		char *text = tk_read_file(path, NULL);
		bool ok = text && strstr(text, needle);
		free(text);
		if (ok)
			return true;
	}
	return false;
}

/* Before the authority moved: a rollback is refused while the cutover
 * holds the cutover lock (one line naming the holder); once the cutover
 * is gone (kill -9 in its drain, the source fenced) the rollback restores
 * the source's ACLs and configs as before. */
static void test_before_authority(void **state)
{
	json_t *evs;
	char *out, *err, *log1 = km_asprintf("%s/cutover1.log", dir);
	(void)state;

	char *acls0 = tk_acl_lines(&src);
	json_t *cfg0 = tk_topic_configs(&src, A);
	/* No replicator, and a record it has not copied: the drain waits. */
	tk_produce_one(&src, A, "after-catch-up");
	const char *argv1[] = {tk_kmigrate(), "cutover",         "-p",  plan, "--wave", "w1",
			       "--json",      "--drain-timeout", "600", NULL};
	pid_t first = tk_spawn(argv1, log1);
	assert_true(wait_log(log1, "\"step\":\"drain\"", WAIT_MS));
	assert_int_equal(tk_kmv(&out, &err, "rollback", "-p", plan, "--wave", "w1", "--lock-wait",
				"1", NULL),
			 1);
	assert_non_null(strstr(err, "cutover of migration 'it-rbacl-"));
	assert_non_null(strstr(err, "is already running (held by kmigrate-cutover host="));
	assert_non_null(strstr(err, "wave=w1"));
	assert_true(strchr(err, '\n') == err + strlen(err) - 1); /* one line */
	free(out);
	free(err);
	kill(first, SIGKILL);
	tk_wait_exit(first, WAIT_MS);
	char *fenced = tk_acl_lines(&src);
	assert_string_not_equal(fenced, acls0); /* the fence changed them */
	free(fenced);
	free(log1);
	/* The killed holder stays a member until its session ends: the
	 * rollback waits for it (--lock-wait's default), then runs. */
	assert_int_equal(rollback(&evs), 0);
	assert_string_equal(tk_event_state(evs, "unfence"), "done");
	assert_null(tk_event_state(evs, "fence-target"));
	json_decref(evs);
	char *acls1 = tk_acl_lines(&src);
	assert_string_equal(acls1, acls0);
	json_t *cfg1 = tk_topic_configs(&src, A);
	assert_true(json_equal(cfg0, cfg1));
	free(acls0);
	free(acls1);
	json_decref(cfg0);
	json_decref(cfg1);
}

/* After the authority moved: the target fenced for app, not kmigrate; the
 * next cutover lifts it. */
static void test_after_authority(void **state)
{
	json_t *evs;
	char *out = NULL;
	(void)state;

	char *replog = km_asprintf("%s/replicate.log", dir);
	const char *rargv[] = {tk_kmigrate(), "replicate", "-p", plan, NULL};
	pid_t repl = tk_spawn(rargv, replog);
	assert_int_equal(cutover(NULL, &evs), 0);
	json_decref(evs);
	assert_int_equal(tk_wait_exit(repl, WAIT_MS), 0);
	/* The application writes the target now. */
	tk_produce_one(&app_tgt, A, "on-target-1");
	tk_produce_one(&app_tgt, A, "on-target-2");

	assert_int_equal(rollback(&evs), 0);
	assert_string_equal(tk_event_state(evs, "fence-target"), "done");
	assert_string_equal(tk_event_state(evs, "reset"), "done");
	json_decref(evs);
	/* One DENY WRITE per writer of A on the target, kmigrate (admin) not
	 * among them. */
	json_t *acls = tk_acls(&tgt), *a;
	size_t i;
	int denies = 0;
	json_array_foreach(acls, i, a)
		if (!strcmp(json_string_value(json_object_get(a, "name")), A) &&
		    !strcmp(json_string_value(json_object_get(a, "permission")), "DENY")) {
			const char *pr = json_string_value(json_object_get(a, "principal"));
			assert_true(!strcmp(pr, UAPP) || !strcmp(pr, UPRB));
			denies++;
		}
	assert_int_equal(denies, 2);
	json_decref(acls);
	char *tf = status_target_fence();
	assert_true(!strncmp(tf, "acl (fact ", 10));
	free(tf);
	/* A stale app producer on the target fails fast. */
	tk_writer_t *stale = tk_writer_start(&app_tgt, A, NULL);
	tk_writer_assert_fenced(stale, &tgt, A, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
				WAIT_MS);
	tk_writer_stop(stale);
	/* The ACL fence leaves kmigrate out: nothing to release. */
	assert_int_equal(tk_kmv(&out, NULL, "rollback", "-p", plan, "--wave", "w1",
				"--release-target", "--json", NULL),
			 0);
	assert_non_null(strstr(out, "\"result\":\"nothing\""));
	free(out);
	/* kmigrate's forward copy still writes the target. */
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int k = 0; k < 6; k++) {
		tk_msg_t m = {.key = "k", .value = "again", .partition = k % 2};
		tk_produce(p, A, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	tk_catch_up(plan, WAIT_MS, NULL);
	assert_same_records();
	/* The next cutover lifts the target fence; app writes the target. */
	tk_km(plan, "offsets", NULL, NULL, 0, NULL);
	assert_int_equal(cutover(NULL, &evs), 0);
	json_decref(evs);
	assert_int_equal(tk_journal_count(journal, "rollback.fence-lifted", "wave:w1"), 1);
	tf = status_target_fence();
	assert_string_equal(tf, "none");
	free(tf);
	tk_produce_one(&app_tgt, A, "on-target-again");
	free(replog);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_before_authority),
		cmocka_unit_test(test_after_authority),
	};
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, setup, NULL);
}
