/*
 * kafka.h -- the thin librdkafka layer every phase module goes through.
 *
 * It turns an endpoint (bootstrap, security, secret read at use time) into a
 * librdkafka configuration, opens clients whose failures are classified
 * (unreachable, authentication, authorisation, timeout) instead of retried
 * forever, and runs admin calls with deadlines.  It does not know what a
 * migration is: phase modules decide what to ask.
 *
 * Errors are one line that names the cluster role ("source"/"target"), its
 * bootstrap and the fix.
 */
#ifndef KM_KAFKA_H
#define KM_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>

#include "err.h"

/* How to reach one cluster.  Strings are borrowed except password. */
typedef struct km_kafka_endpoint_s {
	const char *role;              /* "source" / "target" for messages */
	const char *bootstrap;         /* host:port[,host:port] */
	const char *security_protocol; /* librdkafka spelling, NULL = plaintext */
	const char *sasl_mechanism;
	const char *username;
	char *password; /* owned; read from env/file at use time, never journaled */
	const char *ssl_ca;
	const char **props; /* pass-through key, value, ..., NULL; the array is
			     * owned (strings borrowed) when set by
			     * km_kafka_endpoint_from_plan() */
} km_kafka_endpoint_t;

/* Releases what an endpoint owns (the password, wiped first, and the
 * property array). */
void km_kafka_endpoint_clear(km_kafka_endpoint_t *ep);

struct km_plan_cluster_s;
/* Fills ep from a plan's cluster block, reading the password now from the
 * env var or file the plan names.  Strings stay borrowed from the plan. */
km_err_t km_kafka_endpoint_from_plan(const struct km_plan_cluster_s *c,
				     km_kafka_endpoint_t *ep, char *errstr,
				     size_t errstr_size);

typedef struct km_kafka_s km_kafka_t;

enum {
	/* Capture the brokers' ApiVersions ranges (librdkafka has no public
	 * API for them; its feature debug log carries them). */
	KM_KAFKA_F_APIVERSIONS = 0x1,
};

/* Default deadline of one admin call. */
#define KM_KAFKA_TIMEOUT_MS 15000

/* Builds a librdkafka configuration for ep with the given client type's
 * extra properties (key, value, ..., NULL; may be NULL).
 * @returns a new conf in *confp; rd_kafka_new() takes ownership. */
km_err_t km_kafka_conf_new(const km_kafka_endpoint_t *ep, const char **extra,
			   rd_kafka_conf_t **confp, char *errstr,
			   size_t errstr_size);

/* Opens an admin-capable client on ep and proves it can talk to the cluster
 * (DescribeCluster within the deadline), so that unreachable clusters and
 * bad credentials fail here with a clear message.
 * @returns a handle in *kp; destroy with km_kafka_close(). */
km_err_t km_kafka_open(const km_kafka_endpoint_t *ep, int flags,
		       km_kafka_t **kp, char *errstr, size_t errstr_size);
void km_kafka_close(km_kafka_t *k);
rd_kafka_t *km_kafka_rk(km_kafka_t *k);
const km_kafka_endpoint_t *km_kafka_endpoint(const km_kafka_t *k);

/* Waits on q for an event of type, failing early when the client reported
 * an authentication or connectivity error in the meantime.  what names the
 * call for messages ("DescribeAcls").  On success *evp must be destroyed. */
km_err_t km_kafka_wait(km_kafka_t *k, rd_kafka_queue_t *q,
		       rd_kafka_event_type_t type, int timeout_ms,
		       const char *what, rd_kafka_event_t **evp, char *errstr,
		       size_t errstr_size);

/* Maps a librdkafka error of call `what` to a km_err_t and a message. */
km_err_t km_kafka_err(km_kafka_t *k, rd_kafka_resp_err_t rerr,
		      const char *what, const char *detail, char *errstr,
		      size_t errstr_size);

/* The broker ApiVersions captured when KM_KAFKA_F_APIVERSIONS was set:
 * for endpoint "host:port", calls cb for each api key.  @returns the number
 * of keys seen for that endpoint. */
int km_kafka_apiversions(km_kafka_t *k, const char *hostport,
			 void (*cb)(void *opaque, int key, const char *name,
				    int min, int max),
			 void *opaque);

/* Admin options with the call's deadline; CreateTopics and DeleteTopics
 * also wait for the controller to finish the change, not merely accept it.
 * Destroy with rd_kafka_AdminOptions_destroy(). */
rd_kafka_AdminOptions_t *km_kafka_admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t op,
						int timeout_ms);

/* One admin call with a deadline, always: librdkafka's admin calls take
 * NULL options, which means its own defaults and a wait on the result
 * queue that nothing bounds.  Usage:
 *
 *   km_kafka_call_t call;
 *   km_kafka_call_begin(k, RD_KAFKA_ADMIN_OP_CREATEACLS, 0, &call);
 *   rd_kafka_CreateAcls(km_kafka_rk(k), &b, 1, call.options, call.q);
 *   err = km_kafka_call_wait(k, &call, RD_KAFKA_EVENT_CREATEACLS_RESULT,
 *                            "CreateAcls", &ev, errstr, errstr_size);
 *
 * begin makes the result queue and the options with the request timeout
 * (and the operation timeout where Kafka has one: CreateTopics,
 * DeleteTopics, CreatePartitions, DeleteRecords) set to timeout_ms, or
 * KM_KAFKA_TIMEOUT_MS when timeout_ms <= 0: there is no "no deadline".
 * wait waits for the result at most that long plus a margin for the
 * answer to travel, then releases options and queue (call is spent).  On
 * success *evp is the result event; destroy it. */
typedef struct km_kafka_call_s {
	rd_kafka_AdminOptions_t *options;
	rd_kafka_queue_t *q;
	int timeout_ms;
} km_kafka_call_t;

void km_kafka_call_begin(km_kafka_t *k, rd_kafka_admin_op_t op, int timeout_ms,
			 km_kafka_call_t *call);
km_err_t km_kafka_call_wait(km_kafka_t *k, km_kafka_call_t *call,
			    rd_kafka_event_type_t type, const char *what,
			    rd_kafka_event_t **evp, char *errstr, size_t errstr_size);

/* CreateTopics of nt[0..n-1] in one call through km_kafka_call (a
 * deadline, always).  A topic that exists already is fine: the callers
 * create kmigrate's own topics, which the first process to start creates
 * and every later one finds.  Any other per-topic error fails the call,
 * with `what` saying which topics these were.  The NewTopics stay the
 * caller's. */
km_err_t km_kafka_create_topics(km_kafka_t *k, rd_kafka_NewTopic_t **nt, size_t n,
				const char *what, char *errstr, size_t errstr_size);

/* What km_kafka_list_offsets() asks for. */
typedef enum {
	KM_KAFKA_LOG_START, /* the earliest offset */
	KM_KAFKA_HWM,       /* the high watermark (read_uncommitted's end) */
	KM_KAFKA_LSO,       /* the last stable offset (read_committed's end) */
} km_kafka_offset_t;

/* One ListOffsets for every partition of tps (their .offset is ignored),
 * through km_kafka_call (a deadline, always).  On success each element's
 * .offset holds what `which` asks for.  A partition that errs, or that the
 * answer leaves out, fails the call naming it: never a guessed offset. */
km_err_t km_kafka_list_offsets(km_kafka_t *k, rd_kafka_topic_partition_list_t *tps,
			       km_kafka_offset_t which, char *errstr, size_t errstr_size);

/* The committed offsets of consumer groups, read the way a consumer reads
 * its own: OffsetFetch through a consumer handle whose group.id is the
 * group and which never subscribes (no join, no rebalance of the
 * application's group), librdkafka's rd_kafka_committed().
 *
 * Not the admin API's ListConsumerGroupOffsets: in librdkafka 2.8 it
 * crashes the process when the group coordinator is not ready or moves
 * (a freshly started cluster, a broker restart): a NULL consumer group is
 * dereferenced when OffsetFetch answers NOT_COORDINATOR on an admin
 * handle (librdkafka issue #5040), and a coordinator request that timed
 * out is used after free when the coordinator comes back (issue #4605,
 * "eonce->refcnt > 0").  A consumer handle's own OffsetFetch has neither
 * path; its coordinator errors are retried here until the deadline.
 *
 * groups[0..n-1]: the groups.  parts: the partitions to read for every
 * group, or NULL for every partition of every topic on the cluster (one
 * Metadata call), in which case each result keeps only the partitions the
 * group committed (or that erred).  out[i]: a new list for groups[i]
 * (destroy each), .offset < 0 = none committed, .err a partition's own
 * error; all NULL when the call fails.  timeout_ms (<= 0: the default) is
 * each group's deadline.  A handle per group costs a connection and a
 * FindCoordinator: a window of them is opened ahead so that they connect
 * while earlier groups are read; with KM_KAFKA_KEEP_READERS they are kept
 * in k until km_kafka_close() (monitor reads the same groups every
 * interval), otherwise closed once read. */
enum { KM_KAFKA_KEEP_READERS = 0x1 };
km_err_t km_kafka_committed(km_kafka_t *k, const char *const *groups, size_t n,
			    const rd_kafka_topic_partition_list_t *parts, int flags, int timeout_ms,
			    rd_kafka_topic_partition_list_t **out, char *errstr, size_t errstr_size);

/* Where a config value comes from, in kmigrate's words: "topic",
 * "broker-dynamic", "cluster-dynamic-default", "broker-static", "default"
 * or "unknown".  Static storage. */
const char *km_kafka_config_source_name(rd_kafka_ConfigSource_t source);

/* Writes n records (keys[i] -> vals[i], NUL-terminated) to one partition of
 * topic with an idempotent producer (acks=all) and waits for every delivery
 * report: kmigrate's own small records (the authority, a map's layout).
 * @returns KM_ERR_OK once all are written; otherwise KM_ERR_AUTHZ for a topic
 * authorization failure, else KM_ERR_KAFKA, errstr naming the first
 * librdkafka error. */
km_err_t km_kafka_put(const km_kafka_endpoint_t *ep, const char *topic, int partition,
		      const char *const *keys, const char *const *vals, size_t n, char *errstr,
		      size_t errstr_size);

/* Reads the low/high watermarks of one partition (ListOffsets through
 * query_watermark_offsets). */
km_err_t km_kafka_watermarks(km_kafka_t *k, const char *topic, int partition,
			     int64_t *lowp, int64_t *highp, char *errstr,
			     size_t errstr_size);

#endif
