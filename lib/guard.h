/*
 * guard.h -- the split-brain guard on the target (issue 10, item 4): until
 * a wave is cut over, its target topics are read-only for everyone but
 * kmigrate's own principal, the analogue of a mirror topic.
 *
 * Where the target has an authorizer, the guard is one DENY WRITE binding
 * (TOPIC, LITERAL, the target topic, host *) for every principal that the
 * target's ACLs -- those there now and those the design is about to copy --
 * would otherwise let write the topic (ALLOW WRITE or ALL, LITERAL, PREFIXED
 * or the * wildcard), except kmigrate's own principal on the target
 * (User:<target.username> for SASL PLAIN/SCRAM).  DENY beats ALLOW in
 * Kafka, so the copied ALLOWs stay as designed and start to count the
 * moment the guard is lifted.
 *
 * What cannot be guarded is a finding, never silence:
 *  - a target without an authorizer (nothing can refuse a write);
 *  - an ALLOW WRITE for User:* (a DENY for User:* would deny kmigrate too,
 *    and the principals it lets in cannot be listed);
 *  - kmigrate's own principal unknown (not SASL PLAIN/SCRAM), so the
 *    guard cannot leave it out;
 *  - super users (the authorizer does not consult ACLs for them); Kafka
 *    reports super.users as sensitive, so they are said in the docs only.
 *
 * `apply` creates the guard with the design (km_guard_actions: "create-guard"
 * actions, created with the design's create-acl request, journaled as
 * apply.change facts).  The cutover lifts it for the wave's topics when the
 * authority moves to the target (km_guard_lift: deletes exactly the guard
 * bindings apply journaled), and a topic whose authority record on the
 * target says "target" is never guarded again.
 *
 * What this module does not do: print, or decide which topics a wave has.
 */
#ifndef KM_GUARD_H
#define KM_GUARD_H

#include <jansson.h>

#include "err.h"
#include "journal.h"
#include "kafka.h"
#include "plan.h"

/* kmigrate's own principal on the target, "User:<username>", when the plan
 * makes it known (SASL PLAIN or SCRAM); NULL otherwise.  Owned. */
char *km_guard_principal(const km_plan_t *plan);

/*
 * The guard of the design's target topics, as design actions to put in
 * front of km_design_delta()'s (pure; reads nothing).
 *
 * @param tgt_inv    the target inventory: its "acls" (an array, or
 *                   {"not_inventoried": why} without an authorizer)
 * @param authority  km_mapstore_read_authority()'s records, or NULL when the
 *                   migration has none: topics whose authority is the target
 *                   are not guarded
 * @returns a new array of {"op": "create-guard", "subject", "topic",
 *   "principal", "acl"} and {"op": "guard-finding", "subject", "reason"}
 *   (the guard cannot be applied: why, and the fix).
 */
json_t *km_guard_actions(const km_plan_t *plan, const json_t *design, const json_t *tgt_inv,
			 const json_t *authority);

/*
 * Measures the guard of the target topics of source topics `topics` (a
 * JSON array of names) live: the target's authorizer and ACLs now, and the
 * authority records.  For the gate.
 * @returns in *reportp a new {"authorizer": bool, "principal",
 *   "missing": [{"topic", "principal"}], "findings": [reason...],
 *   "guarded": N, "cut_over": [source topic...], "why": reason or null}.
 */
km_err_t km_guard_check(km_kafka_t *kt, const km_plan_t *plan, const json_t *topics,
			json_t **reportp, char *errstr, size_t errstr_size);

/*
 * The guard's computation, live, for target topic names `targets` (a JSON
 * array): every principal that the target's ACLs (DescribeAcls now) let
 * write one of them, kmigrate's own excepted, whatever the authority
 * records say.  The rollback's ACL fence of the target denies exactly
 * these (lib/rollback.c, fence-target).  Changes nothing.
 * @returns in *deniesp a new [{"topic", "principal"}]; KM_ERR_NOGO with
 * the first finding (no authorizer, an ALLOW WRITE for User:*, kmigrate's
 * principal unknown) and its fix.
 */
km_err_t km_guard_writers(km_kafka_t *kt, const km_plan_t *plan, const json_t *targets,
			  json_t **deniesp, char *errstr, size_t errstr_size);

/*
 * Lifts the guard of source topics `topics` ([{"topic"}] or [names]): the
 * DENY WRITE bindings that apply created for their target topics (facts
 * apply.change "create-guard ..." in jr) are deleted on the target.
 * Idempotent: deleting a binding that is gone matches nothing.  Bindings
 * kmigrate did not create (a DENY copied from the source, one an operator
 * set) are never touched.
 * @returns in *liftedp a new array of the bindings deleted (as journaled).
 */
km_err_t km_guard_lift(km_kafka_t *kt, const km_plan_t *plan, km_journal_t *jr,
		       const json_t *topics, json_t **liftedp, char *errstr, size_t errstr_size);

#endif
