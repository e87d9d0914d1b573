/*
 * cmd_status.c -- `kmigrate status`: what the journal knows, at a glance.
 * Never contacts a cluster.
 */
#include <stdlib.h>

#include "common.h"

static char *jtime(json_t *o, const char *k)
{
	char buf[40];
	json_t *v = json_object_get(o, k);

	if (!json_is_integer(v))
		return km_strdup("-");
	km_iso8601(json_integer_value(v), buf, sizeof(buf));
	return km_strdup(buf);
}

int cmd_status(cli_t *cli, int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_OPTS, {NULL, 0, NULL, 0}};
	km_plan_t *plan;
	km_journal_t *jr;
	json_t *sum = NULL, *r;
	int c, rc;
	size_t i;
	km_err_t err;

	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1)
		if (!cli_common_opt(cli, c))
			return cli_usage(cli, "unknown option");
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
	if ((rc = cli_ready(cli)))
		return rc;
	plan = cli->plan;
	jr = cli->jr;
	if ((err = km_journal_summary(jr, &sum, cli->errstr, sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	json_object_set_new(sum, "migration", json_string(plan->migration));
	if (cli->json) {
		cli_print_json(sum);
		goto done;
	}
	printf("Migration '%s', journal %s (schema %lld)\n", plan->migration,
	       plan->journal,
	       cli_jint(sum, "schema_version"));
	table_t *t = table_new(4, "COMMAND", "RUNS", "LAST RUN", "LAST EXIT");
	json_array_foreach(json_object_get(sum, "commands"), i, r) {
		char *when = jtime(r, "last_ms");
		char runs[24], ex[24];
		snprintf(runs, sizeof(runs), "%lld",
			 cli_jint(r, "runs"));
		if (json_is_integer(json_object_get(r, "last_exit")))
			snprintf(ex, sizeof(ex), "%lld",
				 cli_jint(r, "last_exit"));
		else
			snprintf(ex, sizeof(ex), "running or killed");
		table_row(t, cli_jstr(r, "command"), runs, when, ex);
		free(when);
	}
	printf("\nCommands\n");
	table_print(t, stdout, "  ");
	table_destroy(t);

	t = table_new(4, "SNAPSHOT", "SCOPE", "COUNT", "LATEST");
	json_array_foreach(json_object_get(sum, "snapshots"), i, r) {
		char *when = jtime(r, "last_ms");
		char cnt[24];
		snprintf(cnt, sizeof(cnt), "%lld",
			 cli_jint(r, "count"));
		table_row(t, cli_jstr(r, "kind"), cli_jstr(r, "scope"), cnt, when);
		free(when);
	}
	printf("\nSnapshots\n");
	table_print(t, stdout, "  ");
	table_destroy(t);

	t = table_new(3, "FACT KIND", "VERDICT", "SUBJECTS");
	json_array_foreach(json_object_get(sum, "facts"), i, r) {
		char cnt[24];
		snprintf(cnt, sizeof(cnt), "%lld",
			 cli_jint(r, "subjects"));
		table_row(t, cli_jstr(r, "kind"), cli_jstr(r, "verdict"), cnt);
	}
	printf("\nFacts (latest per subject)\n");
	table_print(t, stdout, "  ");
	table_destroy(t);

	printf("\nOpen findings: %zu\n",
	       json_array_size(json_object_get(sum, "open_findings")));
	json_array_foreach(json_object_get(sum, "open_findings"), i, r)
		printf("  %s  %s\n", cli_jstr(r, "kind"), cli_jstr(r, "subject"));
done:
	json_decref(sum);
	return rc;
}
