#include "connect.h"
#include "inventory.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void km_inventory_opts_init(km_inventory_opts_t *opts)
{
	opts->scope = "source";
	opts->sample_records = 200;
	opts->sample_timeout_ms = 20000;
	opts->sample_partitions = KM_INVENTORY_SAMPLE_PARTITIONS;
	opts->timeout_ms = KM_KAFKA_TIMEOUT_MS;
	opts->all_topics = false;
}

/* An admin request's options with the call's deadline. */
static rd_kafka_AdminOptions_t *admin_opts(km_kafka_t *k, rd_kafka_admin_op_t op,
					   int timeout_ms)
{
	return km_kafka_admin_options(km_kafka_rk(k), op, timeout_ms);
}

/* ---- cluster and brokers ------------------------------------------------ */

static void apiv_cb(void *opaque, int key, const char *name, int min, int max)
{
	json_array_append_new(opaque, json_pack("{s:i, s:s, s:i, s:i}", "key",
						key, "name", name, "min", min,
						"max", max));
}

static km_err_t describe_cluster(km_kafka_t *k, json_t *inv,
				 const km_inventory_opts_t *opts, char *errstr,
				 size_t errstr_size)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(km_kafka_rk(k));
	rd_kafka_AdminOptions_t *o =
		admin_opts(k, RD_KAFKA_ADMIN_OP_DESCRIBECLUSTER, opts->timeout_ms);
	rd_kafka_event_t *ev = NULL;
	const rd_kafka_DescribeCluster_result_t *res;
	const rd_kafka_Node_t **nodes, *ctrl;
	const rd_kafka_AclOperation_t *ops;
	size_t n;
	json_t *brokers, *authorized;
	km_err_t err;

	/* What this principal may do on the cluster: calls the cluster would
	 * refuse are recorded as not inventoried, with the ACL to grant,
	 * without being sent (see describe_scram). */
	rd_kafka_AdminOptions_set_include_authorized_operations(o, 1);
	rd_kafka_DescribeCluster(km_kafka_rk(k), o, q);
	err = km_kafka_wait(k, q, RD_KAFKA_EVENT_DESCRIBECLUSTER_RESULT,
			    opts->timeout_ms + 1000, "DescribeCluster", &ev,
			    errstr, errstr_size);
	if (err)
		goto done;
	res = rd_kafka_event_DescribeCluster_result(ev);
	ops = rd_kafka_DescribeCluster_result_authorized_operations(res, &n);
	authorized = json_array();
	for (size_t i = 0; ops && i < n; i++)
		json_array_append_new(authorized,
				      json_string(rd_kafka_AclOperation_name(ops[i])));
	/* Without an authorizer Kafka answers no list at all: everything is
	 * allowed, which is not the same as "nothing". */
	json_object_set_new(inv, "cluster_authorized_operations",
			    ops ? authorized : (json_decref(authorized), json_null()));
	json_object_set_new(inv, "cluster_id",
			    json_string(rd_kafka_DescribeCluster_result_cluster_id(res)));
	ctrl = rd_kafka_DescribeCluster_result_controller(res);
	json_object_set_new(inv, "controller_id",
			    ctrl ? json_integer(rd_kafka_Node_id(ctrl)) : json_null());
	nodes = rd_kafka_DescribeCluster_result_nodes(res, &n);
	brokers = json_array();
	for (size_t i = 0; i < n; i++) {
		char hp[300];
		json_t *apis = json_array();
		const char *rack = rd_kafka_Node_rack(nodes[i]);

		snprintf(hp, sizeof(hp), "%s:%u", rd_kafka_Node_host(nodes[i]),
			 (unsigned)rd_kafka_Node_port(nodes[i]));
		km_kafka_apiversions(k, hp, apiv_cb, apis);
		json_array_append_new(
			brokers,
			json_pack("{s:i, s:s, s:i, s:o, s:o}", "id",
				  rd_kafka_Node_id(nodes[i]), "host",
				  rd_kafka_Node_host(nodes[i]), "port",
				  (int)rd_kafka_Node_port(nodes[i]), "rack",
				  rack ? json_string(rack) : json_null(),
				  "api_versions", apis));
	}
	json_object_set_new(inv, "brokers", brokers);
done:
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
	return err;
}

/* ---- topics ------------------------------------------------------------- */

static bool is_internal(const char *topic)
{
	return topic[0] == '_';
}

static km_err_t list_topics(km_kafka_t *k, const km_plan_t *plan, json_t *inv,
			    const km_inventory_opts_t *opts, char *errstr,
			    size_t errstr_size)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t rerr;
	json_t *topics = json_object(), *excluded = json_array();

	rerr = rd_kafka_metadata(km_kafka_rk(k), 1, NULL, &md, opts->timeout_ms);
	if (rerr) {
		json_decref(topics);
		json_decref(excluded);
		return km_kafka_err(k, rerr, "Metadata", NULL, errstr,
				    errstr_size);
	}
	for (int i = 0; i < md->topic_cnt; i++) {
		const struct rd_kafka_metadata_topic *t = &md->topics[i];
		json_t *parts, *topic;
		int rf = 0;

		/* The plan's patterns, not the worker topics a previous
		 * inventory recognised (km_plan_topic_in_scope() leaves them
		 * out): each inventory judges them again from their keys. */
		bool in_scope = opts->all_topics
					? (plan->topics.internal || !is_internal(t->topic))
					: km_plan_topic_selected(plan, t->topic);
		if (!in_scope) {
			if (!is_internal(t->topic))
				json_array_append_new(excluded,
						      json_string(t->topic));
			continue;
		}
		if (t->err) {
			/* A topic the cluster lists but cannot describe is a
			 * fact to show, not a reason to stop. */
			topic = json_pack("{s:s, s:s}", "name", t->topic,
					  "error", rd_kafka_err2str(t->err));
			json_object_set_new(topics, t->topic, topic);
			continue;
		}
		parts = json_array();
		for (int p = 0; p < t->partition_cnt; p++) {
			const struct rd_kafka_metadata_partition *mp =
				&t->partitions[p];
			json_t *replicas = json_array(), *isr = json_array();

			for (int r = 0; r < mp->replica_cnt; r++)
				json_array_append_new(replicas,
						      json_integer(mp->replicas[r]));
			for (int r = 0; r < mp->isr_cnt; r++)
				json_array_append_new(isr,
						      json_integer(mp->isrs[r]));
			if (mp->replica_cnt > rf)
				rf = mp->replica_cnt;
			json_array_append_new(
				parts, json_pack("{s:i, s:i, s:o, s:o}", "id",
						 mp->id, "leader", mp->leader,
						 "replicas", replicas, "isr", isr));
		}
		/* Metadata does not promise partition order. */
		topic = json_pack("{s:s, s:i, s:i, s:o, s:b}", "name", t->topic,
				  "partition_count", t->partition_cnt,
				  "replication_factor", rf, "partitions", parts,
				  "internal", is_internal(t->topic));
		json_object_set_new(topics, t->topic, topic);
	}
	rd_kafka_metadata_destroy(md);
	json_object_set_new(inv, "topics", topics);
	json_object_set_new(inv, "topics_out_of_scope", excluded);
	return KM_ERR_OK;
}

/* Each topic's "offsets": the sum over its partitions of high watermark
 * minus log start offset.  It counts offsets, not records: compaction,
 * transaction markers and aborted records all take offsets, so it is an
 * upper bound on the records a reader would see (counting records means
 * reading the topic).  null when a partition's offsets are unknown. */
static void sum_offsets(json_t *topics)
{
	const char *name;
	json_t *topic, *jp;
	size_t i;

	json_object_foreach(topics, name, topic) {
		json_int_t n = 0;
		bool known = json_array_size(json_object_get(topic, "partitions")) > 0;

		json_array_foreach(json_object_get(topic, "partitions"), i, jp) {
			json_t *lo = json_object_get(jp, "log_start_offset");
			json_t *hi = json_object_get(jp, "high_watermark");
			if (!json_is_integer(lo) || !json_is_integer(hi))
				known = false;
			else
				n += json_integer_value(hi) - json_integer_value(lo);
		}
		json_object_set_new(topic, "offsets", known ? json_integer(n) : json_null());
	}
}

/* Finds the partition object `p` of a topic (partitions are small arrays). */
static json_t *topic_partition(json_t *topic, int p)
{
	json_t *parts = json_object_get(topic, "partitions"), *jp;
	size_t i;

	json_array_foreach(parts, i, jp)
		if (json_integer_value(json_object_get(jp, "id")) == p)
			return jp;
	return NULL;
}

static km_err_t list_offsets(km_kafka_t *k, json_t *topics,
			     rd_kafka_OffsetSpec_t spec, const char *field,
			     const km_inventory_opts_t *opts, char *errstr,
			     size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *tps = rd_kafka_topic_partition_list_new(64);
	rd_kafka_queue_t *q;
	rd_kafka_AdminOptions_t *o;
	rd_kafka_event_t *ev = NULL;
	const char *name;
	json_t *topic, *jp;
	km_err_t err = KM_ERR_OK;
	size_t i, n;

	json_object_foreach(topics, name, topic) {
		json_array_foreach(json_object_get(topic, "partitions"), i, jp)
			rd_kafka_topic_partition_list_add(
				tps, name,
				(int32_t)json_integer_value(json_object_get(jp, "id")))
				->offset = spec;
	}
	if (tps->cnt == 0)
		goto done_nolist;
	q = rd_kafka_queue_new(km_kafka_rk(k));
	o = admin_opts(k, RD_KAFKA_ADMIN_OP_LISTOFFSETS, opts->timeout_ms);
	rd_kafka_ListOffsets(km_kafka_rk(k), tps, o, q);
	err = km_kafka_wait(k, q, RD_KAFKA_EVENT_LISTOFFSETS_RESULT,
			    opts->timeout_ms + 1000, "ListOffsets", &ev, errstr,
			    errstr_size);
	if (!err) {
		const rd_kafka_ListOffsetsResultInfo_t **infos =
			rd_kafka_ListOffsets_result_infos(
				rd_kafka_event_ListOffsets_result(ev), &n);
		for (i = 0; i < n; i++) {
			const rd_kafka_topic_partition_t *tp =
				rd_kafka_ListOffsetsResultInfo_topic_partition(
					infos[i]);
			topic = json_object_get(topics, tp->topic);
			jp = topic ? topic_partition(topic, tp->partition) : NULL;
			if (!jp)
				continue;
			if (tp->err)
				json_object_set_new(jp, field,
						    json_string(rd_kafka_err2str(tp->err)));
			else
				json_object_set_new(jp, field,
						    json_integer(tp->offset));
		}
		rd_kafka_event_destroy(ev);
	}
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
done_nolist:
	rd_kafka_topic_partition_list_destroy(tps);
	return err;
}


static json_t *config_entries(const rd_kafka_ConfigResource_t *res)
{
	size_t n;
	const rd_kafka_ConfigEntry_t **ents =
		rd_kafka_ConfigResource_configs(res, &n);
	json_t *cfg = json_object();

	for (size_t i = 0; i < n; i++) {
		const char *v = rd_kafka_ConfigEntry_value(ents[i]);
		int sensitive = rd_kafka_ConfigEntry_is_sensitive(ents[i]);

		json_object_set_new(
			cfg, rd_kafka_ConfigEntry_name(ents[i]),
			json_pack("{s:o, s:s, s:b, s:b}", "value",
				  (v && !sensitive) ? json_string(v) : json_null(),
				  "source",
				  km_kafka_config_source_name(rd_kafka_ConfigEntry_source(ents[i])),
				  "read_only", rd_kafka_ConfigEntry_is_read_only(ents[i]),
				  "sensitive", sensitive));
	}
	return cfg;
}

/* DescribeConfigs for every in-scope topic and for the first broker (whose
 * defaults the target design compares against), in one request. */
static km_err_t describe_configs(km_kafka_t *k, json_t *inv,
				 const km_inventory_opts_t *opts, char *errstr,
				 size_t errstr_size)
{
	json_t *topics = json_object_get(inv, "topics"), *topic;
	json_t *brokers = json_object_get(inv, "brokers");
	size_t ntopics = json_object_size(topics), nres = 0, n;
	rd_kafka_ConfigResource_t **res =
		km_calloc(ntopics + 1, sizeof(*res));
	rd_kafka_queue_t *q = rd_kafka_queue_new(km_kafka_rk(k));
	rd_kafka_AdminOptions_t *o =
		admin_opts(k, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, opts->timeout_ms);
	rd_kafka_event_t *ev = NULL;
	const char *name;
	char bid[32];
	km_err_t err;

	json_object_foreach(topics, name, topic)
		if (!json_object_get(topic, "error"))
			res[nres++] = rd_kafka_ConfigResource_new(
				RD_KAFKA_RESOURCE_TOPIC, name);
	if (json_array_size(brokers) > 0) {
		snprintf(bid, sizeof(bid), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(
				 json_array_get(brokers, 0), "id")));
		res[nres++] = rd_kafka_ConfigResource_new(
			RD_KAFKA_RESOURCE_BROKER, bid);
	}
	rd_kafka_DescribeConfigs(km_kafka_rk(k), res, nres, o, q);
	err = km_kafka_wait(k, q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT,
			    opts->timeout_ms + 1000, "DescribeConfigs", &ev,
			    errstr, errstr_size);
	if (!err) {
		const rd_kafka_ConfigResource_t **rs =
			rd_kafka_DescribeConfigs_result_resources(
				rd_kafka_event_DescribeConfigs_result(ev), &n);
		for (size_t i = 0; i < n; i++) {
			rd_kafka_resp_err_t rerr = rd_kafka_ConfigResource_error(rs[i]);
			const char *rname = rd_kafka_ConfigResource_name(rs[i]);
			json_t *target;
			const char *key;

			if (rd_kafka_ConfigResource_type(rs[i]) ==
			    RD_KAFKA_RESOURCE_BROKER) {
				target = inv;
				key = "broker_configs";
			} else {
				target = json_object_get(topics, rname);
				key = "configs";
			}
			if (!target)
				continue;
			if (rerr) {
				/* One line that says what was refused and,
				 * for a refusal, the ACL to grant. */
				char what[300], rerrstr[1024];
				snprintf(what, sizeof(what), "DescribeConfigs of %s '%s'",
					 target == inv ? "broker" : "topic", rname);
				km_kafka_err(k, rerr, what,
					     rd_kafka_ConfigResource_error_string(rs[i]),
					     rerrstr, sizeof(rerrstr));
				json_object_set_new(target, key,
						    json_pack("{s:s}", "not_inventoried",
							      rerrstr));
				continue;
			}
			json_object_set_new(target, key, config_entries(rs[i]));
		}
		rd_kafka_event_destroy(ev);
	}
	rd_kafka_ConfigResource_destroy_array(res, nres);
	free(res);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
	return err;
}

/* ---- Kafka Connect workers' internal topics -------------------------------- */

/* The keys a worker writes (Kafka's KafkaConfigBackingStore,
 * KafkaStatusBackingStore and OffsetStorageWriter).  A key is text: one
 * with a control byte or a NUL is not a worker's. */
static bool printable(const char *k, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)k[i] < 0x20 || k[i] == 0x7f)
			return false;
	return true;
}

static bool has_prefix(const char *k, size_t len, const char *p, size_t *plen)
{
	*plen = strlen(p);
	return len > *plen && !memcmp(k, p, *plen);
}

/* "<name>-<n>": the task's connector, when the key ends in "-<digits>"
 * after a non-empty name. */
static bool task_key(const char *s, size_t len, char **namep)
{
	size_t d = len;

	while (d > 0 && s[d - 1] >= '0' && s[d - 1] <= '9')
		d--;
	if (d == len || d < 2 || s[d - 1] != '-')
		return false;
	if (namep)
		*namep = km_strndup(s, d - 1);
	return true;
}

km_worker_role_t km_inventory_worker_key(const void *key, size_t len, char **namep)
{
	static const char *const named_configs[] = {"connector-", "commit-", "target-state-",
						    "tasks-fencing-"};
	const char *k = key;
	size_t pl;

	if (namep)
		*namep = NULL;
	if (!k || len == 0 || len > 4096 || !printable(k, len))
		return KM_WORKER_NONE;
	if (len == 11 && !memcmp(k, "session-key", 11))
		return KM_WORKER_CONFIGS;
	if (has_prefix(k, len, "logger-cluster-", &pl))
		return KM_WORKER_CONFIGS;
	for (size_t i = 0; i < sizeof(named_configs) / sizeof(named_configs[0]); i++)
		if (has_prefix(k, len, named_configs[i], &pl)) {
			if (namep)
				*namep = km_strndup(k + pl, len - pl);
			return KM_WORKER_CONFIGS;
		}
	if (has_prefix(k, len, "task-", &pl))
		return task_key(k + pl, len - pl, namep) ? KM_WORKER_CONFIGS : KM_WORKER_NONE;
	if (has_prefix(k, len, "status-connector-", &pl)) {
		if (namep)
			*namep = km_strndup(k + pl, len - pl);
		return KM_WORKER_STATUS;
	}
	if (has_prefix(k, len, "status-task-", &pl))
		return task_key(k + pl, len - pl, namep) ? KM_WORKER_STATUS : KM_WORKER_NONE;
	if (has_prefix(k, len, "status-topic-", &pl)) {
		/* KIP-558: status-topic-<topic>:connector-<name>; a topic name
		 * cannot hold ':', so the first separator is the one. */
		const char *sep = memchr(k + pl, ':', len - pl);
		size_t sl = strlen(":connector-");
		if (!sep || sep == k + pl || (size_t)(k + len - sep) <= sl ||
		    memcmp(sep, ":connector-", sl))
			return KM_WORKER_NONE;
		if (namep)
			*namep = km_strndup(sep + sl, (size_t)(k + len - sep) - sl);
		return KM_WORKER_STATUS;
	}
	if (k[0] == '[') {
		/* The offsets topic's key: the JSON array [connector, source
		 * partition], written by a JsonConverter without schemas. */
		json_t *a = json_loadb(k, len, JSON_REJECT_DUPLICATES, NULL);
		km_worker_role_t role = KM_WORKER_NONE;
		const char *c = json_string_value(json_array_get(a, 0));
		if (json_is_array(a) && json_array_size(a) == 2 && c && *c &&
		    json_is_object(json_array_get(a, 1))) {
			role = KM_WORKER_OFFSETS;
			if (namep)
				*namep = km_strdup(c);
		}
		json_decref(a);
		return role;
	}
	return KM_WORKER_NONE;
}

const char *km_inventory_worker_role_str(km_worker_role_t role)
{
	switch (role) {
	case KM_WORKER_CONFIGS: return "configs";
	case KM_WORKER_OFFSETS: return "offsets";
	case KM_WORKER_STATUS: return "status";
	default: return "none";
	}
}

void km_inventory_worker_keys_add(km_worker_keys_t *wk, const void *key, size_t len)
{
	km_worker_role_t role;
	char *name = NULL;

	wk->keys++;
	/* One mismatch settles it: the rest cost a count, not a parse. */
	if (wk->mismatched) {
		wk->mismatched++;
		return;
	}
	role = km_inventory_worker_key(key, len, &name);
	if (role == KM_WORKER_NONE || (wk->role != KM_WORKER_NONE && role != wk->role)) {
		wk->mismatched++;
		free(name);
		return;
	}
	wk->role = role;
	/* The names are evidence to show, not the verdict: a bounded set. */
	if (name && (!wk->connectors || json_object_size(wk->connectors) < 1000)) {
		if (!wk->connectors)
			wk->connectors = json_object();
		json_object_set_new(wk->connectors, name, json_true());
	}
	free(name);
}

km_worker_role_t km_inventory_worker_keys_role(const km_worker_keys_t *wk)
{
	return wk->keys > 0 && !wk->mismatched ? wk->role : KM_WORKER_NONE;
}

void km_inventory_worker_keys_clear(km_worker_keys_t *wk)
{
	json_decref(wk->connectors);
	memset(wk, 0, sizeof(*wk));
}

/* The worker-key folds of the compacted topics (a worker's three topics are
 * compacted: Connect refuses to start on others), looked up by name. */
typedef struct worker_scan_s {
	json_t *idx;          /* topic name -> index */
	km_worker_keys_t *wk;
	size_t n;
} worker_scan_t;

static bool is_compacted(json_t *topic)
{
	const char *cp = json_string_value(json_object_get(
		json_object_get(json_object_get(topic, "configs"), "cleanup.policy"), "value"));
	return cp && strstr(cp, "compact");
}

static void worker_scan_init(worker_scan_t *ws, json_t *topics)
{
	const char *name;
	json_t *topic;

	ws->idx = json_object();
	ws->n = 0;
	json_object_foreach(topics, name, topic)
		if (is_compacted(topic))
			json_object_set_new(ws->idx, name, json_integer((json_int_t)ws->n++));
	ws->wk = km_calloc(ws->n + 1, sizeof(*ws->wk));
}

static km_worker_keys_t *worker_scan_get(worker_scan_t *ws, const char *topic)
{
	json_t *i = json_object_get(ws->idx, topic);
	return i ? &ws->wk[json_integer_value(i)] : NULL;
}

static void worker_scan_free(worker_scan_t *ws)
{
	for (size_t i = 0; i < ws->n; i++)
		km_inventory_worker_keys_clear(&ws->wk[i]);
	free(ws->wk);
	json_decref(ws->idx);
}

/* ---- tail sampling ------------------------------------------------------- */

typedef struct sample_s {
	json_t *jp;          /* the partition object */
	int64_t next;        /* next offset we expect */
	int64_t end;         /* high watermark at start */
	int64_t gaps;        /* offsets skipped inside the sampled stretch */
	int64_t records;
	int64_t max_bytes;   /* largest key+value+headers seen */
	int64_t headers;     /* records with headers */
	int64_t tombstones;
	int64_t wire;        /* records whose key or value is in the schema
			      * registry wire format (magic 0 + 4-byte ID) */
	json_t *ids;         /* those IDs, as keys (a set) */
	km_worker_keys_t *wk; /* its topic's worker-key fold, or NULL when the
			       * topic is not compacted */
	bool done;
} sample_t;

/* The key of a partition in the message -> sample index: the partition
 * first, so no topic name can make two keys collide. */
static void sample_key(char *buf, size_t size, const char *topic, int32_t p)
{
	snprintf(buf, size, "%" PRId32 ":%s", p, topic);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Marks a partition that will not be read, with why: "not sampled" is a
 * fact the output shows, never an empty sample that reads as "no
 * transactions here". */
static void not_sampled(json_t *jp, const char *why)
{
	json_object_set_new(jp, "sample", json_pack("{s:s}", "not_sampled", why));
}

/* An array of IDs from a set's keys, in increasing order (stable output
 * for --diff and for people). */
static json_t *id_array(json_t *set)
{
	size_t n = json_object_size(set), i = 0, k;
	json_int_t *v = km_calloc(n + 1, sizeof(*v));
	json_t *arr = json_array(), *x;
	const char *key;

	json_object_foreach(set, key, x)
		v[i++] = strtoll(key, NULL, 10);
	for (i = 1; i < n; i++)
		for (k = i; k > 0 && v[k - 1] > v[k]; k--) {
			json_int_t t = v[k];
			v[k] = v[k - 1];
			v[k - 1] = t;
		}
	for (i = 0; i < n; i++)
		json_array_append_new(arr, json_integer(v[i]));
	free(v);
	return arr;
}

/* A key or value in the Confluent wire format names its schema ID: kept
 * (as a set) so that `kmigrate schemas` knows which IDs the records use. */
static bool wire_id(const void *buf, size_t len, json_t *ids)
{
	const unsigned char *b = buf;
	char k[16];

	if (!b || len < 5 || b[0] != 0)
		return false;
	snprintf(k, sizeof(k), "%u",
		 (unsigned)((uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4]));
	json_object_set_new(ids, k, json_true());
	return true;
}

/* The consumer that reads records for the inventory: assigned, never
 * committing, its memory capped (below). */
static km_err_t reading_consumer(km_kafka_t *k, const char *what, rd_kafka_t **rkp,
				 char *errstr, size_t errstr_size)
{
	/* The fetch and queue caps bound what the consumer holds however
	 * many partitions are assigned: one fetch response of at most
	 * fetch.max.bytes per broker and a pre-fetch queue of at most
	 * queued.max.messages.kbytes (a batch larger than a limit is still
	 * returned whole, so a fetch never stalls on it). */
	static const char *props[] = {"group.id", "kmigrate-inventory",
				      "enable.auto.commit", "false",
				      "enable.auto.offset.store", "false",
				      "isolation.level", "read_uncommitted",
				      "enable.partition.eof", "true",
				      "fetch.wait.max.ms", "100",
				      "fetch.max.bytes", "8388608",
				      "max.partition.fetch.bytes", "262144",
				      "queued.max.messages.kbytes", "16384",
				      NULL};
	rd_kafka_conf_t *conf;
	char rerr[256];
	km_err_t err;

	*rkp = NULL;
	if ((err = km_kafka_conf_new(km_kafka_endpoint(k), props, &conf, errstr, errstr_size)))
		return err;
	if (!(*rkp = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		return km_seterr(errstr, errstr_size, KM_ERR_KAFKA, "cannot create %s: %s", what,
				 rerr);
	}
	return KM_ERR_OK;
}

/* Reads up to opts->sample_records of each partition's tail with
 * read_uncommitted.  On a topic that is not compacted, offsets inside the
 * tail are contiguous except where a transaction's commit or abort marker
 * sits: librdkafka never hands control records to the application, so a gap
 * is how they show.  On a compacted topic a gap may be compaction too, so
 * the finding says "transaction markers or compaction".
 *
 * Bounded at any partition count (docs/internals/inventory.md):
 *   - at most opts->sample_partitions partitions are read, chosen round-robin
 *     over the topics (sorted by name): the first partition of every topic,
 *     then the second of every topic, ... so a cap below the partition count
 *     still reaches as many topics as it can; the rest are "not sampled"
 *     with the cap named;
 *   - memory: the sampling consumer's fetch sizes and pre-fetch queue are
 *     capped (reading_consumer()), so what it buffers does not grow with the partitions;
 *   - time: opts->sample_timeout_ms for the whole read; a partition whose
 *     tail was not read to its end by then says so ("complete": false and
 *     "incomplete" with the reason);
 *   - CPU: a message finds its partition through a hash, not a scan of every
 *     sampled partition (that scan made 1,000 partitions take 2.6 s). */
static km_err_t sample_tails(km_kafka_t *k, json_t *topics, worker_scan_t *ws,
			     const km_inventory_opts_t *opts, json_t *inv,
			     char *errstr, size_t errstr_size)
{
	rd_kafka_t *rk = NULL;
	rd_kafka_topic_partition_list_t *tps = NULL;
	sample_t *s = NULL;
	json_t *index = json_object(); /* sample_key -> index in s */
	size_t ns = 0, left, i, nnames = 0, eligible = 0, capped = 0, unknown = 0;
	size_t complete = 0, incomplete = 0;
	const char **names = NULL;
	const char *name;
	json_t *topic, *jp, *summary;
	char key[400], why[200];
	km_err_t err = KM_ERR_OK;
	int64_t deadline, t0 = km_mono_ms();
	bool deadline_hit = false;

	if (opts->sample_records <= 0) {
		json_object_set_new(inv, "sampling",
				    json_pack("{s:b}", "enabled", 0));
		json_decref(index);
		return KM_ERR_OK;
	}

	/* Which partitions are read: round-robin over the sorted topics. */
	names = km_calloc(json_object_size(topics) + 1, sizeof(*names));
	json_object_foreach(topics, name, topic)
		names[nnames++] = name;
	qsort(names, nnames, sizeof(*names), cmp_str);
	s = km_calloc(1, sizeof(*s)); /* grown below */
	for (size_t r = 0;; r++) {
		bool any = false;
		for (size_t t = 0; t < nnames; t++) {
			json_t *parts = json_object_get(json_object_get(topics, names[t]),
							"partitions");
			json_t *lo, *hi;
			int64_t from;

			if (r >= json_array_size(parts))
				continue;
			any = true;
			jp = json_array_get(parts, r);
			lo = json_object_get(jp, "log_start_offset");
			hi = json_object_get(jp, "high_watermark");
			if (!json_is_integer(lo) || !json_is_integer(hi)) {
				not_sampled(jp, "offsets unknown (ListOffsets failed)");
				unknown++;
				continue;
			}
			if (json_integer_value(hi) <= json_integer_value(lo)) {
				/* Empty: nothing to read, nothing unknown. */
				json_object_set_new(jp, "sample",
						    json_pack("{s:i, s:b}", "records", 0,
							      "complete", 1));
				continue;
			}
			eligible++;
			if (opts->sample_partitions > 0 &&
			    ns >= (size_t)opts->sample_partitions) {
				snprintf(why, sizeof(why),
					 "over the cap of %d sampled partitions "
					 "(--sample-partitions)",
					 opts->sample_partitions);
				not_sampled(jp, why);
				capped++;
				continue;
			}
			from = json_integer_value(hi) - opts->sample_records;
			if (from < json_integer_value(lo))
				from = json_integer_value(lo);
			s = km_realloc(s, (ns + 1) * sizeof(*s));
			memset(&s[ns], 0, sizeof(s[ns]));
			s[ns].jp = jp;
			s[ns].next = from;
			s[ns].end = json_integer_value(hi);
			s[ns].wk = worker_scan_get(ws, names[t]);
			sample_key(key, sizeof(key), names[t],
				   (int32_t)json_integer_value(json_object_get(jp, "id")));
			json_object_set_new(index, key, json_integer((json_int_t)ns));
			ns++;
		}
		if (!any)
			break;
	}
	if (ns == 0)
		goto done;

	if ((err = reading_consumer(k, "a sampling consumer", &rk, errstr, errstr_size)))
		goto done;
	tps = rd_kafka_topic_partition_list_new((int)ns);
	{
		/* The index key is "<partition>:<topic>". */
		const char *ik;
		json_t *iv;
		json_object_foreach(index, ik, iv) {
			const char *colon = strchr(ik, ':');
			rd_kafka_topic_partition_list_add(
				tps, colon + 1,
				(int32_t)strtol(ik, NULL, 10))
				->offset = s[json_integer_value(iv)].next;
		}
	}
	rd_kafka_assign(rk, tps);
	left = ns;
	deadline = t0 + opts->sample_timeout_ms;
	while (left > 0) {
		rd_kafka_message_t *m;
		sample_t *sp = NULL;
		json_t *iv;

		if (km_mono_ms() >= deadline) {
			deadline_hit = true;
			break;
		}
		if (!(m = rd_kafka_consumer_poll(rk, 200)))
			continue;
		if (m->rkt) {
			sample_key(key, sizeof(key), rd_kafka_topic_name(m->rkt),
				   m->partition);
			if ((iv = json_object_get(index, key)))
				sp = &s[json_integer_value(iv)];
		}
		if (sp && !sp->done) {
			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				/* A marker at the very end leaves a gap
				 * between the last record and the watermark. */
				if (m->offset > sp->next)
					sp->gaps += m->offset - sp->next;
				sp->done = true;
				left--;
			} else if (!m->err) {
				rd_kafka_headers_t *hdrs = NULL;
				int64_t bytes = (int64_t)m->len + (int64_t)m->key_len;

				if (m->offset > sp->next)
					sp->gaps += m->offset - sp->next;
				sp->next = m->offset + 1;
				sp->records++;
				if (!m->payload)
					sp->tombstones++;
				if (sp->wk)
					km_inventory_worker_keys_add(sp->wk, m->key, m->key_len);
				if (!sp->ids)
					sp->ids = json_object();
				/* Both evaluated: a key and a value may each name one. */
				if (wire_id(m->key, m->key_len, sp->ids) |
				    wire_id(m->payload, m->len, sp->ids))
					sp->wire++;
				if (!rd_kafka_message_headers(m, &hdrs) && hdrs) {
					const char *hn;
					const void *hv;
					size_t hs;
					sp->headers++;
					for (size_t h = 0; !rd_kafka_header_get_all(
								   hdrs, h, &hn, &hv, &hs);
					     h++)
						bytes += (int64_t)(strlen(hn) + hs);
				}
				if (bytes > sp->max_bytes)
					sp->max_bytes = bytes;
				if (sp->next >= sp->end) {
					sp->done = true;
					left--;
				}
			}
		}
		rd_kafka_message_destroy(m);
	}
	snprintf(why, sizeof(why),
		 "the sampling budget of %d ms ran out before the tail's end",
		 opts->sample_timeout_ms);
	for (i = 0; i < ns; i++) {
		json_t *ids = id_array(s[i].ids);
		json_decref(s[i].ids);
		s[i].ids = NULL;
		json_object_set_new(s[i].jp, "schema_wire_format",
				    json_pack("{s:I, s:o}", "records", (json_int_t)s[i].wire,
					      "schema_ids", ids));
		json_t *js = json_pack(
			"{s:I, s:I, s:I, s:I, s:I, s:b}", "records",
			(json_int_t)s[i].records, "offset_gaps",
			(json_int_t)s[i].gaps, "max_record_bytes",
			(json_int_t)s[i].max_bytes, "with_headers",
			(json_int_t)s[i].headers, "tombstones",
			(json_int_t)s[i].tombstones, "complete", s[i].done);
		if (s[i].done)
			complete++;
		else {
			incomplete++;
			json_object_set_new(js, "incomplete", json_string(why));
		}
		json_object_set_new(s[i].jp, "sample", js);
	}
done:
	summary = json_pack("{s:b, s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I}",
			    "enabled", 1, "records_per_partition",
			    opts->sample_records, "max_partitions",
			    opts->sample_partitions, "budget_ms",
			    opts->sample_timeout_ms, "partitions_with_records",
			    (json_int_t)eligible, "sampled", (json_int_t)ns,
			    "complete", (json_int_t)complete, "incomplete",
			    (json_int_t)incomplete, "not_sampled",
			    (json_int_t)(capped + unknown), "elapsed_ms",
			    (json_int_t)(km_mono_ms() - t0));
	/* Why the not-sampled ones were not: one line per cause. */
	{
		json_t *reasons = json_array();
		if (capped) {
			snprintf(why, sizeof(why),
				 "%zu over the cap of %d partitions (--sample-partitions)",
				 capped, opts->sample_partitions);
			json_array_append_new(reasons, json_string(why));
		}
		if (unknown) {
			snprintf(why, sizeof(why),
				 "%zu with unknown offsets (ListOffsets failed)", unknown);
			json_array_append_new(reasons, json_string(why));
		}
		if (deadline_hit) {
			snprintf(why, sizeof(why),
				 "%zu read only in part: the budget of %d ms ran out",
				 incomplete, opts->sample_timeout_ms);
			json_array_append_new(reasons, json_string(why));
		}
		json_object_set_new(summary, "not_sampled_reasons", reasons);
	}
	json_object_set_new(inv, "sampling", summary);
	free(s);
	free(names);
	json_decref(index);
	if (tps)
		rd_kafka_topic_partition_list_destroy(tps);
	if (rk) {
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	return err;
}

/* Reading the first records of compacted topics the tail sample left
 * without a key (sampling off, over its cap, or an empty tail): bounded in
 * records, partitions and time like the sample (docs/internals/inventory.md). */
#define WORKER_PROBE_RECORDS 20          /* per partition, from its log start */
#define WORKER_PROBE_PARTITIONS 3        /* per topic */
#define WORKER_PROBE_MAX_PARTITIONS 300  /* in all */
#define WORKER_PROBE_BUDGET_MS 10000     /* at most; the sample budget if lower */

typedef struct head_s {
	km_worker_keys_t *wk;
	int64_t end;  /* high watermark at start */
	int64_t read; /* records read */
	bool done;
} head_t;

static km_err_t probe_heads(km_kafka_t *k, json_t *topics, worker_scan_t *ws,
			    const km_inventory_opts_t *opts, json_t *inv, char *errstr,
			    size_t errstr_size)
{
	rd_kafka_t *rk = NULL;
	rd_kafka_topic_partition_list_t *tps = rd_kafka_topic_partition_list_new(16);
	json_t *index = json_object(), *iv, *jp;
	head_t *h = km_calloc(WORKER_PROBE_MAX_PARTITIONS, sizeof(*h));
	size_t nh = 0, left, over = 0, complete = 0, i;
	int budget = opts->sample_timeout_ms < WORKER_PROBE_BUDGET_MS ? opts->sample_timeout_ms
								   : WORKER_PROBE_BUDGET_MS;
	int64_t t0 = km_mono_ms();
	const char *name;
	char key[400];
	km_err_t err = KM_ERR_OK;

	json_object_foreach(ws->idx, name, iv) {
		km_worker_keys_t *wk = &ws->wk[json_integer_value(iv)];
		int taken = 0;
		if (wk->keys > 0)
			continue; /* the tail sample read keys already */
		json_array_foreach(json_object_get(json_object_get(topics, name), "partitions"), i, jp) {
			json_t *lo = json_object_get(jp, "log_start_offset");
			json_t *hi = json_object_get(jp, "high_watermark");
			if (taken >= WORKER_PROBE_PARTITIONS)
				break;
			if (!json_is_integer(lo) || !json_is_integer(hi) ||
			    json_integer_value(hi) <= json_integer_value(lo))
				continue;
			if (nh >= WORKER_PROBE_MAX_PARTITIONS) {
				over++;
				break;
			}
			rd_kafka_topic_partition_list_add(
				tps, name, (int32_t)json_integer_value(json_object_get(jp, "id")))
				->offset = json_integer_value(lo);
			sample_key(key, sizeof(key), name,
				   (int32_t)json_integer_value(json_object_get(jp, "id")));
			json_object_set_new(index, key, json_integer((json_int_t)nh));
			h[nh].wk = wk;
			h[nh].end = json_integer_value(hi);
			nh++;
			taken++;
		}
	}
	if (nh == 0)
		goto done;
	if ((err = reading_consumer(k, "a consumer for the compacted topics' first records", &rk,
				    errstr, errstr_size)))
		goto done;
	rd_kafka_assign(rk, tps);
	for (left = nh; left > 0 && km_mono_ms() - t0 < budget;) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		head_t *hp = NULL;
		if (!m)
			continue;
		if (m->rkt) {
			sample_key(key, sizeof(key), rd_kafka_topic_name(m->rkt), m->partition);
			if ((iv = json_object_get(index, key)))
				hp = &h[json_integer_value(iv)];
		}
		if (hp && !hp->done && (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || !m->err)) {
			if (!m->err) {
				km_inventory_worker_keys_add(hp->wk, m->key, m->key_len);
				hp->read++;
			}
			if (m->err || hp->read >= WORKER_PROBE_RECORDS || m->offset + 1 >= hp->end) {
				hp->done = true;
				left--;
				complete++;
			}
		}
		rd_kafka_message_destroy(m);
	}
done:
	/* What was read, and what was not: never silently partial. */
	json_object_set_new(inv, "connect_internal_probe",
			    json_pack("{s:i, s:i, s:I, s:I, s:I, s:I}", "records_per_partition",
				      WORKER_PROBE_RECORDS, "budget_ms", budget, "partitions",
				      (json_int_t)nh, "complete", (json_int_t)complete,
				      "topics_over_cap", (json_int_t)over, "elapsed_ms",
				      (json_int_t)(km_mono_ms() - t0)));
	free(h);
	json_decref(index);
	rd_kafka_topic_partition_list_destroy(tps);
	if (rk) {
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	return err;
}

/* Marks each compacted topic whose every key read has one role's shape:
 * topic.connect_internal = {"role", "connectors", "keys_read"}, with an
 * informational finding.  A config topic has one partition (Connect
 * refuses to start on another), so a config-shaped topic with more is not
 * a live worker's and stays ordinary. */
static void mark_workers(json_t *topics, worker_scan_t *ws, const char *scope,
			 json_t *findings)
{
	const char *name, *cname;
	json_t *iv, *x;

	json_object_foreach(ws->idx, name, iv) {
		km_worker_keys_t *wk = &ws->wk[json_integer_value(iv)];
		km_worker_role_t role = km_inventory_worker_keys_role(wk);
		json_t *topic = json_object_get(topics, name), *names = json_array();
		const char **sorted;
		size_t n = 0;
		char subj[300], *problem;

		if (role == KM_WORKER_NONE ||
		    (role == KM_WORKER_CONFIGS &&
		     json_integer_value(json_object_get(topic, "partition_count")) != 1)) {
			json_decref(names);
			continue;
		}
		sorted = km_calloc(json_object_size(wk->connectors) + 1, sizeof(*sorted));
		json_object_foreach(wk->connectors, cname, x)
			sorted[n++] = cname;
		qsort(sorted, n, sizeof(*sorted), cmp_str);
		for (size_t i = 0; i < n; i++)
			json_array_append_new(names, json_string(sorted[i]));
		free(sorted);
		json_object_set_new(topic, "connect_internal",
				    json_pack("{s:s, s:o, s:I}", "role",
					      km_inventory_worker_role_str(role), "connectors",
					      names, "keys_read", (json_int_t)wk->keys));
		snprintf(subj, sizeof(subj), "topic:%s", name);
		problem = !strcmp(scope, "source")
				  ? km_asprintf("Connect worker internal topic (%s) of the source "
						"worker: not copied; the target worker keeps its own; "
						"source connectors' positions move through KIP-875 at "
						"cutover",
						km_inventory_worker_role_str(role))
				  : km_asprintf("Connect worker internal topic (%s) of the %s worker: "
						"its own state, not a topic kmigrate copies into",
						km_inventory_worker_role_str(role), scope);
		json_array_append_new(
			findings,
			json_pack("{s:s, s:s, s:s, s:s, s:s}", "subject", subj, "problem", problem,
				  "fix",
				  "nothing to do: it stays out of the target design, the copy "
				  "and the waves; never name it in a wave",
				  "kind", "topic.connect_internal", "severity", "info"));
		free(problem);
	}
}

/* The worker's REST list of connectors (lib/connect.h) against the names
 * each recognised topic holds: agreement is more evidence, not a condition
 * (a config topic keeps deleted connectors' tombstoned keys). */
static void worker_cross_check(json_t *topics, const json_t *ci)
{
	const char *name;
	json_t *topic, *ctl, *c, *listed;
	size_t i, j;

	json_object_foreach(topics, name, topic) {
		if (!(ctl = json_object_get(topic, "connect_internal")))
			continue;
		listed = json_array();
		json_array_foreach(json_object_get(ctl, "connectors"), i, c) {
			json_t *row;
			json_array_foreach(json_object_get(ci, "connectors"), j, row)
				if (json_equal(json_object_get(row, "name"), c)) {
					json_array_append(listed, c);
					break;
				}
		}
		json_object_set_new(ctl, "listed_by_worker", listed);
	}
}

/* ---- ACLs ---------------------------------------------------------------- */

/* Kafka's own names for ACL resource types: librdkafka's enum has the same
 * numbers but calls resource type 4 (CLUSTER in Kafka) "BROKER". */
/* Whether DescribeCluster listed op among the principal's cluster
 * operations.  No list means the cluster has no authorizer (everything is
 * allowed); ALL grants every operation, and Kafka itself reports the
 * operations another implies (DESCRIBE from ALTER, ...). */
#define NO_DESCRIBE \
	"DescribeCluster lists no DESCRIBE among the principal's cluster operations"

static bool has_cluster_op(const json_t *inv, const char *op)
{
	const json_t *ops = json_object_get(inv, "cluster_authorized_operations");
	json_t *o;
	size_t i;

	if (!json_is_array(ops))
		return true;
	json_array_foreach(ops, i, o)
		if (!strcmp(json_string_value(o), op) ||
		    !strcmp(json_string_value(o), "ALL"))
			return true;
	return false;
}

/* When the principal lacks DESCRIBE on the cluster, records inv[key] as
 * not inventoried with the ACL to grant for `call` and returns true: the
 * call is not sent, since its answer would be a refusal or, worse, a list
 * cut down to what the principal may see. */
static bool cluster_describe_denied(km_kafka_t *k, json_t *inv, const char *key,
				    const char *call, const char *why)
{
	char msg[1024];

	if (has_cluster_op(inv, "DESCRIBE"))
		return false;
	km_kafka_err(k, RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED, call, why,
		     msg, sizeof(msg));
	json_object_set_new(inv, key, json_pack("{s:s}", "not_inventoried", msg));
	return true;
}

static const char *acl_resource_name(rd_kafka_ResourceType_t rt)
{
	return rt == RD_KAFKA_RESOURCE_BROKER ? "CLUSTER"
					      : rd_kafka_ResourceType_name(rt);
}

static km_err_t describe_acls(km_kafka_t *k, json_t *inv,
			      const km_inventory_opts_t *opts, char *errstr,
			      size_t errstr_size)
{
	char ferr[256];
	rd_kafka_AclBindingFilter_t *f = rd_kafka_AclBindingFilter_new(
		RD_KAFKA_RESOURCE_ANY, NULL, RD_KAFKA_RESOURCE_PATTERN_ANY, NULL,
		NULL, RD_KAFKA_ACL_OPERATION_ANY,
		RD_KAFKA_ACL_PERMISSION_TYPE_ANY, ferr, sizeof(ferr));
	rd_kafka_queue_t *q = rd_kafka_queue_new(km_kafka_rk(k));
	rd_kafka_AdminOptions_t *o =
		admin_opts(k, RD_KAFKA_ADMIN_OP_DESCRIBEACLS, opts->timeout_ms);
	rd_kafka_event_t *ev = NULL;
	km_err_t err = KM_ERR_OK;
	size_t n;

	/* librdkafka (2.8) drops the top-level error of a DescribeAcls
	 * response, so a cluster without an authorizer (SECURITY_DISABLED)
	 * would look like one with no ACLs.  The broker's own config says
	 * which it is; "unknown" must never read as "none". */
	json_t *bcfg = json_object_get(inv, "broker_configs");
	json_t *authz = json_object_get(
		json_object_get(bcfg, "authorizer.class.name"), "value");
	const char *bcfg_err =
		json_string_value(json_object_get(bcfg, "not_inventoried"));

	/* librdkafka would report a refusal as an empty list. */
	if (cluster_describe_denied(k, inv, "acls", "DescribeAcls", NO_DESCRIBE))
		goto done;
	if (bcfg_err) {
		/* Unreadable is not empty: a principal that may not read the
		 * broker's config must not be told there is no authorizer. */
		snprintf(errstr, errstr_size,
			 "whether the cluster has an authorizer is unknown: %s",
			 bcfg_err);
		json_object_set_new(inv, "acls",
				    json_pack("{s:s}", "not_inventoried", errstr));
		errstr[0] = '\0';
		goto done;
	}
	if (!json_is_string(authz) || !*json_string_value(authz)) {
		json_object_set_new(
			inv, "acls",
			json_pack("{s:s}", "not_inventoried",
				  json_is_string(authz) || json_object_get(inv, "broker_configs")
					  ? "the cluster has no authorizer "
					    "(authorizer.class.name is empty): "
					    "there are no ACLs and writes cannot "
					    "be fenced with ACLs"
					  : "the broker's authorizer.class.name "
					    "could not be read"));
		err = KM_ERR_OK;
		goto done;
	}
	rd_kafka_DescribeAcls(km_kafka_rk(k), f, o, q);
	err = km_kafka_wait(k, q, RD_KAFKA_EVENT_DESCRIBEACLS_RESULT,
			    opts->timeout_ms + 1000, "DescribeAcls", &ev, errstr,
			    errstr_size);
	if (err == KM_ERR_KAFKA || err == KM_ERR_AUTHZ) {
		/* No authorizer (SECURITY_DISABLED) or no DESCRIBE on the
		 * cluster: the ACLs are unknown, which is a finding. */
		json_object_set_new(inv, "acls",
				    json_pack("{s:s}", "not_inventoried", errstr));
		err = KM_ERR_OK;
		errstr[0] = '\0';
	} else if (!err) {
		const rd_kafka_AclBinding_t **acls = rd_kafka_DescribeAcls_result_acls(
			rd_kafka_event_DescribeAcls_result(ev), &n);
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(
				arr,
				json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
					  "resource_type",
					  acl_resource_name(rd_kafka_AclBinding_restype(acls[i])),
					  "name", rd_kafka_AclBinding_name(acls[i]),
					  "pattern_type",
					  rd_kafka_ResourcePatternType_name(
						  rd_kafka_AclBinding_resource_pattern_type(acls[i])),
					  "principal",
					  rd_kafka_AclBinding_principal(acls[i]),
					  "host", rd_kafka_AclBinding_host(acls[i]),
					  "operation",
					  rd_kafka_AclOperation_name(
						  rd_kafka_AclBinding_operation(acls[i])),
					  "permission",
					  rd_kafka_AclPermissionType_name(
						  rd_kafka_AclBinding_permission_type(acls[i]))));
		json_object_set_new(inv, "acls", arr);
	}
done:
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AclBinding_destroy(f);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
	return err;
}

/* ---- consumer groups ----------------------------------------------------- */

static km_err_t group_offsets(km_kafka_t *k, const char *group, json_t *topics,
			      json_t *jg, const km_inventory_opts_t *opts,
			      char *errstr, size_t errstr_size)
{
	/* Not the admin API's ListConsumerGroupOffsets: it crashes when the
	 * coordinator is not ready (lib/kafka.h km_kafka_committed). */
	rd_kafka_topic_partition_list_t *tps = NULL;
	json_t *offs = json_array(), *out_of_scope = json_array();
	int64_t total_lag = 0;
	km_err_t err;

	err = km_kafka_committed(k, &group, 1, NULL, 0, opts->timeout_ms, &tps, errstr,
				 errstr_size);
	if (!err) {
		for (int i = 0; tps && i < tps->cnt; i++) {
			const rd_kafka_topic_partition_t *tp = &tps->elems[i];
			json_t *t = json_object_get(topics, tp->topic), *jp;
			json_t *hw;
			if (!t) {
				json_array_append_new(out_of_scope,
						      json_string(tp->topic));
				continue;
			}
			if (tp->offset < 0)
				continue;
			jp = topic_partition(t, tp->partition);
			hw = jp ? json_object_get(jp, "high_watermark") : NULL;
			json_t *row = json_pack("{s:s, s:i, s:I}", "topic",
						tp->topic, "partition",
						tp->partition, "committed",
						(json_int_t)tp->offset);
			if (json_is_integer(hw)) {
				int64_t lag = json_integer_value(hw) - tp->offset;
				if (lag < 0)
					lag = 0;
				json_object_set_new(row, "end",
						    json_integer(json_integer_value(hw)));
				json_object_set_new(row, "lag", json_integer(lag));
				total_lag += lag;
			}
			if (tp->metadata_size > 0)
				json_object_set_new(
					row, "metadata",
					json_stringn(tp->metadata, tp->metadata_size));
			json_array_append_new(offs, row);
		}
	}
	km_sort_tp_rows(offs);
	json_object_set_new(jg, "offsets", offs);
	json_object_set_new(jg, "total_lag", json_integer(total_lag));
	json_object_set_new(jg, "out_of_scope_topics", out_of_scope);
	if (tps)
		rd_kafka_topic_partition_list_destroy(tps);
	return err;
}

static km_err_t describe_groups(km_kafka_t *k, json_t *inv,
				const km_inventory_opts_t *opts, char *errstr,
				size_t errstr_size)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(km_kafka_rk(k));
	rd_kafka_AdminOptions_t *o = admin_opts(
		k, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS, opts->timeout_ms);
	rd_kafka_AdminOptions_t *o2 = NULL;
	rd_kafka_event_t *ev = NULL, *ev2 = NULL;
	json_t *groups = json_object();
	const char **ids = NULL;
	size_t n, nids = 0;
	km_err_t err;

	rd_kafka_ListConsumerGroups(km_kafka_rk(k), o, q);
	err = km_kafka_wait(k, q, RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT,
			    opts->timeout_ms + 1000, "ListConsumerGroups", &ev,
			    errstr, errstr_size);
	if (err)
		goto done;
	const rd_kafka_ConsumerGroupListing_t **gl =
		rd_kafka_ListConsumerGroups_result_valid(
			rd_kafka_event_ListConsumerGroups_result(ev), &n);
	ids = km_calloc(n + 1, sizeof(*ids));
	for (size_t i = 0; i < n; i++) {
		const char *id = rd_kafka_ConsumerGroupListing_group_id(gl[i]);
		/* Our own sampling group is an artefact, not the estate. */
		if (!strcmp(id, "kmigrate-inventory"))
			continue;
		ids[nids++] = id;
	}
	if (nids > 0) {
		o2 = admin_opts(k, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS,
				opts->timeout_ms);
		rd_kafka_DescribeConsumerGroups(km_kafka_rk(k), ids, nids, o2, q);
		err = km_kafka_wait(k, q,
				    RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT,
				    opts->timeout_ms + 1000,
				    "DescribeConsumerGroups", &ev2, errstr,
				    errstr_size);
		if (err)
			goto done;
		const rd_kafka_ConsumerGroupDescription_t **gd =
			rd_kafka_DescribeConsumerGroups_result_groups(
				rd_kafka_event_DescribeConsumerGroups_result(ev2), &n);
		for (size_t i = 0; i < n; i++) {
			const char *id = rd_kafka_ConsumerGroupDescription_group_id(gd[i]);
			const rd_kafka_error_t *gerr =
				rd_kafka_ConsumerGroupDescription_error(gd[i]);
			json_t *jg = json_pack("{s:s}", "id", id), *members;

			if (gerr) {
				json_object_set_new(jg, "error",
						    json_string(rd_kafka_error_string(gerr)));
				json_object_set_new(groups, id, jg);
				continue;
			}
			json_object_set_new(
				jg, "state",
				json_string(rd_kafka_consumer_group_state_name(
					rd_kafka_ConsumerGroupDescription_state(gd[i]))));
			json_object_set_new(
				jg, "assignor",
				json_string(rd_kafka_ConsumerGroupDescription_partition_assignor(gd[i])));
			json_object_set_new(
				jg, "simple",
				json_boolean(rd_kafka_ConsumerGroupDescription_is_simple_consumer_group(gd[i])));
			members = json_array();
			for (size_t m = 0;
			     m < rd_kafka_ConsumerGroupDescription_member_count(gd[i]);
			     m++) {
				const rd_kafka_MemberDescription_t *md =
					rd_kafka_ConsumerGroupDescription_member(gd[i], m);
				const rd_kafka_topic_partition_list_t *a =
					rd_kafka_MemberAssignment_partitions(
						rd_kafka_MemberDescription_assignment(md));
				const char *inst =
					rd_kafka_MemberDescription_group_instance_id(md);
				json_t *asg = json_array();
				for (int p = 0; a && p < a->cnt; p++)
					json_array_append_new(
						asg, json_pack("{s:s, s:i}", "topic",
							       a->elems[p].topic,
							       "partition",
							       a->elems[p].partition));
				json_array_append_new(
					members,
					json_pack("{s:s, s:s, s:s, s:o, s:o}",
						  "client_id",
						  rd_kafka_MemberDescription_client_id(md),
						  "host",
						  rd_kafka_MemberDescription_host(md),
						  "member_id",
						  rd_kafka_MemberDescription_consumer_id(md),
						  "group_instance_id",
						  inst ? json_string(inst) : json_null(),
						  "assignment", asg));
			}
			json_object_set_new(jg, "members", members);
			if ((err = group_offsets(k, id, json_object_get(inv, "topics"),
						 jg, opts, errstr, errstr_size))) {
				json_decref(jg);
				goto done;
			}
			json_object_set_new(groups, id, jg);
		}
	}
done:
	json_object_set_new(inv, "groups", groups);
	free(ids);
	if (ev)
		rd_kafka_event_destroy(ev);
	if (ev2)
		rd_kafka_event_destroy(ev2);
	rd_kafka_AdminOptions_destroy(o);
	if (o2)
		rd_kafka_AdminOptions_destroy(o2);
	rd_kafka_queue_destroy(q);
	return err;
}

/* ---- SCRAM users and quotas ---------------------------------------------- */


static km_err_t describe_scram(km_kafka_t *k, json_t *inv,
			       const km_inventory_opts_t *opts, char *errstr,
			       size_t errstr_size)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(km_kafka_rk(k));
	rd_kafka_AdminOptions_t *o = admin_opts(
		k, RD_KAFKA_ADMIN_OP_DESCRIBEUSERSCRAMCREDENTIALS, opts->timeout_ms);
	rd_kafka_event_t *ev = NULL;
	km_err_t err;
	size_t n;

	/* Kafka answers DescribeUserScramCredentials only with DESCRIBE on
	 * the cluster.  When DescribeCluster already said the principal lacks
	 * it, the call is not sent: the refusal is known, and librdkafka 2.8
	 * cannot free a refused answer (see km_kafka_wait()). */
	if (cluster_describe_denied(k, inv, "scram_users",
				    "DescribeUserScramCredentials", NO_DESCRIBE)) {
		err = KM_ERR_OK;
		goto done;
	}
	rd_kafka_DescribeUserScramCredentials(km_kafka_rk(k), NULL, 0, o, q);
	err = km_kafka_wait(k, q, RD_KAFKA_EVENT_DESCRIBEUSERSCRAMCREDENTIALS_RESULT,
			    opts->timeout_ms + 1000, "DescribeUserScramCredentials",
			    &ev, errstr, errstr_size);
	if (err == KM_ERR_AUTHZ || err == KM_ERR_KAFKA) {
		json_object_set_new(inv, "scram_users",
				    json_pack("{s:s}", "not_inventoried", errstr));
		errstr[0] = '\0';
		err = KM_ERR_OK;
	} else if (!err) {
		const rd_kafka_UserScramCredentialsDescription_t **d =
			rd_kafka_DescribeUserScramCredentials_result_descriptions(
				rd_kafka_event_DescribeUserScramCredentials_result(ev), &n);
		json_t *users = json_array();
		for (size_t i = 0; i < n; i++) {
			json_t *mechs = json_array();
			size_t nm = rd_kafka_UserScramCredentialsDescription_scramcredentialinfo_count(d[i]);
			for (size_t m = 0; m < nm; m++) {
				const rd_kafka_ScramCredentialInfo_t *ci =
					rd_kafka_UserScramCredentialsDescription_scramcredentialinfo(d[i], m);
				json_array_append_new(
					mechs,
					json_pack("{s:s, s:i}", "mechanism",
						  rd_kafka_ScramCredentialInfo_mechanism(ci) ==
								  RD_KAFKA_SCRAM_MECHANISM_SHA_512
							  ? "SCRAM-SHA-512"
							  : "SCRAM-SHA-256",
						  "iterations",
						  rd_kafka_ScramCredentialInfo_iterations(ci)));
			}
			json_array_append_new(
				users, json_pack("{s:s, s:o}", "user",
						 rd_kafka_UserScramCredentialsDescription_user(d[i]),
						 "mechanisms", mechs));
		}
		json_object_set_new(inv, "scram_users", users);
	}
done:
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
	return err;
}

/* ---- declared items, findings and risk ----------------------------------- */

static void finding(json_t *findings, const char *subject, const char *problem,
		    const char *fix)
{
	json_array_append_new(findings, json_pack("{s:s, s:s, s:s}", "subject",
						  subject, "problem", problem,
						  "fix", fix));
}

static json_t *declared_item(json_t *findings, const char *kind,
			     const char *name, const char *owner,
			     const char *validation, int line)
{
	char subject[300];

	snprintf(subject, sizeof(subject), "%s:%s", kind, name);
	if (!owner)
		finding(findings, subject, "no owner",
			"add owner: to the item in the plan");
	if (!validation)
		finding(findings, subject, "no validation method",
			"add validation: saying how it is checked after cutover");
	return json_pack("{s:s, s:s, s:o, s:o, s:i}", "kind", kind, "name", name,
			 "owner", owner ? json_string(owner) : json_null(),
			 "validation",
			 validation ? json_string(validation) : json_null(),
			 "plan_line", line);
}

static json_t *merge_declared(const km_plan_t *plan, json_t *findings)
{
	json_t *items = json_array(), *it;
	size_t i;

	for (i = 0; i < plan->producers_cnt; i++) {
		const km_plan_producer_t *p = &plan->producers[i];
		json_t *topics = json_array();
		it = declared_item(findings, "producer", p->name, p->owner,
				   p->validation, p->pos.line);
		for (size_t t = 0; t < p->topics_cnt; t++)
			json_array_append_new(topics, json_string(p->topics[t]));
		json_object_set_new(it, "client",
				    p->client ? json_string(p->client) : json_null());
		json_object_set_new(it, "client_version",
				    p->client_version ? json_string(p->client_version)
						      : json_null());
		json_object_set_new(it, "idempotence",
				    json_string(km_plan_tri_str(p->idempotence)));
		json_object_set_new(it, "transactions",
				    json_string(km_plan_tri_str(p->transactions)));
		json_object_set_new(it, "topics", topics);
		json_array_append_new(items, it);
	}
	for (i = 0; i < plan->consumers_cnt; i++) {
		const km_plan_consumer_t *c = &plan->consumers[i];
		it = declared_item(findings, "consumer", c->name, c->owner,
				   c->validation, c->pos.line);
		json_object_set_new(it, "group",
				    c->group ? json_string(c->group) : json_null());
		json_object_set_new(it, "client",
				    c->client ? json_string(c->client) : json_null());
		json_object_set_new(it, "client_version",
				    c->client_version ? json_string(c->client_version)
						      : json_null());
		json_array_append_new(items, it);
	}
	for (i = 0; i < plan->connectors_cnt; i++) {
		const km_plan_connector_t *c = &plan->connectors[i];
		it = declared_item(findings, "connector", c->name, c->owner,
				   c->validation, c->pos.line);
		json_object_set_new(it, "class", c->class_name
							 ? json_string(c->class_name)
							 : json_null());
		json_object_set_new(it, "side_effects",
				    c->side_effects ? json_string(c->side_effects)
						    : json_null());
		json_array_append_new(items, it);
	}
	static const struct {
		const char *kind;
		size_t off_arr, off_cnt;
	} arts[] = {
		{"dashboard", offsetof(km_plan_t, dashboards), offsetof(km_plan_t, dashboards_cnt)},
		{"alert", offsetof(km_plan_t, alerts), offsetof(km_plan_t, alerts_cnt)},
		{"runbook", offsetof(km_plan_t, runbooks), offsetof(km_plan_t, runbooks_cnt)},
	};
	for (size_t a = 0; a < sizeof(arts) / sizeof(arts[0]); a++) {
		const km_plan_artifact_t *arr =
			*(km_plan_artifact_t *const *)((const char *)plan + arts[a].off_arr);
		size_t cnt = *(const size_t *)((const char *)plan + arts[a].off_cnt);
		for (i = 0; i < cnt; i++)
			json_array_append_new(items,
					      declared_item(findings, arts[a].kind,
							    arr[i].name, arr[i].owner,
							    arr[i].validation,
							    arr[i].pos.line));
	}
	return items;
}

static const char *cfg_value(json_t *topic, const char *name)
{
	return json_string_value(json_object_get(
		json_object_get(json_object_get(topic, "configs"), name), "value"));
}

static void reason(json_t *reasons, int *level, int lvl, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void reason(json_t *reasons, int *level, int lvl, const char *fmt, ...)
{
	km_sb_t sb = KM_SB_INIT;
	va_list ap;

	va_start(ap, fmt);
	km_sb_vprintf(&sb, fmt, ap);
	va_end(ap);
	json_array_append_new(reasons,
			      json_pack("{s:s, s:s}", "level",
					lvl == 2 ? "high" : "medium", "reason",
					km_sb_str(&sb)));
	km_sb_free(&sb);
	if (lvl > *level)
		*level = lvl;
}

/* Risk classes: high when a mistake would lose, duplicate or reorder data
 * an owner said they cannot tolerate, or when transactions are in play;
 * medium when the topic needs a different validation or care (compaction,
 * large records, many partitions, LogAppendTime); low otherwise. */
static void classify(const km_plan_t *plan, const char *name, json_t *topic,
		     json_t *groups, json_t *findings)
{
	json_t *reasons = json_array(), *decl, *jp, *g;
	const km_plan_rule_t *rule = km_plan_topic_rule(plan, name);
	const char *cp = cfg_value(topic, "cleanup.policy");
	const char *mmb = cfg_value(topic, "max.message.bytes");
	const char *tst = cfg_value(topic, "message.timestamp.type");
	bool compacted = cp && strstr(cp, "compact");
	int64_t gaps = 0, maxrec = 0, sampled = 0, limit = 0;
	int level = 0;
	size_t i, unsampled = 0, nread = 0;
	const char *gid;

	json_array_foreach(json_object_get(topic, "partitions"), i, jp) {
		json_t *s = json_object_get(jp, "sample");
		if (json_object_get(s, "not_sampled")) {
			unsampled++;
			continue;
		}
		/* A tail the budget cut short was not read to its end: what
		 * it did not reach is as unknown as a partition not read. */
		if (json_is_false(json_object_get(s, "complete")))
			unsampled++;
		if (json_integer_value(json_object_get(s, "records")) > 0)
			nread++;
		gaps += json_integer_value(json_object_get(s, "offset_gaps"));
		sampled += json_integer_value(json_object_get(s, "records"));
		if (json_integer_value(json_object_get(s, "max_record_bytes")) > maxrec)
			maxrec = json_integer_value(json_object_get(s, "max_record_bytes"));
	}
	json_object_set_new(topic, "compacted", json_boolean(compacted));
	/* Without compaction the only holes in a log's offsets are control
	 * records, so a gap proves transactions were used. */
	json_object_set_new(topic, "transactional_markers",
			    compacted ? (gaps ? json_string("unknown: gaps may be compaction")
					      : json_false())
				      : json_boolean(gaps > 0));
	/* No gap in what was read says nothing of the partitions that were
	 * not read: "false" would be a pass the inventory cannot vouch for. */
	if (!gaps && unsampled) {
		char u[160];
		snprintf(u, sizeof(u), "unknown: %zu of %zu partitions not sampled to their end",
			 unsampled, json_array_size(json_object_get(topic, "partitions")));
		json_object_set_new(topic, "transactional_markers", json_string(u));
		if (!nread)
			reason(reasons, &level, 1,
			       "tail not sampled (%zu partitions, see the inventory's "
			       "sampling): transactional records unknown",
			       unsampled);
	}

	if (compacted)
		reason(reasons, &level, 1,
		       "compacted (cleanup.policy=%s): validate latest value per key, "
		       "offsets have gaps",
		       cp);
	if (!compacted && gaps > 0)
		reason(reasons, &level, 2,
		       "transactional records present (%" PRId64
		       " control-record gaps in the sampled tail): read_committed "
		       "copy, offset map must skip markers",
		       gaps);
	else if (compacted && gaps > 0)
		reason(reasons, &level, 1,
		       "offset gaps in the sampled tail (%" PRId64
		       "): transaction markers or compaction",
		       gaps);
	for (i = 0; i < plan->producers_cnt; i++)
		for (size_t t = 0; t < plan->producers[i].topics_cnt; t++)
			if (!strcmp(plan->producers[i].topics[t], name) &&
			    plan->producers[i].transactions == KM_PLAN_YES)
				reason(reasons, &level, 2,
				       "declared transactional producer '%s'",
				       plan->producers[i].name);
	if (rule && rule->ordering == KM_PLAN_ORDERING_STRICT)
		reason(reasons, &level, 2, "strict ordering declared (plan line %d)",
		       rule->pos.line);
	if (rule && rule->duplicates == KM_PLAN_DUPLICATES_NONE)
		reason(reasons, &level, 2,
		       "duplicates not tolerated (plan line %d)", rule->pos.line);
	if (rule && rule->replay == KM_PLAN_REPLAY_FORBIDDEN)
		reason(reasons, &level, 2, "replay forbidden (plan line %d)",
		       rule->pos.line);
	if (mmb && km_parse_i64(mmb, &limit) == 0 && limit > 0 && maxrec > 0 &&
	    (double)maxrec >= plan->gates.large_message_ratio * (double)limit)
		reason(reasons, &level, 1,
		       "records near max.message.bytes (%" PRId64 " of %" PRId64
		       " bytes, threshold %.0f%%)",
		       maxrec, limit, plan->gates.large_message_ratio * 100);
	if (json_integer_value(json_object_get(topic, "partition_count")) >=
	    plan->gates.many_partitions)
		reason(reasons, &level, 1, "many partitions (%" JSON_INTEGER_FORMAT
		       " >= %d)",
		       json_integer_value(json_object_get(topic, "partition_count")),
		       plan->gates.many_partitions);
	if (tst && !strcmp(tst, "LogAppendTime"))
		reason(reasons, &level, 1,
		       "message.timestamp.type=LogAppendTime: a copy gets new "
		       "timestamps unless the target topic uses CreateTime");
	/* Consumers that cannot replay: a declared group with replay
	 * forbidden that has committed offsets on this topic. */
	json_object_foreach(groups, gid, g) {
		json_t *o;
		bool reads = false;
		json_array_foreach(json_object_get(g, "offsets"), i, o)
			if (!strcmp(json_string_value(json_object_get(o, "topic")), name))
				reads = true;
		if (!reads)
			continue;
		for (size_t d = 0; d < plan->groups_cnt; d++)
			if (!strcmp(plan->groups[d].id, gid) &&
			    plan->groups[d].replay == KM_PLAN_REPLAY_FORBIDDEN)
				reason(reasons, &level, 2,
				       "consumer group '%s' has no replay tolerance",
				       gid);
	}

	decl = json_object();
	json_object_set_new(decl, "ordering",
			    json_string(km_plan_ordering_str(rule ? rule->ordering
								  : KM_PLAN_ORDERING_NONE)));
	json_object_set_new(decl, "duplicates",
			    json_string(km_plan_duplicates_str(
				    rule ? rule->duplicates : KM_PLAN_DUPLICATES_TOLERATED)));
	json_object_set_new(decl, "replay",
			    json_string(km_plan_replay_str(rule ? rule->replay
								: KM_PLAN_REPLAY_TOLERATED)));
	json_object_set_new(decl, "owner", rule && rule->owner
						   ? json_string(rule->owner)
						   : json_null());
	json_object_set_new(decl, "declared", json_boolean(rule != NULL));
	json_object_set_new(topic, "declared", decl);
	json_object_set_new(topic, "max_record_bytes_sampled", json_integer(maxrec));
	json_object_set_new(topic, "records_sampled", json_integer(sampled));
	{
		/* Which IDs the topic's sampled records name (per partition in
		 * partitions[].schema_wire_format). */
		json_t *ids = json_object(), *arr, *x;
		int64_t wire = 0;
		size_t k;
		json_array_foreach(json_object_get(topic, "partitions"), i, jp) {
			json_t *w = json_object_get(jp, "schema_wire_format");
			wire += json_integer_value(json_object_get(w, "records"));
			json_array_foreach(json_object_get(w, "schema_ids"), k, x) {
				char key[24];
				snprintf(key, sizeof(key), "%lld", (long long)json_integer_value(x));
				json_object_set_new(ids, key, json_true());
			}
		}
		arr = id_array(ids);
		json_decref(ids);
		json_object_set_new(topic, "schema_wire_format",
				    json_pack("{s:I, s:o}", "records_sampled", (json_int_t)wire,
					      "schema_ids", arr));
	}
	json_object_set_new(topic, "risk",
			    json_pack("{s:s, s:o}", "class",
				      level == 2 ? "high" : level == 1 ? "medium" : "low",
				      "reasons", reasons));
	/* A worker's internal topic is not copied: nobody needs to own its
	 * move (its own finding says so). */
	if ((!rule || !rule->owner) && !json_object_get(topic, "connect_internal")) {
		char subject[300];
		snprintf(subject, sizeof(subject), "topic:%s", name);
		/* An empty compacted topic has no key to tell a Connect
		 * worker's (a worker running only sinks leaves its offsets
		 * topic empty): the fix says so rather than guess. */
		finding(findings, subject, "no owner",
			compacted && json_integer_value(json_object_get(topic, "offsets")) == 0 &&
					json_is_integer(json_object_get(topic, "offsets"))
				? "declare the topic's owner in topics.rules, or exclude it if it "
				  "is a Connect worker's internal topic (it is compacted and empty: "
				  "no key says whose it is)"
				: "declare the topic's owner in topics.rules");
	}
}

km_err_t km_inventory_take(km_kafka_t *k, const km_plan_t *plan,
			   const km_inventory_opts_t *opts, json_t **invp,
			   char *errstr, size_t errstr_size)
{
	json_t *inv = json_object(), *findings = json_array(), *quotas = NULL;
	json_t *topics, *topic, *groups, *g;
	worker_scan_t ws = {NULL, NULL, 0};
	const km_kafka_endpoint_t *ep = km_kafka_endpoint(k);
	char ts[40], qerr[512];
	const char *name;
	km_err_t err;
	size_t i;

	*invp = NULL;
	km_iso8601(km_now_ms(), ts, sizeof(ts));
	json_object_set_new(inv, "scope", json_string(opts->scope));
	json_object_set_new(inv, "bootstrap", json_string(ep->bootstrap));
	json_object_set_new(inv, "taken_at", json_string(ts));
	json_object_set_new(inv, "migration", json_string(plan->migration));

	if ((err = describe_cluster(k, inv, opts, errstr, errstr_size)) ||
	    (err = list_topics(k, plan, inv, opts, errstr, errstr_size)))
		goto fail;
	topics = json_object_get(inv, "topics");
	if ((err = list_offsets(k, topics, RD_KAFKA_OFFSET_SPEC_EARLIEST,
				"log_start_offset", opts, errstr, errstr_size)) ||
	    (err = list_offsets(k, topics, RD_KAFKA_OFFSET_SPEC_LATEST,
				"high_watermark", opts, errstr, errstr_size)))
		goto fail;
	sum_offsets(topics);
	if ((err = describe_configs(k, inv, opts, errstr, errstr_size)) ||
	    (err = describe_acls(k, inv, opts, errstr, errstr_size)) ||
	    (err = describe_groups(k, inv, opts, errstr, errstr_size)) ||
	    (err = describe_scram(k, inv, opts, errstr, errstr_size)))
		goto fail;
	/* The compacted topics' keys tell a Connect worker's internal topics
	 * from the estate's: the tail sample folds them, then the first
	 * records of those it left without a key. */
	worker_scan_init(&ws, topics);
	if ((err = sample_tails(k, topics, &ws, opts, inv, errstr, errstr_size)) ||
	    (err = probe_heads(k, topics, &ws, opts, inv, errstr, errstr_size)))
		goto fail;
	mark_workers(topics, &ws, opts->scope, findings);

	/* Client quotas: librdkafka has no API for them. */
	if (km_quotas_describe(ep, opts->timeout_ms, &quotas, qerr, sizeof(qerr)))
		json_object_set_new(inv, "quotas",
				    json_pack("{s:s}", "not_inventoried", qerr));
	else
		json_object_set_new(inv, "quotas", quotas);

	/* Without DESCRIBE on the cluster, ListGroups answers only the
	 * groups the principal may describe one by one: a partial list must
	 * not read as the estate's groups. */
	cluster_describe_denied(k, inv, "groups_listing", "ListConsumerGroups",
				"the list holds only the groups this principal "
				"may describe");

	/* Facts that stop being facts when unknown. */
	static const char *const unknowable[] = {"acls", "scram_users", "quotas",
						   "groups_listing"};
	for (i = 0; i < sizeof(unknowable) / sizeof(unknowable[0]); i++) {
		json_t *v = json_object_get(inv, unknowable[i]);
		if (json_is_object(v) && json_object_get(v, "not_inventoried")) {
			char subj[64];
			snprintf(subj, sizeof(subj), "cluster:%s", unknowable[i]);
			finding(findings, subj,
				json_string_value(json_object_get(v, "not_inventoried")),
				"re-create or verify by hand, with an owner, and "
				"record it in the plan");
		}
	}

	groups = json_object_get(inv, "groups");
	json_object_foreach(topics, name, topic)
		if (!json_object_get(topic, "error"))
			classify(plan, name, topic, groups, findings);
	/* Groups the cluster has but the plan does not declare have no
	 * restart policy anyone agreed to. */
	json_object_foreach(groups, name, g) {
		bool declared = false;
		for (i = 0; i < plan->groups_cnt; i++)
			if (!strcmp(plan->groups[i].id, name))
				declared = true;
		json_object_set_new(g, "declared", json_boolean(declared));
		if (!declared && json_array_size(json_object_get(g, "offsets")) > 0) {
			char subj[300];
			snprintf(subj, sizeof(subj), "group:%s", name);
			finding(findings, subj,
				"not declared in the plan: restart policy unknown",
				"add it to consumer_groups with restart: and owner:");
		}
	}
	/* Kafka Connect's connectors are part of the source estate
	 * (lib/connect.h); an unreachable worker fails the inventory. */
	if (!strcmp(opts->scope, "source") && plan->source.connect_url) {
		km_connect_t *cc = NULL;
		json_t *ci = NULL, *cf;
		if ((err = km_connect_open(plan->source.connect_url, "source.connect_url", 0, &cc,
					   errstr, errstr_size)))
			goto fail;
		err = km_connect_inventory(cc, plan, &ci, errstr, errstr_size);
		km_connect_close(cc);
		if (err)
			goto fail;
		cf = km_connect_findings(plan, ci);
		json_array_extend(findings, cf);
		json_decref(cf);
		worker_cross_check(topics, ci);
		json_object_set_new(inv, "connect", ci);
	}
	if (!strcmp(opts->scope, "source"))
		json_object_set_new(inv, "declared", merge_declared(plan, findings));
	json_object_set_new(inv, "findings", findings);
	worker_scan_free(&ws);
	*invp = inv;
	return KM_ERR_OK;
fail:
	worker_scan_free(&ws);
	json_decref(findings);
	json_decref(inv);
	return err;
}

/* ---- diff ---------------------------------------------------------------- */

static void change(json_t *out, const char *c, const char *kind,
		   const char *subject, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void change(json_t *out, const char *c, const char *kind,
		   const char *subject, const char *fmt, ...)
{
	km_sb_t sb = KM_SB_INIT;
	va_list ap;

	va_start(ap, fmt);
	km_sb_vprintf(&sb, fmt, ap);
	va_end(ap);
	json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s}", "change", c,
					     "kind", kind, "subject", subject,
					     "detail", km_sb_str(&sb)));
	km_sb_free(&sb);
}

static char *acl_key(json_t *a)
{
	return km_asprintf("%s:%s:%s %s@%s %s %s",
			   json_string_value(json_object_get(a, "resource_type")),
			   json_string_value(json_object_get(a, "pattern_type")),
			   json_string_value(json_object_get(a, "name")),
			   json_string_value(json_object_get(a, "principal")),
			   json_string_value(json_object_get(a, "host")),
			   json_string_value(json_object_get(a, "permission")),
			   json_string_value(json_object_get(a, "operation")));
}

static json_t *acl_set(const json_t *inv)
{
	json_t *set = json_object(), *a;
	size_t i;

	json_array_foreach(json_object_get(inv, "acls"), i, a) {
		char *key = acl_key(a);
		json_object_set_new(set, key, json_true());
		free(key);
	}
	return set;
}

static void diff_keys(json_t *out, const char *kind, json_t *a, json_t *b)
{
	const char *key;
	json_t *v;

	json_object_foreach(b, key, v)
		if (!json_object_get(a, key))
			change(out, "+", kind, key, "new");
	json_object_foreach(a, key, v)
		if (!json_object_get(b, key))
			change(out, "-", kind, key, "gone");
}

json_t *km_inventory_diff(const json_t *old_inv, const json_t *new_inv)
{
	json_t *out = json_array(), *ot, *nt, *oa, *na;
	json_t *otopics = json_object_get(old_inv, "topics");
	json_t *ntopics = json_object_get(new_inv, "topics");
	json_t *ogroups = json_object_get(old_inv, "groups");
	json_t *ngroups = json_object_get(new_inv, "groups");
	const char *name, *cname;
	json_t *oc, *nc, *g;
	size_t i;

	diff_keys(out, "topic", otopics, ntopics);
	json_object_foreach(ntopics, name, nt) {
		if (!(ot = json_object_get(otopics, name)))
			continue;
		json_int_t op = json_integer_value(json_object_get(ot, "partition_count"));
		json_int_t np = json_integer_value(json_object_get(nt, "partition_count"));
		if (op != np)
			change(out, "~", "topic", name,
			       "partitions %" JSON_INTEGER_FORMAT " -> %" JSON_INTEGER_FORMAT,
			       op, np);
		json_t *ocfg = json_object_get(ot, "configs");
		json_object_foreach(json_object_get(nt, "configs"), cname, nc) {
			const char *nv = json_string_value(json_object_get(nc, "value"));
			const char *ns = json_string_value(json_object_get(nc, "source"));
			oc = json_object_get(ocfg, cname);
			const char *ov = json_string_value(json_object_get(oc, "value"));
			const char *os = json_string_value(json_object_get(oc, "source"));
			if (!oc || (ov ? !nv || strcmp(ov, nv) : nv != NULL) ||
			    (os && ns && strcmp(os, ns))) {
				char subj[600];
				snprintf(subj, sizeof(subj), "%s/%s", name, cname);
				change(out, "~", "config", subj, "%s (%s) -> %s (%s)",
				       ov ? ov : "null", os ? os : "absent",
				       nv ? nv : "null", ns ? ns : "?");
			}
		}
	}
	oa = acl_set(old_inv);
	na = acl_set(new_inv);
	diff_keys(out, "acl", oa, na);
	json_decref(oa);
	json_decref(na);

	diff_keys(out, "group", ogroups, ngroups);
	json_object_foreach(ngroups, name, g) {
		json_t *og = json_object_get(ogroups, name), *no, *oo;
		size_t j;
		if (!og)
			continue;
		if (!json_equal(json_object_get(og, "state"), json_object_get(g, "state")))
			change(out, "~", "group", name, "state %s -> %s",
			       json_string_value(json_object_get(og, "state")),
			       json_string_value(json_object_get(g, "state")));
		json_array_foreach(json_object_get(g, "offsets"), i, no) {
			json_int_t prev = -1;
			json_array_foreach(json_object_get(og, "offsets"), j, oo)
				if (json_equal(json_object_get(oo, "topic"), json_object_get(no, "topic")) &&
				    json_equal(json_object_get(oo, "partition"), json_object_get(no, "partition")))
					prev = json_integer_value(json_object_get(oo, "committed"));
			json_int_t now = json_integer_value(json_object_get(no, "committed"));
			if (prev != now) {
				char subj[600];
				snprintf(subj, sizeof(subj), "%s %s[%" JSON_INTEGER_FORMAT "]",
					 name, json_string_value(json_object_get(no, "topic")),
					 json_integer_value(json_object_get(no, "partition")));
				change(out, "~", "offset", subj,
				       "committed %" JSON_INTEGER_FORMAT " -> %" JSON_INTEGER_FORMAT,
				       prev, now);
			}
		}
	}
	if (json_is_array(json_object_get(old_inv, "scram_users")) &&
	    json_is_array(json_object_get(new_inv, "scram_users"))) {
		json_t *ou = json_object(), *nu = json_object(), *u;
		json_array_foreach(json_object_get(old_inv, "scram_users"), i, u)
			json_object_set(ou, json_string_value(json_object_get(u, "user")), u);
		json_array_foreach(json_object_get(new_inv, "scram_users"), i, u)
			json_object_set(nu, json_string_value(json_object_get(u, "user")), u);
		diff_keys(out, "scram-user", ou, nu);
		json_decref(ou);
		json_decref(nu);
	}
	return out;
}
