/*
 * test_fence.c -- the source fence (lib/fence.c) on real clusters.
 *
 * The ACL fence runs on the SASL_SSL 'secure' cluster (Kafka 4.3: admin is
 * a super user, alice is deny-by-default); issue 10 wants it on a 3.9
 * source with an authorizer too, but the test clusters have no 3.9 secure
 * one (fences.md's probe covered 3.9.2 by hand).  The config fence runs on
 * the 'plain' cluster (4.3, no authorizer).  In both, a real idempotent
 * acks=all producer writes continuously on another thread while the fence
 * lands: after the proof nothing more is accepted, the producer gets the
 * fence's error, and the undo restores its writes and the exact ACLs or
 * configs of before.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fence.h"
#include "tk.h"
#include "util.h"

#define WAIT_MS 60000

static char errstr[1024];

/* A run-unique name, so that reruns on clusters that were not wiped do
 * not meet the ACLs of an earlier run. */
static char *uniq(const char *fmt)
{
	static int id;
	if (!id)
		id = (int)getpid();
	return km_asprintf(fmt, id);
}

static km_kafka_t *open_ks(const char *var, km_kafka_endpoint_t *ep)
{
	km_kafka_t *ks = NULL;
	char name[128];

	memset(ep, 0, sizeof(*ep));
	ep->role = "source";
	ep->bootstrap = getenv(var);
	assert_non_null(ep->bootstrap);
	snprintf(name, sizeof(name), "%s_PROTOCOL", var);
	if (getenv(name)) {
		ep->security_protocol = "sasl_ssl";
		snprintf(name, sizeof(name), "%s_MECHANISM", var);
		ep->sasl_mechanism = getenv(name);
		snprintf(name, sizeof(name), "%s_USER", var);
		ep->username = getenv(name);
		snprintf(name, sizeof(name), "%s_PASSWORD", var);
		ep->password = km_strdup(getenv(name));
		snprintf(name, sizeof(name), "%s_CA", var);
		ep->ssl_ca = getenv(name);
	}
	if (km_kafka_open(ep, 0, &ks, errstr, sizeof(errstr)))
		fail_msg("open %s: %s", var, errstr);
	return ks;
}

/* An ACL listing as a sorted array of one-line strings: DescribeAcls does
 * not promise an order. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}
static char *acl_set(const tk_cluster_t *c, const char *only)
{
	json_t *acls = tk_acls(c), *a;
	size_t n = json_array_size(acls), i, k = 0;
	char **rows = calloc(n + 1, sizeof(*rows));
	km_sb_t sb = KM_SB_INIT;

	json_array_foreach(acls, i, a) {
		char *s = json_dumps(a, JSON_SORT_KEYS | JSON_COMPACT);
		if (only && !strstr(s, only)) {
			free(s);
			continue;
		}
		rows[k++] = s;
	}
	qsort(rows, k, sizeof(*rows), cmp_str);
	for (i = 0; i < k; i++) {
		km_sb_printf(&sb, "%s\n", rows[i]);
		free(rows[i]);
	}
	free(rows);
	json_decref(acls);
	return km_sb_detach(&sb);
}

static bool has_acl(const json_t *arr, const char *rt, const char *name, const char *pt,
		    const char *principal, const char *op, const char *perm)
{
	size_t i;
	json_t *a;

	json_array_foreach(arr, i, a) {
		if (!strcmp(json_string_value(json_object_get(a, "resource_type")), rt) &&
		    !strcmp(json_string_value(json_object_get(a, "name")), name) &&
		    !strcmp(json_string_value(json_object_get(a, "pattern_type")), pt) &&
		    !strcmp(json_string_value(json_object_get(a, "principal")), principal) &&
		    !strcmp(json_string_value(json_object_get(a, "operation")), op) &&
		    !strcmp(json_string_value(json_object_get(a, "permission")), perm))
			return true;
	}
	return false;
}

/* ---- the ACL fence on the secure cluster ----------------------------- */

static void test_acl_fence(void **state)
{
	(void)state;
	tk_cluster_t sec, alice;
	km_kafka_endpoint_t ep, aep;
	char *t = uniq("fenceacl-%d-t"), *other = uniq("fenceacl-%d-other"),
	     *prefix = uniq("fenceacl-%d-"), *txn = uniq("fenceacl-%d-tx");
	json_t *plan = NULL, *inv = NULL, *inv2 = NULL, *proof = NULL;
	km_err_t err;

	tk_cluster_from_env(&sec, "KM_TEST_SECURE");
	alice = sec;
	for (int i = 0; alice.props[i]; i += 2) {
		if (!strcmp(alice.props[i], "sasl.username"))
			alice.props[i + 1] = "alice";
		if (!strcmp(alice.props[i], "sasl.password"))
			alice.props[i + 1] = "alice-secret";
	}
	tk_create_topic(&sec, t, 2, NULL);
	tk_create_topic(&sec, other, 1, NULL);
	tk_acl(&sec, RD_KAFKA_RESOURCE_BROKER, "kafka-cluster", RD_KAFKA_RESOURCE_PATTERN_LITERAL,
	       "User:alice", "*", RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE,
	       RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	tk_acl(&sec, RD_KAFKA_RESOURCE_TOPIC, t, RD_KAFKA_RESOURCE_PATTERN_LITERAL, "User:alice", "*",
	       RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	tk_acl(&sec, RD_KAFKA_RESOURCE_TOPIC, t, RD_KAFKA_RESOURCE_PATTERN_LITERAL, "User:alice", "*",
	       RD_KAFKA_ACL_OPERATION_READ, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	tk_acl(&sec, RD_KAFKA_RESOURCE_TOPIC, t, RD_KAFKA_RESOURCE_PATTERN_LITERAL, "User:alice", "*",
	       RD_KAFKA_ACL_OPERATION_DESCRIBE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	tk_acl(&sec, RD_KAFKA_RESOURCE_TRANSACTIONAL_ID, txn, RD_KAFKA_RESOURCE_PATTERN_LITERAL,
	       "User:alice", "*", RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	/* bob's prefixed ALLOW also grants the topic outside the fence: it
	 * must be kept and bob denied instead. */
	tk_acl(&sec, RD_KAFKA_RESOURCE_TOPIC, prefix, RD_KAFKA_RESOURCE_PATTERN_PREFIXED, "User:bob",
	       "*", RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);

	/* alice's application writes continuously. */
	tk_writer_t *w = tk_writer_start(&alice, t, NULL);
	if (!tk_writer_wait(w, 5, 0, WAIT_MS))
		fail_msg("alice's writer got no acks before the fence");

	km_kafka_t *ks = open_ks("KM_TEST_SECURE", &ep);
	const char *topics[] = {t};
	const char *principals[] = {"User:alice", "User:admin"};
	const char *txns[] = {txn};
	const char *supers[] = {"User:admin"};
	km_fence_facts_t facts = {supers, 1, -1};
	char *before = acl_set(&sec, prefix);

	err = km_fence_plan(ks, topics, 1, principals, 2, txns, 1, "acl", &facts, &plan, errstr,
			    sizeof(errstr));
	if (err)
		fail_msg("plan: %s", errstr);
	/* The plan changes nothing. */
	char *after_plan = acl_set(&sec, prefix);
	assert_string_equal(before, after_plan);
	free(after_plan);
	json_t *rm = json_object_get(plan, "remove"), *add = json_object_get(plan, "add");
	if (json_array_size(add) != 4 || json_array_size(rm) != 1)
		fail_msg("unexpected plan: %s", json_dumps(plan, JSON_COMPACT));
	assert_int_equal(json_array_size(rm), 1);
	assert_true(has_acl(rm, "TOPIC", t, "LITERAL", "User:alice", "WRITE", "ALLOW"));
	assert_int_equal(json_array_size(json_object_get(plan, "kept")), 1);
	assert_int_equal(json_array_size(add), 4);
	assert_true(has_acl(add, "TOPIC", t, "LITERAL", "User:alice", "WRITE", "DENY"));
	assert_true(has_acl(add, "TOPIC", t, "LITERAL", "User:bob", "WRITE", "DENY"));
	assert_true(has_acl(add, "TRANSACTIONAL_ID", txn, "LITERAL", "User:alice", "WRITE", "DENY"));
	assert_true(has_acl(add, "TRANSACTIONAL_ID", txn, "LITERAL", "User:bob", "WRITE", "DENY"));
	assert_false(json_is_true(json_object_get(plan, "allow_everyone_if_no_acl_found")));
	json_t *nf = json_array_get(json_object_get(plan, "not_fenceable"), 0);
	assert_non_null(nf);
	assert_string_equal(json_string_value(json_object_get(nf, "principal")), "User:admin");

	/* A topic without any ACL: whether its readers need an ALLOW once a
	 * DENY lands depends on allow.everyone.if.no.acl.found, which the
	 * broker hides (sensitive): unknown is NO-GO, declared is obeyed. */
	char *bare = uniq("fencebare-%d");
	const char *bare_topics[] = {bare};
	json_t *bp = NULL;
	tk_create_topic(&sec, bare, 1, NULL);
	assert_int_equal(km_fence_plan(ks, bare_topics, 1, principals, 1, NULL, 0, "acl", NULL, &bp,
				       errstr, sizeof(errstr)),
			 KM_ERR_NOGO);
	assert_non_null(strstr(errstr, "allow.everyone.if.no.acl.found"));
	assert_non_null(strstr(errstr, bare));
	km_fence_facts_t everyone = {NULL, 0, 1};
	if (km_fence_plan(ks, bare_topics, 1, principals, 1, NULL, 0, "acl", &everyone, &bp, errstr,
			  sizeof(errstr)))
		fail_msg("plan with allow-everyone: %s", errstr);
	assert_true(has_acl(json_object_get(bp, "add"), "TOPIC", bare, "LITERAL", "User:*", "READ",
			    "ALLOW"));
	assert_true(has_acl(json_object_get(bp, "add"), "TOPIC", bare, "LITERAL", "User:*",
			    "DESCRIBE", "ALLOW"));
	assert_true(json_is_null(json_object_get(bp, "super_users")));
	assert_int_equal(json_array_size(json_object_get(bp, "warnings")), 1);
	json_decref(bp);
	free(bare);

	/* plan -> inverse (journaled first) -> apply returns the same. */
	if (km_fence_inverse(plan, &inv, errstr, sizeof(errstr)))
		fail_msg("inverse: %s", errstr);
	if (km_fence_apply(ks, plan, &inv2, errstr, sizeof(errstr)))
		fail_msg("apply: %s", errstr);
	assert_true(json_equal(inv, inv2));

	/* Proven as alice: her canaries are refused, reads work, HWMs still. */
	memset(&aep, 0, sizeof(aep));
	aep = ep;
	aep.username = "alice";
	aep.password = NULL;
	aep.props = NULL;
	km_kafka_endpoint_t aep2 = aep;
	aep2.password = km_strdup("alice-secret");
	const km_kafka_endpoint_t *as[] = {&aep2};
	int64_t t0 = tk_mono_ms();
	err = km_fence_prove(ks, &ep, plan, as, 1, 0, &proof, errstr, sizeof(errstr));
	if (err)
		fail_msg("prove: %s\n%s", errstr,
			 proof ? json_dumps(proof, JSON_INDENT(1)) : "(no proof)");
	fprintf(stderr, "ACL fence proven in %lld ms\n", (long long)(tk_mono_ms() - t0));
	assert_true(json_is_true(json_object_get(proof, "ok")));
	assert_int_equal(json_array_size(json_object_get(proof, "canaries")), 2);
	tk_writer_assert_fenced(w, &sec, t, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, WAIT_MS);

	/* A super user cannot prove an ACL fence: ACLs do not bind it. */
	const km_kafka_endpoint_t *as_admin[] = {&ep};
	json_t *p2 = NULL;
	assert_int_equal(km_fence_prove(ks, &ep, plan, as_admin, 1, 0, &p2, errstr, sizeof(errstr)),
			 KM_ERR_INVALID_ARG);
	assert_non_null(strstr(errstr, "super user"));

	/* Applying again changes nothing. */
	char *fenced = acl_set(&sec, prefix);
	if (km_fence_apply(ks, plan, NULL, errstr, sizeof(errstr)))
		fail_msg("apply again: %s", errstr);
	char *fenced2 = acl_set(&sec, prefix);
	assert_string_equal(fenced, fenced2);

	/* The undo restores exactly what was there, twice over. */
	if (km_fence_undo(ks, inv, errstr, sizeof(errstr)))
		fail_msg("undo: %s", errstr);
	char *after = acl_set(&sec, prefix);
	assert_string_equal(before, after);
	if (km_fence_undo(ks, inv, errstr, sizeof(errstr)))
		fail_msg("undo again: %s", errstr);
	free(after);
	after = acl_set(&sec, prefix);
	assert_string_equal(before, after);

	/* ... and alice's same producer writes again. */
	tk_writer_stats_t s;
	tk_writer_stats(w, &s);
	if (!tk_writer_wait(w, s.acked + 5, 0, WAIT_MS))
		fail_msg("alice's writer did not write again after the undo");
	tk_writer_stop(w);

	free(before);
	free(after);
	free(fenced);
	free(fenced2);
	km_kafka_endpoint_clear(&aep2);
	json_decref(plan);
	json_decref(inv);
	json_decref(inv2);
	json_decref(proof);
	km_kafka_close(ks);
	km_kafka_endpoint_clear(&ep);
	free(t);
	free(other);
	free(prefix);
	free(txn);
}

/* ---- the config fence on the plain cluster --------------------------- */

static const json_t *mmb(const json_t *cfgs)
{
	return json_object_get(cfgs, "max.message.bytes");
}

static void test_config_fence(void **state)
{
	(void)state;
	tk_cluster_t plain;
	km_kafka_endpoint_t ep;
	char *t = uniq("fencecfg-%d-t"), *o = uniq("fencecfg-%d-o");
	const char *ocfg[] = {"max.message.bytes", "500000", NULL};
	json_t *plan = NULL, *inv = NULL, *inv2 = NULL, *proof = NULL, *t_before, *o_before;
	km_err_t err;

	tk_cluster_from_env(&plain, "KM_TEST_PLAIN");
	tk_create_topic(&plain, t, 2, NULL);
	tk_create_topic(&plain, o, 1, ocfg);
	tk_writer_t *w = tk_writer_start(&plain, t, NULL);
	if (!tk_writer_wait(w, 5, 0, WAIT_MS))
		fail_msg("the writer got no acks before the fence");
	t_before = tk_topic_config_sources(&plain, t);
	o_before = tk_topic_config_sources(&plain, o);

	km_kafka_t *ks = open_ks("KM_TEST_PLAIN", &ep);
	const char *topics[] = {t, o};

	/* Without an authorizer the ACL fence is refused. */
	json_t *bad = NULL;
	assert_int_equal(km_fence_plan(ks, topics, 2, NULL, 0, NULL, 0, "acl", NULL, &bad, errstr,
				       sizeof(errstr)),
			 KM_ERR_UNSUPPORTED);
	assert_non_null(strstr(errstr, "no authorizer"));

	err = km_fence_plan(ks, topics, 2, NULL, 0, NULL, 0, "config", NULL, &plan, errstr,
			    sizeof(errstr));
	if (err)
		fail_msg("plan: %s", errstr);
	json_t *pt = json_array_get(json_object_get(plan, "topics"), 0),
	       *po = json_array_get(json_object_get(plan, "topics"), 1);
	assert_false(json_is_true(json_object_get(json_object_get(pt, "max_message_bytes"), "override")));
	assert_true(json_is_true(json_object_get(json_object_get(po, "max_message_bytes"), "override")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(po, "max_message_bytes"),
							      "value")),
			    "500000");
	if (km_fence_inverse(plan, &inv, errstr, sizeof(errstr)))
		fail_msg("inverse: %s", errstr);
	json_t *r0 = json_array_get(json_object_get(inv, "configs"), 0),
	       *r1 = json_array_get(json_object_get(inv, "configs"), 1);
	assert_string_equal(json_string_value(json_object_get(r0, "op")), "DELETE");
	assert_string_equal(json_string_value(json_object_get(r1, "op")), "SET");
	assert_string_equal(json_string_value(json_object_get(r1, "value")), "500000");

	if (km_fence_apply(ks, plan, &inv2, errstr, sizeof(errstr)))
		fail_msg("apply: %s", errstr);
	assert_true(json_equal(inv, inv2));
	const km_kafka_endpoint_t *as[] = {&ep};
	int64_t t0 = tk_mono_ms();
	err = km_fence_prove(ks, &ep, plan, as, 1, 0, &proof, errstr, sizeof(errstr));
	if (err)
		fail_msg("prove: %s\n%s", errstr,
			 proof ? json_dumps(proof, JSON_INDENT(1)) : "(no proof)");
	fprintf(stderr, "config fence proven in %lld ms\n", (long long)(tk_mono_ms() - t0));
	assert_int_equal(json_array_size(json_object_get(proof, "canaries")), 3);
	tk_writer_assert_fenced(w, &plain, t, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, WAIT_MS);

	/* Applying again changes nothing. */
	json_t *t_fenced = tk_topic_config_sources(&plain, t);
	if (km_fence_apply(ks, plan, NULL, errstr, sizeof(errstr)))
		fail_msg("apply again: %s", errstr);
	json_t *t_fenced2 = tk_topic_config_sources(&plain, t);
	assert_true(json_equal(t_fenced, t_fenced2));
	assert_string_equal(json_string_value(json_object_get(mmb(t_fenced), "value")), "0");

	/* A new plan on the fenced topics cannot know what to restore. */
	json_t *plan2 = NULL, *inv3 = NULL;
	if (km_fence_plan(ks, topics, 2, NULL, 0, NULL, 0, "config", NULL, &plan2, errstr,
			  sizeof(errstr)))
		fail_msg("plan on fenced topics: %s", errstr);
	assert_int_equal(km_fence_inverse(plan2, &inv3, errstr, sizeof(errstr)), KM_ERR_CONFLICT);
	assert_int_equal(km_fence_apply(ks, plan2, NULL, errstr, sizeof(errstr)), KM_ERR_CONFLICT);
	assert_non_null(strstr(errstr, "journaled"));

	/* The undo restores value and source exactly, twice over. */
	for (int i = 0; i < 2; i++) {
		if (km_fence_undo(ks, inv, errstr, sizeof(errstr)))
			fail_msg("undo: %s", errstr);
		json_t *ta = tk_topic_config_sources(&plain, t), *oa = tk_topic_config_sources(&plain, o);
		assert_true(json_equal(mmb(ta), mmb(t_before)));
		assert_true(json_equal(mmb(oa), mmb(o_before)));
		json_decref(ta);
		json_decref(oa);
	}
	tk_writer_stats_t s;
	tk_writer_stats(w, &s);
	assert_int_equal(s.fatal, 0);
	if (!tk_writer_wait(w, s.acked + 5, 0, WAIT_MS))
		fail_msg("the writer did not write again after the undo");
	tk_writer_stop(w);

	json_decref(t_before);
	json_decref(o_before);
	json_decref(t_fenced);
	json_decref(t_fenced2);
	json_decref(plan);
	json_decref(plan2);
	json_decref(inv);
	json_decref(inv2);
	json_decref(proof);
	km_kafka_close(ks);
	km_kafka_endpoint_clear(&ep);
	free(t);
	free(o);
}

/* The config fence is refused while a transaction is open on a partition,
 * and for topics a transactional producer writes; nothing is changed. */
static void test_config_refused(void **state)
{
	(void)state;
	tk_cluster_t plain;
	km_kafka_endpoint_t ep;
	char *x = uniq("fencecfg-%d-x"), *txn = uniq("fencecfg-%d-tx");
	json_t *plan = NULL;

	tk_cluster_from_env(&plain, "KM_TEST_PLAIN");
	tk_create_topic(&plain, x, 1, NULL);
	json_t *before = tk_topic_config_sources(&plain, x);
	km_kafka_t *ks = open_ks("KM_TEST_PLAIN", &ep);
	const char *topics[] = {x};
	const char *txns[] = {txn};

	rd_kafka_t *tp = tk_producer(&plain, txn);
	rd_kafka_error_t *e = rd_kafka_begin_transaction(tp);
	assert_null(e);
	tk_msg_t m = {.key = "k", .value = "open", .partition = 0};
	tk_produce(tp, x, &m);
	tk_flush(tp);

	assert_int_equal(km_fence_plan(ks, topics, 1, NULL, 0, NULL, 0, "config", NULL, &plan, errstr,
				       sizeof(errstr)),
			 KM_ERR_NOGO);
	assert_null(plan);
	assert_non_null(strstr(errstr, x));
	assert_non_null(strstr(errstr, "open transaction"));

	assert_int_equal(km_fence_plan(ks, topics, 1, NULL, 0, txns, 1, "config", NULL, &plan, errstr,
				       sizeof(errstr)),
			 KM_ERR_NOGO);
	assert_non_null(strstr(errstr, txn));
	assert_non_null(strstr(errstr, "transactional producer"));

	json_t *after = tk_topic_config_sources(&plain, x);
	assert_true(json_equal(mmb(before), mmb(after)));

	/* Once the transaction is over (its marker written), the fence may
	 * be planned. */
	assert_null(rd_kafka_abort_transaction(tp, 30000));
	int64_t deadline = tk_mono_ms() + WAIT_MS;
	km_err_t err;
	while ((err = km_fence_plan(ks, topics, 1, NULL, 0, NULL, 0, "config", NULL, &plan, errstr,
				    sizeof(errstr))) == KM_ERR_NOGO &&
	       tk_mono_ms() < deadline)
		usleep(100 * 1000);
	if (err)
		fail_msg("plan after the abort: %s", errstr);

	/* A fence that was never applied is not proven, and no canary is
	 * sent (it would be appended): the proof waits for the cluster to
	 * describe the fence first. */
	json_t *proof = NULL;
	const km_kafka_endpoint_t *as[] = {&ep};
	int64_t hwm = tk_total_hwm(&plain, x);
	assert_int_equal(km_fence_prove(ks, &ep, plan, as, 1, 1000, &proof, errstr, sizeof(errstr)),
			 KM_ERR_NOGO);
	assert_non_null(strstr(errstr, "not in place"));
	assert_int_equal(tk_total_hwm(&plain, x), hwm);
	rd_kafka_destroy(tp);
	json_decref(plan);
	json_decref(before);
	json_decref(after);
	km_kafka_close(ks);
	km_kafka_endpoint_clear(&ep);
	free(x);
	free(txn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_acl_fence),
		cmocka_unit_test(test_config_fence),
		cmocka_unit_test(test_config_refused),
	};
	/* TK_ONLY=test_name (a glob) runs a subset, e.g. while working on one. */
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
