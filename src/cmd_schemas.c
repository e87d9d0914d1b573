/*
 * cmd_schemas.c -- `kmigrate schemas`: migrate the schema registry's
 * subjects to the target registry with their IDs and versions (or, when the
 * plan says `schemas.ids: rewrite`, with the target's IDs and an ID map),
 * prove that every source ID resolves on the target to the same schema, and
 * journal what was done.  --inventory prints both registries; --dry-run
 * says what would be done and writes nothing.
 *
 * Nothing is journaled when a registry could not be read: exit 3.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "schemas.h"

static void print_result(const json_t *res)
{
	json_t *x;
	size_t i;

	printf("Schemas: %s -> %s\n", cli_jstr(res, "source"), cli_jstr(res, "target"));
	printf("  ids: %s%s\n", cli_jstr(res, "ids"),
	       !strcmp(cli_jstr(res, "ids"), "rewrite")
		       ? "   *** SCHEMA IDS REWRITTEN: replicate rewrites the ID in every wire-format record ***"
		       : "");
	printf("  method: %s%s\n", cli_jstr(res, "method"), cli_jbool(res, "dry_run") ? " (dry run: nothing written)" : "");
	json_array_foreach(json_object_get(res, "subjects"), i, x)
		printf("  %s subject '%s'\n", cli_jbool(res, "dry_run") ? "would copy" : "copied",
		       json_string_value(x));
	json_array_foreach(json_object_get(res, "already_present"), i, x)
		printf("  already on the target: '%s'\n", json_string_value(x));
	json_array_foreach(json_object_get(res, "compatibility"), i, x)
		printf("  compatibility '%s' = %s\n", cli_jstr(x, "subject"), cli_jstr(x, "compatibility"));
	json_array_foreach(json_object_get(res, "collisions"), i, x)
		printf("  COLLISION %s\n", json_string_value(x));
	if (json_is_object(json_object_get(res, "id_map"))) {
		const char *k;
		json_object_foreach(json_object_get(res, "id_map"), k, x)
			printf("  ID MAP %s -> %lld\n", k, (long long)json_integer_value(x));
	}
	if (json_is_object(json_object_get(res, "proof"))) {
		json_t *p = json_object_get(res, "proof");
		printf("  proof: %lld IDs (%zu seen in records by the source inventories) resolved on the "
		       "target%s: %s\n",
		       cli_jint(p, "checked_ids"), json_array_size(json_object_get(p, "record_ids")),
		       cli_jbool(p, "id_map_applied") ? " through the ID map" : "", cli_jstr(p, "verdict"));
		json_array_foreach(json_object_get(p, "mismatches"), i, x)
			printf("  MISMATCH %s\n", cli_jstr(x, "detail"));
	}
	if (json_is_string(json_object_get(res, "warning")))
		printf("  *** WARNING: %s ***\n", cli_jstr(res, "warning"));
	if (json_is_string(json_object_get(res, "reason")))
		printf("  NO-GO: %s\n", cli_jstr(res, "reason"));
	printf("Verdict: %s\n", cli_jstr(res, "verdict"));
}

static int open_both(cli_t *cli, km_sr_t **srcp, km_sr_t **dstp)
{
	const km_plan_t *plan = cli->plan;
	km_err_t err;

	if (!plan->source.schema_registry_url || !plan->target.schema_registry_url) {
		snprintf(cli->errstr, sizeof(cli->errstr),
			 "the plan has no %s.schema_registry_url: add it (for Apicurio "
			 "http://HOST:PORT/apis/ccompat/v7)",
			 !plan->source.schema_registry_url ? "source" : "target");
		return cli_fail(cli, KM_ERR_PLAN);
	}
	if ((err = km_sr_open(plan->source.schema_registry_url, "source", srcp, cli->errstr,
			      sizeof(cli->errstr))) ||
	    (err = km_sr_open(plan->target.schema_registry_url, "target", dstp, cli->errstr,
			      sizeof(cli->errstr))))
		return cli_fail(cli, err);
	return 0;
}

/* The schema IDs the source's records use, from the source inventories in
 * the journal (topics.<t>.schema_wire_format): the proof checks them too.
 * Each topic's IDs come from the newest inventory that sampled it -- the
 * newest snapshot may be a `--no-sample` or `--diff` run that read no
 * record, and taking it would prove nothing while saying "0 seen".  No
 * journal or no inventory yet: NULL (every source ID is proven all the
 * same).  Never creates the journal. */
static json_t *record_ids(cli_t *cli)
{
	json_t *inv = NULL, *ids = NULL, *t, *x, *set, *done;
	const char *name, *k;
	size_t i;

	if (access(cli->plan->journal, F_OK) || cli_journal(cli))
		return NULL;
	set = json_object();
	done = json_object();
	for (int n = 0; n < 50; n++) {
		if (km_journal_snapshot_get(cli->jr, "inventory", "source", n, &inv, NULL,
					    cli->errstr, sizeof(cli->errstr)) ||
		    !inv)
			break;
		json_object_foreach(json_object_get(inv, "topics"), name, t) {
			json_t *w = json_object_get(t, "schema_wire_format");
			if (!w || json_integer_value(json_object_get(t, "records_sampled")) <= 0 ||
			    json_object_get(done, name))
				continue;
			json_object_set_new(done, name, json_true());
			json_array_foreach(json_object_get(w, "schema_ids"), i, x) {
				char key[24];
				snprintf(key, sizeof(key), "%lld", (long long)json_integer_value(x));
				json_object_set_new(set, key, json_true());
			}
		}
		json_decref(inv);
		inv = NULL;
	}
	if (json_object_size(done)) {
		ids = json_array();
		json_object_foreach(set, k, x)
			json_array_append_new(ids, json_integer(strtoll(k, NULL, 10)));
	}
	json_decref(set);
	json_decref(done);
	return ids;
}

int cmd_schemas(cli_t *cli, int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_OPTS,
					     {"dry-run", no_argument, NULL, 'n'},
					     {"inventory", no_argument, NULL, 'i'},
					     {NULL, 0, NULL, 0}};
	km_sr_t *src = NULL, *dst = NULL;
	json_t *res = NULL, *used = NULL;
	bool dry_run = false, inv = false;
	int64_t run_id = 0;
	char *args = NULL;
	km_err_t err;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
		if (cli_common_opt(cli, c))
			continue;
		if (c == 'n')
			dry_run = true;
		else if (c == 'i')
			inv = true;
		else
			return cli_usage(cli, "unknown option");
	}
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
	if ((rc = cli_ready(cli)))
		return rc;
	if ((rc = open_both(cli, &src, &dst)))
		goto done;
	if (inv) {
		json_t *a = NULL, *b = NULL;
		if ((err = km_schemas_inventory(src, &a, cli->errstr, sizeof(cli->errstr))) ||
		    (err = km_schemas_inventory(dst, &b, cli->errstr, sizeof(cli->errstr)))) {
			json_decref(a);
			rc = cli_fail(cli, err);
			goto done;
		}
		res = json_pack("{s:o,s:o}", "source", a, "target", b);
		if (cli->json) {
			cli_print_json(res);
		} else {
			const char *side;
			json_t *i, *s, *v;
			size_t n, k;
			json_object_foreach(res, side, i) {
				printf("%s registry %s (%s): mode %s, compatibility %s\n", side,
				       cli_jstr(i, "url"), cli_jstr(i, "kind"), cli_jstr(i, "mode"),
				       cli_jstr(i, "compatibility"));
				json_array_foreach(json_object_get(i, "subjects"), n, s)
					json_array_foreach(json_object_get(s, "versions"), k, v)
						printf("  %-30s v%-3lld id %-6lld %-8s %s\n", cli_jstr(s, "subject"),
						       cli_jint(v, "version"), cli_jint(v, "id"),
						       cli_jstr(v, "schemaType"), cli_jstr(s, "compatibility"));
			}
		}
		rc = 0;
		goto done;
	}
	used = record_ids(cli);
	if ((err = km_schemas_migrate(cli->plan, src, dst, dry_run, used, &res, cli->errstr,
				      sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	rc = strcmp(cli_jstr(res, "verdict"), "GO") ? 1 : 0;
	if (!dry_run) {
		args = cli_args_string(argc, argv);
		if ((rc = cli_journal(cli)))
			goto done;
		if ((err = km_journal_begin(cli->jr, cli->errstr, sizeof(cli->errstr))) ||
		    (err = km_journal_run_begin(cli->jr, "schemas", args, &run_id, cli->errstr,
						sizeof(cli->errstr))) ||
		    (err = km_journal_fact(cli->jr, run_id, "schemas", "registry",
					   cli_jstr(res, "verdict"), res, cli->errstr,
					   sizeof(cli->errstr))) ||
		    (err = km_journal_run_end(cli->jr, run_id, strcmp(cli_jstr(res, "verdict"), "GO") ? 1 : 0,
					      cli_jstr(res, "verdict"), cli->errstr,
					      sizeof(cli->errstr))) ||
		    (err = km_journal_commit(cli->jr, cli->errstr, sizeof(cli->errstr)))) {
			km_journal_rollback(cli->jr);
			rc = cli_fail(cli, err);
			goto done;
		}
		rc = strcmp(cli_jstr(res, "verdict"), "GO") ? 1 : 0;
	}
	if (cli->json) {
		if (run_id)
			json_object_set_new(res, "run_id", json_integer((json_int_t)run_id));
		cli_print_json(res);
	} else {
		print_result(res);
	}
done:
	free(args);
	json_decref(used);
	json_decref(res);
	km_sr_close(src);
	km_sr_close(dst);
	return rc;
}
