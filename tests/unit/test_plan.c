/*
 * test_plan.c -- the plan loader: a full plan with every field, defaults,
 * one table of invalid plans each with its exact line:column and message,
 * topic scope and rule matching, naming, and passwords read at use time.
 *
 * Plans are embedded as strings and parsed with km_plan_parse(), except
 * where loading from a file is the point.  Run one case by name with
 * `test_plan <glob>` (cmocka's test filter).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plan.h"
#include "util.h"

/* --------------------------------------------------------------------- */
/* Helpers                                                               */

static km_plan_t *parse_ok(const char *yaml, const char *base_dir)
{
	char errstr[512] = "";
	km_plan_t *plan = NULL;
	km_err_t err = km_plan_parse(yaml, strlen(yaml), "plan.yaml", base_dir,
				     &plan, errstr, sizeof(errstr));
	if (err)
		fail_msg("unexpected error %s: %s", km_err_name(err), errstr);
	assert_non_null(plan);
	return plan;
}

/* Makes a temporary directory for files the test writes; owned. */
static char *make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *dir = malloc(PATH_MAX);

	assert_non_null(dir);
	snprintf(dir, PATH_MAX, "%s/km-test-plan-XXXXXX",
		 base && *base ? base : "/tmp");
	assert_non_null(mkdtemp(dir));
	return dir;
}

static char *write_file(const char *dir, const char *name, const char *text)
{
	char *path = malloc(PATH_MAX);
	FILE *f;

	assert_non_null(path);
	snprintf(path, PATH_MAX, "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
	return path;
}

/* --------------------------------------------------------------------- */
/* A full plan                                                           */

static const char full_plan[] =
	"# every key the plan knows\n"                            /* 1 */
	"migration: orders-eu\n"                                  /* 2 */
	"journal: ./state/orders-eu.db\n"                         /* 3 */
	"source:\n"                                               /* 4 */
	"  bootstrap: 127.0.0.1:19092,[::1]:19093\n"              /* 5 */
	"  security_protocol: SASL_SSL\n"                         /* 6 */
	"  sasl_mechanism: scram-sha-512\n"                       /* 7 */
	"  username: admin\n"                                     /* 8 */
	"  password_env: KM_SOURCE_PASSWORD\n"                    /* 9 */
	"  ssl_ca: ./ca.pem\n"                                    /* 10 */
	"  properties:\n"                                         /* 11 */
	"    socket.timeout.ms: \"10000\"\n"                      /* 12 */
	"    client.id: kmigrate\n"                               /* 13 */
	"  connect_url: http://127.0.0.1:18083\n"                 /* 14 */
	"  schema_registry_url: https://sr.example:8081/x\n"      /* 15 */
	"target:\n"                                               /* 16 */
	"  bootstrap: 127.0.0.1:29092\n"                          /* 17 */
	"  security_protocol: sasl_plaintext\n"                   /* 18 */
	"  sasl_mechanism: PLAIN\n"                               /* 19 */
	"  username: migrator\n"                                  /* 20 */
	"  password_file: secrets/target.pw\n"                    /* 21 */
	"topics:\n"                                               /* 22 */
	"  include: [\"^orders\\\\.\", \"^payments$\"]\n"         /* 23 */
	"  exclude: [\"\\\\.tmp$\"]\n"                            /* 24 */
	"  internal: yes\n"                                       /* 25 */
	"  rules:\n"                                              /* 26 */
	"    - match: \"^payments$\"\n"                           /* 27 */
	"      ordering: strict\n"                                /* 28 */
	"      duplicates: none\n"                                /* 29 */
	"      replay: forbidden\n"                               /* 30 */
	"      owner: team-payments\n"                            /* 31 */
	"    - match: \"^orders\\\\.\"\n"                         /* 32 */
	"      ordering: key\n"                                   /* 33 */
	"naming:\n"                                               /* 34 */
	"  mode: map\n"                                           /* 35 */
	"  map: { \"orders.eu\": \"orders-v2\", payments: pay }\n" /* 36 */
	"consumer_groups:\n"                                      /* 37 */
	"  - id: billing\n"                                       /* 38 */
	"    restart: translated\n"                               /* 39 */
	"    replay: tolerated\n"                                 /* 40 */
	"    owner: team-billing\n"                               /* 41 */
	"    chosen_by: alice\n"                                  /* 42 */
	"  - id: fraud\n"                                         /* 43 */
	"    restart: timestamp:2026-11-25T10:00:00.250Z\n"       /* 44 */
	"    replay: forbidden\n"                                 /* 45 */
	"  - id: audit\n"                                         /* 46 */
	"    restart: Earliest\n"                                 /* 47 */
	"  - {id: replays, restart: latest}\n"                    /* 48 */
	"producers:\n"                                            /* 49 */
	"  - name: checkout-api\n"                                /* 50 */
	"    client: librdkafka\n"                                /* 51 */
	"    client_version: \"2.3.0\"\n"                         /* 52 */
	"    idempotence: true\n"                                 /* 53 */
	"    transactions: no\n"                                  /* 54 */
	"    topics: [orders.eu, payments]\n"                     /* 55 */
	"    owner: team-checkout\n"                              /* 56 */
	"    validation: canary produce from staging\n"           /* 57 */
	"  - name: legacy\n"                                      /* 58 */
	"consumers:\n"                                            /* 59 */
	"  - name: billing-service\n"                             /* 60 */
	"    group: billing\n"                                    /* 61 */
	"    client: java\n"                                      /* 62 */
	"    client_version: 3.6.0\n"                             /* 63 */
	"    owner: team-billing\n"                               /* 64 */
	"    validation: invoices match\n"                        /* 65 */
	"connectors:\n"                                           /* 66 */
	"  - name: orders-sink\n"                                 /* 67 */
	"    class: io.confluent.connect.jdbc.JdbcSinkConnector\n" /* 68 */
	"    side_effects: writes to warehouse\n"                 /* 69 */
	"    owner: team-data\n"                                  /* 70 */
	"    validation: row counts\n"                            /* 71 */
	"dashboards:\n"                                           /* 72 */
	"  - {name: orders-dash, owner: sre, validation: panels}\n" /* 73 */
	"alerts:\n"                                               /* 74 */
	"  - {name: lag-alert, owner: sre, validation: fires}\n"  /* 75 */
	"runbooks:\n"                                             /* 76 */
	"  - {name: incident, owner: sre, validation: reviewed}\n" /* 77 */
	"gates:\n"                                                /* 78 */
	"  max_lag_records: 100\n"                                /* 79 */
	"  max_lag_seconds: 5\n"                                  /* 80 */
	"  max_mismatches: 2\n"                                   /* 81 */
	"  large_message_ratio: 0.75\n"                           /* 82 */
	"  many_partitions: 128\n"                                /* 83 */
	"rollback:\n"                                             /* 84 */
	"  triggers:\n"                                           /* 85 */
	"    - name: errors\n"                                    /* 86 */
	"      metric: kmigrate_consumer_group_lag_records\n"     /* 87 */
	"      threshold: 5\n"                                    /* 88 */
	"      owner: team-billing\n"                             /* 89 */
	"    - {name: latency, metric: kmigrate_stale_readers, threshold: 2.5e2}\n"; /* 90 */

static void test_full_plan(void **state)
{
	km_plan_t *plan = parse_ok(full_plan, "/plans");
	const km_plan_cluster_t *s = &plan->source, *t = &plan->target;
	const km_plan_topics_t *tp = &plan->topics;
	char buf[64];

	(void)state;
	assert_string_equal(plan->path, "plan.yaml");
	assert_string_equal(plan->dir, "/plans");
	assert_string_equal(plan->migration, "orders-eu");
	assert_string_equal(plan->journal, "/plans/state/orders-eu.db");
	assert_int_equal(plan->pos.line, 2);
	assert_int_equal(plan->pos.col, 1);

	assert_string_equal(s->role, "source");
	assert_int_equal(s->pos.line, 5);
	assert_int_equal(s->pos.col, 3);
	assert_string_equal(s->bootstrap, "127.0.0.1:19092,[::1]:19093");
	assert_int_equal(s->security_protocol, KM_PLAN_SEC_SASL_SSL);
	assert_string_equal(km_plan_secproto_str(s->security_protocol),
			    "sasl_ssl");
	assert_string_equal(s->sasl_mechanism, "SCRAM-SHA-512");
	assert_string_equal(s->username, "admin");
	assert_string_equal(s->password_env, "KM_SOURCE_PASSWORD");
	assert_null(s->password_file);
	assert_string_equal(s->ssl_ca, "/plans/ca.pem");
	assert_int_equal(s->props_cnt, 2);
	assert_string_equal(s->props[0].key, "socket.timeout.ms");
	assert_string_equal(s->props[0].value, "10000");
	assert_int_equal(s->props[0].pos.line, 12);
	assert_string_equal(s->props[1].key, "client.id");
	assert_string_equal(s->props[1].value, "kmigrate");
	assert_string_equal(s->connect_url, "http://127.0.0.1:18083");
	assert_string_equal(s->schema_registry_url,
			    "https://sr.example:8081/x");

	assert_string_equal(t->role, "target");
	assert_string_equal(t->bootstrap, "127.0.0.1:29092");
	assert_int_equal(t->security_protocol, KM_PLAN_SEC_SASL_PLAINTEXT);
	assert_string_equal(t->sasl_mechanism, "PLAIN");
	assert_string_equal(t->username, "migrator");
	assert_null(t->password_env);
	assert_string_equal(t->password_file, "/plans/secrets/target.pw");
	assert_null(t->ssl_ca);
	assert_int_equal(t->props_cnt, 0);
	assert_null(t->connect_url);
	assert_null(t->schema_registry_url);

	assert_int_equal(tp->include_cnt, 2);
	assert_string_equal(tp->include[0].pattern, "^orders\\.");
	assert_int_equal(tp->include[0].pos.line, 23);
	assert_int_equal(tp->include[0].pos.col, 13);
	assert_string_equal(tp->include[1].pattern, "^payments$");
	assert_int_equal(tp->exclude_cnt, 1);
	assert_string_equal(tp->exclude[0].pattern, "\\.tmp$");
	assert_true(tp->internal);
	assert_int_equal(tp->rules_cnt, 2);
	assert_int_equal(tp->rules[0].pos.line, 27);
	assert_int_equal(tp->rules[0].pos.col, 7);
	assert_string_equal(tp->rules[0].match.pattern, "^payments$");
	assert_int_equal(tp->rules[0].ordering, KM_PLAN_ORDERING_STRICT);
	assert_int_equal(tp->rules[0].duplicates, KM_PLAN_DUPLICATES_NONE);
	assert_int_equal(tp->rules[0].replay, KM_PLAN_REPLAY_FORBIDDEN);
	assert_string_equal(tp->rules[0].owner, "team-payments");
	assert_int_equal(tp->rules[1].ordering, KM_PLAN_ORDERING_KEY);
	assert_int_equal(tp->rules[1].duplicates,
			 KM_PLAN_DUPLICATES_TOLERATED);
	assert_int_equal(tp->rules[1].replay, KM_PLAN_REPLAY_TOLERATED);
	assert_null(tp->rules[1].owner);
	assert_string_equal(km_plan_ordering_str(tp->rules[1].ordering),
			    "key");
	assert_string_equal(km_plan_duplicates_str(tp->rules[0].duplicates),
			    "none");
	assert_string_equal(km_plan_replay_str(tp->rules[0].replay),
			    "forbidden");

	assert_int_equal(plan->naming.mode, KM_PLAN_NAMING_MAP);
	assert_string_equal(km_plan_naming_mode_str(plan->naming.mode), "map");
	assert_null(plan->naming.prefix);
	assert_int_equal(plan->naming.map_cnt, 2);
	assert_string_equal(plan->naming.map[0].key, "orders.eu");
	assert_string_equal(plan->naming.map[0].value, "orders-v2");
	assert_string_equal(plan->naming.map[1].key, "payments");
	assert_string_equal(plan->naming.map[1].value, "pay");

	assert_int_equal(plan->groups_cnt, 4);
	assert_string_equal(plan->groups[0].id, "billing");
	assert_int_equal(plan->groups[0].pos.line, 38);
	assert_int_equal(plan->groups[0].pos.col, 5);
	assert_int_equal(plan->groups[0].restart, KM_PLAN_RESTART_TRANSLATED);
	assert_int_equal(plan->groups[0].replay, KM_PLAN_REPLAY_TOLERATED);
	assert_string_equal(plan->groups[0].owner, "team-billing");
	assert_string_equal(plan->groups[0].chosen_by, "alice");
	assert_string_equal(plan->groups[1].id, "fraud");
	assert_int_equal(plan->groups[1].restart, KM_PLAN_RESTART_TIMESTAMP);
	/* date -u -d 2026-11-25T10:00:00Z +%s -> 1795600800 */
	assert_int_equal(plan->groups[1].restart_ts_ms, 1795600800250LL);
	assert_int_equal(plan->groups[1].replay, KM_PLAN_REPLAY_FORBIDDEN);
	assert_null(plan->groups[1].owner);
	assert_null(plan->groups[1].chosen_by);
	assert_string_equal(
		km_plan_group_restart_str(&plan->groups[1], buf, sizeof(buf)),
		"timestamp:2026-11-25T10:00:00.250Z");
	assert_int_equal(plan->groups[2].restart, KM_PLAN_RESTART_EARLIEST);
	assert_string_equal(
		km_plan_group_restart_str(&plan->groups[2], buf, sizeof(buf)),
		"earliest");
	assert_int_equal(plan->groups[3].restart, KM_PLAN_RESTART_LATEST);
	assert_int_equal(plan->groups[3].pos.line, 48);
	assert_int_equal(plan->groups[3].pos.col, 5);

	assert_int_equal(plan->producers_cnt, 2);
	assert_int_equal(plan->producers[0].pos.line, 50);
	assert_string_equal(plan->producers[0].name, "checkout-api");
	assert_string_equal(plan->producers[0].client, "librdkafka");
	assert_string_equal(plan->producers[0].client_version, "2.3.0");
	assert_int_equal(plan->producers[0].idempotence, KM_PLAN_YES);
	assert_int_equal(plan->producers[0].transactions, KM_PLAN_NO);
	assert_int_equal(plan->producers[0].topics_cnt, 2);
	assert_string_equal(plan->producers[0].topics[0], "orders.eu");
	assert_string_equal(plan->producers[0].topics[1], "payments");
	assert_string_equal(plan->producers[0].owner, "team-checkout");
	assert_string_equal(plan->producers[0].validation,
			    "canary produce from staging");
	assert_string_equal(plan->producers[1].name, "legacy");
	assert_int_equal(plan->producers[1].idempotence, KM_PLAN_UNSET);
	assert_int_equal(plan->producers[1].transactions, KM_PLAN_UNSET);
	assert_string_equal(km_plan_tri_str(plan->producers[1].idempotence),
			    "unset");
	assert_int_equal(plan->producers[1].topics_cnt, 0);
	assert_null(plan->producers[1].client);

	assert_int_equal(plan->consumers_cnt, 1);
	assert_int_equal(plan->consumers[0].pos.line, 60);
	assert_string_equal(plan->consumers[0].name, "billing-service");
	assert_string_equal(plan->consumers[0].group, "billing");
	assert_string_equal(plan->consumers[0].client, "java");
	assert_string_equal(plan->consumers[0].client_version, "3.6.0");
	assert_string_equal(plan->consumers[0].owner, "team-billing");
	assert_string_equal(plan->consumers[0].validation, "invoices match");

	assert_int_equal(plan->connectors_cnt, 1);
	assert_string_equal(plan->connectors[0].name, "orders-sink");
	assert_string_equal(plan->connectors[0].class_name,
			    "io.confluent.connect.jdbc.JdbcSinkConnector");
	assert_string_equal(plan->connectors[0].side_effects,
			    "writes to warehouse");
	assert_string_equal(plan->connectors[0].owner, "team-data");
	assert_string_equal(plan->connectors[0].validation, "row counts");

	assert_int_equal(plan->dashboards_cnt, 1);
	assert_string_equal(plan->dashboards[0].name, "orders-dash");
	assert_string_equal(plan->dashboards[0].owner, "sre");
	assert_string_equal(plan->dashboards[0].validation, "panels");
	assert_int_equal(plan->dashboards[0].pos.line, 73);
	assert_int_equal(plan->alerts_cnt, 1);
	assert_string_equal(plan->alerts[0].name, "lag-alert");
	assert_string_equal(plan->alerts[0].validation, "fires");
	assert_int_equal(plan->runbooks_cnt, 1);
	assert_string_equal(plan->runbooks[0].name, "incident");
	assert_string_equal(plan->runbooks[0].validation, "reviewed");

	assert_int_equal(plan->gates.max_lag_records, 100);
	assert_int_equal(plan->gates.max_lag_seconds, 5);
	assert_int_equal(plan->gates.max_mismatches, 2);
	assert_true(plan->gates.large_message_ratio == 0.75);
	assert_int_equal(plan->gates.many_partitions, 128);

	assert_int_equal(plan->rollback.triggers_cnt, 2);
	assert_string_equal(plan->rollback.triggers[0].name, "errors");
	assert_string_equal(plan->rollback.triggers[0].metric,
			    "kmigrate_consumer_group_lag_records");
	assert_int_equal(plan->rollback.triggers[0].op, KM_PLAN_OP_GT);
	assert_int_equal(plan->monitoring.interval, 10);
	assert_true(plan->rollback.triggers[0].threshold == 5.0);
	assert_string_equal(plan->rollback.triggers[0].owner, "team-billing");
	assert_int_equal(plan->rollback.triggers[0].pos.line, 86);
	assert_string_equal(plan->rollback.triggers[1].name, "latency");
	assert_string_equal(plan->rollback.triggers[1].metric, "kmigrate_stale_readers");
	assert_true(plan->rollback.triggers[1].threshold == 250.0);
	assert_null(plan->rollback.triggers[1].owner);

	km_plan_destroy(plan);
}

static const char minimal_plan[] = "migration: m1\n"
				   "source:\n"
				   "  bootstrap: 127.0.0.1:19092\n"
				   "target:\n"
				   "  bootstrap: 127.0.0.1:29092\n";

static void test_defaults(void **state)
{
	km_plan_t *plan = parse_ok(minimal_plan, NULL);

	(void)state;
	assert_string_equal(plan->dir, ".");
	assert_string_equal(plan->journal, "kmigrate.db");
	assert_int_equal(plan->source.security_protocol,
			 KM_PLAN_SEC_PLAINTEXT);
	assert_null(plan->source.sasl_mechanism);
	assert_null(plan->source.password_env);
	assert_null(plan->source.password_file);
	assert_int_equal(plan->topics.include_cnt, 1);
	assert_string_equal(plan->topics.include[0].pattern, ".*");
	assert_int_equal(plan->topics.exclude_cnt, 0);
	assert_false(plan->topics.internal);
	assert_int_equal(plan->topics.rules_cnt, 0);
	assert_int_equal(plan->naming.mode, KM_PLAN_NAMING_IDENTITY);
	assert_int_equal(plan->groups_cnt, 0);
	assert_int_equal(plan->producers_cnt, 0);
	assert_int_equal(plan->gates.max_lag_records, 0);
	assert_int_equal(plan->gates.max_lag_seconds, 60);
	assert_int_equal(plan->gates.max_mismatches, 0);
	assert_true(plan->gates.large_message_ratio == 0.9);
	assert_int_equal(plan->gates.many_partitions, 64);
	assert_int_equal(plan->rollback.triggers_cnt, 0);
	km_plan_destroy(plan);

	/* Sections present but empty (items commented out) are empty, and a
	 * journal path relative to the plan directory resolves against it. */
	plan = parse_ok("migration: m1\n"
			"journal: j/k.db\n"
			"source: {bootstrap: 'a:1'}\n"
			"target: {bootstrap: 'b:1'}\n"
			"producers:\n"
			"  # - name: later\n"
			"topics:\n"
			"gates:\n"
			"naming: {mode: prefix, prefix: eu.}\n",
			"/srv/m1/");
	assert_string_equal(plan->journal, "/srv/m1/j/k.db");
	assert_int_equal(plan->producers_cnt, 0);
	assert_int_equal(plan->topics.include_cnt, 1);
	assert_int_equal(plan->gates.max_lag_seconds, 60);
	assert_string_equal(plan->naming.prefix, "eu.");
	km_plan_destroy(plan);
}

/* --------------------------------------------------------------------- */
/* Invalid plans                                                         */

typedef struct errcase_s {
	const char *name;
	const char *yaml;     /* NULL: the minimal plan + tail */
	const char *tail;
	const char *expected; /* the exact error line */
} errcase_t;

/* Lines 1-5 are the minimal plan, so the tail starts on line 6. */
static const errcase_t errcases[] = {
	{"unknown_key_suggestion", NULL,
	 "topics:\n"
	 "  incldue: [\"^orders\"]\n",
	 "plan.yaml:7:3: unknown key 'incldue' in 'topics' (did you mean "
	 "'include'?)"},
	{"unknown_top_level_key", "migraton: m1\n", NULL,
	 "plan.yaml:1:1: unknown key 'migraton' at top level (did you mean "
	 "'migration'?)"},
	{"unknown_key_typo_of_password",
	 "migration: m1\nsource:\n  bootstrap: a:1\n  pasword: x\n", NULL,
	 "plan.yaml:4:3: unknown key 'pasword' in 'source' (did you mean "
	 "'password_env' or 'password_file'?)"},
	{"unknown_key_no_suggestion", NULL, "colour: blue\n",
	 "plan.yaml:6:1: unknown key 'colour' at top level"},
	{"unknown_key_in_list_item", NULL,
	 "dashboards:\n"
	 "  - name: d\n"
	 "    ownr: sre\n",
	 "plan.yaml:8:5: unknown key 'ownr' in 'dashboards[0]' (did you mean "
	 "'owner'?)"},
	{"bad_regex", NULL,
	 "topics:\n"
	 "  include: [\"^orders\", \"(unclosed\"]\n",
	 "plan.yaml:7:24: invalid regex '(unclosed' for 'topics.include[1]': "},
	{"regex_stacked_repetition", NULL,
	 "topics:\n"
	 "  exclude: ['x', 'o+++++']\n",
	 "plan.yaml:7:18: regex 'o+++++' for 'topics.exclude[1]' is too "
	 "complex: a repetition operator follows another one"},
	{"regex_too_many_copies", NULL,
	 "topics:\n"
	 "  include: ['((a{1,16}){16}){17}']\n",
	 "plan.yaml:7:13: regex '((a{1,16}){16}){17}' for 'topics.include[0]' "
	 "is too complex: its repetitions multiply beyond 4096 copies"},
	{"regex_too_many_copies_glibc_interval", NULL,
	 "topics:\n"
	 "  include: ['(a{,100}){,100}']\n",
	 "plan.yaml:7:13: regex '(a{,100}){,100}' for 'topics.include[0]' "
	 "is too complex: its repetitions multiply beyond 4096 copies"},
	{"regex_backreference", NULL,
	 "topics:\n"
	 "  include: ['^(a*)*\\1$']\n",
	 "plan.yaml:7:13: regex '^(a*)*\\1$' for 'topics.include[0]' is too "
	 "complex: it uses a backreference, which POSIX extended regexes do "
	 "not have"},
	{"alias_expansion", NULL,
	 "producers:\n"
	 "  - {name: p0, topics: &t [a, b, c, d, e, f, g, h, i, j, k, l, m,\n"
	 "                        n, o, p, q, r, s, t, u, v, w, x, y, z]}\n"
	 "  - {name: p1, topics: *t}\n"
	 "  - {name: p2, topics: *t}\n"
	 "  - {name: p3, topics: *t}\n"
	 "  - {name: p4, topics: *t}\n"
	 "  - {name: p5, topics: *t}\n"
	 "  - {name: p6, topics: *t}\n"
	 "  - {name: p7, topics: *t}\n"
	 "  - {name: p8, topics: *t}\n"
	 "  - {name: p9, topics: *t}\n",
	 "plan.yaml:7:64: aliases repeat parts of the plan too many times: "
	 "write the values out"},
	{"bad_rule_regex", NULL,
	 "topics:\n"
	 "  rules:\n"
	 "    - match: \"a{2,1}\"\n",
	 "plan.yaml:8:14: invalid regex 'a{2,1}' for "
	 "'topics.rules[0].match': "},
	{"mapping_for_string", "migration: m1\nsource:\n  bootstrap: {a: 1}\n",
	 NULL,
	 "plan.yaml:3:14: expected a string for 'source.bootstrap', got a "
	 "mapping"},
	{"list_for_mapping", NULL, "gates: [1, 2]\n",
	 "plan.yaml:6:8: expected a mapping for 'gates', got a list"},
	{"string_for_list", NULL, "topics:\n  exclude: \"\\\\.tmp$\"\n",
	 "plan.yaml:7:12: expected a list for 'topics.exclude', got "
	 "'\\.tmp$'"},
	{"yes_for_int", NULL, "gates:\n  max_lag_records: yes\n",
	 "plan.yaml:7:20: expected an integer for 'gates.max_lag_records', "
	 "got 'yes'"},
	{"quoted_int", NULL, "gates:\n  max_lag_seconds: \"60\"\n",
	 "plan.yaml:7:20: expected an integer for 'gates.max_lag_seconds', "
	 "got '60' (quoted values are strings: remove the quotes)"},
	{"negative_int", NULL, "gates:\n  max_mismatches: -1\n",
	 "plan.yaml:7:19: 'gates.max_mismatches' must be at least 0, got -1"},
	{"int_out_of_range", NULL, "gates:\n  many_partitions: 0\n",
	 "plan.yaml:7:20: 'gates.many_partitions' must be between 1 and "
	 "2147483647, got 0"},
	{"bad_bool", NULL, "topics:\n  internal: maybe\n",
	 "plan.yaml:7:13: expected true or false for 'topics.internal', got "
	 "'maybe'"},
	{"bad_double", NULL, "gates:\n  large_message_ratio: nan\n",
	 "plan.yaml:7:24: expected a number for 'gates.large_message_ratio', "
	 "got 'nan'"},
	{"ratio_out_of_range", NULL, "gates:\n  large_message_ratio: 1.5\n",
	 "plan.yaml:7:24: 'gates.large_message_ratio' must be greater than 0 "
	 "and at most 1, got '1.5'"},
	{"missing_top_level", "migration: m1\nsource:\n  bootstrap: a:1\n", NULL,
	 "plan.yaml:1:1: missing required key 'target' at top level"},
	{"missing_in_cluster",
	 "migration: m1\n"
	 "source:\n"
	 "  security_protocol: ssl\n"
	 "target: {bootstrap: b:1}\n",
	 NULL, "plan.yaml:3:3: missing required key 'bootstrap' in 'source'"},
	{"missing_in_list_item", NULL,
	 "producers:\n"
	 "  - name: a\n"
	 "  - client: java\n",
	 "plan.yaml:8:5: missing required key 'name' in 'producers[1]'"},
	{"missing_trigger_threshold", NULL,
	 "rollback:\n"
	 "  triggers:\n"
	 "    - {name: t, metric: kmigrate_stale_readers}\n",
	 "plan.yaml:8:7: missing required key 'threshold' in "
	 "'rollback.triggers[0]'"},
	{"trigger_unknown_metric", NULL,
	 "rollback:\n"
	 "  triggers:\n"
	 "    - {name: t, metric: kmigrate_consumer_grup_lag_records, threshold: 1}\n",
	 "plan.yaml:8:25: unknown metric 'kmigrate_consumer_grup_lag_records' for "
	 "'rollback.triggers[0].metric': a trigger watches one of kmigrate's own metrics "
	 "(docs/metrics.md) (did you mean 'kmigrate_consumer_group_lag_records'?), or a "
	 "PromQL 'query' instead"},
	{"trigger_query_without_prometheus", NULL,
	 "rollback:\n"
	 "  triggers:\n"
	 "    - {name: t, query: 'sum(up)', threshold: 1}\n",
	 "plan.yaml:8:7: trigger 't' has a PromQL 'query' but the plan has no "
	 "'monitoring.prometheus_url': set it to your Prometheus (e.g. http://prometheus:9090)"},
	{"trigger_metric_and_query", NULL,
	 "monitoring: {prometheus_url: 'http://p:9090'}\n"
	 "rollback:\n"
	 "  triggers:\n"
	 "    - {name: t, query: 'sum(up)', metric: kmigrate_stale_readers, threshold: 1}\n",
	 "plan.yaml:9:7: 'rollback.triggers[0]' needs exactly one of 'metric' (one of "
	 "kmigrate's own, docs/metrics.md) or 'query' (PromQL against "
	 "monitoring.prometheus_url)"},
	{"trigger_bad_op", NULL,
	 "rollback:\n"
	 "  triggers:\n"
	 "    - {name: t, metric: kmigrate_stale_readers, op: '=>', threshold: 1}\n",
	 "plan.yaml:8:53: invalid value '=>' for 'rollback.triggers[0].op': expected >, >=, "
	 "<, <=, == or != (did you mean '>'?)"},
	{"trigger_bad_label", NULL,
	 "rollback:\n"
	 "  triggers:\n"
	 "    - {name: t, metric: kmigrate_stale_readers, labels: {grop: g}, threshold: 1}\n",
	 "plan.yaml:8:58: unknown label 'grop' in 'rollback.triggers[0].labels': "
	 "'kmigrate_stale_readers' has the labels wave"},
	{"metrics_addr_bad", NULL,
	 "monitoring: {metrics_addr: 'localhost'}\n",
	 "plan.yaml:6:28: invalid address 'localhost' for 'monitoring.metrics_addr': write "
	 "HOST:PORT, e.g. 127.0.0.1:9464"},
	{"null_for_required_mapping", "migration: m1\nsource:\ntarget: {}\n",
	 NULL, "plan.yaml:2:8: expected a mapping for 'source', got nothing"},
	{"bad_enum", NULL,
	 "topics:\n"
	 "  rules:\n"
	 "    - match: x\n"
	 "      ordering: stric\n",
	 "plan.yaml:9:17: invalid value 'stric' for "
	 "'topics.rules[0].ordering': expected strict, key or none (did you "
	 "mean 'strict'?)"},
	{"bad_enum_protocol",
	 "migration: m1\n"
	 "source:\n"
	 "  bootstrap: a:1\n"
	 "  security_protocol: SASL-SSL\n",
	 NULL,
	 "plan.yaml:4:22: invalid value 'SASL-SSL' for "
	 "'source.security_protocol': expected plaintext, ssl, "
	 "sasl_plaintext or sasl_ssl (did you mean 'sasl_ssl'?)"},
	{"bad_sasl_mechanism",
	 "migration: m1\n"
	 "source:\n"
	 "  bootstrap: a:1\n"
	 "  security_protocol: sasl_ssl\n"
	 "  sasl_mechanism: GSSAPI\n",
	 NULL,
	 "plan.yaml:5:19: invalid value 'GSSAPI' for 'source.sasl_mechanism': "
	 "expected SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN"},
	{"bad_isolation_level", NULL,
	 "consumers:\n"
	 "  - name: billing\n"
	 "    isolation_level: read-committed\n",
	 "plan.yaml:8:22: invalid value 'read-committed' for "
	 "'consumers[0].isolation_level': expected read_committed or "
	 "read_uncommitted (did you mean 'read_committed'?)"},
	{"bad_restart", NULL,
	 "consumer_groups:\n"
	 "  - id: g\n"
	 "    restart: earlist\n",
	 "plan.yaml:8:14: invalid value 'earlist' for "
	 "'consumer_groups[0].restart': expected translated, earliest, "
	 "latest or timestamp:<YYYY-MM-DDTHH:MM:SSZ> (did you mean "
	 "'earliest'?)"},
	{"bad_timestamp", NULL,
	 "consumer_groups:\n"
	 "  - id: g\n"
	 "    restart: timestamp:2026-02-29T10:00:00Z\n",
	 "plan.yaml:8:14: invalid timestamp '2026-02-29T10:00:00Z' for "
	 "'consumer_groups[0].restart': expected ISO-8601 UTC such as "
	 "timestamp:2026-11-25T10:00:00Z"},
	{"inline_password",
	 "migration: m1\n"
	 "source:\n"
	 "  bootstrap: a:1\n"
	 "  password: hunter2\n",
	 NULL,
	 "plan.yaml:4:3: 'source.password' is not allowed: never write a "
	 "password into the plan; use password_env or password_file"},
	{"secret_property",
	 "migration: m1\n"
	 "source:\n"
	 "  bootstrap: a:1\n"
	 "  properties:\n"
	 "    sasl.password: hunter2\n",
	 NULL,
	 "plan.yaml:5:5: property 'sasl.password' in 'source.properties' "
	 "would put a secret in the plan file: kmigrate reads secrets only "
	 "through password_env or password_file"},
	{"typed_property",
	 "migration: m1\n"
	 "source:\n"
	 "  bootstrap: a:1\n"
	 "  properties: {bootstrap.servers: 'b:1'}\n",
	 NULL,
	 "plan.yaml:4:16: property 'bootstrap.servers' in "
	 "'source.properties' is set by the plan key 'bootstrap': use that "
	 "instead"},
	{"sasl_missing_username",
	 "migration: m1\n"
	 "source:\n"
	 "  bootstrap: a:1\n"
	 "  security_protocol: sasl_ssl\n"
	 "  sasl_mechanism: PLAIN\n"
	 "  password_env: PW\n",
	 NULL,
	 "plan.yaml:3:3: missing required key 'username' in 'source' "
	 "(security_protocol is sasl_ssl)"},
	{"sasl_missing_password",
	 "migration: m1\n"
	 "source:\n"
	 "  bootstrap: a:1\n"
	 "  security_protocol: sasl_ssl\n"
	 "  sasl_mechanism: PLAIN\n"
	 "  username: u\n",
	 NULL,
	 "plan.yaml:3:3: missing 'password_env' or 'password_file' in "
	 "'source' (security_protocol is sasl_ssl)"},
	{"sasl_two_passwords",
	 "migration: m1\n"
	 "source:\n"
	 "  bootstrap: a:1\n"
	 "  security_protocol: sasl_ssl\n"
	 "  sasl_mechanism: PLAIN\n"
	 "  username: u\n"
	 "  password_env: PW\n"
	 "  password_file: pw.txt\n",
	 NULL,
	 "plan.yaml:8:3: both 'password_env' and 'password_file' are set in "
	 "'source': keep one"},
	{"sasl_key_without_sasl",
	 "migration: m1\n"
	 "source:\n"
	 "  bootstrap: a:1\n"
	 "  username: u\n",
	 NULL,
	 "plan.yaml:4:3: 'source.username' is only used with "
	 "security_protocol sasl_plaintext or sasl_ssl (it is plaintext)"},
	{"ssl_ca_without_ssl",
	 "migration: m1\n"
	 "source:\n"
	 "  bootstrap: a:1\n"
	 "  ssl_ca: ca.pem\n",
	 NULL,
	 "plan.yaml:4:3: 'source.ssl_ca' is only used with security_protocol "
	 "ssl or sasl_ssl (it is plaintext)"},
	{"bad_env_name",
	 "migration: m1\n"
	 "source:\n"
	 "  bootstrap: a:1\n"
	 "  security_protocol: sasl_ssl\n"
	 "  password_env: $PW\n",
	 NULL,
	 "plan.yaml:5:17: invalid environment variable name '$PW' for "
	 "'source.password_env': use letters, digits and '_'"},
	{"bad_bootstrap", "migration: m1\nsource:\n  bootstrap: a:1,localhost\n",
	 NULL,
	 "plan.yaml:3:14: invalid bootstrap entry 'localhost' in "
	 "'source.bootstrap': expected host:port[,host:port...]"},
	{"bad_port", "migration: m1\nsource:\n  bootstrap: a:65536\n", NULL,
	 "plan.yaml:3:14: invalid bootstrap entry 'a:65536' in "
	 "'source.bootstrap': expected host:port[,host:port...]"},
	{"bad_url",
	 "migration: m1\nsource:\n  bootstrap: a:1\n  connect_url: "
	 "localhost:8083\n",
	 NULL,
	 "plan.yaml:4:16: invalid URL 'localhost:8083' for "
	 "'source.connect_url': expected http://host[:port][/path] or "
	 "https://..."},
	{"bad_migration_name", "migration: Orders EU\n", NULL,
	 "plan.yaml:1:12: invalid migration name 'Orders EU': use 1 to 63 of "
	 "a-z, 0-9, '.', '_', '-', starting with a letter or digit"},
	{"empty_string", "migration: ''\n", NULL,
	 "plan.yaml:1:12: 'migration' must not be empty"},
	{"duplicate_key", NULL, "migration: m2\n",
	 "plan.yaml:6:1: duplicate key 'migration' at top level (first at "
	 "line 1)"},
	{"duplicate_nested_key",
	 "migration: m1\nsource:\n  bootstrap: a:1\n  bootstrap: b:1\n", NULL,
	 "plan.yaml:4:3: duplicate key 'bootstrap' in 'source' (first at line "
	 "3)"},
	{"duplicate_property",
	 "migration: m1\n"
	 "source:\n"
	 "  bootstrap: a:1\n"
	 "  properties:\n"
	 "    a.b: 1\n"
	 "    c.d: 2\n"
	 "    a.b: 3\n",
	 NULL,
	 "plan.yaml:7:5: duplicate key 'a.b' in 'source.properties' (first at "
	 "line 5)"},
	{"duplicate_group", NULL,
	 "consumer_groups:\n"
	 "  - id: a\n"
	 "  - id: b\n"
	 "  - id: a\n",
	 "plan.yaml:9:5: duplicate consumer group id 'a' in 'consumer_groups' "
	 "(first at line 7)"},
	{"naming_prefix_missing", NULL, "naming:\n  mode: prefix\n",
	 "plan.yaml:7:3: missing required key 'prefix' in 'naming' (mode is "
	 "prefix)"},
	{"naming_prefix_unused", NULL, "naming:\n  prefix: eu.\n",
	 "plan.yaml:7:3: 'naming.prefix' is only used with mode prefix (mode "
	 "is identity)"},
	{"naming_map_collision", NULL,
	 "naming:\n"
	 "  mode: map\n"
	 "  map: {a: x, b: x}\n",
	 "plan.yaml:8:15: 'naming.map' sends both 'a' and 'b' to 'x'"},
	{"naming_bad_topic", NULL,
	 "naming:\n"
	 "  mode: map\n"
	 "  map: {a: 'x y'}\n",
	 "plan.yaml:8:12: invalid topic name 'x y' in 'naming.map': use 1 to "
	 "249 of a-z, A-Z, 0-9, '.', '_' and '-'"},
	{"empty_include", NULL, "topics:\n  include: []\n",
	 "plan.yaml:7:12: 'topics.include' is empty, so no topic would be "
	 "migrated: remove the key to include every topic"},
	{"same_cluster",
	 "migration: m1\n"
	 "source: {bootstrap: 'a:1'}\n"
	 "target: {bootstrap: 'a:1'}\n",
	 NULL,
	 "plan.yaml:3:9: source and target have the same bootstrap 'a:1' and "
	 "naming mode identity: the migration would copy every topic onto "
	 "itself"},
	{"list_item_not_mapping", NULL, "producers: [checkout]\n",
	 "plan.yaml:6:13: expected a mapping (a producer) for 'producers[0]', "
	 "got 'checkout'"},
	{"yaml_syntax_error", NULL, "topics:\n  include: [\"a\"\n",
	 "plan.yaml:8:1: invalid YAML: did not find expected ',' or ']' "
	 "(while parsing a flow sequence at line 7)"},
	{"yaml_mapping_in_scalar", "migration: m1: x\n", NULL,
	 "plan.yaml:1:14: invalid YAML: mapping values are not allowed in "
	 "this context"},
	{"yaml_tab", "migration: m1\nsource:\n\tbootstrap: a:1\n", NULL,
	 "plan.yaml:3:1: invalid YAML: found character that cannot start any "
	 "token (a tab: YAML indents with spaces only)"},
	{"yaml_bad_utf8", "migration: \xc3\x28\n", NULL,
	 "plan.yaml:1:13: invalid YAML: invalid trailing UTF-8 octet"},
	{"yaml_undefined_alias", "migration: *name\n", NULL,
	 "plan.yaml:1:12: invalid YAML: found undefined alias"},
	{"empty_file", "", NULL,
	 "plan.yaml:1:1: plan is empty (create one with `kmigrate init`)"},
	{"only_comments", "# nothing yet\n\n# still nothing\n", NULL,
	 "plan.yaml:1:1: plan is empty (create one with `kmigrate init`)"},
	{"not_a_mapping", "- migration\n- m1\n", NULL,
	 "plan.yaml:1:1: expected a mapping of plan keys at top level, got a "
	 "list"},
	{"scalar_document", "just words\n", NULL,
	 "plan.yaml:1:1: expected a mapping of plan keys at top level, got "
	 "'just words'"},
	{"two_documents", NULL, "---\nmigration: m2\n",
	 "plan.yaml:7:1: a plan file holds one YAML document; found a second "
	 "one"},
	{"nul_in_string", "migration: \"m\\0x\"\n", NULL,
	 "plan.yaml:1:12: 'migration' contains a NUL character"},
	{"self_alias", "migration: &a [*a]\n", NULL,
	 "plan.yaml:1:12: expected a string for 'migration', got a list"},
	/* gates.max_evidence_age and cutover: */
	{"duration_bad_unit", NULL, "gates:\n  max_evidence_age: 30w\n",
	 "plan.yaml:7:21: expected a duration for 'gates.max_evidence_age' "
	 "(seconds, or a number with s, m, h or d such as 30m), got '30w'"},
	{"duration_negative", NULL, "gates:\n  max_evidence_age: -5\n",
	 "plan.yaml:7:21: expected a duration for 'gates.max_evidence_age' "
	 "(seconds, or a number with s, m, h or d such as 30m), got '-5'"},
	{"duration_zero", NULL, "gates:\n  max_evidence_age: 0s\n",
	 "plan.yaml:7:21: 'gates.max_evidence_age' must be between 1 and "
	 "31622400 seconds, got 0"},
	{"cutover_unknown_key", NULL, "cutover:\n  fense: acl\n",
	 "plan.yaml:7:3: unknown key 'fense' in 'cutover' (did you mean "
	 "'fence'?)"},
	{"cutover_bad_fence", NULL, "cutover:\n  fence: network\n",
	 "plan.yaml:7:10: invalid value 'network' for 'cutover.fence': "
	 "expected acl, config or external"},
	{"wave_without_name", NULL, "cutover:\n  waves:\n    - topics: [a]\n",
	 "plan.yaml:8:7: missing required key 'name' in "
	 "'cutover.waves[0]'"},
	{"wave_without_topics", NULL,
	 "cutover:\n  waves:\n    - name: canary\n",
	 "plan.yaml:8:7: wave 'canary' in 'cutover.waves[0]' moves no topic: "
	 "list its 'topics', or write 'all: true' for every topic no earlier "
	 "wave takes"},
	{"wave_topic_regex", NULL,
	 "cutover:\n  waves:\n    - name: canary\n      topics: [\"^a.*\"]\n",
	 "plan.yaml:9:16: invalid topic name '^a.*' in "
	 "'cutover.waves[0].topics': waves list exact topic names (or all)"},
	{"wave_duplicate_name", NULL,
	 "cutover:\n  waves:\n    - {name: w, topics: [a]}\n"
	 "    - {name: w, topics: [b]}\n",
	 "plan.yaml:9:7: duplicate wave name 'w' in 'cutover.waves' (first at "
	 "line 8)"},
	{"wave_undeclared_producer", NULL,
	 "producers:\n  - name: orders-api\n"
	 "cutover:\n  waves:\n    - name: canary\n      topics: [a]\n"
	 "      producers: [orders-apl]\n",
	 "plan.yaml:12:19: 'cutover.waves[0].producers[0]' names 'orders-apl', "
	 "which 'producers' does not declare: declare it there, or fix the "
	 "name (did you mean 'orders-api'?)"},
	{"wave_undeclared_consumer", NULL,
	 "cutover:\n  waves:\n    - name: canary\n      topics: [a]\n"
	 "      consumers: [x, y]\n"
	 "consumers:\n  - name: x\n",
	 "plan.yaml:10:22: 'cutover.waves[0].consumers[1]' names 'y', which "
	 "'consumers' does not declare: declare it there, or fix the name "
	 "(did you mean 'x'?)"},
	{"wave_undeclared_group", NULL,
	 "consumer_groups:\n  - id: billing\n"
	 "cutover:\n  waves:\n    - name: all\n      groups: [billing, fraud]\n",
	 "plan.yaml:11:25: 'cutover.waves[0].groups[1]' names 'fraud', which "
	 "'consumer_groups' does not declare: declare it there, or fix the "
	 "name"},
	{"wave_topic_out_of_scope", NULL,
	 "topics:\n  include: [\"^orders$\"]\n"
	 "cutover:\n  waves:\n    - {name: canary, topics: [payments]}\n",
	 "plan.yaml:10:31: topic 'payments' of wave 'canary' is not in the "
	 "migration's scope (topics.include/exclude): fix the name or the "
	 "scope"},
	{"wave_topic_twice", NULL,
	 "cutover:\n  waves:\n    - {name: a, topics: [t1, t2]}\n"
	 "    - {name: b, topics: [t3, t2]}\n",
	 "plan.yaml:9:30: topic 't2' is in wave 'a' and again in wave 'b' "
	 "(line 8): a topic moves in one wave"},
	{"wave_after_all", NULL,
	 "cutover:\n  waves:\n    - {name: rest, all: true}\n"
	 "    - {name: late, topics: [t1]}\n",
	 "plan.yaml:9:7: wave 'late' comes after wave 'rest', which already "
	 "takes every remaining topic: make 'rest' the last wave"},
	{"control_chars_escaped", "\"mi\\ngration\": m1\n", NULL,
	 "plan.yaml:1:1: unknown key 'mi\\x0agration' at top level (did you "
	 "mean 'migration'?)"},
};

static void test_error_case(void **state)
{
	const errcase_t *c = *state;
	char yaml[4096], errstr[512] = "";
	km_plan_t *plan = (km_plan_t *)&plan; /* must be reset to NULL */
	km_err_t err;

	if (c->yaml)
		snprintf(yaml, sizeof(yaml), "%s", c->yaml);
	else
		snprintf(yaml, sizeof(yaml), "%s%s", minimal_plan, c->tail);
	err = km_plan_parse(yaml, strlen(yaml), "plan.yaml", "/p", &plan,
			    errstr, sizeof(errstr));
	assert_int_equal(err, KM_ERR_PLAN);
	assert_null(plan);
	/* Cases whose message ends in the C library's regerror() text give
	 * only the part before it. */
	if (c->expected[strlen(c->expected) - 1] == ' ') {
		if (strncmp(errstr, c->expected, strlen(c->expected)))
			fail_msg("case %s:\n  got      %s\n  expected %s...",
				 c->name, errstr, c->expected);
		assert_true(strlen(errstr) > strlen(c->expected));
	} else if (strcmp(errstr, c->expected)) {
		fail_msg("case %s:\n  got      %s\n  expected %s", c->name,
			 errstr, c->expected);
	}
	assert_null(strchr(errstr, '\n'));
}

/* A message never overflows or goes unterminated in a small buffer. */
static void test_small_errstr(void **state)
{
	char errstr[16];
	km_plan_t *plan = NULL;

	(void)state;
	memset(errstr, 'x', sizeof(errstr));
	assert_int_equal(km_plan_parse("a: b: c", 7, "plan.yaml", NULL, &plan,
				       errstr, sizeof(errstr)),
			 KM_ERR_PLAN);
	assert_string_equal(errstr, "plan.yaml:1:5: ");
	assert_null(plan);
	assert_int_equal(km_plan_parse("a: b: c", 7, NULL, NULL, &plan, NULL,
				       0),
			 KM_ERR_PLAN);
	assert_null(plan);
}

/* --------------------------------------------------------------------- */
/* Consumers' isolation level                                            */

static void test_consumer_isolation(void **state)
{
	km_plan_t *plan = parse_ok(
		"migration: m1\n"
		"source: {bootstrap: 'a:1'}\n"
		"target: {bootstrap: 'b:1'}\n"
		"consumers:\n"
		"  - {name: billing, group: billing, isolation_level: read_committed}\n"
		"  - {name: audit, group: audit, isolation_level: read_uncommitted}\n"
		"  - {name: audit-java, group: audit, isolation_level: read_committed}\n"
		"  - {name: reports, group: reports}\n",
		NULL);

	(void)state;
	assert_int_equal(plan->consumers[0].isolation_level, KM_PLAN_ISOLATION_READ_COMMITTED);
	assert_int_equal(plan->consumers[3].isolation_level, KM_PLAN_ISOLATION_UNDECLARED);
	assert_string_equal(km_plan_isolation_str(plan->consumers[1].isolation_level),
			    "read_uncommitted");
	assert_string_equal(km_plan_isolation_str(plan->consumers[3].isolation_level),
			    "undeclared");
	assert_int_equal(km_plan_group_isolation(plan, "billing"),
			 KM_PLAN_ISOLATION_READ_COMMITTED);
	/* A group is as exposed as its least careful member. */
	assert_int_equal(km_plan_group_isolation(plan, "audit"),
			 KM_PLAN_ISOLATION_READ_UNCOMMITTED);
	assert_int_equal(km_plan_group_isolation(plan, "reports"), KM_PLAN_ISOLATION_UNDECLARED);
	assert_int_equal(km_plan_group_isolation(plan, "nobody"), KM_PLAN_ISOLATION_UNDECLARED);
	km_plan_destroy(plan);
}

/* connectors[]' idempotent and group (lib/connect.h): unset is not "no". */
static void test_connector_keys(void **state)
{
	km_plan_t *plan = parse_ok(
		"migration: m1\n"
		"source: {bootstrap: 'a:1', connect_url: 'http://127.0.0.1:8083'}\n"
		"target: {bootstrap: 'b:1', connect_url: 'http://127.0.0.1:8084/'}\n"
		"connectors:\n"
		"  - {name: s1, idempotent: yes, group: my-sink-group}\n"
		"  - {name: s2, idempotent: no}\n"
		"  - {name: s3}\n",
		NULL);

	(void)state;
	assert_string_equal(plan->source.connect_url, "http://127.0.0.1:8083");
	assert_int_equal(plan->connectors[0].idempotent, KM_PLAN_YES);
	assert_string_equal(plan->connectors[0].group, "my-sink-group");
	assert_int_equal(plan->connectors[1].idempotent, KM_PLAN_NO);
	assert_int_equal(plan->connectors[2].idempotent, KM_PLAN_UNSET);
	assert_null(plan->connectors[2].group);
	km_plan_destroy(plan);
}

/* --------------------------------------------------------------------- */
/* Scope, rules, naming                                                  */

static void test_scope_and_rules(void **state)
{
	km_plan_t *plan = parse_ok(
		"migration: m1\n"
		"source: {bootstrap: 'a:1'}\n"
		"target: {bootstrap: 'b:1'}\n"
		"topics:\n"
		"  include: ['^orders', '^payments$', '^_schemas$']\n"
		"  exclude: ['\\.tmp$']\n"
		"  rules:\n"
		"    - {match: '^orders\\.eu$', ordering: strict}\n"
		"    - {match: '^orders', ordering: key, owner: checkout}\n",
		NULL);
	const km_plan_rule_t *rule;

	(void)state;
	assert_true(km_plan_topic_in_scope(plan, "orders"));
	assert_true(km_plan_topic_in_scope(plan, "orders.eu"));
	assert_false(km_plan_topic_in_scope(plan, "orders.eu.tmp"));
	assert_true(km_plan_topic_in_scope(plan, "payments"));
	assert_false(km_plan_topic_in_scope(plan, "payments2"));
	assert_false(km_plan_topic_in_scope(plan, "customers"));
	/* Internal topics stay out even when an include matches them. */
	assert_false(km_plan_topic_in_scope(plan, "_schemas"));
	assert_false(km_plan_topic_in_scope(plan, ""));
	assert_false(km_plan_topic_in_scope(plan, NULL));

	/* First match wins. */
	rule = km_plan_topic_rule(plan, "orders.eu");
	assert_non_null(rule);
	assert_int_equal(rule->ordering, KM_PLAN_ORDERING_STRICT);
	assert_ptr_equal(rule, &plan->topics.rules[0]);
	rule = km_plan_topic_rule(plan, "orders.us");
	assert_ptr_equal(rule, &plan->topics.rules[1]);
	assert_string_equal(rule->owner, "checkout");
	assert_null(km_plan_topic_rule(plan, "payments"));
	km_plan_destroy(plan);

	plan = parse_ok("migration: m1\n"
			"source: {bootstrap: 'a:1'}\n"
			"target: {bootstrap: 'b:1'}\n"
			"topics: {internal: true, exclude: ['^__consumer']}\n",
			NULL);
	assert_true(km_plan_topic_in_scope(plan, "_schemas"));
	assert_true(km_plan_topic_in_scope(plan, "__transaction_state"));
	assert_false(km_plan_topic_in_scope(plan, "__consumer_offsets"));
	assert_true(km_plan_topic_in_scope(plan, "anything"));
	km_plan_destroy(plan);
}

static void test_target_topic(void **state)
{
	km_plan_t *plan;
	char *name;

	(void)state;
	plan = parse_ok(minimal_plan, NULL);
	name = km_plan_target_topic(plan, "orders");
	assert_string_equal(name, "orders");
	free(name);
	km_plan_destroy(plan);

	plan = parse_ok("migration: m1\n"
			"source: {bootstrap: 'a:1'}\n"
			"target: {bootstrap: 'a:1'}\n"
			"naming: {mode: prefix, prefix: eu.}\n",
			NULL);
	name = km_plan_target_topic(plan, "orders");
	assert_string_equal(name, "eu.orders");
	free(name);
	km_plan_destroy(plan);

	plan = parse_ok("migration: m1\n"
			"source: {bootstrap: 'a:1'}\n"
			"target: {bootstrap: 'b:1'}\n"
			"naming: {mode: map, map: {orders: orders-v2}}\n",
			NULL);
	name = km_plan_target_topic(plan, "orders");
	assert_string_equal(name, "orders-v2");
	free(name);
	name = km_plan_target_topic(plan, "payments");
	assert_string_equal(name, "payments");
	free(name);
	km_plan_destroy(plan);
}

/* --------------------------------------------------------------------- */
/* Passwords                                                             */

static const char sasl_plan_env[] =
	"migration: m1\n"
	"source:\n"
	"  bootstrap: a:1\n"
	"  security_protocol: sasl_ssl\n"
	"  sasl_mechanism: SCRAM-SHA-256\n"
	"  username: u\n"
	"  password_env: KM_TEST_PLAN_PW\n"
	"target:\n"
	"  bootstrap: b:1\n"
	"  security_protocol: sasl_plaintext\n"
	"  sasl_mechanism: PLAIN\n"
	"  username: u\n"
	"  password_file: secrets/target.pw\n";

static void test_password_env(void **state)
{
	km_plan_t *plan = parse_ok(sasl_plan_env, "/nowhere");
	char errstr[512], *pw = (char *)"sentinel";

	(void)state;
	assert_int_equal(setenv("KM_TEST_PLAN_PW", "s3cret\n", 1), 0);
	assert_int_equal(km_plan_cluster_password(&plan->source, &pw, errstr,
						  sizeof(errstr)),
			 KM_ERR_OK);
	assert_string_equal(pw, "s3cret");
	km_plan_password_free(pw);

	assert_int_equal(unsetenv("KM_TEST_PLAN_PW"), 0);
	assert_int_equal(km_plan_cluster_password(&plan->source, &pw, errstr,
						  sizeof(errstr)),
			 KM_ERR_PLAN);
	assert_null(pw);
	assert_string_equal(errstr,
			    "environment variable 'KM_TEST_PLAN_PW' with the "
			    "source password is not set: export it, or set "
			    "password_file in 'source'");

	assert_int_equal(setenv("KM_TEST_PLAN_PW", "", 1), 0);
	assert_int_equal(km_plan_cluster_password(&plan->source, &pw, errstr,
						  sizeof(errstr)),
			 KM_ERR_PLAN);
	assert_non_null(strstr(errstr, "'KM_TEST_PLAN_PW'"));
	assert_non_null(strstr(errstr, "is empty"));
	unsetenv("KM_TEST_PLAN_PW");
	km_plan_destroy(plan);

	/* No SASL, no password: OK and NULL. */
	plan = parse_ok(minimal_plan, NULL);
	pw = (char *)"sentinel";
	assert_int_equal(km_plan_cluster_password(&plan->target, &pw, errstr,
						  sizeof(errstr)),
			 KM_ERR_OK);
	assert_null(pw);
	km_plan_destroy(plan);
}

static void test_password_file(void **state)
{
	char *dir = make_tmpdir(), sub[PATH_MAX], expected[PATH_MAX + 200];
	char errstr[PATH_MAX + 300], *pw = NULL, *pwfile;
	km_plan_t *plan = parse_ok(sasl_plan_env, dir);

	(void)state;
	snprintf(sub, sizeof(sub), "%s/secrets", dir);
	assert_string_equal(plan->target.password_file,
			    (snprintf(expected, sizeof(expected),
				      "%s/secrets/target.pw", dir),
			     expected));

	/* Missing file: names the file and the fix. */
	assert_int_equal(km_plan_cluster_password(&plan->target, &pw, errstr,
						  sizeof(errstr)),
			 KM_ERR_PLAN);
	assert_null(pw);
	snprintf(expected, sizeof(expected),
		 "cannot read password file '%s/secrets/target.pw' for the "
		 "target cluster: No such file or directory (write the "
		 "password into it, or set password_env in 'target')",
		 dir);
	assert_string_equal(errstr, expected);

	assert_int_equal(mkdir(sub, 0700), 0);
	pwfile = write_file(sub, "target.pw", "pa:ss word\r\n");
	assert_int_equal(km_plan_cluster_password(&plan->target, &pw, errstr,
						  sizeof(errstr)),
			 KM_ERR_OK);
	assert_string_equal(pw, "pa:ss word");
	km_plan_password_free(pw);

	free(write_file(sub, "target.pw", "\n"));
	assert_int_equal(km_plan_cluster_password(&plan->target, &pw, errstr,
						  sizeof(errstr)),
			 KM_ERR_PLAN);
	assert_null(pw);
	assert_non_null(strstr(errstr, "is empty"));

	unlink(pwfile);
	rmdir(sub);
	rmdir(dir);
	free(pwfile);
	free(dir);
	km_plan_destroy(plan);
}

/* --------------------------------------------------------------------- */
/* Files                                                                 */

static void test_load_file(void **state)
{
	char *dir = make_tmpdir(), *path, errstr[PATH_MAX + 300];
	char expected[PATH_MAX + 200];
	km_plan_t *plan = NULL;

	(void)state;
	path = write_file(dir, "migration.yaml", minimal_plan);
	assert_int_equal(km_plan_load(path, &plan, errstr, sizeof(errstr)),
			 KM_ERR_OK);
	assert_string_equal(plan->path, path);
	assert_string_equal(plan->dir, dir);
	snprintf(expected, sizeof(expected), "%s/kmigrate.db", dir);
	assert_string_equal(plan->journal, expected);
	km_plan_destroy(plan);

	/* Errors name the file as given. */
	free(write_file(dir, "migration.yaml", "migration: m1\nsorce: {}\n"));
	assert_int_equal(km_plan_load(path, &plan, errstr, sizeof(errstr)),
			 KM_ERR_PLAN);
	assert_null(plan);
	snprintf(expected, sizeof(expected),
		 "%s:2:1: unknown key 'sorce' at top level (did you mean "
		 "'source'?)",
		 path);
	assert_string_equal(errstr, expected);
	unlink(path);

	assert_int_equal(km_plan_load(path, &plan, errstr, sizeof(errstr)),
			 KM_ERR_IO);
	assert_null(plan);
	snprintf(expected, sizeof(expected),
		 "cannot open plan '%s': No such file or directory (create one "
		 "with `kmigrate init`)",
		 path);
	assert_string_equal(errstr, expected);

	assert_int_equal(km_plan_load(dir, &plan, errstr, sizeof(errstr)),
			 KM_ERR_IO);
	assert_non_null(strstr(errstr, "Is a directory"));

	rmdir(dir);
	free(path);
	free(dir);
}

/* Cutover waves, fence settings and gates.max_evidence_age. */
static void test_cutover(void **state)
{
	km_plan_t *plan;
	const km_plan_wave_t *w;

	(void)state;
	plan = parse_ok(minimal_plan, NULL);
	assert_int_equal(plan->gates.max_evidence_age, 3600);
	assert_int_equal(plan->cutover.waves_cnt, 0);
	assert_int_equal(plan->cutover.fence, KM_PLAN_FENCE_UNDECLARED);
	assert_string_equal(km_plan_fence_str(plan->cutover.fence),
			    "undeclared");
	assert_null(plan->cutover.fence_owner);
	assert_int_equal(plan->cutover.quiet_period, 10);
	assert_null(km_plan_wave(plan, "canary"));
	km_plan_destroy(plan);

	plan = parse_ok("migration: m1\n"
			"source: {bootstrap: 'a:1'}\n"
			"target: {bootstrap: 'b:1'}\n"
			"topics: {include: [\"^(orders|payments|audit|x)$\"]}\n"
			"gates: {max_evidence_age: 30m}\n"
			"producers: [{name: orders-api}]\n"
			"consumers: [{name: billing-svc, group: billing}]\n"
			"consumer_groups: [{id: billing}]\n"
			"cutover:\n"
			"  fence: ACL\n"
			"  fence_owner: platform\n"
			"  quiet_period: \"2m\"\n"
			"  waves:\n"
			"    - name: canary\n"
			"      topics: [orders]\n"
			"      producers: [orders-api]\n"
			"      consumers: [billing-svc]\n"
			"      groups: [billing]\n"
			"      owner: payments-team\n"
			"    - {name: tenant, topics: [payments, all]}\n",
			NULL);
	assert_int_equal(plan->gates.max_evidence_age, 1800);
	assert_int_equal(plan->cutover.fence, KM_PLAN_FENCE_ACL);
	assert_string_equal(km_plan_fence_str(plan->cutover.fence), "acl");
	assert_string_equal(plan->cutover.fence_owner, "platform");
	assert_int_equal(plan->cutover.quiet_period, 120);
	assert_int_equal(plan->cutover.waves_cnt, 2);
	w = km_plan_wave(plan, "canary");
	assert_non_null(w);
	assert_false(w->all);
	assert_int_equal(w->topics_cnt, 1);
	assert_string_equal(w->topics[0].name, "orders");
	assert_int_equal(w->topics[0].pos.line, 15);
	assert_string_equal(w->producers[0].name, "orders-api");
	assert_string_equal(w->consumers[0].name, "billing-svc");
	assert_string_equal(w->groups[0].name, "billing");
	assert_string_equal(w->owner, "payments-team");
	assert_true(km_plan_wave_has_topic(plan, w, "orders"));
	assert_false(km_plan_wave_has_topic(plan, w, "payments"));
	/* `all` takes every in-scope topic no earlier wave names. */
	w = km_plan_wave(plan, "tenant");
	assert_true(w->all);
	assert_null(w->owner);
	assert_false(km_plan_wave_has_topic(plan, w, "orders"));
	assert_true(km_plan_wave_has_topic(plan, w, "payments"));
	assert_true(km_plan_wave_has_topic(plan, w, "audit"));
	assert_false(km_plan_wave_has_topic(plan, w, "not-in-scope"));
	km_plan_destroy(plan);

	/* A wave named all without topics is every topic; seconds plain. */
	plan = parse_ok("migration: m1\n"
			"source: {bootstrap: 'a:1'}\n"
			"target: {bootstrap: 'b:1'}\n"
			"gates: {max_evidence_age: 90}\n"
			"cutover: {fence: external, waves: [{name: all}]}\n",
			NULL);
	assert_int_equal(plan->gates.max_evidence_age, 90);
	assert_int_equal(plan->cutover.fence, KM_PLAN_FENCE_EXTERNAL);
	assert_true(plan->cutover.waves[0].all);
	assert_true(km_plan_wave_has_topic(plan, &plan->cutover.waves[0], "t"));
	km_plan_destroy(plan);
}

/* The shipped example must stay a valid plan.  __FILE__ is this source's
 * path as the build passed it (absolute under CMake). */
static void test_example_plan(void **state)
{
	const char *self = __FILE__, *tail = "tests/unit/test_plan.c";
	char path[PATH_MAX], errstr[512];
	size_t n = strlen(self) - strlen(tail);
	km_plan_t *plan = NULL;
	km_err_t err;

	(void)state;
	assert_true(strlen(self) >= strlen(tail));
	assert_string_equal(self + n, tail);
	snprintf(path, sizeof(path), "%.*sexamples/migration.yaml", (int)n,
		 self);
	err = km_plan_load(path, &plan, errstr, sizeof(errstr));
	if (err)
		fail_msg("%s", errstr);
	assert_string_equal(plan->migration, "orders-eu");
	assert_string_equal(plan->source.bootstrap, "127.0.0.1:19092");
	assert_string_equal(plan->target.bootstrap, "127.0.0.1:29092");
	assert_true(km_plan_topic_in_scope(plan, "payments"));
	km_plan_destroy(plan);
}

/* schemas.ids: undeclared by default (a collision is then NO-GO), keep or
 * rewrite when written, anything else refused at its line. */
static void test_schema_ids(void **state)
{
	km_plan_t *plan;
	char errstr[512];
	size_t n = strlen(minimal_plan);
	char *text;

	(void)state;
	plan = parse_ok(minimal_plan, NULL);
	assert_int_equal(plan->schemas.ids, KM_PLAN_SCHEMA_IDS_UNDECLARED);
	assert_string_equal(km_plan_schema_ids_str(plan->schemas.ids), "undeclared");
	km_plan_destroy(plan);
	text = km_asprintf("%sschemas:\n  ids: rewrite\n", minimal_plan);
	plan = parse_ok(text, NULL);
	assert_int_equal(plan->schemas.ids, KM_PLAN_SCHEMA_IDS_REWRITE);
	km_plan_destroy(plan);
	free(text);
	text = km_asprintf("%sschemas:\n  ids: renumber\n", minimal_plan);
	assert_int_equal(km_plan_parse(text, strlen(text), "plan.yaml", NULL, &plan, errstr,
				       sizeof(errstr)),
			 KM_ERR_PLAN);
	assert_non_null(strstr(errstr, "schemas.ids"));
	free(text);
	(void)n;
}

/* --------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_full_plan),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_schema_ids),
		cmocka_unit_test(test_small_errstr),
		cmocka_unit_test(test_scope_and_rules),
		cmocka_unit_test(test_consumer_isolation),
		cmocka_unit_test(test_target_topic),
		cmocka_unit_test(test_password_env),
		cmocka_unit_test(test_password_file),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_example_plan),
		cmocka_unit_test(test_cutover),
		cmocka_unit_test(test_connector_keys),
	};
	enum { NFIXED = sizeof(fixed) / sizeof(fixed[0]),
	       NERR = sizeof(errcases) / sizeof(errcases[0]) };
	static struct CMUnitTest tests[NFIXED + NERR];
	static char names[NERR][64];
	size_t i;

	/* One test per error case, named after it. */
	memcpy(tests, fixed, sizeof(fixed));
	for (i = 0; i < NERR; i++) {
		snprintf(names[i], sizeof(names[i]), "error_%s",
			 errcases[i].name);
		tests[NFIXED + i] = (struct CMUnitTest){
			.name = names[i],
			.test_func = test_error_case,
			.initial_state = (void *)&errcases[i],
		};
	}
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return _cmocka_run_group_tests("plan", tests, NFIXED + NERR, NULL,
				       NULL);
}
