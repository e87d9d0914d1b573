/*
 * cmd_cutover.c -- `kmigrate cutover -p PLAN --wave W`: run or resume the
 * wave's cutover steps (lib/cutover.h), print each step, exit 0 when every
 * step built so far is done.
 *
 * `--verify` runs the post-cutover checks of a switched wave instead
 * (km_cutover_verify): exit 0 GO, 1 NO-GO naming each failed check.
 *
 * Test hook: KM_CUTOVER_CRASH_AFTER=<step> (gate, stop-connectors,
 * fence-plan, fence, drain, validate, offsets, authority-record, authority,
 * connectors, switch)
 * makes the process _exit(137) right after that step's fact is committed,
 * as kill -9 would, so that the tests can prove a re-run resumes there and
 * does no step twice.  "fence-plan" is the moment the fence plan and its
 * inverse are journaled and nothing is applied yet; "authority-record" the
 * moment the authority records are on the target and read back, their
 * fact not journaled yet.  Not for production use.
 * KM_CONNECT_STOP_TIMEOUT_MS=<ms> shortens the wait for a source connector
 * to stop (60 s), so that a test can see the NO-GO of one that does not.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "cutover.h"
#include "lock.h"

typedef struct ev_ctx_s {
	cli_t *cli;
	const char *crash_after; /* the test hook, or NULL */
	km_metrics_t *metrics;   /* --metrics-addr, or NULL */
} ev_ctx_t;

static const char *or_none(const json_t *o, const char *k)
{
	const char *s = cli_jstr(o, k);
	return s && *s ? s : "(none declared)";
}

/* The switch instructions, as the owners read them. */
static void print_switch(const char *wave, const json_t *e)
{
	json_t *r, *t;
	size_t i, j;

	printf("            kmigrate redeploys nothing: each owner moves their client now.\n");
	printf("            new bootstrap: %s\n", or_none(e, "bootstrap"));
	json_array_foreach(json_object_get(e, "topics"), i, r)
		printf("            topic %s -> %s\n", cli_jstr(r, "topic"), cli_jstr(r, "target_topic"));
	json_array_foreach(json_object_get(e, "producers"), i, r) {
		printf("            producer %s (owner %s): write to", cli_jstr(r, "name"),
		       or_none(r, "owner"));
		json_array_foreach(json_object_get(r, "target_topics"), j, t)
			printf(" %s", json_string_value(t));
		printf(" on the new bootstrap; validate: %s\n", or_none(r, "validation"));
	}
	json_array_foreach(json_object_get(e, "consumers"), i, r)
		printf("            consumer %s (group %s, owner %s): read from the new bootstrap, "
		       "resuming at the committed positions; validate: %s\n",
		       cli_jstr(r, "name"), or_none(r, "group"), or_none(r, "owner"),
		       or_none(r, "validation"));
	json_array_foreach(json_object_get(e, "groups"), i, r)
		printf("            group %s (owner %s, restart %s): committed on the target by the "
		       "offsets step\n",
		       cli_jstr(r, "group"), or_none(r, "owner"), or_none(r, "restart"));
	printf("            then: kmigrate cutover --wave %s --verify\n", wave);
}

static void print_verify(const json_t *e)
{
	json_t *c;
	size_t i;

	json_array_foreach(json_object_get(e, "checks"), i, c) {
		const char *name = cli_jstr(c, "check");
		json_t *m = json_object_get(c, "measured"), *r;
		size_t j;

		printf("            %-5s %-16s", cli_jstr(c, "verdict"), name);
		if (json_is_string(json_object_get(c, "reason"))) {
			printf(" %s\n", cli_jstr(c, "reason"));
			continue;
		}
		/* What was seen, in a few words: the evidence is in the journal. */
		if (!strcmp(name, "target_writes"))
			json_array_foreach(m, j, r)
				printf(" %s +%lld", cli_jstr(r, "target_topic"), cli_jint(r, "new_records"));
		else if (!strcmp(name, "groups_consume") || !strcmp(name, "groups_lag"))
			json_array_foreach(m, j, r)
				printf(" %s (lag %lld -> %lld)", cli_jstr(r, "group"), cli_jint(r, "lag_first"),
				       cli_jint(r, "lag_last"));
		else if (!strcmp(name, "source_fenced"))
			printf(" %zu partition(s) at their drained high watermarks", json_array_size(m));
		else if (!strcmp(name, "no_stale_writes"))
			printf(" no record accepted by the source since the drain");
		printf("\n");
	}
}

static void on_event(void *opaque, const json_t *ev)
{
	ev_ctx_t *ctx = opaque;
	const char *kind = cli_jstr(ev, "event");
	bool named = !strcmp(kind, "journaled") || !strcmp(kind, "recorded");
	const char *step = named ? cli_jstr(ev, "what") : cli_jstr(ev, "step");
	const char *state = named ? "" : cli_jstr(ev, "state");

	if (!named && (!strcmp(state, "start") || !strcmp(state, "done") ||
		       !strcmp(state, "already-done")))
		km_metrics_set(ctx->metrics, "kmigrate_cutover_step_done", strcmp(state, "start") != 0,
			       "wave", cli_jstr(ev, "wave"), "step", step, NULL);
	if (ctx->cli->json) {
		json_dumpf(ev, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		fputc('\n', stdout);
		fflush(stdout);
	} else if (!strcmp(kind, "journaled")) {
		printf("  %-9s plan and inverse journaled (fact %lld)\n", "fence",
		       cli_jint(ev, "fact_id"));
	} else if (!strcmp(kind, "recorded")) {
		printf("  %-9s records written to the target and read back\n", "authority");
	} else if (!strcmp(state, "start")) {
		printf("  %-9s ...\n", step);
	} else if (!strcmp(state, "would") && !strcmp(step, "gate")) {
		/* The gate's report is long: `kmigrate gate` prints it whole. */
		json_t *e = json_object_get(ev, "evidence");
		printf("  %-9s would: gate cutover is %s (%zu criteria; `kmigrate gate cutover --wave "
		       "%s` shows them)\n",
		       step, cli_jstr(e, "verdict"), json_array_size(json_object_get(e, "criteria")),
		       cli_jstr(ev, "wave"));
	} else if (!strcmp(state, "would") && !strcmp(step, "switch")) {
		printf("  %-9s would give these instructions:\n", step);
		print_switch(cli_jstr(ev, "wave"), json_object_get(ev, "evidence"));
	} else if (!strcmp(state, "would")) {
		char *s = json_dumps(json_object_get(ev, "evidence"), JSON_COMPACT | JSON_SORT_KEYS);
		printf("  %-9s would: %s\n", step, s ? s : "-");
		free(s);
	} else {
		printf("  %-9s %s", step, state);
		if (json_object_get(ev, "fact_id"))
			printf(" (journal fact %lld)", cli_jint(ev, "fact_id"));
		if (json_is_string(json_object_get(ev, "reason")) && strcmp(step, "verify"))
			printf(": %s", cli_jstr(ev, "reason"));
		printf("\n");
		if (!strcmp(step, "switch") && json_object_get(ev, "evidence"))
			print_switch(cli_jstr(ev, "wave"), json_object_get(ev, "evidence"));
		if (!strcmp(step, "verify") && json_object_get(ev, "evidence"))
			print_verify(json_object_get(ev, "evidence"));
	}
	fflush(stdout);
	/* Only after the fact is committed (or, for authority-record, the
	 * records read back): what a kill -9 at that moment would leave. */
	if (ctx->crash_after && !strcmp(ctx->crash_after, step) &&
	    (named || !strcmp(state, "done")))
		_exit(137);
}

int cmd_cutover(cli_t *cli, int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_OPTS,
					     {"wave", required_argument, NULL, 'w'},
					     {"dry-run", no_argument, NULL, 'n'},
					     {"drain-timeout", required_argument, NULL, 'T'},
					     {"lock-wait", required_argument, NULL, 'L'},
					     {"verify", no_argument, NULL, 'V'},
					     {"verify-window", required_argument, NULL, 'W'},
					     {"metrics-addr", required_argument, NULL, 'X'},
					     {NULL, 0, NULL, 0}};
	const char *metrics_addr = NULL;
	km_metrics_server_t *msrv = NULL;
	km_cutover_conf_t conf = {0};
	ev_ctx_t ctx = {.cli = cli, .crash_after = getenv("KM_CUTOVER_CRASH_AFTER")};
	if (getenv("KM_CONNECT_STOP_TIMEOUT_MS"))
		conf.connector_stop_timeout_ms = atoi(getenv("KM_CONNECT_STOP_TIMEOUT_MS"));
	json_t *res = NULL;
	char *args = NULL, *end;
	km_lock_t *lock = NULL;
	bool verify = false;
	km_err_t err;
	int c, rc, lock_wait_ms = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "w:", opts, NULL)) != -1) {
		if (cli_common_opt(cli, c))
			continue;
		if (c == 'w')
			conf.wave = optarg;
		else if (c == 'n')
			conf.dry_run = true;
		else if (c == 'T') {
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 86400)
				return cli_usage(cli, "--drain-timeout '%s': give seconds, 1 to 86400",
						 optarg);
			conf.drain_timeout_ms = (int)v * 1000;
		} else if (c == 'L') {
			long v = strtol(optarg, &end, 10);
			if (*end || v < 0 || v > 3600)
				return cli_usage(cli, "--lock-wait '%s': give seconds, 0 to 3600",
						 optarg);
			lock_wait_ms = v ? (int)v * 1000 : 1;
		} else if (c == 'V') {
			verify = true;
		} else if (c == 'W') {
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 86400)
				return cli_usage(cli, "--verify-window '%s': give seconds, 1 to 86400",
						 optarg);
			conf.verify_window_ms = (int64_t)v * 1000;
		} else if (c == 'X') {
			if (km_metrics_addr_check(optarg))
				return cli_usage(cli, "--metrics-addr takes HOST:PORT, not '%s'",
						 optarg);
			metrics_addr = optarg;
		} else
			return cli_usage(cli, "unknown option");
	}
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
	if (!conf.wave)
		return cli_usage(cli, "--wave is required: name the cutover wave to run");
	if (verify && conf.dry_run)
		return cli_usage(cli, "--verify and --dry-run do not go together: --verify only reads "
				      "(it journals its verdict)");
	if (conf.verify_window_ms && !verify)
		return cli_usage(cli, "--verify-window applies to --verify only: add --verify");
	if ((rc = cli_ready(cli)))
		return rc;
	if (!km_plan_wave(cli->plan, conf.wave))
		return cli_usage(cli, "no wave '%s' in the plan's cutover.waves: name one of them",
				 conf.wave);
	if ((rc = cli_metrics_start(cli, metrics_addr, cli->plan->monitoring.cutover_metrics_addr, &ctx.metrics, &msrv)))
		return rc;
	args = cli_args_string(argc, argv);
	conf.plan = cli->plan;
	conf.jr = cli->jr;
	conf.ks = cli->ks;
	conf.kt = cli->kt;
	conf.src = &cli->src;
	conf.tgt = &cli->tgt;
	conf.args = args;
	conf.stop = &cli_stop;
	conf.event_cb = on_event;
	conf.opaque = &ctx;
	if (!cli->json && verify)
		printf("Post-cutover checks of wave '%s' of migration '%s' (%lld s window)\n",
		       conf.wave, cli->plan->migration,
		       (long long)(conf.verify_window_ms ? conf.verify_window_ms / 1000
							  : cli->plan->cutover.verify_window));
	else if (!cli->json)
		printf("Cutover of wave '%s' of migration '%s'%s\n", conf.wave, cli->plan->migration,
		       conf.dry_run ? " (dry run: nothing changes, nothing is journaled)" : "");
	/* One cutover of the migration at a time, from any host (lib/lock.h);
	 * a lost lock sets cli_stop, so that the run stops at its next wait. */
	if (!conf.dry_run && !verify &&
	    (err = km_lock_acquire(&cli->tgt, cli->plan->migration, conf.wave, lock_wait_ms,
				   &cli_stop, &lock, cli->errstr, sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	err = verify ? km_cutover_verify(&conf, &res, cli->errstr, sizeof(cli->errstr))
		     : km_cutover_run(&conf, &res, cli->errstr, sizeof(cli->errstr));
	if (err && km_lock_lost(lock))
		snprintf(cli->errstr, sizeof(cli->errstr),
			 "the cutover lock of migration '%s' was lost (the target dropped this "
			 "process from its group): stopped; re-run the cutover",
			 cli->plan->migration);
	if (err) {
		rc = cli_fail(cli, err);
		goto done;
	}
	rc = 0;
	if (cli->json) {
		json_object_set_new(res, "event", json_string("result"));
		json_object_set_new(res, "verdict",
				    json_string(verify ? "GO" : conf.dry_run ? "DRY-RUN" : "DONE"));
		json_dumpf(res, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		fputc('\n', stdout);
	} else if (verify) {
		printf("Wave '%s': post-cutover checks GO.\nEvidence: run %lld in %s\n", conf.wave,
		       cli_jint(res, "run_id"), cli->plan->journal);
	} else if (conf.dry_run) {
		printf("Dry run: the steps above would run; nothing changed.\n");
	} else {
		printf("Wave '%s' is cut over: the target has write authority and the switch "
		       "instructions are above.\nWhen the clients have moved: kmigrate cutover "
		       "--wave %s --verify\nEvidence: run %lld in %s\n",
		       conf.wave, conf.wave, cli_jint(res, "run_id"), cli->plan->journal);
	}
done:
	cli_metrics_stop(ctx.metrics, msrv);
	km_lock_release(lock);
	free(args);
	json_decref(res);
	return rc;
}
