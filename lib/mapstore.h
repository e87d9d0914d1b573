/*
 * mapstore.h -- the offset-map store: how a migration's replication state is
 * laid out on the target cluster, and how it is read back.
 *
 * The replicator's bookkeeping lives in three internal topics on the target,
 * each with T partitions (T = the number of tasks, fixed for the life of the
 * migration by the first replicator):
 *   __kmigrate.<m>.tasks      owning partition k = owning task k; partition 0
 *                             holds the layout, key "layout", value
 *                             {"group":G}, written once by the first
 *                             replicator (none: a map from before layouts,
 *                             G = 1)
 *   __kmigrate.<m>.progress   compacted; key "topic:partition", value
 *                             {"next":N,"tgt_next":N,"topic_id":"<base64>"}
 *   __kmigrate.<m>.offsetmap  key "topic:partition", value {"s":S,"t":T,"n":N}
 *                             (one run of the exact offset map, lib/offmap.h)
 * A source partition's records all go to partition
 * task_of(topic, partition, T, G) of the last two.  A direction (NULL for the forward map) puts a second map
 * -- rollback's reverse map -- in topics of its own, __kmigrate.<m>.<dir>.*,
 * with the same records.
 *
 * This module owns the byte formats (encode/decode, pinned by
 * tests/unit/test_mapstore.c) and the readers; it does not write (the
 * replicator produces the encoded records inside its transactions) and does
 * not decide anything about replication.  Decoding is strict: a record that
 * does not decode, or runs that overlap, is an error naming the topic,
 * partition and offset -- never skipped, because a skipped run makes offset
 * translation land late and a skipped progress record copies a partition
 * again from its start.
 */
#ifndef KM_MAPSTORE_H
#define KM_MAPSTORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kafka.h"
#include "offmap.h"

/* Kafka topic names are at most 249 characters. */
#define KM_MAPSTORE_NAME_MAX 400
#define KM_MAPSTORE_KEY_MAX 300
#define KM_MAPSTORE_VALUE_MAX 200

/* The internal topic names of one map of a migration. */
typedef struct km_mapstore_names_s {
	char tasks[KM_MAPSTORE_NAME_MAX];
	char progress[KM_MAPSTORE_NAME_MAX];
	char offmap[KM_MAPSTORE_NAME_MAX];
} km_mapstore_names_t;

/* direction: NULL or "" for the forward map (__kmigrate.<m>.tasks, ...),
 * otherwise a name of [a-z]+ for another map (__kmigrate.<m>.<dir>.tasks). */
void km_mapstore_names(const char *migration, const char *direction, km_mapstore_names_t *n);

/* The task (= partition of the internal topics) of a source partition: a
 * stable function of the name and the migration's layout (group, >= 1), so
 * that adding a topic or a partition to the scope never moves an existing
 * partition to another task and transactional.id.  A topic's partitions go
 * to the tasks in runs of `group` consecutive partitions, from a task its
 * name picks: group 1 spreads every topic over all tasks (the balance a
 * few partitions need), a group as large as a topic puts it whole on one
 * task (each task's clients then know only their own topics' partitions:
 * docs/internals/replication.md, "Many partitions"). */
int km_mapstore_task_of(const char *topic, int partition, int ntasks, int group);

/* The layout a new migration takes for npartitions source partitions and
 * ntasks tasks: 1 (spread) under KM_MAPSTORE_GROUP_FROM partitions, else
 * runs of npartitions / (8 x ntasks) partitions (rounded up), so that a
 * topic of up to that many partitions sits whole on one task while a
 * larger one still spreads. */
#define KM_MAPSTORE_GROUP_FROM 1000
int km_mapstore_layout_choose(int npartitions, int ntasks);

/* The layout record: key "layout", value {"group":G}.  Encode @returns the
 * value's length or -1; decode is strict (KM_ERR_BUG and why). */
#define KM_MAPSTORE_LAYOUT_KEY "layout"
int km_mapstore_layout_encode(int group, char *buf, size_t size);
km_err_t km_mapstore_layout_decode(const void *key, size_t klen, const void *val, size_t len,
				   int *group, char *errstr, size_t errstr_size);

/* Reads the layout from partition 0 of the tasks topic t_tasks: *group is
 * the first layout record's, 0 when there is none.  Any other record there
 * is an error naming it (never skipped).  KM_ERR_NOT_FOUND: no such topic. */
km_err_t km_mapstore_read_layout(const km_kafka_endpoint_t *tgt, const char *t_tasks, int *group,
				 char *errstr, size_t errstr_size);

/* Progress of one source partition, as committed with the data. */
typedef struct km_mapstore_progress_s {
	int64_t next;     /* next source offset to copy */
	int64_t tgt_next; /* target offset after the last copied record */
	char topic_id[64]; /* source topic id (base64), "" when unknown */
} km_mapstore_progress_t;

/* Encoders write into buf (NUL-terminated) and @returns the length, or -1
 * when the value cannot be encoded (buffer too small, a topic id with
 * characters JSON would need to escape): a bug in the caller. */
int km_mapstore_key_encode(const char *topic, int partition, char *buf, size_t size);
int km_mapstore_progress_encode(const km_mapstore_progress_t *p, char *buf, size_t size);
int km_mapstore_run_encode(const km_offrun_t *run, char *buf, size_t size);

/* Decoders take a record's raw bytes (not NUL-terminated).  On failure
 * @returns KM_ERR_BUG and errstr says what is wrong with the bytes (the
 * reader adds where they are). */
km_err_t km_mapstore_key_decode(const void *key, size_t len, char *topic, size_t topic_size,
				int *partition, char *errstr, size_t errstr_size);
km_err_t km_mapstore_progress_decode(const void *val, size_t len, km_mapstore_progress_t *p,
				     char *errstr, size_t errstr_size);
km_err_t km_mapstore_run_decode(const void *val, size_t len, km_offrun_t *run, char *errstr,
				size_t errstr_size);

/* ---- authority (cutover, lib/cutover.h) ----
 * __kmigrate.<m>.authority: compacted, retention.ms -1, 1 partition, on the
 * target.  One record per source topic whose write authority moved:
 * key = the source topic name (raw bytes), value =
 * {"authority":"target","wave":"<W>","at":<ms>,"run_id":<N>} (this field
 * order, no spaces).  The latest record per key is the topic's authority,
 * so that every kmigrate process on any host agrees. */
#define KM_MAPSTORE_AUTHORITY_MAX 700
typedef struct km_mapstore_authority_s {
	char authority[16]; /* "target" or "source" */
	char wave[KM_MAPSTORE_KEY_MAX];
	int64_t at;     /* ms since the epoch the record was written */
	int64_t run_id; /* the journal's cutover run that wrote it */
} km_mapstore_authority_t;

/* "__kmigrate.<migration>.authority" into buf. */
void km_mapstore_authority_topic(const char *migration, char *buf, size_t size);
/* As the other encoders: the value's length, or -1 (buffer too small, an
 * authority other than target/source). */
int km_mapstore_authority_encode(const km_mapstore_authority_t *a, char *buf, size_t size);
km_err_t km_mapstore_authority_decode(const void *val, size_t len, km_mapstore_authority_t *a,
				      char *errstr, size_t errstr_size);
/* Reads the authority topic on the target to its end (read_committed):
 * *recordsp = a new JSON object, source topic -> its latest decoded record
 * {"authority", "wave", "at", "run_id"}.  KM_ERR_NOT_FOUND when the topic
 * does not exist; KM_ERR_BUG naming the offset when a record does not
 * decode. */
km_err_t km_mapstore_read_authority(const km_kafka_endpoint_t *tgt, const char *t_authority,
				    json_t **recordsp, char *errstr, size_t errstr_size);
/* The authority records of a migration as every kmigrate process reads
 * them: opens the target first (a reachability proof, so that an
 * unreachable target or a wrong password is named as such), then reads
 * __kmigrate.<migration>.authority to its end.  A migration whose authority
 * topic does not exist yet has no record: *recordsp = {} (every topic's
 * authority is the source).  Any other failure is an error and *recordsp
 * NULL: a caller never reads "could not tell" as "source". */
km_err_t km_mapstore_load_authority(const char *migration, const km_kafka_endpoint_t *tgt,
				    json_t **recordsp, char *errstr, size_t errstr_size);
/* The latest record of topic in records (borrowed), or NULL when its
 * authority is the source: no record, or a record saying "source". */
const json_t *km_mapstore_authority_target(const json_t *records, const char *topic);

/* What a reader read: per source partition, its offset map and/or its
 * progress.  Read-only once returned; may be shared by threads. */
typedef struct km_mapstore_s km_mapstore_t;

/* Reads the whole offset-map topic t_offmap on the target in one pass:
 * every partition assigned at once, read_committed, each to its end.
 * KM_ERR_NOT_FOUND when the topic does not exist; KM_ERR_BUG naming topic,
 * partition and offset when a record does not decode or its run overlaps
 * the runs before it.  Destroy *msp with km_mapstore_destroy(). */
km_err_t km_mapstore_read_offmaps(const km_kafka_endpoint_t *tgt, const char *t_offmap,
				  km_mapstore_t **msp, char *errstr, size_t errstr_size);

/* The offset map of a migration (direction as in km_mapstore_names), read
 * whole from tgt -- the cluster holding that direction's state: the target
 * forward, the source for "reverse" -- after proving it reachable, so that a wrong
 * password is named as such and not as a missing map.  KM_ERR_NOT_FOUND
 * with "run `kmigrate replicate` first" when the migration has no
 * replication state.  Otherwise as km_mapstore_read_offmaps(). */
km_err_t km_mapstore_open(const char *migration, const char *direction,
			  const km_kafka_endpoint_t *tgt, km_mapstore_t **msp, char *errstr,
			  size_t errstr_size);

/* Reads partition k of the progress topic to its end (read_committed): the
 * last committed progress of every source partition of task k. */
km_err_t km_mapstore_read_progress(const km_kafka_endpoint_t *tgt, const char *t_progress, int k,
				   km_mapstore_t **msp, char *errstr, size_t errstr_size);

/* Reads every partition of the progress topic to its end (read_committed):
 * the last committed progress of every source partition, in one pass. */
km_err_t km_mapstore_read_progress_all(const km_kafka_endpoint_t *tgt, const char *t_progress,
				       km_mapstore_t **msp, char *errstr, size_t errstr_size);

/* The runs of one source partition (empty when none were read); valid until
 * km_mapstore_destroy. */
const km_offmap_t *km_mapstore_offmap(const km_mapstore_t *ms, const char *topic, int partition);
/* The progress of one source partition, NULL when none was read. */
const km_mapstore_progress_t *km_mapstore_progress(const km_mapstore_t *ms, const char *topic,
						   int partition);
/* Source partitions read. */
size_t km_mapstore_count(const km_mapstore_t *ms);

void km_mapstore_destroy(km_mapstore_t *ms);

/* Feeds one raw record of topic[partition]@offset to ms, as the readers do:
 * exposed so that the unit tests exercise the readers' checks without a
 * broker.  kind: 'o' offset-map record, 'p' progress record. */
km_mapstore_t *km_mapstore_new(void);
km_err_t km_mapstore_feed(km_mapstore_t *ms, int kind, const char *topic, int partition,
			  int64_t offset, const void *key, size_t key_len, const void *val,
			  size_t val_len, char *errstr, size_t errstr_size);

#endif
