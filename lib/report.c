#include "report.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cutover.h"
#include "util.h"

/* ---- the plan as the report shows it ------------------------------------ */

static json_t *jstr_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *names(const km_plan_name_t *n, size_t cnt)
{
	json_t *a = json_array();
	for (size_t i = 0; i < cnt; i++)
		json_array_append_new(a, json_string(n[i].name));
	return a;
}

static json_t *artifacts(const km_plan_artifact_t *a, size_t cnt)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < cnt; i++)
		json_array_append_new(arr, json_pack("{s:s, s:o, s:o}", "name", a[i].name, "owner",
						     jstr_or_null(a[i].owner), "validation",
						     jstr_or_null(a[i].validation)));
	return arr;
}

json_t *km_report_plan_json(const km_plan_t *plan)
{
	json_t *p = json_object(), *a;
	size_t i;

	json_object_set_new(p, "migration", json_string(plan->migration));
	/* Bootstrap and owner only: usernames and where passwords come from
	 * are not the auditor's business and stay out of the journal. */
	json_object_set_new(p, "source",
			    json_pack("{s:s, s:o, s:o}", "bootstrap", plan->source.bootstrap, "owner",
				      jstr_or_null(plan->source.owner), "connect_url",
				      jstr_or_null(plan->source.connect_url)));
	json_object_set_new(p, "target",
			    json_pack("{s:s, s:o, s:o}", "bootstrap", plan->target.bootstrap, "owner",
				      jstr_or_null(plan->target.owner), "connect_url",
				      jstr_or_null(plan->target.connect_url)));
	a = json_array();
	for (i = 0; i < plan->topics.include_cnt; i++)
		json_array_append_new(a, jstr_or_null(plan->topics.include[i].pattern));
	json_object_set_new(p, "include", a);
	a = json_array();
	for (i = 0; i < plan->topics.exclude_cnt; i++)
		json_array_append_new(a, jstr_or_null(plan->topics.exclude[i].pattern));
	json_object_set_new(p, "exclude", a);
	a = json_array();
	for (i = 0; i < plan->topics.rules_cnt; i++) {
		const km_plan_rule_t *r = &plan->topics.rules[i];
		json_array_append_new(
			a, json_pack("{s:o, s:s, s:s, s:s, s:o}", "match", jstr_or_null(r->match.pattern),
				     "ordering", km_plan_ordering_str(r->ordering), "duplicates",
				     km_plan_duplicates_str(r->duplicates), "replay",
				     km_plan_replay_str(r->replay), "owner", jstr_or_null(r->owner)));
	}
	json_object_set_new(p, "rules", a);
	a = json_array();
	for (i = 0; i < plan->groups_cnt; i++) {
		const km_plan_group_t *g = &plan->groups[i];
		char buf[80];
		json_array_append_new(
			a, json_pack("{s:s, s:s, s:o, s:o}", "id", g->id, "restart",
				     km_plan_group_restart_str(g, buf, sizeof(buf)), "owner",
				     jstr_or_null(g->owner), "chosen_by", jstr_or_null(g->chosen_by)));
	}
	json_object_set_new(p, "groups", a);
	a = json_array();
	for (i = 0; i < plan->producers_cnt; i++) {
		const km_plan_producer_t *r = &plan->producers[i];
		json_t *ts = json_array();
		for (size_t k = 0; k < r->topics_cnt; k++)
			json_array_append_new(ts, json_string(r->topics[k]));
		json_array_append_new(
			a, json_pack("{s:s, s:o, s:s, s:s, s:o, s:o}", "name", r->name, "topics", ts,
				     "idempotence", km_plan_tri_str(r->idempotence), "transactions",
				     km_plan_tri_str(r->transactions), "owner", jstr_or_null(r->owner),
				     "validation", jstr_or_null(r->validation)));
	}
	json_object_set_new(p, "producers", a);
	a = json_array();
	for (i = 0; i < plan->consumers_cnt; i++) {
		const km_plan_consumer_t *c = &plan->consumers[i];
		json_array_append_new(
			a, json_pack("{s:s, s:o, s:s, s:o, s:o}", "name", c->name, "group",
				     jstr_or_null(c->group), "isolation_level",
				     km_plan_isolation_str(c->isolation_level), "owner",
				     jstr_or_null(c->owner), "validation", jstr_or_null(c->validation)));
	}
	json_object_set_new(p, "consumers", a);
	a = json_array();
	for (i = 0; i < plan->connectors_cnt; i++) {
		const km_plan_connector_t *c = &plan->connectors[i];
		json_array_append_new(a, json_pack("{s:s, s:o, s:o, s:o, s:o}", "name", c->name,
						   "class", jstr_or_null(c->class_name),
						   "side_effects", jstr_or_null(c->side_effects),
						   "owner", jstr_or_null(c->owner), "validation",
						   jstr_or_null(c->validation)));
	}
	json_object_set_new(p, "connectors", a);
	json_object_set_new(p, "dashboards", artifacts(plan->dashboards, plan->dashboards_cnt));
	json_object_set_new(p, "alerts", artifacts(plan->alerts, plan->alerts_cnt));
	json_object_set_new(p, "runbooks", artifacts(plan->runbooks, plan->runbooks_cnt));
	a = json_array();
	for (i = 0; i < plan->cutover.waves_cnt; i++) {
		const km_plan_wave_t *w = &plan->cutover.waves[i];
		json_array_append_new(
			a, json_pack("{s:s, s:b, s:o, s:o, s:o, s:o, s:o}", "name", w->name, "all",
				     w->all, "topics", names(w->topics, w->topics_cnt), "groups",
				     names(w->groups, w->groups_cnt), "producers",
				     names(w->producers, w->producers_cnt), "consumers",
				     names(w->consumers, w->consumers_cnt), "owner",
				     jstr_or_null(w->owner)));
	}
	json_object_set_new(p, "waves", a);
	json_object_set_new(p, "fence",
			    json_pack("{s:s, s:o}", "kind", km_plan_fence_str(plan->cutover.fence),
				      "owner", jstr_or_null(plan->cutover.fence_owner)));
	json_object_set_new(p, "gates",
			    json_pack("{s:I, s:I, s:I, s:I}", "max_lag_records",
				      (json_int_t)plan->gates.max_lag_records, "max_lag_seconds",
				      (json_int_t)plan->gates.max_lag_seconds, "max_mismatches",
				      (json_int_t)plan->gates.max_mismatches, "max_evidence_age",
				      (json_int_t)plan->gates.max_evidence_age));
	a = json_array();
	for (i = 0; i < plan->rollback.triggers_cnt; i++) {
		const km_plan_trigger_t *t = &plan->rollback.triggers[i];
		json_array_append_new(a, json_pack("{s:o, s:o, s:f, s:o}", "name",
						   jstr_or_null(t->name), "metric",
						   jstr_or_null(t->metric), "threshold", t->threshold,
						   "owner", jstr_or_null(t->owner)));
	}
	json_object_set_new(p, "rollback_triggers", a);
	return p;
}

/* ---- reading the journal ------------------------------------------------- */

static const char *js(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static json_int_t ji(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static const char *nz(const char *s)
{
	return s ? s : "";
}

static bool prefixed(const char *s, const char *p)
{
	return s && !strncmp(s, p, strlen(p));
}

/* The wave of a subject "wave:W" or "wave:W step:S" (owned), or NULL. */
static char *wave_of(const char *subject)
{
	if (!prefixed(subject, "wave:"))
		return NULL;
	const char *w = subject + 5, *sp = strstr(w, " step:");
	return sp ? km_strndup(w, (size_t)(sp - w)) : km_strdup(w);
}

static const char *step_of(const char *subject)
{
	const char *s = subject ? strstr(subject, " step:") : NULL;
	return s ? s + 6 : NULL;
}

static void add_unique(json_t *list, const char *s)
{
	json_t *v;
	size_t i;
	json_array_foreach(list, i, v)
		if (!strcmp(json_string_value(v), s))
			return;
	json_array_append_new(list, json_string(s));
}

/* The facts of the latest run of command that journaled a fact of kind
 * (new array; empty when there is none). */
static km_err_t latest_run_facts(km_journal_t *jr, const char *command, const char *kind,
				 json_t **runp, json_t **factsp, char *errstr, size_t errstr_size)
{
	km_err_t err;

	*factsp = NULL;
	if ((err = km_journal_last_run(jr, command, 0, kind, runp, errstr, errstr_size)))
		return err;
	if (!*runp) {
		*factsp = json_array();
		return KM_ERR_OK;
	}
	return km_journal_facts(jr, ji(*runp, "id"), NULL, factsp, errstr, errstr_size);
}

/* ---- the summary --------------------------------------------------------- */

/* The commands in the order a migration runs them: the phase is the
 * furthest one that ran, until a cutover or rollback step exists. */
static const char *const phase_commands[] = {"inventory", "plan",     "apply", "check",
					     "replicate", "validate", "offsets", "gate", NULL};
static const char *const phase_names[] = {"inventory", "design",     "apply",   "compatibility",
					  "replication", "validation", "offsets", "gate", NULL};

/* Per wave seen in the journal (cutover or rollback facts, or the plan
 * snapshot): its current attempt (km_cutover_load: a rollback's reset
 * closes the facts before it). */
static km_err_t waves_summary(km_journal_t *jr, const json_t *facts, const json_t *plan_json,
			      json_t **wavesp, char *errstr, size_t errstr_size)
{
	json_t *names_ = json_array(), *out = json_array(), *f, *w;
	km_err_t err = KM_ERR_OK;
	size_t i;

	json_array_foreach(json_object_get(plan_json, "waves"), i, w)
		if (js(w, "name"))
			add_unique(names_, js(w, "name"));
	json_array_foreach(facts, i, f) {
		const char *k = js(f, "kind");
		char *wn;
		if ((prefixed(k, "cutover.") || prefixed(k, "rollback.")) &&
		    (wn = wave_of(js(f, "subject")))) {
			add_unique(names_, wn);
			free(wn);
		}
	}
	json_array_foreach(names_, i, w) {
		const char *wn = json_string_value(w);
		json_t *done = NULL, *fence = NULL, *steps = json_array(), *last = NULL;
		const char *last_step = NULL;
		bool rolled_back = false;
		size_t k;

		if ((err = km_cutover_load(jr, wn, &done, &fence, errstr, errstr_size))) {
			json_decref(steps);
			break;
		}
		for (int s = 0; km_cutover_steps[s]; s++)
			if ((f = json_object_get(done, km_cutover_steps[s]))) {
				json_array_append_new(steps, json_string(km_cutover_steps[s]));
				last_step = km_cutover_steps[s];
				last = f;
			}
		json_array_foreach(facts, k, f)
			if (!strcmp(js(f, "kind"), "cutover.reset")) {
				char *fw = wave_of(js(f, "subject"));
				if (fw && !strcmp(fw, wn))
					rolled_back = true;
				free(fw);
			}
		/* A reset after the latest attempt's last step: rolled back. */
		if (rolled_back && json_object_size(done))
			rolled_back = false;
		json_array_append_new(
			out, json_pack("{s:s, s:o, s:o, s:o, s:s, s:b}", "wave", wn, "steps_done",
				       steps, "last_step", jstr_or_null(last_step), "last_step_at",
				       last ? json_incref(json_object_get(last, "ts_ms")) : json_null(),
				       "authority_journal",
				       json_object_get(done, "authority") ? "target" : "source",
				       "rolled_back", rolled_back));
		json_decref(done);
		json_decref(fence);
	}
	json_decref(names_);
	if (err)
		json_decref(out);
	else
		*wavesp = out;
	return err;
}

static km_err_t summary_of(km_journal_t *jr, const json_t *runs, const json_t *facts,
			   const json_t *plan_json, json_t **outp, char *errstr, size_t errstr_size)
{
	json_t *out = json_object(), *verdicts = json_array(), *waves = NULL, *f, *r;
	json_t *lag = NULL, *sum = NULL;
	const char *phase = "not started";
	char detail[600] = "the journal holds no run yet (start with `kmigrate inventory`)";
	json_int_t at = -1, latest_step_id = 0;
	km_err_t err;
	size_t i, k;

	/* The furthest command that ran (its latest run). */
	for (int c = 0; phase_commands[c]; c++) {
		const json_t *last = NULL;
		json_array_foreach(runs, i, r)
			if (!strcmp(js(r, "command"), phase_commands[c]))
				last = r;
		if (!last)
			continue;
		phase = phase_names[c];
		at = ji(last, "started_ms");
		snprintf(detail, sizeof(detail), "last: `%s` run %lld, %s", phase_commands[c],
			 (long long)ji(last, "id"),
			 json_is_integer(json_object_get(last, "exit_code"))
				 ? (js(last, "summary") ? js(last, "summary") : "ended")
				 : "running or killed");
	}
	if ((err = waves_summary(jr, facts, plan_json, &waves, errstr, errstr_size)))
		goto done;
	/* A cutover or rollback step is further than any command. */
	json_array_foreach(facts, i, f) {
		const char *kd = js(f, "kind");
		if (!strcmp(kd, "cutover.step") || !strcmp(kd, "rollback.step"))
			latest_step_id = ji(f, "id");
	}
	if (latest_step_id) {
		json_array_foreach(facts, i, f)
			if (ji(f, "id") == latest_step_id) {
				char *wn = wave_of(js(f, "subject"));
				bool rb = !strcmp(js(f, "kind"), "rollback.step");
				phase = rb ? "rollback" : "cutover";
				at = ji(f, "ts_ms");
				snprintf(detail, sizeof(detail), "wave '%s': %s step '%s' done%s",
					 wn ? wn : "?", rb ? "rollback" : "cutover",
					 step_of(js(f, "subject")) ? step_of(js(f, "subject")) : "?",
					 !rb && !strcmp(nz(step_of(js(f, "subject"))), KM_CUTOVER_LAST_STEP)
						 ? " (the wave is cut over)"
						 : "");
				free(wn);
			}
	}
	/* The latest verdict of every gate kind and subject. */
	json_array_foreach(facts, i, f) {
		const char *kd = js(f, "kind");
		json_t *v;
		if (!prefixed(kd, "gate."))
			continue;
		bool replaced = false;
		json_array_foreach(verdicts, k, v)
			if (!strcmp(js(v, "kind"), kd) && !strcmp(js(v, "subject"), js(f, "subject"))) {
				json_array_set_new(
					verdicts, k,
					json_pack("{s:s, s:s, s:o, s:O, s:O, s:O}", "kind", kd,
						  "subject", js(f, "subject"), "verdict",
						  jstr_or_null(js(f, "verdict")), "ts_ms",
						  json_object_get(f, "ts_ms"), "fact_id",
						  json_object_get(f, "id"), "run_id",
						  json_object_get(f, "run_id")));
				replaced = true;
				break;
			}
		if (!replaced)
			json_array_append_new(
				verdicts,
				json_pack("{s:s, s:s, s:o, s:O, s:O, s:O}", "kind", kd, "subject",
					  js(f, "subject"), "verdict", jstr_or_null(js(f, "verdict")),
					  "ts_ms", json_object_get(f, "ts_ms"), "fact_id",
					  json_object_get(f, "id"), "run_id",
					  json_object_get(f, "run_id")));
	}
	/* The lag: the latest progress sample of any replicate run. */
	json_array_foreach(facts, i, f)
		if (!strcmp(js(f, "kind"), KM_REPORT_PROGRESS_KIND)) {
			json_t *b = json_object_get(f, "body");
			json_decref(lag);
			lag = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O, s:O, s:O}", "records",
					json_object_get(b, "lag"), "records_per_sec",
					json_object_get(b, "records_per_sec"), "caught_up",
					json_object_get(b, "caught_up"), "partitions",
					json_object_get(b, "partitions"), "ts_ms",
					json_object_get(f, "ts_ms"), "run_id",
					json_object_get(f, "run_id"), "fact_id",
					json_object_get(f, "id"));
		}
	if ((err = km_journal_summary(jr, &sum, errstr, errstr_size)))
		goto done;
	json_object_set_new(out, "phase",
			    json_pack("{s:s, s:s, s:o}", "name", phase, "detail", detail, "at",
				      at >= 0 ? json_integer(at) : json_null()));
	json_object_set_new(out, "waves", waves);
	waves = NULL;
	json_object_set_new(out, "last_verdicts", verdicts);
	verdicts = NULL;
	json_object_set_new(out, "lag", lag ? lag : json_null());
	lag = NULL;
	json_object_set_new(out, "open_findings",
			    json_integer((json_int_t)json_array_size(
				    json_object_get(sum, "open_findings"))));
	*outp = out;
	out = NULL;
done:
	json_decref(sum);
	json_decref(lag);
	json_decref(waves);
	json_decref(verdicts);
	json_decref(out);
	return err;
}

km_err_t km_report_summary(km_journal_t *jr, json_t **outp, char *errstr, size_t errstr_size)
{
	json_t *runs = NULL, *facts = NULL, *plan_json = NULL;
	km_err_t err;

	*outp = NULL;
	if ((err = km_journal_runs(jr, &runs, errstr, errstr_size)) ||
	    (err = km_journal_facts(jr, 0, NULL, &facts, errstr, errstr_size)))
		goto done;
	err = km_journal_snapshot_get(jr, KM_REPORT_PLAN_SNAPSHOT_KIND,
				      KM_REPORT_PLAN_SNAPSHOT_SCOPE, 0, &plan_json, NULL, errstr,
				      errstr_size);
	if (err && err != KM_ERR_NOT_FOUND)
		goto done;
	err = summary_of(jr, runs, facts, plan_json, outp, errstr, errstr_size);
done:
	json_decref(plan_json);
	json_decref(facts);
	json_decref(runs);
	return err;
}

/* ---- HTML ---------------------------------------------------------------- */

/* Everything from the journal goes through esc(): the five characters
 * that could end an attribute or open a tag become entities, so a topic,
 * an owner or a config value is text, whatever it holds. */
static void esc(km_sb_t *sb, const char *s)
{
	const char *p;

	if (!s)
		return;
	for (p = s; *p; p++) {
		switch (*p) {
		case '&': km_sb_puts(sb, "&amp;"); break;
		case '<': km_sb_puts(sb, "&lt;"); break;
		case '>': km_sb_puts(sb, "&gt;"); break;
		case '"': km_sb_puts(sb, "&quot;"); break;
		case '\'': km_sb_puts(sb, "&#39;"); break;
		default: km_sb_add(sb, p, 1);
		}
	}
}

static bool scalars(const json_t *a)
{
	json_t *x;
	size_t i;
	json_array_foreach(a, i, x)
		if (json_is_object(x) || json_is_array(x))
			return false;
	return true;
}

/* A JSON value as cell text: strings as they are, null as an em dash,
 * numbers and booleans printed, a list of those comma-separated (an
 * empty one "none"), objects and other lists as compact JSON. */
static void val(km_sb_t *sb, const json_t *v)
{
	char *s;

	if (!v || json_is_null(v))
		km_sb_puts(sb, "&#8212;");
	else if (json_is_string(v))
		esc(sb, json_string_value(v));
	else if (json_is_integer(v))
		km_sb_printf(sb, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		km_sb_printf(sb, "%.6g", json_real_value(v));
	else if (json_is_boolean(v))
		km_sb_puts(sb, json_is_true(v) ? "yes" : "no");
	else if (json_is_array(v) && !json_array_size(v))
		km_sb_puts(sb, "none");
	else if (json_is_array(v) && scalars(v)) {
		json_t *x;
		size_t i;
		json_array_foreach(v, i, x) {
			if (i)
				km_sb_puts(sb, ", ");
			val(sb, x);
		}
	} else {
		s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
		esc(sb, s);
		free(s);
	}
}

static void when(km_sb_t *sb, json_int_t ms)
{
	char buf[40];

	if (ms <= 0) {
		km_sb_puts(sb, "&#8212;");
		return;
	}
	km_iso8601(ms, buf, sizeof(buf));
	km_sb_printf(sb, "<time>%s</time>", buf);
}

static const char *verdict_class(const char *v)
{
	if (!v)
		return "none";
	if (!strcmp(v, "GO") || !strcmp(v, "DONE") || !strcmp(v, "ok"))
		return "go";
	if (!strcmp(v, "NO-GO"))
		return "nogo";
	if (!strcmp(v, "FINDING"))
		return "finding";
	return "info";
}

static void badge(km_sb_t *sb, const char *v)
{
	km_sb_printf(sb, "<span class=\"v v-%s\">", verdict_class(v));
	if (v)
		esc(sb, v);
	else
		km_sb_puts(sb, "&#8212;");
	km_sb_puts(sb, "</span>");
}

/* The full body of a fact, folded: readable without script. */
static void body_details(km_sb_t *sb, const json_t *body, const char *label)
{
	char *s = json_dumps(body, JSON_INDENT(2) | JSON_SORT_KEYS);
	km_sb_printf(sb, "<details><summary>%s</summary><pre>", label);
	esc(sb, s);
	km_sb_puts(sb, "</pre></details>");
	free(s);
}

static void th(km_sb_t *sb, const char *const *cols)
{
	km_sb_puts(sb, "<thead><tr>");
	for (int i = 0; cols[i]; i++)
		km_sb_printf(sb, "<th>%s</th>", cols[i]);
	km_sb_puts(sb, "</tr></thead><tbody>");
}

static void td(km_sb_t *sb, const json_t *v)
{
	km_sb_puts(sb, "<td>");
	val(sb, v);
	km_sb_puts(sb, "</td>");
}

/* A journal run's cells: started, ended (or "running or killed"), exit
 * code, summary. */
static void run_cells(km_sb_t *sb, const json_t *run)
{
	km_sb_puts(sb, "<td>");
	when(sb, ji(run, "started_ms"));
	km_sb_puts(sb, "</td><td>");
	if (json_is_integer(json_object_get(run, "ended_ms")))
		when(sb, ji(run, "ended_ms"));
	else
		km_sb_puts(sb, "running or killed");
	km_sb_puts(sb, "</td>");
	td(sb, json_object_get(run, "exit_code"));
	td(sb, json_object_get(run, "summary"));
}

static void tds(km_sb_t *sb, const char *s)
{
	km_sb_puts(sb, "<td>");
	if (s)
		esc(sb, s);
	else
		km_sb_puts(sb, "&#8212;");
	km_sb_puts(sb, "</td>");
}

static void sec_open(km_sb_t *sb, json_t *info, const char *id, const char *title)
{
	km_sb_printf(sb, "<section id=\"%s\"><h2>%s</h2>\n", id, title);
	json_array_append_new(json_object_get(info, "sections"), json_string(id));
}

static void missing(km_sb_t *sb, const char *what)
{
	km_sb_puts(sb, "<p class=\"missing\">");
	esc(sb, what);
	km_sb_puts(sb, "</p>\n");
}

/* The report's state while it renders. */
typedef struct rep_s {
	km_sb_t *sb;
	km_journal_t *jr;
	json_t *info, *runs, *facts, *plan_json;
	char *errstr;
	size_t errstr_size;
} rep_t;

static const json_t *run_by_id(const rep_t *r, json_int_t id)
{
	json_t *x;
	size_t i;
	json_array_foreach(r->runs, i, x)
		if (ji(x, "id") == id)
			return x;
	return NULL;
}

/* "fact F, run R (command)": where a row's evidence is in the journal. */
static void fact_ref(const rep_t *r, const json_t *f)
{
	const json_t *run = run_by_id(r, ji(f, "run_id"));
	km_sb_printf(r->sb, "fact %lld, run %lld", (long long)ji(f, "id"), (long long)ji(f, "run_id"));
	if (run) {
		km_sb_puts(r->sb, " (");
		esc(r->sb, js(run, "command"));
		km_sb_puts(r->sb, ")");
	}
}

static void td_when(km_sb_t *sb, json_int_t ms)
{
	km_sb_puts(sb, "<td>");
	when(sb, ms);
	km_sb_puts(sb, "</td>");
}

typedef bool (*keep_fn)(const json_t *f, const void *arg);

/* The facts keep() selects, one row each: time, kind, subject, verdict and
 * where it is in the journal with its body folded.  Nothing is written
 * when none is selected.  @returns the number of rows. */
static int fact_table(rep_t *r, const char *heading, const char *id, const char *body_label,
		      keep_fn keep, const void *arg)
{
	km_sb_t *sb = r->sb;
	json_t *f;
	size_t i;
	int n = 0;

	json_array_foreach(r->facts, i, f) {
		if (!keep(f, arg))
			continue;
		if (!n++) {
			km_sb_puts(sb, "<h3>");
			esc(sb, heading);
			km_sb_puts(sb, "</h3><table class=\"facts\" id=\"");
			esc(sb, id);
			km_sb_puts(sb, "\">");
			th(sb, (const char *const[]){"When", "Kind", "Subject", "Verdict", "Evidence",
						     NULL});
		}
		km_sb_puts(sb, "<tr>");
		td_when(sb, ji(f, "ts_ms"));
		td(sb, json_object_get(f, "kind"));
		td(sb, json_object_get(f, "subject"));
		km_sb_puts(sb, "<td>");
		badge(sb, js(f, "verdict"));
		km_sb_puts(sb, "</td><td>");
		fact_ref(r, f);
		body_details(sb, json_object_get(f, "body"), body_label);
		km_sb_puts(sb, "</td></tr>\n");
	}
	if (n)
		km_sb_puts(sb, "</tbody></table>\n");
	return n;
}

/* ---- sections ------------------------------------------------------------ */

static void sec_summary(rep_t *r, const json_t *sum)
{
	km_sb_t *sb = r->sb;
	json_t *x;
	size_t i;

	sec_open(sb, r->info, "summary", "Where the migration stands");
	km_sb_puts(sb, "<p>Phase: <strong>");
	esc(sb, js(json_object_get(sum, "phase"), "name"));
	km_sb_puts(sb, "</strong> &#8212; ");
	esc(sb, js(json_object_get(sum, "phase"), "detail"));
	km_sb_puts(sb, " (");
	when(sb, ji(json_object_get(sum, "phase"), "at"));
	km_sb_puts(sb, ")</p>\n");
	km_sb_puts(sb, "<table class=\"waves\">");
	th(sb, (const char *const[]){"Wave", "Steps done", "Last step", "At",
				     "Authority (journal)", NULL});
	json_array_foreach(json_object_get(sum, "waves"), i, x) {
		km_sb_puts(sb, "<tr>");
		td(sb, json_object_get(x, "wave"));
		td(sb, json_object_get(x, "steps_done"));
		td(sb, json_object_get(x, "last_step"));
		km_sb_puts(sb, "<td>");
		when(sb, ji(x, "last_step_at"));
		km_sb_puts(sb, "</td>");
		km_sb_printf(sb, "<td>%s%s</td></tr>\n",
			     !strcmp(nz(js(x, "authority_journal")), "target") ? "target" : "source",
			     json_is_true(json_object_get(x, "rolled_back")) ? " (rolled back)" : "");
	}
	km_sb_puts(sb, "</tbody></table>\n");
	json_t *lag = json_object_get(sum, "lag");
	if (json_is_object(lag)) {
		km_sb_puts(sb, "<p>Replication lag at the last journaled sample: ");
		val(sb, json_object_get(lag, "records"));
		km_sb_puts(sb, " records, ");
		val(sb, json_object_get(lag, "caught_up"));
		km_sb_puts(sb, "/");
		val(sb, json_object_get(lag, "partitions"));
		km_sb_puts(sb, " partitions caught up (");
		when(sb, ji(lag, "ts_ms"));
		km_sb_puts(sb, "). The authority a process obeys is the target's authority "
			       "topic: `kmigrate status` reads it live.</p>\n");
	} else
		missing(sb, "replication lag: no progress sample journaled (`kmigrate replicate` "
			    "journals them)");
	km_sb_printf(sb, "<p>Open findings: %lld (see <a href=\"#findings\">findings</a>)</p>\n",
		     (long long)ji(sum, "open_findings"));
	km_sb_puts(sb, "</section>\n");
}

static void people(km_sb_t *sb, const char *title, const json_t *list, const char *const *keys,
		   const char *const *heads)
{
	json_t *x;
	size_t i;

	if (!json_array_size(list))
		return;
	km_sb_printf(sb, "<h3>%s</h3><table>", title);
	th(sb, heads);
	json_array_foreach(list, i, x) {
		km_sb_puts(sb, "<tr>");
		for (int k = 0; keys[k]; k++)
			td(sb, json_object_get(x, keys[k]));
		km_sb_puts(sb, "</tr>\n");
	}
	km_sb_puts(sb, "</tbody></table>\n");
}

static void sec_plan(rep_t *r, const json_t *plan, const char *from)
{
	km_sb_t *sb = r->sb;

	sec_open(sb, r->info, "plan", "The plan and its owners");
	if (!plan) {
		missing(sb, "the journal holds no plan snapshot (`kmigrate plan` journals one); run "
			    "`kmigrate report -p PLAN` to show the plan file's");
		km_sb_puts(sb, "</section>\n");
		return;
	}
	km_sb_puts(sb, "<p class=\"from\">From ");
	esc(sb, from);
	km_sb_puts(sb, ".</p>\n<table class=\"kv\"><tbody>");
	km_sb_puts(sb, "<tr><th>Migration</th>");
	td(sb, json_object_get(plan, "migration"));
	km_sb_puts(sb, "</tr><tr><th>Source</th><td>");
	val(sb, json_object_get(json_object_get(plan, "source"), "bootstrap"));
	km_sb_puts(sb, ", owner ");
	val(sb, json_object_get(json_object_get(plan, "source"), "owner"));
	km_sb_puts(sb, "</td></tr><tr><th>Target</th><td>");
	val(sb, json_object_get(json_object_get(plan, "target"), "bootstrap"));
	km_sb_puts(sb, ", owner ");
	val(sb, json_object_get(json_object_get(plan, "target"), "owner"));
	km_sb_puts(sb, "</td></tr><tr><th>Topics in scope</th><td>include ");
	val(sb, json_object_get(plan, "include"));
	km_sb_puts(sb, ", exclude ");
	val(sb, json_object_get(plan, "exclude"));
	km_sb_puts(sb, "</td></tr><tr><th>Fence</th><td>");
	val(sb, json_object_get(json_object_get(plan, "fence"), "kind"));
	km_sb_puts(sb, ", owner ");
	val(sb, json_object_get(json_object_get(plan, "fence"), "owner"));
	km_sb_puts(sb, "</td></tr><tr><th>Gate thresholds</th>");
	td(sb, json_object_get(plan, "gates"));
	km_sb_puts(sb, "</tr></tbody></table>\n");
	people(sb, "Topic rules", json_object_get(plan, "rules"),
	       (const char *const[]){"match", "owner", "ordering", "duplicates", "replay", NULL},
	       (const char *const[]){"Match", "Owner", "Ordering", "Duplicates", "Replay", NULL});
	people(sb, "Cutover waves", json_object_get(plan, "waves"),
	       (const char *const[]){"name", "owner", "topics", "all", "groups", "producers",
				     "consumers", NULL},
	       (const char *const[]){"Wave", "Owner", "Topics", "All the rest", "Groups",
				     "Producers", "Consumers", NULL});
	people(sb, "Consumer groups", json_object_get(plan, "groups"),
	       (const char *const[]){"id", "owner", "restart", "chosen_by", NULL},
	       (const char *const[]){"Group", "Owner", "Restart", "Chosen by", NULL});
	people(sb, "Producers", json_object_get(plan, "producers"),
	       (const char *const[]){"name", "owner", "topics", "idempotence", "transactions",
				     "validation", NULL},
	       (const char *const[]){"Producer", "Owner", "Topics", "Idempotence", "Transactions",
				     "Validation", NULL});
	people(sb, "Consumers", json_object_get(plan, "consumers"),
	       (const char *const[]){"name", "owner", "group", "isolation_level", "validation",
				     NULL},
	       (const char *const[]){"Consumer", "Owner", "Group", "Isolation", "Validation",
				     NULL});
	people(sb, "Connectors", json_object_get(plan, "connectors"),
	       (const char *const[]){"name", "owner", "side_effects", "validation", NULL},
	       (const char *const[]){"Connector", "Owner", "Side effects", "Validation", NULL});
	static const char *const art[] = {"dashboards", "alerts", "runbooks", NULL};
	static const char *const art_t[] = {"Dashboards", "Alerts", "Runbooks", NULL};
	for (int k = 0; art[k]; k++)
		people(sb, art_t[k], json_object_get(plan, art[k]),
		       (const char *const[]){"name", "owner", "validation", NULL},
		       (const char *const[]){"Name", "Owner", "Validation", NULL});
	people(sb, "Rollback triggers", json_object_get(plan, "rollback_triggers"),
	       (const char *const[]){"name", "metric", "threshold", "owner", NULL},
	       (const char *const[]){"Trigger", "Metric", "Threshold", "Owner", NULL});
	km_sb_puts(sb, "</section>\n");
}

static km_err_t sec_inventory(rep_t *r)
{
	km_sb_t *sb = r->sb;
	json_t *inv = NULL, *t, *x;
	int64_t ts = 0;
	const char *name;
	km_err_t err;
	size_t i;

	sec_open(sb, r->info, "inventory", "Inventory and risk classes");
	err = km_journal_snapshot_get(r->jr, "inventory", "source", 0, &inv, &ts, r->errstr,
				      r->errstr_size);
	if (err == KM_ERR_NOT_FOUND) {
		missing(sb, "no source inventory in the journal (`kmigrate inventory` takes one)");
		km_sb_puts(sb, "</section>\n");
		return KM_ERR_OK;
	}
	if (err)
		return err;
	km_sb_puts(sb, "<p>Source ");
	val(sb, json_object_get(inv, "bootstrap"));
	km_sb_puts(sb, " (cluster id ");
	val(sb, json_object_get(inv, "cluster_id"));
	km_sb_puts(sb, "), taken ");
	when(sb, ts);
	km_sb_puts(sb, ".</p>\n<table id=\"inventory-topics\">");
	th(sb, (const char *const[]){"Topic", "Partitions", "Records", "Risk", "Why", "Owner",
				     "Transactions", "Compacted", NULL});
	json_object_foreach(json_object_get(inv, "topics"), name, t) {
		json_t *risk = json_object_get(t, "risk");
		km_sb_puts(sb, "<tr><td>");
		esc(sb, name);
		km_sb_puts(sb, "</td>");
		td(sb, json_object_get(t, "partition_count"));
		td(sb, json_object_get(t, "offsets"));
		km_sb_puts(sb, "<td>");
		if (js(risk, "class")) {
			km_sb_printf(sb, "<span class=\"risk r-%s\">",
				     !strcmp(js(risk, "class"), "high")     ? "high"
				     : !strcmp(js(risk, "class"), "medium") ? "medium"
									    : "low");
			esc(sb, js(risk, "class"));
			km_sb_puts(sb, "</span>");
		} else
			val(sb, json_object_get(t, "error"));
		km_sb_puts(sb, "</td>");
		td(sb, json_object_get(risk, "reasons"));
		td(sb, json_object_get(json_object_get(t, "declared"), "owner"));
		td(sb, json_object_get(t, "transactional_markers"));
		td(sb, json_object_get(t, "compacted"));
		km_sb_puts(sb, "</tr>\n");
	}
	km_sb_puts(sb, "</tbody></table>\n");
	people(sb, "Declared clients and artifacts", json_object_get(inv, "declared"),
	       (const char *const[]){"kind", "name", "owner", "group", "topics", "validation",
				     NULL},
	       (const char *const[]){"Kind", "Name", "Owner", "Group", "Topics", "Validation",
				     NULL});
	if (json_array_size(json_object_get(inv, "findings"))) {
		km_sb_puts(sb, "<h3>Findings of this inventory</h3><table>");
		th(sb, (const char *const[]){"Subject", "Problem", "Fix", NULL});
		json_array_foreach(json_object_get(inv, "findings"), i, x) {
			km_sb_puts(sb, "<tr>");
			td(sb, json_object_get(x, "subject"));
			td(sb, json_object_get(x, "problem"));
			td(sb, json_object_get(x, "fix"));
			km_sb_puts(sb, "</tr>\n");
		}
		km_sb_puts(sb, "</tbody></table>\n");
	}
	json_decref(inv);
	km_sb_puts(sb, "</section>\n");
	return KM_ERR_OK;
}

static km_err_t sec_design(rep_t *r)
{
	km_sb_t *sb = r->sb;
	json_t *design = NULL, *x, *run = NULL, *facts = NULL;
	int64_t ts = 0;
	km_err_t err;
	size_t i;
	int n = 0;

	sec_open(sb, r->info, "design", "Target design and what apply changed");
	err = km_journal_snapshot_get(r->jr, "design", "target", 0, &design, &ts, r->errstr,
				      r->errstr_size);
	if (err && err != KM_ERR_NOT_FOUND)
		return err;
	if (!design)
		missing(sb, "no target design in the journal (`kmigrate plan` saves one)");
	else {
		km_sb_puts(sb, "<p>Design saved ");
		when(sb, ts);
		km_sb_puts(sb, ", naming ");
		val(sb, json_object_get(design, "naming"));
		km_sb_puts(sb, ".</p>\n<table id=\"design-topics\">");
		th(sb, (const char *const[]){"Source topic", "Target topic", "Partitions",
					     "Replication factor", "Pinned configs", "Blocked",
					     "Not carried", NULL});
		json_array_foreach(json_object_get(design, "topics"), i, x) {
			km_sb_puts(sb, "<tr>");
			td(sb, json_object_get(x, "source"));
			td(sb, json_object_get(x, "target"));
			td(sb, json_object_get(x, "partitions"));
			td(sb, json_object_get(x, "replication_factor"));
			td(sb, json_object_get(x, "configs"));
			td(sb, json_object_get(x, "blocked"));
			td(sb, json_object_get(x, "unsupported"));
			km_sb_puts(sb, "</tr>\n");
		}
		km_sb_puts(sb, "</tbody></table>\n");
		if (json_array_size(json_object_get(design, "manual")))
			people(sb, "Manual items", json_object_get(design, "manual"),
			       (const char *const[]){"kind", "subject", "owner", "why", NULL},
			       (const char *const[]){"Kind", "Subject", "Owner", "Why", NULL});
		if (json_array_size(json_object_get(design, "warnings"))) {
			km_sb_puts(sb, "<h3>Warnings</h3><ul>");
			json_array_foreach(json_object_get(design, "warnings"), i, x) {
				km_sb_puts(sb, "<li>");
				val(sb, x);
				km_sb_puts(sb, "</li>");
			}
			km_sb_puts(sb, "</ul>\n");
		}
	}
	json_decref(design);
	/* The diff as reviewed: the latest plan run's actions. */
	if ((err = latest_run_facts(r->jr, "plan", NULL, &run, &facts, r->errstr, r->errstr_size)))
		return err;
	km_sb_puts(sb, "<h3>The diff (latest `plan` run)</h3>");
	km_sb_puts(sb, "<table id=\"design-diff\">");
	th(sb, (const char *const[]){"Action", "Verdict", "Details", NULL});
	json_array_foreach(facts, i, x)
		if (!strcmp(js(x, "kind"), "plan.action")) {
			km_sb_puts(sb, "<tr>");
			td(sb, json_object_get(x, "subject"));
			km_sb_puts(sb, "<td>");
			badge(sb, js(x, "verdict"));
			km_sb_puts(sb, "</td>");
			td(sb, json_object_get(x, "body"));
			km_sb_puts(sb, "</tr>\n");
			n++;
		}
	km_sb_puts(sb, "</tbody></table>\n");
	if (!n)
		missing(sb, run ? "the latest plan run found nothing to change"
				: "`kmigrate plan` never ran");
	json_decref(run);
	json_decref(facts);
	/* What apply changed: every apply.change fact, of every run. */
	n = 0;
	km_sb_puts(sb, "<h3>What apply changed</h3><table id=\"apply-changes\">");
	th(sb, (const char *const[]){"When", "Change", "Before", "After", "Evidence", NULL});
	json_array_foreach(r->facts, i, x)
		if (!strcmp(js(x, "kind"), "apply.change")) {
			json_t *b = json_object_get(x, "body");
			km_sb_puts(sb, "<tr><td>");
			when(sb, ji(x, "ts_ms"));
			km_sb_puts(sb, "</td>");
			td(sb, json_object_get(x, "subject"));
			td(sb, json_object_get(b, "before"));
			td(sb, json_object_get(b, "after"));
			km_sb_puts(sb, "<td>");
			fact_ref(r, x);
			km_sb_puts(sb, "</td></tr>\n");
			n++;
		}
	km_sb_puts(sb, "</tbody></table>\n");
	if (!n)
		missing(sb, "no change journaled by `kmigrate apply` (not run, or nothing to do)");
	km_sb_puts(sb, "</section>\n");
	return KM_ERR_OK;
}

/* One gate verdict: its criteria when the body has them, else its
 * members; the compatibility gate gets its run's checks. */
static void gate_block(rep_t *r, const json_t *f, const char *label)
{
	km_sb_t *sb = r->sb;
	const json_t *b = json_object_get(f, "body");
	json_t *c, *x;
	size_t i;
	int n = 0;

	km_sb_printf(sb, "<div class=\"gate\" id=\"gate-%lld\" data-kind=\"", (long long)ji(f, "id"));
	esc(sb, label);
	km_sb_puts(sb, "\" data-verdict=\"");
	esc(sb, js(f, "verdict"));
	km_sb_puts(sb, "\"><h3>");
	esc(sb, label);
	km_sb_puts(sb, " &#183; ");
	esc(sb, js(f, "subject"));
	km_sb_puts(sb, " ");
	badge(sb, js(f, "verdict"));
	km_sb_puts(sb, "</h3><p class=\"meta\">");
	when(sb, ji(f, "ts_ms"));
	km_sb_puts(sb, " &#183; ");
	fact_ref(r, f);
	km_sb_puts(sb, "</p>\n");
	if (json_is_array(json_object_get(b, "criteria"))) {
		km_sb_puts(sb, "<table class=\"criteria\">");
		th(sb, (const char *const[]){"Gate", "Criterion", "Threshold", "Measured",
					     "Evidence", "Owner", "Verdict", "Reason", NULL});
		json_array_foreach(json_object_get(b, "criteria"), i, c) {
			json_t *ev = json_object_get(c, "evidence");
			km_sb_puts(sb, "<tr>");
			td(sb, json_object_get(c, "gate"));
			td(sb, json_object_get(c, "name"));
			td(sb, json_object_get(c, "threshold"));
			td(sb, json_object_get(c, "measured"));
			km_sb_puts(sb, "<td>");
			if (json_is_object(ev)) {
				val(sb, json_object_get(ev, "command"));
				km_sb_puts(sb, " run ");
				val(sb, json_object_get(ev, "run_id"));
				if (json_is_integer(json_object_get(ev, "fact_id"))) {
					km_sb_puts(sb, " fact ");
					val(sb, json_object_get(ev, "fact_id"));
				}
				km_sb_puts(sb, ", ");
				val(sb, json_object_get(ev, "measured_at"));
			} else
				val(sb, ev);
			km_sb_puts(sb, "</td>");
			td(sb, json_object_get(c, "owner"));
			km_sb_puts(sb, "<td>");
			badge(sb, js(c, "verdict"));
			km_sb_puts(sb, "</td>");
			td(sb, json_object_get(c, "reason"));
			km_sb_puts(sb, "</tr>\n");
		}
		km_sb_puts(sb, "</tbody></table>\n");
	} else {
		const char *k;
		json_t *v;
		km_sb_puts(sb, "<table class=\"kv\"><tbody>");
		json_object_foreach((json_t *)b, k, v) {
			km_sb_puts(sb, "<tr><th>");
			esc(sb, k);
			km_sb_puts(sb, "</th>");
			td(sb, v);
			km_sb_puts(sb, "</tr>");
		}
		km_sb_puts(sb, "</tbody></table>\n");
	}
	/* The compatibility gate's criteria are the checks of its run. */
	json_array_foreach(r->facts, i, x)
		if (!strcmp(js(x, "kind"), "check") && ji(x, "run_id") == ji(f, "run_id") &&
		    !strcmp(label, "gate.compat")) {
			json_t *xb = json_object_get(x, "body");
			if (!n++) {
				km_sb_puts(sb, "<table class=\"criteria\">");
				th(sb, (const char *const[]){"Check", "Verdict", "What was tried",
							     "Result", "Latency ms", NULL});
			}
			km_sb_puts(sb, "<tr>");
			td(sb, json_object_get(x, "subject"));
			km_sb_puts(sb, "<td>");
			badge(sb, js(x, "verdict"));
			km_sb_puts(sb, "</td>");
			td(sb, json_object_get(xb, "tried"));
			td(sb, json_object_get(xb, "error") && !json_is_null(json_object_get(xb, "error"))
				       ? json_object_get(xb, "error")
				       : json_object_get(xb, "detail"));
			td(sb, json_object_get(xb, "latency_ms"));
			km_sb_puts(sb, "</tr>\n");
		}
	if (n)
		km_sb_puts(sb, "</tbody></table>\n");
	km_sb_puts(sb, "</div>\n");
	json_object_set_new(r->info, "gates",
			    json_integer(ji(r->info, "gates") + 1));
}

static void sec_gates(rep_t *r)
{
	json_t *f;
	size_t i;
	int n = 0;

	sec_open(r->sb, r->info, "gates", "Gate verdicts");
	km_sb_puts(r->sb, "<p>Every verdict the journal holds, oldest first: `kmigrate gate`, "
			  "`check` (compatibility), `validate`, and each cutover's own gate "
			  "step. Unknown or stale evidence is NO-GO.</p>\n");
	json_array_foreach(r->facts, i, f) {
		const char *k = js(f, "kind");
		if (prefixed(k, "gate.")) {
			gate_block(r, f, k);
			n++;
		} else if (!strcmp(k, "cutover.step") &&
			   !strcmp(nz(step_of(js(f, "subject"))), "gate")) {
			gate_block(r, f, "cutover step gate");
			n++;
		}
	}
	if (!n)
		missing(r->sb, "no gate verdict in the journal (`kmigrate gate`, `check`, "
			       "`validate` journal them)");
	km_sb_puts(r->sb, "</section>\n");
}

/* ---- charts: inline SVG, no script --------------------------------------- */

typedef struct pt_s {
	double x, y; /* ms since epoch, value */
	json_int_t run;
} pt_t;

static double nice_max(double v)
{
	double p, m;
	if (v <= 0)
		return 1;
	p = pow(10, floor(log10(v)));
	m = v / p;
	return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* A line chart of pts (sorted by time), one polyline per run so that the
 * time between two replicate runs is a gap, not a line. */
static void chart(rep_t *r, const char *id, const char *title, const char *unit, const pt_t *pts,
		  size_t n)
{
	km_sb_t *sb = r->sb;
	const double W = 720, H = 240, L = 70, R = 20, T = 20, B = 40;
	double x0 = n ? pts[0].x : 0, x1 = n ? pts[n - 1].x : 1, ymax = 0;
	char t0[40], t1[40];
	size_t i;

	for (i = 0; i < n; i++)
		if (pts[i].y > ymax)
			ymax = pts[i].y;
	ymax = nice_max(ymax);
	if (x1 <= x0)
		x1 = x0 + 1000;
	km_sb_printf(sb, "<figure class=\"chart\" id=\"%s\" data-points=\"%zu\"><figcaption>%s (%s)"
			 "</figcaption>\n",
		     id, n, title, unit);
	json_array_append_new(json_object_get(r->info, "charts"),
			      json_pack("{s:s, s:I}", "id", id, "points", (json_int_t)n));
	km_sb_printf(sb, "<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" "
			 "role=\"img\" aria-label=\"%s\">\n",
		     W, H, W, H, title);
	/* Axes and four horizontal grid lines with their values. */
	for (int g = 0; g <= 4; g++) {
		double y = T + (H - T - B) * (1 - g / 4.0);
		km_sb_printf(sb, "<line class=\"grid\" x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\"/>"
				 "<text class=\"tick\" x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n",
			     L, y, W - R, y, L - 6, y + 4, ymax >= 4 ? 0 : 2, ymax * g / 4.0);
	}
	km_iso8601((int64_t)x0, t0, sizeof(t0));
	km_iso8601((int64_t)x1, t1, sizeof(t1));
	km_sb_printf(sb, "<text class=\"tick\" x=\"%.0f\" y=\"%.0f\">%s</text>"
			 "<text class=\"tick\" x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">%s</text>\n",
		     L, H - 12, t0, W - R, H - 12, t1);
	if (!n)
		km_sb_printf(sb, "<text class=\"none\" x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">"
				 "no progress sample journaled</text>\n",
			     W / 2, H / 2);
	for (i = 0; i < n;) {
		size_t j = i;
		km_sb_puts(sb, "<polyline class=\"series\" points=\"");
		for (; j < n && pts[j].run == pts[i].run; j++)
			km_sb_printf(sb, "%.1f,%.1f ", L + (W - L - R) * (pts[j].x - x0) / (x1 - x0),
				     T + (H - T - B) * (1 - pts[j].y / ymax));
		km_sb_puts(sb, "\"/>\n");
		for (size_t k = i; k < j; k++)
			km_sb_printf(sb, "<circle class=\"dot\" r=\"2.5\" cx=\"%.1f\" cy=\"%.1f\"/>",
				     L + (W - L - R) * (pts[k].x - x0) / (x1 - x0),
				     T + (H - T - B) * (1 - pts[k].y / ymax));
		km_sb_puts(sb, "\n");
		i = j;
	}
	km_sb_puts(sb, "</svg></figure>\n");
}

static bool replication_fact(const json_t *f, const void *arg)
{
	(void)arg;
	return prefixed(js(f, "kind"), "replicate.") &&
	       strcmp(js(f, "kind"), KM_REPORT_PROGRESS_KIND);
}

static void sec_replication(rep_t *r)
{
	km_sb_t *sb = r->sb;
	pt_t *thr, *lag;
	size_t n = 0, i, cap = json_array_size(r->facts) + 1;
	json_t *f;

	sec_open(sb, r->info, "replication", "Replication: throughput and lag over time");
	thr = km_calloc(cap, sizeof(*thr));
	lag = km_calloc(cap, sizeof(*lag));
	json_array_foreach(r->facts, i, f) {
		json_t *b = json_object_get(f, "body");
		if (strcmp(js(f, "kind"), KM_REPORT_PROGRESS_KIND))
			continue;
		thr[n] = (pt_t){(double)ji(f, "ts_ms"),
				json_number_value(json_object_get(b, "records_per_sec")),
				ji(f, "run_id")};
		lag[n] = (pt_t){(double)ji(f, "ts_ms"), json_number_value(json_object_get(b, "lag")),
				ji(f, "run_id")};
		n++;
	}
	json_object_set_new(r->info, "progress_samples", json_integer((json_int_t)n));
	km_sb_printf(sb, "<p>%zu progress samples journaled by `kmigrate replicate` (the first "
			 "and last of each run, and one every %d s between).</p>\n",
		     n, KM_REPORT_PROGRESS_EVERY_MS / 1000);
	chart(r, "chart-throughput", "Records copied per second", "records/s", thr, n);
	chart(r, "chart-lag", "Replication lag", "records not yet copied", lag, n);
	free(thr);
	free(lag);
	/* The runs and the facts they found. */
	km_sb_puts(sb, "<h3>Replicate runs</h3><table id=\"replicate-runs\">");
	th(sb, (const char *const[]){"Run", "Started", "Ended", "Exit", "Summary", NULL});
	json_array_foreach(r->runs, i, f)
		if (!strcmp(js(f, "command"), "replicate")) {
			km_sb_puts(sb, "<tr>");
			td(sb, json_object_get(f, "id"));
			run_cells(sb, f);
			km_sb_puts(sb, "</tr>\n");
		}
	km_sb_puts(sb, "</tbody></table>\n");
	fact_table(r, "What replication found", "replicate-facts", "body", replication_fact, NULL);
	km_sb_puts(sb, "</section>\n");
}

static km_err_t sec_validation(rep_t *r)
{
	km_sb_t *sb = r->sb;
	json_t *run = NULL, *facts = NULL, *f;
	km_err_t err;
	size_t i;
	int shown = 0;

	sec_open(sb, r->info, "validation", "Validation");
	if ((err = latest_run_facts(r->jr, "validate", "gate.validate", &run, &facts, r->errstr,
				    r->errstr_size)))
		return err;
	if (!run) {
		missing(sb, "no validation in the journal (`kmigrate validate`)");
		goto done;
	}
	km_sb_printf(sb, "<p>Latest `validate` run %lld, ", (long long)ji(run, "id"));
	when(sb, ji(run, "started_ms"));
	km_sb_puts(sb, ": ");
	val(sb, json_object_get(run, "summary"));
	km_sb_puts(sb, ".</p>\n<table id=\"validation-partitions\">");
	th(sb, (const char *const[]){"Partition", "Verdict", "State", "Mode", "Records paired",
				     "Mismatches", "Reason", NULL});
	json_array_foreach(facts, i, f) {
		json_t *b = json_object_get(f, "body");
		if (strcmp(js(f, "kind"), "validate.partition"))
			continue;
		km_sb_puts(sb, "<tr>");
		td(sb, json_object_get(f, "subject"));
		km_sb_puts(sb, "<td>");
		badge(sb, js(f, "verdict"));
		km_sb_puts(sb, "</td>");
		td(sb, json_object_get(b, "state"));
		td(sb, json_object_get(b, "mode"));
		td(sb, json_object_get(b, "paired"));
		td(sb, json_object_get(b, "mismatches"));
		td(sb, json_object_get(b, "reason"));
		km_sb_puts(sb, "</tr>\n");
	}
	km_sb_puts(sb, "</tbody></table>\n<h3>First mismatches</h3>\n");
	/* The records validate showed (at most its max_shown per partition):
	 * the first ten of the run. */
	json_array_foreach(facts, i, f) {
		json_t *m;
		size_t k;
		if (strcmp(js(f, "kind"), "validate.partition"))
			continue;
		json_array_foreach(json_object_get(json_object_get(f, "body"), "shown"), k, m) {
			if (shown >= 10)
				break;
			if (!shown++)
				km_sb_puts(sb, "<ol id=\"mismatches\">");
			km_sb_puts(sb, "<li>");
			esc(sb, js(f, "subject"));
			km_sb_puts(sb, ": <code>");
			val(sb, m);
			km_sb_puts(sb, "</code></li>\n");
		}
	}
	if (shown)
		km_sb_puts(sb, "</ol>\n");
	else
		km_sb_puts(sb, "<p id=\"mismatches\">None: every compared record matched.</p>\n");
done:
	json_decref(run);
	json_decref(facts);
	km_sb_puts(sb, "</section>\n");
	return KM_ERR_OK;
}

/* `offsets --commit` and each cutover's offsets step. */
static bool commit_fact(const json_t *f, const void *arg)
{
	const char *k = js(f, "kind");
	(void)arg;
	return !strcmp(k, "offsets.commit") ||
	       (!strcmp(k, "cutover.step") && !strcmp(nz(step_of(js(f, "subject"))), "offsets"));
}

static km_err_t sec_offsets(rep_t *r)
{
	km_sb_t *sb = r->sb;
	json_t *run = NULL, *facts = NULL, *f;
	km_err_t err;
	size_t i;
	json_int_t n = 0;

	sec_open(sb, r->info, "offsets", "Offset translation");
	if ((err = latest_run_facts(r->jr, "offsets", "offsets.translate", &run, &facts, r->errstr,
				    r->errstr_size)))
		return err;
	if (!run)
		missing(sb, "no offset translation in the journal (`kmigrate offsets`)");
	else {
		km_sb_printf(sb, "<p>Latest `offsets` run %lld, ", (long long)ji(run, "id"));
		when(sb, ji(run, "started_ms"));
		km_sb_puts(sb, ". Each translated position is proven by reading both clusters; "
			       "the proof is the fact's body.</p>\n");
	}
	km_sb_puts(sb, "<table id=\"offset-table\">");
	th(sb, (const char *const[]){"Group", "Source partition", "Committed (source)",
				     "Target partition", "Target offset", "Status", "Policy",
				     "Proof", "Verdict", NULL});
	json_array_foreach(facts, i, f) {
		json_t *b = json_object_get(f, "body");
		char *grp;
		const char *s = js(f, "subject"), *sp;
		if (strcmp(js(f, "kind"), "offsets.translate"))
			continue;
		sp = s ? strchr(s, ' ') : NULL;
		grp = prefixed(s, "group:") && sp ? km_strndup(s + 6, (size_t)(sp - s - 6))
						  : km_strdup(nz(s));
		km_sb_puts(sb, "<tr class=\"offset\"><td>");
		esc(sb, grp);
		free(grp);
		km_sb_puts(sb, "</td><td>");
		esc(sb, js(b, "topic"));
		km_sb_printf(sb, "[%lld]</td>", (long long)ji(b, "partition"));
		td(sb, json_object_get(b, "committed"));
		km_sb_puts(sb, "<td>");
		esc(sb, js(b, "target_topic"));
		km_sb_printf(sb, "[%lld]</td>", (long long)ji(b, "partition"));
		td(sb, json_object_get(b, "target_offset"));
		td(sb, json_object_get(b, "status"));
		td(sb, json_object_get(b, "policy"));
		td(sb, json_object_get(b, "proof"));
		km_sb_puts(sb, "<td>");
		badge(sb, js(f, "verdict"));
		km_sb_puts(sb, "</td></tr>\n");
		n++;
	}
	km_sb_puts(sb, "</tbody></table>\n");
	json_object_set_new(r->info, "offsets", json_integer(n));
	/* Commits: `offsets --commit` and each cutover's offsets step. */
	fact_table(r, "Commits on the target", "offset-commits", "positions", commit_fact, NULL);
	json_decref(run);
	json_decref(facts);
	km_sb_puts(sb, "</section>\n");
	return KM_ERR_OK;
}

static bool is_step_kind(const char *k)
{
	/* the *-hwms facts: where the target's new history starts, measured
	 * before the authority and connectors steps open the target */
	return !strcmp(k, "cutover.step") || !strcmp(k, "cutover.fence") ||
	       !strcmp(k, "cutover.reset") || !strcmp(k, "cutover.authority-hwms") ||
	       !strcmp(k, "cutover.connectors-hwms") || prefixed(k, "rollback.");
}

static void sec_cutover(rep_t *r)
{
	km_sb_t *sb = r->sb;
	json_t *f;
	size_t i;
	int n = 0;

	sec_open(sb, r->info, "cutover", "Cutover and rollback steps");
	km_sb_puts(sb, "<table id=\"steps\">");
	th(sb, (const char *const[]){"When", "Wave", "Kind", "Step", "Verdict", "Evidence", NULL});
	json_array_foreach(r->facts, i, f) {
		const char *k = js(f, "kind");
		char *w;
		if (!is_step_kind(k))
			continue;
		w = wave_of(js(f, "subject"));
		km_sb_printf(sb, "<tr class=\"step\" data-kind=\"%s\"><td>",
			     prefixed(k, "rollback.") ? "rollback" : "cutover");
		when(sb, ji(f, "ts_ms"));
		km_sb_puts(sb, "</td>");
		tds(sb, w);
		td(sb, json_object_get(f, "kind"));
		tds(sb, step_of(js(f, "subject")) ? step_of(js(f, "subject")) : js(f, "subject"));
		km_sb_puts(sb, "<td>");
		badge(sb, js(f, "verdict"));
		km_sb_puts(sb, "</td><td>");
		fact_ref(r, f);
		body_details(sb, json_object_get(f, "body"), "evidence");
		km_sb_puts(sb, "</td></tr>\n");
		free(w);
		n++;
	}
	km_sb_puts(sb, "</tbody></table>\n");
	if (!n)
		missing(sb, "no cutover or rollback step in the journal");
	km_sb_puts(sb, "</section>\n");
}

/* ---- connectors (issue 14) ------------------------------------------------ */

/* The steps that touch a wave's Kafka Connect connectors journal
 * {"connectors": [{"name", "type", "phases": [{"phase", "source_state",
 * "target_state", "at", ...}]}]}: cutover stop-connectors and connectors,
 * rollback stop-target-connectors, connectors-back and reset. */
static const json_t *fact_connectors(const json_t *f)
{
	const char *k = js(f, "kind");
	if (strcmp(k, "cutover.step") && strcmp(k, "rollback.step"))
		return NULL;
	const json_t *c = json_object_get(json_object_get(f, "body"), "connectors");
	return json_array_size(c) ? c : NULL;
}

/* The connector's class: the plan's `class:`, else the config `apply`
 * created it with (masked, journaled as apply.change). */
static const char *connector_class(const rep_t *r, const json_t *plan, const char *name)
{
	json_t *x;
	size_t i;
	json_array_foreach(json_object_get(plan, "connectors"), i, x)
		if (!strcmp(nz(js(x, "name")), name) && js(x, "class"))
			return js(x, "class");
	json_array_foreach(r->facts, i, x)
	{
		const json_t *b = json_object_get(x, "body");
		const char *subj = js(x, "subject");
		if (!strcmp(js(x, "kind"), "apply.change") && prefixed(subj, "create-connector ") &&
		    !strcmp(subj + strlen("create-connector "), name))
			return js(json_object_get(json_object_get(b, "after"), "config"),
				  "connector.class");
	}
	return NULL;
}

/* What a phase wrote or read of the connector's position: offsets written
 * (sink: translated group positions; source: source-system positions
 * copied verbatim), else the positions a stop read, else nothing. */
static const json_t *phase_offsets(const json_t *ph)
{
	const char *keys[] = {"written", "source_offsets", "target_offsets", NULL};
	for (int i = 0; keys[i]; i++)
		if (json_object_get(ph, keys[i]))
			return json_object_get(ph, keys[i]);
	return NULL;
}

/* "<name> on the source Connect <url>": one side's instance. */
static void td_instance(km_sb_t *sb, const char *name, const char *side, const json_t *cluster)
{
	km_sb_puts(sb, "<td>");
	esc(sb, name);
	km_sb_printf(sb, " on the %s Connect", side);
	if (js(cluster, "connect_url")) {
		km_sb_puts(sb, " <code>");
		esc(sb, js(cluster, "connect_url"));
		km_sb_puts(sb, "</code>");
	}
	km_sb_puts(sb, "</td>");
}

static void sec_connectors(rep_t *r, const json_t *plan)
{
	km_sb_t *sb = r->sb;
	json_t *seen = json_array(), *f, *cn, *ph, *x;
	size_t i, j, k;
	int n = 0;

	sec_open(sb, r->info, "connectors", "Kafka Connect connectors");
	/* One row per (wave, connector), in the order the steps met them. */
	json_array_foreach(r->facts, i, f)
	{
		char *w = wave_of(js(f, "subject"));
		json_array_foreach(fact_connectors(f), j, cn)
		{
			bool dup = false;
			json_array_foreach(seen, k, x)
				dup = dup || (!strcmp(js(x, "wave"), nz(w)) &&
					      !strcmp(js(x, "name"), nz(js(cn, "name"))));
			if (!dup)
				json_array_append_new(seen, json_pack("{s:s, s:s, s:s?}", "wave", nz(w),
								      "name", nz(js(cn, "name")),
								      "type", js(cn, "type")));
		}
		free(w);
	}
	json_object_set_new(r->info, "connectors", json_integer((json_int_t)json_array_size(seen)));
	if (!json_array_size(seen)) {
		missing(sb, "no connector step in the journal: the plan has no connect_url, or no "
			    "wave with connectors was cut over (`kmigrate cutover` journals them)");
		goto done;
	}
	km_sb_puts(sb, "<p>Each connector moves with its wave: the old and the new instance never "
		       "run at once. Every phase below records both connectors' states, read from "
		       "both workers at that moment, and the position written.</p>\n"
		       "<table id=\"connector-list\">");
	th(sb, (const char *const[]){"Wave", "Connector", "Class", "Type", "Source", "Target", NULL});
	json_array_foreach(seen, i, x)
	{
		const json_t *sc = json_object_get(plan, "source"), *tc = json_object_get(plan, "target");
		km_sb_puts(sb, "<tr class=\"connector\" data-wave=\"");
		esc(sb, js(x, "wave"));
		km_sb_puts(sb, "\" data-name=\"");
		esc(sb, js(x, "name"));
		km_sb_puts(sb, "\">");
		tds(sb, js(x, "wave"));
		tds(sb, js(x, "name"));
		tds(sb, connector_class(r, plan, js(x, "name")));
		tds(sb, js(x, "type"));
		td_instance(sb, js(x, "name"), "source", sc);
		td_instance(sb, js(x, "name"), "target", tc);
		km_sb_puts(sb, "</tr>\n");
	}
	km_sb_puts(sb, "</tbody></table>\n<h3>Both states at each step</h3>"
		       "<table id=\"connector-phases\">");
	th(sb, (const char *const[]){"When", "Wave", "Step", "Connector", "Phase", "Source state",
				     "Target state", "Offsets", "Evidence", NULL});
	json_array_foreach(r->facts, i, f)
	{
		const char *step = step_of(js(f, "subject"));
		const char *cmd = !strcmp(js(f, "kind"), "rollback.step") ? "rollback" : "cutover";
		char *w = wave_of(js(f, "subject"));
		json_array_foreach(fact_connectors(f), j, cn)
			json_array_foreach(json_object_get(cn, "phases"), k, ph)
			{
				const char *ss = js(ph, "source_state"), *ts = js(ph, "target_state");
				bool both = ss && ts && !strcmp(ss, "RUNNING") && !strcmp(ts, "RUNNING");
				km_sb_printf(sb, "<tr class=\"connector-phase%s\" data-command=\"%s\" "
						 "data-step=\"",
					     both ? " both-running" : "", cmd);
				esc(sb, nz(step));
				km_sb_puts(sb, "\" data-connector=\"");
				esc(sb, js(cn, "name"));
				km_sb_puts(sb, "\" data-phase=\"");
				esc(sb, js(ph, "phase"));
				km_sb_puts(sb, "\">");
				td_when(sb, json_is_integer(json_object_get(ph, "at")) ? ji(ph, "at")
										    : ji(f, "ts_ms"));
				tds(sb, w);
				km_sb_printf(sb, "<td>%s ", cmd);
				esc(sb, nz(step));
				km_sb_puts(sb, "</td>");
				tds(sb, js(cn, "name"));
				tds(sb, js(ph, "phase"));
				tds(sb, ss);
				tds(sb, ts);
				km_sb_puts(sb, "<td>");
				val(sb, phase_offsets(ph));
				if (js(ph, "group")) {
					km_sb_puts(sb, " (group ");
					esc(sb, js(ph, "group"));
					km_sb_puts(sb, ")");
				}
				if (js(ph, "why")) {
					km_sb_puts(sb, "<br>");
					esc(sb, js(ph, "why"));
				}
				km_sb_puts(sb, "</td><td>");
				fact_ref(r, f);
				body_details(sb, json_object_get(ph, "translation"), "translation");
				km_sb_puts(sb, "</td></tr>\n");
				n++;
			}
		free(w);
	}
	km_sb_puts(sb, "</tbody></table>\n");
done:
	json_object_set_new(r->info, "connector_phases", json_integer(n));
	json_decref(seen);
	km_sb_puts(sb, "</section>\n");
}

static km_err_t sec_findings(rep_t *r)
{
	km_sb_t *sb = r->sb;
	json_t *sum = NULL, *x;
	km_err_t err;
	size_t i;

	sec_open(sb, r->info, "findings", "Open findings");
	if ((err = km_journal_summary(r->jr, &sum, r->errstr, r->errstr_size)))
		return err;
	km_sb_puts(sb, "<p>Findings and NO-GO facts of the latest run of each kind: a finding "
		       "fixed since is closed by the next run.</p>\n<table id=\"findings-table\">");
	th(sb, (const char *const[]){"Kind", "Subject", "Verdict", "Since", NULL});
	json_array_foreach(json_object_get(sum, "open_findings"), i, x) {
		km_sb_puts(sb, "<tr>");
		td(sb, json_object_get(x, "kind"));
		td(sb, json_object_get(x, "subject"));
		km_sb_puts(sb, "<td>");
		badge(sb, js(x, "verdict"));
		km_sb_puts(sb, "</td><td>");
		when(sb, ji(x, "ts_ms"));
		km_sb_puts(sb, "</td></tr>\n");
	}
	km_sb_puts(sb, "</tbody></table>\n");
	if (!json_array_size(json_object_get(sum, "open_findings")))
		km_sb_puts(sb, "<p>None open.</p>\n");
	json_decref(sum);
	km_sb_puts(sb, "</section>\n");
	return KM_ERR_OK;
}

/* The kinds a section above shows; any other kind goes to "other". */
static bool known_kind(const char *k)
{
	return (prefixed(k, "inventory.") && (strstr(k, ".risk") || strstr(k, ".finding"))) ||
	       !strcmp(k, "plan.action") || !strcmp(k, "apply.change") || !strcmp(k, "check") ||
	       prefixed(k, "gate.") || prefixed(k, "replicate.") ||
	       !strcmp(k, "validate.partition") || prefixed(k, "offsets.") || is_step_kind(k);
}

static bool kind_is(const json_t *f, const void *kind)
{
	return !strcmp(js(f, "kind"), kind);
}

static void sec_other(rep_t *r)
{
	km_sb_t *sb = r->sb;
	json_t *kinds = json_array(), *k, *f;
	size_t i, j;

	sec_open(sb, r->info, "other", "Other journaled facts");
	json_array_foreach(r->facts, i, f)
		if (!known_kind(js(f, "kind")))
			add_unique(kinds, js(f, "kind"));
	json_object_set(r->info, "other_kinds", kinds);
	if (!json_array_size(kinds))
		km_sb_puts(sb, "<p>None: every fact is shown in a section above.</p>\n");
	km_sb_puts(sb, "<p>Facts of kinds this report has no section for, shown as journaled "
		       "(a newer command's evidence appears here without a report change).</p>\n");
	json_array_foreach(kinds, j, k) {
		char id[300];
		snprintf(id, sizeof(id), "other-%zu", j);
		fact_table(r, json_string_value(k), id, "body", kind_is, json_string_value(k));
	}
	json_decref(kinds);
	km_sb_puts(sb, "</section>\n");
}

static void sec_runs(rep_t *r)
{
	km_sb_t *sb = r->sb;
	json_t *x;
	size_t i;

	sec_open(sb, r->info, "runs", "Every command run");
	km_sb_puts(sb, "<table id=\"runs-table\">");
	th(sb, (const char *const[]){"Run", "Command", "Arguments", "Started", "Ended", "Exit",
				     "Summary", NULL});
	json_array_foreach(r->runs, i, x) {
		km_sb_puts(sb, "<tr>");
		td(sb, json_object_get(x, "id"));
		td(sb, json_object_get(x, "command"));
		km_sb_puts(sb, "<td><code>");
		val(sb, json_object_get(x, "args"));
		km_sb_puts(sb, "</code></td>");
		run_cells(sb, x);
		km_sb_puts(sb, "</tr>\n");
	}
	km_sb_puts(sb, "</tbody></table>\n</section>\n");
}

/* No script, no font, no image: the page's only resource is its own
 * inline style, and the policy below makes the browser refuse anything
 * else even if a value escaped the escaping. */
static const char head_css[] =
	"body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 24px 48px;"
	"color:#1b1f24;background:#fff}"
	"h1{font-size:24px;margin:24px 0 4px}h2{font-size:19px;border-bottom:2px solid #d0d7de;"
	"padding-bottom:4px;margin-top:36px}h3{font-size:15px;margin:18px 0 6px}"
	"nav{position:sticky;top:0;background:#f6f8fa;padding:6px 0;border-bottom:1px solid #d0d7de}"
	"nav a{margin-right:12px;color:#0550ae;text-decoration:none}"
	"table{border-collapse:collapse;margin:6px 0 12px;width:100%;font-size:13px}"
	"th,td{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top;"
	"overflow-wrap:break-word}th{background:#f6f8fa}"
	"table.kv th{width:180px}"
	".v{display:inline-block;white-space:nowrap;padding:0 6px;border-radius:3px;font-weight:600;font-size:12px}"
	".v-go{background:#dafbe1;color:#116329}.v-nogo{background:#ffebe9;color:#a40e26}"
	".v-finding{background:#fff8c5;color:#7d4e00}.v-info,.v-none{background:#eaeef2;color:#424a53}"
	".risk{font-weight:600}.r-high{color:#a40e26}.r-medium{color:#7d4e00}.r-low{color:#116329}"
	".gate{border:1px solid #d0d7de;border-radius:6px;padding:4px 12px;margin:10px 0}"
	".meta,.from{color:#57606a;font-size:12px}.missing{color:#a40e26;font-style:italic}"
	"pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:320px;font-size:12px}"
	"code{font-size:12px}details summary{cursor:pointer;color:#0550ae}"
	"figure.chart{margin:8px 0 16px}figcaption{font-weight:600;margin-bottom:4px}"
	"svg .grid{stroke:#d0d7de;stroke-width:1}svg .tick{font-size:11px;fill:#57606a}"
	"svg .series{fill:none;stroke:#0969da;stroke-width:2}svg .dot{fill:#0969da}"
	"svg .none{font-size:13px;fill:#a40e26}"
	"@media print{nav{display:none}details{display:block}}";

km_err_t km_report_html(km_journal_t *jr, const json_t *plan_json, int64_t now_ms, char **htmlp,
			json_t **infop, char *errstr, size_t errstr_size)
{
	km_sb_t sb = KM_SB_INIT;
	rep_t r = {.sb = &sb, .jr = jr, .errstr = errstr, .errstr_size = errstr_size};
	json_t *sum = NULL, *jplan = NULL;
	const json_t *plan = NULL;
	const char *from = "none";
	char gen[40];
	km_err_t err;

	*htmlp = NULL;
	*infop = NULL;
	r.info = json_pack("{s:[], s:i, s:[], s:i, s:i, s:[]}", "sections", "gates", 0, "charts",
			   "offsets", 0, "progress_samples", 0, "other_kinds");
	if ((err = km_journal_runs(jr, &r.runs, errstr, errstr_size)) ||
	    (err = km_journal_facts(jr, 0, NULL, &r.facts, errstr, errstr_size)))
		goto done;
	err = km_journal_snapshot_get(jr, KM_REPORT_PLAN_SNAPSHOT_KIND,
				      KM_REPORT_PLAN_SNAPSHOT_SCOPE, 0, &jplan, NULL, errstr,
				      errstr_size);
	if (err && err != KM_ERR_NOT_FOUND)
		goto done;
	err = KM_ERR_OK;
	if (jplan) {
		plan = jplan;
		from = "the journal (snapshot taken by `kmigrate plan`)";
	} else if (plan_json) {
		plan = plan_json;
		from = "the plan file given to `kmigrate report`: this journal holds no plan "
		       "snapshot (journals written before `kmigrate plan` took one)";
	}
	json_object_set_new(r.info, "plan_from",
			    json_string(jplan ? "journal" : plan_json ? "plan file" : "none"));
	if ((err = summary_of(jr, r.runs, r.facts, plan, &sum, errstr, errstr_size)))
		goto done;

	km_iso8601(now_ms, gen, sizeof(gen));
	km_sb_puts(&sb, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
			"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
			"style-src 'unsafe-inline'\">\n"
			"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
			"<title>kmigrate report: ");
	esc(&sb, plan ? js(plan, "migration") : km_journal_path(jr));
	km_sb_printf(&sb, "</title>\n<style>%s</style></head>\n<body>\n", head_css);
	km_sb_puts(&sb, "<header><h1>Migration report: ");
	esc(&sb, plan ? js(plan, "migration") : "(no plan snapshot)");
	km_sb_puts(&sb, "</h1><p class=\"meta\">Generated by kmigrate from the journal <code>");
	esc(&sb, km_journal_path(jr));
	km_sb_printf(&sb, "</code> at <time>%s</time>, without contacting any cluster. "
			  "%zu runs, %zu facts.</p></header>\n",
		     gen, json_array_size(r.runs), json_array_size(r.facts));
	km_sb_puts(&sb, "<nav><a href=\"#summary\">Summary</a><a href=\"#plan\">Plan</a>"
			"<a href=\"#inventory\">Inventory</a><a href=\"#design\">Design</a>"
			"<a href=\"#gates\">Gates</a><a href=\"#replication\">Replication</a>"
			"<a href=\"#validation\">Validation</a><a href=\"#offsets\">Offsets</a>"
			"<a href=\"#cutover\">Cutover</a><a href=\"#connectors\">Connectors</a>"
			"<a href=\"#findings\">Findings</a>"
			"<a href=\"#other\">Other</a><a href=\"#runs\">Runs</a></nav>\n<main>\n");
	sec_summary(&r, sum);
	sec_plan(&r, plan, from);
	if ((err = sec_inventory(&r)) || (err = sec_design(&r)))
		goto done;
	sec_gates(&r);
	sec_replication(&r);
	if ((err = sec_validation(&r)) || (err = sec_offsets(&r)))
		goto done;
	sec_cutover(&r);
	sec_connectors(&r, plan);
	if ((err = sec_findings(&r)))
		goto done;
	sec_other(&r);
	sec_runs(&r);
	km_sb_puts(&sb, "</main>\n</body></html>\n");
	json_object_set(r.info, "summary", sum);
	*htmlp = km_sb_detach(&sb);
	*infop = r.info;
	r.info = NULL;
done:
	km_sb_free(&sb);
	json_decref(r.info);
	json_decref(r.runs);
	json_decref(r.facts);
	json_decref(jplan);
	json_decref(sum);
	return err;
}
