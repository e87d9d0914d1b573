#include "offsets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "offmap.h"
#include "mapstore.h"
#include "util.h"

/* ---- batched proof reads ------------------------------------------------------ */

/* lib/digest.h's record digest, the one validate compares by, so that an
 * offsets proof and a validation verdict say "the same record" alike. */
static uint64_t record_digest(const rd_kafka_message_t *m)
{
	km_digest_t d;

	km_digest_message(m, &d);
	return d.all;
}

/* One read: the first record a read_committed consumer delivers at or
 * after `from` on one side.  state: PENDING, RECORD (off, digest) or END
 * (off = the end-of-partition offset, the last stable offset: reached only
 * past every marker and aborted record, with no committed record between
 * `from` and it). */
enum { PR_PENDING = -1, PR_END = 0, PR_RECORD = 1 };
/* The sides a probe reads: the source and the target read_committed (what
 * a consumer of the group reads), and the target read_uncommitted (what a
 * consumer left at Java's default reads: aborted records too). */
enum { SRC = 0, TGT = 1, TGT_U = 2, NSIDES = 3 };

typedef struct probe_s {
	int side;
	const char *topic; /* borrowed from the row */
	int partition;
	int64_t from;
	int state;
	int64_t off;
	uint64_t digest;
} probe_t;

static int probe_cmp(const void *a, const void *b)
{
	const probe_t *x = a, *y = b;
	int r;

	if (x->side != y->side)
		return x->side - y->side;
	if ((r = strcmp(x->topic, y->topic)))
		return r;
	if (x->partition != y->partition)
		return x->partition < y->partition ? -1 : 1;
	return x->from < y->from ? -1 : x->from > y->from;
}

/* The probes of one partition on one side, ascending by position: one
 * assignment at the lowest answers them all as the records go by. */
typedef struct tpg_s {
	probe_t *first;
	size_t cnt, next; /* probes [0, next) are answered */
} tpg_t;

static int tpg_cmp(const void *a, const void *b)
{
	const tpg_t *x = a, *y = b;
	int r;

	if ((r = strcmp(x->first->topic, y->first->topic)))
		return r;
	return x->first->partition < y->first->partition ? -1
							 : x->first->partition > y->first->partition;
}

/* One read_committed consumer per cluster and pass.  Low
 * fetch.wait.max.ms: a read waits for the record, not for a full batch;
 * small partition fetches: only the first records are wanted, and a
 * partition is paused once its probes are answered.  A fresh consumer per
 * pass, because librdkafka reports the end of a partition once per end
 * offset for the life of the consumer: a later pass reading to the same
 * end again would never see it. */
typedef struct reader_s {
	const km_kafka_endpoint_t *ep;
	bool uncommitted; /* isolation.level read_uncommitted */
	rd_kafka_t *c;
	tpg_t *g; /* this pass's partitions, sorted by (topic, partition) */
	size_t g_cnt, pending;
} reader_t;

static void reader_close(reader_t *rd)
{
	if (rd->c) {
		rd_kafka_consumer_close(rd->c);
		rd_kafka_destroy(rd->c);
		rd->c = NULL;
	}
	free(rd->g);
	rd->g = NULL;
	rd->g_cnt = rd->pending = 0;
}

static km_err_t reader_open(reader_t *rd, char *errstr, size_t errstr_size)
{
	const char *props[] = {"group.id", "kmigrate-offsets-proof", "enable.auto.commit", "false",
			       "isolation.level",
			       rd->uncommitted ? "read_uncommitted" : "read_committed",
			       "enable.partition.eof", "true",
			       "auto.offset.reset", "error", "fetch.wait.max.ms", "10",
			       "max.partition.fetch.bytes", "65536", "fetch.max.bytes", "8388608",
			       "queued.max.messages.kbytes", "16384", NULL};
	rd_kafka_conf_t *conf;
	char rerr[512];
	km_err_t err;

	if ((err = km_kafka_conf_new(rd->ep, props, &conf, errstr, errstr_size)))
		return err;
	if (!(rd->c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		return km_seterr(errstr, errstr_size, KM_ERR_KAFKA, "%s proof consumer: %s",
				 rd->ep->role, rerr);
	}
	return KM_ERR_OK;
}

/* Assigns every partition of `side` at its lowest probe, all at once. */
static void reader_assign(reader_t *rd, probe_t *pr, size_t n, int side)
{
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(64);

	rd->g = km_calloc(n ? n : 1, sizeof(*rd->g));
	rd->g_cnt = 0;
	for (size_t i = 0; i < n; i++) {
		if (pr[i].side != side)
			continue;
		tpg_t *last = rd->g_cnt ? &rd->g[rd->g_cnt - 1] : NULL;
		if (last && !strcmp(last->first->topic, pr[i].topic) &&
		    last->first->partition == pr[i].partition) {
			last->cnt++;
			continue;
		}
		rd->g[rd->g_cnt++] = (tpg_t){&pr[i], 1, 0};
		rd_kafka_topic_partition_list_add(tp, pr[i].topic, pr[i].partition)->offset =
			pr[i].from;
	}
	rd->pending = rd->g_cnt;
	if (rd->g_cnt)
		rd_kafka_assign(rd->c, tp);
	rd_kafka_topic_partition_list_destroy(tp);
}

static void pause_one(rd_kafka_t *c, const char *topic, int partition)
{
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);

	rd_kafka_topic_partition_list_add(tp, topic, partition);
	rd_kafka_pause_partitions(c, tp);
	rd_kafka_topic_partition_list_destroy(tp);
}

/* Takes what one poll returns.  @returns the number of probes answered,
 * or -1 with errstr. */
static int reader_poll(reader_t *rd, int timeout_ms, char *errstr, size_t errstr_size)
{
	rd_kafka_message_t *m = rd_kafka_consumer_poll(rd->c, timeout_ms);
	probe_t key;
	tpg_t kg = {&key, 0, 0}, *g;
	int answered = 0;

	if (!m)
		return 0;
	if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
		km_seterr(errstr, errstr_size, KM_ERR_KAFKA, "%s proof consumer: %s", rd->ep->role,
			  rd_kafka_message_errstr(m));
		answered = -1;
		goto done;
	}
	/* Client-level errors (a broker connection dropped) are retried by
	 * librdkafka; the pass's deadline catches one that lasts. */
	if (!m->rkt)
		goto done;
	key.topic = rd_kafka_topic_name(m->rkt);
	key.partition = m->partition;
	if (!(g = bsearch(&kg, rd->g, rd->g_cnt, sizeof(*rd->g), tpg_cmp)) || g->next == g->cnt)
		goto done;
	if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		km_seterr(errstr, errstr_size, KM_ERR_KAFKA, "reading %s '%s'[%d] at %lld: %s",
			  rd->ep->role, key.topic, key.partition, (long long)g->first[g->next].from,
			  rd_kafka_message_errstr(m));
		answered = -1;
		goto done;
	}
	/* Records come in order: this one is the first at or after every
	 * pending position up to its offset; the end answers all. */
	for (; g->next < g->cnt; g->next++, answered++) {
		probe_t *p = &g->first[g->next];
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			p->state = PR_END;
			p->off = m->offset;
		} else if (p->from <= m->offset) {
			p->state = PR_RECORD;
			p->off = m->offset;
			p->digest = record_digest(m);
		} else {
			break;
		}
	}
	if (g->next == g->cnt) {
		rd->pending--;
		pause_one(rd->c, key.topic, key.partition);
	}
done:
	rd_kafka_message_destroy(m);
	return answered;
}

typedef struct progress_s {
	const km_offsets_opts_t *opts;
	size_t done, total;
} progress_t;

static void progress(progress_t *pg)
{
	if (pg->opts && pg->opts->progress_cb)
		pg->opts->progress_cb(pg->opts->opaque, "proving", pg->done, pg->total);
}

/* Answers every probe (sorted by probe_cmp): both clusters read at the
 * same time, every partition assigned at once at its lowest position. */
static km_err_t run_probes(reader_t rd[NSIDES], probe_t *pr, size_t n, progress_t *pg, char *errstr,
			   size_t errstr_size)
{
	int64_t deadline = km_mono_ms() + 30000;
	km_err_t err = KM_ERR_OK;

	for (size_t i = 0; i < n; i++)
		pr[i].state = PR_PENDING;
	for (int s = 0; s < NSIDES; s++) {
		bool used = false;
		for (size_t i = 0; i < n && !used; i++)
			used = pr[i].side == s;
		if (!used)
			continue;
		if ((err = reader_open(&rd[s], errstr, errstr_size)))
			goto done;
		reader_assign(&rd[s], pr, n, s);
	}
	while (rd[SRC].pending + rd[TGT].pending + rd[TGT_U].pending > 0) {
		for (int s = 0; s < NSIDES; s++) {
			if (!rd[s].pending)
				continue;
			/* Short waits while another side has work too. */
			bool others = rd[SRC].pending + rd[TGT].pending + rd[TGT_U].pending >
				      rd[s].pending;
			int got = reader_poll(&rd[s], others ? 5 : 100, errstr, errstr_size);
			if (got < 0) {
				err = KM_ERR_KAFKA;
				goto done;
			}
			if (got > 0) {
				deadline = km_mono_ms() + 30000;
				pg->done += (size_t)got;
				progress(pg);
			}
		}
		if (km_mono_ms() > deadline) {
			for (int s = 0; s < NSIDES && !err; s++)
				for (size_t i = 0; i < rd[s].g_cnt && !err; i++)
					if (rd[s].g[i].next < rd[s].g[i].cnt)
						err = km_seterr(
							errstr, errstr_size, KM_ERR_TIMEOUT,
							"reading %s '%s'[%d] at %lld: no record and no "
							"end within 30 s; check the cluster's health",
							rd[s].ep->role, rd[s].g[i].first->topic,
							rd[s].g[i].first->partition,
							(long long)rd[s].g[i].first[rd[s].g[i].next].from);
			goto done;
		}
	}
done:
	for (int s = 0; s < NSIDES; s++)
		reader_close(&rd[s]);
	return err;
}

/* Sorts the np probes, keeps one of each (*up of them, found again with
 * bsearch and probe_cmp) and reads them. */
static km_err_t read_unique(reader_t rd[NSIDES], probe_t *pr, size_t np, size_t *up,
			    progress_t *pg, char *errstr, size_t errstr_size)
{
	size_t u = 0;

	qsort(pr, np, sizeof(*pr), probe_cmp);
	for (size_t i = 0; i < np; i++)
		if (!u || probe_cmp(&pr[i], &pr[u - 1]))
			pr[u++] = pr[i];
	*up = u;
	pg->total += u;
	return run_probes(rd, pr, u, pg, errstr, errstr_size);
}

/* ---- group listing ------------------------------------------------------------- */

/* The committed offsets of every group (km_kafka_committed: a consumer
 * handle per group, a window of them connecting ahead; not the admin
 * API's ListConsumerGroupOffsets, which crashes when a coordinator is not
 * ready, see lib/kafka.h).
 * @returns in *offsp an object {group: [{"topic", "partition",
 * "committed"}...]}. */
static km_err_t committed_offsets(km_kafka_t *k, const json_t *ids, json_t **offsp, char *errstr,
				  size_t errstr_size)
{
	size_t total = json_array_size(ids);
	const char **gs = km_calloc(total ? total : 1, sizeof(*gs));
	rd_kafka_topic_partition_list_t **ls = km_calloc(total ? total : 1, sizeof(*ls));
	json_t *offs;
	km_err_t err;

	for (size_t i = 0; i < total; i++)
		gs[i] = json_string_value(json_array_get(ids, i));
	if ((err = km_kafka_committed(k, gs, total, NULL, 0, KM_KAFKA_TIMEOUT_MS, ls, errstr,
				      errstr_size))) {
		free(gs);
		free(ls);
		return err;
	}
	offs = json_object();
	for (size_t g = 0; g < total; g++) {
		json_t *rows = json_array();
		for (int i = 0; i < ls[g]->cnt; i++)
			if (ls[g]->elems[i].offset >= 0)
				json_array_append_new(
					rows, json_pack("{s:s, s:i, s:I}", "topic", ls[g]->elems[i].topic,
							"partition", ls[g]->elems[i].partition,
							"committed", (json_int_t)ls[g]->elems[i].offset));
		json_object_set_new(offs, gs[g], rows);
		rd_kafka_topic_partition_list_destroy(ls[g]);
	}
	free(gs);
	free(ls);
	*offsp = offs;
	return KM_ERR_OK;
}

/* Groups to move: the plan's, then any other group on the source; only
 * `only` when it is given (the others are neither listed nor read). */
static km_err_t group_ids(const km_plan_t *plan, km_kafka_t *ks, const char *only, json_t **idsp,
			  char *errstr, size_t errstr_size)
{
	json_t *ids = json_array();
	km_kafka_call_t call;
	rd_kafka_event_t *ev = NULL;
	km_err_t err;
	size_t n;

	if (only) {
		json_array_append_new(ids, json_string(only));
		*idsp = ids;
		return KM_ERR_OK;
	}
	for (size_t i = 0; i < plan->groups_cnt; i++)
		json_array_append_new(ids, json_string(plan->groups[i].id));
	km_kafka_call_begin(ks, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS, 0, &call);
	rd_kafka_ListConsumerGroups(km_kafka_rk(ks), call.options, call.q);
	err = km_kafka_call_wait(ks, &call, RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT,
				 "ListConsumerGroups", &ev, errstr, errstr_size);
	if (!err) {
		const rd_kafka_ConsumerGroupListing_t **gl = rd_kafka_ListConsumerGroups_result_valid(
			rd_kafka_event_ListConsumerGroups_result(ev), &n);
		for (size_t i = 0; i < n; i++) {
			const char *id = rd_kafka_ConsumerGroupListing_group_id(gl[i]);
			bool have = false;
			json_t *v;
			size_t j;
			/* kmigrate's own groups are not the estate's. */
			if (!strncmp(id, "kmigrate", 8))
				continue;
			json_array_foreach(ids, j, v)
				if (!strcmp(json_string_value(v), id))
					have = true;
			if (!have)
				json_array_append_new(ids, json_string(id));
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	if (err) {
		json_decref(ids);
		return err;
	}
	*idsp = ids;
	return KM_ERR_OK;
}

/* ---- translation --------------------------------------------------------------- */

static const km_plan_group_t *plan_group(const km_plan_t *plan, const char *id)
{
	for (size_t i = 0; i < plan->groups_cnt; i++)
		if (!strcmp(plan->groups[i].id, id))
			return &plan->groups[i];
	return NULL;
}

/* A proof walks at most this many steps through records compacted away on
 * one side only before it gives up (proof-failed, never a pass). */
#define WALK_MAX 1000

/* One group-partition being translated and proven.  Each step asks for
 * the first record at or after a position on one or both sides; run_probes
 * answers all rows' asks together, then each row decides (row_step). */
typedef struct prow_s {
	json_t *row; /* borrowed: an element of its group's partitions */
	const km_offmap_t *m;
	/* The rollback's proof back (km_offsets_translate_back): target
	 * offsets at or after sw hold records the applications wrote there,
	 * which the reverse map rev (target offset -> source offset) copied
	 * back; before sw, forward copies (m).  NULL rev: the forward proof. */
	const km_offmap_t *rev;
	int64_t sw;
	const char *topic, *ttopic;
	int p;
	int64_t c, t;
	enum { ST_PROVE, ST_END_SRC, ST_END_TGT, ST_DONE } st;
	int64_t want[2]; /* positions asked for, -1 = none this step */
	bool have[2];    /* a result of that side is held */
	int res[2];
	int64_t off[2];
	uint64_t dig[2];
	int steps;
	int64_t copied_end, tgt_end;
	bool mid; /* translated and proven inside the map: t holds a copy */
} prow_t;

static void row_ask(prow_t *r, int side, int64_t from)
{
	r->want[side] = from;
	r->have[side] = false;
}

static void row_proof(prow_t *r, bool ok, const char *reason)
{
	bool first_common = r->off[TGT] != r->t;
	json_t *pr = json_pack("{s:s, s:I, s:I, s:I, s:I, s:o, s:o, s:i, s:b}", "kind",
			       first_common ? "first-common-survivor" : "record", "source_from",
			       (json_int_t)r->c, "target_from", (json_int_t)r->t, "source_offset",
			       (json_int_t)r->off[SRC], "target_offset", (json_int_t)r->off[TGT],
			       "source_digest",
			       json_sprintf("%016llx", (unsigned long long)r->dig[SRC]),
			       "target_digest",
			       json_sprintf("%016llx", (unsigned long long)r->dig[TGT]), "steps",
			       r->steps, "match", ok);
	if (reason)
		json_object_set_new(pr, "reason", json_string(reason));
	json_object_set_new(r->row, "target_offset", json_integer(r->t));
	json_object_set_new(r->row, "status", json_string(ok ? "translated" : "proof-failed"));
	json_object_set_new(r->row, "proof", pr);
	r->mid = ok;
	r->st = ST_DONE;
}

/* The source offset of the record at target offset t, -1 when t holds
 * none of the rows' maps: a forward copy, or (the proof back) from the
 * switch point on, a record the reverse copy wrote to the source. */
static int64_t row_source_of(const prow_t *r, int64_t t)
{
	int64_t s;

	if (r->rev && t >= r->sw)
		return !km_offmap_translate(r->rev, t, &s) && km_offmap_source_of(r->rev, s) == t
			       ? s
			       : -1;
	return km_offmap_source_of(r->m, t);
}

/* The target offset of the record whose counterpart is source record s,
 * -1 when none: its forward copy, or (the proof back) the target record
 * the reverse copy wrote to s. */
static int64_t row_target_of(const prow_t *r, int64_t s)
{
	int64_t t;

	if (!km_offmap_translate(r->m, s, &t) && km_offmap_source_of(r->m, t) == s &&
	    (!r->rev || t < r->sw))
		return t;
	return r->rev ? km_offmap_source_of(r->rev, s) : -1;
}

/* The proof of a translated position t = translate(c).  A consumer reads
 * the first record that survives at or after its position, and the two
 * clusters compact independently (the target as eagerly as the source:
 * the design copies segment.ms and min.cleanable.dirty.ratio), so the
 * first survivor may differ: the source may still hold the record at c
 * whose copy at t the target's cleaner already removed, or the reverse.
 * The proof walks both sides to the first record that survives on both:
 * source record s (first at or after the source position) and target
 * record u (first at or after the target position) must be the same
 * copied record, map(u) == s, with equal digests.  When map(u) > s, s has
 * no surviving copy: the source walks on to map(u).  When map(u) < s, the
 * source no longer holds the record copied to u: the target walks on to
 * the copy of s.  Either walk only skips records absent on the other side,
 * so what both consumers read from the first common record on is proven;
 * a source record that was never copied, or a target record that is not
 * a copy, fails the proof.  The proof back to the source (a rollback)
 * walks the same way, with "map" the pair of maps (row_source_of,
 * row_target_of): the forward copies before the switch point, the
 * reverse copies after it. */
static void step_prove(prow_t *r)
{
	int rs = r->res[SRC], rt = r->res[TGT];
	int64_t so = r->off[SRC], to = r->off[TGT], fs, x;

	if (rs == PR_END && rt == PR_END) {
		/* Nothing survives after the position on either side (the
		 * last records were tombstones the cleaners dropped): both
		 * consumers read nothing. */
		row_proof(r, true, NULL);
		return;
	}
	if (rs == PR_END || rt == PR_END) {
		row_proof(r, false, rs == PR_END ? "the source has no record left after the position, "
						   "the target has"
						 : "the target has no record left after the position, "
						   "the source has");
		return;
	}
	if ((fs = row_source_of(r, to)) < 0) {
		row_proof(r, false, "the target record is not a copy of a source record");
		return;
	}
	if (fs == so) {
		row_proof(r, r->dig[SRC] == r->dig[TGT],
			  r->dig[SRC] == r->dig[TGT] ? NULL : "the digests differ");
		return;
	}
	if (++r->steps > WALK_MAX) {
		row_proof(r, false, "no record common to both sides within the walk's bound");
		return;
	}
	if ((x = row_target_of(r, so)) < 0) {
		row_proof(r, false, "a source record after the position was never copied");
		return;
	}
	if (fs > so)
		row_ask(r, SRC, fs); /* the copy of s lies before u, gone on the target */
	else
		row_ask(r, TGT, x); /* the source compacted away the record copied to u */
}

/* Decides what a row's last results mean: done, or the next asks. */
static void row_step(prow_t *r)
{
	switch (r->st) {
	case ST_PROVE:
		step_prove(r);
		break;
	case ST_END_SRC:
		if (r->res[SRC] == PR_END && r->copied_end >= 0) {
			/* Every source record before c was copied (c >=
			 * copied_end and none exists at or after c): the
			 * group is at the end.  Right after the last copied
			 * record come the markers of its transaction (and of
			 * later empty or aborted ones); a reader skips them,
			 * so any position up to the end is the same for the
			 * group, but only the end itself reads as lag 0 on
			 * the dashboards.  The read_committed reader's end
			 * is the last stable offset, reached only past every
			 * marker, with no committed record on the way: that
			 * is the proof, and the position. */
			r->st = ST_END_TGT;
			row_ask(r, TGT, r->tgt_end);
			break;
		}
		json_object_set_new(r->row, "target_offset", json_null());
		json_object_set_new(r->row, "status", json_string("not-yet"));
		json_object_set_new(
			r->row, "lag",
			json_integer(r->res[SRC] == PR_RECORD && r->copied_end >= 0
					     ? r->off[SRC] - r->copied_end + 1
					     : (r->copied_end < 0 ? r->c : r->c - r->copied_end)));
		r->st = ST_DONE;
		break;
	case ST_END_TGT: {
		bool ok = r->res[TGT] == PR_END && r->off[TGT] >= r->tgt_end;
		json_object_set_new(r->row, "target_offset",
				    json_integer(ok ? r->off[TGT] : r->tgt_end));
		json_object_set_new(r->row, "status", json_string(ok ? "translated" : "proof-failed"));
		json_object_set_new(r->row, "proof",
				    json_pack("{s:s, s:I, s:I, s:I, s:b}", "kind", "end-of-log",
					      "source_end", (json_int_t)r->off[SRC], "target_end",
					      (json_int_t)r->off[TGT], "last_copied_end",
					      (json_int_t)r->tgt_end, "match", ok));
		r->st = ST_DONE;
		break;
	}
	case ST_DONE:
		break;
	}
}

/* Starts a row: the exact map gives t, or says no copied record lies at
 * or after c (the group is at the end, or beyond the replication). */
static void row_start(prow_t *r)
{
	r->want[SRC] = r->want[TGT] = -1;
	r->copied_end = -1;
	r->tgt_end = 0;
	if (r->m->cnt) {
		const km_offrun_t *last = &r->m->runs[r->m->cnt - 1];
		r->copied_end = last->src_first + last->count;
		r->tgt_end = last->tgt_first + last->count;
	}
	if (!km_offmap_translate(r->m, r->c, &r->t)) {
		r->st = ST_PROVE;
		row_ask(r, SRC, r->c);
		row_ask(r, TGT, r->t);
	} else {
		r->st = ST_END_SRC;
		row_ask(r, SRC, r->c);
	}
}

/* Runs every row to its verdict: each pass gathers the rows' asks
 * (identical ones read once), reads them all, and steps the rows. */
static km_err_t prove_rows(prow_t *rows, size_t n, bool started, reader_t rd[NSIDES],
			   progress_t *pg, char *errstr, size_t errstr_size)
{
	probe_t *pr = km_calloc(n * 2 + 1, sizeof(*pr));
	km_err_t err = KM_ERR_OK;

	for (size_t i = 0; i < n && !started; i++)
		row_start(&rows[i]);
	for (;;) {
		size_t np = 0, u = 0;
		for (size_t i = 0; i < n; i++)
			for (int s = SRC; s <= TGT; s++)
				if (rows[i].st != ST_DONE && rows[i].want[s] >= 0)
					pr[np++] = (probe_t){.side = s, .topic = s == SRC ? rows[i].topic
										  : rows[i].ttopic,
							     .partition = rows[i].p,
							     .from = rows[i].want[s]};
		if (!np)
			break;
		if ((err = read_unique(rd, pr, np, &u, pg, errstr, errstr_size)))
			break;
		for (size_t i = 0; i < n; i++) {
			bool asked = false;
			for (int s = SRC; s <= TGT; s++) {
				if (rows[i].st == ST_DONE || rows[i].want[s] < 0)
					continue;
				probe_t key = {.side = s,
					       .topic = s == SRC ? rows[i].topic : rows[i].ttopic,
					       .partition = rows[i].p,
					       .from = rows[i].want[s]};
				probe_t *hit = bsearch(&key, pr, u, sizeof(*pr), probe_cmp);
				if (!hit)
					KM_BUG("offsets: a proof read was not answered");
				rows[i].res[s] = hit->state;
				rows[i].off[s] = hit->off;
				rows[i].dig[s] = hit->digest;
				rows[i].have[s] = true;
				rows[i].want[s] = -1;
				asked = true;
			}
			if (asked)
				row_step(&rows[i]);
		}
	}
	free(pr);
	return err;
}

/* At most this many gaps of the map after a position are checked for
 * aborted records; "more" says when there were others. */
#define GAPS_MAX 64

/* Aborted transactions on the target after each translated position.
 * Exactly-once replication aborts a transaction whenever a replicator dies
 * or is fenced mid-way; its records stay in the log, skipped by
 * read_committed consumers and delivered to read_uncommitted ones (Java's
 * default).  They lie in the gaps of the offset map: a gap of one offset
 * is a commit marker; a longer one may hold aborted records (or only
 * markers).  For each gap [a, b) after t (and the open end after the last
 * copied record), the first read_uncommitted record at or after a, u, is
 * an aborted record when u < b -- the map holds no record there -- and
 * read_committed does not return u (its first record at or after a lies
 * beyond u).  Each row gets "aborted_after": {"ranges", "first_offset",
 * "more"}.  The records between t and the last gap are read on both
 * target sides, so this costs what the group has left to read. */
static km_err_t exposure(prow_t *rows, size_t n, reader_t rd[NSIDES], progress_t *pg,
			 char *errstr, size_t errstr_size)
{
	probe_t *pr = NULL;
	size_t np = 0, cap = 0, u = 0;
	km_err_t err = KM_ERR_OK;

	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			prow_t *r = &rows[i];
			const km_offmap_t *m = r->m;
			int ranges = 0, gaps = 0;
			int64_t first = -1;
			bool more = false;
			if (!r->mid)
				continue;
			for (size_t k = 0; k < m->cnt; k++) {
				int64_t a = m->runs[k].tgt_first + m->runs[k].count;
				int64_t b = k + 1 < m->cnt ? m->runs[k + 1].tgt_first : INT64_MAX;
				if (a < r->t || b - a < 2)
					continue;
				if (gaps++ == GAPS_MAX) {
					more = true;
					break;
				}
				if (pass == 0) {
					if (np + 2 > cap) {
						cap = cap ? cap * 2 : 256;
						pr = km_realloc(pr, cap * sizeof(*pr));
					}
					pr[np++] = (probe_t){.side = TGT_U, .topic = r->ttopic,
							     .partition = r->p, .from = a};
					pr[np++] = (probe_t){.side = TGT, .topic = r->ttopic,
							     .partition = r->p, .from = a};
					continue;
				}
				probe_t ku = {.side = TGT_U, .topic = r->ttopic, .partition = r->p,
					      .from = a},
					kc = ku, *hu, *hc;
				kc.side = TGT;
				hu = bsearch(&ku, pr, u, sizeof(*pr), probe_cmp);
				hc = bsearch(&kc, pr, u, sizeof(*pr), probe_cmp);
				if (!hu || !hc)
					KM_BUG("offsets: an exposure read was not answered");
				if (hu->state == PR_RECORD && hu->off < b &&
				    km_offmap_source_of(m, hu->off) < 0 &&
				    (hc->state == PR_END || hc->off > hu->off)) {
					if (!ranges++)
						first = hu->off;
				}
			}
			if (pass == 1)
				json_object_set_new(r->row, "aborted_after",
						    json_pack("{s:i, s:o, s:b}", "ranges", ranges,
							      "first_offset",
							      first >= 0 ? json_integer(first)
									 : json_null(),
							      "more", more));
		}
		if (pass == 0 &&
		    (!np || (err = read_unique(rd, pr, np, &u, pg, errstr, errstr_size))))
			break;
	}
	/* Rows with no gap after them were exposed to nothing. */
	for (size_t i = 0; i < n && !err; i++)
		if (rows[i].mid && !json_object_get(rows[i].row, "aborted_after"))
			json_object_set_new(rows[i].row, "aborted_after",
					    json_pack("{s:i, s:n, s:b}", "ranges", 0, "first_offset",
						      "more", false));
	free(pr);
	return err;
}

static km_err_t policy_row(km_kafka_t *kt, const km_plan_group_t *pg, json_t *row, char *errstr,
			   size_t errstr_size)
{
	const char *ttopic = json_string_value(json_object_get(row, "target_topic"));
	int p = (int)json_integer_value(json_object_get(row, "partition"));
	int64_t lo, hi, t;

	if (pg->restart == KM_PLAN_RESTART_TIMESTAMP) {
		rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(tp, ttopic, p)->offset = pg->restart_ts_ms;
		rd_kafka_resp_err_t rerr =
			rd_kafka_offsets_for_times(km_kafka_rk(kt), tp, KM_KAFKA_TIMEOUT_MS);
		if (!rerr)
			rerr = tp->elems[0].err;
		t = tp->elems[0].offset;
		rd_kafka_topic_partition_list_destroy(tp);
		if (rerr)
			return km_kafka_err(kt, rerr, "ListOffsets (offsetsForTimes)", NULL, errstr,
					    errstr_size);
		if (t < 0) {
			/* No record at or after the time: the end. */
			if (km_kafka_watermarks(kt, ttopic, p, &lo, &hi, errstr, errstr_size))
				return KM_ERR_KAFKA;
			t = hi;
		}
	} else {
		if (km_kafka_watermarks(kt, ttopic, p, &lo, &hi, errstr, errstr_size))
			return KM_ERR_KAFKA;
		t = pg->restart == KM_PLAN_RESTART_EARLIEST ? lo : hi;
	}
	json_object_set_new(row, "target_offset", json_integer(t));
	json_object_set_new(row, "status", json_string("policy"));
	return KM_ERR_OK;
}

km_err_t km_offsets_translate(const km_plan_t *plan, km_kafka_t *ks, km_kafka_t *kt,
			      const km_offsets_opts_t *opts, json_t **groupsp, char *errstr,
			      size_t errstr_size)
{
	const char *only = opts ? opts->only : NULL;
	json_t *ids = NULL, *offs = NULL, *out = json_array(), *id, *row;
	km_mapstore_t *maps = NULL;
	reader_t rd[NSIDES] = {{.ep = km_kafka_endpoint(ks)},
			       {.ep = km_kafka_endpoint(kt)},
			       {.ep = km_kafka_endpoint(kt), .uncommitted = true}};
	progress_t prog = {opts, 0, 0};
	prow_t *prows = NULL;
	size_t nprows = 0, cap = 0, i, j;
	km_err_t err;

	*groupsp = NULL;
	if ((err = group_ids(plan, ks, only, &ids, errstr, errstr_size)) ||
	    (err = committed_offsets(ks, ids, &offs, errstr, errstr_size)))
		goto done;
	/* The tables first, then every translated row proven at once. */
	json_array_foreach(ids, i, id) {
		const char *gid = json_string_value(id);
		const km_plan_group_t *pg = plan_group(plan, gid);
		json_t *rows = json_object_get(offs, gid), *kept = json_array();
		char pbuf[64];

		km_sort_tp_rows(rows);
		json_array_foreach(rows, j, row) {
			const char *topic = json_string_value(json_object_get(row, "topic"));
			if (!km_plan_topic_in_scope(plan, topic))
				continue;
			char *tt = km_plan_target_topic(plan, topic);
			json_object_set_new(row, "target_topic", json_string(tt));
			free(tt);
			json_array_append(kept, row);
			if (pg && pg->restart != KM_PLAN_RESTART_TRANSLATED) {
				if ((err = policy_row(kt, pg, row, errstr, errstr_size))) {
					json_decref(kept);
					goto done;
				}
				continue;
			}
			if (!maps && (err = km_mapstore_open(plan->migration, NULL, km_kafka_endpoint(kt),
							     &maps, errstr, errstr_size))) {
				json_decref(kept);
				goto done;
			}
			if (nprows == cap) {
				cap = cap ? cap * 2 : 64;
				prows = km_realloc(prows, cap * sizeof(*prows));
			}
			prow_t *r = &prows[nprows];
			memset(r, 0, sizeof(*r));
			r->row = row;
			r->topic = topic;
			r->ttopic = json_string_value(json_object_get(row, "target_topic"));
			r->p = (int)json_integer_value(json_object_get(row, "partition"));
			r->c = json_integer_value(json_object_get(row, "committed"));
			r->m = km_mapstore_offmap(maps, topic, r->p);
			nprows++;
		}
		if (!json_array_size(kept)) {
			json_decref(kept);
			continue; /* no commits on in-scope topics: nothing to move */
		}
		json_array_append_new(
			out, json_pack("{s:s, s:s, s:o, s:o, s:b, s:o}", "group", gid, "policy",
				       pg ? km_plan_group_restart_str(pg, pbuf, sizeof(pbuf))
					  : "translated",
				       "chosen_by",
				       pg && pg->chosen_by ? json_string(pg->chosen_by)
				       : pg ? json_string("the plan (no chosen_by)")
					    : json_string("default: group not declared in the plan"),
				       "owner", pg && pg->owner ? json_string(pg->owner) : json_null(),
				       "declared", pg != NULL, "partitions", kept));
	}
	if (only && !json_array_size(out)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOT_FOUND,
				"group '%s' has no committed offset on an in-scope topic of the source: "
				"nothing to translate; check the group id (`kmigrate offsets` lists the "
				"groups)",
				only);
		goto done;
	}
	if ((err = prove_rows(prows, nprows, false, rd, &prog, errstr, errstr_size)) ||
	    (err = exposure(prows, nprows, rd, &prog, errstr, errstr_size)))
		goto done;
	json_array_foreach(out, i, id) {
		const char *gid = json_string_value(json_object_get(id, "group"));
		km_plan_isolation_t iso = km_plan_group_isolation(plan, gid);
		bool translatable = true;
		int exposed = 0;
		json_array_foreach(json_object_get(id, "partitions"), j, row) {
			const char *st = json_string_value(json_object_get(row, "status"));
			if (!st)
				KM_BUG("offsets: a row has no status");
			if (strcmp(st, "translated") && strcmp(st, "policy"))
				translatable = false;
			if (json_integer_value(
				    json_object_get(json_object_get(row, "aborted_after"), "ranges")) > 0)
				exposed++;
		}
		json_object_set_new(id, "translatable", json_boolean(translatable));
		json_object_set_new(id, "isolation_level", json_string(km_plan_isolation_str(iso)));
		json_object_set_new(id, "aborted_exposed_partitions", json_integer(exposed));
		/* A finding, not a refusal: the translation is right either
		 * way; what the group's consumers will read is not. */
		if (exposed && iso != KM_PLAN_ISOLATION_READ_COMMITTED)
			json_object_set_new(
				id, "finding",
				json_sprintf(
					"%d partition(s) hold records of kmigrate's aborted transactions "
					"after the group's position; a consumer reading %s will receive "
					"them; %s",
					exposed,
					iso == KM_PLAN_ISOLATION_READ_UNCOMMITTED
						? "read_uncommitted (as declared)"
						: "read_uncommitted (Java's default; the plan declares no "
						  "isolation_level for this group)",
					iso == KM_PLAN_ISOLATION_READ_UNCOMMITTED
						? "set isolation.level=read_committed on the consumer, or accept "
						  "them"
						: "declare isolation_level in the plan's consumers: entry for "
						  "this group (and set isolation.level=read_committed on the "
						  "consumer)"));
		else
			json_object_set_new(id, "finding", json_null());
	}
	*groupsp = out;
	out = NULL;
done:
	free(prows);
	for (int s = 0; s < NSIDES; s++)
		reader_close(&rd[s]);
	km_mapstore_destroy(maps);
	json_decref(ids);
	json_decref(offs);
	json_decref(out);
	return err;
}

/* ---- commit ---------------------------------------------------------------------- */

km_err_t km_offsets_group_members(km_kafka_t *kt, const char *gid, int *membersp, char *clients,
				  size_t csize, char *errstr, size_t errstr_size)
{
	km_kafka_call_t call;
	rd_kafka_event_t *ev = NULL;
	const char *ids[1] = {gid};
	km_err_t err;
	size_t n;

	*membersp = 0;
	clients[0] = '\0';
	km_kafka_call_begin(kt, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, 0, &call);
	rd_kafka_DescribeConsumerGroups(km_kafka_rk(kt), ids, 1, call.options, call.q);
	err = km_kafka_call_wait(kt, &call, RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT,
				 "DescribeConsumerGroups", &ev, errstr, errstr_size);
	if (!err) {
		const rd_kafka_ConsumerGroupDescription_t **gd =
			rd_kafka_DescribeConsumerGroups_result_groups(
				rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
		for (size_t i = 0; i < n; i++) {
			size_t mc = rd_kafka_ConsumerGroupDescription_member_count(gd[i]);
			*membersp += (int)mc;
			for (size_t m = 0; m < mc; m++) {
				const rd_kafka_MemberDescription_t *md =
					rd_kafka_ConsumerGroupDescription_member(gd[i], m);
				size_t l = strlen(clients);
				snprintf(clients + l, csize - l, "%s%s@%s", l ? ", " : "",
					 rd_kafka_MemberDescription_client_id(md),
					 rd_kafka_MemberDescription_host(md));
			}
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	return err;
}

km_err_t km_offsets_commit(km_kafka_t *kt, const json_t *group, char *errstr, size_t errstr_size)
{
	const char *gid = json_string_value(json_object_get(group, "group"));
	rd_kafka_topic_partition_list_t *tps;
	rd_kafka_AlterConsumerGroupOffsets_t *a;
	km_kafka_call_t call;
	rd_kafka_event_t *ev = NULL;
	char clients[1024];
	int members;
	json_t *row;
	km_err_t err;
	size_t i, n;

	if (!json_is_true(json_object_get(group, "translatable")))
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "group '%s' has partitions that are not translatable yet (replication "
				 "behind or proof failed): nothing committed; run replicate, then retry",
				 gid);
	if ((err = km_offsets_group_members(kt, gid, &members, clients, sizeof(clients), errstr,
					    errstr_size)))
		return err;
	/* The cluster's role: the rollback commits on the source with this. */
	if (members > 0)
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "%s group '%s' has %d active member(s) (%s): committing under "
				 "them would be overwritten or skip records; stop them, then retry",
				 km_kafka_endpoint(kt)->role, gid, members, clients);
	tps = rd_kafka_topic_partition_list_new(8);
	json_array_foreach(json_object_get(group, "partitions"), i, row)
		rd_kafka_topic_partition_list_add(
			tps, json_string_value(json_object_get(row, "target_topic")),
			(int32_t)json_integer_value(json_object_get(row, "partition")))
			->offset = json_integer_value(json_object_get(row, "target_offset"));
	a = rd_kafka_AlterConsumerGroupOffsets_new(gid, tps);
	km_kafka_call_begin(kt, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS, 0, &call);
	rd_kafka_AlterConsumerGroupOffsets(km_kafka_rk(kt), &a, 1, call.options, call.q);
	err = km_kafka_call_wait(kt, &call, RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT,
				 "AlterConsumerGroupOffsets", &ev, errstr, errstr_size);
	if (!err) {
		const rd_kafka_group_result_t **gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
			rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
		for (size_t g = 0; g < n && !err; g++) {
			const rd_kafka_error_t *ge = rd_kafka_group_result_error(gr[g]);
			const rd_kafka_topic_partition_list_t *p = rd_kafka_group_result_partitions(gr[g]);
			if (ge)
				err = km_kafka_err(kt, rd_kafka_error_code(ge), "AlterConsumerGroupOffsets",
						   rd_kafka_error_string(ge), errstr, errstr_size);
			for (int j = 0; !err && p && j < p->cnt; j++)
				if (p->elems[j].err)
					err = km_kafka_err(kt, p->elems[j].err,
							   "AlterConsumerGroupOffsets", NULL, errstr,
							   errstr_size);
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AlterConsumerGroupOffsets_destroy(a);
	rd_kafka_topic_partition_list_destroy(tps);
	return err;
}

/* ---- back to the source (the rollback after the authority moved) --------------- */

/* The source offset of the first record whose forward copy lies at or
 * after target offset c and before the switch point sw, or -1: the
 * inverse of the forward map (runs sorted by source offset, and so by
 * target offset: the copy keeps the order). */
static int64_t forward_inverse(const km_offmap_t *m, int64_t c, int64_t sw)
{
	for (size_t i = 0; m && i < m->cnt; i++) {
		const km_offrun_t *r = &m->runs[i];
		if (r->tgt_first >= sw)
			break;
		if (r->tgt_first + r->count > c)
			return r->src_first + (c > r->tgt_first ? c - r->tgt_first : 0);
	}
	return -1;
}

km_err_t km_offsets_translate_back(const km_plan_t *plan, km_kafka_t *ks, km_kafka_t *kt,
				   const char *group, const json_t *parts, json_t **groupp,
				   char *errstr, size_t errstr_size)
{
	reader_t rd[NSIDES] = {{.ep = km_kafka_endpoint(ks)}, {.ep = km_kafka_endpoint(kt)}};
	km_mapstore_t *fwd = NULL, *rev = NULL;
	rd_kafka_topic_partition_list_t *ends = NULL;
	json_t *ids = json_pack("[s]", group), *offs = NULL, *rows = json_array(), *pt, *c;
	static const km_offmap_t none = {0};
	prow_t *pr = NULL;
	progress_t pg = {0};
	size_t i, j, np = 0;
	bool all = true;
	km_err_t err;

	*groupp = NULL;
	if ((err = committed_offsets(kt, ids, &offs, errstr, errstr_size)) ||
	    (err = km_mapstore_open(plan->migration, NULL, km_kafka_endpoint(kt), &fwd, errstr,
				    errstr_size)) ||
	    (err = km_mapstore_open(plan->migration, "reverse", km_kafka_endpoint(ks), &rev,
				    errstr, errstr_size)))
		goto done;
	/* The source's end, for a group past every copied record. */
	ends = rd_kafka_topic_partition_list_new(8);
	json_array_foreach(parts, i, pt)
		rd_kafka_topic_partition_list_add(ends, json_string_value(json_object_get(pt, "topic")),
						  (int32_t)json_integer_value(
							  json_object_get(pt, "partition")));
	if ((err = km_kafka_list_offsets(ks, ends, KM_KAFKA_LSO, errstr, errstr_size)))
		goto done;
	pr = km_calloc(json_array_size(parts) * 2 + 1, sizeof(*pr));
	json_array_foreach(parts, i, pt) {
		const char *st = json_string_value(json_object_get(pt, "topic"));
		const char *tt = json_string_value(json_object_get(pt, "target_topic"));
		int p = (int)json_integer_value(json_object_get(pt, "partition"));
		int64_t sw = json_integer_value(json_object_get(pt, "switch_hwm")), at = -1, s = -1;
		const char *via = NULL;
		json_array_foreach(json_object_get(offs, group), j, c)
			if (!strcmp(json_string_value(json_object_get(c, "topic")), tt) &&
			    json_integer_value(json_object_get(c, "partition")) == p)
				at = json_integer_value(json_object_get(c, "committed"));
		if (at < 0) {
			/* No position on the target: the source keeps its own
			 * (what the group committed there before the cutover). */
			json_array_append_new(rows, json_pack("{s:s, s:s, s:i, s:s}", "topic", st,
							      "target_topic", tt, "partition", p,
							      "status", "no-commit"));
			continue;
		}
		/* Before the switch point: a copy the forward replicator made,
		 * back through the inverse of its map.  At or after it (or
		 * past the last forward copy): a record the applications wrote
		 * on the target, through the reverse map.  Past both: the end. */
		if (at < sw && (s = forward_inverse(km_mapstore_offmap(fwd, st, p), at, sw)) >= 0)
			via = "forward-inverse";
		else if (!km_offmap_translate(km_mapstore_offmap(rev, tt, p), at < sw ? sw : at, &s))
			via = "reverse";
		else {
			s = ends->elems[i].offset;
			via = "end";
		}
		json_array_append_new(rows, json_pack("{s:s, s:s, s:i, s:I, s:I, s:s}", "topic", st,
						      "target_topic", tt, "partition", p,
						      "committed", (json_int_t)at, "source_offset",
						      (json_int_t)s, "via", via));
		const km_offmap_t *fm = km_mapstore_offmap(fwd, st, p),
				  *rm = km_mapstore_offmap(rev, tt, p);
		pr[np++] = (prow_t){.m = fm ? fm : &none, .rev = rm ? rm : &none, .sw = sw,
				    .topic = st, .ttopic = tt, .p = p, .c = s, .t = at,
				    .st = ST_PROVE, .want = {s, at}};
	}
	/* The proof, as the forward one (step_prove): from the target position
	 * and from the source position, both sides walk to the first record
	 * that survives on both (either may have compacted; a position at a
	 * transaction marker or aborted records reads on to the next committed
	 * record), which must be counterparts with equal digests, or both
	 * sides are at their end. */
	for (i = j = 0; i < json_array_size(rows); i++)
		if (json_object_get(json_array_get(rows, i), "via"))
			pr[j++].row = json_array_get(rows, i);
	if (np && (err = prove_rows(pr, np, true, rd, &pg, errstr, errstr_size)))
		goto done;
	json_array_foreach(rows, i, c)
		if (json_object_get(c, "via"))
			all = all && !strcmp(json_string_value(json_object_get(c, "status")),
					     "translated");
	*groupp = json_pack("{s:s, s:O, s:b}", "group", group, "partitions", rows, "translatable",
			    all);
done:
	free(pr);
	if (ends)
		rd_kafka_topic_partition_list_destroy(ends);
	km_mapstore_destroy(fwd);
	km_mapstore_destroy(rev);
	json_decref(ids);
	json_decref(offs);
	json_decref(rows);
	return err;
}
