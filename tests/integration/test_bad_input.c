/*
 * Bad input, tried as a new user would: each mistake gives one line that
 * names the problem, exit 2 (input) or 3 (cluster/IO), and leaves the
 * journal exactly as it was.  Also: the secure cluster works with the right
 * password, and a cluster without an authorizer has "unknown" ACLs.
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tk.h"
#include "util.h"

static char *dir, *good_plan, *journal;

static int one_line(const char *s)
{
	const char *nl = strchr(s, '\n');
	return nl && nl[1] == '\0';
}

/* Runs `kmigrate CMD [ARG] -p plan` on plan text; checks exit code, one
 * line on stderr containing needle, and the journal unchanged. */
static void expect_cmd_failure(const char *cmd, const char *arg, const char *name,
			       const char *plan_text, int want_rc, const char *needle,
			       const char *const *extra_env)
{
	char *out, *err, *path;
	size_t before_len = 0, after_len = 0;
	char *before = tk_read_file(journal, &before_len), *after;
	int rc;

	for (int i = 0; extra_env && extra_env[i]; i += 2)
		setenv(extra_env[i], extra_env[i + 1], 1);
	path = tk_write_file(dir, name, plan_text);
	const char *argv[] = {tk_kmigrate(), cmd, "-p", path, arg, NULL};
	rc = tk_run(&out, &err, argv);
	for (int i = 0; extra_env && extra_env[i]; i += 2)
		unsetenv(extra_env[i]);
	if (rc != want_rc || !strstr(err, needle) || !one_line(err))
		fail_msg("%s %s %s: exit %d (want %d), stderr '%s' (want one line with '%s')",
			 cmd, arg ? arg : "", name, rc, want_rc, err, needle);
	after = tk_read_file(journal, &after_len);
	assert_non_null(after);
	assert_true(before_len == after_len && !memcmp(before, after, before_len));
	free(before);
	free(after);
	free(out);
	free(err);
	free(path);
}

static void expect_failure(const char *name, const char *plan_text, int want_rc,
			   const char *needle, const char *const *extra_env)
{
	expect_cmd_failure("inventory", NULL, name, plan_text, want_rc, needle, extra_env);
}

static void test_setup_good_journal(void **state)
{
	char plan[1024], *out, *err;
	(void)state;
	dir = tk_tmpdir("badinput");
	snprintf(plan, sizeof(plan),
		 "migration: bad-input\nsource:\n  bootstrap: %s\ntarget:\n  bootstrap: %s\n",
		 getenv("KM_TEST_TARGET"), getenv("KM_TEST_PLAIN"));
	good_plan = tk_write_file(dir, "good.yaml", plan);
	journal = km_asprintf("%s/kmigrate.db", dir);
	const char *argv[] = {tk_kmigrate(), "inventory", "-p", good_plan, "--no-sample", NULL};
	int rc = tk_run(&out, &err, argv);
	if (rc != 0 && rc != 1)
		fail_msg("good inventory failed (%d): %s", rc, err);
	free(out);
	free(err);
	/* A saved design, so that apply gets as far as the target. */
	const char *pargv[] = {tk_kmigrate(), "plan", "-p", good_plan, NULL};
	rc = tk_run(&out, &err, pargv);
	if (rc != 0 && rc != 1)
		fail_msg("good plan failed (%d): %s", rc, err);
	free(out);
	free(err);
}

static void test_typo_key(void **state)
{
	(void)state;
	expect_failure("typo.yaml",
		       "migration: bad-input\nsource:\n  bootstrap: 127.0.0.1:1\n"
		       "  bootstarp: x\ntarget:\n  bootstrap: 127.0.0.1:2\n",
		       2, "typo.yaml:4:3: unknown key 'bootstarp'", NULL);
}

static void test_bad_regex(void **state)
{
	(void)state;
	expect_failure("regex.yaml",
		       "migration: bad-input\nsource:\n  bootstrap: 127.0.0.1:1\n"
		       "target:\n  bootstrap: 127.0.0.1:2\ntopics:\n  include: [\"orders(\"]\n",
		       2, "regex.yaml:7:", NULL);
}

static void test_unreachable(void **state)
{
	(void)state;
	expect_failure("unreachable.yaml",
		       "migration: bad-input\nsource:\n  bootstrap: 127.0.0.1:1\n"
		       "target:\n  bootstrap: 127.0.0.1:2\n",
		       3, "cannot reach the source cluster at '127.0.0.1:1'", NULL);
}

static void test_wrong_password(void **state)
{
	char plan[1024];
	const char *env[] = {"KM_IT_BAD_PW", "not-the-password", NULL};
	(void)state;
	snprintf(plan, sizeof(plan),
		 "migration: bad-input\nsource:\n  bootstrap: %s\n"
		 "  security_protocol: sasl_ssl\n  sasl_mechanism: SCRAM-SHA-512\n"
		 "  username: admin\n  password_env: KM_IT_BAD_PW\n  ssl_ca: %s\n"
		 "target:\n  bootstrap: 127.0.0.1:2\n",
		 getenv("KM_TEST_SECURE"), getenv("KM_TEST_SECURE_CA"));
	expect_failure("badpw.yaml", plan, 3,
		       "authentication to the source cluster", env);
}

/* Every command that talks to a cluster fails before doing any work when
 * a password is wrong or a cluster cannot be reached: exit 3, one line, the
 * journal byte for byte as it was.  (check used to journal a NO-GO when
 * the source, which it reads for the record sizes the plan needs, could not
 * be used.) */
static void test_wrong_password_or_unreachable_every_command(void **state)
{
	char badsrc[1024], badtgt[1024];
	const char *env[] = {"KM_IT_BAD_PW", "not-the-password", NULL};
	const char *auth_src = "authentication to the source cluster";
	const char *auth_tgt = "authentication to the target cluster";
	const char *down_src = "cannot reach the source cluster at '127.0.0.1:1'";
	const char *down_tgt = "cannot reach the target cluster at '127.0.0.1:2'";
	const char *secure =
		"  security_protocol: sasl_ssl\n  sasl_mechanism: SCRAM-SHA-512\n"
		"  username: admin\n  password_env: KM_IT_BAD_PW\n  ssl_ca: %s\n";
	char sec[512], *downsrc, *downtgt;
	(void)state;

	snprintf(sec, sizeof(sec), secure, getenv("KM_TEST_SECURE_CA"));
	snprintf(badsrc, sizeof(badsrc),
		 "migration: bad-input\nsource:\n  bootstrap: %s\n%s"
		 "target:\n  bootstrap: %s\n",
		 getenv("KM_TEST_SECURE"), sec, getenv("KM_TEST_PLAIN"));
	snprintf(badtgt, sizeof(badtgt),
		 "migration: bad-input\nsource:\n  bootstrap: %s\n"
		 "target:\n  bootstrap: %s\n%s",
		 getenv("KM_TEST_TARGET"), getenv("KM_TEST_SECURE"), sec);
	downsrc = km_asprintf("migration: bad-input\nsource:\n  bootstrap: 127.0.0.1:1\n"
			      "target:\n  bootstrap: %s\n", getenv("KM_TEST_PLAIN"));
	downtgt = km_asprintf("migration: bad-input\nsource:\n  bootstrap: %s\n"
			      "target:\n  bootstrap: 127.0.0.1:2\n", getenv("KM_TEST_TARGET"));

	expect_cmd_failure("check", NULL, "badsrc.yaml", badsrc, 3, auth_src, env);
	expect_cmd_failure("check", NULL, "downsrc.yaml", downsrc, 3, down_src, NULL);
	expect_cmd_failure("check", NULL, "badtgt.yaml", badtgt, 3, auth_tgt, env);
	expect_cmd_failure("check", NULL, "downtgt.yaml", downtgt, 3, down_tgt, NULL);
	expect_cmd_failure("plan", NULL, "badsrc.yaml", badsrc, 3, auth_src, env);
	expect_cmd_failure("plan", NULL, "badtgt.yaml", badtgt, 3, auth_tgt, env);
	expect_cmd_failure("plan", NULL, "downsrc.yaml", downsrc, 3, down_src, NULL);
	expect_cmd_failure("plan", NULL, "downtgt.yaml", downtgt, 3, down_tgt, NULL);
	expect_cmd_failure("apply", NULL, "badtgt.yaml", badtgt, 3, auth_tgt, env);
	expect_cmd_failure("apply", "--dry-run", "badtgt.yaml", badtgt, 3, auth_tgt, env);
	expect_cmd_failure("apply", NULL, "downtgt.yaml", downtgt, 3, down_tgt, NULL);
	expect_cmd_failure("inventory", "--cluster=target", "badtgt.yaml", badtgt, 3,
			   auth_tgt, env);
	expect_cmd_failure("inventory", "--cluster=target", "downtgt.yaml", downtgt, 3,
			   down_tgt, NULL);
	expect_cmd_failure("offsets", NULL, "badsrc.yaml", badsrc, 3, auth_src, env);
	expect_cmd_failure("offsets", NULL, "badtgt.yaml", badtgt, 3, auth_tgt, env);
	expect_cmd_failure("offsets", "--commit", "downtgt.yaml", downtgt, 3, down_tgt, NULL);
	expect_cmd_failure("validate", NULL, "badsrc.yaml", badsrc, 3, auth_src, env);
	expect_cmd_failure("validate", NULL, "badtgt.yaml", badtgt, 3, auth_tgt, env);
	expect_cmd_failure("validate", NULL, "downsrc.yaml", downsrc, 3, down_src, NULL);
	expect_cmd_failure("replicate", "--until-caught-up", "badsrc.yaml", badsrc, 3, auth_src,
			   env);
	expect_cmd_failure("replicate", "--until-caught-up", "downtgt.yaml", downtgt, 3,
			   down_tgt, NULL);
	free(downsrc);
	free(downtgt);
}

/* init writes no plan when a cluster cannot be reached. */
static void test_init_unreachable_writes_nothing(void **state)
{
	char *out, *err, *path = km_asprintf("%s/init.yaml", dir);
	(void)state;
	const char *argv[] = {tk_kmigrate(), "init", "--source", getenv("KM_TEST_TARGET"),
			      "--target", "127.0.0.1:2", "-o", path, NULL};
	assert_int_equal(tk_run(&out, &err, argv), 3);
	assert_non_null(strstr(err, "cannot reach the target cluster at '127.0.0.1:2'"));
	assert_true(one_line(err));
	assert_int_equal(access(path, F_OK), -1);
	free(out);
	free(err);
	free(path);
}

static void test_missing_password_env(void **state)
{
	char plan[1024];
	(void)state;
	snprintf(plan, sizeof(plan),
		 "migration: bad-input\nsource:\n  bootstrap: %s\n"
		 "  security_protocol: sasl_ssl\n  sasl_mechanism: SCRAM-SHA-512\n"
		 "  username: admin\n  password_env: KM_IT_UNSET_PW\n  ssl_ca: %s\n"
		 "target:\n  bootstrap: 127.0.0.1:2\n",
		 getenv("KM_TEST_SECURE"), getenv("KM_TEST_SECURE_CA"));
	expect_failure("nopw.yaml", plan, 2, "KM_IT_UNSET_PW", NULL);
}

static void test_missing_journal_folder(void **state)
{
	char plan[1024];
	(void)state;
	snprintf(plan, sizeof(plan),
		 "migration: bad-input\njournal: %s/no/such/folder/j.db\nsource:\n"
		 "  bootstrap: %s\ntarget:\n  bootstrap: %s\n",
		 dir, getenv("KM_TEST_TARGET"), getenv("KM_TEST_PLAIN"));
	expect_failure("nojournal.yaml", plan, 3, "journal folder", NULL);
	char *p = km_asprintf("%s/no", dir);
	assert_int_equal(access(p, F_OK), -1); /* nothing was created */
	free(p);
}

static void test_unknown_flag_and_command(void **state)
{
	char *out, *err;
	(void)state;
	const char *a1[] = {tk_kmigrate(), "inventory", "--cluster", "middle", "-p", good_plan, NULL};
	assert_int_equal(tk_run(&out, &err, a1), 2);
	assert_non_null(strstr(err, "--cluster must be 'source' or 'target'"));
	free(out);
	free(err);
	const char *a2[] = {tk_kmigrate(), "invntory", NULL};
	assert_int_equal(tk_run(&out, &err, a2), 2);
	assert_non_null(strstr(err, "unknown command 'invntory'"));
	free(out);
	free(err);
	const char *a3[] = {tk_kmigrate(), "--version", NULL};
	assert_int_equal(tk_run(&out, &err, a3), 0);
	assert_non_null(strstr(out, "librdkafka 2."));
	/* The binary's malloc is mimalloc's, not only linked (CMakeLists.txt;
	 * under the sanitizers, the C library's). */
#ifdef KM_EXPECT_MIMALLOC
	assert_non_null(strstr(out, "mimalloc 2."));
	assert_null(strstr(out, "NOT replacing"));
#else
	assert_non_null(strstr(out, "the C library's malloc"));
#endif
	free(out);
	free(err);
}

static void test_secure_cluster_ok(void **state)
{
	char plan[1024], *out, *err, *path;
	(void)state;
	setenv("KM_IT_GOOD_PW", getenv("KM_TEST_SECURE_PASSWORD"), 1);
	snprintf(plan, sizeof(plan),
		 "migration: secure\nsource:\n  bootstrap: %s\n"
		 "  security_protocol: sasl_ssl\n  sasl_mechanism: SCRAM-SHA-512\n"
		 "  username: admin\n  password_env: KM_IT_GOOD_PW\n  ssl_ca: %s\n"
		 "target:\n  bootstrap: 127.0.0.1:2\n",
		 getenv("KM_TEST_SECURE"), getenv("KM_TEST_SECURE_CA"));
	path = tk_write_file(dir, "secure.yaml", plan);
	const char *argv[] = {tk_kmigrate(), "inventory", "-p", path, "--json", NULL};
	int rc = tk_run(&out, &err, argv);
	if (rc != 0 && rc != 1)
		fail_msg("secure inventory failed (%d): %s", rc, err);
	json_t *doc = tk_json(out), *inv = json_object_get(doc, "inventory"), *u;
	size_t i;
	int admin = 0, alice = 0;
	json_array_foreach(json_object_get(inv, "scram_users"), i, u) {
		admin |= !strcmp(json_string_value(json_object_get(u, "user")), "admin");
		alice |= !strcmp(json_string_value(json_object_get(u, "user")), "alice");
	}
	assert_true(admin && alice);
	/* Quotas over SASL_SSL are reported as not inventoried, never skipped. */
	assert_non_null(json_object_get(json_object_get(inv, "quotas"), "not_inventoried"));
	assert_true(json_is_array(json_object_get(inv, "acls")));
	/* The password never reaches the journal. */
	size_t n;
	char *jb, jpath[1024];
	snprintf(jpath, sizeof(jpath), "%s/kmigrate.db", dir);
	jb = tk_read_file(jpath, &n);
	assert_null(memmem(jb, n, getenv("KM_TEST_SECURE_PASSWORD"),
			   strlen(getenv("KM_TEST_SECURE_PASSWORD"))));
	free(jb);
	json_decref(doc);
	free(out);
	free(err);
	free(path);
}

static void test_no_authorizer_acls_unknown(void **state)
{
	char plan[1024], *out, *err, *path;
	(void)state;
	snprintf(plan, sizeof(plan),
		 "migration: plain\nsource:\n  bootstrap: %s\ntarget:\n  bootstrap: %s\n",
		 getenv("KM_TEST_PLAIN"), getenv("KM_TEST_TARGET"));
	path = tk_write_file(dir, "plain.yaml", plan);
	const char *argv[] = {tk_kmigrate(), "inventory", "-p", path, "--json", NULL};
	assert_int_equal(tk_run(&out, &err, argv), 1);
	json_t *doc = tk_json(out), *inv = json_object_get(doc, "inventory");
	assert_non_null(strstr(json_string_value(json_object_get(
				       json_object_get(inv, "acls"), "not_inventoried")),
			       "no authorizer"));
	json_decref(doc);
	free(out);
	free(err);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_setup_good_journal),
		cmocka_unit_test(test_typo_key),
		cmocka_unit_test(test_bad_regex),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_wrong_password),
		cmocka_unit_test(test_wrong_password_or_unreachable_every_command),
		cmocka_unit_test(test_init_unreachable_writes_nothing),
		cmocka_unit_test(test_missing_password_env),
		cmocka_unit_test(test_missing_journal_folder),
		cmocka_unit_test(test_unknown_flag_and_command),
		cmocka_unit_test(test_secure_cluster_ok),
		cmocka_unit_test(test_no_authorizer_acls_unknown),
	};
	/* TK_ONLY=test_name (a glob) runs a subset, e.g. while working on one. */
	if (getenv("TK_ONLY"))
		cmocka_set_test_filter(getenv("TK_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
