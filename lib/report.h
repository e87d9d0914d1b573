/*
 * report.h -- the migration's evidence as one file an auditor reads top to
 * bottom, and the one-screen summary `status` prints, both from the journal
 * alone.
 *
 * km_report_html() turns a journal into one self-contained HTML page: the
 * plan and its owners, the inventory with risk classes, the design diff and
 * what apply changed, every gate verdict with its criteria and evidence,
 * replication throughput and lag over time (inline SVG drawn here from the
 * journaled progress samples), validation with the first mismatches, the
 * offset translation table with its proofs, the cutover and rollback steps
 * with their times, the open findings, and every fact of a kind this module
 * does not know (shown generically, so that a new command's facts appear
 * without a change here).  Nothing in the page is fetched: no script, no
 * external URL; a Content-Security-Policy forbids any load besides the
 * page's own inline style.  Every value from the journal is HTML-escaped
 * (topic names, owners and configs are user data).
 *
 * What this module does not do: it never contacts a cluster, never writes
 * the journal (it reads facts, runs and snapshots), never prints and never
 * writes a file (the command does).  A journal written by an older kmigrate
 * that lacks a section's facts gets that section saying what is missing and
 * which command journals it: never an empty table that reads as "nothing".
 *
 * docs/internals/report.md lists the sections, their ids and their facts.
 */
#ifndef KM_REPORT_H
#define KM_REPORT_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "journal.h"
#include "plan.h"

/* The fact kind of replicate's progress samples (journaled by the
 * replicate command, downsampled: see KM_REPORT_PROGRESS_EVERY_MS). */
#define KM_REPORT_PROGRESS_KIND "replicate.progress"
/* At most one progress sample per this many ms per run (plus the first and
 * the last): a day of replication is under 3000 facts. */
#define KM_REPORT_PROGRESS_EVERY_MS 30000
/* The snapshot (kind, scope) of the plan's owners and promises, journaled by
 * `kmigrate plan` so that the report needs no plan file. */
#define KM_REPORT_PLAN_SNAPSHOT_KIND "plan"
#define KM_REPORT_PLAN_SNAPSHOT_SCOPE "owners"

/* The plan as the report shows it: migration, clusters with owners (no
 * secret, no username, no password source), scope, topic rules, groups,
 * producers, consumers, connectors, dashboards, alerts, runbooks, waves,
 * fence, gates, rollback triggers.
 * @returns a new object (json_decref it). */
json_t *km_report_plan_json(const km_plan_t *plan);

/*
 * The one-screen summary: where the migration stands, from the journal.
 * @returns KM_ERR_OK and a new object in *outp:
 *   {"phase": {"name", "detail", "at" (ms or null)},
 *    "waves": [{"wave", "steps_done": [...], "last_step" (or null),
 *               "last_step_at" (or null), "authority_journal": "source" |
 *               "target", "rolled_back": bool}],
 *    "last_verdicts": [{"kind", "subject", "verdict", "ts_ms", "fact_id",
 *                       "run_id"}],   latest per gate.* kind and subject
 *    "lag": {"records", "records_per_sec", "caught_up", "partitions",
 *            "ts_ms", "run_id", "fact_id"} or null when no sample,
 *    "open_findings": n}
 */
km_err_t km_report_summary(km_journal_t *jr, json_t **outp, char *errstr, size_t errstr_size);

/*
 * Renders the journal as one HTML page.
 *
 * @param plan_json  the plan (km_report_plan_json) to show when the journal
 *                   holds no plan snapshot (NULL: none; the section says
 *                   so); borrowed.  The journal's snapshot wins.
 * @param now_ms     the generation time printed in the page
 * @returns KM_ERR_OK with *htmlp (owned, free()) and *infop (new object:
 *   {"sections": [ids], "gates": n, "charts": [{"id", "points"}],
 *    "offsets": n, "progress_samples": n, "other_kinds": [...],
 *    "plan_from": "journal" | "plan file" | "none"}); a journal error
 *   otherwise (nothing returned).
 */
km_err_t km_report_html(km_journal_t *jr, const json_t *plan_json, int64_t now_ms, char **htmlp,
			json_t **infop, char *errstr, size_t errstr_size);

#endif
