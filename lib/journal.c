#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

struct km_journal_s {
	sqlite3 *db;
	char *path;
};

/* Schema migrations, applied in order: entry i takes user_version i to i+1.
 * Never edit a shipped entry; append a new one. */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE runs ("
	"  id INTEGER PRIMARY KEY,"
	"  command TEXT NOT NULL,"
	"  args TEXT,"
	"  started_ms INTEGER NOT NULL,"
	"  ended_ms INTEGER,"
	"  exit_code INTEGER,"
	"  summary TEXT);"
	"CREATE TABLE facts ("
	"  id INTEGER PRIMARY KEY,"
	"  run_id INTEGER REFERENCES runs(id),"
	"  ts_ms INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  subject TEXT NOT NULL,"
	"  verdict TEXT,"
	"  body TEXT NOT NULL);"
	"CREATE INDEX facts_kind_subject ON facts(kind, subject, ts_ms);"
	"CREATE TABLE snapshots ("
	"  id INTEGER PRIMARY KEY,"
	"  run_id INTEGER REFERENCES runs(id),"
	"  ts_ms INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  scope TEXT NOT NULL,"
	"  body TEXT NOT NULL);"
	"CREATE INDEX snapshots_kind_scope ON snapshots(kind, scope, id);",
};
#define NMIGRATIONS (int)(sizeof(migrations) / sizeof(migrations[0]))

static km_err_t dberr(km_journal_t *jr, char *errstr, size_t errstr_size,
		      const char *what)
{
	return km_seterr(errstr, errstr_size, KM_ERR_JOURNAL,
			 "journal '%s': %s: %s", jr->path, what,
			 sqlite3_errmsg(jr->db));
}

static km_err_t exec(km_journal_t *jr, const char *sql, char *errstr,
		     size_t errstr_size)
{
	char *msg = NULL;

	if (sqlite3_exec(jr->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		km_seterr(errstr, errstr_size, KM_ERR_JOURNAL,
			  "journal '%s': %s", jr->path, msg ? msg : "?");
		sqlite3_free(msg);
		return KM_ERR_JOURNAL;
	}
	return KM_ERR_OK;
}

km_err_t km_journal_check_path(const char *path, char *errstr,
			       size_t errstr_size)
{
	struct stat st;
	char *copy, *dir;
	km_err_t err = KM_ERR_OK;

	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode))
			return km_seterr(errstr, errstr_size, KM_ERR_IO,
					 "journal '%s' is not a regular file "
					 "(set journal: in the plan to a file path)",
					 path);
		if (access(path, R_OK | W_OK) != 0)
			return km_seterr(errstr, errstr_size, KM_ERR_IO,
					 "journal '%s' is not writable: %s",
					 path, strerror(errno));
		return KM_ERR_OK;
	}
	copy = km_strdup(path);
	dir = dirname(copy);
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		err = km_seterr(errstr, errstr_size, KM_ERR_IO,
				"journal folder '%s' does not exist "
				"(create it, or set journal: in the plan)",
				dir);
	else if (access(dir, W_OK | X_OK) != 0)
		err = km_seterr(errstr, errstr_size, KM_ERR_IO,
				"journal folder '%s' is not writable: %s", dir,
				strerror(errno));
	free(copy);
	return err;
}

static km_err_t migrate(km_journal_t *jr, char *errstr, size_t errstr_size)
{
	sqlite3_stmt *st = NULL;
	int version = 0;
	km_err_t err;

	if (sqlite3_prepare_v2(jr->db, "PRAGMA user_version", -1, &st, NULL) !=
	    SQLITE_OK)
		return dberr(jr, errstr, errstr_size, "reading schema version");
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);

	if (version > NMIGRATIONS)
		return km_seterr(errstr, errstr_size, KM_ERR_JOURNAL,
				 "journal '%s' has schema version %d, newer than "
				 "this kmigrate knows (%d): upgrade kmigrate",
				 jr->path, version, NMIGRATIONS);
	for (; version < NMIGRATIONS; version++) {
		char pragma[64];

		if ((err = exec(jr, "BEGIN IMMEDIATE", errstr, errstr_size)))
			return err;
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version=%d",
			 version + 1);
		if ((err = exec(jr, migrations[version], errstr, errstr_size)) ||
		    (err = exec(jr, pragma, errstr, errstr_size))) {
			sqlite3_exec(jr->db, "ROLLBACK", NULL, NULL, NULL);
			return err;
		}
		if ((err = exec(jr, "COMMIT", errstr, errstr_size)))
			return err;
	}
	return KM_ERR_OK;
}

km_err_t km_journal_open(const char *path, int create, km_journal_t **jrp,
			 char *errstr, size_t errstr_size)
{
	km_journal_t *jr;
	km_err_t err;
	int fd;

	*jrp = NULL;
	if ((err = km_journal_check_path(path, errstr, errstr_size)))
		return err;
	if (access(path, F_OK) != 0) {
		if (!create)
			return km_seterr(errstr, errstr_size, KM_ERR_NOT_FOUND,
					 "journal '%s' does not exist yet "
					 "(run `kmigrate inventory` first)",
					 path);
		/* Create it ourselves so that the mode is 0600 from the first
		 * byte; SQLite gives the -wal and -shm files the same mode. */
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
		if (fd < 0 && errno != EEXIST)
			return km_seterr(errstr, errstr_size, KM_ERR_IO,
					 "cannot create journal '%s': %s", path,
					 strerror(errno));
		if (fd >= 0)
			close(fd);
	}

	jr = km_calloc(1, sizeof(*jr));
	jr->path = km_strdup(path);
	if (sqlite3_open_v2(path, &jr->db, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		err = dberr(jr, errstr, errstr_size, "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(jr->db, 10000);
	if ((err = exec(jr, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;",
			errstr, errstr_size)))
		goto fail;
	if ((err = migrate(jr, errstr, errstr_size)))
		goto fail;
	*jrp = jr;
	return KM_ERR_OK;
fail:
	km_journal_close(jr);
	return err;
}

void km_journal_close(km_journal_t *jr)
{
	if (!jr)
		return;
	sqlite3_close(jr->db);
	free(jr->path);
	free(jr);
}

const char *km_journal_path(const km_journal_t *jr)
{
	return jr->path;
}

km_err_t km_journal_begin(km_journal_t *jr, char *errstr, size_t errstr_size)
{
	return exec(jr, "BEGIN IMMEDIATE", errstr, errstr_size);
}

km_err_t km_journal_commit(km_journal_t *jr, char *errstr, size_t errstr_size)
{
	return exec(jr, "COMMIT", errstr, errstr_size);
}

void km_journal_rollback(km_journal_t *jr)
{
	sqlite3_exec(jr->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Prepares sql, binds the given values (NULL text binds NULL), steps once. */
typedef struct {
	char type; /* 't' text, 'i' int64 */
	const char *s;
	int64_t i;
} bindv_t;

static km_err_t run1(km_journal_t *jr, const char *sql, const bindv_t *v,
		     int nv, char *errstr, size_t errstr_size)
{
	sqlite3_stmt *st = NULL;
	int i, rc;

	if (sqlite3_prepare_v2(jr->db, sql, -1, &st, NULL) != SQLITE_OK)
		return dberr(jr, errstr, errstr_size, "prepare");
	for (i = 0; i < nv; i++) {
		if (v[i].type == 'i')
			sqlite3_bind_int64(st, i + 1, v[i].i);
		else if (v[i].s)
			sqlite3_bind_text(st, i + 1, v[i].s, -1,
					  SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(st, i + 1);
	}
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return dberr(jr, errstr, errstr_size, "write");
	return KM_ERR_OK;
}

km_err_t km_journal_run_begin(km_journal_t *jr, const char *command,
			      const char *args, int64_t *run_idp,
			      char *errstr, size_t errstr_size)
{
	bindv_t v[] = {{'t', command, 0}, {'t', args, 0}, {'i', NULL, km_now_ms()}};
	km_err_t err = run1(jr,
			    "INSERT INTO runs(command, args, started_ms) "
			    "VALUES (?, ?, ?)",
			    v, 3, errstr, errstr_size);
	if (!err)
		*run_idp = sqlite3_last_insert_rowid(jr->db);
	return err;
}

km_err_t km_journal_run_end(km_journal_t *jr, int64_t run_id, int exit_code,
			    const char *summary, char *errstr,
			    size_t errstr_size)
{
	bindv_t v[] = {{'i', NULL, km_now_ms()}, {'i', NULL, exit_code},
		       {'t', summary, 0}, {'i', NULL, run_id}};
	return run1(jr,
		    "UPDATE runs SET ended_ms=?, exit_code=?, summary=? "
		    "WHERE id=?",
		    v, 4, errstr, errstr_size);
}

km_err_t km_journal_fact(km_journal_t *jr, int64_t run_id, const char *kind,
			 const char *subject, const char *verdict,
			 const json_t *body, char *errstr, size_t errstr_size)
{
	char *js = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS)
			: km_strdup("{}");
	bindv_t v[] = {{'i', NULL, run_id},   {'i', NULL, km_now_ms()},
		       {'t', kind, 0},        {'t', subject, 0},
		       {'t', verdict, 0},     {'t', js, 0}};
	km_err_t err = run1(jr,
			    "INSERT INTO facts(run_id, ts_ms, kind, subject, "
			    "verdict, body) VALUES (?, ?, ?, ?, ?, ?)",
			    v, 6, errstr, errstr_size);
	free(js);
	return err;
}

km_err_t km_journal_snapshot_put(km_journal_t *jr, int64_t run_id,
				 const char *kind, const char *scope,
				 const json_t *body, int64_t *idp,
				 char *errstr, size_t errstr_size)
{
	char *js = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	bindv_t v[] = {{'i', NULL, run_id}, {'i', NULL, km_now_ms()},
		       {'t', kind, 0},      {'t', scope, 0},
		       {'t', js, 0}};
	km_err_t err = run1(jr,
			    "INSERT INTO snapshots(run_id, ts_ms, kind, scope, "
			    "body) VALUES (?, ?, ?, ?, ?)",
			    v, 5, errstr, errstr_size);
	free(js);
	if (!err && idp)
		*idp = sqlite3_last_insert_rowid(jr->db);
	return err;
}

km_err_t km_journal_snapshot_get(km_journal_t *jr, const char *kind,
				 const char *scope, int n, json_t **bodyp,
				 int64_t *ts_msp, char *errstr,
				 size_t errstr_size)
{
	sqlite3_stmt *st = NULL;
	km_err_t err = KM_ERR_OK;
	json_error_t jerr;
	int rc;

	*bodyp = NULL;
	if (sqlite3_prepare_v2(jr->db,
			       "SELECT body, ts_ms FROM snapshots WHERE kind=? "
			       "AND scope=? ORDER BY id DESC LIMIT 1 OFFSET ?",
			       -1, &st, NULL) != SQLITE_OK)
		return dberr(jr, errstr, errstr_size, "prepare");
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, scope, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 3, n);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*bodyp = json_loads((const char *)sqlite3_column_text(st, 0), 0,
				    &jerr);
		if (ts_msp)
			*ts_msp = sqlite3_column_int64(st, 1);
		if (!*bodyp)
			err = km_seterr(errstr, errstr_size, KM_ERR_JOURNAL,
					"journal '%s': snapshot is not valid "
					"JSON: %s",
					jr->path, jerr.text);
	} else if (rc == SQLITE_DONE) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOT_FOUND,
				"journal '%s' has no %s snapshot of the %s",
				jr->path, kind, scope);
	} else {
		err = dberr(jr, errstr, errstr_size, "read");
	}
	sqlite3_finalize(st);
	return err;
}

static json_t *col_json(sqlite3_stmt *st, int i)
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(st, i));
	case SQLITE_NULL: return json_null();
	default: return json_string((const char *)sqlite3_column_text(st, i));
	}
}

/* Runs a query and returns its rows as an array of objects. */
static km_err_t rows(km_journal_t *jr, const char *sql, json_t **outp,
		     char *errstr, size_t errstr_size)
{
	sqlite3_stmt *st = NULL;
	json_t *arr = json_array();
	int rc, i;

	if (sqlite3_prepare_v2(jr->db, sql, -1, &st, NULL) != SQLITE_OK) {
		json_decref(arr);
		return dberr(jr, errstr, errstr_size, "prepare");
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *row = json_object();
		for (i = 0; i < sqlite3_column_count(st); i++)
			json_object_set_new(row, sqlite3_column_name(st, i),
					    col_json(st, i));
		json_array_append_new(arr, row);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return dberr(jr, errstr, errstr_size, "read");
	}
	*outp = arr;
	return KM_ERR_OK;
}

km_err_t km_journal_last_run(km_journal_t *jr, const char *command, int ended_only,
			     const char *with_kind, json_t **runp, char *errstr,
			     size_t errstr_size)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*runp = NULL;
	if (sqlite3_prepare_v2(jr->db,
			       "SELECT id, command, args, started_ms, ended_ms, exit_code, summary "
			       "FROM runs r WHERE command=?1 AND (?2 = 0 OR ended_ms IS NOT NULL) "
			       "AND (?3 IS NULL OR EXISTS (SELECT 1 FROM facts f WHERE "
			       "f.run_id=r.id AND f.kind=?3)) ORDER BY id DESC LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return dberr(jr, errstr, errstr_size, "prepare");
	sqlite3_bind_text(st, 1, command, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 2, ended_only ? 1 : 0);
	if (with_kind)
		sqlite3_bind_text(st, 3, with_kind, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, 3);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*runp = json_object();
		for (int i = 0; i < sqlite3_column_count(st); i++)
			json_object_set_new(*runp, sqlite3_column_name(st, i), col_json(st, i));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return dberr(jr, errstr, errstr_size, "read");
	return KM_ERR_OK;
}

km_err_t km_journal_facts(km_journal_t *jr, int64_t run_id, const char *kind, json_t **factsp,
			  char *errstr, size_t errstr_size)
{
	sqlite3_stmt *st = NULL;
	json_t *arr = json_array();
	json_error_t jerr;
	km_err_t err = KM_ERR_OK;
	int rc;

	*factsp = NULL;
	if (sqlite3_prepare_v2(jr->db,
			       "SELECT id, run_id, ts_ms, kind, subject, verdict, body FROM facts "
			       "WHERE (?1 = 0 OR run_id = ?1) AND (?2 IS NULL OR kind = ?2) "
			       "ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK) {
		json_decref(arr);
		return dberr(jr, errstr, errstr_size, "prepare");
	}
	sqlite3_bind_int64(st, 1, run_id);
	if (kind)
		sqlite3_bind_text(st, 2, kind, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, 2);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *row = json_object(), *body;
		for (int i = 0; i < 6; i++)
			json_object_set_new(row, sqlite3_column_name(st, i), col_json(st, i));
		body = json_loads((const char *)sqlite3_column_text(st, 6), 0, &jerr);
		if (!body) {
			err = km_seterr(errstr, errstr_size, KM_ERR_JOURNAL,
					"journal '%s': fact %lld is not valid JSON: %s", jr->path,
					(long long)sqlite3_column_int64(st, 0), jerr.text);
			json_decref(row);
			break;
		}
		json_object_set_new(row, "body", body);
		json_array_append_new(arr, row);
	}
	sqlite3_finalize(st);
	if (!err && rc != SQLITE_DONE)
		err = dberr(jr, errstr, errstr_size, "read");
	if (err)
		json_decref(arr);
	else
		*factsp = arr;
	return err;
}

km_err_t km_journal_runs(km_journal_t *jr, json_t **runsp, char *errstr, size_t errstr_size)
{
	*runsp = NULL;
	return rows(jr,
		    "SELECT id, command, args, started_ms, ended_ms, exit_code, summary "
		    "FROM runs ORDER BY id",
		    runsp, errstr, errstr_size);
}

km_err_t km_journal_summary(km_journal_t *jr, json_t **outp, char *errstr,
			    size_t errstr_size)
{
	json_t *out = json_object(), *r;
	km_err_t err;

	json_object_set_new(out, "journal", json_string(jr->path));
	json_object_set_new(out, "schema_version",
			    json_integer(KM_JOURNAL_SCHEMA_VERSION));
	if ((err = rows(jr,
			"SELECT command, count(*) AS runs, max(started_ms) AS "
			"last_ms, (SELECT exit_code FROM runs r2 WHERE "
			"r2.command=r.command ORDER BY id DESC LIMIT 1) AS "
			"last_exit FROM runs r GROUP BY command ORDER BY last_ms",
			&r, errstr, errstr_size)))
		goto fail;
	json_object_set_new(out, "commands", r);
	if ((err = rows(jr,
			"SELECT kind, scope, count(*) AS count, max(ts_ms) AS "
			"last_ms FROM snapshots GROUP BY kind, scope",
			&r, errstr, errstr_size)))
		goto fail;
	json_object_set_new(out, "snapshots", r);
	/* The latest verdict per (kind, subject), then counted per kind. */
	if ((err = rows(jr,
			"WITH latest AS (SELECT kind, subject, verdict FROM facts "
			"f WHERE id = (SELECT max(id) FROM facts g WHERE "
			"g.kind=f.kind AND g.subject=f.subject)) "
			"SELECT kind, coalesce(verdict,'') AS verdict, count(*) "
			"AS subjects FROM latest GROUP BY kind, verdict "
			"ORDER BY kind, verdict",
			&r, errstr, errstr_size)))
		goto fail;
	json_object_set_new(out, "facts", r);
	/* Open findings: those of the latest run that produced facts of
	 * each kind, so that a finding fixed since is no longer open. */
	if ((err = rows(jr,
			"SELECT kind, subject, verdict, ts_ms FROM facts f WHERE "
			"verdict IN ('NO-GO','FINDING') AND run_id = (SELECT "
			"max(run_id) FROM facts g WHERE g.kind=f.kind) "
			"ORDER BY kind, subject",
			&r, errstr, errstr_size)))
		goto fail;
	json_object_set_new(out, "open_findings", r);
	*outp = out;
	return KM_ERR_OK;
fail:
	json_decref(out);
	return err;
}
