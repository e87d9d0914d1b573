/*
 * Metrics and the monitor on real clusters (Kafka 3.9 source -> 4.3
 * target), every value checked against what the test kit reads from the
 * clusters itself:
 *   - replicate --metrics-addr with a live producer on the source: the lag
 *     and copied-record series move, `promtool check metrics` accepts the
 *     scrape, and once the producer stops the copied records equal the
 *     source's high watermark and the lag is 0;
 *   - Debian's prometheus, started here on loopback, scrapes it and a
 *     PromQL query through its HTTP API returns the lag series; a PromQL
 *     trigger evaluated by monitor against it has a value, one whose query
 *     returns nothing is unknown and fires;
 *   - a trigger on a target group's lag (nothing consumes) fires within its
 *     for: plus one interval, is journaled, and --exit-on-trigger exits 4;
 *   - a trigger whose condition clears before its for: does not fire;
 *   - a group of a cut-over wave still consuming on the source is a stale
 *     reader, shown with its owner and journaled;
 *   - monitor's lag in seconds (the age of the oldest uncopied record,
 *     read on the source) moves while nothing copies;
 *   - /metrics shows each gate's verdict and each topic's authority and
 *     fence as `kmigrate gate --json` and `kmigrate status --json` say;
 *   - the canary, on the SASL cluster (ktest-secure: principals can be
 *     told apart, unlike ktest-target's ANONYMOUS super user): it writes
 *     only to its declared topic and reads back as its own principal, and
 *     a trigger on its authorization failures fires once an ACL DENY
 *     refuses it;
 *   - connector health: a Kafka Connect worker on the target (started
 *     here), one sink RUNNING and one whose task FAILED: their state
 *     gauges, the task failure counted once, a trigger on it firing;
 *   - --emit-rules passes `promtool check rules`;
 *   - bad input: an unparsable trigger, an unknown metric, a PromQL trigger
 *     without a Prometheus URL (exit 2), a port in use (exit 3): one line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "connect.h"
#include "cutover.h"
#include "gate.h"
#include "mapstore.h"
#include "tk.h"
#include "util.h"

static tk_cluster_t src, tgt;
static char T_REPL[64], T_LAG[64], T_CLEAR[64], T_STALE[64], GROUP[64], GROUP2[64];
static int port_base;
static pid_t prom_pid = -1;
static char *prom_dir;
static char worker_name[64]; /* the Connect worker, while it runs */

/* Ports: 18400 + KM_TEST_PORT_OFFSET and up (other checkouts shift by 10). */
static int port(int i)
{
	return port_base + i;
}

/* ---- HTTP --------------------------------------------------------------------- */

static size_t sink(char *p, size_t s, size_t n, void *o)
{
	km_sb_add(o, p, s * n);
	return s * n;
}

/* GET url: @returns the body (owned) or NULL when it cannot be fetched. */
static char *http_get(const char *url)
{
	CURL *c = curl_easy_init();
	km_sb_t sb = KM_SB_INIT;
	long code = 0;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sb);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	CURLcode rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK || code != 200) {
		km_sb_free(&sb);
		return NULL;
	}
	return km_sb_detach(&sb);
}

static char *scrape(int p)
{
	char url[100];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", p);
	return http_get(url);
}

/* The sum of a metric's samples in a scrape whose line contains every
 * given substring (NULL-terminated); *nseries gets how many matched.
 * -1 when none. */
static double metric_sum(const char *text, const char *name, int *nseries, ...)
{
	double sum = 0;
	int n = 0;
	size_t nl = strlen(name);

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *end = strchr(l, '\n');
		size_t len = end ? (size_t)(end - l) : strlen(l);
		char line[2048];
		if (*l == '#' || len >= sizeof(line) || strncmp(l, name, nl) ||
		    (l[nl] != '{' && l[nl] != ' '))
			continue;
		memcpy(line, l, len);
		line[len] = '\0';
		va_list ap;
		va_start(ap, nseries);
		bool ok = true;
		for (const char *s; ok && (s = va_arg(ap, const char *));)
			ok = strstr(line, s) != NULL;
		va_end(ap);
		if (!ok)
			continue;
		sum += strtod(strrchr(line, ' ') + 1, NULL);
		n++;
	}
	if (nseries)
		*nseries = n;
	return n ? sum : -1;
}

/* `promtool check metrics` accepts the exposition text. */
static void promtool_check_metrics(const char *text)
{
	char *dir = tk_tmpdir("monitor-scrape");
	char *mf = tk_write_file(dir, "scrape.txt", text);
	char cmd[900];
	snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' 2>&1", mf);
	const char *sh[] = {"/bin/sh", "-c", cmd, NULL};
	char *pout = NULL, *perr = NULL;
	int prc = tk_run(&pout, &perr, sh);
	TK_ASSERT(prc == 0, "promtool check metrics: exit %d: %s", prc, pout);
	free(pout);
	free(perr);
	free(mf);
	free(dir);
}

/* ---- prometheus ------------------------------------------------------------------ */

/* Stops the Connect worker test_connector_health started (and wipes its
 * state); at exit or on a fatal signal too. */
static void worker_stop(void)
{
	if (!worker_name[0])
		return;
	const char *cache = getenv("KM_CONNECT_CACHE");
	char *line = km_asprintf("KM_CACHE='%s' '%s' stop %s --wipe >/dev/null 2>&1",
				 cache ? cache : "", getenv("KM_CONNECT_WORKER"), worker_name);
	worker_name[0] = '\0';
	if (system(line) != 0)
		fprintf(stderr, "test_monitor: the Connect worker did not stop cleanly\n");
	free(line);
}

static void prom_stop(void)
{
	worker_stop();
	if (prom_pid > 0) {
		kill(prom_pid, SIGTERM);
		if (tk_wait_exit(prom_pid, 30000) < 0)
			kill(prom_pid, SIGKILL);
		prom_pid = -1;
	}
}

static void prom_stop_signal(int sig)
{
	if (prom_pid > 0)
		kill(prom_pid, SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Starts Debian's prometheus on 127.0.0.1:port(2), scraping kmigrate on
 * port(0) every second, its storage in its own directory. */
static void prom_start(void)
{
	char cfg[600], listen[64], cfgflag[600], store[600];

	prom_dir = tk_tmpdir("monitor-prometheus");
	snprintf(cfg, sizeof(cfg),
		 "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
		 "scrape_configs:\n  - job_name: kmigrate\n    static_configs:\n"
		 "      - targets: ['127.0.0.1:%d', '127.0.0.1:%d']\n",
		 port(0), port(1));
	char *path = tk_write_file(prom_dir, "prometheus.yml", cfg);
	snprintf(cfgflag, sizeof(cfgflag), "--config.file=%s", path);
	snprintf(store, sizeof(store), "--storage.tsdb.path=%s/data", prom_dir);
	snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", port(2));
	char log[700];
	snprintf(log, sizeof(log), "%s/prometheus.log", prom_dir);
	const char *argv[] = {"/usr/bin/prometheus", cfgflag, store, listen, NULL};
	prom_pid = tk_spawn(argv, log);
	free(path);
	char url[100];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/-/ready", port(2));
	for (int i = 0; i < 600; i++) {
		char *b = http_get(url);
		free(b);
		if (b)
			return;
		tk_sleep_ms(100);
	}
	tk_fail("prometheus did not become ready on port %d (log %s)", port(2), log);
}

/* ---- helpers ------------------------------------------------------------------------ */

static char *make_plan(const char *name, const char *topic, const char *extra)
{
	char mig[128], inc[160];
	snprintf(mig, sizeof(mig), "%s-%d", name, (int)getpid());
	snprintf(inc, sizeof(inc), "\"^%s$\"", topic);
	return tk_plan(&src, &tgt, name, mig, inc, extra);
}

static char *journal_of(const char *plan)
{
	char *j = km_strdup(plan);
	strcpy(strrchr(j, '/') + 1, "kmigrate.db");
	return j;
}

/* Runs kmigrate, asserts exit want and a one-line stderr containing
 * `says`. */
static void bad_input(int want, const char *says, ...)
{
	const char *argv[16];
	int n = 0;
	va_list ap;
	va_start(ap, says);
	argv[n++] = tk_kmigrate();
	while (n < 15 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	char *out = NULL, *err = NULL;
	int rc = tk_run(&out, &err, argv);
	TK_ASSERT(rc == want, "%s %s: exit %d, want %d: %s", argv[1], argv[2], rc, want, err);
	TK_ASSERT(strstr(err, says), "stderr lacks '%s': %s", says, err);
	TK_ASSERT(strchr(err, '\n') == err + strlen(err) - 1, "not one line: %s", err);
	free(out);
	free(err);
}

/* Writes the authority record a cutover's authority step writes: topic
 * (of wave w1) of migration mig is the target's. */
static void authority_moved(const char *mig, const char *topic)
{
	char atopic[300], e[512];
	km_mapstore_authority_topic(mig, atopic, sizeof(atopic));
	const char *compact[] = {"cleanup.policy", "compact", NULL};
	tk_create_topic(&tgt, atopic, 1, compact);
	km_kafka_endpoint_t ep = {.role = "target", .bootstrap = tgt.bootstrap};
	json_t *topics = json_pack("[s]", topic);
	TK_ASSERT(!km_cutover_write_authority(&ep, atopic, "target", "w1", 1, topics, e, sizeof(e)),
		  "%s", e);
	json_decref(topics);
}

/* Starts `monitor -p plan --metrics-addr 127.0.0.1:port(i)` in the
 * background, its output in log (log_size bytes; "<plan>.monitor.log"). */
static pid_t monitor_spawn(const char *plan, int i, char *log, size_t log_size)
{
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port(i));
	snprintf(log, log_size, "%s.monitor.log", plan);
	const char *argv[] = {tk_kmigrate(), "monitor", "-p", plan, "--metrics-addr", addr, NULL};
	return tk_spawn(argv, log);
}

static int group_setup(void **state)
{
	(void)state;
	tk_cluster_from_env(&src, "KM_TEST_SOURCE");
	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	port_base = 18400 + (getenv("KM_TEST_PORT_OFFSET") ? atoi(getenv("KM_TEST_PORT_OFFSET")) : 0);
	int id = (int)getpid();
	snprintf(T_REPL, sizeof(T_REPL), "mon-%d.repl", id);
	snprintf(T_LAG, sizeof(T_LAG), "mon-%d.lag", id);
	snprintf(T_CLEAR, sizeof(T_CLEAR), "mon-%d.clear", id);
	snprintf(GROUP, sizeof(GROUP), "mon-%d.group", id);
	snprintf(T_STALE, sizeof(T_STALE), "mon-%d.stale", id);
	snprintf(GROUP2, sizeof(GROUP2), "mon-%d.stale-group", id);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* prometheus is stopped even when a case fails: the group teardown,
	 * and at exit or on a fatal signal. */
	atexit(prom_stop);
	signal(SIGABRT, prom_stop_signal);
	signal(SIGSEGV, prom_stop_signal);
	signal(SIGTERM, prom_stop_signal);
	signal(SIGINT, prom_stop_signal);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	prom_stop();
	return 0;
}

/* ---- cases ---------------------------------------------------------------------------- */

static void test_replicate_metrics_and_prometheus(void **state)
{
	(void)state;
	char addr[64], *plan, *text = NULL, *err = NULL;
	const char *props[] = {NULL};
	int n;

	tk_create_topic(&src, T_REPL, 2, NULL);
	/* A backlog first, 6 MB per partition: the copy then sends full
	 * batches while a chunk fills, so a chunk's end finds produce requests
	 * out, which is where the drains' count of them matters (below). */
	static char val[1024];
	memset(val, 'v', sizeof(val));
	rd_kafka_t *bp = tk_producer(&src, NULL);
	for (int i = 0; i < 12000; i++) {
		tk_msg_t m = {.key = "k", .value = val, .value_len = sizeof(val), .partition = i % 2};
		tk_produce(bp, T_REPL, &m);
	}
	tk_flush(bp);
	rd_kafka_destroy(bp);
	plan = make_plan("mon-repl", T_REPL, NULL);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	tk_writer_t *w = tk_writer_start(&src, T_REPL, props);
	TK_ASSERT(tk_writer_wait(w, 20, 0, 60000), "the writer did not start");

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port(0));
	char log[600];
	snprintf(log, sizeof(log), "%s.replicate.log", plan);
	const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, "--metrics-addr", addr, NULL};
	pid_t rp = tk_spawn(argv, log);

	/* The copied-record counter appears and moves while the writer writes. */
	double first = -1, later = -1;
	for (int i = 0; i < 1200 && first <= 0; i++, tk_sleep_ms(100)) {
		free(text);
		if ((text = scrape(port(0))))
			first = metric_sum(text, "kmigrate_replication_records_total", &n, NULL);
	}
	TK_ASSERT(first > 0, "no kmigrate_replication_records_total > 0 in: %s",
		  text ? text : "(no scrape)");
	for (int i = 0; i < 1200 && later <= first; i++, tk_sleep_ms(100)) {
		free(text);
		if ((text = scrape(port(0))))
			later = metric_sum(text, "kmigrate_replication_records_total", &n, NULL);
	}
	TK_ASSERT(later > first, "records_total did not move from %g", first);
	/* Lag per partition of the topic, never more than the source holds.
	 * The lag is measured once a second, the records counted at each
	 * commit: two commits can come before the first measure. */
	double lag = metric_sum(text, "kmigrate_replication_lag_records", &n, T_REPL, NULL);
	for (int i = 0; i < 300 && n != 2; i++, tk_sleep_ms(100)) {
		free(text);
		if ((text = scrape(port(0))))
			lag = metric_sum(text, "kmigrate_replication_lag_records", &n, T_REPL, NULL);
	}
	TK_ASSERT(n == 2, "want 2 kmigrate_replication_lag_records series of %s in: %s", T_REPL,
		  text ? text : "(no scrape)");
	TK_ASSERT(lag >= 0 && lag <= (double)tk_total_hwm(&src, T_REPL), "lag %g", lag);
	assert_true(metric_sum(text, "kmigrate_replication_tasks_owned", &n, NULL) >= 1);
	assert_true(metric_sum(text, "kmigrate_replication_transactions_total", &n,
			       "committed", NULL) >= 1);
	/* Every chunk's end found its moment to flush (no request out, no
	 * full batch left) inside the 2 s bound; with the backlog, full
	 * batches were out at the chunks' ends, so a count of produce
	 * requests that never came down would leave the last batches to
	 * linger.ms: "unflushed" (docs/internals/replication.md, "CPU per
	 * byte").  No series is -1 here. */
	TK_ASSERT(metric_sum(text, "kmigrate_replication_drains_total", &n, "\"flushed\"", NULL) >= 1,
		  "no flushed drain in: %s", text);
	TK_ASSERT(metric_sum(text, "kmigrate_replication_drains_total", &n, "unflushed", NULL) <= 0 &&
		  metric_sum(text, "kmigrate_replication_drains_total", &n, "bounded", NULL) <= 0,
		  "a drain did not end with its flush: %s", text);

	promtool_check_metrics(text);

	/* Prometheus scrapes it; its HTTP API returns the lag series. */
	prom_start();
	char url[400];
	snprintf(url, sizeof(url),
		 "http://127.0.0.1:%d/api/v1/query?query=kmigrate_replication_lag_records", port(2));
	json_t *res = NULL;
	for (int i = 0; i < 600; i++, tk_sleep_ms(200)) {
		char *b = http_get(url);
		json_decref(res);
		res = b ? tk_json(b) : NULL;
		free(b);
		if (res && json_array_size(json_object_get(json_object_get(res, "data"), "result")) >= 2)
			break;
	}
	json_t *result = json_object_get(json_object_get(res, "data"), "result");
	TK_ASSERT(json_array_size(result) >= 2, "prometheus has no lag series");
	json_t *metric = json_object_get(json_array_get(result, 0), "metric");
	assert_string_equal(json_string_value(json_object_get(metric, "topic")), T_REPL);
	assert_string_equal(json_string_value(json_object_get(metric, "job")), "kmigrate");
	json_decref(res);

	/* The producer stops: the copy catches up and agrees with the source. */
	tk_writer_stop(w);
	int64_t hwm = tk_total_hwm(&src, T_REPL);
	double copied = -1;
	lag = -1;
	for (int i = 0; i < 1200; i++, tk_sleep_ms(100)) {
		free(text);
		if (!(text = scrape(port(0))))
			continue;
		copied = metric_sum(text, "kmigrate_replication_records_total", &n, NULL);
		lag = metric_sum(text, "kmigrate_replication_lag_records", &n, T_REPL, NULL);
		if (copied == (double)hwm && lag == 0)
			break;
	}
	TK_ASSERT(copied == (double)hwm && lag == 0,
		  "copied %g (source high watermark %lld), lag %g", copied, (long long)hwm, lag);
	assert_true(metric_sum(text, "kmigrate_replication_lag_seconds", &n, T_REPL, NULL) == 0);

	/* monitor, with PromQL triggers against this Prometheus: a query with
	 * a value is measured (and, below its threshold, does not fire); a
	 * query that returns nothing is unknown, which fires. */
	char extra[1200];
	snprintf(extra, sizeof(extra),
		 "monitoring: {prometheus_url: 'http://127.0.0.1:%d', interval: 1s}\n"
		 "rollback:\n  triggers:\n"
		 "    - {name: copied, query: 'sum(kmigrate_replication_records_total)', op: '<', "
		 "threshold: 0}\n"
		 "    - {name: nothing, query: 'kmigrate_no_such_metric', threshold: 1}\n",
		 port(2));
	char *mplan = make_plan("mon-promql", T_REPL, extra);
	char *mout = NULL, *merr = NULL;
	const char *margv[] = {tk_kmigrate(), "monitor", "-p", mplan, "--once", "--json", NULL};
	int mrc = tk_run(&mout, &merr, margv);
	TK_ASSERT(mrc == 0, "monitor --once: exit %d: %s", mrc, merr);
	json_t *s = tk_json(mout);
	json_t *trs = json_object_get(s, "triggers");
	json_t *t0 = json_array_get(trs, 0), *t1 = json_array_get(trs, 1);
	TK_ASSERT(json_is_number(json_object_get(t0, "value")) &&
			  json_number_value(json_object_get(t0, "value")) > 0,
		  "PromQL trigger without a value: %s", mout);
	assert_string_equal(json_string_value(json_object_get(t0, "state")), "inactive");
	assert_true(json_is_true(json_object_get(t1, "unknown")));
	assert_string_equal(json_string_value(json_object_get(t1, "state")), "firing");
	json_decref(s);
	free(mout);
	free(merr);
	mout = merr = NULL;
	free(mplan);

	kill(rp, SIGTERM);
	int rc = tk_wait_exit(rp, 120000);
	TK_ASSERT(rc == 0, "replicate exited %d (log %s)", rc, log);

	/* Nothing copies any more: new source records are lag, and monitor's
	 * lag in seconds -- the age of the oldest of them, read on the
	 * source -- grows from one sample to the next. */
	int64_t produced_at = (int64_t)time(NULL) * 1000;
	rd_kafka_t *p = tk_producer(&src, NULL);
	for (int i = 0; i < 5; i++) {
		tk_msg_t m = {.key = "k", .value = "late", .partition = 0};
		tk_produce(p, T_REPL, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	double secs[2];
	for (int k = 0; k < 2; k++) {
		const char *largv[] = {tk_kmigrate(), "monitor", "-p", plan, "--once", "--json", NULL};
		if (k)
			tk_sleep_ms(2000);
		mrc = tk_run(&mout, &merr, largv);
		TK_ASSERT(mrc == 0, "monitor --once: exit %d: %s", mrc, merr);
		s = tk_json(mout);
		json_t *tot = json_object_get(s, "totals");
		int64_t sampled = json_integer_value(json_object_get(s, "at"));
		TK_ASSERT(json_integer_value(json_object_get(tot, "replication_lag")) == 5,
			  "replication lag (records) not 5: %s", mout);
		TK_ASSERT(json_is_number(json_object_get(tot, "replication_lag_seconds")),
			  "no lag in seconds: %s", mout);
		secs[k] = json_number_value(json_object_get(tot, "replication_lag_seconds"));
		/* The oldest uncopied record is one of ours: its age is at most
		 * the time since we produced it (plus a second of clock
		 * granularity). */
		TK_ASSERT(secs[k] >= 0 && secs[k] <= (double)(sampled - produced_at) / 1000.0 + 1.0,
			  "lag %g s, produced %lld ms before the sample", secs[k],
			  (long long)(sampled - produced_at));
		json_decref(s);
		free(mout);
		free(merr);
	}
	TK_ASSERT(secs[1] >= secs[0] + 1.5, "the lag in seconds did not move: %g then %g", secs[0],
		  secs[1]);
	free(text);
	free(err);
	free(plan);
}

/* The target topic T holds 20 records and GROUP committed 0 on it there:
 * lag 20, and nothing consumes. */
static void lagging_group(const char *topic)
{
	tk_create_topic(&src, topic, 1, NULL);
	tk_create_topic(&tgt, topic, 1, NULL);
	rd_kafka_t *p = tk_producer(&tgt, NULL);
	for (int i = 0; i < 20; i++) {
		tk_msg_t m = {.key = "k", .value = "v", .partition = 0};
		tk_produce(p, topic, &m);
	}
	tk_flush(p);
	rd_kafka_destroy(p);
	tk_commit(&tgt, GROUP, topic, 0, 0);
}

static char *trigger_plan_ex(const char *name, const char *topic, const char *for_s,
			     const char *rollback_extra)
{
	char extra[900];
	snprintf(extra, sizeof(extra),
		 "consumer_groups:\n  - {id: %s, owner: team-a}\n"
		 "cutover:\n  waves:\n    - {name: w1, topics: ['%s'], groups: ['%s']}\n"
		 "monitoring: {interval: 1s}\n"
		 "rollback:\n%s  triggers:\n"
		 "    - {name: target-lag, metric: kmigrate_consumer_group_lag_records,\n"
		 "       labels: {cluster: target, group: %s}, threshold: 5, for: %s, wave: w1,\n"
		 "       owner: team-a}\n",
		 GROUP, topic, GROUP, rollback_extra, GROUP, for_s);
	return make_plan(name, topic, extra);
}

static char *trigger_plan(const char *name, const char *topic, const char *for_s)
{
	return trigger_plan_ex(name, topic, for_s, "");
}

static void test_trigger_fires(void **state)
{
	(void)state;
	lagging_group(T_LAG);
	char *plan = trigger_plan("mon-fire", T_LAG, "3s");
	char *journal = journal_of(plan);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port(1));
	const char *argv[] = {tk_kmigrate(), "monitor", "-p", plan, "--exit-on-trigger", "--json",
			      "--metrics-addr", addr, NULL};
	char *out = NULL, *err = NULL;
	int rc = tk_run(&out, &err, argv);
	TK_ASSERT(rc == 4, "monitor --exit-on-trigger: exit %d, want 4: %s", rc, err);
	TK_ASSERT(strstr(err, "rollback trigger 'target-lag' FIRED") &&
			  strstr(err, "kmigrate rollback -p") && strstr(err, "--wave w1"),
		  "stderr: %s", err);
	/* The firing sample: pending for at least for:, at most for: plus one
	 * interval (and that sample's own time) after it started holding. */
	json_t *fired = NULL;
	for (char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		json_t *s = json_loads(l, JSON_DISABLE_EOF_CHECK, NULL);
		json_t *t = s ? json_array_get(json_object_get(s, "triggers"), 0) : NULL;
		if (t && json_is_true(json_object_get(t, "fired")))
			fired = json_incref(s);
		json_decref(s);
	}
	TK_ASSERT(fired, "no firing sample in: %s", out);
	json_t *t = json_array_get(json_object_get(fired, "triggers"), 0);
	json_int_t at = json_integer_value(json_object_get(fired, "at"));
	json_int_t since = json_integer_value(json_object_get(t, "pending_since"));
	json_int_t dur = json_integer_value(json_object_get(fired, "duration_ms"));
	TK_ASSERT(at - since >= 3000 && at - since <= 3000 + 1000 + dur + 1000,
		  "fired %lld ms after it started holding (for 3 s, interval 1 s)",
		  (long long)(at - since));
	assert_true(json_number_value(json_object_get(t, "value")) == 20);
	assert_true(json_array_size(json_object_get(t, "evidence")) >= 3);
	json_decref(fired);
	/* Journaled, once, with its evidence and the rollback command. */
	assert_int_equal(tk_journal_count(journal, "monitor.trigger", "trigger:target-lag"), 1);
	json_t *body = tk_journal_body(journal, "monitor.trigger", "trigger:target-lag");
	assert_non_null(body);
	assert_non_null(strstr(json_string_value(json_object_get(body, "rollback_command")),
			       "--wave w1"));
	assert_true(json_array_size(json_object_get(body, "evidence")) >= 1);
	json_decref(body);
	assert_true(tk_journal_count(journal, "monitor.sample", "") >= 3);
	free(out);
	free(err);
	free(journal);
	free(plan);
}

/* rollback.automatic: the firing runs the wave's rollback (here there is
 * no cutover attempt to undo: the engine says "nothing"), journaled. */
static void test_automatic_rollback(void **state)
{
	(void)state;
	char *plan = trigger_plan_ex("mon-auto", T_LAG, "0s", "  automatic: true\n");
	char *journal = journal_of(plan);
	const char *argv[] = {tk_kmigrate(), "monitor", "-p", plan, "--exit-on-trigger", NULL};
	char *out = NULL, *err = NULL;
	int rc = tk_run(&out, &err, argv);
	TK_ASSERT(rc == 4, "monitor: exit %d, want 4: %s", rc, err);
	TK_ASSERT(strstr(out, "automatic rollback of wave 'w1' done"), "stdout: %s", out);
	json_t *body = tk_journal_body(journal, "monitor.rollback", "wave:w1");
	TK_ASSERT(body, "no monitor.rollback fact");
	assert_string_equal(json_string_value(json_object_get(body, "result")), "nothing");
	json_decref(body);
	assert_int_equal(tk_journal_count(journal, "monitor.trigger", "trigger:target-lag"), 1);
	free(out);
	free(err);
	free(journal);
	free(plan);
}

static void test_trigger_clears_before_for(void **state)
{
	(void)state;
	lagging_group(T_CLEAR);
	char *plan = trigger_plan("mon-clear", T_CLEAR, "60s");
	char *journal = journal_of(plan);
	char log[600];
	snprintf(log, sizeof(log), "%s.monitor.log", plan);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port(1));
	const char *argv[] = {tk_kmigrate(), "monitor", "-p", plan, "--json", "--metrics-addr",
			      addr, NULL};
	pid_t mp = tk_spawn(argv, log);
	/* Pending first ... */
	bool pending = false, inactive = false;
	for (int i = 0; i < 600 && !pending; i++, tk_sleep_ms(100)) {
		char *l = tk_read_file(log, NULL);
		pending = l && strstr(l, "\"state\":\"pending\"");
		free(l);
	}
	TK_ASSERT(pending, "the trigger never became pending (log %s)", log);
	/* monitor's /metrics says so too, with the group's lag on the target. */
	char *text = scrape(port(1));
	TK_ASSERT(text, "no scrape of monitor on port %d", port(1));
	int n;
	assert_true(metric_sum(text, "kmigrate_trigger_pending", &n, "target-lag", NULL) == 1);
	assert_true(metric_sum(text, "kmigrate_consumer_group_lag_records", &n, "cluster=\"target\"",
			       GROUP, T_CLEAR, NULL) == 20);
	assert_true(metric_sum(text, "kmigrate_topic_authority", &n, T_CLEAR,
			       "authority=\"source\"", NULL) == 1);
	promtool_check_metrics(text);
	free(text);
	/* ... then the group consumes up to the end: the condition clears. */
	tk_commit(&tgt, GROUP, T_CLEAR, 0, 20);
	for (int i = 0; i < 600 && !inactive; i++, tk_sleep_ms(100)) {
		char *l = tk_read_file(log, NULL);
		char *p = l ? strstr(l, "\"state\":\"pending\"") : NULL;
		inactive = p && strstr(p, "\"state\":\"inactive\"");
		free(l);
	}
	TK_ASSERT(inactive, "the trigger did not clear (log %s)", log);
	kill(mp, SIGTERM);
	assert_int_equal(tk_wait_exit(mp, 60000), 0);
	char *l = tk_read_file(log, NULL);
	assert_null(strstr(l, "\"fired\":true"));
	assert_null(strstr(l, "\"state\":\"firing\""));
	free(l);
	assert_int_equal(tk_journal_count(journal, "monitor.trigger", ""), 0);
	free(journal);
	free(plan);
}

/* A wave whose authority moved to the target, one of its groups still
 * with a member on the source: a stale reader, with its owner, journaled. */
static void test_stale_reader(void **state)
{
	(void)state;
	char extra[800];
	snprintf(extra, sizeof(extra),
		 "consumer_groups:\n  - {id: %s, owner: team-b}\n"
		 "cutover:\n  waves:\n    - {name: w1, topics: ['%s'], groups: ['%s']}\n",
		 GROUP2, T_STALE, GROUP2);
	char *plan = make_plan("mon-stale", T_STALE, extra);
	char *journal = journal_of(plan);
	char mig[128];
	snprintf(mig, sizeof(mig), "mon-stale-%d", (int)getpid());
	tk_create_topic(&src, T_STALE, 1, NULL);
	tk_create_topic(&tgt, T_STALE, 1, NULL);
	authority_moved(mig, T_STALE);
	pid_t member = tk_member_start(&src, GROUP2, T_STALE, "stale-client");

	char *out = NULL, *err = NULL;
	const char *argv[] = {tk_kmigrate(), "monitor", "-p", plan, "--once", "--json", NULL};
	int rc = tk_run(&out, &err, argv);
	tk_member_stop(member);
	TK_ASSERT(rc == 0, "monitor --once: exit %d: %s", rc, err);
	json_t *s = tk_json(out);
	json_t *st = json_array_get(json_object_get(s, "stale_readers"), 0);
	TK_ASSERT(st, "no stale reader in %s", out);
	assert_string_equal(json_string_value(json_object_get(st, "group")), GROUP2);
	assert_string_equal(json_string_value(json_object_get(st, "wave")), "w1");
	assert_string_equal(json_string_value(json_object_get(st, "owner")), "team-b");
	assert_int_equal(json_integer_value(json_object_get(st, "members")), 1);
	assert_non_null(strstr(json_string_value(json_object_get(st, "clients")), "stale-client"));
	json_decref(s);
	assert_int_equal(tk_journal_count(journal, "monitor.stale-reader", "group:"), 1);
	free(out);
	free(err);
	free(journal);
	free(plan);
}

/* Every series of name in a scrape whose line holds each of the
 * substrings: 1 when exactly one matched, its value in *vp. */
static int one_series(const char *text, const char *name, double *vp, const char *l1,
		      const char *l2)
{
	int n = 0;
	*vp = metric_sum(text, name, &n, l1, l2, NULL);
	return n;
}

/* What /metrics says of the gates, the authority and the fences is what
 * `kmigrate gate --json` and `kmigrate status --json` say. */
static void test_metrics_agree_with_gate_and_status(void **state)
{
	(void)state;
	char t1[80], t2[80], extra[800], mig[128], lab[200];
	int id = (int)getpid();
	snprintf(t1, sizeof(t1), "mon-%d.agree1", id);
	snprintf(t2, sizeof(t2), "mon-%d.agree2", id);
	snprintf(mig, sizeof(mig), "mon-agree-%d", id);
	snprintf(extra, sizeof(extra),
		 "cutover:\n  waves:\n    - {name: w1, topics: ['%s']}\n"
		 "    - {name: w2, topics: ['%s']}\n"
		 "monitoring: {interval: 1s}\n",
		 t1, t2);
	char inc[200];
	snprintf(inc, sizeof(inc), "\"^%s$\", \"^%s$\"", t1, t2);
	char *plan = tk_plan(&src, &tgt, "mon-agree", mig, inc, extra);
	for (int i = 0; i < 2; i++) {
		tk_create_topic(&src, i ? t2 : t1, 1, NULL);
		tk_create_topic(&tgt, i ? t2 : t1, 1, NULL);
	}
	/* w1's authority moved to the target; w2's did not. */
	authority_moved(mig, t1);

	char log[600];
	pid_t mp = monitor_spawn(plan, 5, log, sizeof(log));
	char *text = NULL;
	double v;
	int gates_seen = 0;
	for (int i = 0; i < 1200; i++, tk_sleep_ms(100)) {
		free(text);
		if (!(text = scrape(port(5))))
			continue;
		metric_sum(text, "kmigrate_gate_verdict", &gates_seen, NULL);
		if (gates_seen >= 14 && one_series(text, "kmigrate_topic_authority", &v, t2, NULL))
			break;
	}
	kill(mp, SIGTERM);
	TK_ASSERT(tk_wait_exit(mp, 60000) == 0, "monitor did not stop cleanly (log %s)", log);
	TK_ASSERT(gates_seen == 14, "%d gate verdict series, want 7 gates x 2 waves: %s", gates_seen,
		  text);

	/* Gates: monitor's verdict is the gate command's, for each of w1's. */
	int go = 0;
	for (int g = 0; km_gate_names[g]; g++) {
		char *out = NULL, *err = NULL;
		const char *gargv[] = {tk_kmigrate(), "gate", km_gate_names[g], "--wave", "w1",
				       "-p", plan, "--json", NULL};
		int rc = tk_run(&out, &err, gargv);
		TK_ASSERT(rc == 0 || rc == 1, "gate %s: exit %d: %s", km_gate_names[g], rc, err);
		json_t *rep = tk_json(out);
		bool is_go = !strcmp(json_string_value(json_object_get(rep, "verdict")), "GO");
		snprintf(lab, sizeof(lab), "gate=\"%s\"", km_gate_names[g]);
		TK_ASSERT(one_series(text, "kmigrate_gate_verdict", &v, lab, "wave=\"w1\"") == 1 &&
				  v == (is_go ? 1 : 0),
			  "gate %s: /metrics says %g, gate --json says %s", km_gate_names[g], v,
			  is_go ? "GO" : "NO-GO");
		go += is_go;
		json_decref(rep);
		free(out);
		free(err);
	}
	assert_true(go < 7); /* nothing was replicated: not every gate is GO */

	/* Authority and fences: as status --json says, topic by topic. */
	char *out = NULL, *err = NULL;
	const char *sargv[] = {tk_kmigrate(), "status", "-p", plan, "--json", NULL};
	int rc = tk_run(&out, &err, sargv);
	TK_ASSERT(rc == 0, "status: exit %d: %s", rc, err);
	json_t *st = tk_json(out);
	int rows = 0;
	{
		size_t i;
		json_t *r;
		json_array_foreach(json_object_get(json_object_get(st, "authority"), "topics"), i, r) {
			const char *topic = json_string_value(json_object_get(r, "topic"));
			const char *auth = json_string_value(json_object_get(r, "authority"));
			if (!topic || !auth || (strcmp(topic, t1) && strcmp(topic, t2)))
				continue;
			char tl[120], al[80];
			snprintf(tl, sizeof(tl), "topic=\"%s\"", topic);
			snprintf(al, sizeof(al), "authority=\"%s\"", auth);
			TK_ASSERT(one_series(text, "kmigrate_topic_authority", &v, tl, al) == 1 && v == 1,
				  "topic %s: status says authority %s, /metrics: %s", topic, auth, text);
			rows++;
		}
	}
	TK_ASSERT(rows == 2, "status --json has no authority rows for both topics: %s", out);
	assert_int_equal(one_series(text, "kmigrate_topic_authority", &v, t1, "\"target\""), 1);
	/* No cutover attempt: status says no source fence for either wave,
	 * and /metrics says not fenced. */
	json_t *w;
	size_t i;
	int waves = 0;
	json_array_foreach(json_object_get(st, "waves"), i, w) {
		const char *fence = json_string_value(json_object_get(
			json_object_get(json_object_get(w, "rollback"), "fence"), "source"));
		const char *tp = !strcmp(json_string_value(json_object_get(w, "wave")), "w1") ? t1 : t2;
		TK_ASSERT(fence && !strcmp(fence, "none"), "wave fence: %s", out);
		TK_ASSERT(one_series(text, "kmigrate_topic_fenced", &v, tp, NULL) == 1 && v == 0,
			  "topic %s fenced %g on /metrics, status says none", tp, v);
		waves++;
	}
	assert_int_equal(waves, 2);
	json_decref(st);
	free(out);
	free(err);
	free(text);
	free(plan);
}

/* The canary on ktest-secure (SCRAM): a principal of its own, ALLOWed on
 * its own topic only. */
static void test_canary(void **state)
{
	(void)state;
	tk_cluster_t sec;
	char user[64], topic[80], app[80], principal[80], text[2400];
	int id = (int)getpid();

	tk_cluster_from_env(&sec, "KM_TEST_SECURE");
	snprintf(user, sizeof(user), "moncanary%d", id);
	snprintf(principal, sizeof(principal), "User:%s", user);
	snprintf(topic, sizeof(topic), "mon-%d.canary", id);
	snprintf(app, sizeof(app), "mon-%d.app", id);
	tk_scram_user(&sec, user, "canary-secret");
	setenv("KM_IT_MON_CANARY_PW", "canary-secret", 1);
	setenv("KM_IT_MON_SEC_PW", getenv("KM_TEST_SECURE_PASSWORD"), 1);
	tk_create_topic(&sec, topic, 2, NULL);
	tk_create_topic(&src, app, 1, NULL);
	tk_create_topic(&sec, app, 1, NULL);
	const rd_kafka_AclOperation_t ops[] = {RD_KAFKA_ACL_OPERATION_WRITE,
					       RD_KAFKA_ACL_OPERATION_READ,
					       RD_KAFKA_ACL_OPERATION_DESCRIBE};
	for (int i = 0; i < 3; i++)
		tk_acl(&sec, RD_KAFKA_RESOURCE_TOPIC, topic, RD_KAFKA_RESOURCE_PATTERN_LITERAL,
		       principal, "*", ops[i], RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
	snprintf(text, sizeof(text),
		 "migration: mon-canary-%d\n"
		 "source:\n  bootstrap: %s\n"
		 "target:\n  bootstrap: %s\n  security_protocol: sasl_ssl\n"
		 "  sasl_mechanism: SCRAM-SHA-512\n  username: admin\n"
		 "  password_env: KM_IT_MON_SEC_PW\n  ssl_ca: %s\n"
		 "topics:\n  include: [\"^%s$\"]\n"
		 "monitoring: {interval: 1s, canary_topic: '%s', canary_username: %s,\n"
		 "             canary_password_env: KM_IT_MON_CANARY_PW}\n"
		 "rollback:\n  triggers:\n"
		 "    - {name: canary-denied, metric: kmigrate_canary_authorization_failed,\n"
		 "       labels: {cluster: target}, op: '>=', threshold: 1, for: 2s}\n"
		 "    - {name: canary-errors, metric: kmigrate_canary_error_ratio, threshold: 0.5,\n"
		 "       for: 2s}\n",
		 id, src.bootstrap, sec.bootstrap, getenv("KM_TEST_SECURE_CA"), app, topic, user);
	char *dir = tk_tmpdir("mon-canary");
	char *plan = tk_write_file(dir, "migration.yaml", text);

	/* Allowed: every canary is written and read back as the canary's
	 * principal (the ACLs may take a moment to reach the broker). */
	json_t *s = NULL, *c = NULL;
	char *out = NULL, *err = NULL;
	for (int i = 0; i < 30; i++, tk_sleep_ms(500)) {
		const char *argv[] = {tk_kmigrate(), "monitor", "-p", plan, "--once", "--json", NULL};
		free(out);
		free(err);
		json_decref(s);
		int rc = tk_run(&out, &err, argv);
		TK_ASSERT(rc == 0, "monitor --once: exit %d: %s", rc, err);
		s = tk_json(out);
		c = json_object_get(json_object_get(s, "totals"), "canary");
		if (c && json_number_value(json_object_get(c, "error_ratio")) == 0)
			break;
	}
	TK_ASSERT(c && json_number_value(json_object_get(c, "error_ratio")) == 0,
		  "the allowed canary failed: %s", out);
	assert_string_equal(json_string_value(json_object_get(c, "as")), user);
	assert_int_equal(json_integer_value(json_object_get(c, "partitions")), 2);
	assert_int_equal(json_integer_value(json_object_get(c, "authorization_failures")), 0);
	assert_true(json_is_integer(json_object_get(c, "latency_ms")));
	json_t *t0 = json_array_get(json_object_get(s, "triggers"), 0);
	assert_string_equal(json_string_value(json_object_get(t0, "state")), "inactive");
	json_decref(s);
	free(out);
	free(err);
	/* Canaries went to the canary topic only, never the application's. */
	assert_true(tk_total_hwm(&sec, topic) >= 2);
	assert_int_equal(tk_total_hwm(&sec, app), 0);

	/* Denied: the trigger on the canary's authorization failures fires,
	 * and /metrics counts the refusals by code. */
	tk_acl(&sec, RD_KAFKA_RESOURCE_TOPIC, topic, RD_KAFKA_RESOURCE_PATTERN_LITERAL, principal,
	       "*", RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_DENY);
	char log[600];
	pid_t mp = monitor_spawn(plan, 6, log, sizeof(log));
	char *scr = NULL;
	double firing = 0, authz = 0, refused = 0;
	for (int i = 0; i < 1200 && !(firing == 1 && authz > 0); i++, tk_sleep_ms(100)) {
		int n;
		free(scr);
		if (!(scr = scrape(port(6))))
			continue;
		firing = metric_sum(scr, "kmigrate_trigger_firing", &n, "canary-denied", NULL);
		authz = metric_sum(scr, "kmigrate_canary_authorization_failures_total", &n, topic,
				   NULL);
		refused = metric_sum(scr, "kmigrate_canary_produce_errors_total", &n, topic,
				     "TOPIC_AUTHORIZATION_FAILED", NULL);
	}
	kill(mp, SIGTERM);
	int rc = tk_wait_exit(mp, 60000);
	char *mlog = tk_read_file(log, NULL);
	TK_ASSERT(firing == 1 && authz > 0 && refused > 0,
		  "canary-denied firing %g, authorization failures %g, refused %g: %s", firing,
		  authz, refused, scr ? scr : "(no scrape)");
	TK_ASSERT(rc == 0, "monitor exited %d: %s", rc, mlog);
	TK_ASSERT(strstr(mlog, "rollback trigger 'canary-denied' FIRED"), "log: %s", mlog);
	TK_ASSERT(metric_sum(scr, "kmigrate_canary_error_ratio", NULL, topic, NULL) == 1,
		  "error ratio: %s", scr);
	promtool_check_metrics(scr);
	free(mlog);
	free(scr);
	free(plan);
	free(dir);
}

static void test_connector_health(void **state)
{
	(void)state;
	char url[64], good[64], bad[64], topic[64], extra[1200], path[600];
	int id = (int)getpid();
	const char *cache = getenv("KM_CONNECT_CACHE");

	snprintf(topic, sizeof(topic), "mon-%d.connect", id);
	snprintf(good, sizeof(good), "mon-%d-good", id);
	snprintf(bad, sizeof(bad), "mon-%d-bad", id);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port(7));
	tk_create_topic(&src, topic, 1, NULL);
	tk_create_topic(&tgt, topic, 1, NULL);
	snprintf(worker_name, sizeof(worker_name), "mon-%d", id);
	char *line = km_asprintf("KM_CACHE='%s' '%s' start %s --bootstrap %s --port %d --version 4.3",
				 cache ? cache : "", getenv("KM_CONNECT_WORKER"), worker_name,
				 tgt.bootstrap, port(7));
	int rc = system(line);
	free(line);
	TK_ASSERT(rc == 0, "connect-worker start: exit %d", rc);
	/* good writes a file it can; bad's task cannot open its file, so it
	 * FAILS as it starts. */
	char *dir = tk_tmpdir("mon-connect");
	snprintf(path, sizeof(path), "%s/good.txt", dir);
	const char *files[2] = {path, "/nonexistent-kmigrate-dir/bad.txt"};
	km_connect_t *kc = NULL;
	char e[512];
	TK_ASSERT(!km_connect_open(url, "test", 30000, &kc, e, sizeof(e)), "%s", e);
	for (int i = 0; i < 2; i++) {
		json_t *conf = json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "name", i ? bad : good,
					 "config", "connector.class",
					 "org.apache.kafka.connect.file.FileStreamSinkConnector",
					 "tasks.max", "1", "file", files[i], "topics", topic);
		TK_ASSERT(!km_connect_call(kc, "POST", "/connectors", conf, NULL, e, sizeof(e)),
			  "%s", e);
		json_decref(conf);
	}
	km_connect_close(kc);
	snprintf(extra, sizeof(extra),
		 "connectors:\n"
		 "  - {name: %s, class: FileStreamSink, owner: team-c}\n"
		 "  - {name: %s, class: FileStreamSink, owner: team-c}\n"
		 "monitoring: {interval: 1s}\n"
		 "rollback:\n  triggers:\n"
		 "    - {name: task-failed, metric: kmigrate_connector_tasks_failed,\n"
		 "       labels: {cluster: target, connector: %s}, threshold: 0}\n",
		 good, bad, bad);
	char *plan = make_plan("mon-connect", topic, extra);
	/* The plan's target.connect_url (tk_plan writes the clusters). */
	size_t len;
	char *text = tk_read_file(plan, &len);
	char *cut = strstr(text, "\ntopics:");
	TK_ASSERT(cut, "plan: %s", text);
	*cut = '\0';
	char *with = km_asprintf("%s\n  connect_url: %s\n%s", text, url, cut + 1);
	free(tk_write_file(dir, "connect.yaml", with));
	char *cplan = km_asprintf("%s/connect.yaml", dir);
	free(with);
	free(text);

	char log[700];
	pid_t mp = monitor_spawn(cplan, 8, log, sizeof(log));
	char *scr = NULL;
	double failed = 0, running = 0, firing = 0, failures = 0;
	char glab[100], blab[100];
	snprintf(glab, sizeof(glab), "connector=\"%s\"", good);
	snprintf(blab, sizeof(blab), "connector=\"%s\"", bad);
	for (int i = 0; i < 1200; i++, tk_sleep_ms(100)) {
		free(scr);
		if (!(scr = scrape(port(8))))
			continue;
		failed = metric_sum(scr, "kmigrate_connector_task_state", NULL, blab,
				    "state=\"FAILED\"", NULL);
		running = metric_sum(scr, "kmigrate_connector_task_state", NULL, glab,
				     "state=\"RUNNING\"", NULL);
		firing = metric_sum(scr, "kmigrate_trigger_firing", NULL, "task-failed", NULL);
		failures = metric_sum(scr, "kmigrate_connector_task_failures_total", NULL, blab, NULL);
		if (failed == 1 && running == 1 && firing == 1)
			break;
	}
	/* A few more samples: a task that stays FAILED is one failure. */
	tk_sleep_ms(2500);
	free(scr);
	scr = scrape(port(8));
	kill(mp, SIGTERM);
	rc = tk_wait_exit(mp, 60000);
	TK_ASSERT(failed == 1 && running == 1 && firing == 1,
		  "bad's task FAILED %g, good's RUNNING %g, trigger firing %g: %s", failed, running,
		  firing, scr ? scr : "(no scrape)");
	failures = metric_sum(scr, "kmigrate_connector_task_failures_total", NULL, blab, NULL);
	TK_ASSERT(failures == 1, "task failures counted %g, want 1: %s", failures, scr);
	assert_true(metric_sum(scr, "kmigrate_connector_tasks_failed", NULL, glab, NULL) == 0);
	assert_true(metric_sum(scr, "kmigrate_connector_state", NULL, glab, "state=\"RUNNING\"",
			       NULL) == 1);
	TK_ASSERT(rc == 0, "monitor exited %d (log %s)", rc, log);
	promtool_check_metrics(scr);
	worker_stop();
	free(scr);
	free(cplan);
	free(plan);
	free(dir);
}

static void test_emit_rules(void **state)
{
	(void)state;
	char *plan = trigger_plan("mon-rules", T_LAG, "10s");
	char *out = NULL, *err = NULL;
	const char *argv[] = {tk_kmigrate(), "monitor", "-p", plan, "--emit-rules", NULL};
	assert_int_equal(tk_run(&out, &err, argv), 0);
	assert_non_null(strstr(out, "for: 10s"));
	char *dir = km_strdup(plan);
	*strrchr(dir, '/') = '\0';
	char *rules = tk_write_file(dir, "rules.yml", out);
	char cmd[900];
	snprintf(cmd, sizeof(cmd), "promtool check rules '%s' 2>&1", rules);
	const char *sh[] = {"/bin/sh", "-c", cmd, NULL};
	char *pout = NULL, *perr = NULL;
	int rc = tk_run(&pout, &perr, sh);
	TK_ASSERT(rc == 0 && strstr(pout, "SUCCESS: 1 rules found"), "promtool: %d %s", rc, pout);
	free(pout);
	free(perr);
	free(rules);
	free(dir);
	free(out);
	free(err);
	free(plan);
}

static void test_bad_input(void **state)
{
	(void)state;
	char *p1 = make_plan("mon-bad1", T_LAG,
			     "rollback:\n  triggers:\n"
			     "    - {name: t, metric: kmigrate_stale_readers, threshold: high}\n");
	bad_input(2, "rollback.triggers[0].threshold", "monitor", "-p", p1, "--once", NULL);
	char *p2 = make_plan("mon-bad2", T_LAG,
			     "rollback:\n  triggers:\n"
			     "    - {name: t, metric: kmigrate_group_lag, threshold: 1}\n");
	bad_input(2, "unknown metric 'kmigrate_group_lag'", "monitor", "-p", p2, "--once", NULL);
	char *p3 = make_plan("mon-bad3", T_LAG,
			     "rollback:\n  triggers:\n"
			     "    - {name: t, query: 'sum(up)', threshold: 1}\n");
	bad_input(2, "no 'monitoring.prometheus_url'", "monitor", "-p", p3, "--once", NULL);
	/* A canary trigger without a canary could never have a value. */
	char *p5 = make_plan("mon-bad5", T_LAG,
			     "rollback:\n  triggers:\n"
			     "    - {name: t, metric: kmigrate_canary_error_ratio, threshold: 0}\n");
	bad_input(2, "no 'monitoring.canary_topic'", "monitor", "-p", p5, "--once", NULL);
	char *p6 = make_plan("mon-bad6", T_LAG,
			     "monitoring: {canary_topic: c, canary_username: probe}\n");
	bad_input(2, "'monitoring.canary_password_env' go together", "monitor", "-p", p6, "--once",
		  NULL);
	char *p4 = make_plan("mon-bad4", T_LAG, NULL);
	bad_input(2, "--metrics-addr takes HOST:PORT", "monitor", "-p", p4, "--metrics-addr",
		  "nowhere", NULL);

	/* A port in use, for monitor and replicate: one line, exit 3. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port(3))};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	TK_ASSERT(fd >= 0 && !bind(fd, (struct sockaddr *)&sa, sizeof(sa)) && !listen(fd, 1),
		  "cannot hold port %d", port(3));
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port(3));
	bad_input(3, "Address already in use", "monitor", "-p", p4, "--metrics-addr", addr,
		  "--once", NULL);
	bad_input(3, "Address already in use", "replicate", "-p", p4, "--metrics-addr", addr,
		  NULL);
	close(fd);
	free(p1);
	free(p2);
	free(p3);
	free(p4);
	free(p5);
	free(p6);
}

/* Only a commit marker past the offset asked (the replicator moves its
 * progress over markers at its next end of partition): the answer is
 * "no record", at once -- it was "unknown" after the whole deadline, so
 * monitor's lag in seconds fired between a commit and the replicator's
 * next look. */
static void test_markers_only_lag(void **state)
{
	char topic[64], e[512], txid[80];
	int64_t ts[2];
	(void)state;
	snprintf(topic, sizeof(topic), "mon-%d.markers", (int)getpid());
	snprintf(txid, sizeof(txid), "mon-%d.markers-txn", (int)getpid());
	tk_create_topic(&src, topic, 1, NULL);
	rd_kafka_t *p = tk_producer(&src, txid);
	assert_null(rd_kafka_begin_transaction(p));
	tk_msg_t m = {.key = "k", .value = "v", .partition = 0};
	tk_produce(p, topic, &m);
	assert_null(rd_kafka_commit_transaction(p, 30000));
	rd_kafka_destroy(p);
	assert_int_equal(tk_total_hwm(&src, topic), 2); /* the record, the marker */

	km_kafka_endpoint_t ep = {.role = "source", .bootstrap = src.bootstrap};
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(2);
	rd_kafka_topic_partition_list_add(tp, topic, 0)->offset = 1;
	int64_t t0 = km_mono_ms();
	assert_int_equal(km_gate_first_records(&ep, tp, 60000, ts, e, sizeof(e)), KM_ERR_OK);
	TK_ASSERT(ts[0] == KM_GATE_NO_RECORD && !tp->elems[0].err,
		  "only a marker past offset 1: want KM_GATE_NO_RECORD, got ts %lld, %s after "
		  "%lld ms", (long long)ts[0], rd_kafka_err2name(tp->elems[0].err),
		  (long long)(km_mono_ms() - t0));
	/* At offset 0 the record itself answers. */
	tp->elems[0].offset = 0;
	assert_int_equal(km_gate_first_records(&ep, tp, 60000, ts, e, sizeof(e)), KM_ERR_OK);
	assert_true(ts[0] > 0);
	assert_int_equal(tp->elems[0].offset, 0);
	rd_kafka_topic_partition_list_destroy(tp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_markers_only_lag),
		cmocka_unit_test(test_emit_rules),
		cmocka_unit_test(test_trigger_fires),
		cmocka_unit_test(test_automatic_rollback),
		cmocka_unit_test(test_trigger_clears_before_for),
		cmocka_unit_test(test_stale_reader),
		cmocka_unit_test(test_metrics_agree_with_gate_and_status),
		cmocka_unit_test(test_canary),
		cmocka_unit_test(test_connector_health),
		cmocka_unit_test(test_replicate_metrics_and_prometheus),
	};
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
