/* A Kafka Connect worker's internal topics recognised by their keys
 * (lib/inventory.h): each key shape, the connector it names, and the
 * topic-level rule (every key one role's shape, or no role at all). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "inventory.h"

static const struct {
	const char *key;
	km_worker_role_t role;
	const char *name; /* the connector it names, or NULL */
} cases[] = {
	/* config.storage.topic (KafkaConfigBackingStore) */
	{"connector-orders-archive", KM_WORKER_CONFIGS, "orders-archive"},
	{"task-orders-archive-0", KM_WORKER_CONFIGS, "orders-archive"},
	{"task-orders-archive-12", KM_WORKER_CONFIGS, "orders-archive"},
	{"commit-orders-archive", KM_WORKER_CONFIGS, "orders-archive"},
	{"target-state-orders-archive", KM_WORKER_CONFIGS, "orders-archive"},
	{"tasks-fencing-orders-archive", KM_WORKER_CONFIGS, "orders-archive"},
	{"session-key", KM_WORKER_CONFIGS, NULL},
	{"logger-cluster-org.apache.kafka", KM_WORKER_CONFIGS, NULL},
	/* status.storage.topic (KafkaStatusBackingStore) */
	{"status-connector-orders-archive", KM_WORKER_STATUS, "orders-archive"},
	{"status-task-orders-archive-3", KM_WORKER_STATUS, "orders-archive"},
	{"status-topic-orders.v2:connector-orders-archive", KM_WORKER_STATUS, "orders-archive"},
	/* offset.storage.topic: [connector, source partition] as JSON */
	{"[\"file-source\",{\"filename\":\"/tmp/in.txt\"}]", KM_WORKER_OFFSETS, "file-source"},
	{"[\"db\",{\"table\":\"t\",\"shard\":2}]", KM_WORKER_OFFSETS, "db"},
	/* not a worker's */
	{"order-1234", KM_WORKER_NONE, NULL},
	{"connector-", KM_WORKER_NONE, NULL},  /* no name */
	{"task-orders", KM_WORKER_NONE, NULL}, /* no task number */
	{"task--1", KM_WORKER_NONE, NULL},     /* no name before the number */
	{"task-orders-", KM_WORKER_NONE, NULL},
	{"status-task-orders-x", KM_WORKER_NONE, NULL},
	{"status-topic-orders", KM_WORKER_NONE, NULL},          /* no :connector- */
	{"status-topic-:connector-x", KM_WORKER_NONE, NULL},    /* no topic */
	{"session-keys", KM_WORKER_NONE, NULL},
	{"[\"a\",{\"p\":1},3]", KM_WORKER_NONE, NULL},          /* three elements */
	{"[\"\",{\"p\":1}]", KM_WORKER_NONE, NULL},             /* no connector */
	{"[\"a\",\"p\"]", KM_WORKER_NONE, NULL},                /* partition not an object */
	{"[\"a\",{\"p\":1}", KM_WORKER_NONE, NULL},             /* not JSON */
	{"{\"connector\":\"a\"}", KM_WORKER_NONE, NULL},
	{"connector-a\nb", KM_WORKER_NONE, NULL}, /* a control byte: not text */
};

static void test_key_shapes(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *name = (char *)"unset";
		km_worker_role_t r =
			km_inventory_worker_key(cases[i].key, strlen(cases[i].key), &name);
		if (r != cases[i].role)
			fail_msg("'%s': role %s, want %s", cases[i].key,
				 km_inventory_worker_role_str(r),
				 km_inventory_worker_role_str(cases[i].role));
		if (cases[i].name)
			assert_string_equal(name, cases[i].name);
		else
			assert_null(name);
		free(name);
	}
	/* No key, or binary: nobody's. */
	assert_int_equal(km_inventory_worker_key(NULL, 0, NULL), KM_WORKER_NONE);
	assert_int_equal(km_inventory_worker_key("connector-a\0b", 13, NULL), KM_WORKER_NONE);
	/* Not NUL-terminated: the length is what counts. */
	assert_int_equal(km_inventory_worker_key("session-keyXYZ", 11, NULL), KM_WORKER_CONFIGS);
}

static void fold(km_worker_keys_t *wk, const char *const *keys)
{
	for (; *keys; keys++)
		km_inventory_worker_keys_add(wk, *keys, strlen(*keys));
}

static void test_topic_rule(void **state)
{
	static const char *const configs[] = {"connector-a", "task-a-0", "commit-a",
					      "target-state-b", "session-key", NULL};
	static const char *const mixed[] = {"connector-a", "status-connector-a", NULL};
	static const char *const app[] = {"connector-a", "order-1", "task-a-0", NULL};
	km_worker_keys_t wk = {0};
	(void)state;

	/* Nothing read: no role (unknown is never one). */
	assert_int_equal(km_inventory_worker_keys_role(&wk), KM_WORKER_NONE);

	fold(&wk, configs);
	assert_int_equal(km_inventory_worker_keys_role(&wk), KM_WORKER_CONFIGS);
	assert_int_equal(wk.keys, 5);
	assert_int_equal(json_object_size(wk.connectors), 2);
	assert_non_null(json_object_get(wk.connectors, "a"));
	assert_non_null(json_object_get(wk.connectors, "b"));
	km_inventory_worker_keys_clear(&wk);

	/* Two roles' shapes in one topic: an ordinary topic. */
	fold(&wk, mixed);
	assert_int_equal(km_inventory_worker_keys_role(&wk), KM_WORKER_NONE);
	km_inventory_worker_keys_clear(&wk);

	/* One key of no shape is enough, wherever it comes. */
	fold(&wk, app);
	assert_int_equal(km_inventory_worker_keys_role(&wk), KM_WORKER_NONE);
	assert_int_equal(wk.keys, 3);
	assert_int_equal(wk.mismatched, 2);
	km_inventory_worker_keys_clear(&wk);

	/* A record without a key. */
	km_inventory_worker_keys_add(&wk, "status-connector-a", 18);
	km_inventory_worker_keys_add(&wk, NULL, 0);
	assert_int_equal(km_inventory_worker_keys_role(&wk), KM_WORKER_NONE);
	km_inventory_worker_keys_clear(&wk);

	km_inventory_worker_keys_add(&wk, "[\"s\",{\"f\":\"x\"}]", 15);
	assert_int_equal(km_inventory_worker_keys_role(&wk), KM_WORKER_OFFSETS);
	assert_string_equal(km_inventory_worker_role_str(KM_WORKER_OFFSETS), "offsets");
	km_inventory_worker_keys_clear(&wk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_shapes),
		cmocka_unit_test(test_topic_rule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
