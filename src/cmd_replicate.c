/*
 * cmd_replicate.c -- `kmigrate replicate`.
 *
 * replicate runs the exactly-once engine (lib/replicate.h) until stopped
 * (SIGINT/SIGTERM finish the current transaction) or, with
 * --until-caught-up, until every in-scope partition reached the source high
 * watermark seen at start.  A progress line goes to a terminal; --json
 * prints the engine's events as JSON lines.
 *
 * --reverse --wave W copies what was written on the target since wave W's
 * switch back onto the source topics (the engine's reverse direction): the
 * start points are the target high watermarks the cutover's switch step
 * journaled; refused until that step is journaled, and while a fence
 * refuses kmigrate's own writes on the source.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common.h"
#include "cutover.h"
#include "fence.h"
#include "replicate.h"
#include "report.h"
#include "rollback.h"

typedef struct ev_ctx_s {
	cli_t *cli;
	const km_plan_t *plan;
	const char *args;
	km_journal_t *jr;  /* opened by the first event worth journaling */
	int64_t run_id;
	int tty;
	km_err_t jerr;     /* opening the journal failed: the run stops */
	char jerrstr[512];
	const char *wave;  /* --reverse: the wave copied back */
	json_t *switch_hwms; /* --reverse: its start points (the switch's) */
	/* Progress samples for the report's charts (lib/report.h): the first,
	 * one per KM_REPORT_PROGRESS_EVERY_MS, and the last of the run. */
	json_t *last_progress;   /* the latest sample not journaled yet */
	int64_t progress_at;     /* when the last sample was journaled (mono ms) */
} ev_ctx_t;

/* The journal is opened, and the run begun, only once the engine did work
 * (connected, checked the scope, joined) or found a verdict: a replicate
 * that fails before -- a wrong password, an unreachable cluster -- leaves
 * the journal byte for byte as it was (docs/ARCHITECTURE.md).  Events
 * arrive under the engine's lock, one at a time, on any of its threads.
 * @returns 0 when the journal is open. */
static int journal_open(ev_ctx_t *ctx)
{
	if (ctx->jr)
		return 0;
	if (ctx->jerr)
		return -1;
	if ((ctx->jerr = km_journal_open(ctx->plan->journal, 1, &ctx->jr, ctx->jerrstr,
					 sizeof(ctx->jerrstr))) ||
	    (ctx->jerr = km_journal_run_begin(ctx->jr, "replicate", ctx->args, &ctx->run_id,
					      ctx->jerrstr, sizeof(ctx->jerrstr)))) {
		km_journal_close(ctx->jr);
		ctx->jr = NULL;
		cli_stop = 1; /* no copying without the evidence journal */
		return -1;
	}
	return 0;
}

/* Journals the latest progress sample (a failure to journal a sample does
 * not stop the copy: the sample is a chart point, not a verdict). */
static void journal_progress(ev_ctx_t *ctx, int64_t now)
{
	char err[512];
	json_t *body;

	if (!ctx->last_progress || !ctx->jr)
		return;
	body = json_deep_copy(ctx->last_progress);
	json_object_del(body, "event");
	json_object_set_new(body, "direction", json_string(ctx->wave ? "reverse" : "forward"));
	km_journal_fact(ctx->jr, ctx->run_id, KM_REPORT_PROGRESS_KIND,
			ctx->wave ? "direction:reverse" : "direction:forward", "INFO", body, err,
			sizeof(err));
	json_decref(body);
	json_decref(ctx->last_progress);
	ctx->last_progress = NULL;
	ctx->progress_at = now;
}

static void on_event(void *opaque, json_t *ev)
{
	ev_ctx_t *ctx = opaque;
	const char *kind = cli_jstr(ev, "event");
	char err[512];

	if (ctx->cli->json) {
		json_dumpf(ev, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		fputc('\n', stdout);
		fflush(stdout);
	} else if (!strcmp(kind, "progress")) {
		fprintf(stderr,
			"%s%lld records  %.0f rec/s  %.1f MB/s  lag %lld  caught up %lld/%lld "
			"partitions  tasks %lld/%lld%s",
			ctx->tty ? "\r" : "",
			cli_jint(ev, "records"),
			cli_jnum(ev, "records_per_sec"),
			cli_jnum(ev, "mb_per_sec"),
			cli_jint(ev, "lag"),
			cli_jint(ev, "caught_up"),
			cli_jint(ev, "partitions"),
			cli_jint(ev, "tasks_owned"),
			cli_jint(ev, "tasks"),
			ctx->tty ? "   " : "\n");
	} else if (!strcmp(kind, "excluded")) {
		/* Once per topic (the engine says it once). */
		char when[40];
		km_iso8601(cli_jint(ev, "at"), when, sizeof(when));
		fprintf(stderr,
			"%skmigrate replicate: topic '%s' excluded: its write authority is the "
			"target since %s (wave '%s'); nothing more is copied or committed for it\n",
			ctx->tty ? "\n" : "", cli_jstr(ev, "topic"), when, cli_jstr(ev, "wave"));
	} else if (!strcmp(kind, "schema-ids")) {
		fprintf(stderr, "kmigrate replicate: *** SCHEMA IDS REWRITTEN (schemas.ids: rewrite): "
				"%lld source IDs mapped to the target registry's ***\n",
			cli_jint(ev, "ids"));
	} else if (!strcmp(kind, "task") || !strcmp(kind, "abort") || !strcmp(kind, "start")) {
		char *s = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
		if (ctx->cli->verbose)
			fprintf(stderr, "%s%s\n", ctx->tty ? "\n" : "", s);
		free(s);
	}
	/* Throughput and lag over time are evidence the report charts;
	 * downsampled so that a week of replication stays small. */
	if (!strcmp(kind, "progress") && !journal_open(ctx)) {
		int64_t now = km_mono_ms();
		json_decref(ctx->last_progress);
		ctx->last_progress = json_incref(ev);
		if (!ctx->progress_at || now - ctx->progress_at >= KM_REPORT_PROGRESS_EVERY_MS)
			journal_progress(ctx, now);
	}
	if (!strcmp(kind, "start") && !journal_open(ctx) && ctx->wave) {
		/* The reverse copy's start points are evidence: what it took as
		 * the beginning of the target's new history. */
		char subj[400];
		json_t *body = json_pack("{s:s, s:O}", "wave", ctx->wave, "start", ctx->switch_hwms);
		snprintf(subj, sizeof(subj), "wave:%s", ctx->wave);
		km_journal_fact(ctx->jr, ctx->run_id, "replicate.reverse", subj, "INFO", body, err,
				sizeof(err));
		json_decref(body);
	}
	/* A NO-GO found by the engine (a topic of the design it cannot see,
	 * a partition count that changed) is a fact the moment it is known. */
	if (!strcmp(kind, "nogo") && !journal_open(ctx)) {
		char fkind[100], subj[400];
		snprintf(fkind, sizeof(fkind), "replicate.%s",
			 cli_jstr(ev, "kind"));
		snprintf(subj, sizeof(subj), "topic:%s",
			 cli_jstr(ev, "subject"));
		km_journal_fact(ctx->jr, ctx->run_id, fkind, subj, "NO-GO", ev, err, sizeof(err));
	}
	/* An exclusion is evidence too: from then on this run copies nothing
	 * of the topic (not a NO-GO: the topic is cut over). */
	if (!strcmp(kind, "excluded") && !journal_open(ctx)) {
		char subj[400];
		snprintf(subj, sizeof(subj), "topic:%s", cli_jstr(ev, "topic"));
		km_journal_fact(ctx->jr, ctx->run_id, "replicate.excluded", subj, "EXCLUDED", ev, err,
				sizeof(err));
	}
	/* A loss is a NO-GO fact the moment it is known. */
	if (!strcmp(kind, "loss") && !journal_open(ctx)) {
		char subj[400];
		snprintf(subj, sizeof(subj), "partition:%s[%lld]",
			 cli_jstr(ev, "topic"),
			 cli_jint(ev, "partition"));
		km_journal_fact(ctx->jr, ctx->run_id, "replicate.loss", subj, "NO-GO", ev, err,
				sizeof(err));
	}
}

/* The source topics of the saved design (what was reviewed and applied):
 * each must be visible to the replicating user.  No journal or no design
 * yet: nothing to check against, *namesp stays empty.  Reads only: the
 * journal is not modified. */
/* Static membership needs an id that a restarted process gets back and
 * that no two live processes share.  Given (--instance): held by a lock so
 * that a second local process with the same id is refused.  Otherwise:
 * "<hostname>-<n>" with the lowest n whose lock is free -- the kernel drops
 * a dead process's lock, so a process restarted after a crash (or a kill -9)
 * gets its predecessor's id, while processes running side by side get
 * distinct ones.  Processes on other hosts differ by hostname (containers
 * that share a hostname need --instance).  The locks are empty files next to
 * the journal, `<journal>.replicate.<id>.lock`; they are left in place.
 * @returns 0 with *fdp (keep open while running) and id filled. */
static int instance_lock(cli_t *cli, const km_plan_t *plan, const char *given, char *id,
			 size_t id_size, int *fdp)
{
	char host[256], path[4096];

	*fdp = -1;
	if (gethostname(host, sizeof(host)) != 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	for (int n = 0; n < 256; n++) {
		if (given)
			snprintf(id, id_size, "%s", given);
		else
			snprintf(id, id_size, "%s-%d", host, n);
		snprintf(path, sizeof(path), "%s.replicate.%s.lock", plan->journal, id);
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			snprintf(cli->errstr, sizeof(cli->errstr),
				 "cannot create the instance lock '%.600s': %s", path, strerror(errno));
			return cli_fail(cli, KM_ERR_IO);
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			*fdp = fd;
			return 0;
		}
		close(fd);
		if (given) {
			snprintf(cli->errstr, sizeof(cli->errstr),
				 "another replicator on this host runs as instance '%s' (lock '%.600s'): "
				 "give each process its own --instance",
				 given, path);
			return cli_fail(cli, KM_ERR_CONFLICT);
		}
	}
	snprintf(cli->errstr, sizeof(cli->errstr),
		 "256 replicators already run on this host for journal '%s'", plan->journal);
	return cli_fail(cli, KM_ERR_CONFLICT);
}

/* --reverse --wave W: the start points from the journal (wave W's switch
 * step), and the check that the source takes kmigrate's writes
 * (km_rollback_reverse_starts, shared with the rollback).  Reads only.
 * @returns 0 with *startp (ctx->switch_hwms borrowed by it) and *np. */
static int reverse_prepare(cli_t *cli, ev_ctx_t *ctx, km_repl_start_t **startp, int *np)
{
	km_journal_t *jr = NULL;
	km_kafka_t *ks = NULL;
	char principal[300];
	km_err_t err;
	int rc;

	*startp = NULL;
	*np = 0;
	if (!km_plan_wave(cli->plan, ctx->wave)) {
		snprintf(cli->errstr, sizeof(cli->errstr),
			 "no wave '%s' in the plan's cutover.waves: name one of them", ctx->wave);
		return cli_fail(cli, KM_ERR_INVALID_ARG);
	}
	if ((rc = cli_open_journal(cli, cli->plan, 0, &jr)))
		return rc;
	if ((rc = cli_open_cluster(cli, cli->plan, "source", 0, &ks)))
		goto done;
	snprintf(principal, sizeof(principal), "User:%s",
		 cli->src.username ? cli->src.username : "ANONYMOUS");
	if ((err = km_rollback_reverse_starts(jr, ks, cli->plan, ctx->wave, principal,
					      &ctx->switch_hwms, startp, np, cli->errstr,
					      sizeof(cli->errstr))))
		rc = cli_fail(cli, err);
done:
	km_kafka_close(ks);
	km_journal_close(jr);
	return rc;
}

int cmd_replicate(cli_t *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTS,
		{"until-caught-up", no_argument, NULL, 'u'},
		{"tasks", required_argument, NULL, 'T'},
		{"max-bytes-per-sec", required_argument, NULL, 'B'},
		{"txn-records", required_argument, NULL, 'R'},
		{"txn-ms", required_argument, NULL, 'M'},
		{"max-buffer-mb", required_argument, NULL, 'm'},
		{"instance", required_argument, NULL, 'I'},
		{"no-instance", no_argument, NULL, 'N'},
		{"group-protocol", required_argument, NULL, 'G'},
		{"reverse", no_argument, NULL, 'r'},
		{"wave", required_argument, NULL, 'W'},
		{"metrics-addr", required_argument, NULL, 'X'},
		{NULL, 0, NULL, 0}};
	km_repl_start_t *start = NULL;
	const char *metrics_addr = NULL;
	km_metrics_t *metrics = NULL;
	km_metrics_server_t *msrv = NULL;
	int reverse = 0;
	km_repl_opts_t ropts;
	km_repl_stats_t stats;
	km_plan_t *plan;
	ev_ctx_t ctx = {.cli = cli, .tty = isatty(2)};
	char *args = NULL, summary[200];
	json_t *design = NULL;
	const char **dtopics = NULL;
	int ndtopics = 0, lock_fd = -1, no_instance = 0;
	const char *instance = NULL;
	char instance_id[300];
	int c, rc = 0, txn_records_set = 0, txn_ms_set = 0, buffer_set = 0;
	int64_t v;
	km_err_t err;

	km_repl_opts_init(&ropts);
	ropts.tasks = -1;
	ropts.max_bytes_per_sec = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "u", opts, NULL)) != -1) {
		if (cli_common_opt(cli, c))
			continue;
		switch (c) {
		case 'u': ropts.until_caught_up = true; break;
		case 'T':
			if (km_parse_i64(optarg, &v) || v < 1 || v > 256)
				return cli_usage(cli, "--tasks takes 1..256, not '%s'", optarg);
			ropts.tasks = (int)v;
			break;
		case 'B':
			if (km_parse_i64(optarg, &v) || v < 1)
				return cli_usage(cli, "--max-bytes-per-sec takes a positive number");
			ropts.max_bytes_per_sec = v;
			break;
		case 'R':
			if (km_parse_i64(optarg, &v) || v < 1 || v > 1000000)
				return cli_usage(cli, "--txn-records takes 1..1000000");
			ropts.txn_max_records = (int)v;
			txn_records_set = 1;
			break;
		case 'm':
			if (km_parse_i64(optarg, &v) || v < 8 || v > 65536)
				return cli_usage(cli, "--max-buffer-mb takes 8..65536");
			ropts.max_buffer_bytes = v * 1024 * 1024;
			buffer_set = 1;
			break;
		case 'M':
			if (km_parse_i64(optarg, &v) || v < 1 || v > 60000)
				return cli_usage(cli, "--txn-ms takes 1..60000");
			ropts.txn_max_ms = (int)v;
			txn_ms_set = 1;
			break;
		case 'I':
			if (!*optarg || strlen(optarg) > 200 || strpbrk(optarg, "/ \t\n"))
				return cli_usage(cli, "--instance takes a name of 1..200 characters "
						      "without '/' or spaces");
			instance = optarg;
			break;
		case 'N': no_instance = 1; break;
		case 'r': reverse = 1; break;
		case 'W': ctx.wave = optarg; break;
		case 'X':
			if (km_metrics_addr_check(optarg))
				return cli_usage(cli, "--metrics-addr takes HOST:PORT, not '%s'",
						 optarg);
			metrics_addr = optarg;
			break;
		case 'G':
			if (strcmp(optarg, "classic") && strcmp(optarg, "consumer"))
				return cli_usage(cli, "--group-protocol takes classic or consumer");
			ropts.group_protocol = optarg;
			break;
		default: return cli_usage(cli, "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
	if (instance && no_instance)
		return cli_usage(cli, "--instance and --no-instance exclude each other");
	if (reverse != (ctx.wave != NULL))
		return cli_usage(cli, "--reverse and --wave go together: `kmigrate replicate "
				      "--reverse --wave W` copies back what wave W's target got "
				      "since its switch");
	if ((rc = cli_ready(cli)))
		return rc;
	plan = cli->plan;
	if ((rc = cli_metrics_start(cli, metrics_addr, cli->plan->monitoring.replicate_metrics_addr, &metrics, &msrv)))
		return rc;
	ropts.metrics = metrics;
	/* Flags win over the plan's replication: section. */
	if (ropts.tasks < 0)
		ropts.tasks = plan->replication.tasks;
	if (ropts.max_bytes_per_sec < 0)
		ropts.max_bytes_per_sec = plan->replication.max_bytes_per_sec;
	if (plan->replication.txn_max_records && !txn_records_set)
		ropts.txn_max_records = plan->replication.txn_max_records;
	if (plan->replication.max_buffer_mb && !buffer_set)
		ropts.max_buffer_bytes = (int64_t)plan->replication.max_buffer_mb * 1024 * 1024;
	if (plan->replication.txn_max_ms && !txn_ms_set)
		ropts.txn_max_ms = plan->replication.txn_max_ms;
	if (reverse) {
		/* The topics are the wave's, not the plan's scope: no design
		 * check (the engine checks each is there on the target). */
		if ((rc = reverse_prepare(cli, &ctx, &start, &ropts.n_start)))
			goto done;
		ropts.direction = "reverse";
		ropts.start = start;
	} else if ((rc = cli_design_topics(cli, &design)))
		goto done;
	if (design) {
		json_t *t;
		size_t i;
		dtopics = km_calloc(json_array_size(design) + 1, sizeof(*dtopics));
		json_array_foreach(design, i, t)
			dtopics[ndtopics++] = json_string_value(t);
	}
	ropts.design_topics = dtopics;
	ropts.n_design_topics = ndtopics;
	if (!no_instance) {
		if ((rc = instance_lock(cli, plan, instance, instance_id, sizeof(instance_id),
					&lock_fd)))
			goto done;
		ropts.instance_id = instance_id;
	}
	args = cli_args_string(argc, argv);
	ctx.plan = plan;
	ctx.args = args;
	ropts.stop = &cli_stop;
	ropts.event_cb = on_event;
	ropts.opaque = &ctx;
	err = km_replicate_run(plan, &cli->src, &cli->tgt, &ropts, &stats, cli->errstr,
			       sizeof(cli->errstr));
	if (ctx.tty && !cli->json)
		fputc('\n', stderr);
	if (ctx.jerr && !err) {
		/* The engine stopped because the journal could not be opened. */
		snprintf(cli->errstr, sizeof(cli->errstr), "%s", ctx.jerrstr);
		err = ctx.jerr;
	}
	if (err)
		rc = cli_fail(cli, err);
	else if (stats.nothing_left && !cli->json)
		printf("Nothing left to copy: every in-scope topic's write authority is the target "
		       "(%d topics cut over); replicated %lld records before that\n",
		       stats.excluded, (long long)stats.records);
	else if (!cli->json)
		printf("Replicated %lld records (%.1f MB) in %lld transactions; %d/%d partitions "
		       "caught up%s\n",
		       (long long)stats.records, (double)stats.bytes / 1e6,
		       (long long)stats.transactions, stats.caught_up, stats.partitions,
		       cli_stop ? " (stopped)" : "");
	snprintf(summary, sizeof(summary), "%lld records, %lld transactions, %lld aborts%s",
		 (long long)stats.records, (long long)stats.transactions, (long long)stats.aborts,
		 stats.nothing_left ? "; nothing left to copy (every topic cut over)" : "");
	if (ctx.jr) {
		journal_progress(&ctx, km_mono_ms()); /* the run's last sample */
		km_journal_run_end(ctx.jr, ctx.run_id, rc, summary, cli->errstr,
				   sizeof(cli->errstr));
	}
done:
	cli_metrics_stop(metrics, msrv);
	if (lock_fd >= 0)
		close(lock_fd);
	free(start);
	json_decref(ctx.switch_hwms);
	json_decref(ctx.last_progress);
	free(dtopics);
	json_decref(design);
	free(args);
	km_journal_close(ctx.jr);
	return rc;
}

