/*
 * tk.h -- test kit: what integration tests and the demo need to build a
 * realistic estate on a real cluster and to observe it independently of
 * kmigrate's own engine (it talks to librdkafka directly).
 *
 * Every function aborts the test (tk_fail) on error: tests read as a list of
 * facts they create, then facts they assert.
 */
#ifndef KM_TK_H
#define KM_TK_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* A cluster a test talks to: bootstrap plus optional security settings
 * (key, value, ... NULL-terminated) taken from the environment the cluster
 * script exports. */
typedef struct tk_cluster_s {
	const char *bootstrap;
	const char *props[16];
} tk_cluster_t;

_Noreturn void tk_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define TK_ASSERT(cond, ...) do { if (!(cond)) tk_fail(__VA_ARGS__); } while (0)

/* Reads bootstrap from env var `var` (e.g. KM_TEST_SOURCE); fails the test
 * with a clear message when unset. */
void tk_cluster_from_env(tk_cluster_t *c, const char *var);

/* A new client configuration with the cluster's bootstrap and security
 * settings, for a client a test builds itself; tk_conf_set() sets one more
 * property (fails the test on a bad one). */
rd_kafka_conf_t *tk_conf(const tk_cluster_t *c);
void tk_conf_set(rd_kafka_conf_t *cf, const char *name, const char *value);

rd_kafka_t *tk_producer(const tk_cluster_t *c, const char *txn_id);
rd_kafka_t *tk_admin(const tk_cluster_t *c);

/* Creates a topic (configs: key, value, ... NULL) and waits until its
 * metadata shows every partition with a leader. */
void tk_create_topic(const tk_cluster_t *c, const char *topic, int partitions,
		     const char **configs);
void tk_delete_topic(const tk_cluster_t *c, const char *topic);

typedef struct tk_msg_s {
	const char *key;   /* NULL = null key */
	const char *value; /* NULL = tombstone */
	size_t value_len;  /* 0 = strlen(value) */
	int partition;     /* -1 = partitioner */
	int64_t timestamp; /* 0 = now */
	const char **headers; /* name, value, ..., NULL */
} tk_msg_t;

/* Produces and flushes; with a transactional producer the caller begins and
 * commits/aborts. */
void tk_produce(rd_kafka_t *rk, const char *topic, const tk_msg_t *m);
void tk_flush(rd_kafka_t *rk);

/* Creates an ACL binding. */
void tk_acl(const tk_cluster_t *c, rd_kafka_ResourceType_t rt, const char *name,
	    rd_kafka_ResourcePatternType_t pt, const char *principal,
	    const char *host, rd_kafka_AclOperation_t op,
	    rd_kafka_AclPermissionType_t perm);

/* Commits offset for group on topic[partition] (AlterConsumerGroupOffsets:
 * the group must be empty). */
void tk_commit(const tk_cluster_t *c, const char *group, const char *topic,
	       int partition, int64_t offset);

/* Starts a consumer-group member in a child process that subscribes to
 * topic with client.id and stays until tk_member_stop(); returns once the
 * member has an assignment.  The child dies with the parent (PDEATHSIG). */
pid_t tk_member_start(const tk_cluster_t *c, const char *group,
		      const char *topic, const char *client_id);
void tk_member_stop(pid_t pid);
/* The same member, consuming and committing what it read (auto commit
 * every 500 ms): an application that consumes on the cluster. */
pid_t tk_member_start_committing(const tk_cluster_t *c, const char *group, const char *topic,
				 const char *client_id);

/* DescribeConfigs of a topic: @returns a new JSON object name -> value
 * (null for unset/sensitive). */
json_t *tk_topic_configs(const tk_cluster_t *c, const char *topic);

/* DescribeAcls of everything: @returns a new JSON array of objects with
 * resource_type (Kafka's names: CLUSTER, not BROKER), pattern_type, name,
 * principal, host, operation, permission. */
json_t *tk_acls(const tk_cluster_t *c);

/* Partition count of a topic, -1 when it does not exist. */
int tk_partitions(const tk_cluster_t *c, const char *topic);

/* Starts a command in the background with stdout and stderr appended to
 * logpath; the child dies with the test (PDEATHSIG). */
pid_t tk_spawn(const char *const argv[], const char *logpath);
/* Waits for pid to exit within timeout_ms; kills it with SIGKILL on
 * timeout.  @returns the exit status, 128+signal, or -1 on timeout. */
int tk_wait_exit(pid_t pid, int timeout_ms);
/* The same, and the process's peak resident set in KiB (from wait4). */
int tk_wait_exit_rss(pid_t pid, int timeout_ms, long *maxrss_kb);

/* Sum of a topic's high watermarks (all partitions). */
int64_t tk_total_hwm(const tk_cluster_t *c, const char *topic);
/* Waits until topic's end offsets sum to want; fails past TK_TIMEOUT_MS. */
void tk_wait_total_hwm(const tk_cluster_t *c, const char *topic, int64_t want);

/* Per-record digests of one partition, read from the beginning to the end
 * with read_committed (or read_uncommitted): FNV-1a 64 over key and value
 * null-ness and bytes, headers in order, and the timestamp.  Offsets are
 * returned alongside. */
typedef struct tk_digests_s {
	uint64_t *d;
	int64_t *off;
	size_t n, cap;
} tk_digests_t;
void tk_digest_partition(const tk_cluster_t *c, const char *topic, int partition,
			 bool committed, tk_digests_t *out);
void tk_digests_free(tk_digests_t *d);
/* The values of topic[partition] on c, read_committed from the beginning
 * to its end, in order: a new JSON array of strings (null for none). */
json_t *tk_values(const tk_cluster_t *c, const char *topic, int partition);

/* DeleteRecords before `before` on topic[partition]: moves the log start
 * offset exactly as retention would. */
void tk_delete_records(const tk_cluster_t *c, const char *topic, int partition, int64_t before);

/* Reads a topic as a member of `group` would: subscribes, starts at the
 * group's committed offsets (auto.offset.reset=error: no committed offset
 * fails the test), read_committed, until the end of every partition;
 * digests per partition into out[0..partitions-1].  Commits nothing. */
void tk_group_read(const tk_cluster_t *c, const char *group, const char *topic, int partitions,
		   tk_digests_t *out);

/* Committed offset of group on topic[partition], -1 when none. */
int64_t tk_committed(const tk_cluster_t *c, const char *group, const char *topic, int partition);

/* Sets one topic config (IncrementalAlterConfigs SET); value NULL deletes
 * the topic's override (DELETE: the broker's value again). */
void tk_set_topic_config(const tk_cluster_t *c, const char *topic, const char *name,
			 const char *value);

/* Runs a command, captures stdout (owned, NUL-terminated) and returns the
 * exit status (or -1 when it did not exit). */
int tk_run(char **out, char **err, const char *const argv[]);

/* Parses JSON text; fails the test on bad JSON. */
json_t *tk_json(const char *text);

/* A fresh private directory under $TMPDIR for a test (owned path); removed
 * with everything in it when the process exits with status 0 (every case
 * passed), kept otherwise. */
char *tk_tmpdir(const char *name);
/* Reads a whole file (owned, NUL-terminated); *len, if len is given, gets
 * its size.
 * @returns NULL when it cannot be opened. */
char *tk_read_file(const char *path, size_t *len);
/* Writes text into dir/name; returns the owned path. */
char *tk_write_file(const char *dir, const char *name, const char *text);

/* The kmigrate binary under test (KMIGRATE env var, set by CMake). */
const char *tk_kmigrate(void);

/* ---- running kmigrate on a plan ------------------------------------------ */

/* Writes a plan for migration `migration` from src to tgt into a fresh
 * directory named after dirname: topics.include is the YAML flow list body
 * `include` (e.g. "\"^a$\", \"^b$\""), extra is appended as top-level YAML
 * (may be NULL).  @returns the owned path of migration.yaml. */
char *tk_plan(const tk_cluster_t *src, const tk_cluster_t *tgt, const char *dirname,
	      const char *migration, const char *include, const char *extra);

/* Runs `kmigrate cmd -p plan [a1 [a2]]` and fails the test unless it exits
 * want_rc.  *errp, when errp is given, receives its stderr (owned). */
void tk_km(const char *plan, const char *cmd, const char *a1, const char *a2, int want_rc,
	   char **errp);

/* Runs `kmigrate replicate -p plan --until-caught-up [a1 a2 ...]` (NULL
 * ends the list), logging to plan.log, and fails the test with the log's
 * tail unless it exits 0 within timeout_ms.  @returns its peak RSS, KiB. */
long tk_catch_up(const char *plan, int timeout_ms, ...);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t tk_mono_ms(void);

/* DescribeConfigs of a topic with where each value comes from: @returns a
 * new JSON object name -> {value (null when unset/sensitive), source (the
 * engine's names: "topic", "default", ...)}. */
json_t *tk_topic_config_sources(const tk_cluster_t *c, const char *topic);

/* A producer that writes continuously on its own thread (one record about
 * every 20 ms, value "w-<seq>") until tk_writer_stop(): the application
 * whose writes a fence must stop.  props (key, value, ..., NULL; may be
 * NULL) are set on top of enable.idempotence=true, acks=all. */
typedef struct tk_writer_s tk_writer_t;
typedef struct tk_writer_stats_s {
	int64_t sent, acked, failed; /* delivery reports so far */
	int64_t last_ack_offset;     /* -1 before the first ack */
	rd_kafka_resp_err_t last_err; /* of the last failed delivery */
	rd_kafka_resp_err_t fatal;    /* rd_kafka_fatal_error(), 0 if none */
} tk_writer_stats_t;
tk_writer_t *tk_writer_start(const tk_cluster_t *c, const char *topic, const char **props);
void tk_writer_stats(tk_writer_t *w, tk_writer_stats_t *st);
/* Waits up to timeout_ms until at least `acked` acks and `failed` failures
 * (totals) were reported; @returns true when they were. */
bool tk_writer_wait(tk_writer_t *w, int64_t acked, int64_t failed, int timeout_ms);
void tk_writer_stop(tk_writer_t *w);
/* Re-points the writer at cluster c (the same topic name), as an
 * application's bootstrap change would: the old producer's in-flight
 * records end (acknowledged or failed), a new idempotent producer goes on
 * with the next record number. */
void tk_writer_repoint(tk_writer_t *w, const tk_cluster_t *c);
/* Stops the writer's sending (its records in flight end first; call
 * tk_writer_stop() after), then an independent reader of topic on c
 * (read_committed, every partition) asserts: every record the writer was told was acknowledged (on any
 * cluster it wrote to) is there exactly once, no record of the writer is
 * there twice, and each partition holds them in send order. */
void tk_writer_assert_acked_once(tk_writer_t *w, const tk_cluster_t *c, const char *topic);
/* Asserts that a fence holds against the live writer w: within timeout_ms
 * it reports at least 10 more failures, the last one `want`, while no
 * more record is acknowledged and topic's high watermarks on c stay. */
void tk_writer_assert_fenced(tk_writer_t *w, const tk_cluster_t *c, const char *topic,
			     rd_kafka_resp_err_t want, int timeout_ms);

/* Deletes the ACL bindings that match exactly (DeleteAcls). */
void tk_acl_delete(const tk_cluster_t *c, rd_kafka_ResourceType_t rt, const char *name,
		   rd_kafka_ResourcePatternType_t pt, const char *principal, const char *host,
		   rd_kafka_AclOperation_t op, rd_kafka_AclPermissionType_t perm);

/* Creates (or resets) a SCRAM-SHA-512 user on c (AlterUserScramCredentials). */
void tk_scram_user(const tk_cluster_t *c, const char *user, const char *password);

/* *out = c logging in as user/password (SASL clusters); the strings are
 * borrowed. */
void tk_cluster_as(tk_cluster_t *out, const tk_cluster_t *c, const char *user,
		   const char *password);

/* Every ACL binding of c, one sorted JSON line each (DescribeAcls promises
 * no order), for comparing ACL sets: an owned string. */
char *tk_acl_lines(const tk_cluster_t *c);

/* Produces one record (key = value = text) to topic[0] on c and waits for
 * its acknowledgement. */
void tk_produce_one(const tk_cluster_t *c, const char *topic, const char *text);

/* Runs kmigrate with the arguments (NULL ends them) and logs its exit and
 * stderr; @returns the exit status.  *outp / *errp receive stdout / stderr
 * (owned) when given. */
int tk_kmv(char **outp, char **errp, ...);

void tk_sleep_ms(int ms);

/* Every command a migration runs before its cutover, on a plan with a
 * source without authorizer (inventory exits 1: that finding): inventory,
 * plan, apply, check, replicate --until-caught-up, validate, offsets. */
void tk_ready_for_cutover(const char *plan);

/* Runs argv (argv[0] = tk_kmigrate(), with --json) with env=val set
 * during the run when both are given (a test hook such as
 * KM_CUTOVER_CRASH_AFTER), prints the command and its exit on stderr, and
 * @returns its exit status; *evsp (if given) gets its JSON lines as an
 * array (owned). */
int tk_km_events(json_t **evsp, const char *env, const char *val, const char *const argv[]);
/* The last state other than "start" that a step event of evs reported
 * for step ({"event": "step", "step", "state"}), or NULL. */
const char *tk_event_state(const json_t *evs, const char *step);
/* How many facts of kind the journal at path holds whose subject starts
 * with prefix. */
int tk_journal_count(const char *journal, const char *kind, const char *prefix);
/* The body of the first fact of kind whose subject is subject (a new
 * reference), or NULL. */
json_t *tk_journal_body(const char *journal, const char *kind, const char *subject);

#endif
