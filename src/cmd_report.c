/*
 * cmd_report.c -- `kmigrate report -p PLAN -o report.html`: the journal as
 * one self-contained HTML page for an auditor (lib/report.h).
 *
 * The page is made from the journal alone: `--journal FILE` reads a journal
 * copied to another machine, without the plan file or any cluster.  With a
 * plan (-p) and no plan snapshot in the journal, the plan file's owners are
 * shown, and the page says where they came from.
 *
 * The file is written next to its final name and renamed into place: a
 * failure leaves no half-written report, and an existing one untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "report.h"

/* The output's folder must exist: checked before any work. */
static int check_output(cli_t *cli, const char *out)
{
	struct stat st;
	char *copy = km_strdup(out), *dir = dirname(copy);
	int rc = 0;

	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(cli->errstr, sizeof(cli->errstr),
			 "cannot write the report '%s': folder '%s' does not exist (create it, or "
			 "give -o a path in an existing folder)",
			 out, dir);
		rc = cli_fail(cli, KM_ERR_IO);
	} else if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(cli->errstr, sizeof(cli->errstr),
			 "cannot write the report '%s': it is a folder (give -o a file name, e.g. "
			 "%s/report.html)",
			 out, out);
		rc = cli_fail(cli, KM_ERR_IO);
	}
	free(copy);
	return rc;
}

/* Writes html to out through a temporary file in the same folder. */
static int write_atomic(cli_t *cli, const char *out, const char *html)
{
	char *tmp = km_asprintf("%s.tmp.%d", out, (int)getpid());
	size_t len = strlen(html);
	int fd, rc = 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(cli->errstr, sizeof(cli->errstr), "cannot write the report '%s': %s", out,
			 strerror(errno));
		rc = cli_fail(cli, KM_ERR_IO);
		goto done;
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, html + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(cli->errstr, sizeof(cli->errstr),
				 "cannot write the report '%s': %s", out, strerror(errno));
			rc = cli_fail(cli, KM_ERR_IO);
			break;
		}
		off += (size_t)n;
	}
	if (!rc && (fsync(fd) != 0 || close(fd) != 0)) {
		snprintf(cli->errstr, sizeof(cli->errstr), "cannot write the report '%s': %s", out,
			 strerror(errno));
		rc = cli_fail(cli, KM_ERR_IO);
		fd = -1;
	} else if (rc)
		close(fd);
	if (!rc && rename(tmp, out) != 0) {
		snprintf(cli->errstr, sizeof(cli->errstr), "cannot write the report '%s': %s", out,
			 strerror(errno));
		rc = cli_fail(cli, KM_ERR_IO);
	}
	if (rc)
		unlink(tmp);
done:
	free(tmp);
	return rc;
}

int cmd_report(cli_t *cli, int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_OPTS,
					     {"output", required_argument, NULL, 'o'},
					     {"journal", required_argument, NULL, 'j'},
					     {NULL, 0, NULL, 0}};
	const char *out = NULL, *journal = NULL, *default_plan = cli->plan_path;
	km_journal_t *jr = NULL, *own_jr = NULL;
	km_plan_t *plan = NULL;
	json_t *plan_json = NULL, *info = NULL;
	char *html = NULL;
	int c, rc = 0;
	km_err_t err;

	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "o:", opts, NULL)) != -1) {
		if (cli_common_opt(cli, c))
			continue;
		switch (c) {
		case 'o': out = optarg; break;
		case 'j': journal = optarg; break;
		default: return cli_usage(cli, "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
	if (!out || !*out)
		return cli_usage(cli, "-o FILE is required (e.g. -o report.html; - writes to "
				      "stdout)");
	if (strcmp(out, "-") && (rc = check_output(cli, out)))
		return rc;
	if (journal) {
		/* The journal alone: a plan is read only when named with -p,
		 * for its owners should the journal hold no plan snapshot. */
		cli->needs = cli->plan_path != default_plan ? CLI_NEED_PLAN : 0;
		if ((rc = cli_ready(cli)))
			return rc;
		/* Said before the journal module's own message, which would
		 * point at the plan's journal: key, not at this option. */
		if (access(journal, F_OK) != 0) {
			snprintf(cli->errstr, sizeof(cli->errstr),
				 "journal '%s' does not exist (give --journal the path of a "
				 "migration's kmigrate.db)",
				 journal);
			return cli_fail(cli, KM_ERR_IO);
		}
		if ((err = km_journal_open(journal, 0, &own_jr, cli->errstr, sizeof(cli->errstr))))
			return cli_fail(cli, err);
		jr = own_jr;
	} else {
		cli->needs = CLI_NEED_PLAN | CLI_NEED_JOURNAL;
		if ((rc = cli_ready(cli)))
			return rc;
		jr = cli->jr;
	}
	plan = cli->plan;
	if (plan)
		plan_json = km_report_plan_json(plan);
	if ((err = km_report_html(jr, plan_json, km_now_ms(), &html, &info, cli->errstr,
				  sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	if (!strcmp(out, "-")) {
		fputs(html, stdout);
		goto done;
	}
	if ((rc = write_atomic(cli, out, html)))
		goto done;
	json_object_set_new(info, "output", json_string(out));
	json_object_set_new(info, "bytes", json_integer((json_int_t)strlen(html)));
	json_object_set_new(info, "journal", json_string(km_journal_path(jr)));
	if (cli->json) {
		cli_print_json(info);
		goto done;
	}
	printf("Wrote %s (%zu KB) from the journal %s: %zu sections, %lld gate verdicts, "
	       "%zu charts from %lld progress samples, %lld offset rows, %zu other fact kinds.\n",
	       out, (strlen(html) + 1023) / 1024, km_journal_path(jr),
	       json_array_size(json_object_get(info, "sections")), cli_jint(info, "gates"),
	       json_array_size(json_object_get(info, "charts")), cli_jint(info, "progress_samples"),
	       cli_jint(info, "offsets"), json_array_size(json_object_get(info, "other_kinds")));
	printf("It is one self-contained file: open it in any browser, offline.\n");
done:
	free(html);
	json_decref(info);
	json_decref(plan_json);
	km_journal_close(own_jr);
	return rc;
}
