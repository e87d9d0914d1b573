/*
 * gate.h -- the migration's gates as first-class objects: a named gate,
 * evaluated for one cutover wave (or every topic in scope), is a list of
 * criteria, each with its threshold from the plan, the value measured, the
 * evidence it rests on (journal run and fact, when it was measured, by which
 * command), its owner and its verdict.  The gate is GO only when every
 * criterion is GO.
 *
 * Gates: design, compatibility, replication, validation, offsets,
 * rollback-ready, and cutover (all of them, plus the inventory's owners and
 * validation methods complete).  docs/internals/gates.md lists the criteria
 * and where each one's evidence comes from.
 *
 * Evidence is read from the journal (what `plan`, `apply`, `check`,
 * `validate`, `offsets`, `replicate` and `inventory` recorded) or measured
 * live (replication lag against the committed progress on the target; the
 * source principal's rights on the wave's topics).  Unknown -- no evidence,
 * evidence that does not say -- is NO-GO, and so is evidence older than the
 * plan's gates.max_evidence_age: never a default, never a pass.
 *
 * What this module does not do: it never writes the journal (the command
 * journals the verdict), never changes a cluster, never prints.
 */
#ifndef KM_GATE_H
#define KM_GATE_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "journal.h"
#include "kafka.h"
#include "plan.h"

/* The gate names, in evaluation order, NULL-terminated; static storage. */
extern const char *const km_gate_names[];

/*
 * Evaluates gate `name` for wave `wave` (NULL: every topic in scope) at
 * wall-clock time now_ms.
 *
 * @param ks, kt  connected source and target (borrowed)
 * @returns KM_ERR_OK and a new report in *reportp:
 *   {"gate", "wave" (or null), "migration", "verdict": "GO"|"NO-GO",
 *    "evaluated_at", "topics": [{"topic", "partitions"}],
 *    "criteria": [{"gate", "name", "threshold", "measured",
 *                  "evidence": {"run_id", "fact_id", "measured_at",
 *                               "command"},
 *                  "owner", "verdict", "reason"}]}
 *   (evidence members are null where there is none; measured_at is
 *   ISO-8601 UTC).  KM_ERR_INVALID_ARG for an unknown gate or wave; a
 *   cluster or journal error when the gate could not be evaluated at all
 *   (*reportp NULL): a verdict is never made of a half evaluation.
 */
km_err_t km_gate_eval(const km_plan_t *plan, km_journal_t *jr, km_kafka_t *ks, km_kafka_t *kt,
		      const char *name, const char *wave, int64_t now_ms, json_t **reportp,
		      char *errstr, size_t errstr_size);

/*
 * Reads as ep the first record at or after each tp->elems[i].offset
 * (read_uncommitted, so an open transaction does not hide it), waiting up
 * to timeout_ms (<= 0: KM_KAFKA_TIMEOUT_MS) in all: the replication
 * check's "age of the oldest record not yet copied", monitor's lag in
 * seconds and its canaries' read-back.  On return, for each i: ts[i] (an
 * array of tp->cnt) is the record's timestamp and tp->elems[i].offset its
 * offset; or ts[i] = KM_GATE_NO_RECORD, err 0 and the offset the end,
 * when the partition ended with no record at or after the offset (only
 * transaction markers there); or ts[i] = -1 and tp->elems[i].err what the
 * fetch answered (RD_KAFKA_RESP_ERR__TIMED_OUT when nothing came).
 * @returns an error only when the consumer could not be made.
 */
#define KM_GATE_NO_RECORD (-2)
km_err_t km_gate_first_records(const km_kafka_endpoint_t *ep, rd_kafka_topic_partition_list_t *tp,
			       int timeout_ms, int64_t *ts, char *errstr, size_t errstr_size);

#endif
