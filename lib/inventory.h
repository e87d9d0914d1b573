/*
 * inventory.h -- discovery of one cluster's estate and its migration risk.
 *
 * The inventory is the first gate: a list, boring enough to be trusted, of
 * what must move and what must be re-created.  km_inventory_take() reads the
 * cluster (id, brokers and their API version ranges, in-scope topics with
 * partitions, leaders, ISR, watermarks and every config with its source,
 * ACLs, consumer groups with members and lag, SCRAM users, client quotas),
 * samples the tail of each partition, up to a cap on the partitions and a
 * time budget (record sizes, offset gaps left by transaction markers; the
 * partitions not sampled are listed as such, with why), recognises a Kafka
 * Connect worker's config, offsets and status topics from their record keys
 * (never from their names; "connect_internal" on the topic), merges the plan's
 * declared items and classifies every topic's risk with the reasons shown.  What cannot be read is recorded as
 * "not inventoried" with the reason -- never silently skipped.
 *
 * The result is one JSON document (the snapshot the journal stores and
 * `--json` prints).  This module never prints and never touches the journal.
 */
#ifndef KM_INVENTORY_H
#define KM_INVENTORY_H

#include <jansson.h>
#include <stdbool.h>

#include "err.h"
#include "kafka.h"
#include "plan.h"

/* The default cap on sampled partitions: 200 records of each of 1,000
 * partitions is a few seconds here and a bounded amount of memory, and the
 * round-robin choice reaches every topic of an estate of up to 1,000 topics
 * (docs/internals/inventory.md). */
#define KM_INVENTORY_SAMPLE_PARTITIONS 1000

typedef struct km_inventory_opts_s {
	const char *scope;     /* "source" or "target" */
	int sample_records;    /* tail records read per partition; 0 = none */
	int sample_timeout_ms; /* total budget for sampling */
	int sample_partitions; /* at most this many partitions are sampled,
				* round-robin over the topics; the rest are
				* "not sampled" with the cap named; 0 = all */
	int timeout_ms;        /* per admin call */
	bool all_topics;       /* every non-internal topic, not just those the
				* plan's patterns select (a target whose topics
				* carry mapped names) */
} km_inventory_opts_t;

void km_inventory_opts_init(km_inventory_opts_t *opts);

/* Reads the cluster behind k (opened with KM_KAFKA_F_APIVERSIONS for the
 * API version table) and builds the inventory.
 * @returns a new JSON object in *invp (json_decref it). */
km_err_t km_inventory_take(km_kafka_t *k, const km_plan_t *plan,
			   const km_inventory_opts_t *opts, json_t **invp,
			   char *errstr, size_t errstr_size);

/* Compares two inventories of the same cluster.
 * @returns a new JSON array of {"change": "+"|"-"|"~", "kind", "subject",
 *          "detail"} -- empty when nothing changed. */
json_t *km_inventory_diff(const json_t *old_inv, const json_t *new_inv);


/* Client quotas: DescribeClientQuotas (KIP-546), which librdkafka does not
 * offer, spoken directly on a plaintext connection.  @returns
 * KM_ERR_UNSUPPORTED with the reason for other security protocols. */
km_err_t km_quotas_describe(const km_kafka_endpoint_t *ep, int timeout_ms,
			    json_t **entriesp, char *errstr,
			    size_t errstr_size);

/* ---- Kafka Connect workers' internal topics ----------------------------- */

/* What a record key says about the topic it was read from: the key shapes
 * a Kafka Connect worker writes to its three internal topics
 * (config.storage.topic, offset.storage.topic, status.storage.topic).  A
 * worker's topics may have any name, so the inventory recognises them by
 * their keys, never by their names (docs/internals/inventory.md). */
typedef enum {
	KM_WORKER_NONE = 0, /* no worker key shape */
	KM_WORKER_CONFIGS,  /* connector-<c>, task-<c>-<n>, commit-<c>,
			     * target-state-<c>, tasks-fencing-<c>,
			     * logger-cluster-<ns>, session-key */
	KM_WORKER_OFFSETS,  /* the JSON array ["<c>", {<source partition>}] */
	KM_WORKER_STATUS    /* status-connector-<c>, status-task-<c>-<n>,
			     * status-topic-<topic>:connector-<c> */
} km_worker_role_t;

/* The role whose shape key (len bytes, not NUL-terminated) has.
 * @param namep when not NULL, receives the connector the key names (owned,
 *              free() it) or NULL when the key names none (session-key,
 *              logger-cluster-) or matches no shape. */
km_worker_role_t km_inventory_worker_key(const void *key, size_t len, char **namep);

/* "configs", "offsets", "status" or "none"; static storage. */
const char *km_inventory_worker_role_str(km_worker_role_t role);

/* The keys read from one topic, folded one at a time. */
typedef struct km_worker_keys_s {
	int64_t keys;          /* keys folded (a null key counts, and mismatches) */
	int64_t mismatched;    /* keys of no shape or of another role than the first */
	km_worker_role_t role; /* the first key's role */
	json_t *connectors;    /* set of the connector names seen (keys of an
				* object), NULL until one is seen */
} km_worker_keys_t;

/* Folds one key (NULL = a record without a key, which no worker writes). */
void km_inventory_worker_keys_add(km_worker_keys_t *wk, const void *key, size_t len);

/* @returns the role when at least one key was folded and every one had
 * that role's shape; KM_WORKER_NONE otherwise (a mixed topic, or nothing
 * read: unknown is never a role). */
km_worker_role_t km_inventory_worker_keys_role(const km_worker_keys_t *wk);

/* Releases what wk holds and zeroes it. */
void km_inventory_worker_keys_clear(km_worker_keys_t *wk);

#endif
