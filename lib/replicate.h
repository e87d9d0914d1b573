/*
 * replicate.h -- the exactly-once replication engine.
 *
 * The in-scope source partitions are split into T tasks
 * (km_mapstore_task_of(), a stable function of the name).  Replicator
 * processes -- any number, on any hosts -- join one consumer group on the
 * TARGET over the internal topic __kmigrate.<migration>.tasks, which has T
 * partitions: owning partition k of it means owning task k.  Task k writes
 * with transactional.id kmigrate.<migration>.task.<k>, so a new owner's
 * init_transactions() fences a zombie and aborts what it left open.
 *
 * One transaction = the copied records of a batch + the offset-map runs for
 * them (__kmigrate.<migration>.offsetmap) + the next source offset of each
 * partition (__kmigrate.<migration>.progress), both on partition k of those
 * topics.  Data and bookkeeping become visible together or not at all, so a
 * process killed at any moment resumes exactly where the last commit left
 * it: nothing lost, nothing duplicated, order kept.
 *
 * All state lives on the target; the source is only read (read_committed:
 * aborted source data is never copied).  Failures that would silently lose
 * data stop the task loudly: source records deleted by retention before
 * they were copied, a topic deleted and recreated, a target partition count
 * that differs, missing authorisation.
 *
 * The layout of that state on the target -- topic names, record formats,
 * the readers -- is lib/mapstore.h's; this module writes what it encodes.
 *
 * The reverse direction (opts->direction "reverse") is the same engine with
 * the clusters' roles swapped: it reads the target and writes the source,
 * and its state lives on the source (the cluster it writes: data and
 * bookkeeping commit in one transaction) in __kmigrate.<m>.reverse.*,
 * keyed by the TARGET topic's name (the side whose offsets the map's "s"
 * are).  Only the wave's topics given in opts->start are copied, each
 * partition from its start offset (the target's high watermark at the
 * wave's switch): what the applications wrote on the target since.
 *
 * This module never prints; it reports through the event callback.
 */
#ifndef KM_REPLICATE_H
#define KM_REPLICATE_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "kafka.h"
#include "metrics.h"
#include "offmap.h"
#include "plan.h"

/* Where the reverse copy of one partition starts (opts->start). */
typedef struct km_repl_start_s {
	const char *topic;  /* the SOURCE topic, the plan's name (borrowed) */
	int partition;
	int64_t offset;     /* the first TARGET offset to copy back: the
			     * target's high watermark at the wave's switch */
} km_repl_start_t;

typedef struct km_repl_opts_s {
	/* NULL (or "") copies source -> target, the plan's scope.  "reverse"
	 * copies the target topics of opts->start's topics back onto their
	 * source topics (rollback after the authority moved): read on the
	 * target (read_committed), written on the source with the bookkeeping
	 * on the source (__kmigrate.<m>.reverse.*, transactional ids
	 * kmigrate.<m>.rtask.<k>, groups kmigrate.<m>.reverse-*), each
	 * partition from its start, never from the log start, and never
	 * excluded by the authority (that check is the forward path's). */
	const char *direction;
	/* reverse: every partition of the topics to copy back, with its
	 * start (borrowed).  A target partition without one is an error. */
	const km_repl_start_t *start;
	int n_start;
	int tasks;               /* T when the tasks topic is created; 0 = auto */
	bool until_caught_up;    /* return once every partition reached the
				  * source high watermark seen at start */
	int64_t max_bytes_per_sec; /* throttle, 0 = none */
	int txn_max_records;     /* records per transaction; 0 = by the task's
				  * partitions: 100 each, at least 10000 */
	int txn_max_ms;          /* time per transaction; 0 = 2 ms per partition
				  * of the task, 250..1000 */
	int64_t max_buffer_bytes; /* the process's buffering budget, shared by
				   * its tasks: half prefetch, half produce
				   * queue (default 128 MiB) */
	/* Source topics the saved design (the reviewed plan) says exist: one
	 * the source user cannot see stops the run as a NO-GO instead of
	 * being left out of the scope.  Borrowed; may be NULL. */
	const char *const *design_topics;
	int n_design_topics;
	/* group.instance.id of this process in the replicators' group (static
	 * membership, KIP-345): a process restarted under the same id gets its
	 * tasks back at once instead of after the dead one's session timeout.
	 * Two live processes must never share one (the later fences the
	 * earlier, which then stops).  NULL = dynamic membership. */
	const char *instance_id;
	/* "classic" (default) or "consumer" (KIP-848, Kafka >= 4.0 target). */
	const char *group_protocol;
	volatile sig_atomic_t *stop; /* set by a signal handler to stop */
	/* Events: {"event": "progress"|"task"|"error"|"loss"|"nogo"|"done", ...};
	 * "loss" and "nogo" carry a verdict to journal ("nogo": kind, subject,
	 * message).
	 * Called on the replicating thread; must not block long. */
	void (*event_cb)(void *opaque, json_t *ev);
	void *opaque;
	/* Where the engine's kmigrate_replication_* metrics go (borrowed; NULL:
	 * none).  Updated once per transaction and once per progress tick,
	 * never per record (docs/metrics.md). */
	km_metrics_t *metrics;
} km_repl_opts_t;

void km_repl_opts_init(km_repl_opts_t *opts);

typedef struct km_repl_stats_s {
	int64_t records;      /* copied records */
	int64_t bytes;        /* key + value + header bytes copied */
	int64_t transactions; /* committed */
	int64_t aborts;
	int partitions;       /* owned at the end */
	int caught_up;        /* of those, caught up */
	int excluded;         /* in-scope topics excluded: authority is the target */
	bool nothing_left;    /* every in-scope topic is excluded: the run ended */
} km_repl_stats_t;

/* Runs the replicator until stopped, caught up (opts->until_caught_up),
 * nothing left to copy (every in-scope topic's authority is the target:
 * stats->nothing_left, KM_ERR_OK) or a failure.  src/tgt carry the secrets
 * for the clients it creates.
 *
 * Authority: the target's __kmigrate.<m>.authority (lib/mapstore.h) is
 * read at start and every 2 s.  A topic whose authority is the target is
 * excluded for the rest of the run -- its partitions no longer fetched,
 * copied or committed, its progress left as last committed (what the
 * cutover's drain read) -- with one "excluded" event {topic, wave, at,
 * run_id, reason}; a transaction holding records of it when it is
 * excluded is aborted, never committed.  Then, when every in-scope topic
 * is excluded, a "nothing-left" event.  An authority that cannot be read at
 * start, or for 60 s while running, stops the run (never a guess). */
km_err_t km_replicate_run(const km_plan_t *plan, const km_kafka_endpoint_t *src,
			  const km_kafka_endpoint_t *tgt, const km_repl_opts_t *opts,
			  km_repl_stats_t *stats, char *errstr, size_t errstr_size);

#endif
