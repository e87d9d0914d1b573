#include "estate.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *nm(const char *prefix, const char *name)
{
	return km_asprintf("%s%s", prefix, name);
}

pid_t estate_seed(const tk_cluster_t *c, const char *prefix)
{
	char *orders = nm(prefix, ESTATE_ORDERS), *payments = nm(prefix, ESTATE_PAYMENTS);
	char *customers = nm(prefix, ESTATE_CUSTOMERS), *audit = nm(prefix, ESTATE_AUDIT);
	const char *orders_cfg[] = {"retention.ms", ESTATE_ORDERS_RETENTION,
				    "max.message.bytes", ESTATE_ORDERS_MAXBYTES, NULL};
	const char *customers_cfg[] = {"cleanup.policy", "compact",
				       "min.cleanable.dirty.ratio", "0.01", NULL};
	const char *audit_cfg[] = {"max.message.bytes", ESTATE_AUDIT_MAXBYTES,
				   "retention.ms", "-1", NULL};
	const char *hdrs[] = {"trace-id", "t-1", "source", "checkout", NULL};
	char key[64], val[128], *big;
	rd_kafka_t *p;
	rd_kafka_error_t *e;

	tk_create_topic(c, orders, ESTATE_ORDERS_PARTS, orders_cfg);
	tk_create_topic(c, payments, ESTATE_PAYMENTS_PARTS, NULL);
	tk_create_topic(c, customers, 2, customers_cfg);
	tk_create_topic(c, audit, 1, audit_cfg);

	p = tk_producer(c, NULL);
	for (int part = 0; part < ESTATE_ORDERS_PARTS; part++)
		for (int i = 0; i < ESTATE_ORDERS_PER_PART; i++) {
			snprintf(key, sizeof(key), "order-%d-%d", part, i);
			snprintf(val, sizeof(val), "{\"order\":%d,\"amount\":%d}", i, i * 7);
			tk_msg_t m = {.key = key, .value = val, .partition = part, .headers = hdrs};
			tk_produce(p, orders, &m);
		}
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "customer-%d", i % 10);
		snprintf(val, sizeof(val), "{\"customer\":%d,\"version\":%d}", i % 10, i / 10);
		tk_msg_t m = {.key = key, .value = val, .partition = (i % 10) % 2};
		tk_produce(p, customers, &m);
	}
	for (int i = 0; i < 3; i++) { /* tombstones for customers 0..2 */
		snprintf(key, sizeof(key), "customer-%d", i);
		tk_msg_t m = {.key = key, .value = NULL, .partition = i % 2};
		tk_produce(p, customers, &m);
	}
	big = malloc(ESTATE_AUDIT_RECORD);
	memset(big, 'a', ESTATE_AUDIT_RECORD);
	for (int i = 0; i < 5; i++) {
		tk_msg_t m = {.key = "audit", .value = big, .value_len = ESTATE_AUDIT_RECORD,
			      .partition = 0};
		tk_produce(p, audit, &m);
		/* One record per batch: a batch of two would exceed the
		 * topic's max.message.bytes. */
		tk_flush(p);
	}
	free(big);
	tk_flush(p);
	rd_kafka_destroy(p);

	/* Transactions: three committed, one aborted. */
	p = tk_producer(c, "estate-payments-tx");
	for (int t = 0; t < 4; t++) {
		if ((e = rd_kafka_begin_transaction(p)))
			tk_fail("begin_transaction: %s", rd_kafka_error_string(e));
		for (int i = 0; i < (t == 3 ? 10 : 20); i++) {
			snprintf(key, sizeof(key), "payment-%d-%d", t, i);
			snprintf(val, sizeof(val), "{\"txn\":%d,\"i\":%d}", t, i);
			tk_msg_t m = {.key = key, .value = val, .partition = i % ESTATE_PAYMENTS_PARTS};
			tk_produce(p, payments, &m);
		}
		/* Flush first so the aborted batch is really in the log:
		 * aborting would otherwise purge it before it is sent. */
		tk_flush(p);
		e = t == 3 ? rd_kafka_abort_transaction(p, 30000)
			   : rd_kafka_commit_transaction(p, 30000);
		if (e)
			tk_fail("end transaction: %s", rd_kafka_error_string(e));
	}
	rd_kafka_destroy(p);

	tk_acl(c, RD_KAFKA_RESOURCE_TOPIC, orders, RD_KAFKA_RESOURCE_PATTERN_LITERAL,
	       "User:checkout", "*", RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	tk_acl(c, RD_KAFKA_RESOURCE_TOPIC, payments, RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
	       "User:billing", "*", RD_KAFKA_ACL_OPERATION_READ, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	tk_acl(c, RD_KAFKA_RESOURCE_GROUP, "billing", RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
	       "User:billing", "*", RD_KAFKA_ACL_OPERATION_READ, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	tk_acl(c, RD_KAFKA_RESOURCE_GROUP, "analytics", RD_KAFKA_RESOURCE_PATTERN_LITERAL,
	       "User:analytics", "*", RD_KAFKA_ACL_OPERATION_READ, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	tk_acl(c, RD_KAFKA_RESOURCE_BROKER, "kafka-cluster", RD_KAFKA_RESOURCE_PATTERN_LITERAL,
	       "User:ops", "*", RD_KAFKA_ACL_OPERATION_DESCRIBE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	tk_acl(c, RD_KAFKA_RESOURCE_TRANSACTIONAL_ID, "payments-tx", RD_KAFKA_RESOURCE_PATTERN_LITERAL,
	       "User:payments", "*", RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	tk_acl(c, RD_KAFKA_RESOURCE_TOPIC, audit, RD_KAFKA_RESOURCE_PATTERN_LITERAL,
	       "User:intern", "10.0.0.1", RD_KAFKA_ACL_OPERATION_READ, RD_KAFKA_ACL_PERMISSION_TYPE_DENY);

	for (int part = 0; part < ESTATE_ORDERS_PARTS; part++) {
		tk_commit(c, "billing", orders, part, ESTATE_ORDERS_PER_PART - ESTATE_BILLING_LAG);
		tk_commit(c, "analytics", orders, part, 0);
	}
	/* fraud-detector: caught up on payments (commit at the end), then a
	 * live member joins. */
	rd_kafka_t *a = tk_admin(c);
	for (int part = 0; part < ESTATE_PAYMENTS_PARTS; part++) {
		int64_t lo, hi;
		if (rd_kafka_query_watermark_offsets(a, payments, part, &lo, &hi, 10000))
			tk_fail("watermarks of %s[%d]", payments, part);
		tk_commit(c, "fraud-detector", payments, part, hi);
	}
	rd_kafka_destroy(a);
	pid_t member = tk_member_start(c, "fraud-detector", payments, "fraud-detector-1");
	free(orders);
	free(payments);
	free(customers);
	free(audit);
	return member;
}
