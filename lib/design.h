/*
 * design.h -- the target design: what the target must look like before
 * replication starts, derived from the two inventories and the plan.
 *
 * km_design_build() turns the source inventory into a desired target state:
 * topics under their mapped names with the source's partition count, the
 * replication factor capped at the target's broker count, and the topic
 * configs that make every *effective* value equal to the source's (topic
 * overrides copied; source broker defaults that differ from the target's
 * pinned as overrides; configs the target no longer accepts listed with the
 * reason), ACLs with full fidelity and mapped topic names, and manual items
 * (SCRAM passwords, client quotas) with owners.  A topic the inventory
 * recognised as a Kafka Connect worker's internal topic is not designed
 * (listed in "connect_internal_topics"): each worker keeps its own.
 *
 * km_design_delta() compares a design with the target as it is now and
 * lists the actions that would make them equal: create, change, blocked.
 * km_design_apply() performs them, never deleting or shrinking anything,
 * in one request per kind of change (each object in it changed all or
 * nothing), stopping at the first blocked object.
 *
 * Designs and actions are JSON documents (the journal stores them as is).
 * This module never prints and never touches the journal: apply reports
 * each change through a callback so the caller can journal it at once.
 */
#ifndef KM_DESIGN_H
#define KM_DESIGN_H

#include <jansson.h>

#include "err.h"
#include "kafka.h"
#include "plan.h"

/* Builds the design.  src_inv and tgt_inv come from km_inventory_take().
 * @returns a new JSON object in *designp. */
km_err_t km_design_build(const km_plan_t *plan, const json_t *src_inv,
			 const json_t *tgt_inv, json_t **designp, char *errstr,
			 size_t errstr_size);

/* @returns a new JSON array of actions turning the target (tgt_inv) into
 * the design: {"op": "create-topic"|"alter-configs"|"create-acl"|"blocked"
 * |"manual", "subject", ...}.  Objects already as designed produce none. */
json_t *km_design_delta(const json_t *design, const json_t *tgt_inv);

/* Counts actions of one op in a delta. */
size_t km_design_count(const json_t *actions, const char *op);

/* Called after each applied action with its before/after. */
typedef km_err_t (*km_design_applied_cb)(void *opaque, const json_t *action,
					 char *errstr, size_t errstr_size);

/* The admin requests one apply sent: its cost in controller round trips,
 * which grows with the number of kinds of change, not of objects. */
typedef struct km_design_requests_s {
	int create_topics;  /* CreateTopics requests */
	int alter_configs;  /* IncrementalAlterConfigs requests */
	int create_acls;    /* CreateAcls requests (guards and copied ACLs) */
} km_design_requests_t;

/* Applies actions on the target behind k, batched: the creates, the config
 * changes and the ACLs each go in as few requests as Kafka takes (a
 * request holds at most 5,000 metadata records), guards before anything
 * else and each kind in the order of the actions.  Stops at the first
 * "blocked" action (KM_ERR_FINDINGS): every action before it is applied,
 * none after.  When Kafka refuses an object, the other objects of its
 * request that Kafka did change are still reported through cb, then the
 * first refusal is returned.  "manual" and "guard-finding" actions are
 * skipped (they are for people); "create-guard" actions (lib/guard.h) are
 * created like "create-acl".  *appliedp counts applied actions; *reqp
 * (may be NULL) gets the requests sent. */
km_err_t km_design_apply(km_kafka_t *k, const json_t *actions,
			 km_design_applied_cb cb, void *opaque, int *appliedp,
			 km_design_requests_t *reqp, char *errstr, size_t errstr_size);

#endif
