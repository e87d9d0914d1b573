#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void cli_print_help(const cmd_t *cmd, FILE *fp)
{
	fprintf(fp, "usage: kmigrate %s %s\n\n%s.\n\n%s", cmd->name,
		cmd->usage, cmd->summary, cmd->help);
	fprintf(fp,
		"\nCommon options:\n"
		"  -p, --plan FILE   the plan (default ./migration.yaml)\n"
		"      --json        machine-readable output on stdout\n"
		"  -v, --verbose     more detail\n"
		"  -h, --help        this text\n");
}

int cli_common_opt(cli_t *cli, int c)
{
	switch (c) {
	case 'p': cli->plan_path = optarg; return 1;
	case 'J': cli->json = 1; return 1;
	case 'v': cli->verbose++; return 1;
	case 'h':
		cli_print_help(cli->cmd, stdout);
		exit(0);
	default: return 0;
	}
}

int cli_usage(cli_t *cli, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "kmigrate %s: ", cli->cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see `kmigrate help %s`)\n", cli->cmd->name);
	return 2;
}

int cli_fail(cli_t *cli, km_err_t err)
{
	const char *msg = cli->errstr[0] ? cli->errstr : km_err2str(err);

	fprintf(stderr, "kmigrate %s: %s\n", cli->cmd->name, msg);
	if (cli->json) {
		json_t *doc = json_pack("{s:b, s:{s:s, s:s, s:i}}", "ok", 0,
					"error", "code", km_err_name(err),
					"message", msg, "exit_code",
					km_err_exit_code(err));
		cli_print_json(doc);
		json_decref(doc);
	}
	return km_err_exit_code(err);
}

void cli_print_json(const json_t *doc)
{
	json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
}

struct table_s {
	int ncols;
	char **cells; /* row-major, owned */
	int nrows;
	int cap;
	const char **head;
};

table_t *table_new(int ncols, ...)
{
	table_t *t = km_calloc(1, sizeof(*t));
	va_list ap;

	t->ncols = ncols;
	t->head = km_calloc((size_t)ncols, sizeof(*t->head));
	va_start(ap, ncols);
	for (int i = 0; i < ncols; i++)
		t->head[i] = va_arg(ap, const char *);
	va_end(ap);
	return t;
}

void table_row(table_t *t, ...)
{
	va_list ap;

	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = km_realloc(t->cells, (size_t)t->cap *
							(size_t)t->ncols *
							sizeof(*t->cells));
	}
	va_start(ap, t);
	for (int i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);
		t->cells[t->nrows * t->ncols + i] = km_strdup(s ? s : "-");
	}
	va_end(ap);
	t->nrows++;
}

void table_print(table_t *t, FILE *fp, const char *indent)
{
	size_t *w = km_calloc((size_t)t->ncols, sizeof(*w));
	int r, c;

	for (c = 0; c < t->ncols; c++)
		w[c] = strlen(t->head[c]);
	for (r = 0; r < t->nrows; r++)
		for (c = 0; c < t->ncols; c++) {
			size_t l = strlen(t->cells[r * t->ncols + c]);
			if (l > w[c])
				w[c] = l;
		}
	for (r = -1; r < t->nrows; r++) {
		fputs(indent ? indent : "", fp);
		for (c = 0; c < t->ncols; c++) {
			const char *s = r < 0 ? t->head[c]
					      : t->cells[r * t->ncols + c];
			if (c == t->ncols - 1)
				fprintf(fp, "%s", s);
			else
				fprintf(fp, "%-*s  ", (int)w[c], s);
		}
		fputc('\n', fp);
	}
	free(w);
}

void table_destroy(table_t *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->head);
	free(t);
}
