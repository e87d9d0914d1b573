/*
 * cmd_validate.c -- `kmigrate validate`: source and target compared record
 * by record over the replicated range, and a GO / NO-GO verdict.
 *
 * The engine (lib/validate.h) returns the report; this command prints it
 * and journals it: one run, a "validate.partition" fact per partition and a
 * "gate.validate" fact for the verdict, in one transaction after the work.
 * Nothing is journaled when validation could not finish (a cluster failed,
 * or it was interrupted): a partial comparison is not evidence.
 */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "validate.h"


/* The source topics of the saved design (`kmigrate plan`), which validate
 * must see whatever the source principal's ACLs show: @returns a new JSON
 * array, or NULL when there is no journal or no saved design yet. */
static void on_progress(void *opaque, const km_validate_progress_t *p)
{
	double secs = (double)p->elapsed_ms / 1000.0;
	(void)opaque;
	if (secs <= 0)
		secs = 0.001;
	fprintf(stderr, "\rvalidating: %d/%d partitions  %lld records  %.0f records/s  %.1f MB/s   ",
		p->partitions_done, p->partitions, (long long)p->records,
		(double)p->records / secs, (double)p->bytes / secs / 1e6);
}

/* One run, one fact per partition, one fact for the gate: one transaction. */
static km_err_t journal_validate(km_journal_t *jr, const char *args, json_t *rep, int exit_code,
				 int64_t *run_idp, char *errstr, size_t errstr_size)
{
	json_t *p, *gate;
	km_sb_t summary = KM_SB_INIT;
	char subj[600];
	km_err_t err;
	size_t i;

	if ((err = km_journal_begin(jr, errstr, errstr_size)))
		return err;
	if ((err = km_journal_run_begin(jr, "validate", args, run_idp, errstr, errstr_size)))
		goto fail;
	json_array_foreach(json_object_get(rep, "partitions"), i, p) {
		snprintf(subj, sizeof(subj), "partition:%s[%lld]", cli_jstr(p, "topic"),
			 cli_jint(p, "partition"));
		if ((err = km_journal_fact(jr, *run_idp, "validate.partition", subj,
					   cli_jstr(p, "verdict"), p, errstr, errstr_size)))
			goto fail;
	}
	gate = json_deep_copy(rep);
	json_object_del(gate, "partitions");
	err = km_journal_fact(jr, *run_idp, "gate.validate", "data", cli_jstr(rep, "verdict"), gate,
			      errstr, errstr_size);
	json_decref(gate);
	if (err)
		goto fail;
	/* The run's summary carries the label: a sampled GO never reads as
	 * a full one. */
	km_sb_printf(&summary, "%s: %lld mismatches in %lld partitions", cli_jstr(rep, "label"),
		     cli_jint(rep, "mismatches"), cli_jint(rep, "partitions_total"));
	err = km_journal_run_end(jr, *run_idp, exit_code, km_sb_str(&summary), errstr, errstr_size);
	km_sb_free(&summary);
	if (err || (err = km_journal_commit(jr, errstr, errstr_size)))
		goto fail;
	return KM_ERR_OK;
fail:
	km_journal_rollback(jr);
	return err;
}

static void fmt_off(json_t *o, const char *k, char *buf, size_t size)
{
	json_t *v = json_object_get(o, k);
	if (json_is_integer(v))
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else
		snprintf(buf, size, "-");
}

static void print_report(json_t *rep)
{
	json_t *parts = json_object_get(rep, "partitions"), *p, *m, *tp;
	table_t *t = table_new(7, "PARTITION", "MODE", "SOURCE", "TARGET", "MISMATCHES", "RESULT",
			       "DETAIL");
	size_t i, j;
	int any = 0;

	printf("Validation of migration '%s' (%s)\n\n", cli_jstr(rep, "migration"),
	       cli_jbool(rep, "sampled") ? "sampled: statistical, not a proof"
							     : "every record");
	json_array_foreach(parts, i, p) {
		char name[600], src[32], tgt[32], mm[32];
		json_t *ord = json_object_get(p, "ordering");
		snprintf(name, sizeof(name), "%s[%lld]", cli_jstr(p, "topic"), cli_jint(p, "partition"));
		snprintf(src, sizeof(src), "%lld", cli_jint(json_object_get(p, "source"), "records"));
		snprintf(tgt, sizeof(tgt), "%lld", cli_jint(json_object_get(p, "target"), "records"));
		snprintf(mm, sizeof(mm), "%lld", cli_jint(p, "mismatches"));
		km_sb_t d = KM_SB_INIT;
		if (json_is_string(json_object_get(p, "reason")))
			km_sb_puts(&d, cli_jstr(p, "reason"));
		else
			km_sb_puts(&d, cli_jstr(p, "state"));
		if (cli_jint(p, "expired"))
			km_sb_printf(&d, "; %lld expired records not compared", cli_jint(p, "expired"));
		json_t *tail = json_object_get(p, "target_tail");
		if (cli_jint(tail, "extra"))
			km_sb_printf(&d, "; %lld records written on the target after the copy",
				     cli_jint(tail, "extra"));
		if (cli_jint(tail, "copied_after_snapshot"))
			km_sb_printf(&d, "; %lld copied after the snapshot (not compared)",
				     cli_jint(tail, "copied_after_snapshot"));
		if (cli_jint(p, "aborted_on_target"))
			km_sb_printf(&d, "; %lld records of aborted transactions on the target",
				     cli_jint(p, "aborted_on_target"));
		if (cli_jint(p, "superseded_after_snapshot"))
			km_sb_printf(&d, "; %lld keys rewritten after the snapshot",
				     cli_jint(p, "superseded_after_snapshot"));
		if (cli_jint(ord, "violations"))
			km_sb_printf(&d, "; ordering %s violated (%lld)", cli_jstr(ord, "rule"),
				     cli_jint(ord, "violations"));
		else if (cli_jbool(ord, "checked"))
			km_sb_printf(&d, "; ordering %s kept", cli_jstr(ord, "rule"));
		table_row(t, name, cli_jstr(p, "mode"), src, tgt, mm, cli_jstr(p, "verdict"), km_sb_str(&d));
		km_sb_free(&d);
	}
	table_print(t, stdout, "  ");
	table_destroy(t);

	json_array_foreach(parts, i, p) {
		json_array_foreach(json_object_get(p, "shown"), j, m) {
			char so[32], to[32];
			km_sb_t d = KM_SB_INIT;
			json_t *k;
			size_t x;
			if (!any++)
				printf("\nMismatches (the first %lld per partition)\n",
				       cli_jint(rep, "max_shown"));
			fmt_off(m, "source_offset", so, sizeof(so));
			fmt_off(m, "target_offset", to, sizeof(to));
			json_array_foreach(json_object_get(m, "differs"), x, k)
				km_sb_printf(&d, "%s%s", x ? ", " : "", json_string_value(k));
			if (d.len)
				km_sb_puts(&d, " differ");
			if (json_is_string(json_object_get(m, "note")))
				km_sb_printf(&d, "%s%s", d.len ? "; " : "", cli_jstr(m, "note"));
			printf("  %s[%lld]  %-9s  source %-8s target %-8s key %s  %s\n",
			       cli_jstr(p, "topic"), cli_jint(p, "partition"), cli_jstr(m, "kind"), so, to,
			       json_is_string(json_object_get(m, "key")) ? cli_jstr(m, "key") : "-",
			       km_sb_str(&d));
			km_sb_free(&d);
		}
		if (json_array_size(json_object_get(p, "shown")) < (size_t)cli_jint(p, "mismatches"))
			printf("  %s[%lld]  ... and %lld more\n", cli_jstr(p, "topic"), cli_jint(p, "partition"),
			       cli_jint(p, "mismatches") -
				       (long long)json_array_size(json_object_get(p, "shown")));
	}

	tp = json_object_get(rep, "throughput");
	printf("\nThroughput: %lld records, %.1f MB read and digested (both sides) in %.1f s: "
	       "%.0f records/s, %.1f MB/s\n",
	       cli_jint(tp, "records"), (double)cli_jint(tp, "bytes") / 1e6,
	       (double)cli_jint(tp, "data_ms") / 1000.0,
	       cli_jnum(tp, "records_per_sec"),
	       cli_jnum(tp, "mb_per_sec"));
	printf("Verdict: %s", cli_jstr(rep, "label"));
	json_array_foreach(json_object_get(rep, "no_go"), i, m)
		printf("%s%s", i ? "; " : " -- ", json_string_value(m));
	if (!json_array_size(json_object_get(rep, "no_go")))
		printf(" -- %lld partitions, %lld mismatches (max %lld)",
		       cli_jint(rep, "partitions_total"), cli_jint(rep, "mismatches"),
		       cli_jint(rep, "max_mismatches"));
	printf("\n");
}

int cmd_validate(cli_t *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTS,
		{"sample", required_argument, NULL, 's'},
		{"max-mismatches-shown", required_argument, NULL, 'N'},
		{"workers", required_argument, NULL, 'W'},
		{NULL, 0, NULL, 0}};
	km_validate_opts_t vopts;
	km_plan_t *plan;
	json_t *rep = NULL, *expect = NULL;
	char *args = NULL, *end;
	int64_t run_id = 0, v;
	int c, rc = 0, tty = isatty(2);
	km_err_t err;

	km_validate_opts_init(&vopts);
	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
		if (cli_common_opt(cli, c))
			continue;
		switch (c) {
		case 's':
			vopts.sample_pct = strtod(optarg, &end);
			if (*end || !(vopts.sample_pct > 0 && vopts.sample_pct < 100) ||
			    !isfinite(vopts.sample_pct))
				return cli_usage(cli, "--sample takes a percentage 0 < P < 100, not '%s'",
						 optarg);
			break;
		case 'N':
			if (km_parse_i64(optarg, &v) || v < 0 || v > 10000)
				return cli_usage(cli, "--max-mismatches-shown takes 0..10000, not '%s'",
						 optarg);
			vopts.max_shown = (int)v;
			break;
		case 'W':
			if (km_parse_i64(optarg, &v) || v < 1 || v > 64)
				return cli_usage(cli, "--workers takes 1..64, not '%s'", optarg);
			vopts.workers = (int)v;
			break;
		default: return cli_usage(cli, "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
	if ((rc = cli_ready(cli)))
		return rc;
	plan = cli->plan;
	if ((rc = cli_design_topics(cli, &expect)))
		goto done;
	vopts.expect_topics = expect;
	vopts.stop = &cli_stop;
	if (tty && !cli->json)
		vopts.progress_cb = on_progress;
	err = km_validate_run(plan, &cli->src, &cli->tgt, &vopts, &rep, cli->errstr,
			      sizeof(cli->errstr));
	if (tty && !cli->json)
		fprintf(stderr, "\r%79s\r", "");
	if (err) {
		rc = cli_fail(cli, err);
		goto done;
	}
	rc = strcmp(cli_jstr(rep, "verdict"), "GO") ? 1 : 0;

	args = cli_args_string(argc, argv);
	if ((rc = cli_journal(cli)))
		goto done;
	rc = strcmp(cli_jstr(rep, "verdict"), "GO") ? 1 : 0;
	if ((err = journal_validate(cli->jr, args, rep, rc, &run_id, cli->errstr, sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	if (cli->json) {
		json_object_set_new(rep, "run_id", json_integer((json_int_t)run_id));
		json_object_set_new(rep, "journal", json_string(plan->journal));
		cli_print_json(rep);
	} else {
		print_report(rep);
		printf("Evidence: run %lld in %s\n", (long long)run_id, plan->journal);
	}
done:
	free(args);
	json_decref(rep);
	json_decref(expect);
	return rc;
}
