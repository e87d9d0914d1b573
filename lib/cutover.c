/*
 * cutover.c -- the wave cutover step machine (see cutover.h and
 * docs/internals/cutover.md).
 *
 * The journal is the state: a step is done when its "cutover.step" fact
 * exists, and nothing else is remembered between runs.  Each fact is
 * committed on its own, so a process killed at any moment leaves the
 * journal at a step boundary (SQLite's transaction), and the cluster
 * changes of a step are idempotent, so redoing an unjournaled step is safe.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "connect.h"
#include "cutover.h"
#include "fence.h"
#include "gate.h"
#include "guard.h"
#include "mapstore.h"
#include "offsets.h"
#include "rollback.h"
#include "util.h"
#include "validate.h"

const char *const km_cutover_steps[] = {"gate",	   "stop-connectors", "fence",
					"drain",   "validate",	      "offsets",
					"authority", "connectors",    "switch",
					NULL};

#define DRAIN_TIMEOUT_MS 300000
#define POLL_MS 500

typedef struct cpart_s {
	const char *topic; /* borrowed from ctx->topics */
	int partition;
	int64_t hwm, lso, next;
	/* [next, hwm) holds nothing a read_committed reader gets (markers,
	 * aborted records): nothing there is left to copy. */
	bool tail_empty;
} cpart_t;

typedef struct ctx_s {
	const km_cutover_conf_t *c;
	int64_t run_id;     /* 0 until the first fact (dry runs: never) */
	json_t *done;       /* step name -> its fact */
	json_t *fence_fact; /* the journaled fence plan, or NULL */
	json_t *topics;     /* [{"topic", "partitions"}] of the wave (from the gate) */
	json_t *steps;      /* result rows */
	char *errstr;
	size_t errstr_size;
} ctx_t;

void km_step_event(const char *wave, json_t *rows, void (*cb)(void *, const json_t *),
		   void *opaque, const char *step, const char *state, json_int_t fact_id,
		   const json_t *evidence, const char *reason)
{
	json_t *ev = json_pack("{s:s, s:s, s:s, s:s}", "event", "step", "wave", wave, "step",
			       step, "state", state);
	if (fact_id)
		json_object_set_new(ev, "fact_id", json_integer(fact_id));
	if (evidence)
		json_object_set(ev, "evidence", (json_t *)evidence);
	if (reason)
		json_object_set_new(ev, "reason", json_string(reason));
	if (strcmp(state, "start"))
		json_array_append_new(rows, json_pack("{s:s, s:s}", "step", step, "state", state));
	if (cb)
		cb(opaque, ev);
	json_decref(ev);
}

static void emit(ctx_t *x, const char *step, const char *state, json_int_t fact_id,
		 const json_t *evidence, const char *reason)
{
	km_step_event(x->c->wave, x->steps, x->c->event_cb, x->c->opaque, step, state, fact_id,
		      evidence, reason);
}

/* The run row is written with the first fact, so that a refusal before any
 * work (an unknown wave) leaves no run behind. */
static km_err_t ensure_run(ctx_t *x)
{
	if (x->run_id)
		return KM_ERR_OK;
	return km_journal_run_begin(x->c->jr, "cutover", x->c->args, &x->run_id, x->errstr,
				    x->errstr_size);
}

/* Commits one fact in its own transaction: the step boundary a crash can
 * leave.  @returns the fact's id in *idp (the latest fact's id). */
static km_err_t journal_fact(ctx_t *x, const char *kind, const char *subject,
			     const char *verdict, const json_t *body, json_int_t *idp)
{
	json_t *facts = NULL;
	km_err_t err;

	if ((err = km_journal_begin(x->c->jr, x->errstr, x->errstr_size)))
		return err;
	if ((err = ensure_run(x)) ||
	    (err = km_journal_fact(x->c->jr, x->run_id, kind, subject, verdict, body, x->errstr,
				   x->errstr_size)) ||
	    (err = km_journal_commit(x->c->jr, x->errstr, x->errstr_size))) {
		km_journal_rollback(x->c->jr);
		return err;
	}
	/* The id, for the event: the newest fact of this run and kind. */
	if (idp && !(err = km_journal_facts(x->c->jr, x->run_id, kind, &facts, x->errstr,
					   x->errstr_size)))
		*idp = json_integer_value(
			json_object_get(json_array_get(facts, json_array_size(facts) - 1), "id"));
	json_decref(facts);
	return err;
}

static km_err_t step_done(ctx_t *x, const char *step, const json_t *evidence)
{
	char subj[400];
	json_int_t id = 0;
	km_err_t err;

	snprintf(subj, sizeof(subj), "wave:%s step:%s", x->c->wave, step);
	if ((err = journal_fact(x, "cutover.step", subj, "DONE", evidence, &id)))
		return err;
	json_object_set_new(x->done, step, json_pack("{s:I, s:O}", "id", id, "body", evidence));
	emit(x, step, "done", id, evidence, NULL);
	return KM_ERR_OK;
}

km_err_t km_cutover_reset_id(km_journal_t *jr, const char *w, json_int_t *idp, char *errstr,
			     size_t errstr_size)
{
	json_t *facts = NULL, *f;
	char subj[400];
	km_err_t err;
	size_t i;

	*idp = 0;
	snprintf(subj, sizeof(subj), "wave:%s", w);
	if ((err = km_journal_facts(jr, 0, "cutover.reset", &facts, errstr, errstr_size)))
		return err;
	json_array_foreach(facts, i, f)
		if (!strcmp(json_string_value(json_object_get(f, "subject")), subj))
			*idp = json_integer_value(json_object_get(f, "id"));
	json_decref(facts);
	return KM_ERR_OK;
}

km_err_t km_cutover_load(km_journal_t *jr, const char *w, json_t **donep, json_t **fencep,
			 char *errstr, size_t errstr_size)
{
	json_t *facts = NULL, *f, *done = json_object();
	char prefix[400], fsubj[400];
	json_int_t after;
	km_err_t err;
	size_t i;

	snprintf(prefix, sizeof(prefix), "wave:%s step:", w);
	snprintf(fsubj, sizeof(fsubj), "wave:%s", w);
	if ((err = km_cutover_reset_id(jr, w, &after, errstr, errstr_size)) ||
	    (err = km_journal_facts(jr, 0, "cutover.step", &facts, errstr, errstr_size)))
		goto done;
	json_array_foreach(facts, i, f) {
		const char *s = json_string_value(json_object_get(f, "subject"));
		if (json_integer_value(json_object_get(f, "id")) > after && s &&
		    !strncmp(s, prefix, strlen(prefix)) && !json_object_get(done, s + strlen(prefix)))
			json_object_set(done, s + strlen(prefix), f);
	}
	json_decref(facts);
	facts = NULL;
	if (fencep) {
		*fencep = NULL;
		if ((err = km_journal_facts(jr, 0, "cutover.fence", &facts, errstr, errstr_size)))
			goto done;
		/* The first journaled plan of the attempt is the one applied: a
		 * later run never journals another while one exists. */
		json_array_foreach(facts, i, f)
			if (!*fencep && json_integer_value(json_object_get(f, "id")) > after &&
			    !strcmp(json_string_value(json_object_get(f, "subject")), fsubj))
				*fencep = json_incref(f);
	}
done:
	json_decref(facts);
	if (err)
		json_decref(done);
	else
		*donep = done;
	return err;
}

static km_err_t load_done(ctx_t *x, const char *w, json_t **donep, json_t **fencep)
{
	return km_cutover_load(x->c->jr, w, donep, fencep, x->errstr, x->errstr_size);
}

/* ---- gate ------------------------------------------------------------------------ */

static km_err_t do_gate(ctx_t *x)
{
	const km_cutover_conf_t *c = x->c;
	json_t *rep = NULL, *prev = NULL;
	km_err_t err;

	/* Waves are cut over in plan order: every earlier wave complete. */
	for (size_t i = 0; i < c->plan->cutover.waves_cnt; i++) {
		const char *w = c->plan->cutover.waves[i].name;
		if (!strcmp(w, c->wave))
			break;
		if ((err = load_done(x, w, &prev, NULL)))
			return err;
		bool complete = json_object_get(prev, KM_CUTOVER_LAST_STEP) != NULL;
		json_decref(prev);
		if (!complete) {
			err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
					"cannot cut over wave '%s': the earlier wave '%s' is not "
					"complete (run `kmigrate cutover --wave %s` first)",
					c->wave, w, w);
			emit(x, "gate", "nogo", 0, NULL, x->errstr);
			return err;
		}
	}
	if ((err = km_gate_eval(c->plan, c->jr, c->ks, c->kt, "cutover", c->wave, km_now_ms(),
				&rep, x->errstr, x->errstr_size)))
		return err;
	json_t *topics = json_object_get(rep, "topics");
	bool go = !strcmp(json_string_value(json_object_get(rep, "verdict")), "GO");
	if (c->dry_run) {
		x->topics = json_incref(topics);
		emit(x, "gate", go ? "would" : "nogo", 0, rep,
		     go ? NULL : "gate cutover is NO-GO (see `kmigrate gate cutover --wave`)");
		json_decref(rep);
		return go ? KM_ERR_OK
			  : km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
				      "gate 'cutover' for wave '%s' is NO-GO: nothing changed "
				      "(see `kmigrate gate cutover --wave %s`)",
				      c->wave, c->wave);
	}
	if (!go) {
		char subj[300];
		/* The verdict is evidence too, as `gate` journals it; nothing
		 * else is written and no cluster is touched. */
		snprintf(subj, sizeof(subj), "wave:%s", c->wave);
		if (!(err = journal_fact(x, "gate.cutover", subj, "NO-GO", rep, NULL)))
			err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
					"gate 'cutover' for wave '%s' is NO-GO: nothing changed "
					"(see `kmigrate gate cutover --wave %s`)",
					c->wave, c->wave);
		emit(x, "gate", "nogo", 0, rep, x->errstr);
		json_decref(rep);
		return err;
	}
	if (!json_array_size(topics)) {
		json_decref(rep);
		return km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
				 "wave '%s' has no topic on the source: nothing to cut over",
				 c->wave);
	}
	x->topics = json_incref(topics);
	err = step_done(x, "gate", rep);
	json_decref(rep);
	return err;
}

/* ---- fence ----------------------------------------------------------------------- */

static km_err_t do_fence(ctx_t *x)
{
	const km_cutover_conf_t *c = x->c;
	json_t *plan = NULL, *inverse = NULL, *proof = NULL, *ev = NULL;
	const char **names = NULL;
	size_t i, n = 0;
	json_t *t;
	km_err_t err = KM_ERR_OK;

	if (c->plan->cutover.fence == KM_PLAN_FENCE_EXTERNAL) {
		/* kmigrate changes nothing: the owner's fence is proven by the
		 * drain's quiet check alone. */
		ev = json_pack("{s:s, s:s?, s:s}", "kind", "external", "owner",
			       c->plan->cutover.fence_owner, "responsibility",
			       "the external fence's owner stops every write to the wave's source "
			       "topics; kmigrate proves it only by the drain's quiet check");
		if (c->dry_run)
			emit(x, "fence", "would", 0, ev, NULL);
		else
			err = step_done(x, "fence", ev);
		goto done;
	}
	if (x->fence_fact) {
		/* A crash after the plan was journaled: apply THAT plan.  A fresh
		 * plan on a half-fenced topic could not know what was there
		 * before, and its inverse would be wrong. */
		plan = json_incref(json_object_get(x->fence_fact, "body"));
	} else {
		names = km_calloc(json_array_size(x->topics) + 1, sizeof(*names));
		json_array_foreach(x->topics, i, t)
			names[n++] = json_string_value(json_object_get(t, "topic"));
		/* The config fence refuses transaction markers: the wave's
		 * transactional producers (the plan's) make it a refusal, named
		 * by their transactional.id, else by the producer's name (the
		 * gate says NO-GO first; this holds if the plan changed since). */
		const char *txns[64];
		size_t ntxns = 0;
		for (size_t k = 0; k < c->plan->producers_cnt && ntxns < 64; k++) {
			const km_plan_producer_t *pp = &c->plan->producers[k];
			bool writes = false;
			for (size_t m = 0; m < pp->topics_cnt && !writes; m++)
				for (size_t q = 0; q < n && !writes; q++)
					writes = !strcmp(pp->topics[m], names[q]);
			if (writes && pp->transactions == KM_PLAN_YES)
				txns[ntxns++] = pp->transactional_id ? pp->transactional_id : pp->name;
		}
		if (c->plan->cutover.fence == KM_PLAN_FENCE_ACL) {
			/* The writers come from the latest source inventory,
			 * checked against the ACLs now (lib/fence.c). */
			json_t *inv = NULL;
			if (!(err = km_journal_snapshot_get(c->jr, "inventory", "source", 0, &inv,
							    NULL, x->errstr, x->errstr_size)))
				err = km_fence_acl_cutover_plan(c->ks, c->plan, c->wave, names, n,
								inv, &ev, x->errstr,
								x->errstr_size);
			json_decref(inv);
			if (err == KM_ERR_NOT_FOUND)
				err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
						"no source inventory in the journal: the ACL fence's "
						"writers are unknown (run `kmigrate inventory`)");
		} else if (!(err = km_fence_plan(c->ks, names, n, NULL, 0, txns, ntxns, "config",
						 NULL, &plan, x->errstr, x->errstr_size)) &&
			   !(err = km_fence_inverse(plan, &inverse, x->errstr, x->errstr_size))) {
			ev = json_pack("{s:O, s:O}", "plan", plan, "inverse", inverse);
		}
		if (err) {
			if (err == KM_ERR_NOGO)
				emit(x, "fence", "nogo", 0, NULL, x->errstr);
			goto done;
		}
		json_decref(plan);
		plan = json_incref(ev);
		if (c->dry_run) {
			emit(x, "fence", "would", 0, ev, NULL);
			goto done;
		}
		/* The plan and its exact inverse go to the journal before the
		 * cluster changes: a crash from here on can always be undone. */
		char subj[300];
		json_int_t id = 0;
		snprintf(subj, sizeof(subj), "wave:%s", c->wave);
		if ((err = journal_fact(x, "cutover.fence", subj, "INFO", ev, &id)))
			goto done;
		json_t *je = json_pack("{s:s, s:s, s:s, s:I}", "event", "journaled", "wave", c->wave,
				       "what", "fence-plan", "fact_id", id);
		if (c->event_cb)
			c->event_cb(c->opaque, je);
		json_decref(je);
		json_decref(ev);
		ev = NULL;
	}
	if (c->dry_run) {
		ev = json_pack("{s:O, s:b}", "plan", plan, "journaled", 1);
		emit(x, "fence", "would", 0, ev, NULL);
		goto done;
	}
	emit(x, "fence", "start", 0, NULL, NULL);
	/* plan is the journaled document: {plan, inverse, ...}. */
	err = km_fence_doc_enforce(c->ks, c->src, c->plan, plan, "fence", &proof, x->errstr,
				   x->errstr_size);
	if (err == KM_ERR_NOGO) {
		emit(x, "fence", "nogo", 0, proof, x->errstr);
		goto done;
	}
	if (err)
		goto done;
	ev = json_pack("{s:s, s:O, s:O?}", "kind", km_plan_fence_str(c->plan->cutover.fence),
		       "proof", proof, "super_users_cover",
		       json_object_get(plan, "super_users_cover"));
	err = step_done(x, "fence", ev);
done:
	free(names);
	json_decref(plan);
	json_decref(inverse);
	json_decref(proof);
	json_decref(ev);
	return err;
}

/* ---- drain ----------------------------------------------------------------------- */

/* HWM (ListOffsets read_uncommitted) and LSO (read_committed) of every
 * partition. */
static km_err_t read_ends(ctx_t *x, cpart_t *ps, size_t n)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
	km_err_t err;

	for (size_t i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, ps[i].topic, ps[i].partition);
	if (!(err = km_kafka_list_offsets(x->c->ks, l, KM_KAFKA_HWM, x->errstr, x->errstr_size)))
		for (size_t i = 0; i < n; i++)
			ps[i].hwm = l->elems[i].offset;
	if (!err &&
	    !(err = km_kafka_list_offsets(x->c->ks, l, KM_KAFKA_LSO, x->errstr, x->errstr_size)))
		for (size_t i = 0; i < n; i++)
			ps[i].lso = l->elems[i].offset;
	rd_kafka_topic_partition_list_destroy(l);
	return err;
}

static km_err_t read_progress(ctx_t *x, cpart_t *ps, size_t n)
{
	km_mapstore_names_t names;
	km_mapstore_t *ms = NULL;
	km_err_t err;

	km_mapstore_names(x->c->plan->migration, NULL, &names);
	err = km_mapstore_read_progress_all(km_kafka_endpoint(x->c->kt), names.progress, &ms,
					    x->errstr, x->errstr_size);
	if (err == KM_ERR_NOT_FOUND) {
		for (size_t i = 0; i < n; i++)
			ps[i].next = -1;
		return KM_ERR_OK;
	}
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		const km_mapstore_progress_t *p = km_mapstore_progress(ms, ps[i].topic, ps[i].partition);
		ps[i].next = p ? p->next : -1;
	}
	km_mapstore_destroy(ms);
	return KM_ERR_OK;
}

/* For each partition whose replicated progress stops short of its HWM:
 * whether [next, hwm) on the source holds any record a read_committed
 * reader gets.  The replicator's committed progress moves with the records
 * it copies, so it never passes a log's trailing control records (the
 * commit marker that ends every transaction) or aborted records: such a
 * tail is copied in full though `next` < HWM.  Data there is really not
 * copied yet. */
static km_err_t read_tails(ctx_t *x, cpart_t *ps, size_t n)
{
	/* A group id only because librdkafka's assign needs one: nothing
	 * joins or commits. */
	const char *extra[] = {"group.id", "kmigrate-drain", "enable.partition.eof", "true",
			       "isolation.level", "read_committed", "enable.auto.commit", "false",
			       NULL};
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n + 1);
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk = NULL;
	bool *open = km_calloc(n + 1, sizeof(*open)); /* probed, no answer yet */
	char rerr[512];
	size_t i, left = 0;
	km_err_t err = KM_ERR_OK;

	for (i = 0; i < n; i++) {
		ps[i].tail_empty = false;
		if (ps[i].next >= 0 && ps[i].next < ps[i].hwm) {
			rd_kafka_topic_partition_list_add(l, ps[i].topic, ps[i].partition)->offset =
				ps[i].next;
			open[i] = true;
			left++;
		}
	}
	if (!left)
		goto done;
	if ((err = km_kafka_conf_new(x->c->src, extra, &conf, x->errstr, x->errstr_size)))
		goto done;
	if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_KAFKA,
				"cannot create the drain's reader on the source: %s", rerr);
		goto done;
	}
	rd_kafka_poll_set_consumer(rk);
	rd_kafka_resp_err_t aerr = rd_kafka_assign(rk, l);
	if (aerr) {
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_KAFKA,
				"cannot assign the drain's reader on the source: %s",
				rd_kafka_err2str(aerr));
		goto done;
	}
	int64_t deadline = km_mono_ms() + KM_KAFKA_TIMEOUT_MS;
	while (left > 0) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		if (km_mono_ms() > deadline) {
			if (m)
				rd_kafka_message_destroy(m);
			err = km_seterr(x->errstr, x->errstr_size, KM_ERR_TIMEOUT,
					"reading the source's uncopied tail of wave '%s' did not reach "
					"its end in %d ms (re-run to resume at the drain)",
					x->c->wave, KM_KAFKA_TIMEOUT_MS);
			goto done;
		}
		if (!m)
			continue;
		for (i = 0; i < n; i++) {
			cpart_t *p = &ps[i];
			if (!open[i] || !m->rkt || strcmp(rd_kafka_topic_name(m->rkt), p->topic) ||
			    m->partition != p->partition)
				continue;
			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && m->offset >= p->hwm) {
				/* The end, and no record before it: only markers
				 * and aborted records lay there. */
				p->tail_empty = true;
				open[i] = false;
				left--;
			} else if (!m->err && m->offset < p->hwm) {
				/* A record the replicator has yet to copy. */
				open[i] = false;
				left--;
			} else if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				err = km_seterr(x->errstr, x->errstr_size, KM_ERR_KAFKA,
						"reading '%s'[%d] on the source failed: %s", p->topic,
						p->partition, rd_kafka_message_errstr(m));
			}
		}
		rd_kafka_message_destroy(m);
		if (err)
			goto done;
	}
done:
	free(open);
	if (rk) {
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	rd_kafka_topic_partition_list_destroy(l);
	return err;
}

static km_err_t do_drain(ctx_t *x)
{
	const km_cutover_conf_t *c = x->c;
	int64_t quiet_ms = c->plan->cutover.quiet_period * 1000;
	int timeout = c->drain_timeout_ms > 0 ? c->drain_timeout_ms : DRAIN_TIMEOUT_MS;
	int64_t deadline = km_mono_ms() + timeout, still_since = 0;
	cpart_t *ps = NULL, *prev = NULL;
	json_t *t, *ev = NULL;
	size_t n = 0, i;
	km_err_t err = KM_ERR_OK;
	const char *waiting = "the first reading";

	json_array_foreach(x->topics, i, t) {
		int np = (int)json_integer_value(json_object_get(t, "partitions"));
		ps = km_realloc(ps, (n + (size_t)np + 1) * sizeof(*ps));
		for (int p = 0; p < np; p++)
			ps[n++] = (cpart_t){json_string_value(json_object_get(t, "topic")), p, -1, -1,
					    -1, false};
	}
	prev = km_calloc(n + 1, sizeof(*prev));
	if (c->dry_run) {
		ev = json_pack("{s:I, s:s}", "quiet_period_s", (json_int_t)c->plan->cutover.quiet_period,
			       "would", "wait until every wave partition has LSO == HWM, the HWMs "
				        "stay still for the quiet period and the replicator's "
				        "committed progress reaches them; changes nothing");
		emit(x, "drain", "would", 0, ev, NULL);
		goto done;
	}
	emit(x, "drain", "start", 0, NULL, NULL);
	for (;;) {
		if ((err = read_ends(x, ps, n)))
			goto done;
		bool same = still_since > 0, open = false;
		for (i = 0; i < n; i++) {
			same = same && ps[i].hwm == prev[i].hwm;
			open = open || ps[i].lso < ps[i].hwm;
		}
		if (!same) {
			/* Any movement restarts the quiet period. */
			still_since = km_mono_ms();
			memcpy(prev, ps, n * sizeof(*ps));
			waiting = "the high watermarks to stay still";
		} else if (open) {
			waiting = "open transactions to end (LSO < HWM)";
		} else if (km_mono_ms() - still_since >= quiet_ms) {
			if ((err = read_progress(x, ps, n)) || (err = read_tails(x, ps, n)))
				goto done;
			bool copied = true;
			for (i = 0; i < n; i++)
				copied = copied && (ps[i].next >= ps[i].hwm || ps[i].tail_empty);
			if (copied)
				break;
			waiting = "the replicator's committed progress to reach the high "
				  "watermarks (is `kmigrate replicate` running?)";
		}
		if ((c->stop && *c->stop) || km_mono_ms() > deadline) {
			err = km_seterr(x->errstr, x->errstr_size, c->stop && *c->stop ? KM_ERR_TIMEOUT : KM_ERR_NOGO,
					"wave '%s' did not drain %s: still waiting for %s (re-run "
					"to resume at the drain)",
					c->wave, c->stop && *c->stop ? "(stopped)" : "in time", waiting);
			emit(x, "drain", "nogo", 0, NULL, x->errstr);
			goto done;
		}
		poll(NULL, 0, POLL_MS);
	}
	json_t *parts = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(parts, json_pack("{s:s, s:i, s:I, s:I, s:I, s:I}", "topic",
						       ps[i].topic, "partition", ps[i].partition,
						       "hwm", (json_int_t)ps[i].hwm, "lso",
						       (json_int_t)ps[i].lso, "replicated",
						       (json_int_t)ps[i].next, "tail_without_data",
						       (json_int_t)(ps[i].tail_empty
									    ? ps[i].hwm - ps[i].next
									    : 0)));
	ev = json_pack("{s:o, s:I}", "partitions", parts, "quiet_period_s",
		       (json_int_t)c->plan->cutover.quiet_period);
	err = step_done(x, "drain", ev);
done:
	json_decref(ev);
	free(ps);
	free(prev);
	return err;
}

/* The wave's source topic names (from the gate), a new JSON array. */
static json_t *topic_names(const ctx_t *x)
{
	json_t *names = json_array(), *t;
	size_t i;

	json_array_foreach(x->topics, i, t)
		json_array_append(names, json_object_get(t, "topic"));
	return names;
}

/* ---- validate -------------------------------------------------------------------- */

/* Final validation of the wave's topics, fenced and drained: nothing moves
 * on them any more, so the comparison is of the whole history. */
static km_err_t do_validate(ctx_t *x)
{
	const km_cutover_conf_t *c = x->c;
	km_validate_opts_t o;
	json_t *names = topic_names(x), *rep = NULL, *ev = NULL;
	km_err_t err;

	if (c->dry_run) {
		ev = json_pack("{s:O, s:s}", "topics", names, "would",
			       "validate the wave's topics (full) and require GO within "
			       "gates.max_mismatches; changes nothing");
		emit(x, "validate", "would", 0, ev, NULL);
		err = KM_ERR_OK;
		goto done;
	}
	emit(x, "validate", "start", 0, NULL, NULL);
	km_validate_opts_init(&o);
	o.only_topics = names;
	/* Each wave topic must be validated: one the source principal cannot
	 * see is NO-GO, never left out. */
	o.expect_topics = names;
	o.stop = c->stop;
	if ((err = km_validate_run(c->plan, c->src, c->tgt, &o, &rep, x->errstr, x->errstr_size)))
		goto done;
	ev = json_pack("{s:O, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}", "topics", names,
		       "verdict", json_object_get(rep, "verdict"), "label",
		       json_object_get(rep, "label"), "mode", json_object_get(rep, "mode"),
		       "mismatches", json_object_get(rep, "mismatches"), "max_mismatches",
		       json_object_get(rep, "max_mismatches"), "partitions_total",
		       json_object_get(rep, "partitions_total"), "no_go",
		       json_object_get(rep, "no_go"));
	if (strcmp(json_string_value(json_object_get(rep, "verdict")), "GO")) {
		char *why = json_dumps(json_object_get(rep, "no_go"), JSON_COMPACT);
		/* The fence stays: the wave is stopped, not handed back. */
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
				"final validation of wave '%s' is NO-GO: %s (the source stays "
				"fenced; see `kmigrate validate`, fix, then re-run the cutover)",
				c->wave, why ? why : "?");
		free(why);
		emit(x, "validate", "nogo", 0, ev, x->errstr);
		goto done;
	}
	err = step_done(x, "validate", ev);
done:
	json_decref(names);
	json_decref(rep);
	json_decref(ev);
	return err;
}

/* ---- offsets --------------------------------------------------------------------- */

/* Translates and commits each group of the wave on the target.  Only the
 * wave's partitions are committed: a topic of a later wave is still written
 * on the source.  A re-run translates the same committed source positions
 * through the same map, so it commits the same target positions again. */
static km_err_t do_offsets(ctx_t *x)
{
	const km_cutover_conf_t *c = x->c;
	const km_plan_wave_t *w = km_plan_wave(c->plan, c->wave);
	json_t *done_groups = json_array(), *gs = NULL, *ev = NULL;
	km_err_t err = KM_ERR_OK;

	if (c->dry_run) {
		json_t *ids = json_array();
		for (size_t i = 0; i < w->groups_cnt; i++)
			json_array_append_new(ids, json_string(w->groups[i].name));
		ev = json_pack("{s:o, s:s}", "groups", ids, "would",
			       "translate each group's committed source positions and commit them "
			       "on the target (refused while a target group has live members)");
		emit(x, "offsets", "would", 0, ev, NULL);
		goto done;
	}
	emit(x, "offsets", "start", 0, NULL, NULL);
	for (size_t i = 0; i < w->groups_cnt && !err; i++) {
		const char *gid = w->groups[i].name;
		km_offsets_opts_t o = {.only = gid};
		json_t *g, *row, *rows = json_array(), *pos = json_array();
		bool ok = true;
		size_t j;

		json_decref(gs);
		gs = NULL;
		err = km_offsets_translate(c->plan, c->ks, c->kt, &o, &gs, x->errstr,
					   x->errstr_size);
		if (err == KM_ERR_NOT_FOUND)
			/* Unknown is never a pass: a wave group with no position
			 * to move would start on the target wherever its reset
			 * policy says. */
			err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
					"group '%s' of wave '%s' has no committed position on an "
					"in-scope topic: nothing to translate (let it commit on the "
					"source, or remove it from the wave's groups)",
					gid, c->wave);
		g = err ? NULL : json_array_get(gs, 0);
		json_array_foreach(g ? json_object_get(g, "partitions") : NULL, j, row) {
			const char *st = json_string_value(json_object_get(row, "status"));
			if (!km_plan_wave_has_topic(c->plan, w,
						    json_string_value(json_object_get(row, "topic"))))
				continue;
			ok = ok && st && (!strcmp(st, "translated") || !strcmp(st, "policy"));
			json_array_append(rows, row);
			json_array_append_new(
				pos, json_pack("{s:O, s:O, s:O, s:O, s:O}", "topic",
					       json_object_get(row, "topic"), "partition",
					       json_object_get(row, "partition"), "target_topic",
					       json_object_get(row, "target_topic"), "committed",
					       json_object_get(row, "committed"), "target_offset",
					       json_object_get(row, "target_offset")));
		}
		if (!err && !ok)
			err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
					"group '%s' of wave '%s' is not translatable (replication "
					"behind or a proof failed): nothing committed; see `kmigrate "
					"offsets`, then re-run the cutover",
					gid, c->wave);
		if (!err) {
			json_t *only = json_deep_copy(g);
			json_object_set(only, "partitions", rows);
			json_object_set_new(only, "translatable", json_true());
			err = km_offsets_commit(c->kt, only, x->errstr, x->errstr_size);
			json_decref(only);
		}
		if (!err)
			json_array_append_new(done_groups,
					      json_pack("{s:s, s:O}", "group", gid, "positions", pos));
		json_decref(rows);
		json_decref(pos);
	}
	if (err) {
		if (err == KM_ERR_NOGO)
			emit(x, "offsets", "nogo", 0, NULL, x->errstr);
		goto done;
	}
	ev = json_pack("{s:O}", "groups", done_groups);
	err = step_done(x, "offsets", ev);
done:
	json_decref(done_groups);
	json_decref(gs);
	json_decref(ev);
	return err;
}

/* ---- authority ------------------------------------------------------------------- */

static km_err_t create_authority_topic(ctx_t *x, const char *name)
{
	char e[256];
	km_err_t err;
	rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, 1, -1, e, sizeof(e));

	/* Compacted and never expired: the latest record per topic is its
	 * authority for the life of the migration. */
	rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
	rd_kafka_NewTopic_set_config(nt, "retention.ms", "-1");
	err = km_kafka_create_topics(x->c->kt, &nt, 1, "CreateTopics of the authority topic",
				     x->errstr, x->errstr_size);
	rd_kafka_NewTopic_destroy(nt);
	return err;
}

km_err_t km_cutover_write_authority(const km_kafka_endpoint_t *tgt, const char *atopic,
				   const char *authority, const char *wave, int64_t run_id,
				   const json_t *topics, char *errstr, size_t errstr_size)
{
	km_mapstore_authority_t a = {.at = km_now_ms(), .run_id = run_id};
	char val[KM_MAPSTORE_AUTHORITY_MAX], why[600];
	size_t n = json_array_size(topics), i;
	const char **keys = km_calloc(n ? n : 1, sizeof(*keys));
	const char **vals = km_calloc(n ? n : 1, sizeof(*vals));
	json_t *t;
	km_err_t err;

	snprintf(a.authority, sizeof(a.authority), "%s", authority);
	snprintf(a.wave, sizeof(a.wave), "%s", wave);
	if (km_mapstore_authority_encode(&a, val, sizeof(val)) < 0) {
		free(keys);
		free(vals);
		return km_seterr(errstr, errstr_size, KM_ERR_BUG,
				 "cannot encode the authority record of wave '%s'", wave);
	}
	json_array_foreach(topics, i, t) {
		/* An array of names, or of the gate's {"topic", ...} rows. */
		keys[i] = json_is_string(t) ? json_string_value(t)
					    : json_string_value(json_object_get(t, "topic"));
		vals[i] = val;
	}
	err = km_kafka_put(tgt, atopic, 0, keys, vals, n, why, sizeof(why));
	if (err)
		err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				"writing the authority records of wave '%s' to '%s' on the target "
				"failed: %s (run the command again to write them again)",
				wave, atopic, why);
	free(keys);
	free(vals);
	return err;
}

/* The authority records are on the target and read back, their fact not
 * journaled yet: the moment a crash leaves the records without the step
 * (the test hook's "authority-record"). */
static void emit_recorded(ctx_t *x, const char *what, const json_t *evidence)
{
	json_t *ev = json_pack("{s:s, s:s, s:s, s:O}", "event", "recorded", "wave", x->c->wave,
			       "what", what, "evidence", (json_t *)evidence);
	if (x->c->event_cb)
		x->c->event_cb(x->c->opaque, ev);
	json_decref(ev);
}

static km_err_t lift_rollback_fences(ctx_t *x, json_t **liftedp);
static km_err_t journaled_hwms(ctx_t *x, const char *kind, json_t **hwmsp);

/* Authority -> target, first on the target (where every kmigrate process
 * reads it), then in the journal: a crash between the two leaves the step
 * unjournaled, and the re-run writes the same key again (the latest record
 * per key counts). */
static km_err_t do_authority(ctx_t *x)
{
	const km_cutover_conf_t *c = x->c;
	char topic[KM_MAPSTORE_NAME_MAX];
	json_t *recs = NULL, *ev = NULL, *mine = json_object(), *t, *lifted, *tf_lifted = NULL;
	json_t *hwms = NULL;
	size_t i;
	km_err_t err;

	km_mapstore_authority_topic(c->plan->migration, topic, sizeof(topic));
	if (c->dry_run) {
		json_t *names = topic_names(x);
		ev = json_pack("{s:s, s:o, s:s}", "topic", topic, "topics", names, "would",
			       "record authority = target for each topic, on the target and in the "
			       "journal");
		emit(x, "authority", "would", 0, ev, NULL);
		err = KM_ERR_OK;
		goto done;
	}
	emit(x, "authority", "start", 0, NULL, NULL);
	/* The record carries this run's id: the run row must exist first. */
	if ((err = km_journal_begin(c->jr, x->errstr, x->errstr_size)))
		goto done;
	if ((err = ensure_run(x)) || (err = km_journal_commit(c->jr, x->errstr, x->errstr_size))) {
		km_journal_rollback(c->jr);
		goto done;
	}
	/* Where the target's new history starts if the cutover stops before
	 * its switch: nobody but kmigrate writes the wave's target topics
	 * until the guard goes below (a rollback copies back from here). */
	if ((err = journaled_hwms(x, "cutover.authority-hwms", &hwms)))
		goto done;
	if ((err = create_authority_topic(x, topic)) ||
	    (err = km_cutover_write_authority(c->tgt, topic, "target", c->wave, x->run_id,
					      x->topics, x->errstr, x->errstr_size)))
		goto done;
	/* Read back: what other processes will read is what is proven. */
	if ((err = km_mapstore_read_authority(c->tgt, topic, &recs, x->errstr, x->errstr_size)))
		goto done;
	json_array_foreach(x->topics, i, t) {
		const char *st = json_string_value(json_object_get(t, "topic"));
		json_t *r = json_object_get(recs, st);
		if (!r || strcmp(json_string_value(json_object_get(r, "authority")), "target") ||
		    strcmp(json_string_value(json_object_get(r, "wave")), c->wave) ||
		    json_integer_value(json_object_get(r, "run_id")) != x->run_id) {
			err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
					"the authority record of '%s' read back from '%s' is not "
					"the one just written (another cutover process?); re-run "
					"the cutover",
					st, topic);
			emit(x, "authority", "nogo", 0, NULL, x->errstr);
			goto done;
		}
		json_object_set(mine, st, r);
	}
	/* The target guard (lib/guard.h) goes once the target is the
	 * authority, before the fact: a crash between is lifted again. */
	if ((err = km_guard_lift(c->kt, c->plan, c->jr, x->topics, &lifted, x->errstr,
				 x->errstr_size)))
		goto done;
	if ((err = lift_rollback_fences(x, &tf_lifted))) {
		json_decref(lifted);
		goto done;
	}
	ev = json_pack("{s:s, s:O, s:o, s:o, s:O}", "topic", topic, "records", mine, "guard_lifted",
		       lifted, "rollback_fences_lifted", tf_lifted, "target_hwms", hwms);
	emit_recorded(x, "authority-record", ev);
	err = step_done(x, "authority", ev);
done:
	json_decref(hwms);
	json_decref(recs);
	json_decref(mine);
	json_decref(ev);
	return err;
}

/* The target fences a rollback of the wave left (its "rollback.fence",
 * and the guard `rollback --release-target` put back, "rollback.guard"):
 * the target is the authority now, its applications must write it.  Each
 * is undone from its journaled inverse, then closed with a
 * "rollback.fence-lifted" fact; a crash between undoes it again
 * (idempotent).  *liftedp: a new array of the evidence. */
static km_err_t lift_rollback_fences(ctx_t *x, json_t **liftedp)
{
	json_t *fences = NULL, *lifted = json_array(), *f, *ev = NULL;
	char subj[400];
	km_err_t err;
	size_t i;

	*liftedp = NULL;
	snprintf(subj, sizeof(subj), "wave:%s", x->c->wave);
	if ((err = km_rollback_target_fences(x->c->jr, x->c->wave, &fences, x->errstr,
					     x->errstr_size)))
		goto done;
	json_array_foreach(fences, i, f) {
		if ((err = km_rollback_target_fence_undo(x->c->kt, f, &ev, x->errstr,
							 x->errstr_size)))
			goto done;
		json_object_set_new(ev, "by", json_string("cutover"));
		if ((err = journal_fact(x, KM_ROLLBACK_FENCE_LIFTED, subj, "INFO", ev, NULL)))
			goto done;
		json_array_append_new(lifted, ev);
		ev = NULL;
	}
	*liftedp = lifted;
	lifted = NULL;
done:
	json_decref(ev);
	json_decref(fences);
	json_decref(lifted);
	return err;
}

/* KM_ERR_NOGO when a "rollback.step" fact of the wave's current attempt
 * exists (lib/rollback.h): the attempt is being undone. */
static km_err_t rollback_begun(ctx_t *x)
{
	json_t *facts = NULL, *f;
	json_int_t after;
	char prefix[400];
	km_err_t err;
	size_t i;

	snprintf(prefix, sizeof(prefix), "wave:%s step:", x->c->wave);
	if ((err = km_cutover_reset_id(x->c->jr, x->c->wave, &after, x->errstr, x->errstr_size)) ||
	    (err = km_journal_facts(x->c->jr, 0, "rollback.step", &facts, x->errstr,
				    x->errstr_size)))
		return err;
	json_array_foreach(facts, i, f) {
		const char *s = json_string_value(json_object_get(f, "subject"));
		if (json_integer_value(json_object_get(f, "id")) > after && s &&
		    !strncmp(s, prefix, strlen(prefix))) {
			err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
					"a rollback of wave '%s' has begun (journal fact %lld): "
					"finish it with `kmigrate rollback --wave %s`, then cut "
					"over again",
					x->c->wave,
					(long long)json_integer_value(json_object_get(f, "id")),
					x->c->wave);
			break;
		}
	}
	json_decref(facts);
	return err;
}

/* ---- switch ---------------------------------------------------------------------- */

/* The wave's partitions on the target (target names through the plan's
 * naming) with their high watermarks now: the baseline `--verify` compares
 * the target's writes against.  [{"topic", "target_topic", "partition",
 * "hwm"}], a new array. */
static km_err_t target_hwms(ctx_t *x, json_t **outp)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
	json_t *out = json_array(), *t;
	size_t i;
	km_err_t err;

	json_array_foreach(x->topics, i, t) {
		const char *st = json_string_value(json_object_get(t, "topic"));
		char *tt = km_plan_target_topic(x->c->plan, st);
		int np = (int)json_integer_value(json_object_get(t, "partitions"));
		for (int p = 0; p < np; p++) {
			rd_kafka_topic_partition_list_add(l, tt, p);
			json_array_append_new(out, json_pack("{s:s, s:s, s:i, s:I}", "topic", st,
							     "target_topic", tt, "partition", p,
							     "hwm", (json_int_t)-1));
		}
		free(tt);
	}
	if (!(err = km_kafka_list_offsets(x->c->kt, l, KM_KAFKA_HWM, x->errstr, x->errstr_size)))
		for (int k = 0; k < l->cnt; k++)
			json_object_set_new(json_array_get(out, (size_t)k), "hwm",
					    json_integer(l->elems[k].offset));
	rd_kafka_topic_partition_list_destroy(l);
	if (err)
		json_decref(out);
	else
		*outp = out;
	return err;
}

static const km_plan_producer_t *plan_producer(const km_plan_t *plan, const char *name)
{
	for (size_t i = 0; i < plan->producers_cnt; i++)
		if (!strcmp(plan->producers[i].name, name))
			return &plan->producers[i];
	return NULL;
}

static const km_plan_consumer_t *plan_consumer(const km_plan_t *plan, const char *name)
{
	for (size_t i = 0; i < plan->consumers_cnt; i++)
		if (!strcmp(plan->consumers[i].name, name))
			return &plan->consumers[i];
	return NULL;
}

static const km_plan_group_t *plan_group(const km_plan_t *plan, const char *id)
{
	for (size_t i = 0; i < plan->groups_cnt; i++)
		if (!strcmp(plan->groups[i].id, id))
			return &plan->groups[i];
	return NULL;
}

/* The switch instructions: who moves which client to which bootstrap and
 * topics, and how each checks it worked.  kmigrate redeploys nothing: the
 * instructions are the evidence that the owners were told, and the target
 * HWMs taken here are what `--verify` measures the switch against. */
static km_err_t do_switch(ctx_t *x)
{
	const km_cutover_conf_t *c = x->c;
	const km_plan_wave_t *w = km_plan_wave(c->plan, c->wave);
	json_t *topics = json_array(), *prods = json_array(), *cons = json_array(),
	       *groups = json_array(), *hwms = NULL, *ev = NULL, *t;
	char *missing = NULL;
	size_t i;
	km_err_t err = KM_ERR_OK;

	json_array_foreach(x->topics, i, t) {
		const char *st = json_string_value(json_object_get(t, "topic"));
		char *tt = km_plan_target_topic(c->plan, st);
		json_array_append_new(topics, json_pack("{s:s, s:s}", "topic", st, "target_topic", tt));
		free(tt);
	}
	for (i = 0; i < w->producers_cnt; i++) {
		const km_plan_producer_t *p = plan_producer(c->plan, w->producers[i].name);
		json_t *pt = json_array();
		for (size_t k = 0; p && k < p->topics_cnt; k++) {
			if (!km_plan_wave_has_topic(c->plan, w, p->topics[k]))
				continue;
			char *tt = km_plan_target_topic(c->plan, p->topics[k]);
			json_array_append_new(pt, json_string(tt));
			free(tt);
		}
		json_array_append_new(prods, json_pack("{s:s, s:s?, s:s?, s:o}", "name",
						       w->producers[i].name, "owner",
						       p ? p->owner : NULL, "validation",
						       p ? p->validation : NULL, "target_topics", pt));
		if (!missing && (!p || !p->owner || !p->validation))
			missing = km_asprintf("producer '%s' has no %s", w->producers[i].name,
					      p && p->owner ? "validation method" : "owner");
	}
	for (i = 0; i < w->consumers_cnt; i++) {
		const km_plan_consumer_t *p = plan_consumer(c->plan, w->consumers[i].name);
		json_array_append_new(cons, json_pack("{s:s, s:s?, s:s?, s:s?}", "name",
						      w->consumers[i].name, "group",
						      p ? p->group : NULL, "owner", p ? p->owner : NULL,
						      "validation", p ? p->validation : NULL));
		if (!missing && (!p || !p->owner || !p->validation))
			missing = km_asprintf("consumer '%s' has no %s", w->consumers[i].name,
					      p && p->owner ? "validation method" : "owner");
	}
	for (i = 0; i < w->groups_cnt; i++) {
		const km_plan_group_t *g = plan_group(c->plan, w->groups[i].name);
		json_array_append_new(groups, json_pack("{s:s, s:s?, s:s?}", "group",
							w->groups[i].name, "owner",
							g ? g->owner : NULL, "restart",
							g ? km_plan_restart_str(g->restart) : NULL));
	}
	ev = json_pack("{s:s, s:O, s:O, s:O, s:O, s:s}", "bootstrap", c->plan->target.bootstrap,
		       "topics", topics, "producers", prods, "consumers", cons, "groups", groups,
		       "redeploy", "kmigrate redeploys nothing: each owner re-points their client "
				   "at the new bootstrap and target topics, then checks it by its "
				   "validation method");
	if (missing) {
		/* The gate says NO-GO for this already (the inventory's
		 * findings); an instruction without someone to carry it out is
		 * unknown, never a pass. */
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
				"cannot give the switch instructions of wave '%s': %s (declare it "
				"in the plan, then re-run the cutover)",
				c->wave, missing);
		emit(x, "switch", "nogo", 0, ev, x->errstr);
		goto done;
	}
	if (c->dry_run) {
		emit(x, "switch", "would", 0, ev, NULL);
		goto done;
	}
	/* The connectors step measured the target before it resumed a
	 * connector there: that is where the target's new history starts. */
	const json_t *chw = json_object_get(
		json_object_get(json_object_get(x->done, "connectors"), "body"), "target_hwms");
	if (chw)
		hwms = json_deep_copy(chw);
	else if ((err = target_hwms(x, &hwms)))
		goto done;
	json_object_set(ev, "target_hwms", hwms);
	err = step_done(x, "switch", ev);
done:
	free(missing);
	json_decref(topics);
	json_decref(prods);
	json_decref(cons);
	json_decref(groups);
	json_decref(hwms);
	json_decref(ev);
	return err;
}

/* ---- verify ---------------------------------------------------------------------- */

/* The committed offsets of group gid on the target (OffsetFetch of every
 * partition through km_kafka_committed: not the admin API's
 * ListConsumerGroupOffsets, which crashes when the coordinator is not
 * ready, lib/kafka.h), written into rows[i].committed (-1: none) for the
 * rows' target_topic/partition. */
static km_err_t group_committed(ctx_t *x, const char *gid, json_t *rows)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8), *tps = NULL;
	json_t *r;
	size_t i;
	km_err_t err;

	json_array_foreach(rows, i, r)
		rd_kafka_topic_partition_list_add(
			l, json_string_value(json_object_get(r, "target_topic")),
			(int32_t)json_integer_value(json_object_get(r, "partition")));
	err = km_kafka_committed(x->c->kt, &gid, 1, l, 0, 0, &tps, x->errstr, x->errstr_size);
	if (!err)
		json_array_foreach(rows, i, r)
			for (int k = 0; k < tps->cnt; k++)
				if (!strcmp(tps->elems[k].topic,
					    json_string_value(json_object_get(r, "target_topic"))) &&
				    tps->elems[k].partition ==
					    json_integer_value(json_object_get(r, "partition")))
					json_object_set_new(r, "committed",
							    json_integer(tps->elems[k].offset >= 0
										 ? tps->elems[k].offset
										 : -1));
	if (tps)
		rd_kafka_topic_partition_list_destroy(tps);
	rd_kafka_topic_partition_list_destroy(l);
	return err;
}

/* HWMs of rows (key: "target_topic" or "topic") on k into rows[i].now. */
static km_err_t rows_hwms(ctx_t *x, km_kafka_t *k, json_t *rows, const char *key)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
	json_t *r;
	size_t i;
	km_err_t err;

	json_array_foreach(rows, i, r)
		rd_kafka_topic_partition_list_add(
			l, json_string_value(json_object_get(r, key)),
			(int32_t)json_integer_value(json_object_get(r, "partition")));
	if (!(err = km_kafka_list_offsets(k, l, KM_KAFKA_HWM, x->errstr, x->errstr_size)))
		json_array_foreach(rows, i, r)
			json_object_set_new(r, "now", json_integer(l->elems[i].offset));
	rd_kafka_topic_partition_list_destroy(l);
	return err;
}

static int64_t jint(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* The target HWM now of target_topic[partition] among the switch rows. */
static int64_t hwm_now(const json_t *tw, const char *tt, int64_t p)
{
	json_t *r;
	size_t i;
	json_array_foreach(tw, i, r)
		if (!strcmp(json_string_value(json_object_get(r, "target_topic")), tt) &&
		    jint(r, "partition") == p)
			return jint(r, "now");
	return -1;
}

static void check(json_t *checks, const char *name, bool ok, json_t *measured, const char *why)
{
	json_array_append_new(checks, json_pack("{s:s, s:s, s:o, s:s?}", "check", name, "verdict",
						ok ? "GO" : "NO-GO", "measured",
						measured ? measured : json_null(), "reason",
						ok ? NULL : why));
}

/* Whether a group's lag grew over the window on some partition: its lag at
 * the end is above its lag at the start AND it did not even consume up to
 * where the partition ended when the window began.  A consumer that keeps
 * up passes whatever the jitter of its commits (it consumed everything that
 * was there at the start); one that stopped, or falls behind its producers,
 * fails. */
static bool lag_grows(const json_t *positions)
{
	json_t *r;
	size_t i;
	json_array_foreach(positions, i, r)
		if (jint(r, "lag_last") > jint(r, "lag_first") &&
		    jint(r, "committed_last") < jint(r, "hwm_first"))
			return true;
	return false;
}

km_err_t km_cutover_verify(const km_cutover_conf_t *conf, json_t **resultp, char *errstr,
			   size_t errstr_size)
{
	ctx_t x = {.c = conf, .steps = json_array(), .errstr = errstr,
		   .errstr_size = errstr_size};
	const char *next = NULL;
	json_t *tw = NULL, *sw = NULL, *gs = NULL, *checks = json_array(), *ev = NULL, *r, *g;
	int64_t window = conf->verify_window_ms > 0 ? conf->verify_window_ms
						   : conf->plan->cutover.verify_window * 1000;
	int64_t **lags = NULL;
	size_t i, j, samples = 0, ng = 0;
	km_err_t err;

	if (resultp)
		*resultp = NULL;
	if (!km_plan_wave(conf->plan, conf->wave)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
				"no wave '%s' in the plan's cutover.waves: name one of them",
				conf->wave);
		goto done;
	}
	if ((err = load_done(&x, conf->wave, &x.done, NULL)))
		goto done;
	for (int s = 0; km_cutover_steps[s] && !next; s++)
		if (!json_object_get(x.done, km_cutover_steps[s]))
			next = km_cutover_steps[s];
	if (next) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"wave '%s' is not switched yet: step '%s' is next (run `kmigrate "
				"cutover --wave %s` first; --verify checks a wave after its switch)",
				conf->wave, next, conf->wave);
		emit(&x, "verify", "nogo", 0, NULL, errstr);
		goto done;
	}
	json_t *body = json_object_get(json_object_get(x.done, "switch"), "body");
	tw = json_deep_copy(json_object_get(body, "target_hwms"));
	/* The source must still end where the drain left it. */
	sw = json_deep_copy(json_object_get(json_object_get(json_object_get(x.done, "drain"), "body"),
					    "partitions"));
	gs = json_deep_copy(json_object_get(json_object_get(json_object_get(x.done, "offsets"), "body"),
					    "groups"));
	ng = json_array_size(gs);
	lags = km_calloc(ng + 1, sizeof(*lags));
	json_array_foreach(tw, i, r)
		json_object_set_new(r, "max", json_integer(-1));
	json_array_foreach(sw, i, r)
		json_object_set_new(r, "max", json_integer(-1));
	emit(&x, "verify", "start", 0, NULL, NULL);

	/* Watch the whole window: the source must stay still for all of it and
	 * a group's lag is judged on its course, not one sample. */
	int64_t until = km_mono_ms() + window;
	for (;;) {
		if ((err = rows_hwms(&x, conf->kt, tw, "target_topic")) ||
		    (err = rows_hwms(&x, conf->ks, sw, "topic")))
			goto done;
		json_array_foreach(tw, i, r)
			if (jint(r, "now") > jint(r, "max"))
				json_object_set(r, "max", json_object_get(r, "now"));
		json_array_foreach(sw, i, r)
			if (jint(r, "now") != jint(r, "hwm") && jint(r, "now") > jint(r, "max"))
				json_object_set(r, "max", json_object_get(r, "now"));
		json_array_foreach(gs, i, g) {
			json_t *pos = json_object_get(g, "positions");
			int64_t lag = 0;
			if ((err = group_committed(&x, json_string_value(json_object_get(g, "group")),
						   pos)))
				goto done;
			json_array_foreach(pos, j, r) {
				int64_t cm = json_object_get(r, "committed") ? jint(r, "committed") : -1;
				int64_t h = hwm_now(tw, json_string_value(json_object_get(r, "target_topic")),
						    jint(r, "partition"));
				/* Without a commit the group is where the offsets step
				 * put it. */
				int64_t at = cm >= 0 ? cm : jint(r, "target_offset");
				if (cm > jint(r, "target_offset"))
					json_object_set_new(r, "advanced_to", json_integer(cm));
				if (!samples) {
					json_object_set_new(r, "hwm_first", json_integer(h));
					json_object_set_new(r, "lag_first", json_integer(h - at));
				}
				json_object_set_new(r, "committed_last", json_integer(at));
				json_object_set_new(r, "lag_last", json_integer(h - at));
				lag += h - at;
			}
			lags[i] = km_realloc(lags[i], (samples + 1) * sizeof(**lags));
			lags[i][samples] = lag;
		}
		samples++;
		if (km_mono_ms() >= until || (conf->stop && *conf->stop))
			break;
		poll(NULL, 0, POLL_MS);
	}

	/* target_writes: each wave topic's end moved past the switch's. */
	json_t *m = json_array(), *idle = json_array();
	json_t *tt_of = json_object();
	json_array_foreach(tw, i, r) {
		const char *st = json_string_value(json_object_get(r, "topic"));
		json_t *e = json_object_get(tt_of, st);
		if (!e) {
			e = json_pack("{s:s, s:O, s:I}", "topic", st, "target_topic",
				      json_object_get(r, "target_topic"), "new_records", (json_int_t)0);
			json_object_set_new(tt_of, st, e);
			json_array_append(m, e);
		}
		json_object_set_new(e, "new_records",
				    json_integer(jint(e, "new_records") + jint(r, "max") - jint(r, "hwm")));
	}
	json_array_foreach(m, i, r)
		if (jint(r, "new_records") <= 0)
			json_array_append(idle, json_object_get(r, "target_topic"));
	char *list = json_dumps(idle, JSON_COMPACT);
	char *why = km_asprintf("no new record on the target's %s since the switch: the wave's "
				"producers do not write to the target yet",
				list);
	check(checks, "target_writes", !json_array_size(idle), m, why);
	free(list);
	free(why);
	json_decref(idle);
	json_decref(tt_of);

	/* groups_consume and groups_lag, per group. */
	json_t *still = json_array(), *grow = json_array(), *gm = json_array();
	json_array_foreach(gs, i, g) {
		const char *gid = json_string_value(json_object_get(g, "group"));
		bool adv = false;
		json_array_foreach(json_object_get(g, "positions"), j, r)
			adv = adv || json_object_get(r, "advanced_to");
		if (!adv)
			json_array_append_new(still, json_string(gid));
		if (lag_grows(json_object_get(g, "positions")))
			json_array_append_new(grow, json_string(gid));
		json_array_append_new(gm, json_pack("{s:s, s:b, s:I, s:I, s:O}", "group", gid,
						    "consumed", adv, "lag_first",
						    (json_int_t)lags[i][0], "lag_last",
						    (json_int_t)lags[i][samples - 1], "positions",
						    json_object_get(g, "positions")));
	}
	list = json_dumps(still, JSON_COMPACT);
	why = km_asprintf("group(s) %s committed nothing on the target past the positions the "
			  "offsets step committed: they do not consume on the target yet",
			  list);
	check(checks, "groups_consume", !json_array_size(still), json_incref(gm), why);
	free(list);
	free(why);
	list = json_dumps(grow, JSON_COMPACT);
	why = km_asprintf("the lag of group(s) %s on the target grew over the window", list);
	check(checks, "groups_lag", !json_array_size(grow), gm, why);
	free(list);
	free(why);
	json_decref(still);
	json_decref(grow);

	/* source_fenced / no_stale_writes: the source's ends are the drain's. */
	json_t *got = json_array(), *sm = json_array();
	json_array_foreach(sw, i, r) {
		int64_t over = jint(r, "max") >= 0 ? jint(r, "max") - jint(r, "hwm") : 0;
		json_array_append_new(sm, json_pack("{s:O, s:O, s:I, s:I}", "topic",
						    json_object_get(r, "topic"), "partition",
						    json_object_get(r, "partition"), "drained_hwm",
						    (json_int_t)jint(r, "hwm"), "hwm",
						    (json_int_t)jint(r, "now")));
		if (jint(r, "max") >= 0)
			json_array_append_new(
				got, json_pack("{s:O, s:O, s:I}", "topic", json_object_get(r, "topic"),
					       "partition", json_object_get(r, "partition"),
					       "records_after_drain", (json_int_t)over));
	}
	list = json_dumps(got, JSON_COMPACT);
	why = km_asprintf("the source's high watermarks moved off the drained ones %s: the source "
			  "is not fenced",
			  list);
	check(checks, "source_fenced", !json_array_size(got), sm, why);
	free(why);
	why = km_asprintf("a stale producer wrote to the source after the drain: %s", list);
	check(checks, "no_stale_writes", !json_array_size(got), got, why);
	free(list);
	free(why);

	/* The verdict and the evidence, journaled (a repeatable check: one
	 * fact per run of --verify). */
	bool go = true;
	json_t *names = json_array(), *c;
	json_array_foreach(checks, i, c)
		if (strcmp(json_string_value(json_object_get(c, "verdict")), "GO")) {
			go = false;
			json_array_append(names, json_object_get(c, "check"));
		}
	ev = json_pack("{s:s, s:I, s:I, s:O}", "verdict", go ? "GO" : "NO-GO", "window_s",
		       (json_int_t)(window / 1000), "samples", (json_int_t)samples, "checks", checks);
	char subj[400];
	json_int_t id = 0;
	snprintf(subj, sizeof(subj), "wave:%s step:verify", conf->wave);
	if ((err = journal_fact(&x, "cutover.step", subj, go ? "GO" : "NO-GO", ev, &id))) {
		json_decref(names);
		goto done;
	}
	if (!go) {
		char *nl = json_dumps(names, JSON_COMPACT);
		const char *first = NULL;
		json_array_foreach(checks, i, c)
			if (!first && strcmp(json_string_value(json_object_get(c, "verdict")), "GO"))
				first = json_string_value(json_object_get(c, "reason"));
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"post-cutover checks of wave '%s' are NO-GO: %s failed; %s (fix, then "
				"re-run --verify)",
				conf->wave, nl ? nl : "?", first ? first : "?");
		free(nl);
	}
	json_decref(names);
	emit(&x, "verify", go ? "go" : "nogo", id, ev, go ? NULL : errstr);
done:
	if (x.run_id) {
		char e2[256];
		km_journal_run_end(conf->jr, x.run_id, km_err_exit_code(err),
				   err ? "NO-GO" : "GO", e2, sizeof(e2));
	}
	if (resultp)
		*resultp = json_pack("{s:s, s:O, s:I, s:O?}", "wave", conf->wave, "steps", x.steps,
				     "run_id", (json_int_t)x.run_id, "verify", ev);
	for (i = 0; lags && i < ng; i++)
		free(lags[i]);
	free(lags);
	json_decref(tw);
	json_decref(sw);
	json_decref(gs);
	json_decref(checks);
	json_decref(ev);
	json_decref(x.steps);
	json_decref(x.done);
	return err;
}

/* The target's HWMs where a step opens the target to writers, journaled
 * as fact `kind` BEFORE it does: cutover.connectors-hwms before any
 * connector resumes on the target, cutover.authority-hwms before the
 * authority step lifts the guard.  A kill -9 after the opening and before
 * the step's fact would otherwise make the re-run measure again, past what
 * was written meanwhile, and a rollback would never copy those records
 * back.  The first fact of the attempt wins. */
static km_err_t journaled_hwms(ctx_t *x, const char *kind, json_t **hwmsp)
{
	json_t *facts = NULL, *f, *body = NULL;
	json_int_t after = 0;
	char subj[300];
	size_t i;
	km_err_t err;

	*hwmsp = NULL;
	snprintf(subj, sizeof(subj), "wave:%s", x->c->wave);
	if ((err = km_cutover_reset_id(x->c->jr, x->c->wave, &after, x->errstr, x->errstr_size)) ||
	    (err = km_journal_facts(x->c->jr, 0, kind, &facts, x->errstr, x->errstr_size)))
		goto done;
	json_array_foreach(facts, i, f)
		if (json_integer_value(json_object_get(f, "id")) > after &&
		    !strcmp(json_string_value(json_object_get(f, "subject")), subj)) {
			*hwmsp = json_deep_copy(
				json_object_get(json_object_get(f, "body"), "target_hwms"));
			goto done;
		}
	if ((err = target_hwms(x, hwmsp)))
		goto done;
	body = json_pack("{s:O}", "target_hwms", *hwmsp);
	err = journal_fact(x, kind, subj, "INFO", body, NULL);
done:
	if (err) {
		json_decref(*hwmsp);
		*hwmsp = NULL;
	}
	json_decref(body);
	json_decref(facts);
	return err;
}

/* The wave's Kafka Connect connectors (lib/connect.h): its source
 * connectors stop before the fence (stop-connectors: they are producers),
 * and all move after the authority (connectors: a source connector
 * resumed on the target writes there); the evidence is both connectors'
 * states at every phase. */
static km_err_t do_connectors(ctx_t *x, const char *step)
{
	const km_cutover_conf_t *c = x->c;
	json_t *ev = NULL;
	km_err_t err;

	json_t *hwms = NULL;
	bool move = strcmp(step, "stop-connectors") != 0;

	if (!c->dry_run)
		emit(x, step, "start", 0, NULL, NULL);
	/* The target's new history starts here, not at the switch: a source
	 * connector resumed on the target writes its topics from now on, and
	 * a rollback copies back from the switch's target_hwms (which take
	 * these).  Measured before any resume. */
	if (move && !c->dry_run && (c->plan->source.connect_url || c->plan->target.connect_url) &&
	    (err = journaled_hwms(x, "cutover.connectors-hwms", &hwms)))
		return err;
	err = km_connect_cutover(c->plan, c->ks, c->kt, c->wave, !move, c->dry_run,
				 c->connector_stop_timeout_ms, &ev, x->errstr, x->errstr_size);
	if (!err && hwms && json_array_size(json_object_get(ev, "connectors")))
		json_object_set(ev, "target_hwms", hwms);
	json_decref(hwms);
	if (err == KM_ERR_NOGO)
		emit(x, step, "nogo", 0, NULL, x->errstr);
	else if (!err && c->dry_run)
		emit(x, step, "would", 0, ev, NULL);
	else if (!err)
		err = step_done(x, step, ev);
	json_decref(ev);
	return err;
}

/* ---- the machine ----------------------------------------------------------------- */

km_err_t km_cutover_run(const km_cutover_conf_t *conf, json_t **resultp, char *errstr,
			size_t errstr_size)
{
	ctx_t x = {.c = conf, .steps = json_array(), .errstr = errstr,
		   .errstr_size = errstr_size};
	km_err_t err;

	if (resultp)
		*resultp = NULL;
	if (!km_plan_wave(conf->plan, conf->wave)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
				"no wave '%s' in the plan's cutover.waves: name one of them",
				conf->wave);
		goto done;
	}
	if (conf->plan->cutover.fence == KM_PLAN_FENCE_UNDECLARED) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"cutover.fence is not declared: declare `fence: acl`, `config` or "
				"`external` with a fence_owner");
		goto done;
	}
	/* What the ACL fence needs the plan to declare, before any step. */
	if (conf->plan->cutover.fence == KM_PLAN_FENCE_ACL &&
	    (err = km_fence_acl_declared(conf->plan, errstr, errstr_size)))
		goto done;
	if ((err = load_done(&x, conf->wave, &x.done, &x.fence_fact)))
		goto done;
	/* A rollback of this attempt has begun: it alone may go on (a
	 * cutover resumed now could move the authority under it). */
	if ((err = rollback_begun(&x)))
		goto done;
	/* The wave's topics are the gate's, journaled with it: a resumed run
	 * fences and drains exactly what the gate judged. */
	json_t *g = json_object_get(x.done, "gate");
	if (g)
		x.topics = json_incref(json_object_get(json_object_get(g, "body"), "topics"));

	for (int s = 0; km_cutover_steps[s]; s++) {
		const char *step = km_cutover_steps[s];
		json_t *f = json_object_get(x.done, step);
		if (f) {
			/* The switch instructions are shown again on every run:
			 * whoever re-runs a finished wave is told what to do. */
			emit(&x, step, "already-done", json_integer_value(json_object_get(f, "id")),
			     !strcmp(step, "switch") ? json_object_get(f, "body") : NULL, NULL);
			continue;
		}
		err = !strcmp(step, "gate")       ? do_gate(&x)
		      : !strcmp(step, "fence")    ? do_fence(&x)
		      : !strcmp(step, "drain")    ? do_drain(&x)
		      : !strcmp(step, "validate") ? do_validate(&x)
		      : !strcmp(step, "offsets")  ? do_offsets(&x)
		      : !strcmp(step, "authority") ? do_authority(&x)
		      : !strcmp(step, "connectors") || !strcmp(step, "stop-connectors")
			      ? do_connectors(&x, step)
						  : do_switch(&x);
		if (err)
			break;
	}
done:
	if (x.run_id) {
		/* The run row says how it ended; a failure to write it does not
		 * hide the step's own error. */
		char e2[256];
		km_journal_run_end(conf->jr, x.run_id, km_err_exit_code(err),
				   err ? "stopped" : "done", e2, sizeof(e2));
	}
	if (resultp)
		*resultp = json_pack("{s:s, s:O, s:I}", "wave", conf->wave, "steps", x.steps, "run_id",
				     (json_int_t)x.run_id);
	json_decref(x.steps);
	json_decref(x.done);
	json_decref(x.fence_fact);
	json_decref(x.topics);
	return err;
}
