/*
 * Unit tests of lib/metrics.h: the exposition text (pinned), label
 * escaping, counters and gauges, the trigger lookup (km_metrics_max), the
 * address syntax, and that docs/metrics.md lists every catalogue name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

static void test_render(void **state)
{
	km_metrics_t *m = km_metrics_new();
	(void)state;

	km_metrics_add(m, "kmigrate_replication_records_total", 10, "direction", "forward", NULL);
	km_metrics_add(m, "kmigrate_replication_records_total", 5, "direction", "forward", NULL);
	km_metrics_set(m, "kmigrate_replication_lag_records", 3, "direction", "forward", "topic",
		       "a\"b\\c\nd", "partition", "0", NULL);
	km_metrics_set(m, "kmigrate_replication_lag_seconds", NAN, "direction", "forward",
		       "topic", "t", "partition", "1", NULL);
	km_metrics_set(m, "kmigrate_monitor_sample_duration_seconds", 0.25, NULL);
	char *text = km_metrics_render(m);
	assert_string_equal(
		text,
		"# HELP kmigrate_replication_lag_records Records in the source partition not yet "
		"copied: its high watermark minus the next offset to copy.\n"
		"# TYPE kmigrate_replication_lag_records gauge\n"
		"kmigrate_replication_lag_records{direction=\"forward\",topic=\"a\\\"b\\\\c\\nd\","
		"partition=\"0\"} 3\n"
		"# HELP kmigrate_replication_lag_seconds Age of the oldest record not yet copied (0 "
		"when caught up). monitor: now minus the timestamp of the first record after the "
		"committed progress, read on the source; replicate: an upper bound, the time since "
		"the partition's lag was last 0 (NaN until then).\n"
		"# TYPE kmigrate_replication_lag_seconds gauge\n"
		"kmigrate_replication_lag_seconds{direction=\"forward\",topic=\"t\",partition=\"1\"} "
		"NaN\n"
		"# HELP kmigrate_replication_records_total Records copied and committed by this "
		"process.\n"
		"# TYPE kmigrate_replication_records_total counter\n"
		"kmigrate_replication_records_total{direction=\"forward\"} 15\n"
		"# HELP kmigrate_monitor_sample_duration_seconds How long the last sample took.\n"
		"# TYPE kmigrate_monitor_sample_duration_seconds gauge\n"
		"kmigrate_monitor_sample_duration_seconds 0.25\n");
	free(text);
	/* Cleared: the family is gone from the text. */
	km_metrics_clear(m, "kmigrate_replication_lag_records");
	text = km_metrics_render(m);
	assert_null(strstr(text, "kmigrate_replication_lag_records"));
	free(text);
	km_metrics_destroy(m);
}

static void test_max(void **state)
{
	km_metrics_t *m = km_metrics_new();
	double v = -1;
	(void)state;

	km_metrics_set(m, "kmigrate_consumer_group_lag_records", 7, "cluster", "target", "group",
		       "g", "topic", "a", NULL);
	km_metrics_set(m, "kmigrate_consumer_group_lag_records", 9, "cluster", "target", "group",
		       "g", "topic", "b", NULL);
	km_metrics_set(m, "kmigrate_consumer_group_lag_records", 99, "cluster", "source", "group",
		       "g", "topic", "a", NULL);
	km_metrics_set(m, "kmigrate_consumer_group_lag_records", 50, "cluster", "target", "group",
		       "g2", "topic", "a", NULL);
	const char *f1[] = {"cluster", "target", "group", "g"};
	assert_int_equal(km_metrics_max(m, "kmigrate_consumer_group_lag_records", f1, 2, &v), 2);
	assert_true(v == 9);
	/* "g" must not match "g2" (a prefix). */
	const char *f2[] = {"group", "g"};
	assert_int_equal(km_metrics_max(m, "kmigrate_consumer_group_lag_records", f2, 1, &v), 3);
	assert_true(v == 99);
	const char *f3[] = {"group", "nope"};
	assert_int_equal(km_metrics_max(m, "kmigrate_consumer_group_lag_records", f3, 1, &v), 0);
	assert_true(km_metrics_get(m, "kmigrate_consumer_group_lag_records", &v, "cluster",
				   "source", "group", "g", "topic", "a", NULL));
	assert_true(v == 99);
	km_metrics_destroy(m);
}

static void test_addr(void **state)
{
	(void)state;
	assert_int_equal(km_metrics_addr_check("127.0.0.1:9464"), 0);
	assert_int_equal(km_metrics_addr_check("localhost:1"), 0);
	assert_int_equal(km_metrics_addr_check("[::1]:9464"), 0);
	assert_int_not_equal(km_metrics_addr_check("localhost"), 0);
	assert_int_not_equal(km_metrics_addr_check(":9464"), 0);
	assert_int_not_equal(km_metrics_addr_check("h:0"), 0);
	assert_int_not_equal(km_metrics_addr_check("h:65536"), 0);
	assert_int_not_equal(km_metrics_addr_check("h:12x"), 0);
	assert_int_not_equal(km_metrics_addr_check("::1:80"), 0);
}

/* A file of the source tree (this file's checkout), whole; owned. */
static char *repo_file(const char *rel)
{
	const char *self = __FILE__, *tail = "tests/unit/test_metrics.c";
	char path[PATH_MAX], buf[4096];
	size_t n = strlen(self) - strlen(tail), r;
	km_sb_t sb = KM_SB_INIT;

	snprintf(path, sizeof(path), "%.*s%s", (int)n, self, rel);
	FILE *fp = fopen(path, "r");
	if (!fp)
		fail_msg("cannot open %s", path);
	while ((r = fread(buf, 1, sizeof(buf), fp)) > 0)
		km_sb_add(&sb, buf, r);
	fclose(fp);
	return km_sb_detach(&sb);
}

/* docs/metrics.md is the reference: every exported name is in it. */
static void test_documented(void **state)
{
	char row[200];
	char *doc = repo_file("docs/metrics.md");
	(void)state;

	for (const km_metric_def_t *d = km_metrics_catalogue; d->name; d++) {
		snprintf(row, sizeof(row), "| `%s` | %s |", d->name,
			 d->type == KM_METRIC_COUNTER ? "counter" : "gauge");
		if (!strstr(doc, row))
			fail_msg("docs/metrics.md has no row for %s", d->name);
		/* Prometheus' conventions. */
		assert_int_equal(strncmp(d->name, "kmigrate_", 9), 0);
		size_t l = strlen(d->name);
		if (d->type == KM_METRIC_COUNTER)
			assert_string_equal(d->name + l - 6, "_total");
		else
			assert_true(l < 6 || strcmp(d->name + l - 6, "_total"));
	}
	free(doc);
}

/* The shipped dashboard uses only names the catalogue has. */
static void test_dashboard_names(void **state)
{
	char name[128];
	char *dash = repo_file("examples/grafana-dashboard.json");
	size_t len;
	int seen = 0;
	(void)state;

	for (const char *p = dash; (p = strstr(p, "kmigrate_")); p += len) {
		len = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
		if (len >= sizeof(name))
			fail_msg("name too long in the dashboard");
		memcpy(name, p, len);
		name[len] = '\0';
		if (!km_metrics_def(name))
			fail_msg("the dashboard uses '%s', which is not in the catalogue", name);
		seen++;
	}
	assert_true(seen > 10);
	free(dash);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_max),
		cmocka_unit_test(test_addr),
		cmocka_unit_test(test_documented),
		cmocka_unit_test(test_dashboard_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
