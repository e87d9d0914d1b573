/*
 * cmd_inventory.c -- `kmigrate inventory`: discover, classify, journal.
 *
 * Nothing is written to the journal until the whole inventory has been read:
 * a cluster that fails half-way leaves the journal as it was.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "inventory.h"

/* An integer member formatted, "-" when absent (owned). */
static char *int_str(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (json_is_integer(v))
		return km_asprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return km_strdup("-");
}

static void print_brokers(json_t *inv, int verbose)
{
	table_t *t = table_new(5, "ID", "HOST", "PORT", "RACK", "API VERSIONS");
	json_t *b, *a;
	size_t i, j;

	json_array_foreach(json_object_get(inv, "brokers"), i, b) {
		km_sb_t sb = KM_SB_INIT;
		char *id = int_str(b, "id"), *port = int_str(b, "port");
		json_t *apis = json_object_get(b, "api_versions");

		if (json_array_size(apis) == 0)
			km_sb_puts(&sb, "not captured (broker not contacted)");
		else if (!verbose)
			km_sb_printf(&sb, "%zu APIs:", json_array_size(apis));
		json_array_foreach(apis, j, a) {
			/* The short form shows the two APIs everyone asks about. */
			if (!verbose && cli_jint(a, "key") > 1)
				continue;
			km_sb_printf(&sb, "%s%s %" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT,
				     sb.len ? " " : "", cli_jstr(a, "name"),
				     cli_jint(a, "min"),
				     cli_jint(a, "max"));
		}
		if (!verbose && json_array_size(apis))
			km_sb_puts(&sb, " ... (-v lists all)");
		table_row(t, id, cli_jstr(b, "host"), port,
			  json_is_string(json_object_get(b, "rack")) ? cli_jstr(b, "rack") : "-",
			  km_sb_str(&sb));
		free(id);
		free(port);
		km_sb_free(&sb);
	}
	printf("\nBrokers\n");
	table_print(t, stdout, "  ");
	table_destroy(t);
}

static void print_topics(json_t *inv, int verbose)
{
	json_t *topics = json_object_get(inv, "topics"), *topic, *r, *c;
	/* OFFSETS, not RECORDS: compaction and transaction markers take
	 * offsets too (see sum_offsets in lib/inventory.c). */
	table_t *t = table_new(7, "TOPIC", "PARTS", "RF", "OFFSETS", "OWNER",
			       "RISK", "REASONS");
	const char *name, *cname;
	size_t i;

	printf("\nTopics in scope: %zu (out of scope: %zu)\n",
	       json_object_size(topics),
	       json_array_size(json_object_get(inv, "topics_out_of_scope")));
	json_object_foreach(topics, name, topic) {
		km_sb_t sb = KM_SB_INIT;
		char *parts = int_str(topic, "partition_count");
		char *rf = int_str(topic, "replication_factor");
		char *recs = json_is_integer(json_object_get(topic, "offsets"))
				     ? int_str(topic, "offsets")
				     : km_strdup("unknown");

		json_array_foreach(json_object_get(json_object_get(topic, "risk"), "reasons"), i, r)
			km_sb_printf(&sb, "%s%s", i ? "; " : "", cli_jstr(r, "reason"));
		char worker[64];
		json_t *ci = json_object_get(topic, "connect_internal");
		snprintf(worker, sizeof(worker), "(Connect worker's %s)", cli_jstr(ci, "role"));
		table_row(t, name, parts, rf, recs,
			  ci ? worker : cli_jstr(json_object_get(topic, "declared"), "owner"),
			  cli_jstr(json_object_get(topic, "risk"), "class"),
			  sb.len ? km_sb_str(&sb) : "-");
		free(parts);
		free(rf);
		free(recs);
		km_sb_free(&sb);
	}
	table_print(t, stdout, "  ");
	table_destroy(t);

	printf("\nTopic configs (%s; source: topic = override on the topic, "
	       "broker-* = broker setting, default = Kafka default)\n",
	       verbose ? "all" : "non-default only, -v shows all");
	json_object_foreach(topics, name, topic) {
		table_t *ct = table_new(3, "CONFIG", "VALUE", "SOURCE");
		json_t *cfg = json_object_get(topic, "configs");
		size_t hidden = 0;

		if (json_object_get(cfg, "not_inventoried")) {
			printf("  %s: not inventoried: %s\n", name,
			       cli_jstr(cfg, "not_inventoried"));
			table_destroy(ct);
			continue;
		}
		json_object_foreach(cfg, cname, c) {
			if (!verbose && !strcmp(cli_jstr(c, "source"), "default")) {
				hidden++;
				continue;
			}
			table_row(ct, cname,
				  json_is_string(json_object_get(c, "value"))
					  ? cli_jstr(c, "value")
					  : (cli_jbool(c, "sensitive")
						     ? "(sensitive)"
						     : "null"),
				  cli_jstr(c, "source"));
		}
		printf("  %s (%zu defaults hidden)\n", name, hidden);
		table_print(ct, stdout, "    ");
		table_destroy(ct);
	}
}

/* What the tail sampling read and what it did not: a partial sample is
 * never shown as a whole one. */
static void print_sampling(json_t *inv)
{
	json_t *s = json_object_get(inv, "sampling"), *r;
	size_t i;

	if (!cli_jbool(s, "enabled")) {
		printf("\nTail sampling: off (--no-sample): transactional records "
		       "and record sizes not looked at\n");
		return;
	}
	printf("\nTail sampling: %lld of %lld"
	       " partitions with records sampled (last %lld"
	       " records each, %lld read to the end), %lld not sampled, in %lld ms\n",
	       cli_jint(s, "sampled"), cli_jint(s, "partitions_with_records"),
	       cli_jint(s, "records_per_partition"), cli_jint(s, "complete"),
	       cli_jint(s, "not_sampled"), cli_jint(s, "elapsed_ms"));
	json_array_foreach(json_object_get(s, "not_sampled_reasons"), i, r)
		printf("  not sampled: %s\n", json_string_value(r));
}

static void print_acls(json_t *inv)
{
	json_t *acls = json_object_get(inv, "acls"), *a;
	table_t *t;
	size_t i;

	if (!json_is_array(acls)) {
		printf("\nACLs: not inventoried: %s\n", cli_jstr(acls, "not_inventoried"));
		return;
	}
	printf("\nACLs: %zu\n", json_array_size(acls));
	if (!json_array_size(acls))
		return;
	t = table_new(7, "RESOURCE", "PATTERN", "NAME", "PRINCIPAL", "HOST",
		      "OPERATION", "PERMISSION");
	json_array_foreach(acls, i, a)
		table_row(t, cli_jstr(a, "resource_type"), cli_jstr(a, "pattern_type"),
			  cli_jstr(a, "name"), cli_jstr(a, "principal"), cli_jstr(a, "host"),
			  cli_jstr(a, "operation"), cli_jstr(a, "permission"));
	table_print(t, stdout, "  ");
	table_destroy(t);
}

static void print_groups(json_t *inv)
{
	json_t *groups = json_object_get(inv, "groups"), *g, *m, *o;
	const char *id;
	size_t i;

	printf("\nConsumer groups: %zu\n", json_object_size(groups));
	json_object_foreach(groups, id, g) {
		char *lag = int_str(g, "total_lag");
		printf("  %s  state=%s  members=%zu  lag=%s  declared=%s\n", id,
		       cli_jstr(g, "state"),
		       json_array_size(json_object_get(g, "members")), lag,
		       cli_jbool(g, "declared") ? "yes" : "NO");
		free(lag);
		json_array_foreach(json_object_get(g, "members"), i, m)
			printf("    member %s@%s (%zu partitions)\n",
			       cli_jstr(m, "client_id"), cli_jstr(m, "host"),
			       json_array_size(json_object_get(m, "assignment")));
		if (json_array_size(json_object_get(g, "offsets"))) {
			table_t *t = table_new(5, "TOPIC", "PARTITION", "COMMITTED",
					       "END", "LAG");
			json_array_foreach(json_object_get(g, "offsets"), i, o) {
				char *p = int_str(o, "partition"), *c = int_str(o, "committed");
				char *e = int_str(o, "end"), *l = int_str(o, "lag");
				table_row(t, cli_jstr(o, "topic"), p, c, e, l);
				free(p);
				free(c);
				free(e);
				free(l);
			}
			table_print(t, stdout, "    ");
			table_destroy(t);
		}
	}
}

static void print_users_quotas(json_t *inv)
{
	json_t *users = json_object_get(inv, "scram_users"), *u, *m, *q;
	json_t *quotas = json_object_get(inv, "quotas");
	size_t i, j;

	if (!json_is_array(users))
		printf("\nSCRAM users: not inventoried: %s\n",
		       cli_jstr(users, "not_inventoried"));
	else {
		printf("\nSCRAM users: %zu (passwords cannot be read; each must be "
		       "set again on the target)\n",
		       json_array_size(users));
		json_array_foreach(users, i, u) {
			printf("  %s:", cli_jstr(u, "user"));
			json_array_foreach(json_object_get(u, "mechanisms"), j, m)
				printf(" %s", cli_jstr(m, "mechanism"));
			printf("\n");
		}
	}
	if (!json_is_array(quotas)) {
		printf("\nClient quotas: not inventoried: %s\n",
		       cli_jstr(quotas, "not_inventoried"));
		return;
	}
	printf("\nClient quotas: %zu\n", json_array_size(quotas));
	json_array_foreach(quotas, i, q) {
		char *e = json_dumps(json_object_get(q, "entity"), JSON_COMPACT | JSON_SORT_KEYS);
		char *v = json_dumps(json_object_get(q, "values"), JSON_COMPACT | JSON_SORT_KEYS);
		printf("  %s %s\n", e, v);
		free(e);
		free(v);
	}
}

static void print_declared_findings(json_t *inv)
{
	json_t *items = json_object_get(inv, "declared"), *it, *f;
	json_t *findings = json_object_get(inv, "findings");
	size_t i;

	if (json_is_array(items)) {
		table_t *t = table_new(4, "KIND", "NAME", "OWNER", "VALIDATION");
		printf("\nDeclared items (from the plan): %zu\n", json_array_size(items));
		json_array_foreach(items, i, it)
			table_row(t, cli_jstr(it, "kind"), cli_jstr(it, "name"),
				  json_is_string(json_object_get(it, "owner")) ? cli_jstr(it, "owner") : "MISSING",
				  json_is_string(json_object_get(it, "validation"))
					  ? cli_jstr(it, "validation")
					  : "MISSING");
		if (json_array_size(items))
			table_print(t, stdout, "  ");
		table_destroy(t);
	}
	printf("\nFindings: %zu\n", json_array_size(findings));
	json_array_foreach(findings, i, f)
		printf("  %s: %s (fix: %s)\n", cli_jstr(f, "subject"), cli_jstr(f, "problem"),
		       cli_jstr(f, "fix"));
}

static void print_diff(json_t *diff, int have_prev)
{
	json_t *c;
	size_t i;

	if (!have_prev) {
		printf("\nDiff: no previous snapshot of this cluster to compare with\n");
		return;
	}
	printf("\nChanges since the previous snapshot: %zu\n", json_array_size(diff));
	json_array_foreach(diff, i, c)
		printf("  %s %s %s: %s\n", cli_jstr(c, "change"), cli_jstr(c, "kind"),
		       cli_jstr(c, "subject"), cli_jstr(c, "detail"));
}

/* Writes the snapshot and one fact per topic risk and per finding, all in
 * one transaction. */
static km_err_t journal_inventory(km_journal_t *jr, const char *args,
				  json_t *inv, const char *scope, int exit_code,
				  int64_t *snap_idp, char *errstr, size_t errstr_size)
{
	json_t *topics = json_object_get(inv, "topics"), *topic, *f;
	int64_t run_id = 0;
	const char *name;
	char subj[400], kind[64];
	km_err_t err;
	size_t i;

	if ((err = km_journal_begin(jr, errstr, errstr_size)))
		return err;
	if ((err = km_journal_run_begin(jr, "inventory", args, &run_id, errstr,
					errstr_size)) ||
	    (err = km_journal_snapshot_put(jr, run_id, "inventory", scope, inv,
					   snap_idp, errstr, errstr_size)))
		goto fail;
	snprintf(kind, sizeof(kind), "inventory.%s.risk", scope);
	json_object_foreach(topics, name, topic) {
		json_t *risk = json_object_get(topic, "risk");
		snprintf(subj, sizeof(subj), "topic:%s", name);
		if (risk && (err = km_journal_fact(jr, run_id, kind, subj, "INFO", risk,
						   errstr, errstr_size)))
			goto fail;
	}
	/* The recognised worker topics, which every later command leaves out
	 * of its scope (src/common.c). */
	snprintf(kind, sizeof(kind), "inventory.%s.connect_internal", scope);
	json_object_foreach(topics, name, topic) {
		json_t *ci = json_object_get(topic, "connect_internal");
		snprintf(subj, sizeof(subj), "topic:%s", name);
		if (ci && (err = km_journal_fact(jr, run_id, kind, subj, "INFO", ci, errstr,
						 errstr_size)))
			goto fail;
	}
	snprintf(kind, sizeof(kind), "inventory.%s.finding", scope);
	json_array_foreach(json_object_get(inv, "findings"), i, f) {
		snprintf(subj, sizeof(subj), "%s: %s",
			 cli_jstr(f, "subject"),
			 cli_jstr(f, "problem"));
		if ((err = km_journal_fact(jr, run_id, kind, subj, "FINDING", f,
					   errstr, errstr_size)))
			goto fail;
	}
	if ((err = km_journal_run_end(jr, run_id, exit_code,
				      exit_code ? "findings" : "clean", errstr,
				      errstr_size)) ||
	    (err = km_journal_commit(jr, errstr, errstr_size)))
		goto fail;
	return KM_ERR_OK;
fail:
	km_journal_rollback(jr);
	return err;
}

int cmd_inventory(cli_t *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTS,
		{"cluster", required_argument, NULL, 'c'},
		{"diff", no_argument, NULL, 'd'},
		{"no-sample", no_argument, NULL, 'N'},
		{"sample", required_argument, NULL, 's'},
		{"sample-partitions", required_argument, NULL, 'S'},
		{"sample-budget", required_argument, NULL, 'B'},
		{NULL, 0, NULL, 0}};
	km_inventory_opts_t iopts;
	km_plan_t *plan;
	km_journal_t *jr;
	json_t *inv = NULL, *prev = NULL, *diff = NULL;
	int c, rc = 0, want_diff = 0;
	int64_t snap_id = 0, v;
	char *args = NULL;
	km_err_t err;

	km_inventory_opts_init(&iopts);
	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "c:", opts, NULL)) != -1) {
		if (cli_common_opt(cli, c))
			continue;
		switch (c) {
		case 'c':
			if (strcmp(optarg, "source") && strcmp(optarg, "target"))
				return cli_usage(cli, "--cluster must be 'source' or "
						 "'target', not '%s'", optarg);
			iopts.scope = optarg;
			break;
		case 'd': want_diff = 1; break;
		case 'N': iopts.sample_records = 0; break;
		case 's':
			if (km_parse_i64(optarg, &v) || v < 0 || v > 100000)
				return cli_usage(cli, "--sample takes a record count "
						 "0..100000, not '%s'", optarg);
			iopts.sample_records = (int)v;
			break;
		case 'S':
			if (km_parse_i64(optarg, &v) || v < 0 || v > 1000000)
				return cli_usage(cli, "--sample-partitions takes a partition "
						 "count 0..1000000 (0 = all), not '%s'",
						 optarg);
			iopts.sample_partitions = (int)v;
			break;
		case 'B':
			if (km_parse_i64(optarg, &v) || v < 1 || v > 3600000)
				return cli_usage(cli, "--sample-budget takes milliseconds "
						 "1..3600000, not '%s'", optarg);
			iopts.sample_timeout_ms = (int)v;
			break;
		default: return cli_usage(cli, "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);

	cli->needs |= strcmp(iopts.scope, "target") ? CLI_NEED_SOURCE : CLI_NEED_TARGET;
	cli->kafka_flags = KM_KAFKA_F_APIVERSIONS;
	if ((rc = cli_ready(cli)))
		return rc;
	plan = cli->plan;
	if ((err = km_inventory_take(cli->ks ? cli->ks : cli->kt, plan, &iopts, &inv, cli->errstr,
				     sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	if ((rc = cli_journal(cli)))
		goto done;
	jr = cli->jr;
	err = km_journal_snapshot_get(jr, "inventory", iopts.scope, 0, &prev,
				      NULL, cli->errstr, sizeof(cli->errstr));
	if (err && err != KM_ERR_NOT_FOUND) {
		rc = cli_fail(cli, err);
		goto done;
	}
	cli->errstr[0] = '\0';
	if (want_diff)
		diff = prev ? km_inventory_diff(prev, inv) : json_array();

	/* Informational findings (a worker's internal topic) ask nothing of
	 * anyone: they do not make the exit code 1. */
	rc = 0;
	{
		json_t *f;
		size_t i;
		json_array_foreach(json_object_get(inv, "findings"), i, f)
			if (!json_is_string(json_object_get(f, "severity")) ||
			    strcmp(cli_jstr(f, "severity"), "info"))
				rc = 1;
	}
	args = cli_args_string(argc, argv);
	if ((err = journal_inventory(jr, args, inv, iopts.scope, rc, &snap_id,
				     cli->errstr, sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}

	if (cli->json) {
		json_t *out = json_pack("{s:O, s:I, s:s}", "inventory", inv,
					"snapshot_id", (json_int_t)snap_id,
					"journal", plan->journal);
		if (diff)
			json_object_set(out, "diff", diff);
		cli_print_json(out);
		json_decref(out);
	} else {
		char *ctrl = int_str(inv, "controller_id");
		printf("Inventory of the %s cluster %s (cluster id %s, controller %s)\n",
		       iopts.scope, cli_jstr(inv, "bootstrap"), cli_jstr(inv, "cluster_id"), ctrl);
		free(ctrl);
		printf("Taken at %s for migration '%s'\n", cli_jstr(inv, "taken_at"),
		       plan->migration);
		print_brokers(inv, cli->verbose);
		print_topics(inv, cli->verbose);
		print_sampling(inv);
		print_acls(inv);
		print_groups(inv);
		print_users_quotas(inv);
		print_declared_findings(inv);
		if (want_diff)
			print_diff(diff, prev != NULL);
		printf("\nSnapshot %lld saved in %s\n", (long long)snap_id,
		       plan->journal);
	}
done:
	free(args);
	json_decref(diff);
	json_decref(prev);
	json_decref(inv);
	return rc;
}
