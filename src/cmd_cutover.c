/*
 * cmd_cutover.c -- `kmigrate cutover -p PLAN --wave W`: run or resume the
 * wave's cutover steps (lib/cutover.h), print each step, exit 0 when every
 * step built so far is done.
 *
 * Test hook: KM_CUTOVER_CRASH_AFTER=<step> (gate, fence-plan, fence, drain,
 * validate, offsets, authority)
 * makes the process _exit(137) right after that step's fact is committed,
 * as kill -9 would, so that the tests can prove a re-run resumes there and
 * does no step twice.  "fence-plan" is the moment the fence plan and its
 * inverse are journaled and nothing is applied yet.  Not for production use.
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
} ev_ctx_t;

static void on_event(void *opaque, const json_t *ev)
{
	ev_ctx_t *ctx = opaque;
	const char *kind = cli_jstr(ev, "event");
	const char *step = !strcmp(kind, "journaled") ? cli_jstr(ev, "what") : cli_jstr(ev, "step");
	const char *state = cli_jstr(ev, "state");

	if (ctx->cli->json) {
		json_dumpf(ev, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		fputc('\n', stdout);
		fflush(stdout);
	} else if (!strcmp(kind, "journaled")) {
		printf("  %-6s plan and inverse journaled (fact %lld)\n", "fence",
		       cli_jint(ev, "fact_id"));
	} else if (!strcmp(state, "start")) {
		printf("  %-6s ...\n", step);
	} else if (!strcmp(state, "would")) {
		char *s = json_dumps(json_object_get(ev, "evidence"), JSON_COMPACT | JSON_SORT_KEYS);
		printf("  %-6s would: %s\n", step, s ? s : "-");
		free(s);
	} else {
		printf("  %-6s %s", step, state);
		if (json_object_get(ev, "fact_id"))
			printf(" (journal fact %lld)", cli_jint(ev, "fact_id"));
		if (json_is_string(json_object_get(ev, "reason")))
			printf(": %s", cli_jstr(ev, "reason"));
		printf("\n");
	}
	fflush(stdout);
	/* Only after the fact is committed: what a kill -9 right after the
	 * step would leave. */
	if (ctx->crash_after && !strcmp(ctx->crash_after, step) &&
	    (!strcmp(kind, "journaled") || !strcmp(state, "done")))
		_exit(137);
}

int cmd_cutover(cli_t *cli, int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_OPTS,
					     {"wave", required_argument, NULL, 'w'},
					     {"dry-run", no_argument, NULL, 'n'},
					     {"drain-timeout", required_argument, NULL, 'T'},
					     {"lock-wait", required_argument, NULL, 'L'},
					     {NULL, 0, NULL, 0}};
	km_cutover_conf_t conf = {0};
	ev_ctx_t ctx = {.cli = cli, .crash_after = getenv("KM_CUTOVER_CRASH_AFTER")};
	json_t *res = NULL;
	char *args = NULL, *end;
	km_lock_t *lock = NULL;
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
		} else
			return cli_usage(cli, "unknown option");
	}
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
	if (!conf.wave)
		return cli_usage(cli, "--wave is required: name the cutover wave to run");
	if ((rc = cli_ready(cli)))
		return rc;
	if (!km_plan_wave(cli->plan, conf.wave))
		return cli_usage(cli, "no wave '%s' in the plan's cutover.waves: name one of them",
				 conf.wave);
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
	if (!cli->json)
		printf("Cutover of wave '%s' of migration '%s'%s\n", conf.wave, cli->plan->migration,
		       conf.dry_run ? " (dry run: nothing changes, nothing is journaled)" : "");
	/* One cutover of the migration at a time, from any host (lib/lock.h);
	 * a lost lock sets cli_stop, so that the run stops at its next wait. */
	if (!conf.dry_run &&
	    (err = km_lock_acquire(&cli->tgt, cli->plan->migration, conf.wave, lock_wait_ms,
				   &cli_stop, &lock, cli->errstr, sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	err = km_cutover_run(&conf, &res, cli->errstr, sizeof(cli->errstr));
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
		json_object_set_new(res, "verdict", json_string(conf.dry_run ? "DRY-RUN" : "DONE"));
		json_dumpf(res, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		fputc('\n', stdout);
	} else if (conf.dry_run) {
		printf("Dry run: the steps above would run; nothing changed.\n");
	} else {
		printf("Wave '%s': every step built so far is done (gate, fence, drain, validate, "
		       "offsets, authority); switch instructions and --verify are not built "
		       "yet.\nEvidence: run %lld in %s\n",
		       conf.wave, cli_jint(res, "run_id"), cli->plan->journal);
	}
done:
	km_lock_release(lock);
	free(args);
	json_decref(res);
	return rc;
}
