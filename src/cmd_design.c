/*
 * cmd_design.c -- `kmigrate plan` and `kmigrate apply`: the target design.
 *
 * plan reads both clusters, builds the design (lib/design.h), shows what
 * apply would do on the target as a reviewable diff and saves the design
 * in the journal.  apply takes the *saved* design -- what was reviewed --
 * compares it with the target as it is now and performs the difference,
 * journaling every change with its before and after.  apply --dry-run
 * prints exactly what plan prints for the saved design.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "connect.h"
#include "design.h"
#include "guard.h"
#include "inventory.h"
#include "mapstore.h"
#include "report.h"


static const json_t *design_topic(const json_t *design, const char *target)
{
	json_t *t;
	size_t i;
	json_array_foreach(json_object_get(design, "topics"), i, t)
		if (!strcmp(cli_jstr(t, "target"), target))
			return t;
	return NULL;
}

static void print_delta(const json_t *design, const json_t *actions, int verbose)
{
	json_t *a, *c, *t;
	const char *cname;
	size_t i, j;

	printf("Target design for migration '%s': %s -> %s (naming: %s)\n",
	       cli_jstr(design, "migration"), cli_jstr(design, "source"), cli_jstr(design, "target"),
	       cli_jstr(design, "naming"));
	printf("\nTopics\n");
	json_array_foreach(actions, i, a) {
		const char *op = cli_jstr(a, "op");
		const json_t *dt = design_topic(design, cli_jstr(a, "subject"));
		if (!strcmp(op, "create-topic")) {
			printf("  + create %s (from '%s', %lld partitions, replication factor %lld)\n",
			       cli_jstr(a, "subject"), cli_jstr(a, "source_topic"),
			       cli_jint(a, "partitions"),
			       cli_jint(a, "replication_factor"));
			json_object_foreach(json_object_get(dt, "configs"), cname, c)
				printf("      %s = %s   (%s)\n", cname, cli_jstr(c, "value"), cli_jstr(c, "why"));
		} else if (!strcmp(op, "alter-configs")) {
			printf("  ~ change %s\n", cli_jstr(a, "subject"));
			json_array_foreach(json_object_get(a, "changes"), j, c) {
				json_t *why = json_object_get(
					json_object_get(json_object_get(dt, "configs"), cli_jstr(c, "config")),
					"why");
				printf("      %s: %s -> %s   (%s)\n", cli_jstr(c, "config"),
				       json_is_string(json_object_get(c, "from")) ? cli_jstr(c, "from") : "unset",
				       cli_jstr(c, "to"), json_string_value(why) ? json_string_value(why) : "");
			}
		} else if (!strcmp(op, "blocked") && !strstr(cli_jstr(a, "subject"), "@")) {
			printf("  ! blocked %s: %s\n", cli_jstr(a, "subject"), cli_jstr(a, "reason"));
		}
	}
	/* Topics already as designed. */
	json_array_foreach(json_object_get(design, "topics"), i, t) {
		bool acted = false;
		json_array_foreach(actions, j, a)
			if (!strcmp(cli_jstr(a, "subject"), cli_jstr(t, "target")))
				acted = true;
		if (!acted)
			printf("  = %s (as designed)\n", cli_jstr(t, "target"));
		json_array_foreach(json_object_get(t, "unsupported"), j, c)
			printf("  ! not carried: %s=%s on '%s': %s\n", cli_jstr(c, "config"),
			       cli_jstr(c, "value"), cli_jstr(t, "source"), cli_jstr(c, "reason"));
	}

	printf("\nACLs (%zu in the design)\n", json_array_size(json_object_get(design, "acls")));
	json_array_foreach(actions, i, a) {
		const char *op = cli_jstr(a, "op");
		if (!strcmp(op, "create-acl"))
			printf("  + create %s\n", cli_jstr(a, "subject"));
		else if (!strcmp(op, "blocked") && strstr(cli_jstr(a, "subject"), "@"))
			printf("  ! blocked %s\n", cli_jstr(a, "reason"));
	}
	if (verbose) {
		json_array_foreach(json_object_get(design, "acls"), i, c)
			if (json_object_get(c, "source_name"))
				printf("    (mapped from '%s': %s)\n", cli_jstr(c, "source_name"),
				       cli_jstr(c, "name"));
	}

	/* The split-brain guard (lib/guard.h): the target topics stay
	 * read-only for everyone but kmigrate until their wave's cutover. */
	printf("\nGuard (target topics read-only for all but kmigrate until cutover)\n");
	json_array_foreach(actions, i, a) {
		const char *op = cli_jstr(a, "op");
		if (!strcmp(op, "create-guard"))
			printf("  + guard DENY WRITE on '%s' for %s\n", cli_jstr(a, "topic"),
			       cli_jstr(a, "principal"));
		else if (!strcmp(op, "guard-finding"))
			printf("  ! guard: %s\n", cli_jstr(a, "reason"));
	}

	printf("\nManual items (for people; API cannot do them)\n");
	json_array_foreach(actions, i, a)
		if (!strcmp(cli_jstr(a, "op"), "manual"))
			printf("  ? %s %s: %s (owner: %s)\n", cli_jstr(a, "kind"), cli_jstr(a, "subject"),
			       cli_jstr(a, "action"),
			       json_is_string(json_object_get(a, "owner")) ? cli_jstr(a, "owner")
									   : "NONE, assign one");
	if (json_array_size(json_object_get(design, "warnings"))) {
		printf("\nWarnings\n");
		json_array_foreach(json_object_get(design, "warnings"), i, c)
			printf("  - %s\n", json_string_value(c));
	}
	printf("\nPlan: %zu to create, %zu to change, %zu ACLs to create, %zu guards to create, "
	       "%zu blocked, %zu manual, %zu guard findings.\n",
	       km_design_count(actions, "create-topic"), km_design_count(actions, "alter-configs"),
	       km_design_count(actions, "create-acl"), km_design_count(actions, "create-guard"),
	       km_design_count(actions, "blocked"), km_design_count(actions, "manual"),
	       km_design_count(actions, "guard-finding"));
}

/* Inventories one side without sampling (the design needs configs, not
 * records).  For the target, *authp (when given) gets the migration's
 * authority records (an empty object before any cutover): the guard is not
 * put back on a topic already cut over. */
static int take(cli_t *cli, const km_plan_t *plan, const char *role, bool all,
		json_t **invp, json_t **authp)
{
	km_inventory_opts_t o;
	km_kafka_t *k = NULL;
	km_err_t err;
	int rc;

	km_inventory_opts_init(&o);
	o.scope = role;
	o.sample_records = 0;
	o.all_topics = all;
	/* ApiVersions tell the design which Kafka the target runs, and so
	 * which config limits it enforces. */
	if ((rc = cli_open_cluster(cli, plan, role, KM_KAFKA_F_APIVERSIONS, &k)))
		return rc;
	err = km_inventory_take(k, plan, &o, invp, cli->errstr, sizeof(cli->errstr));
	if (!err && authp) {
		char topic[KM_MAPSTORE_NAME_MAX];

		km_mapstore_authority_topic(plan->migration, topic, sizeof(topic));
		err = km_mapstore_read_authority(km_kafka_endpoint(k), topic, authp, cli->errstr,
						 sizeof(cli->errstr));
		if (err == KM_ERR_NOT_FOUND) {
			*authp = json_object();
			err = KM_ERR_OK;
		}
	}
	km_kafka_close(k);
	return err ? cli_fail(cli, err) : 0;
}

/* What apply does: the guard first, so that no copied ALLOW WRITE is ever
 * in force on a target topic without its DENY, then the design's delta. */
static json_t *delta(const km_plan_t *plan, const json_t *design, const json_t *tgt,
		     const json_t *auth)
{
	json_t *actions = km_guard_actions(plan, design, tgt, auth);
	json_t *rest = km_design_delta(design, tgt);

	json_array_extend(actions, rest);
	json_decref(rest);
	return actions;
}

static int parse_common(cli_t *cli, int argc, char **argv, int *dry_run)
{
	static const struct option opts[] = {CLI_COMMON_OPTS,
					     {"dry-run", no_argument, NULL, 'n'},
					     {NULL, 0, NULL, 0}};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "n", opts, NULL)) != -1) {
		if (cli_common_opt(cli, c))
			continue;
		if (c == 'n' && dry_run) {
			*dry_run = 1;
			continue;
		}
		return cli_usage(cli, "unknown option");
	}
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
	return 0;
}

/* The plan's owners and promises, so that `kmigrate report` needs the
 * journal only (lib/report.h). */
static km_err_t journal_plan(km_journal_t *jr, int64_t run_id, const km_plan_t *plan,
			     char *errstr, size_t errstr_size)
{
	json_t *p = km_report_plan_json(plan);
	km_err_t err = km_journal_snapshot_put(jr, run_id, KM_REPORT_PLAN_SNAPSHOT_KIND,
					       KM_REPORT_PLAN_SNAPSHOT_SCOPE, p, NULL, errstr,
					       errstr_size);
	json_decref(p);
	return err;
}

static km_err_t journal_actions(km_journal_t *jr, int64_t run_id, const char *kind,
				const json_t *actions, char *errstr, size_t errstr_size)
{
	json_t *a;
	size_t i;
	km_err_t err;

	json_array_foreach(actions, i, a) {
		const char *op = cli_jstr(a, "op");
		char *subj = km_asprintf("%s %s", op, cli_jstr(a, "subject"));
		err = km_journal_fact(jr, run_id, kind, subj,
				      !strcmp(op, "blocked") ? "NO-GO"
				      : !strcmp(op, "manual") || !strcmp(op, "guard-finding")
					      ? "FINDING"
							       : "INFO",
				      a, errstr, errstr_size);
		free(subj);
		if (err)
			return err;
	}
	return KM_ERR_OK;
}

static size_t unowned_manual(const json_t *actions)
{
	json_t *a;
	size_t i, n = 0;
	json_array_foreach(actions, i, a)
		if (!strcmp(cli_jstr(a, "op"), "manual") && !json_is_string(json_object_get(a, "owner")))
			n++;
	return n;
}

/* The target connectors of the design: created STOPPED by apply. */
static void print_connectors(const json_t *conns)
{
	json_t *d, *c;
	size_t i, j;

	json_array_foreach(conns, i, d) {
		printf("  connector %s: created STOPPED on the target Connect by apply\n",
		       cli_jstr(d, "name"));
		json_array_foreach(json_object_get(d, "changes"), j, c)
			printf("    %s: %s -> %s\n", cli_jstr(c, "key"),
			       json_is_string(json_object_get(c, "from")) ? cli_jstr(c, "from") : "(unset)",
			       cli_jstr(c, "to"));
	}
}

/* Creates the saved design's connectors on the target, STOPPED, from the
 * source's live configs (the journal holds them masked), after checking
 * that they are what was reviewed; each creation journaled. */
static km_err_t apply_connectors(const km_plan_t *plan, const json_t *saved, km_journal_t *jr,
				 int64_t run_id, bool json, int *nappliedp, char *errstr,
				 size_t errstr_size)
{
	json_t *live = NULL, *res = NULL, *r;
	km_err_t err;
	size_t i;

	if (!json_array_size(saved))
		return KM_ERR_OK;
	if ((err = km_connect_design(plan, &live, errstr, errstr_size)) ||
	    (err = km_connect_design_check(saved, live, errstr, errstr_size)) ||
	    (err = km_connect_apply(plan, live, &res, errstr, errstr_size)))
		goto done;
	json_array_foreach(res, i, r) {
		if (strcmp(cli_jstr(r, "action"), "created"))
			continue;
		char *subj = km_asprintf("create-connector %s", cli_jstr(r, "name"));
		json_t *d, *after = NULL;
		size_t j;
		json_array_foreach((json_t *)saved, j, d)
			if (!strcmp(cli_jstr(d, "name"), cli_jstr(r, "name")))
				after = json_pack("{s:O, s:s}", "config", json_object_get(d, "config"),
						  "state", "STOPPED");
		json_t *body = json_pack("{s:n, s:o?}", "before", "after", after);
		err = km_journal_fact(jr, run_id, "apply.change", subj, "INFO", body, errstr,
				      errstr_size);
		if (!json)
			printf("  applied: %s (STOPPED)\n", subj);
		free(subj);
		json_decref(body);
		if (err)
			goto done;
		(*nappliedp)++;
	}
done:
	json_decref(live);
	json_decref(res);
	return err;
}

int cmd_plan(cli_t *cli, int argc, char **argv)
{
	km_plan_t *plan;
	km_journal_t *jr;
	json_t *src = NULL, *tgt = NULL, *design = NULL, *actions = NULL, *auth = NULL;
	int64_t run_id = 0, snap = 0;
	char *args = NULL;
	km_err_t err;
	int rc;

	if ((rc = parse_common(cli, argc, argv, NULL)) || (rc = cli_ready(cli)))
		return rc;
	plan = cli->plan;
	if ((rc = take(cli, plan, "source", false, &src, NULL)) ||
	    (rc = take(cli, plan, "target", true, &tgt, &auth)))
		goto done;
	if ((err = km_design_build(plan, src, tgt, &design, cli->errstr, sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	/* The connectors' target configs (lib/connect.h), saved masked. */
	json_t *conns = NULL;
	if ((err = km_connect_design(plan, &conns, cli->errstr, sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	json_object_set_new(design, "connectors", km_connect_design_masked(conns));
	json_decref(conns);
	actions = delta(plan, design, tgt, auth);
	if ((rc = cli_journal(cli)))
		goto done;
	jr = cli->jr;
	/* A blocked object, or work for people that nobody owns, is a
	 * finding: the plan is not ready to apply as a whole. */
	rc = km_design_count(actions, "blocked") || unowned_manual(actions) ? 1 : 0;
	args = cli_args_string(argc, argv);
	if ((err = km_journal_begin(jr, cli->errstr, sizeof(cli->errstr))) ||
	    (err = km_journal_run_begin(jr, "plan", args, &run_id, cli->errstr, sizeof(cli->errstr))) ||
	    (err = km_journal_snapshot_put(jr, run_id, "design", "target", design, &snap,
					   cli->errstr, sizeof(cli->errstr))) ||
	    (err = journal_actions(jr, run_id, "plan.action", actions, cli->errstr,
				   sizeof(cli->errstr))) ||
	    (err = journal_plan(jr, run_id, plan, cli->errstr, sizeof(cli->errstr))) ||
	    (err = km_journal_run_end(jr, run_id, rc, rc ? "blocked" : "reviewable", cli->errstr,
				      sizeof(cli->errstr))) ||
	    (err = km_journal_commit(jr, cli->errstr, sizeof(cli->errstr)))) {
		km_journal_rollback(jr);
		rc = cli_fail(cli, err);
		goto done;
	}
	if (cli->json) {
		json_t *out = json_pack("{s:O, s:O, s:I}", "design", design, "actions", actions,
					"design_id", (json_int_t)snap);
		json_object_set_new(out, "schema_ids",
				    json_string(km_plan_schema_ids_str(plan->schemas.ids)));
		cli_print_json(out);
		json_decref(out);
	} else {
		print_delta(design, actions, cli->verbose);
		print_connectors(json_object_get(design, "connectors"));
		if (plan->schemas.ids == KM_PLAN_SCHEMA_IDS_REWRITE)
			printf("\n*** SCHEMA IDS REWRITTEN (schemas.ids: rewrite): replicate changes the "
			       "4-byte schema ID of every wire-format key and value to the target "
			       "registry's (kmigrate schemas) ***\n\n");
		printf("Saved as design %lld in %s; `kmigrate apply` performs it.\n",
		       (long long)snap, plan->journal);
	}
done:
	free(args);
	json_decref(actions);
	json_decref(design);
	json_decref(src);
	json_decref(tgt);
	json_decref(auth);
	return rc;
}

typedef struct apply_ctx_s {
	km_journal_t *jr;
	int64_t run_id;
	bool json;
} apply_ctx_t;

/* Journals one applied change at once, so that a killed apply leaves a
 * record of exactly what it did. */
static km_err_t applied(void *opaque, const json_t *a, char *errstr, size_t errstr_size)
{
	apply_ctx_t *ctx = opaque;
	const char *op = cli_jstr(a, "op");
	json_t *body = json_object();
	char *subj = km_asprintf("%s %s", op, cli_jstr(a, "subject"));
	km_err_t err;

	if (!strcmp(op, "create-topic")) {
		json_object_set_new(body, "before", json_null());
		json_object_set_new(body, "after",
				    json_pack("{s:O, s:O, s:O}", "partitions",
					      json_object_get(a, "partitions"), "replication_factor",
					      json_object_get(a, "replication_factor"), "configs",
					      json_object_get(a, "configs")));
	} else if (!strcmp(op, "alter-configs")) {
		json_t *before = json_object(), *after = json_object(), *c;
		size_t i;
		json_array_foreach(json_object_get(a, "changes"), i, c) {
			json_object_set(before, cli_jstr(c, "config"), json_object_get(c, "from"));
			json_object_set(after, cli_jstr(c, "config"), json_object_get(c, "to"));
		}
		json_object_set_new(body, "before", before);
		json_object_set_new(body, "after", after);
	} else {
		json_object_set_new(body, "before", json_null());
		json_object_set(body, "after", json_object_get(a, "acl"));
	}
	err = km_journal_fact(ctx->jr, ctx->run_id, "apply.change", subj, "INFO", body, errstr,
			      errstr_size);
	if (!ctx->json)
		printf("  applied: %s\n", subj);
	free(subj);
	json_decref(body);
	return err;
}

int cmd_apply(cli_t *cli, int argc, char **argv)
{
	km_plan_t *plan;
	km_journal_t *jr;
	km_kafka_t *k = NULL;
	json_t *design = NULL, *tgt = NULL, *actions = NULL, *after = NULL, *left = NULL;
	json_t *auth = NULL;
	int dry_run = 0, rc, napplied = 0, reads = 0;
	km_design_requests_t req = {0, 0, 0};
	int64_t run_id = 0, ts = 0;
	char *args = NULL, when[40];
	km_err_t err, aerr;

	if ((rc = parse_common(cli, argc, argv, &dry_run)) || (rc = cli_ready(cli)))
		return rc;
	plan = cli->plan;
	jr = cli->jr;
	err = km_journal_snapshot_get(jr, "design", "target", 0, &design, &ts, cli->errstr,
				      sizeof(cli->errstr));
	if (err == KM_ERR_NOT_FOUND) {
		snprintf(cli->errstr, sizeof(cli->errstr),
			 "no saved design in '%s' (run `kmigrate plan -p %s` and review it first)",
			 plan->journal, plan->path);
		rc = cli_fail(cli, KM_ERR_NOT_FOUND);
		goto done;
	} else if (err) {
		rc = cli_fail(cli, err);
		goto done;
	}
	if ((rc = take(cli, plan, "target", true, &tgt, &auth)))
		goto done;
	actions = delta(plan, design, tgt, auth);
	km_iso8601(ts, when, sizeof(when));

	if (dry_run) {
		/* The connectors apply would create (STOPPED), checked live on
		 * the target worker. */
		json_t *cpre = NULL, *r;
		size_t ci, conflicts = 0;
		if ((err = km_connect_apply_preview(plan, json_object_get(design, "connectors"),
						    &cpre, cli->errstr, sizeof(cli->errstr)))) {
			rc = cli_fail(cli, err);
			goto done;
		}
		json_array_foreach(cpre, ci, r)
			conflicts += !strcmp(cli_jstr(r, "action"), "conflict");
		if (cli->json) {
			json_t *out = json_pack("{s:O, s:O, s:o}", "design", design, "actions", actions,
						"connectors", cpre);
			cli_print_json(out);
			json_decref(out);
		} else {
			print_delta(design, actions, cli->verbose);
			json_array_foreach(cpre, ci, r)
				printf("  connector %s: %s\n", cli_jstr(r, "name"),
				       !strcmp(cli_jstr(r, "action"), "exists")
					       ? "exists on the target Connect with this config: left alone"
				       : !strcmp(cli_jstr(r, "action"), "conflict")
					       ? "CONFLICT: exists on the target Connect with another "
						 "config (apply refuses)"
					       : "would be created STOPPED on the target Connect");
			json_decref(cpre);
			printf("Dry run of the design saved at %s: nothing changed.\n", when);
		}
		rc = km_design_count(actions, "blocked") || conflicts ? 1 : 0;
		goto done;
	}

	/* Both Connect workers answer, and the source's connectors are what
	 * was reviewed, before anything changes. */
	if (json_array_size(json_object_get(design, "connectors"))) {
		json_t *live = NULL;
		km_connect_t *tc = NULL;
		if ((err = km_connect_design(plan, &live, cli->errstr, sizeof(cli->errstr))) ||
		    (err = km_connect_design_check(json_object_get(design, "connectors"), live,
						   cli->errstr, sizeof(cli->errstr))) ||
		    (err = plan->target.connect_url
				   ? km_connect_open(plan->target.connect_url, "target.connect_url", 0,
						     &tc, cli->errstr, sizeof(cli->errstr))
				   : km_seterr(cli->errstr, sizeof(cli->errstr), KM_ERR_PLAN,
					       "the design has connectors but the plan has no "
					       "target.connect_url: add the target Connect worker's "
					       "REST URL"))) {
			json_decref(live);
			rc = cli_fail(cli, err);
			goto done;
		}
		json_decref(live);
		km_connect_close(tc);
	}
	args = cli_args_string(argc, argv);
	if ((err = km_journal_run_begin(jr, "apply", args, &run_id, cli->errstr,
					sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	size_t todo = km_design_count(actions, "create-topic") +
		      km_design_count(actions, "alter-configs") +
		      km_design_count(actions, "create-acl") +
		      km_design_count(actions, "create-guard");
	if (!cli->json)
		printf("Applying the design saved at %s to %s: %zu change(s)\n", when,
		       plan->target.bootstrap, todo);
	if ((rc = cli_open_cluster(cli, plan, "target", 0, &k)))
		goto end_run;
	apply_ctx_t ctx = {jr, run_id, cli->json != 0};
	aerr = km_design_apply(k, actions, applied, &ctx, &napplied, &req, cli->errstr,
			       sizeof(cli->errstr));
	km_kafka_close(k);
	k = NULL;
	if (!aerr)
		aerr = apply_connectors(plan, json_object_get(design, "connectors"), jr, run_id,
					cli->json != 0, &napplied, cli->errstr, sizeof(cli->errstr));
	if (aerr) {
		rc = cli_fail(cli, aerr);
		goto end_run;
	}
	/* Prove convergence: re-read the target and diff again.  A new
	 * topic may take a moment to reach every broker's metadata, so the
	 * proof waits on the condition, with a deadline that grows with the
	 * work: a loaded broker that just created 400 topics shows the last
	 * of them seconds later (bench/run-scale saw 16 still missing after
	 * 15 s at 2,000 partitions).  Each read is of the whole target
	 * (O(topics)), so the pause between reads grows (100 ms doubling to
	 * 2 s): a long wait costs a few reads, not one per 250 ms. */
	int64_t grace = 15000 + 100 * (int64_t)todo;
	int64_t deadline = km_mono_ms() + (grace > 300000 ? 300000 : grace);
	int64_t pause_ms = 100;
	for (;;) {
		json_t *a;
		size_t i;

		json_decref(tgt);
		json_decref(after);
		json_decref(left);
		json_decref(auth);
		tgt = auth = NULL;
		if ((rc = take(cli, plan, "target", true, &tgt, &auth)))
			goto end_run;
		after = delta(plan, design, tgt, auth);
		left = json_array();
		json_array_foreach(after, i, a)
			if (strcmp(cli_jstr(a, "op"), "manual") &&
			    strcmp(cli_jstr(a, "op"), "guard-finding"))
				json_array_append(left, a);
		reads++;
		if (!json_array_size(left) || km_mono_ms() > deadline)
			break;
		/* Never past the deadline by more than the last read. */
		int64_t rest = deadline - km_mono_ms();
		int64_t ms = pause_ms < rest ? pause_ms : rest > 0 ? rest : 0;
		struct timespec pause = {ms / 1000, (ms % 1000) * 1000000};
		nanosleep(&pause, NULL);
		pause_ms = pause_ms * 2 > 2000 ? 2000 : pause_ms * 2;
	}
	if (json_array_size(left)) {
		snprintf(cli->errstr, sizeof(cli->errstr),
			 "the target still differs from the design after apply in %zu place(s), "
			 "first: %s %s; re-run `kmigrate apply` (it only does what is left) or "
			 "look at the target's controller",
			 json_array_size(left), cli_jstr(json_array_get(left, 0), "op"),
			 cli_jstr(json_array_get(left, 0), "subject"));
		rc = cli_fail(cli, KM_ERR_CONFLICT);
		goto end_run;
	}
	if (cli->json) {
		json_t *out = json_pack("{s:i, s:b, s:O, s:{s:i, s:i, s:i}, s:i}", "applied",
					napplied, "converged", 1, "actions", actions, "requests",
					"CreateTopics", req.create_topics, "IncrementalAlterConfigs",
					req.alter_configs, "CreateAcls", req.create_acls,
					"read_backs", reads);
		cli_print_json(out);
		json_decref(out);
	} else if (napplied == 0) {
		printf("No changes: the target already matches the design.\n");
	} else {
		printf("Applied %d change(s); the target now matches the design.\n", napplied);
	}
	if (!cli->json && km_design_count(actions, "manual"))
		printf("%zu manual item(s) remain for people (see `kmigrate plan`).\n",
		       km_design_count(actions, "manual"));
end_run:
	if ((err = km_journal_run_end(jr, run_id, rc, rc ? "failed" : "converged", cli->errstr,
				      sizeof(cli->errstr))) &&
	    !rc)
		rc = cli_fail(cli, err);
done:
	free(args);
	json_decref(left);
	json_decref(after);
	json_decref(actions);
	json_decref(design);
	json_decref(tgt);
	json_decref(auth);
	km_kafka_close(k);
	return rc;
}
