/*
 * Moving consumer groups on real clusters.  Groups committed mid-partition
 * on a transactional topic (control-record gaps) and on a compacted topic
 * (compaction gaps); after `kmigrate offsets --commit`, a real consumer of
 * the test kit (librdkafka, not kmigrate) joins the target with that group
 * id and must receive, as its first record, exactly the record that follows
 * the last one the group consumed on the source, then the rest in order:
 * zero duplicates, zero skips.  And --commit is refused while the target
 * group has a live member, changing nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tk.h"
#include "util.h"

static tk_cluster_t src, tgt;
static char TXN[64], CMP[64], LIVE[64], CMP2[64], ABT[64], GTXN[64], GCMP[64], GLIVE[64],
	GEND[64], GCMP2[64], GABT[64];
static char *plan;

/* The high watermark of topic[partition] (ListOffsets latest). */
static int64_t hwm(const tk_cluster_t *c, const char *topic, int partition)
{
	rd_kafka_t *rk = tk_admin(c);
	int64_t lo, hi;
	rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi, 10000);
	rd_kafka_destroy(rk);
	if (e)
		fail_msg("watermarks of %s[%d]: %s", topic, partition, rd_kafka_err2str(e));
	return hi;
}

/* Runs `kmigrate offsets -p plan ARGS... --json` and returns its parsed
 * output (owned); *rcp gets the exit status. */
static json_t *offsets_json(int *rcp, const char *a1, const char *a2, const char *a3)
{
	const char *argv[] = {tk_kmigrate(), "offsets", "-p", plan, "--json", a1,
			      a1 ? a2 : NULL, a1 && a2 ? a3 : NULL, NULL};
	char *out, *err;
	*rcp = tk_run(&out, &err, argv);
	json_t *j = tk_json(out);
	free(out);
	free(err);
	return j;
}

static bool has_gap_after(const tk_digests_t *d, size_t k)
{
	return k + 1 < d->n && d->off[k + 1] > d->off[k] + 1;
}

static int setup(void **state)
{
	char key[32], val[64], text[1024];
	int id = (int)getpid();
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_SOURCE");
	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	snprintf(TXN, sizeof(TXN), "o-%d.txn", id);
	snprintf(CMP, sizeof(CMP), "o-%d.compact", id);
	snprintf(LIVE, sizeof(LIVE), "o-%d.live", id);
	snprintf(GTXN, sizeof(GTXN), "g-txn-%d", id);
	snprintf(GCMP, sizeof(GCMP), "g-compact-%d", id);
	snprintf(GLIVE, sizeof(GLIVE), "g-live-%d", id);
	snprintf(GEND, sizeof(GEND), "g-end-%d", id);
	snprintf(CMP2, sizeof(CMP2), "o-%d.compact2", id);
	snprintf(GCMP2, sizeof(GCMP2), "g-compact2-%d", id);
	snprintf(ABT, sizeof(ABT), "o-%d.aborted", id);
	snprintf(GABT, sizeof(GABT), "g-aborted-%d", id);

	/* Transactions: every third aborted. */
	tk_create_topic(&src, TXN, 3, NULL);
	rd_kafka_t *p = tk_producer(&src, "it-offsets-tx");
	for (int t = 0; t < 12; t++) {
		rd_kafka_error_t *e = rd_kafka_begin_transaction(p);
		if (e)
			fail_msg("begin: %s", rd_kafka_error_string(e));
		for (int i = 0; i < 15; i++) {
			snprintf(key, sizeof(key), "t%d-%d", t, i);
			tk_msg_t m = {.key = key, .value = t % 3 == 1 ? "aborted" : "ok",
				      .partition = i % 3};
			tk_produce(p, TXN, &m);
		}
		tk_flush(p);
		e = t % 3 == 1 ? rd_kafka_abort_transaction(p, 30000)
			       : rd_kafka_commit_transaction(p, 30000);
		if (e)
			fail_msg("end txn: %s", rd_kafka_error_string(e));
	}
	rd_kafka_destroy(p);

	/* Compaction with gaps: keep updating until the cleaner ran. */
	const char *cfg[] = {"cleanup.policy", "compact", "segment.ms", "100",
			     "min.cleanable.dirty.ratio", "0.01", "min.compaction.lag.ms", "0", NULL};
	tk_create_topic(&src, CMP, 1, cfg);
	p = tk_producer(&src, NULL);
	int64_t deadline = tk_mono_ms() + 120000;
	for (int round = 0;; round++) {
		for (int i = 0; i < 100; i++) {
			/* One key per round is never updated again: it
			 * survives compaction between holes left by the
			 * hot keys. */
			if (i == 0)
				snprintf(key, sizeof(key), "stable-%d", round);
			else
				snprintf(key, sizeof(key), "key-%d", i % 10);
			snprintf(val, sizeof(val), "r%d-%d", round, i);
			tk_msg_t m = {.key = key, .value = val, .partition = 0};
			tk_produce(p, CMP, &m);
		}
		tk_flush(p);
		tk_digests_t d;
		tk_digest_partition(&src, CMP, 0, true, &d);
		bool gaps = false;
		for (size_t k = 0; k + 1 < d.n && !gaps; k++)
			gaps = has_gap_after(&d, k);
		tk_digests_free(&d);
		if (gaps)
			break;
		if (tk_mono_ms() > deadline)
			fail_msg("the source never compacted %s", CMP);
		poll(NULL, 0, 200);
	}
	/* The gaps exist; stop further compaction so the source stays what
	 * the test reads (a compaction running now finishes first: wait
	 * until two reads agree). */
	tk_set_topic_config(&src, CMP, "cleanup.policy", "delete");
	for (size_t last = (size_t)-1;;) {
		tk_digests_t d;
		tk_digest_partition(&src, CMP, 0, true, &d);
		size_t n = d.n;
		tk_digests_free(&d);
		if (n == last)
			break;
		last = n;
		if (tk_mono_ms() > deadline + 60000)
			fail_msg("%s kept changing after compaction was switched off", CMP);
		poll(NULL, 0, 1000);
	}
	/* A second compacted topic whose configs stay eager, so that the
	 * design gives the target the same eager cleaner (see
	 * test_compacted_target_cleaned). */
	tk_create_topic(&src, CMP2, 1, cfg);
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 100; i++) {
			snprintf(key, sizeof(key), "key-%d", i % 10);
			snprintf(val, sizeof(val), "c2-r%d-%d", round, i);
			tk_msg_t m = {.key = key, .value = val, .partition = 0};
			tk_produce(p, CMP2, &m);
		}
		tk_flush(p);
	}
	/* A topic the replication will abort a transaction on (see
	 * test_aborted_ranges_visible); its group sits mid-log. */
	tk_create_topic(&src, ABT, 1, NULL);
	for (int i = 0; i < 100; i++) {
		snprintf(val, sizeof(val), "a-%d", i);
		tk_msg_t m = {.key = "k", .value = val, .partition = 0};
		tk_produce(p, ABT, &m);
	}
	tk_flush(p);
	tk_commit(&src, GABT, ABT, 0, 50);
	tk_create_topic(&src, LIVE, 1, NULL);
	for (int i = 0; i < 30; i++) {
		tk_msg_t m = {.key = "k", .value = "v", .partition = 0};
		tk_produce(p, LIVE, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);

	char *dir = tk_tmpdir("offsets");
	snprintf(text, sizeof(text),
		 "migration: it-offsets-%d\nsource:\n  bootstrap: %s\ntarget:\n  bootstrap: %s\n"
		 "topics:\n  include: [\"^o-%d\\\\.\"]\n"
		 "consumer_groups:\n  - id: %s\n    restart: translated\n    owner: qa\n"
		 "    chosen_by: test\n",
		 id, src.bootstrap, tgt.bootstrap, id, GTXN);
	plan = tk_write_file(dir, "migration.yaml", text);
	free(dir);
	return 0;
}

/* Commits group at "after the k-th committed record" on each partition and
 * returns the source digests so the test knows what must come next. */
static void commit_mid(const char *group, const char *topic, int partitions, tk_digests_t *d,
		       size_t *ks)
{
	for (int part = 0; part < partitions; part++) {
		tk_digest_partition(&src, topic, part, true, &d[part]);
		size_t k = ks[part];
		assert_true(k < d[part].n);
		tk_commit(&src, group, topic, part, d[part].off[k] + 1);
	}
}

static void assert_resumes_exactly(const char *group, const char *topic, int partitions,
				   const tk_digests_t *src_d, const size_t *ks)
{
	tk_digests_t *got = calloc((size_t)partitions, sizeof(*got));
	tk_group_read(&tgt, group, topic, partitions, got);
	for (int part = 0; part < partitions; part++) {
		size_t want = src_d[part].n - (ks[part] + 1);
		if (got[part].n != want)
			fail_msg("%s %s[%d]: the group read %zu records on the target, %zu remained "
				 "on the source after its commit",
				 group, topic, part, got[part].n, want);
		for (size_t i = 0; i < want; i++)
			if (got[part].d[i] != src_d[part].d[ks[part] + 1 + i])
				fail_msg("%s %s[%d]: record %zu after the resume point differs "
					 "(source offset %lld)",
					 group, topic, part, i,
					 (long long)src_d[part].off[ks[part] + 1 + i]);
		tk_digests_free(&got[part]);
	}
	free(got);
}

static void test_commit_resumes_exactly(void **state)
{
	tk_digests_t dt[3], dc[1];
	size_t kt[3] = {4, 11, 20};
	size_t kc[1] = {0};
	(void)state;

	commit_mid(GTXN, TXN, 3, dt, kt);
	/* On the compacted topic, resume right after a record followed by a
	 * compaction gap. */
	tk_digest_partition(&src, CMP, 0, true, &dc[0]);
	for (size_t k = 0; k + 1 < dc[0].n; k++)
		if (has_gap_after(&dc[0], k)) {
			kc[0] = k;
			break;
		}
	tk_digests_free(&dc[0]);
	commit_mid(GCMP, CMP, 1, dc, kc);
	/* A caught-up group: committed at the source's end, after the last
	 * transaction marker. */
	for (int part = 0; part < 3; part++)
		tk_commit(&src, GEND, TXN, part, hwm(&src, TXN, part));

	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	tk_catch_up(plan, 120000, NULL);

	tk_km(plan, "offsets", NULL, NULL, 0, NULL); /* dry run */
	assert_int_equal(tk_committed(&tgt, GTXN, TXN, 0), -1); /* nothing committed yet */
	tk_km(plan, "offsets", "--commit", NULL, 0, NULL);
	assert_resumes_exactly(GTXN, TXN, 3, dt, kt);
	assert_resumes_exactly(GCMP, CMP, 1, dc, kc);
	/* Re-runnable: a second commit gives the same positions. */
	int64_t before = tk_committed(&tgt, GTXN, TXN, 1);
	tk_km(plan, "offsets", "--commit", NULL, 0, NULL);
	assert_int_equal(tk_committed(&tgt, GTXN, TXN, 1), before);
	/* The caught-up group sits at the target's end, past the final
	 * transaction marker: lag 0, not 1. */
	for (int part = 0; part < 3; part++) {
		int64_t got = tk_committed(&tgt, GEND, TXN, part), end = hwm(&tgt, TXN, part);
		if (got != end)
			fail_msg("caught-up group %s on %s[%d]: committed %lld on the target, its end is "
				 "%lld (lag %lld)",
				 GEND, TXN, part, (long long)got, (long long)end,
				 (long long)(end - got));
	}
	for (int i = 0; i < 3; i++)
		tk_digests_free(&dt[i]);
	tk_digests_free(&dc[0]);
}

static void test_commit_refused_with_live_member(void **state)
{
	char *err;
	(void)state;
	tk_commit(&src, GLIVE, LIVE, 0, 10);
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, "--until-caught-up", NULL};
	char *out, *e2;
	assert_int_equal(tk_run(&out, &e2, argv), 0);
	free(out);
	free(e2);
	pid_t member = tk_member_start(&tgt, GLIVE, LIVE, "live-consumer");
	const char *cargv[] = {tk_kmigrate(), "offsets", "-p", plan, "--commit", "--group", GLIVE,
			       NULL};
	int rc = tk_run(&out, &err, cargv);
	tk_member_stop(member);
	free(out);
	assert_int_equal(rc, 1);
	if (!strstr(err, "active member") || !strstr(err, GLIVE))
		fail_msg("want a refusal naming the active member, got: %s", err);
	free(err);
	/* Nothing changed on the target group. */
	assert_int_equal(tk_committed(&tgt, GLIVE, LIVE, 0), -1);
}

/* `offsets --group G` translates, proves and prints G alone. */
static void test_group_limits_output(void **state)
{
	int rc;
	(void)state;
	json_t *j = offsets_json(&rc, "--group", GTXN, NULL);
	json_t *groups = json_object_get(j, "groups"), *g;
	size_t i;
	assert_true(json_array_size(groups) >= 1);
	json_array_foreach(groups, i, g)
		if (strcmp(json_string_value(json_object_get(g, "group")), GTXN))
			fail_msg("offsets --group %s printed group %s too", GTXN,
				 json_string_value(json_object_get(g, "group")));
	assert_int_equal(rc, 0);
	json_decref(j);
	/* A group that does not exist is named, not an empty success. */
	j = offsets_json(&rc, "--group", "no-such-group", NULL);
	assert_int_not_equal(rc, 0);
	json_decref(j);
}

static bool has_digest(const tk_digests_t *d, uint64_t x)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->d[i] == x)
			return true;
	return false;
}

/* The target compacts as eagerly as the source (the design copies
 * segment.ms and min.cleanable.dirty.ratio), so its cleaner removes the
 * copy of the record a group resumes at while the source still holds it.
 * The translation is still right and must be proven with the first record
 * that survives on both sides. */
static void test_compacted_target_cleaned(void **state)
{
	tk_digests_t ds, dt, got;
	(void)state;
	/* The source stops compacting so that it keeps the record at c
	 * (a hot key, superseded later) while the target cleans its copy. */
	tk_set_topic_config(&src, CMP2, "cleanup.policy", "delete");
	int64_t deadline = tk_mono_ms() + 180000;
	for (size_t last = (size_t)-1;;) {
		tk_digest_partition(&src, CMP2, 0, true, &ds);
		size_t n = ds.n;
		if (n == last)
			break;
		tk_digests_free(&ds);
		last = n;
		if (tk_mono_ms() > deadline)
			fail_msg("%s kept changing after compaction was switched off", CMP2);
		poll(NULL, 0, 1000);
	}
	/* c: a record of a hot key with a later update of the same key
	 * (value round r, index i: key i % 10 recurs 10 offsets later). */
	size_t k = ds.n;
	for (size_t i = ds.n; i-- > 0;)
		if (ds.off[i] % 100 != 0 && i + 12 < ds.n && ds.off[i + 10] == ds.off[i] + 10) {
			k = i;
			break;
		}
	assert_true(k < ds.n);
	uint64_t dc = ds.d[k];
	tk_commit(&src, GCMP2, CMP2, 0, ds.off[k]);
	tk_digests_free(&ds);
	/* The target's cleaner needs later writes to roll its segment: feed
	 * updates through the replication until the copy of c is gone. */
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int round = 0;; round++) {
		tk_catch_up(plan, 120000, NULL);
		tk_digest_partition(&tgt, CMP2, 0, true, &dt);
		bool gone = dt.n > 0 && !has_digest(&dt, dc);
		tk_digests_free(&dt);
		if (gone)
			break;
		if (tk_mono_ms() > deadline)
			fail_msg("the target's cleaner never removed the copy of the record at c on %s",
				 CMP2);
		for (int i = 0; i < 20; i++) {
			char key[32], val[64];
			snprintf(key, sizeof(key), "key-%d", i % 10);
			snprintf(val, sizeof(val), "c2-feed%d-%d", round, i);
			tk_msg_t m = {.key = key, .value = val, .partition = 0};
			tk_produce(p, CMP2, &m);
		}
		tk_flush(p);
		poll(NULL, 0, 500);
	}
	rd_kafka_destroy(p);
	tk_catch_up(plan, 120000, NULL);

	int rc;
	json_t *j = offsets_json(&rc, "--commit", "--group", GCMP2);
	json_t *row = json_array_get(json_object_get(json_array_get(json_object_get(j, "groups"), 0),
						     "partitions"), 0);
	if (rc != 0)
		fail_msg("offsets --commit refused %s after the target's cleaner ran: %s", GCMP2,
			 json_dumps(j, JSON_COMPACT));
	assert_string_equal(json_string_value(json_object_get(row, "status")), "translated");
	json_decref(j);
	/* What the group reads on the target: records of the source from c
	 * on, in order, none before c, ending with the source's last. */
	tk_digest_partition(&src, CMP2, 0, true, &ds);
	tk_group_read(&tgt, GCMP2, CMP2, 1, &got);
	size_t from = 0;
	while (from < ds.n && ds.d[from] != dc)
		from++;
	assert_true(from < ds.n);
	assert_true(got.n > 0);
	size_t s = from;
	for (size_t i = 0; i < got.n; i++) {
		while (s < ds.n && ds.d[s] != got.d[i])
			s++;
		if (s == ds.n)
			fail_msg("%s: record %zu the group read on the target (offset %lld) is not a "
				 "source record at or after c, in order",
				 GCMP2, i, (long long)got.off[i]);
		s++;
	}
	assert_true(got.d[got.n - 1] == ds.d[ds.n - 1]);
	tk_digests_free(&ds);
	tk_digests_free(&got);
}

/* A replicator killed mid-transaction leaves an aborted transaction on the
 * target, after the group's position: read_uncommitted consumers (Java's
 * default) will receive its records.  offsets says so per partition, and
 * a group whose consumers declare no isolation level is a finding; one
 * declared read_committed is not. */
static void test_aborted_ranges_visible(void **state)
{
	char val[64], *dir, *plan2, *text;
	int rc;
	(void)state;
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < 20000; i++) {
		snprintf(val, sizeof(val), "b-%d", i);
		tk_msg_t m = {.key = "k", .value = val, .partition = 0};
		tk_produce(p, ABT, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	/* Transactions of up to 60 s: killed once records of an open one are
	 * on the target, the next replicator's fencing aborts it. */
	char *log = km_asprintf("%s.abort.log", plan);
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, "--txn-records", "1000000",
			      "--txn-ms", "60000", NULL};
	pid_t pid = tk_spawn(argv, log);
	int64_t deadline = tk_mono_ms() + 120000;
	for (;;) {
		tk_digests_t du, dc;
		tk_digest_partition(&tgt, ABT, 0, false, &du);
		tk_digest_partition(&tgt, ABT, 0, true, &dc);
		bool open = du.n > dc.n;
		tk_digests_free(&du);
		tk_digests_free(&dc);
		if (open)
			break;
		int st;
		if (tk_mono_ms() > deadline || waitpid(pid, &st, WNOHANG) == pid)
			fail_msg("no open transaction of the replicator on %s (log %s)", ABT, log);
		poll(NULL, 0, 200);
	}
	kill(pid, SIGKILL);
	assert_int_equal(tk_wait_exit(pid, 10000), 128 + SIGKILL);
	free(log);
	tk_catch_up(plan, 120000, NULL);

	json_t *j = offsets_json(&rc, "--group", GABT, NULL);
	json_t *g = json_array_get(json_object_get(j, "groups"), 0);
	json_t *aa = json_object_get(json_array_get(json_object_get(g, "partitions"), 0),
				     "aborted_after");
	if (json_integer_value(json_object_get(aa, "ranges")) < 1)
		fail_msg("offsets shows no aborted range after %s's position: %s", GABT,
			 json_dumps(g, JSON_COMPACT));
	assert_true(json_is_string(json_object_get(g, "finding")));
	assert_string_equal(json_string_value(json_object_get(g, "isolation_level")), "undeclared");
	json_t *f = json_array_get(json_object_get(j, "findings"), 0);
	assert_non_null(f);
	assert_string_equal(json_string_value(json_object_get(f, "group")), GABT);
	assert_string_equal(json_string_value(json_object_get(f, "kind")), "aborted-records-exposed");
	json_decref(j);

	/* Declared read_committed: still shown, no finding. */
	text = tk_read_file(plan, NULL);
	dir = tk_tmpdir("offsets-rc");
	char *t2 = km_asprintf("%sconsumers:\n  - name: abt-reader\n    group: %s\n"
			       "    isolation_level: read_committed\n",
			       text, GABT);
	plan2 = tk_write_file(dir, "migration.yaml", t2);
	const char *argv2[] = {tk_kmigrate(), "offsets", "-p", plan2, "--json", "--group", GABT, NULL};
	char *out, *err;
	assert_int_equal(tk_run(&out, &err, argv2), 0);
	j = tk_json(out);
	g = json_array_get(json_object_get(j, "groups"), 0);
	assert_string_equal(json_string_value(json_object_get(g, "isolation_level")),
			    "read_committed");
	assert_true(json_is_null(json_object_get(g, "finding")));
	assert_int_equal(json_array_size(json_object_get(j, "findings")), 0);
	assert_true(json_integer_value(json_object_get(g, "aborted_exposed_partitions")) >= 1);
	json_decref(j);
	free(out);
	free(err);
	free(t2);
	free(text);
	free(plan2);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commit_resumes_exactly),
		cmocka_unit_test(test_group_limits_output),
		cmocka_unit_test(test_compacted_target_cleaned),
		cmocka_unit_test(test_aborted_ranges_visible),
		cmocka_unit_test(test_commit_refused_with_live_member),
	};
	/* TK_ONLY=glob runs a subset, e.g. while working on one. */
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, setup, NULL);
}
