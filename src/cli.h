/*
 * cli.h -- what the kmigrate commands share: the command table entry, the
 * common options, output helpers and the mapping of errors to exit codes.
 *
 * Only this layer prints and decides exit codes; lib/ returns results.
 */
#ifndef KM_CLI_H
#define KM_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>

#include "err.h"
#include "journal.h"
#include "kafka.h"
#include "plan.h"

typedef struct cli_s cli_t;

/* What a command needs before its own work starts: the command table says
 * it, cli_ready() provides it in this order, and main() releases it after
 * the command returned, whatever happened.  A command parses its options,
 * may adjust cli->needs (say, which cluster --cluster names), calls
 * cli_ready() and starts at its own work. */
enum {
	CLI_NEED_PLAN = 1 << 0,         /* -p PLAN loaded: cli->plan */
	CLI_NEED_JOURNAL_PATH = 1 << 1, /* the journal can be written: checked,
					 * nothing created (a command that fails
					 * before its work leaves no trace) */
	CLI_NEED_JOURNAL = 1 << 2,      /* the existing journal open: cli->jr */
	CLI_NEED_SOURCE = 1 << 3,       /* connected to the source: cli->ks */
	CLI_NEED_TARGET = 1 << 4,       /* connected to the target: cli->kt */
	CLI_NEED_STOP = 1 << 5,         /* SIGINT/SIGTERM set cli_stop (common.h)
					 * instead of killing the process */
	CLI_NEED_ENDPOINTS = 1 << 6,    /* both clusters' endpoints, secrets read,
					 * for engines that open their own clients:
					 * cli->src, cli->tgt */
};

typedef struct cmd_s {
	const char *name;
	int (*fn)(cli_t *cli, int argc, char **argv);
	unsigned needs;      /* CLI_NEED_* */
	const char *usage;   /* arguments after the command name */
	const char *summary; /* one line for `kmigrate --help` */
	const char *help;    /* the rest of `kmigrate help CMD` */
} cmd_t;

struct cli_s {
	const cmd_t *cmd;
	const char *plan_path; /* -p/--plan, default ./migration.yaml */
	int json;              /* --json: machine output on stdout */
	int verbose;
	unsigned needs;        /* from the table; the command may adjust it */
	unsigned ready;        /* what cli_ready() provided, for cli_release() */
	int kafka_flags;       /* KM_KAFKA_F_* for the clusters cli_ready opens */
	km_plan_t *plan;       /* CLI_NEED_PLAN */
	km_journal_t *jr;      /* CLI_NEED_JOURNAL, or cli_journal() */
	km_kafka_t *ks, *kt;   /* CLI_NEED_SOURCE, CLI_NEED_TARGET */
	km_kafka_endpoint_t src, tgt; /* CLI_NEED_ENDPOINTS */
	char errstr[1024];
};

/* Options every command accepts; command-specific ones are appended. */
#define CLI_COMMON_OPTS                                                        \
	{"plan", required_argument, NULL, 'p'},                                \
	{"json", no_argument, NULL, 'J'},                                      \
	{"verbose", no_argument, NULL, 'v'},                                   \
	{"help", no_argument, NULL, 'h'}
#define CLI_COMMON_SHORT "p:vh"

/* Handles a common option; @returns 1 if it was one, 0 otherwise, and
 * exits 0 for --help. */
int cli_common_opt(cli_t *cli, int c);

/* Reports a usage error for the current command and @returns exit code 2. */
int cli_usage(cli_t *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Reports err with cli->errstr (one line on stderr, and a JSON error object
 * on stdout with --json) and @returns the exit code for err. */
int cli_fail(cli_t *cli, km_err_t err);

/* Provides what cli->needs lists, in the order of the CLI_NEED_* list;
 * @returns 0, or the exit code after reporting the first failure. */
int cli_ready(cli_t *cli);

/* The journal, opened (created if need be) on first use and closed by
 * cli_release(): commands write their evidence after their work.
 * @returns 0, or the exit code after reporting the failure. */
int cli_journal(cli_t *cli);

/* Releases what cli_ready() and cli_journal() provided (main() calls it
 * after the command returned). */
void cli_release(cli_t *cli);

/* A JSON object's members, with the command layer's defaults for a
 * missing member: "-" for a string, 0 for a number, false for a boolean. */
const char *cli_jstr(const json_t *o, const char *k);
long long cli_jint(const json_t *o, const char *k);
double cli_jnum(const json_t *o, const char *k);
int cli_jbool(const json_t *o, const char *k);

/* Prints a JSON document to stdout (indented, sorted keys). */
void cli_print_json(const json_t *doc);

void cli_print_help(const cmd_t *cmd, FILE *fp);

/* A minimal text table: add rows of cells, then print with aligned columns. */
typedef struct table_s table_t;
table_t *table_new(int ncols, ...);
void table_row(table_t *t, ...); /* ncols const char * cells (NULL = "-") */
void table_print(table_t *t, FILE *fp, const char *indent);
void table_destroy(table_t *t);

/* The command entry points, one cmd_<name>.c each. */
int cmd_apply(cli_t *cli, int argc, char **argv);
int cmd_check(cli_t *cli, int argc, char **argv);
int cmd_cutover(cli_t *cli, int argc, char **argv);
int cmd_rollback(cli_t *cli, int argc, char **argv);
int cmd_gate(cli_t *cli, int argc, char **argv);
int cmd_offsets(cli_t *cli, int argc, char **argv);
int cmd_plan(cli_t *cli, int argc, char **argv);
int cmd_replicate(cli_t *cli, int argc, char **argv);
int cmd_init(cli_t *cli, int argc, char **argv);
int cmd_inventory(cli_t *cli, int argc, char **argv);
int cmd_schemas(cli_t *cli, int argc, char **argv);
int cmd_status(cli_t *cli, int argc, char **argv);
int cmd_monitor(cli_t *cli, int argc, char **argv);
int cmd_validate(cli_t *cli, int argc, char **argv);
int cmd_report(cli_t *cli, int argc, char **argv);

#endif
