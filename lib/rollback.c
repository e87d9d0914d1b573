/*
 * rollback.c -- the wave rollback step machine (see rollback.h and
 * docs/internals/rollback.md).
 *
 * Like cutover, the journal is the state: a step is done when its
 * "rollback.step" fact of the current attempt exists.  The attempt is the
 * one km_cutover_load() reads (the facts after the wave's latest
 * "cutover.reset"); the reset step writes that fact, in the same SQLite
 * transaction as its own step fact, which closes both the cutover attempt
 * and its rollback at once.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "cutover.h"
#include "connect.h"
#include "fence.h"
#include "guard.h"
#include "mapstore.h"
#include "offsets.h"
#include "rollback.h"
#include "util.h"

/* Every step, in the order of the rollback after the authority moved;
 * before it, only assess, unfence and reset run (path_before). */
const char *const km_rollback_steps[] = {"assess",          "stop-target-connectors",
					 "fence-target",    "drain-target",
					 "unfence",         "reverse",
					 "connectors-back", "offsets-back",
					 "authority-source", "reset", NULL};
static const char *const path_before[] = {"assess", "unfence", "reset", NULL};

#define DRAIN_TIMEOUT_MS 300000
#define POLL_MS 500
#define MEMBERS_WAIT_MS 60000

typedef struct rctx_s {
	const km_rollback_conf_t *c;
	int64_t run_id;     /* 0 until the first fact */
	json_int_t after;   /* the attempt's boundary: the latest cutover.reset */
	json_t *cut;        /* the cutover attempt's done steps: name -> fact */
	json_t *fence_fact; /* its journaled fence plan and inverse, or NULL */
	json_t *done;       /* this rollback's done steps: name -> fact */
	json_t *rfence;     /* this rollback's journaled target fence, or NULL */
	bool moved;         /* the authority moved: the long path */
	json_t *start;      /* where the target's new history starts (history_start) */
	const char *start_from; /* the step that measured it, or why there is none */
	json_t *steps;      /* result rows */
	char *errstr;
	size_t errstr_size;
} rctx_t;

static void emit(rctx_t *x, const char *step, const char *state, json_int_t fact_id,
		 const json_t *evidence, const char *reason)
{
	km_step_event(x->c->wave, x->steps, x->c->event_cb, x->c->opaque, step, state, fact_id,
		      evidence, reason);
}

/* The step fact, and for the reset step the wave's "cutover.reset", in
 * one committed transaction. */
static km_err_t step_done(rctx_t *x, const char *step, const json_t *evidence, bool reset)
{
	const km_rollback_conf_t *c = x->c;
	json_t *facts = NULL;
	char subj[400];
	json_int_t id = 0;
	km_err_t err;

	if ((err = km_journal_begin(c->jr, x->errstr, x->errstr_size)))
		return err;
	if (!x->run_id &&
	    (err = km_journal_run_begin(c->jr, "rollback", c->args, &x->run_id, x->errstr,
					x->errstr_size)))
		goto fail;
	snprintf(subj, sizeof(subj), "wave:%s step:%s", c->wave, step);
	if ((err = km_journal_fact(c->jr, x->run_id, "rollback.step", subj, "DONE", evidence,
				   x->errstr, x->errstr_size)))
		goto fail;
	snprintf(subj, sizeof(subj), "wave:%s", c->wave);
	if (reset && (err = km_journal_fact(c->jr, x->run_id, "cutover.reset", subj, "INFO",
					    evidence, x->errstr, x->errstr_size)))
		goto fail;
	if ((err = km_journal_commit(c->jr, x->errstr, x->errstr_size)))
		goto fail;
	if (!(err = km_journal_facts(c->jr, x->run_id, "rollback.step", &facts, x->errstr,
				     x->errstr_size)))
		id = json_integer_value(
			json_object_get(json_array_get(facts, json_array_size(facts) - 1), "id"));
	json_decref(facts);
	json_object_set_new(x->done, step, json_pack("{s:I, s:O}", "id", id, "body", evidence));
	emit(x, step, "done", id, evidence, NULL);
	return err;
fail:
	km_journal_rollback(c->jr);
	return err;
}

/* This rollback's done steps: the rollback.step facts of the wave after
 * the attempt's boundary. */
static km_err_t load_done(rctx_t *x)
{
	json_t *facts = NULL, *f;
	char prefix[400];
	km_err_t err;
	size_t i;

	x->done = json_object();
	snprintf(prefix, sizeof(prefix), "wave:%s step:", x->c->wave);
	if ((err = km_journal_facts(x->c->jr, 0, "rollback.step", &facts, x->errstr,
				    x->errstr_size)))
		return err;
	json_array_foreach(facts, i, f) {
		const char *s = json_string_value(json_object_get(f, "subject"));
		if (json_integer_value(json_object_get(f, "id")) > x->after && s &&
		    !strncmp(s, prefix, strlen(prefix)) &&
		    !json_object_get(x->done, s + strlen(prefix)))
			json_object_set(x->done, s + strlen(prefix), f);
	}
	json_decref(facts);
	facts = NULL;
	snprintf(prefix, sizeof(prefix), "wave:%s", x->c->wave);
	if ((err = km_journal_facts(x->c->jr, 0, "rollback.fence", &facts, x->errstr,
				    x->errstr_size)))
		return err;
	json_array_foreach(facts, i, f) {
		const char *s = json_string_value(json_object_get(f, "subject"));
		if (json_integer_value(json_object_get(f, "id")) > x->after && s &&
		    !strcmp(s, prefix) && !x->rfence)
			x->rfence = json_incref(f);
	}
	json_decref(facts);
	return KM_ERR_OK;
}

/* The wave's topics: the cutover gate's, journaled with it (what the fence
 * and drain worked on), else the plan's. */
static json_t *wave_topics(rctx_t *x)
{
	json_t *g = json_object_get(x->cut, "gate"), *out = json_array(), *t;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(g, "body"), "topics"), i, t)
		json_array_append(out, json_object_get(t, "topic"));
	return out;
}

/* The body of the attempt's first fact of `kind` about the wave (subject
 * "wave:W"), a new reference, or NULL. */
static km_err_t attempt_fact(km_journal_t *jr, const char *wave, const char *kind,
			     json_t **bodyp, char *errstr, size_t errstr_size)
{
	json_t *facts = NULL, *f;
	json_int_t after = 0;
	char subj[400];
	km_err_t err;
	size_t i;

	*bodyp = NULL;
	snprintf(subj, sizeof(subj), "wave:%s", wave);
	if ((err = km_cutover_reset_id(jr, wave, &after, errstr, errstr_size)) ||
	    (err = km_journal_facts(jr, 0, kind, &facts, errstr, errstr_size)))
		return err;
	json_array_foreach(facts, i, f)
		if (json_integer_value(json_object_get(f, "id")) > after &&
		    !strcmp(json_string_value(json_object_get(f, "subject")), subj)) {
			*bodyp = json_incref(json_object_get(f, "body"));
			break;
		}
	json_decref(facts);
	return KM_ERR_OK;
}

/* Where the target's new history starts, the point the reverse copy and
 * the back-translation measure from: [{"topic", "target_topic",
 * "partition", "hwm"}], a new reference in *hwmsp, or NULL when the
 * journal cannot tell (*fromp then says why).  The switch's target_hwms
 * when it ran.  A cutover that stopped before its switch: the connectors
 * step's when it finished (the switch would take those); none when it
 * began (cutover.connectors-hwms) and did not finish, since some target
 * connectors may run there and others not; else the HWMs the authority
 * step journaled before it lifted the guard (cutover.authority-hwms):
 * until then only kmigrate wrote the wave's target topics. */
static km_err_t history_start(km_journal_t *jr, const char *wave, const json_t *cut,
			      json_t **hwmsp, const char **fromp, char *errstr, size_t errstr_size)
{
	json_t *b = NULL;
	const json_t *h;
	km_err_t err;

	*hwmsp = NULL;
	h = json_object_get(json_object_get(json_object_get(cut, KM_CUTOVER_LAST_STEP), "body"),
			    "target_hwms");
	*fromp = "switch";
	if (!json_array_size(h)) {
		h = json_object_get(json_object_get(json_object_get(cut, "connectors"), "body"),
				    "target_hwms");
		*fromp = "connectors";
	}
	if (json_array_size(h)) {
		*hwmsp = json_incref((json_t *)h);
		return KM_ERR_OK;
	}
	if ((err = attempt_fact(jr, wave, "cutover.connectors-hwms", &b, errstr, errstr_size)))
		return err;
	if (b && !json_object_get(cut, "connectors")) {
		json_decref(b);
		*fromp = "connectors-unfinished";
		return KM_ERR_OK;
	}
	json_decref(b);
	if ((err = attempt_fact(jr, wave, "cutover.authority-hwms", &b, errstr, errstr_size)))
		return err;
	if (json_array_size(json_object_get(b, "target_hwms"))) {
		*hwmsp = json_incref(json_object_get(b, "target_hwms"));
		*fromp = "authority";
	} else {
		*fromp = NULL;
	}
	json_decref(b);
	return KM_ERR_OK;
}

/* ---- assess ---------------------------------------------------------------------- */

static km_err_t do_assess(rctx_t *x)
{
	const km_rollback_conf_t *c = x->c;
	char topic[KM_MAPSTORE_NAME_MAX];
	json_t *recs = NULL, *moved = json_array(), *topics = wave_topics(x), *ev = NULL, *t;
	km_err_t err;
	size_t i;

	/* Authority is what the target's authority topic says, which every
	 * process agrees on; the journal's authority step is a second
	 * witness (a crash between the record and the fact leaves only the
	 * record). */
	km_mapstore_authority_topic(c->plan->migration, topic, sizeof(topic));
	err = km_mapstore_read_authority(c->tgt, topic, &recs, x->errstr, x->errstr_size);
	if (err == KM_ERR_NOT_FOUND) {
		recs = json_object();
		err = KM_ERR_OK;
	}
	if (err)
		goto done;
	json_array_foreach(topics, i, t) {
		json_t *r = json_object_get(recs, json_string_value(t));
		const char *a = json_string_value(json_object_get(r, "authority"));
		if (a && !strcmp(a, "target"))
			json_array_append(moved, t);
	}
	/* The path: once journaled it holds (the authority-source step
	 * itself turns the records back to source). */
	const json_t *prev = json_object_get(json_object_get(x->done, "assess"), "body");
	const char *ppath = json_string_value(json_object_get(prev, "path"));
	bool now_moved = json_array_size(moved) || json_object_get(x->cut, "authority");
	if (ppath && !strcmp(ppath, "before") && now_moved) {
		char *list = json_dumps(moved, JSON_COMPACT);
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
				"wave '%s': the authority moved to the target (%s) after this "
				"rollback assessed it as still the source: look at the journal "
				"(another cutover process?); nothing changed",
				c->wave, json_array_size(moved) ? list : "per the journal");
		free(list);
		emit(x, "assess", "nogo", 0, NULL, x->errstr);
		goto done;
	}
	x->moved = ppath ? !strcmp(ppath, "after") : now_moved;
	if (x->moved && !x->start) {
		/* Connectors step begun, not finished: some connectors may run
		 * on the target, others not; each one's side would have to be
		 * guessed (the cutover finishes it: each phase is idempotent).
		 * No start at all: a journal from before the authority step
		 * measured it; nothing can be copied back exactly. */
		bool half = x->start_from && !strcmp(x->start_from, "connectors-unfinished");
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
				"wave '%s' %s (run `kmigrate cutover --wave %s` to finish it, then "
				"roll back); nothing changed",
				c->wave,
				half ? "stopped inside its cutover's connectors step: some "
				       "connectors may run on the target and others not"
				     : "is cut over but neither its switch step nor the target HWMs "
				       "of its authority step are journaled: the start of the "
				       "target's new history is unknown",
				c->wave);
		emit(x, "assess", "nogo", 0, NULL, x->errstr);
		goto done;
	}
	json_t *steps = json_array();
	for (int s = 0; km_cutover_steps[s]; s++)
		if (json_object_get(x->cut, km_cutover_steps[s]))
			json_array_append_new(steps, json_string(km_cutover_steps[s]));
	const json_t *fplan = json_object_get(json_object_get(x->fence_fact, "body"), "plan");
	ev = json_pack("{s:s, s:s, s:o, s:O, s:s?, s:O}", "authority", x->moved ? "target" : "source",
		       "path", x->moved ? "after" : "before", "cutover_steps_done", steps, "topics",
		       topics, "fence", json_string_value(json_object_get(fplan, "kind")),
		       "moved", moved);
	if (x->moved)
		json_object_set_new(ev, "history_start_from", json_string(x->start_from));
	if (x->fence_fact)
		json_object_set(ev, "fence_fact", json_object_get(x->fence_fact, "id"));
	if (json_object_get(x->done, "assess"))
		goto done; /* re-checked, journaled once */
	if (c->dry_run)
		emit(x, "assess", "would", 0, ev, NULL);
	else
		err = step_done(x, "assess", ev, false);
done:
	json_decref(recs);
	json_decref(moved);
	json_decref(topics);
	json_decref(ev);
	return err;
}

/* ---- unfence --------------------------------------------------------------------- */

static km_err_t do_unfence(rctx_t *x)
{
	const km_rollback_conf_t *c = x->c;
	const json_t *body = json_object_get(x->fence_fact, "body");
	const json_t *plan = json_object_get(body, "plan"), *inverse = json_object_get(body, "inverse");
	json_t *ev = NULL, *check = NULL;
	km_err_t err = KM_ERR_OK;

	if (!x->fence_fact) {
		/* Nothing of kmigrate's to undo: no fence plan was journaled
		 * (the cutover stopped at its gate), or the fence is external
		 * and its owner lifts it. */
		json_t *f = json_object_get(x->cut, "fence");
		const char *kind =
			json_string_value(json_object_get(json_object_get(f, "body"), "kind"));
		if (kind && !strcmp(kind, "external"))
			ev = json_pack("{s:s, s:s?, s:s}", "kind", "external", "owner",
				       c->plan->cutover.fence_owner, "responsibility",
				       "the external fence's owner lifts it: kmigrate applied none");
		else
			ev = json_pack("{s:s, s:s}", "kind", "none", "why",
				       "no fence plan was journaled: the cutover stopped before its "
				       "fence");
		if (c->dry_run)
			emit(x, "unfence", "would", 0, ev, NULL);
		else
			err = step_done(x, "unfence", ev, false);
		goto done;
	}
	if (c->dry_run) {
		ev = json_pack("{s:O, s:I}", "inverse", inverse, "fence_fact",
			       json_integer_value(json_object_get(x->fence_fact, "id")));
		emit(x, "unfence", "would", 0, ev, NULL);
		goto done;
	}
	emit(x, "unfence", "start", 0, NULL, NULL);
	/* The journaled inverses (the fence's and its super-user cover's),
	 * never ones computed now: only the plan taken before the fence knows
	 * what was there. */
	err = km_fence_doc_undo(c->ks, body, &check, x->errstr, x->errstr_size);
	if (err == KM_ERR_NOGO)
		emit(x, "unfence", "nogo", 0, NULL, x->errstr);
	if (err)
		goto done;
	ev = json_pack("{s:s, s:I, s:O, s:O}", "kind",
		       json_string_value(json_object_get(plan, "kind")), "fence_fact",
		       json_integer_value(json_object_get(x->fence_fact, "id")), "inverse", inverse,
		       "restored", check);
	err = step_done(x, "unfence", ev, false);
done:
	json_decref(ev);
	json_decref(check);
	return err;
}

/* ---- the path after the authority moved: helpers ---------------------------------- */

/* The wave's partitions as the switch journaled them: [{"topic",
 * "target_topic", "partition", "hwm"}] (borrowed from x->cut). */
static const json_t *switch_parts(const rctx_t *x)
{
	if (x->start)
		return x->start;
	return json_object_get(
		json_object_get(json_object_get(x->cut, KM_CUTOVER_LAST_STEP), "body"),
		"target_hwms");
}

/* The distinct target topic names of the wave, a new array of borrowed
 * strings (NULL-terminated), their count in *np. */
static const char **target_names(const rctx_t *x, size_t *np)
{
	const json_t *parts = switch_parts(x), *r;
	const char **names = km_calloc(json_array_size(parts) + 1, sizeof(*names));
	size_t i, n = 0;

	json_array_foreach(parts, i, r) {
		const char *tt = json_string_value(json_object_get(r, "target_topic"));
		if (tt && (!n || strcmp(names[n - 1], tt)))
			names[n++] = tt;
	}
	*np = n;
	return names;
}

/* One fact outside the step facts (the target fence's plan), committed on
 * its own; its id in *idp. */
static km_err_t journal_one(rctx_t *x, const char *kind, const json_t *body, json_int_t *idp)
{
	const km_rollback_conf_t *c = x->c;
	json_t *facts = NULL;
	char subj[400];
	km_err_t err;

	snprintf(subj, sizeof(subj), "wave:%s", c->wave);
	if ((err = km_journal_begin(c->jr, x->errstr, x->errstr_size)))
		return err;
	if ((!x->run_id && (err = km_journal_run_begin(c->jr, "rollback", c->args, &x->run_id,
						       x->errstr, x->errstr_size))) ||
	    (err = km_journal_fact(c->jr, x->run_id, kind, subj, "INFO", body, x->errstr,
				   x->errstr_size)) ||
	    (err = km_journal_commit(c->jr, x->errstr, x->errstr_size))) {
		km_journal_rollback(c->jr);
		return err;
	}
	if (!(err = km_journal_facts(c->jr, x->run_id, kind, &facts, x->errstr, x->errstr_size)))
		*idp = json_integer_value(
			json_object_get(json_array_get(facts, json_array_size(facts) - 1), "id"));
	json_decref(facts);
	return err;
}

/* ---- fence-target ---------------------------------------------------------------- */

/* The ACL fence of the target (cutover.fence: acl): one DENY WRITE per
 * principal that the target's ACLs, read now, let write the wave's target
 * topics, kmigrate's own excepted -- the guard's computation
 * (km_guard_writers) -- so that kmigrate's forward copy can write them
 * again after the rollback: the target is back to its guarded state of
 * before the cutover.  What cannot be fenced so is NO-GO, nothing changed:
 * no authorizer, an ALLOW WRITE for User:*, kmigrate's principal unknown,
 * a super user among the writers, a probe that does not write them (its
 * canary would prove nothing). */
static km_err_t acl_target_plan(rctx_t *x, const char **names, size_t n, json_t **planp)
{
	const km_rollback_conf_t *c = x->c;
	const char *probe = c->plan->cutover.fence_probe.principal;
	json_t *targets = json_array(), *denies = NULL, *nf, *pr;
	km_err_t err;
	size_t i;

	*planp = NULL;
	for (i = 0; i < n; i++)
		json_array_append_new(targets, json_string(names[i]));
	if ((err = km_guard_writers(c->kt, c->plan, targets, &denies, x->errstr,
				    x->errstr_size)))
		goto done;
	if (!json_array_size(denies)) {
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
				"wave '%s': no principal but kmigrate's may write the wave's target "
				"topics, so cutover.fence_probe '%s' cannot prove a fence there: "
				"grant it WRITE on them on the target; nothing changed",
				c->wave, probe ? probe : "(none declared)");
		goto done;
	}
	if ((err = km_fence_plan_denies(c->kt, denies, NULL, planp, x->errstr, x->errstr_size)))
		goto done;
	nf = json_object_get(*planp, "not_fenceable");
	pr = json_object_get(*planp, "principals");
	if (json_array_size(nf)) {
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
				"wave '%s': '%s' writes the target topics and is a super user of "
				"the target, which ACLs do not bind: use cutover.fence: config or "
				"external for the rollback; nothing changed",
				c->wave,
				json_string_value(json_object_get(json_array_get(nf, 0), "principal")));
		goto done;
	}
	bool has = false;
	json_array_foreach(pr, i, nf)
		has = has || (probe && !strcmp(json_string_value(nf), probe));
	if (!has) {
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
				"wave '%s': cutover.fence_probe '%s' has no ALLOW WRITE on the wave's "
				"target topics, so its canary would prove nothing about the target "
				"fence: grant it WRITE on them on the target; nothing changed",
				c->wave, probe ? probe : "(none declared)");
		goto done;
	}
done:
	if (err) {
		json_decref(*planp);
		*planp = NULL;
	}
	json_decref(targets);
	json_decref(denies);
	return err;
}

/* The target now takes the wave's writes; the reverse copy must read a
 * history that no longer grows, so the target's wave topics are fenced
 * with the same module as the source was, the plan journaled before it
 * is applied (fact "rollback.fence": {"plan", "inverse"}, as
 * cutover.fence), then proven. */
static km_err_t do_fence_target(rctx_t *x)
{
	const km_rollback_conf_t *c = x->c;
	json_t *plan = NULL, *inverse = NULL, *doc = NULL, *proof = NULL, *ev = NULL;
	const char **names = NULL;
	size_t n = 0;
	km_err_t err = KM_ERR_OK;

	if (c->plan->cutover.fence == KM_PLAN_FENCE_EXTERNAL) {
		ev = json_pack("{s:s, s:s?, s:s}", "kind", "external", "owner",
			       c->plan->cutover.fence_owner, "responsibility",
			       "the external fence's owner stops every write to the wave's target "
			       "topics; kmigrate proves it only by the drain's quiet check");
		if (c->dry_run)
			emit(x, "fence-target", "would", 0, ev, NULL);
		else
			err = step_done(x, "fence-target", ev, false);
		goto done;
	}
	if (x->rfence) {
		/* A crash after the plan was journaled: apply THAT plan (a
		 * fresh one on a fenced topic cannot know what was there). */
		doc = json_incref(json_object_get(x->rfence, "body"));
	} else {
		names = target_names(x, &n);
		/* The config fence refuses transaction markers: the wave's
		 * declared transactional producers make it a refusal, as at
		 * the cutover (km_fence_plan also refuses an open
		 * transaction: LSO != HWM). */
		const char *txns[64];
		size_t ntxns = 0;
		const km_plan_wave_t *w = km_plan_wave(c->plan, c->wave);
		for (size_t k = 0; k < c->plan->producers_cnt && ntxns < 64; k++) {
			const km_plan_producer_t *pp = &c->plan->producers[k];
			bool writes = false;
			for (size_t m = 0; m < pp->topics_cnt && !writes; m++)
				writes = km_plan_wave_has_topic(c->plan, w, pp->topics[m]);
			if (writes && pp->transactions == KM_PLAN_YES)
				txns[ntxns++] = pp->transactional_id ? pp->transactional_id : pp->name;
		}
		if ((err = c->plan->cutover.fence == KM_PLAN_FENCE_ACL
				   ? acl_target_plan(x, names, n, &plan)
				   : km_fence_plan(c->kt, names, n, NULL, 0, txns, ntxns, "config",
						   NULL, &plan, x->errstr, x->errstr_size)) ||
		    (err = km_fence_inverse(plan, &inverse, x->errstr, x->errstr_size))) {
			if (err == KM_ERR_NOGO)
				emit(x, "fence-target", "nogo", 0, NULL, x->errstr);
			goto done;
		}
		doc = json_pack("{s:O, s:O, s:s}", "plan", plan, "inverse", inverse, "cluster",
				"target");
		if (c->dry_run) {
			emit(x, "fence-target", "would", 0, doc, NULL);
			goto done;
		}
		json_int_t id = 0;
		if ((err = journal_one(x, "rollback.fence", doc, &id)))
			goto done;
		x->rfence = json_pack("{s:I, s:O}", "id", id, "body", doc);
	}
	if (c->dry_run) {
		ev = json_pack("{s:O, s:b}", "plan", doc, "journaled", 1);
		emit(x, "fence-target", "would", 0, ev, NULL);
		goto done;
	}
	emit(x, "fence-target", "start", 0, NULL, NULL);
	err = km_fence_doc_enforce(c->kt, c->tgt, c->plan, doc, "target fence", &proof, x->errstr,
				   x->errstr_size);
	if (err == KM_ERR_NOGO) {
		emit(x, "fence-target", "nogo", 0, proof, x->errstr);
		goto done;
	}
	if (err)
		goto done;
	ev = json_pack("{s:s, s:O, s:O, s:O}", "kind",
		       json_string_value(json_object_get(json_object_get(doc, "plan"), "kind")),
		       "fence_fact", json_object_get(x->rfence, "id"), "inverse",
		       json_object_get(doc, "inverse"), "proof", proof);
	err = step_done(x, "fence-target", ev, false);
done:
	free(names);
	json_decref(plan);
	json_decref(inverse);
	json_decref(doc);
	json_decref(proof);
	json_decref(ev);
	return err;
}

/* ---- drain-target ---------------------------------------------------------------- */

/* Every wave partition on the target with LSO == HWM, the HWMs still for
 * cutover.quiet_period: no transaction left open (its records would be
 * neither copied nor abandoned), nothing arriving. */
static km_err_t do_drain_target(rctx_t *x)
{
	const km_rollback_conf_t *c = x->c;
	const json_t *parts = switch_parts(x), *r;
	size_t n = json_array_size(parts), i;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n + 1);
	int64_t *prev = km_calloc(n + 1, sizeof(*prev)), *hwm = km_calloc(n + 1, sizeof(*hwm));
	int64_t quiet_ms = c->plan->cutover.quiet_period * 1000, still_since = 0;
	int timeout = c->drain_timeout_ms > 0 ? c->drain_timeout_ms : DRAIN_TIMEOUT_MS;
	int64_t deadline = km_mono_ms() + timeout;
	const char *waiting = "the first reading";
	json_t *ev = NULL;
	km_err_t err = KM_ERR_OK;

	json_array_foreach(parts, i, r)
		rd_kafka_topic_partition_list_add(
			l, json_string_value(json_object_get(r, "target_topic")),
			(int32_t)json_integer_value(json_object_get(r, "partition")));
	if (c->dry_run) {
		ev = json_pack("{s:I, s:s}", "quiet_period_s", (json_int_t)c->plan->cutover.quiet_period,
			       "would", "wait until every wave partition on the target has LSO == "
				        "HWM and the HWMs stay still for the quiet period");
		emit(x, "drain-target", "would", 0, ev, NULL);
		goto done;
	}
	emit(x, "drain-target", "start", 0, NULL, NULL);
	for (;;) {
		bool same = still_since > 0, open = false;
		if ((err = km_kafka_list_offsets(c->kt, l, KM_KAFKA_HWM, x->errstr, x->errstr_size)))
			goto done;
		for (i = 0; i < n; i++)
			hwm[i] = l->elems[i].offset;
		if ((err = km_kafka_list_offsets(c->kt, l, KM_KAFKA_LSO, x->errstr, x->errstr_size)))
			goto done;
		for (i = 0; i < n; i++) {
			same = same && hwm[i] == prev[i];
			open = open || l->elems[i].offset < hwm[i];
		}
		if (!same) {
			still_since = km_mono_ms();
			memcpy(prev, hwm, n * sizeof(*hwm));
			waiting = "the target's high watermarks to stay still";
		} else if (open) {
			waiting = "open transactions on the target to end (LSO < HWM)";
		} else if (km_mono_ms() - still_since >= quiet_ms) {
			break;
		}
		if ((c->stop && *c->stop) || km_mono_ms() > deadline) {
			err = km_seterr(x->errstr, x->errstr_size,
					c->stop && *c->stop ? KM_ERR_TIMEOUT : KM_ERR_NOGO,
					"wave '%s' did not drain on the target %s: still waiting for "
					"%s (re-run to resume at drain-target)",
					c->wave, c->stop && *c->stop ? "(stopped)" : "in time", waiting);
			emit(x, "drain-target", "nogo", 0, NULL, x->errstr);
			goto done;
		}
		poll(NULL, 0, POLL_MS);
	}
	json_t *rows = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(rows, json_pack("{s:s, s:i, s:I}", "target_topic",
						      l->elems[i].topic, "partition",
						      l->elems[i].partition, "hwm",
						      (json_int_t)hwm[i]));
	ev = json_pack("{s:o, s:I}", "partitions", rows, "quiet_period_s",
		       (json_int_t)c->plan->cutover.quiet_period);
	err = step_done(x, "drain-target", ev, false);
done:
	rd_kafka_topic_partition_list_destroy(l);
	free(prev);
	free(hwm);
	json_decref(ev);
	return err;
}

/* ---- reverse --------------------------------------------------------------------- */

/* The source offsets of every committed record in [from, end) of each
 * (topic, partition, from, end) that no reverse run holds: foreign records
 * (a stale source producer's) in *foreignp, [{"topic", "partition",
 * "offset"}] (at most 20 named). */
static km_err_t foreign_records(rctx_t *x, const json_t *checks, const km_mapstore_t *rev,
				json_t **foreignp)
{
	const char *extra[] = {"group.id", "kmigrate-rollback-check", "enable.partition.eof", "true",
			       "isolation.level", "read_committed", "enable.auto.commit", "false",
			       NULL};
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk = NULL;
	json_t *foreign = json_array(), *ck;
	size_t i, left = 0;
	char rerr[512];
	km_err_t err = KM_ERR_OK;

	*foreignp = NULL;
	json_array_foreach(checks, i, ck)
		if (json_integer_value(json_object_get(ck, "from")) <
		    json_integer_value(json_object_get(ck, "end"))) {
			rd_kafka_topic_partition_list_add(
				l, json_string_value(json_object_get(ck, "topic")),
				(int32_t)json_integer_value(json_object_get(ck, "partition")))
				->offset = json_integer_value(json_object_get(ck, "from"));
			json_object_set_new((json_t *)ck, "open", json_true());
			left++;
		}
	if (!left)
		goto done;
	if ((err = km_kafka_conf_new(x->c->src, extra, &conf, x->errstr, x->errstr_size)))
		goto done;
	if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_KAFKA,
				"cannot create the rollback's reader on the source: %s", rerr);
		goto done;
	}
	rd_kafka_poll_set_consumer(rk);
	rd_kafka_assign(rk, l);
	int64_t deadline = km_mono_ms() + KM_KAFKA_TIMEOUT_MS;
	while (left > 0 && !err) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		if (km_mono_ms() > deadline) {
			err = km_seterr(x->errstr, x->errstr_size, KM_ERR_TIMEOUT,
					"reading the source's copied-back records of wave '%s' did "
					"not reach their end in %d ms (re-run to resume at reverse)",
					x->c->wave, KM_KAFKA_TIMEOUT_MS);
		}
		if (!m)
			continue;
		deadline = km_mono_ms() + KM_KAFKA_TIMEOUT_MS;
		json_array_foreach(checks, i, ck) {
			const char *t = json_string_value(json_object_get(ck, "topic"));
			int p = (int)json_integer_value(json_object_get(ck, "partition"));
			int64_t end = json_integer_value(json_object_get(ck, "end"));
			if (!json_is_true(json_object_get(ck, "open")) || !m->rkt ||
			    strcmp(rd_kafka_topic_name(m->rkt), t) || m->partition != p)
				continue;
			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || (!m->err && m->offset >= end)) {
				json_object_set_new((json_t *)ck, "open", json_false());
				left--;
			} else if (m->err) {
				err = km_seterr(x->errstr, x->errstr_size, KM_ERR_KAFKA,
						"reading '%s'[%d] on the source failed: %s", t, p,
						rd_kafka_message_errstr(m));
			} else {
				const km_offmap_t *rm = km_mapstore_offmap(
					rev, json_string_value(json_object_get(ck, "target_topic")), p);
				bool ours = false;
				for (size_t k = 0; rm && k < rm->cnt && !ours; k++)
					ours = m->offset >= rm->runs[k].tgt_first &&
					       m->offset < rm->runs[k].tgt_first + rm->runs[k].count;
				if (!ours && json_array_size(foreign) < 20)
					json_array_append_new(foreign,
							      json_pack("{s:s, s:i, s:I}", "topic", t,
									"partition", p, "offset",
									(json_int_t)m->offset));
			}
		}
		rd_kafka_message_destroy(m);
	}
done:
	if (rk) {
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	rd_kafka_topic_partition_list_destroy(l);
	if (err)
		json_decref(foreign);
	else
		*foreignp = foreign;
	return err;
}

/* The reverse engine, in-process, until caught up with the fenced
 * target's end (it does not grow: fence-target), then the check that each
 * source partition after its drained end holds only what the reverse copy
 * wrote.  Resumable: the engine resumes at its committed progress on the
 * source, and a caught-up run copies nothing. */
static km_err_t do_reverse(rctx_t *x)
{
	const km_rollback_conf_t *c = x->c;
	km_repl_start_t *start = NULL;
	km_repl_opts_t o;
	km_repl_stats_t st = {0};
	km_mapstore_t *rev = NULL;
	json_t *hwms = NULL, *checks = json_array(), *foreign = NULL, *ev = NULL, *r, *dp;
	int n = 0;
	size_t i, j;
	km_err_t err;

	if (c->dry_run) {
		ev = json_pack("{s:O, s:s}", "start", switch_parts(x), "would",
			       "copy every committed target record after the switch back onto the "
			       "source (the reverse engine, exactly once), then check the source "
			       "holds nothing else after its drained end");
		emit(x, "reverse", "would", 0, ev, NULL);
		err = KM_ERR_OK;
		goto done;
	}
	emit(x, "reverse", "start", 0, NULL, NULL);
	if ((err = km_rollback_reverse_starts(c->jr, c->ks, c->plan, c->wave, NULL, &hwms, &start,
					      &n, x->errstr, x->errstr_size))) {
		if (err == KM_ERR_NOGO)
			emit(x, "reverse", "nogo", 0, NULL, x->errstr);
		goto done;
	}
	km_repl_opts_init(&o);
	o.direction = "reverse";
	o.start = start;
	o.n_start = n;
	o.until_caught_up = true;
	o.tasks = c->plan->replication.tasks;
	if (c->plan->replication.txn_max_records)
		o.txn_max_records = c->plan->replication.txn_max_records;
	if (c->plan->replication.txn_max_ms)
		o.txn_max_ms = c->plan->replication.txn_max_ms;
	o.stop = c->stop;
	if ((err = km_replicate_run(c->plan, c->src, c->tgt, &o, &st, x->errstr, x->errstr_size)))
		goto done;
	if (c->stop && *c->stop) {
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_TIMEOUT,
				"the reverse copy of wave '%s' was stopped before it caught up "
				"(re-run to resume at reverse)",
				c->wave);
		goto done;
	}
	/* What each source partition should hold after its drained end (the
	 * cutover's drain evidence): only records the reverse map holds. */
	if ((err = km_mapstore_open(c->plan->migration, "reverse", c->src, &rev, x->errstr,
				    x->errstr_size)))
		goto done;
	const json_t *drained =
		json_object_get(json_object_get(json_object_get(x->cut, "drain"), "body"),
				"partitions");
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
	json_array_foreach(hwms, i, r) {
		const char *t = json_string_value(json_object_get(r, "topic"));
		int p = (int)json_integer_value(json_object_get(r, "partition"));
		int64_t from = -1;
		json_array_foreach(drained, j, dp)
			if (!strcmp(json_string_value(json_object_get(dp, "topic")), t) &&
			    json_integer_value(json_object_get(dp, "partition")) == p)
				from = json_integer_value(json_object_get(dp, "hwm"));
		if (from < 0) {
			/* No drain evidence (an external fence's drain does
			 * journal it; a damaged journal does not): from the
			 * first reverse-copied record on. */
			const km_offmap_t *rm = km_mapstore_offmap(
				rev, json_string_value(json_object_get(r, "target_topic")), p);
			from = rm && rm->cnt ? rm->runs[0].tgt_first : 0;
		}
		json_array_append_new(checks, json_pack("{s:s, s:O, s:i, s:I, s:I}", "topic", t,
							"target_topic",
							json_object_get(r, "target_topic"),
							"partition", p, "from", (json_int_t)from,
							"end", (json_int_t)-1));
		rd_kafka_topic_partition_list_add(l, t, p);
	}
	err = km_kafka_list_offsets(c->ks, l, KM_KAFKA_LSO, x->errstr, x->errstr_size);
	for (i = 0; !err && i < json_array_size(checks); i++)
		json_object_set_new(json_array_get(checks, i), "end",
				    json_integer(l->elems[i].offset));
	rd_kafka_topic_partition_list_destroy(l);
	if (err || (err = foreign_records(x, checks, rev, &foreign)))
		goto done;
	json_array_foreach(checks, i, r)
		json_object_del(r, "open");
	if (json_array_size(foreign)) {
		json_t *f0 = json_array_get(foreign, 0);
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
				"source '%s'[%d] holds a record at offset %lld that the reverse copy "
				"did not write (%zu such records found): a producer wrote the source "
				"after its fence was lifted; stop it, look at those records, then "
				"re-run the rollback",
				json_string_value(json_object_get(f0, "topic")),
				(int)json_integer_value(json_object_get(f0, "partition")),
				(long long)json_integer_value(json_object_get(f0, "offset")),
				json_array_size(foreign));
		ev = json_pack("{s:O}", "foreign", foreign);
		emit(x, "reverse", "nogo", 0, ev, x->errstr);
		goto done;
	}
	ev = json_pack("{s:I, s:I, s:O, s:O}", "records", (json_int_t)st.records, "transactions",
		       (json_int_t)st.transactions, "start", hwms, "source_checked", checks);
	err = step_done(x, "reverse", ev, false);
done:
	free(start);
	km_mapstore_destroy(rev);
	json_decref(hwms);
	json_decref(checks);
	json_decref(foreign);
	json_decref(ev);
	return err;
}

/* ---- the wave's connectors (lib/connect.h) --------------------------------------- */

/* The connector steps' common end: NOGO reported, else the fact (or the
 * dry run's "would"), evidence = both connectors' states per phase. */
static km_err_t connector_step(rctx_t *x, const char *step, km_err_t err, json_t *cev)
{
	if (err == KM_ERR_NOGO)
		emit(x, step, "nogo", 0, NULL, x->errstr);
	if (!err && x->c->dry_run)
		emit(x, step, "would", 0, cev, NULL);
	else if (!err)
		err = step_done(x, step, cev, false);
	json_decref(cev);
	return err;
}

/* Before fence-target: the wave's source connectors on the target are
 * producers of its target topics; stopped gracefully, their last offset
 * commit covers every record the target acknowledged, and the drain that
 * follows sees a history that no longer grows. */
static km_err_t do_stop_target_connectors(rctx_t *x)
{
	json_t *cev = NULL;
	km_err_t err;

	if (!x->c->dry_run)
		emit(x, "stop-target-connectors", "start", 0, NULL, NULL);
	err = km_connect_rollback_stop(x->c->plan, x->c->wave, false, x->c->dry_run, 0, &cev,
				       x->errstr, x->errstr_size);
	return connector_step(x, "stop-target-connectors", err, cev);
}

/* The wave's partitions as km_offsets_translate_back takes them:
 * [{"topic", "target_topic", "partition", "switch_hwm"}], a new array. */
static json_t *back_parts(const rctx_t *x)
{
	json_t *parts = json_array(), *r;
	size_t i;

	json_array_foreach(switch_parts(x), i, r)
		json_array_append_new(parts, json_pack("{s:O, s:O, s:O, s:O}", "topic",
						       json_object_get(r, "topic"), "target_topic",
						       json_object_get(r, "target_topic"), "partition",
						       json_object_get(r, "partition"), "switch_hwm",
						       json_object_get(r, "hwm")));
	return parts;
}

/* After reverse (the source holds the target's history), before
 * offsets-back (which reads the groups' target positions: the target
 * sinks' must be final): the connectors' positions go back -- those the
 * cutover's connectors step moved (it is in the attempt; a cutover that
 * stopped before it moved none, lib/connect.h). */
static km_err_t do_connectors_back(rctx_t *x)
{
	json_t *parts = back_parts(x), *cev = NULL;
	km_err_t err;

	if (!x->c->dry_run)
		emit(x, "connectors-back", "start", 0, NULL, NULL);
	err = km_connect_rollback_offsets(x->c->plan, x->c->ks, x->c->kt, x->c->wave, parts,
					  json_object_get(x->cut, "connectors") != NULL,
					  x->c->dry_run, 0, &cev, x->errstr, x->errstr_size);
	json_decref(parts);
	return connector_step(x, "connectors-back", err, cev);
}

/* ---- offsets-back ---------------------------------------------------------------- */

/* The groups of the sinks connectors-back journaled as not moved (the
 * cutover stopped before its connectors step): their source connector
 * kept consuming, its source position is its own, and it is a live member
 * of the group (offsets-back would be refused, and wrong).
 * [{"group", "connector", "why"}], a new array. */
static json_t *unmoved_sink_groups(const rctx_t *x)
{
	json_t *out = json_array(), *cn, *ph;
	size_t i, j;

	json_array_foreach(json_object_get(json_object_get(json_object_get(x->done,
									   "connectors-back"),
							   "body"),
					   "connectors"),
			   i, cn)
		json_array_foreach(json_object_get(cn, "phases"), j, ph)
			if (json_string_value(json_object_get(ph, "phase")) &&
			    !strcmp(json_string_value(json_object_get(ph, "phase")), "not-moved") &&
			    json_string_value(json_object_get(ph, "group")))
				json_array_append_new(
					out,
					json_pack("{s:O, s:O, s:s}", "group",
						  json_object_get(ph, "group"), "connector",
						  json_object_get(cn, "name"), "why",
						  "its sink connector never moved: the source one "
						  "kept consuming, its position is its own"));
	return out;
}

static bool group_in(const json_t *skipped, const char *gid)
{
	json_t *r;
	size_t i;

	json_array_foreach(skipped, i, r)
		if (!strcmp(json_string_value(json_object_get(r, "group")), gid))
			return true;
	return false;
}

static km_err_t do_offsets_back(rctx_t *x)
{
	const km_rollback_conf_t *c = x->c;
	const km_plan_wave_t *w = km_plan_wave(c->plan, c->wave);
	json_t *parts = back_parts(x), *done_groups = json_array(), *ev = NULL;
	json_t *skipped = unmoved_sink_groups(x);
	size_t i;
	km_err_t err = KM_ERR_OK;

	if (c->dry_run) {
		json_t *ids = json_array();
		for (i = 0; i < w->groups_cnt; i++)
			json_array_append_new(ids, json_string(w->groups[i].name));
		ev = json_pack("{s:o, s:s}", "groups", ids, "would",
			       "translate each group's committed target positions back to the "
			       "source and commit them there (refused while a source group has "
			       "live members)");
		emit(x, "offsets-back", "would", 0, ev, NULL);
		goto done;
	}
	emit(x, "offsets-back", "start", 0, NULL, NULL);
	for (i = 0; i < w->groups_cnt && !err; i++) {
		const char *gid = w->groups[i].name;
		json_t *g = NULL, *row = NULL, *commit = json_array();
		size_t j;

		if (group_in(skipped, gid)) {
			json_decref(commit);
			continue;
		}

		if ((err = km_offsets_translate_back(c->plan, c->ks, c->kt, gid, parts, &g, x->errstr,
						     x->errstr_size)))
			break;
		if (!json_is_true(json_object_get(g, "translatable"))) {
			json_array_foreach(json_object_get(g, "partitions"), j, row)
				if (!strcmp(json_string_value(json_object_get(row, "status")),
					    "proof-failed"))
					break;
			err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
					"group '%s' of wave '%s': the position %lld of target '%s'[%d] "
					"translated to source offset %lld, and the records there "
					"differ: nothing committed; look at both logs",
					gid, c->wave,
					(long long)json_integer_value(json_object_get(row, "committed")),
					json_string_value(json_object_get(row, "target_topic")),
					(int)json_integer_value(json_object_get(row, "partition")),
					(long long)json_integer_value(
						json_object_get(row, "source_offset")));
			emit(x, "offsets-back", "nogo", 0, g, x->errstr);
		}
		json_array_foreach(err ? NULL : json_object_get(g, "partitions"), j, row)
			if (json_object_get(row, "source_offset"))
				json_array_append_new(
					commit, json_pack("{s:O, s:O, s:O}", "target_topic",
							  json_object_get(row, "topic"), "partition",
							  json_object_get(row, "partition"),
							  "target_offset",
							  json_object_get(row, "source_offset")));
		/* km_offsets_commit on the source: its "target" is the
		 * cluster it is given; refused while the group has members. */
		if (!err && json_array_size(commit)) {
			json_t *doc = json_pack("{s:s, s:O, s:b}", "group", gid, "partitions", commit,
						"translatable", 1);
			err = km_offsets_commit(c->ks, doc, x->errstr, x->errstr_size);
			json_decref(doc);
			if (err == KM_ERR_NOGO)
				emit(x, "offsets-back", "nogo", 0, NULL, x->errstr);
		}
		if (!err)
			json_array_append(done_groups, g);
		json_decref(commit);
		json_decref(g);
	}
	if (err)
		goto done;
	ev = json_pack("{s:O, s:O}", "groups", done_groups, "skipped", skipped);
	err = step_done(x, "offsets-back", ev, false);
done:
	json_decref(skipped);
	json_decref(parts);
	json_decref(done_groups);
	json_decref(ev);
	return err;
}

/* ---- authority-source ------------------------------------------------------------ */

static void authority_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	rd_kafka_resp_err_t *first = opaque;
	(void)rk;
	if (m->err && !*first)
		*first = m->err;
}

/* ---- the round trip: the forward map told what the source got back ------------- */

/* The partition count of topic on k (the forward tasks topic: T). */
static km_err_t partition_count(rctx_t *x, km_kafka_t *k, const char *topic, int *np)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(km_kafka_rk(k), topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(km_kafka_rk(k), 0, rkt, &md, KM_KAFKA_TIMEOUT_MS);
	km_err_t err = KM_ERR_OK;

	*np = 0;
	if (e || !md || md->topic_cnt != 1 || md->topics[0].err || !md->topics[0].partition_cnt)
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_KAFKA,
				"cannot read the partitions of '%s' on the target: %s (re-run the "
				"rollback)",
				topic,
				rd_kafka_err2str(e ? e : md && md->topic_cnt ? md->topics[0].err
									  : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
	else
		*np = md->topics[0].partition_cnt;
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return err;
}

/* One transaction as forward task k (its transactional id: a dead task's
 * open transaction is aborted, and no live one exists: the caller checked
 * the replicators' group is empty) holding recs [{"topic", "partition",
 * "key", "value"}] on the forward bookkeeping topics. */
static km_err_t commit_as_task(rctx_t *x, int k, const json_t *recs)
{
	char txid[600], rerr[512];
	const char *extra[] = {"transactional.id", txid, "enable.idempotence", "true", "acks", "all",
			       NULL};
	rd_kafka_resp_err_t derr = RD_KAFKA_RESP_ERR_NO_ERROR;
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk = NULL;
	rd_kafka_error_t *e = NULL;
	json_t *r;
	size_t i;
	km_err_t err;

	snprintf(txid, sizeof(txid), "kmigrate.%s.task.%d", x->c->plan->migration, k);
	if ((err = km_kafka_conf_new(x->c->tgt, extra, &conf, x->errstr, x->errstr_size)))
		return err;
	rd_kafka_conf_set_dr_msg_cb(conf, authority_dr);
	rd_kafka_conf_set_opaque(conf, &derr);
	if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		return km_seterr(x->errstr, x->errstr_size, KM_ERR_KAFKA,
				 "cannot create the forward bookkeeping producer on the target: %s",
				 rerr);
	}
	if ((e = rd_kafka_init_transactions(rk, 60000)) || (e = rd_kafka_begin_transaction(rk)))
		goto done;
	json_array_foreach(recs, i, r) {
		const char *key = json_string_value(json_object_get(r, "key"));
		const char *val = json_string_value(json_object_get(r, "value"));
		rd_kafka_resp_err_t perr = rd_kafka_producev(
			rk, RD_KAFKA_V_TOPIC(json_string_value(json_object_get(r, "topic"))),
			RD_KAFKA_V_PARTITION(k), RD_KAFKA_V_KEY(key, strlen(key)),
			RD_KAFKA_V_VALUE((void *)val, strlen(val)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_END);
		if (perr && !derr)
			derr = perr;
	}
	if (!derr && rd_kafka_flush(rk, 60000))
		derr = RD_KAFKA_RESP_ERR__TIMED_OUT;
	if (!derr)
		e = rd_kafka_commit_transaction(rk, 60000);
done:
	if (e || derr)
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_KAFKA,
				"writing the forward map of wave '%s' as task %d on the target "
				"failed: %s (nothing of it is committed; re-run the rollback)",
				x->c->wave, k, e ? rd_kafka_error_string(e) : rd_kafka_err2str(derr));
	if (e)
		rd_kafka_error_destroy(e);
	rd_kafka_destroy(rk);
	return err;
}

/* Before the authority goes back to the source: the forward map and
 * progress on the target record the records the reverse copy appended to
 * the source as already present on the target at the offsets they were
 * copied from (the inverse of the reverse runs), so that the forward
 * replicator, when it copies the wave's topics again, starts after them
 * and offset translation stays exact across the trip.  Idempotent: runs
 * the forward map already holds (source offsets below its last run's end)
 * are not written again. */
static km_err_t forward_round_trip(rctx_t *x, json_t **evp)
{
	const km_rollback_conf_t *c = x->c;
	km_mapstore_names_t fn;
	km_mapstore_t *fwd = NULL, *prog = NULL, *rev = NULL;
	json_t *bytask = json_object(), *ev = json_array(), *r;
	char key[KM_MAPSTORE_KEY_MAX], val[KM_MAPSTORE_VALUE_MAX], kb[32];
	int ntasks = 0, group = 0;
	size_t i;
	km_err_t err;

	*evp = NULL;
	km_mapstore_names(c->plan->migration, NULL, &fn);
	if ((err = km_mapstore_open(c->plan->migration, NULL, c->tgt, &fwd, x->errstr,
				    x->errstr_size)) ||
	    (err = km_mapstore_read_progress_all(c->tgt, fn.progress, &prog, x->errstr,
						 x->errstr_size)) ||
	    (err = km_mapstore_open(c->plan->migration, "reverse", c->src, &rev, x->errstr,
				    x->errstr_size)) ||
	    (err = partition_count(x, c->kt, fn.tasks, &ntasks)) ||
	    (err = km_mapstore_read_layout(c->tgt, fn.tasks, &group, x->errstr, x->errstr_size)))
		goto done;
	/* No layout record: a map from before layouts, spread (lib/mapstore.h). */
	if (!group)
		group = 1;
	json_array_foreach(switch_parts(x), i, r) {
		const char *st = json_string_value(json_object_get(r, "topic"));
		const char *tt = json_string_value(json_object_get(r, "target_topic"));
		int p = (int)json_integer_value(json_object_get(r, "partition"));
		const km_offmap_t *rm = km_mapstore_offmap(rev, tt, p);
		const km_offmap_t *fm = km_mapstore_offmap(fwd, st, p);
		const km_mapstore_progress_t *pr = km_mapstore_progress(prog, st, p);
		int64_t fend = fm && fm->cnt ? fm->runs[fm->cnt - 1].src_first +
						       fm->runs[fm->cnt - 1].count
					     : 0;
		int written = 0;
		if (!rm || !rm->cnt)
			continue;
		snprintf(kb, sizeof(kb), "%d", km_mapstore_task_of(st, p, ntasks, group));
		json_t *recs = json_object_get(bytask, kb);
		if (!recs)
			json_object_set_new(bytask, kb, recs = json_array());
		km_mapstore_key_encode(st, p, key, sizeof(key));
		for (size_t k = 0; k < rm->cnt; k++) {
			/* Reverse run: target offsets src_first.. -> source
			 * offsets tgt_first..; forward: the other way. */
			km_offrun_t fr = {.src_first = rm->runs[k].tgt_first,
					  .tgt_first = rm->runs[k].src_first,
					  .count = rm->runs[k].count};
			if (fr.src_first < fend)
				continue; /* written by an earlier run of this step */
			if (km_mapstore_run_encode(&fr, val, sizeof(val)) < 0) {
				err = km_seterr(x->errstr, x->errstr_size, KM_ERR_BUG,
						"cannot encode a forward run of '%s'[%d]", st, p);
				goto done;
			}
			json_array_append_new(recs, json_pack("{s:s, s:s, s:s}", "topic", fn.offmap,
							      "key", key, "value", val));
			written++;
		}
		if (!written)
			continue;
		const km_offrun_t *last = &rm->runs[rm->cnt - 1];
		km_mapstore_progress_t np = {.next = last->tgt_first + last->count,
					     .tgt_next = last->src_first + last->count};
		snprintf(np.topic_id, sizeof(np.topic_id), "%s", pr ? pr->topic_id : "");
		if (km_mapstore_progress_encode(&np, val, sizeof(val)) < 0) {
			err = km_seterr(x->errstr, x->errstr_size, KM_ERR_BUG,
					"cannot encode the forward progress of '%s'[%d]", st, p);
			goto done;
		}
		json_array_append_new(recs, json_pack("{s:s, s:s, s:s}", "topic", fn.progress, "key",
						      key, "value", val));
		json_array_append_new(ev, json_pack("{s:s, s:i, s:i, s:I, s:I}", "topic", st,
						    "partition", p, "runs", written, "next",
						    (json_int_t)np.next, "tgt_next",
						    (json_int_t)np.tgt_next));
	}
	const char *kk;
	json_t *recs;
	json_object_foreach(bytask, kk, recs)
		if (json_array_size(recs) && (err = commit_as_task(x, atoi(kk), recs)))
			goto done;
	*evp = json_incref(ev);
done:
	km_mapstore_destroy(fwd);
	km_mapstore_destroy(prog);
	km_mapstore_destroy(rev);
	json_decref(bytask);
	json_decref(ev);
	return err;
}

/* Authority -> source.  The forward replicator reads these records and
 * would copy the wave's topics again from its last progress: the records
 * the reverse copy appended to the source would reach the target a second
 * time.  Recording them in the forward map as already present (the round
 * trip) is not built, so this step refuses while a forward replicator is
 * running (its group on the target has members); see rollback.md. */
static km_err_t do_authority_source(rctx_t *x)
{
	const km_rollback_conf_t *c = x->c;
	char topic[KM_MAPSTORE_NAME_MAX], group[400], clients[1024];
	json_t *topics = wave_topics(x), *recs = NULL, *mine = json_object(), *ev = NULL, *t;
	json_t *fwd_written = NULL;
	int members = 0;
	size_t i;
	km_err_t err = KM_ERR_OK;

	km_mapstore_authority_topic(c->plan->migration, topic, sizeof(topic));
	if (c->dry_run) {
		ev = json_pack("{s:s, s:O, s:s}", "topic", topic, "topics", topics, "would",
			       "record authority = source for each topic on the target, read back");
		emit(x, "authority-source", "would", 0, ev, NULL);
		goto done;
	}
	emit(x, "authority-source", "start", 0, NULL, NULL);
	snprintf(group, sizeof(group), "kmigrate.%s.replicators", c->plan->migration);
	/* A replicator that just ended may still be listed until the group's
	 * session timeout drops it (10 s classic, 45 s KIP-848): waited for,
	 * a live one is refused. */
	for (int64_t until = km_mono_ms() + MEMBERS_WAIT_MS;;) {
		if ((err = km_offsets_group_members(c->kt, group, &members, clients,
						    sizeof(clients), x->errstr, x->errstr_size)))
			goto done;
		if (!members || km_mono_ms() > until || (c->stop && *c->stop))
			break;
		poll(NULL, 0, POLL_MS * 2);
	}
	if (members > 0) {
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
				"a forward replicator is running (group '%s' on the target has %d "
				"member(s): %s): with the authority back on the source it would copy "
				"the records the rollback appended to the source onto the target "
				"again; stop it, then re-run the rollback",
				group, members, clients);
		emit(x, "authority-source", "nogo", 0, NULL, x->errstr);
		goto done;
	}
	/* The record carries this run's id: the run row must exist first. */
	if ((err = km_journal_begin(c->jr, x->errstr, x->errstr_size)))
		goto done;
	if ((!x->run_id && (err = km_journal_run_begin(c->jr, "rollback", c->args, &x->run_id,
						       x->errstr, x->errstr_size))) ||
	    (err = km_journal_commit(c->jr, x->errstr, x->errstr_size))) {
		km_journal_rollback(c->jr);
		goto done;
	}
	if ((err = forward_round_trip(x, &fwd_written)))
		goto done;
	if ((err = km_cutover_write_authority(c->tgt, topic, "source", c->wave, x->run_id,
						topics, x->errstr, x->errstr_size)) ||
	    (err = km_mapstore_read_authority(c->tgt, topic, &recs, x->errstr, x->errstr_size)))
		goto done;
	json_array_foreach(topics, i, t) {
		const char *st = json_string_value(t);
		json_t *r = json_object_get(recs, st);
		if (!r || strcmp(json_string_value(json_object_get(r, "authority")), "source") ||
		    json_integer_value(json_object_get(r, "run_id")) != x->run_id) {
			err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
					"the authority record of '%s' read back from '%s' is not the "
					"one just written (another kmigrate process?); re-run the "
					"rollback",
					st, topic);
			emit(x, "authority-source", "nogo", 0, NULL, x->errstr);
			goto done;
		}
		json_object_set(mine, st, r);
	}
	ev = json_pack("{s:s, s:O, s:O}", "topic", topic, "records", mine, "forward_map_written",
		       fwd_written);
	err = step_done(x, "authority-source", ev, false);
done:
	json_decref(fwd_written);
	json_decref(topics);
	json_decref(recs);
	json_decref(mine);
	json_decref(ev);
	return err;
}

/* The switch-back instructions: who re-points which client at the source
 * (the reverse of the cutover's switch). */
static json_t *switch_back(const rctx_t *x)
{
	const km_plan_t *plan = x->c->plan;
	const km_plan_wave_t *w = km_plan_wave(plan, x->c->wave);
	json_t *prods = json_array(), *cons = json_array();
	size_t i, k;

	for (i = 0; i < w->producers_cnt; i++) {
		const char *owner = NULL;
		for (k = 0; k < plan->producers_cnt; k++)
			if (!strcmp(plan->producers[k].name, w->producers[i].name))
				owner = plan->producers[k].owner;
		json_array_append_new(prods, json_pack("{s:s, s:s?}", "name", w->producers[i].name,
						       "owner", owner));
	}
	for (i = 0; i < w->consumers_cnt; i++) {
		const char *owner = NULL, *group = NULL;
		for (k = 0; k < plan->consumers_cnt; k++)
			if (!strcmp(plan->consumers[k].name, w->consumers[i].name)) {
				owner = plan->consumers[k].owner;
				group = plan->consumers[k].group;
			}
		json_array_append_new(cons, json_pack("{s:s, s:s?, s:s?}", "name",
						      w->consumers[i].name, "group", group, "owner",
						      owner));
	}
	return json_pack("{s:s, s:O, s:o, s:o, s:s}", "bootstrap", plan->source.bootstrap,
			 "topics", json_object_get(json_object_get(json_object_get(x->done, "assess"),
								   "body"),
						   "topics"),
			 "producers", prods, "consumers", cons, "redeploy",
			 "kmigrate redeploys nothing: each owner re-points their client at the "
			 "source bootstrap and source topics; the groups resume there at the "
			 "positions offsets-back committed; the target stays fenced");
}

/* ---- reset ----------------------------------------------------------------------- */

static km_err_t do_reset(rctx_t *x)
{
	json_t *steps = json_array(), *ev;
	km_err_t err = KM_ERR_OK;

	for (int s = 0; km_cutover_steps[s]; s++)
		if (json_object_get(x->cut, km_cutover_steps[s]))
			json_array_append_new(steps, json_string(km_cutover_steps[s]));
	/* The target group positions an offsets step committed stay: nobody
	 * consumes on the target before the authority moves, and the next
	 * cutover commits them again from the then-current source positions. */
	ev = json_pack("{s:o, s:s, s:s}", "closed_steps", steps, "authority", "source", "next",
		       "the next `kmigrate cutover --wave` starts again at its gate");
	if (x->moved) {
		/* The target stays fenced: its inverse is journaled here for
		 * whoever lifts it (the next cutover, which re-plans anyway). */
		json_object_set_new(ev, "switch_back", switch_back(x));
		json_object_set_new(ev, "target_fence",
				    x->rfence ? json_pack("{s:O, s:O}", "fact",
							  json_object_get(x->rfence, "id"),
							  "inverse",
							  json_object_get(json_object_get(x->rfence,
											  "body"),
									  "inverse"))
					      : json_pack("{s:s}", "kind", "external"));
	}
	/* The wave's connectors the cutover stopped run again on the source
	 * (lib/connect.h): before the authority moved its source connectors
	 * (stop-connectors); after it every one, now that the authority is
	 * the source's again and connectors-back gave them their positions
	 * (the target twins STOPPED since, else NOGO). */
	if (x->moved || json_object_get(x->cut, "stop-connectors")) {
		json_t *cev = NULL;
		err = km_connect_resume_sources(x->c->plan, x->c->wave, x->moved, x->c->dry_run,
						&cev, x->errstr, x->errstr_size);
		if (err == KM_ERR_NOGO)
			emit(x, "reset", "nogo", 0, NULL, x->errstr);
		if (err) {
			json_decref(ev);
			return err;
		}
		json_object_set_new(ev, "connectors", json_incref(json_object_get(cev, "connectors")));
		json_decref(cev);
	}
	if (x->c->dry_run)
		emit(x, "reset", "would", 0, ev, NULL);
	else
		err = step_done(x, "reset", ev, true);
	json_decref(ev);
	return err;
}

/* ---- the machine ----------------------------------------------------------------- */

km_err_t km_rollback_run(const km_rollback_conf_t *conf, json_t **resultp, char *errstr,
			 size_t errstr_size)
{
	rctx_t x = {.c = conf, .steps = json_array(), .errstr = errstr,
		    .errstr_size = errstr_size};
	const char *result = conf->dry_run ? "would" : "rolled-back";
	km_err_t err;

	if (resultp)
		*resultp = NULL;
	if (!km_plan_wave(conf->plan, conf->wave)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
				"no wave '%s' in the plan's cutover.waves: name one of them",
				conf->wave);
		goto done;
	}
	if ((err = km_cutover_reset_id(conf->jr, conf->wave, &x.after, errstr, errstr_size)) ||
	    (err = km_cutover_load(conf->jr, conf->wave, &x.cut, &x.fence_fact, errstr,
				   errstr_size)) ||
	    (err = load_done(&x)) ||
	    (err = history_start(conf->jr, conf->wave, x.cut, &x.start, &x.start_from, errstr,
				 errstr_size)))
		goto done;
	if (!json_object_size(x.cut) && !x.fence_fact) {
		/* No cutover attempt (none ran, or the last was rolled back). */
		result = "nothing";
		goto done;
	}
	const char *const *path = path_before;
	for (int s = 0; path[s]; s++) {
		const char *step = path[s];
		json_t *f = json_object_get(x.done, step);
		/* assess reads only and runs every time: the authority may have
		 * moved since an earlier run of this rollback assessed it. */
		if (f && !strcmp(step, "assess")) {
			if ((err = do_assess(&x)))
				break;
		}
		/* The path is assess's choice. */
		if (!strcmp(step, "assess") && x.moved)
			path = km_rollback_steps;
		if (f) {
			emit(&x, step, "already-done", json_integer_value(json_object_get(f, "id")),
			     NULL, NULL);
			continue;
		}
		err = !strcmp(step, "assess")             ? do_assess(&x)
		      : !strcmp(step, "fence-target")     ? do_fence_target(&x)
		      : !strcmp(step, "drain-target")     ? do_drain_target(&x)
		      : !strcmp(step, "unfence")          ? do_unfence(&x)
		      : !strcmp(step, "reverse")          ? do_reverse(&x)
		      : !strcmp(step, "offsets-back")     ? do_offsets_back(&x)
		      : !strcmp(step, "stop-target-connectors") ? do_stop_target_connectors(&x)
		      : !strcmp(step, "connectors-back")  ? do_connectors_back(&x)
		      : !strcmp(step, "authority-source") ? do_authority_source(&x)
							  : do_reset(&x);
		if (err)
			break;
		if (!strcmp(step, "assess") && x.moved)
			path = km_rollback_steps;
	}
done:
	if (x.run_id) {
		char e2[256];
		km_journal_run_end(conf->jr, x.run_id, km_err_exit_code(err),
				   err ? "stopped" : "done", e2, sizeof(e2));
	}
	if (resultp)
		*resultp = json_pack("{s:s, s:O, s:I, s:s}", "wave", conf->wave, "steps", x.steps,
				     "run_id", (json_int_t)x.run_id, "result", result);
	json_decref(x.steps);
	json_decref(x.cut);
	json_decref(x.fence_fact);
	json_decref(x.done);
	json_decref(x.rfence);
	json_decref(x.start);
	return err;
}

/* ---- the reverse copy's start points (replicate --reverse, reverse) -------------- */

km_err_t km_rollback_reverse_starts(km_journal_t *jr, km_kafka_t *ks, const km_plan_t *plan,
				    const char *wave, const char *src_principal, json_t **hwmsp,
				    km_repl_start_t **startp, int *np, char *errstr,
				    size_t errstr_size)
{
	json_t *done = NULL, *fence = NULL, *hwms = NULL, *r;
	const char **names = NULL;
	char *fenced = NULL;
	size_t i, nn = 0;
	km_err_t err;

	*hwmsp = NULL;
	*startp = NULL;
	*np = 0;
	if (!km_plan_wave(plan, wave))
		return km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
				 "no wave '%s' in the plan's cutover.waves: name one of them", wave);
	if ((err = km_cutover_load(jr, wave, &done, &fence, errstr, errstr_size)))
		goto done;
	const char *from;
	if ((err = history_start(jr, wave, done, &hwms, &from, errstr, errstr_size)))
		goto done;
	if (!json_array_size(hwms)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"wave '%s' has no journaled start of the target's new history "
				"(its switch step, or the target HWMs of its authority step): "
				"nothing can be copied back (run `kmigrate cutover --wave %s` to "
				"its switch first; before the authority, `kmigrate rollback` only "
				"undoes the fence)",
				wave, wave);
		goto done;
	}
	*startp = km_calloc(json_array_size(hwms), sizeof(**startp));
	names = km_calloc(json_array_size(hwms), sizeof(*names));
	json_array_foreach(hwms, i, r) {
		km_repl_start_t *s = &(*startp)[(*np)++];
		s->topic = json_string_value(json_object_get(r, "topic"));
		s->partition = (int)json_integer_value(json_object_get(r, "partition"));
		s->offset = json_integer_value(json_object_get(r, "hwm"));
		if (!s->topic || s->offset < 0) {
			err = km_seterr(errstr, errstr_size, KM_ERR_BUG,
					"wave '%s': the switch step's target_hwms entry %zu is not a "
					"topic, partition and high watermark: the journal is damaged, "
					"look at it",
					wave, i);
			goto done;
		}
		if (!nn || strcmp(names[nn - 1], s->topic))
			names[nn++] = s->topic;
	}
	/* The source fence: the config fence refuses every produce, kmigrate's
	 * too; the ACL fence refuses the principals it denies, kmigrate's when
	 * it is also one of the wave's producers.  Lifting a fence is the
	 * rollback's decision, never a side effect of copying. */
	json_array_foreach(src_principal ? json_object_get(json_object_get(json_object_get(
							       fence, "body"), "plan"), "add")
					 : NULL,
			   i, r) {
		const char *perm = json_string_value(json_object_get(r, "permission"));
		const char *pr = json_string_value(json_object_get(r, "principal"));
		if (perm && pr && !strcmp(perm, "DENY") && !strcmp(pr, src_principal)) {
			err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
					"the ACL fence of wave '%s' denies '%s' on '%s', and kmigrate "
					"writes the source as '%s': lift that DENY first (kmigrate "
					"does not lift a fence to copy back)",
					wave, json_string_value(json_object_get(r, "name")),
					src_principal, src_principal);
			goto done;
		}
	}
	if (ks && (err = km_fence_config_fenced(ks, names, nn, &fenced, errstr, errstr_size)))
		goto done;
	if (fenced)
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"source topic '%s' is fenced by config (max.message.bytes refuses "
				"every record, kmigrate's too): the config fence must be lifted "
				"first, then run `kmigrate replicate --reverse --wave %s` again",
				fenced, wave);
done:
	free(fenced);
	free(names);
	json_decref(done);
	json_decref(fence);
	if (err) {
		free(*startp);
		*startp = NULL;
		*np = 0;
		json_decref(hwms);
	} else {
		*hwmsp = hwms;
	}
	return err;
}

/* ---- the target fence after the rollback ------------------------------------------ */

km_err_t km_rollback_target_fences(km_journal_t *jr, const char *wave, json_t **fencesp,
				   char *errstr, size_t errstr_size)
{
	static const char *const kinds[] = {"rollback.fence", "rollback.guard", NULL};
	json_t *lifted = NULL, *facts = NULL, *open = json_array(), *f, *l;
	char subj[400];
	km_err_t err;
	size_t i, j;

	*fencesp = NULL;
	snprintf(subj, sizeof(subj), "wave:%s", wave);
	if ((err = km_journal_facts(jr, 0, KM_ROLLBACK_FENCE_LIFTED, &lifted, errstr, errstr_size)))
		goto done;
	for (int k = 0; kinds[k]; k++) {
		if ((err = km_journal_facts(jr, 0, kinds[k], &facts, errstr, errstr_size)))
			goto done;
		json_array_foreach(facts, i, f) {
			const char *s = json_string_value(json_object_get(f, "subject"));
			json_int_t id = json_integer_value(json_object_get(f, "id"));
			bool gone = false;
			if (!s || strcmp(s, subj))
				continue;
			json_array_foreach(lifted, j, l)
				gone = gone || json_integer_value(json_object_get(
						       json_object_get(l, "body"), "fence_fact")) == id;
			if (!gone) {
				json_object_set_new(f, "kind", json_string(kinds[k]));
				json_array_append(open, f);
			}
		}
		json_decref(facts);
		facts = NULL;
	}
	*fencesp = open;
	open = NULL;
done:
	json_decref(lifted);
	json_decref(facts);
	json_decref(open);
	return err;
}

km_err_t km_rollback_target_fence_undo(km_kafka_t *kt, const json_t *fence, json_t **evidencep,
				       char *errstr, size_t errstr_size)
{
	const json_t *doc = json_object_get(fence, "body");
	json_t *check = NULL;
	km_err_t err;

	*evidencep = NULL;
	/* The journaled inverse, never one computed now: only the plan taken
	 * before the fence knows what was there. */
	if ((err = km_fence_doc_undo(kt, doc, &check, errstr, errstr_size)))
		return err;
	*evidencep = json_pack(
		"{s:O, s:O, s:s?, s:O, s:o}", "fence_fact", json_object_get(fence, "id"), "fact_kind",
		json_object_get(fence, "kind"), "kind",
		json_string_value(json_object_get(json_object_get(doc, "plan"), "kind")), "inverse",
		json_object_get(doc, "inverse"), "restored", check);
	return KM_ERR_OK;
}

/* Puts the guard back on the wave's target topics (the DENY-only ACL plan
 * of km_guard_writers' principals), journaled as "rollback.guard" before it
 * is applied, so that the next cutover's authority step lifts it like the
 * rollback's own fence.  *guardp: the journaled fact ({"id", "body"}), or
 * NULL and *findingp (owned) when the target cannot be guarded. */
static km_err_t guard_back(rctx_t *x, const json_t *fences, json_t **guardp, char **findingp)
{
	const km_rollback_conf_t *c = x->c;
	const char **names = NULL;
	json_t *targets = json_array(), *denies = NULL, *plan = NULL, *inv = NULL, *doc = NULL, *f;
	size_t n = 0, i;
	km_err_t err;

	*guardp = NULL;
	*findingp = NULL;
	json_array_foreach(fences, i, f)
		if (!strcmp(json_string_value(json_object_get(f, "kind")), "rollback.guard")) {
			*guardp = json_incref(f); /* a crash after it was journaled */
			doc = json_incref(json_object_get(f, "body"));
			goto apply;
		}
	names = target_names(x, &n);
	for (i = 0; i < n; i++)
		json_array_append_new(targets, json_string(names[i]));
	err = km_guard_writers(c->kt, c->plan, targets, &denies, x->errstr, x->errstr_size);
	if (err == KM_ERR_NOGO) {
		/* No authorizer, User:*, kmigrate's principal unknown: as
		 * before the first cutover, a finding, not a refusal. */
		*findingp = km_strdup(x->errstr);
		x->errstr[0] = '\0';
		err = KM_ERR_OK;
		goto done;
	}
	if (!err && !json_array_size(denies)) {
		/* Nobody but kmigrate may write the target topics: the
		 * target's ACLs are the guard already. */
		*findingp = NULL;
		goto done;
	}
	if (err || (err = km_fence_plan_denies(c->kt, denies, NULL, &plan, x->errstr,
					       x->errstr_size)) ||
	    (err = km_fence_inverse(plan, &inv, x->errstr, x->errstr_size)))
		goto done;
	doc = json_pack("{s:O, s:O, s:s, s:s}", "plan", plan, "inverse", inv, "cluster", "target",
			"role", "guard");
	json_int_t id = 0;
	if ((err = journal_one(x, "rollback.guard", doc, &id)))
		goto done;
	*guardp = json_pack("{s:I, s:O, s:s}", "id", id, "body", doc, "kind", "rollback.guard");
apply:
	/* The guard is applied (the DENYs exist) before the config fence
	 * goes: the target is never open to a stale producer in between. */
	err = km_fence_doc_apply(c->kt, doc, x->errstr, x->errstr_size);
done:
	free(names);
	json_decref(targets);
	json_decref(denies);
	json_decref(plan);
	json_decref(inv);
	json_decref(doc);
	return err;
}

km_err_t km_rollback_release_target(const km_rollback_conf_t *conf, json_t **resultp,
				    char *errstr, size_t errstr_size)
{
	rctx_t x = {.c = conf, .steps = json_array(), .errstr = errstr,
		    .errstr_size = errstr_size};
	json_t *fences = NULL, *cfg = NULL, *guard = NULL, *ev = NULL, *restored = NULL, *f;
	char *finding = NULL;
	const char *result = "released";
	km_err_t err;
	size_t i;

	if (resultp)
		*resultp = NULL;
	if (!km_plan_wave(conf->plan, conf->wave)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
				"no wave '%s' in the plan's cutover.waves: name one of them",
				conf->wave);
		goto done;
	}
	if ((err = km_rollback_target_fences(conf->jr, conf->wave, &fences, errstr, errstr_size)))
		goto done;
	json_array_foreach(fences, i, f)
		if (!strcmp(json_string_value(json_object_get(f, "kind")), "rollback.fence") &&
		    !strcmp(json_string_value(json_object_get(
				    json_object_get(json_object_get(f, "body"), "plan"), "kind")),
			    "config"))
			cfg = f;
	if (!cfg) {
		/* Nothing of the rollback's refuses kmigrate's writes: an ACL
		 * fence leaves kmigrate's principal out, and the next cutover
		 * lifts it at its authority step. */
		result = "nothing";
		goto done;
	}
	/* The rollback's reset step writes "cutover.reset" with its own
	 * fact: one after the fence says the rollback that fenced is done. */
	json_int_t reset_id = 0;
	if ((err = km_cutover_reset_id(conf->jr, conf->wave, &reset_id, errstr, errstr_size)))
		goto done;
	if (reset_id < json_integer_value(json_object_get(cfg, "id"))) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"the rollback of wave '%s' is not finished (no reset step after its "
				"target fence, journal fact %lld): finish it with `kmigrate rollback "
				"--wave %s`, then release the target; nothing changed",
				conf->wave, (long long)json_integer_value(json_object_get(cfg, "id")),
				conf->wave);
		goto done;
	}
	/* The switch step's partitions name the target topics. */
	json_t *fence_fact = NULL;
	if ((err = km_cutover_load(conf->jr, conf->wave, &x.cut, &fence_fact, errstr,
				   errstr_size)))
		goto done;
	json_decref(fence_fact);
	if (!json_array_size(switch_parts(&x))) {
		/* The attempt was closed by the reset: the target topics come
		 * from the fence plan itself. */
		json_t *rows = json_array(), *t;
		json_array_foreach(json_object_get(json_object_get(json_object_get(cfg, "body"),
								   "plan"),
						   "topics"),
				   i, t)
			json_array_append_new(rows, json_pack("{s:O}", "target_topic",
							      json_object_get(t, "topic")));
		json_decref(x.cut);
		x.cut = json_pack("{s:{s:{s:o}}}", KM_CUTOVER_LAST_STEP, "body", "target_hwms", rows);
	}
	if (conf->dry_run) {
		ev = json_pack("{s:O, s:O, s:s}", "fence_fact", json_object_get(cfg, "id"), "inverse",
			       json_object_get(json_object_get(cfg, "body"), "inverse"), "would",
			       "put the guard back where the target has an authorizer, then undo "
			       "the config fence from its journaled inverse");
		emit(&x, "release-target", "would", 0, ev, NULL);
		result = "would";
		goto done;
	}
	emit(&x, "release-target", "start", 0, NULL, NULL);
	if ((err = guard_back(&x, fences, &guard, &finding)) ||
	    (err = km_rollback_target_fence_undo(conf->kt, cfg, &restored, errstr, errstr_size)))
		goto done;
	json_object_set_new(restored, "by", json_string("release-target"));
	if (guard)
		json_object_set(restored, "guard_fact", json_object_get(guard, "id"));
	if (finding)
		json_object_set_new(restored, "unguarded", json_string(finding));
	json_int_t id = 0;
	if ((err = journal_one(&x, KM_ROLLBACK_FENCE_LIFTED, restored, &id)))
		goto done;
	emit(&x, "release-target", "done", id, restored, NULL);
done:
	if (x.run_id) {
		char e2[256];
		km_journal_run_end(conf->jr, x.run_id, km_err_exit_code(err),
				   err ? "stopped" : "done", e2, sizeof(e2));
	}
	if (resultp)
		*resultp = json_pack("{s:s, s:O, s:I, s:s, s:s?}", "wave", conf->wave, "steps",
				     x.steps, "run_id", (json_int_t)x.run_id, "result", result,
				     "unguarded", finding);
	free(finding);
	json_decref(fences);
	json_decref(guard);
	json_decref(ev);
	json_decref(restored);
	json_decref(x.steps);
	json_decref(x.cut);
	return err;
}
