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

typedef struct cli_s cli_t;

typedef struct cmd_s {
	const char *name;
	int (*fn)(cli_t *cli, int argc, char **argv);
	const char *usage;   /* arguments after the command name */
	const char *summary; /* one line for `kmigrate --help` */
	const char *help;    /* the rest of `kmigrate help CMD` */
} cmd_t;

struct cli_s {
	const cmd_t *cmd;
	const char *plan_path; /* -p/--plan, default ./migration.yaml */
	int json;              /* --json: machine output on stdout */
	int verbose;
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
int cmd_offsets(cli_t *cli, int argc, char **argv);
int cmd_plan(cli_t *cli, int argc, char **argv);
int cmd_replicate(cli_t *cli, int argc, char **argv);
int cmd_init(cli_t *cli, int argc, char **argv);
int cmd_inventory(cli_t *cli, int argc, char **argv);
int cmd_status(cli_t *cli, int argc, char **argv);
int cmd_validate(cli_t *cli, int argc, char **argv);

#endif
