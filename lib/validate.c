#include "validate.h"

#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Sampling and the order digests hash on the hot path: inline XXH3. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "digest.h"
#include "offmap.h"
#include "mapstore.h"
#include "schemas.h"
#include "util.h"

#define BATCH 1024
#define IDLE_TIMEOUT_MS 60000
/* A partition whose ranges hold at most SMALL_RECORDS records on both
 * sides together is read in a group of up to GROUP_PARTS partitions
 * assigned at once, each through its own partition queue: their fetches and
 * their end-of-partition round trips overlap instead of queueing one after
 * the other.  Larger partitions are read one at a time. */
#define SMALL_RECORDS 4096
#define GROUP_PARTS 32
/* How long validate waits for a transaction open on the offset map to end
 * before it re-reads the map (replicate's transaction.timeout.ms is 60 s,
 * after which the coordinator aborts a dead replicator's transaction). */
#define OFFMAP_SETTLE_MS 90000
#define SAMPLE_SEED 0x73616d706c65ull /* "sample" */
#define MAX_TABLE_SLOTS (2u * KM_VALIDATE_MAX_KEYS)
#define MAX_ORDER_EXAMPLES 3

/* Header count and bytes of a consumed record (parsed by librdkafka on
 * first use, then cached in the message). */
static size_t msg_headers(const rd_kafka_message_t *rkm, rd_kafka_headers_t **hdrsp,
			  size_t *bytesp)
{
	rd_kafka_headers_t *hdrs = NULL;
	size_t n = 0, bytes = 0, size;
	const char *name;
	const void *val;

	if (rd_kafka_message_headers(rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
		for (; !rd_kafka_header_get_all(hdrs, n, &name, &val, &size); n++)
			bytes += strlen(name) + size;
	*hdrsp = hdrs;
	if (bytesp)
		*bytesp = bytes;
	return n;
}


void km_validate_opts_init(km_validate_opts_t *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->max_shown = 10;
}

/* ---- per-partition results ------------------------------------------------------ */

enum { K_KEY, K_VALUE, K_HEADER, K_TIMESTAMP, K_MISSING, K_EXTRA, K_REORDERED, K__N };
static const char *const kind_names[K__N] = {"key",     "value", "header",   "timestamp",
					     "missing", "extra", "reordered"};

typedef struct side_s {
	int64_t records, bytes, tombstones, headers;
	int64_t ts_min, ts_max;
} side_t;

typedef struct shown_s {
	int kind;
	int64_t src, tgt; /* -1 = no such record */
	unsigned differs; /* bits 1 << K_KEY .. K_TIMESTAMP */
	char key[64];     /* printable key preview, "" when unknown */
	const char *note; /* static text */
	int64_t pos;      /* where in the stream it was found, for the listing */
} shown_t;

typedef enum {
	ST_PENDING = 0,
	ST_VALIDATED,
	ST_EMPTY,       /* no committed record on either side */
	ST_NOTHING,     /* the source has records, the offset map none */
	ST_NOT_VALIDATED
} pstate_t;

static const char *const state_names[] = {"pending", "validated", "empty", "nothing replicated",
					  "not validated"};

/* Consecutive visible target offsets [first, first + count). */
typedef struct trange_s {
	int64_t first, count;
} trange_t;

typedef struct tkey_s {
	int64_t off;
	char key[64];
} tkey_t;

typedef struct vpart_s {
	char *topic, *tgt_topic;
	int partition;
	bool compacted;
	km_plan_ordering_t ordering;
	km_offmap_t map;
	pstate_t state;
	char reason[400];
	int64_t s_first, s_end, t_first, t_end; /* the snapshot */
	int64_t s_start, t_start;               /* compared from (after expiry) */
	int64_t expired;       /* mapped records gone from either cluster */
	int64_t src_hwm;       /* source high watermark when validated */
	side_t src, tgt;
	int64_t paired, digested, mismatches, by_kind[K__N];
	shown_t *shown; /* grows up to opts->max_shown */
	int nshown, cap_shown;
	int64_t pos; /* stream position of the next mismatch reported */
	/* Per-key ordering. */
	bool ord_checked;
	const char *ord_reason;
	int64_t ord_keys, ord_violations, ord_keys_differing;
	int64_t ord_examples[MAX_ORDER_EXAMPLES];
	int nord_examples;
	/* Compacted topics. */
	int64_t keys, superseded;
	int64_t elapsed_ms;
	/* What to read, decided from the watermarks before any worker runs. */
	int64_t slo, shi, tlo;
	int64_t rd_s_from, rd_s_to; /* source records [from, to); none when from >= to */
	int64_t rd_t_from;          /* target records from here to the end; -1 none */
	int64_t tail_from;          /* target records at or after it form the tail */
	/* The target's tail: visible records past the last copied one, read
	 * read_committed to the end (the last stable offset), as ranges of
	 * consecutive offsets, classified against the re-read offset map. */
	trange_t *tail;
	size_t ntail, cap_tail;
	tkey_t *tail_keys; /* the first opts->max_shown tail records' keys */
	int ntail_keys;
	bool tail_read;
	int64_t tail_records, tail_after, tail_extra, tail_end;
	/* Records of aborted transactions on the target (see count_aborted). */
	int64_t *hole_vis; /* [map.cnt]: visible records in no run just before
			    * run i, read read_committed; NULL while none */
	int64_t aborted;
	int aborted_reads;
	bool aborted_counted;
} vpart_t;

/* ---- a bounded key table --------------------------------------------------------- */

/* One slot per key hash.  The fields mean different things for the two
 * uses (latest value of a compacted key; per-key ordering), each noted. */
typedef struct kent_s {
	uint64_t kh;          /* key hash; 0 = free slot */
	uint64_t s_a, t_a;    /* latest value hash | sequence hash */
	uint64_t bb;          /* header hashes src<<32|tgt | counts src<<32|tgt */
	int64_t s_c, t_c;     /* latest timestamp | digest sum */
	int64_t s_off, t_off; /* offset of the latest | first record; -1 none */
} kent_t;

typedef struct ktab_s {
	kent_t *e;
	size_t cap, cnt;
	bool full;
} ktab_t;

static void ktab_free(ktab_t *t)
{
	free(t->e);
	memset(t, 0, sizeof(*t));
}

static void ktab_init(ktab_t *t)
{
	ktab_free(t);
	t->cap = 1024;
	t->e = km_calloc(t->cap, sizeof(*t->e));
}

static kent_t *ktab_slot(kent_t *e, size_t cap, uint64_t kh)
{
	size_t i = (size_t)(kh * 0x9e3779b97f4a7c15ull) & (cap - 1);
	while (e[i].kh && e[i].kh != kh)
		i = (i + 1) & (cap - 1);
	return &e[i];
}

/* @returns the key's slot (new slots zeroed with offsets -1), or NULL when
 * the table reached KM_VALIDATE_MAX_KEYS (t->full is then set). */
static kent_t *ktab_get(ktab_t *t, uint64_t kh)
{
	kent_t *s;

	if (!kh)
		kh = 1; /* 0 marks a free slot */
	s = ktab_slot(t->e, t->cap, kh);
	if (s->kh)
		return s;
	if ((t->cnt + 1) * 2 > t->cap) {
		if (t->cap >= MAX_TABLE_SLOTS) {
			t->full = true;
			return NULL;
		}
		size_t ncap = t->cap * 2;
		kent_t *ne = km_calloc(ncap, sizeof(*ne));
		for (size_t i = 0; i < t->cap; i++)
			if (t->e[i].kh)
				*ktab_slot(ne, ncap, t->e[i].kh) = t->e[i];
		free(t->e);
		t->e = ne;
		t->cap = ncap;
		s = ktab_slot(t->e, t->cap, kh);
	}
	memset(s, 0, sizeof(*s));
	s->kh = kh;
	s->s_off = s->t_off = -1;
	t->cnt++;
	return s;
}

/* ---- the run and its workers ------------------------------------------------------ */

typedef struct vrun_s {
	const km_plan_t *plan;
	/* schemas.ids: rewrite: applied to source records (lib/schemas.h). */
	km_schemas_idmap_t *idmap;
	const km_kafka_endpoint_t *src, *tgt;
	const km_validate_opts_t *opts;
	vpart_t *parts;
	int nparts;
	bool sampled;
	uint64_t sample_below; /* a record is digested when its hash is below */
	pthread_mutex_t lock;
	int next;         /* next partition a worker takes */
	int done;         /* partitions finished */
	int running;      /* workers still running */
	int64_t records, bytes;
	int64_t last_done_ms; /* when the last partition was finished */
	km_err_t err;     /* the first failure */
	char errstr[512];
	json_t *hidden;   /* design topics the source principal cannot see:
			   * [{"topic", "error", "grant"}] */
} vrun_t;

typedef struct worker_s {
	vrun_t *v;
	pthread_t th;
	/* Consumers of the source and the target, made once per worker:
	 * [0] for groups of small partitions (1 MB of prefetch per partition),
	 * [1] for large partitions read alone (32 MB), made when first needed. */
	rd_kafka_t *cs[2], *ct[2];
	rd_kafka_t *cu; /* target, read_uncommitted: aborted records, made when
			 * first needed */
	ktab_t tab;
	int64_t records, bytes; /* not yet added to the run's totals */
} worker_t;

static void vfail(vrun_t *v, km_err_t err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void vfail(vrun_t *v, km_err_t err, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&v->lock);
	if (!v->err) {
		va_start(ap, fmt);
		vsnprintf(v->errstr, sizeof(v->errstr), fmt, ap);
		va_end(ap);
		v->err = err;
	}
	pthread_mutex_unlock(&v->lock);
}

static bool vfailed(vrun_t *v)
{
	km_err_t err;
	pthread_mutex_lock(&v->lock);
	err = v->err;
	pthread_mutex_unlock(&v->lock);
	return err || (v->opts->stop && *v->opts->stop);
}

static void flush_counts(worker_t *w)
{
	pthread_mutex_lock(&w->v->lock);
	w->v->records += w->records;
	w->v->bytes += w->bytes;
	pthread_mutex_unlock(&w->v->lock);
	w->records = w->bytes = 0;
}

static inline bool sampled(const vrun_t *v, uint64_t x)
{
	return !v->sampled || XXH3_64bits_withSeed(&x, sizeof(x), SAMPLE_SEED) < v->sample_below;
}

/* ---- streaming one partition range ------------------------------------------------ */

/* Reads records [start, end) of one partition from its own partition queue
 * (rd_kafka_queue_get_partition, unforwarded from the consumer queue), a
 * batch at a time.  Only the current batch is held: a partition is never in
 * memory whole.  The partition is assigned by the group it belongs to
 * (read_group), many at once; a stream only reads. */
typedef struct stream_s {
	worker_t *w;
	rd_kafka_t *rk;
	rd_kafka_queue_t *q; /* the partition's queue: one reference, owned */
	const char *role;    /* "source" / "target" */
	const char *topic;
	int partition;
	int64_t start, end;
	rd_kafka_message_t *buf[BATCH];
	int n, i;
	bool done, eof, failed;
	bool denied;        /* the principal may not read the topic */
	int64_t eof_offset; /* where the end of the log was met */
	int64_t last_data_ms;
	side_t *side;
	/* schemas.ids: rewrite: source records get the target's IDs before
	 * they are compared; stream_peek may return a record more than once,
	 * so the last offset rewritten is remembered (offsets only grow). */
	int64_t rewritten;
} stream_t;

static void stream_drop_batch(stream_t *s)
{
	for (; s->i < s->n; s->i++)
		rd_kafka_message_destroy(s->buf[s->i]);
	s->i = s->n = 0;
}

/* Drops what the stream holds and what its queue still holds, and the
 * queue.  Called after the partition was unassigned, so nothing more
 * arrives. */
static void stream_close(stream_t *s)
{
	stream_drop_batch(s);
	if (s->q) {
		ssize_t n;
		while ((n = rd_kafka_consume_batch_queue(s->q, 0, s->buf, BATCH)) > 0)
			for (ssize_t i = 0; i < n; i++)
				rd_kafka_message_destroy(s->buf[i]);
		rd_kafka_queue_destroy(s->q);
	}
	s->q = NULL;
}

/* Prepares the stream of one partition before its group is assigned: the
 * partition's own queue, taken off the consumer queue (librdkafka then
 * never forwards it again, assignment or not). */
static bool stream_init(worker_t *w, stream_t *s, rd_kafka_t *rk, bool source, const char *topic,
			int partition, int64_t start, int64_t end, side_t *side)
{
	memset(s, 0, sizeof(*s));
	s->w = w;
	s->rk = rk;
	s->role = source ? "source" : "target";
	s->topic = topic;
	s->partition = partition;
	s->start = start;
	s->end = end;
	s->side = side;
	s->rewritten = -1;
	s->last_data_ms = km_mono_ms();
	if (!(s->q = rd_kafka_queue_get_partition(rk, topic, partition))) {
		vfail(w->v, KM_ERR_BUG, "no partition queue for '%s'[%d] on the %s", topic,
		      partition, s->role);
		s->failed = true;
		return false;
	}
	rd_kafka_queue_forward(s->q, NULL);
	return true;
}

/* A stream with nothing to read (no queue, nothing assigned). */
static void stream_none(worker_t *w, stream_t *s, side_t *side)
{
	memset(s, 0, sizeof(*s));
	s->w = w;
	s->side = side;
	s->done = s->eof = true;
}

/* Lets a stream that stopped at its end read on to a new end (the tail of
 * the same partition, already prefetched behind the range). */
static void stream_extend(stream_t *s, int64_t end)
{
	s->end = end;
	if (!s->eof && !s->failed && s->q)
		s->done = false;
}

static bool is_ours(const stream_t *s, const rd_kafka_message_t *m)
{
	return m->rkt && m->partition == s->partition && !strcmp(rd_kafka_topic_name(m->rkt), s->topic);
}

/* @returns the next record of the range, or NULL at its end (s->done, the
 * record past the end stays unread for stream_extend) or on failure
 * (s->failed; the run's error is set). */
static rd_kafka_message_t *stream_peek(stream_t *s)
{
	vrun_t *v = s->w->v;

	if (s->done || s->failed)
		return NULL;
	for (;;) {
		while (s->i < s->n) {
			rd_kafka_message_t *m = s->buf[s->i];
			if (m->err) {
				rd_kafka_resp_err_t e = m->err;
				bool ours = !m->rkt || is_ours(s, m);
				if (e == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
					/* The end of the log (read_committed: its last
					 * stable offset).  The source range was
					 * committed before the snapshot, so its log
					 * ends at or after the range end; an earlier
					 * end means the records are gone, which the
					 * caller reports. */
					if (ours) {
						s->done = s->eof = true;
						s->eof_offset = m->offset;
					}
				} else if (ours && e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
					/* This partition is not validated (NO-GO, with
					 * the ACL to grant); the others go on. */
					s->failed = s->denied = true;
				} else if (ours && (e == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
						    e == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ||
						    e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)) {
					vfail(v, KM_ERR_KAFKA, "reading '%s'[%d] on the %s: %s%s",
					      s->topic, s->partition, s->role, rd_kafka_message_errstr(m),
					      e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
						      ? ""
						      : " (records were deleted by retention while "
							"validate read them: run it again)");
					s->failed = true;
				} else if (ours && (e == RD_KAFKA_RESP_ERR__BAD_MSG ||
						    e == RD_KAFKA_RESP_ERR__BAD_COMPRESSION ||
						    e == RD_KAFKA_RESP_ERR__UNDERFLOW ||
						    e == RD_KAFKA_RESP_ERR_INVALID_MSG ||
						    e == RD_KAFKA_RESP_ERR_INVALID_RECORD ||
						    e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)) {
					/* A record that cannot be parsed cannot be
					 * vouched for: never skipped. */
					vfail(v, KM_ERR_KAFKA,
					      "a record of '%s'[%d] on the %s at offset %lld cannot be "
					      "read: %s (validation cannot vouch for it)",
					      s->topic, s->partition, s->role, (long long)m->offset,
					      rd_kafka_message_errstr(m));
					s->failed = true;
				}
				/* Other errors are transient: librdkafka retries. */
				rd_kafka_message_destroy(m);
				s->i++;
				if (s->failed)
					return NULL;
				if (s->eof)
					return NULL;
				continue;
			}
			if (!is_ours(s, m) || m->offset < s->start) {
				rd_kafka_message_destroy(m);
				s->i++;
				continue;
			}
			if (m->offset >= s->end) {
				s->done = true;
				return NULL;
			}
			if (v->idmap && !strcmp(s->role, "source") && m->offset > s->rewritten) {
				char why[400];
				s->rewritten = m->offset;
				if (km_schemas_rewrite(v->idmap, m->key, m->key_len, why, sizeof(why)) ||
				    km_schemas_rewrite(v->idmap, m->payload, m->len, why, sizeof(why))) {
					/* The target cannot hold a true copy of it:
					 * replicate stops on such a record. */
					vfail(v, KM_ERR_NOGO, "'%s'[%d] offset %lld on the source: %s",
					      s->topic, s->partition, (long long)m->offset, why);
					s->failed = true;
					return NULL;
				}
			}
			return m;
		}
		s->i = s->n = 0;
		if (s->done || s->failed)
			return NULL;
		if (vfailed(v)) {
			s->failed = true;
			return NULL;
		}
		/* consume_batch waits for a full batch or its timeout; a small
		 * partition never fills one.  Take what is there, else wait for
		 * one message, then take what came with it. */
		ssize_t n = rd_kafka_consume_batch_queue(s->q, 0, s->buf, BATCH);
		if (n <= 0) {
			rd_kafka_message_t *m = rd_kafka_consume_queue(s->q, 100);
			if (m) {
				s->buf[0] = m;
				n = 1 + rd_kafka_consume_batch_queue(s->q, 0, s->buf + 1, BATCH - 1);
			}
		}
		if (n > 0) {
			s->n = (int)n;
			s->last_data_ms = km_mono_ms();
		} else if (km_mono_ms() - s->last_data_ms > IDLE_TIMEOUT_MS) {
			vfail(v, KM_ERR_TIMEOUT,
			      "reading '%s'[%d] on the %s made no progress for %d s (range end %lld)",
			      s->topic, s->partition, s->role, IDLE_TIMEOUT_MS / 1000,
			      (long long)s->end);
			s->failed = true;
			return NULL;
		}
	}
}

/* Counts the current record into the side's statistics and drops it. */
static void stream_pop(stream_t *s)
{
	rd_kafka_message_t *m = s->buf[s->i];
	rd_kafka_timestamp_type_t tstype;
	rd_kafka_headers_t *hdrs;
	size_t hbytes_ = 0, nh = msg_headers(m, &hdrs, &hbytes_);
	int64_t ts = rd_kafka_message_timestamp(m, &tstype);
	side_t *sd = s->side;
	int64_t bytes = (int64_t)(m->key_len + m->len + hbytes_);

	if (sd->records == 0 || ts < sd->ts_min)
		sd->ts_min = ts;
	if (sd->records == 0 || ts > sd->ts_max)
		sd->ts_max = ts;
	sd->records++;
	sd->bytes += bytes;
	sd->tombstones += m->payload ? 0 : 1;
	sd->headers += (int64_t)nh;
	s->w->records++;
	s->w->bytes += bytes;
	if (s->w->records >= 4096)
		flush_counts(s->w);
	/* The range's last offset holds a record on every uncompacted log
	 * (it is the last copied one): no need to wait for the end of the
	 * partition to know the range is read. */
	if (m->offset == s->end - 1)
		s->done = true;
	rd_kafka_message_destroy(m);
	s->i++;
}

/* Drops the current record without counting it. */
static void stream_skip(stream_t *s)
{
	rd_kafka_message_destroy(s->buf[s->i]);
	s->i++;
}

/* ---- mismatches -------------------------------------------------------------------- */

static void key_preview(const rd_kafka_message_t *m, char *buf, size_t size)
{
	size_t i, n;
	if (!m->key) {
		snprintf(buf, size, "(null)");
		return;
	}
	n = m->key_len < size - 4 ? m->key_len : size - 4;
	for (i = 0; i < n; i++) {
		unsigned char c = ((const unsigned char *)m->key)[i];
		buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '.';
	}
	if (n < m->key_len)
		buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
	buf[i] = '\0';
}

static void mismatch(vrun_t *v, vpart_t *p, int kind, int64_t src, int64_t tgt, unsigned differs,
		     const char *key, const char *note)
{
	p->mismatches++;
	p->by_kind[kind]++;
	if (p->nshown >= v->opts->max_shown)
		return;
	if (p->nshown == p->cap_shown) {
		p->cap_shown = p->cap_shown ? p->cap_shown * 2 : 8;
		if (p->cap_shown > v->opts->max_shown)
			p->cap_shown = v->opts->max_shown;
		p->shown = km_realloc(p->shown, (size_t)p->cap_shown * sizeof(*p->shown));
	}
	shown_t *s = &p->shown[p->nshown++];
	s->kind = kind;
	s->src = src;
	s->tgt = tgt;
	s->differs = differs;
	snprintf(s->key, sizeof(s->key), "%s", key ? key : "");
	s->note = note;
	s->pos = p->pos;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* n more mismatches of a kind, beyond the listing. */
static void mismatch_more(vpart_t *p, int kind, int64_t n)
{
	p->mismatches += n;
	p->by_kind[kind] += n;
}

/* ---- the target's tail --------------------------------------------------------------- */

/* A visible target record at or after tail_from: kept as ranges of
 * consecutive offsets (one range per transaction of the replicator, or per
 * stretch of a stray writer's records), not per record. */
static void tail_add(vrun_t *v, vpart_t *p, const rd_kafka_message_t *m)
{
	trange_t *r = p->ntail ? &p->tail[p->ntail - 1] : NULL;

	p->tail_records++;
	if (r && r->first + r->count == m->offset) {
		r->count++;
	} else {
		if (p->ntail == p->cap_tail) {
			p->cap_tail = p->cap_tail ? p->cap_tail * 2 : 4;
			p->tail = km_realloc(p->tail, p->cap_tail * sizeof(*p->tail));
		}
		p->tail[p->ntail++] = (trange_t){m->offset, 1};
	}
	if (p->ntail_keys < v->opts->max_shown) {
		if (!p->tail_keys)
			p->tail_keys = km_calloc((size_t)v->opts->max_shown, sizeof(*p->tail_keys));
		p->tail_keys[p->ntail_keys].off = m->offset;
		key_preview(m, p->tail_keys[p->ntail_keys].key, sizeof(p->tail_keys->key));
		p->ntail_keys++;
	}
}

/* Reads the target stream from where the range ended to the end of the
 * log, read_committed: up to the last stable offset, so kmigrate's open
 * transaction (and anything after it) is not read now, its aborted
 * transactions and every transaction marker never.  With keys, also marks
 * which of them were written there (compacted topics).  The source's tail
 * is read the same way, for the keys only. */
static bool tail_read(vpart_t *p, stream_t *s, bool target, const uint64_t *keys, size_t nkeys,
		      bool *seen)
{
	rd_kafka_message_t *m;

	stream_extend(s, INT64_MAX);
	while ((m = stream_peek(s))) {
		if (nkeys) {
			uint64_t kh = km_digest_bytes(m->key, m->key_len);
			const uint64_t *f = bsearch(&kh, keys, nkeys, sizeof(*keys), cmp_u64);
			if (f)
				seen[f - keys] = true;
		}
		if (target)
			tail_add(s->w->v, p, m);
		stream_skip(s);
	}
	if (s->failed)
		return false;
	if (target) {
		p->tail_read = true;
		p->tail_end = s->eof ? s->eof_offset : -1;
	}
	return true;
}

/* Classifies the tail with an offset map read after the tail was: a record
 * in a run of it was copied after the snapshot (not compared, not a
 * mismatch); any other one was not written by the replicator: extra. */
static void tail_classify(vrun_t *v, vpart_t *p, const km_offmap_t *m2)
{
	size_t k = 0;

	for (size_t i = 0; i < p->ntail; i++) {
		int64_t a = p->tail[i].first, b = a + p->tail[i].count, at = a;
		while (at < b) {
			/* The first run ending after `at` (runs are in target
			 * order: the map is monotonic on both sides). */
			while (k < m2->cnt && m2->runs[k].tgt_first + m2->runs[k].count <= at)
				k++;
			int64_t rs = k < m2->cnt ? m2->runs[k].tgt_first : INT64_MAX;
			int64_t re = k < m2->cnt ? rs + m2->runs[k].count : INT64_MAX;
			if (at >= rs) {
				int64_t n = (re < b ? re : b) - at;
				p->tail_after += n;
				at += n;
				continue;
			}
			/* [at, min(rs, b)) is in no run: foreign. */
			int64_t e = rs < b ? rs : b;
			p->tail_extra += e - at;
			for (; at < e && p->nshown < v->opts->max_shown; at++) {
				const char *key = NULL;
				for (int j = 0; j < p->ntail_keys; j++)
					if (p->tail_keys[j].off == at)
						key = p->tail_keys[j].key;
				p->pos = INT64_MAX / 2 + at;
				mismatch(v, p, K_EXTRA, -1, at, 0, key,
					 "written on the target after the last copied record: not a "
					 "copy of a source record");
			}
			mismatch_more(p, K_EXTRA, e - at);
			at = e;
		}
	}
}

static int cmp_shown(const void *a, const void *b)
{
	const shown_t *x = a, *y = b;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static unsigned differs_of(const km_digest_t *a, const km_digest_t *b)
{
	unsigned d = 0;
	if (a->key != b->key)
		d |= 1u << K_KEY;
	if (a->value != b->value)
		d |= 1u << K_VALUE;
	if (a->headers != b->headers)
		d |= 1u << K_HEADER;
	if (a->ts != b->ts)
		d |= 1u << K_TIMESTAMP;
	return d;
}

static int first_kind(unsigned differs)
{
	for (int k = K_KEY; k <= K_TIMESTAMP; k++)
		if (differs & (1u << k))
			return k;
	return K_VALUE; /* digests differ but no component does: a collision
			 * of the combination, reported as a value difference */
}

/* ---- sequence comparison (ordinary topics) ------------------------------------------ */

/* A compared pair kept until its neighbour is known, so that a swapped pair
 * can be told from two unrelated differences. */
typedef struct pair_s {
	bool valid, mismatch, reordered;
	int64_t src, tgt, pos;
	km_digest_t sd, td;
	char key[64];
} pair_t;

static void pair_flush(vrun_t *v, vpart_t *p, pair_t *pr)
{
	if (pr->valid && pr->mismatch) {
		unsigned d = differs_of(&pr->sd, &pr->td);
		p->pos = pr->pos;
		if (pr->reordered)
			mismatch(v, p, K_REORDERED, pr->src, pr->tgt, d, pr->key,
				 "holds the record of its neighbour: the pair is swapped");
		else
			mismatch(v, p, first_kind(d), pr->src, pr->tgt, d, pr->key, NULL);
	}
	pr->valid = false;
}

/* Per-key ordering: each key's sequence of digests, on both sides, in
 * pairing order (which is both sides' offset order, the map being
 * monotonic).  A key whose two sequences hold the same digests (count and
 * sum) in a different order was reordered; one whose digests differ has
 * content mismatches, reported as such. */
static void order_add(worker_t *w, vpart_t *p, const pair_t *pr)
{
	kent_t *e;

	if (!p->ord_checked)
		return;
	if (!(e = ktab_get(&w->tab, pr->sd.key))) {
		p->ord_checked = false;
		p->ord_reason = "more distinct keys than the key table holds "
				"(KM_VALIDATE_MAX_KEYS)";
		return;
	}
	e->s_a = XXH3_64bits_withSeed(&pr->sd.all, 8, e->s_a);
	e->s_c = (int64_t)((uint64_t)e->s_c + pr->sd.all); /* sum mod 2^64 */
	e->bb += 1ull << 32;
	if (e->s_off < 0)
		e->s_off = pr->src;
	if (pr->td.key != pr->sd.key && !(e = ktab_get(&w->tab, pr->td.key))) {
		p->ord_checked = false;
		p->ord_reason = "more distinct keys than the key table holds "
				"(KM_VALIDATE_MAX_KEYS)";
		return;
	}
	e->t_a = XXH3_64bits_withSeed(&pr->td.all, 8, e->t_a);
	e->t_c = (int64_t)((uint64_t)e->t_c + pr->td.all);
	e->bb += 1;
	if (e->t_off < 0)
		e->t_off = pr->tgt;
}

static void order_finish(worker_t *w, vpart_t *p)
{
	if (!p->ord_checked)
		return;
	for (size_t i = 0; i < w->tab.cap; i++) {
		kent_t *e = &w->tab.e[i];
		if (!e->kh)
			continue;
		p->ord_keys++;
		if (e->s_a == e->t_a)
			continue;
		if ((e->bb >> 32) == (e->bb & 0xffffffffu) && e->s_c == e->t_c) {
			p->ord_violations++;
			if (p->nord_examples < MAX_ORDER_EXAMPLES)
				p->ord_examples[p->nord_examples++] = e->s_off;
		} else {
			p->ord_keys_differing++;
		}
	}
}

/* Source offset o is in a run: *tp = its target offset.  rc is a cursor
 * into the runs; both sides are read in increasing offsets, so it only
 * moves forward. */
static bool map_src(const km_offmap_t *m, size_t *rc, int64_t o, int64_t *tp)
{
	while (*rc < m->cnt && m->runs[*rc].src_first + m->runs[*rc].count <= o)
		(*rc)++;
	if (*rc < m->cnt && o >= m->runs[*rc].src_first) {
		*tp = m->runs[*rc].tgt_first + (o - m->runs[*rc].src_first);
		return true;
	}
	return false;
}

static bool map_tgt(const km_offmap_t *m, size_t *rc, int64_t t, int64_t *op)
{
	while (*rc < m->cnt && m->runs[*rc].tgt_first + m->runs[*rc].count <= t)
		(*rc)++;
	if (*rc < m->cnt && t >= m->runs[*rc].tgt_first) {
		*op = m->runs[*rc].src_first + (t - m->runs[*rc].tgt_first);
		return true;
	}
	return false;
}

/* A visible target record in no run, just before run i (i = map.cnt: after
 * the last, which the tail counts itself). */
static void hole_seen(vpart_t *p, size_t i)
{
	if (i >= p->map.cnt)
		return;
	if (!p->hole_vis)
		p->hole_vis = km_calloc(p->map.cnt, sizeof(*p->hole_vis));
	p->hole_vis[i]++;
}

/* A target record before the compared range (the target's log start is
 * read from, not only the first copied record): a mapped one is a copy
 * whose source record expired, not compared; any other one is foreign. */
static void head_record(vrun_t *v, vpart_t *p, stream_t *ts, size_t *rt)
{
	rd_kafka_message_t *mt = stream_peek(ts);
	int64_t os;
	char key[64];

	if (map_tgt(&p->map, rt, mt->offset, &os)) {
		stream_skip(ts);
		return;
	}
	hole_seen(p, *rt);
	key_preview(mt, key, sizeof(key));
	mismatch(v, p, K_EXTRA, -1, mt->offset, 0, key,
		 "written on the target before the compared copies: not a copy of a source "
		 "record");
	stream_pop(ts);
}

static void compare_sequence(worker_t *w, vpart_t *p, stream_t *ss, stream_t *ts)
{
	vrun_t *v = w->v;
	size_t rs = 0, rt = 0;
	pair_t prev = {0}, cur;
	char key[64];

	p->ord_checked = p->ordering != KM_PLAN_ORDERING_NONE;
	if (p->ord_checked)
		ktab_init(&w->tab);
	for (;;) {
		rd_kafka_message_t *ms = stream_peek(ss), *mt = stream_peek(ts);
		int64_t o = -1, t = -1, te = -1, os = -1;

		if (ss->failed || ts->failed)
			return;
		if (!ms && !mt)
			break;
		if (mt && mt->offset < p->t_start) {
			head_record(v, p, ts, &rt);
			continue;
		}
		/* A pair's mismatch is told one pair later (a swap needs the
		 * neighbour): positions keep the listing in stream order. */
		p->pos = p->src.records + p->tgt.records;
		if (ms) {
			o = ms->offset;
			if (!map_src(&p->map, &rs, o, &te)) {
				key_preview(ms, key, sizeof(key));
				mismatch(v, p, K_MISSING, o, -1, 0, key,
					 "in no run of the offset map: never copied");
				stream_pop(ss);
				continue;
			}
		}
		if (mt) {
			t = mt->offset;
			if (!map_tgt(&p->map, &rt, t, &os)) {
				hole_seen(p, rt);
				key_preview(mt, key, sizeof(key));
				mismatch(v, p, K_EXTRA, -1, t, 0, key,
					 "in no run of the offset map: not a copy of a source record");
				stream_pop(ts);
				continue;
			}
		}
		if (ms && mt && os == o) {
			p->paired++;
			if (!sampled(v, (uint64_t)o)) {
				stream_pop(ss);
				stream_pop(ts);
				continue;
			}
			p->digested++;
			memset(&cur, 0, sizeof(cur));
			cur.valid = true;
			cur.src = o;
			cur.tgt = t;
			cur.pos = p->pos;
			km_digest_message(ms, &cur.sd);
			km_digest_message(mt, &cur.td);
			cur.mismatch = cur.sd.all != cur.td.all;
			if (cur.mismatch)
				key_preview(ms, cur.key, sizeof(cur.key));
			/* A mismatching record that holds its mismatching
			 * neighbour's digest swapped places with it. */
			if (cur.mismatch && prev.valid && prev.mismatch &&
			    (prev.sd.all == cur.td.all || cur.sd.all == prev.td.all))
				prev.reordered = cur.reordered = true;
			order_add(w, p, &cur);
			pair_flush(v, p, &prev);
			prev = cur;
			stream_pop(ss);
			stream_pop(ts);
		} else if (ms && (!mt || os > o)) {
			/* The target record o was copied to is not there. */
			key_preview(ms, key, sizeof(key));
			mismatch(v, p, K_MISSING, o, te, 0, key,
				 "copied, but its target offset holds no record");
			stream_pop(ss);
		} else {
			/* The source record this target record copies is gone. */
			key_preview(mt, key, sizeof(key));
			mismatch(v, p, K_EXTRA, os, t, 0, key,
				 "a copy of a source record that is no longer on the source");
			stream_pop(ts);
		}
	}
	pair_flush(v, p, &prev);
	order_finish(w, p);
	if (p->nshown > 1)
		qsort(p->shown, (size_t)p->nshown, sizeof(*p->shown), cmp_shown);
	if (tail_read(p, ts, true, NULL, 0, NULL))
		p->state = ST_VALIDATED;
}

/* ---- latest value per key (compacted topics) ---------------------------------------- */

/* Reads a side's range into the table: the last record of each key wins
 * (offsets increase, so the last read is the latest). */
static bool latest_read(worker_t *w, vpart_t *p, stream_t *s, bool source)
{
	rd_kafka_message_t *m;
	km_digest_t d;
	size_t rt = 0;

	while ((m = stream_peek(s))) {
		uint64_t kh = km_digest_bytes(m->key, m->key_len);
		kent_t *e;
		if (!source && m->offset < p->t_start) {
			head_record(w->v, p, s, &rt);
			continue;
		}
		int64_t os_;
		if (!source && !map_tgt(&p->map, &rt, m->offset, &os_))
			hole_seen(p, rt);
		/* A sampled run keeps whole keys: sampling records would
		 * make an older record look like the latest. */
		if (sampled(w->v, kh)) {
			p->digested++;
			if (!(e = ktab_get(&w->tab, kh))) {
				p->state = ST_NOT_VALIDATED;
				snprintf(p->reason, sizeof(p->reason),
					 "more than %u distinct keys: the latest-value table is "
					 "bounded, so this compacted partition was not validated",
					 KM_VALIDATE_MAX_KEYS);
				return false;
			}
			km_digest_message(m, &d);
			if (source) {
				e->s_a = d.value;
				e->bb = (e->bb & 0xffffffffu) | (d.headers << 32);
				e->s_c = d.ts;
				e->s_off = m->offset;
			} else {
				e->t_a = d.value;
				e->bb = (e->bb & ~0xffffffffull) | (d.headers & 0xffffffffu);
				e->t_c = d.ts;
				e->t_off = m->offset;
			}
		}
		stream_pop(s);
	}
	return !s->failed;
}

static void compare_latest(worker_t *w, vpart_t *p, stream_t *ss, stream_t *ts)
{
	vrun_t *v = w->v;
	uint64_t *stail = NULL, *ttail = NULL;
	bool *sseen = NULL, *tseen = NULL;
	size_t ns = 0, nt = 0;

	ktab_init(&w->tab);
	if (!latest_read(w, p, ss, true) || !latest_read(w, p, ts, false))
		goto done;
	p->keys = (int64_t)w->tab.cnt;

	/* A key on one side only may have been written again after the
	 * snapshot: the cleaner then removes the in-range record on that side
	 * (a record is only ever removed for a later one of its key).  Those
	 * keys are looked for past the range, to the end of each log, before
	 * being called mismatches.  The target's tail is read whatever the
	 * keys: a record there that the replicator did not write is extra. */
	stail = km_calloc(w->tab.cnt + 1, sizeof(*stail));
	ttail = km_calloc(w->tab.cnt + 1, sizeof(*ttail));
	for (size_t i = 0; i < w->tab.cap; i++) {
		kent_t *e = &w->tab.e[i];
		bool s_live = e->kh && e->s_off >= 0 && e->s_a != KM_DIGEST_NULL;
		bool t_live = e->kh && e->t_off >= 0 && e->t_a != KM_DIGEST_NULL;
		if (s_live && !t_live && e->t_off < 0)
			ttail[nt++] = e->kh;
		else if (t_live && !s_live && e->s_off < 0)
			stail[ns++] = e->kh;
	}
	qsort(stail, ns, sizeof(*stail), cmp_u64);
	qsort(ttail, nt, sizeof(*ttail), cmp_u64);
	sseen = km_calloc(ns + 1, sizeof(*sseen));
	tseen = km_calloc(nt + 1, sizeof(*tseen));
	if ((ns && !tail_read(p, ss, false, stail, ns, sseen)) ||
	    !tail_read(p, ts, true, ttail, nt, tseen))
		goto done;

	for (size_t i = 0; i < w->tab.cap; i++) {
		kent_t *e = &w->tab.e[i];
		if (!e->kh)
			continue;
		/* A tombstone and an absent key are the same state: the
		 * cleaner removes tombstones after delete.retention.ms. */
		bool s_live = e->s_off >= 0 && e->s_a != KM_DIGEST_NULL;
		bool t_live = e->t_off >= 0 && e->t_a != KM_DIGEST_NULL;
		if (!s_live && !t_live)
			continue;
		p->pos = e->s_off >= 0 ? e->s_off : e->t_off;
		if (s_live && t_live) {
			unsigned d = 0;
			if (e->s_a != e->t_a)
				d |= 1u << K_VALUE;
			if ((e->bb >> 32) != (e->bb & 0xffffffffu))
				d |= 1u << K_HEADER;
			if (e->s_c != e->t_c)
				d |= 1u << K_TIMESTAMP;
			if (d)
				mismatch(v, p, first_kind(d), e->s_off, e->t_off, d, NULL,
					 "the latest record of the key differs");
			continue;
		}
		uint64_t *f;
		if (s_live) {
			f = e->t_off < 0 ? bsearch(&e->kh, ttail, nt, sizeof(*ttail), cmp_u64) : NULL;
			if (f && tseen[f - ttail])
				p->superseded++;
			else
				mismatch(v, p, K_MISSING, e->s_off, e->t_off, 0, NULL,
					 e->t_off < 0 ? "the key's latest value is not on the target"
						      : "the key is deleted (tombstone) on the target");
		} else {
			f = e->s_off < 0 ? bsearch(&e->kh, stail, ns, sizeof(*stail), cmp_u64) : NULL;
			if (f && sseen[f - stail])
				p->superseded++;
			else
				mismatch(v, p, K_EXTRA, e->s_off, e->t_off, 0, NULL,
					 e->s_off < 0 ? "the key is not on the source"
						      : "the key is deleted (tombstone) on the source");
		}
	}
	/* The table's order is the hash's: list by offset. */
	if (p->nshown > 1)
		qsort(p->shown, (size_t)p->nshown, sizeof(*p->shown), cmp_shown);
	if (p->state == ST_PENDING)
		p->state = ST_VALIDATED;
done:
	free(stail);
	free(ttail);
	free(sseen);
	free(tseen);
}

/* ---- one partition ----------------------------------------------------------------- */

/* Mapped records whose source offset is below s. */
static int64_t mapped_below(const km_offmap_t *m, int64_t s)
{
	int64_t n = 0;
	for (size_t i = 0; i < m->cnt && m->runs[i].src_first < s; i++)
		n += s - m->runs[i].src_first < m->runs[i].count ? s - m->runs[i].src_first
								  : m->runs[i].count;
	return n;
}

/* Decides what to read of a partition from the snapshot and the
 * watermarks (p->slo, p->shi, p->tlo), before any worker runs.  Single
 * threaded. */
static void prepare(vpart_t *p)
{
	const km_offmap_t *m = &p->map;
	int64_t t0;

	p->src_hwm = p->shi;
	p->rd_s_from = p->rd_s_to = 0;
	p->rd_t_from = -1;
	if (p->state != ST_PENDING)
		return;
	if (m->cnt == 0) {
		/* No run: either there is nothing to copy, or nothing was
		 * copied yet.  One committed source record decides.  When the
		 * source has none, every target record is in the tail: extra
		 * unless the replicator copied it after the snapshot. */
		p->rd_s_from = p->slo;
		p->rd_s_to = p->shi;
		p->s_start = p->s_end = p->slo;
		p->t_start = p->t_end = p->tail_from = p->rd_t_from = p->tlo;
		return;
	}
	p->s_first = m->runs[0].src_first;
	p->t_first = m->runs[0].tgt_first;
	p->s_end = m->runs[m->cnt - 1].src_first + m->runs[m->cnt - 1].count;
	p->t_end = m->runs[m->cnt - 1].tgt_first + m->runs[m->cnt - 1].count;

	/* Records retention deleted on either side after they were copied
	 * cannot be compared: the comparison starts where both still hold the
	 * mapped records, and says how many it could not see. */
	p->s_start = p->s_first > p->slo ? p->s_first : p->slo;
	if (km_offmap_translate(m, p->s_start, &t0) == 0 && t0 < p->tlo) {
		int64_t s0 = -1;
		for (size_t i = 0; i < m->cnt && s0 < 0; i++)
			if (m->runs[i].tgt_first + m->runs[i].count > p->tlo)
				s0 = m->runs[i].src_first +
				     (p->tlo > m->runs[i].tgt_first ? p->tlo - m->runs[i].tgt_first : 0);
		p->s_start = s0 < 0 ? p->s_end : s0;
	}
	if (p->s_start >= p->s_end || km_offmap_translate(m, p->s_start, &p->t_start)) {
		p->state = ST_NOT_VALIDATED;
		p->expired = km_offmap_records(m);
		snprintf(p->reason, sizeof(p->reason),
			 "every replicated record was deleted by retention (source log start %lld, "
			 "target log start %lld): nothing left to compare",
			 (long long)p->slo, (long long)p->tlo);
		return;
	}
	p->expired = mapped_below(m, p->s_start);
	p->rd_s_from = p->s_start;
	p->rd_s_to = p->s_end;
	/* The target is read from its log start, not from the first copied
	 * record, and on past the last one to its end: a record written there
	 * by anyone but the replicator is extra wherever it sits. */
	p->rd_t_from = p->tlo < p->t_start ? p->tlo : p->t_start;
	p->tail_from = p->t_end;
}

/* Records both sides' reads hold (the size that decides how it is read). */
static int64_t estimate(const vpart_t *p)
{
	int64_t n = 0;
	if (p->rd_s_to > p->rd_s_from)
		n += p->rd_s_to - p->rd_s_from;
	if (p->rd_t_from >= 0 && p->tail_from > p->rd_t_from)
		n += p->tail_from - p->rd_t_from;
	return n;
}

static void compare_partition(worker_t *w, vpart_t *p, stream_t *ss, stream_t *ts)
{
	if (p->state != ST_PENDING)
		return;
	if (p->map.cnt == 0) {
		rd_kafka_message_t *rkm = stream_peek(ss);
		if (ss->failed)
			return;
		if (rkm) {
			p->state = ST_NOTHING;
			snprintf(p->reason, sizeof(p->reason),
				 "nothing replicated: the source has records from offset %lld and "
				 "the offset map has no run (run `kmigrate replicate`)",
				 (long long)rkm->offset);
			return;
		}
		compare_sequence(w, p, ss, ts);
		return;
	}
	if (p->compacted)
		compare_latest(w, p, ss, ts);
	else
		compare_sequence(w, p, ss, ts);
}

/* ---- workers ----------------------------------------------------------------------- */

static rd_kafka_t *consumer(vrun_t *v, const km_kafka_endpoint_t *ep, bool large, bool committed)
{
	char group[300], errbuf[512];
	/* read_committed on both sides: aborted records were never copied.
	 * auto.offset.reset=error: a range start deleted under us is an error,
	 * never a silent jump.  1 MB per partition fetch: larger fetch buffers
	 * are fresh mmaps whose page faults cost more CPU than the fewer round
	 * trips save (measured: bench/validate/README.md).  Prefetch is per
	 * partition queue: 32 MB for a large partition read alone, 1 MB for
	 * each of the up to GROUP_PARTS small ones read together, so either
	 * consumer holds at most 32 MB.  fetch.wait.max.ms 10: a partition is
	 * read to its end, which costs one empty fetch. */
	const char *props[] = {"group.id", group, "enable.auto.commit", "false",
			       "enable.auto.offset.store", "false", "isolation.level",
			       committed ? "read_committed" : "read_uncommitted",
			       "enable.partition.eof", "true", "auto.offset.reset",
			       "error", "fetch.max.bytes", "52428800", "max.partition.fetch.bytes",
			       "1048576", "queued.max.messages.kbytes",
			       large ? "32768" : "1024", "fetch.wait.max.ms", "10", NULL};
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	km_err_t err;

	snprintf(group, sizeof(group), "kmigrate.%s.validate", v->plan->migration);
	if ((err = km_kafka_conf_new(ep, props, &conf, errbuf, sizeof(errbuf)))) {
		vfail(v, err, "%s", errbuf);
		return NULL;
	}
	if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, sizeof(errbuf)))) {
		rd_kafka_conf_destroy(conf);
		vfail(v, KM_ERR_KAFKA, "cannot create a %s consumer: %s", ep->role, errbuf);
		return NULL;
	}
	/* Client errors and logs reach the consumer queue, which the streams
	 * (reading partition queues) drain as they wait. */
	rd_kafka_poll_set_consumer(rk);
	return rk;
}

/* The next partitions for a worker: one large partition, or up to
 * GROUP_PARTS consecutive small ones.  @returns how many (0: none left). */
static int take_group(vrun_t *v, int *idx, bool *large)
{
	int n = 0;
	pthread_mutex_lock(&v->lock);
	*large = v->next < v->nparts && estimate(&v->parts[v->next]) > SMALL_RECORDS;
	while (v->next < v->nparts && n < (*large ? 1 : GROUP_PARTS) &&
	       (*large || estimate(&v->parts[v->next]) <= SMALL_RECORDS))
		idx[n++] = v->next++;
	pthread_mutex_unlock(&v->lock);
	return n;
}

static void part_done(vrun_t *v)
{
	pthread_mutex_lock(&v->lock);
	v->done++;
	v->last_done_ms = km_mono_ms();
	pthread_mutex_unlock(&v->lock);
}

static void drain_consumer_queue(rd_kafka_t *rk)
{
	rd_kafka_message_t *m;
	while ((m = rd_kafka_consumer_poll(rk, 0)))
		rd_kafka_message_destroy(m);
}

/* The principal a cluster block authenticates as, for ACL advice. */
static void principal(const km_plan_cluster_t *c, char *buf, size_t size)
{
	if (c->username)
		snprintf(buf, size, "User:%s", c->username);
	else
		snprintf(buf, size, "the %s's principal", c->role);
}

/* Assigns the group's partitions of one side.  Their topics are made known
 * to the client and their leaders fetched first, in one Metadata request:
 * a partition of a topic the client only meets at assign waits for
 * librdkafka's periodic scan to ask for its leader (measured: about a
 * second per group of new topics). */
static bool assign(vrun_t *v, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *tp,
		   const char *role)
{
	rd_kafka_topic_t **rkts = km_calloc((size_t)tp->cnt + 1, sizeof(*rkts));
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;
	int n = 0;

	for (int i = 0; i < tp->cnt; i++)
		if (i == 0 || strcmp(tp->elems[i].topic, tp->elems[i - 1].topic))
			rkts[n++] = rd_kafka_topic_new(rk, tp->elems[i].topic, NULL);
	/* all_topics 0, no topic: the topics the client knows. */
	if (n && !(rerr = rd_kafka_metadata(rk, 0, NULL, &md, KM_KAFKA_TIMEOUT_MS)))
		rd_kafka_metadata_destroy(md);
	if (rerr)
		vfail(v, KM_ERR_KAFKA, "Metadata of %d topics on the %s: %s", n, role,
		      rd_kafka_err2str(rerr));
	else if (tp->cnt && (rerr = rd_kafka_assign(rk, tp)))
		vfail(v, KM_ERR_KAFKA, "cannot read %d partitions on the %s: %s", tp->cnt, role,
		      rd_kafka_err2str(rerr));
	for (int i = 0; i < n; i++)
		rd_kafka_topic_destroy(rkts[i]);
	free(rkts);
	return !rerr;
}

/* Records of [a, b) on the target read read_uncommitted, less `visible`
 * (those read read_committed there): the records of aborted transactions.
 * @returns false on failure (the run's error is set). */
static bool aborted_in(worker_t *w, vpart_t *p, int64_t a, int64_t b, int64_t visible)
{
	vrun_t *v = w->v;
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
	side_t scratch = {0};
	stream_t s;
	int64_t n = 0;
	bool ok;

	if (!w->cu && !(w->cu = consumer(v, v->tgt, false, false))) {
		rd_kafka_topic_partition_list_destroy(tp);
		return false;
	}
	rd_kafka_topic_partition_list_add(tp, p->tgt_topic, p->partition)->offset = a;
	ok = stream_init(w, &s, w->cu, false, p->tgt_topic, p->partition, a, b, &scratch) &&
	     assign(v, w->cu, tp, "target");
	while (ok && stream_peek(&s)) {
		n++;
		stream_skip(&s);
	}
	ok = ok && !s.failed;
	rd_kafka_assign(w->cu, NULL);
	stream_close(&s);
	rd_kafka_topic_partition_list_destroy(tp);
	if (ok) {
		p->aborted += n - visible;
		p->aborted_reads++;
	}
	return ok;
}

/* aborted_on_target: target records of aborted transactions (kmigrate's,
 * or anyone's), invisible read_committed.  Only the stretches that can hold
 * one are read again, read_uncommitted: a stretch of target offsets in no
 * run (before the first run, between two runs, the tail to the end read)
 * holds transaction markers, aborted records and visible foreign records.
 * Between two runs of kmigrate's sits its commit marker; an aborted
 * transaction adds at least a record and its abort marker.  So a stretch
 * with at most one offset besides its visible records holds no aborted
 * record, and is not read: after a clean replication nothing is. */
static bool count_aborted(worker_t *w, vpart_t *p)
{
	const km_offmap_t *m = &p->map;

	if (m->cnt) {
		for (size_t i = 0; i < m->cnt; i++) {
			int64_t a = i ? m->runs[i - 1].tgt_first + m->runs[i - 1].count : p->tlo;
			int64_t b = m->runs[i].tgt_first;
			int64_t vis = p->hole_vis ? p->hole_vis[i] : 0;
			if (a < p->tlo)
				continue; /* deleted by retention: nothing to read */
			if (b - a - vis >= 2 && !aborted_in(w, p, a, b, vis))
				return false;
		}
	}
	if (p->tail_read && p->tail_end >= 0 && p->tail_end - p->tail_from - p->tail_records >= 2 &&
	    !aborted_in(w, p, p->tail_from, p->tail_end, p->tail_records))
		return false;
	p->aborted_counted = true;
	return true;
}

/* Reads and compares a group of partitions: each side's partitions are
 * assigned at once (their fetches share requests, their ends are found in
 * the same round trips), each read through its own queue, compared one
 * after the other, then unassigned. */
static void read_group(worker_t *w, const int *idx, int n, bool large)
{
	vrun_t *v = w->v;
	int k = large ? 1 : 0;
	stream_t *ss = km_calloc((size_t)n, sizeof(*ss)), *ts = km_calloc((size_t)n, sizeof(*ts));
	rd_kafka_topic_partition_list_t *ls = rd_kafka_topic_partition_list_new(n);
	rd_kafka_topic_partition_list_t *lt = rd_kafka_topic_partition_list_new(n);
	bool ok = true;

	if ((!w->cs[k] && !(w->cs[k] = consumer(v, v->src, large, true))) ||
	    (!w->ct[k] && !(w->ct[k] = consumer(v, v->tgt, large, true))))
		ok = false;
	for (int i = 0; i < n; i++) {
		vpart_t *p = &v->parts[idx[i]];
		bool rs = ok && p->state == ST_PENDING && p->rd_s_from < p->rd_s_to;
		bool rt = ok && p->state == ST_PENDING && p->rd_t_from >= 0;
		if (rs && (ok = stream_init(w, &ss[i], w->cs[k], true, p->topic, p->partition,
					    p->rd_s_from, p->rd_s_to, &p->src)))
			rd_kafka_topic_partition_list_add(ls, p->topic, p->partition)->offset =
				p->rd_s_from;
		else if (!rs)
			stream_none(w, &ss[i], &p->src);
		if (rt && ok && (ok = stream_init(w, &ts[i], w->ct[k], false, p->tgt_topic,
						  p->partition, p->rd_t_from, p->tail_from, &p->tgt)))
			rd_kafka_topic_partition_list_add(lt, p->tgt_topic, p->partition)->offset =
				p->rd_t_from;
		else if (!rt || !ok)
			stream_none(w, &ts[i], &p->tgt);
	}
	if (ok && assign(v, w->cs[k], ls, "source") && assign(v, w->ct[k], lt, "target")) {
		for (int i = 0; i < n && !vfailed(v); i++) {
			vpart_t *p = &v->parts[idx[i]];
			int64_t t0 = km_mono_ms();
			compare_partition(w, p, &ss[i], &ts[i]);
			if ((p->state == ST_VALIDATED || p->state == ST_PENDING) && p->tail_read &&
			    !count_aborted(w, p))
				break;
			if (ss[i].denied || ts[i].denied) {
				const km_plan_cluster_t *c =
					ss[i].denied ? &v->plan->source : &v->plan->target;
				char who[300];
				principal(c, who, sizeof(who));
				const char *tn = ss[i].denied ? p->topic : p->tgt_topic;
				char *r = km_asprintf("not validated: %s may not read topic '%s' "
						      "on the %s (grant READ on topic '%s' to %s)",
						      who, tn, c->role, tn, who);
				p->state = ST_NOT_VALIDATED;
				snprintf(p->reason, sizeof(p->reason), "%s", r);
				free(r);
			}
			p->elapsed_ms = km_mono_ms() - t0;
			ktab_free(&w->tab);
			flush_counts(w);
			part_done(v);
			drain_consumer_queue(w->cs[k]);
			drain_consumer_queue(w->ct[k]);
		}
	}
	if (w->cs[k] && ls->cnt)
		rd_kafka_assign(w->cs[k], NULL);
	if (w->ct[k] && lt->cnt)
		rd_kafka_assign(w->ct[k], NULL);
	for (int i = 0; i < n; i++) {
		stream_close(&ss[i]);
		stream_close(&ts[i]);
	}
	rd_kafka_topic_partition_list_destroy(ls);
	rd_kafka_topic_partition_list_destroy(lt);
	free(ss);
	free(ts);
}

/* Phase 1: the offset map of every partition, read once before any data is
 * compared.  This is the snapshot the ranges come from.  Each partition of
 * the offset-map topic holds the runs of one task's partitions and is read
 * once for all of them. */
static void read_maps(vrun_t *v)
{
	km_mapstore_t *maps;
	const km_offmap_t *m;
	char errbuf[512];
	km_err_t err;

	err = km_mapstore_open(v->plan->migration, NULL, v->tgt, &maps, errbuf, sizeof(errbuf));
	/* No replication state at all is "nothing replicated" for each
	 * partition, decided per partition below. */
	if (err == KM_ERR_NOT_FOUND)
		return;
	if (err) {
		vfail(v, err, "%s", errbuf);
		return;
	}
	for (int i = 0; i < v->nparts && !vfailed(v); i++) {
		vpart_t *p = &v->parts[i];
		if (p->state != ST_PENDING)
			continue;
		m = km_mapstore_offmap(maps, p->topic, p->partition);
		for (size_t k = 0; k < m->cnt; k++)
			km_offmap_add(&p->map, m->runs[k].src_first, m->runs[k].tgt_first,
				      m->runs[k].count);
	}
	km_mapstore_destroy(maps);
}

/* Phase 2: compare, a group of partitions at a time per worker, with the
 * worker's consumers made once and reused. */
static void *data_worker(void *arg)
{
	worker_t *w = arg;
	vrun_t *v = w->v;
	int idx[GROUP_PARTS], n;
	bool large;

	while (!vfailed(v) && (n = take_group(v, idx, &large)) > 0)
		read_group(w, idx, n, large);
	/* Partitions were assigned, never subscribed, and nothing was
	 * committed: there is no group membership to leave. */
	if (w->cu)
		rd_kafka_destroy_flags(w->cu, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	for (int k = 0; k < 2; k++) {
		if (w->cs[k])
			rd_kafka_destroy_flags(w->cs[k], RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
		if (w->ct[k])
			rd_kafka_destroy_flags(w->ct[k], RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	}
	pthread_mutex_lock(&v->lock);
	v->running--;
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

/* Every partition's source log start and high watermark and target log
 * start, in three calls for the whole run instead of two round trips per
 * partition. */
static km_err_t watermarks(vrun_t *v, km_kafka_t *ks, km_kafka_t *kt, char *errstr,
			   size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *s = rd_kafka_topic_partition_list_new(v->nparts);
	rd_kafka_topic_partition_list_t *sh = rd_kafka_topic_partition_list_new(v->nparts);
	rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(v->nparts);
	km_err_t err;

	for (int i = 0; i < v->nparts; i++) {
		vpart_t *p = &v->parts[i];
		if (p->state != ST_PENDING)
			continue;
		rd_kafka_topic_partition_list_add(s, p->topic, p->partition);
		rd_kafka_topic_partition_list_add(sh, p->topic, p->partition);
		rd_kafka_topic_partition_list_add(t, p->tgt_topic, p->partition);
	}
	if (!(err = km_kafka_list_offsets(ks, s, KM_KAFKA_LOG_START, errstr, errstr_size)) &&
	    !(err = km_kafka_list_offsets(ks, sh, KM_KAFKA_HWM, errstr, errstr_size)) &&
	    !(err = km_kafka_list_offsets(kt, t, KM_KAFKA_LOG_START, errstr, errstr_size))) {
		for (int i = 0; i < v->nparts; i++) {
			vpart_t *p = &v->parts[i];
			if (p->state != ST_PENDING)
				continue;
			p->slo = rd_kafka_topic_partition_list_find(s, p->topic, p->partition)->offset;
			p->shi = rd_kafka_topic_partition_list_find(sh, p->topic, p->partition)->offset;
			p->tlo = rd_kafka_topic_partition_list_find(t, p->tgt_topic, p->partition)
					 ->offset;
		}
	}
	rd_kafka_topic_partition_list_destroy(s);
	rd_kafka_topic_partition_list_destroy(sh);
	rd_kafka_topic_partition_list_destroy(t);
	return err;
}

/* Waits until no transaction that was open on the offset map when this is
 * called is still open: every partition's last stable offset reaches the
 * high watermark read first.  A replicator's transaction commits its
 * records and their run together, but the commit markers reach the data
 * partition and the offset-map partition one after the other: a record
 * read committed on the target may have its run not yet readable.  After
 * this wait it is. */
static km_err_t offmap_settle(vrun_t *v, km_kafka_t *kt, char *errstr, size_t errstr_size)
{
	km_mapstore_names_t names;
	const char *topic = names.offmap;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *hw = NULL, *ls = NULL;
	int64_t deadline = km_mono_ms() + OFFMAP_SETTLE_MS;
	km_err_t err = KM_ERR_OK;
	int nparts = 0;

	km_mapstore_names(v->plan->migration, NULL, &names);
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(km_kafka_rk(kt), topic, NULL);
	rd_kafka_resp_err_t rerr = rd_kafka_metadata(km_kafka_rk(kt), 0, rkt, &md,
						     KM_KAFKA_TIMEOUT_MS);
	rd_kafka_topic_destroy(rkt);
	if (rerr)
		return km_kafka_err(kt, rerr, "Metadata of the offset map", NULL, errstr,
				    errstr_size);
	if (md->topic_cnt == 1 && !md->topics[0].err)
		nparts = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	if (!nparts)
		return KM_ERR_OK; /* no offset map: nothing can be in flight */
	hw = rd_kafka_topic_partition_list_new(nparts);
	ls = rd_kafka_topic_partition_list_new(nparts);
	for (int k = 0; k < nparts; k++) {
		rd_kafka_topic_partition_list_add(hw, topic, k);
		rd_kafka_topic_partition_list_add(ls, topic, k);
	}
	if ((err = km_kafka_list_offsets(kt, hw, KM_KAFKA_HWM, errstr, errstr_size)))
		goto done;
	for (;;) {
		bool settled = true;
		if ((err = km_kafka_list_offsets(kt, ls, KM_KAFKA_LSO, errstr, errstr_size)))
			goto done;
		for (int k = 0; k < nparts; k++)
			settled = settled && ls->elems[k].offset >= hw->elems[k].offset;
		if (settled)
			break;
		if (km_mono_ms() > deadline) {
			err = km_seterr(errstr, errstr_size, KM_ERR_TIMEOUT,
					"a transaction stayed open on '%s' for %d s: records past the "
					"last copied one cannot be told from foreign ones (a "
					"replicator stuck mid-transaction?); run validate again",
					topic, OFFMAP_SETTLE_MS / 1000);
			goto done;
		}
		if (vfailed(v))
			goto done;
		struct timespec ts = {0, 50 * 1000000};
		nanosleep(&ts, NULL);
	}
done:
	rd_kafka_topic_partition_list_destroy(hw);
	rd_kafka_topic_partition_list_destroy(ls);
	return err;
}

/* Phase 3: the tails.  Whatever a tail holds was committed on the target
 * when it was read; the offset map, re-read after the tails were read (and
 * after the transactions open on it ended), holds the run of every record
 * the replicator wrote there.  A tail record outside its runs is foreign. */
static km_err_t classify_tails(vrun_t *v, km_kafka_t *kt, char *errstr, size_t errstr_size)
{
	km_mapstore_t *maps = NULL;
	const km_offmap_t *m;
	km_offmap_t none = KM_OFFMAP_INIT;
	km_err_t err = KM_ERR_OK;
	bool any = false;

	for (int i = 0; i < v->nparts; i++)
		any = any || v->parts[i].tail_records > 0;
	if (any && !(err = offmap_settle(v, kt, errstr, errstr_size))) {
		err = km_mapstore_open(v->plan->migration, NULL, v->tgt, &maps, errstr,
				       errstr_size);
		if (err == KM_ERR_NOT_FOUND)
			err = KM_ERR_OK; /* no map at all: every tail record is foreign */
		for (int i = 0; i < v->nparts && !err; i++) {
			vpart_t *p = &v->parts[i];
			if (!p->tail_records)
				continue;
			m = maps ? km_mapstore_offmap(maps, p->topic, p->partition) : &none;
			tail_classify(v, p, m);
			if (p->nshown > 1)
				qsort(p->shown, (size_t)p->nshown, sizeof(*p->shown), cmp_shown);
		}
		km_mapstore_destroy(maps);
	}
	/* A partition with nothing copied and nothing on either side in the
	 * snapshot is empty (records copied since are the next run's). */
	for (int i = 0; i < v->nparts && !err; i++) {
		vpart_t *p = &v->parts[i];
		if (p->state == ST_VALIDATED && p->map.cnt == 0 && p->src.records == 0 &&
		    p->tgt.records == 0 && p->tail_extra == 0)
			p->state = ST_EMPTY;
	}
	return err;
}

static void run_workers(vrun_t *v, void *(*fn)(void *), int nw, bool progress)
{
	worker_t *ws;
	int64_t start = km_mono_ms(), last = start;

	if (nw > v->nparts)
		nw = v->nparts;
	if (nw < 1)
		return;
	ws = km_calloc((size_t)nw, sizeof(*ws));
	v->next = 0;
	v->running = 0;
	for (int i = 0; i < nw; i++) {
		ws[i].v = v;
		if (pthread_create(&ws[i].th, NULL, fn, &ws[i])) {
			vfail(v, KM_ERR_BUG, "cannot start a validation thread");
			nw = i;
			break;
		}
		pthread_mutex_lock(&v->lock);
		v->running++;
		pthread_mutex_unlock(&v->lock);
	}
	for (;;) {
		struct timespec ts = {0, 100 * 1000000};
		int running;
		pthread_mutex_lock(&v->lock);
		running = v->running;
		km_validate_progress_t pr = {v->records, v->bytes, km_mono_ms() - start, v->done,
					     v->nparts};
		pthread_mutex_unlock(&v->lock);
		if (!running)
			break;
		if (progress && v->opts->progress_cb && km_mono_ms() - last >= 1000) {
			last = km_mono_ms();
			v->opts->progress_cb(v->opts->opaque, &pr);
		}
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < nw; i++)
		pthread_join(ws[i].th, NULL);
	free(ws);
}

/* ---- discovery ------------------------------------------------------------------- */

static int cmp_parts(const void *a, const void *b)
{
	const vpart_t *x = a, *y = b;
	int c = strcmp(x->topic, y->topic);
	return c ? c : x->partition - y->partition;
}

/* Whether topic is one opts->only_topics asks for (every topic without the
 * filter). */
static bool wanted(const vrun_t *v, const char *topic)
{
	json_t *t;
	size_t i;

	if (!v->opts->only_topics)
		return true;
	json_array_foreach(v->opts->only_topics, i, t)
		if (json_is_string(t) && !strcmp(json_string_value(t), topic))
			return true;
	return false;
}

/* The saved design's in-scope topics that the source's metadata left out.
 * Kafka omits a topic its principal may not DESCRIBE from a metadata answer
 * without a word, so each is asked for by name (DescribeTopics, which never
 * creates a topic): not authorized means a missing ACL, unknown means the
 * topic is gone.  Both are NO-GO, recorded in v->hidden. */
static km_err_t check_hidden(vrun_t *v, km_kafka_t *ks, const struct rd_kafka_metadata *md,
			     char *errstr, size_t errstr_size)
{
	const char **names = NULL;
	size_t nn = 0, i, n;
	json_t *t;
	km_err_t err = KM_ERR_OK;
	char who[300];

	json_array_foreach(v->opts->expect_topics, i, t) {
		const char *name = json_string_value(t);
		bool seen = false;
		if (!name || !km_plan_topic_in_scope(v->plan, name) || !wanted(v, name))
			continue;
		for (int k = 0; k < md->topic_cnt && !seen; k++)
			seen = !strcmp(md->topics[k].topic, name);
		if (!seen) {
			names = km_realloc(names, (nn + 1) * sizeof(*names));
			names[nn++] = name;
		}
	}
	if (!nn)
		return KM_ERR_OK;
	principal(&v->plan->source, who, sizeof(who));
	km_kafka_call_t call;
	rd_kafka_event_t *ev = NULL;
	rd_kafka_TopicCollection_t *tc = rd_kafka_TopicCollection_of_topic_names(names, nn);
	km_kafka_call_begin(ks, RD_KAFKA_ADMIN_OP_DESCRIBETOPICS, 0, &call);
	rd_kafka_DescribeTopics(km_kafka_rk(ks), tc, call.options, call.q);
	err = km_kafka_call_wait(ks, &call, RD_KAFKA_EVENT_DESCRIBETOPICS_RESULT, "DescribeTopics",
				 &ev, errstr, errstr_size);
	if (!err) {
		const rd_kafka_TopicDescription_t **td =
			rd_kafka_DescribeTopics_result_topics(rd_kafka_event_DescribeTopics_result(ev), &n);
		for (i = 0; i < nn; i++) {
			const rd_kafka_error_t *e = NULL;
			bool answered = false;
			char *grant;
			for (size_t j = 0; j < n; j++)
				if (!strcmp(rd_kafka_TopicDescription_name(td[j]), names[i])) {
					answered = true;
					e = rd_kafka_TopicDescription_error(td[j]);
				}
			rd_kafka_resp_err_t code = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
			if (code == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
				grant = km_asprintf("topic '%s' of the saved design does not exist on "
						    "the source (deleted since `kmigrate plan`?)",
						    names[i]);
			else if (code == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED || !answered ||
				 !code)
				/* Visible by name but not in the listing, or not
				 * answered at all: the listing is what validate
				 * works from, so it is the same missing right. */
				grant = km_asprintf("topic '%s' of the saved design is not visible to "
						    "%s on the source: grant DESCRIBE and READ on "
						    "topic '%s' to %s",
						    names[i], who, names[i], who);
			else
				grant = km_asprintf("topic '%s' of the saved design cannot be "
						    "described on the source: %s",
						    names[i], rd_kafka_error_string(e));
			json_array_append_new(v->hidden,
					      json_pack("{s:s, s:s, s:s}", "topic", names[i], "error",
							rd_kafka_err2name(code), "reason", grant));
			free(grant);
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_TopicCollection_destroy(tc);
	free(names);
	return err;
}

/* The in-scope source partitions, their target topics, and whether each
 * topic is compacted (DescribeConfigs on the source: the source's policy
 * decides, since it is the source that keeps compacting). */
static km_err_t discover(vrun_t *v, km_kafka_t *ks, km_kafka_t *kt, char *errstr,
			 size_t errstr_size)
{
	const struct rd_kafka_metadata *md = NULL, *tmd = NULL;
	rd_kafka_resp_err_t rerr;
	rd_kafka_ConfigResource_t **res = NULL;
	const char **names = NULL;
	size_t nres = 0;
	km_err_t err = KM_ERR_OK;

	if ((rerr = rd_kafka_metadata(km_kafka_rk(ks), 1, NULL, &md, KM_KAFKA_TIMEOUT_MS)))
		return km_kafka_err(ks, rerr, "Metadata", NULL, errstr, errstr_size);
	if ((rerr = rd_kafka_metadata(km_kafka_rk(kt), 1, NULL, &tmd, KM_KAFKA_TIMEOUT_MS))) {
		rd_kafka_metadata_destroy(md);
		return km_kafka_err(kt, rerr, "Metadata", NULL, errstr, errstr_size);
	}
	for (int i = 0; i < md->topic_cnt; i++) {
		const struct rd_kafka_metadata_topic *t = &md->topics[i];
		const km_plan_rule_t *rule;
		char *tname;
		int tparts = -1;

		if (!km_plan_topic_in_scope(v->plan, t->topic) || !wanted(v, t->topic))
			continue;
		if (t->err) {
			/* A topic that cannot be described cannot be left out
			 * quietly: its partitions would be unknown. */
			char what[400];
			snprintf(what, sizeof(what), "Metadata of source topic '%s'", t->topic);
			err = km_kafka_err(ks, t->err, what, NULL, errstr, errstr_size);
			break;
		}
		tname = km_plan_target_topic(v->plan, t->topic);
		for (int j = 0; j < tmd->topic_cnt; j++)
			if (!strcmp(tmd->topics[j].topic, tname) && !tmd->topics[j].err)
				tparts = tmd->topics[j].partition_cnt;
		rule = km_plan_topic_rule(v->plan, t->topic);
		names = km_realloc(names, (nres + 1) * sizeof(*names));
		names[nres++] = t->topic;
		for (int k = 0; k < t->partition_cnt; k++) {
			v->parts = km_realloc(v->parts, (size_t)(v->nparts + 1) * sizeof(*v->parts));
			vpart_t *p = &v->parts[v->nparts++];
			memset(p, 0, sizeof(*p));
			p->topic = km_strdup(t->topic);
			p->tgt_topic = km_strdup(tname);
			p->partition = t->partitions[k].id;
			p->ordering = rule ? rule->ordering : KM_PLAN_ORDERING_NONE;
			p->s_start = p->s_end = p->t_start = p->t_end = -1;
			p->s_first = p->t_first = -1;
			p->src_hwm = -1;
			if (tparts < 0) {
				p->state = ST_NOTHING;
				snprintf(p->reason, sizeof(p->reason),
					 "nothing replicated: the target topic '%s' does not exist", tname);
			} else if (p->partition >= tparts) {
				p->state = ST_NOTHING;
				snprintf(p->reason, sizeof(p->reason),
					 "nothing replicated: the target topic '%s' has %d partitions, "
					 "the source %d",
					 tname, tparts, t->partition_cnt);
			}
		}
		free(tname);
	}
	if (!err)
		err = check_hidden(v, ks, md, errstr, errstr_size);

	if (nres && !err) {
		km_kafka_call_t call;
		rd_kafka_event_t *ev = NULL;
		res = km_calloc(nres, sizeof(*res));
		for (size_t i = 0; i < nres; i++)
			res[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, names[i]);
		km_kafka_call_begin(ks, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, 0, &call);
		rd_kafka_DescribeConfigs(km_kafka_rk(ks), res, nres, call.options, call.q);
		err = km_kafka_call_wait(ks, &call, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT,
					 "DescribeConfigs", &ev, errstr, errstr_size);
		if (!err) {
			size_t n, nc;
			const rd_kafka_ConfigResource_t **rs = rd_kafka_DescribeConfigs_result_resources(
				rd_kafka_event_DescribeConfigs_result(ev), &n);
			for (size_t i = 0; i < n && !err; i++) {
				const char *tn = rd_kafka_ConfigResource_name(rs[i]);
				bool compact = false, known = false;
				if (rd_kafka_ConfigResource_error(rs[i]) ==
				    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
					/* Unknown whether it is compacted: its
					 * partitions are not validated (NO-GO), named
					 * with the right to grant; the others go on. */
					char who[300];
					principal(&v->plan->source, who, sizeof(who));
					char *r = km_asprintf(
						"not validated: %s may not read the configs of topic "
						"'%s' on the source, so whether it is compacted is "
						"unknown (grant DESCRIBE_CONFIGS on topic '%s' to %s)",
						who, tn, tn, who);
					for (int k = 0; k < v->nparts; k++)
						if (!strcmp(v->parts[k].topic, tn) &&
						    v->parts[k].state == ST_PENDING) {
							v->parts[k].state = ST_NOT_VALIDATED;
							snprintf(v->parts[k].reason,
								 sizeof(v->parts[k].reason), "%s", r);
						}
					free(r);
					continue;
				}
				if (rd_kafka_ConfigResource_error(rs[i])) {
					err = km_kafka_err(ks, rd_kafka_ConfigResource_error(rs[i]),
							   "DescribeConfigs",
							   rd_kafka_ConfigResource_error_string(rs[i]),
							   errstr, errstr_size);
					break;
				}
				const rd_kafka_ConfigEntry_t **ce = rd_kafka_ConfigResource_configs(rs[i], &nc);
				for (size_t j = 0; j < nc; j++)
					if (!strcmp(rd_kafka_ConfigEntry_name(ce[j]), "cleanup.policy")) {
						const char *val = rd_kafka_ConfigEntry_value(ce[j]);
						known = true;
						compact = val && strstr(val, "compact");
					}
				if (!known) {
					err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
							"DescribeConfigs of source topic '%s' returned no "
							"cleanup.policy: cannot tell whether it is compacted",
							tn);
					break;
				}
				for (int k = 0; k < v->nparts; k++)
					if (!strcmp(v->parts[k].topic, tn))
						v->parts[k].compacted = compact;
			}
		}
		if (ev)
			rd_kafka_event_destroy(ev);
		for (size_t i = 0; i < nres; i++)
			rd_kafka_ConfigResource_destroy(res[i]);
		free(res);
	}
	free(names);
	rd_kafka_metadata_destroy(md);
	rd_kafka_metadata_destroy(tmd);
	if (v->nparts)
		qsort(v->parts, (size_t)v->nparts, sizeof(*v->parts), cmp_parts);
	return err;
}

/* ---- the report ------------------------------------------------------------------- */

static json_t *side_json(const side_t *s)
{
	json_t *o = json_pack("{s:I, s:I, s:I, s:I}", "records", (json_int_t)s->records, "bytes",
			      (json_int_t)s->bytes, "tombstones", (json_int_t)s->tombstones, "headers",
			      (json_int_t)s->headers);
	json_object_set_new(o, "timestamp_min", s->records ? json_integer(s->ts_min) : json_null());
	json_object_set_new(o, "timestamp_max", s->records ? json_integer(s->ts_max) : json_null());
	return o;
}

static json_t *off_json(int64_t o)
{
	return o >= 0 ? json_integer((json_int_t)o) : json_null();
}

/* The partition's own verdict (the gate's threshold applies to the sum). */
static bool part_clean(const vpart_t *p, int64_t *ord_violations)
{
	int64_t ov = 0;
	bool ord_ok = true;

	if (p->state == ST_VALIDATED && !p->compacted && p->ordering != KM_PLAN_ORDERING_NONE) {
		ov = p->ord_violations +
		     (p->ordering == KM_PLAN_ORDERING_STRICT ? p->by_kind[K_REORDERED] : 0);
		ord_ok = p->ord_checked && ov == 0;
	}
	if (ord_violations)
		*ord_violations = ov;
	return (p->state == ST_VALIDATED || p->state == ST_EMPTY) && p->mismatches == 0 && ord_ok;
}

static json_t *part_json(const vrun_t *v, const vpart_t *p)
{
	int64_t ov;
	bool clean = part_clean(p, &ov);
	json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:I, s:I}", "topic", p->topic,
			      "target_topic", p->tgt_topic, "partition", p->partition, "mode",
			      p->compacted ? "latest-per-key" : "sequence", "state",
			      state_names[p->state], "verdict", clean ? "GO" : "NO-GO", "mismatches",
			      (json_int_t)p->mismatches, "elapsed_ms", (json_int_t)p->elapsed_ms);
	json_t *kinds = json_object(), *shown = json_array();

	json_object_set_new(o, "sampled", json_boolean(v->sampled));
	json_object_set_new(o, "reason", p->reason[0] ? json_string(p->reason) : json_null());
	json_object_set_new(
		o, "range",
		json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:o}", "source_first",
			  off_json(p->s_first), "source_end", off_json(p->s_first >= 0 ? p->s_end : -1),
			  "target_first", off_json(p->t_first), "target_end",
			  off_json(p->t_first >= 0 ? p->t_end : -1), "compared_from_source",
			  off_json(p->s_first >= 0 ? p->s_start : -1), "compared_from_target",
			  off_json(p->t_first >= 0 ? p->t_start : -1), "runs", (json_int_t)p->map.cnt,
			  "mapped_records", (json_int_t)km_offmap_records(&p->map),
			  "source_high_watermark", off_json(p->src_hwm)));
	json_object_set_new(o, "expired", json_integer((json_int_t)p->expired));
	json_object_set_new(o, "aborted_on_target",
			    p->aborted_counted ? json_integer((json_int_t)p->aborted) : json_null());
	json_object_set_new(o, "aborted_ranges_read", json_integer(p->aborted_reads));
	json_object_set_new(
		o, "target_tail",
		json_pack("{s:b, s:o, s:o, s:I, s:I, s:I}", "read", p->tail_read, "from",
			  off_json(p->tail_read ? p->tail_from : -1), "end",
			  off_json(p->tail_read ? p->tail_end : -1), "records",
			  (json_int_t)p->tail_records, "copied_after_snapshot",
			  (json_int_t)p->tail_after, "extra", (json_int_t)p->tail_extra));
	json_object_set_new(o, "source", side_json(&p->src));
	json_object_set_new(o, "target", side_json(&p->tgt));
	json_object_set_new(o, "paired", json_integer((json_int_t)p->paired));
	json_object_set_new(o, "digested", json_integer((json_int_t)p->digested));
	for (int k = 0; k < K__N; k++)
		if (p->by_kind[k])
			json_object_set_new(kinds, kind_names[k], json_integer((json_int_t)p->by_kind[k]));
	json_object_set_new(o, "by_kind", kinds);
	for (int i = 0; i < p->nshown; i++) {
		const shown_t *s = &p->shown[i];
		json_t *d = json_array();
		for (int k = K_KEY; k <= K_TIMESTAMP; k++)
			if (s->differs & (1u << k))
				json_array_append_new(d, json_string(kind_names[k]));
		json_t *row = json_pack("{s:s, s:o, s:o, s:o}", "kind", kind_names[s->kind],
					"source_offset", off_json(s->src), "target_offset",
					off_json(s->tgt), "differs", d);
		json_object_set_new(row, "key", s->key[0] ? json_string(s->key) : json_null());
		json_object_set_new(row, "note", s->note ? json_string(s->note) : json_null());
		json_array_append_new(shown, row);
	}
	json_object_set_new(o, "shown", shown);
	if (p->compacted) {
		json_object_set_new(o, "keys", json_integer((json_int_t)p->keys));
		json_object_set_new(o, "superseded_after_snapshot",
				    json_integer((json_int_t)p->superseded));
	}
	json_t *ord = json_pack("{s:s}", "rule", km_plan_ordering_str(p->ordering));
	if (p->ordering == KM_PLAN_ORDERING_NONE) {
		json_object_set_new(ord, "checked", json_false());
	} else if (p->compacted) {
		json_object_set_new(ord, "checked", json_false());
		json_object_set_new(ord, "reason",
				    json_string("compacted topic: the latest record per key is "
						"compared, not the sequence"));
	} else if (p->state == ST_VALIDATED) {
		json_t *ex = json_array();
		for (int i = 0; i < p->nord_examples; i++)
			json_array_append_new(ex, json_pack("{s:I}", "first_source_offset",
							    (json_int_t)p->ord_examples[i]));
		json_object_set_new(ord, "checked", json_boolean(p->ord_checked));
		if (!p->ord_checked)
			json_object_set_new(ord, "reason", json_string(p->ord_reason));
		json_object_set_new(ord, "keys", json_integer((json_int_t)p->ord_keys));
		json_object_set_new(ord, "keys_reordered", json_integer((json_int_t)p->ord_violations));
		json_object_set_new(ord, "keys_with_differences",
				    json_integer((json_int_t)p->ord_keys_differing));
		json_object_set_new(ord, "violations", json_integer((json_int_t)ov));
		json_object_set_new(ord, "examples", ex);
	}
	json_object_set_new(o, "ordering", ord);
	return o;
}

static json_t *report(const vrun_t *v, int64_t data_ms, int64_t total_ms)
{
	json_t *parts = json_array(), *no_go = json_array(), *kinds = json_object();
	int64_t mismatches = 0, by_kind[K__N] = {0}, records = 0, bytes = 0, ord_total = 0;
	int nothing = 0, not_validated = 0, clean = 0, ord_bad = 0;
	int64_t max = v->plan->gates.max_mismatches;
	char buf[600], label[64];

	for (int i = 0; i < v->nparts; i++) {
		const vpart_t *p = &v->parts[i];
		int64_t ov = 0;
		clean += part_clean(p, &ov);
		json_array_append_new(parts, part_json(v, p));
		mismatches += p->mismatches;
		for (int k = 0; k < K__N; k++)
			by_kind[k] += p->by_kind[k];
		records += p->src.records + p->tgt.records;
		bytes += p->src.bytes + p->tgt.bytes;
		nothing += p->state == ST_NOTHING;
		not_validated += p->state == ST_NOT_VALIDATED || p->state == ST_PENDING;
		if (p->state == ST_VALIDATED && !p->compacted && p->ordering != KM_PLAN_ORDERING_NONE) {
			ord_total += ov;
			if (ov || !p->ord_checked) {
				ord_bad++;
				snprintf(buf, sizeof(buf), "'%s'[%d]: ordering %s %s", p->topic,
					 p->partition, km_plan_ordering_str(p->ordering),
					 p->ord_checked ? "violated" : "not checked");
				json_array_append_new(no_go, json_string(buf));
			}
		}
		if (p->state == ST_NOTHING || p->state == ST_NOT_VALIDATED) {
			snprintf(buf, sizeof(buf), "'%s'[%d]: %s", p->topic, p->partition, p->reason);
			json_array_append_new(no_go, json_string(buf));
		}
	}
	for (int k = 0; k < K__N; k++)
		if (by_kind[k])
			json_object_set_new(kinds, kind_names[k], json_integer((json_int_t)by_kind[k]));
	if (mismatches > max) {
		snprintf(buf, sizeof(buf), "%lld mismatches, more than gates.max_mismatches (%lld)",
			 (long long)mismatches, (long long)max);
		json_array_insert_new(no_go, 0, json_string(buf));
	}
	json_t *h;
	size_t hi;
	json_array_foreach(v->hidden, hi, h)
		json_array_append(no_go, json_object_get(h, "reason"));
	if (v->nparts == 0 && !json_array_size(v->hidden))
		json_array_append_new(no_go, json_string("no source partition is in scope"));
	const char *verdict = json_array_size(no_go) ? "NO-GO" : "GO";
	if (v->sampled)
		snprintf(label, sizeof(label), "%s (sampled %g%%)", verdict, v->opts->sample_pct);
	else
		snprintf(label, sizeof(label), "%s", verdict);
	double secs = data_ms > 0 ? (double)data_ms / 1000.0 : 0.001;
	json_t *rep = json_pack(
		"{s:s, s:s, s:s, s:b, s:s, s:I, s:I, s:o, s:I, s:o, s:i, s:i, s:i, s:i, s:i}",
		"migration", v->plan->migration, "verdict", verdict, "label", label, "sampled",
		v->sampled, "mode", v->sampled ? "sampled" : "full", "mismatches",
		(json_int_t)mismatches, "max_mismatches", (json_int_t)max, "by_kind", kinds,
		"ordering_violations", (json_int_t)ord_total, "no_go", no_go, "partitions_total",
		v->nparts, "partitions_clean", clean, "partitions_nothing_replicated", nothing,
		"partitions_not_validated", not_validated, "partitions_ordering_failed", ord_bad);
	json_object_set_new(rep, "max_shown", json_integer(v->opts->max_shown));
	if (v->idmap)
		json_object_set_new(rep, "schema_ids",
				    json_string("REWRITTEN: source records compared with the "
						"source->target schema ID map applied"));
	json_object_set_new(rep, "sample_percent",
			    v->sampled ? json_real(v->opts->sample_pct) : json_null());
	json_object_set_new(
		rep, "throughput",
		json_pack("{s:I, s:I, s:I, s:I, s:f, s:f}", "records", (json_int_t)records, "bytes",
			  (json_int_t)bytes, "data_ms", (json_int_t)data_ms, "total_ms",
			  (json_int_t)total_ms, "records_per_sec", (double)records / secs,
			  "mb_per_sec", (double)bytes / secs / 1e6));
	json_object_set_new(rep, "topics_not_visible", json_incref(v->hidden));
	json_object_set_new(rep, "partitions", parts);
	return rep;
}

km_err_t km_validate_run(const km_plan_t *plan, const km_kafka_endpoint_t *src,
			 const km_kafka_endpoint_t *tgt, const km_validate_opts_t *opts,
			 json_t **reportp, char *errstr, size_t errstr_size)
{
	vrun_t v;
	km_kafka_t *ks = NULL, *kt = NULL;
	int64_t t0 = km_mono_ms(), t1;
	km_err_t err;

	*reportp = NULL;
	memset(&v, 0, sizeof(v));
	pthread_mutex_init(&v.lock, NULL);
	v.hidden = json_array();
	v.plan = plan;
	v.src = src;
	v.tgt = tgt;
	v.opts = opts;
	if (opts->sample_pct > 0 && opts->sample_pct < 100) {
		v.sampled = true;
		v.sample_below = (uint64_t)(opts->sample_pct / 100.0 * 18446744073709551616.0);
	}
	if ((err = km_schemas_idmap_for_plan(plan, &v.idmap, errstr, errstr_size)) ||
	    (err = km_kafka_open(src, 0, &ks, errstr, errstr_size)) ||
	    (err = km_kafka_open(tgt, 0, &kt, errstr, errstr_size)) ||
	    (err = discover(&v, ks, kt, errstr, errstr_size)))
		goto done;

	/* The snapshot first, then the watermarks: a log start read after the
	 * map is at least as recent as the map. */
	read_maps(&v);
	if (!v.err && (err = watermarks(&v, ks, kt, errstr, errstr_size)))
		goto done;
	for (int i = 0; i < v.nparts; i++)
		prepare(&v.parts[i]);
	if (!v.err && !(opts->stop && *opts->stop)) {
		t1 = km_mono_ms();
		v.done = 0;
		run_workers(&v, data_worker,
			    opts->workers > 0 ? opts->workers : KM_VALIDATE_MAX_WORKERS, true);
		int64_t data_ms = (v.last_done_ms ? v.last_done_ms : km_mono_ms()) - t1;
		if (!v.err && !(opts->stop && *opts->stop) &&
		    (err = classify_tails(&v, kt, errstr, errstr_size)))
			goto done;
		if (!v.err && !(opts->stop && *opts->stop))
			*reportp = report(&v, data_ms, km_mono_ms() - t0);
	}
	if (v.err)
		err = km_seterr(errstr, errstr_size, v.err, "%s", v.errstr);
	else if (opts->stop && *opts->stop)
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"validation interrupted: the verdict is unknown, which is NO-GO; "
				"nothing was journaled");
done:
	km_schemas_idmap_destroy(v.idmap);
	km_kafka_close(ks);
	km_kafka_close(kt);
	for (int i = 0; i < v.nparts; i++) {
		free(v.parts[i].topic);
		free(v.parts[i].tgt_topic);
		free(v.parts[i].shown);
		free(v.parts[i].tail);
		free(v.parts[i].tail_keys);
		free(v.parts[i].hole_vis);
		km_offmap_clear(&v.parts[i].map);
	}
	free(v.parts);
	json_decref(v.hidden);
	pthread_mutex_destroy(&v.lock);
	return err;
}
