/*
 * cutover.h -- moving one wave's write authority from the source to the
 * target (`kmigrate cutover --wave W`, issue 10 item 3) as a resumable,
 * journaled step machine.
 *
 * Steps, in order, each journaled as a fact of kind "cutover.step", subject
 * "wave:<W> step:<name>", with its evidence, in its own committed
 * transaction BEFORE the next step starts:
 *
 *   gate   gate "cutover" for the wave is GO (km_gate_eval), and every
 *          earlier wave in plan order is complete;
 *   stop-connectors  the wave's Kafka Connect source connectors stopped
 *          gracefully, their offsets stable (lib/connect.h): they are
 *          producers of the wave's topics;
 *   fence  the wave's source topics refuse writes: the plan's cutover.fence
 *          (acl or config: lib/fence.h, the acl fence's writers from the
 *          source inventory checked against the ACLs now; external: its
 *          owner is responsible, proven by the drain's quiet check alone).
 *          The fence plan and its exact
 *          inverse are journaled (fact "cutover.fence", subject "wave:<W>")
 *          before km_fence_apply() changes anything; a resumed run applies
 *          the journaled plan, never a fresh one; the proof is the step's
 *          evidence;
 *   drain  every wave partition has LSO == HWM, the HWMs stay still for
 *          cutover.quiet_period, and the replicator's committed progress on
 *          the target has reached them;
 *   validate  km_validate_run on the wave's topics alone is GO (mismatches
 *          within gates.max_mismatches); the report's summary is the
 *          evidence.  NO-GO: the fence stays;
 *   offsets  each of the wave's groups (plan) is translated
 *          (km_offsets_translate, opts.only) and its wave partitions
 *          committed on the target (km_offsets_commit: refused while the
 *          target group has members); a group not translatable or without
 *          a committed position is NO-GO; the committed positions are the
 *          evidence;
 *   authority  one record per wave topic, authority = target, written
 *          (idempotent, acks=all) to the compacted __kmigrate.<m>.authority
 *          on the target (lib/mapstore.h) and read back, BEFORE the step
 *          fact: a crash between the two is repaired by the re-run, which
 *          writes the same keys again; the wave's target guard (lib/guard.h)
 *          is lifted between the read-back and the fact;
 *   connectors  each of the wave's connectors moved (lib/connect.h):
 *          source stopped, target (STOPPED since apply) given the
 *          position (a sink's group translated, a source's copied),
 *          source checked still STOPPED, target resumed; both states
 *          journaled at every phase;
 *   switch the switch instructions: the wave's producers, consumers and
 *          groups with their owners and validation methods, the target's
 *          bootstrap and the target topic names (the plan's naming), and
 *          the target's high watermarks at that moment (what --verify
 *          measures the target's new writes from).  kmigrate redeploys
 *          nothing.  A listed client without an owner or a validation
 *          method is NO-GO (the gate says so first).
 *
 * A run resumes at the first step without a fact and never does a done step
 * again.  A wave is complete when its last step (KM_CUTOVER_LAST_STEP) is
 * journaled.  km_cutover_verify() is the post-cutover check (`--verify`):
 * repeatable, not a step a later wave waits for.  A run refuses while a
 * rollback of the wave's attempt has begun (lib/rollback.h).
 *
 * What this module does not do: print, exit, or take the migration's
 * cutover lock (src/cmd_cutover.c takes it, lib/lock.h).  Events go
 * through the callback.
 *
 * @locality the calling thread; blocks on both clusters.
 */
#ifndef KM_CUTOVER_H
#define KM_CUTOVER_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "journal.h"
#include "kafka.h"
#include "plan.h"

/* The steps built so far, in order, NULL-terminated; static storage. */
extern const char *const km_cutover_steps[];
#define KM_CUTOVER_LAST_STEP "switch"

typedef struct km_cutover_conf_s {
	const km_plan_t *plan;
	km_journal_t *jr;
	km_kafka_t *ks, *kt;            /* connected source and target (borrowed) */
	const km_kafka_endpoint_t *src; /* the source endpoint with its password:
					 * the fence proof produces canaries */
	const km_kafka_endpoint_t *tgt; /* the target endpoint with its password:
					 * validation and the authority records */
	const char *wave;
	const char *args;               /* the command line, for the run row */
	bool dry_run;                   /* read only: journal nothing, change nothing */
	int drain_timeout_ms;           /* <= 0: 300 s */
	int connector_stop_timeout_ms;  /* a connector's stop (lib/connect.h); <= 0: 60 s */
	int64_t verify_window_ms;       /* km_cutover_verify; <= 0: cutover.verify_window */
	volatile sig_atomic_t *stop;    /* set: stop waiting, KM_ERR_TIMEOUT; may be NULL */
	/* Events, each a borrowed object:
	 *   {"event": "step", "wave", "step", "state": "done" | "already-done" |
	 *    "would" | "nogo" | "start", "fact_id"?, "evidence"?, "reason"?}
	 *   {"event": "journaled", "wave", "what": "fence-plan", "fact_id"}
	 *   {"event": "recorded", "wave", "what": "authority-record", "evidence"}
	 *     (the authority records are on the target and read back; the
	 *     step's fact is not journaled yet)
	 * A "done" or "journaled" event is sent after its fact is committed.
	 * km_cutover_verify sends "step" events with step "verify" and state
	 * "start", then "go" or "nogo" with the evidence. */
	void (*event_cb)(void *opaque, const json_t *ev);
	void *opaque;
} km_cutover_conf_t;

/*
 * Runs (or resumes) the wave's cutover.
 * @returns KM_ERR_OK when every step built so far is done (journaled);
 * KM_ERR_NOGO with the reason in errstr when a step refuses (gate NO-GO,
 * an earlier wave incomplete, a fence not proven, the drain not reached in
 * time); KM_ERR_INVALID_ARG for an unknown wave; cluster and journal errors
 * as they come.  *resultp (may be NULL) receives {"wave", "steps":
 * [{"step", "state"}], "run_id"} in every case it was reached.
 */
km_err_t km_cutover_run(const km_cutover_conf_t *conf, json_t **resultp, char *errstr,
			size_t errstr_size);

/*
 * The current cutover attempt of wave w, from the journal: *donep (new
 * object) maps each done step's name to its fact; *fencep (fencep may be
 * NULL; new reference or NULL) is the journaled fence plan and inverse
 * (fact "cutover.fence").  An attempt starts after the wave's latest
 * "cutover.reset" fact (written by a rollback that returned the wave to
 * its state before the cutover, lib/rollback.h): facts before it belong
 * to an attempt that was undone.
 */
km_err_t km_cutover_load(km_journal_t *jr, const char *w, json_t **donep, json_t **fencep,
			 char *errstr, size_t errstr_size);

/* The id of wave w's latest "cutover.reset" fact, 0 when none: the facts
 * of the current attempt (and of its rollback) are those after it. */
km_err_t km_cutover_reset_id(km_journal_t *jr, const char *w, json_int_t *idp, char *errstr,
			     size_t errstr_size);

/*
 * The post-cutover checks of a switched wave (`cutover --verify`), over the
 * window (conf->verify_window_ms, else the plan's cutover.verify_window),
 * polling every 500 ms:
 *   target_writes    every wave topic's target HWMs moved past the switch's;
 *   groups_consume   every wave group committed on the target past the
 *                    positions the offsets step committed;
 *   groups_lag       no group's lag on the target grew over the window (on
 *                    a partition: more lag at the end than at the start,
 *                    and not consumed up to where it ended at the start);
 *   source_fenced    the source's HWMs stayed the drain's (every sample);
 *   no_stale_writes  the same, per partition, with the records let through.
 * The verdict is journaled (fact "cutover.step", subject "wave:<W>
 * step:verify", GO or NO-GO, the checks as evidence) on every call.
 * @returns KM_ERR_OK for GO; KM_ERR_NOGO naming the failed checks, or
 * naming the next step when the wave is not switched yet (nothing
 * journaled then); KM_ERR_INVALID_ARG for an unknown wave.  *resultp (may
 * be NULL) receives {"wave", "steps", "run_id", "verify"}.
 */
km_err_t km_cutover_verify(const km_cutover_conf_t *conf, json_t **resultp, char *errstr,
			   size_t errstr_size);

/* Writes {"authority": authority, "wave", "at": now, "run_id"} for each
 * topic of topics (names, or the gate's {"topic"} rows) to the compacted
 * authority topic atopic on the target (idempotent, acks=all) and waits
 * for every acknowledgement: cutover's authority step (target) and
 * rollback's (source). */
km_err_t km_cutover_write_authority(const km_kafka_endpoint_t *tgt, const char *atopic,
				   const char *authority, const char *wave, int64_t run_id,
				   const json_t *topics, char *errstr, size_t errstr_size);

/* Sends a step event {"event": "step", "wave", "step", "state",
 * "fact_id"?, "evidence"?, "reason"?} to cb (may be NULL) and, unless state
 * is "start", appends {"step", "state"} to rows: the events of cutover's
 * and rollback's step machines (lib/rollback.c). */
void km_step_event(const char *wave, json_t *rows, void (*cb)(void *, const json_t *),
		   void *opaque, const char *step, const char *state, json_int_t fact_id,
		   const json_t *evidence, const char *reason);

#endif
