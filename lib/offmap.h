/*
 * offmap.h -- the exact offset map of one partition.
 *
 * For every copied record the pair (source offset, target offset) is
 * recoverable from runs: a run (src_first, tgt_first, count) says that the
 * source records src_first .. src_first+count-1 were copied, in order and
 * without holes, to target offsets tgt_first .. tgt_first+count-1.  A hole
 * on either side -- a compacted-away or aborted source record, a control
 * record on either side, a transaction commit marker on the target --
 * starts a new run, so the map is exact, never an estimate.
 *
 * km_offmap_translate() answers the question consumer-offset translation
 * asks: "the target offset of the first copied record whose source offset
 * is >= c", in O(log n).  This module is pure data: it does not read Kafka.
 */
#ifndef KM_OFFMAP_H
#define KM_OFFMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct km_offrun_s {
	int64_t src_first;
	int64_t tgt_first;
	int64_t count;
} km_offrun_t;

typedef struct km_offmap_s {
	km_offrun_t *runs; /* sorted by src_first, non-overlapping */
	size_t cnt, cap;
} km_offmap_t;

#define KM_OFFMAP_INIT {NULL, 0, 0}

/* Appends a run.  Runs arrive in source order from the replicator; a run
 * that continues the last one on both sides is merged into it.
 * @returns 0, or -1 when the run overlaps or precedes the last (a bug or a
 * corrupt map: the caller must stop, never guess). */
int km_offmap_add(km_offmap_t *m, int64_t src_first, int64_t tgt_first,
		  int64_t count);

/* Target offset of the first copied record with source offset >= c.
 * @returns 0 and *tgtp, or -1 when no copied record is at or after c (c is
 * beyond what has been replicated). */
int km_offmap_translate(const km_offmap_t *m, int64_t c, int64_t *tgtp);

/* The source offset copied to target offset t, or -1 when t holds no copied
 * record (a marker or a gap). */
int64_t km_offmap_source_of(const km_offmap_t *m, int64_t t);

/* Total records covered. */
int64_t km_offmap_records(const km_offmap_t *m);

void km_offmap_clear(km_offmap_t *m);

/* Incremental run builder used on the hot path: feed (src, tgt) pairs in
 * order; completed runs are appended to out.  No allocation per record. */
typedef struct km_offrun_builder_s {
	km_offrun_t cur;
	int open;
} km_offrun_builder_t;

/* @returns 1 when a run was completed into *done (the pair starts a new
 * one), 0 otherwise. */
int km_offrun_feed(km_offrun_builder_t *b, int64_t src, int64_t tgt,
		   km_offrun_t *done);
/* Completes the open run into *done; @returns 1 if there was one. */
int km_offrun_finish(km_offrun_builder_t *b, km_offrun_t *done);

#endif
