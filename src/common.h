/*
 * common.h -- shared first steps of commands (see common.c).
 * Each returns 0 on success or the exit code after reporting the error.
 */
#ifndef KM_COMMON_H
#define KM_COMMON_H

#include "cli.h"
#include "journal.h"
#include "kafka.h"
#include "plan.h"
#include "util.h"

int cli_load_plan(cli_t *cli, km_plan_t **planp);
int cli_check_journal(cli_t *cli, const km_plan_t *plan);
int cli_open_cluster(cli_t *cli, const km_plan_t *plan, const char *role,
		     int flags, km_kafka_t **kp);
int cli_open_journal(cli_t *cli, const km_plan_t *plan, int create,
		     km_journal_t **jrp);
/* @returns the arguments joined with spaces (owned); never secrets, since
 * secrets are never given on the command line. */
char *cli_args_string(int argc, char **argv);

#endif
