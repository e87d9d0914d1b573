/*
 * common.c -- the steps most commands begin with: load the plan, check the
 * journal can be written, open a cluster.  Each step reports its own error
 * and returns the exit code, so a command reads as a list of steps.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"

int cli_load_plan(cli_t *cli, km_plan_t **planp)
{
	km_err_t err = km_plan_load(cli->plan_path, planp, cli->errstr,
				    sizeof(cli->errstr));
	return err ? cli_fail(cli, err) : 0;
}

int cli_check_journal(cli_t *cli, const km_plan_t *plan)
{
	km_err_t err = km_journal_check_path(plan->journal, cli->errstr,
					     sizeof(cli->errstr));
	return err ? cli_fail(cli, err) : 0;
}

int cli_open_cluster(cli_t *cli, const km_plan_t *plan, const char *role,
		     int flags, km_kafka_t **kp)
{
	const km_plan_cluster_t *c =
		!strcmp(role, "target") ? &plan->target : &plan->source;
	km_kafka_endpoint_t ep;
	km_err_t err;

	*kp = NULL;
	if ((err = km_kafka_endpoint_from_plan(c, &ep, cli->errstr,
					       sizeof(cli->errstr))))
		return cli_fail(cli, err);
	err = km_kafka_open(&ep, flags, kp, cli->errstr, sizeof(cli->errstr));
	km_kafka_endpoint_clear(&ep);
	return err ? cli_fail(cli, err) : 0;
}

int cli_open_journal(cli_t *cli, const km_plan_t *plan, int create,
		     km_journal_t **jrp)
{
	km_err_t err = km_journal_open(plan->journal, create, jrp, cli->errstr,
				       sizeof(cli->errstr));
	return err ? cli_fail(cli, err) : 0;
}

char *cli_args_string(int argc, char **argv)
{
	km_sb_t sb = KM_SB_INIT;

	for (int i = 0; i < argc; i++) {
		if (i)
			km_sb_puts(&sb, " ");
		km_sb_puts(&sb, argv[i]);
	}
	return km_sb_detach(&sb);
}

volatile sig_atomic_t cli_stop;

static void on_stop_signal(int sig)
{
	(void)sig;
	cli_stop = 1;
}

void cli_catch_stop(struct sigaction *old_int, struct sigaction *old_term)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, old_int);
	sigaction(SIGTERM, &sa, old_term);
}

void cli_release_stop(const struct sigaction *old_int, const struct sigaction *old_term)
{
	sigaction(SIGINT, old_int, NULL);
	sigaction(SIGTERM, old_term, NULL);
}

const char *cli_jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "-";
}

long long cli_jint(const json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

double cli_jnum(const json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

int cli_jbool(const json_t *o, const char *k)
{
	return json_is_true(json_object_get(o, k));
}

int cli_design_topics(cli_t *cli, json_t **topicsp)
{
	km_journal_t *jr = NULL;
	json_t *design = NULL, *t;
	size_t i;
	km_err_t err;

	*topicsp = NULL;
	/* No journal yet: nothing was designed (and nothing is created). */
	if (access(cli->plan->journal, F_OK))
		return 0;
	if ((err = km_journal_open(cli->plan->journal, 0, &jr, cli->errstr, sizeof(cli->errstr))))
		return cli_fail(cli, err);
	err = km_journal_snapshot_get(jr, "design", "target", 0, &design, NULL, cli->errstr,
				      sizeof(cli->errstr));
	km_journal_close(jr);
	if (err == KM_ERR_NOT_FOUND)
		return 0;
	if (err)
		return cli_fail(cli, err);
	*topicsp = json_array();
	json_array_foreach(json_object_get(design, "topics"), i, t)
		if (json_is_string(json_object_get(t, "source")))
			json_array_append(*topicsp, json_object_get(t, "source"));
	json_decref(design);
	return 0;
}

/* The topics the journal's latest source inventory recognised as a Kafka
 * Connect worker's internal topics (lib/inventory.h) leave the plan's scope
 * for every phase: design, copy, validation, waves, gates.  No journal or
 * no inventory yet: none recognised. */
static int cli_worker_topics(cli_t *cli)
{
	km_journal_t *jr = NULL;
	json_t *run = NULL, *facts = NULL, *f;
	const char **names = NULL;
	size_t i, n = 0;
	km_err_t err;

	if (access(cli->plan->journal, F_OK))
		return 0;
	if ((err = km_journal_open(cli->plan->journal, 0, &jr, cli->errstr, sizeof(cli->errstr))))
		return cli_fail(cli, err);
	err = km_journal_last_run(jr, "inventory", 1, "inventory.source.risk", &run, cli->errstr,
				  sizeof(cli->errstr));
	if (!err && run)
		err = km_journal_facts(jr, json_integer_value(json_object_get(run, "id")),
				       "inventory.source.connect_internal", &facts, cli->errstr,
				       sizeof(cli->errstr));
	km_journal_close(jr);
	if (!err) {
		names = km_calloc(json_array_size(facts) + 1, sizeof(*names));
		json_array_foreach(facts, i, f) {
			const char *subj = cli_jstr(f, "subject");
			if (subj && !strncmp(subj, "topic:", 6))
				names[n++] = subj + 6;
		}
		km_plan_set_worker_topics(cli->plan, names, n);
		free(names);
	}
	json_decref(facts);
	json_decref(run);
	return err ? cli_fail(cli, err) : 0;
}

/* ---- preconditions from the command table ------------------------------------ */

static struct sigaction saved_int, saved_term;

int cli_ready(cli_t *cli)
{
	unsigned n = cli->needs;
	int rc;

	km_err_t err;

	if ((n & (CLI_NEED_JOURNAL_PATH | CLI_NEED_JOURNAL | CLI_NEED_SOURCE | CLI_NEED_TARGET |
		  CLI_NEED_ENDPOINTS)))
		n |= CLI_NEED_PLAN;
	if ((n & CLI_NEED_PLAN) && !cli->plan &&
	    ((rc = cli_load_plan(cli, &cli->plan)) || (rc = cli_worker_topics(cli))))
		return rc;
	if ((n & CLI_NEED_JOURNAL_PATH) && (rc = cli_check_journal(cli, cli->plan)))
		return rc;
	if ((n & CLI_NEED_JOURNAL) && !cli->jr &&
	    (rc = cli_open_journal(cli, cli->plan, 0, &cli->jr)))
		return rc;
	if ((n & CLI_NEED_SOURCE) && !cli->ks &&
	    (rc = cli_open_cluster(cli, cli->plan, "source", cli->kafka_flags, &cli->ks)))
		return rc;
	if ((n & CLI_NEED_TARGET) && !cli->kt &&
	    (rc = cli_open_cluster(cli, cli->plan, "target", cli->kafka_flags, &cli->kt)))
		return rc;
	if ((n & CLI_NEED_ENDPOINTS) && !(cli->ready & CLI_NEED_ENDPOINTS)) {
		cli->ready |= CLI_NEED_ENDPOINTS;
		if ((err = km_kafka_endpoint_from_plan(&cli->plan->source, &cli->src, cli->errstr,
						       sizeof(cli->errstr))) ||
		    (err = km_kafka_endpoint_from_plan(&cli->plan->target, &cli->tgt, cli->errstr,
						       sizeof(cli->errstr))))
			return cli_fail(cli, err);
	}
	if ((n & CLI_NEED_STOP) && !(cli->ready & CLI_NEED_STOP)) {
		cli_catch_stop(&saved_int, &saved_term);
		cli->ready |= CLI_NEED_STOP;
	}
	return 0;
}

int cli_journal(cli_t *cli)
{
	return cli->jr ? 0 : cli_open_journal(cli, cli->plan, 1, &cli->jr);
}

void cli_release(cli_t *cli)
{
	if (cli->ready & CLI_NEED_STOP)
		cli_release_stop(&saved_int, &saved_term);
	if (cli->ready & CLI_NEED_ENDPOINTS) {
		km_kafka_endpoint_clear(&cli->src);
		km_kafka_endpoint_clear(&cli->tgt);
	}
	cli->ready = 0;
	km_journal_close(cli->jr);
	km_kafka_close(cli->ks);
	km_kafka_close(cli->kt);
	km_plan_destroy(cli->plan);
	cli->jr = NULL;
	cli->ks = cli->kt = NULL;
	cli->plan = NULL;
}

int cli_metrics_start(cli_t *cli, const char *flag_addr, const char *plan_addr,
		      km_metrics_t **mp, km_metrics_server_t **srvp)
{
	const char *addr = flag_addr ? flag_addr : plan_addr;
	km_err_t err;

	*mp = NULL;
	*srvp = NULL;
	if (!addr)
		return 0;
	*mp = km_metrics_new();
	if ((err = km_metrics_serve(*mp, addr, srvp, cli->errstr, sizeof(cli->errstr)))) {
		km_metrics_destroy(*mp);
		*mp = NULL;
		return cli_fail(cli, err);
	}
	return 0;
}

void cli_metrics_stop(km_metrics_t *m, km_metrics_server_t *srv)
{
	km_metrics_serve_stop(srv);
	km_metrics_destroy(m);
}
