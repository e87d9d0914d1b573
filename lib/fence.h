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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* Plans the DENY-only ACL fence: one DENY WRITE (TOPIC, LITERAL, topic,
 * host *) per {"topic", "principal"} of denies, nothing removed (the
 * rollback's target fence: the writers come from lib/guard.h's
 * computation, kmigrate's own principal left out, so kmigrate keeps
 * writing).  A plan of kind "acl" like km_fence_plan's: inverse, apply,
 * prove and undo take it as they are.  A declared or reported super user
 * among the principals is listed in "not_fenceable" (the caller's NO-GO).
 * Changes nothing.  @returns the plan in *planp (new reference). */
km_err_t km_fence_plan_denies(km_kafka_t *ks, const json_t *denies, const km_fence_facts_t *facts,
			      json_t **planp, char *errstr, size_t errstr_size);

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

/* One canary record: where it goes (in) and what became of it (out). */
typedef struct km_fence_canary_s {
	const char *topic; /* borrowed */
	int partition;
	rd_kafka_resp_err_t err; /* the delivery report's (_TIMED_OUT: none came) */
	int64_t offset;          /* where it was appended, or -1 */
	int64_t latency_ms;      /* produce to delivery report, or -1 */
	bool done;               /* internal */
} km_fence_canary_t;

/* Produces one canary record (no key, no value, the header `header` = now
 * as ISO-8601) to each cs[i].topic/partition as ep, with a plain producer
 * (no idempotence, no retries, acks=all) so that each answer is the
 * partition's own, and waits for every delivery report (message.timeout.ms
 * = timeout_ms; <= 0: 30 s).  The proof's canaries, and monitor's.
 * @returns an error only when the producer could not be made. */
km_err_t km_fence_canaries(const km_kafka_endpoint_t *ep, const char *header,
			   km_fence_canary_t *cs, size_t n, int timeout_ms, char *errstr,
			   size_t errstr_size);

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

/* ---- cutover's ACL fence (cutover.fence: acl) ---------------------------- */

struct km_plan_s;

/* The writers of topics[0..ntopics-1]: every principal holding an ALLOW
 * WRITE or ALL that covers one of them (LITERAL, PREFIXED, the wildcard *)
 * in snapshot_acls (the "acls" of the latest source inventory), the
 * LITERAL transactional ids those principals may WRITE, and the declared
 * ones (the plan's producers).  The ACLs are re-read from ks now: a
 * principal or transactional id they let write that the snapshot does not
 * is KM_ERR_NOGO (an unreviewed writer is unknown), as are an ACL list the
 * inventory could not read and a PREFIXED transactional-id ALLOW (the ids
 * under it cannot be denied one by one).  Changes nothing.
 * @returns {"principals": [...], "txn_ids": [...], "found": [{principal |
 * transactional_id, "from": "acl" | "plan", "acl"?}]} in *writersp. */
km_err_t km_fence_writers(km_kafka_t *ks, const json_t *snapshot_acls, const char *const *topics,
			  size_t ntopics, const char *const *declared, size_t ndeclared,
			  const char *const *declared_txns, size_t ndeclared_txns,
			  json_t **writersp, char *errstr, size_t errstr_size);

/* Whether the plan declares what the ACL fence needs: cutover.super_users,
 * a super_users_fence when there are any (external: with an owner),
 * cutover.fence_probe (principal = User:<username>), and a SASL source.
 * @returns KM_ERR_NOGO naming the key to add. */
km_err_t km_fence_acl_declared(const struct km_plan_s *plan, char *errstr, size_t errstr_size);

/* Plans cutover's ACL fence of wave's topics (the gate's list) from the
 * plan and inventory (the latest source inventory snapshot): the writers
 * (km_fence_writers, with the wave's producers' principal and
 * transactional_id), km_fence_plan("acl") with the declared facts, its
 * inverse, and the super users' cover: the config fence on the same topics
 * (refused, KM_ERR_NOGO, when a transactional id writes them) or the
 * external owner.  The probe must be among the writers and not a super
 * user.  Changes nothing.
 * @returns the document to journal in *docp: {"kind": "acl", "plan",
 * "inverse", "writers", "super_users_cover"?: {"kind": "config", "plan",
 * "inverse"} | {"kind": "external", "owner"}, "probe"}. */
km_err_t km_fence_acl_cutover_plan(km_kafka_t *ks, const struct km_plan_s *plan,
				   const char *wave, const char *const *topics, size_t ntopics,
				   const json_t *inventory, json_t **docp, char *errstr,
				   size_t errstr_size);

/* Applies a cutover fence document ({"plan", "inverse", ...}; the ACL one
 * above or a config one): the plan, then the config cover if any. */
km_err_t km_fence_doc_apply(km_kafka_t *ks, const json_t *doc, char *errstr,
			    size_t errstr_size);

/* Undoes a cutover fence document: the super users' config cover's
 * journaled inverse, then the fence's, each read back until it is as it was
 * before (km_fence_wait_restored).  Idempotent.  @returns the read-backs
 * in *evidencep ({"fence", "super_users_cover"?}); KM_ERR_NOGO when one
 * does not read back as it was. */
km_err_t km_fence_doc_undo(km_kafka_t *ks, const json_t *doc, json_t **evidencep, char *errstr,
			   size_t errstr_size);

/* km_fence_doc_apply() then km_fence_doc_prove() on k, as a fence step
 * does: a proof that fails is KM_ERR_NOGO with errstr "<what> not proven:
 * <why> (the fence stays applied; its inverse is in the journal)", the
 * fence left in place.  *proofp (new reference) when the proof ran. */
km_err_t km_fence_doc_enforce(km_kafka_t *k, const km_kafka_endpoint_t *ep,
			      const struct km_plan_s *plan, const json_t *doc, const char *what,
			      json_t **proofp, char *errstr, size_t errstr_size);

/* Proves a cutover fence document: an ACL plan with canaries as
 * cutover.fence_probe (its password from the environment now), a config
 * plan and the config cover as ks_ep.  @returns as km_fence_prove(); the
 * proof ({"fence", "super_users_cover"} with a cover) in *proofp. */
km_err_t km_fence_doc_prove(km_kafka_t *ks, const km_kafka_endpoint_t *ks_ep,
			    const struct km_plan_s *plan, const json_t *doc, json_t **proofp,
			    char *errstr, size_t errstr_size);

/* The first of topics[0..n-1] whose max.message.bytes on ks refuses every
 * record batch now (below 68: the config fence), in *fencedp (owned), NULL
 * when none does: kmigrate's own writes (the reverse copy) are refused by
 * it too, whatever the principal. */
km_err_t km_fence_config_fenced(km_kafka_t *ks, const char *const *topics, size_t n,
				char **fencedp, char *errstr, size_t errstr_size);

#endif
