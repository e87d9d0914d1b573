/*
 * Target design on real clusters: a Kafka 3.9 source whose broker defaults
 * differ from the 4.3 target's (tests/cluster/test-clusters), prefix naming,
 * a SASL_SSL target.  After `apply`, DescribeConfigs on both sides (read by
 * the test kit, not kmigrate) must give equal effective values for every
 * config that matters, ACLs must match one for one after name mapping, and
 * a second apply must change nothing.  A target topic with fewer partitions
 * blocks, and nothing is half-applied for it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk.h"

static tk_cluster_t src, tgt;
static char *dir, *plan_path;

static const char *const topics[] = {"d.orders", "d.compact", "d.legacy", "d.plain"};
#define NTOPICS 4

static const char *const matters[] = {
	"retention.ms", "retention.bytes", "cleanup.policy", "delete.retention.ms",
	"min.compaction.lag.ms", "max.compaction.lag.ms", "min.cleanable.dirty.ratio",
	"max.message.bytes", "min.insync.replicas", "message.timestamp.type",
	"compression.type", "segment.bytes", "segment.ms",
	"message.timestamp.after.max.ms", "message.timestamp.before.max.ms"};

static int run_km(char **out, const char *cmd, const char *extra)
{
	char *err = NULL;
	const char *argv[] = {tk_kmigrate(), cmd, "-p", plan_path, "--json", extra, NULL};
	int rc = tk_run(out, &err, argv);
	if (rc > 1)
		fail_msg("kmigrate %s failed (%d): %s", cmd, rc, err);
	free(err);
	return rc;
}

static void test_setup(void **state)
{
	char plan[2048];
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_SOURCE");
	tk_cluster_from_env(&tgt, "KM_TEST_SECURE");
	setenv("KM_IT_TGT_PW", getenv("KM_TEST_SECURE_PASSWORD"), 1);

	const char *orders[] = {"retention.ms", "123456789", "max.message.bytes", "500000", NULL};
	const char *compact[] = {"cleanup.policy", "compact", "min.compaction.lag.ms", "60000",
				 "delete.retention.ms", "1000", NULL};
	const char *legacy[] = {"message.format.version", "3.0-IV1",
				"message.timestamp.type", "LogAppendTime", NULL};
	tk_create_topic(&src, "d.orders", 4, orders);
	tk_create_topic(&src, "d.compact", 2, compact);
	tk_create_topic(&src, "d.legacy", 1, legacy);
	tk_create_topic(&src, "d.plain", 3, NULL);
	tk_acl(&src, RD_KAFKA_RESOURCE_TOPIC, "d.orders", RD_KAFKA_RESOURCE_PATTERN_LITERAL,
	       "User:u1", "*", RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	tk_acl(&src, RD_KAFKA_RESOURCE_TOPIC, "d.", RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
	       "User:u2", "*", RD_KAFKA_ACL_OPERATION_READ, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	tk_acl(&src, RD_KAFKA_RESOURCE_TOPIC, "d.plain", RD_KAFKA_RESOURCE_PATTERN_LITERAL,
	       "User:u3", "10.1.2.3", RD_KAFKA_ACL_OPERATION_ALL, RD_KAFKA_ACL_PERMISSION_TYPE_DENY);
	tk_acl(&src, RD_KAFKA_RESOURCE_GROUP, "g-design", RD_KAFKA_RESOURCE_PATTERN_LITERAL,
	       "User:u2", "*", RD_KAFKA_ACL_OPERATION_READ, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	tk_acl(&src, RD_KAFKA_RESOURCE_TRANSACTIONAL_ID, "tx-design", RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
	       "User:u1", "*", RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	tk_acl(&src, RD_KAFKA_RESOURCE_BROKER, "kafka-cluster", RD_KAFKA_RESOURCE_PATTERN_LITERAL,
	       "User:u1", "*", RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);

	dir = tk_tmpdir("design");
	snprintf(plan, sizeof(plan),
		 "migration: it-design\n"
		 "source:\n  bootstrap: %s\n"
		 "target:\n  bootstrap: %s\n  security_protocol: sasl_ssl\n"
		 "  sasl_mechanism: SCRAM-SHA-512\n  username: admin\n"
		 "  password_env: KM_IT_TGT_PW\n  ssl_ca: %s\n"
		 "topics:\n  include: [\"^d\\\\.\"]\n"
		 "naming:\n  mode: prefix\n  prefix: \"mig.\"\n",
		 src.bootstrap, tgt.bootstrap, getenv("KM_TEST_SECURE_CA"));
	plan_path = tk_write_file(dir, "migration.yaml", plan);
}

static const json_t *find_topic(const json_t *design, const char *source)
{
	json_t *t;
	size_t i;
	json_array_foreach(json_object_get(design, "topics"), i, t)
		if (!strcmp(json_string_value(json_object_get(t, "source")), source))
			return t;
	fail_msg("topic %s not in the design", source);
	return NULL;
}

static void test_plan_shows_design(void **state)
{
	char *out;
	(void)state;
	assert_int_equal(run_km(&out, "plan", NULL), 0);
	json_t *doc = tk_json(out);
	json_t *design = json_object_get(doc, "design");
	json_t *actions = json_object_get(doc, "actions"), *a;
	size_t i, creates = 0;

	json_array_foreach(actions, i, a)
		if (!strcmp(json_string_value(json_object_get(a, "op")), "create-topic"))
			creates++;
	assert_int_equal(creates, NTOPICS);
	/* The 3.9 broker's 72 h retention differs from 4.3's 168 h: pinned. */
	const json_t *plain = find_topic(design, "d.plain");
	assert_string_equal(json_string_value(json_object_get(plain, "target")), "mig.d.plain");
	const char *ret = json_string_value(json_object_get(
		json_object_get(json_object_get(plain, "configs"), "retention.ms"), "value"));
	if (!ret || strcmp(ret, "259200000"))
		fail_msg("d.plain: retention.ms not pinned to the source broker's 72 h (got %s)",
			 ret ? ret : "nothing");
	/* message.format.version is gone in Kafka 4: listed, not failed. */
	const json_t *legacy = find_topic(design, "d.legacy");
	json_t *u = json_array_get(json_object_get(legacy, "unsupported"), 0);
	assert_non_null(u);
	assert_string_equal(json_string_value(json_object_get(u, "config")), "message.format.version");
	free(out);
	json_decref(doc);
}

static bool acl_in(const json_t *set, const char *rt, const char *pt, const char *name,
		   const json_t *a)
{
	json_t *b;
	size_t i;
	json_array_foreach(set, i, b)
		if (!strcmp(json_string_value(json_object_get(b, "resource_type")), rt) &&
		    !strcmp(json_string_value(json_object_get(b, "pattern_type")), pt) &&
		    !strcmp(json_string_value(json_object_get(b, "name")), name) &&
		    json_equal(json_object_get(b, "principal"), json_object_get(a, "principal")) &&
		    json_equal(json_object_get(b, "host"), json_object_get(a, "host")) &&
		    json_equal(json_object_get(b, "operation"), json_object_get(a, "operation")) &&
		    json_equal(json_object_get(b, "permission"), json_object_get(a, "permission")))
			return true;
	return false;
}

static void test_apply_matches_effective_configs_and_acls(void **state)
{
	char *out, tname[128];
	(void)state;
	assert_int_equal(run_km(&out, "apply", NULL), 0);
	/* Batched (issue 12): the four topics in one CreateTopics, the guard
	 * DENY in one CreateAcls and the copied ACLs in another (guards
	 * first), whatever the number of objects. */
	json_t *doc = tk_json(out), *req = json_object_get(doc, "requests");
	if (!json_is_object(req))
		fail_msg("apply --json lists no requests: %s", out);
	assert_int_equal(json_integer_value(json_object_get(req, "CreateTopics")), 1);
	assert_int_equal(json_integer_value(json_object_get(req, "IncrementalAlterConfigs")), 0);
	assert_int_equal(json_integer_value(json_object_get(req, "CreateAcls")), 2);
	assert_true(json_integer_value(json_object_get(doc, "applied")) > NTOPICS + 2);
	json_decref(doc);
	free(out);

	for (int t = 0; t < NTOPICS; t++) {
		snprintf(tname, sizeof(tname), "mig.%s", topics[t]);
		json_t *s = tk_topic_configs(&src, topics[t]);
		json_t *d = tk_topic_configs(&tgt, tname);
		assert_int_equal(tk_partitions(&src, topics[t]), tk_partitions(&tgt, tname));
		for (size_t i = 0; i < sizeof(matters) / sizeof(matters[0]); i++) {
			json_t *sv = json_object_get(s, matters[i]), *dv = json_object_get(d, matters[i]);
			if (!json_equal(sv, dv))
				fail_msg("%s: %s is %s on the source but %s on the target", topics[t],
					 matters[i], json_string_value(sv), json_string_value(dv));
		}
		json_decref(s);
		json_decref(d);
	}

	/* ACLs one for one after mapping: expected set computed here, from
	 * the source's own ACL listing. */
	json_t *sacls = tk_acls(&src), *tacls = tk_acls(&tgt), *a;
	size_t i, expected = 0;
	json_array_foreach(sacls, i, a) {
		const char *rt = json_string_value(json_object_get(a, "resource_type"));
		const char *pt = json_string_value(json_object_get(a, "pattern_type"));
		const char *name = json_string_value(json_object_get(a, "name"));
		char mapped[256];
		if (!strcmp(rt, "TOPIC")) {
			if (strncmp(name, "d.", 2))
				continue; /* a literal ACL on a topic not migrated */
			snprintf(mapped, sizeof(mapped), "mig.%s", name);
		} else {
			snprintf(mapped, sizeof(mapped), "%s", name);
		}
		if (!acl_in(tacls, rt, pt, mapped, a))
			fail_msg("ACL %s %s %s for %s missing on the target as '%s'", rt, pt, name,
				 json_string_value(json_object_get(a, "principal")), mapped);
		expected++;
	}
	/* apply's target guard (lib/guard.h): u1's copied ALLOW WRITE on
	 * mig.d.orders is held by a DENY WRITE until the topic is cut over. */
	json_t *guard = json_pack("{s:s, s:s, s:s, s:s}", "principal", "User:u1", "host", "*",
				  "operation", "WRITE", "permission", "DENY");
	if (!acl_in(tacls, "TOPIC", "LITERAL", "mig.d.orders", guard))
		fail_msg("the guard DENY WRITE for User:u1 on mig.d.orders is missing");
	json_decref(guard);
	expected++;
	/* The design carries the estate's non-topic ACLs too (group, cluster,
	 * transactional ids are not scoped): every target ACL is accounted for. */
	assert_int_equal(json_array_size(tacls), expected);
	json_decref(sacls);
	json_decref(tacls);
}

static void test_second_apply_changes_nothing(void **state)
{
	char *out;
	(void)state;
	assert_int_equal(run_km(&out, "apply", NULL), 0);
	json_t *doc = tk_json(out);
	assert_int_equal(json_integer_value(json_object_get(doc, "applied")), 0);
	json_decref(doc);
	free(out);
	/* And the dry run equals plan: nothing to create or change. */
	assert_int_equal(run_km(&out, "apply", "--dry-run"), 0);
	doc = tk_json(out);
	json_t *a;
	size_t i;
	json_array_foreach(json_object_get(doc, "actions"), i, a)
		assert_string_equal(json_string_value(json_object_get(a, "op")), "manual");
	json_decref(doc);
	free(out);
}

static void test_fewer_partitions_blocks(void **state)
{
	char *out;
	(void)state;
	tk_create_topic(&src, "d.wide", 3, NULL);
	tk_create_topic(&tgt, "mig.d.wide", 1, NULL);
	assert_int_equal(run_km(&out, "plan", NULL), 1);
	json_t *doc = tk_json(out), *a;
	size_t i;
	int blocked = 0;
	json_array_foreach(json_object_get(doc, "actions"), i, a)
		if (!strcmp(json_string_value(json_object_get(a, "op")), "blocked") &&
		    !strcmp(json_string_value(json_object_get(a, "subject")), "mig.d.wide") &&
		    strstr(json_string_value(json_object_get(a, "reason")), "equal counts"))
			blocked = 1;
	assert_true(blocked);
	json_decref(doc);
	free(out);
	assert_int_equal(run_km(&out, "apply", NULL), 1);
	free(out);
	assert_int_equal(tk_partitions(&tgt, "mig.d.wide"), 1); /* never re-partitioned */
}

/* SCRAM users cannot be copied: they are manual items, owned by the
 * target's owner, and without one `plan` reports them as findings. */
static void test_scram_users_are_owned_manual_items(void **state)
{
	char text[2048], *out, *err;
	(void)state;
	for (int owned = 0; owned < 2; owned++) {
		snprintf(text, sizeof(text),
			 "migration: it-design-scram\n"
			 "source:\n  bootstrap: %s\n  security_protocol: sasl_ssl\n"
			 "  sasl_mechanism: SCRAM-SHA-512\n  username: admin\n"
			 "  password_env: KM_IT_TGT_PW\n  ssl_ca: %s\n"
			 "target:\n  bootstrap: %s\n%s"
			 "topics:\n  include: [\"^no-such-topic$\"]\n",
			 tgt.bootstrap, getenv("KM_TEST_SECURE_CA"), getenv("KM_TEST_TARGET"),
			 owned ? "  owner: platform-team\n" : "");
		char *p = tk_write_file(dir, owned ? "scram-owned.yaml" : "scram.yaml", text);
		const char *argv[] = {tk_kmigrate(), "plan", "-p", p, "--json", NULL};
		int rc = tk_run(&out, &err, argv);
		assert_int_equal(rc, owned ? 0 : 1);
		json_t *doc = tk_json(out), *a;
		size_t i;
		int users = 0;
		json_array_foreach(json_object_get(doc, "actions"), i, a)
			if (!strcmp(json_string_value(json_object_get(a, "op")), "manual") &&
			    !strcmp(json_string_value(json_object_get(a, "kind")), "scram-user")) {
				users++;
				if (owned)
					assert_string_equal(json_string_value(json_object_get(a, "owner")),
							    "platform-team");
				else
					assert_true(json_is_null(json_object_get(a, "owner")));
			}
		assert_true(users >= 2); /* admin and alice */
		json_decref(doc);
		free(out);
		free(err);
		free(p);
	}
}

/* Kafka 4.0 raised segment.bytes' minimum from 14 bytes to 1 MiB
 * (KIP-1030): a 3.9 topic with 64 KiB segments cannot be created as is on
 * the 4.3 target.  plan shows it blocked with the reason and exits 1, and
 * apply creates nothing for it (it used to propose a normal create that
 * apply then failed on). */
static void test_target_limit_blocks(void **state)
{
	char text[1024], *out, *err, *ldir = tk_tmpdir("design-limits");
	tk_cluster_t s39, t43;
	(void)state;
	tk_cluster_from_env(&s39, "KM_TEST_SOURCE");
	tk_cluster_from_env(&t43, "KM_TEST_TARGET");
	const char *tiny[] = {"segment.bytes", "65536", NULL};
	tk_create_topic(&s39, "d2.tiny", 1, tiny);
	snprintf(text, sizeof(text),
		 "migration: it-design-limits\n"
		 "source:\n  bootstrap: %s\ntarget:\n  bootstrap: %s\n"
		 "topics:\n  include: [\"^d2\\\\.tiny$\"]\n",
		 s39.bootstrap, t43.bootstrap);
	char *p = tk_write_file(ldir, "limits.yaml", text);
	const char *argv[] = {tk_kmigrate(), "plan", "-p", p, "--json", NULL};
	assert_int_equal(tk_run(&out, &err, argv), 1);
	json_t *doc = tk_json(out), *a;
	size_t i;
	int blocked = 0, creates = 0;
	json_array_foreach(json_object_get(doc, "actions"), i, a) {
		const char *op = json_string_value(json_object_get(a, "op"));
		const char *reason = json_string_value(json_object_get(a, "reason"));
		if (!strcmp(op, "create-topic"))
			creates++;
		if (!strcmp(op, "blocked") &&
		    !strcmp(json_string_value(json_object_get(a, "subject")), "d2.tiny") &&
		    strstr(reason, "segment.bytes=65536") && strstr(reason, "1048576") &&
		    strstr(reason, "target Kafka 4.x, from its ApiVersions"))
			blocked = 1;
	}
	if (!blocked || creates)
		fail_msg("d2.tiny should be blocked by the target's segment.bytes minimum, "
			 "not created: %s", out);
	json_decref(doc);
	free(out);
	free(err);

	/* The human plan says it too. */
	const char *hargv[] = {tk_kmigrate(), "plan", "-p", p, NULL};
	assert_int_equal(tk_run(&out, &err, hargv), 1);
	assert_non_null(strstr(out, "! blocked d2.tiny"));
	free(out);
	free(err);

	const char *aargv[] = {tk_kmigrate(), "apply", "-p", p, NULL};
	assert_int_equal(tk_run(&out, &err, aargv), 1);
	assert_int_equal(tk_partitions(&t43, "d2.tiny"), -1); /* nothing created */
	free(out);
	free(err);
	free(p);

	/* The limit is keyed by the target's version: a 3.9 target (the
	 * source cluster itself, under another name) takes 64 KiB segments. */
	snprintf(text, sizeof(text),
		 "migration: it-design-limits39\n"
		 "source:\n  bootstrap: %s\ntarget:\n  bootstrap: %s\n"
		 "topics:\n  include: [\"^d2\\\\.tiny$\"]\n"
		 "naming:\n  mode: prefix\n  prefix: \"k39.\"\n",
		 s39.bootstrap, s39.bootstrap);
	p = tk_write_file(ldir, "limits39.yaml", text);
	const char *pargv[] = {tk_kmigrate(), "plan", "-p", p, "--json", NULL};
	int rc = tk_run(&out, &err, pargv);
	if (rc != 0 && rc != 1)
		fail_msg("plan 3.9 -> 3.9 failed (%d): %s", rc, err);
	doc = tk_json(out);
	creates = 0;
	json_array_foreach(json_object_get(doc, "actions"), i, a)
		if (!strcmp(json_string_value(json_object_get(a, "subject")), "k39.d2.tiny"))
			creates += !strcmp(json_string_value(json_object_get(a, "op")),
					   "create-topic") ? 1 : 100;
	if (creates != 1)
		fail_msg("k39.d2.tiny should be a plain create on a 3.9 target: %s", out);
	json_decref(doc);
	free(out);
	free(err);
	free(p);
	free(ldir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_setup),
		cmocka_unit_test(test_plan_shows_design),
		cmocka_unit_test(test_apply_matches_effective_configs_and_acls),
		cmocka_unit_test(test_second_apply_changes_nothing),
		cmocka_unit_test(test_fewer_partitions_blocks),
		cmocka_unit_test(test_scram_users_are_owned_manual_items),
		cmocka_unit_test(test_target_limit_blocks),
	};
	/* TK_ONLY=test_name (a glob) runs a subset, e.g. while working on one. */
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
