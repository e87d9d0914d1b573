/*
 * common.h -- shared first steps of commands (see common.c).
 * Each returns 0 on success or the exit code after reporting the error.
 */
#ifndef KM_COMMON_H
#define KM_COMMON_H

#include <jansson.h>
#include <signal.h>

#include "cli.h"
#include "journal.h"
#include "kafka.h"
#include "metrics.h"
#include "plan.h"
#include "util.h"

int cli_load_plan(cli_t *cli, km_plan_t **planp);
int cli_check_journal(cli_t *cli, const km_plan_t *plan);
int cli_open_cluster(cli_t *cli, const km_plan_t *plan, const char *role,
		     int flags, km_kafka_t **kp);
int cli_open_journal(cli_t *cli, const km_plan_t *plan, int create,
		     km_journal_t **jrp);
/* Set by SIGINT and SIGTERM between cli_catch_stop and cli_release_stop:
 * long commands stop cleanly (abort the open transaction, delete the
 * canaries, journal nothing partial) instead of dying. */
extern volatile sig_atomic_t cli_stop;
void cli_catch_stop(struct sigaction *old_int, struct sigaction *old_term);
void cli_release_stop(const struct sigaction *old_int, const struct sigaction *old_term);

/* The source topics of the design saved by `kmigrate plan` (a new JSON
 * array of names in *topicsp), NULL when there is no journal or no design:
 * the topics a command must be able to see, so that a topic hidden from
 * the principal is a NO-GO naming it, never an empty scope.  Opens the
 * journal read-only and creates nothing.  cli->plan must be loaded. */
int cli_design_topics(cli_t *cli, json_t **topicsp);

/* @returns the arguments joined with spaces (owned); never secrets, since
 * secrets are never given on the command line. */
char *cli_args_string(int argc, char **argv);

/* --metrics-addr HOST:PORT (flag_addr), else the plan's monitoring key
 * for the command (plan_addr, may be NULL): a new registry in *mp served on
 * /metrics (*srvp),
 * bound now, so that a port in use fails before the command's work (one
 * line, exit 3).  Neither given: *mp and *srvp NULL, @returns 0.  Release
 * with cli_metrics_stop(). */
int cli_metrics_start(cli_t *cli, const char *flag_addr, const char *plan_addr,
		      km_metrics_t **mp, km_metrics_server_t **srvp);
void cli_metrics_stop(km_metrics_t *m, km_metrics_server_t *srv);

#endif
