/*
 * metrics_catalogue.c -- the names of every metric kmigrate exports, and
 * the metrics address syntax: what the plan checks at load time.  Kept apart
 * from the registry and its HTTP server so that the plan parser (and its
 * fuzzer) link without libmicrohttpd.
 */
#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

/* The catalogue: docs/metrics.md says the same, one row each. */
const km_metric_def_t km_metrics_catalogue[] = {
	/* replicate (and monitor, from the committed progress) */
	{"kmigrate_replication_lag_records", KM_METRIC_GAUGE, "direction,topic,partition",
	 "Records in the source partition not yet copied: its high watermark minus the next "
	 "offset to copy.",
	 true},
	{"kmigrate_replication_lag_seconds", KM_METRIC_GAUGE, "direction,topic,partition",
	 "Age of the oldest record not yet copied (0 when caught up). monitor: now minus the "
	 "timestamp of the first record after the committed progress, read on the source; "
	 "replicate: an upper bound, the time since the partition's lag was last 0 (NaN until "
	 "then).",
	 true},
	{"kmigrate_replication_records_total", KM_METRIC_COUNTER, "direction",
	 "Records copied and committed by this process.", false},
	{"kmigrate_replication_bytes_total", KM_METRIC_COUNTER, "direction",
	 "Key, value and header bytes copied and committed by this process.", false},
	{"kmigrate_replication_transactions_total", KM_METRIC_COUNTER, "direction,result",
	 "Replication transactions by result (committed, aborted).", false},
	{"kmigrate_replication_drains_total", KM_METRIC_COUNTER, "direction,result",
	 "Waits for a chunk's delivery reports, by how they ended: flushed (no produce request "
	 "out and no full batch left, then a 2 ms flush), unflushed (every report came without "
	 "that moment: the last batches went by linger.ms, 1 s, so the count of requests out is "
	 "off) or bounded (2 s passed first: the target answers slowly or the count is off; "
	 "plain flushes then, during which librdkafka's broker threads may spin).",
	 false},
	{"kmigrate_replication_errors_total", KM_METRIC_COUNTER, "direction,op,code",
	 "Fetch, produce and transaction errors by librdkafka error name.", false},
	{"kmigrate_replication_tasks_owned", KM_METRIC_GAUGE, "direction",
	 "Replication tasks this process owns and runs.", false},
	{"kmigrate_replication_tasks", KM_METRIC_GAUGE, "direction",
	 "Replication tasks of the migration (partitions of its tasks topic).", false},
	{"kmigrate_replication_partitions_caught_up", KM_METRIC_GAUGE, "direction",
	 "Owned partitions that reached the source high watermark seen at start.", false},
	/* monitor: both clusters */
	{"kmigrate_consumer_group_lag_records", KM_METRIC_GAUGE, "cluster,group,topic",
	 "A consumer group's lag on a topic: the sum over its partitions of the high watermark "
	 "minus the committed offset (no committed offset: the whole partition).",
	 true},
	{"kmigrate_topic_high_watermark", KM_METRIC_GAUGE, "cluster,topic",
	 "Sum of the topic's partition high watermarks (log end offsets).", false},
	{"kmigrate_topic_write_records_per_second", KM_METRIC_GAUGE, "cluster,topic",
	 "Growth rate of the topic's high watermarks between two samples: the produce rate a "
	 "client sees (transaction markers included).",
	 true},
	{"kmigrate_topic_authority", KM_METRIC_GAUGE, "topic,wave,authority",
	 "1 for the topic's write authority (source, target or unknown) as the target's "
	 "authority topic says.",
	 false},
	{"kmigrate_topic_fenced", KM_METRIC_GAUGE, "topic,wave",
	 "1 when the wave's current cutover attempt journaled its source fence as done.", false},
	{"kmigrate_gate_verdict", KM_METRIC_GAUGE, "gate,wave",
	 "1 when the gate is GO for the wave, 0 when NO-GO (unknown is NO-GO).", false},
	{"kmigrate_stale_readers", KM_METRIC_GAUGE, "wave",
	 "Groups with members on the SOURCE consuming a topic of a wave whose authority is "
	 "the target.",
	 true},
	{"kmigrate_stale_reader_members", KM_METRIC_GAUGE, "group,wave,owner",
	 "Members on the source of a stale reader group (see kmigrate_stale_readers).", false},
	{"kmigrate_trigger_value", KM_METRIC_GAUGE, "trigger",
	 "The rollback trigger's last measured value (NaN when unknown).", false},
	{"kmigrate_trigger_firing", KM_METRIC_GAUGE, "trigger",
	 "1 when the rollback trigger fires: its condition (or unknown) held for its for: "
	 "duration.",
	 false},
	{"kmigrate_trigger_pending", KM_METRIC_GAUGE, "trigger",
	 "1 while the trigger's condition holds but not yet for its for: duration.", false},
	{"kmigrate_trigger_unknown", KM_METRIC_GAUGE, "trigger",
	 "1 when the trigger's value could not be measured (counts as its condition holding).",
	 false},
	{"kmigrate_monitor_samples_total", KM_METRIC_COUNTER, "",
	 "Samples of both clusters taken by monitor.", false},
	{"kmigrate_monitor_sample_errors_total", KM_METRIC_COUNTER, "cluster",
	 "Samples that could not read a cluster (its values are unknown until the next).", false},
	{"kmigrate_monitor_sample_duration_seconds", KM_METRIC_GAUGE, "",
	 "How long the last sample took.", false},
	/* monitor: the canary (monitoring.canary_topic on the target) */
	{"kmigrate_canary_produce_total", KM_METRIC_COUNTER, "cluster,topic",
	 "Canary records monitor tried to produce (one per partition of the canary topic per "
	 "interval).",
	 false},
	{"kmigrate_canary_produce_errors_total", KM_METRIC_COUNTER, "cluster,topic,code",
	 "Canary produces that failed, by librdkafka error name.", false},
	{"kmigrate_canary_read_errors_total", KM_METRIC_COUNTER, "cluster,topic,code",
	 "Produced canaries that could not be read back, by librdkafka error name "
	 "(_NOT_READ_BACK: another record was found at its offset).",
	 false},
	{"kmigrate_canary_authorization_failures_total", KM_METRIC_COUNTER, "cluster,topic",
	 "Canary produces and reads refused with an authorization error (topic, group, cluster "
	 "or transactional id).",
	 false},
	{"kmigrate_canary_error_ratio", KM_METRIC_GAUGE, "cluster,topic",
	 "The last interval's canaries that failed (produce refused or not read back) over "
	 "those sent, 0..1.",
	 true},
	{"kmigrate_canary_authorization_failed", KM_METRIC_GAUGE, "cluster,topic",
	 "1 when a canary of the last interval was refused with an authorization error.", true},
	{"kmigrate_canary_produce_latency_seconds", KM_METRIC_GAUGE, "cluster,topic",
	 "The last interval's largest canary produce latency (send to acks=all delivery "
	 "report).",
	 true},
	/* monitor: Kafka Connect (source/target.connect_url) */
	{"kmigrate_connector_state", KM_METRIC_GAUGE, "cluster,connector,state",
	 "1 for the connector's state (RUNNING, PAUSED, STOPPED, FAILED, UNASSIGNED), 0 for the "
	 "others.",
	 false},
	{"kmigrate_connector_task_state", KM_METRIC_GAUGE, "cluster,connector,task,state",
	 "1 for the connector task's state (RUNNING, PAUSED, STOPPED, FAILED, UNASSIGNED), 0 "
	 "for the others.",
	 false},
	{"kmigrate_connector_tasks_failed", KM_METRIC_GAUGE, "cluster,connector",
	 "The connector's tasks in the FAILED state at the last sample.", true},
	{"kmigrate_connector_task_failures_total", KM_METRIC_COUNTER, "cluster,connector,task",
	 "Transitions of a connector task to FAILED seen between two samples (restarts in "
	 "between are not seen).",
	 false},
	/* cutover */
	{"kmigrate_cutover_step_done", KM_METRIC_GAUGE, "wave,step",
	 "1 once the cutover step is journaled done (or already done) in this run.", false},
	{NULL, 0, NULL, NULL, false}};

const km_metric_def_t *km_metrics_def(const char *name)
{
	for (const km_metric_def_t *d = km_metrics_catalogue; d->name; d++)
		if (!strcmp(d->name, name))
			return d;
	return NULL;
}

/* Splits "host:port" / "[v6]:port" into host and port.  @returns 0 when
 * well-formed. */
int km_metrics_addr_split(const char *addr, char *host, size_t hsize, char *port, size_t psize)
{
	const char *colon;
	size_t hl;

	if (!addr || !*addr)
		return -1;
	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (!rb || rb[1] != ':')
			return -1;
		hl = (size_t)(rb - addr - 1);
		addr++;
		colon = rb + 1;
	} else {
		if (!(colon = strrchr(addr, ':')) || strchr(addr, ':') != colon)
			return -1;
		hl = (size_t)(colon - addr);
	}
	if (!hl || hl >= hsize || strlen(colon + 1) >= psize)
		return -1;
	memcpy(host, addr, hl);
	host[hl] = '\0';
	snprintf(port, psize, "%s", colon + 1);
	int64_t p;
	if (km_parse_i64(port, &p) || p < 1 || p > 65535)
		return -1;
	return 0;
}

int km_metrics_addr_check(const char *addr)
{
	char host[256], port[16];
	return km_metrics_addr_split(addr, host, sizeof(host), port, sizeof(port));
}

