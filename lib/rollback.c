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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cutover.h"
#include "fence.h"
#include "mapstore.h"
#include "rollback.h"
#include "util.h"

const char *const km_rollback_steps[] = {"assess", "unfence", "reset", NULL};

typedef struct rctx_s {
	const km_rollback_conf_t *c;
	int64_t run_id;     /* 0 until the first fact */
	json_int_t after;   /* the attempt's boundary: the latest cutover.reset */
	json_t *cut;        /* the cutover attempt's done steps: name -> fact */
	json_t *fence_fact; /* its journaled fence plan and inverse, or NULL */
	json_t *done;       /* this rollback's done steps: name -> fact */
	json_t *steps;      /* result rows */
	char *errstr;
	size_t errstr_size;
} rctx_t;

static void emit(rctx_t *x, const char *step, const char *state, json_int_t fact_id,
		 const json_t *evidence, const char *reason)
{
	json_t *ev = json_pack("{s:s, s:s, s:s, s:s}", "event", "step", "wave", x->c->wave, "step",
			       step, "state", state);
	if (fact_id)
		json_object_set_new(ev, "fact_id", json_integer(fact_id));
	if (evidence)
		json_object_set(ev, "evidence", (json_t *)evidence);
	if (reason)
		json_object_set_new(ev, "reason", json_string(reason));
	if (strcmp(state, "start"))
		json_array_append_new(x->steps, json_pack("{s:s, s:s}", "step", step, "state", state));
	if (x->c->event_cb)
		x->c->event_cb(x->c->opaque, ev);
	json_decref(ev);
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
	if (json_array_size(moved) || json_object_get(x->cut, "authority")) {
		char *list = json_dumps(moved, JSON_COMPACT);
		err = km_seterr(x->errstr, x->errstr_size, KM_ERR_NOGO,
				"wave '%s' is cut over (authority is the target for %s): rolling "
				"back after the authority moved needs the reverse replication of "
				"issue 11, which is not built yet; nothing changed",
				c->wave, json_array_size(moved) ? list : "its topics, per the journal");
		free(list);
		emit(x, "assess", "nogo", 0, NULL, x->errstr);
		goto done;
	}
	json_t *steps = json_array();
	for (int s = 0; km_cutover_steps[s]; s++)
		if (json_object_get(x->cut, km_cutover_steps[s]))
			json_array_append_new(steps, json_string(km_cutover_steps[s]));
	const json_t *fplan = json_object_get(json_object_get(x->fence_fact, "body"), "plan");
	ev = json_pack("{s:s, s:o, s:O, s:s?}", "authority", "source", "cutover_steps_done", steps,
		       "topics", topics, "fence", json_string_value(json_object_get(fplan, "kind")));
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
	    (err = load_done(&x)))
		goto done;
	if (!json_object_size(x.cut) && !x.fence_fact) {
		/* No cutover attempt (none ran, or the last was rolled back). */
		result = "nothing";
		goto done;
	}
	for (int s = 0; km_rollback_steps[s]; s++) {
		const char *step = km_rollback_steps[s];
		json_t *f = json_object_get(x.done, step);
		/* assess reads only and runs every time: the authority may have
		 * moved since an earlier run of this rollback assessed it. */
		if (f && !strcmp(step, "assess")) {
			if ((err = do_assess(&x)))
				break;
		}
		if (f) {
			emit(&x, step, "already-done", json_integer_value(json_object_get(f, "id")),
			     NULL, NULL);
			continue;
		}
		err = !strcmp(step, "assess")    ? do_assess(&x)
		      : !strcmp(step, "unfence") ? do_unfence(&x)
						 : do_reset(&x);
		if (err)
			break;
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
	return err;
}
