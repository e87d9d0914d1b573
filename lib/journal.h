/*
 * journal.h -- the migration's evidence journal (SQLite).
 *
 * The journal is the append-mostly record of everything kmigrate learned and
 * decided: facts with their timestamps, inventory snapshots, and the run log
 * of each command.  Every verdict must be reproducible from it, so rows are
 * never updated in place; a newer fact supersedes an older one by time.
 * Secrets never enter it: callers pass JSON bodies built from plan fields
 * that carry no passwords (passwords are read at use time, never stored).
 *
 * The file is created with mode 0600 in WAL mode; its schema is versioned
 * through PRAGMA user_version and migrated forward on open.  This module does
 * not decide what a fact means: phase modules do.
 *
 * @locality one thread per handle.
 */
#ifndef KM_JOURNAL_H
#define KM_JOURNAL_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"

typedef struct km_journal_s km_journal_t;

#define KM_JOURNAL_SCHEMA_VERSION 1

/* Checks, without creating or touching anything, that a journal could be
 * opened at path: the folder exists and is writable, or the file exists and
 * is a journal.  Commands call it before they do any cluster work so that bad
 * input fails early and leaves no trace. */
km_err_t km_journal_check_path(const char *path, char *errstr,
			       size_t errstr_size);

/* Opens (creating when create is set) the journal at path.
 * @returns a handle in *jrp; destroy with km_journal_close(). */
km_err_t km_journal_open(const char *path, int create, km_journal_t **jrp,
			 char *errstr, size_t errstr_size);
void km_journal_close(km_journal_t *jr);
const char *km_journal_path(const km_journal_t *jr);

/* Groups writes so that a command's facts land together or not at all. */
km_err_t km_journal_begin(km_journal_t *jr, char *errstr, size_t errstr_size);
km_err_t km_journal_commit(km_journal_t *jr, char *errstr, size_t errstr_size);
void km_journal_rollback(km_journal_t *jr);

/* Records that a command ran: @returns its run id in *run_idp. */
km_err_t km_journal_run_begin(km_journal_t *jr, const char *command,
			      const char *args, int64_t *run_idp,
			      char *errstr, size_t errstr_size);
km_err_t km_journal_run_end(km_journal_t *jr, int64_t run_id, int exit_code,
			    const char *summary, char *errstr,
			    size_t errstr_size);

/* Records one fact: what `command` learned about `subject` (e.g.
 * "topic:orders"), of a kind (e.g. "inventory.risk"), with a verdict (GO,
 * NO-GO, INFO, FINDING; may be NULL) and a JSON body (borrowed). */
km_err_t km_journal_fact(km_journal_t *jr, int64_t run_id, const char *kind,
			 const char *subject, const char *verdict,
			 const json_t *body, char *errstr, size_t errstr_size);

/* Stores a snapshot (e.g. kind "inventory", scope "source").
 * @returns its id in *idp (may be NULL). */
km_err_t km_journal_snapshot_put(km_journal_t *jr, int64_t run_id,
				 const char *kind, const char *scope,
				 const json_t *body, int64_t *idp,
				 char *errstr, size_t errstr_size);

/* Loads the n-th latest snapshot of a kind and scope (n = 0: latest).
 * @returns KM_ERR_NOT_FOUND when there is none; on success *bodyp is a new
 * reference (json_decref it) and *ts_msp its time. */
km_err_t km_journal_snapshot_get(km_journal_t *jr, const char *kind,
				 const char *scope, int n, json_t **bodyp,
				 int64_t *ts_msp, char *errstr,
				 size_t errstr_size);

/* The latest run of command (the highest id), or NULL in *runp when there
 * is none.  ended_only: skip runs that have not ended (still running, or
 * killed).  with_kind: only runs that recorded at least one fact of that
 * kind (NULL: any).  *runp is a new object {"id", "command", "args",
 * "started_ms", "ended_ms" (null while running), "exit_code", "summary"}. */
km_err_t km_journal_last_run(km_journal_t *jr, const char *command, int ended_only,
			     const char *with_kind, json_t **runp, char *errstr,
			     size_t errstr_size);

/* The facts of one run (run_id > 0) or of every run (run_id 0), of kind
 * (NULL: every kind), oldest first.  *factsp is a new array of {"id",
 * "run_id", "ts_ms", "kind", "subject", "verdict", "body"} with body
 * parsed (a body that is not JSON is an error: the journal is damaged). */
km_err_t km_journal_facts(km_journal_t *jr, int64_t run_id, const char *kind, json_t **factsp,
			  char *errstr, size_t errstr_size);

/* Every run, oldest first: *runsp is a new array of the objects
 * km_journal_last_run() returns (the report's run log). */
km_err_t km_journal_runs(km_journal_t *jr, json_t **runsp, char *errstr, size_t errstr_size);

/* Summarises what the journal knows: schema version, runs, the latest fact
 * per kind and subject, snapshots.  @returns a new JSON object in *outp. */
km_err_t km_journal_summary(km_journal_t *jr, json_t **outp, char *errstr,
			    size_t errstr_size);

#endif
