/*
 * validate.h -- proof that the target holds what the source holds.
 *
 * For every in-scope source partition, validation reads the exact offset map
 * replicate wrote (lib/mapstore.h, the store's batch reader) once, at start: the
 * replicated range is [first run's source offset, last run's source end) on
 * the source and the matching range on the target.  Records produced after
 * that snapshot are not part of the comparison, so live traffic does not move
 * the goalposts.  Both ranges are then streamed side by side (two consumers
 * per worker, read_committed) and every record is digested with XXH3:
 *
 *   - ordinary topics: source record o pairs with target record
 *     km_offmap_translate(o) exactly.  A pair whose digests differ is a
 *     mismatch of kind key, value, header or timestamp (component digests
 *     tell which part differs) or "reordered" when it swapped places with its
 *     mismatching neighbour; a source record in no run is "missing", a target
 *     record in no run is "extra".  Where the plan's rule says ordering
 *     strict or key, the per-key sequence of digests must be equal too.
 *   - compacted topics (the source's cleanup.policy contains compact): the
 *     source keeps compacting during the migration, so the latest record per
 *     key (tombstones equal to absent) is compared instead of the sequence,
 *     in a bounded table (KM_VALIDATE_MAX_KEYS keys per partition).
 *
 * The target is read beyond the compared range, at both edges, because a
 * stray writer on the target is exactly what validation must catch:
 *
 *   - from its log start: a visible record before the compared range that is
 *     in no run is "extra" (one in a run is a copy whose source record
 *     expired, not compared);
 *   - after the last copied record, to its end: the tail is read
 *     read_committed up to the last stable offset, so kmigrate's commit
 *     markers, its aborted transactions and its open one are never seen.
 *     The replicator may have copied tail records after the snapshot, so the
 *     tail is classified only after every tail was read, with a second read
 *     of the offset map: first the offset map's own open transactions are
 *     waited out (its last stable offset reaches the high watermark read
 *     after the tails; a replicator commits a record and its run in one
 *     transaction, but the two partitions' commit markers land one after
 *     the other), then the map is re-read.  A tail record in a run of that
 *     fresher map was copied after the snapshot ("copied_after_snapshot",
 *     not compared, not a mismatch); any other is "extra": nothing but the
 *     replicator writes runs, and a record committed before the map was
 *     re-read has its run in it if the replicator wrote it.  Records
 *     committed on the target after a tail was read are the next run's.
 *
 * Records of aborted transactions on the target are counted per partition
 * ("aborted_on_target") by reading read_uncommitted only the stretches of
 * target offsets in no run that have room for one (more than one offset
 * besides the visible records there: a commit marker takes one); after a
 * clean replication nothing is read again.
 *
 * The verdict is GO only when every partition was validated, the mismatches
 * are within the plan's gates.max_mismatches and no ordering rule is broken;
 * a partition with nothing replicated yet, or one that could not be validated
 * completely, is NO-GO (unknown is never a pass).  So is a topic of the saved
 * design that the source principal cannot see (Kafka leaves topics without
 * DESCRIBE out of the metadata silently): it is asked for by name
 * (DescribeTopics) and named with the ACL to grant; a partition the
 * principal may not READ is "not validated" with the same advice.  A sampled run digests only
 * records whose source offset hashes below the sample percentage and says so
 * in its report.
 *
 * What this module does not do: it never writes to either cluster, never
 * prints, never journals (the command does, from the report) and never
 * repairs anything.
 */
#ifndef KM_VALIDATE_H
#define KM_VALIDATE_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "err.h"
#include "kafka.h"
#include "plan.h"

/* Distinct keys one partition may hold when a key table is needed (latest
 * value per key of a compacted topic, per-key ordering).  The table has
 * 64-byte slots and at most 2 * KM_VALIDATE_MAX_KEYS of them: 128 MiB per
 * partition being validated at worst.  Beyond it the partition is reported
 * "not validated" (NO-GO), never guessed. */
#define KM_VALIDATE_MAX_KEYS (1u << 20)

/* Workers validating partitions in parallel.  Each makes its consumers once
 * and reads groups of up to 32 small partitions at a time (assigned at once,
 * each through its own partition queue) or one large partition. */
#define KM_VALIDATE_MAX_WORKERS 4

/* Progress, reported about once a second from the calling thread. */
typedef struct km_validate_progress_s {
	int64_t records;  /* records read on both sides so far */
	int64_t bytes;    /* key + value + header bytes of those */
	int64_t elapsed_ms;
	int partitions_done;
	int partitions;
} km_validate_progress_t;

typedef struct km_validate_opts_s {
	double sample_pct; /* 0 = every record; 0 < P < 100 = sampled */
	int max_shown;     /* mismatches listed per partition (default 10) */
	int workers;       /* 0 = min(partitions, KM_VALIDATE_MAX_WORKERS) */
	volatile sig_atomic_t *stop; /* set by a signal handler: stop early */
	/* Source topics that must be validated whatever the source principal
	 * can see: the saved design's (the command reads them from the
	 * journal), borrowed JSON array of names, NULL when there is no saved
	 * design.  One that is in the plan's scope and missing from the
	 * source's metadata is NO-GO, named with the permission to grant. */
	const json_t *expect_topics;
	/* Source topic names to validate, a borrowed JSON array, or NULL for
	 * every in-scope topic: cutover validates one wave's topics.  A topic
	 * in it that is out of scope is not validated (the scope decides). */
	const json_t *only_topics;
	void (*progress_cb)(void *opaque, const km_validate_progress_t *p);
	void *opaque;
} km_validate_opts_t;

void km_validate_opts_init(km_validate_opts_t *opts);

/*
 * Validates every in-scope partition.  src/tgt carry the secrets for the
 * clients it creates.
 *
 * @returns KM_ERR_OK and a new report in *reportp (json_decref it) whatever
 *          the verdict: {"verdict": "GO"|"NO-GO", "label", "sampled",
 *          "mismatches", "no_go": [...], "throughput": {...},
 *          "partitions": [...] } -- see docs/internals/validate.md;
 *          KM_ERR_NOGO when stopped through opts->stop (no report);
 *          a cluster error when a cluster failed (no report: a partial
 *          comparison is never a verdict).
 */
km_err_t km_validate_run(const km_plan_t *plan, const km_kafka_endpoint_t *src,
			 const km_kafka_endpoint_t *tgt,
			 const km_validate_opts_t *opts, json_t **reportp,
			 char *errstr, size_t errstr_size);

#endif
