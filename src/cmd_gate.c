/*
 * cmd_gate.c -- `kmigrate gate`: evaluate a gate, print its criteria and
 * the verdict, journal the verdict.
 *
 * The engine (lib/gate.h) evaluates; this command prints the table (or the
 * report with --json) and records one run and one "gate.<name>" fact, subject
 * "wave:<w>" ("wave:*" for every topic in scope), in one transaction after
 * the evaluation.  Nothing is journaled when the gate could not be evaluated
 * (a cluster unreachable, the journal unreadable): exit 3, no verdict.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gate.h"

static km_err_t journal_gate(km_journal_t *jr, const char *args, const json_t *rep, int exit_code,
			     int64_t *run_idp, char *errstr, size_t errstr_size)
{
	const char *wave = json_string_value(json_object_get(rep, "wave"));
	char kind[64], subj[300];
	km_err_t err;

	snprintf(kind, sizeof(kind), "gate.%s", cli_jstr(rep, "gate"));
	snprintf(subj, sizeof(subj), "wave:%s", wave ? wave : "*");
	if ((err = km_journal_begin(jr, errstr, errstr_size)))
		return err;
	if ((err = km_journal_run_begin(jr, "gate", args, run_idp, errstr, errstr_size)) ||
	    (err = km_journal_fact(jr, *run_idp, kind, subj, cli_jstr(rep, "verdict"), rep, errstr,
				   errstr_size)) ||
	    (err = km_journal_run_end(jr, *run_idp, exit_code, cli_jstr(rep, "verdict"), errstr,
				      errstr_size)) ||
	    (err = km_journal_commit(jr, errstr, errstr_size))) {
		km_journal_rollback(jr);
		return err;
	}
	return KM_ERR_OK;
}

/* A measured value as one cell: strings and numbers as they are, objects
 * as "k=v" pairs. */
static char *cell(const json_t *v)
{
	km_sb_t sb = KM_SB_INIT;
	const char *k;
	json_t *x;

	if (!v || json_is_null(v))
		return km_strdup("unknown");
	if (json_is_string(v))
		return km_strdup(json_string_value(v));
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, x) {
			char *s = cell(x);
			km_sb_printf(&sb, "%s%s=%s", sb.len ? " " : "", k, s);
			free(s);
		}
		return km_sb_detach(&sb);
	}
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	return s;
}

static void print_report(const json_t *rep)
{
	table_t *t = table_new(7, "GATE", "CRITERION", "THRESHOLD", "MEASURED", "EVIDENCE", "OWNER",
			       "VERDICT");
	json_t *c;
	size_t i;

	printf("Gate '%s' of migration '%s', %s%s%s, at %s\n\n", cli_jstr(rep, "gate"),
	       cli_jstr(rep, "migration"),
	       json_is_string(json_object_get(rep, "wave")) ? "wave '" : "every topic in scope",
	       json_is_string(json_object_get(rep, "wave")) ? cli_jstr(rep, "wave") : "",
	       json_is_string(json_object_get(rep, "wave")) ? "'" : "", cli_jstr(rep, "evaluated_at"));
	json_array_foreach(json_object_get(rep, "criteria"), i, c) {
		json_t *ev = json_object_get(c, "evidence");
		char evs[200], *m = cell(json_object_get(c, "measured"));
		if (json_is_integer(json_object_get(ev, "fact_id")))
			snprintf(evs, sizeof(evs), "%s run %lld fact %lld %s", cli_jstr(ev, "command"),
				 cli_jint(ev, "run_id"), cli_jint(ev, "fact_id"),
				 cli_jstr(ev, "measured_at"));
		else if (json_is_integer(json_object_get(ev, "run_id")))
			snprintf(evs, sizeof(evs), "%s run %lld %s", cli_jstr(ev, "command"),
				 cli_jint(ev, "run_id"), cli_jstr(ev, "measured_at"));
		else if (json_is_string(json_object_get(ev, "measured_at")))
			snprintf(evs, sizeof(evs), "%s %s", cli_jstr(ev, "command"),
				 cli_jstr(ev, "measured_at"));
		else
			snprintf(evs, sizeof(evs), "%s", cli_jstr(ev, "command"));
		table_row(t, cli_jstr(c, "gate"), cli_jstr(c, "name"), cli_jstr(c, "threshold"), m,
			  evs, json_is_string(json_object_get(c, "owner")) ? cli_jstr(c, "owner")
									  : "(nobody)",
			  cli_jstr(c, "verdict"));
		free(m);
	}
	table_print(t, stdout, "  ");
	table_destroy(t);
	printf("\n");
	json_array_foreach(json_object_get(rep, "criteria"), i, c)
		if (strcmp(cli_jstr(c, "verdict"), "GO") && json_is_string(json_object_get(c, "reason")))
			printf("  NO-GO %s: %s\n", cli_jstr(c, "name"), cli_jstr(c, "reason"));
	printf("%sVerdict: %s\n",
	       strcmp(cli_jstr(rep, "verdict"), "GO") ? "\n" : "", cli_jstr(rep, "verdict"));
}

int cmd_gate(cli_t *cli, int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_OPTS,
					     {"wave", required_argument, NULL, 'w'},
					     {NULL, 0, NULL, 0}};
	const char *name = "cutover", *wave = NULL;
	json_t *rep = NULL;
	int64_t run_id = 0;
	char *args = NULL;
	km_err_t err;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "w:", opts, NULL)) != -1) {
		if (cli_common_opt(cli, c))
			continue;
		if (c == 'w')
			wave = optarg;
		else
			return cli_usage(cli, "unknown option");
	}
	if (optind < argc)
		name = argv[optind++];
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
	for (c = 0; km_gate_names[c] && strcmp(km_gate_names[c], name); c++)
		;
	if (!km_gate_names[c])
		return cli_usage(cli,
				 "unknown gate '%s': use design, compatibility, replication, "
				 "validation, offsets, rollback-ready or cutover",
				 name);
	if ((rc = cli_ready(cli)))
		return rc;
	if ((err = km_gate_eval(cli->plan, cli->jr, cli->ks, cli->kt, name, wave, km_now_ms(), &rep,
				cli->errstr, sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	rc = strcmp(cli_jstr(rep, "verdict"), "GO") ? 1 : 0;
	args = cli_args_string(argc, argv);
	if ((err = journal_gate(cli->jr, args, rep, rc, &run_id, cli->errstr,
				sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	if (cli->json) {
		json_object_set_new(rep, "run_id", json_integer((json_int_t)run_id));
		cli_print_json(rep);
	} else {
		print_report(rep);
		printf("Evidence: run %lld in %s\n", (long long)run_id, cli->plan->journal);
	}
done:
	free(args);
	json_decref(rep);
	return rc;
}
