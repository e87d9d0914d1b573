/*
 * fuzz_plan.c -- libFuzzer target for the plan parser.
 *
 * Feeds arbitrary bytes to km_plan_parse() and destroys whatever comes back.
 * The parser must never crash, hang, leak or read outside the buffer on any
 * input: it returns a plan, or KM_ERR_PLAN with one terminated line of
 * error and no plan.  Seeds live in tests/fuzz/corpus/plan/, a dictionary
 * of plan keys and YAML tokens in tests/fuzz/corpus/plan.dict.
 *
 *   clang -g -fsanitize=fuzzer,address -Ilib tests/fuzz/fuzz_plan.c \
 *         lib/plan.c lib/err.c lib/util.c -lyaml -o /tmp/fuzz_plan
 *   mkdir -p /tmp/plan-corpus
 *   /tmp/fuzz_plan -max_total_time=60 -dict=tests/fuzz/corpus/plan.dict \
 *         /tmp/plan-corpus tests/fuzz/corpus/plan
 *
 * (libFuzzer writes new inputs into the first directory; keep the seeds
 * directory second so it stays as committed.)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char errstr[512];
	km_plan_t *plan = NULL;
	km_err_t err;

	/* No NUL anywhere: an error path that forgets its message shows. */
	memset(errstr, 'x', sizeof(errstr));
	err = km_plan_parse((const char *)data, size, "fuzz.yaml", "/fuzz",
			    &plan, errstr, sizeof(errstr));
	if (err == KM_ERR_OK) {
		/* Exercise the queries on whatever was accepted. */
		char *name = km_plan_target_topic(plan, "orders");
		(void)km_plan_topic_in_scope(plan, "orders");
		(void)km_plan_topic_rule(plan, "_orders");
		free(name);
		km_plan_destroy(plan);
	} else if (plan || err != KM_ERR_PLAN ||
		   !memchr(errstr, '\0', sizeof(errstr)) || !errstr[0] ||
		   strchr(errstr, '\n')) {
		abort();
	}
	return 0;
}
