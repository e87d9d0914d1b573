/*
 * cmd_status.c -- `kmigrate status`: what the journal knows, at a glance,
 * and each topic's write authority as the target says it.
 *
 * The journal part never contacts a cluster.  The authority of a topic is
 * read from the target's __kmigrate.<m>.authority (lib/mapstore.h): that
 * record, not this host's journal, is what every kmigrate process obeys, so
 * status shows it and, separately, what the journal says.  When the target
 * cannot be read the authority is "unknown", never guessed from the
 * journal, and status exits 3 after printing everything else.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "cutover.h"
#include "mapstore.h"
#include "report.h"
#include "rollback.h"

static char *jtime(json_t *o, const char *k)
{
	char buf[40];
	json_t *v = json_object_get(o, k);

	if (!json_is_integer(v))
		return km_strdup("-");
	km_iso8601(json_integer_value(v), buf, sizeof(buf));
	return km_strdup(buf);
}

/* Appends topic to list unless it is there already. */
static void add_topic(json_t *list, const char *topic)
{
	json_t *t;
	size_t i;

	json_array_foreach(list, i, t)
		if (!strcmp(json_string_value(t), topic))
			return;
	json_array_append_new(list, json_string(topic));
}

/* What a rollback of wave w could do now, from the journal (issue 11):
 * {"fence": {"source": kind | "none", "fact"?, "target": "none"},
 *  "possible": bool, "why": "...", "in_progress": bool}. */
static km_err_t rollback_of(km_journal_t *jr, const char *w, const json_t *done,
			    const json_t *fence, json_t **outp, char *errstr, size_t errstr_size)
{
	json_t *facts = NULL, *f;
	json_int_t after = 0;
	char prefix[400];
	bool begun = false, unfenced = false;
	size_t i;
	km_err_t err;

	snprintf(prefix, sizeof(prefix), "wave:%s step:", w);
	if ((err = km_cutover_reset_id(jr, w, &after, errstr, errstr_size)) ||
	    (err = km_journal_facts(jr, 0, "rollback.step", &facts, errstr, errstr_size)))
		return err;
	json_array_foreach(facts, i, f) {
		const char *s = json_string_value(json_object_get(f, "subject"));
		if (json_integer_value(json_object_get(f, "id")) > after && s &&
		    !strncmp(s, prefix, strlen(prefix))) {
			begun = true;
			unfenced = unfenced || !strcmp(s + strlen(prefix), "unfence");
		}
	}
	json_decref(facts);
	/* The target's fence: the latest open one a rollback left (its
	 * fence, or the guard --release-target put back), any attempt; the
	 * next cutover's authority step lifts them (lib/rollback.h). */
	json_t *tf = NULL;
	if ((err = km_rollback_target_fences(jr, w, &facts, errstr, errstr_size)))
		return err;
	tf = json_array_get(facts, json_array_size(facts) - 1);
	char tfence[120];
	snprintf(tfence, sizeof(tfence), "%s (fact %lld)",
		 !tf ? "none"
		 : !strcmp(json_string_value(json_object_get(tf, "kind")), "rollback.guard")
			 ? "guard"
			 : json_string_value(json_object_get(
				   json_object_get(json_object_get(tf, "body"), "plan"), "kind")),
		 tf ? (long long)json_integer_value(json_object_get(tf, "id")) : 0LL);
	if (!tf)
		snprintf(tfence, sizeof(tfence), "none");
	json_decref(facts);
	const json_t *fb = json_object_get(fence, "body");
	const char *kind = json_string_value(json_object_get(json_object_get(fb, "plan"), "kind"));
	const json_t *fs = json_object_get(json_object_get(done, "fence"), "body");
	const char *fkind = json_string_value(json_object_get(fs, "kind"));
	json_t *fj = json_pack("{s:s, s:s}", "source",
			       unfenced ? "none (undone by the rollback)"
			       : kind	? kind
			       : fkind	? fkind
					: "none",
			       "target", tfence);
	if (fence && !unfenced)
		json_object_set(fj, "fact", json_object_get(fence, "id"));
	const char *why;
	bool possible = false;
	if (!json_object_size((json_t *)done) && !fence)
		why = "nothing to roll back: no cutover step of this attempt is journaled";
	else if (json_object_get(done, "authority")) {
		possible = true;
		why = begun ? "in progress: re-run `kmigrate rollback --wave` to finish it"
			    : "possible, the reverse path: the authority moved to the target; "
			      "`kmigrate rollback --wave` fences the target, copies its new records "
			      "back, moves the groups and the authority back to the source";
	} else {
		possible = true;
		why = begun ? "in progress: re-run `kmigrate rollback --wave` to finish it"
			    : "possible: the source is still authoritative; `kmigrate rollback "
			      "--wave` undoes the fence";
	}
	*outp = json_pack("{s:o, s:b, s:s, s:b}", "fence", fj, "possible", possible, "why", why,
			  "in_progress", begun);
	return KM_ERR_OK;
}

/* Per wave of the plan: its topics (the gate's, once journaled: what the
 * cutover judged; before that the plan's names and, for an `all` wave, the
 * designed topics it covers), the steps of its current cutover attempt
 * (km_cutover_load) and the last one in step order. */
static km_err_t waves_of(const km_plan_t *plan, km_journal_t *jr, const json_t *design,
			 json_t **wavesp, char *errstr, size_t errstr_size)
{
	json_t *waves = json_array(), *f, *t;
	km_err_t err;
	size_t i, j;

	*wavesp = NULL;
	for (j = 0; j < plan->cutover.waves_cnt; j++) {
		const km_plan_wave_t *w = &plan->cutover.waves[j];
		json_t *topics = json_array(), *done = NULL, *gate = NULL, *last = NULL,
		       *fence = NULL;
		const char *last_step = NULL;
		json_t *rb = NULL;

		/* The current attempt: a rollback's cutover.reset closes the
		 * facts before it (lib/cutover.h). */
		if ((err = km_cutover_load(jr, w->name, &done, &fence, errstr, errstr_size)) ||
		    (err = rollback_of(jr, w->name, done, fence, &rb, errstr, errstr_size))) {
			json_decref(done);
			json_decref(fence);
			json_decref(topics);
			json_decref(waves);
			return err;
		}
		if ((gate = json_object_get(done, "gate")))
			json_array_foreach(json_object_get(json_object_get(gate, "body"), "topics"),
					   i, t)
				add_topic(topics, json_string_value(json_object_get(t, "topic")));
		else {
			for (i = 0; i < w->topics_cnt; i++)
				add_topic(topics, w->topics[i].name);
			json_array_foreach(design, i, t)
				if (w->all && km_plan_wave_has_topic(plan, w, json_string_value(t)))
					add_topic(topics, json_string_value(t));
		}
		json_t *steps = json_array();
		for (int s = 0; km_cutover_steps[s]; s++)
			if ((f = json_object_get(done, km_cutover_steps[s]))) {
				json_array_append_new(steps, json_string(km_cutover_steps[s]));
				last_step = km_cutover_steps[s];
				last = f;
			}
		json_array_append_new(
			waves,
			json_pack("{s:s, s:o, s:b, s:o, s:s?, s:O?, s:O?, s:b, s:b, s:o}", "wave",
				  w->name, "topics", topics, "all", w->all, "steps_done", steps,
				  "last_step", last_step, "last_step_at",
				  last ? json_object_get(last, "ts_ms") : NULL, "last_step_fact",
				  last ? json_object_get(last, "id") : NULL, "complete",
				  json_object_get(done, KM_CUTOVER_LAST_STEP) != NULL, "authority_moved",
				  json_object_get(done, "authority") != NULL, "rollback", rb));
		json_decref(done);
		json_decref(fence);
	}
	*wavesp = waves;
	return KM_ERR_OK;
}

/* Per in-scope topic (designed, named by a wave, or holding an authority
 * record): its wave, its authority as the target says (records NULL:
 * "unknown") and what the journal says (its wave's authority step). */
static json_t *authority_of(const km_plan_t *plan, const json_t *design, const json_t *waves,
			    const json_t *records)
{
	json_t *names = json_array(), *rows = json_array(), *t, *w;
	const char *k;
	json_t *v;
	size_t i, j;

	json_array_foreach(design, i, t)
		add_topic(names, json_string_value(t));
	json_array_foreach(waves, i, w)
		json_array_foreach(json_object_get(w, "topics"), j, t)
			add_topic(names, json_string_value(t));
	json_object_foreach((json_t *)records, k, v)
		if (km_plan_topic_in_scope(plan, k))
			add_topic(names, k);
	json_array_foreach(names, i, t) {
		const char *topic = json_string_value(t), *wave = NULL, *journal = "source";
		const json_t *rec = records ? km_mapstore_authority_target(records, topic) : NULL;
		json_array_foreach(waves, j, w) {
			json_t *wt;
			size_t n;
			json_array_foreach(json_object_get(w, "topics"), n, wt)
				if (!wave && !strcmp(json_string_value(wt), topic)) {
					wave = json_string_value(json_object_get(w, "wave"));
					if (json_is_true(json_object_get(w, "authority_moved")))
						journal = "target";
				}
		}
		json_array_append_new(
			rows, json_pack("{s:s, s:s?, s:s, s:O?, s:s}", "topic", topic, "wave", wave,
					"authority",
					!records ? "unknown" : rec ? "target" : "source", "record",
					rec, "journal_says", journal));
	}
	json_decref(names);
	return rows;
}

/* The authority records from the target, or NULL with *why set. */
static json_t *read_authority(const km_plan_t *plan, char *why, size_t why_size)
{
	km_kafka_endpoint_t tgt = {0};
	json_t *recs = NULL;
	char e[1024];
	km_err_t err;

	if (!(err = km_kafka_endpoint_from_plan(&plan->target, &tgt, e, sizeof(e))))
		err = km_mapstore_load_authority(plan->migration, &tgt, &recs, e, sizeof(e));
	km_kafka_endpoint_clear(&tgt);
	if (err)
		snprintf(why, why_size, "%s: %s",
			 err == KM_ERR_UNREACHABLE || err == KM_ERR_TIMEOUT
				 ? "target unreachable"
				 : "cannot read the authority on the target",
			 e);
	return recs;
}

/* The one-screen summary (lib/report.h: phase, last verdicts, lag, from
 * the journal) with each wave's authority as the target's records say:
 * "target" or "source" when all its topics agree, "mixed" otherwise,
 * "unknown" when the records could not be read. */
static km_err_t summary_of(km_journal_t *jr, const json_t *waves, const json_t *records,
			   json_t **outp, char *errstr, size_t errstr_size)
{
	json_t *sum = NULL, *w, *t, *auth = json_array();
	km_err_t err;
	size_t i, k;

	if ((err = km_report_summary(jr, &sum, errstr, errstr_size))) {
		json_decref(auth);
		return err;
	}
	json_array_foreach(waves, i, w) {
		size_t n = json_array_size(json_object_get(w, "topics")), moved = 0;
		json_array_foreach(json_object_get(w, "topics"), k, t)
			if (records && km_mapstore_authority_target(records, json_string_value(t)))
				moved++;
		json_array_append_new(
			auth, json_pack("{s:s, s:s, s:I, s:I, s:s, s:O?, s:O?}", "wave",
					cli_jstr(w, "wave"), "authority",
					!records	     ? "unknown"
					: n && moved == n    ? "target"
					: moved == 0	     ? "source"
							     : "mixed",
					"topics", (json_int_t)n, "topics_on_target", (json_int_t)moved,
					"journal_says",
					json_is_true(json_object_get(w, "authority_moved")) ? "target"
											     : "source",
					"last_step", json_object_get(w, "last_step"), "last_step_at",
					json_object_get(w, "last_step_at")));
	}
	json_object_set_new(sum, "authority", auth);
	*outp = sum;
	return KM_ERR_OK;
}

/* One line per item under a label of the summary block. */
#define LABEL(first, name) printf("  %-11s", (first) ? (name) : "")

static void print_summary(const json_t *s)
{
	const json_t *ph = json_object_get(s, "phase"), *lag = json_object_get(s, "lag"), *x;
	char *at = jtime((json_t *)ph, "at");
	size_t i;

	printf("\nSummary\n");
	LABEL(1, "Phase");
	printf("%s: %s (%s)\n", cli_jstr(ph, "name"), cli_jstr(ph, "detail"), at);
	free(at);
	json_array_foreach(json_object_get(s, "authority"), i, x) {
		LABEL(i == 0, "Authority");
		printf("wave %s: %s (%lld/%lld topics on the target; the journal says %s)\n",
		       cli_jstr(x, "wave"), cli_jstr(x, "authority"), cli_jint(x, "topics_on_target"),
		       cli_jint(x, "topics"), cli_jstr(x, "journal_says"));
	}
	if (!json_array_size(json_object_get(s, "authority"))) {
		LABEL(1, "Authority");
		printf("no wave declared (cutover.waves)\n");
	}
	json_array_foreach(json_object_get(s, "last_verdicts"), i, x) {
		char *when = jtime((json_t *)x, "ts_ms");
		LABEL(i == 0, "Verdicts");
		printf("%-6s %s %s (%s)\n", cli_jstr(x, "verdict"), cli_jstr(x, "kind"),
		       cli_jstr(x, "subject"), when);
		free(when);
	}
	if (!json_array_size(json_object_get(s, "last_verdicts"))) {
		LABEL(1, "Verdicts");
		printf("none journaled yet\n");
	}
	LABEL(1, "Lag");
	if (json_is_object(lag)) {
		char *when = jtime((json_t *)lag, "ts_ms");
		printf("%lld records, %lld/%lld partitions caught up (last sample %s, replicate "
		       "run %lld)\n",
		       cli_jint(lag, "records"), cli_jint(lag, "caught_up"), cli_jint(lag, "partitions"),
		       when, cli_jint(lag, "run_id"));
		free(when);
	} else
		printf("unknown: no progress sample journaled (`kmigrate replicate` journals them)\n");
	LABEL(1, "Findings");
	printf("%lld open\n", cli_jint(s, "open_findings"));
}

int cmd_status(cli_t *cli, int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_OPTS, {NULL, 0, NULL, 0}};
	km_plan_t *plan;
	km_journal_t *jr;
	json_t *sum = NULL, *r, *design = NULL, *waves = NULL, *records = NULL, *brief = NULL;
	char why[1200], atopic[KM_MAPSTORE_NAME_MAX];
	int c, rc;
	size_t i;
	km_err_t err;

	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1)
		if (!cli_common_opt(cli, c))
			return cli_usage(cli, "unknown option");
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
	if ((rc = cli_ready(cli)))
		return rc;
	plan = cli->plan;
	jr = cli->jr;
	if ((err = km_journal_summary(jr, &sum, cli->errstr, sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	json_object_set_new(sum, "migration", json_string(plan->migration));
	if ((rc = cli_design_topics(cli, &design)))
		goto done;
	if ((err = waves_of(plan, jr, design, &waves, cli->errstr, sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	records = read_authority(plan, why, sizeof(why));
	km_mapstore_authority_topic(plan->migration, atopic, sizeof(atopic));
	/* The target's authority records are what every process agrees on: a
	 * wave topic whose record says target makes the rollback the reverse
	 * one, whatever this host's journal says; unreadable is unknown. */
	json_t *w;
	json_array_foreach(waves, i, w) {
		json_t *rb = json_object_get(w, "rollback"), *t;
		size_t k;
		bool moved = false;
		json_array_foreach(json_object_get(w, "topics"), k, t)
			moved = moved || (records && km_mapstore_authority_target(
							     records, json_string_value(t)));
		if (!records && json_is_true(json_object_get(rb, "possible"))) {
			json_object_set_new(rb, "possible", json_false());
			json_object_set_new(rb, "why", json_string("unknown: the target's authority "
								   "records could not be read"));
		} else if (moved && !json_is_true(json_object_get(w, "authority_moved"))) {
			/* The records say target but this journal has no authority
			 * step: rollback refuses (it needs the switch point). */
			json_object_set_new(rb, "possible", json_false());
			json_object_set_new(
				rb, "why",
				json_string("not possible from this journal: the target's authority "
					    "records say target for this wave, but this journal has "
					    "no authority step (run rollback where the cutover ran)"));
		}
	}
	json_object_set_new(sum, "waves", json_incref(waves));
	json_object_set_new(sum, "authority",
			    json_pack("{s:s, s:s?, s:o}", "topic", atopic, "error",
				      records ? NULL : why, "topics",
				      authority_of(plan, design, waves, records)));
	if ((err = summary_of(jr, waves, records, &brief, cli->errstr, sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	json_object_set(sum, "summary", brief);
	/* Everything is printed; an authority that could not be read is
	 * still a failure of the command (exit 3), so that no script reads
	 * "unknown" as "source". */
	rc = records ? 0 : km_err_exit_code(KM_ERR_UNREACHABLE);
	if (cli->json) {
		cli_print_json(sum);
		goto done;
	}
	printf("Migration '%s', journal %s (schema %lld)\n", plan->migration,
	       plan->journal,
	       cli_jint(sum, "schema_version"));
	print_summary(brief);
	table_t *t = table_new(4, "COMMAND", "RUNS", "LAST RUN", "LAST EXIT");
	json_array_foreach(json_object_get(sum, "commands"), i, r) {
		char *when = jtime(r, "last_ms");
		char runs[24], ex[24];
		snprintf(runs, sizeof(runs), "%lld",
			 cli_jint(r, "runs"));
		if (json_is_integer(json_object_get(r, "last_exit")))
			snprintf(ex, sizeof(ex), "%lld",
				 cli_jint(r, "last_exit"));
		else
			snprintf(ex, sizeof(ex), "running or killed");
		table_row(t, cli_jstr(r, "command"), runs, when, ex);
		free(when);
	}
	printf("\nCommands\n");
	table_print(t, stdout, "  ");
	table_destroy(t);

	t = table_new(4, "SNAPSHOT", "SCOPE", "COUNT", "LATEST");
	json_array_foreach(json_object_get(sum, "snapshots"), i, r) {
		char *when = jtime(r, "last_ms");
		char cnt[24];
		snprintf(cnt, sizeof(cnt), "%lld",
			 cli_jint(r, "count"));
		table_row(t, cli_jstr(r, "kind"), cli_jstr(r, "scope"), cnt, when);
		free(when);
	}
	printf("\nSnapshots\n");
	table_print(t, stdout, "  ");
	table_destroy(t);

	t = table_new(3, "FACT KIND", "VERDICT", "SUBJECTS");
	json_array_foreach(json_object_get(sum, "facts"), i, r) {
		char cnt[24];
		snprintf(cnt, sizeof(cnt), "%lld",
			 cli_jint(r, "subjects"));
		table_row(t, cli_jstr(r, "kind"), cli_jstr(r, "verdict"), cnt);
	}
	printf("\nFacts (latest per subject)\n");
	table_print(t, stdout, "  ");
	table_destroy(t);

	printf("\nOpen findings: %zu\n",
	       json_array_size(json_object_get(sum, "open_findings")));
	json_array_foreach(json_object_get(sum, "open_findings"), i, r)
		printf("  %s  %s\n", cli_jstr(r, "kind"), cli_jstr(r, "subject"));

	t = table_new(8, "WAVE", "TOPICS", "LAST STEP", "AT", "COMPLETE", "SOURCE FENCE",
		      "TARGET FENCE", "ROLLBACK");
	json_array_foreach(waves, i, r) {
		char *when = jtime(r, "last_step_at");
		km_sb_t names = KM_SB_INIT;
		json_t *n;
		size_t k;
		json_array_foreach(json_object_get(r, "topics"), k, n)
			km_sb_printf(&names, "%s%s", k ? ", " : "", json_string_value(n));
		table_row(t, cli_jstr(r, "wave"), names.len ? km_sb_str(&names) : "-",
			  json_is_string(json_object_get(r, "last_step")) ? cli_jstr(r, "last_step")
									: "-",
			  when, cli_jbool(r, "complete") ? "yes" : "no",
			  cli_jstr(json_object_get(json_object_get(r, "rollback"), "fence"), "source"),
			  cli_jstr(json_object_get(json_object_get(r, "rollback"), "fence"), "target"),
			  cli_jstr(json_object_get(r, "rollback"), "why"));
		km_sb_free(&names);
		free(when);
	}
	printf("\nCutover waves (steps from the journal)\n");
	if (json_array_size(waves))
		table_print(t, stdout, "  ");
	else
		printf("  none declared (cutover.waves)\n");
	table_destroy(t);

	if (records)
		printf("\nAuthority per topic (from '%s' on the target)\n", atopic);
	else
		printf("\nAuthority per topic: unknown (%s)\n", why);
	t = table_new(5, "TOPIC", "WAVE", "AUTHORITY", "SINCE", "JOURNAL SAYS");
	json_array_foreach(json_object_get(json_object_get(sum, "authority"), "topics"), i, r) {
		json_t *rec = json_object_get(r, "record");
		char *when = rec ? jtime(rec, "at") : km_strdup("-");
		table_row(t, cli_jstr(r, "topic"),
			  json_is_string(json_object_get(r, "wave")) ? cli_jstr(r, "wave") : "-",
			  cli_jstr(r, "authority"), when, cli_jstr(r, "journal_says"));
		free(when);
	}
	table_print(t, stdout, "  ");
	table_destroy(t);
done:
	json_decref(brief);
	json_decref(records);
	json_decref(waves);
	json_decref(design);
	json_decref(sum);
	return rc;
}
