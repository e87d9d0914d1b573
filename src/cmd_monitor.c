/*
 * cmd_monitor.c -- `kmigrate monitor`: the stabilization watcher.
 *
 * Samples both clusters every monitoring.interval (--interval), serves the
 * metrics on /metrics (--metrics-addr or monitoring.metrics_addr), and
 * evaluates the rollback triggers (lib/monitor.h).  The journal gets, in
 * one run "monitor": a "monitor.sample" fact per sample kept as evidence
 * (every sample at first, then every 2nd, 4th, ... once 256 were kept: the
 * run's evidence stays bounded however long it watches), a
 * "monitor.trigger" fact (FIRING) for each firing with its evidence
 * samples, and a "monitor.stale-reader" fact the first time a stale
 * reader is seen.
 *
 * A firing is printed with the rollback command to run; with
 * rollback.automatic the wave's rollback runs here (lib/rollback.h); with
 * --exit-on-trigger the command exits KM_EXIT_TRIGGER (4).
 *
 * --emit-rules prints the triggers as Prometheus alerting rules and
 * contacts nothing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "lock.h"
#include "monitor.h"
#include "rollback.h"

/* The exit code of --exit-on-trigger when a trigger fired (0-3 are the
 * common codes, main.c). */
#define KM_EXIT_TRIGGER 4
/* Evidence samples journaled at full resolution before it halves. */
#define EVIDENCE_FULL 256

static void on_rollback_event(void *opaque, const json_t *ev)
{
	cli_t *cli = opaque;
	if (cli->json) {
		json_dumpf(ev, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		fputc('\n', stdout);
	} else {
		printf("  rollback %s: %s\n", cli_jstr(ev, "step"), cli_jstr(ev, "state"));
	}
	fflush(stdout);
}

/* rollback.automatic: the wave's rollback, as `kmigrate rollback` runs it. */
static int auto_rollback(cli_t *cli, const char *wave, const char *args, int64_t run_id)
{
	km_rollback_conf_t conf = {0};
	km_lock_t *lock = NULL;
	json_t *res = NULL, *body;
	km_err_t err;
	char e[512], subj[300];

	conf.plan = cli->plan;
	conf.jr = cli->jr;
	conf.ks = cli->ks;
	conf.kt = cli->kt;
	conf.src = &cli->src;
	conf.tgt = &cli->tgt;
	conf.wave = wave;
	conf.args = args;
	conf.stop = &cli_stop;
	conf.event_cb = on_rollback_event;
	conf.opaque = cli;
	/* The cutover lock, as `kmigrate rollback` takes it: an automatic
	 * rollback never runs beside a cutover or another rollback (two
	 * monitors of one migration, or an operator's own rollback). */
	if (!(err = km_lock_acquire_for(&cli->tgt, cli->plan->migration, "monitor-rollback", wave, 0,
					&cli_stop, &lock, cli->errstr, sizeof(cli->errstr)))) {
		err = km_rollback_run(&conf, &res, cli->errstr, sizeof(cli->errstr));
		if (err && km_lock_lost(lock))
			snprintf(cli->errstr, sizeof(cli->errstr),
				 "the cutover lock of migration '%s' was lost during the automatic "
				 "rollback: stopped; run `kmigrate rollback -p PLAN --wave %s`",
				 cli->plan->migration, wave);
		km_lock_release(lock);
	}
	body = json_pack("{s:s, s:s, s:s?, s:O?}", "wave", wave, "result",
			 err ? "failed" : cli_jstr(res, "result"), "error",
			 err ? cli->errstr : NULL, "rollback", res);
	snprintf(subj, sizeof(subj), "wave:%s", wave);
	km_journal_fact(cli->jr, run_id, "monitor.rollback", subj, err ? "NO-GO" : "INFO", body, e,
			sizeof(e));
	json_decref(body);
	json_decref(res);
	if (err)
		return cli_fail(cli, err);
	if (!cli->json)
		printf("automatic rollback of wave '%s' done\n", wave);
	return 0;
}

static void print_sample(cli_t *cli, const json_t *s)
{
	char when[40];
	const json_t *t, *e;
	size_t i;

	if (cli->json) {
		json_t *line = json_deep_copy(s);
		json_object_set_new(line, "event", json_string("sample"));
		json_dumpf(line, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		fputc('\n', stdout);
		json_decref(line);
		fflush(stdout);
		return;
	}
	km_iso8601(cli_jint(s, "at"), when, sizeof(when));
	const json_t *rl = json_object_get(json_object_get(s, "totals"), "replication_lag");
	printf("%s  replication lag %s", when,
	       json_is_integer(rl) ? "" : "unknown");
	if (json_is_integer(rl))
		printf("%lld", (long long)json_integer_value(rl));
	const json_t *rs = json_object_get(json_object_get(s, "totals"), "replication_lag_seconds");
	if (json_is_number(rs))
		printf(" (%.1f s)", json_number_value(rs));
	const json_t *cn = json_object_get(json_object_get(s, "totals"), "canary");
	if (cn)
		printf("  canary errors %.0f%%",
		       100.0 * json_number_value(json_object_get(cn, "error_ratio")));
	json_array_foreach(json_object_get(s, "triggers"), i, t) {
		const json_t *v = json_object_get(t, "value");
		if (json_is_number(v))
			printf("  %s=%g (%s)", cli_jstr(t, "name"), json_number_value(v),
			       cli_jstr(t, "state"));
		else
			printf("  %s=unknown (%s)", cli_jstr(t, "name"), cli_jstr(t, "state"));
	}
	printf("\n");
	json_array_foreach(json_object_get(s, "errors"), i, e)
		printf("  cannot read %s (%s): %s\n", cli_jstr(e, "cluster"), cli_jstr(e, "what"),
		       cli_jstr(e, "message"));
	fflush(stdout);
}

int cmd_monitor(cli_t *cli, int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_OPTS,
					     {"metrics-addr", required_argument, NULL, 'X'},
					     {"interval", required_argument, NULL, 'i'},
					     {"exit-on-trigger", no_argument, NULL, 'x'},
					     {"once", no_argument, NULL, '1'},
					     {"emit-rules", no_argument, NULL, 'R'},
					     {NULL, 0, NULL, 0}};
	const char *metrics_addr = NULL;
	km_metrics_t *metrics = NULL;
	km_metrics_server_t *msrv = NULL;
	km_monitor_t *mon = NULL;
	int64_t interval_s = 0, run_id = 0, v;
	int c, rc = 0, exit_on_trigger = 0, once = 0, emit_rules = 0;
	unsigned long nsample = 0, stride = 1, kept = 0;
	json_t *stale_seen = json_object();
	char *args = NULL, e[512], summary[300] = "";
	int fired = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
		if (cli_common_opt(cli, c))
			continue;
		switch (c) {
		case 'X':
			if (km_metrics_addr_check(optarg))
				return cli_usage(cli, "--metrics-addr takes HOST:PORT, not '%s'",
						 optarg);
			metrics_addr = optarg;
			break;
		case 'i':
			if (km_parse_i64(optarg, &v) || v < 1 || v > 3600)
				return cli_usage(cli, "--interval takes 1..3600 seconds, not '%s'",
						 optarg);
			interval_s = v;
			break;
		case 'x': exit_on_trigger = 1; break;
		case '1': once = 1; break;
		case 'R': emit_rules = 1; break;
		default: return cli_usage(cli, "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
	if (emit_rules) {
		/* The plan alone: the rules must be printable where the
		 * clusters are not reachable (a CI job, a config repo). */
		cli->needs = CLI_NEED_PLAN;
		if ((rc = cli_ready(cli)))
			return rc;
		char *rules = km_monitor_rules(cli->plan);
		fputs(rules, stdout);
		free(rules);
		return 0;
	}
	if ((rc = cli_ready(cli)))
		return rc;
	if (!interval_s)
		interval_s = cli->plan->monitoring.interval;
	/* The metrics are the monitor's working memory (triggers read them):
	 * a registry even when nothing serves it. */
	if ((rc = cli_metrics_start(cli, metrics_addr, cli->plan->monitoring.metrics_addr, &metrics, &msrv)))
		goto done;
	if (!metrics)
		metrics = km_metrics_new();
	if ((rc = cli_journal(cli)))
		goto done;
	args = cli_args_string(argc, argv);
	if (km_journal_run_begin(cli->jr, "monitor", args, &run_id, cli->errstr,
				 sizeof(cli->errstr))) {
		rc = cli_fail(cli, KM_ERR_JOURNAL);
		goto done;
	}
	km_monitor_conf_t mc = {.plan = cli->plan,
				.ks = cli->ks,
				.kt = cli->kt,
				.tgt = &cli->tgt,
				.src = &cli->src,
				.jr = cli->jr,
				.metrics = metrics};
	mon = km_monitor_new(&mc);
	if (!cli->json)
		printf("Monitoring migration '%s' every %llds%s%s; %zu trigger(s)\n",
		       cli->plan->migration, (long long)interval_s,
		       msrv ? ", metrics on http://" : "",
		       msrv ? (metrics_addr ? metrics_addr : cli->plan->monitoring.metrics_addr) : "",
		       cli->plan->rollback.triggers_cnt);
	fflush(stdout);
	while (!cli_stop) {
		int64_t started = km_mono_ms();
		json_t *s = NULL, *t;
		size_t i;

		if (km_monitor_sample(mon, km_now_ms(), &s, cli->errstr, sizeof(cli->errstr))) {
			rc = cli_fail(cli, KM_ERR_KAFKA);
			break;
		}
		print_sample(cli, s);
		/* Evidence, downsampled so that the run stays bounded. */
		if (nsample++ % stride == 0) {
			km_journal_fact(cli->jr, run_id, "monitor.sample", "migration", "INFO", s, e,
					sizeof(e));
			if (++kept >= EVIDENCE_FULL) {
				kept = 0;
				stride *= 2;
			}
		}
		json_array_foreach(json_object_get(s, "stale_readers"), i, t) {
			char subj[400];
			snprintf(subj, sizeof(subj), "group:%s wave:%s", cli_jstr(t, "group"),
				 cli_jstr(t, "wave"));
			if (json_object_get(stale_seen, subj))
				continue;
			json_object_set_new(stale_seen, subj, json_true());
			km_journal_fact(cli->jr, run_id, "monitor.stale-reader", subj, "FINDING", t,
					e, sizeof(e));
			if (!cli->json)
				printf("stale reader: group '%s' still consumes wave '%s' on the "
				       "SOURCE (%lld members: %s); owner %s: move it to the target\n",
				       cli_jstr(t, "group"), cli_jstr(t, "wave"),
				       cli_jint(t, "members"), cli_jstr(t, "clients"),
				       json_is_string(json_object_get(t, "owner"))
					       ? cli_jstr(t, "owner")
					       : "undeclared");
		}
		json_array_foreach(json_object_get(s, "triggers"), i, t) {
			char subj[300], cmd[1200];
			const char *wave = json_is_string(json_object_get(t, "wave"))
						   ? cli_jstr(t, "wave")
						   : "WAVE";
			if (!json_is_true(json_object_get(t, "fired")))
				continue;
			fired++;
			snprintf(cmd, sizeof(cmd), "kmigrate rollback -p %s --wave %s",
				 cli->plan_path, wave);
			json_t *body = json_deep_copy(t);
			json_object_set_new(body, "rollback_command", json_string(cmd));
			json_object_set_new(body, "automatic",
					    json_boolean(cli->plan->rollback.automatic));
			snprintf(subj, sizeof(subj), "trigger:%s", cli_jstr(t, "name"));
			km_journal_fact(cli->jr, run_id, "monitor.trigger", subj, "FIRING", body, e,
					sizeof(e));
			json_decref(body);
			const json_t *val = json_object_get(t, "value");
			char vbuf[64];
			if (json_is_number(val))
				snprintf(vbuf, sizeof(vbuf), "%g", json_number_value(val));
			else
				snprintf(vbuf, sizeof(vbuf), "unknown");
			fprintf(stderr,
				"kmigrate monitor: rollback trigger '%s' FIRED: %s = %s %s %g for "
				"%llds%s%s; roll back with: %s\n",
				cli_jstr(t, "name"), cli_jstr(t, "source"), vbuf, cli_jstr(t, "op"),
				json_number_value(json_object_get(t, "threshold")),
				cli_jint(t, "for_s"), json_is_string(json_object_get(t, "owner"))
							   ? "; owner "
							   : "",
				json_is_string(json_object_get(t, "owner")) ? cli_jstr(t, "owner")
									    : "",
				cmd);
			snprintf(summary, sizeof(summary), "trigger '%s' fired",
				 cli_jstr(t, "name"));
			if (cli->plan->rollback.automatic && json_is_string(json_object_get(t, "wave")))
				if ((rc = auto_rollback(cli, wave, args, run_id)))
					break;
		}
		json_decref(s);
		if (rc || once || (fired && exit_on_trigger))
			break;
		int64_t wake = started + interval_s * 1000;
		while (!cli_stop && km_mono_ms() < wake)
			usleep(100 * 1000);
	}
	if (!rc && fired && exit_on_trigger)
		rc = KM_EXIT_TRIGGER;
	if (!summary[0])
		snprintf(summary, sizeof(summary), "%lu samples, no trigger fired", nsample);
	km_journal_run_end(cli->jr, run_id, rc, summary, e, sizeof(e));
done:
	km_monitor_destroy(mon);
	cli_metrics_stop(metrics, msrv);
	json_decref(stale_seen);
	free(args);
	return rc;
}
