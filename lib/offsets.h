/*
 * offsets.h -- moving consumer groups: translation, proof by reading, commit.
 *
 * An offset is a position in one cluster's log, so "resume from the same
 * offsets" is wrong by construction.  A committed source offset c means
 * "the next record this group will read is the first one at or after c";
 * its translation is the target offset of the first *copied* record with
 * source offset >= c, from the exact offset map.  A c beyond what has been
 * replicated is "not yet translatable" -- never guessed.  Each translated
 * position is proven by reading the first record that survives at or after
 * it on both clusters (they compact independently) and comparing digests.  Restart policies other than `translated` (earliest, latest,
 * timestamp) are resolved on the target.
 *
 * km_offsets_commit() writes a group's offsets to the target with
 * AlterConsumerGroupOffsets, and refuses while the target group has
 * members.  This module never prints.
 */
#ifndef KM_OFFSETS_H
#define KM_OFFSETS_H

#include <jansson.h>

#include "err.h"
#include "kafka.h"
#include "plan.h"

typedef struct km_offsets_opts_s {
	const char *only; /* one group alone, or NULL for every group in scope */
	/* Called on the calling thread while positions are proven (done of
	 * total reads so far; total grows when compaction makes a proof
	 * walk); may be NULL. */
	void (*progress_cb)(void *opaque, const char *what, size_t done, size_t total);
	void *opaque;
} km_offsets_opts_t;

/* Builds the translation table for every group in scope (declared in the
 * plan, or found on the source with commits on in-scope topics), or for
 * group opts->only alone (KM_ERR_NOT_FOUND when it has no commit on an
 * in-scope topic).  The offset maps are read once; every translated
 * position is proven at once: one read_committed consumer per cluster,
 * both clusters read at the same time, every partition of a round
 * assigned at its position together.  opts may be NULL.
 * @returns a new JSON array of group objects in *groupsp:
 *   {"group", "policy", "chosen_by", "owner", "partitions": [{"topic",
 *    "partition", "target_topic", "committed", "target_offset" | null,
 *    "status": "translated"|"not-yet"|"proof-failed"|"policy", "lag",
 *    "proof": {...}}], "translatable": bool} */
km_err_t km_offsets_translate(const km_plan_t *plan, km_kafka_t *ks, km_kafka_t *kt,
			      const km_offsets_opts_t *opts, json_t **groupsp, char *errstr,
			      size_t errstr_size);

/* Commits one group's table to the target group.  Refuses (KM_ERR_NOGO)
 * when the target group has active members or a partition is not
 * translatable. */
km_err_t km_offsets_commit(km_kafka_t *kt, const json_t *group, char *errstr,
			   size_t errstr_size);

/* The members of group gid on k now (DescribeConsumerGroups): their count
 * in *membersp and "client@host, ..." in clients. */
km_err_t km_offsets_group_members(km_kafka_t *k, const char *gid, int *membersp, char *clients,
				  size_t csize, char *errstr, size_t errstr_size);

/* The rollback's translation of group's committed TARGET positions back
 * to the source (lib/rollback.h, offsets-back).  parts: the wave's
 * partitions [{"topic" (source), "target_topic", "partition",
 * "switch_hwm"}].  A target position before the switch point maps through
 * the inverse of the forward map (the source offset of the first record
 * whose copy lies at or after it), one at or after it through the reverse
 * map (target offset -> new source offset, read on the source), one past
 * every copied record to the source's end.  Each is proven by reading the
 * first committed record at both positions (same digest, or both at their
 * end).  A partition the group has no target commit on is "no-commit".
 * @returns {"group", "partitions": [{"topic", "target_topic", "partition",
 * "committed", "source_offset", "via": "forward-inverse" | "reverse" |
 * "end", "status": "translated" | "proof-failed" | "no-commit", "proof"}],
 * "translatable"} in *groupp. */
km_err_t km_offsets_translate_back(const km_plan_t *plan, km_kafka_t *ks, km_kafka_t *kt,
				   const char *group, const json_t *parts, json_t **groupp,
				   char *errstr, size_t errstr_size);

#endif
