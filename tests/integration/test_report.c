/*
 * test_report.c -- `kmigrate report` (the journal as one self-contained HTML
 * page) and `status`'s one-screen summary, on real clusters, checked in a
 * real browser.
 *
 * Source: the `plain` cluster (Kafka 4.3, no authorizer: the config fence);
 * target: the 4.3 target.  One migration for the file, run in setup through
 * the steps the demo runs: inventory, plan, apply, check, replicate
 * --until-caught-up, validate, offsets, gate, cutover of wave canary, and the
 * gate of wave rest.  A topic rule's owner holds markup (`<script>`, `&`),
 * and a fact of a kind no section knows ("monitor.trigger", as the monitor
 * will journal) is added with markup in its subject and body: the page must
 * show both as text.
 *
 * Cases: the report's own account (sections, gates, charts, offsets) and
 * its static HTML (no script, no URL, values escaped); the page in headless
 * Chromium through the DevTools protocol (tests/tools/cdp_check.py): no
 * network request, no console error, and from the DOM every gate verdict of
 * the journal, both charts with their points and the offset table with one
 * row per translated partition, plus a screenshot (KM_UPDATE_DOCS=1 copies
 * it to docs/report.png); the same checker catches a page that does fetch
 * and log an error (so its silence means something); the journal alone,
 * copied elsewhere, renders without the plan; bad input is one line and
 * exit 2/3 with nothing written; `status --json` carries the summary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "tk.h"
#include "util.h"

#define OWNER_MARKUP "qa <script>alert(1)</script> & co"
#define OWNER_ESCAPED "qa &lt;script&gt;alert(1)&lt;/script&gt; &amp; co"
#define INJECTED "<img src=x onerror=alert(1)>"

static tk_cluster_t src, tgt;
static char A[64], B[64], G[64];
static char *plan, *dir, *journal, *html;
static pid_t checker = -1;
static char *pgid_file;

static char *write_plan(void)
{
	char *text = km_asprintf(
		"migration: it-report-%d\n"
		"source:\n  bootstrap: %s\n  owner: platform\n"
		"target:\n  bootstrap: %s\n  owner: platform\n"
		"topics:\n  include: [\"^%s$\", \"^%s$\"]\n"
		"  rules:\n    - {match: \".*\", owner: \"" OWNER_MARKUP "\"}\n"
		"consumer_groups:\n  - {id: %s, restart: translated, owner: team-a, chosen_by: qa}\n"
		"consumers:\n  - {name: reader-a, group: %s, isolation_level: read_committed, "
		"owner: team-a, validation: \"reads on the target\", client: librdkafka, "
		"client_version: 2.8.0}\n"
		"gates:\n  max_lag_records: 1000000\n"
		"cutover:\n  fence: config\n  fence_owner: platform\n  quiet_period: 1s\n"
		"  waves:\n"
		"    - {name: canary, topics: [%s], groups: [%s], consumers: [reader-a], "
		"owner: team-a}\n"
		"    - {name: rest, all: true, owner: team-b}\n",
		(int)getpid(), src.bootstrap, tgt.bootstrap, A, B, G, G, A, G);
	char *p = tk_write_file(dir, "migration.yaml", text);
	free(text);
	return p;
}

/* A fact of a kind the report has no section for, as a newer command
 * (the monitor) would journal it: markup in the subject and the body. */
static void journal_unknown_kind(void)
{
	km_journal_t *jr;
	int64_t run;
	char e[512];
	json_t *body = json_pack("{s:s, s:f}", "value", INJECTED, "threshold", 10.0);

	assert_int_equal(km_journal_open(journal, 0, &jr, e, sizeof(e)), 0);
	assert_int_equal(km_journal_run_begin(jr, "monitor", "monitor -p plan", &run, e, sizeof(e)),
			 0);
	assert_int_equal(km_journal_fact(jr, run, "monitor.trigger", "trigger:lag <b>x</b>", "NO-GO",
					 body, e, sizeof(e)),
			 0);
	assert_int_equal(km_journal_run_end(jr, run, 0, "fired", e, sizeof(e)), 0);
	km_journal_close(jr);
	json_decref(body);
}

static int setup(void **state)
{
	int id = (int)getpid();
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_PLAIN");
	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	snprintf(A, sizeof(A), "rp-%d.a", id);
	snprintf(B, sizeof(B), "rp-%d.b", id);
	snprintf(G, sizeof(G), "g-report-%d", id);
	tk_create_topic(&src, A, 2, NULL);
	tk_create_topic(&src, B, 1, NULL);
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < 200; i++) {
		tk_msg_t m = {.key = "k", .value = "seed", .partition = i % 2};
		tk_produce(p, A, &m);
		m.partition = 0;
		if (i < 50)
			tk_produce(p, B, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	tk_commit(&src, G, A, 0, 5);
	tk_commit(&src, G, A, 1, 7);
	dir = tk_tmpdir("report");
	journal = km_asprintf("%s/kmigrate.db", dir);
	html = km_asprintf("%s/report.html", dir);
	pgid_file = km_asprintf("%s/chromium.pgid", dir);
	plan = write_plan();
	/* The demo's steps: everything before a cutover, a gate, a wave's
	 * cutover (no writer after the catch-up: the drain is immediate),
	 * and the next wave's gate. */
	tk_ready_for_cutover(plan);
	tk_km(plan, "gate", "cutover", "--wave=canary", 0, NULL);
	tk_km(plan, "cutover", "--wave", "canary", 0, NULL);
	const char *argv[] = {tk_kmigrate(), "gate", "-p", plan, "cutover", "--wave", "rest", NULL};
	int rc = tk_run(NULL, NULL, argv);
	assert_true(rc == 0 || rc == 1); /* a verdict either way */
	journal_unknown_kind();
	return 0;
}

/* Chromium runs in its own process group (cdp_check.py writes it): killed
 * here whatever the cases did. */
static int teardown(void **state)
{
	char *t = tk_read_file(pgid_file, NULL);
	(void)state;
	if (checker > 0) {
		kill(checker, SIGKILL);
		tk_wait_exit(checker, 5000);
	}
	if (t) {
		long pg = strtol(t, NULL, 10);
		if (pg > 1)
			kill((pid_t)-pg, SIGKILL);
		free(t);
	}
	return 0;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* The journal's gate verdicts: every gate.* fact and every cutover gate
 * step. */
static int journal_gates(void)
{
	return tk_journal_count(journal, "gate.compat", "") +
	       tk_journal_count(journal, "gate.validate", "") +
	       tk_journal_count(journal, "gate.cutover", "") +
	       tk_journal_count(journal, "cutover.step", "wave:canary step:gate");
}

static json_t *report_json(const char *out, const char *j)
{
	char *o = NULL;
	const char *argv[] = {tk_kmigrate(), "report", "-o", out, "--json", j ? "--journal" : "-p",
			      j ? j : plan, NULL};
	int rc = tk_run(&o, NULL, argv);
	assert_int_equal(rc, 0);
	json_t *info = tk_json(o);
	free(o);
	return info;
}

static void test_report_written(void **state)
{
	(void)state;
	json_t *info = report_json(html, NULL), *c;
	size_t i;
	static const char *const ids[] = {"summary", "plan",	 "inventory", "design",
					  "gates",   "replication", "validation", "offsets",
					  "cutover", "findings", "other",	 "runs",
					  "connectors", NULL};

	for (int k = 0; ids[k]; k++) {
		bool found = false;
		json_array_foreach(json_object_get(info, "sections"), i, c)
			found = found || !strcmp(json_string_value(c), ids[k]);
		if (!found)
			fail_msg("section '%s' missing from the report", ids[k]);
	}
	assert_int_equal(json_integer_value(json_object_get(info, "gates")), journal_gates());
	assert_int_equal(json_array_size(json_object_get(info, "charts")), 2);
	json_array_foreach(json_object_get(info, "charts"), i, c)
		assert_true(json_integer_value(json_object_get(c, "points")) >= 1);
	assert_true(json_integer_value(json_object_get(info, "progress_samples")) >= 1);
	assert_int_equal(json_integer_value(json_object_get(info, "offsets")),
			 tk_journal_count(journal, "offsets.translate", "group:"));
	assert_string_equal(json_string_value(json_object_get(info, "plan_from")), "journal");
	assert_string_equal(json_string_value(json_array_get(json_object_get(info, "other_kinds"), 0)),
			    "monitor.trigger");
	json_decref(info);

	/* The file itself: nothing to fetch, nothing to run, markup as text. */
	char *h = tk_read_file(html, NULL);
	assert_non_null(h);
	assert_int_equal(count(h, "<script"), 0);
	assert_int_equal(count(h, "http:"), 0);
	assert_int_equal(count(h, "https:"), 0);
	assert_int_equal(count(h, "src=\""), 0); /* an attribute; the journal's text is escaped */
	assert_int_equal(count(h, "href=\"//"), 0);
	assert_int_equal(count(h, "<img"), 0);
	assert_true(count(h, OWNER_ESCAPED) >= 1);
	assert_true(count(h, "trigger:lag &lt;b&gt;x&lt;/b&gt;") >= 1);
	assert_true(count(h, "Content-Security-Policy") == 1);
	free(h);
}

/* Runs the DevTools checker on page; @returns its result (owned). */
static json_t *check_in_chromium(const char *page, const char *shot)
{
	char here[4096], script[4200], *out = km_asprintf("%s.cdp.json", page);
	char *log = km_asprintf("%s.cdp.log", page);
	const char *which[] = {"/bin/sh", "-c", "command -v chromium", NULL};

	if (tk_run(NULL, NULL, which) != 0)
		fail_msg("chromium is not installed: run scripts/bootstrap.sh (Debian package "
			 "'chromium')");
	snprintf(here, sizeof(here), "%s", __FILE__);
	snprintf(script, sizeof(script), "%s/../tools/cdp_check.py", dirname(here));
	const char *argv[] = {"/usr/bin/python3", script, page, out, shot, pgid_file, NULL};
	unlink(out);
	checker = tk_spawn(argv, log);
	int rc = tk_wait_exit(checker, 180000);
	checker = -1;
	if (rc != 0) {
		char *l = tk_read_file(log, NULL);
		fail_msg("cdp_check.py exit %d: %s", rc, l ? l : "(no log)");
	}
	char *text = tk_read_file(out, NULL);
	assert_non_null(text);
	json_t *res = tk_json(text);
	free(text);
	free(out);
	free(log);
	return res;
}

static void test_report_in_chromium(void **state)
{
	(void)state;
	char *shot = km_asprintf("%s/report.png", dir);
	json_t *res = check_in_chromium(html, shot), *dom = json_object_get(res, "dom"), *c;
	size_t i;
	char *s = json_dumps(res, JSON_COMPACT);

	fprintf(stderr, "chromium: %.3000s\n", s);
	free(s);
	assert_true(json_is_true(json_object_get(res, "loaded")));
	assert_int_equal(json_array_size(json_object_get(res, "requests")), 0);
	assert_int_equal(json_array_size(json_object_get(res, "console_errors")), 0);
	/* From the DOM: every gate of the journal, both charts drawn with
	 * their points, the offset table with one row per translation. */
	assert_int_equal(json_integer_value(json_object_get(dom, "gates")), journal_gates());
	assert_int_equal(json_array_size(json_object_get(dom, "charts")), 2);
	json_array_foreach(json_object_get(dom, "charts"), i, c) {
		assert_true(json_integer_value(json_object_get(c, "points")) >= 1);
		assert_true(json_integer_value(json_object_get(c, "polylines")) >= 1);
	}
	assert_string_equal(json_string_value(json_object_get(json_array_get(
				    json_object_get(dom, "charts"), 0), "id")),
			    "chart-throughput");
	assert_int_equal(json_integer_value(json_object_get(dom, "offset_rows")),
			 tk_journal_count(journal, "offsets.translate", "group:"));
	assert_true(json_integer_value(json_object_get(dom, "steps")) >=
		    tk_journal_count(journal, "cutover.step", "wave:canary"));
	assert_int_equal(json_array_size(json_object_get(dom, "sections")), 13);
	/* Markup from the journal is text, not elements. */
	assert_int_equal(json_integer_value(json_object_get(dom, "scripts")), 0);
	assert_int_equal(json_integer_value(json_object_get(dom, "injected_elements")), 0);
	assert_int_equal(json_array_size(json_object_get(dom, "external")), 0);
	assert_string_equal(json_string_value(json_array_get(json_object_get(dom, "owners_text"), 0)),
			    OWNER_MARKUP);
	assert_int_equal(json_array_size(json_object_get(dom, "injected_text")), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(dom, "other_kinds"), 0)),
			    "monitor.trigger");
	assert_true(json_integer_value(json_object_get(res, "screenshot")) > 10000);
	if (getenv("KM_UPDATE_DOCS") && !strcmp(getenv("KM_UPDATE_DOCS"), "1")) {
		char here[4096], docs[4200];
		snprintf(here, sizeof(here), "%s", __FILE__);
		snprintf(docs, sizeof(docs), "%s/../../docs/report.png", dirname(here));
		const char *cp[] = {"/bin/cp", shot, docs, NULL};
		assert_int_equal(tk_run(NULL, NULL, cp), 0);
		fprintf(stderr, "screenshot copied to %s\n", docs);
	}
	json_decref(res);
	free(shot);
}

/* The checker is not silent by construction: a page that fetches an
 * image from the network and logs an error is caught on both counts. */
static void test_checker_catches_a_bad_page(void **state)
{
	(void)state;
	char *page = tk_write_file(dir, "bad.html",
				   "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body>"
				   "<img src=\"http://example.invalid/x.png\">"
				   "<script>console.error('boom')</script></body></html>");
	char *shot = km_asprintf("%s/bad.png", dir);
	json_t *res = check_in_chromium(page, shot);
	assert_true(json_array_size(json_object_get(res, "requests")) >= 1);
	assert_true(json_array_size(json_object_get(res, "console_errors")) >= 1);
	json_decref(res);
	free(page);
	free(shot);
}

/* The journal alone, copied to another folder: no plan file, no cluster. */
static void test_journal_alone(void **state)
{
	(void)state;
	char *other = tk_tmpdir("report-elsewhere");
	char *copy = km_asprintf("%s/copied.db", other), *out = km_asprintf("%s/r.html", other);
	const char *cp[] = {"/bin/cp", journal, copy, NULL};

	assert_int_equal(tk_run(NULL, NULL, cp), 0);
	json_t *info = report_json(out, copy);
	assert_string_equal(json_string_value(json_object_get(info, "plan_from")), "journal");
	assert_int_equal(json_integer_value(json_object_get(info, "gates")), journal_gates());
	json_decref(info);
	char *h = tk_read_file(out, NULL);
	assert_non_null(h);
	assert_true(count(h, OWNER_ESCAPED) >= 1);
	free(h);
	free(copy);
	free(out);
	free(other);
}

static void test_bad_input(void **state)
{
	(void)state;
	char *err = NULL, *missing = km_asprintf("%s/no/such/folder/r.html", dir);
	const char *a1[] = {tk_kmigrate(), "report", "-p", plan, "-o", missing, NULL};
	const char *a2[] = {tk_kmigrate(), "report", "--journal", "/nonexistent/k.db", "-o", html,
			    NULL};
	const char *a3[] = {tk_kmigrate(), "report", "-p", plan, NULL};
	struct stat st;

	assert_int_equal(tk_run(NULL, &err, a1), 3);
	assert_non_null(strstr(err, "does not exist"));
	assert_int_equal(count(err, "\n"), 1);
	assert_int_not_equal(stat(missing, &st), 0);
	free(err);
	assert_int_equal(tk_run(NULL, &err, a2), 3);
	assert_non_null(strstr(err, "/nonexistent/k.db"));
	assert_int_equal(count(err, "\n"), 1);
	free(err);
	assert_int_equal(tk_run(NULL, &err, a3), 2);
	assert_non_null(strstr(err, "-o FILE"));
	free(err);
	free(missing);
}

static void test_status_summary(void **state)
{
	(void)state;
	char *o = NULL;
	const char *argv[] = {tk_kmigrate(), "status", "-p", plan, "--json", NULL};
	assert_int_equal(tk_run(&o, NULL, argv), 0);
	json_t *st = tk_json(o), *s = json_object_get(st, "summary"), *w;
	size_t i;
	free(o);
	assert_non_null(s);
	assert_string_equal(json_string_value(json_object_get(json_object_get(s, "phase"), "name")),
			    "cutover");
	json_array_foreach(json_object_get(s, "authority"), i, w) {
		const char *wave = json_string_value(json_object_get(w, "wave"));
		assert_string_equal(json_string_value(json_object_get(w, "authority")),
				    !strcmp(wave, "canary") ? "target" : "source");
	}
	assert_int_equal(json_array_size(json_object_get(s, "authority")), 2);
	assert_true(json_array_size(json_object_get(s, "last_verdicts")) >= 3);
	assert_true(json_is_object(json_object_get(s, "lag")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "lag"), "records")), 0);
	/* The old members are still there, unrenamed. */
	assert_non_null(json_object_get(st, "waves"));
	assert_non_null(json_object_get(st, "authority"));
	assert_non_null(json_object_get(st, "open_findings"));
	json_decref(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report_written),
		cmocka_unit_test(test_report_in_chromium),
		cmocka_unit_test(test_checker_catches_a_bad_page),
		cmocka_unit_test(test_journal_alone),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_status_summary),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
