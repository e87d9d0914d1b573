/*
 * connect.h -- Kafka Connect as part of the estate (issue 14, items 1-4 of
 * its Connect half): a REST client with deadlines, the connectors'
 * inventory and findings, the target design of their configs, their
 * creation in the STOPPED state, and the per-wave connector cutover.
 *
 * A connector owns side effects outside Kafka (a file, a warehouse, a
 * mailbox), so moving it is not moving a topic: its position must move
 * exactly, and the old and the new instance must never run at the same
 * time for the same records.  The cutover (km_connect_cutover) therefore:
 *   1. stops the source connector (PUT /connectors/{n}/stop, KIP-875) and
 *      waits until it is STOPPED and its offsets stay still;
 *   2. proves the target connector is STOPPED (apply created it so,
 *      KIP-980 initial_state);
 *   3. sink: translates the connector's consumer group (connect-<name> or
 *      the plan's `group`) through the exact offset map (lib/offsets.h)
 *      and writes the target positions with PATCH /connectors/{n}/offsets;
 *      source: copies the source-system positions verbatim;
 *   4. re-reads the source connector (still STOPPED) and resumes the target
 *      (PUT .../resume).
 * Each phase records the state of both connectors in the evidence.  Every
 * phase is idempotent: a re-run after a crash finds the source STOPPED,
 * and a target already RUNNING only when step 4 was reached (it then
 * re-checks and records, nothing else).
 *
 * Errors are one line naming the URL and the fix.  This module never
 * prints or exits.
 *
 * @locality the calling thread; blocks on HTTP with a deadline per call.
 */
#ifndef KM_CONNECT_H
#define KM_CONNECT_H

#include <jansson.h>
#include <stdbool.h>

#include "err.h"
#include "kafka.h"
#include "plan.h"

/* The deadline of one REST call when the caller gives none. */
#define KM_CONNECT_TIMEOUT_MS 15000

typedef struct km_connect_s km_connect_t;

/* A client of the worker at url (a plan's source/target.connect_url);
 * role ("source.connect_url") names the plan key in errors.  Checks that
 * the worker answers GET / within the deadline: KM_ERR_UNREACHABLE
 * otherwise.  timeout_ms <= 0: KM_CONNECT_TIMEOUT_MS. */
km_err_t km_connect_open(const char *url, const char *role, int timeout_ms, km_connect_t **cp,
			 char *errstr, size_t errstr_size);
void km_connect_close(km_connect_t *c);
/* The worker's Kafka version ("3.9.2"), from GET /. */
const char *km_connect_version(const km_connect_t *c);

/* One REST call: method, path ("/connectors"), body (may be NULL).  A 2xx
 * answer's JSON (or null when empty) in *outp (may be NULL); 404 is
 * KM_ERR_NOT_FOUND, 409 KM_ERR_CONFLICT, other non-2xx KM_ERR_KAFKA, each
 * with the worker's message. */
km_err_t km_connect_call(km_connect_t *c, const char *method, const char *path,
			 const json_t *body, json_t **outp, char *errstr, size_t errstr_size);

/* The connector's state (RUNNING, PAUSED, STOPPED, FAILED, UNASSIGNED) and
 * its tasks' states in *statusp ({"state", "tasks": [{"id", "state",
 * "trace"?}]}); KM_ERR_NOT_FOUND when there is no such connector. */
km_err_t km_connect_status(km_connect_t *c, const char *name, json_t **statusp, char *errstr,
			   size_t errstr_size);

/* The config with credentials masked: a key that names a credential
 * (password, secret, token, credential, jaas, *.key, api/access/private
 * key) or a value that embeds one (password=...) becomes "********"; a
 * `${provider:path:key}` reference is kept as written (it is not the
 * secret).  @returns a new object. */
json_t *km_connect_mask_config(const json_t *config);

/* The connectors of one worker: {"url", "version", "connectors": [{"name",
 * "class", "type", "config" (masked), "state", "tasks", "topics",
 * "dlq_topic", "group", "offsets"}]}; connector "offsets" are KIP-875's
 * (null with "offsets_error" when the worker cannot tell). */
km_err_t km_connect_inventory(km_connect_t *c, const km_plan_t *plan, json_t **outp,
			      char *errstr, size_t errstr_size);

/* Findings of a connect inventory against the plan's connectors[]:
 * [{"subject": "connector:<name>", "problem", "fix", "kind", "severity"}]
 * (the inventory's finding shape): undeclared connector, declared but
 * absent, and (severity high) a sink on a topic with `duplicates: none`
 * without `idempotent: yes`.  A declared connector without an owner is the
 * inventory's declared-item finding. */
json_t *km_connect_findings(const km_plan_t *plan, const json_t *inventory);

/* The target design of one source connector (an inventory row, unmasked
 * config in cfg): the same config with topics mapped through the plan's
 * naming (topics, topic, topics.regex is refused: NOGO), the DLQ topic
 * mapped, client bootstrap overrides pointed at the target.
 * @returns {"name", "config", "changes": [{"key", "from", "to"}]}. */
km_err_t km_connect_target_config(const km_plan_t *plan, const char *name, const json_t *cfg,
				  json_t **outp, char *errstr, size_t errstr_size);

/* The target designs of every source connector on an in-scope topic:
 * [{"name", "config", "changes"}], read live from the source worker. */
km_err_t km_connect_design(const km_plan_t *plan, json_t **outp, char *errstr,
			   size_t errstr_size);

/* Creates each designed connector on the target worker in the STOPPED
 * state (KIP-980); one that exists already with the same config is left
 * alone, one with another config is a conflict (nothing changed).
 * @returns [{"name", "action": "created" | "exists"}] in *resultp. */
km_err_t km_connect_apply(const km_plan_t *plan, const json_t *designs, json_t **resultp,
			  char *errstr, size_t errstr_size);

/* What km_connect_apply would do, read only (apply --dry-run): per design
 * {"name", "action": "create-stopped" | "exists" | "conflict"} (a conflict:
 * apply refuses before any creation). */
km_err_t km_connect_apply_preview(const km_plan_t *plan, const json_t *designs,
				  json_t **resultp, char *errstr, size_t errstr_size);

/* A copy of designs with every config masked (km_connect_mask_config):
 * what the saved design holds, so that no secret reaches the journal. */
json_t *km_connect_design_masked(const json_t *designs);

/* KM_ERR_CONFLICT when the live designs (masked) differ from the saved
 * (masked) ones: apply creates only what was reviewed. */
km_err_t km_connect_design_check(const json_t *saved, const json_t *live, char *errstr,
				 size_t errstr_size);

/* The connector cutover of wave w (see above); dry_run only reads.
 * stop_sources: only stop the wave's SOURCE connectors (cutover's
 * stop-connectors step, before the fence: they are producers of the
 * wave's topics, and a graceful stop commits the positions of every
 * acknowledged record); otherwise the whole move above.
 * ks/kt: connected clusters (the sink translation reads both).
 * @returns KM_ERR_OK with {"connectors": [{"name", "type", "phases": [{"phase",
 * "source_state", "target_state", ...}], "offsets"}]} in *evidencep;
 * KM_ERR_NOGO when a connector does not stop in time, a target connector
 * is not STOPPED before its offsets are written, or a sink's group is not
 * translatable. */
km_err_t km_connect_cutover(const km_plan_t *plan, km_kafka_t *ks, km_kafka_t *kt, const char *w,
			    bool stop_sources, bool dry_run, int stop_timeout_ms, json_t **evidencep,
			    char *errstr, size_t errstr_size);

/* The rollback's last connector move (lib/rollback.c, reset): the wave's
 * source connectors that the cutover stopped run again on the source --
 * refused (NOGO) for one whose target twin is not STOPPED.  Before the
 * authority moved only SOURCE connectors were stopped (stop-connectors);
 * after it (sinks_too) every connector of the wave.  Both states
 * recorded as in the cutover; idempotent (a RUNNING one is recorded). */
km_err_t km_connect_resume_sources(const km_plan_t *plan, const char *w, bool sinks_too,
				   bool dry_run, json_t **evidencep, char *errstr,
				   size_t errstr_size);

/* The rollback after the authority moved, step stop-target-connectors
 * (sinks false: before fence-target, the target's SOURCE connectors are
 * the wave's producers there) -- and the sink half of connectors-back:
 * stops the wave's target connectors of that kind and waits until each is
 * STOPPED with stable offsets.  @returns {"connectors": [{"name", "type",
 * "phases"}]} (both states per phase) in *evidencep; KM_ERR_NOGO when one
 * does not stop in time or is gone from the target. */
km_err_t km_connect_rollback_stop(const km_plan_t *plan, const char *w, bool sinks, bool dry_run,
				  int stop_timeout_ms, json_t **evidencep, char *errstr,
				  size_t errstr_size);

/* The rollback's connectors-back step (after reverse, before
 * offsets-back): the target sinks stopped (their positions final), then
 * per connector of the wave, both STOPPED (else NOGO): a sink's TARGET
 * group translated back (km_offsets_translate_back over parts, the
 * switch's partitions as offsets-back gives them) and written with PATCH
 * /connectors/{n}/offsets on the SOURCE connector; a source connector's
 * target positions copied verbatim.  Idempotent (the same positions
 * again).  Evidence as km_connect_rollback_stop, plus "moved".
 *
 * moved false: the cutover's connectors step never ran in this attempt
 * (it stopped between its authority and connectors steps), so no target
 * twin ran: each connector's position is its source one's (a sink kept
 * consuming the source topic and consumes what the reverse copy writes
 * there).  Nothing is stopped or written; each target twin must be
 * STOPPED (else NOGO: it ran, its position is unknown), and the phase
 * "not-moved" records both states (and a sink's group, which offsets-back
 * then leaves alone). */
km_err_t km_connect_rollback_offsets(const km_plan_t *plan, km_kafka_t *ks, km_kafka_t *kt,
				     const char *w, const json_t *parts, bool moved,
				     bool dry_run, int stop_timeout_ms, json_t **evidencep,
				     char *errstr, size_t errstr_size);

#endif
