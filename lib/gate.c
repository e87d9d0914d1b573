/*
 * gate.c -- gates: criteria from journal evidence and live measurements.
 *
 * Each gate is a function that appends criteria to the report; `cutover`
 * runs them all and adds its own.  A criterion is built in one place
 * (criterion()) so that every one carries the same members, and its age is
 * checked in one place (fresh()) so that no gate can forget staleness.
 */
#include "gate.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "mapstore.h"
#include "util.h"

const char *const km_gate_names[] = {"design",  "compatibility",  "replication", "validation",
				     "offsets", "rollback-ready", "cutover",     NULL};

/* One source partition of the wave, with what the live checks learn. */
typedef struct gpart_s {
	const char *topic; /* borrowed from the topics array */
	int partition;
	int64_t hwm;  /* source high watermark, -1 unknown */
	int64_t next; /* committed progress on the target, -1 none */
	int64_t tnext; /* target offset after the last copied record, -1 none */
	int64_t tlso;  /* the target partition's last stable offset, read before
			* the progress; -1 when the target topic could not be read */
} gpart_t;

typedef struct gctx_s {
	const km_plan_t *plan;
	km_journal_t *jr;
	km_kafka_t *ks, *kt;
	const km_plan_wave_t *wave;
	int64_t now;
	const char *gate; /* the gate whose criteria are being added */
	const char *owner; /* the gate's owner: the wave's, else target.owner */
	json_t *topics;    /* [{"topic", "partitions"}] of the wave, sorted */
	json_t *hidden;    /* design topics of the wave the source does not show */
	json_t *criteria;
	gpart_t *parts;
	size_t nparts;
	bool live_done;   /* watermarks and progress read */
	char *errstr;
	size_t errstr_size;
} gctx_t;

/* ---- criteria ------------------------------------------------------------------ */

static json_t *evidence(json_t *run_id, json_t *fact_id, int64_t ts_ms, const char *command)
{
	char when[40];

	if (ts_ms > 0)
		km_iso8601(ts_ms, when, sizeof(when));
	return json_pack("{s:o, s:o, s:o, s:s}", "run_id", run_id ? run_id : json_null(),
			 "fact_id", fact_id ? fact_id : json_null(), "measured_at",
			 ts_ms > 0 ? json_string(when) : json_null(), "command", command);
}

/* Evidence measured by this evaluation, on a cluster. */
static json_t *live(gctx_t *g)
{
	return evidence(NULL, NULL, g->now, "gate (live)");
}

/* Evidence of a journal run and one of its facts (fact may be NULL). */
static json_t *from_run(const json_t *run, const json_t *fact)
{
	int64_t ts = fact ? json_integer_value(json_object_get(fact, "ts_ms"))
			  : json_is_integer(json_object_get(run, "ended_ms"))
				    ? json_integer_value(json_object_get(run, "ended_ms"))
				    : json_integer_value(json_object_get(run, "started_ms"));
	return evidence(json_incref(json_object_get(run, "id")),
			fact ? json_incref(json_object_get(fact, "id")) : NULL, ts,
			json_string_value(json_object_get(run, "command")));
}

/* Appends one criterion; takes measured and ev.  reason: why NO-GO, or
 * what the GO rests on (may be NULL). */
static void criterion(gctx_t *g, const char *name, const char *threshold, json_t *measured,
		      json_t *ev, const char *owner, bool go, const char *reason)
{
	json_array_append_new(
		g->criteria,
		json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:o}", "gate", g->gate, "name", name,
			  "threshold", threshold, "measured", measured ? measured : json_null(),
			  "evidence", ev ? ev : evidence(NULL, NULL, 0, "none"), "owner",
			  owner ? json_string(owner) : json_null(), "verdict", go ? "GO" : "NO-GO",
			  "reason", reason ? json_string(reason) : json_null()));
}

/* Whether evidence measured at ts_ms is recent enough; when it is not,
 * *why gets the reason (owned). */
static bool fresh(gctx_t *g, int64_t ts_ms, const char *command, char **why)
{
	int64_t age = (g->now - ts_ms) / 1000;

	if (g->now - ts_ms <= g->plan->gates.max_evidence_age * 1000)
		return true;
	*why = km_asprintf("stale: measured %lld s ago by `kmigrate %s`, more than "
			   "gates.max_evidence_age (%lld s): run `kmigrate %s` again",
			   (long long)age, command, (long long)g->plan->gates.max_evidence_age,
			   command);
	return false;
}

static const char *nz(const char *s)
{
	return s ? s : "";
}

static int64_t run_ts(const json_t *run)
{
	json_t *e = json_object_get(run, "ended_ms");
	return json_is_integer(e) ? json_integer_value(e)
				  : json_integer_value(json_object_get(run, "started_ms"));
}

/* ---- the wave's topics and partitions --------------------------------------------- */

static bool wave_topic(const gctx_t *g, const char *topic)
{
	return g->wave ? km_plan_wave_has_topic(g->plan, g->wave, topic)
		       : km_plan_topic_in_scope(g->plan, topic);
}

static bool in_wave(const gctx_t *g, const char *topic)
{
	json_t *t;
	size_t i;

	json_array_foreach(g->topics, i, t)
		if (!strcmp(json_string_value(json_object_get(t, "topic")), topic))
			return true;
	return false;
}

static int cmp_topic(const void *a, const void *b)
{
	const gpart_t *x = a, *y = b;
	int c = strcmp(x->topic, y->topic);
	return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* The wave's topics as the source shows them now, and the saved design's
 * topics of the wave that it does not show (hidden from the principal or
 * deleted: either way the gate cannot measure them). */
static km_err_t load_topics(gctx_t *g)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t rerr;
	json_t *design = NULL, *t;
	km_err_t err;
	size_t i;

	rerr = rd_kafka_metadata(km_kafka_rk(g->ks), 1, NULL, &md, KM_KAFKA_TIMEOUT_MS);
	if (rerr)
		return km_kafka_err(g->ks, rerr, "Metadata", NULL, g->errstr, g->errstr_size);
	for (int k = 0; k < md->topic_cnt; k++) {
		const struct rd_kafka_metadata_topic *mt = &md->topics[k];
		if (mt->err || !wave_topic(g, mt->topic))
			continue;
		json_array_append_new(g->topics, json_pack("{s:s, s:i}", "topic", mt->topic,
							   "partitions", mt->partition_cnt));
	}
	rd_kafka_metadata_destroy(md);
	km_sort_tp_rows(g->topics);
	json_array_foreach(g->topics, i, t) {
		int n = (int)json_integer_value(json_object_get(t, "partitions"));
		g->parts = km_realloc(g->parts, (g->nparts + (size_t)n + 1) * sizeof(*g->parts));
		for (int p = 0; p < n; p++)
			g->parts[g->nparts++] = (gpart_t){
				json_string_value(json_object_get(t, "topic")), p, -1, -1, -1, -1};
	}
	qsort(g->parts, g->nparts, sizeof(*g->parts), cmp_topic);

	err = km_journal_snapshot_get(g->jr, "design", "target", 0, &design, NULL, g->errstr,
				      g->errstr_size);
	if (err == KM_ERR_NOT_FOUND)
		return KM_ERR_OK; /* the design gate says so */
	if (err)
		return err;
	json_array_foreach(json_object_get(design, "topics"), i, t) {
		const char *src = json_string_value(json_object_get(t, "source"));
		if (src && wave_topic(g, src) && !in_wave(g, src))
			json_array_append_new(g->hidden, json_string(src));
	}
	json_decref(design);
	return KM_ERR_OK;
}

/* "orders, payments and 3 more" for messages. */
static char *name_list(const json_t *names, size_t max)
{
	km_sb_t sb = KM_SB_INIT;
	size_t i, n = json_array_size(names);

	for (i = 0; i < n && i < max; i++)
		km_sb_printf(&sb, "%s'%s'", i ? ", " : "",
			     json_string_value(json_array_get(names, i)));
	if (n > max)
		km_sb_printf(&sb, " and %zu more", n - max);
	return km_sb_detach(&sb);
}

/* The last stable offset of the target partition of every wave partition,
 * one ListOffsets per topic; a topic that fails (not created yet, not
 * readable) keeps tlso -1 and is unknown to replication.no_foreign. */
static void target_lsos(gctx_t *g)
{
	size_t i = 0;

	while (i < g->nparts) {
		size_t j = i;
		char *tt = km_plan_target_topic(g->plan, g->parts[i].topic);
		rd_kafka_topic_partition_list_t *tps = rd_kafka_topic_partition_list_new(4);
		char e[512];

		for (; j < g->nparts && !strcmp(g->parts[j].topic, g->parts[i].topic); j++)
			rd_kafka_topic_partition_list_add(tps, tt, g->parts[j].partition);
		if (!km_kafka_list_offsets(g->kt, tps, KM_KAFKA_LSO, e, sizeof(e)))
			for (int k = 0; k < tps->cnt; k++)
				g->parts[i + (size_t)k].tlso = tps->elems[k].offset;
		rd_kafka_topic_partition_list_destroy(tps);
		free(tt);
		i = j;
	}
}

/* Source high watermarks and the replicator's committed progress of every
 * partition of the wave, read once per evaluation. */
static km_err_t load_live(gctx_t *g, bool *no_statep)
{
	km_mapstore_names_t names;
	km_mapstore_t *ms = NULL;
	km_err_t err;
	int64_t lo;

	*no_statep = false;
	if (g->live_done)
		return KM_ERR_OK;
	for (size_t i = 0; i < g->nparts; i++)
		if ((err = km_kafka_watermarks(g->ks, g->parts[i].topic, g->parts[i].partition, &lo,
					       &g->parts[i].hwm, g->errstr, g->errstr_size)))
			return err;
	/* The target's committed ends BEFORE the progress: every record
	 * committed by then had its progress committed in the same
	 * transaction, so the progress read after covers it, and a committed
	 * record past it is not kmigrate's (replication.no_foreign). */
	target_lsos(g);
	km_mapstore_names(g->plan->migration, NULL, &names);
	err = km_mapstore_read_progress_all(km_kafka_endpoint(g->kt), names.progress, &ms,
					    g->errstr, g->errstr_size);
	if (err == KM_ERR_NOT_FOUND) {
		*no_statep = true;
		g->live_done = true;
		return KM_ERR_OK;
	}
	if (err)
		return err;
	for (size_t i = 0; i < g->nparts; i++) {
		const km_mapstore_progress_t *p =
			km_mapstore_progress(ms, g->parts[i].topic, g->parts[i].partition);
		g->parts[i].next = p ? p->next : -1;
		g->parts[i].tnext = p ? p->tgt_next : -1;
	}
	km_mapstore_destroy(ms);
	g->live_done = true;
	return KM_ERR_OK;
}

/* ---- design --------------------------------------------------------------------- */

static km_err_t gate_design(gctx_t *g)
{
	json_t *plan_run = NULL, *apply_run = NULL, *facts = NULL, *f, *blocked = json_array();
	const json_t *first = NULL;
	char *why = NULL, *list = NULL;
	km_err_t err;
	size_t i;

	if ((err = km_journal_last_run(g->jr, "plan", 1, NULL, &plan_run, g->errstr,
				       g->errstr_size)) ||
	    (err = km_journal_last_run(g->jr, "apply", 1, NULL, &apply_run, g->errstr,
				       g->errstr_size)))
		goto done;

	/* design.blocked: the latest design has no blocked object. */
	if (!plan_run) {
		criterion(g, "design.blocked", "0 blocked", NULL, NULL, g->owner, false,
			  "unknown: no design in the journal (run `kmigrate plan`)");
	} else {
		if ((err = km_journal_facts(g->jr, json_integer_value(json_object_get(plan_run, "id")),
					    "plan.action", &facts, g->errstr, g->errstr_size)))
			goto done;
		json_array_foreach(facts, i, f)
			if (!strcmp(json_string_value(json_object_get(f, "verdict")), "NO-GO")) {
				if (!first)
					first = f;
				json_array_append(blocked, json_object_get(f, "subject"));
			}
		list = name_list(blocked, 3);
		char *r = json_array_size(blocked)
				  ? km_asprintf("blocked: %s (see `kmigrate plan`)", list)
				  : NULL;
		bool ok = fresh(g, run_ts(plan_run), "plan", &why);
		criterion(g, "design.blocked", "0 blocked",
			  json_sprintf("%zu blocked", json_array_size(blocked)),
			  from_run(plan_run, first), g->owner, ok && !json_array_size(blocked),
			  why ? why : r);
		free(r);
		free(why);
		why = NULL;
	}

	/* design.applied: the latest design was applied and the target was
	 * proven to match it. */
	if (!apply_run) {
		criterion(g, "design.applied", "converged", NULL, NULL, g->owner, false,
			  "unknown: no apply in the journal (run `kmigrate apply`)");
	} else {
		const char *summary = json_string_value(json_object_get(apply_run, "summary"));
		bool conv = json_integer_value(json_object_get(apply_run, "exit_code")) == 0 &&
			    summary && !strcmp(summary, "converged");
		bool after = plan_run && json_integer_value(json_object_get(apply_run, "id")) >
						 json_integer_value(json_object_get(plan_run, "id"));
		bool ok = fresh(g, run_ts(apply_run), "apply", &why);
		const char *r = why       ? why
				: !conv  ? "the latest apply did not converge (run `kmigrate apply` "
					   "again)"
				: !plan_run ? "unknown: no design in the journal (run `kmigrate plan`)"
				: !after ? "the latest design was saved after the latest apply (run "
					   "`kmigrate apply`)"
					 : NULL;
		criterion(g, "design.applied", "converged", json_string(summary ? summary : "unknown"),
			  from_run(apply_run, NULL), g->owner, ok && conv && after, r);
		free(why);
		why = NULL;
	}

	/* design.topics: every topic of the wave is one the design made. */
	if (json_array_size(g->hidden)) {
		free(list);
		list = name_list(g->hidden, 3);
		char *r = km_asprintf("the saved design's topic(s) %s are not visible on the source "
				      "(deleted, or hidden from the source principal: grant DESCRIBE)",
				      list);
		criterion(g, "design.topics", "every wave topic visible",
			  json_sprintf("%zu not visible", json_array_size(g->hidden)), live(g),
			  g->owner, false, r);
		free(r);
	} else if (plan_run) {
		json_t *design = NULL, *missing = json_array(), *t, *dt;
		size_t j;
		int64_t ts = 0;
		if ((err = km_journal_snapshot_get(g->jr, "design", "target", 0, &design, &ts,
						   g->errstr, g->errstr_size))) {
			json_decref(missing);
			goto done;
		}
		json_array_foreach(g->topics, i, t) {
			bool found = false;
			json_array_foreach(json_object_get(design, "topics"), j, dt)
				found = found || !strcmp(nz(json_string_value(json_object_get(dt, "source"))),
						       json_string_value(json_object_get(t, "topic")));
			if (!found)
				json_array_append(missing, json_object_get(t, "topic"));
		}
		free(list);
		list = name_list(missing, 3);
		char *r = json_array_size(missing)
				  ? km_asprintf("topic(s) %s are not in the saved design (created "
						"since `kmigrate plan`? run plan and apply)",
						list)
				  : NULL;
		criterion(g, "design.topics", "every wave topic designed",
			  json_sprintf("%zu of %zu designed",
				       json_array_size(g->topics) - json_array_size(missing),
				       json_array_size(g->topics)),
			  from_run(plan_run, NULL), g->owner, !json_array_size(missing), r);
		free(r);
		json_decref(missing);
		json_decref(design);
	}
done:
	free(list);
	json_decref(blocked);
	json_decref(facts);
	json_decref(plan_run);
	json_decref(apply_run);
	return err;
}

/* ---- compatibility ---------------------------------------------------------------- */

static km_err_t gate_compatibility(gctx_t *g)
{
	json_t *run = NULL, *facts = NULL, *f;
	char *why = NULL;
	km_err_t err;

	if ((err = km_journal_last_run(g->jr, "check", 1, "gate.compat", &run, g->errstr,
				       g->errstr_size)))
		return err;
	if (!run) {
		criterion(g, "compatibility.check", "GO", NULL, NULL, g->owner, false,
			  "unknown: no compatibility check in the journal (run `kmigrate check`)");
		return KM_ERR_OK;
	}
	if ((err = km_journal_facts(g->jr, json_integer_value(json_object_get(run, "id")),
				    "gate.compat", &facts, g->errstr, g->errstr_size)))
		goto done;
	f = json_array_get(facts, json_array_size(facts) - 1);
	const char *v = nz(json_string_value(json_object_get(f, "verdict")));
	bool ok = fresh(g, json_integer_value(json_object_get(f, "ts_ms")), "check", &why);
	char *r = NULL;
	if (!why && strcmp(v, "GO")) {
		char *list = name_list(json_object_get(json_object_get(f, "body"), "no_go"), 3);
		r = km_asprintf("the compatibility check is %s: %s", v, list);
		free(list);
	}
	criterion(g, "compatibility.check", "GO", json_string(v), from_run(run, f), g->owner,
		  ok && !strcmp(v, "GO"), why ? why : r);
	free(r);
	free(why);
done:
	json_decref(facts);
	json_decref(run);
	return err;
}

/* ---- replication ------------------------------------------------------------------ */

km_err_t km_gate_first_records(const km_kafka_endpoint_t *ep, rd_kafka_topic_partition_list_t *tp,
			       int timeout_ms, int64_t *ts, char *errstr, size_t errstr_size)
{
	const char *props[] = {"group.id", "kmigrate-gate-lag", "enable.auto.commit", "false",
			       "isolation.level", "read_uncommitted", "auto.offset.reset", "error",
			       "enable.partition.eof", "true", NULL};
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *c = NULL;
	char rerr[512];
	int left = tp->cnt;
	km_err_t err;

	for (int i = 0; i < tp->cnt; i++) {
		ts[i] = -1;
		tp->elems[i].err = RD_KAFKA_RESP_ERR__TIMED_OUT;
		tp->elems[i].opaque = NULL;
	}
	if (!left)
		return KM_ERR_OK;
	if ((err = km_kafka_conf_new(ep, props, &conf, errstr, errstr_size)))
		goto done;
	if (!(c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				"cannot create a consumer on the %s cluster '%s': %s", ep->role,
				ep->bootstrap, rerr);
		goto done;
	}
	rd_kafka_poll_set_consumer(c);
	if (rd_kafka_assign(c, tp)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				"cannot assign partitions to read on the %s cluster '%s'", ep->role,
				ep->bootstrap);
		goto done;
	}
	int64_t deadline = km_mono_ms() + (timeout_ms > 0 ? timeout_ms : KM_KAFKA_TIMEOUT_MS);
	while (left > 0 && km_mono_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
		if (!m)
			continue;
		rd_kafka_topic_partition_t *e =
			m->rkt ? rd_kafka_topic_partition_list_find(tp, rd_kafka_topic_name(m->rkt),
								     m->partition)
			       : NULL;
		if (e && e->opaque == NULL && m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			/* The end, and no record on the way: what lay past the
			 * offset were transaction markers only (read_uncommitted
			 * delivers every record, aborted ones too).  An answer,
			 * not a wait until the deadline: nothing there is old. */
			ts[e - tp->elems] = KM_GATE_NO_RECORD;
			e->err = RD_KAFKA_RESP_ERR_NO_ERROR;
			e->offset = m->offset;
			e->opaque = (void *)1;
			left--;
		} else if (e && e->opaque == NULL) {
			/* A fetch error (authorization, ...) is kept as the
			 * partition's answer until a record arrives. */
			e->err = m->err;
			if (!m->err) {
				ts[e - tp->elems] = rd_kafka_message_timestamp(m, NULL);
				e->offset = m->offset;
				e->opaque = (void *)1;
				left--;
			}
		}
		rd_kafka_message_destroy(m);
	}
done:
	if (c) {
		rd_kafka_consumer_close(c);
		rd_kafka_destroy(c);
	}
	for (int i = 0; i < tp->cnt; i++)
		tp->elems[i].opaque = NULL;
	return err;
}

/* The age of the oldest record not yet copied, per lagging partition: the
 * timestamp of the first record at or after the committed progress, read
 * from the source (km_gate_first_records).  @returns the largest age in ms
 * in *agep, -1 when a lagging partition gave no record within the deadline
 * (unknown). */
static km_err_t lag_age(gctx_t *g, int64_t *agep)
{
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(4);
	int64_t *ts = NULL;
	km_err_t err;

	*agep = 0;
	for (size_t i = 0; i < g->nparts; i++)
		if (g->parts[i].next >= 0 && g->parts[i].hwm > g->parts[i].next)
			rd_kafka_topic_partition_list_add(tp, g->parts[i].topic, g->parts[i].partition)
				->offset = g->parts[i].next;
	ts = km_calloc((size_t)tp->cnt + 1, sizeof(*ts));
	if ((err = km_gate_first_records(km_kafka_endpoint(g->ks), tp, KM_KAFKA_TIMEOUT_MS, ts,
					 g->errstr, g->errstr_size)))
		goto done;
	for (int i = 0; i < tp->cnt; i++) {
		if (ts[i] < 0 && tp->elems[i].err) {
			*agep = -1;
			break;
		}
		if (ts[i] > 0 && g->now - ts[i] > *agep)
			*agep = g->now - ts[i];
	}
done:
	free(ts);
	rd_kafka_topic_partition_list_destroy(tp);
	return err;
}

/* Whether a replicate fact's subject ("topic:T" or "partition:T[p]") is
 * about a topic of the wave. */
static bool subject_in_wave(const gctx_t *g, const char *subj)
{
	char topic[300];
	const char *p = strchr(subj, ':');
	size_t n;

	if (!p)
		return false;
	p++;
	n = strcspn(p, "[");
	if (n >= sizeof(topic))
		return false;
	memcpy(topic, p, n);
	topic[n] = '\0';
	return wave_topic(g, topic);
}

static bool str_in(const json_t *arr, const char *s)
{
	json_t *e;
	size_t i;

	json_array_foreach(arr, i, e)
		if (!strcmp(json_string_value(e), s))
			return true;
	return false;
}

/* No foreign record on the target: every committed record of a wave
 * partition's target partition is one kmigrate copied.  kmigrate's
 * transaction that copies up to target offset tnext-1 commits a marker at
 * tnext, so a target whose committed end (LSO, read before the progress)
 * is at most tnext+1 (0 before anything was copied) holds nothing else:
 * checked on Kafka 4.3 (docs/internals/gates.md).  A partition past that
 * is read read_committed from tnext up to its LSO: records of aborted
 * kmigrate transactions (a replicator killed mid-transaction) are not
 * returned, so the first record returned below the LSO is foreign.  Open
 * transactions stay above the LSO, so a live replicator is never
 * mistaken for another writer.  *foreignp: [{"topic", "target_topic",
 * "partition", "end", "kmigrate_end", "first"}]; *unknownp: partitions
 * that could not be judged. */
static km_err_t foreign_records(gctx_t *g, const json_t *cut_over, json_t *foreign,
				json_t *unknown, size_t *checkedp)
{
	const char *props[] = {"group.id", "kmigrate-gate-foreign", "enable.auto.commit", "false",
			       "isolation.level", "read_committed", "auto.offset.reset", "error",
			       "enable.partition.eof", "true", NULL};
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(4);
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *c = NULL;
	char rerr[512];
	int left = 0;
	km_err_t err = KM_ERR_OK;

	*checkedp = 0;
	for (size_t i = 0; i < g->nparts; i++) {
		gpart_t *p = &g->parts[i];
		int64_t start = p->tnext < 0 ? 0 : p->tnext;

		if (str_in(cut_over, p->topic))
			continue; /* the target is the authority: its writes are the history */
		(*checkedp)++;
		if (p->tlso < 0) {
			json_array_append_new(unknown, json_sprintf("%s[%d]", p->topic, p->partition));
			continue;
		}
		if (p->tlso <= (p->tnext < 0 ? 0 : p->tnext + 1))
			continue;
		char *tt = km_plan_target_topic(g->plan, p->topic);
		rd_kafka_topic_partition_t *e = rd_kafka_topic_partition_list_add(tp, tt, p->partition);
		e->offset = start;
		e->opaque = p;
		free(tt);
		left++;
	}
	if (!left)
		goto done;
	if ((err = km_kafka_conf_new(km_kafka_endpoint(g->kt), props, &conf, g->errstr,
				     g->errstr_size)))
		goto done;
	if (!(c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		err = km_seterr(g->errstr, g->errstr_size, KM_ERR_KAFKA,
				"cannot create a consumer on the target: %s", rerr);
		goto done;
	}
	rd_kafka_poll_set_consumer(c);
	if (rd_kafka_assign(c, tp)) {
		err = km_seterr(g->errstr, g->errstr_size, KM_ERR_KAFKA,
				"cannot assign the target partitions to check for foreign records");
		goto done;
	}
	int64_t deadline = km_mono_ms() + KM_KAFKA_TIMEOUT_MS;
	while (left > 0 && km_mono_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
		rd_kafka_topic_partition_t *e;

		if (!m)
			continue;
		e = m->rkt ? rd_kafka_topic_partition_list_find(tp, rd_kafka_topic_name(m->rkt),
								m->partition)
			   : NULL;
		if (e && e->opaque && (!m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)) {
			gpart_t *p = e->opaque;
			if (!m->err && m->offset < p->tlso)
				json_array_append_new(
					foreign,
					json_pack("{s:s, s:s, s:i, s:I, s:I, s:I}", "topic", p->topic,
						  "target_topic", e->topic, "partition", p->partition,
						  "end", (json_int_t)p->tlso, "kmigrate_end",
						  (json_int_t)(p->tnext < 0 ? 0 : p->tnext), "first",
						  (json_int_t)m->offset));
			e->opaque = NULL;
			left--;
		}
		rd_kafka_message_destroy(m);
	}
	for (int k = 0; k < tp->cnt; k++)
		if (tp->elems[k].opaque)
			json_array_append_new(unknown,
					      json_sprintf("%s[%d]", ((gpart_t *)tp->elems[k].opaque)->topic,
							   tp->elems[k].partition));
done:
	if (c) {
		rd_kafka_consumer_close(c);
		rd_kafka_destroy(c);
	}
	for (int k = 0; k < tp->cnt; k++)
		tp->elems[k].opaque = NULL;
	rd_kafka_topic_partition_list_destroy(tp);
	return err;
}

/* replication.guard and replication.no_foreign: the split-brain guards
 * (issue 10 item 4) on the wave's target topics not yet cut over. */
static km_err_t gate_split_brain(gctx_t *g)
{
	json_t *rep = NULL, *foreign = json_array(), *unknown = json_array(), *m;
	char *r = NULL, *list = NULL;
	size_t checked = 0;
	km_err_t err;

	if ((err = km_guard_check(g->kt, g->plan, g->topics, &rep, g->errstr, g->errstr_size)))
		goto done;
	m = json_object_get(rep, "missing");
	if (!json_is_true(json_object_get(rep, "authorizer")))
		/* Known, said, not unknown: without an authorizer nothing on
		 * the target can refuse a write, and no_foreign below is what
		 * proves nobody wrote. */
		r = km_asprintf("not guarded (a finding): %s: nothing refuses another writer "
				"before cutover; replication.no_foreign proves none wrote",
				json_string_value(json_object_get(rep, "why")));
	else if (json_array_size(json_object_get(rep, "findings")))
		r = km_strdup(json_string_value(json_array_get(json_object_get(rep, "findings"), 0)));
	else if (json_array_size(m))
		r = km_asprintf("%s may write target topic '%s' before its cutover%s: run "
				"`kmigrate apply` (it adds the guard's DENY WRITE)",
				json_string_value(json_object_get(json_array_get(m, 0), "principal")),
				json_string_value(json_object_get(json_array_get(m, 0), "topic")),
				json_array_size(m) > 1 ? " (and more)" : "");
	criterion(g, "replication.guard",
		  "target topics read-only for all but kmigrate until cutover (DENY WRITE)",
		  json_pack("{s:O, s:O, s:O, s:O, s:O}", "authorizer",
			    json_object_get(rep, "authorizer"), "principal",
			    json_object_get(rep, "principal"), "guarded",
			    json_object_get(rep, "guarded"), "missing", m, "cut_over",
			    json_object_get(rep, "cut_over")),
		  live(g), g->owner,
		  !json_is_true(json_object_get(rep, "authorizer")) ||
			  (!json_array_size(json_object_get(rep, "findings")) && !json_array_size(m)),
		  r);
	free(r);
	r = NULL;

	if ((err = foreign_records(g, json_object_get(rep, "cut_over"), foreign, unknown,
				   &checked)))
		goto done;
	if (json_array_size(foreign)) {
		json_t *f = json_array_get(foreign, 0);
		r = km_asprintf(
			"foreign record(s) on target topic '%s' partition %lld: end %lld, kmigrate "
			"wrote up to %lld (first foreign record at offset %lld)%s: a split brain in "
			"the making: stop that writer (`kmigrate apply` guards the target topics "
			"where the target has an authorizer), then delete the target topic and "
			"replicate it again",
			json_string_value(json_object_get(f, "target_topic")),
			(long long)json_integer_value(json_object_get(f, "partition")),
			(long long)json_integer_value(json_object_get(f, "end")),
			(long long)json_integer_value(json_object_get(f, "kmigrate_end")),
			(long long)json_integer_value(json_object_get(f, "first")),
			json_array_size(foreign) > 1 ? " (and more partitions)" : "");
	} else if (json_array_size(unknown)) {
		list = name_list(unknown, 3);
		r = km_asprintf("unknown: the target partitions of %s could not be read (run "
				"`kmigrate apply` if their topics are missing)",
				list);
	}
	criterion(g, "replication.no_foreign",
		  "0 records on the target that kmigrate did not write",
		  json_pack("{s:I, s:O}", "partitions", (json_int_t)checked, "foreign", foreign),
		  live(g), g->owner, !json_array_size(foreign) && !json_array_size(unknown), r);
done:
	free(r);
	free(list);
	json_decref(rep);
	json_decref(foreign);
	json_decref(unknown);
	return err;
}

static km_err_t gate_replication(gctx_t *g)
{
	json_t *run = NULL, *facts = NULL, *losses = NULL, *f, *open = json_array();
	const json_t *first = NULL;
	int64_t lag = 0, maxlag = 0, age = 0;
	json_t *unknown = json_array();
	bool no_state;
	char thr[120], *list = NULL, *r = NULL;
	km_err_t err;
	size_t i;

	if ((err = load_live(g, &no_state)))
		goto done;
	for (i = 0; i < g->nparts && !no_state; i++) {
		gpart_t *p = &g->parts[i];
		if (p->next < 0) {
			if (json_array_size(unknown) < 4)
				json_array_append_new(unknown, json_sprintf("%s[%d]", p->topic,
									    p->partition));
			continue;
		}
		int64_t l = p->hwm > p->next ? p->hwm - p->next : 0;
		lag += l;
		if (l > maxlag)
			maxlag = l;
	}
	snprintf(thr, sizeof(thr), "<= %lld records (gates.max_lag_records)",
		 (long long)g->plan->gates.max_lag_records);
	if (no_state) {
		criterion(g, "replication.lag_records", thr, NULL, live(g), g->owner, false,
			  "unknown: no replication state on the target (run `kmigrate replicate`)");
	} else if (json_array_size(unknown)) {
		list = name_list(unknown, 3);
		r = km_asprintf("unknown: nothing replicated yet for %s (run `kmigrate replicate`)",
				list);
		criterion(g, "replication.lag_records", thr, NULL, live(g), g->owner, false, r);
	} else if (!g->nparts) {
		criterion(g, "replication.lag_records", thr, NULL, live(g), g->owner, false,
			  "unknown: the wave has no topic on the source");
	} else {
		free(r);
		r = lag > g->plan->gates.max_lag_records
			    ? km_asprintf("%lld records not yet copied (at most %lld in one "
					  "partition): let `kmigrate replicate` catch up",
					  (long long)lag, (long long)maxlag)
			    : NULL;
		criterion(g, "replication.lag_records", thr,
			  json_pack("{s:I, s:I, s:i}", "records", (json_int_t)lag,
				    "max_partition", (json_int_t)maxlag, "partitions",
				    (int)g->nparts),
			  live(g), g->owner, lag <= g->plan->gates.max_lag_records, r);
		/* The age of the oldest record the target lacks. */
		if ((err = lag_age(g, &age)))
			goto done;
		snprintf(thr, sizeof(thr), "<= %lld s (gates.max_lag_seconds)",
			 (long long)g->plan->gates.max_lag_seconds);
		free(r);
		r = age < 0 ? km_strdup("unknown: the oldest record not yet copied could not "
					"be read from the source")
		    : age > g->plan->gates.max_lag_seconds * 1000
			    ? km_asprintf("the oldest record not yet copied is %lld s old",
					  (long long)(age / 1000))
			    : NULL;
		criterion(g, "replication.lag_seconds", thr,
			  age < 0 ? NULL : json_integer(age / 1000), live(g), g->owner,
			  age >= 0 && age <= g->plan->gates.max_lag_seconds * 1000, r);
	}
	if ((err = gate_split_brain(g)))
		goto done;

	/* No loss, no topic the replicator could not see, no partition-count
	 * mismatch.  A loss never heals (the records are gone), so a loss
	 * fact of any run counts; the others are those of the latest run. */
	if ((err = km_journal_last_run(g->jr, "replicate", 0, NULL, &run, g->errstr,
				       g->errstr_size)) ||
	    (err = km_journal_facts(g->jr, 0, "replicate.loss", &losses, g->errstr,
				    g->errstr_size)))
		goto done;
	if (run && (err = km_journal_facts(g->jr, json_integer_value(json_object_get(run, "id")),
					   NULL, &facts, g->errstr, g->errstr_size)))
		goto done;
	json_array_foreach(losses, i, f)
		if (subject_in_wave(g, nz(json_string_value(json_object_get(f, "subject"))))) {
			if (!first)
				first = f;
			json_array_append(open, json_object_get(f, "subject"));
		}
	json_array_foreach(facts, i, f) {
		const char *k = nz(json_string_value(json_object_get(f, "kind")));
		if (!strncmp(k, "replicate.", 10) && strcmp(k, "replicate.loss") &&
		    !strcmp(nz(json_string_value(json_object_get(f, "verdict"))), "NO-GO") &&
		    subject_in_wave(g, nz(json_string_value(json_object_get(f, "subject"))))) {
			if (!first)
				first = f;
			json_array_append_new(open, json_sprintf("%s %s", k + 10,
							 json_string_value(json_object_get(
								 f, "subject"))));
		}
	}
	free(list);
	list = name_list(open, 3);
	free(r);
	r = !run ? km_strdup("unknown: `kmigrate replicate` never ran for this migration")
	    : json_array_size(open)
		    ? km_asprintf("replication NO-GO facts: %s (see `kmigrate status`)", list)
		    : NULL;
	criterion(g, "replication.no_loss", "0 loss / unseen / partition facts",
		  json_sprintf("%zu", json_array_size(open)),
		  run ? from_run(run, first) : NULL, g->owner, run && !json_array_size(open), r);
done:
	free(list);
	free(r);
	json_decref(unknown);
	json_decref(open);
	json_decref(losses);
	json_decref(facts);
	json_decref(run);
	return err;
}

/* ---- validation ------------------------------------------------------------------- */

static km_err_t gate_validation(gctx_t *g)
{
	json_t *run = NULL, *facts = NULL, *f, *gf = NULL, *bad = json_array();
	const json_t *first = NULL;
	int64_t mism = 0;
	size_t seen = 0, i;
	char thr[120], *why = NULL, *list = NULL, *r = NULL;
	const char *label = "full";
	km_err_t err;

	snprintf(thr, sizeof(thr), "<= %lld mismatches (gates.max_mismatches), every partition",
		 (long long)g->plan->gates.max_mismatches);
	if ((err = km_journal_last_run(g->jr, "validate", 1, "gate.validate", &run, g->errstr,
				       g->errstr_size)))
		goto done;
	if (!run) {
		criterion(g, "validation.mismatches", thr, NULL, NULL, g->owner, false,
			  "unknown: no validation in the journal (run `kmigrate validate`)");
		goto done;
	}
	if ((err = km_journal_facts(g->jr, json_integer_value(json_object_get(run, "id")), NULL,
				    &facts, g->errstr, g->errstr_size)))
		goto done;
	json_array_foreach(facts, i, f) {
		const char *k = nz(json_string_value(json_object_get(f, "kind")));
		json_t *b = json_object_get(f, "body");
		if (!strcmp(k, "gate.validate")) {
			gf = f;
			continue;
		}
		if (strcmp(k, "validate.partition") ||
		    !in_wave(g, nz(json_string_value(json_object_get(b, "topic")))))
			continue;
		seen++;
		mism += json_integer_value(json_object_get(b, "mismatches"));
		const char *st = nz(json_string_value(json_object_get(b, "state")));
		if (strcmp(nz(json_string_value(json_object_get(f, "verdict"))), "GO") ||
		    (strcmp(st, "validated") && strcmp(st, "empty"))) {
			if (!first)
				first = f;
			json_array_append_new(
				bad, json_sprintf("%s[%lld] %s",
						  json_string_value(json_object_get(b, "topic")),
						  (long long)json_integer_value(
							  json_object_get(b, "partition")),
						  st));
		}
	}
	if (gf && json_is_true(json_object_get(json_object_get(gf, "body"), "sampled")))
		label = "sampled";
	/* A wave topic the validation did not see: unknown. */
	json_t *hidden = gf ? json_object_get(json_object_get(gf, "body"), "topics_not_visible")
			    : NULL, *h;
	json_array_foreach(hidden, i, h)
		if (in_wave(g, nz(json_string_value(json_object_get(h, "topic")))))
			json_array_append_new(bad, json_sprintf("%s not visible",
							   json_string_value(json_object_get(h, "topic"))));
	bool ok = fresh(g, gf ? json_integer_value(json_object_get(gf, "ts_ms")) : run_ts(run),
			"validate", &why);
	list = name_list(bad, 3);
	if (!why) {
		if (!g->nparts)
			r = km_strdup("unknown: the wave has no topic on the source");
		else if (seen < g->nparts)
			r = km_asprintf("unknown: the latest validation covered %zu of the wave's %zu "
					"partitions (run `kmigrate validate`)",
					seen, g->nparts);
		else if (mism > g->plan->gates.max_mismatches)
			r = km_asprintf("%lld mismatches on the wave's topics (see `kmigrate "
					"validate`)",
					(long long)mism);
		else if (json_array_size(bad))
			r = km_asprintf("not clean: %s (see `kmigrate validate`)", list);
	}
	criterion(g, "validation.mismatches", thr,
		  json_pack("{s:I, s:i, s:s}", "mismatches", (json_int_t)mism, "partitions",
			    (int)seen, "label", label),
		  from_run(run, first ? first : gf), g->owner,
		  ok && !r && seen >= g->nparts && g->nparts > 0, why ? why : r);
done:
	free(why);
	free(list);
	free(r);
	json_decref(bad);
	json_decref(facts);
	json_decref(run);
	return err;
}

/* ---- clients that span waves -------------------------------------------------- */

/* The wave in-scope topic `topic` belongs to, or NULL (no wave names it). */
static const km_plan_wave_t *topic_wave(const km_plan_t *plan, const char *topic)
{
	for (size_t i = 0; i < plan->cutover.waves_cnt; i++)
		if (km_plan_wave_has_topic(plan, &plan->cutover.waves[i], topic))
			return &plan->cutover.waves[i];
	return NULL;
}

/* A client points at one cluster: when it moves with this wave, every
 * other topic it writes (or reads) must already be the target's.  Of
 * topics[n], the first that is not -- outside the migration's scope (it
 * does not exist on the target), or in another wave whose authority record
 * (read once into *authp, on the target) still says source -- as *otherp,
 * with *owavep its wave; each topic outside this wave appended to spans
 * with its wave and authority.  *otherp NULL: none. */
static km_err_t spans_waves(gctx_t *g, const char *const *topics, size_t n, json_t **authp,
			    json_t *spans, const char **otherp, const km_plan_wave_t **owavep)
{
	km_err_t err;

	*otherp = NULL;
	*owavep = NULL;
	for (size_t t = 0; t < n; t++) {
		const char *topic = topics[t];
		const km_plan_wave_t *w = NULL;
		const char *auth = "out_of_scope";

		if (wave_topic(g, topic))
			continue;
		if (km_plan_topic_in_scope(g->plan, topic)) {
			/* Read only when some client spans waves: a plan
			 * without one costs no read of the target. */
			if (!*authp &&
			    (err = km_mapstore_load_authority(g->plan->migration,
							      km_kafka_endpoint(g->kt), authp,
							      g->errstr, g->errstr_size)))
				return err;
			w = topic_wave(g->plan, topic);
			auth = km_mapstore_authority_target(*authp, topic) ? "target" : "source";
		}
		json_array_append_new(spans, json_pack("{s:s, s:o, s:s}", "topic", topic, "wave",
						       w ? json_string(w->name) : json_null(),
						       "authority", auth));
		if (!*otherp && strcmp(auth, "target")) {
			*otherp = topic;
			*owavep = w;
		}
	}
	return KM_ERR_OK;
}

/* Whether spans (spans_waves) holds an authority read on the target. */
static bool read_auth(const json_t *spans)
{
	json_t *e;
	size_t i;

	json_array_foreach(spans, i, e)
		if (strcmp(json_string_value(json_object_get(e, "authority")), "out_of_scope"))
			return true;
	return false;
}

/* ---- offsets ---------------------------------------------------------------------- */

static const km_plan_group_t *plan_group(const km_plan_t *plan, const char *id)
{
	for (size_t i = 0; i < plan->groups_cnt; i++)
		if (!strcmp(plan->groups[i].id, id))
			return &plan->groups[i];
	return NULL;
}

static km_err_t gate_offsets(gctx_t *g)
{
	json_t *run = NULL, *facts = NULL, *f, *groups = json_object(), *gr;
	json_t *others = json_object(), *auth = NULL; /* group -> [topic outside the wave] */
	char *why = NULL;
	const char *gid;
	km_err_t err;
	size_t i;

	if ((err = km_journal_last_run(g->jr, "offsets", 1, NULL, &run, g->errstr,
				       g->errstr_size)))
		goto done;
	if (!run) {
		criterion(g, "offsets.groups", "declared + owner, proven, no aborted records exposed", NULL,
			  NULL, g->owner, false,
			  "unknown: no offsets translation in the journal (run `kmigrate offsets`)");
		goto done;
	}
	bool ok = fresh(g, run_ts(run), "offsets", &why);
	if ((err = km_journal_facts(g->jr, json_integer_value(json_object_get(run, "id")),
				    "offsets.translate", &facts, g->errstr, g->errstr_size)))
		goto done;
	/* The groups with commits on the wave's topics, from the subjects
	 * "group:<id> <topic>[<p>]" (topic names have no spaces). */
	json_array_foreach(facts, i, f) {
		const char *subj = nz(json_string_value(json_object_get(f, "subject")));
		const char *sp = strrchr(subj, ' ');
		json_t *b = json_object_get(f, "body");
		if (strncmp(subj, "group:", 6) || !sp)
			continue;
		const char *topic = nz(json_string_value(json_object_get(b, "topic")));
		char *id = km_strndup(subj + 6, (size_t)(sp - subj - 6));
		if (!in_wave(g, topic)) {
			/* The group's topics in another wave, for spans_waves. */
			json_t *o = json_object_get(others, id);
			if (!o)
				json_object_set_new(others, id, o = json_array());
			if (!wave_topic(g, topic) && !str_in(o, topic))
				json_array_append_new(o, json_string(topic));
			free(id);
			continue;
		}
		if (!(gr = json_object_get(groups, id))) {
			gr = json_pack("{s:i, s:i, s:i, s:n, s:n}", "partitions", 0, "untranslated", 0,
				       "exposed", 0, "first_bad", "last");
			json_object_set_new(groups, id, gr);
		}
		json_object_set_new(gr, "partitions",
				    json_integer(json_integer_value(json_object_get(gr, "partitions")) + 1));
		json_object_set(gr, "last", f);
		if (strcmp(nz(json_string_value(json_object_get(f, "verdict"))), "GO")) {
			json_object_set_new(gr, "untranslated",
					    json_integer(json_integer_value(json_object_get(gr, "untranslated")) + 1));
			if (json_is_null(json_object_get(gr, "first_bad")))
				json_object_set(gr, "first_bad", f);
		}
		if (json_integer_value(json_object_get(json_object_get(b, "aborted_after"), "ranges")) >
		    0) {
			json_object_set_new(gr, "exposed",
					    json_integer(json_integer_value(json_object_get(gr, "exposed")) + 1));
			if (json_is_null(json_object_get(gr, "first_bad")))
				json_object_set(gr, "first_bad", f);
		}
		free(id);
	}
	if (!json_object_size(groups))
		criterion(g, "offsets.groups", "declared + owner, proven, no aborted records exposed",
			  json_string("no group has commits on the wave's topics"),
			  from_run(run, NULL), g->owner, ok, why);
	json_object_foreach(groups, gid, gr) {
		const km_plan_group_t *pg = plan_group(g->plan, gid);
		km_plan_isolation_t iso = km_plan_group_isolation(g->plan, gid);
		long long parts = json_integer_value(json_object_get(gr, "partitions"));
		long long untr = json_integer_value(json_object_get(gr, "untranslated"));
		long long exp = json_integer_value(json_object_get(gr, "exposed"));
		bool exposed = exp > 0 && iso != KM_PLAN_ISOLATION_READ_COMMITTED;
		char name[300], *r = NULL;
		/* A group moves with the wave whose topics it commits on: its
		 * consumers then read its other topics on the target, where
		 * nothing committed their position yet (a cutover commits its
		 * own wave's partitions, and refuses a group live on the
		 * target). */
		json_t *ot = json_object_get(others, gid), *spans = json_array();
		size_t no = json_array_size(ot);
		const char **tv = km_calloc(no + 1, sizeof(*tv)), *other = NULL;
		const km_plan_wave_t *ow = NULL;
		for (size_t k = 0; k < no; k++)
			tv[k] = json_string_value(json_array_get(ot, k));
		err = spans_waves(g, tv, no, &auth, spans, &other, &ow);
		free(tv);
		if (err) {
			json_decref(spans);
			goto done;
		}
		snprintf(name, sizeof(name), "offsets.group:%s", gid);
		if (why)
			r = km_strdup(why);
		else if (!pg)
			r = km_asprintf("unknown: group '%s' has commits on the wave's topics but "
					"is not declared in consumer_groups (declare it with a "
					"restart policy and an owner)",
					gid);
		else if (!pg->owner)
			r = km_asprintf("group '%s' has no owner in consumer_groups: declare one",
					gid);
		else if (other)
			r = km_asprintf("group '%s' commits on topics of wave '%s' and on '%s' of "
					"%s%s%s, whose authority is still the source: once its "
					"consumers move to the target with this wave they read '%s' "
					"there without a committed position (its offsets move at its "
					"own wave's cutover, which refuses a group live on the "
					"target): put all topics group '%s' reads into one wave, or "
					"split the group into one per wave",
					gid, g->wave ? g->wave->name : "(every topic in scope)", other,
					ow ? "wave '" : "no wave", ow ? ow->name : "", ow ? "'" : "",
					other, gid);
		else if (untr)
			r = km_asprintf("%lld of %lld partition(s) not translated or not proven "
					"(let replicate catch up, run `kmigrate offsets` again)",
					untr, parts);
		else if (exposed)
			r = km_asprintf("%lld partition(s) hold kmigrate's aborted records after "
					"the translated position, and the group's consumers are "
					"not declared read_committed (%s)",
					exp, km_plan_isolation_str(iso));
		json_t *ev = json_object_get(gr, "first_bad");
		char pbuf[64];
		criterion(g, name,
			  "declared + owner, proven, no aborted records exposed",
			  json_pack("{s:b, s:s, s:I, s:I, s:I, s:s, s:o}", "declared", pg != NULL,
				    "restart",
				    pg ? km_plan_group_restart_str(pg, pbuf, sizeof(pbuf))
				       : "undeclared",
				    "partitions", (json_int_t)parts, "untranslated", (json_int_t)untr,
				    "aborted_exposed", (json_int_t)exp, "isolation_level",
				    km_plan_isolation_str(iso), "other_topics", spans),
			  from_run(run, json_is_null(ev) ? json_object_get(gr, "last") : ev),
			  pg && pg->owner ? pg->owner : NULL, !r, r);
		free(r);
	}
done:
	free(why);
	json_decref(groups);
	json_decref(others);
	json_decref(auth);
	json_decref(facts);
	json_decref(run);
	return err;
}

/* ---- rollback-ready --------------------------------------------------------------- */

/* The source principal's authorized operations on each wave topic
 * (DescribeTopics with include_authorized_operations): rollback copies the
 * target's new history back, so the source must still be readable and the
 * principal must be able to write the wave's topics.  Without an
 * authorizer Kafka reports every operation. */
static km_err_t gate_rollback(gctx_t *g)
{
	json_t *noread = json_array(), *nowrite = json_array(), *unknown = json_array();
	const char **names = km_calloc(json_array_size(g->topics) + 1, sizeof(*names));
	rd_kafka_event_t *ev = NULL;
	km_kafka_call_t call;
	char *r = NULL, *list = NULL;
	km_err_t err = KM_ERR_OK;
	size_t i, nn = 0, n = 0;
	json_t *t;

	json_array_foreach(g->topics, i, t)
		names[nn++] = json_string_value(json_object_get(t, "topic"));
	if (nn) {
		rd_kafka_TopicCollection_t *tc = rd_kafka_TopicCollection_of_topic_names(names, nn);
		km_kafka_call_begin(g->ks, RD_KAFKA_ADMIN_OP_DESCRIBETOPICS, 0, &call);
		rd_kafka_AdminOptions_set_include_authorized_operations(call.options, 1);
		rd_kafka_DescribeTopics(km_kafka_rk(g->ks), tc, call.options, call.q);
		err = km_kafka_call_wait(g->ks, &call, RD_KAFKA_EVENT_DESCRIBETOPICS_RESULT,
					 "DescribeTopics", &ev, g->errstr, g->errstr_size);
		rd_kafka_TopicCollection_destroy(tc);
		if (err)
			goto done;
		const rd_kafka_TopicDescription_t **td = rd_kafka_DescribeTopics_result_topics(
			rd_kafka_event_DescribeTopics_result(ev), &n);
		for (i = 0; i < nn; i++) {
			const rd_kafka_TopicDescription_t *d = NULL;
			for (size_t j = 0; j < n; j++)
				if (!strcmp(rd_kafka_TopicDescription_name(td[j]), names[i]))
					d = td[j];
			const rd_kafka_error_t *e = d ? rd_kafka_TopicDescription_error(d) : NULL;
			size_t nops = 0;
			const rd_kafka_AclOperation_t *ops =
				d && !e ? rd_kafka_TopicDescription_authorized_operations(d, &nops)
					: NULL;
			bool rd = false, wr = false;
			for (size_t k = 0; k < nops; k++) {
				rd = rd || ops[k] == RD_KAFKA_ACL_OPERATION_READ ||
				     ops[k] == RD_KAFKA_ACL_OPERATION_ALL;
				wr = wr || ops[k] == RD_KAFKA_ACL_OPERATION_WRITE ||
				     ops[k] == RD_KAFKA_ACL_OPERATION_ALL;
			}
			if (!d || e || !ops || !nops)
				json_array_append_new(unknown, json_string(names[i]));
			else {
				if (!rd)
					json_array_append_new(noread, json_string(names[i]));
				if (!wr)
					json_array_append_new(nowrite, json_string(names[i]));
			}
		}
	}
	/* The source readable: every partition's watermarks answered (read
	 * by load_live) and READ authorized. */
	bool no_state;
	if ((err = load_live(g, &no_state)))
		goto done;
	list = name_list(json_array_size(unknown) ? unknown : noread, 3);
	r = !nn ? km_strdup("unknown: the wave has no topic on the source")
	    : json_array_size(unknown)
		    ? km_asprintf("unknown: the source did not report the principal's rights on %s",
				  list)
	    : json_array_size(noread)
		    ? km_asprintf("the source principal may not READ %s: grant READ", list)
		    : NULL;
	criterion(g, "rollback.source_readable", "READ on every wave topic",
		  json_sprintf("%zu of %zu readable",
			       nn - json_array_size(noread) - json_array_size(unknown), nn),
		  live(g), g->plan->source.owner ? g->plan->source.owner : g->owner, !r, r);
	free(r);
	free(list);
	list = name_list(json_array_size(unknown) ? unknown : nowrite, 3);
	r = !nn ? km_strdup("unknown: the wave has no topic on the source")
	    : json_array_size(unknown)
		    ? km_asprintf("unknown: the source did not report the principal's rights on %s",
				  list)
	    : json_array_size(nowrite)
		    ? km_asprintf("the source principal may not WRITE %s, so rollback could not "
				  "copy the target's records back: grant WRITE",
				  list)
		    : NULL;
	criterion(g, "rollback.source_writable", "WRITE on every wave topic",
		  json_sprintf("%zu of %zu writable",
			       nn - json_array_size(nowrite) - json_array_size(unknown), nn),
		  live(g), g->plan->source.owner ? g->plan->source.owner : g->owner, !r, r);
	free(r);
	r = NULL;

	/* The fence: declared, and an external one has someone to apply it. */
	const km_plan_cutover_t *co = &g->plan->cutover;
	if (co->fence == KM_PLAN_FENCE_UNDECLARED)
		r = km_strdup("unknown: the plan declares no cutover.fence (acl, config or "
			      "external)");
	else if (co->fence == KM_PLAN_FENCE_EXTERNAL && !co->fence_owner)
		r = km_strdup("cutover.fence is external but no cutover.fence_owner applies it: "
			      "declare one");
	else if (co->fence == KM_PLAN_FENCE_CONFIG) {
		/* max.message.bytes=0 refuses transaction markers too: a
		 * transaction open when the fence lands could never end (its
		 * partitions' last stable offset stuck until a broker restart),
		 * so a wave a transactional producer writes cannot take it. */
		const km_plan_producer_t *tp = NULL;
		const char *tt = NULL;
		for (size_t k = 0; k < g->plan->producers_cnt && !tp; k++) {
			const km_plan_producer_t *p = &g->plan->producers[k];
			if (p->transactions != KM_PLAN_YES)
				continue;
			for (size_t m = 0; m < p->topics_cnt && !tp; m++)
				json_array_foreach(g->topics, i, t)
					if (!strcmp(json_string_value(json_object_get(t, "topic")),
						    p->topics[m])) {
						tp = p;
						tt = p->topics[m];
						break;
					}
		}
		if (tp)
			r = km_asprintf("cutover.fence is config but producer '%s' writes '%s' in "
					"transactions: max.message.bytes=0 refuses transaction "
					"markers, so a transaction open at the fence could never end; "
					"declare cutover.fence: acl or external",
					tp->name, tt);
	}
	criterion(g, "rollback.fence", "cutover.fence declared",
		  json_string(km_plan_fence_str(co->fence)), evidence(NULL, NULL, 0, "plan"),
		  co->fence_owner ? co->fence_owner : g->owner, !r, r);
done:
	free(r);
	free(list);
	free(names);
	if (ev)
		rd_kafka_event_destroy(ev);
	json_decref(noread);
	json_decref(nowrite);
	json_decref(unknown);
	return err;
}

/* ---- cutover ---------------------------------------------------------------------- */

/* A wave that names a topic the source inventory recognised as a Kafka
 * Connect worker's internal topic (lib/inventory.h) asks for a copy of the
 * worker's own state: the target worker would then read the source
 * worker's connector configs and offsets as its own, two workers sharing
 * one state.  The wave must not name it (an `all` wave leaves it out). */
static km_err_t gate_worker_topics(gctx_t *g, const json_t *run)
{
	json_t *facts = NULL, *f, *named = json_array();
	const json_t *first = NULL;
	char *list = NULL, *r = NULL;
	const char *role = NULL;
	km_err_t err;
	size_t i, k;

	if ((err = km_journal_facts(g->jr, json_integer_value(json_object_get(run, "id")),
				    "inventory.source.connect_internal", &facts, g->errstr,
				    g->errstr_size)))
		goto done;
	for (k = 0; k < g->wave->topics_cnt; k++)
		json_array_foreach(facts, i, f) {
			const char *subj = nz(json_string_value(json_object_get(f, "subject")));
			if (strncmp(subj, "topic:", 6) || strcmp(subj + 6, g->wave->topics[k].name))
				continue;
			if (!first) {
				first = f;
				role = json_string_value(
					json_object_get(json_object_get(f, "body"), "role"));
			}
			json_array_append_new(named, json_string(g->wave->topics[k].name));
		}
	list = name_list(named, 3);
	if (json_array_size(named))
		r = km_asprintf("wave '%s' names %s, a Kafka Connect worker's internal topic "
				"(%s, recognised by the source inventory): a copy would make the "
				"target worker share the source worker's config and offset state: "
				"remove it from the wave's topics (the target worker keeps its own)",
				g->wave->name, list, role ? role : "?");
	criterion(g, "cutover.worker_topics", "no Connect worker internal topic in the wave",
		  json_sprintf("%zu named", json_array_size(named)), from_run(run, first),
		  g->owner, !r, r);
done:
	free(list);
	free(r);
	json_decref(named);
	json_decref(facts);
	return err;
}

static km_err_t gate_inventory(gctx_t *g)
{
	json_t *run = NULL, *facts = NULL, *f, *open = json_array();
	const json_t *first = NULL;
	char *why = NULL, *list = NULL, *r = NULL;
	km_err_t err;
	size_t i;

	if ((err = km_journal_last_run(g->jr, "inventory", 1, "inventory.source.risk", &run,
				       g->errstr, g->errstr_size)))
		goto done;
	if (!run) {
		criterion(g, "cutover.inventory", "every item has an owner and a validation method",
			  NULL, NULL, g->owner, false,
			  "unknown: no inventory of the source in the journal (run `kmigrate "
			  "inventory`)");
		goto done;
	}
	bool ok = fresh(g, run_ts(run), "inventory", &why);
	if ((err = km_journal_facts(g->jr, json_integer_value(json_object_get(run, "id")),
				    "inventory.source.finding", &facts, g->errstr, g->errstr_size)))
		goto done;
	json_array_foreach(facts, i, f) {
		const char *pb = nz(json_string_value(json_object_get(json_object_get(f, "body"),
								       "problem")));
		if (strstr(pb, "no owner") || strstr(pb, "no validation")) {
			if (!first)
				first = f;
			json_array_append(open, json_object_get(f, "subject"));
		}
	}
	list = name_list(open, 3);
	if (!why && json_array_size(open))
		r = km_asprintf("%zu inventory finding(s) about owners or validation methods: %s",
				json_array_size(open), list);
	criterion(g, "cutover.inventory", "every item has an owner and a validation method",
		  json_sprintf("%zu open", json_array_size(open)), from_run(run, first), g->owner,
		  ok && !r, why ? why : r);
	if (g->wave && g->wave->topics_cnt > 0)
		err = gate_worker_topics(g, run);
done:
	free(why);
	free(list);
	free(r);
	json_decref(open);
	json_decref(facts);
	json_decref(run);
	return err;
}

static bool wave_lists(const km_plan_wave_t *w, const char *producer)
{
	for (size_t i = 0; i < w->producers_cnt; i++)
		if (!strcmp(w->producers[i].name, producer))
			return true;
	return false;
}

/* Why producer p writing `wt` of this wave (or NULL: it is only listed)
 * and `other` (see spans_waves) cannot move with this wave (owned). */
static char *span_reason(const gctx_t *g, const km_plan_producer_t *p, bool listed,
			 const char *wt, const char *other, const km_plan_wave_t *ow)
{
	const char *wn = g->wave ? g->wave->name : "(every topic in scope)";
	char *here = wt ? km_asprintf("writes '%s' of wave '%s'", wt, wn)
			: km_asprintf("moves with wave '%s'", wn);
	char *fence = NULL, *r;

	if (!km_plan_topic_in_scope(g->plan, other)) {
		r = km_asprintf("producer '%s' %s and also writes '%s', which is outside the "
				"migration's scope: at this cutover '%s' moves to the target (it can "
				"point at one cluster only), where '%s' is neither created nor "
				"replicated, so those writes fail or auto-create an empty topic; bring "
				"'%s' into scope and into wave '%s', or split producer '%s' so that "
				"the writer of '%s' keeps its own cluster",
				p->name, here, other, p->name, other, other, wn, p->name, other);
		free(here);
		return r;
	}
	/* The ACL fence denies WRITE on the transactional ids of the
	 * producers the wave lists (lib/fence.c): a transaction is refused
	 * whatever topics it holds, so the writes to the other wave's topics
	 * fail on the source too. */
	if (p->transactional_id)
		fence = listed && g->plan->cutover.fence == KM_PLAN_FENCE_ACL
				? km_asprintf("; the ACL fence would deny its transactional id '%s' "
					      "on the source, so its transactions fail there for "
					      "'%s' as well as for this wave's topics",
					      p->transactional_id, other)
				: km_asprintf(" (transactional id '%s')", p->transactional_id);
	r = km_asprintf("producer '%s' %s and '%s' of %s%s%s, whose authority is still the "
			"source: at this cutover '%s' moves to the target (it can point at one "
			"cluster only), where '%s' is not authoritative yet%s: put all topics "
			"producer '%s' writes into one wave, or split the producer into one per "
			"wave with its own transactional.id",
			p->name, here, other, ow ? "wave '" : "no wave", ow ? ow->name : "",
			ow ? "'" : "", p->name, other, fence ? fence : "", p->name);
	free(here);
	free(fence);
	return r;
}

/* The producers that write the wave's topics (the plan's `producers[].topics`)
 * or move with it: each must move with the wave (a producer left behind
 * keeps writing to a fenced source), must write nothing the target is not
 * yet the authority for (spans_waves), and where a topic's rule says
 * `duplicates: none` it must be declared idempotent -- undeclared is
 * unknown, so NO-GO: a retried write after the switch could duplicate. */
static km_err_t gate_producers(gctx_t *g)
{
	json_t *auth = NULL;
	km_err_t err = KM_ERR_OK;

	for (size_t i = 0; i < g->plan->producers_cnt; i++) {
		const km_plan_producer_t *p = &g->plan->producers[i];
		bool listed = g->wave && wave_lists(g->wave, p->name);
		const char *wt = NULL, *dup = NULL, *other = NULL;
		const km_plan_wave_t *ow = NULL;
		char name[300], *r = NULL;
		json_t *spans;

		for (size_t t = 0; t < p->topics_cnt; t++) {
			if (!in_wave(g, p->topics[t]))
				continue;
			if (!wt)
				wt = p->topics[t];
			const km_plan_rule_t *rule = km_plan_topic_rule(g->plan, p->topics[t]);
			if (!dup && rule && rule->duplicates == KM_PLAN_DUPLICATES_NONE &&
			    p->idempotence != KM_PLAN_YES)
				dup = p->topics[t];
		}
		if (!wt && !listed)
			continue;
		spans = json_array();
		if ((err = spans_waves(g, (const char *const *)p->topics, p->topics_cnt, &auth, spans,
				       &other, &ow))) {
			json_decref(spans);
			break;
		}
		if (other)
			r = span_reason(g, p, listed, wt, other, ow);
		else if (g->wave && !listed)
			r = km_asprintf("producer '%s' writes '%s' of this wave but is not in the "
					"wave's producers: it would keep writing to the fenced "
					"source (add it to the wave)",
					p->name, wt);
		else if (dup && p->idempotence == KM_PLAN_UNSET)
			r = km_asprintf("unknown: producer '%s' does not declare idempotence and "
					"topic '%s' says duplicates: none (declare idempotence)",
					p->name, dup);
		else if (dup)
			r = km_asprintf("producer '%s' is not idempotent and topic '%s' says "
					"duplicates: none",
					p->name, dup);
		snprintf(name, sizeof(name), "cutover.producer:%s", p->name);
		criterion(g, name,
			  "moves with the wave; writes no topic the target is not the authority "
			  "for; idempotent where duplicates: none",
			  json_pack("{s:b, s:s, s:o}", "in_wave", listed || !g->wave, "idempotence",
				    km_plan_tri_str(p->idempotence), "other_topics", spans),
			  read_auth(spans) ? live(g) : evidence(NULL, NULL, 0, "plan"),
			  p->owner ? p->owner : g->owner, !r, r);
		free(r);
	}
	json_decref(auth);
	return err;
}

typedef km_err_t (*gate_fn_t)(gctx_t *g);

static const struct {
	const char *name;
	gate_fn_t fn;
} gates[] = {
	{"design", gate_design},
	{"compatibility", gate_compatibility},
	{"replication", gate_replication},
	{"validation", gate_validation},
	{"offsets", gate_offsets},
	{"rollback-ready", gate_rollback},
};
#define NGATES (sizeof(gates) / sizeof(gates[0]))

static km_err_t gate_cutover(gctx_t *g)
{
	km_err_t err;

	for (size_t i = 0; i < NGATES; i++) {
		g->gate = gates[i].name;
		if ((err = gates[i].fn(g)))
			return err;
	}
	g->gate = "cutover";
	if ((err = gate_inventory(g)))
		return err;
	if ((err = gate_producers(g)))
		return err;
	/* Someone decides GO: the wave's owner or the target's. */
	criterion(g, "cutover.owner", "an owner for the wave (wave owner or target.owner)",
		  g->owner ? json_string(g->owner) : NULL, evidence(NULL, NULL, 0, "plan"),
		  g->owner, g->owner != NULL,
		  g->owner ? NULL
			   : "unknown: nobody owns this cutover: declare the wave's owner or "
			     "target.owner");
	return KM_ERR_OK;
}

km_err_t km_gate_eval(const km_plan_t *plan, km_journal_t *jr, km_kafka_t *ks, km_kafka_t *kt,
		      const char *name, const char *wave, int64_t now_ms, json_t **reportp,
		      char *errstr, size_t errstr_size)
{
	gctx_t g = {0};
	gate_fn_t fn = NULL;
	json_t *c;
	bool go = true;
	char when[40];
	km_err_t err;
	size_t i;

	*reportp = NULL;
	for (i = 0; i < NGATES; i++)
		if (!strcmp(gates[i].name, name))
			fn = gates[i].fn;
	if (!strcmp(name, "cutover"))
		fn = gate_cutover;
	if (!fn)
		return km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
				 "unknown gate '%s': use design, compatibility, replication, "
				 "validation, offsets, rollback-ready or cutover",
				 name);
	g.plan = plan;
	if (wave && !(g.wave = km_plan_wave(plan, wave)))
		return km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
				 "no wave '%s' in the plan's cutover.waves: declare it, or leave "
				 "out --wave to gate every topic in scope",
				 wave);
	g.jr = jr;
	g.ks = ks;
	g.kt = kt;
	g.now = now_ms;
	g.gate = name;
	g.owner = g.wave && g.wave->owner ? g.wave->owner : plan->target.owner;
	g.topics = json_array();
	g.hidden = json_array();
	g.criteria = json_array();
	g.errstr = errstr;
	g.errstr_size = errstr_size;
	if ((err = load_topics(&g)) || (err = fn(&g)))
		goto done;
	json_array_foreach(g.criteria, i, c)
		go = go && !strcmp(json_string_value(json_object_get(c, "verdict")), "GO");
	/* A gate without a single criterion measured nothing. */
	go = go && json_array_size(g.criteria) > 0;
	km_iso8601(now_ms, when, sizeof(when));
	*reportp = json_pack("{s:s, s:o, s:s, s:s, s:s, s:O, s:O}", "gate", name, "wave",
			     wave ? json_string(wave) : json_null(), "migration", plan->migration,
			     "verdict", go ? "GO" : "NO-GO", "evaluated_at", when, "topics",
			     g.topics, "criteria", g.criteria);
done:
	free(g.parts);
	json_decref(g.topics);
	json_decref(g.hidden);
	json_decref(g.criteria);
	return err;
}
