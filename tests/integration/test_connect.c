/*
 * test_connect.c -- Kafka Connect connectors move with their wave (issue
 * 14, lib/connect.h), on real clusters and two real Connect workers: a
 * Kafka 3.9 worker on the 3.9 source, a 4.3 worker on the 4.3 target
 * (tests/cluster/connect-worker, started and stopped by this file).
 *
 * Cases, in order:
 *   - unreachable: a plan whose source.connect_url answers nothing makes
 *     `plan` fail with one line naming the URL and the plan key, non-zero
 *     exit, and no design saved;
 *   - sink: a FileStreamSink on the source Connect writes a file from topic
 *     T while an idempotent writer keeps writing T.  inventory shows the
 *     connector (class, type, masked secrets, `${...}` kept, topics,
 *     offsets) and the high-risk finding; plan designs its target config;
 *     apply creates it STOPPED on the target Connect; the replicator runs;
 *     the wave is cut over with a crash right after the connectors step
 *     (KM_CUTOVER_CRASH_AFTER) and a re-run; the writer moves to the
 *     target.  Then the file holds every record of T exactly once, in
 *     order (the target topic's records, which the writer's acks prove
 *     exactly once), and the journaled evidence never has both connectors
 *     RUNNING;
 *   - no-stop: a second wave's sink that does not stop in time
 *     (KM_CONNECT_STOP_TIMEOUT_MS) is a NO-GO: the connectors step is not
 *     journaled, the target connector stays STOPPED with no offsets;
 *   - rollback after: the files wave rolled back after its authority
 *     moved (killed after each connector step): the file holds every
 *     record once, in order, and the source sink continues it;
 *   - worker topics: the source worker's config, offsets and status topics,
 *     selected by the plan, are recognised from their keys, designed for
 *     no target, in no wave and no reason for a NO-GO; a wave naming one
 *     is NO-GO.
 *   - rollback after authority: a second migration's cutover killed right
 *     after its authority step (the source sink still RUNNING), rolled
 *     back (killed after connectors-back): nothing of the connector moves,
 *     the file holds every record once, in order; `report` shows the
 *     connector with both states at every journaled phase.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connect.h"
#include "tk.h"
#include "util.h"

#define WAIT_MS 120000

static tk_cluster_t src, tgt;
static char T[64], T2[64], TS[64], TR[64], SINK[64], SINK2[64], SRC[64], RSRC[64], WS[64],
	WT[64];
static char surl[64], turl[64];
static char *dir, *plan, *journal, *replog, *file, *file2, *infile, *rfile;
static pthread_t appender;
static volatile int appending;
static int lines_appended;
static pid_t repl;
static tk_writer_t *w;
static int workers_up;

static void worker(const char *cmd, const char *name, const char *bs, int port, const char *ver)
{
	char *line;
	const char *cache = getenv("KM_CONNECT_CACHE");
	if (!strcmp(cmd, "start"))
		line = km_asprintf("KM_CACHE='%s' '%s' start %s --bootstrap %s --port %d --version %s",
				   cache ? cache : "", getenv("KM_CONNECT_WORKER"), name, bs, port,
				   ver);
	else
		line = km_asprintf("KM_CACHE='%s' '%s' stop %s --wipe", cache ? cache : "",
				   getenv("KM_CONNECT_WORKER"), name);
	int rc = system(line);
	free(line);
	if (!strcmp(cmd, "start") && rc != 0)
		tk_fail("connect-worker start %s: exit %d", name, rc);
}

static void stop_workers(void)
{
	if (!workers_up)
		return;
	workers_up = 0;
	worker("stop", WS, NULL, 0, NULL);
	worker("stop", WT, NULL, 0, NULL);
}

/* A step's last state, failing cleanly when the step never reported. */
static void assert_state(const json_t *evs, const char *step, const char *want)
{
	const char *st = tk_event_state(evs, step);
	TK_ASSERT(st && !strcmp(st, want), "step %s: %s, want %s", step, st ? st : "(no event)",
		  want);
}

static void on_signal(int sig)
{
	stop_workers();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* One REST call on the worker at url; the answer (new reference) or NULL. */
static json_t *rest(const char *url, const char *method, const char *path, json_t *body)
{
	km_connect_t *c = NULL;
	json_t *out = NULL;
	char e[512];
	if (km_connect_open(url, "test", 30000, &c, e, sizeof(e)))
		tk_fail("%s", e);
	if (km_connect_call(c, method, path, body, &out, e, sizeof(e)))
		tk_fail("%s", e);
	km_connect_close(c);
	json_decref(body);
	return out;
}

static const char *cstate(const char *url, const char *name)
{
	static char buf[32];
	char *p = km_asprintf("/connectors/%s/status", name);
	json_t *st = rest(url, "GET", p, NULL);
	snprintf(buf, sizeof(buf), "%s",
		 json_string_value(json_object_get(json_object_get(st, "connector"), "state")));
	json_decref(st);
	free(p);
	return buf;
}

static void create_sink(const char *name, const char *topic, const char *path)
{
	json_decref(rest(surl, "POST", "/connectors",
			 json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s}}", "name", name, "config",
				   "connector.class",
				   "org.apache.kafka.connect.file.FileStreamSinkConnector",
				   "tasks.max", "1", "file", path, "topics", topic,
				   "consumer.override.sasl.jaas.config", "${file:/secrets:jaas}",
				   "consumer.override.ssl.key.password", "hunter2")));
}

/* The application whose file a FileStreamSource reads: a line about
 * every 20 ms. */
static void *append_lines(void *arg)
{
	(void)arg;
	while (appending) {
		FILE *f = fopen(infile, "a");
		TK_ASSERT(f, "cannot append to %s", infile);
		fprintf(f, "line-%d\n", lines_appended++);
		fclose(f);
		tk_sleep_ms(20);
	}
	return NULL;
}

static void append_to(const char *path, int from, int to)
{
	FILE *f = fopen(path, "a");
	TK_ASSERT(f, "cannot append to %s", path);
	for (int i = from; i < to; i++)
		fprintf(f, "late-%d\n", i);
	fclose(f);
}

/* The values of topic[0] on c are late-0 .. late-<n-1>, once each, in
 * order, within WAIT_MS. */
static void assert_lines_once(const tk_cluster_t *c, const char *topic, const char *prefix, int n)
{
	int64_t end = tk_mono_ms() + WAIT_MS;
	json_t *vals;
	for (;;) {
		vals = tk_values(c, topic, 0);
		if ((int)json_array_size(vals) >= n)
			break;
		TK_ASSERT(tk_mono_ms() < end, "%s has %zu records, want %d", topic,
			  json_array_size(vals), n);
		json_decref(vals);
		tk_sleep_ms(500);
	}
	tk_sleep_ms(2000); /* nothing more may come */
	json_decref(vals);
	vals = tk_values(c, topic, 0);
	assert_int_equal((int)json_array_size(vals), n);
	for (int i = 0; i < n; i++) {
		char want[32];
		snprintf(want, sizeof(want), "%s-%d", prefix, i);
		if (strcmp(json_string_value(json_array_get(vals, (size_t)i)), want))
			tk_fail("record %d of %s is '%s', want '%s'", i, topic,
				json_string_value(json_array_get(vals, (size_t)i)), want);
	}
	json_decref(vals);
}

static void create_source(const char *name, const char *topic, const char *path)
{
	json_decref(rest(surl, "POST", "/connectors",
			 json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "name", name, "config",
				   "connector.class",
				   "org.apache.kafka.connect.file.FileStreamSourceConnector",
				   "tasks.max", "1", "file", path, "topic", topic)));
}

static size_t file_lines(const char *path, json_t **linesp)
{
	size_t len = 0, n = 0;
	char *text = tk_read_file(path, &len);
	json_t *lines = json_array();
	for (char *s = text, *e; s && s < text + len; s = e + 1) {
		e = memchr(s, '\n', (size_t)(text + len - s));
		if (!e)
			break; /* a line still being written */
		json_array_append_new(lines, json_stringn(s, (size_t)(e - s)));
		n++;
	}
	free(text);
	if (linesp)
		*linesp = lines;
	else
		json_decref(lines);
	return n;
}

static void wait_lines(const char *path, size_t n)
{
	int64_t end = tk_mono_ms() + WAIT_MS;
	while (file_lines(path, NULL) < n) {
		TK_ASSERT(tk_mono_ms() < end, "%s has %zu lines, want %zu", path,
			  file_lines(path, NULL), n);
		tk_sleep_ms(200);
	}
}

static char *write_plan(const char *name, const char *surl_, const char *extra)
{
	char *text = km_asprintf(
		"migration: it-connect-%d\n"
		"source:\n  bootstrap: %s\n  owner: platform\n  connect_url: %s\n"
		"target:\n  bootstrap: %s\n  owner: platform\n  connect_url: %s\n"
		"topics:\n  include: [\"^%s$\", \"^%s$\", \"^%s$\", \"^%s$\"]\n"
		"  rules:\n    - {match: \".*\", owner: qa, duplicates: none}\n"
		"consumer_groups:\n"
		"  - {id: connect-%s, restart: translated, owner: data, chosen_by: qa}\n"
		"  - {id: connect-%s, restart: translated, owner: data, chosen_by: qa}\n"
		"connectors:\n"
		"  - {name: %s, class: FileStreamSink, side_effects: \"appends lines to a file\", "
		"owner: data, idempotent: no, validation: \"every record once in the file\"}\n"
		"  - {name: %s, class: FileStreamSink, side_effects: \"appends lines to a file\", "
		"owner: data, idempotent: no, validation: \"every record once in the file\"}\n"
		"  - {name: %s, class: FileStreamSource, side_effects: \"none: reads a file\", "
		"owner: data, validation: \"every line once in the topic\"}\n"
		"  - {name: %s, class: FileStreamSource, side_effects: \"none: reads a file\", "
		"owner: data, validation: \"every line once in the topic\"}\n"
		/* the target sinks read committed (the design sets it): declared
		 * so, kmigrate's aborted copies are not an exposure */
		"consumers:\n"
		"  - {name: %s, group: connect-%s, isolation_level: read_committed, owner: data, "
		"validation: \"the file\", client: java, client_version: 4.3.1}\n"
		"  - {name: %s, group: connect-%s, isolation_level: read_committed, owner: data, "
		"validation: \"the file\", client: java, client_version: 4.3.1}\n"
		"producers:\n"
		"  - {name: writer, topics: [%s], idempotence: yes, transactions: no, owner: app, "
		"validation: \"acks on the target\", client: librdkafka, client_version: 2.8.0}\n"
		"gates:\n  max_lag_records: 1000000\n"
		"cutover:\n  fence: config\n  fence_owner: platform\n  quiet_period: 1s\n"
		"  waves:\n"
		"    - {name: files, topics: [%s, %s], producers: [writer], owner: data}\n"
		"    - {name: late, topics: [%s], owner: data}\n"
		"    - {name: rest, all: true, owner: data}\n%s",
		(int)getpid(), src.bootstrap, surl_, tgt.bootstrap, turl, T, T2, TS, TR, SINK, SINK2,
		SINK, SINK2, SRC, RSRC, SINK, SINK, SINK2, SINK2, T, T, TS, TR, extra ? extra : "");
	char *p = tk_write_file(dir, name, text);
	free(text);
	return p;
}

static int setup(void **state)
{
	int id = (int)getpid(), po = atoi(getenv("KM_TEST_PORT_OFFSET") ?: "0");
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_SOURCE");
	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	TK_ASSERT(getenv("KM_CONNECT_WORKER"), "KM_CONNECT_WORKER is not set (tests/CMakeLists.txt)");
	snprintf(T, sizeof(T), "cn-%d.orders", id);
	snprintf(T2, sizeof(T2), "cn-%d.audit", id);
	snprintf(SINK, sizeof(SINK), "file-sink-%d", id);
	snprintf(SINK2, sizeof(SINK2), "audit-sink-%d", id);
	snprintf(TS, sizeof(TS), "cn-%d.lines", id);
	snprintf(SRC, sizeof(SRC), "file-source-%d", id);
	snprintf(TR, sizeof(TR), "cn-%d.late", id);
	snprintf(RSRC, sizeof(RSRC), "late-source-%d", id);
	snprintf(WS, sizeof(WS), "src-%d", id);
	snprintf(WT, sizeof(WT), "tgt-%d", id);
	snprintf(surl, sizeof(surl), "http://127.0.0.1:%d", 18083 + po);
	snprintf(turl, sizeof(turl), "http://127.0.0.1:%d", 28083 + po);
	dir = tk_tmpdir("connect");
	journal = km_asprintf("%s/kmigrate.db", dir);
	replog = km_asprintf("%s/replicate.log", dir);
	file = km_asprintf("%s/orders.txt", dir);
	file2 = km_asprintf("%s/audit.txt", dir);
	infile = km_asprintf("%s/lines.txt", dir);
	rfile = km_asprintf("%s/late.txt", dir);
	tk_create_topic(&src, T, 1, NULL);
	tk_create_topic(&src, T2, 1, NULL);
	tk_create_topic(&src, TS, 1, NULL);
	tk_create_topic(&src, TR, 1, NULL);
	atexit(stop_workers);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	workers_up = 1;
	worker("start", WS, src.bootstrap, 18083 + po, "3.9");
	worker("start", WT, tgt.bootstrap, 28083 + po, "4.3");
	plan = write_plan("migration.yaml", surl, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (w)
		tk_writer_stop(w);
	if (appending) {
		appending = 0;
		pthread_join(appender, NULL);
	}
	if (repl > 0) {
		kill(repl, SIGTERM);
		tk_wait_exit(repl, WAIT_MS);
	}
	stop_workers();
	return 0;
}

/* A Connect URL that answers nothing: one line naming it and the plan key,
 * a non-zero exit, no design saved. */
static void test_unreachable(void **state)
{
	char *out = NULL, *err = NULL;
	(void)state;
	char *bad = write_plan("bad.yaml", "http://127.0.0.1:9", NULL);
	int rc = tk_kmv(&out, &err, "plan", "-p", bad, NULL);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(err, "http://127.0.0.1:9"));
	assert_non_null(strstr(err, "source.connect_url"));
	assert_non_null(strstr(err, "unreachable"));
	assert_int_equal(strchr(err, '\n') - err, (long)strlen(err) - 1); /* one line */
	assert_int_not_equal(access(journal, F_OK), 0); /* nothing journaled */
	free(out);
	free(err);
	free(bad);
}

static json_t *inv_connector(const json_t *inv, const char *name)
{
	json_t *c;
	size_t i;
	json_array_foreach(json_object_get(json_object_get(inv, "connect"), "connectors"), i, c)
		if (!strcmp(json_string_value(json_object_get(c, "name")), name))
			return c;
	return NULL;
}

static void test_sink_cutover(void **state)
{
	char *out = NULL, *err = NULL;
	json_t *evs;
	(void)state;

	create_sink(SINK, T, file);
	create_sink(SINK2, T2, file2);
	tk_produce_one(&src, T2, "audit-1");
	appending = 1;
	assert_int_equal(pthread_create(&appender, NULL, append_lines, NULL), 0);
	create_source(SRC, TS, infile);
	append_to(rfile, 0, 5);
	create_source(RSRC, TR, rfile);
	w = tk_writer_start(&src, T, NULL);
	assert_true(tk_writer_wait(w, 30, 0, WAIT_MS));
	wait_lines(file, 10);
	wait_lines(file2, 1);

	/* inventory: the connector with its secrets masked, the reference
	 * kept, its topics and offsets; the high-risk finding. */
	assert_int_equal(tk_kmv(&out, &err, "inventory", "-p", plan, "--json", NULL), 1);
	json_t *inv = tk_json(out);
	json_t *c = inv_connector(json_object_get(inv, "inventory"), SINK);
	assert_non_null(c);
	assert_string_equal(json_string_value(json_object_get(c, "type")), "sink");
	json_t *cfg = json_object_get(c, "config");
	assert_string_equal(json_string_value(json_object_get(cfg, "consumer.override.ssl.key.password")),
			    "********");
	assert_string_equal(json_string_value(json_object_get(cfg, "consumer.override.sasl.jaas.config")),
			    "${file:/secrets:jaas}");
	assert_string_equal(json_string_value(json_array_get(json_object_get(c, "topics"), 0)), T);
	assert_true(json_is_array(json_object_get(c, "offsets")));
	assert_null(strstr(out, "hunter2"));
	assert_non_null(strstr(out, "connector.duplicate-risk"));
	json_decref(inv);
	free(out);
	free(err);

	/* plan, apply: the target connector exists, STOPPED. */
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	assert_string_equal(cstate(turl, SINK), "STOPPED");
	assert_string_equal(cstate(turl, SINK2), "STOPPED");
	assert_string_equal(cstate(surl, SINK), "RUNNING");
	tk_km(plan, "check", NULL, NULL, 0, NULL);
	tk_catch_up(plan, WAIT_MS, NULL);
	tk_km(plan, "validate", NULL, NULL, 0, NULL);

	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, NULL};
	repl = tk_spawn(argv, replog);
	/* The sinks keep committing while the writer writes: their groups
	 * are translatable once the running replicator has copied past their
	 * commits (exit 1 "not yet translatable" until then). */
	int64_t until = tk_mono_ms() + WAIT_MS;
	int rc;
	while ((rc = tk_kmv(NULL, NULL, "offsets", "-p", plan, NULL)) == 1 && tk_mono_ms() < until)
		tk_sleep_ms(1000);
	assert_int_equal(rc, 0);

	const char *cut[] = {tk_kmigrate(), "cutover", "-p", plan, "--wave", "files", "--json", NULL};
	assert_int_equal(tk_km_events(&evs, "KM_CUTOVER_CRASH_AFTER", "connectors", cut), 137);
	assert_state(evs, "connectors", "done");
	json_decref(evs);
	assert_string_equal(cstate(surl, SINK), "STOPPED");
	assert_string_equal(cstate(turl, SINK), "RUNNING");
	assert_int_equal(tk_km_events(&evs, NULL, NULL, cut), 0);
	assert_state(evs, "connectors", "already-done");
	assert_state(evs, "switch", "done");
	json_decref(evs);

	/* The application moves to the target and goes on. */
	tk_writer_repoint(w, &tgt);
	tk_writer_stats_t st;
	tk_writer_stats(w, &st);
	assert_true(tk_writer_wait(w, st.acked + 30, 0, WAIT_MS));
	tk_writer_assert_acked_once(w, &tgt, T);

	/* The file: every record of the target topic once, in order. */
	json_t *vals = tk_values(&tgt, T, 0), *lines = NULL;
	assert_true(json_array_size(vals) > 60);
	wait_lines(file, json_array_size(vals));
	tk_sleep_ms(2000); /* nothing more may come */
	file_lines(file, &lines);
	assert_int_equal(json_array_size(lines), json_array_size(vals));
	for (size_t i = 0; i < json_array_size(vals); i++)
		if (!json_equal(json_array_get(lines, i), json_array_get(vals, i)))
			tk_fail("line %zu of %s is '%s', the topic's record is '%s'", i + 1, file,
				json_string_value(json_array_get(lines, i)),
				json_string_value(json_array_get(vals, i)));
	json_decref(vals);
	json_decref(lines);

	/* The FileStreamSource: the target topic holds every line of the
	 * file once, in order (the source's copied, then the target's). */
	appending = 0;
	pthread_join(appender, NULL);
	assert_lines_once(&tgt, TS, "line", lines_appended);
	assert_int_equal(tk_journal_count(journal, "cutover.step", "wave:files step:stop-connectors"), 1);

	/* The journaled proof: both states at every phase, never both
	 * RUNNING; the offsets written on the target were translated. */
	json_t *b = tk_journal_body(journal, "cutover.step", "wave:files step:connectors");
	assert_non_null(b);
	json_t *cc = NULL, *ph, *x;
	size_t i;
	json_array_foreach(json_object_get(b, "connectors"), i, x)
		if (!strcmp(json_string_value(json_object_get(x, "name")), SINK))
			cc = x;
	assert_non_null(cc);
	assert_int_equal(json_array_size(json_object_get(b, "connectors")), 2);
	int seen = 0;
	json_array_foreach(json_object_get(cc, "phases"), i, ph)
	{
		const char *s = json_string_value(json_object_get(ph, "source_state"));
		const char *t = json_string_value(json_object_get(ph, "target_state"));
		assert_false(!strcmp(s, "RUNNING") && !strcmp(t, "RUNNING"));
		if (!strcmp(json_string_value(json_object_get(ph, "phase")), "offsets-written")) {
			seen++;
			assert_string_equal(s, "STOPPED");
			assert_string_equal(t, "STOPPED");
			assert_int_equal(json_array_size(json_object_get(ph, "written")), 1);
		}
		if (!strcmp(json_string_value(json_object_get(ph, "phase")), "target-resumed")) {
			seen++;
			assert_string_equal(s, "STOPPED");
			assert_string_equal(t, "RUNNING");
		}
	}
	assert_int_equal(seen, 2);
	json_decref(b);
}

/* A rollback before the authority moved: the late wave's source connector,
 * stopped by the cutover's stop-connectors step, runs again on the source
 * (the target twin STOPPED); the next cutover moves it, and the target
 * topic holds every line of its file once, in order. */
static void test_rollback_before(void **state)
{
	json_t *evs;
	(void)state;
	const char *cut[] = {tk_kmigrate(), "cutover", "-p", plan, "--wave", "late", "--json", NULL};
	const char *rb[] = {tk_kmigrate(), "rollback", "-p", plan, "--wave", "late", "--json", NULL};

	assert_lines_once(&src, TR, "late", 5);
	assert_int_equal(tk_km_events(&evs, "KM_CUTOVER_CRASH_AFTER", "stop-connectors", cut), 137);
	json_decref(evs);
	assert_string_equal(cstate(surl, RSRC), "STOPPED");
	assert_string_equal(cstate(turl, RSRC), "STOPPED");
	assert_int_equal(tk_km_events(&evs, NULL, NULL, rb), 0);
	assert_state(evs, "reset", "done");
	json_decref(evs);
	assert_string_equal(cstate(surl, RSRC), "RUNNING");
	assert_string_equal(cstate(turl, RSRC), "STOPPED");
	append_to(rfile, 5, 10); /* read on the source again */
	assert_lines_once(&src, TR, "late", 10);

	assert_int_equal(tk_km_events(&evs, NULL, NULL, cut), 0);
	assert_state(evs, "connectors", "done");
	json_decref(evs);
	assert_string_equal(cstate(surl, RSRC), "STOPPED");
	assert_string_equal(cstate(turl, RSRC), "RUNNING");
	append_to(rfile, 10, 15); /* read on the target from where the source stopped */
	assert_lines_once(&tgt, TR, "late", 15);
}

/* The rest wave's sink does not stop within the (shortened) deadline:
 * NO-GO, the step not journaled, the target connector still STOPPED. */
static void test_no_stop_nogo(void **state)
{
	json_t *evs;
	(void)state;
	const char *cut[] = {tk_kmigrate(), "cutover", "-p", plan, "--wave", "rest", "--json", NULL};
	assert_int_equal(tk_km_events(&evs, "KM_CONNECT_STOP_TIMEOUT_MS", "1", cut), 1);
	assert_state(evs, "connectors", "nogo");
	assert_null(tk_event_state(evs, "switch"));
	json_decref(evs);
	assert_int_equal(tk_journal_count(journal, "cutover.step", "wave:rest step:connectors"), 0);
	assert_string_equal(cstate(turl, SINK2), "STOPPED");
	char *p = km_asprintf("/connectors/%s/offsets", SINK2);
	json_t *o = rest(turl, "GET", p, NULL);
	assert_int_equal(json_array_size(json_object_get(o, "offsets")), 0);
	json_decref(o);
	/* A re-run with the normal deadline completes the wave. */
	assert_int_equal(tk_km_events(&evs, NULL, NULL, cut), 0);
	assert_state(evs, "connectors", "done");
	json_decref(evs);
	assert_string_equal(cstate(turl, SINK2), "RUNNING");
	free(p);
}

/* Both connectors' states at every journaled phase of a step's fact:
 * never both RUNNING; @returns how many connectors the fact names. */
static size_t assert_never_both(const char *kind, const char *subject)
{
	json_t *b = tk_journal_body(journal, kind, subject), *x, *ph;
	size_t i, j, n;
	TK_ASSERT(b, "no %s fact '%s'", kind, subject);
	n = json_array_size(json_object_get(b, "connectors"));
	json_array_foreach(json_object_get(b, "connectors"), i, x)
		json_array_foreach(json_object_get(x, "phases"), j, ph)
		{
			const char *s = json_string_value(json_object_get(ph, "source_state"));
			const char *t = json_string_value(json_object_get(ph, "target_state"));
			TK_ASSERT(s && t && !(!strcmp(s, "RUNNING") && !strcmp(t, "RUNNING")),
				  "%s: connector %s phase %s: source %s, target %s", subject,
				  json_string_value(json_object_get(x, "name")),
				  json_string_value(json_object_get(ph, "phase")), s ? s : "?",
				  t ? t : "?");
		}
	json_decref(b);
	return n;
}

static void append_lines_to(const char *path, const char *prefix, int from, int to)
{
	FILE *f = fopen(path, "a");
	TK_ASSERT(f, "cannot append to %s", path);
	for (int i = from; i < to; i++)
		fprintf(f, "%s-%d\n", prefix, i);
	fclose(f);
}

/* The file holds the records of topic[0] on c, line for line, once each,
 * in order (within WAIT_MS, then nothing more). */
static void assert_file_is_topic(const char *path, const tk_cluster_t *c, const char *topic)
{
	json_t *vals = tk_values(c, topic, 0), *lines = NULL;
	wait_lines(path, json_array_size(vals));
	tk_sleep_ms(2000); /* nothing more may come */
	file_lines(path, &lines);
	assert_int_equal(json_array_size(lines), json_array_size(vals));
	for (size_t i = 0; i < json_array_size(vals); i++)
		if (!json_equal(json_array_get(lines, i), json_array_get(vals, i)))
			tk_fail("line %zu of %s is '%s', the topic's record is '%s'", i + 1, path,
				json_string_value(json_array_get(lines, i)),
				json_string_value(json_array_get(vals, i)));
	json_decref(vals);
	json_decref(lines);
}

/* The files wave, cut over by test_sink_cutover, is rolled back after its
 * authority moved, killed after each connector step and resumed: the
 * target's sink and source connector stop, their positions go back (the
 * sink's group translated back, the source's file position verbatim) and
 * the source ones run again.  The file then holds every record of the
 * source topic (the copied-back ones included) once, in order, and new
 * records on the source reach it once; the source connector reads on. */
static void test_rollback_after(void **state)
{
	json_t *evs;
	(void)state;
	const char *rb[] = {tk_kmigrate(), "rollback", "-p", plan, "--wave", "files", "--json", NULL};

	/* The forward replicator ends (authority-source refuses while it
	 * runs); the writer stopped in test_sink_cutover. */
	kill(repl, SIGTERM);
	assert_int_equal(tk_wait_exit(repl, WAIT_MS), 0);
	repl = 0;
	/* Written on the target after the cutover: the target sink appends
	 * them, the target source connector reads lines into TS there. */
	for (int i = 0; i < 5; i++) {
		char v[32];
		snprintf(v, sizeof(v), "after-%d", i);
		tk_produce_one(&tgt, T, v);
	}
	append_lines_to(infile, "line", lines_appended, lines_appended + 5);
	lines_appended += 5;
	assert_lines_once(&tgt, TS, "line", lines_appended);
	assert_file_is_topic(file, &tgt, T);

	assert_int_equal(tk_km_events(&evs, "KM_ROLLBACK_CRASH_AFTER", "stop-target-connectors", rb),
			 137);
	assert_state(evs, "stop-target-connectors", "done");
	json_decref(evs);
	assert_string_equal(cstate(turl, SRC), "STOPPED");
	assert_string_equal(cstate(surl, SRC), "STOPPED");
	assert_int_equal(tk_km_events(&evs, "KM_ROLLBACK_CRASH_AFTER", "connectors-back", rb), 137);
	assert_state(evs, "stop-target-connectors", "already-done");
	assert_state(evs, "connectors-back", "done");
	json_decref(evs);
	assert_string_equal(cstate(turl, SINK), "STOPPED");
	assert_string_equal(cstate(surl, SINK), "STOPPED");
	assert_int_equal(tk_km_events(&evs, NULL, NULL, rb), 0);
	assert_state(evs, "connectors-back", "already-done");
	assert_state(evs, "reset", "done");
	json_decref(evs);
	assert_string_equal(cstate(surl, SINK), "RUNNING");
	assert_string_equal(cstate(turl, SINK), "STOPPED");
	assert_string_equal(cstate(surl, SRC), "RUNNING");
	assert_string_equal(cstate(turl, SRC), "STOPPED");

	/* The journaled proof: both connectors' states at every phase of each
	 * connector step, never both RUNNING. */
	/* only the source connector: a producer on the target */
	assert_int_equal(assert_never_both("rollback.step", "wave:files step:stop-target-connectors"), 1);
	assert_int_equal(assert_never_both("rollback.step", "wave:files step:connectors-back"), 2);
	assert_int_equal(assert_never_both("rollback.step", "wave:files step:reset"), 2);

	/* The source sink continues the file: new records on the source,
	 * each once, after the copied-back ones. */
	for (int i = 0; i < 5; i++) {
		char v[32];
		snprintf(v, sizeof(v), "back-%d", i);
		tk_produce_one(&src, T, v);
	}
	json_t *vals = tk_values(&src, T, 0);
	assert_string_equal(json_string_value(json_array_get(vals, json_array_size(vals) - 1)),
			    "back-4");
	json_decref(vals);
	assert_file_is_topic(file, &src, T);
	/* The source connector reads on from the target's position. */
	append_lines_to(infile, "line", lines_appended, lines_appended + 5);
	lines_appended += 5;
	assert_lines_once(&src, TS, "line", lines_appended);
}

/* Issue 14, item 1: the source worker's three internal topics, selected by
 * the plan's patterns, are recognised from their keys (a source connector
 * of this case writes an offset): each gets its role and an informational
 * finding instead of "no owner", and none is designed, in a wave's topics
 * or a reason for the gate's NO-GO; a wave that names one is NO-GO, saying
 * why. */
static char *worker_plan(const char *wdir, const char *file_, const char *tw, const char *wsrc,
			 const char *wave)
{
	char *text = km_asprintf(
		"migration: it-connect-w-%d\n"
		"source:\n  bootstrap: %s\n  owner: platform\n  connect_url: %s\n"
		"target:\n  bootstrap: %s\n  owner: platform\n  connect_url: %s\n"
		"topics:\n  include: [\"^%s$\", \"^connect-%s-\"]\n"
		"  rules:\n    - {match: \"^%s$\", owner: qa}\n"
		"connectors:\n"
		"  - {name: %s, class: FileStreamSource, side_effects: \"none: reads a file\", "
		"owner: data, validation: \"every line once in the topic\"}\n"
		"cutover:\n  fence: config\n  fence_owner: platform\n"
		"  waves:\n"
		"    - {name: w, topics: [%s], owner: data}\n"
		"    - {name: rest, all: true, owner: data}\n",
		(int)getpid(), src.bootstrap, surl, tgt.bootstrap, turl, tw, WS, tw, wsrc, wave);
	char *p = tk_write_file(wdir, file_, text);
	free(text);
	return p;
}

static void test_worker_topics(void **state)
{
	char tw[64], wsrc[64], wt[3][128], *out = NULL;
	static const char *const roles[3] = {"configs", "offsets", "status"};
	char *wdir = tk_tmpdir("connect-w"), *wfile = km_asprintf("%s/w.txt", wdir);
	json_t *doc, *inv, *f, *c;
	size_t i;
	(void)state;

	snprintf(tw, sizeof(tw), "cn-%d.wlines", (int)getpid());
	snprintf(wsrc, sizeof(wsrc), "w-source-%d", (int)getpid());
	for (i = 0; i < 3; i++)
		snprintf(wt[i], sizeof(wt[i]), "connect-%s-%s", WS, roles[i]);
	tk_create_topic(&src, tw, 1, NULL);
	append_to(wfile, 0, 5);
	create_source(wsrc, tw, wfile);
	assert_lines_once(&src, tw, "late", 5);
	/* The worker commits the source offset every second. */
	for (int64_t end = tk_mono_ms() + WAIT_MS; tk_total_hwm(&src, wt[1]) <= 0;) {
		TK_ASSERT(tk_mono_ms() < end, "no offset in %s", wt[1]);
		tk_sleep_ms(200);
	}
	char *wp = worker_plan(wdir, "workers.yaml", tw, wsrc, tw);

	/* inventory: the three recognised, with their roles; tw is not. */
	tk_kmv(&out, NULL, "inventory", "-p", wp, "--json", NULL);
	doc = tk_json(out);
	free(out);
	inv = json_object_get(doc, "inventory");
	for (i = 0; i < 3; i++) {
		json_t *ci = json_object_get(json_object_get(json_object_get(inv, "topics"), wt[i]),
					     "connect_internal");
		TK_ASSERT(ci, "%s not recognised as the worker's %s topic", wt[i], roles[i]);
		assert_string_equal(json_string_value(json_object_get(ci, "role")), roles[i]);
		int seen = 0;
		size_t j;
		json_array_foreach(json_object_get(ci, "connectors"), j, c)
			seen += !strcmp(json_string_value(c), wsrc);
		assert_int_equal(seen, 1);
		/* the worker's REST list agrees */
		seen = 0;
		json_array_foreach(json_object_get(ci, "listed_by_worker"), j, c)
			seen += !strcmp(json_string_value(c), wsrc);
		assert_int_equal(seen, 1);
	}
	assert_null(json_object_get(json_object_get(json_object_get(inv, "topics"), tw),
				    "connect_internal"));
	int info = 0;
	json_array_foreach(json_object_get(inv, "findings"), i, f) {
		const char *subj = json_string_value(json_object_get(f, "subject"));
		const char *pb = json_string_value(json_object_get(f, "problem"));
		for (int r = 0; r < 3; r++) {
			if (strcmp(subj + 6, wt[r]))
				continue;
			TK_ASSERT(!strstr(pb, "no owner"), "%s: %s", subj, pb);
			TK_ASSERT(strstr(pb, "Connect worker internal topic") &&
					  strstr(pb, roles[r]) && strstr(pb, "KIP-875"),
				  "%s: %s", subj, pb);
			info++;
		}
	}
	assert_int_equal(info, 3);
	json_decref(doc);

	/* plan: none designed */
	tk_kmv(&out, NULL, "plan", "-p", wp, "--json", NULL);
	doc = tk_json(out);
	free(out);
	int designed = 0;
	json_array_foreach(json_object_get(json_object_get(doc, "design"), "topics"), i, c) {
		const char *n = json_string_value(json_object_get(c, "source"));
		for (int r = 0; r < 3; r++)
			TK_ASSERT(strcmp(n, wt[r]), "%s is in the target design", n);
		designed += !strcmp(n, tw);
	}
	assert_int_equal(designed, 1);
	assert_int_equal(json_array_size(json_object_get(json_object_get(doc, "design"),
							 "connect_internal_topics")),
			 3);
	json_decref(doc);

	/* gate of the `all` wave: none of its topics, no NO-GO about them */
	tk_kmv(&out, NULL, "gate", "-p", wp, "cutover", "--wave", "rest", "--json", NULL);
	doc = tk_json(out);
	free(out);
	json_array_foreach(json_object_get(doc, "topics"), i, c)
		for (int r = 0; r < 3; r++)
			TK_ASSERT(strcmp(json_string_value(json_object_get(c, "topic")), wt[r]),
				  "%s is in the wave 'rest'", wt[r]);
	json_array_foreach(json_object_get(doc, "criteria"), i, c) {
		const char *why = json_string_value(json_object_get(c, "reason"));
		const char *name = json_string_value(json_object_get(c, "name"));
		if (!strcmp(name, "cutover.inventory"))
			TK_ASSERT(!strcmp(json_string_value(json_object_get(c, "verdict")), "GO"),
				  "cutover.inventory: %s", why ? why : "");
		TK_ASSERT(!why || !strstr(why, "connect-"), "%s: %s", name, why);
	}
	json_decref(doc);

	/* a wave that names one: NO-GO, one line saying why */
	char *bad = worker_plan(wdir, "workers-bad.yaml", tw, wsrc, wt[0]);
	tk_kmv(&out, NULL, "gate", "-p", bad, "cutover", "--wave", "w", "--json", NULL);
	doc = tk_json(out);
	free(out);
	int nogo = 0;
	json_array_foreach(json_object_get(doc, "criteria"), i, c)
		if (!strcmp(json_string_value(json_object_get(c, "name")), "cutover.worker_topics")) {
			const char *why = json_string_value(json_object_get(c, "reason"));
			assert_string_equal(json_string_value(json_object_get(c, "verdict")), "NO-GO");
			TK_ASSERT(why && strstr(why, wt[0]) && strstr(why, "share") && !strchr(why, '\n'),
				  "reason: %s", why ? why : "(none)");
			nogo++;
		}
	assert_int_equal(nogo, 1);
	assert_string_equal(json_string_value(json_object_get(doc, "verdict")), "NO-GO");
	json_decref(doc);

	free(bad);
	free(wp);
	free(wfile);
	free(wdir);
}

/* ---- a cutover stopped between its authority and connectors steps ---------------- */

static char T3[64], SINK3[64];
static char *plan3, *journal3, *file3;

/* A second migration (its own plan, journal and wave) on the same
 * clusters and workers: a sink alone in its wave.  The other connectors of
 * the workers are declared so that its inventory is about this one. */
static char *write_plan3(void)
{
	char *sub = km_asprintf("%s/auth", dir);
	TK_ASSERT(mkdir(sub, 0700) == 0, "mkdir %s", sub);
	char *text = km_asprintf(
		"migration: it-connect-auth-%d\n"
		"source:\n  bootstrap: %s\n  owner: platform\n  connect_url: %s\n"
		"target:\n  bootstrap: %s\n  owner: platform\n  connect_url: %s\n"
		"topics:\n  include: [\"^%s$\"]\n"
		"  rules:\n    - {match: \".*\", owner: qa, duplicates: none}\n"
		"consumer_groups:\n"
		"  - {id: connect-%s, restart: translated, owner: data, chosen_by: qa}\n"
		"connectors:\n"
		"  - {name: %s, class: FileStreamSink, side_effects: \"appends lines to a file\", "
		"owner: data, idempotent: no, validation: \"every record once in the file\"}\n"
		"consumers:\n"
		"  - {name: %s, group: connect-%s, isolation_level: read_committed, owner: data, "
		"validation: \"the file\", client: java, client_version: 4.3.1}\n"
		"producers:\n"
		"  - {name: writer3, topics: [%s], idempotence: yes, transactions: no, owner: app, "
		"validation: \"acks on the target\", client: librdkafka, client_version: 2.8.0}\n"
		"gates:\n  max_lag_records: 1000000\n"
		"cutover:\n  fence: config\n  fence_owner: platform\n  quiet_period: 1s\n"
		"  waves:\n"
		"    - {name: auth, topics: [%s], producers: [writer3], owner: data}\n",
		(int)getpid(), src.bootstrap, surl, tgt.bootstrap, turl, T3, SINK3, SINK3, SINK3,
		SINK3, T3, T3);
	char *p = tk_write_file(sub, "migration.yaml", text);
	journal3 = km_asprintf("%s/kmigrate.db", sub);
	free(text);
	free(sub);
	return p;
}

/* The evidence report of journal j (`kmigrate report`, from the journal
 * alone): its connectors section lists the connector of wave wn and one
 * row per journaled phase of every connector step, with both states;
 * none has both RUNNING.  @returns the page (free it). */
static char *assert_report_connectors(const char *j, const char *wn, const char *name)
{
	char *out = NULL, *err = NULL, *html_path = km_asprintf("%s.html", j);
	size_t len = 0, phases = 0, rows = 0;
	const char *steps[][2] = {{"cutover.step", "stop-connectors"},
				  {"cutover.step", "connectors"},
				  {"rollback.step", "stop-target-connectors"},
				  {"rollback.step", "connectors-back"},
				  {"rollback.step", "reset"}};
	assert_int_equal(tk_kmv(&out, &err, "report", "--journal", j, "-o", html_path, "--json",
				NULL),
			 0);
	json_t *info = tk_json(out);
	char *html = tk_read_file(html_path, &len);
	TK_ASSERT(strstr(html, "<section id=\"connectors\">"), "no connectors section in %s",
		  html_path);
	char *want = km_asprintf("class=\"connector\" data-wave=\"%s\" data-name=\"%s\"", wn, name);
	TK_ASSERT(strstr(html, want), "no connector row '%s'", want);
	free(want);
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		char *subj = km_asprintf("wave:%s step:%s", wn, steps[s][1]);
		json_t *b = tk_journal_body(j, steps[s][0], subj), *x;
		size_t i;
		json_array_foreach(json_object_get(b, "connectors"), i, x)
			phases += json_array_size(json_object_get(x, "phases"));
		json_decref(b);
		free(subj);
	}
	for (const char *p = html; (p = strstr(p, "class=\"connector-phase")); p++)
		rows++;
	assert_true(phases > 0);
	assert_int_equal(rows, phases);
	assert_int_equal((size_t)json_integer_value(json_object_get(info, "connector_phases")),
			 phases);
	assert_null(strstr(html, "both-running"));
	assert_non_null(strstr(html, "FileStreamSink"));
	json_decref(info);
	free(out);
	free(err);
	free(html_path);
	return html;
}

/* The cutover of a wave with a sink stops right after its authority step
 * (kill -9): the source sink was never stopped (sinks stop in the
 * connectors step) and kept consuming the fenced source topic; the target
 * one never ran.  Records written on the target after the authority are
 * copied back by the rollback, and the source sink simply consumes them:
 * nothing of the connector moves, the journal says so with both states at
 * each step, never both RUNNING.  Killed after connectors-back and re-run,
 * the rollback converges; the file holds every record once, in order. */
static void test_rollback_after_authority(void **state)
{
	json_t *evs;
	(void)state;
	int id = (int)getpid();
	snprintf(T3, sizeof(T3), "cn-%d.auth", id);
	snprintf(SINK3, sizeof(SINK3), "auth-sink-%d", id);
	file3 = km_asprintf("%s/auth.txt", dir);
	tk_create_topic(&src, T3, 1, NULL);
	plan3 = write_plan3();
	create_sink(SINK3, T3, file3);
	for (int i = 0; i < 20; i++) {
		char v[32];
		snprintf(v, sizeof(v), "rec-%d", i);
		tk_produce_one(&src, T3, v);
	}
	wait_lines(file3, 20);
	tk_ready_for_cutover(plan3);
	assert_string_equal(cstate(turl, SINK3), "STOPPED");

	const char *cut[] = {tk_kmigrate(), "cutover", "-p", plan3, "--wave", "auth", "--json", NULL};
	const char *rb[] = {tk_kmigrate(), "rollback", "-p", plan3, "--wave", "auth", "--json", NULL};
	assert_int_equal(tk_km_events(&evs, "KM_CUTOVER_CRASH_AFTER", "authority", cut), 137);
	assert_state(evs, "authority", "done");
	assert_null(tk_event_state(evs, "connectors"));
	json_decref(evs);
	assert_string_equal(cstate(surl, SINK3), "RUNNING");
	assert_string_equal(cstate(turl, SINK3), "STOPPED");
	/* Written on the target once its authority moved. */
	for (int i = 0; i < 5; i++) {
		char v[32];
		snprintf(v, sizeof(v), "after-%d", i);
		tk_produce_one(&tgt, T3, v);
	}

	assert_int_equal(tk_km_events(&evs, "KM_ROLLBACK_CRASH_AFTER", "connectors-back", rb), 137);
	assert_state(evs, "connectors-back", "done");
	json_decref(evs);
	assert_string_equal(cstate(surl, SINK3), "RUNNING");
	assert_string_equal(cstate(turl, SINK3), "STOPPED");
	assert_int_equal(tk_km_events(&evs, NULL, NULL, rb), 0);
	assert_state(evs, "connectors-back", "already-done");
	assert_state(evs, "offsets-back", "done");
	assert_state(evs, "reset", "done");
	json_decref(evs);
	assert_string_equal(cstate(surl, SINK3), "RUNNING");
	assert_string_equal(cstate(turl, SINK3), "STOPPED");

	/* The evidence: both states at each step, never both RUNNING; the
	 * connector did not move (no offsets written anywhere). */
	const char *jsave = journal;
	journal = journal3;
	assert_int_equal(assert_never_both("rollback.step", "wave:auth step:connectors-back"), 1);
	assert_int_equal(assert_never_both("rollback.step", "wave:auth step:reset"), 1);
	journal = (char *)jsave;
	json_t *b = tk_journal_body(journal3, "rollback.step", "wave:auth step:connectors-back");
	json_t *ph = json_array_get(json_object_get(json_array_get(json_object_get(b, "connectors"), 0),
						    "phases"),
				    1);
	assert_string_equal(json_string_value(json_object_get(ph, "phase")), "not-moved");
	assert_string_equal(json_string_value(json_object_get(ph, "source_state")), "RUNNING");
	assert_string_equal(json_string_value(json_object_get(ph, "target_state")), "STOPPED");
	json_decref(b);
	b = tk_journal_body(journal3, "rollback.step", "wave:auth step:offsets-back");
	TK_ASSERT(b && json_array_size(json_object_get(b, "skipped")) == 1,
		  "offsets-back did not leave the unmoved sink's group alone");
	json_decref(b);

	/* The file: the source topic (the copied-back records included), once
	 * each, in order; a record produced on the source now follows. */
	json_t *vals = tk_values(&src, T3, 0);
	assert_int_equal((int)json_array_size(vals), 25);
	assert_string_equal(json_string_value(json_array_get(vals, 24)), "after-4");
	json_decref(vals);
	assert_file_is_topic(file3, &src, T3);
	tk_produce_one(&src, T3, "back-0");
	assert_file_is_topic(file3, &src, T3);

	/* The evidence report shows it: the connector, and the row of
	 * connectors-back that says it did not move, source RUNNING, target
	 * STOPPED. */
	char *html = assert_report_connectors(journal3, "auth", SINK3);
	char *row = km_asprintf("data-command=\"rollback\" data-step=\"connectors-back\" "
				"data-connector=\"%s\" data-phase=\"not-moved\"",
				SINK3);
	char *at = strstr(html, row), *end = at ? strstr(at, "</tr>") : NULL;
	TK_ASSERT(at && end, "no not-moved row for %s in the report", SINK3);
	*end = 0;
	assert_non_null(strstr(at, "<td>RUNNING</td><td>STOPPED</td>"));
	free(row);
	free(html);

	/* Leave the workers as the other cases expect them. */
	char *p = km_asprintf("/connectors/%s", SINK3);
	json_decref(rest(surl, "DELETE", p, NULL));
	json_decref(rest(turl, "DELETE", p, NULL));
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_sink_cutover),
		cmocka_unit_test(test_rollback_before),
		cmocka_unit_test(test_no_stop_nogo),
		cmocka_unit_test(test_rollback_after),
		cmocka_unit_test(test_worker_topics),
		cmocka_unit_test(test_rollback_after_authority),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
