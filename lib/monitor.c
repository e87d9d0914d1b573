/*
 * monitor.c -- one sample of both clusters, and the triggers' state
 * machines (lib/monitor.h; docs/internals/monitor.md).
 *
 * A sample is a sequence of independent measurements.  Each one clears
 * the series it owns before it sets them, so that a measurement that fails
 * leaves no series behind: a trigger reading it then finds nothing and is
 * "unknown" (which counts as firing), never the value of a minute ago.
 */
#include "monitor.h"

#include <curl/curl.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect.h"
#include "cutover.h"
#include "fence.h"
#include "gate.h"
#include "mapstore.h"
#include "offsets.h"
#include "util.h"

/* A trigger's evidence: the samples since it became pending, at most this
 * many; when full, every other one is dropped and only every other later
 * sample is kept (the resolution halves, the span is kept). */
#define EVIDENCE_MAX 32
/* Prometheus' answer to one query is read up to this size. */
#define PROM_MAX_BODY (1024 * 1024)
#define PROM_TIMEOUT_MS 5000
#define METADATA_TIMEOUT_MS 10000

typedef struct trig_s {
	const km_plan_trigger_t *t;
	int64_t pending_since; /* 0: inactive */
	bool firing;
	json_t *evidence; /* [[at, value|null], ...] */
	int stride, skipped;
} trig_t;

struct km_monitor_s {
	km_monitor_conf_t c;
	trig_t *trig;
	size_t ntrig;
	json_t *prev_hwm; /* {"source": {topic: sum}, "target": {...}} */
	int64_t prev_ms;
	int64_t next_gates_ms;
	/* Connect workers (source, target), opened on first use and kept;
	 * and the task states of the previous sample: {"cluster/conn/task":
	 * state}, so that a transition to FAILED is counted once. */
	km_connect_t *cw[2];
	json_t *prev_tasks;
};

km_monitor_t *km_monitor_new(const km_monitor_conf_t *conf)
{
	km_monitor_t *mon = km_calloc(1, sizeof(*mon));
	mon->c = *conf;
	mon->ntrig = conf->plan->rollback.triggers_cnt;
	mon->trig = km_calloc(mon->ntrig ? mon->ntrig : 1, sizeof(*mon->trig));
	for (size_t i = 0; i < mon->ntrig; i++) {
		mon->trig[i].t = &conf->plan->rollback.triggers[i];
		mon->trig[i].evidence = json_array();
		mon->trig[i].stride = 1;
	}
	mon->prev_hwm = json_object();
	mon->prev_tasks = json_object();
	return mon;
}

void km_monitor_destroy(km_monitor_t *mon)
{
	if (!mon)
		return;
	for (size_t i = 0; i < mon->ntrig; i++)
		json_decref(mon->trig[i].evidence);
	free(mon->trig);
	json_decref(mon->prev_hwm);
	json_decref(mon->prev_tasks);
	km_connect_close(mon->cw[0]);
	km_connect_close(mon->cw[1]);
	free(mon);
}

static void sample_error(json_t *errors, km_metrics_t *m, const char *cluster, const char *what,
			 const char *msg)
{
	json_array_append_new(errors, json_pack("{s:s, s:s, s:s}", "cluster", cluster, "what",
						what, "message", msg));
	km_metrics_add(m, "kmigrate_monitor_sample_errors_total", 1, "cluster", cluster, NULL);
}

/* ---- what is in scope -------------------------------------------------------- */

/* The in-scope source topics and their partition counts, from the source's
 * metadata: {topic: {"partitions": n, "target": name, "wave": w|null}}. */
static km_err_t scope_topics(km_monitor_t *mon, json_t **topicsp, char *errstr,
			     size_t errstr_size)
{
	const struct rd_kafka_metadata *md = NULL;
	const km_plan_t *plan = mon->c.plan;
	rd_kafka_resp_err_t rerr;
	json_t *topics = json_object();

	*topicsp = NULL;
	if ((rerr = rd_kafka_metadata(km_kafka_rk(mon->c.ks), 1, NULL, &md, METADATA_TIMEOUT_MS))) {
		json_decref(topics);
		return km_kafka_err(mon->c.ks, rerr, "Metadata", NULL, errstr, errstr_size);
	}
	for (int i = 0; i < md->topic_cnt; i++) {
		const char *name = md->topics[i].topic;
		const char *wave = NULL;
		if (md->topics[i].err || !km_plan_topic_in_scope(plan, name))
			continue;
		for (size_t w = 0; w < plan->cutover.waves_cnt && !wave; w++)
			if (km_plan_wave_has_topic(plan, &plan->cutover.waves[w], name))
				wave = plan->cutover.waves[w].name;
		char *tgt = km_plan_target_topic(plan, name);
		json_object_set_new(topics, name,
				    json_pack("{s:i, s:s, s:s?}", "partitions",
					      md->topics[i].partition_cnt, "target", tgt, "wave",
					      wave));
		free(tgt);
	}
	rd_kafka_metadata_destroy(md);
	*topicsp = topics;
	return KM_ERR_OK;
}

/* ---- high watermarks ----------------------------------------------------------- */

/* The high watermark of every partition of the scope on one cluster:
 * {topic (that cluster's name): [hwm of partition 0, 1, ...]}. */
static km_err_t cluster_hwms(km_kafka_t *k, const json_t *topics, bool target, json_t **hwmsp,
			     char *errstr, size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(64);
	const char *src;
	json_t *t, *hwms = json_object();
	km_err_t err;

	json_object_foreach((json_t *)topics, src, t) {
		const char *name = target ? json_string_value(json_object_get(t, "target")) : src;
		json_int_t n = json_integer_value(json_object_get(t, "partitions"));
		for (int p = 0; p < n; p++)
			rd_kafka_topic_partition_list_add(l, name, p);
	}
	*hwmsp = NULL;
	if (l->cnt && (err = km_kafka_list_offsets(k, l, KM_KAFKA_HWM, errstr, errstr_size))) {
		rd_kafka_topic_partition_list_destroy(l);
		json_decref(hwms);
		return err;
	}
	for (int i = 0; i < l->cnt; i++) {
		json_t *a = json_object_get(hwms, l->elems[i].topic);
		if (!a)
			json_object_set_new(hwms, l->elems[i].topic, a = json_array());
		while ((int)json_array_size(a) <= l->elems[i].partition)
			json_array_append_new(a, json_integer(0));
		json_array_set_new(a, (size_t)l->elems[i].partition,
				   json_integer(l->elems[i].offset));
	}
	rd_kafka_topic_partition_list_destroy(l);
	*hwmsp = hwms;
	return KM_ERR_OK;
}

static int64_t hwm_of(const json_t *hwms, const char *topic, int partition)
{
	const json_t *a = json_object_get(hwms, topic);
	const json_t *v = a ? json_array_get(a, (size_t)partition) : NULL;
	return v ? (int64_t)json_integer_value(v) : -1;
}

/* kmigrate_topic_high_watermark and _write_records_per_second of one cluster. */
static void topic_rates(km_monitor_t *mon, const char *cluster, const json_t *hwms,
			int64_t now_ms)
{
	km_metrics_t *m = mon->c.metrics;
	json_t *prev = json_object_get(mon->prev_hwm, cluster), *next = json_object();
	const char *topic;
	json_t *a;

	json_object_foreach((json_t *)hwms, topic, a) {
		int64_t sum = 0;
		size_t i;
		json_t *v;
		json_array_foreach(a, i, v)
			sum += json_integer_value(v);
		km_metrics_set(m, "kmigrate_topic_high_watermark", (double)sum, "cluster", cluster,
			       "topic", topic, NULL);
		json_t *pv = prev ? json_object_get(prev, topic) : NULL;
		/* A rate needs two samples; a high watermark that went down
		 * (topic recreated) has no rate either. */
		if (pv && now_ms > mon->prev_ms && sum >= json_integer_value(pv))
			km_metrics_set(m, "kmigrate_topic_write_records_per_second",
				       (double)(sum - json_integer_value(pv)) * 1000.0 /
					       (double)(now_ms - mon->prev_ms),
				       "cluster", cluster, "topic", topic, NULL);
		json_object_set_new(next, topic, json_integer(sum));
	}
	json_object_set_new(mon->prev_hwm, cluster, next);
}

/* ---- consumer groups ------------------------------------------------------------- */

/* The plan's groups: consumer_groups and every wave's groups, once each:
 * {id: {"wave": w|null, "owner": o|null}}. */
static json_t *plan_groups(const km_plan_t *plan)
{
	json_t *groups = json_object();

	for (size_t i = 0; i < plan->groups_cnt; i++)
		json_object_set_new(groups, plan->groups[i].id,
				    json_pack("{s:n, s:s?}", "wave", "owner", plan->groups[i].owner));
	for (size_t w = 0; w < plan->cutover.waves_cnt; w++) {
		const km_plan_wave_t *wv = &plan->cutover.waves[w];
		for (size_t g = 0; g < wv->groups_cnt; g++) {
			json_t *o = json_object_get(groups, wv->groups[g].name);
			if (!o)
				json_object_set_new(groups, wv->groups[g].name,
						    o = json_pack("{s:n, s:s?}", "wave", "owner",
								  wv->owner));
			json_object_set_new(o, "wave", json_string(wv->name));
		}
	}
	return groups;
}

/* The committed offsets of group gid on one cluster for every partition
 * of hwms: *listp (destroy it); an offset < 0 is "none committed".
 * km_kafka_committed keeps a consumer handle per (cluster, group) in k
 * for the monitor's life (KM_KAFKA_KEEP_READERS): it never subscribes, it
 * only asks the group's coordinator.  Not the admin API's
 * ListConsumerGroupOffsets: librdkafka 2.8 crashes in it when the
 * coordinator is not ready (a SIGSEGV seen here on freshly started
 * clusters, librdkafka issue #5040; see lib/kafka.h). */
static km_err_t group_offsets(km_kafka_t *k, const char *gid, const json_t *hwms,
			      rd_kafka_topic_partition_list_t **listp, char *errstr,
			      size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
	const char *topic;
	json_t *a;
	km_err_t err;

	*listp = NULL;
	json_object_foreach((json_t *)hwms, topic, a)
		for (size_t p = 0; p < json_array_size(a); p++)
			rd_kafka_topic_partition_list_add(l, topic, (int32_t)p);
	if (!l->cnt) {
		*listp = l;
		return KM_ERR_OK;
	}
	err = km_kafka_committed(k, &gid, 1, l, KM_KAFKA_KEEP_READERS, KM_KAFKA_TIMEOUT_MS, listp,
				 errstr, errstr_size);
	rd_kafka_topic_partition_list_destroy(l);
	return err;
}

/* kmigrate_consumer_group_lag_records of every plan group on one cluster,
 * over the partitions it committed on that hwms knows (the scope). */
static void group_lags(km_monitor_t *mon, const char *cluster, km_kafka_t *k,
		       const json_t *groups, const json_t *hwms, json_t *totals, json_t *errors)
{
	km_metrics_t *m = mon->c.metrics;
	const char *gid;
	json_t *g;
	char e[512];

	json_object_foreach((json_t *)groups, gid, g) {
		rd_kafka_topic_partition_list_t *l = NULL;
		json_t *per = json_object();
		if (group_offsets(k, gid, hwms, &l, e, sizeof(e))) {
			sample_error(errors, m, cluster, "group lag", e);
			json_decref(per);
			continue;
		}
		for (int i = 0; i < l->cnt; i++) {
			int64_t hwm = hwm_of(hwms, l->elems[i].topic, l->elems[i].partition);
			if (hwm < 0 || l->elems[i].offset < 0 || l->elems[i].err)
				continue;
			json_t *v = json_object_get(per, l->elems[i].topic);
			int64_t lag = hwm > l->elems[i].offset ? hwm - l->elems[i].offset : 0;
			json_object_set_new(per, l->elems[i].topic,
					    json_integer((v ? json_integer_value(v) : 0) + lag));
		}
		const char *topic;
		json_t *v;
		json_object_foreach(per, topic, v) {
			km_metrics_set(m, "kmigrate_consumer_group_lag_records",
				       (double)json_integer_value(v), "cluster", cluster, "group",
				       gid, "topic", topic, NULL);
		}
		char key[400];
		snprintf(key, sizeof(key), "%s/%s", cluster, gid);
		json_object_set(json_object_get(totals, "group_lag"), key, per);
		json_decref(per);
		rd_kafka_topic_partition_list_destroy(l);
	}
}

/* ---- replication lag from the committed progress ------------------------------ */

/* kmigrate_replication_lag_seconds of the lagging partitions in old (each
 * at its next offset to copy): now minus the timestamp of that record,
 * read on the source -- the age of the oldest record not yet copied, as
 * the replication gate measures it (km_gate_first_records).  A partition
 * whose record did not come within the deadline has no series (unknown). */
static void lag_seconds(km_monitor_t *mon, rd_kafka_topic_partition_list_t *old, int64_t now_ms,
			json_t *totals, json_t *errors)
{
	int64_t *ts, worst = 0;
	char e[512], part[16];
	bool unknown = false;

	if (!old->cnt) {
		json_object_set_new(totals, "replication_lag_seconds", json_integer(0));
		return;
	}
	if (!mon->c.src)
		return;
	ts = km_calloc((size_t)old->cnt, sizeof(*ts));
	if (km_gate_first_records(mon->c.src, old, KM_KAFKA_TIMEOUT_MS, ts, e, sizeof(e))) {
		sample_error(errors, mon->c.metrics, "source", "replication lag seconds", e);
		free(ts);
		return;
	}
	for (int i = 0; i < old->cnt; i++) {
		/* Only markers past the progress (the replicator moves its
		 * progress over them at its next end of partition): nothing
		 * waits to be copied, so no age. */
		if (ts[i] == KM_GATE_NO_RECORD) {
			snprintf(part, sizeof(part), "%d", old->elems[i].partition);
			km_metrics_set(mon->c.metrics, "kmigrate_replication_lag_seconds", 0,
				       "direction", "forward", "topic", old->elems[i].topic,
				       "partition", part, NULL);
			continue;
		}
		if (ts[i] < 0) {
			unknown = true;
			snprintf(e, sizeof(e),
				 "the oldest uncopied record of '%s'[%d] could not be read: %s",
				 old->elems[i].topic, old->elems[i].partition,
				 rd_kafka_err2name(old->elems[i].err));
			sample_error(errors, mon->c.metrics, "source", "replication lag seconds", e);
			continue;
		}
		/* A timestamp in the future (producer clock skew) is no age. */
		int64_t age = now_ms > ts[i] ? now_ms - ts[i] : 0;
		if (age > worst)
			worst = age;
		snprintf(part, sizeof(part), "%d", old->elems[i].partition);
		km_metrics_set(mon->c.metrics, "kmigrate_replication_lag_seconds",
			       (double)age / 1000.0, "direction", "forward", "topic",
			       old->elems[i].topic, "partition", part, NULL);
	}
	json_object_set_new(totals, "replication_lag_seconds",
			    unknown ? json_null() : json_real((double)worst / 1000.0));
	free(ts);
}

static void replication_lag(km_monitor_t *mon, const json_t *topics, const json_t *src_hwms,
			    int64_t now_ms, json_t *totals, json_t *errors)
{
	rd_kafka_topic_partition_list_t *old = rd_kafka_topic_partition_list_new(8);
	km_mapstore_names_t names;
	km_mapstore_t *ms = NULL;
	char e[512], part[16];
	const char *topic;
	json_t *t;
	int64_t total = 0;
	km_err_t err;

	km_mapstore_names(mon->c.plan->migration, NULL, &names);
	if ((err = km_mapstore_read_progress_all(mon->c.tgt, names.progress, &ms, e, sizeof(e)))) {
		/* No replication yet is not a failure to read: the lag is then
		 * unknown all the same (no series). */
		if (err != KM_ERR_NOT_FOUND)
			sample_error(errors, mon->c.metrics, "target", "replication progress", e);
		rd_kafka_topic_partition_list_destroy(old);
		return;
	}
	json_object_foreach((json_t *)topics, topic, t) {
		json_int_t n = json_integer_value(json_object_get(t, "partitions"));
		for (int p = 0; p < n; p++) {
			const km_mapstore_progress_t *pr = km_mapstore_progress(ms, topic, p);
			int64_t hwm = hwm_of(src_hwms, topic, p);
			if (hwm < 0)
				continue;
			/* A partition without progress has copied nothing:
			 * everything up to its end is lag. */
			int64_t lag = pr ? (hwm > pr->next ? hwm - pr->next : 0) : hwm;
			snprintf(part, sizeof(part), "%d", p);
			km_metrics_set(mon->c.metrics, "kmigrate_replication_lag_records",
				       (double)lag, "direction", "forward", "topic", topic,
				       "partition", part, NULL);
			if (!lag)
				km_metrics_set(mon->c.metrics, "kmigrate_replication_lag_seconds", 0,
					       "direction", "forward", "topic", topic, "partition",
					       part, NULL);
			else
				rd_kafka_topic_partition_list_add(old, topic, p)->offset =
					pr ? pr->next : RD_KAFKA_OFFSET_BEGINNING;
			total += lag;
		}
	}
	json_object_set_new(totals, "replication_lag", json_integer(total));
	lag_seconds(mon, old, now_ms, totals, errors);
	rd_kafka_topic_partition_list_destroy(old);
	km_mapstore_destroy(ms);
}

/* ---- authority, fences, stale readers, gates -------------------------------------- */

static void authority_and_fences(km_monitor_t *mon, const json_t *topics, const json_t *groups,
				 json_t *stale, json_t *errors)
{
	const km_plan_t *plan = mon->c.plan;
	km_metrics_t *m = mon->c.metrics;
	json_t *records = NULL, *moved = json_object(), *t;
	const char *topic;
	char e[512];

	if (km_mapstore_load_authority(plan->migration, mon->c.tgt, &records, e, sizeof(e))) {
		sample_error(errors, m, "target", "authority", e);
		records = NULL;
	}
	json_object_foreach((json_t *)topics, topic, t) {
		const char *wave = json_string_value(json_object_get(t, "wave"));
		const char *auth = !records ? "unknown"
				   : km_mapstore_authority_target(records, topic) ? "target"
										 : "source";
		km_metrics_set(m, "kmigrate_topic_authority", 1, "topic", topic, "wave",
			       wave ? wave : "", "authority", auth, NULL);
		if (wave && !strcmp(auth, "target"))
			json_object_set_new(moved, wave, json_true());
	}
	/* Fences: the journal's current attempt of each wave. */
	for (size_t w = 0; mon->c.jr && w < plan->cutover.waves_cnt; w++) {
		const char *wave = plan->cutover.waves[w].name;
		json_t *done = NULL;
		if (km_cutover_load(mon->c.jr, wave, &done, NULL, e, sizeof(e))) {
			sample_error(errors, m, "journal", "fence", e);
			continue;
		}
		bool fenced = json_object_get(done, "fence") != NULL;
		json_object_foreach((json_t *)topics, topic, t) {
			const char *tw = json_string_value(json_object_get(t, "wave"));
			if (tw && !strcmp(tw, wave))
				km_metrics_set(m, "kmigrate_topic_fenced", fenced, "topic", topic,
					       "wave", wave, NULL);
		}
		json_decref(done);
	}
	/* Stale readers: a group of a moved wave with members on the source
	 * still reads what nobody writes any more. */
	for (size_t w = 0; w < plan->cutover.waves_cnt; w++) {
		const char *wave = plan->cutover.waves[w].name;
		int n = 0;
		if (!records)
			continue; /* unknown: no series, a trigger on it is unknown */
		if (json_object_get(moved, wave)) {
			const char *gid;
			json_t *g;
			json_object_foreach((json_t *)groups, gid, g) {
				const char *gw = json_string_value(json_object_get(g, "wave"));
				const char *owner = json_string_value(json_object_get(g, "owner"));
				int members = 0;
				char clients[512] = "";
				if (!gw || strcmp(gw, wave))
					continue;
				if (km_offsets_group_members(mon->c.ks, gid, &members, clients,
							     sizeof(clients), e, sizeof(e))) {
					sample_error(errors, m, "source", "stale readers", e);
					continue;
				}
				if (members <= 0)
					continue;
				n++;
				km_metrics_set(m, "kmigrate_stale_reader_members", members, "group",
					       gid, "wave", wave, "owner", owner ? owner : "", NULL);
				json_array_append_new(
					stale, json_pack("{s:s, s:s, s:s?, s:i, s:s}", "group", gid,
							 "wave", wave, "owner", owner, "members",
							 members, "clients", clients));
			}
		}
		km_metrics_set(m, "kmigrate_stale_readers", n, "wave", wave, NULL);
	}
	json_decref(moved);
	json_decref(records);
}

static void gates(km_monitor_t *mon, int64_t now_ms, json_t *errors)
{
	const km_plan_t *plan = mon->c.plan;
	char e[512];

	if (mon->c.gates_every_ms < 0 || !mon->c.jr || now_ms < mon->next_gates_ms)
		return;
	mon->next_gates_ms = now_ms + (mon->c.gates_every_ms ? mon->c.gates_every_ms : 60000);
	/* Re-measured in place (lib/metrics.h): a scrape meanwhile never
	 * finds the family empty. */
	km_metrics_mark(mon->c.metrics, "kmigrate_gate_verdict");
	for (size_t w = 0; w < plan->cutover.waves_cnt; w++) {
		for (int g = 0; km_gate_names[g]; g++) {
			json_t *rep = NULL;
			const char *wave = plan->cutover.waves[w].name;
			if (km_gate_eval(plan, mon->c.jr, mon->c.ks, mon->c.kt, km_gate_names[g], wave,
					 now_ms, &rep, e, sizeof(e))) {
				/* Not evaluated: NO-GO, as the gate itself says
				 * of unknown. */
				sample_error(errors, mon->c.metrics, "journal", "gate", e);
				km_metrics_set(mon->c.metrics, "kmigrate_gate_verdict", 0, "gate",
					       km_gate_names[g], "wave", wave, NULL);
				continue;
			}
			const char *v = json_string_value(json_object_get(rep, "verdict"));
			km_metrics_set(mon->c.metrics, "kmigrate_gate_verdict",
				       v && !strcmp(v, "GO"), "gate", km_gate_names[g], "wave", wave,
				       NULL);
			json_decref(rep);
		}
	}
	km_metrics_sweep(mon->c.metrics, "kmigrate_gate_verdict");
}

/* ---- the canary ---------------------------------------------------------------------- */

/* The record header that marks monitor's canaries (the fence proof's are
 * kmigrate.fence.canary). */
#define CANARY_HEADER "kmigrate.monitor.canary"
/* The deadline of one canary produce and of its read-back. */
#define CANARY_TIMEOUT_MS 10000

static bool is_authorization_error(rd_kafka_resp_err_t e)
{
	return e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
	       e == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
	       e == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED ||
	       e == RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
}

/* The partition count of topic on k: 0 and *errp when it cannot be told. */
static int topic_partitions(km_kafka_t *k, const char *topic, rd_kafka_resp_err_t *errp)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(km_kafka_rk(k), topic, NULL);
	int n = 0;

	*errp = rd_kafka_metadata(km_kafka_rk(k), 0, rkt, &md, METADATA_TIMEOUT_MS);
	if (!*errp && md->topic_cnt == 1) {
		*errp = md->topics[0].err;
		n = md->topics[0].partition_cnt;
	}
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return *errp ? 0 : n;
}

/* One canary round on the target: a record to every partition of
 * monitoring.canary_topic as the canary principal, then read back as it
 * (the record at the offset the delivery report gave).  Counters for
 * dashboards (PromQL's rate()), gauges of this round for triggers: the
 * error ratio, the largest produce latency, an authorization failure.
 * A canary that cannot run at all (no password) leaves no gauge: unknown. */
static void canary(km_monitor_t *mon, json_t *totals, json_t *errors)
{
	const km_plan_t *plan = mon->c.plan;
	const char *topic = plan->monitoring.canary_topic;
	km_metrics_t *m = mon->c.metrics;
	km_kafka_endpoint_t ep;
	const char *user = NULL, *pwenv = NULL;
	km_fence_canary_t *cs = NULL;
	rd_kafka_topic_partition_list_t *rb = NULL;
	int64_t *ts = NULL, latency = -1;
	rd_kafka_resp_err_t merr;
	int n, failed = 0, authz = 0;
	char e[512];

	if (!topic)
		return;
	ep = *mon->c.tgt;
	ep.password = NULL;
	/* Who the canary is: the declared canary principal, else the fence
	 * probe (an application-like principal, not kmigrate's own), else
	 * kmigrate's target login.  Only over SASL does a name change who
	 * the brokers see. */
	if (plan->monitoring.canary_username) {
		user = plan->monitoring.canary_username;
		pwenv = plan->monitoring.canary_password_env;
	} else if (plan->cutover.fence_probe.username) {
		user = plan->cutover.fence_probe.username;
		pwenv = plan->cutover.fence_probe.password_env;
	}
	if (user && ep.sasl_mechanism) {
		const char *pw = pwenv ? getenv(pwenv) : NULL;
		if (!pw || !*pw) {
			snprintf(e, sizeof(e),
				 "environment variable '%s' with the canary's password is not set: "
				 "export it (the canary is unknown until then)",
				 pwenv ? pwenv : "?");
			sample_error(errors, m, "target", "canary", e);
			return;
		}
		ep.username = user;
		ep.password = km_strdup(pw);
	} else if (mon->c.tgt->password) {
		ep.password = km_strdup(mon->c.tgt->password);
	}
	json_t *row = json_pack("{s:s, s:s}", "topic", topic, "as",
				ep.username ? ep.username : "ANONYMOUS");
	if (!(n = topic_partitions(mon->c.kt, topic, &merr))) {
		/* A declared canary topic that is not there is a failed
		 * canary, not a skipped one. */
		km_metrics_add(m, "kmigrate_canary_produce_total", 1, "cluster", "target", "topic",
			       topic, NULL);
		km_metrics_add(m, "kmigrate_canary_produce_errors_total", 1, "cluster", "target",
			       "topic", topic, "code", rd_kafka_err2name(merr), NULL);
		km_metrics_set(m, "kmigrate_canary_error_ratio", 1, "cluster", "target", "topic",
			       topic, NULL);
		km_metrics_set(m, "kmigrate_canary_authorization_failed",
			       is_authorization_error(merr), "cluster", "target", "topic", topic,
			       NULL);
		json_object_set_new(row, "error_ratio", json_real(1));
		json_object_set_new(row, "error", json_string(rd_kafka_err2name(merr)));
		goto done;
	}
	cs = km_calloc((size_t)n, sizeof(*cs));
	for (int p = 0; p < n; p++) {
		cs[p].topic = topic;
		cs[p].partition = p;
	}
	if (km_fence_canaries(&ep, CANARY_HEADER, cs, (size_t)n, CANARY_TIMEOUT_MS, e, sizeof(e))) {
		sample_error(errors, m, "target", "canary", e);
		json_decref(row);
		row = NULL;
		goto done;
	}
	rb = rd_kafka_topic_partition_list_new(n);
	for (int p = 0; p < n; p++)
		if (!cs[p].err)
			rd_kafka_topic_partition_list_add(rb, topic, p)->offset = cs[p].offset;
	ts = km_calloc((size_t)rb->cnt + 1, sizeof(*ts));
	if (rb->cnt && km_gate_first_records(&ep, rb, CANARY_TIMEOUT_MS, ts, e, sizeof(e))) {
		sample_error(errors, m, "target", "canary read-back", e);
		json_decref(row);
		row = NULL;
		goto done;
	}
	km_metrics_add(m, "kmigrate_canary_produce_total", n, "cluster", "target", "topic", topic,
		       NULL);
	json_t *codes = json_object();
	for (int p = 0; p < n; p++) {
		rd_kafka_resp_err_t pe = cs[p].err;
		if (pe) {
			failed++;
			authz += is_authorization_error(pe);
			km_metrics_add(m, "kmigrate_canary_produce_errors_total", 1, "cluster",
				       "target", "topic", topic, "code", rd_kafka_err2name(pe), NULL);
			json_object_set_new(codes, rd_kafka_err2name(pe), json_true());
		} else if (cs[p].latency_ms > latency) {
			latency = cs[p].latency_ms;
		}
	}
	for (int i = 0; i < rb->cnt; i++) {
		/* The record read must be the canary itself: the first record
		 * at or after its offset is another only if it was removed. */
		rd_kafka_resp_err_t re = ts[i] < 0 ? rb->elems[i].err : RD_KAFKA_RESP_ERR_NO_ERROR;
		const char *code = re ? rd_kafka_err2name(re) : NULL;
		if (!re && rb->elems[i].offset != cs[rb->elems[i].partition].offset)
			code = "_NOT_READ_BACK";
		if (!code)
			continue;
		failed++;
		authz += is_authorization_error(re);
		km_metrics_add(m, "kmigrate_canary_read_errors_total", 1, "cluster", "target",
			       "topic", topic, "code", code, NULL);
		json_object_set_new(codes, code, json_true());
	}
	if (authz)
		km_metrics_add(m, "kmigrate_canary_authorization_failures_total", authz, "cluster",
			       "target", "topic", topic, NULL);
	/* A round's ratio counts a partition once per failed step: produce
	 * refused, or produced but not read back (at most 1 either way). */
	double ratio = (double)failed / (double)n;
	km_metrics_set(m, "kmigrate_canary_error_ratio", ratio > 1 ? 1 : ratio, "cluster", "target",
		       "topic", topic, NULL);
	km_metrics_set(m, "kmigrate_canary_authorization_failed", authz > 0, "cluster", "target",
		       "topic", topic, NULL);
	if (latency >= 0)
		km_metrics_set(m, "kmigrate_canary_produce_latency_seconds",
			       (double)latency / 1000.0, "cluster", "target", "topic", topic, NULL);
	json_object_set_new(row, "partitions", json_integer(n));
	json_object_set_new(row, "error_ratio", json_real(ratio > 1 ? 1 : ratio));
	json_object_set_new(row, "authorization_failures", json_integer(authz));
	json_object_set_new(row, "latency_ms", latency >= 0 ? json_integer(latency) : json_null());
	json_object_set_new(row, "errors", codes);
done:
	if (row)
		json_object_set_new(totals, "canary", row);
	if (rb)
		rd_kafka_topic_partition_list_destroy(rb);
	free(ts);
	free(cs);
	if (ep.password) {
		memset(ep.password, 0, strlen(ep.password));
		free(ep.password);
	}
}

/* ---- Kafka Connect ------------------------------------------------------------------ */

static const char *const connect_states[] = {"RUNNING", "PAUSED", "STOPPED", "FAILED",
					     "UNASSIGNED", NULL};

static void connect_state_gauges(km_metrics_t *m, const char *cluster, const char *conn,
				 const char *task, const char *state)
{
	for (int i = 0; connect_states[i]; i++) {
		double v = state && !strcmp(state, connect_states[i]);
		if (task)
			km_metrics_set(m, "kmigrate_connector_task_state", v, "cluster", cluster,
				       "connector", conn, "task", task, "state", connect_states[i],
				       NULL);
		else
			km_metrics_set(m, "kmigrate_connector_state", v, "cluster", cluster,
				       "connector", conn, "state", connect_states[i], NULL);
	}
}

/* The plan's connectors on each cluster whose connect_url is declared:
 * the connector's and each task's state (1/0 per state), the tasks FAILED
 * now, and every transition of a task to FAILED seen between two samples
 * (a task that failed and was restarted between two samples is not seen:
 * the worker keeps no history). */
static void connectors(km_monitor_t *mon, json_t *errors)
{
	const km_plan_t *plan = mon->c.plan;
	km_metrics_t *m = mon->c.metrics;
	json_t *now = json_object();
	char e[512];

	for (int side = 0; side < 2 && plan->connectors_cnt; side++) {
		const km_plan_cluster_t *c = side ? &plan->target : &plan->source;
		const char *cluster = side ? "target" : "source";
		if (!c->connect_url)
			continue;
		if (!mon->cw[side] &&
		    km_connect_open(c->connect_url, side ? "target.connect_url" : "source.connect_url",
				    0, &mon->cw[side], e, sizeof(e))) {
			sample_error(errors, m, cluster, "connectors", e);
			continue;
		}
		for (size_t i = 0; i < plan->connectors_cnt; i++) {
			const char *name = plan->connectors[i].name;
			json_t *st = NULL, *t;
			size_t j;
			int nfailed = 0;
			km_err_t err = km_connect_status(mon->cw[side], name, &st, e, sizeof(e));
			if (err == KM_ERR_NOT_FOUND)
				continue; /* not (yet, or any more) on this worker: no series */
			if (err) {
				sample_error(errors, m, cluster, "connectors", e);
				continue;
			}
			connect_state_gauges(m, cluster, name, NULL,
					     json_string_value(json_object_get(st, "state")));
			json_array_foreach(json_object_get(st, "tasks"), j, t) {
				char task[32], key[600];
				const char *ts = json_string_value(json_object_get(t, "state"));
				snprintf(task, sizeof(task), "%lld",
					 (long long)json_integer_value(json_object_get(t, "id")));
				connect_state_gauges(m, cluster, name, task, ts);
				snprintf(key, sizeof(key), "%s/%s/%s", cluster, name, task);
				const char *was =
					json_string_value(json_object_get(mon->prev_tasks, key));
				bool failed = ts && !strcmp(ts, "FAILED");
				nfailed += failed;
				if (failed && (!was || strcmp(was, "FAILED")))
					km_metrics_add(m, "kmigrate_connector_task_failures_total", 1,
						       "cluster", cluster, "connector", name, "task",
						       task, NULL);
				if (ts)
					json_object_set_new(now, key, json_string(ts));
			}
			km_metrics_set(m, "kmigrate_connector_tasks_failed", nfailed, "cluster",
				       cluster, "connector", name, NULL);
			json_decref(st);
		}
	}
	json_decref(mon->prev_tasks);
	mon->prev_tasks = now;
}

/* ---- PromQL ---------------------------------------------------------------------- */

static size_t curl_write(char *ptr, size_t size, size_t nmemb, void *opaque)
{
	km_sb_t *sb = opaque;
	if (sb->len + size * nmemb > PROM_MAX_BODY)
		return 0; /* too big: the transfer fails */
	km_sb_add(sb, ptr, size * nmemb);
	return size * nmemb;
}

/* Evaluates query against Prometheus' /api/v1/query.  @returns 0 and *vp
 * (the largest value of the vector, or the scalar), or -1 with why. */
static int promql(const char *url, const char *query, double *vp, char *why, size_t why_size)
{
	CURL *c = curl_easy_init();
	km_sb_t body = KM_SB_INIT, full = KM_SB_INIT;
	json_t *doc = NULL;
	json_error_t jerr;
	long code = 0;
	int rc = -1;

	if (!c) {
		snprintf(why, why_size, "libcurl did not start");
		return -1;
	}
	char *q = curl_easy_escape(c, query, 0);
	km_sb_printf(&full, "%s%sapi/v1/query?query=%s", url,
		     url[strlen(url) - 1] == '/' ? "" : "/", q);
	curl_free(q);
	curl_easy_setopt(c, CURLOPT_URL, km_sb_str(&full));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)PROM_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	CURLcode cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		snprintf(why, why_size, "%s: %s", km_sb_str(&full), curl_easy_strerror(cc));
		goto done;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (!(doc = json_loadb(body.buf ? body.buf : "", body.len, 0, &jerr))) {
		snprintf(why, why_size, "HTTP %ld, not JSON: %s", code, jerr.text);
		goto done;
	}
	const char *status = json_string_value(json_object_get(doc, "status"));
	if (code != 200 || !status || strcmp(status, "success")) {
		snprintf(why, why_size, "HTTP %ld: %s", code,
			 json_string_value(json_object_get(doc, "error"))
				 ? json_string_value(json_object_get(doc, "error"))
				 : "no success");
		goto done;
	}
	json_t *data = json_object_get(doc, "data");
	const char *type = json_string_value(json_object_get(data, "resultType"));
	json_t *res = json_object_get(data, "result");
	size_t hits = 0, i;
	json_t *el;
	if (type && !strcmp(type, "scalar")) {
		const char *s = json_string_value(json_array_get(res, 1));
		if (s) {
			*vp = strtod(s, NULL);
			hits = 1;
		}
	} else if (type && !strcmp(type, "vector")) {
		json_array_foreach(res, i, el) {
			const char *s = json_string_value(json_array_get(json_object_get(el, "value"), 1));
			double v = s ? strtod(s, NULL) : NAN;
			if (isnan(v))
				continue;
			if (!hits++ || v > *vp)
				*vp = v;
		}
	} else {
		snprintf(why, why_size, "result type '%s' is not a vector or a scalar",
			 type ? type : "?");
		goto done;
	}
	if (!hits) {
		snprintf(why, why_size, "the query returned no value");
		goto done;
	}
	rc = 0;
done:
	json_decref(doc);
	km_sb_free(&body);
	km_sb_free(&full);
	curl_easy_cleanup(c);
	return rc;
}

/* ---- triggers ---------------------------------------------------------------------- */

static void evidence_add(trig_t *tr, int64_t now_ms, double v, bool unknown)
{
	if (tr->skipped + 1 < tr->stride) {
		tr->skipped++;
		return;
	}
	tr->skipped = 0;
	if (json_array_size(tr->evidence) >= EVIDENCE_MAX) {
		json_t *half = json_array();
		for (size_t i = 0; i < json_array_size(tr->evidence); i += 2)
			json_array_append(half, json_array_get(tr->evidence, i));
		json_decref(tr->evidence);
		tr->evidence = half;
		tr->stride *= 2;
	}
	json_array_append_new(tr->evidence, json_pack("[I, o]", (json_int_t)now_ms,
						      unknown ? json_null() : json_real(v)));
}

static json_t *trigger_eval(km_monitor_t *mon, trig_t *tr, int64_t now_ms)
{
	const km_plan_trigger_t *t = tr->t;
	km_metrics_t *m = mon->c.metrics;
	double v = NAN;
	bool unknown = false, fired = false;
	char why[600] = "";

	if (t->metric) {
		const char **f = km_calloc(2 * t->labels_cnt + 1, sizeof(*f));
		for (size_t i = 0; i < t->labels_cnt; i++) {
			f[2 * i] = t->labels[i].key;
			f[2 * i + 1] = t->labels[i].value;
		}
		if (!km_metrics_max(m, t->metric, f, t->labels_cnt, &v)) {
			unknown = true;
			snprintf(why, sizeof(why), "no series of %s matches the trigger's labels",
				 t->metric);
		}
		free(f);
	} else if (promql(mon->c.plan->monitoring.prometheus_url, t->query, &v, why,
			  sizeof(why))) {
		unknown = true;
	}
	/* Prometheus may answer NaN: no number is no value. */
	if (!unknown && isnan(v)) {
		unknown = true;
		snprintf(why, sizeof(why), "the value is NaN");
	}
	bool holds = unknown || km_plan_op_holds(t->op, v, t->threshold);
	if (!holds) {
		tr->pending_since = 0;
		tr->firing = false;
		json_array_clear(tr->evidence);
		tr->stride = 1;
		tr->skipped = 0;
	} else {
		if (!tr->pending_since)
			tr->pending_since = now_ms;
		evidence_add(tr, now_ms, v, unknown);
		if (!tr->firing && now_ms - tr->pending_since >= t->for_s * 1000) {
			tr->firing = true;
			fired = true;
		}
	}
	const char *state = tr->firing ? "firing" : tr->pending_since ? "pending" : "inactive";
	km_metrics_set(m, "kmigrate_trigger_value", unknown ? NAN : v, "trigger", t->name, NULL);
	km_metrics_set(m, "kmigrate_trigger_firing", tr->firing, "trigger", t->name, NULL);
	km_metrics_set(m, "kmigrate_trigger_pending", tr->pending_since && !tr->firing, "trigger",
		       t->name, NULL);
	km_metrics_set(m, "kmigrate_trigger_unknown", unknown, "trigger", t->name, NULL);
	char *src = km_monitor_trigger_expr(t);
	json_t *o = json_pack("{s:s, s:o, s:b, s:s, s:f, s:I, s:s, s:o, s:b, s:s?, s:s?, s:s, s:O, "
			      "s:s?}",
			      "name", t->name, "value", unknown ? json_null() : json_real(v),
			      "unknown", unknown, "op", km_plan_op_str(t->op), "threshold",
			      t->threshold, "for_s", (json_int_t)t->for_s, "state", state,
			      "pending_since",
			      tr->pending_since ? json_integer(tr->pending_since) : json_null(),
			      "fired", fired, "wave", t->wave, "owner", t->owner, "source", src,
			      "evidence", tr->evidence, "reason", why[0] ? why : NULL);
	free(src);
	return o;
}

/* ---- the sample ---------------------------------------------------------------------- */

/* Series a measurement owns, cleared before it measures. */
static const char *const measured[] = {
	"kmigrate_topic_high_watermark",   "kmigrate_topic_write_records_per_second",
	"kmigrate_consumer_group_lag_records", "kmigrate_replication_lag_records",
	"kmigrate_topic_authority",        "kmigrate_topic_fenced",
	"kmigrate_stale_readers",          "kmigrate_stale_reader_members",
	"kmigrate_replication_lag_seconds", "kmigrate_canary_error_ratio",
	"kmigrate_canary_authorization_failed", "kmigrate_canary_produce_latency_seconds",
	"kmigrate_connector_state",        "kmigrate_connector_task_state",
	"kmigrate_connector_tasks_failed",
	NULL};

km_err_t km_monitor_sample(km_monitor_t *mon, int64_t now_ms, json_t **samplep, char *errstr,
			   size_t errstr_size)
{
	km_metrics_t *m = mon->c.metrics;
	json_t *topics = NULL, *src_hwms = NULL, *tgt_hwms = NULL, *groups;
	json_t *errors = json_array(), *stale = json_array(), *trigs = json_array();
	json_t *totals = json_pack("{s:{}, s:n, s:n}", "group_lag", "replication_lag",
				   "replication_lag_seconds");
	int64_t t0 = km_mono_ms();
	char e[512];

	(void)errstr;
	(void)errstr_size;
	/* Re-measured in place: marked now, swept before the triggers read
	 * them, so that a series not measured this time (its subject gone, or
	 * a read that failed) is absent, never its last value, and a scrape
	 * during the sample (seconds of cluster reads) still finds the
	 * others (clear-then-set left them out meanwhile). */
	for (int i = 0; measured[i]; i++)
		km_metrics_mark(m, measured[i]);
	groups = plan_groups(mon->c.plan);
	if (scope_topics(mon, &topics, e, sizeof(e))) {
		sample_error(errors, m, "source", "topics", e);
	} else {
		if (cluster_hwms(mon->c.ks, topics, false, &src_hwms, e, sizeof(e)))
			sample_error(errors, m, "source", "high watermarks", e);
		if (cluster_hwms(mon->c.kt, topics, true, &tgt_hwms, e, sizeof(e)))
			sample_error(errors, m, "target", "high watermarks", e);
	}
	if (src_hwms) {
		topic_rates(mon, "source", src_hwms, now_ms);
		group_lags(mon, "source", mon->c.ks, groups, src_hwms, totals, errors);
		replication_lag(mon, topics, src_hwms, now_ms, totals, errors);
	}
	if (tgt_hwms) {
		topic_rates(mon, "target", tgt_hwms, now_ms);
		group_lags(mon, "target", mon->c.kt, groups, tgt_hwms, totals, errors);
	}
	mon->prev_ms = now_ms;
	if (topics)
		authority_and_fences(mon, topics, groups, stale, errors);
	canary(mon, totals, errors);
	connectors(mon, errors);
	gates(mon, now_ms, errors);
	for (int i = 0; measured[i]; i++)
		km_metrics_sweep(m, measured[i]);
	for (size_t i = 0; i < mon->ntrig; i++)
		json_array_append_new(trigs, trigger_eval(mon, &mon->trig[i], now_ms));
	km_metrics_add(m, "kmigrate_monitor_samples_total", 1, NULL);
	int64_t dur = km_mono_ms() - t0;
	km_metrics_set(m, "kmigrate_monitor_sample_duration_seconds", (double)dur / 1000.0, NULL);
	*samplep = json_pack("{s:I, s:I, s:o, s:o, s:o, s:o}", "at", (json_int_t)now_ms,
			     "duration_ms", (json_int_t)dur, "errors", errors, "triggers", trigs,
			     "stale_readers", stale, "totals", totals);
	json_decref(groups);
	json_decref(topics);
	json_decref(src_hwms);
	json_decref(tgt_hwms);
	return KM_ERR_OK;
}

/* ---- rules ------------------------------------------------------------------------- */

/* A PromQL string literal (double-quoted). */
static void promql_str(km_sb_t *sb, const char *s)
{
	km_sb_puts(sb, "\"");
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			km_sb_add(sb, "\\", 1);
		km_sb_add(sb, s, 1);
	}
	km_sb_puts(sb, "\"");
}

char *km_monitor_trigger_expr(const km_plan_trigger_t *t)
{
	km_sb_t sb = KM_SB_INIT;

	if (t->query)
		return km_strdup(t->query);
	km_sb_printf(&sb, "max(%s", t->metric);
	if (t->labels_cnt) {
		km_sb_puts(&sb, "{");
		for (size_t i = 0; i < t->labels_cnt; i++) {
			km_sb_printf(&sb, "%s%s=", i ? "," : "", t->labels[i].key);
			promql_str(&sb, t->labels[i].value);
		}
		km_sb_puts(&sb, "}");
	}
	km_sb_puts(&sb, ")");
	return km_sb_detach(&sb);
}

/* A YAML double-quoted scalar. */
static void yaml_str(km_sb_t *sb, const char *s)
{
	km_sb_puts(sb, "\"");
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			km_sb_add(sb, "\\", 1);
		if (*s == '\n')
			km_sb_puts(sb, "\\n");
		else
			km_sb_add(sb, s, 1);
	}
	km_sb_puts(sb, "\"");
}

char *km_monitor_rules(const km_plan_t *plan)
{
	km_sb_t sb = KM_SB_INIT, expr = KM_SB_INIT, text = KM_SB_INIT;

	km_sb_printf(&sb,
		     "# Prometheus alerting rules for migration '%s', generated by\n"
		     "# `kmigrate monitor --emit-rules` from the plan's rollback.triggers:\n"
		     "# regenerate them when the plan changes.  kmigrate's own metrics come\n"
		     "# from `kmigrate monitor --metrics-addr` (docs/metrics.md).  An\n"
		     "# absent value fires too, as in kmigrate monitor (unknown is never a pass).\n"
		     "groups:\n"
		     "  - name: kmigrate-%s-rollback\n"
		     "    rules:\n",
		     plan->migration, plan->migration);
	if (!plan->rollback.triggers_cnt)
		km_sb_puts(&sb, "      []\n");
	for (size_t i = 0; i < plan->rollback.triggers_cnt; i++) {
		const km_plan_trigger_t *t = &plan->rollback.triggers[i];
		char *e = km_monitor_trigger_expr(t);
		char thr[64];
		snprintf(thr, sizeof(thr), "%.17g", t->threshold);
		km_sb_reset(&expr);
		km_sb_printf(&expr, "(%s) %s %s or absent(%s)", e, km_plan_op_str(t->op), thr, e);
		km_sb_puts(&sb, "      - alert: ");
		km_sb_reset(&text);
		km_sb_printf(&text, "KmigrateRollbackTrigger_%s", t->name);
		for (char *c = text.buf; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			      (*c >= '0' && *c <= '9') || *c == '_'))
				*c = '_';
		yaml_str(&sb, km_sb_str(&text));
		km_sb_puts(&sb, "\n        expr: ");
		yaml_str(&sb, km_sb_str(&expr));
		km_sb_printf(&sb, "\n        for: %llds\n        labels:\n          severity: page\n"
			     "          migration: ",
			     (long long)t->for_s);
		yaml_str(&sb, plan->migration);
		km_sb_puts(&sb, "\n          trigger: ");
		yaml_str(&sb, t->name);
		if (t->wave) {
			km_sb_puts(&sb, "\n          wave: ");
			yaml_str(&sb, t->wave);
		}
		if (t->owner) {
			km_sb_puts(&sb, "\n          owner: ");
			yaml_str(&sb, t->owner);
		}
		km_sb_reset(&text);
		km_sb_printf(&text, "rollback trigger %s: %s %s %s for %llds", t->name, e,
			     km_plan_op_str(t->op), thr, (long long)t->for_s);
		km_sb_puts(&sb, "\n        annotations:\n          summary: ");
		yaml_str(&sb, km_sb_str(&text));
		km_sb_reset(&text);
		if (t->wave)
			km_sb_printf(&text, "kmigrate rollback -p %s --wave %s", plan->path, t->wave);
		else
			km_sb_printf(&text, "kmigrate rollback -p %s --wave WAVE", plan->path);
		km_sb_puts(&sb, "\n          rollback: ");
		yaml_str(&sb, km_sb_str(&text));
		km_sb_puts(&sb, "\n");
		free(e);
	}
	km_sb_free(&expr);
	km_sb_free(&text);
	return km_sb_detach(&sb);
}
