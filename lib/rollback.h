/*
 * rollback.h -- returning a wave's write authority to the source
 * (`kmigrate rollback --wave W`, issue 11) as a resumable, journaled step
 * machine, like lib/cutover.h.
 *
 * Two paths, chosen by assess.  AFTER the authority moved (a record on
 * the target's authority topic says target, or the authority step is
 * journaled): fence-target (the plan's fence on the wave's target topics,
 * its plan journaled as "rollback.fence" first), drain-target, unfence
 * (the source), reverse (the reverse engine in-process, then no foreign
 * record on the source), offsets-back (km_offsets_translate_back, committed
 * on the source), authority-source, reset (with the switch-back
 * instructions); docs/internals/rollback.md.  BEFORE it: the rollback of
 * a cutover that stopped BEFORE the wave's authority moved (the fence applied, then a drain timeout, a validation
 * NO-GO or an operator's decision).  The source never stopped being
 * authoritative, so undoing the fence exactly is the whole rollback:
 *
 *   assess   reads the wave's cutover attempt (km_cutover_load) and the
 *            target's authority topic, and picks the path;
 *   unfence  applies the journaled inverse of the journaled fence plan
 *            (km_fence_undo) and reads the cluster back until it is as it
 *            was before the fence (km_fence_wait_restored); an external
 *            fence is its owner's to lift, recorded as such;
 *   reset    journals "cutover.reset" for the wave: the attempt is closed,
 *            and the next `cutover --wave W` starts again at its gate, with
 *            a fresh fence plan.
 *
 * Each step is journaled as a fact of kind "rollback.step", subject
 * "wave:<W> step:<name>", before the next starts, in the current rollback
 * (the facts after the attempt's first fact); a re-run after a crash skips
 * the done steps.  unfence is idempotent (creating an existing ACL or
 * deleting a missing one changes nothing; the config inverse sets or
 * deletes one value), so a crash between the undo and its fact is repaired
 * by doing it again.
 *
 * What this module does not do: print, exit, or take the cutover lock (the
 * command does).
 *
 * @locality the calling thread; blocks on both clusters.
 */
#ifndef KM_ROLLBACK_H
#define KM_ROLLBACK_H

#include <jansson.h>
#include <stdbool.h>

#include "err.h"
#include "journal.h"
#include "kafka.h"
#include "plan.h"
#include "replicate.h"

/* The steps, in order, NULL-terminated; static storage. */
extern const char *const km_rollback_steps[];

typedef struct km_rollback_conf_s {
	const km_plan_t *plan;
	km_journal_t *jr;
	km_kafka_t *ks;                 /* connected source (borrowed) */
	km_kafka_t *kt;                 /* connected target (borrowed) */
	const km_kafka_endpoint_t *src; /* the source endpoint, with its secrets */
	const km_kafka_endpoint_t *tgt; /* the target endpoint: its authority topic */
	const char *wave;
	const char *args; /* the command line, for the run row */
	bool dry_run;     /* read only: journal nothing, change nothing */
	int drain_timeout_ms;        /* drain-target's bound; <= 0: 300 s */
	bool release_target;         /* the command's --release-target (the CLI's choice) */
	volatile sig_atomic_t *stop; /* set by a signal handler: stop waiting */
	/* Events, as cutover's: {"event": "step", "wave", "step", "state":
	 * "start" | "done" | "already-done" | "would" | "nogo", "fact_id"?,
	 * "evidence"?, "reason"?}; a "done" event follows its commit. */
	void (*event_cb)(void *opaque, const json_t *ev);
	void *opaque;
} km_rollback_conf_t;

/*
 * Runs (or resumes) the wave's rollback.
 * @returns KM_ERR_OK when the wave is back to its state before the cutover
 * (or there was nothing to roll back: no cutover step journaled, result
 * "nothing"); KM_ERR_NOGO when a step cannot be done safely (named: the
 * fence did not read back as it was, a foreign record on the source, a
 * live group member or forward replicator, ...); KM_ERR_INVALID_ARG for an
 * unknown wave; cluster and journal errors as they come.  *resultp (may be
 * NULL) receives {"wave", "steps": [{"step", "state"}], "run_id",
 * "result": "rolled-back" | "nothing" | "would"}.
 */
km_err_t km_rollback_run(const km_rollback_conf_t *conf, json_t **resultp, char *errstr,
			 size_t errstr_size);

/*
 * The reverse copy's start points for wave W (`replicate --reverse` and
 * the rollback's reverse step): the target high watermarks the current
 * cutover attempt's switch step journaled (target_hwms), one per wave
 * partition.  KM_ERR_NOGO while no switch is journaled.  The source must
 * take kmigrate's writes: when src_principal ("User:x") is given, a
 * journaled ACL fence that DENYs it is KM_ERR_NOGO (the rollback, which
 * lifts the fence itself first, passes NULL); when ks is given, a wave
 * topic fenced by config on the source is KM_ERR_NOGO.  Reads only.
 * @returns *hwmsp (new reference: the journaled target_hwms), *startp
 * (km_free'd by the caller; its topics borrowed from *hwmsp) and *np.
 */
km_err_t km_rollback_reverse_starts(km_journal_t *jr, km_kafka_t *ks, const km_plan_t *plan,
				    const char *wave, const char *src_principal, json_t **hwmsp,
				    km_repl_start_t **startp, int *np, char *errstr,
				    size_t errstr_size);

/* The fact that closes a rollback's target fence ("rollback.fence") or
 * guard ("rollback.guard"): {"fence_fact": id, "by": "cutover" |
 * "release-target", "inverse", "restored"}, subject "wave:<W>". */
#define KM_ROLLBACK_FENCE_LIFTED "rollback.fence-lifted"

/*
 * The wave's open target fences: every "rollback.fence" and
 * "rollback.guard" fact of the wave (whatever the attempt) that no
 * KM_ROLLBACK_FENCE_LIFTED fact closes, oldest first.  Reads the journal.
 * @returns *fencesp, a new array of facts {"id", "subject", "body": the
 * fence document {"plan", "inverse", "cluster": "target"}, "kind": the
 * fact kind}.
 */
km_err_t km_rollback_target_fences(km_journal_t *jr, const char *wave, json_t **fencesp,
				   char *errstr, size_t errstr_size);

/*
 * Undoes one open target fence (a fact of km_rollback_target_fences) on
 * the target kt from its journaled inverse and reads it back
 * (km_fence_doc_undo).  Idempotent.  The caller journals
 * KM_ROLLBACK_FENCE_LIFTED with *evidencep (new: {"fence_fact", "fact_kind",
 * "kind", "inverse", "restored"}) after it: a crash between is undone again.
 * The cutover's authority step lifts every open one (lib/cutover.c).
 */
km_err_t km_rollback_target_fence_undo(km_kafka_t *kt, const json_t *fence, json_t **evidencep,
				       char *errstr, size_t errstr_size);

/*
 * `kmigrate rollback --wave W --release-target`: after a completed
 * rollback, lifts the target's config fence (max.message.bytes=0, which
 * refuses kmigrate's forward copy too) from its journaled inverse.  Where
 * the target has an authorizer, the guard goes back first (a
 * "rollback.guard" fact, lifted by the next cutover's authority step), so
 * the target is never open to stale producers; without one, the target is
 * reported unguarded ("unguarded": why, in *resultp).  An ACL fence (it
 * leaves kmigrate's principal out) or no fence: result "nothing".  A
 * rollback not finished: KM_ERR_NOGO.  Resumable: a re-run after a crash
 * re-applies the journaled guard and re-undoes the fence.
 * @returns *resultp {"wave", "steps", "run_id", "result": "released" |
 * "nothing" | "would", "unguarded"?}.
 */
km_err_t km_rollback_release_target(const km_rollback_conf_t *conf, json_t **resultp,
				    char *errstr, size_t errstr_size);

#endif
