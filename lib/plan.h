/*
 * plan.h -- the migration plan: migration.yaml loaded into a typed, validated,
 * read-only model.
 *
 * The plan says everything that was decided before the migration window: the
 * two clusters and how to reach them, which topics are in scope and what
 * their owners promise about ordering, duplicates and replay, how names map
 * from source to target, the consumer groups and their restart policy, the
 * items discovery cannot see (producers, consumers, connectors, dashboards,
 * alerts, runbooks) each with an owner and a validation method, the gate
 * thresholds and the rollback triggers.  docs/plan.md is the reference for
 * every key.
 *
 * Loading is all-or-nothing: the first problem found (YAML syntax, an unknown
 * key, a wrong type, a missing or duplicate key, a bad enum value or regex)
 * fails the load with one line "file:line:column: message" in errstr and
 * KM_ERR_PLAN.  A plan that loads is internally consistent; it says nothing
 * yet about the clusters, which this module never contacts.
 *
 * What this module does not do: it never reads secrets at load time (the
 * password is read at use time by km_plan_cluster_password() and never stored
 * in the model), never checks that referenced files exist, never touches the
 * journal, and never prints.
 *
 * Ownership: every `char *` inside a km_plan_t is owned by the plan and lives
 * until km_plan_destroy().  The plan is immutable after load (and after
 * km_plan_set_worker_topics(), which the command layer calls once before
 * sharing it) and may be read from any number of threads at once (regexec() on the compiled patterns is
 * thread-safe).
 */
#ifndef KM_PLAN_H
#define KM_PLAN_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Plan files larger than this are refused by km_plan_load(): a plan is a
 * hand-written document, and everything read from a file has a maximum. */
#define KM_PLAN_MAX_SIZE (4u * 1024u * 1024u)

/* Where a YAML node started in the plan file, both 1-based.  Every
 * structure that comes from a YAML mapping carries one as its first member,
 * so that later phases can point the user at the declaration they act on. */
typedef struct km_plan_pos_s {
	int line;
	int col;
} km_plan_pos_t;

/* A boolean the plan may leave undeclared.  Unknown is not false: a gate that
 * needs the value treats KM_PLAN_UNSET as "not declared", never as a pass. */
typedef enum {
	KM_PLAN_UNSET = -1,
	KM_PLAN_NO = 0,
	KM_PLAN_YES = 1
} km_plan_tri_t;

/* A property passed through verbatim (librdkafka properties, naming.map). */
typedef struct km_plan_kv_s {
	km_plan_pos_t pos; /* of the key */
	char *key;
	char *value;
} km_plan_kv_t;

/* A POSIX extended regular expression, compiled with
 * REG_EXTENDED | REG_NOSUB.  Matching is unanchored (like grep -E): write
 * "^orders$" to match one topic exactly. */
typedef struct km_plan_regex_s {
	km_plan_pos_t pos; /* of the pattern scalar */
	char *pattern;     /* NULL until compiled; then re is valid */
	regex_t re;
} km_plan_regex_t;

/* security.protocol; values in the order of km_plan_secproto_str(). */
typedef enum {
	KM_PLAN_SEC_PLAINTEXT = 0,
	KM_PLAN_SEC_SSL,
	KM_PLAN_SEC_SASL_PLAINTEXT,
	KM_PLAN_SEC_SASL_SSL
} km_plan_secproto_t;

/* One side of the migration (`source:` or `target:`).
 *
 * The secret itself is never here: password_env names an environment
 * variable and password_file a file, and km_plan_cluster_password() reads
 * whichever is set when a client is about to connect.  For a sasl_*
 * protocol exactly one of them is set; for other protocols both are NULL. */
typedef struct km_plan_cluster_s {
	km_plan_pos_t pos;
	const char *role;  /* "source" or "target", static storage */
	char *bootstrap;   /* "host:port[,host:port...]", validated */
	km_plan_secproto_t security_protocol;
	char *sasl_mechanism; /* canonical upper case; NULL unless sasl_* */
	char *username;       /* NULL unless sasl_* */
	char *password_env;   /* variable name, or NULL */
	char *password_file;  /* resolved against the plan directory, or NULL */
	char *ssl_ca;         /* resolved against the plan directory, or NULL */
	km_plan_kv_t *props;  /* librdkafka properties, in file order */
	size_t props_cnt;
	char *connect_url;         /* Kafka Connect REST URL, or NULL */
	char *schema_registry_url; /* or NULL */
	char *owner; /* who runs this cluster; owns its manual items, or NULL */
} km_plan_cluster_t;

typedef enum {
	KM_PLAN_ORDERING_NONE = 0,
	KM_PLAN_ORDERING_KEY,
	KM_PLAN_ORDERING_STRICT
} km_plan_ordering_t;

typedef enum {
	KM_PLAN_DUPLICATES_TOLERATED = 0,
	KM_PLAN_DUPLICATES_NONE
} km_plan_duplicates_t;

typedef enum {
	KM_PLAN_REPLAY_TOLERATED = 0,
	KM_PLAN_REPLAY_FORBIDDEN
} km_plan_replay_t;

/* A per-topic declaration (`topics.rules[]`); the first rule whose regex
 * matches a topic applies to it (km_plan_topic_rule()). */
typedef struct km_plan_rule_s {
	km_plan_pos_t pos;
	km_plan_regex_t match;
	km_plan_ordering_t ordering;     /* default none */
	km_plan_duplicates_t duplicates; /* default tolerated */
	km_plan_replay_t replay;         /* default tolerated */
	char *owner;                     /* or NULL */
} km_plan_rule_t;

typedef struct km_plan_topics_s {
	km_plan_pos_t pos;
	km_plan_regex_t *include; /* never empty: defaults to ".*" */
	size_t include_cnt;
	km_plan_regex_t *exclude;
	size_t exclude_cnt;
	bool internal; /* whether names starting with '_' may be in scope */
	km_plan_rule_t *rules;
	size_t rules_cnt;
} km_plan_topics_t;

typedef enum {
	KM_PLAN_NAMING_IDENTITY = 0,
	KM_PLAN_NAMING_PREFIX,
	KM_PLAN_NAMING_MAP
} km_plan_naming_mode_t;

typedef struct km_plan_naming_s {
	km_plan_pos_t pos;
	km_plan_naming_mode_t mode;
	char *prefix;      /* set iff mode is prefix */
	km_plan_kv_t *map; /* source name -> target name; iff mode is map */
	size_t map_cnt;
} km_plan_naming_t;

typedef enum {
	KM_PLAN_RESTART_TRANSLATED = 0, /* committed offset, translated */
	KM_PLAN_RESTART_EARLIEST,
	KM_PLAN_RESTART_LATEST,
	KM_PLAN_RESTART_TIMESTAMP /* restart_ts_ms, via offsetsForTimes */
} km_plan_restart_t;

typedef struct km_plan_group_s {
	km_plan_pos_t pos;
	char *id;
	km_plan_restart_t restart;
	int64_t restart_ts_ms; /* epoch ms; only for KM_PLAN_RESTART_TIMESTAMP */
	km_plan_replay_t replay;
	char *owner;     /* or NULL */
	char *chosen_by; /* who decided the restart policy, or NULL */
} km_plan_group_t;

typedef struct km_plan_producer_s {
	km_plan_pos_t pos;
	char *name;
	char *client;         /* client library, or NULL */
	char *client_version; /* or NULL */
	km_plan_tri_t idempotence;
	km_plan_tri_t transactions;
	char **topics;
	size_t topics_cnt;
	char *owner;      /* or NULL */
	char *validation; /* how to validate after cutover, or NULL */
	/* What the ACL fence denies for it (cutover.fence: acl); NULL when
	 * undeclared: the source's ACLs still name its principal. */
	char *principal;        /* "User:orders-app" */
	char *transactional_id; /* its transactional.id */
} km_plan_producer_t;

/* How a consumer reads transactional topics (its isolation.level).  Java's
 * default is read_uncommitted: such a consumer also reads the records of
 * aborted transactions, kmigrate's own included (see `offsets`). */
typedef enum {
	KM_PLAN_ISOLATION_UNDECLARED = 0,
	KM_PLAN_ISOLATION_READ_COMMITTED,
	KM_PLAN_ISOLATION_READ_UNCOMMITTED
} km_plan_isolation_t;

typedef struct km_plan_consumer_s {
	km_plan_pos_t pos;
	char *name;
	char *group; /* consumer group id, or NULL */
	char *client;
	char *client_version;
	km_plan_isolation_t isolation_level; /* default undeclared */
	char *owner;
	char *validation;
} km_plan_consumer_t;

typedef struct km_plan_connector_s {
	km_plan_pos_t pos;
	char *name;
	char *class_name; /* the `class:` key */
	char *side_effects;
	char *owner;
	char *validation;
	/* Whether re-delivering a record has no further effect downstream
	 * (`idempotent: yes/no`); unset is not "yes" (lib/connect.h). */
	km_plan_tri_t idempotent;
	/* The sink's consumer group when it is not connect-<name>
	 * (`consumer.override.group.id`), or NULL. */
	char *group;
} km_plan_connector_t;

/* Dashboards, alerts and runbooks: things outside Kafka that still point at
 * the source cluster and must be checked by someone after cutover. */
typedef struct km_plan_artifact_s {
	km_plan_pos_t pos;
	char *name;
	char *owner;
	char *validation;
} km_plan_artifact_t;

typedef struct km_plan_gates_s {
	km_plan_pos_t pos;
	int64_t max_lag_records;    /* >= 0, default 0 */
	int64_t max_lag_seconds;    /* >= 0, default 60 */
	int64_t max_mismatches;     /* >= 0, default 0 */
	double large_message_ratio; /* in (0, 1], default 0.9 */
	int many_partitions;        /* >= 1, default 64 */
	/* Seconds; evidence older than this is stale, and a gate reading it
	 * says NO-GO (default 3600). */
	int64_t max_evidence_age;
} km_plan_gates_t;

/* A name in a list that refers to something declared elsewhere in the plan
 * (a wave's producers, consumers, groups and topics), with where it was
 * written, so that a dangling reference is reported at its own line. */
typedef struct km_plan_name_s {
	km_plan_pos_t pos;
	char *name;
} km_plan_name_t;

/* One cutover wave (`cutover.waves[]`): the topics whose write authority
 * moves together, and the clients and groups that move with them.  Waves
 * are cut over in plan order. */
typedef struct km_plan_wave_s {
	km_plan_pos_t pos;
	char *name;
	/* Exact source topic names, each in scope and in no earlier wave. */
	km_plan_name_t *topics;
	size_t topics_cnt;
	/* Every in-scope topic that no earlier wave names: `all: true`, a
	 * topic written `all`, or a wave named `all` without `topics`. */
	bool all;
	km_plan_name_t *producers; /* names from `producers:` */
	size_t producers_cnt;
	km_plan_name_t *consumers; /* names from `consumers:` */
	size_t consumers_cnt;
	km_plan_name_t *groups; /* ids from `consumer_groups:` */
	size_t groups_cnt;
	char *owner; /* who decides GO for this wave, or NULL */
} km_plan_wave_t;

/* How the source is fenced at cutover (`cutover.fence`). */
typedef enum {
	KM_PLAN_FENCE_UNDECLARED = 0, /* unknown: the gates say NO-GO */
	KM_PLAN_FENCE_ACL,            /* DENY WRITE ACLs on the source */
	KM_PLAN_FENCE_CONFIG,         /* a topic-configuration fence */
	KM_PLAN_FENCE_EXTERNAL        /* someone else's (network, proxy, ...) */
} km_plan_fence_t;

/* How the ACL fence's super users are fenced (`cutover.super_users_fence`). */
typedef enum {
	KM_PLAN_SUPER_FENCE_UNDECLARED = 0,
	KM_PLAN_SUPER_FENCE_CONFIG,  /* the config fence on the same topics too */
	KM_PLAN_SUPER_FENCE_EXTERNAL /* the owner's (super users stopped, ...) */
} km_plan_super_fence_t;

/* `cutover.fence_probe`: the credentials of a principal the ACL fence
 * denies, for the proof's canary produce (the password from an environment
 * variable, never in the plan). */
typedef struct km_plan_fence_probe_s {
	km_plan_pos_t pos;
	char *principal;    /* "User:probe" */
	char *username;     /* its SASL username */
	char *password_env; /* the variable holding its password */
} km_plan_fence_probe_t;

/* `cutover:` -- how write authority moves to the target. */
typedef struct km_plan_cutover_s {
	km_plan_pos_t pos;
	km_plan_wave_t *waves;
	size_t waves_cnt;
	km_plan_fence_t fence; /* no default */
	char *fence_owner;     /* who owns (and, if external, applies) it */
	int64_t quiet_period;  /* seconds the source must stay still; 10 */
	/* ---- the ACL fence (cutover.fence: acl; docs/plan.md) ---- */
	/* Kafka's brokers hide super.users and allow.everyone.if.no.acl.found
	 * (DescribeConfigs reports them as sensitive): the plan declares them.
	 * super_users_set tells `super_users: []` (declared: none) from an
	 * absent key (unknown). */
	char **super_users; /* "User:admin", ... */
	size_t super_users_cnt;
	bool super_users_set;
	km_plan_tri_t allow_everyone_if_no_acl_found; /* unset: unknown */
	/* ACLs do not bind super users: who stops their writes.  Undeclared
	 * with super users declared is NO-GO. */
	km_plan_super_fence_t super_users_fence;
	char *super_users_fence_owner; /* for external; default fence_owner */
	km_plan_fence_probe_t fence_probe; /* principal NULL: undeclared */
	/* Seconds `cutover --verify` watches the wave after the switch; 30. */
	int64_t verify_window;
} km_plan_cutover_t;

/* `replication:` -- how replicate copies; all optional. */
typedef struct km_plan_replication_s {
	km_plan_pos_t pos;
	int64_t max_bytes_per_sec; /* 0 = no throttle */
	int max_buffer_mb;         /* 0 = default (128) */
	int tasks;                 /* T when first created; 0 = automatic */
	int txn_max_records;       /* 0 = default */
	int txn_max_ms;            /* 0 = default */
	/* Codec for target topics whose compression.type is `producer`; 0 =
	 * not set (none).  KM_PLAN_COMPRESSION_*. */
	int compression;
} km_plan_replication_t;

/* A trigger's comparison (`op`), as PromQL writes it. */
typedef enum {
	KM_PLAN_OP_GT = 0, /* ">" (the default) */
	KM_PLAN_OP_GE,
	KM_PLAN_OP_LT,
	KM_PLAN_OP_LE,
	KM_PLAN_OP_EQ,
	KM_PLAN_OP_NE
} km_plan_op_t;

/* `schemas.ids`: what happens to schema-registry IDs (docs/internals/schemas.md).
 * Undeclared behaves as keep until the IDs cannot be kept: then it is NO-GO,
 * since rewriting the 4-byte ID inside every record is a decision. */
typedef enum {
	KM_PLAN_SCHEMA_IDS_UNDECLARED = 0,
	KM_PLAN_SCHEMA_IDS_KEEP,   /* same IDs and versions on the target */
	KM_PLAN_SCHEMA_IDS_REWRITE /* target IDs; replicate rewrites records */
} km_plan_schema_ids_t;

/* `schemas:` -- the schema-registry half of the migration. */
typedef struct km_plan_schemas_s {
	km_plan_pos_t pos;
	km_plan_schema_ids_t ids;
} km_plan_schemas_t;

/* replication.compression: the librdkafka codec names, in this order. */
enum { KM_PLAN_COMPRESSION_UNSET = 0, KM_PLAN_COMPRESSION_NONE, KM_PLAN_COMPRESSION_GZIP,
       KM_PLAN_COMPRESSION_SNAPPY, KM_PLAN_COMPRESSION_LZ4, KM_PLAN_COMPRESSION_ZSTD };

/* One rollback trigger (`rollback.triggers[]`): a value, compared with a
 * threshold, that must hold for `for` seconds before it fires (as a
 * Prometheus alerting rule).  The value is exactly one of: a metric
 * kmigrate measures itself (`metric`, a name of lib/metrics.h's catalogue
 * marked for triggers, checked at load time; the largest value among its
 * series that match `labels`), or a PromQL expression (`query`) evaluated
 * against monitoring.prometheus_url (required then). */
typedef struct km_plan_trigger_s {
	km_plan_pos_t pos;
	char *name;
	char *metric;         /* or NULL */
	km_plan_kv_t *labels; /* label filter of metric; in file order */
	size_t labels_cnt;
	char *query;          /* or NULL */
	km_plan_op_t op;
	double threshold;
	int64_t for_s;        /* `for:` seconds, default 0 */
	char *wave;           /* the wave it rolls back, or NULL */
	char *owner; /* or NULL */
} km_plan_trigger_t;

typedef struct km_plan_rollback_s {
	km_plan_pos_t pos;
	km_plan_trigger_t *triggers;
	size_t triggers_cnt;
	/* `monitor` runs the wave's rollback itself when a trigger fires
	 * (default false: it prints the command to run). */
	bool automatic;
} km_plan_rollback_t;

/* `monitoring:` -- metrics and the monitor; all optional. */
typedef struct km_plan_monitoring_s {
	km_plan_pos_t pos;
	/* "HOST:PORT" each command serves /metrics on, one per command so
	 * that they can run side by side on one host (a flag wins). */
	char *metrics_addr;           /* monitor */
	char *replicate_metrics_addr; /* replicate */
	char *cutover_metrics_addr;   /* cutover */
	int64_t interval;     /* monitor's sampling interval, seconds; 10 */
	char *prometheus_url; /* the team's Prometheus, for PromQL triggers */
	/* The canary: `monitor` produces one record to every partition of
	 * this topic on the TARGET each interval and reads it back
	 * (docs/internals/monitor.md).  A topic of its own, so that canary
	 * records never reach the applications' data; NULL: no canary (its
	 * metrics are then absent, and a trigger on them unknown). */
	char *canary_topic;
	/* Who the canary logs in as on the target (SASL): default
	 * cutover.fence_probe's username and password_env, else kmigrate's
	 * own target credentials. */
	char *canary_username;
	char *canary_password_env;
} km_plan_monitoring_t;

/* ">", ">=", ... */
const char *km_plan_op_str(km_plan_op_t op);
/* @returns whether v op threshold holds (NaN: false). */
bool km_plan_op_holds(km_plan_op_t op, double v, double threshold);

/* The loaded plan.  Public and read-only: fields are filled by
 * km_plan_load()/km_plan_parse() and released by km_plan_destroy(). */
typedef struct km_plan_s {
	km_plan_pos_t pos; /* of the top-level mapping */
	char *path;        /* plan file as given (or the parse name) */
	char *dir;         /* directory relative paths were resolved against */
	char *migration;   /* [a-z0-9][a-z0-9._-]{0,62} */
	char *journal;     /* resolved; default "<dir>/kmigrate.db" */
	km_plan_cluster_t source;
	km_plan_cluster_t target;
	km_plan_topics_t topics;
	km_plan_naming_t naming;
	km_plan_group_t *groups; /* `consumer_groups:` */
	size_t groups_cnt;
	km_plan_producer_t *producers;
	size_t producers_cnt;
	km_plan_consumer_t *consumers;
	size_t consumers_cnt;
	km_plan_connector_t *connectors;
	size_t connectors_cnt;
	km_plan_artifact_t *dashboards;
	size_t dashboards_cnt;
	km_plan_artifact_t *alerts;
	size_t alerts_cnt;
	km_plan_artifact_t *runbooks;
	size_t runbooks_cnt;
	km_plan_gates_t gates;
	km_plan_rollback_t rollback;
	km_plan_replication_t replication;
	km_plan_cutover_t cutover;
	km_plan_monitoring_t monitoring;
	km_plan_schemas_t schemas;
	/* Not from the file: the topics the source inventory in the journal
	 * recognised as a Kafka Connect worker's internal topics (their keys,
	 * lib/inventory.h).  Out of scope whatever the patterns say: a
	 * worker's config, offsets and status are its own, never copied.  Set
	 * once by km_plan_set_worker_topics() before the plan is shared. */
	char **worker_topics;
	size_t worker_topics_cnt;
} km_plan_t;

/*
 * Reads and validates the plan file at path.  Relative paths inside the plan
 * resolve against the plan file's directory, made absolute with the current
 * directory at load time (so a later chdir() does not move the journal).
 *
 * @returns KM_ERR_OK and a new plan in *planp (destroy with
 *          km_plan_destroy()); KM_ERR_IO when the file cannot be read;
 *          KM_ERR_PLAN with "path:line:col: message" for invalid content.
 *          *planp is NULL on failure.
 */
km_err_t km_plan_load(const char *path, km_plan_t **planp, char *errstr,
		      size_t errstr_size);

/*
 * Parses and validates a plan from memory; touches no file.
 *
 * @param buf             the YAML text, len bytes, need not be NUL-terminated
 * @param name_for_errors prefix of error messages and plan->path; NULL
 *                        means "plan"
 * @param base_dir        directory relative paths resolve against, used as
 *                        given; NULL means "."
 * @returns as km_plan_load() (KM_ERR_PLAN for any invalid input).
 */
km_err_t km_plan_parse(const char *buf, size_t len, const char *name_for_errors,
		       const char *base_dir, km_plan_t **planp, char *errstr,
		       size_t errstr_size);

/* Releases the plan and everything in it.  NULL is fine. */
void km_plan_destroy(km_plan_t *plan);

/*
 * Whether topic is part of the migration: it matches an include pattern,
 * matches no exclude pattern, and, unless topics.internal is true, does not
 * start with '_' (Kafka's internal topics such as __consumer_offsets and the
 * conventions of Connect and Schema Registry such as _schemas), and is not
 * a recognised Kafka Connect worker topic (km_plan_set_worker_topics()).
 */
bool km_plan_topic_in_scope(const km_plan_t *plan, const char *topic);

/* Whether the plan's patterns (and topics.internal) select topic, before
 * km_plan_topic_in_scope() leaves out the recognised worker topics: what
 * an inventory lists, to judge them again. */
bool km_plan_topic_selected(const km_plan_t *plan, const char *topic);

/* Records the recognised Kafka Connect worker topics (copied); replaces
 * any earlier list.  Call before the plan is read from other threads. */
void km_plan_set_worker_topics(km_plan_t *plan, const char *const *topics, size_t cnt);

/* Whether topic is one of them. */
bool km_plan_worker_topic(const km_plan_t *plan, const char *topic);

/* @returns the first rule whose match regex matches topic (borrowed from
 *          the plan), or NULL when no rule declares anything about it. */
const km_plan_rule_t *km_plan_topic_rule(const km_plan_t *plan,
					 const char *topic);

/* @returns the target topic name for source topic `topic` under the naming
 *          mode: identity, prefix + topic, or the map entry (topics absent
 *          from the map keep their name).  Owned; free() it. */
char *km_plan_target_topic(const km_plan_t *plan, const char *topic);

/*
 * Reads the cluster's SASL password from the environment variable or file
 * the plan names, at the moment it is needed.  Trailing CR/LF are stripped.
 *
 * @returns KM_ERR_OK and an owned string in *passwordp (release with
 *          km_plan_password_free(), which wipes it); KM_ERR_OK and NULL when
 *          the cluster's protocol does not use a password; KM_ERR_PLAN when
 *          the variable is unset or empty or the file is unreadable or
 *          empty, naming the variable or file and the fix.
 */
km_err_t km_plan_cluster_password(const km_plan_cluster_t *cluster,
				  char **passwordp, char *errstr,
				  size_t errstr_size);

/* Overwrites the password with zeros and frees it.  NULL is fine. */
void km_plan_password_free(char *password);

/* Names as written in the plan; static storage. */
const char *km_plan_secproto_str(km_plan_secproto_t proto);
const char *km_plan_ordering_str(km_plan_ordering_t ordering);
/* "read_committed", "read_uncommitted" or "undeclared". */
const char *km_plan_isolation_str(km_plan_isolation_t isolation);
/* The isolation level the plan's consumers of group `group` declare:
 * read_uncommitted when any of them reads uncommitted (the group is as
 * exposed as its least careful member), read_committed when all that
 * declare one read committed, undeclared when none declares one (or no
 * consumer names the group). */
km_plan_isolation_t km_plan_group_isolation(const km_plan_t *plan, const char *group);
const char *km_plan_duplicates_str(km_plan_duplicates_t duplicates);
const char *km_plan_replay_str(km_plan_replay_t replay);
const char *km_plan_naming_mode_str(km_plan_naming_mode_t mode);
const char *km_plan_restart_str(km_plan_restart_t restart);
/* "acl", "config", "external" or "undeclared". */
const char *km_plan_fence_str(km_plan_fence_t fence);
/* "config", "external" or "undeclared". */
const char *km_plan_super_fence_str(km_plan_super_fence_t f);
/* The wave named name, or NULL. */
const km_plan_wave_t *km_plan_wave(const km_plan_t *plan, const char *name);
/* Whether in-scope topic `topic` belongs to wave w: named by it, or w is an
 * `all` wave and no earlier wave names the topic.  A topic out of scope
 * belongs to no wave. */
bool km_plan_wave_has_topic(const km_plan_t *plan, const km_plan_wave_t *w,
			    const char *topic);
/* "keep", "rewrite" or "undeclared". */
const char *km_plan_schema_ids_str(km_plan_schema_ids_t ids);
/* "true", "false" or "unset". */
const char *km_plan_tri_str(km_plan_tri_t tri);

/* Formats the group's restart policy as it would be written in the plan
 * ("translated", "timestamp:2026-11-25T10:00:00.000Z") into buf.
 * @returns buf */
const char *km_plan_group_restart_str(const km_plan_group_t *group, char *buf,
				      size_t size);

#endif
