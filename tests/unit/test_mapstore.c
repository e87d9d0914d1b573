/* The offset-map store's record formats, byte for byte, and its refusal of
 * anything else: a record the readers cannot decode is an error, never a
 * skipped record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "mapstore.h"

static void test_names(void **state)
{
	km_mapstore_names_t n;
	(void)state;
	km_mapstore_names("m1", NULL, &n);
	assert_string_equal(n.tasks, "__kmigrate.m1.tasks");
	assert_string_equal(n.progress, "__kmigrate.m1.progress");
	assert_string_equal(n.offmap, "__kmigrate.m1.offsetmap");
	km_mapstore_names("m1", "reverse", &n);
	assert_string_equal(n.tasks, "__kmigrate.m1.reverse.tasks");
	assert_string_equal(n.offmap, "__kmigrate.m1.reverse.offsetmap");
}

/* task_of is part of the stored format: a change would move partitions to
 * other tasks (and transactional.ids) of a running migration.  Group 1 is
 * the layout of maps written before layouts existed: it must stay what it
 * was. */
static void test_task_of_pinned(void **state)
{
	(void)state;
	/* Values computed by an independent FNV-1a (python). */
	assert_int_equal(km_mapstore_task_of("orders", 0, 4, 1), 0);
	assert_int_equal(km_mapstore_task_of("orders", 1, 4, 1), 1);
	assert_int_equal(km_mapstore_task_of("orders", 3, 4, 1), 3);
	assert_int_equal(km_mapstore_task_of("a", 0, 7, 1), 5);
	for (int p = 0; p < 50; p++)
		assert_int_equal(km_mapstore_task_of("x", p, 1, 1), 0);
	/* Runs of `group` partitions from the task the name picks. */
	for (int p = 0; p < 5; p++)
		assert_int_equal(km_mapstore_task_of("orders", p, 4, 5), 0);
	assert_int_equal(km_mapstore_task_of("orders", 5, 4, 5), 1);
	assert_int_equal(km_mapstore_task_of("a", 9, 7, 5), 6);
	assert_int_equal(km_mapstore_task_of("a", 10, 7, 5), 0);
}

/* The layout a new map takes, and its record. */
static void test_layout(void **state)
{
	char buf[64], why[200];
	int g = 0;
	(void)state;
	assert_int_equal(km_mapstore_layout_choose(12, 4), 1);
	assert_int_equal(km_mapstore_layout_choose(999, 4), 1);
	assert_int_equal(km_mapstore_layout_choose(1000, 4), 32);
	assert_int_equal(km_mapstore_layout_choose(2000, 4), 63);
	assert_int_equal(km_mapstore_layout_choose(2000, 16), 16);
	assert_int_equal(km_mapstore_layout_encode(63, buf, sizeof(buf)), 12);
	assert_string_equal(buf, "{\"group\":63}");
	assert_int_equal(km_mapstore_layout_decode("layout", 6, buf, strlen(buf), &g, why,
						   sizeof(why)),
			 KM_ERR_OK);
	assert_int_equal(g, 63);
	assert_int_equal(km_mapstore_layout_decode("layouts", 7, buf, strlen(buf), &g, why,
						   sizeof(why)),
			 KM_ERR_BUG);
	assert_int_equal(km_mapstore_layout_decode("layout", 6, "{\"group\":0}", 11, &g, why,
						   sizeof(why)),
			 KM_ERR_BUG);
	assert_int_equal(km_mapstore_layout_decode("layout", 6, "{\"group\":2,\"x\":1}", 17, &g,
						   why, sizeof(why)),
			 KM_ERR_BUG);
	assert_int_equal(km_mapstore_layout_decode("layout", 6, "not json", 8, &g, why,
						   sizeof(why)),
			 KM_ERR_BUG);
}

static void test_encodings_pinned(void **state)
{
	char buf[KM_MAPSTORE_VALUE_MAX];
	km_offrun_t run = {12, 7, 300};
	km_mapstore_progress_t p = {.next = 1000, .tgt_next = 1017};
	(void)state;
	assert_int_equal(km_mapstore_key_encode("orders.v1", 11, buf, sizeof(buf)), 12);
	assert_string_equal(buf, "orders.v1:11");
	assert_int_equal(km_mapstore_run_encode(&run, buf, sizeof(buf)), 22);
	assert_string_equal(buf, "{\"s\":12,\"t\":7,\"n\":300}");
	snprintf(p.topic_id, sizeof(p.topic_id), "AAECAwQFBgcICQoLDA0ODw");
	assert_true(km_mapstore_progress_encode(&p, buf, sizeof(buf)) > 0);
	assert_string_equal(buf,
			    "{\"next\":1000,\"tgt_next\":1017,\"topic_id\":\"AAECAwQFBgcICQoLDA0ODw\"}");
	p.topic_id[0] = '\0';
	km_mapstore_progress_encode(&p, buf, sizeof(buf));
	assert_string_equal(buf, "{\"next\":1000,\"tgt_next\":1017,\"topic_id\":\"\"}");
	/* Refused, never truncated or written as invalid JSON. */
	assert_int_equal(km_mapstore_run_encode(&run, buf, 10), -1);
	snprintf(p.topic_id, sizeof(p.topic_id), "a\"b");
	assert_int_equal(km_mapstore_progress_encode(&p, buf, sizeof(buf)), -1);
	assert_int_equal(km_mapstore_key_encode("a:b", 0, buf, sizeof(buf)), -1);
}

static void test_roundtrip(void **state)
{
	char buf[KM_MAPSTORE_VALUE_MAX], e[400], topic[100];
	km_offrun_t run = {INT64_MAX - 10, 0, 10}, back;
	km_mapstore_progress_t p = {.next = 5, .tgt_next = 9, .topic_id = "xyz"}, pb;
	int part;
	(void)state;
	int n = km_mapstore_run_encode(&run, buf, sizeof(buf));
	assert_int_equal(km_mapstore_run_decode(buf, (size_t)n, &back, e, sizeof(e)), KM_ERR_OK);
	assert_memory_equal(&run, &back, sizeof(run));
	n = km_mapstore_progress_encode(&p, buf, sizeof(buf));
	assert_int_equal(km_mapstore_progress_decode(buf, (size_t)n, &pb, e, sizeof(e)), KM_ERR_OK);
	assert_int_equal(pb.next, 5);
	assert_int_equal(pb.tgt_next, 9);
	assert_string_equal(pb.topic_id, "xyz");
	assert_int_equal(km_mapstore_key_decode("a.b-c:17", 8, topic, sizeof(topic), &part, e,
						sizeof(e)),
			 KM_ERR_OK);
	assert_string_equal(topic, "a.b-c");
	assert_int_equal(part, 17);
}

static void bad_run(const char *v, const char *want)
{
	char e[400];
	km_offrun_t run;
	if (km_mapstore_run_decode(v, strlen(v), &run, e, sizeof(e)) != KM_ERR_BUG)
		fail_msg("run value %s was accepted", v);
	if (!strstr(e, want))
		fail_msg("run value %s: want '%s' in '%s'", v, want, e);
}

static void bad_progress(const char *v, const char *want)
{
	char e[400];
	km_mapstore_progress_t p;
	if (km_mapstore_progress_decode(v, v ? strlen(v) : 0, &p, e, sizeof(e)) != KM_ERR_BUG)
		fail_msg("progress value %s was accepted", v);
	if (!strstr(e, want))
		fail_msg("progress value %s: want '%s' in '%s'", v, want, e);
}

static void test_malformed_values(void **state)
{
	(void)state;
	bad_run("", "empty");
	bad_run("{\"s\":12,\"t\":7,\"n\":3", "not JSON");        /* truncated */
	bad_run("{\"s\":12,\"t\":7,\"n\":3}x", "not JSON");      /* trailing bytes */
	bad_run("[12,7,3]", "not a JSON object");
	bad_run("{\"s\":12,\"t\":7}", "'n' is missing");
	bad_run("{\"s\":\"12\",\"t\":7,\"n\":3}", "'s' is not an integer");
	bad_run("{\"s\":12,\"t\":7.5,\"n\":3}", "'t' is not an integer");
	bad_run("{\"s\":12,\"t\":7,\"n\":-3}", "'n' is -3, below 1");
	bad_run("{\"s\":12,\"t\":7,\"n\":0}", "'n' is 0, below 1");
	bad_run("{\"s\":-1,\"t\":7,\"n\":3}", "'s' is -1, below 0");
	bad_run("{\"s\":12,\"t\":7,\"n\":3,\"x\":1}", "unknown field 'x'");
	bad_run("{\"s\":12,\"s\":13,\"t\":7,\"n\":3}", "not JSON"); /* duplicate */
	bad_run("{\"s\":9223372036854775800,\"t\":7,\"n\":30}", "beyond the largest offset");
	bad_progress(NULL, "empty");
	bad_progress("{\"next\":100,\"tgt_next\":1", "not JSON");
	bad_progress("{\"tgt_next\":1,\"topic_id\":\"\"}", "'next' is missing");
	bad_progress("{\"next\":-5,\"tgt_next\":1,\"topic_id\":\"\"}", "'next' is -5");
	bad_progress("{\"next\":5,\"tgt_next\":null,\"topic_id\":\"\"}", "'tgt_next' is not an integer");
	bad_progress("{\"next\":5,\"tgt_next\":1,\"topic_id\":7}", "'topic_id' is not a string");
	bad_progress("{\"next\":5,\"tgt_next\":1}", "'topic_id' is missing");
}

static void test_malformed_keys(void **state)
{
	const char *bad[] = {"orders", "orders:", ":3", "orders:x", "orders:-1", "orders:99999999999",
			     NULL};
	char e[400], topic[100];
	int part;
	(void)state;
	for (const char **k = bad; *k; k++)
		if (km_mapstore_key_decode(*k, strlen(*k), topic, sizeof(topic), &part, e,
					   sizeof(e)) != KM_ERR_BUG)
			fail_msg("key '%s' was accepted", *k);
	assert_int_equal(km_mapstore_key_decode("", 0, topic, sizeof(topic), &part, e, sizeof(e)),
			 KM_ERR_BUG);
}

#define FEED(ms, kind, off, k, v)                                                              \
	km_mapstore_feed(ms, kind, "__kmigrate.m.offsetmap", 2, off, k, strlen(k), v, strlen(v), \
			 e, sizeof(e))

/* The readers' checks: runs accumulate per source partition, overlapping
 * runs and undecodable records stop the read naming where they are. */
static void test_feed(void **state)
{
	char e[600];
	km_mapstore_t *ms = km_mapstore_new();
	(void)state;
	assert_int_equal(FEED(ms, 'o', 0, "t:0", "{\"s\":0,\"t\":0,\"n\":10}"), KM_ERR_OK);
	assert_int_equal(FEED(ms, 'o', 1, "t:1", "{\"s\":0,\"t\":0,\"n\":4}"), KM_ERR_OK);
	assert_int_equal(FEED(ms, 'o', 2, "t:0", "{\"s\":12,\"t\":11,\"n\":5}"), KM_ERR_OK);
	assert_int_equal(km_mapstore_count(ms), 2);
	const km_offmap_t *m = km_mapstore_offmap(ms, "t", 0);
	assert_int_equal(m->cnt, 2);
	assert_int_equal(km_offmap_records(m), 15);
	assert_int_equal(km_mapstore_offmap(ms, "t", 9)->cnt, 0);
	assert_null(km_mapstore_progress(ms, "t", 0));
	/* Overlap: source 14 was already mapped. */
	assert_int_equal(FEED(ms, 'o', 3, "t:0", "{\"s\":14,\"t\":20,\"n\":5}"), KM_ERR_BUG);
	assert_non_null(strstr(e, "offset 3 of '__kmigrate.m.offsetmap'[2]"));
	assert_non_null(strstr(e, "overlaps"));
	assert_non_null(strstr(e, "stop every replicator"));
	/* Undecodable. */
	assert_int_equal(FEED(ms, 'o', 4, "t:0", "{\"s\":14,\"t\":20}"), KM_ERR_BUG);
	assert_non_null(strstr(e, "offset 4 of '__kmigrate.m.offsetmap'[2]: field 'n' is missing"));
	assert_int_equal(FEED(ms, 'o', 5, "t", "{\"s\":40,\"t\":40,\"n\":1}"), KM_ERR_BUG);
	/* Progress: the last value counts (a compacted topic). */
	assert_int_equal(FEED(ms, 'p', 6, "t:0", "{\"next\":10,\"tgt_next\":11,\"topic_id\":\"a\"}"),
			 KM_ERR_OK);
	assert_int_equal(FEED(ms, 'p', 7, "t:0", "{\"next\":17,\"tgt_next\":19,\"topic_id\":\"a\"}"),
			 KM_ERR_OK);
	assert_int_equal(km_mapstore_progress(ms, "t", 0)->next, 17);
	assert_int_equal(FEED(ms, 'p', 8, "t:0", "{\"next\":\"17\"}"), KM_ERR_BUG);
	km_mapstore_destroy(ms);
}

/* The authority record's bytes are read by every kmigrate process on any
 * host: pinned. */
static void test_authority_pinned(void **state)
{
	km_mapstore_authority_t a = {.authority = "target", .wave = "canary", .at = 1700000000123,
				     .run_id = 7},
				b;
	char buf[KM_MAPSTORE_AUTHORITY_MAX], errstr[256];
	(void)state;

	km_mapstore_authority_topic("m1", buf, sizeof(buf));
	assert_string_equal(buf, "__kmigrate.m1.authority");
	int n = km_mapstore_authority_encode(&a, buf, sizeof(buf));
	assert_string_equal(buf, "{\"authority\":\"target\",\"wave\":\"canary\","
				 "\"at\":1700000000123,\"run_id\":7}");
	assert_int_equal(n, (int)strlen(buf));
	assert_int_equal(km_mapstore_authority_decode(buf, (size_t)n, &b, errstr, sizeof(errstr)),
			 KM_ERR_OK);
	assert_string_equal(b.authority, "target");
	assert_string_equal(b.wave, "canary");
	assert_true(b.at == 1700000000123 && b.run_id == 7);
	/* A wave name JSON must escape is escaped, and comes back the same. */
	snprintf(a.wave, sizeof(a.wave), "w\"1");
	n = km_mapstore_authority_encode(&a, buf, sizeof(buf));
	assert_string_equal(buf, "{\"authority\":\"target\",\"wave\":\"w\\\"1\","
				 "\"at\":1700000000123,\"run_id\":7}");
	assert_int_equal(km_mapstore_authority_decode(buf, (size_t)n, &b, errstr, sizeof(errstr)),
			 KM_ERR_OK);
	assert_string_equal(b.wave, "w\"1");
	/* Refused, never truncated; an unknown authority is not encoded. */
	assert_int_equal(km_mapstore_authority_encode(&a, buf, 20), -1);
	snprintf(a.authority, sizeof(a.authority), "both");
	assert_int_equal(km_mapstore_authority_encode(&a, buf, sizeof(buf)), -1);
	/* Strict decoding. */
	const char *bad[] = {
		"{\"authority\":\"both\",\"wave\":\"w\",\"at\":1,\"run_id\":1}",
		"{\"authority\":\"target\",\"at\":1,\"run_id\":1}",
		"{\"authority\":\"target\",\"wave\":\"w\",\"at\":-1,\"run_id\":1}",
		"{\"authority\":\"target\",\"wave\":\"w\",\"at\":1,\"run_id\":0}",
		"{\"authority\":\"target\",\"wave\":\"w\",\"at\":1,\"run_id\":1,\"x\":1}",
		"[1]",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(km_mapstore_authority_decode(bad[i], strlen(bad[i]), &b, errstr,
							      sizeof(errstr)),
				 KM_ERR_BUG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_task_of_pinned),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_encodings_pinned),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_malformed_values),
		cmocka_unit_test(test_malformed_keys),
		cmocka_unit_test(test_feed),
		cmocka_unit_test(test_authority_pinned),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
