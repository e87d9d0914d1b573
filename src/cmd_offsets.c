/*
 * cmd_offsets.c -- `kmigrate offsets`: move consumer groups to the target.
 *
 *   kmigrate offsets -p PLAN            dry run: the translation table, each
 *                                       translated position proven by reading
 *   kmigrate offsets -p PLAN --commit   also commit it to the target groups
 *                                       (refused while a group has members)
 *   kmigrate offsets map -p PLAN --topic T --partition P [--reverse]
 *                                       the exact offset map (debug view)
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "offmap.h"
#include "offsets.h"
#include "mapstore.h"

/* `kmigrate offsets map --topic T --partition P`: the exact offset map of a
 * source partition, one line per run.  --reverse: the reverse copy's map
 * (lib/replicate.h), read from the source, of TARGET topic T: a target
 * offset written after the switch -> the source offset it was copied to. */
static int offsets_map(cli_t *cli, int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_OPTS,
					     {"topic", required_argument, NULL, 't'},
					     {"partition", required_argument, NULL, 'P'},
					     {"reverse", no_argument, NULL, 'r'},
					     {NULL, 0, NULL, 0}};
	int reverse = 0;
	const char *topic = NULL;
	int64_t partition = -1;
	km_mapstore_t *ms = NULL;
	const km_offmap_t *mp;
	km_err_t err;
	int c, rc = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "t:", opts, NULL)) != -1) {
		if (cli_common_opt(cli, c))
			continue;
		if (c == 't')
			topic = optarg;
		else if (c == 'r')
			reverse = 1;
		else if (c == 'P' && !km_parse_i64(optarg, &partition) && partition >= 0)
			;
		else
			return cli_usage(cli, "bad option");
	}
	if (!topic || partition < 0)
		return cli_usage(cli, "--topic and --partition are required");
	/* The map is read from the target alone: no journal, no source. */
	cli->needs = CLI_NEED_PLAN | CLI_NEED_ENDPOINTS;
	if ((rc = cli_ready(cli)))
		return rc;
	if ((err = km_mapstore_open(cli->plan->migration, reverse ? "reverse" : NULL,
				    reverse ? &cli->src : &cli->tgt, &ms, cli->errstr,
				    sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	mp = km_mapstore_offmap(ms, topic, (int)partition);
	if (cli->json) {
		json_t *runs = json_array();
		for (size_t i = 0; i < mp->cnt; i++)
			json_array_append_new(runs, json_pack("{s:I, s:I, s:I}", "src_first",
							      (json_int_t)mp->runs[i].src_first, "tgt_first",
							      (json_int_t)mp->runs[i].tgt_first, "count",
							      (json_int_t)mp->runs[i].count));
		json_t *out = json_pack("{s:s, s:I, s:I, s:o, s:s}", "topic", topic, "partition",
					(json_int_t)partition, "records",
					(json_int_t)km_offmap_records(mp), "runs", runs,
					"direction", reverse ? "reverse" : "forward");
		cli_print_json(out);
		json_decref(out);
	} else {
		printf("%s offset map of '%s'[%lld]: %zu runs, %lld records\n",
		       reverse ? "Reverse" : "Offset", topic, (long long)partition, mp->cnt,
		       (long long)km_offmap_records(mp));
		table_t *t = reverse ? table_new(4, "TARGET", "SOURCE", "COUNT", "TARGET LAST")
				     : table_new(4, "SOURCE", "TARGET", "COUNT", "SOURCE LAST");
		for (size_t i = 0; i < mp->cnt; i++) {
			char a[32], b[32], n[32], l[32];
			snprintf(a, sizeof(a), "%lld", (long long)mp->runs[i].src_first);
			snprintf(b, sizeof(b), "%lld", (long long)mp->runs[i].tgt_first);
			snprintf(n, sizeof(n), "%lld", (long long)mp->runs[i].count);
			snprintf(l, sizeof(l), "%lld",
				 (long long)(mp->runs[i].src_first + mp->runs[i].count - 1));
			table_row(t, a, b, n, l);
		}
		table_print(t, stdout, "  ");
		table_destroy(t);
	}
done:
	km_mapstore_destroy(ms);
	return rc;
}

static void print_table(const json_t *groups, int committed)
{
	json_t *g, *r;
	size_t i, j;

	json_array_foreach(groups, i, g) {
		printf("\nGroup %s  policy=%s (chosen by %s)  owner=%s%s\n", cli_jstr(g, "group"),
		       cli_jstr(g, "policy"), cli_jstr(g, "chosen_by"),
		       json_is_string(json_object_get(g, "owner")) ? cli_jstr(g, "owner") : "NONE",
		       cli_jbool(g, "translatable") ? "" : "  NOT READY");
		table_t *t = table_new(8, "TOPIC", "PARTITION", "SOURCE COMMITTED", "TARGET",
				       "TARGET OFFSET", "STATUS", "ABORTED AFTER", "PROOF");
		json_array_foreach(json_object_get(g, "partitions"), j, r) {
			char part[16], c[32], to[32], proof[400], ab[64];
			json_t *aa = json_object_get(r, "aborted_after");
			json_t *pr = json_object_get(r, "proof");
			snprintf(part, sizeof(part), "%lld",
				 cli_jint(r, "partition"));
			snprintf(c, sizeof(c), "%lld",
				 cli_jint(r, "committed"));
			if (json_is_integer(json_object_get(r, "target_offset")))
				snprintf(to, sizeof(to), "%lld",
					 cli_jint(r, "target_offset"));
			else
				snprintf(to, sizeof(to), "-");
			if (!strcmp(cli_jstr(r, "status"), "not-yet"))
				snprintf(proof, sizeof(proof), "not yet translatable (lag %lld)",
					 cli_jint(r, "lag"));
			else if (!pr)
				snprintf(proof, sizeof(proof), "restart policy");
			else if (!strcmp(cli_jstr(pr, "kind"), "end-of-log"))
				snprintf(proof, sizeof(proof), "%s on both sides",
					 cli_jbool(pr, "match") ? "end of log"
										     : "MISMATCH at end");
			else
				snprintf(proof, sizeof(proof), "%s%s: source @%lld = target @%lld (%s)%s%s",
					 cli_jbool(pr, "match") ? "read" : "MISMATCH",
					 !strcmp(cli_jstr(pr, "kind"), "first-common-survivor")
						 ? " first record surviving compaction on both sides"
						 : "",
					 cli_jint(pr, "source_offset"),
					 cli_jint(pr, "target_offset"),
					 cli_jstr(pr, "source_digest"),
					 json_object_get(pr, "reason") ? ": " : "",
					 json_object_get(pr, "reason") ? cli_jstr(pr, "reason") : "");
			/* kmigrate's aborted transactions a read_uncommitted
			 * consumer would receive after this position. */
			if (!aa)
				snprintf(ab, sizeof(ab), "-");
			else if (!cli_jint(aa, "ranges"))
				snprintf(ab, sizeof(ab), "none");
			else
				snprintf(ab, sizeof(ab), "%lld%s range(s) from @%lld",
					 cli_jint(aa, "ranges"),
					 cli_jbool(aa, "more") ? "+" : "",
					 cli_jint(aa, "first_offset"));
			table_row(t, cli_jstr(r, "topic"), part, c, cli_jstr(r, "target_topic"), to,
				  cli_jstr(r, "status"), ab, proof);
		}
		table_print(t, stdout, "  ");
		table_destroy(t);
		json_array_foreach(json_object_get(g, "cut_over"), j, r) {
			char when[40];
			km_iso8601(cli_jint(r, "at"), when, sizeof(when));
			printf("  CUT OVER: topic '%s' (wave '%s', %s): the group consumes on the "
			       "target now; --commit refuses this group\n",
			       cli_jstr(r, "topic"), cli_jstr(r, "wave"), when);
		}
		if (json_is_string(json_object_get(g, "finding")))
			printf("  FINDING: group %s: %s\n", cli_jstr(g, "group"), cli_jstr(g, "finding"));
	}
	if (!committed)
		printf("\nDry run: nothing committed (use --commit).\n");
}

/* Progress on long work, on stderr (never in --json's document): shown
 * once the proof has run 2 s, at most twice a second. */
typedef struct progress_state_s {
	int64_t start, last;
	bool shown;
} progress_state_t;

static void progress_cb(void *opaque, const char *what, size_t done, size_t total)
{
	progress_state_t *pst = opaque;
	int64_t now = km_mono_ms();

	if (now - pst->start < 2000 || now - pst->last < 500)
		return;
	pst->last = now;
	pst->shown = true;
	fprintf(stderr, "\rkmigrate offsets: %s: %zu/%zu reads", what, done, total);
	fflush(stderr);
}

/* Marks each group's rows whose topic's write authority is the target
 * (its wave is cut over: lib/mapstore.h, the target's authority topic):
 * row "cut_over": {wave, at}, and the group's "cut_over" list, one entry
 * per topic.  Read from the target, never from this host's journal: a
 * cutover run on another host counts the same. */
static km_err_t mark_cut_over(const km_plan_t *plan, km_kafka_t *kt, json_t *groups, char *errstr,
			      size_t errstr_size)
{
	char topic[KM_MAPSTORE_NAME_MAX];
	json_t *recs = NULL, *g, *r;
	km_err_t err;
	size_t i, j;

	km_mapstore_authority_topic(plan->migration, topic, sizeof(topic));
	err = km_mapstore_read_authority(km_kafka_endpoint(kt), topic, &recs, errstr, errstr_size);
	if (err == KM_ERR_NOT_FOUND) /* no cutover yet: every authority is the source */
		return KM_ERR_OK;
	if (err)
		return err;
	json_array_foreach(groups, i, g) {
		json_t *list = json_array();
		json_array_foreach(json_object_get(g, "partitions"), j, r) {
			const char *t = json_string_value(json_object_get(r, "topic"));
			const json_t *a = km_mapstore_authority_target(recs, t);
			json_t *e;
			size_t k;
			bool seen = false;
			if (!a)
				continue;
			json_object_set_new(r, "cut_over",
					    json_pack("{s:O, s:O}", "wave", json_object_get(a, "wave"),
						      "at", json_object_get(a, "at")));
			json_array_foreach(list, k, e)
				seen |= !strcmp(json_string_value(json_object_get(e, "topic")), t);
			if (!seen)
				json_array_append_new(
					list, json_pack("{s:s, s:O, s:O}", "topic", t, "wave",
							json_object_get(a, "wave"), "at",
							json_object_get(a, "at")));
		}
		if (json_array_size(list))
			json_object_set(g, "cut_over", list);
		json_decref(list);
	}
	json_decref(recs);
	return KM_ERR_OK;
}

int cmd_offsets(cli_t *cli, int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_OPTS,
					     {"commit", no_argument, NULL, 'C'},
					     {"group", required_argument, NULL, 'g'},
					     {NULL, 0, NULL, 0}};
	km_plan_t *plan;
	km_kafka_t *ks, *kt;
	km_journal_t *jr = NULL;
	json_t *groups = NULL, *g, *r;
	int c, rc = 0, commit = 0, refused = 0, not_ready = 0;
	const char *only = NULL;
	km_offsets_opts_t oopts = {0};
	progress_state_t pst = {0};
	int64_t run_id = 0;
	char *args = NULL;
	km_err_t err;
	size_t i, j;

	if (argc >= 2 && !strcmp(argv[1], "map"))
		return offsets_map(cli, argc - 1, argv + 1);
	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "g:", opts, NULL)) != -1) {
		if (cli_common_opt(cli, c))
			continue;
		if (c == 'C')
			commit = 1;
		else if (c == 'g')
			only = optarg;
		else
			return cli_usage(cli, "unknown option");
	}
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
	if ((rc = cli_ready(cli)))
		return rc;
	plan = cli->plan;
	ks = cli->ks;
	kt = cli->kt;
	oopts.only = only;
	oopts.progress_cb = progress_cb;
	oopts.opaque = &pst;
	pst.start = km_mono_ms();
	err = km_offsets_translate(plan, ks, kt, &oopts, &groups, cli->errstr, sizeof(cli->errstr));
	if (pst.shown)
		fputc('\n', stderr);
	/* Before anything is committed or journaled: a group is refused
	 * whole when any topic it would commit is cut over. */
	if (!err)
		err = mark_cut_over(plan, kt, groups, cli->errstr, sizeof(cli->errstr));
	if (err) {
		rc = cli_fail(cli, err);
		goto done;
	}
	if ((rc = cli_journal(cli)))
		goto done;
	jr = cli->jr;
	args = cli_args_string(argc, argv);
	if ((err = km_journal_begin(jr, cli->errstr, sizeof(cli->errstr))) ||
	    (err = km_journal_run_begin(jr, "offsets", args, &run_id, cli->errstr,
					sizeof(cli->errstr)))) {
		rc = cli_fail(cli, err);
		goto done;
	}
	/* The proof of every translated position is evidence. */
	json_array_foreach(groups, i, g) {
		json_array_foreach(json_object_get(g, "partitions"), j, r) {
			char subj[600];
			const char *st = cli_jstr(r, "status");
			snprintf(subj, sizeof(subj), "group:%s %s[%lld]", cli_jstr(g, "group"), cli_jstr(r, "topic"),
				 cli_jint(r, "partition"));
			json_t *body = json_deep_copy(r);
			json_object_set_new(body, "policy", json_string(cli_jstr(g, "policy")));
			json_object_set_new(body, "chosen_by", json_string(cli_jstr(g, "chosen_by")));
			err = km_journal_fact(jr, run_id, "offsets.translate", subj,
					      !strcmp(st, "translated") || !strcmp(st, "policy") ? "GO"
												: "NO-GO",
					      body, cli->errstr, sizeof(cli->errstr));
			json_decref(body);
			if (err)
				break;
		}
		if (!cli_jbool(g, "translatable"))
			not_ready++;
	}
	if (!err && (err = km_journal_commit(jr, cli->errstr, sizeof(cli->errstr))))
		km_journal_rollback(jr);
	if (err) {
		rc = cli_fail(cli, err);
		goto done;
	}
	if (!cli->json)
		print_table(groups, commit);
	if (commit) {
		json_array_foreach(groups, i, g) {
			char subj[300], cerr[1024];
			json_t *co = json_array_get(json_object_get(g, "cut_over"), 0);
			snprintf(subj, sizeof(subj), "group:%s", cli_jstr(g, "group"));
			if (co) {
				/* Its wave is cut over: the group consumes on the
				 * target now, and committing the translation of its
				 * old source position would rewind it. */
				char when[40];
				km_iso8601(cli_jint(co, "at"), when, sizeof(when));
				snprintf(cerr, sizeof(cerr),
					 "group '%s' not committed: topic '%s' is cut over to the "
					 "target (wave '%s', %s), so the group consumes there now "
					 "and a translated commit would rewind it; nothing committed",
					 cli_jstr(g, "group"), cli_jstr(co, "topic"),
					 cli_jstr(co, "wave"), when);
				err = KM_ERR_NOGO;
			} else
				err = km_offsets_commit(kt, g, cerr, sizeof(cerr));
			json_object_set_new(g, "committed", json_boolean(!err));
			if (err) {
				refused++;
				json_object_set_new(g, "refused", json_string(cerr));
				fprintf(stderr, "kmigrate offsets: %s\n", cerr);
			} else if (!cli->json) {
				printf("Committed group '%s' on the target.\n", cli_jstr(g, "group"));
			}
			km_journal_fact(jr, run_id, "offsets.commit", subj, err ? "NO-GO" : "GO", g,
					cerr, sizeof(cerr));
		}
	}
	if (cli->json) {
		/* The findings again at the top, so a gate reads one list. */
		json_t *findings = json_array();
		json_array_foreach(groups, i, g)
			if (json_is_string(json_object_get(g, "finding")))
				json_array_append_new(
					findings,
					json_pack("{s:s, s:s, s:s, s:O, s:O}", "kind",
						  "aborted-records-exposed", "group", cli_jstr(g, "group"),
						  "isolation_level", cli_jstr(g, "isolation_level"), "partitions",
						  json_object_get(g, "aborted_exposed_partitions"), "message",
						  json_object_get(g, "finding")));
		json_t *out = json_pack("{s:O, s:b, s:o}", "groups", groups, "committed", commit,
					"findings", findings);
		cli_print_json(out);
		json_decref(out);
	}
	rc = refused || not_ready ? 1 : 0;
	km_journal_run_end(jr, run_id, rc, refused ? "refused" : not_ready ? "not ready" : "ok",
			   cli->errstr, sizeof(cli->errstr));
done:
	free(args);
	json_decref(groups);
	return rc;
}
