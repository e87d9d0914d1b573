/*
 * cmd_check.c -- `kmigrate check`: the compatibility gate on the target.
 *
 * The engine (lib/compat.c) runs the canaries and returns one row of
 * evidence per check; this command prints them and records them.  Nothing
 * is journaled unless every check ran: bad input and an unreachable target
 * leave the journal untouched, and so does an interrupted run (its canaries
 * are still cleaned up).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "compat.h"


/* One run, one fact per check, one fact for the gate: one transaction. */
static km_err_t journal_check(km_journal_t *jr, const char *args, json_t *rep,
			      int exit_code, int64_t *run_idp, char *errstr,
			      size_t errstr_size)
{
	json_t *check, *gate;
	km_sb_t summary = KM_SB_INIT;
	km_err_t err;
	size_t i;

	if ((err = km_journal_begin(jr, errstr, errstr_size)))
		return err;
	if ((err = km_journal_run_begin(jr, "check", args, run_idp, errstr,
					errstr_size)))
		goto fail;
	json_array_foreach(json_object_get(rep, "checks"), i, check) {
		json_t *body = json_pack("{s:O, s:O, s:O, s:O, s:O}", "tried",
					 json_object_get(check, "tried"), "latency_ms",
					 json_object_get(check, "latency_ms"), "result",
					 json_object_get(check, "result"), "detail",
					 json_object_get(check, "detail"), "error",
					 json_object_get(check, "error"));
		err = km_journal_fact(jr, *run_idp, "check", cli_jstr(check, "name"),
				      cli_jstr(check, "result"), body, errstr, errstr_size);
		json_decref(body);
		if (err)
			goto fail;
	}
	gate = json_pack("{s:O, s:O, s:O, s:O, s:I}", "verdict",
			 json_object_get(rep, "verdict"), "no_go",
			 json_object_get(rep, "no_go"), "target",
			 json_object_get(rep, "target"), "canary",
			 json_object_get(rep, "canary"), "checks",
			 (json_int_t)json_array_size(json_object_get(rep, "checks")));
	err = km_journal_fact(jr, *run_idp, "gate.compat", "target",
			      cli_jstr(rep, "verdict"), gate, errstr, errstr_size);
	json_decref(gate);
	if (err)
		goto fail;
	km_sb_puts(&summary, cli_jstr(rep, "verdict"));
	json_array_foreach(json_object_get(rep, "no_go"), i, check)
		km_sb_printf(&summary, "%s%s", i ? ", " : ": ", json_string_value(check));
	err = km_journal_run_end(jr, *run_idp, exit_code, km_sb_str(&summary),
				 errstr, errstr_size);
	km_sb_free(&summary);
	if (err || (err = km_journal_commit(jr, errstr, errstr_size)))
		goto fail;
	return KM_ERR_OK;
fail:
	km_journal_rollback(jr);
	return err;
}

static void print_report(json_t *rep, int verbose)
{
	json_t *target = json_object_get(rep, "target"), *check, *name;
	table_t *t = table_new(verbose ? 5 : 4, "CHECK", "RESULT", "LATENCY",
			       "DETAIL", "TRIED");
	size_t i, nchecks = json_array_size(json_object_get(rep, "checks"));

	printf("Compatibility gate for migration '%s': target %s (%s%s%s",
	       cli_jstr(rep, "migration"), cli_jstr(target, "bootstrap"),
	       cli_jstr(target, "security_protocol"),
	       json_is_string(json_object_get(target, "sasl_mechanism")) ? " " : "",
	       json_is_string(json_object_get(target, "sasl_mechanism"))
		       ? cli_jstr(target, "sasl_mechanism")
		       : "");
	if (json_is_string(json_object_get(target, "cluster_id")))
		printf(", cluster id %s", cli_jstr(target, "cluster_id"));
	printf(")\nCanaries: topic %s, group %s\n\n",
	       cli_jstr(json_object_get(rep, "canary"), "topic"),
	       cli_jstr(json_object_get(rep, "canary"), "group"));
	json_array_foreach(json_object_get(rep, "checks"), i, check) {
		char lat[32];
		const char *detail = json_is_string(json_object_get(check, "error"))
					     ? cli_jstr(check, "error")
					     : cli_jstr(check, "detail");
		snprintf(lat, sizeof(lat), "%" JSON_INTEGER_FORMAT " ms",
			 cli_jint(check, "latency_ms"));
		table_row(t, cli_jstr(check, "name"), cli_jstr(check, "result"), lat, detail,
			  cli_jstr(check, "tried"));
	}
	table_print(t, stdout, "  ");
	table_destroy(t);
	printf("\nVerdict: %s", cli_jstr(rep, "verdict"));
	if (json_array_size(json_object_get(rep, "no_go"))) {
		printf(" (%zu of %zu checks NO-GO:",
		       json_array_size(json_object_get(rep, "no_go")), nchecks);
		json_array_foreach(json_object_get(rep, "no_go"), i, name)
			printf("%s %s", i ? "," : "", json_string_value(name));
		printf(")");
	} else {
		printf(" (all %zu checks GO)", nchecks);
	}
	printf("\n");
}

int cmd_check(cli_t *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTS,
		{"timeout", required_argument, NULL, 't'},
		{"topic-bytes", required_argument, NULL, 'b'},
		{NULL, 0, NULL, 0}};
	km_compat_opts_t copts;
	km_plan_t *plan;
	json_t *rep = NULL;
	char *args = NULL;
	int64_t run_id = 0, v;
	int c, rc = 0;
	km_err_t err;

	km_compat_opts_init(&copts);
	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "t:b:", opts, NULL)) != -1) {
		if (cli_common_opt(cli, c))
			continue;
		switch (c) {
		case 't':
			if (km_parse_i64(optarg, &v) || v < 1 || v > 600)
				return cli_usage(cli, "--timeout takes seconds 1..600, "
						 "not '%s'", optarg);
			copts.timeout_ms = (int)v * 1000;
			break;
		case 'b':
			/* librdkafka produces at most 1000000000 bytes. */
			if (km_parse_i64(optarg, &v) || v < 1024 || v > 999000000)
				return cli_usage(cli, "--topic-bytes takes a batch size "
						 "1024..999000000, not '%s'", optarg);
			copts.topic_bytes = v;
			break;
		default: return cli_usage(cli, "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);

	if ((rc = cli_ready(cli)))
		goto done;
	plan = cli->plan;

	/* Ctrl-C stops the checks, not the cleanup of the canaries. */
	copts.stop = &cli_stop;
	if ((err = km_compat_check(plan, &copts, &rep, cli->errstr, sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	rc = strcmp(cli_jstr(rep, "verdict"), "GO") ? 1 : 0;

	if (!cli_jbool(rep, "interrupted")) {
		args = cli_args_string(argc, argv);
		if ((rc = cli_journal(cli)))
			goto done;
		if ((err = journal_check(cli->jr, args, rep, rc ? 1 : 0, &run_id, cli->errstr,
					 sizeof(cli->errstr)))) {
			rc = cli_fail(cli, err);
			goto done;
		}
		rc = strcmp(cli_jstr(rep, "verdict"), "GO") ? 1 : 0;
	}

	if (cli->json) {
		json_t *out = json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:s}", "checks",
					json_object_get(rep, "checks"), "verdict",
					json_object_get(rep, "verdict"), "no_go",
					json_object_get(rep, "no_go"), "target",
					json_object_get(rep, "target"), "canary",
					json_object_get(rep, "canary"), "interrupted",
					json_object_get(rep, "interrupted"), "journal",
					plan->journal);
		json_object_set_new(out, "run_id",
				    run_id ? json_integer((json_int_t)run_id) : json_null());
		cli_print_json(out);
		json_decref(out);
	} else {
		print_report(rep, cli->verbose);
		if (run_id)
			printf("Evidence: run %lld in %s\n", (long long)run_id,
			       plan->journal);
	}
	if (cli_jbool(rep, "interrupted")) {
		snprintf(cli->errstr, sizeof(cli->errstr),
			 "check interrupted: the verdict is unknown, which is NO-GO; "
			 "canaries were cleaned up and nothing was journaled");
		rc = cli_fail(cli, KM_ERR_NOGO);
	}
done:
	free(args);
	json_decref(rep);
	return rc;
}
