/*
 * fence.h -- fencing a source topic: making it refuse every write while
 * reads keep working, with an exact inverse (cutover step 3.2, issue 10).
 *
 * Two fences, both proven on Kafka 3.9.2 and 4.3.1 (docs/internals/fences.md):
 *
 *  - "acl": DENY WRITE on the topics for the principals that write them and
 *    DENY WRITE on their transactional ids (EndTxn needs only WRITE on the
 *    transactional id), plus removal of the ALLOW WRITE bindings that cover
 *    only fenced topics.  Super users cannot be fenced by ACLs: the plan
 *    lists them under "not_fenceable" and the caller must cover them with
 *    another fence or say NO-GO.
 *  - "config": the topic override max.message.bytes=0, which refuses every
 *    produce (super users too) with MSG_SIZE_TOO_LARGE but also refuses
 *    transaction markers, so it is refused while a transaction is open
 *    (LSO != HWM) or when a transactional producer writes the topics.
 *
 * The sequence a caller follows, so that a crash never leaves a fence
 * whose undo is unknown:
 *
 *   km_fence_plan()     reads the cluster, changes nothing
 *   km_fence_inverse()  pure: what undoes the plan; journal it
 *   km_fence_apply()    changes the cluster (idempotent)
 *   km_fence_prove()    canary produces must fail, reads must work, HWMs still
 *   km_fence_undo()     applies the journaled inverse (idempotent)
 *
 * Resuming after a crash re-applies the journaled plan, never a new plan:
 * a plan taken on an already fenced topic cannot know what was there before
 * (a config plan says so and km_fence_inverse() refuses it).
 *
 * What it does not do: decide which principals or transactional ids write
 * a topic (the caller gives them, from the inventory), pick the fence kind
 * (the plan's cutover.fence), wait for the drain, or journal anything.
 * Plans, inverses and proofs are JSON documents described in
 * docs/internals/fences.md ("The fence module").  Every admin call has a
 * deadline (km_kafka_call_*).  Nothing here prints.
 *
 * @locality any thread; the calls block on the cluster.
 */
#ifndef KM_FENCE_H
#define KM_FENCE_H

#include <jansson.h>
#include <stddef.h>

#include "err.h"
#include "kafka.h"

/* The value of the config fence (the smallest max.message.bytes brokers
 * accept; any value below 68 refuses every record batch). */
#define KM_FENCE_MAX_MESSAGE_BYTES "0"

/* What the brokers do not tell.  Kafka's DescribeConfigs reports
 * super.users and allow.everyone.if.no.acl.found as sensitive, value null
 * (they are the authorizer's properties, not broker configs: seen on 4.3.1),
 * so the caller declares them, from the plan.  A value a broker does
 * report wins over the declaration. */
typedef struct km_fence_facts_s {
	const char *const *super_users; /* "User:admin", ...; NULL: not declared */
	size_t nsuper_users;
	int allow_everyone_if_no_acl_found; /* 1, 0, or -1: not declared */
} km_fence_facts_t;

/* Computes what fencing topics[0..ntopics-1] on ks would change, without
 * changing anything.  kind is "acl" or "config".  principals ("User:alice")
 * are the topics' writers; txn_ids their transactional ids.  For "config",
 * any txn_id is a refusal (a transactional producer writes the topics), as
 * is a partition whose LSO != HWM (an open transaction): KM_ERR_NOGO with
 * the topic, partition or producer named.  A topic that does not exist is
 * KM_ERR_NOT_FOUND; "acl" on a cluster without an authorizer is
 * KM_ERR_UNSUPPORTED.  facts may be NULL.  For "acl", unknown super users
 * are said in the plan ("super_users": null, a warning: the proof as each
 * principal is then what shows none is a super user); an unknown
 * allow.everyone.if.no.acl.found is KM_ERR_NOGO only when a fenced topic
 * has no ACL at all (else it changes nothing).
 * @returns the plan in *planp (new reference). */
km_err_t km_fence_plan(km_kafka_t *ks, const char *const *topics, size_t ntopics,
		       const char *const *principals, size_t nprincipals,
		       const char *const *txn_ids, size_t ntxn_ids, const char *kind,
		       const km_fence_facts_t *facts, json_t **planp, char *errstr, size_t errstr_size);

/* The exact inverse of plan, computed from the plan alone (no cluster), so
 * that it can be journaled before km_fence_apply() changes anything.
 * @returns a new reference in *inversep. */
km_err_t km_fence_inverse(const json_t *plan, json_t **inversep, char *errstr,
			  size_t errstr_size);

/* Applies plan on ks: CreateAcls/DeleteAcls or IncrementalAlterConfigs.
 * Applying an applied fence changes nothing and succeeds.  *inversep, when
 * inversep is given, receives km_fence_inverse(plan) (computed before the
 * first change; the caller should already have journaled it).  The config
 * fence re-checks LSO == HWM right before it alters anything. */
km_err_t km_fence_apply(km_kafka_t *ks, const json_t *plan, json_t **inversep,
			char *errstr, size_t errstr_size);

/* Proves plan's fence: for each endpoint in as[0..nas-1] (for "acl", a
 * fenced principal's credentials; for "config", anyone's) a canary produce
 * to every fenced partition must fail with TOPIC_AUTHORIZATION_FAILED /
 * MSG_SIZE_TOO_LARGE; a read_committed consumer on ks's endpoint (ks_ep,
 * with its password: ks does not keep it) must read from the log start;
 * the high watermarks must not move; for "config", LSO == HWM after.
 * Waits up to timeout_ms (<= 0: 30 s) for the fence to reach the brokers
 * (DescribeAcls/DescribeConfigs show it) before the canaries.
 * A canary that gets appended is a failed proof, named with its offset (it
 * carries the header kmigrate.fence.canary).
 * @returns KM_ERR_OK when proven, KM_ERR_NOGO with the first failure in
 * errstr when not; *proofp (new reference) in both cases. */
km_err_t km_fence_prove(km_kafka_t *ks, const km_kafka_endpoint_t *ks_ep, const json_t *plan,
			const km_kafka_endpoint_t *const *as, size_t nas, int timeout_ms,
			json_t **proofp, char *errstr, size_t errstr_size);

/* Restores what the inverse says (DeleteAcls of the added bindings,
 * CreateAcls of the removed ones, DELETE or SET of max.message.bytes).
 * Idempotent. */
km_err_t km_fence_undo(km_kafka_t *ks, const json_t *inverse, char *errstr,
		       size_t errstr_size);

/* Waits up to timeout_ms (<= 0: 30 s) until what plan changed reads back
 * as it was before the fence (DescribeAcls: every removed ALLOW present
 * and no added binding left; DescribeConfigs: max.message.bytes with the
 * value and source the plan saw): the check after km_fence_undo().
 * @returns KM_ERR_OK with *evidencep (new reference), KM_ERR_NOGO naming
 * the first difference when it does not. */
km_err_t km_fence_wait_restored(km_kafka_t *ks, const json_t *plan, int timeout_ms,
				json_t **evidencep, char *errstr, size_t errstr_size);

#endif
