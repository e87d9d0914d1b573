/*
 * Inventory against real clusters: the estate the test builds (estate.h) is
 * what the inventory must report -- configs and where they come from, ACLs,
 * group offsets and lag, risk classes -- on Kafka 3.9 and on Kafka 4.3.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "estate.h"
#include "util.h"

static const char *PLAN =
	"migration: it-inventory\n"
	"source:\n"
	"  bootstrap: %s\n"
	"target:\n"
	"  bootstrap: %s\n"
	"topics:\n"
	"  include: [\".*\"]\n"
	"  rules:\n"
	"    - match: \"^payments$\"\n"
	"      ordering: strict\n"
	"      duplicates: none\n"
	"      owner: team-payments\n"
	"consumer_groups:\n"
	"  - id: billing\n"
	"    restart: translated\n"
	"    replay: forbidden\n"
	"    owner: team-billing\n"
	"producers:\n"
	"  - name: checkout-api\n"
	"    client: librdkafka\n"
	"    client_version: \"2.3.0\"\n"
	"    idempotence: true\n"
	"    topics: [orders]\n"
	"    owner: team-checkout\n"
	"  - name: payments-writer\n"
	"    transactions: true\n"
	"    topics: [payments]\n"
	"    validation: canary transaction\n"
	"dashboards:\n"
	"  - name: orders-lag\n"
	"    owner: sre\n"
	"    validation: panel shows target cluster\n";

static json_t *topic(json_t *inv, const char *name)
{
	json_t *t = json_object_get(json_object_get(inv, "topics"), name);
	if (!t)
		fail_msg("topic %s missing from the inventory", name);
	return t;
}

static json_t *cfg(json_t *t, const char *name)
{
	json_t *c = json_object_get(json_object_get(t, "configs"), name);
	if (!c)
		fail_msg("config %s missing", name);
	return c;
}

static int has_reason(json_t *t, const char *needle)
{
	json_t *r;
	size_t i;
	json_array_foreach(json_object_get(json_object_get(t, "risk"), "reasons"), i, r)
		if (strstr(json_string_value(json_object_get(r, "reason")), needle))
			return 1;
	return 0;
}

static int has_finding(json_t *inv, const char *subject, const char *problem)
{
	json_t *f;
	size_t i;
	json_array_foreach(json_object_get(inv, "findings"), i, f)
		if (!strcmp(json_string_value(json_object_get(f, "subject")), subject) &&
		    strstr(json_string_value(json_object_get(f, "problem")), problem))
			return 1;
	return 0;
}

static int has_acl(json_t *inv, const char *rt, const char *pt, const char *name,
		   const char *principal, const char *host, const char *op,
		   const char *perm)
{
	json_t *a;
	size_t i;
	json_array_foreach(json_object_get(inv, "acls"), i, a)
		if (!strcmp(json_string_value(json_object_get(a, "resource_type")), rt) &&
		    !strcmp(json_string_value(json_object_get(a, "pattern_type")), pt) &&
		    !strcmp(json_string_value(json_object_get(a, "name")), name) &&
		    !strcmp(json_string_value(json_object_get(a, "principal")), principal) &&
		    !strcmp(json_string_value(json_object_get(a, "host")), host) &&
		    !strcmp(json_string_value(json_object_get(a, "operation")), op) &&
		    !strcmp(json_string_value(json_object_get(a, "permission")), perm))
			return 1;
	return 0;
}

static void check_cluster(const char *env, const char *other_env)
{
	tk_cluster_t c;
	char plan[4096], *out = NULL, *err = NULL, *dir, *path;
	json_t *doc, *inv, *t, *g, *o, *m;
	size_t i;
	int rc;
	struct stat st;

	tk_cluster_from_env(&c, env);
	pid_t member = estate_seed(&c, "");

	dir = tk_tmpdir("inventory");
	/* The target only has to be a different cluster: this test reads the
	 * source side. */
	snprintf(plan, sizeof(plan), PLAN, c.bootstrap, getenv(other_env));
	path = tk_write_file(dir, "migration.yaml", plan);
	const char *argv[] = {tk_kmigrate(), "inventory", "-p", path, "--json", NULL};
	rc = tk_run(&out, &err, argv);
	tk_member_stop(member);
	if (rc != 1)
		fail_msg("inventory exit %d (want 1: findings), stderr: %s", rc, err);
	doc = tk_json(out);
	inv = json_object_get(doc, "inventory");

	/* Cluster and brokers. */
	assert_non_null(json_string_value(json_object_get(inv, "cluster_id")));
	json_t *b = json_array_get(json_object_get(inv, "brokers"), 0);
	assert_int_equal(json_integer_value(json_object_get(b, "id")), 1);
	int produce_max = -1;
	json_array_foreach(json_object_get(b, "api_versions"), i, o)
		if (json_integer_value(json_object_get(o, "key")) == 0)
			produce_max = (int)json_integer_value(json_object_get(o, "max"));
	assert_true(produce_max >= 9);

	/* Topics, partitions, configs and their sources. */
	t = topic(inv, ESTATE_ORDERS);
	assert_int_equal(json_integer_value(json_object_get(t, "partition_count")), ESTATE_ORDERS_PARTS);
	assert_int_equal(json_integer_value(json_object_get(t, "replication_factor")), 1);
	assert_string_equal(json_string_value(json_object_get(cfg(t, "retention.ms"), "value")),
			    ESTATE_ORDERS_RETENTION);
	assert_string_equal(json_string_value(json_object_get(cfg(t, "retention.ms"), "source")), "topic");
	assert_string_equal(json_string_value(json_object_get(cfg(t, "max.message.bytes"), "value")),
			    ESTATE_ORDERS_MAXBYTES);
	assert_string_equal(json_string_value(json_object_get(cfg(t, "max.message.bytes"), "source")), "topic");
	assert_string_equal(json_string_value(json_object_get(cfg(t, "cleanup.policy"), "source")), "default");
	/* min.insync.replicas is set in the broker's server.properties; Kafka
	 * 4.x (KIP-966) reports it as a cluster-level default instead. */
	const char *mis = json_string_value(json_object_get(cfg(t, "min.insync.replicas"), "source"));
	assert_true(!strcmp(mis, "broker-static") || !strcmp(mis, "cluster-dynamic-default"));
	json_array_foreach(json_object_get(t, "partitions"), i, o) {
		assert_int_equal(json_integer_value(json_object_get(o, "high_watermark")),
				 ESTATE_ORDERS_PER_PART);
		assert_int_equal(json_integer_value(json_object_get(o, "leader")), 1);
		assert_int_equal(json_array_size(json_object_get(o, "isr")), 1);
		assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "sample"), "with_headers")),
				 ESTATE_ORDERS_PER_PART);
	}
	/* What the partitions span is offsets, not records: reported as
	 * such, and equal to the sum of high watermark - log start. */
	assert_int_equal(json_integer_value(json_object_get(t, "offsets")),
			 ESTATE_ORDERS_PARTS * ESTATE_ORDERS_PER_PART);
	assert_null(json_object_get(t, "records"));
	/* billing reads orders and has replay forbidden: that alone makes
	 * orders high risk. */
	assert_string_equal(json_string_value(json_object_get(json_object_get(t, "risk"), "class")), "high");
	assert_true(has_reason(t, "consumer group 'billing' has no replay tolerance"));

	t = topic(inv, ESTATE_CUSTOMERS);
	assert_true(json_is_true(json_object_get(t, "compacted")));
	assert_string_equal(json_string_value(json_object_get(cfg(t, "cleanup.policy"), "value")), "compact");
	assert_true(has_reason(t, "compacted"));

	t = topic(inv, ESTATE_PAYMENTS);
	assert_true(json_is_true(json_object_get(t, "transactional_markers")));
	{
		/* Transaction markers take offsets: the count says offsets. */
		json_int_t span = 0;
		json_array_foreach(json_object_get(t, "partitions"), i, o)
			span += json_integer_value(json_object_get(o, "high_watermark")) -
				json_integer_value(json_object_get(o, "log_start_offset"));
		assert_true(span > 0);
		assert_int_equal(json_integer_value(json_object_get(t, "offsets")), span);
	}
	assert_string_equal(json_string_value(json_object_get(json_object_get(t, "risk"), "class")), "high");
	assert_true(has_reason(t, "transactional records present"));
	assert_true(has_reason(t, "strict ordering"));
	assert_true(has_reason(t, "duplicates not tolerated"));
	assert_true(has_reason(t, "declared transactional producer 'payments-writer'"));

	t = topic(inv, ESTATE_AUDIT);
	assert_true(has_reason(t, "near max.message.bytes"));
	assert_false(json_is_true(json_object_get(t, "transactional_markers")));

	/* customers has no declared owner or rule and nothing risky but
	 * compaction: medium. */
	assert_string_equal(json_string_value(json_object_get(json_object_get(topic(inv, ESTATE_CUSTOMERS), "risk"), "class")),
			    "medium");

	/* ACLs: every resource and pattern type the estate made. */
	/* Other tests share the cluster: count the estate's own principals. */
	size_t estate_acls = 0;
	json_array_foreach(json_object_get(inv, "acls"), i, o) {
		const char *pr = json_string_value(json_object_get(o, "principal"));
		static const char *const principals[] = {"User:checkout", "User:billing", "User:analytics",
							  "User:ops", "User:payments", "User:intern"};
		for (size_t j = 0; j < sizeof(principals) / sizeof(principals[0]); j++)
			estate_acls += !strcmp(pr, principals[j]);
	}
	assert_int_equal(estate_acls, ESTATE_NACLS);
	assert_true(has_acl(inv, "TOPIC", "LITERAL", "orders", "User:checkout", "*", "WRITE", "ALLOW"));
	assert_true(has_acl(inv, "TOPIC", "PREFIXED", "payments", "User:billing", "*", "READ", "ALLOW"));
	assert_true(has_acl(inv, "GROUP", "PREFIXED", "billing", "User:billing", "*", "READ", "ALLOW"));
	assert_true(has_acl(inv, "GROUP", "LITERAL", "analytics", "User:analytics", "*", "READ", "ALLOW"));
	assert_true(has_acl(inv, "CLUSTER", "LITERAL", "kafka-cluster", "User:ops", "*", "DESCRIBE", "ALLOW"));
	assert_true(has_acl(inv, "TRANSACTIONAL_ID", "LITERAL", "payments-tx", "User:payments", "*", "WRITE", "ALLOW"));
	assert_true(has_acl(inv, "TOPIC", "LITERAL", "audit.log", "User:intern", "10.0.0.1", "READ", "DENY"));

	/* Groups: offsets, lag and members. */
	g = json_object_get(json_object_get(inv, "groups"), "billing");
	assert_non_null(g);
	assert_true(json_is_true(json_object_get(g, "declared")));
	assert_int_equal(json_array_size(json_object_get(g, "offsets")), ESTATE_ORDERS_PARTS);
	json_array_foreach(json_object_get(g, "offsets"), i, o) {
		assert_int_equal(json_integer_value(json_object_get(o, "committed")),
				 ESTATE_ORDERS_PER_PART - ESTATE_BILLING_LAG);
		assert_int_equal(json_integer_value(json_object_get(o, "lag")), ESTATE_BILLING_LAG);
	}
	assert_int_equal(json_integer_value(json_object_get(g, "total_lag")),
			 ESTATE_ORDERS_PARTS * ESTATE_BILLING_LAG);
	g = json_object_get(json_object_get(inv, "groups"), "analytics");
	assert_int_equal(json_integer_value(json_object_get(g, "total_lag")),
			 ESTATE_ORDERS_PARTS * ESTATE_ORDERS_PER_PART);
	assert_true(has_finding(inv, "group:analytics", "not declared"));
	g = json_object_get(json_object_get(inv, "groups"), "fraud-detector");
	assert_string_equal(json_string_value(json_object_get(g, "state")), "Stable");
	assert_int_equal(json_array_size(json_object_get(g, "members")), 1);
	m = json_array_get(json_object_get(g, "members"), 0);
	assert_string_equal(json_string_value(json_object_get(m, "client_id")), "fraud-detector-1");
	assert_int_equal(json_integer_value(json_object_get(g, "total_lag")), 0);

	/* Users and quotas are inventoried on plaintext clusters. */
	assert_true(json_is_array(json_object_get(inv, "scram_users")));
	assert_true(json_is_array(json_object_get(inv, "quotas")));

	/* Declared items: missing owner / validation are findings. */
	assert_true(has_finding(inv, "producer:checkout-api", "no validation method"));
	assert_true(has_finding(inv, "producer:payments-writer", "no owner"));
	assert_false(has_finding(inv, "dashboard:orders-lag", "no owner"));

	/* The journal: 0600, holds the snapshot. */
	char *jpath = km_asprintf("%s/kmigrate.db", dir);
	assert_int_equal(stat(jpath, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* --diff after a change: a new topic and a config change show up. */
	const char *newcfg[] = {"retention.ms", "1000000", NULL};
	tk_create_topic(&c, "orders.v2", 2, newcfg);
	free(out);
	free(err);
	const char *argv2[] = {tk_kmigrate(), "inventory", "-p", path, "--json", "--diff",
			       "--no-sample", NULL};
	rc = tk_run(&out, &err, argv2);
	assert_int_equal(rc, 1);
	json_t *doc2 = tk_json(out);
	json_t *diff = json_object_get(doc2, "diff"), *d;
	int saw_topic = 0, saw_member_gone = 0;
	json_array_foreach(diff, i, d) {
		if (!strcmp(json_string_value(json_object_get(d, "kind")), "topic") &&
		    !strcmp(json_string_value(json_object_get(d, "subject")), "orders.v2") &&
		    !strcmp(json_string_value(json_object_get(d, "change")), "+"))
			saw_topic = 1;
		if (!strcmp(json_string_value(json_object_get(d, "kind")), "group") &&
		    !strcmp(json_string_value(json_object_get(d, "subject")), "fraud-detector"))
			saw_member_gone = 1; /* Stable -> Empty once the member left */
	}
	assert_true(saw_topic);
	assert_true(saw_member_gone);

	/* The human table labels the column for what it counts. */
	free(out);
	free(err);
	const char *argv4[] = {tk_kmigrate(), "inventory", "-p", path, "--no-sample", NULL};
	rc = tk_run(&out, &err, argv4);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "OFFSETS"));
	assert_null(strstr(out, "RECORDS"));

	/* status reads the journal without a cluster. */
	free(out);
	free(err);
	const char *argv3[] = {tk_kmigrate(), "status", "-p", path, "--json", NULL};
	rc = tk_run(&out, &err, argv3);
	assert_int_equal(rc, 0);
	json_t *sum = tk_json(out);
	assert_true(json_array_size(json_object_get(sum, "open_findings")) > 0);
	json_decref(sum);
	json_decref(doc2);
	json_decref(doc);
	free(jpath);
	free(out);
	free(err);
	free(path);
	free(dir);
}

/* A principal the cluster denies by default (the secure cluster's alice,
 * no ACLs): inventory and plan must finish (exit 0 or 1), never crash, and
 * every fact they could not read is a finding that names the ACL to grant.
 * DescribeUserScramCredentials used to abort the process (exit 134) while
 * its errored result was destroyed. */
static void test_denied_principal(void **state)
{
	char plan[2048], *out, *err, *dir, *path;
	json_t *doc, *inv, *scram;
	const char *nf;
	int rc;
	(void)state;

	setenv("KM_IT_ALICE_PW", "alice-secret", 1);
	dir = tk_tmpdir("inventory-denied");
	snprintf(plan, sizeof(plan),
		 "migration: it-denied\nsource:\n  bootstrap: %s\n"
		 "  security_protocol: sasl_ssl\n  sasl_mechanism: SCRAM-SHA-512\n"
		 "  username: alice\n  password_env: KM_IT_ALICE_PW\n  ssl_ca: %s\n"
		 "target:\n  bootstrap: %s\n",
		 getenv("KM_TEST_SECURE"), getenv("KM_TEST_SECURE_CA"),
		 getenv("KM_TEST_TARGET"));
	path = tk_write_file(dir, "migration.yaml", plan);

	const char *inv_argv[] = {tk_kmigrate(), "inventory", "-p", path, "--json",
				  "--no-sample", NULL};
	rc = tk_run(&out, &err, inv_argv);
	if (rc != 1)
		fail_msg("inventory as alice: exit %d (want 1, findings); stderr: %s", rc, err);
	doc = tk_json(out);
	inv = json_object_get(doc, "inventory");
	scram = json_object_get(inv, "scram_users");
	nf = json_string_value(json_object_get(scram, "not_inventoried"));
	if (!nf || !strstr(nf, "DescribeUserScramCredentials") ||
	    !strstr(nf, "User:alice") || !strstr(nf, "--operation Describe --cluster"))
		fail_msg("scram_users should name the ACL to grant, got: %s",
			 nf ? nf : "(inventoried)");
	assert_true(has_finding(inv, "cluster:scram_users", "--operation Describe --cluster"));
	/* The ACLs and the group list are unknown too, never "none": the
	 * cluster has an authorizer, alice may just not ask. */
	nf = json_string_value(json_object_get(json_object_get(inv, "acls"), "not_inventoried"));
	assert_non_null(nf);
	assert_null(strstr(nf, "no authorizer"));
	assert_non_null(strstr(nf, "--operation Describe --cluster"));
	assert_true(has_finding(inv, "cluster:groups_listing", "--operation Describe --cluster"));
	assert_true(has_finding(inv, "cluster:acls", "DescribeAcls"));
	json_decref(doc);
	free(out);
	free(err);

	/* plan takes the same inventory of the source. */
	const char *plan_argv[] = {tk_kmigrate(), "plan", "-p", path, NULL};
	rc = tk_run(&out, &err, plan_argv);
	if (rc != 0 && rc != 1)
		fail_msg("plan as alice: exit %d (want 0 or 1); stderr: %s", rc, err);
	free(out);
	free(err);
	unsetenv("KM_IT_ALICE_PW");
	free(path);
	free(dir);
}

/* Tail sampling is capped (issue 12: 2.6 s and 134 MB at 1,000 partitions,
 * unbounded beyond): with --sample-partitions 5 on 6 topics x 2 partitions
 * that hold records, 5 partitions are read -- partition 0 of the first 5
 * topics by name, round-robin -- and the 7 others say "not sampled" with the
 * cap; the topic none of whose partitions was read does not claim "no
 * transactional records", it says unknown, with a risk reason.  The summary
 * and the human output say what was and was not sampled. */
static void test_sampling_cap(void **state)
{
	tk_cluster_t c;
	char plan[1024], topics[6][64], *out = NULL, *err = NULL, *dir, *path;
	json_t *doc, *inv, *smp, *t, *o;
	rd_kafka_t *rk;
	size_t i;
	int rc, capped = 0;
	(void)state;

	tk_cluster_from_env(&c, "KM_TEST_SOURCE");
	rk = tk_producer(&c, NULL);
	for (int n = 0; n < 6; n++) {
		snprintf(topics[n], sizeof(topics[n]), "scap-%d-t%d", (int)getpid(), n);
		tk_create_topic(&c, topics[n], 2, NULL);
		for (int p = 0; p < 2; p++)
			for (int r = 0; r < 3; r++) {
				tk_msg_t m = {.key = "k", .value = "v", .partition = p};
				tk_produce(rk, topics[n], &m);
			}
	}
	tk_flush(rk);
	rd_kafka_destroy(rk);

	dir = tk_tmpdir("inventory-sampling");
	snprintf(plan, sizeof(plan),
		 "migration: it-sampling\nsource:\n  bootstrap: %s\ntarget:\n  bootstrap: %s\n"
		 "topics:\n  include: [\"^scap-%d-\"]\n",
		 c.bootstrap, getenv("KM_TEST_PLAIN"), (int)getpid());
	path = tk_write_file(dir, "migration.yaml", plan);

	const char *argv[] = {tk_kmigrate(), "inventory", "-p", path, "--json",
			      "--sample", "10", "--sample-partitions", "5", NULL};
	rc = tk_run(&out, &err, argv);
	if (rc != 0 && rc != 1)
		fail_msg("inventory --sample-partitions 5: exit %d, stderr: %s", rc, err);
	doc = tk_json(out);
	inv = json_object_get(doc, "inventory");
	smp = json_object_get(inv, "sampling");
	assert_int_equal(json_integer_value(json_object_get(smp, "max_partitions")), 5);
	assert_int_equal(json_integer_value(json_object_get(smp, "partitions_with_records")), 12);
	assert_int_equal(json_integer_value(json_object_get(smp, "sampled")), 5);
	assert_int_equal(json_integer_value(json_object_get(smp, "complete")), 5);
	assert_int_equal(json_integer_value(json_object_get(smp, "not_sampled")), 7);
	assert_non_null(strstr(json_string_value(json_array_get(
					json_object_get(smp, "not_sampled_reasons"), 0)),
			       "7 over the cap of 5"));
	for (int n = 0; n < 6; n++) {
		t = topic(inv, topics[n]);
		json_array_foreach(json_object_get(t, "partitions"), i, o) {
			json_t *s = json_object_get(o, "sample");
			const char *ns = json_string_value(json_object_get(s, "not_sampled"));
			/* Round-robin: one partition of each of the first five topics. */
			bool want = n < 5 && i == 0;
			if (want) {
				assert_null(ns);
				assert_int_equal(json_integer_value(json_object_get(s, "records")), 3);
				assert_true(json_is_true(json_object_get(s, "complete")));
			} else {
				if (!ns || !strstr(ns, "cap of 5"))
					fail_msg("%s[%zu] should be not sampled over the cap, got %s",
						 topics[n], i, json_dumps(s, JSON_COMPACT));
				capped++;
			}
		}
		const char *tm = json_string_value(json_object_get(t, "transactional_markers"));
		assert_non_null(tm);
		assert_non_null(strstr(tm, "unknown"));
	}
	assert_int_equal(capped, 7);
	assert_true(has_reason(topic(inv, topics[5]), "tail not sampled"));
	assert_false(has_reason(topic(inv, topics[0]), "tail not sampled"));
	json_decref(doc);
	free(out);
	free(err);

	/* The human output says it too. */
	const char *argv2[] = {tk_kmigrate(), "inventory", "-p", path, "--sample", "10",
			       "--sample-partitions", "5", NULL};
	rc = tk_run(&out, &err, argv2);
	assert_true(rc == 0 || rc == 1);
	assert_non_null(strstr(out, "Tail sampling: 5 of 12 partitions"));
	assert_non_null(strstr(out, "not sampled: 7 over the cap of 5"));
	free(out);
	free(err);

	/* 0 = no cap: every partition is read. */
	const char *argv3[] = {tk_kmigrate(), "inventory", "-p", path, "--json",
			       "--sample", "10", "--sample-partitions", "0", NULL};
	rc = tk_run(&out, &err, argv3);
	assert_true(rc == 0 || rc == 1);
	doc = tk_json(out);
	smp = json_object_get(json_object_get(doc, "inventory"), "sampling");
	assert_int_equal(json_integer_value(json_object_get(smp, "sampled")), 12);
	assert_int_equal(json_integer_value(json_object_get(smp, "not_sampled")), 0);
	assert_false(json_is_true(json_object_get(topic(json_object_get(doc, "inventory"),
							 topics[5]), "transactional_markers")));
	json_decref(doc);
	free(out);
	free(err);

	/* A budget too short to read anything: every tail is cut short,
	 * said per partition and in the summary, and no topic claims "no
	 * transactional records" (the old code said false for 399 of 400
	 * topics whose tails it had not read to the end). */
	const char *argv5[] = {tk_kmigrate(), "inventory", "-p", path, "--json",
			       "--sample", "10", "--sample-budget", "1", NULL};
	rc = tk_run(&out, &err, argv5);
	assert_true(rc == 0 || rc == 1);
	doc = tk_json(out);
	inv = json_object_get(doc, "inventory");
	smp = json_object_get(inv, "sampling");
	assert_int_equal(json_integer_value(json_object_get(smp, "incomplete")), 12);
	assert_non_null(strstr(json_string_value(json_array_get(
					json_object_get(smp, "not_sampled_reasons"), 0)),
			       "budget of 1 ms ran out"));
	for (int n = 0; n < 6; n++) {
		t = topic(inv, topics[n]);
		json_array_foreach(json_object_get(t, "partitions"), i, o)
			assert_non_null(strstr(json_string_value(json_object_get(
						       json_object_get(o, "sample"), "incomplete")),
					       "ran out"));
		const char *tm = json_string_value(json_object_get(t, "transactional_markers"));
		if (!tm || !strstr(tm, "unknown"))
			fail_msg("%s: transactional_markers should be unknown after a cut-short sample",
				 topics[n]);
	}
	json_decref(doc);
	free(out);
	free(err);

	/* A bad cap is a usage error naming the flag. */
	const char *argv4[] = {tk_kmigrate(), "inventory", "-p", path,
			       "--sample-partitions", "-3", NULL};
	rc = tk_run(&out, &err, argv4);
	assert_int_equal(rc, 2);
	assert_non_null(strstr(err, "--sample-partitions"));
	free(out);
	free(err);
	for (int n = 0; n < 6; n++)
		tk_delete_topic(&c, topics[n]);
	free(path);
	free(dir);
}

static void test_inventory_kafka39(void **state)
{
	(void)state;
	check_cluster("KM_TEST_SOURCE", "KM_TEST_PLAIN");
}

static void test_inventory_kafka43(void **state)
{
	(void)state;
	check_cluster("KM_TEST_TARGET", "KM_TEST_PLAIN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inventory_kafka39),
		cmocka_unit_test(test_inventory_kafka43),
		cmocka_unit_test(test_denied_principal),
		cmocka_unit_test(test_sampling_cap),
	};
	/* TK_ONLY=test_name (a glob) runs a subset, e.g. while working on one. */
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
