/*
 * cmd_rollback.c -- `kmigrate rollback -p PLAN --wave W`: run or resume the
 * wave's rollback (lib/rollback.h), print each step, exit 0 when the wave
 * is back to its state before the cutover.
 *
 * Test hook: KM_ROLLBACK_CRASH_AFTER=<step> (any of km_rollback_steps) makes
 * the process _exit(137) right after that step's fact is committed, as
 * kill -9 would.  Not for production use.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "lock.h"
#include "rollback.h"

typedef struct ev_ctx_s {
	cli_t *cli;
	const char *crash_after; /* the test hook, or NULL */
} ev_ctx_t;

static void on_event(void *opaque, const json_t *ev)
{
	ev_ctx_t *ctx = opaque;
	const char *step = cli_jstr(ev, "step"), *state = cli_jstr(ev, "state");

	if (ctx->cli->json) {
		json_dumpf(ev, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		fputc('\n', stdout);
	} else if (!strcmp(state, "start")) {
		printf("  %-16s ...\n", step);
	} else if (!strcmp(state, "would")) {
		char *s = json_dumps(json_object_get(ev, "evidence"), JSON_COMPACT | JSON_SORT_KEYS);
		printf("  %-16s would: %s\n", step, s ? s : "-");
		free(s);
	} else {
		printf("  %-16s %s", step, state);
		if (json_object_get(ev, "fact_id"))
			printf(" (journal fact %lld)", cli_jint(ev, "fact_id"));
		if (json_is_string(json_object_get(ev, "reason")))
			printf(": %s", cli_jstr(ev, "reason"));
		printf("\n");
		const json_t *sb =
			json_object_get(json_object_get(ev, "evidence"), "switch_back");
		if (sb && !strcmp(state, "done")) {
			const json_t *c;
			size_t i;
			printf("  Switch back to the source (bootstrap %s):\n",
			       cli_jstr(sb, "bootstrap"));
			json_array_foreach(json_object_get(sb, "producers"), i, c)
				printf("    producer %s (owner %s): write the source topics again\n",
				       cli_jstr(c, "name"),
				       json_is_string(json_object_get(c, "owner"))
					       ? cli_jstr(c, "owner") : "undeclared");
			json_array_foreach(json_object_get(sb, "consumers"), i, c)
				printf("    consumer %s (group %s, owner %s): read the source; the "
				       "group resumes where offsets-back committed it\n",
				       cli_jstr(c, "name"),
				       json_is_string(json_object_get(c, "group")) ? cli_jstr(c, "group")
										  : "-",
				       json_is_string(json_object_get(c, "owner")) ? cli_jstr(c, "owner")
										  : "undeclared");
		}
	}
	fflush(stdout);
	if (ctx->crash_after && !strcmp(ctx->crash_after, step) && !strcmp(state, "done"))
		_exit(137);
}

/* Whether the run took the path after the authority moved. */
static bool after_path(const json_t *res)
{
	const json_t *r;
	size_t i;

	json_array_foreach(json_object_get(res, "steps"), i, r)
		if (!strcmp(cli_jstr(r, "step"), "reverse"))
			return true;
	return false;
}

int cmd_rollback(cli_t *cli, int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_OPTS,
					     {"wave", required_argument, NULL, 'w'},
					     {"dry-run", no_argument, NULL, 'n'},
					     {"drain-timeout", required_argument, NULL, 'D'},
					     {"lock-wait", required_argument, NULL, 'L'},
					     {"release-target", no_argument, NULL, 'R'},
					     {NULL, 0, NULL, 0}};
	km_rollback_conf_t conf = {0};
	ev_ctx_t ctx = {.cli = cli, .crash_after = getenv("KM_ROLLBACK_CRASH_AFTER")};
	json_t *res = NULL;
	char *args = NULL;
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
		else if (c == 'D') {
			int64_t v;
			if (km_parse_i64(optarg, &v) || v < 1 || v > 86400)
				return cli_usage(cli, "--drain-timeout takes 1..86400 seconds, not '%s'",
						 optarg);
			conf.drain_timeout_ms = (int)v * 1000;
		} else if (c == 'L') {
			int64_t v;
			if (km_parse_i64(optarg, &v) || v < 0 || v > 3600)
				return cli_usage(cli, "--lock-wait '%s': give seconds, 0 to 3600",
						 optarg);
			lock_wait_ms = v ? (int)v * 1000 : 1;
		} else if (c == 'R') {
			conf.release_target = true;
		} else
			return cli_usage(cli, "unknown option");
	}
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
	if (!conf.wave)
		return cli_usage(cli, "--wave is required: name the wave to roll back");
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
	conf.stop = &cli_stop;
	conf.args = args;
	conf.event_cb = on_event;
	conf.opaque = &ctx;
	if (!cli->json)
		printf("Rollback of wave '%s' of migration '%s'%s\n", conf.wave, cli->plan->migration,
		       conf.dry_run ? " (dry run: nothing changes, nothing is journaled)" : "");
	/* The cutover lock (lib/lock.h): a cutover and a rollback, or two
	 * rollbacks, of the migration never run at once; a lost lock sets
	 * cli_stop, so that the run stops at its next wait. */
	if (!conf.dry_run &&
	    (err = km_lock_acquire_for(&cli->tgt, cli->plan->migration, "rollback", conf.wave,
				       lock_wait_ms, &cli_stop, &lock, cli->errstr,
				       sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	err = conf.release_target
		      ? km_rollback_release_target(&conf, &res, cli->errstr, sizeof(cli->errstr))
		      : km_rollback_run(&conf, &res, cli->errstr, sizeof(cli->errstr));
	if (err && km_lock_lost(lock))
		snprintf(cli->errstr, sizeof(cli->errstr),
			 "the cutover lock of migration '%s' was lost (the target dropped this "
			 "process from its group): stopped; re-run the rollback",
			 cli->plan->migration);
	if (err) {
		rc = cli_fail(cli, err);
		goto done;
	}
	rc = 0;
	const char *result = cli_jstr(res, "result");
	if (cli->json) {
		json_object_set_new(res, "event", json_string("result"));
		json_dumpf(res, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		fputc('\n', stdout);
	} else if (conf.release_target) {
		if (!strcmp(result, "nothing"))
			printf("Wave '%s': no config fence of a rollback on the target (an ACL fence "
			       "leaves kmigrate out; the next cutover lifts it).\n",
			       conf.wave);
		else if (!strcmp(result, "would"))
			printf("Dry run: the step above would run; nothing changed.\n");
		else
			printf("Wave '%s': the rollback's config fence of the target is released; "
			       "the forward copy can run again.\n",
			       conf.wave);
		/* A finding, like before the first cutover on such a target. */
		if (json_is_string(json_object_get(res, "unguarded")))
			printf("Finding: the target topics are unguarded: %s\n",
			       cli_jstr(res, "unguarded"));
	} else if (!strcmp(result, "nothing")) {
		printf("Nothing to roll back: wave '%s' has no cutover step journaled since its "
		       "last rollback.\n",
		       conf.wave);
	} else if (!strcmp(result, "would")) {
		printf("Dry run: the steps above would run; nothing changed.\n");
	} else if (after_path(res)) {
		printf("Wave '%s' is rolled back: the source is authoritative again and holds "
		       "what the target got since the switch; its groups are committed there. "
		       "The target stays fenced.\nThe next `kmigrate cutover --wave %s` starts at "
		       "its gate.\nEvidence: run %lld in %s\n",
		       conf.wave, conf.wave, cli_jint(res, "run_id"), cli->plan->journal);
	} else {
		printf("Wave '%s' is back to its state before the cutover: the source is "
		       "authoritative and takes writes again.\nThe next `kmigrate cutover --wave "
		       "%s` starts at its gate.\nEvidence: run %lld in %s\n",
		       conf.wave, conf.wave, cli_jint(res, "run_id"), cli->plan->journal);
	}
done:
	km_lock_release(lock);
	free(args);
	json_decref(res);
	return rc;
}
