/* The exact offset map: runs, merging, translation around holes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "offmap.h"

/* Source 0..9 copied; 10,11 aborted; 12..14 copied; a commit marker on the
 * target after every transaction (target 10 and 14 are markers). */
static void build(km_offmap_t *m)
{
	assert_int_equal(km_offmap_add(m, 0, 0, 5), 0);
	assert_int_equal(km_offmap_add(m, 5, 5, 5), 0); /* merges */
	assert_int_equal(km_offmap_add(m, 12, 11, 3), 0);
	assert_int_equal(km_offmap_add(m, 20, 15, 1), 0);
}

static void test_merge_and_translate(void **state)
{
	km_offmap_t m = KM_OFFMAP_INIT;
	int64_t t;
	(void)state;
	build(&m);
	assert_int_equal(m.cnt, 3);
	assert_int_equal(km_offmap_records(&m), 14);
	assert_int_equal(km_offmap_translate(&m, 0, &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(km_offmap_translate(&m, 7, &t), 0);
	assert_int_equal(t, 7);
	/* 10 and 11 were never copied: the next copied record is 12 -> 11. */
	assert_int_equal(km_offmap_translate(&m, 10, &t), 0);
	assert_int_equal(t, 11);
	assert_int_equal(km_offmap_translate(&m, 11, &t), 0);
	assert_int_equal(t, 11);
	assert_int_equal(km_offmap_translate(&m, 14, &t), 0);
	assert_int_equal(t, 13);
	assert_int_equal(km_offmap_translate(&m, 15, &t), 0);
	assert_int_equal(t, 15);
	assert_int_equal(km_offmap_translate(&m, 20, &t), 0);
	assert_int_equal(t, 15);
	/* Beyond what was replicated: never guessed. */
	assert_int_equal(km_offmap_translate(&m, 21, &t), -1);
	assert_int_equal(km_offmap_source_of(&m, 10), -1);
	assert_int_equal(km_offmap_source_of(&m, 12), 13);
	assert_int_equal(km_offmap_source_of(&m, 15), 20);
	km_offmap_clear(&m);
}

static void test_rejects_overlap(void **state)
{
	km_offmap_t m = KM_OFFMAP_INIT;
	(void)state;
	build(&m);
	assert_int_equal(km_offmap_add(&m, 20, 30, 1), -1);
	assert_int_equal(km_offmap_add(&m, 30, 10, 1), -1);
	assert_int_equal(km_offmap_add(&m, 30, 40, 0), -1);
	km_offmap_clear(&m);
}

static void test_builder(void **state)
{
	km_offrun_builder_t b = {0};
	km_offrun_t r;
	(void)state;
	assert_int_equal(km_offrun_feed(&b, 0, 100, &r), 0);
	assert_int_equal(km_offrun_feed(&b, 1, 101, &r), 0);
	assert_int_equal(km_offrun_feed(&b, 3, 102, &r), 1); /* source hole */
	assert_int_equal(r.src_first, 0);
	assert_int_equal(r.count, 2);
	assert_int_equal(km_offrun_feed(&b, 4, 104, &r), 1); /* target hole */
	assert_int_equal(r.src_first, 3);
	assert_int_equal(r.count, 1);
	assert_int_equal(km_offrun_finish(&b, &r), 1);
	assert_int_equal(r.src_first, 4);
	assert_int_equal(r.tgt_first, 104);
	assert_int_equal(km_offrun_finish(&b, &r), 0);
}

static void test_large_binary_search(void **state)
{
	km_offmap_t m = KM_OFFMAP_INIT;
	int64_t t;
	(void)state;
	/* 100000 runs of 3 with a source hole of 1 and a target hole of 1. */
	for (int64_t i = 0; i < 100000; i++)
		assert_int_equal(km_offmap_add(&m, i * 4, i * 5, 3), 0);
	for (int64_t c = 0; c < 400000; c += 7919) {
		int64_t run = c / 4, in = c % 4;
		assert_int_equal(km_offmap_translate(&m, c, &t), 0);
		assert_int_equal(t, in < 3 ? run * 5 + in : (run + 1) * 5);
	}
	km_offmap_clear(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge_and_translate),
		cmocka_unit_test(test_rejects_overlap),
		cmocka_unit_test(test_builder),
		cmocka_unit_test(test_large_binary_search),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
