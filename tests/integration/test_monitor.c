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
#include <unistd.h>

#include "cutover.h"
#include "mapstore.h"
#include "tk.h"
#include "util.h"

static tk_cluster_t src, tgt;
static char T_REPL[64], T_LAG[64], T_CLEAR[64], T_STALE[64], GROUP[64], GROUP2[64];
static int port_base;
static pid_t prom_pid = -1;
static char *prom_dir;

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

static void prom_stop(void)
{
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
	/* Lag per partition of the topic, never more than the source holds. */
	double lag = metric_sum(text, "kmigrate_replication_lag_records", &n, T_REPL, NULL);
	assert_int_equal(n, 2);
	TK_ASSERT(lag >= 0 && lag <= (double)tk_total_hwm(&src, T_REPL), "lag %g", lag);
	assert_true(metric_sum(text, "kmigrate_replication_tasks_owned", &n, NULL) >= 1);
	assert_true(metric_sum(text, "kmigrate_replication_transactions_total", &n,
			       "committed", NULL) >= 1);

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
	free(mplan);

	kill(rp, SIGTERM);
	int rc = tk_wait_exit(rp, 120000);
	TK_ASSERT(rc == 0, "replicate exited %d (log %s)", rc, log);
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
	char extra[800], atopic[300], e[512];
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
	/* The authority record a cutover's authority step writes. */
	km_mapstore_authority_topic(mig, atopic, sizeof(atopic));
	const char *compact[] = {"cleanup.policy", "compact", NULL};
	tk_create_topic(&tgt, atopic, 1, compact);
	km_kafka_endpoint_t ep = {.role = "target", .bootstrap = tgt.bootstrap};
	json_t *topics = json_pack("[s]", T_STALE);
	TK_ASSERT(!km_cutover_write_authority(&ep, atopic, "target", "w1", 1, topics, e, sizeof(e)),
		  "%s", e);
	json_decref(topics);
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
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_emit_rules),
		cmocka_unit_test(test_trigger_fires),
		cmocka_unit_test(test_automatic_rollback),
		cmocka_unit_test(test_trigger_clears_before_for),
		cmocka_unit_test(test_stale_reader),
		cmocka_unit_test(test_replicate_metrics_and_prometheus),
	};
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
