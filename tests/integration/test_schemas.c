/*
 * test_schemas.c -- `kmigrate schemas` against real Apicurio registries
 * (tests/cluster/schema-registry) and real clusters (ktest-source,
 * ktest-target): subjects of the three types, with a reference, several
 * versions and non-contiguous IDs, move with their IDs and versions;
 * records in the wire format copied by replicate resolve on the TARGET
 * registry to the schema they had on the source; compatibility levels are
 * equal.  A target whose IDs collide is NO-GO without a plan decision and
 * gets an ID map with `schemas.ids: rewrite`; an unreachable registry is one
 * line, exit 3, nothing written.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "schemas.h"
#include "tk.h"
#include "util.h"

static tk_cluster_t src, tgt;
static int po;
static char sr_src[128], sr_tgt[128], sr_col[128];
static bool started;

static const char *script(void)
{
	static char path[1024];
	char f[1024];
	snprintf(f, sizeof(f), "%s", __FILE__);
	snprintf(path, sizeof(path), "%s/../cluster/schema-registry", dirname(f));
	return path;
}

static void registries(const char *verb)
{
	static const char *names[] = {"ksr-source", "ksr-target", "ksr-collide"};
	int base[] = {17080, 27080, 37080};
	pid_t pids[3];
	char *logs[3];
	/* The script's own words: its last line says why a start failed
	 * (the registry's log is wiped with it).  Kept when a case fails. */
	char *dir = tk_tmpdir("sr");
	for (int i = 0; i < 3; i++) {
		char port[16];
		snprintf(port, sizeof(port), "%d", base[i] + po);
		logs[i] = km_asprintf("%s/%s.log", dir, names[i]);
		const char *start[] = {script(), "start", names[i], "--port", port, NULL};
		const char *stop[] = {script(), "stop", names[i], "--wipe", NULL};
		pids[i] = tk_spawn(!strcmp(verb, "start") ? start : stop, logs[i]);
	}
	for (int i = 0; i < 3; i++) {
		if (tk_wait_exit(pids[i], 300000) != 0) {
			char *text = tk_read_file(logs[i], NULL);
			char *last = text ? text + strlen(text) : NULL;
			while (last && last > text && last[-1] == '\n')
				*--last = '\0';
			while (last && last > text && last[-1] != '\n')
				last--;
			TK_ASSERT(false, "schema-registry %s %s failed: %s", verb, names[i],
				  last ? last : "(no output)");
		}
		free(logs[i]);
	}
	free(dir);
}

static void stop_all(void)
{
	if (started)
		registries("stop");
	started = false;
}

static size_t on(char *p, size_t s, size_t n, void *a)
{
	km_sb_add(a, p, s * n);
	return s * n;
}

/* One registry request; @returns the parsed answer (NULL on 404). */
static json_t *sr(const char *base, const char *method, const char *path, const char *body)
{
	CURL *c = curl_easy_init();
	km_sb_t out = KM_SB_INIT;
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/vnd.schemaregistry.v1+json");
	char *url = km_asprintf("%s%s", base, path);
	long status = 0;
	json_t *j = NULL;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	TK_ASSERT(curl_easy_perform(c) == CURLE_OK, "%s %s failed", method, url);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status != 404) {
		TK_ASSERT(status >= 200 && status < 300, "%s %s: HTTP %ld %s", method, url, status,
			  km_sb_str(&out));
		j = tk_json(km_sb_str(&out));
	}
	km_sb_free(&out);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	free(url);
	return j;
}

static int reg(const char *base, const char *subject, const char *type, const char *schema,
	       const char *refs)
{
	json_t *b = json_pack("{s:s,s:s}", "schema", schema, "schemaType", type);
	char *body, *path = km_asprintf("/subjects/%s/versions", subject);
	if (refs)
		json_object_set_new(b, "references", tk_json(refs));
	body = json_dumps(b, JSON_COMPACT);
	json_t *r = sr(base, "POST", path, body);
	int id = (int)json_integer_value(json_object_get(r, "id"));
	json_decref(r);
	json_decref(b);
	free(body);
	free(path);
	return id;
}

static void set_compat(const char *base, const char *subject, const char *level)
{
	char *path = subject ? km_asprintf("/config/%s", subject) : km_strdup("/config");
	char *body = km_asprintf("{\"compatibility\":\"%s\"}", level);
	json_decref(sr(base, "PUT", path, body));
	free(path);
	free(body);
}

#define AVRO_ADDR1 "{\"type\":\"record\",\"name\":\"Addr\",\"namespace\":\"t\",\"fields\":[{\"name\":\"city\",\"type\":\"string\"}]}"
#define AVRO_ADDR2 "{\"type\":\"record\",\"name\":\"Addr\",\"namespace\":\"t\",\"fields\":[{\"name\":\"city\",\"type\":\"string\"},{\"name\":\"zip\",\"type\":[\"null\",\"string\"],\"default\":null}]}"
#define AVRO_USER "{\"type\":\"record\",\"name\":\"User\",\"namespace\":\"t\",\"fields\":[{\"name\":\"addr\",\"type\":\"t.Addr\"}]}"
#define PROTO1 "syntax = \"proto3\";\nmessage Order { string id = 1; }\n"
#define PROTO2 "syntax = \"proto3\";\nmessage Order { string id = 1; int64 qty = 2; }\n"
#define JSON1 "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}"
#define JSON2 "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"integer\"}}}"

/* Migration and topic names unique to this run: the clusters may hold an
 * earlier run's (run-one against clusters left running). */
static char mk[32], mr[32], tkeep[48], trw[48];

static int ids[7]; /* addr1 proto1 json1 addr2 user proto2 json2 */

static int group_setup(void **state)
{
	const char *poe = getenv("KM_TEST_PORT_OFFSET");
	(void)state;
	po = poe ? atoi(poe) : 0;
	tk_cluster_from_env(&src, "KM_TEST_SOURCE");
	tk_cluster_from_env(&tgt, "KM_TEST_TARGET");
	snprintf(sr_src, sizeof(sr_src), "http://127.0.0.1:%d/apis/ccompat/v7", 17080 + po);
	snprintf(sr_tgt, sizeof(sr_tgt), "http://127.0.0.1:%d/apis/ccompat/v7", 27080 + po);
	snprintf(sr_col, sizeof(sr_col), "http://127.0.0.1:%d/apis/ccompat/v7", 37080 + po);
	snprintf(mk, sizeof(mk), "schk%d", (int)getpid());
	snprintf(mr, sizeof(mr), "schr%d", (int)getpid());
	snprintf(tkeep, sizeof(tkeep), "%s-wire", mk);
	snprintf(trw, sizeof(trw), "%s-wire", mr);
	atexit(stop_all);
	started = true;
	registries("stop");
	registries("start");
	/* Interleaved across subjects, and one throwaway schema in between:
	 * no subject's IDs are contiguous, so re-registering subject by subject
	 * would give other IDs. */
	ids[0] = reg(sr_src, "addr-value", "AVRO", AVRO_ADDR1, NULL);
	ids[1] = reg(sr_src, "orders-value", "PROTOBUF", PROTO1, NULL);
	reg(sr_src, "scratch-value", "JSON", "{\"type\":\"object\",\"properties\":{\"scratch\":{\"type\":\"string\"}}}", NULL);
	ids[2] = reg(sr_src, "events-value", "JSON", JSON1, NULL);
	ids[3] = reg(sr_src, "addr-value", "AVRO", AVRO_ADDR2, NULL);
	ids[4] = reg(sr_src, "user-value", "AVRO", AVRO_USER,
		     "[{\"name\":\"t.Addr\",\"subject\":\"addr-value\",\"version\":2}]");
	ids[5] = reg(sr_src, "orders-value", "PROTOBUF", PROTO2, NULL);
	ids[6] = reg(sr_src, "events-value", "JSON", JSON2, NULL);
	set_compat(sr_src, NULL, "BACKWARD");
	set_compat(sr_src, "orders-value", "FULL");
	set_compat(sr_src, "events-value", "FORWARD_TRANSITIVE");
	/* The collide target already has subjects of its own: its IDs 1.. are
	 * other schemas. */
	reg(sr_col, "legacy-value", "JSON", "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"string\"}}}", NULL);
	reg(sr_col, "legacy-value", "JSON", "{\"type\":\"object\",\"properties\":{\"i\":{\"type\":\"string\"}}}", NULL);
	reg(sr_col, "other-value", "AVRO", "{\"type\":\"string\"}", NULL);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	stop_all();
	return 0;
}

static char *plan_for(const char *dir, const char *mig, const char *ssr, const char *tsr,
		      const char *extra)
{
	char *d = tk_tmpdir(dir);
	char *text = km_asprintf("migration: %s\nsource:\n  bootstrap: %s\n  schema_registry_url: %s\n"
				 "target:\n  bootstrap: %s\n  schema_registry_url: %s\n"
				 "topics:\n  include: [\"^%s-wire$\"]\n%s",
				 mig, src.bootstrap, ssr, tgt.bootstrap, tsr, mig, extra ? extra : "");
	char *p = tk_write_file(d, "migration.yaml", text);
	free(text);
	free(d);
	return p;
}

static json_t *km_json(const char *plan, const char *a1, int want_rc, char **errp)
{
	char *out, *err;
	const char *argv[] = {tk_kmigrate(), "schemas", "-p", plan, "--json", a1, NULL};
	int rc = tk_run(&out, &err, argv);
	TK_ASSERT(rc == want_rc, "kmigrate schemas: exit %d (want %d): %s%s", rc, want_rc, out, err);
	json_t *j = out[0] == '{' ? tk_json(out) : NULL;
	free(out);
	if (errp)
		*errp = err;
	else
		free(err);
	return j;
}

/* The schema behind id on a registry: type + text, as the serializer sees it. */
static char *schema_of(const char *base, int id)
{
	char path[64];
	snprintf(path, sizeof(path), "/schemas/ids/%d", id);
	json_t *j = sr(base, "GET", path, NULL);
	if (!j)
		return NULL;
	const char *t = json_string_value(json_object_get(j, "schemaType"));
	char *s = km_asprintf("%s|%s|%s", t ? t : "AVRO",
			      json_string_value(json_object_get(j, "schema")),
			      json_object_get(j, "references")
				      ? json_dumps(json_object_get(j, "references"), JSON_COMPACT | JSON_SORT_KEYS)
				      : "[]");
	json_decref(j);
	return s;
}

static void produce_wire(const char *topic)
{
	rd_kafka_t *p = tk_producer(&src, NULL);
	tk_create_topic(&src, topic, 2, NULL);
	for (int r = 0; r < 3; r++)
		for (int i = 0; i < 7; i++) {
			char v[64];
			v[0] = 0;
			v[1] = (char)(ids[i] >> 24);
			v[2] = (char)(ids[i] >> 16);
			v[3] = (char)(ids[i] >> 8);
			v[4] = (char)ids[i];
			int n = snprintf(v + 5, sizeof(v) - 5, "payload-%d-%d", r, i);
			tk_msg_t m = {.key = NULL, .value = v, .value_len = (size_t)n + 5, .partition = i % 2};
			tk_produce(p, topic, &m);
		}
	tk_flush(p);
	rd_kafka_destroy(p);
}

/* Reads every record of topic on the target; each value's ID must resolve
 * on the target registry to the schema it names on the source. */
static int check_target_records(const char *topic, const char *tsr)
{
	rd_kafka_conf_t *cf = tk_conf(&tgt);
	char errstr[256];
	tk_conf_set(cf, "group.id", "test-schemas-reader");
	tk_conf_set(cf, "enable.auto.commit", "false");
	tk_conf_set(cf, "enable.partition.eof", "true");
	rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, cf, errstr, sizeof(errstr));
	TK_ASSERT(c, "consumer: %s", errstr);
	rd_kafka_topic_partition_list_t *tps = rd_kafka_topic_partition_list_new(2);
	rd_kafka_topic_partition_list_add(tps, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_topic_partition_list_add(tps, topic, 1)->offset = RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_assign(c, tps);
	rd_kafka_topic_partition_list_destroy(tps);
	int n = 0, eofs = 0;
	int64_t until = tk_mono_ms() + 60000;
	/* To the end of both partitions: a record too many is read too. */
	while (eofs < 2 && tk_mono_ms() < until) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			eofs++;
		if (!m->err) {
			const unsigned char *v = m->payload;
			TK_ASSERT(m->len > 5 && v[0] == 0, "record %lld is not in the wire format",
				  (long long)m->offset);
			int id = (int)((uint32_t)v[1] << 24 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 8 | v[4]);
			int i = atoi(strrchr((const char *)v + 5, '-') + 1);
			char *want_s = schema_of(sr_src, ids[i]), *got = schema_of(tsr, id);
			TK_ASSERT(got, "record's schema ID %d does not exist on the target registry", id);
			TK_ASSERT(!strcmp(want_s, got),
				  "record's schema ID %d resolves on the target to %s, on the source it was %s",
				  id, got, want_s);
			free(want_s);
			free(got);
			n++;
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	return n;
}

static void test_keep(void **state)
{
	(void)state;
	char *plan = plan_for("it-sch-keep", mk, sr_src, sr_tgt, NULL);
	json_t *r;

	produce_wire(tkeep);
	/* The inventory says which schema IDs the topic's records use. */
	{
		char *out, *eout;
		const char *argv[] = {tk_kmigrate(), "inventory", "-p", plan, "--json", NULL};
		int rc = tk_run(&out, &eout, argv);
		TK_ASSERT(rc == 0 || rc == 1, "inventory: exit %d: %s", rc, eout);
		json_t *inv = tk_json(out);
		json_t *w = json_object_get(json_object_get(json_object_get(json_object_get(inv, "inventory"), "topics"), tkeep),
					    "schema_wire_format");
		TK_ASSERT(w, "no schema_wire_format for '%s' in the inventory: %s", tkeep, out);
		assert_int_equal(json_integer_value(json_object_get(w, "records_sampled")), 21);
		assert_int_equal(json_array_size(json_object_get(w, "schema_ids")), 7);
		json_decref(inv);
		free(out);
		free(eout);
	}
	/* A later inventory that reads no record (--no-sample) must not hide
	 * what the sampled one saw: the proof takes each topic's IDs from the
	 * newest inventory that sampled it. */
	{
		char *out, *eout;
		const char *argv[] = {tk_kmigrate(), "inventory", "-p", plan, "--no-sample", NULL};
		int rc = tk_run(&out, &eout, argv);
		TK_ASSERT(rc == 0 || rc == 1, "inventory --no-sample: exit %d: %s", rc, eout);
		free(out);
		free(eout);
	}
	/* A dry run writes nothing. */
	r = km_json(plan, "--dry-run", 0, NULL);
	assert_string_equal(json_string_value(json_object_get(r, "method")), "apicurio-admin-import");
	json_decref(r);
	json_t *subs = sr(sr_tgt, "GET", "/subjects", NULL);
	assert_int_equal(json_array_size(subs), 0);
	json_decref(subs);

	r = km_json(plan, NULL, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(r, "verdict")), "GO");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "proof"), "checked_ids")), 8);
	/* The IDs the inventory saw in the records were part of the proof. */
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "proof"), "record_ids")), 7);
	json_decref(r);
	/* Same IDs and versions, every one. */
	for (int i = 0; i < 7; i++) {
		char *a = schema_of(sr_src, ids[i]), *b = schema_of(sr_tgt, ids[i]);
		assert_non_null(b);
		assert_string_equal(a, b);
		free(a);
		free(b);
	}
	json_t *v = sr(sr_tgt, "GET", "/subjects/user-value/versions/1", NULL);
	assert_int_equal(json_integer_value(json_object_get(v, "id")), ids[4]);
	json_decref(v);
	/* Compatibility levels carried explicitly. */
	json_t *c1 = sr(sr_tgt, "GET", "/config/orders-value", NULL);
	assert_string_equal(json_string_value(json_object_get(c1, "compatibilityLevel")), "FULL");
	json_decref(c1);
	c1 = sr(sr_tgt, "GET", "/config/events-value", NULL);
	assert_string_equal(json_string_value(json_object_get(c1, "compatibilityLevel")), "FORWARD_TRANSITIVE");
	json_decref(c1);
	c1 = sr(sr_tgt, "GET", "/config", NULL);
	assert_string_equal(json_string_value(json_object_get(c1, "compatibilityLevel")), "BACKWARD");
	json_decref(c1);
	/* New registrations on the target never take a migrated ID. */
	int fresh = reg(sr_tgt, "fresh-value", "JSON", "{\"type\":\"object\",\"properties\":{\"b\":{\"type\":\"string\"}}}", NULL);
	for (int i = 0; i < 7; i++)
		assert_true(fresh != ids[i]);

	/* Records copied byte for byte resolve on the target registry. */
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	tk_catch_up(plan, 120000, NULL);
	assert_int_equal(check_target_records(tkeep, sr_tgt), 21);
	/* Re-runnable: everything already there, still GO. */
	r = km_json(plan, NULL, 0, NULL);
	assert_int_equal(json_array_size(json_object_get(r, "subjects")), 0);
	json_decref(r);
	free(plan);
}

/* A record naming an ID the source registry does not know: the proof
 * (fed by the inventory's sample) is NO-GO, naming the ID. */
static void test_record_id_unknown(void **state)
{
	(void)state;
	char mig[32], topic[48];
	snprintf(mig, sizeof(mig), "schu%d", (int)getpid());
	snprintf(topic, sizeof(topic), "%s-wire", mig);
	char *plan = plan_for("it-sch-unk", mig, sr_src, sr_tgt, NULL), *out, *eout;
	rd_kafka_t *p = tk_producer(&src, NULL);
	char v[] = {0, 0, 0x0f, 0x42, 0x3f, 'b', 'a', 'd'}; /* ID 999999 */
	tk_msg_t m = {.value = v, .value_len = sizeof(v), .partition = 0};
	const char *argv[] = {tk_kmigrate(), "inventory", "-p", plan, NULL};

	tk_create_topic(&src, topic, 1, NULL);
	tk_produce(p, topic, &m);
	tk_flush(p);
	rd_kafka_destroy(p);
	int rc = tk_run(&out, &eout, argv);
	TK_ASSERT(rc == 0 || rc == 1, "inventory: exit %d: %s", rc, eout);
	free(out);
	free(eout);
	json_t *r = km_json(plan, NULL, 1, NULL);
	assert_string_equal(json_string_value(json_object_get(r, "verdict")), "NO-GO");
	char *d = json_dumps(json_object_get(json_object_get(r, "proof"), "mismatches"), 0);
	assert_non_null(strstr(d, "999999"));
	free(d);
	json_decref(r);
	free(plan);
}

static void test_collision_needs_decision(void **state)
{
	(void)state;
	char *plan = plan_for("it-sch-col", "schc", sr_src, sr_col, NULL);
	json_t *before = sr(sr_col, "GET", "/subjects", NULL), *after, *r;

	r = km_json(plan, NULL, 1, NULL);
	assert_string_equal(json_string_value(json_object_get(r, "verdict")), "NO-GO");
	assert_true(json_array_size(json_object_get(r, "collisions")) > 0);
	assert_non_null(strstr(json_string_value(json_object_get(r, "reason")), "schemas.ids: rewrite"));
	json_decref(r);
	after = sr(sr_col, "GET", "/subjects", NULL);
	assert_true(json_equal(before, after)); /* nothing written */
	json_decref(before);
	json_decref(after);
	free(plan);
}

static void test_rewrite(void **state)
{
	(void)state;
	char *plan = plan_for("it-sch-rw", mr, sr_src, sr_col, "schemas:\n  ids: rewrite\n");
	json_t *r = km_json(plan, NULL, 0, NULL), *map;
	char err[512];
	km_sr_t *a = NULL, *b = NULL;
	km_schemas_idmap_t *im = NULL;
	int differ = 0;

	assert_string_equal(json_string_value(json_object_get(r, "verdict")), "GO");
	map = json_object_get(r, "id_map");
	assert_int_equal(json_object_size(map), 8);
	/* Every source ID, through the map, is the same schema on the target. */
	for (int i = 0; i < 7; i++) {
		char k[16];
		snprintf(k, sizeof(k), "%d", ids[i]);
		int d = (int)json_integer_value(json_object_get(map, k));
		char *x = schema_of(sr_src, ids[i]), *y = schema_of(sr_col, d);
		differ += d != ids[i];
		/* References name the target's version of the referenced subject. */
		if (i != 4)
			assert_string_equal(x, y);
		free(x);
		free(y);
	}
	assert_true(differ > 0);
	/* Loudly labelled in the result. */
	assert_non_null(strstr(json_string_value(json_object_get(r, "warning")), "SCHEMA IDS REWRITTEN"));
	/* The record rewrite replicate applies: wire-format bytes, the ID
	 * replaced; an unknown ID is an error, never skipped. */
	assert_int_equal(km_sr_open(sr_src, "source", &a, err, sizeof(err)), KM_ERR_OK);
	assert_int_equal(km_sr_open(sr_col, "target", &b, err, sizeof(err)), KM_ERR_OK);
	assert_int_equal(km_schemas_idmap_build(a, b, &im, err, sizeof(err)), KM_ERR_OK);
	for (int i = 0; i < 7; i++) {
		unsigned char rec[8] = {0, (unsigned char)(ids[i] >> 24), (unsigned char)(ids[i] >> 16),
					(unsigned char)(ids[i] >> 8), (unsigned char)ids[i], 'x', 'y', 'z'};
		char k[16];
		snprintf(k, sizeof(k), "%d", ids[i]);
		assert_int_equal(km_schemas_rewrite(im, rec, sizeof(rec), err, sizeof(err)), KM_ERR_OK);
		int got = (int)((uint32_t)rec[1] << 24 | (uint32_t)rec[2] << 16 | (uint32_t)rec[3] << 8 | rec[4]);
		assert_int_equal(got, (int)json_integer_value(json_object_get(map, k)));
		assert_memory_equal(rec + 5, "xyz", 3);
	}
	unsigned char bad[6] = {0, 0, 0, 0x7f, 0x7f, 'q'};
	assert_int_equal(km_schemas_rewrite(im, bad, sizeof(bad), err, sizeof(err)), KM_ERR_NOT_FOUND);
	assert_non_null(strstr(err, "32639"));
	km_schemas_idmap_destroy(im);
	km_sr_close(a);
	km_sr_close(b);
	json_decref(r);

	/* Replicate rewrites the ID of every wire-format record: read on the
	 * target, each resolves on the TARGET registry to the schema it had on
	 * the source (the same bytes would name other schemas there). */
	produce_wire(trw);
	{
		/* plan labels the rewrite too. */
		char *out, *eout;
		const char *argv[] = {tk_kmigrate(), "plan", "-p", plan, "--json", NULL};
		int rc = tk_run(&out, &eout, argv);
		TK_ASSERT(rc == 0, "plan: exit %d: %s%s", rc, out, eout);
		json_t *d = tk_json(out);
		assert_string_equal(json_string_value(json_object_get(d, "schema_ids")), "rewrite");
		json_decref(d);
		free(out);
		free(eout);
	}
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	tk_catch_up(plan, 120000, NULL);
	assert_int_equal(check_target_records(trw, sr_col), 21);
	/* validate compares with the map applied, and says so. */
	{
		char *out, *eout;
		const char *argv[] = {tk_kmigrate(), "validate", "-p", plan, "--json", NULL};
		int rc = tk_run(&out, &eout, argv);
		TK_ASSERT(rc == 0, "validate: exit %d: %s%s", rc, out, eout);
		json_t *v = tk_json(out);
		assert_non_null(strstr(json_string_value(json_object_get(v, "schema_ids")), "REWRITTEN"));
		json_decref(v);
		free(out);
		free(eout);
	}
	/* A wire-format record whose ID the source registry does not know
	 * stops replicate (never copied with a meaningless ID, never skipped). */
	{
		rd_kafka_t *p = tk_producer(&src, NULL);
		char v[] = {0, 0, 0x0f, 0x42, 0x3f, 'b', 'a', 'd'}; /* ID 999999 */
		tk_msg_t m = {.value = v, .value_len = sizeof(v), .partition = 0};
		char *out, *eout;
		tk_produce(p, trw, &m);
		tk_flush(p);
		rd_kafka_destroy(p);
		const char *argv[] = {tk_kmigrate(), "replicate", "-p", plan, "--until-caught-up", NULL};
		int rc = tk_run(&out, &eout, argv);
		TK_ASSERT(rc != 0 && strstr(eout, "999999"),
			  "replicate with an unknown schema ID: exit %d: %s", rc, eout);
		free(out);
		free(eout);
		/* Nothing of it committed on the target: the 21 records read
		 * above are all a read_committed reader finds. */
		assert_int_equal(check_target_records(trw, sr_col), 21);
	}
	free(plan);
}

static void test_unreachable(void **state)
{
	(void)state;
	char bad[128];
	snprintf(bad, sizeof(bad), "http://127.0.0.1:%d/apis/ccompat/v7", 47080 + po);
	char *plan = plan_for("it-sch-bad", "schb", bad, sr_tgt, NULL), *err = NULL;
	json_t *before = sr(sr_tgt, "GET", "/subjects", NULL), *after;

	json_decref(km_json(plan, NULL, 3, &err));
	assert_non_null(strstr(err, bad));
	assert_non_null(strstr(err, "source.schema_registry_url"));
	assert_null(strchr(err, '\n') == err + strlen(err) - 1 ? NULL : strchr(err, '\n'));
	after = sr(sr_tgt, "GET", "/subjects", NULL);
	assert_true(json_equal(before, after));
	json_decref(before);
	json_decref(after);
	free(err);
	free(plan);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_keep),
		cmocka_unit_test(test_record_id_unknown),
		cmocka_unit_test(test_collision_needs_decision),
		cmocka_unit_test(test_rewrite),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
