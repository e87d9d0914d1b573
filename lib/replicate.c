#include "replicate.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fence.h"
#include "mapstore.h"
#include "schemas.h"
#include "util.h"

#define DEFAULT_TASKS 4
#define MAX_TASKS 256
#define RETRIES 5
#define POLL_BATCH 512 /* source records taken from the queue at once */

void km_repl_opts_init(km_repl_opts_t *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->txn_max_records = 0; /* by the task's partitions: txn_size() */
	opts->txn_max_ms = 0;
	opts->max_buffer_bytes = 64 * 1024 * 1024;
}

/* ---- per-task state -------------------------------------------------------- */

typedef struct part_s {
	char *topic;      /* source topic (owned) */
	char *tgt_topic;  /* target topic (owned) */
	int partition;
	char *topic_id;   /* the source topic's id now (owned) */
	char *progress_topic_id; /* the id progress was recorded for (owned) */
	rd_kafka_topic_t *rkt_tgt; /* producer topic handle */
	int64_t next;     /* next source offset to copy (committed) */
	int64_t pending_next; /* next after the open transaction */
	int64_t tgt_next; /* target offset after the last copied record
			   * (committed; from progress), -1 before any */
	/* pending_next moved past entries that are not records to copy
	 * (transaction markers, aborted records) with nothing copied: its
	 * progress is written by the next transaction all the same. */
	bool skip;
	int64_t pending_tgt_next; /* tgt_next after the open transaction */
	bool recorded;    /* a progress record exists (loaded or committed) */
	int64_t hwm;      /* source high watermark seen at start */
	int64_t log_start; /* source log start offset seen at start */
	bool caught_up;
	bool excluded;    /* its authority is the target: never copied again */
	km_offrun_builder_t rb;
	bool copying;     /* records of it are in the open transaction */
	int64_t unreported; /* key+value bytes produced, no delivery report yet */
	int64_t last_tgt; /* for the open txn's runs */
	/* Metrics, main thread only: when its lag was last seen at 0
	 * (0: never), the bound of kmigrate_replication_lag_seconds. */
	int64_t zero_lag_ms;
	const char *codec; /* the producer's compression for tgt_topic (static) */
	rd_kafka_topic_t *rkt_src; /* the consumer's handle of topic, once seen (part_of) */
} part_t;

typedef struct slot_s {
	int64_t src_offset; /* the record's offset on the source */
	part_t *part;
	int64_t tgt_offset;
	rd_kafka_resp_err_t err;
	int32_t bytes; /* key + value, counted in part->unreported until reported */
} slot_t;

typedef struct task_s {
	int id;
	rd_kafka_t *p;  /* transactional producer on the target */
	rd_kafka_t *c;  /* consumer on the source (assign) */
	rd_kafka_queue_t *cq; /* c's queue, read in batches */
	rd_kafka_message_t *batch[POLL_BATCH]; /* taken from cq, not yet used */
	int ib, nb;           /* batch[ib..nb) are still to be used */
	part_t *parts;
	int nparts;
	part_t *last_part; /* part_of()'s last answer */
	slot_t *slots;   /* the records fetched and not yet delivered */
	int nslots;
	int64_t txn_max_bytes; /* the task's share of the budget held at once */
	int64_t txn_records;   /* records per transaction at most */
	int64_t txn_bytes;     /* bytes per transaction at most, 0 = no bound */
	int txn_ms;            /* time per transaction */
	int64_t batch_bytes;   /* the producer's batch.size */
	rd_kafka_topic_t *rkt_offmap, *rkt_progress; /* the producer's, of the store */
	bool in_txn;
	int excl_gen;     /* the exclusions this task has applied (r->excl_gen) */
	bool reassign;    /* an exclusion was applied: drop its partitions */
	/* Held by the task's thread from its last look at the exclusions to
	 * the end of commit_transaction; the main thread takes it once after
	 * publishing an exclusion, so that from then on no commit of this
	 * task can carry the excluded topic (see authority_check()). */
	pthread_mutex_t commit_lock;
	/* Shared between threads -- the task's own, the main thread (group,
	 * progress line) and librdkafka's (error callback) -- so atomics:
	 * set once, read anywhere, no lock needed, and no torn or cached
	 * read as with the volatile flags they replace. */
	atomic_bool dead;      /* written by the task's thread */
	atomic_bool stop;      /* written by the main thread */
	atomic_bool ready;     /* fenced, progress loaded, source assigned */
	atomic_bool topic_error; /* the source said a topic does not exist */
	atomic_int produce_out; /* produce requests sent, not answered (interceptors) */
	pthread_t th;          /* the task's own thread */
	/* t->lock guards parts[].next and parts[].caught_up, written by the
	 * task's thread and read by the main thread.  Everything else in
	 * parts, slots and the clients belongs to the task's thread alone. */
	pthread_mutex_t lock;
	struct repl_s *r;
} task_t;

typedef struct repl_s {
	const km_plan_t *plan;
	/* src is the cluster read, tgt the cluster written (data and
	 * bookkeeping): the source and the target forward, the target and
	 * the source in reverse (opts->direction), so that one engine serves
	 * both directions. */
	const km_kafka_endpoint_t *src, *tgt;
	bool reverse;
	const km_repl_opts_t *opts;
	km_repl_stats_t *stats;
	km_mapstore_names_t names; /* the internal topics (lib/mapstore.h) */
	int ntasks;
	int layout; /* the map's layout, a group (km_mapstore_task_of()) */
	task_t *tasks[MAX_TASKS];
	rd_kafka_t *group; /* membership consumer on the target */
	/* r->lock guards errstr (written once, by fail()), *stats and the
	 * event callback (called under it, so events never interleave).  err
	 * is atomic so that every thread's loop can poll it without the lock;
	 * it is only ever set in fail(), under the lock, after errstr. */
	pthread_mutex_t lock;
	/* The throttle: one token bucket for the whole process (the limit
	 * is per process, whatever the number of tasks), under r->lock.
	 * tb_tokens goes negative: the debt the tasks sleep off. */
	int64_t tb_tokens;
	int64_t tb_last_ms;
	_Atomic km_err_t err; /* first fatal error */
	bool closing; /* main thread only: no task starts once set */
	char *errstr;
	size_t errstr_size;
	/* Source partitions in scope: (topic, partition, hwm). */
	struct srcp {
		char *topic;
		int partition;
		int64_t lo, hi;
		char *topic_id;
		const char *codec; /* the producer's codec for its target topic (static) */
		int64_t max_batch; /* its target topic's max.message.bytes; 0 = unknown */
	} *sp;
	int nsp;
	/* Topics whose write authority is the target (the target's authority
	 * topic, lib/mapstore.h): excluded for the rest of the run.  The list
	 * only grows; excluded/nexcluded under r->lock, excl_gen bumped with
	 * each addition so that tasks notice without the lock. */
	char **excluded;
	int nexcluded;
	atomic_int excl_gen;
	char authority_topic[KM_MAPSTORE_NAME_MAX];
	int64_t authority_ok_ms; /* last successful read (main thread) */
	/* schemas.ids: rewrite -- source->target schema IDs applied to every
	 * wire-format key and value (lib/schemas.h); NULL otherwise.
	 * Read-only once built, shared by the tasks. */
	km_schemas_idmap_t *idmap;
} repl_t;

static void emit(repl_t *r, json_t *ev)
{
	pthread_mutex_lock(&r->lock);
	if (r->opts->event_cb)
		r->opts->event_cb(r->opts->opaque, ev);
	pthread_mutex_unlock(&r->lock);
	json_decref(ev);
}

/* The metrics hooks: one call per transaction or error, none per record
 * (docs/metrics.md).  A no-op without opts->metrics. */
static const char *direction(const repl_t *r)
{
	return r->reverse ? "reverse" : "forward";
}

static void metric_error(repl_t *r, const char *op, rd_kafka_resp_err_t code)
{
	km_metrics_add(r->opts->metrics, "kmigrate_replication_errors_total", 1, "direction",
		       direction(r), "op", op, "code", rd_kafka_err2name(code), NULL);
}

static km_err_t fail(repl_t *r, km_err_t err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static km_err_t fail(repl_t *r, km_err_t err, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&r->lock);
	if (r->err) {
		pthread_mutex_unlock(&r->lock);
		return r->err; /* the first failure is the one to tell */
	}
	va_start(ap, fmt);
	vsnprintf(r->errstr, r->errstr_size, fmt, ap);
	va_end(ap);
	r->err = err;
	pthread_mutex_unlock(&r->lock);
	emit(r, json_pack("{s:s, s:s, s:s}", "event", "error", "code", km_err_name(err),
			  "message", r->errstr));
	return err;
}

/* Whether topic is excluded; the caller holds r->lock. */
static bool is_excluded(const repl_t *r, const char *topic)
{
	for (int i = 0; i < r->nexcluded; i++)
		if (!strcmp(r->excluded[i], topic))
			return true;
	return false;
}

/* Whether topic (a name on the cluster read) is copied by this run: in the
 * plan's scope forward; in reverse, the target name of a topic given a
 * start. */
static bool in_scope(const repl_t *r, const char *topic)
{
	if (!r->reverse)
		return km_plan_topic_in_scope(r->plan, topic);
	for (int i = 0; i < r->opts->n_start; i++) {
		char *tt = km_plan_target_topic(r->plan, r->opts->start[i].topic);
		bool same = !strcmp(tt, topic);
		free(tt);
		if (same)
			return true;
	}
	return false;
}

/* The name on the cluster written of topic, a name on the cluster read
 * (owned): the plan's naming forward, its inverse in reverse. */
static char *write_topic(const repl_t *r, const char *topic)
{
	if (!r->reverse)
		return km_plan_target_topic(r->plan, topic);
	for (int i = 0; i < r->opts->n_start; i++) {
		char *tt = km_plan_target_topic(r->plan, r->opts->start[i].topic);
		bool same = !strcmp(tt, topic);
		free(tt);
		if (same)
			return km_strdup(r->opts->start[i].topic);
	}
	KM_BUG("reverse: '%s' is not the target topic of a topic to copy back", topic);
}

/* Applies the exclusions published since the task last looked: their
 * parts are never fetched, copied or committed again (their progress stays
 * the last one committed, which the cutover's drain read) and count as
 * caught up.  @returns true when a part of this task was newly excluded.
 * @locality the task's thread */
static bool task_apply_exclusions(repl_t *r, task_t *t)
{
	bool changed = false;
	int gen = atomic_load(&r->excl_gen);

	if (gen == t->excl_gen)
		return false;
	pthread_mutex_lock(&r->lock);
	pthread_mutex_lock(&t->lock);
	for (int i = 0; i < t->nparts; i++)
		if (!t->parts[i].excluded && is_excluded(r, t->parts[i].topic)) {
			t->parts[i].excluded = true;
			t->parts[i].caught_up = true;
			changed = true;
		}
	pthread_mutex_unlock(&t->lock);
	pthread_mutex_unlock(&r->lock);
	t->excl_gen = gen;
	if (changed)
		t->reassign = true;
	return changed;
}

static rd_kafka_t *client(repl_t *r, const km_kafka_endpoint_t *ep, rd_kafka_type_t type,
			  const char **extra, void (*error_cb)(rd_kafka_t *, int, const char *, void *),
			  void *opaque)
{
	rd_kafka_conf_t *conf;
	char rerr[512];
	rd_kafka_t *rk;
	km_err_t err;

	/* Called on task threads: the message goes through fail(), under
	 * the lock, never straight into r->errstr. */
	if ((err = km_kafka_conf_new(ep, extra, &conf, rerr, sizeof(rerr)))) {
		fail(r, err, "%s", rerr);
		return NULL;
	}
	if (error_cb) {
		rd_kafka_conf_set_error_cb(conf, error_cb);
		rd_kafka_conf_set_opaque(conf, opaque);
	}
	if (!(rk = rd_kafka_new(type, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		fail(r, KM_ERR_KAFKA, "cannot create a %s client: %s", ep->role, rerr);
	}
	return rk;
}

/* ---- internal topics --------------------------------------------------------- */

/* Writes the layout record (partition 0 of the tasks topic). */
static km_err_t write_layout(repl_t *r, int group)
{
	const char *key = KM_MAPSTORE_LAYOUT_KEY;
	const char *vp;
	char val[64], why[600];
	km_err_t err;

	if (km_mapstore_layout_encode(group, val, sizeof(val)) < 0)
		KM_BUG("cannot encode layout %d", group);
	vp = val;
	if ((err = km_kafka_put(r->tgt, r->names.tasks, 0, &key, &vp, 1, why, sizeof(why))))
		return fail(r, err, "cannot write the layout of migration '%s': %s%s",
			    r->plan->migration, why,
			    err == KM_ERR_AUTHZ
				    ? " (grant WRITE on the topic to the replicator's principal)"
				    : "");
	return KM_ERR_OK;
}

/* The map's layout (lib/mapstore.h): the first layout record of the tasks
 * topic.  None, and progress already written: a map from before layouts,
 * which spread every topic (group 1) and keeps doing so.  None and no
 * progress: a new map, whose first replicator writes the layout for its
 * scope; several starting at once may each write one, and the first in the
 * log decides for all.  The progress is looked at before the layout: a
 * replicator writes the layout before its tasks write any progress, so
 * progress seen means its layout is seen by the read that follows. */
static km_err_t read_layout(repl_t *r, km_kafka_t *kt)
{
	char msg[1024];
	km_err_t err;
	int group = 0;
	bool written = false;
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(r->ntasks);

	for (int k = 0; k < r->ntasks; k++)
		rd_kafka_topic_partition_list_add(tp, r->names.progress, k);
	/* Topics created a moment ago may have no leader in the metadata yet
	 * ("No leaders found"): asked again until KM_KAFKA_TIMEOUT_MS. */
	for (int64_t end = km_mono_ms() + KM_KAFKA_TIMEOUT_MS;;) {
		err = km_kafka_list_offsets(kt, tp, KM_KAFKA_HWM, msg, sizeof(msg));
		if (!err || km_mono_ms() > end || (r->opts->stop && *r->opts->stop))
			break;
		struct timespec ts = {0, 200 * 1000000};
		nanosleep(&ts, NULL);
	}
	for (int k = 0; !err && k < tp->cnt; k++)
		written |= tp->elems[k].offset > 0;
	rd_kafka_topic_partition_list_destroy(tp);
	if (err)
		return fail(r, err, "%s", msg);
	for (int pass = 0; pass < 2 && !group; pass++) {
		if ((err = km_mapstore_read_layout(r->tgt, r->names.tasks, &group, msg,
						   sizeof(msg))))
			return fail(r, err, "reading the layout of migration '%s': %s",
				    r->plan->migration, msg);
		if (group || pass)
			break;
		if (written) {
			group = 1;
			break;
		}
		if ((err = write_layout(r, km_mapstore_layout_choose(r->nsp, r->ntasks))))
			return err;
	}
	if (!group)
		return fail(r, KM_ERR_KAFKA,
			    "the layout of migration '%s' written to '%s' cannot be read back",
			    r->plan->migration, r->names.tasks);
	r->layout = group;
	return KM_ERR_OK;
}

static km_err_t ensure_internal_topics(repl_t *r, km_kafka_t *kt)
{
	rd_kafka_t *rk = km_kafka_rk(kt);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, r->names.tasks, NULL);
	rd_kafka_resp_err_t rerr = rd_kafka_metadata(rk, 0, rkt, &md, KM_KAFKA_TIMEOUT_MS);
	int existing = 0;

	rd_kafka_topic_destroy(rkt);
	if (rerr)
		return fail(r, KM_ERR_KAFKA, "cannot read the target's metadata: %s",
			    rd_kafka_err2str(rerr));
	if (md->topic_cnt == 1 && !md->topics[0].err)
		existing = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);

	/* T is fixed for the life of the migration: it is the tasks topic's
	 * partition count, decided by the first replicator to start.  The
	 * progress and the offset map are laid out by it too (a partition's
	 * records go to partition task_of(topic, partition, T)), so another
	 * T would read every position from the wrong partition: a count that
	 * differs is refused, never ignored (it was: the run went on with the
	 * old count and said nothing). */
	if (existing && r->opts->tasks > 0 && r->opts->tasks != existing)
		return fail(r, KM_ERR_CONFLICT,
			    "cannot run migration '%s' with --tasks %d: it has %d tasks, fixed when "
			    "its first replicator created '%s' (its progress and offset map are "
			    "laid out by task); give --tasks %d or none (and the same "
			    "replication.tasks in the plan), and run more processes to share the "
			    "%d tasks -- another count needs a new migration name, which copies "
			    "everything again",
			    r->plan->migration, r->opts->tasks, existing, r->names.tasks, existing,
			    existing);
	r->ntasks = existing ? existing
			     : (r->opts->tasks > 0 ? r->opts->tasks
						   : (r->nsp < DEFAULT_TASKS ? r->nsp : DEFAULT_TASKS));
	if (r->ntasks < 1)
		r->ntasks = 1;
	if (r->ntasks > MAX_TASKS)
		r->ntasks = MAX_TASKS;

	const char *names[3] = {r->names.tasks, r->names.progress, r->names.offmap};
	const char *policy[3] = {"delete", "compact", "delete"};
	rd_kafka_NewTopic_t *nt[3];
	char e[256];
	km_err_t err;
	char msg[1024];

	for (int i = 0; i < 3; i++) {
		nt[i] = rd_kafka_NewTopic_new(names[i], r->ntasks, -1, e, sizeof(e));
		rd_kafka_NewTopic_set_config(nt[i], "cleanup.policy", policy[i]);
		/* The offset map and progress are the migration's record:
		 * never expire them. */
		rd_kafka_NewTopic_set_config(nt[i], "retention.ms", "-1");
		/* A transaction's bookkeeping batch must fit whatever the
		 * target broker's message.max.bytes is. */
		rd_kafka_NewTopic_set_config(nt[i], "max.message.bytes", "8388608");
	}
	err = km_kafka_create_topics(kt, nt, 3, "CreateTopics of kmigrate's internal topics", msg,
				     sizeof(msg));
	for (int i = 0; i < 3; i++)
		rd_kafka_NewTopic_destroy(nt[i]);
	if (err)
		fail(r, err, "%s", msg);
	return err ? err : read_layout(r, kt);
}

/* Reads the source topics' ids (DescribeTopics): a topic deleted and
 * recreated under the same name gets a new id, and its offsets restart,
 * so progress recorded for the old one means nothing for the new one. */
static km_err_t topic_ids(repl_t *r, km_kafka_t *ks)
{
	const char **names = km_calloc((size_t)r->nsp, sizeof(*names));
	size_t nn = 0, n;
	km_kafka_call_t call;
	rd_kafka_event_t *ev = NULL;
	km_err_t err;
	char msg[1024];

	for (int i = 0; i < r->nsp; i++)
		if (i == 0 || strcmp(r->sp[i].topic, r->sp[i - 1].topic))
			names[nn++] = r->sp[i].topic;
	rd_kafka_TopicCollection_t *tc = rd_kafka_TopicCollection_of_topic_names(names, nn);
	km_kafka_call_begin(ks, RD_KAFKA_ADMIN_OP_DESCRIBETOPICS, 0, &call);
	rd_kafka_DescribeTopics(km_kafka_rk(ks), tc, call.options, call.q);
	err = km_kafka_call_wait(ks, &call, RD_KAFKA_EVENT_DESCRIBETOPICS_RESULT, "DescribeTopics",
				 &ev, msg, sizeof(msg));
	if (!err) {
		const rd_kafka_TopicDescription_t **td =
			rd_kafka_DescribeTopics_result_topics(rd_kafka_event_DescribeTopics_result(ev), &n);
		for (size_t j = 0; j < n; j++) {
			const rd_kafka_Uuid_t *id = rd_kafka_TopicDescription_topic_id(td[j]);
			const char *b64 = id ? rd_kafka_Uuid_base64str(id) : NULL;
			for (int i = 0; i < r->nsp && b64; i++)
				if (!strcmp(r->sp[i].topic, rd_kafka_TopicDescription_name(td[j])))
					r->sp[i].topic_id = km_strdup(b64);
		}
	} else {
		fail(r, err, "%s", msg);
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_TopicCollection_destroy(tc);
	free(names);
	return err;
}

/* Every topic of the saved design that the plan still has in scope must be
 * visible: Kafka leaves a topic the user may not DESCRIBE out of the
 * metadata, exactly as if it did not exist, so without this check such a
 * topic silently fell out of the copy ("0/0 partitions caught up"). */
static km_err_t design_topics_seen(repl_t *r, const struct rd_kafka_metadata *md)
{
	const char *user = r->plan->source.username;
	const char *first = NULL;
	char more[40] = "";
	int missing = 0;

	for (int d = 0; d < r->opts->n_design_topics; d++) {
		const char *name = r->opts->design_topics[d];
		bool seen = false;
		if (!km_plan_topic_in_scope(r->plan, name))
			continue;
		for (int i = 0; i < md->topic_cnt && !seen; i++)
			seen = !strcmp(md->topics[i].topic, name) && !md->topics[i].err;
		if (seen)
			continue;
		if (!missing++)
			first = name;
		emit(r, json_pack("{s:s, s:s, s:s, s:s}", "event", "nogo", "kind", "unseen",
				  "subject", name, "message",
				  "in the saved design, not visible to the source user"));
	}
	if (!missing)
		return KM_ERR_OK;
	if (missing > 1)
		snprintf(more, sizeof(more), " and %d more", missing - 1);
	return fail(r, KM_ERR_NOGO,
		    "source topic '%s'%s is in the saved design but the source user%s%s%s cannot "
		    "see it: nothing of it would be copied, so replication stops (grant DESCRIBE "
		    "and READ on TOPIC '%s' to %s%s on the source; if the topic was removed on "
		    "purpose, run `kmigrate plan` again)",
		    first, more,
		    user ? " '" : "", user ? user : "", user ? "'" : "", first,
		    user ? "User:" : "the replicator's principal", user ? user : "");
}

/* Lists the in-scope source partitions and their watermarks, and checks
 * that every target topic exists with the same partition count. */
/* The codec the producer uses for a target topic whose compression.type is
 * ctype.  The broker keeps a batch as the producer sent it only when the
 * topic says `producer`; a topic naming a codec recompresses anything else
 * (broker CPU), and `uncompressed` decompresses.  So: the topic's codec when
 * it names one, none for `uncompressed`, and for `producer` the plan's
 * replication.compression or lz4.  Not none: the source admitted its
 * records as their producers sent them, usually compressed, and the
 * target's max.message.bytes limits the batch as kmigrate sends it -- the
 * demo's audit.log (9,500-byte records, max.message.bytes 10000) fails
 * uncompressed with MSG_SIZE_TOO_LARGE.  A plan whose records do not
 * compress saves the CPU with `replication.compression: none`
 * (bench/README.md).  NULL: a value this version does not know. */
static const char *codec_for(const repl_t *r, const char *ctype)
{
	static const char *const plan_codec[] = {"lz4", "none", "gzip", "snappy", "lz4", "zstd"};
	static const char *const named[] = {"gzip", "snappy", "lz4", "zstd"};
	int pc = r->plan->replication.compression;

	if (!ctype || !strcmp(ctype, "producer"))
		return pc >= 0 && pc <= KM_PLAN_COMPRESSION_ZSTD ? plan_codec[pc] : "lz4";
	if (!strcmp(ctype, "uncompressed"))
		return "none";
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (!strcmp(ctype, named[i]))
			return named[i];
	return NULL;
}

/* Reads the target topics' compression.type (one DescribeConfigs for all)
 * and sets each source partition's codec (codec_for()). */
static km_err_t target_codecs(repl_t *r, km_kafka_t *kt)
{
	rd_kafka_ConfigResource_t **rs = km_calloc((size_t)r->nsp, sizeof(*rs));
	char **tnames = km_calloc((size_t)r->nsp, sizeof(*tnames));
	rd_kafka_event_t *ev = NULL;
	km_kafka_call_t call;
	size_t n = 0, nr;
	km_err_t err;
	char msg[1024];

	for (int i = 0; i < r->nsp; i++) {
		char *tn = write_topic(r, r->sp[i].topic);
		bool seen = false;
		for (size_t j = 0; j < n && !seen; j++)
			seen = !strcmp(tnames[j], tn);
		if (seen) {
			free(tn);
			continue;
		}
		tnames[n] = tn;
		rs[n++] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, tn);
	}
	km_kafka_call_begin(kt, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, 0, &call);
	rd_kafka_DescribeConfigs(km_kafka_rk(kt), rs, n, call.options, call.q);
	if ((err = km_kafka_call_wait(kt, &call, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT,
				      "DescribeConfigs of the topics written", &ev, msg,
				      sizeof(msg)))) {
		fail(r, err, "%s", msg);
		goto done;
	}
	const rd_kafka_ConfigResource_t **rr =
		rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &nr);
	for (size_t i = 0; i < nr && !err; i++) {
		const char *name = rd_kafka_ConfigResource_name(rr[i]), *ctype = NULL, *codec;
		const rd_kafka_ConfigEntry_t **ents;
		size_t ne;
		int64_t mmb = 0;

		if (rd_kafka_ConfigResource_error(rr[i])) {
			char what[400];
			snprintf(what, sizeof(what), "DescribeConfigs of %s topic '%s'", r->tgt->role,
				 name);
			err = fail(r,
				   km_kafka_err(kt, rd_kafka_ConfigResource_error(rr[i]), what,
						rd_kafka_ConfigResource_error_string(rr[i]), msg,
						sizeof(msg)),
				   "%s", msg);
			break;
		}
		ents = rd_kafka_ConfigResource_configs(rr[i], &ne);
		for (size_t j = 0; j < ne; j++)
			if (!strcmp(rd_kafka_ConfigEntry_name(ents[j]), "compression.type"))
				ctype = rd_kafka_ConfigEntry_value(ents[j]);
			else if (!strcmp(rd_kafka_ConfigEntry_name(ents[j]), "max.message.bytes") &&
				 rd_kafka_ConfigEntry_value(ents[j]))
				mmb = strtoll(rd_kafka_ConfigEntry_value(ents[j]), NULL, 10);
		if (!(codec = codec_for(r, ctype))) {
			err = fail(r, KM_ERR_UNSUPPORTED,
				   "%s topic '%s' has compression.type '%s', which this kmigrate does "
				   "not know: set it to producer, uncompressed, gzip, snappy, lz4 or "
				   "zstd",
				   r->tgt->role, name, ctype);
			break;
		}
		for (int k = 0; k < r->nsp; k++) {
			char *tn = write_topic(r, r->sp[k].topic);
			if (!strcmp(tn, name)) {
				r->sp[k].codec = codec;
				r->sp[k].max_batch = mmb;
			}
			free(tn);
		}
	}
	for (int k = 0; k < r->nsp && !err; k++)
		if (!r->sp[k].codec)
			r->sp[k].codec = codec_for(r, NULL);
done:
	if (ev)
		rd_kafka_event_destroy(ev);
	for (size_t i = 0; i < n; i++) {
		rd_kafka_ConfigResource_destroy(rs[i]);
		free(tnames[i]);
	}
	free(rs);
	free(tnames);
	return err;
}

static km_err_t discover(repl_t *r, km_kafka_t *ks, km_kafka_t *kt)
{
	const struct rd_kafka_metadata *md = NULL, *tmd = NULL;
	rd_kafka_resp_err_t rerr;
	km_err_t err = KM_ERR_OK;

	char msg[1024];

	if ((rerr = rd_kafka_metadata(km_kafka_rk(ks), 1, NULL, &md, KM_KAFKA_TIMEOUT_MS)))
		return fail(r, km_kafka_err(ks, rerr, "Metadata", NULL, msg, sizeof(msg)), "%s", msg);
	if ((rerr = rd_kafka_metadata(km_kafka_rk(kt), 1, NULL, &tmd, KM_KAFKA_TIMEOUT_MS))) {
		rd_kafka_metadata_destroy(md);
		return fail(r, km_kafka_err(kt, rerr, "Metadata", NULL, msg, sizeof(msg)), "%s", msg);
	}
	for (int i = 0; i < md->topic_cnt && !err; i++) {
		const struct rd_kafka_metadata_topic *t = &md->topics[i];
		char *tname;
		int tparts = -1;

		if (!in_scope(r, t->topic))
			continue;
		/* A topic in scope that the source lists with an error was
		 * skipped here, silently, and never copied: say what it is. */
		if (t->err) {
			err = fail(r,
				   t->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED
					   ? KM_ERR_AUTHZ
					   : KM_ERR_KAFKA,
				   "%s topic '%s' is in scope but its metadata says: %s%s", r->src->role,
				   t->topic,
				   rd_kafka_err2str(t->err),
				   t->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED
					   ? " (grant DESCRIBE and READ on the topic to the source user)"
					   : " (try again once the source cluster is healthy)");
			break;
		}
		tname = write_topic(r, t->topic);
		for (int j = 0; j < tmd->topic_cnt; j++)
			if (!strcmp(tmd->topics[j].topic, tname) && !tmd->topics[j].err)
				tparts = tmd->topics[j].partition_cnt;
		if (tparts < 0)
			err = fail(r, KM_ERR_NOT_FOUND,
				   "%s topic '%s' (for %s '%s') does not exist: run "
				   "`kmigrate plan` and `kmigrate apply` first",
				   r->tgt->role, tname, r->src->role, t->topic);
		else if (tparts != t->partition_cnt) {
			emit(r, json_pack("{s:s, s:s, s:s, s:i, s:i}", "event", "nogo", "kind",
					  "partitions", "subject", t->topic, "source_partitions",
					  t->partition_cnt, "target_partitions", tparts));
			err = fail(r, KM_ERR_NOGO,
				   "target topic '%s' has %d partitions, the source '%s' has %d: "
				   "records must land on the same partition number, so replication "
				   "stops (fix the target topic, then `kmigrate plan`)",
				   tname, tparts, t->topic, t->partition_cnt);
		}
		free(tname);
		for (int p = 0; p < t->partition_cnt && !err; p++) {
			r->sp = km_realloc(r->sp, (size_t)(r->nsp + 1) * sizeof(*r->sp));
			r->sp[r->nsp].topic = km_strdup(t->topic);
			r->sp[r->nsp].partition = t->partitions[p].id;
			r->sp[r->nsp].topic_id = NULL;
			r->sp[r->nsp].codec = NULL;
			r->sp[r->nsp].max_batch = 0;
			r->sp[r->nsp].lo = r->sp[r->nsp].hi = -1;
			r->nsp++;
		}
	}
	/* The watermarks of every partition in two ListOffsets (log start,
	 * end), not two round trips per partition: at 2,000 partitions the
	 * start-up took ~2 s for them alone. */
	if (!err && r->nsp) {
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->nsp);
		for (int i = 0; i < r->nsp; i++)
			rd_kafka_topic_partition_list_add(l, r->sp[i].topic, r->sp[i].partition);
		if ((err = km_kafka_list_offsets(ks, l, KM_KAFKA_LOG_START, msg, sizeof(msg))))
			fail(r, err, "%s", msg);
		for (int i = 0; !err && i < r->nsp; i++)
			r->sp[i].lo = l->elems[i].offset;
		if (!err && (err = km_kafka_list_offsets(ks, l, KM_KAFKA_HWM, msg, sizeof(msg))))
			fail(r, err, "%s", msg);
		for (int i = 0; !err && i < r->nsp; i++)
			r->sp[i].hi = l->elems[i].offset;
		rd_kafka_topic_partition_list_destroy(l);
	}
	if (!err && !r->reverse)
		err = design_topics_seen(r, md);
	/* Reverse: every topic to copy back must be there on the target (a
	 * missing one would be left out silently). */
	for (int i = 0; !err && r->reverse && i < r->opts->n_start; i++) {
		char *tt = km_plan_target_topic(r->plan, r->opts->start[i].topic);
		bool seen = false;
		for (int j = 0; j < r->nsp && !seen; j++)
			seen = !strcmp(r->sp[j].topic, tt);
		if (!seen)
			err = fail(r, KM_ERR_NOT_FOUND,
				   "target topic '%s' (of source '%s') is not visible on the target: "
				   "nothing of it could be copied back (grant DESCRIBE and READ on it "
				   "to the target user)",
				   tt, r->opts->start[i].topic);
		free(tt);
	}
	if (!err && !r->nsp)
		err = fail(r, KM_ERR_NOT_FOUND,
			   "no source topic in the plan's scope is visible to the source user%s%s%s: "
			   "check topics.include, and that the user may DESCRIBE the topics",
			   r->plan->source.username ? " '" : "",
			   r->plan->source.username ? r->plan->source.username : "",
			   r->plan->source.username ? "'" : "");
	rd_kafka_metadata_destroy(md);
	rd_kafka_metadata_destroy(tmd);
	if (!err)
		err = topic_ids(r, ks);
	if (!err)
		err = target_codecs(r, kt);
	return err;
}

/* ---- progress ---------------------------------------------------------------- */

/* Reads partition k of the progress topic to its end with read_committed
 * and sets each part's next offset.  The fenced predecessor's open
 * transaction was aborted by init_transactions(), so what we read is
 * exactly what was committed.  A record that does not decode stops the
 * task (lib/mapstore.c): skipping it would copy the partition again from
 * the log start and duplicate it on the target. */
static km_err_t load_progress(repl_t *r, task_t *t)
{
	km_mapstore_t *ms = NULL;
	char e[1024];
	km_err_t err;

	if ((err = km_mapstore_read_progress(r->tgt, r->names.progress, t->id, &ms, e, sizeof(e))))
		return fail(r, err, "task %d: %s", t->id, e);
	for (int i = 0; i < t->nparts; i++) {
		part_t *p = &t->parts[i];
		const km_mapstore_progress_t *pr = km_mapstore_progress(ms, p->topic, p->partition);
		if (!pr)
			continue;
		p->next = pr->next;
		p->tgt_next = pr->tgt_next;
		p->recorded = true;
		free(p->progress_topic_id);
		p->progress_topic_id = pr->topic_id[0] ? km_strdup(pr->topic_id) : NULL;
	}
	km_mapstore_destroy(ms);
	return KM_ERR_OK;
}

/* ---- task lifecycle -------------------------------------------------------- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	slot_t *s = m->_private;
	(void)rk;
	(void)opaque;
	if (!s)
		return; /* bookkeeping records */
	s->err = m->err;
	s->tgt_offset = m->err ? -1 : m->offset;
	s->part->unreported -= s->bytes;
}

/* Produce requests written to a socket and not answered yet, counted by
 * librdkafka's interceptors on its broker threads, for drain().  Every
 * request written gets one answer (a response, an error or a timeout; a
 * retry is written and answered again), but a request purged before it
 * was written is answered too, so the count can fall below what is out:
 * drain() then flushes early and a partition may spin for that flush's
 * 2 ms.  It is reset once nothing is outstanding. */
static rd_kafka_resp_err_t on_request_sent(rd_kafka_t *rk, int sockfd, const char *brokername,
					   int32_t brokerid, int16_t api, int16_t apiver,
					   int32_t corrid, size_t size, void *opaque)
{
	(void)rk, (void)sockfd, (void)brokername, (void)brokerid, (void)apiver, (void)corrid,
		(void)size;
	if (api == 0) /* Produce */
		atomic_fetch_add(&((task_t *)opaque)->produce_out, 1);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t on_response_received(rd_kafka_t *rk, int sockfd,
						const char *brokername, int32_t brokerid,
						int16_t api, int16_t apiver, int32_t corrid,
						size_t size, int64_t rtt, rd_kafka_resp_err_t err,
						void *opaque)
{
	(void)rk, (void)sockfd, (void)brokername, (void)brokerid, (void)apiver, (void)corrid,
		(void)size, (void)rtt, (void)err;
	if (api == 0)
		atomic_fetch_sub(&((task_t *)opaque)->produce_out, 1);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t on_new(rd_kafka_t *rk, const rd_kafka_conf_t *conf, void *opaque,
				  char *errstr, size_t errstr_size)
{
	rd_kafka_resp_err_t e;
	(void)conf, (void)errstr, (void)errstr_size;
	if ((e = rd_kafka_interceptor_add_on_request_sent(rk, "kmigrate", on_request_sent, opaque)))
		return e;
	return rd_kafka_interceptor_add_on_response_received(rk, "kmigrate", on_response_received,
							     opaque);
}

/* The source records taken from the queue but not used yet: after a
 * rewind they come again from the log. */
static void drop_batch(task_t *t)
{
	for (; t->ib < t->nb; t->ib++)
		rd_kafka_message_destroy(t->batch[t->ib]);
	t->ib = t->nb = 0;
}

/* The next source record or event, NULL if none came within timeout_ms.
 * One call into librdkafka per POLL_BATCH records, not one per record.
 * The batch takes only what is queued already (timeout 0): a batch that
 * waited to fill up would keep emptying the queue, the fetcher would keep
 * fetching, and large records would pile up outside the memory budget. */
static rd_kafka_message_t *next_message(task_t *t, int timeout_ms)
{
	if (t->ib == t->nb) {
		ssize_t k = rd_kafka_consume_batch_queue(t->cq, 0, t->batch, POLL_BATCH);
		t->ib = 0;
		t->nb = k > 0 ? (int)k : 0;
		if (!t->nb)
			return rd_kafka_consumer_poll(t->c, timeout_ms);
	}
	return t->batch[t->ib++];
}

/* Closes the task's clients, on its own thread as it ends: each close
 * waits for librdkafka's threads (up to a second), and the tasks then
 * close theirs at the same time instead of one after another in
 * task_join() (3 s of a 2,000-partition run's 8 s were spent there). */
static void task_close_clients(task_t *t)
{
	drop_batch(t);
	if (t->cq)
		rd_kafka_queue_destroy(t->cq);
	t->cq = NULL;
	/* The main thread reads watermarks through t->c under t->lock
	 * (part_metrics()). */
	pthread_mutex_lock(&t->lock);
	rd_kafka_t *c = t->c;
	t->c = NULL;
	pthread_mutex_unlock(&t->lock);
	if (c) {
		rd_kafka_consumer_close(c);
		rd_kafka_destroy(c);
	}
	for (int i = 0; i < t->nparts; i++) {
		if (t->parts[i].rkt_tgt)
			rd_kafka_topic_destroy(t->parts[i].rkt_tgt);
		t->parts[i].rkt_tgt = NULL;
	}
	if (t->rkt_offmap)
		rd_kafka_topic_destroy(t->rkt_offmap);
	if (t->rkt_progress)
		rd_kafka_topic_destroy(t->rkt_progress);
	t->rkt_offmap = t->rkt_progress = NULL;
	if (t->p)
		rd_kafka_destroy(t->p);
	t->p = NULL;
}

static void task_destroy(task_t *t)
{
	if (!t)
		return;
	task_close_clients(t);
	for (int i = 0; i < t->nparts; i++) {
		free(t->parts[i].topic);
		free(t->parts[i].tgt_topic);
		free(t->parts[i].topic_id);
		free(t->parts[i].progress_topic_id);
	}
	free(t->parts);
	free(t->slots);
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->commit_lock);
	free(t);
}

static km_err_t assign_source(repl_t *r, task_t *t)
{
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(t->nparts);
	rd_kafka_resp_err_t rerr;

	drop_batch(t);
	t->reassign = false;
	/* A topic handle is only known alive while its partitions are
	 * assigned (or a record of it is held): after an (re)assignment
	 * part_of() learns the handles again, so that a freed one whose
	 * address came back for another topic can never match. */
	t->last_part = NULL;
	for (int i = 0; i < t->nparts; i++) {
		t->parts[i].rkt_src = NULL;
		t->parts[i].pending_next = t->parts[i].next;
		t->parts[i].skip = false;
		if (t->parts[i].excluded)
			continue; /* its authority is the target: not fetched */
		rd_kafka_topic_partition_list_add(tp, t->parts[i].topic, t->parts[i].partition)->offset =
			t->parts[i].next;
	}
	rerr = rd_kafka_assign(t->c, tp);
	rd_kafka_topic_partition_list_destroy(tp);
	if (rerr)
		return fail(r, KM_ERR_KAFKA, "task %d: cannot assign source partitions: %s", t->id,
			    rd_kafka_err2str(rerr));
	return KM_ERR_OK;
}

static km_err_t task_step(repl_t *r, task_t *t);

static km_err_t recreated(repl_t *r, const part_t *p, const char *was, const char *now);

/* The topic's id on the cluster now: 1 and *idp (base64, owned), 0 when
 * the topic does not exist, -1 when that is unknown (the cluster did not
 * answer).  Any client handle can ask. */
static int topic_id_now(rd_kafka_t *rk, const char *topic, char **idp)
{
	const char *names[1] = {topic};
	rd_kafka_TopicCollection_t *tc = rd_kafka_TopicCollection_of_topic_names(names, 1);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *o =
		km_kafka_admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBETOPICS, KM_KAFKA_TIMEOUT_MS);
	rd_kafka_event_t *ev;
	int rc = -1;

	*idp = NULL;
	rd_kafka_DescribeTopics(rk, tc, o, q);
	if ((ev = rd_kafka_queue_poll(q, KM_KAFKA_TIMEOUT_MS))) {
		const rd_kafka_DescribeTopics_result_t *res = rd_kafka_event_DescribeTopics_result(ev);
		const rd_kafka_TopicDescription_t **td = NULL;
		size_t n = 0;
		if (res)
			td = rd_kafka_DescribeTopics_result_topics(res, &n);
		rd_kafka_resp_err_t e = n == 1 ? rd_kafka_error_code(
						     rd_kafka_TopicDescription_error(td[0]))
					       : RD_KAFKA_RESP_ERR__FAIL;
		const rd_kafka_Uuid_t *u = n == 1 ? rd_kafka_TopicDescription_topic_id(td[0]) : NULL;
		if (!e && u) {
			*idp = km_strdup(rd_kafka_Uuid_base64str(u));
			rc = 1;
		} else if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
			rc = 0;
		}
		rd_kafka_event_destroy(ev);
	}
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
	rd_kafka_TopicCollection_destroy(tc);
	return rc;
}

/* librdkafka reports a deleted topic of an assignment as a generic error,
 * not as a message: remember it, the task's loop looks (below). */
static void source_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	task_t *t = opaque;
	(void)rk;
	(void)reason;
	if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
		atomic_store(&t->topic_error, true);
}

/* After the source said "unknown topic": does each of the task's topics
 * still exist, under the same id?  A topic deleted, or deleted and
 * recreated, while it was being copied stops the migration loudly. */
static km_err_t check_topics(repl_t *r, task_t *t)
{
	atomic_store(&t->topic_error, false);
	for (int i = 0; i < t->nparts; i++) {
		part_t *p = &t->parts[i];
		char *now;
		if (i > 0 && !strcmp(p->topic, t->parts[i - 1].topic))
			continue;
		int rc = topic_id_now(t->c, p->topic, &now);
		if (rc == 0)
			return fail(r, KM_ERR_NOT_FOUND,
				    "source topic '%s' was deleted while it was being copied: "
				    "replication stops (what was copied up to the last commit "
				    "stays on the target; decide with the topic's owner)",
				    p->topic);
		if (rc == 1 && p->topic_id && strcmp(now, p->topic_id)) {
			recreated(r, p, p->topic_id, now);
			free(now);
			return r->err;
		}
		free(now);
	}
	return KM_ERR_OK;
}

/* Stops the migration for a source topic that was deleted and recreated
 * under the same name: its offsets restarted, and what the target holds is
 * the old topic's. */
static km_err_t recreated(repl_t *r, const part_t *p, const char *was, const char *now)
{
	emit(r, json_pack("{s:s, s:s, s:i, s:s, s:s}", "event", "loss", "topic", p->topic,
			  "partition", p->partition, "was", was, "now", now));
	return fail(r, KM_ERR_NOGO,
		    "source topic '%s' was deleted and recreated since it was copied "
		    "(topic id %s, now %s): its offsets restarted and the target holds "
		    "the old topic's records; replication stops (decide with the "
		    "owner, then start a new migration for it)",
		    p->topic, was, now);
}

/* Reverse: where a partition never copied back starts -- its start point
 * (the target's high watermark at the switch).  A start below the target's
 * log start means records written after the switch were deleted before
 * they were copied back: loud loss, never a skip.  A start beyond the end
 * means the target partition is not the one switched (recreated or
 * truncated): stop, never guess.  @locality the task's thread */
static km_err_t reverse_start(repl_t *r, part_t *p, int64_t lo, int64_t hi)
{
	const km_repl_start_t *st = NULL;

	for (int i = 0; i < r->opts->n_start && !st; i++)
		if (!strcmp(r->opts->start[i].topic, p->tgt_topic) &&
		    r->opts->start[i].partition == p->partition)
			st = &r->opts->start[i];
	if (!st)
		return fail(r, KM_ERR_NOGO,
			    "target '%s'[%d] has no switch point for source '%s': it is not a "
			    "partition the wave's switch recorded, so nothing of it is copied back "
			    "(was a partition added on the target after the switch?)",
			    p->topic, p->partition, p->tgt_topic);
	if (st->offset < lo) {
		emit(r, json_pack("{s:s, s:s, s:i, s:I, s:I, s:I}", "event", "loss", "topic",
				  p->topic, "partition", p->partition, "next",
				  (json_int_t)st->offset, "log_start", (json_int_t)lo, "lost",
				  (json_int_t)(lo - st->offset)));
		return fail(r, KM_ERR_NOGO,
			    "target '%s'[%d]: %lld records written after the switch (offsets "
			    "%lld..%lld) were deleted before they were copied back: data lost, the "
			    "reverse copy stops",
			    p->topic, p->partition, (long long)(lo - st->offset),
			    (long long)st->offset, (long long)lo - 1);
	}
	if (st->offset > hi)
		return fail(r, KM_ERR_NOGO,
			    "target '%s'[%d] ends at %lld, before its switch point %lld: it is not "
			    "the partition that was switched (deleted and recreated?), the reverse "
			    "copy stops",
			    p->topic, p->partition, (long long)hi, (long long)st->offset);
	p->next = st->offset;
	return KM_ERR_OK;
}

/* A transaction's length.  Its cost has a part per record and a part per
 * partition it touches: AddPartitionsToTxn, a produce batch, a commit
 * marker, a progress record and an offset-map run for each.  At 10,000
 * records a transaction of a task owning 500 partitions put ~20 records
 * into each, and the per-partition part dominated (2,000 partitions copied
 * at a third of the 12-partition rate; docs/internals/replication.md,
 * "Many partitions").  So, unless the plan or the command line fixes them,
 * a transaction takes TXN_RECORDS_PER_PART records per partition the task
 * owns (at least 10,000) and TXN_MS_PER_PART ms per partition (at least
 * 250 ms, at most TXN_MS_MAX).  Memory does not grow with it: a transaction
 * is filled in chunks of at most TXN_CHUNK records and txn_max_bytes, each
 * released once delivered (task_step()). */
#define TXN_CHUNK 10000
#define TXN_RECORDS_PER_PART 100
#define TXN_MS_PER_PART 2
#define TXN_MS_MAX 1000
static void txn_size(repl_t *r, task_t *t)
{
	int64_t recs = (int64_t)t->nparts * TXN_RECORDS_PER_PART;
	int64_t ms = (int64_t)t->nparts * TXN_MS_PER_PART;

	t->txn_records = r->opts->txn_max_records > 0 ? r->opts->txn_max_records
						      : (recs > 10000 ? recs : 10000);
	t->txn_ms = r->opts->txn_max_ms > 0 ? r->opts->txn_max_ms
					    : (int)(ms < 250 ? 250 : ms > TXN_MS_MAX ? TXN_MS_MAX : ms);
	t->nslots = t->txn_records < TXN_CHUNK ? (int)t->txn_records : TXN_CHUNK;
}

/* Makes t ready to copy: fences the task's previous owner, loads its
 * progress, checks for records lost to retention, assigns the source.
 * @locality the task's thread */
static km_err_t task_init(repl_t *r, task_t *t)
{
	char txid[400], cgroup[400], linger[16], bufkb[32], fetchb[32], qkb[32], batchb[32];
	int64_t batch = 1000000;
	int id = t->id;
	rd_kafka_error_t *e;

	for (int i = 0; i < r->nsp; i++) {
		if (km_mapstore_task_of(r->sp[i].topic, r->sp[i].partition, r->ntasks, r->layout) != id)
			continue;
		t->parts = km_realloc(t->parts, (size_t)(t->nparts + 1) * sizeof(*t->parts));
		part_t *p = &t->parts[t->nparts++];
		memset(p, 0, sizeof(*p));
		p->topic = km_strdup(r->sp[i].topic);
		p->tgt_topic = write_topic(r, r->sp[i].topic);
		p->partition = r->sp[i].partition;
		p->hwm = r->sp[i].hi;
		p->log_start = r->sp[i].lo;
		p->next = -1;
		p->tgt_next = -1;
		p->pending_tgt_next = -1;
		p->topic_id = km_strdup(r->sp[i].topic_id);
		p->codec = r->sp[i].codec ? r->sp[i].codec : "none";
		/* batch.size is one per producer, the limit one per topic: a
		 * batch of several records that each fit, above a small
		 * topic's max.message.bytes, is refused whole (librdkafka does
		 * not split it as Java's producer does).  So the task's batches
		 * stay under its smallest topic's limit, with room for a codec
		 * that grows incompressible data (lz4: < 0.5 %) and the batch
		 * header; a record larger than that still goes alone. */
		int64_t mb = r->sp[i].max_batch;
		if (mb > 0 && mb - mb / 64 - 512 < batch)
			batch = mb - mb / 64 - 512 > 1 ? mb - mb / 64 - 512 : 1;
	}
	snprintf(batchb, sizeof(batchb), "%lld", (long long)batch);
	t->batch_bytes = batch;
	/* Reverse: ids of its own, so that the two directions never fence
	 * each other's tasks. */
	snprintf(txid, sizeof(txid), r->reverse ? "kmigrate.%s.rtask.%d" : "kmigrate.%s.task.%d",
		 r->plan->migration, id);
	/* Long: partial batches wait for drain(), which makes them ready
	 * when nothing can queue behind them (its comment). */
	snprintf(linger, sizeof(linger), "%d", 1000);
	/* Memory is bounded by configuration, not by topic size: the
	 * process budget (max_buffer_bytes) is shared by its tasks.  Of a
	 * task's share, a quarter is the consumer's queue of prefetched
	 * records, up to a quarter the fetch response in flight (the broker
	 * may overshoot it by one record batch), and half the open
	 * transaction's chunk, whose records are copied into the producer's
	 * queue and held there until their delivery reports; a transaction
	 * of several chunks holds one at a time. */
	int64_t per_task = r->opts->max_buffer_bytes / r->ntasks;
	if (per_task < 4 * 1024 * 1024)
		per_task = 4 * 1024 * 1024;
	t->txn_max_bytes = per_task / 2;
	/* Under a throttle, a transaction holds at most a quarter second of
	 * the process's rate: the throttle accounts bytes after the commit,
	 * so this bounds the burst before the first sleep. */
	if (r->opts->max_bytes_per_sec > 0) {
		t->txn_bytes = r->opts->max_bytes_per_sec / 4 > 65536
				       ? r->opts->max_bytes_per_sec / 4
				       : 65536;
		if (t->txn_max_bytes > t->txn_bytes)
			t->txn_max_bytes = t->txn_bytes;
	}
	snprintf(bufkb, sizeof(bufkb), "%lld", (long long)(per_task / 4 / 1024));
	/* A fetch response is freed as soon as its records are produced
	 * (copied: fill_chunk()), so a fetch takes its full quarter.  When
	 * the records were referenced until their delivery reports, a chunk
	 * pinned every response it touched and fetches had to stay at a
	 * sixteenth (1 MB): a task of 500 partitions then spent 2 CPU s of
	 * the source broker on fetch requests per 750,000 records, 0.8 s at
	 * 4 MB (docs/internals/replication.md, "Many partitions").
	 * librdkafka wants at least message.max.bytes (1 MB). */
	int64_t fetch = per_task / 4 < 1000000 ? 1000000 : per_task / 4;
	snprintf(fetchb, sizeof(fetchb), "%lld", (long long)fetch);
	snprintf(qkb, sizeof(qkb), "%lld", (long long)(t->txn_max_bytes / 1024 + 1024));
	/* message.copy.max.bytes stays librdkafka's 64 KiB: values up to it
	 * are copied into the produce request, which goes out as one buffer.
	 * At 128 B (when records referenced their fetch responses) every
	 * value was a buffer of its own in sendmsg()'s iovec: -12 % CPU per
	 * 512 B record at 64 KiB, for the requests in flight and waiting
	 * (one of each per partition, each up to batch.size). */

	const char *pprops[] = {"transactional.id", txid, "enable.idempotence", "true",
				"acks", "all", "linger.ms", linger, "batch.size", batchb, "message.copy.max.bytes", "65536",
				"queue.buffering.max.kbytes", qkb, "compression.type", "none",
				"transaction.timeout.ms", "60000", "message.max.bytes", "100000000",
				NULL};
	rd_kafka_conf_t *conf;
	char rerr[512];
	km_err_t cerr;
	if ((cerr = km_kafka_conf_new(r->tgt, pprops, &conf, rerr, sizeof(rerr))))
		return fail(r, cerr, "%s", rerr);
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_resp_err_t ierr = rd_kafka_conf_interceptor_add_on_new(conf, "kmigrate", on_new, t);
	if (ierr) {
		rd_kafka_conf_destroy(conf);
		return fail(r, KM_ERR_KAFKA, "task %d: cannot add interceptors: %s", id,
			    rd_kafka_err2str(ierr));
	}
	if (!(t->p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		return fail(r, KM_ERR_KAFKA, "task %d: cannot create producer: %s", id, rerr);
	}
	/* Fences the previous owner of this task and aborts its open
	 * transaction: from here on, only we can write for task id. */
	if ((e = rd_kafka_init_transactions(t->p, 60000))) {
		fail(r, rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED
				? KM_ERR_AUTHZ
				: KM_ERR_KAFKA,
		     "task %d: init_transactions for '%s' failed: %s%s", id, txid,
		     rd_kafka_error_string(e),
		     rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED
			     ? " (grant WRITE and DESCRIBE on TRANSACTIONAL_ID 'kmigrate.' PREFIXED)"
			     : "");
		rd_kafka_error_destroy(e);
		return r->err;
	}
	if (load_progress(r, t))
		return r->err;
	/* Topics already cut over are left alone from the start: neither
	 * copied nor checked (their retention or identity no longer matters
	 * to this migration's copy). */
	task_apply_exclusions(r, t);
	/* A partition never copied starts at the source's log start.  A
	 * partition whose progress fell below the log start lost records to
	 * retention before they were copied: say so, never skip. */
	for (int i = 0; i < t->nparts; i++) {
		part_t *p = &t->parts[i];
		int64_t lo = p->log_start, hi = p->hwm;
		/* The codec is a topic property in librdkafka: one producer
		 * writes topics of different compression.type. */
		rd_kafka_topic_conf_t *tc = rd_kafka_topic_conf_new();
		if (rd_kafka_topic_conf_set(tc, "compression.type", p->codec, rerr, sizeof(rerr)) !=
		    RD_KAFKA_CONF_OK)
			KM_BUG("compression.type '%s': %s", p->codec, rerr);
		p->rkt_tgt = rd_kafka_topic_new(t->p, p->tgt_topic, tc);
		if (p->excluded)
			continue;
		if (p->next >= 0 && p->progress_topic_id && p->topic_id &&
		    strcmp(p->progress_topic_id, p->topic_id))
			return recreated(r, p, p->progress_topic_id, p->topic_id);
		if (p->next < 0 && r->reverse) {
			/* Reverse: the records after the switch point are the new
			 * history; what is before it came from the source. */
			if (reverse_start(r, p, lo, hi))
				return r->err;
		} else if (p->next < 0) {
			p->next = lo;
		} else if (p->next < lo) {
			emit(r, json_pack("{s:s, s:s, s:i, s:I, s:I, s:I}", "event", "loss", "topic",
					  p->topic, "partition", p->partition, "next", (json_int_t)p->next,
					  "log_start", (json_int_t)lo, "lost", (json_int_t)(lo - p->next)));
			fail(r, KM_ERR_NOGO,
			     "%s '%s'[%d]: %lld records (offsets %lld..%lld) were deleted by "
			     "retention before they were copied: data lost, replication stops",
			     r->src->role, p->topic, p->partition, (long long)(lo - p->next),
			     (long long)p->next, (long long)lo - 1);
			return r->err;
		}
		if (p->next >= hi)
			p->caught_up = true;
	}
	/* The producer learns the leaders of every topic it writes in one
	 * Metadata request now, not topic by topic while the first
	 * transaction waits (its records sat queued for want of a leader:
	 * the first transaction of a task of 500 partitions took 2.5 s, the
	 * next ones 0.1 s). */
	t->rkt_offmap = rd_kafka_topic_new(t->p, r->names.offmap, NULL);
	t->rkt_progress = rd_kafka_topic_new(t->p, r->names.progress, NULL);
	const struct rd_kafka_metadata *md = NULL;
	if (!rd_kafka_metadata(t->p, 0, NULL, &md, KM_KAFKA_TIMEOUT_MS))
		rd_kafka_metadata_destroy(md);
	snprintf(cgroup, sizeof(cgroup),
		 r->reverse ? "kmigrate.%s.reverse-reader" : "kmigrate.%s.source-reader",
		 r->plan->migration);
	const char *cprops[] = {"group.id", cgroup, "enable.auto.commit", "false",
				"enable.auto.offset.store", "false", "isolation.level", "read_committed",
				"auto.offset.reset", "error", "enable.partition.eof", "true",
				"fetch.max.bytes", fetchb, "queued.max.messages.kbytes", bufkb,
				"fetch.wait.max.ms", "50",
				/* librdkafka waits fetch.queue.backoff.ms (1 s by
				 * default) before fetching again once the queue
				 * was full: with a bounded queue the task then
				 * idled half the time (bench/README.md). */
				"fetch.queue.backoff.ms", "20", NULL};
	if (!(t->c = client(r, r->src, RD_KAFKA_CONSUMER, cprops, source_error_cb, t)))
		return r->err ? r->err : KM_ERR_KAFKA;
	t->cq = rd_kafka_queue_get_consumer(t->c);
	txn_size(r, t);
	t->slots = km_calloc((size_t)t->nslots, sizeof(*t->slots));
	if (assign_source(r, t))
		return r->err;
	emit(r, json_pack("{s:s, s:i, s:i, s:s}", "event", "task", "task", id, "partitions",
			  t->nparts, "state", "started"));
	return KM_ERR_OK;
}

/* The task's thread: initialise, then one transaction after another until
 * told to stop, fenced, or the replicator failed. */
static void *task_main(void *arg)
{
	task_t *t = arg;
	repl_t *r = t->r;

	if (task_init(r, t)) {
		t->dead = true;
		task_close_clients(t);
		return NULL;
	}
	t->ready = true;
	while (!t->stop && !t->dead && !r->err && !(r->opts->stop && *r->opts->stop))
		task_step(r, t);
	if (t->in_txn) {
		/* Stopped between produce and commit: abort, so the next
		 * owner starts from the committed progress. */
		rd_kafka_error_t *e = rd_kafka_abort_transaction(t->p, 10000);
		if (e)
			rd_kafka_error_destroy(e);
		t->in_txn = false;
	}
	task_close_clients(t);
	return NULL;
}

/* ---- one transaction -------------------------------------------------------- */

/* The part of a consumed record.  Called for every record: a task of a
 * 1,000-partition estate has ~250 parts, and a strcmp over them per record
 * was a cost that grew with the partition count.  Records come in runs of
 * one partition (a fetched batch), so the last hit answers most; otherwise
 * parts are compared by the consumer's topic handle (one per topic and
 * client, stable while the client lives) and the name only until a part's
 * handle is known. */
static part_t *part_of(task_t *t, const rd_kafka_message_t *m)
{
	part_t *p = t->last_part;
	const char *tn = NULL;

	if (p && p->rkt_src == m->rkt && p->partition == m->partition)
		return p;
	for (int i = 0; i < t->nparts; i++) {
		p = &t->parts[i];
		if (p->partition != m->partition)
			continue;
		if (p->rkt_src) {
			if (p->rkt_src != m->rkt)
				continue;
		} else {
			if (!tn)
				tn = rd_kafka_topic_name(m->rkt);
			if (strcmp(p->topic, tn))
				continue;
			p->rkt_src = m->rkt;
		}
		t->last_part = p;
		return p;
	}
	return NULL;
}

/* Aborts the open transaction and rewinds the source to the committed
 * positions, so that the batch is copied again, whole, by the next one. */
static km_err_t abort_and_rewind(repl_t *r, task_t *t, const char *why)
{
	rd_kafka_error_t *e;

	if (t->in_txn) {
		e = rd_kafka_abort_transaction(t->p, 60000);
		t->in_txn = false;
		if (e) {
			bool fatal = rd_kafka_error_is_fatal(e);
			fail(r, KM_ERR_KAFKA, "task %d: abort after '%s' failed: %s%s", t->id, why,
			     rd_kafka_error_string(e), fatal ? " (fenced or fatal: stopping)" : "");
			rd_kafka_error_destroy(e);
			t->dead = true;
			return r->err;
		}
	}
	pthread_mutex_lock(&r->lock);
	r->stats->aborts++;
	pthread_mutex_unlock(&r->lock);
	km_metrics_add(r->opts->metrics, "kmigrate_replication_transactions_total", 1, "direction",
		       direction(r), "result", "aborted", NULL);
	emit(r, json_pack("{s:s, s:i, s:s}", "event", "abort", "task", t->id, "reason", why));
	for (int i = 0; i < t->nparts; i++) {
		memset(&t->parts[i].rb, 0, sizeof(t->parts[i].rb));
		t->parts[i].copying = false;
		t->parts[i].unreported = 0;
	}
	return assign_source(r, t);
}

static km_err_t txn_error(repl_t *r, task_t *t, rd_kafka_error_t *e, const char *what)
{
	char why[600];
	km_err_t err;

	snprintf(why, sizeof(why), "%s: %s", what, rd_kafka_error_string(e));
	metric_error(r, "transaction", rd_kafka_error_code(e));
	if (rd_kafka_error_is_fatal(e) ||
	    rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__FENCED ||
	    rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_PRODUCER_FENCED) {
		t->dead = true;
		rd_kafka_error_destroy(e);
		/* Fenced: another replicator owns this task now.  Not a
		 * failure of the migration, the group will rebalance. */
		emit(r, json_pack("{s:s, s:i, s:s, s:s}", "event", "task", "task", t->id, "state",
				  "fenced", "reason", why));
		return KM_ERR_OK;
	}
	rd_kafka_error_destroy(e);
	err = abort_and_rewind(r, t, why);
	return err;
}

/* schemas.ids: rewrite: the schema ID of a wire-format key and value
 * becomes the target registry's, in the consumer's buffer (which the
 * produced record references).  An ID the map does not know stops the
 * copy: never copied with a meaningless ID, never skipped. */
static int rewrite_ids(repl_t *r, rd_kafka_message_t *m, const part_t *p)
{
	char why[400];

	if (!km_schemas_rewrite(r->idmap, m->key, m->key_len, why, sizeof(why)) &&
	    !km_schemas_rewrite(r->idmap, m->payload, m->len, why, sizeof(why)))
		return 0;
	fail(r, KM_ERR_NOGO, "'%s'[%d] offset %lld: %s", p->topic, p->partition,
	     (long long)m->offset, why);
	return -1;
}

/* Queues a bookkeeping record in the open transaction.  @returns the
 * produce error, if any (the caller aborts). */
static rd_kafka_resp_err_t put_bookkeeping(task_t *t, rd_kafka_topic_t *rkt, const char *key,
					   const char *val)
{
	rd_kafka_resp_err_t err;

	while ((err = rd_kafka_producev(t->p, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(t->id),
					RD_KAFKA_V_KEY(key, strlen(key)),
					RD_KAFKA_V_VALUE((void *)val, strlen(val)),
					RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
	       RD_KAFKA_RESP_ERR__QUEUE_FULL)
		rd_kafka_poll(t->p, 10);
	return err;
}

/* Takes the bytes a task just committed out of the process's bucket and
 * sleeps off the debt, if any.  The tasks share one bucket, so N tasks
 * together stay under max_bytes_per_sec (each task alone did before: 4
 * tasks copied 4-5x the limit).  The bucket holds at most a quarter second
 * of credit, so an idle spell does not turn into a burst.  The sleep is
 * cut short only by a stop signal or a failure, so a run's average stays
 * under the limit up to its last byte.  @locality a task's thread */
static void throttle(repl_t *r, int64_t bytes)
{
	int64_t rate = r->opts->max_bytes_per_sec, wait_ms = 0, now;

	if (rate <= 0 || bytes <= 0)
		return;
	pthread_mutex_lock(&r->lock);
	now = km_mono_ms();
	if (!r->tb_last_ms)
		r->tb_last_ms = now;
	r->tb_tokens += (now - r->tb_last_ms) * rate / 1000;
	if (r->tb_tokens > rate / 4)
		r->tb_tokens = rate / 4;
	r->tb_last_ms = now;
	r->tb_tokens -= bytes;
	if (r->tb_tokens < 0)
		wait_ms = -r->tb_tokens * 1000 / rate;
	pthread_mutex_unlock(&r->lock);
	for (int64_t end = km_mono_ms() + wait_ms; wait_ms > 0 && !r->err;) {
		int64_t left = end - km_mono_ms();
		if (left <= 0 || (r->opts->stop && *r->opts->stop))
			break;
		if (left > 100)
			left = 100;
		struct timespec ts = {0, left * 1000000};
		nanosleep(&ts, NULL);
	}
}

/* commit_transaction with its retries; *committed tells whether it
 * happened (otherwise txn_error() aborted and rewound, or the task was
 * fenced). */
static km_err_t commit_txn(repl_t *r, task_t *t, bool *committed)
{
	rd_kafka_error_t *e;

	if ((e = rd_kafka_commit_transaction(t->p, 60000))) {
		if (rd_kafka_error_txn_requires_abort(e) || !rd_kafka_error_is_retriable(e))
			return txn_error(r, t, e, "commit_transaction");
		/* Retriable: the commit may or may not have happened; retry
		 * the commit itself, which is idempotent. */
		rd_kafka_error_destroy(e);
		for (int k = 0; k < RETRIES; k++) {
			if (!(e = rd_kafka_commit_transaction(t->p, 60000)))
				break;
			if (!rd_kafka_error_is_retriable(e))
				return txn_error(r, t, e, "commit_transaction");
			rd_kafka_error_destroy(e);
		}
		if (e) {
			e = rd_kafka_error_new(RD_KAFKA_RESP_ERR__TIMED_OUT, "commit retries exhausted");
			return txn_error(r, t, e, "commit_transaction");
		}
	}
	*committed = true;
	return KM_ERR_OK;
}

/* True when a partition of t still has a full batch's worth of records
 * without delivery reports (librdkafka counts a batch full by key and value
 * bytes, as unreported does): the producer sends it by itself, without
 * flushing (drain()).  @locality the task's thread */
static bool full_batch_left(const task_t *t)
{
	for (int i = 0; i < t->nparts; i++)
		if (t->parts[i].unreported >= t->batch_bytes)
			return true;
	return false;
}

/* Waits until every record produced so far has its delivery report
 * (served into its slot by dr_cb()), without letting a broker thread of
 * librdkafka spin.  librdkafka 2.8's idempotent producer has one request
 * in flight per partition, and a partition whose next batch is ready
 * while its request is out polls its socket with a zero timeout until the
 * answer comes: 0.2-2 million poll() calls per million records when
 * linger.ms was 5 and this waited for reports alone, more when it flushed
 * (docs/internals/replication.md, "CPU per byte").  A batch is ready when
 * full, when linger.ms has passed since its first record, or at once
 * while rd_kafka_flush() runs.  So linger.ms is long (1 s, longer than a
 * request should take): full batches go out by themselves, one after the
 * other, and nothing else does.  Here we wait, not flushing, while produce
 * requests are out (counted by the interceptors) or a partition still has
 * a full batch to send; then nothing is in flight and every partition has
 * at most a partial batch left, and a short flush (2 ms) sends them all at
 * once.  A rest that does not fit one request (librdkafka fills a request
 * by its size on the wire, headers and framing included) waits behind the
 * first part, spinning only until the flush returns, and goes with the
 * next one.  The whole wait is bounded (2 s, as if a count were wrong),
 * then plain flushes finish it.  @returns false if timeout_ms passed
 * first.  @locality the task's thread */
static bool drain(task_t *t, int timeout_ms)
{
	int64_t start = km_mono_ms(), end = start + timeout_ms;
	const char *how = NULL; /* NULL: nothing was outstanding */

	while (rd_kafka_outq_len(t->p) > 0) {
		int64_t now = km_mono_ms();
		if (now >= end)
			return false;
		if (!how)
			how = "unflushed";
		if (now - start >= 2000) {
			how = "bounded";
			rd_kafka_flush(t->p, 100);
		} else if (atomic_load(&t->produce_out) > 0 || full_batch_left(t)) {
			rd_kafka_poll(t->p, 5);
		} else {
			how = "flushed";
			rd_kafka_flush(t->p, 2);
		}
	}
	/* Nothing outstanding: nothing can be out. */
	atomic_store(&t->produce_out, 0);
	if (how)
		km_metrics_add(t->r->opts->metrics, "kmigrate_replication_drains_total", 1,
			       "direction", direction(t->r), "result", how, NULL);
	return true;
}

/* Settles a chunk of the open transaction, slots[0..n): waits for its
 * delivery reports (every record's target offset), feeds them into the
 * offset-map runs (a finished run is queued into the transaction), and
 * releases the source records.  @returns true when settled; false when the
 * transaction is over (aborted and rewound, or a failure), *err then being
 * what task_step() returns.  @locality the task's thread */
static bool settle(repl_t *r, task_t *t, int n, km_err_t *err)
{
	char key[KM_MAPSTORE_KEY_MAX], val[KM_MAPSTORE_VALUE_MAX];
	km_offrun_t run;
	int i;

	if (!drain(t, 60000))
		return (*err = abort_and_rewind(r, t, "delivery reports timed out")), false;
	for (i = 0; i < n; i++) {
		if (t->slots[i].err) {
			char why[300];
			rd_kafka_resp_err_t de = t->slots[i].err;
			metric_error(r, "produce", de);
			if (de == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
				return (*err = fail(r, KM_ERR_AUTHZ,
					    "writing '%s' on the target: %s (grant WRITE on the topic "
					    "to the replicator's principal)",
					    t->slots[i].part->tgt_topic, rd_kafka_err2str(de))), false;
			}
			if (de == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
				/* Deterministic: the same batch fails again after a
				 * rewind, for ever.  Stop, naming the fix. */
				const char *tt = t->slots[i].part->tgt_topic;
				int tp = t->slots[i].part->partition;
				int64_t so = t->slots[i].src_offset;
				return (*err = fail(r, KM_ERR_CONFLICT,
					    "writing '%s'[%d] on the target: %s (the batch from "
					    "source offset %lld does not fit the target topic's "
					    "max.message.bytes as sent): set replication.compression "
					    "(records the source admitted compressed need a codec) or "
					    "raise max.message.bytes in the target design",
					    tt, tp, rd_kafka_err2str(de), (long long)so)), false;
			}
			snprintf(why, sizeof(why), "delivery to '%s'[%d]: %s",
				 t->slots[i].part->tgt_topic, t->slots[i].part->partition,
				 rd_kafka_err2str(de));
			return (*err = abort_and_rewind(r, t, why)), false;
		}
		/* librdkafka may omit the offset of a retried idempotent
		 * record: never guess it, copy the batch again. */
		if (t->slots[i].tgt_offset < 0)
			return (*err = abort_and_rewind(r, t, "a delivery report without an offset")), false;
	}

	/* The chunk's offset-map runs, in the open transaction. */
	for (i = 0; i < n; i++) {
		slot_t *s = &t->slots[i];
		if (km_offrun_feed(&s->part->rb, s->src_offset, s->tgt_offset, &run)) {
			if (km_mapstore_key_encode(s->part->topic, s->part->partition, key,
						   sizeof(key)) < 0 ||
			    km_mapstore_run_encode(&run, val, sizeof(val)) < 0)
				KM_BUG("cannot encode the offset map of '%s'", s->part->topic);
			if (put_bookkeeping(t, t->rkt_offmap, key, val))
				return (*err = abort_and_rewind(r, t, "queueing the offset map")), false;
		}
	}
	return true;
}

/* Fills a chunk of the open transaction: fetches records and produces
 * them, slots[*np..) holding each until its delivery report, up to the
 * chunk's bounds (nslots records, txn_max_bytes) or the end of the
 * transaction (txn_records with the total already settled, its deadline,
 * a stop, or --until-caught-up with everything read), which sets *last.
 * @returns true to go on; false when the transaction is over (aborted and
 * rewound, a failure, or fenced), *err then being what task_step()
 * returns.  @locality the task's thread */
static bool fill_chunk(repl_t *r, task_t *t, int64_t deadline, int64_t total, int *np,
		       int64_t *bytesp, bool *last, km_err_t *err)
{
	int n = *np, i;
	int64_t held = 0;
	rd_kafka_error_t *e;

	while (n < t->nslots && held < t->txn_max_bytes && total + n < t->txn_records) {
		int64_t left = deadline - km_mono_ms();
		rd_kafka_message_t *m;
		part_t *p;

		/* t->stop: the task is being revoked or the run ends; a
		 * task that waited out txn_ms here held up the end of the
		 * run by up to a second. */
		if (left <= 0 || t->stop || (r->opts->stop && *r->opts->stop)) {
			*last = true;
			break;
		}
		m = next_message(t, (int)(left < 100 ? left : 100));
		if (t->topic_error && check_topics(r, t)) {
			if (m)
				rd_kafka_message_destroy(m);
			return (*err = r->err), false;
		}
		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			/* Caught up means committed up to the end: the end
			 * reached with records of it still in the open
			 * transaction is not, or --until-caught-up stopped the
			 * run, said "done" with the last transaction's records
			 * uncounted and committed them on the way out (the
			 * commit below sets caught_up once they are). */
			if ((p = part_of(t, m)) && m->offset >= p->hwm && p->next >= p->hwm) {
				pthread_mutex_lock(&t->lock);
				p->caught_up = true;
				pthread_mutex_unlock(&t->lock);
			}
			/* The end is past the last record read: what lies between
			 * (read_committed) are transaction markers and aborted
			 * records, nothing to copy.  Progress must say so, or a
			 * partition whose last entries are markers looks behind
			 * forever (the cutover's drain and the gate's lag compare
			 * progress with the high watermark). */
			/* An empty partition gets its first progress the same
			 * way: nothing to copy is a position too, and without it
			 * the partition's lag is unknown forever. */
			if (p && !p->excluded &&
			    (m->offset > p->pending_next || (!p->recorded && m->offset >= 0))) {
				p->pending_next = m->offset;
				p->skip = true;
			}
			rd_kafka_message_destroy(m);
			if (r->opts->until_caught_up) {
				/* Nothing in the transaction and everything
				 * committed: done; everything up to the end seen
				 * at start in the transaction: commit it now
				 * rather than wait out txn_ms. */
				bool all = true;
				for (i = 0; i < t->nparts && all; i++)
					all = n == 0 && total == 0
						      ? t->parts[i].caught_up
						      : (t->parts[i].excluded ||
							 t->parts[i].pending_next >= t->parts[i].hwm);
				if (all) {
					*last = true;
					break;
				}
			}
			continue;
		}
		if (m->err) {
			rd_kafka_resp_err_t merr = m->err;
			char msg[512];
			metric_error(r, "fetch", merr);
			snprintf(msg, sizeof(msg), "%s", rd_kafka_message_errstr(m));
			p = m->rkt ? part_of(t, m) : NULL;
			rd_kafka_message_destroy(m);
			if (merr == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
			    merr == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
				if (t->in_txn) {
					rd_kafka_error_t *ae = rd_kafka_abort_transaction(t->p, 60000);
					if (ae)
						rd_kafka_error_destroy(ae);
					t->in_txn = false;
				}
				/* Out of range also when the topic was deleted and
				 * recreated under us (its offsets restarted): tell
				 * which, never blame retention for it. */
				char *now = NULL;
				if (p && p->topic_id && topic_id_now(t->c, p->topic, &now) == 1 &&
				    strcmp(now, p->topic_id)) {
					recreated(r, p, p->topic_id, now);
					free(now);
					return (*err = r->err), false;
				}
				free(now);
				emit(r, json_pack("{s:s, s:s, s:i, s:I}", "event", "loss", "topic",
						  p ? p->topic : "?", "partition", p ? p->partition : -1,
						  "next", (json_int_t)(p ? p->pending_next : -1)));
				return (*err = fail(r, KM_ERR_NOGO,
					    "%s '%s'[%d]: the next offset to copy (%lld) is no longer "
					    "in the log (%s): records were deleted by retention before "
					    "they were copied, replication stops",
					    r->src->role, p ? p->topic : "?", p ? p->partition : -1,
					    (long long)(p ? p->pending_next : -1), msg)), false;
			}
			if (merr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
			    merr == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
				return (*err = fail(r, merr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
						       ? KM_ERR_NOT_FOUND
						       : KM_ERR_AUTHZ,
					    "source '%s'[%d]: %s%s", p ? p->topic : "?",
					    p ? p->partition : -1, msg,
					    merr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
						    ? " (the topic vanished: replication stops)"
						    : " (grant READ on the topic to the replicator)")), false;
			}
			continue; /* transient: librdkafka retries */
		}
		/* An exclusion published while this batch fills takes effect
		 * before the record is produced, not only at the commit: a
		 * record of a cut-over topic must not even be appended (then
		 * aborted) to a target its applications now write, where a
		 * read_uncommitted consumer would see it. */
		if (atomic_load(&r->excl_gen) != t->excl_gen)
			task_apply_exclusions(r, t);
		if (!(p = part_of(t, m)) || p->excluded) {
			rd_kafka_message_destroy(m);
			continue;
		}
		if (r->idmap && rewrite_ids(r, m, p)) {
			rd_kafka_message_destroy(m);
			return (*err = r->err), false;
		}
		if (!t->in_txn) {
			if ((e = rd_kafka_begin_transaction(t->p)))
				return (*err = txn_error(r, t, e, "begin_transaction")), false;
			t->in_txn = true;
		}
		slot_t *s = &t->slots[n++];
		*np = n;
		rd_kafka_headers_t *hdrs = NULL;
		rd_kafka_timestamp_type_t tstype;
		int64_t ts = rd_kafka_message_timestamp(m, &tstype);
		rd_kafka_resp_err_t perr;

		s->src_offset = m->offset;
		s->part = p;
		s->tgt_offset = -1;
		s->err = 0;
		s->bytes = (int32_t)(m->len + m->key_len);
		p->pending_next = m->offset + 1;
		p->copying = true;
		*bytesp += (int64_t)(m->len + m->key_len);
		held += (int64_t)(m->len + m->key_len);
		/* The headers move to the produced record; key and value are
		 * copied into it, and the source record is let go at once: a
		 * fetch response stays in memory until the last of its records
		 * is released, so records held until their delivery reports
		 * held whole responses (fetches had to stay small, 1 MB, and a
		 * task of 500 partitions spent the source broker's CPU on
		 * fetch requests: docs/internals/replication.md, "Memory and
		 * pace").  The copy costs kmigrate CPU per record (bench/README.md,
		 * "CPU per byte": ~1-1.5 CPU s per million 512 B records
		 * with glibc's malloc, less with mimalloc). */
		rd_kafka_message_detach_headers(m, &hdrs);
		do {
			perr = rd_kafka_producev(
				t->p, RD_KAFKA_V_RKT(p->rkt_tgt), RD_KAFKA_V_PARTITION(p->partition),
				RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(m->payload, m->len),
				RD_KAFKA_V_TIMESTAMP(ts > 0 ? ts : 0), RD_KAFKA_V_HEADERS(hdrs),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(s),
				RD_KAFKA_V_END);
			/* Not expected (the queue holds a chunk and 1 MB
			 * more), but partial batches wait for linger.ms: make
			 * them ready rather than wait for it. */
			if (perr == RD_KAFKA_RESP_ERR__QUEUE_FULL)
				rd_kafka_flush(t->p, 10);
		} while (perr == RD_KAFKA_RESP_ERR__QUEUE_FULL);
		if (!perr)
			p->unreported += s->bytes;
		rd_kafka_message_destroy(m);
		if (perr) {
			if (hdrs)
				rd_kafka_headers_destroy(hdrs);
			e = rd_kafka_error_new(perr, "produce: %s", rd_kafka_err2str(perr));
			return (*err = txn_error(r, t, e, "produce")), false;
		}
		if (n % 256 == 0)
			rd_kafka_poll(t->p, 0); /* delivery reports, now and then */
	}
	return true;
}

static km_err_t task_step(repl_t *r, task_t *t)
{
	int64_t deadline = km_mono_ms() + t->txn_ms;
	int n = 0, i;
	int64_t bytes = 0, total = 0;
	bool last = false;
	km_err_t err;
	rd_kafka_error_t *e;
	char key[KM_MAPSTORE_KEY_MAX], val[KM_MAPSTORE_VALUE_MAX];
	km_offrun_t run;

	/* Between transactions: exclusions published since the last one
	 * take effect before anything more is fetched. */
	task_apply_exclusions(r, t);
	if (t->reassign && assign_source(r, t))
		return r->err;
	/* A transaction is filled in chunks: a chunk's records are held from
	 * the fetch until their delivery reports (their target offsets), then
	 * released, so the memory held is one chunk (txn_max_bytes) whatever
	 * the transaction's length, and a transaction can be long where its
	 * cost per partition calls for it (task_init()). */
	while (!last) {
		n = 0;
		if (!fill_chunk(r, t, deadline, total, &n, &bytes, &last, &err) ||
		    (n && !settle(r, t, n, &err)))
			return err;
		total += n;
		if (total >= t->txn_records || km_mono_ms() >= deadline ||
		    (t->txn_bytes && bytes >= t->txn_bytes))
			last = true;
	}
	n = 0; /* every slot is settled and released */
	if (total == 0) {
		/* No record, but maybe an end moved past markers: a
		 * transaction with that progress alone. */
		bool any = false;
		for (i = 0; i < t->nparts && !any; i++)
			any = t->parts[i].skip && !t->parts[i].excluded;
		if (!any)
			return KM_ERR_OK;
		if (!t->in_txn) {
			if ((e = rd_kafka_begin_transaction(t->p)))
				return txn_error(r, t, e, "begin_transaction");
			t->in_txn = true;
		}
	}

	/* The progress, in the same transaction. */
	for (i = 0; i < t->nparts; i++) {
		part_t *p = &t->parts[i];
		bool copied = km_offrun_finish(&p->rb, &run);
		if (copied || (p->skip && !p->excluded)) {
			km_mapstore_progress_t pr = {
				p->pending_next,
				copied ? run.tgt_first + run.count : (p->tgt_next > 0 ? p->tgt_next : 0),
				""};
			snprintf(pr.topic_id, sizeof(pr.topic_id), "%s", p->topic_id ? p->topic_id : "");
			p->pending_tgt_next = pr.tgt_next;
			if (km_mapstore_key_encode(p->topic, p->partition, key, sizeof(key)) < 0)
				KM_BUG("cannot encode the key of '%s'", p->topic);
			if (copied && km_mapstore_run_encode(&run, val, sizeof(val)) < 0)
				KM_BUG("cannot encode the offset map of '%s'", p->topic);
			if (copied && put_bookkeeping(t, t->rkt_offmap, key, val))
				return abort_and_rewind(r, t, "queueing the offset map");
			if (km_mapstore_progress_encode(&pr, val, sizeof(val)) < 0)
				KM_BUG("cannot encode the progress of '%s'", p->topic);
			if (put_bookkeeping(t, t->rkt_progress, key, val))
				return abort_and_rewind(r, t, "queueing progress");
		}
	}
	/* The last look at the exclusions before the commit, under
	 * t->commit_lock: an exclusion published before this point is seen
	 * here, one published after it waits (authority_check()) until the
	 * commit is over -- it is decided only then.  A transaction holding
	 * records of a topic just excluded is aborted, not committed: its
	 * authority is the target, whose applications may already write the
	 * new history, and source records appended now would be stale data
	 * interleaved into it (the source is fenced by then, so a record
	 * arriving is exactly one that should not exist).  The abort costs
	 * only a re-copy of the other topics' records of the batch; their
	 * progress stays where the last commit left it. */
	pthread_mutex_lock(&t->commit_lock);
	if (task_apply_exclusions(r, t)) {
		const char *gone = NULL;
		for (i = 0; i < t->nparts && !gone; i++)
			if (t->parts[i].excluded && t->parts[i].copying)
				gone = t->parts[i].topic;
		if (gone) {
			char why[400];
			snprintf(why, sizeof(why), "the authority of '%s' moved to the target", gone);
			pthread_mutex_unlock(&t->commit_lock);
			return abort_and_rewind(r, t, why);
		}
	}
	bool committed = false;
	km_err_t cerr = commit_txn(r, t, &committed);
	pthread_mutex_unlock(&t->commit_lock);
	if (!committed)
		return cerr;
	t->in_txn = false;
	pthread_mutex_lock(&t->lock);
	for (i = 0; i < t->nparts; i++) {
		part_t *p = &t->parts[i];
		if (p->next != p->pending_next || p->skip)
			p->tgt_next = p->pending_tgt_next;
		if (p->skip || p->next != p->pending_next)
			p->recorded = true;
		p->next = p->pending_next;
		p->skip = false;
		p->copying = false;
		if (p->next >= p->hwm)
			p->caught_up = true;
	}
	pthread_mutex_unlock(&t->lock);
	pthread_mutex_lock(&r->lock);
	r->stats->records += total;
	r->stats->bytes += bytes;
	r->stats->transactions++;
	pthread_mutex_unlock(&r->lock);
	if (r->opts->metrics) {
		km_metrics_add(r->opts->metrics, "kmigrate_replication_records_total", (double)total,
			       "direction", direction(r), NULL);
		km_metrics_add(r->opts->metrics, "kmigrate_replication_bytes_total", (double)bytes,
			       "direction", direction(r), NULL);
		km_metrics_add(r->opts->metrics, "kmigrate_replication_transactions_total", 1,
			       "direction", direction(r), "result", "committed", NULL);
	}

	throttle(r, bytes);
	return KM_ERR_OK;
}

/* ---- membership ------------------------------------------------------------ */

static task_t *task_spawn(repl_t *r, int id)
{
	task_t *t = km_calloc(1, sizeof(*t));

	t->id = id;
	t->r = r;
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->commit_lock, NULL);
	if (pthread_create(&t->th, NULL, task_main, t)) {
		fail(r, KM_ERR_BUG, "task %d: cannot start a thread", id);
		pthread_mutex_destroy(&t->lock);
		pthread_mutex_destroy(&t->commit_lock);
		free(t);
		return NULL;
	}
	return t;
}

static void task_join(task_t *t)
{
	t->stop = 1;
	pthread_join(t->th, NULL);
	task_destroy(t);
}

/* Stops the tasks k of list[0..n) that run, all at once (each closes its
 * clients as it ends), then joins them. */
static void task_join_all(task_t **tasks, const int *list, int n)
{
	for (int i = 0; i < n; i++)
		if (tasks[list[i]])
			tasks[list[i]]->stop = 1;
	for (int i = 0; i < n; i++)
		if (tasks[list[i]]) {
			task_join(tasks[list[i]]);
			tasks[list[i]] = NULL;
		}
}

/* Owning partition k of the tasks topic = owning task k.  Tasks start on
 * their own threads (init_transactions may wait for a fenced zombie's
 * transaction to be aborted); revoked tasks finish or abort their open
 * transaction before the assignment is released. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	repl_t *r = opaque;

	/* KIP-848 (group.protocol=consumer) and cooperative assignors hand
	 * out and take back deltas: they need the incremental calls.  The
	 * lists are deltas either way for the loops below. */
	bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
	rd_kafka_error_t *e = NULL;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		if (coop)
			e = rd_kafka_incremental_assign(rk, parts);
		else
			rd_kafka_assign(rk, parts);
		for (int i = 0; i < parts->cnt; i++) {
			int k = parts->elems[i].partition;
			if (k >= 0 && k < MAX_TASKS && !r->tasks[k] && !r->err && !r->closing)
				r->tasks[k] = task_spawn(r, k);
		}
	} else {
		int revoked[MAX_TASKS] = {0}, nr = 0;
		for (int i = 0; i < parts->cnt; i++) {
			int k = parts->elems[i].partition;
			if (k >= 0 && k < MAX_TASKS && r->tasks[k])
				revoked[nr++] = k;
		}
		task_join_all(r->tasks, revoked, nr);
		for (int i = 0; i < nr; i++)
			emit(r, json_pack("{s:s, s:i, s:s}", "event", "task", "task", revoked[i],
					  "state", "revoked"));
		if (coop)
			e = rd_kafka_incremental_unassign(rk, parts);
		else
			rd_kafka_assign(rk, NULL);
	}
	if (e) {
		fail(r, KM_ERR_KAFKA, "replicator group: cannot take the assignment: %s",
		     rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
}

/* A fatal error of the group member stops the run: the member can no
 * longer own tasks, and a process that owns none would sit there "running"
 * (seen with KIP-848: a restarted static member was refused with
 * UNRELEASED_INSTANCE_ID and the process idled, 0 tasks, no error).
 * @returns true when the member failed (r->err set). */
static bool group_failed(repl_t *r, rd_kafka_t *rk)
{
	char why[512];
	rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof(why));

	if (!orig)
		return false;
	if (orig == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID)
		fail(r, KM_ERR_CONFLICT,
		     "another replicator joined the group as instance '%s' and fenced this one: "
		     "give each process its own --instance",
		     r->opts->instance_id ? r->opts->instance_id : "?");
	else if (orig == RD_KAFKA_RESP_ERR_UNRELEASED_INSTANCE_ID)
		fail(r, KM_ERR_CONFLICT,
		     "the group still holds instance '%s' for a process that died (KIP-848 keeps "
		     "it until the broker's group.consumer.session.timeout.ms): start again later, "
		     "or use the classic protocol",
		     r->opts->instance_id ? r->opts->instance_id : "?");
	else
		fail(r, KM_ERR_KAFKA, "replicator group member failed: %s", why);
	return true;
}

/* librdkafka hands errors to the error callback or, through
 * rd_kafka_consumer_poll(), as messages: both paths look for a fatal one. */
static void group_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)reason;
	if (err == RD_KAFKA_RESP_ERR__FATAL)
		group_failed(opaque, rk);
}

/* One partition's lag for the metrics, against the source's high watermark
 * now (the consumer's cached one, from its last fetch: no request), not the
 * one seen at start that the progress line's "caught up" uses.  Lag in
 * seconds is bounded from above by the time since the lag was last seen at
 * 0 -- every record not yet copied was written after that -- and unknown
 * (NaN) until it has been seen at 0 once: the record timestamps that would
 * say more are not looked at per record.  @locality main thread, t->lock held */
static void part_metrics(repl_t *r, task_t *t, part_t *p, int64_t now)
{
	int64_t lo = -1, hi = -1, lag;
	char part[16];

	if (!t->c || rd_kafka_get_watermark_offsets(t->c, p->topic, p->partition, &lo, &hi) ||
	    hi < 0)
		hi = p->hwm;
	lag = hi > p->next ? hi - p->next : 0;
	if (!lag)
		p->zero_lag_ms = km_now_ms();
	snprintf(part, sizeof(part), "%d", p->partition);
	km_metrics_set(r->opts->metrics, "kmigrate_replication_lag_records", (double)lag,
		       "direction", direction(r), "topic", p->topic, "partition", part, NULL);
	km_metrics_set(r->opts->metrics, "kmigrate_replication_lag_seconds",
		       !lag		 ? 0.0
		       : p->zero_lag_ms ? (double)(km_now_ms() - p->zero_lag_ms) / 1000.0
					: NAN,
		       "direction", direction(r), "topic", p->topic, "partition", part, NULL);
	(void)now;
}

static void progress_event(repl_t *r, int64_t *last_ms, int64_t *last_records, int64_t *last_bytes,
			   bool force)
{
	int64_t now = km_mono_ms();
	int owned = 0, caught = 0, parts = 0;
	int64_t lag = 0;

	if (!force && now - *last_ms < 1000)
		return;
	/* Re-measured in place: a partition this process no longer owns
	 * must not stay at its last lag (swept below), and a scrape meanwhile
	 * must not find the family empty (it did with clear-then-set: a
	 * test's scrape saw no lag series at all). */
	km_metrics_mark(r->opts->metrics, "kmigrate_replication_lag_records");
	km_metrics_mark(r->opts->metrics, "kmigrate_replication_lag_seconds");
	for (int k = 0; k < r->ntasks; k++) {
		task_t *t = r->tasks[k];
		if (!t || t->dead || !t->ready)
			continue;
		owned++;
		pthread_mutex_lock(&t->lock);
		for (int i = 0; i < t->nparts; i++) {
			parts++;
			caught += t->parts[i].caught_up;
			if (!t->parts[i].caught_up && t->parts[i].hwm > t->parts[i].next)
				lag += t->parts[i].hwm - t->parts[i].next;
			if (r->opts->metrics)
				part_metrics(r, t, &t->parts[i], now);
		}
		pthread_mutex_unlock(&t->lock);
	}
	km_metrics_sweep(r->opts->metrics, "kmigrate_replication_lag_records");
	km_metrics_sweep(r->opts->metrics, "kmigrate_replication_lag_seconds");
	pthread_mutex_lock(&r->lock);
	double secs = (double)(now - *last_ms) / 1000.0;
	if (secs <= 0)
		secs = 1;
	json_t *ev = json_pack("{s:s, s:I, s:I, s:f, s:f, s:I, s:i, s:i, s:i, s:i}", "event",
			       "progress", "records", (json_int_t)r->stats->records, "bytes",
			       (json_int_t)r->stats->bytes, "records_per_sec",
			       (double)(r->stats->records - *last_records) / secs, "mb_per_sec",
			       (double)(r->stats->bytes - *last_bytes) / secs / 1e6, "lag",
			       (json_int_t)lag, "tasks_owned", owned, "tasks", r->ntasks,
			       "partitions", parts, "caught_up", caught);
	*last_ms = now;
	*last_records = r->stats->records;
	*last_bytes = r->stats->bytes;
	r->stats->partitions = parts;
	r->stats->caught_up = caught;
	pthread_mutex_unlock(&r->lock);
	km_metrics_set(r->opts->metrics, "kmigrate_replication_tasks_owned", owned, "direction",
		       direction(r), NULL);
	km_metrics_set(r->opts->metrics, "kmigrate_replication_tasks", r->ntasks, "direction",
		       direction(r), NULL);
	km_metrics_set(r->opts->metrics, "kmigrate_replication_partitions_caught_up", caught,
		       "direction", direction(r), NULL);
	emit(r, ev);
}

/* Has the scope changed on the source since discover()?  Partitions added
 * to a topic, or a topic that appeared in the scope, would not be copied by
 * this run (the tasks own what discover() listed), and the run would go on
 * saying "caught up": stop it loudly instead.  A restart covers them, once
 * the target has them too (`kmigrate plan` and `apply`).
 * @returns 0 unchanged, 1 changed (r->err set), -1 unknown (the source did
 * not answer: never read as unchanged by a caller about to say caught up). */
static int scope_changed(repl_t *r, km_kafka_t *ks)
{
	const struct rd_kafka_metadata *md = NULL;
	int rc = 0;

	if (rd_kafka_metadata(km_kafka_rk(ks), 1, NULL, &md, 5000))
		return -1;
	for (int i = 0; i < md->topic_cnt && !rc; i++) {
		const struct rd_kafka_metadata_topic *t = &md->topics[i];
		int had = 0;
		if (t->err || !in_scope(r, t->topic))
			continue;
		for (int j = 0; j < r->nsp; j++)
			had += !strcmp(r->sp[j].topic, t->topic);
		if (had == t->partition_cnt)
			continue;
		emit(r, json_pack("{s:s, s:s, s:s, s:i, s:i}", "event", "nogo", "kind", "partitions",
				  "subject", t->topic, "was", had, "now", t->partition_cnt));
		if (had)
			fail(r, KM_ERR_NOGO,
			     "source topic '%s' grew from %d to %d partitions while it was being "
			     "copied: partitions %d..%d are not covered by this run, so replication "
			     "stops (add them on the target with `kmigrate plan` and `kmigrate "
			     "apply`, then run replicate again: it resumes where it stopped)",
			     t->topic, had, t->partition_cnt, had, t->partition_cnt - 1);
		else
			fail(r, KM_ERR_NOGO,
			     "source topic '%s' (%d partitions) appeared in the plan's scope while "
			     "replicating: this run does not cover it, so replication stops (create "
			     "it on the target with `kmigrate plan` and `kmigrate apply`, then run "
			     "replicate again)",
			     t->topic, t->partition_cnt);
		rc = 1;
	}
	rd_kafka_metadata_destroy(md);
	return rc;
}

/* ---- authority ------------------------------------------------------------- */

#define AUTHORITY_CHECK_MS 2000
/* How long the authority may stay unreadable (a target that does not
 * answer) before the run stops: past it, a topic may have been cut over
 * unseen, and copying it on would be a guess. */
#define AUTHORITY_STALE_MS 60000

/* Reads the target's authority topic and excludes every in-scope topic
 * whose authority is the target and that is not excluded yet.  The
 * exclusion is decided in two moves: published (under r->lock, excl_gen
 * bumped), then a barrier -- every running task's commit_lock taken and
 * released once -- after which no task can commit a record of the topic:
 * a commit in flight finished before the barrier, every later one looks at
 * the exclusions first under the same lock (task_step).  Only then is it
 * said (event "excluded", journaled by the command).
 * @returns 1 when every in-scope topic is excluded (nothing left to copy),
 * 0 otherwise, -1 on failure (r->err set).  @locality the main thread */
static int authority_check(repl_t *r, bool first)
{
	json_t *recs = NULL;
	const char **added = NULL;
	const json_t **recs_added = NULL;
	int nadded = 0, all = 1;
	char e[1024];
	km_err_t err;

	err = km_mapstore_read_authority(r->tgt, r->authority_topic, &recs, e, sizeof(e));
	if (err == KM_ERR_NOT_FOUND) { /* no cutover wrote any record yet */
		recs = json_object();
		err = KM_ERR_OK;
	}
	if (err) {
		/* At start, or a record that does not decode, or a refusal:
		 * the run cannot know what it may copy. */
		if (first || err == KM_ERR_BUG || err == KM_ERR_AUTHZ || err == KM_ERR_AUTH ||
		    km_mono_ms() - r->authority_ok_ms > AUTHORITY_STALE_MS) {
			fail(r, err,
			     "cannot read the topics' write authority from '%s' on the target: %s "
			     "(replication stops rather than copy a topic that may be cut over; "
			     "run it again once the target answers)",
			     r->authority_topic, e);
			return -1;
		}
		return 0; /* a blip: the last known exclusions hold, try again */
	}
	r->authority_ok_ms = km_mono_ms();
	added = km_calloc((size_t)r->nsp + 1, sizeof(*added));
	recs_added = km_calloc((size_t)r->nsp + 1, sizeof(*recs_added));
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < r->nsp; i++) {
		const char *topic = r->sp[i].topic;
		const json_t *a = km_mapstore_authority_target(recs, topic);
		bool dup = false;
		if (!a) {
			all = 0;
			continue;
		}
		for (int k = 0; k < nadded; k++)
			dup |= !strcmp(added[k], topic);
		if (dup || is_excluded(r, topic))
			continue;
		r->excluded = km_realloc(r->excluded, (size_t)(r->nexcluded + 1) * sizeof(*r->excluded));
		r->excluded[r->nexcluded++] = km_strdup(topic);
		recs_added[nadded] = a;
		added[nadded++] = topic;
	}
	if (nadded) {
		atomic_fetch_add(&r->excl_gen, 1);
		r->stats->excluded = r->nexcluded;
	}
	pthread_mutex_unlock(&r->lock);
	if (nadded)
		for (int k = 0; k < r->ntasks && k < MAX_TASKS; k++)
			if (r->tasks[k]) {
				pthread_mutex_lock(&r->tasks[k]->commit_lock);
				pthread_mutex_unlock(&r->tasks[k]->commit_lock);
			}
	for (int k = 0; k < nadded; k++)
		emit(r, json_pack("{s:s, s:s, s:O, s:O, s:O, s:s}", "event", "excluded", "topic",
				  added[k], "wave", json_object_get(recs_added[k], "wave"), "at",
				  json_object_get(recs_added[k], "at"), "run_id",
				  json_object_get(recs_added[k], "run_id"), "reason",
				  "its write authority is the target (cut over): nothing more is "
				  "copied or committed for it"));
	free(added);
	free(recs_added);
	json_decref(recs);
	return all && r->nsp > 0;
}

/* A target topic a rollback fenced by config (max.message.bytes=0 refuses
 * kmigrate's writes too; lib/rollback.h) is refused up front, named, with
 * its way back, rather than failing on MSG_SIZE_TOO_LARGE mid-copy.
 * @returns -1 (failed, r->errstr set) or 0. */
static int refuse_fenced_target(repl_t *r, km_kafka_t *kt)
{
	char **names = km_calloc((size_t)r->nsp + 1, sizeof(*names)), *fenced = NULL, e[512];
	const char **srcs = km_calloc((size_t)r->nsp + 1, sizeof(*srcs));
	int n = 0, rc = 0;
	km_err_t err;

	/* r->sp holds partitions: each topic once (DescribeConfigs refuses a
	 * resource named twice). */
	for (int i = 0; i < r->nsp; i++)
		if (!is_excluded(r, r->sp[i].topic) &&
		    (!n || strcmp(srcs[n - 1], r->sp[i].topic))) {
			srcs[n] = r->sp[i].topic;
			names[n++] = km_plan_target_topic(r->plan, r->sp[i].topic);
		}
	if (n && (err = km_fence_config_fenced(kt, (const char *const *)names, (size_t)n, &fenced,
					       e, sizeof(e)))) {
		fail(r, err, "%s", e);
		rc = -1;
	} else if (fenced) {
		const char *wave = "?", *src = fenced;
		for (int i = 0; i < n; i++)
			if (!strcmp(names[i], fenced))
				src = srcs[i];
		for (size_t w = 0; w < r->plan->cutover.waves_cnt; w++)
			if (km_plan_wave_has_topic(r->plan, &r->plan->cutover.waves[w], src))
				wave = r->plan->cutover.waves[w].name;
		fail(r, KM_ERR_NOGO,
		     "target topic '%s' of wave '%s' carries a rollback's config fence "
		     "(max.message.bytes=0 refuses kmigrate's copy too): run `kmigrate rollback -p "
		     "PLAN --wave %s --release-target` first",
		     fenced, wave, wave);
		rc = -1;
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(srcs);
	free(fenced);
	return rc;
}

#define SCOPE_CHECK_MS 3000

km_err_t km_replicate_run(const km_plan_t *plan, const km_kafka_endpoint_t *src,
			  const km_kafka_endpoint_t *tgt, const km_repl_opts_t *opts,
			  km_repl_stats_t *stats, char *errstr, size_t errstr_size)
{
	repl_t r = {0};
	km_kafka_t *ks = NULL, *kt = NULL;
	char group[400];
	int64_t last_ms = km_mono_ms(), last_records = 0, last_bytes = 0;
	char msg[1024];
	km_err_t err;
	int64_t next_scope_check = km_mono_ms() + SCOPE_CHECK_MS;

	memset(stats, 0, sizeof(*stats));
	pthread_mutex_init(&r.lock, NULL);
	r.plan = plan;
	r.reverse = opts->direction && *opts->direction;
	if (r.reverse && (strcmp(opts->direction, "reverse") || opts->n_start < 1))
		KM_BUG("direction '%s' with %d start points", opts->direction, opts->n_start);
	/* Reverse: read the target, write the source (see repl_t). */
	r.src = r.reverse ? tgt : src;
	r.tgt = r.reverse ? src : tgt;
	r.opts = opts;
	r.stats = stats;
	r.errstr = errstr;
	r.errstr_size = errstr_size;
	km_mapstore_names(plan->migration, r.reverse ? "reverse" : NULL, &r.names);
	km_mapstore_authority_topic(plan->migration, r.authority_topic, sizeof(r.authority_topic));

	if ((err = km_kafka_open(r.src, 0, &ks, msg, sizeof(msg))) ||
	    (err = km_kafka_open(r.tgt, 0, &kt, msg, sizeof(msg)))) {
		fail(&r, err, "%s", msg);
		goto done;
	}
	if (discover(&r, ks, kt))
		goto done;
	/* The reverse copy would need the inverse map: not done, so refused
	 * rather than copying IDs that mean other schemas on the source. */
	if (plan->schemas.ids == KM_PLAN_SCHEMA_IDS_REWRITE && r.reverse) {
		fail(&r, KM_ERR_UNSUPPORTED, "the reverse copy does not rewrite schema IDs back "
					     "(schemas.ids: rewrite): roll back before any record "
					     "was written on the target, or copy back by hand");
		goto done;
	}
	if ((err = km_schemas_idmap_for_plan(plan, &r.idmap, msg, sizeof(msg)))) {
		fail(&r, err, "%s", msg);
		goto done;
	}
	if (r.idmap)
		emit(&r, json_pack("{s:s, s:s, s:i}", "event", "schema-ids", "mode", "REWRITE",
				   "ids", (int)km_schemas_idmap_size(r.idmap)));
	/* A topic cut over (its authority is the target) is never copied
	 * again: it would put stale source data into the new history.  Every
	 * one of them: nothing to do, and that is a success. */
	/* The reverse copy is what gives a cut-over topic back: the
	 * authority does not exclude it. */
	int nothing = r.reverse ? 0 : authority_check(&r, true);
	if (nothing < 0)
		goto done;
	if (nothing) {
		stats->nothing_left = true;
		emit(&r, json_pack("{s:s, s:i}", "event", "nothing-left", "topics", r.nexcluded));
		goto done;
	}
	if (!r.reverse && refuse_fenced_target(&r, kt))
		goto done;
	if (ensure_internal_topics(&r, kt))
		goto done;
	int64_t next_authority_check = km_mono_ms() + AUTHORITY_CHECK_MS;
	/* ks stays open: the main loop watches the scope's partitions. */
	snprintf(group, sizeof(group),
		 r.reverse ? "kmigrate.%s.reverse-replicators" : "kmigrate.%s.replicators",
		 plan->migration);
	/* classic: the client's roundrobin assignor, and a session of 10 s
	 * (how long a dead process keeps its tasks).  consumer (KIP-848):
	 * the broker assigns and owns the session timeout
	 * (group.consumer.session.timeout.ms, 45 s by default). */
	bool kip848 = opts->group_protocol && !strcmp(opts->group_protocol, "consumer");
	const char *gprops[20] = {"group.id", group, "enable.auto.commit", "false",
				  "max.poll.interval.ms", "300000"};
	int ng = 6;
	if (kip848) {
		gprops[ng++] = "group.protocol";
		gprops[ng++] = "consumer";
	} else {
		gprops[ng++] = "partition.assignment.strategy";
		gprops[ng++] = "roundrobin";
		gprops[ng++] = "session.timeout.ms";
		gprops[ng++] = "10000";
		gprops[ng++] = "heartbeat.interval.ms";
		gprops[ng++] = "1000";
	}
	if (opts->instance_id) {
		gprops[ng++] = "group.instance.id";
		gprops[ng++] = opts->instance_id;
	}
	gprops[ng] = NULL;
	rd_kafka_conf_t *conf;
	char rerr[512];
	if ((err = km_kafka_conf_new(r.tgt, gprops, &conf, msg, sizeof(msg)))) {
		fail(&r, err, "%s", msg);
		goto done;
	}
	rd_kafka_conf_set_opaque(conf, &r);
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_error_cb(conf, group_error_cb);
	if (!(r.group = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		fail(&r, KM_ERR_KAFKA, "cannot create the replicator group member: %s", rerr);
		goto done;
	}
	rd_kafka_poll_set_consumer(r.group);
	rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, r.names.tasks, RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(r.group, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	emit(&r, json_pack("{s:s, s:i, s:i, s:i, s:s, s:s?, s:s, s:s}", "event", "start", "tasks",
			   r.ntasks, "partitions", r.nsp, "layout_group", r.layout, "group", group, "instance",
			   opts->instance_id, "group_protocol", kip848 ? "consumer" : "classic",
			   "direction", r.reverse ? "reverse" : "forward"));

	while (!r.err && !(opts->stop && *opts->stop)) {
		int owned = 0, caught = 0;
		/* Serves the group (rebalances start and stop task threads)
		 * and paces the progress line. */
		rd_kafka_message_t *gm = rd_kafka_consumer_poll(r.group, 100);
		if (gm) {
			bool failed = gm->err && group_failed(&r, r.group);
			rd_kafka_message_destroy(gm);
			if (failed)
				break;
		}
		for (int k = 0; k < r.ntasks; k++) {
			task_t *t = r.tasks[k];
			if (!t || !t->ready || t->dead)
				continue;
			owned++;
			bool all = true;
			pthread_mutex_lock(&t->lock);
			for (int i = 0; i < t->nparts; i++)
				all &= t->parts[i].caught_up;
			pthread_mutex_unlock(&t->lock);
			caught += all;
		}
		progress_event(&r, &last_ms, &last_records, &last_bytes, false);
		if (km_mono_ms() >= next_scope_check) {
			if (scope_changed(&r, ks) > 0)
				break;
			next_scope_check = km_mono_ms() + SCOPE_CHECK_MS;
		}
		/* The replicator keeps running through a cutover (the next
		 * waves need it): a topic cut over meanwhile is excluded, and
		 * once every topic is, the run is done. */
		if (!r.reverse && km_mono_ms() >= next_authority_check) {
			int left = authority_check(&r, false);
			if (left < 0)
				break;
			if (left) {
				stats->nothing_left = true;
				emit(&r, json_pack("{s:s, s:i}", "event", "nothing-left", "topics",
						   r.nexcluded));
				break;
			}
			next_authority_check = km_mono_ms() + AUTHORITY_CHECK_MS;
		}
		/* Caught up only with every partition of the scope covered,
		 * as the source says now. */
		if (opts->until_caught_up && owned == r.ntasks && caught == owned &&
		    scope_changed(&r, ks) == 0)
			break;
	}
	/* Stopped by a signal: what changed since the last look is still
	 * reported, never left behind an exit 0. */
	if (!r.err && opts->stop && *opts->stop)
		scope_changed(&r, ks);
	progress_event(&r, &last_ms, &last_records, &last_bytes, true);
	if (!r.err)
		emit(&r, json_pack("{s:s, s:I, s:I}", "event", "done", "records",
				   (json_int_t)stats->records, "transactions",
				   (json_int_t)stats->transactions));
done:
	/* No task starts from here on: closing the member serves the
	 * rebalance callback, and an assignment still in flight (another
	 * process joined) started a task after the loop ended, whose thread
	 * then ran on a freed repl_t (SIGSEGV at exit, seen with static
	 * members joining). */
	r.closing = true;
	int all[MAX_TASKS];
	for (int k = 0; k < MAX_TASKS; k++)
		all[k] = k;
	task_join_all(r.tasks, all, MAX_TASKS);
	if (r.group) {
		rd_kafka_consumer_close(r.group);
		rd_kafka_destroy(r.group);
	}
	for (int k = 0; k < MAX_TASKS; k++)
		if (r.tasks[k])
			KM_BUG("task %d started while the replicator was closing", k);
	for (int i = 0; i < r.nsp; i++) {
		free(r.sp[i].topic);
		free(r.sp[i].topic_id);
	}
	free(r.sp);
	for (int i = 0; i < r.nexcluded; i++)
		free(r.excluded[i]);
	free(r.excluded);
	km_schemas_idmap_destroy(r.idmap); /* after the tasks: they read it */
	km_kafka_close(ks);
	km_kafka_close(kt);
	pthread_mutex_destroy(&r.lock);
	return r.err;
}
