/*
 * monitor.h -- the stabilization watcher behind `kmigrate monitor`: samples
 * both clusters, sets the kmigrate_* metrics (lib/metrics.h) and evaluates
 * the plan's rollback triggers as Prometheus evaluates alerting rules.
 *
 * One sample measures, on both clusters: the high watermark of every
 * in-scope topic (target topics under their mapped names) and its growth
 * rate since the previous sample; the lag of every consumer group the plan
 * declares (consumer_groups and the waves' groups) on every in-scope topic
 * it committed on; the replication lag of every source partition against
 * the committed progress on the target; each topic's write authority (the
 * target's authority topic) and each wave's fence (the journal's current
 * cutover attempt); the stale readers -- a wave's groups that still have
 * members on the SOURCE after the wave's authority moved to the target;
 * the age of the oldest record not yet copied per lagging partition (read
 * on the source); a canary produced to and read back from the plan's
 * monitoring.canary_topic on the target as the canary principal (never an
 * application's topic); the state of each declared connector and its tasks
 * on each cluster with a connect_url; and, at most once a minute, each
 * gate's verdict per wave.
 *
 * Triggers: a built-in metric's value is the largest of its series that
 * match the trigger's labels; a PromQL query is sent to
 * monitoring.prometheus_url (/api/v1/query) and its value is the largest of
 * the vector (or the scalar).  No value -- a cluster that could not be
 * read, no matching series, a query that failed or returned nothing -- is
 * "unknown", and unknown counts as the condition holding.  A trigger is
 * pending from the first sample its condition holds, fires once it held
 * for its `for:` duration (immediately with for: 0), and goes back to
 * inactive the first sample it does not hold.
 *
 * What this module does not do: write the journal (the command journals
 * the samples and the firings it returns), run a rollback, print, or exit.
 *
 * @locality the calling thread; blocks on both clusters and on Prometheus.
 */
#ifndef KM_MONITOR_H
#define KM_MONITOR_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "journal.h"
#include "kafka.h"
#include "metrics.h"
#include "plan.h"

typedef struct km_monitor_conf_s {
	const km_plan_t *plan;
	km_kafka_t *ks, *kt;            /* connected (borrowed) */
	const km_kafka_endpoint_t *tgt; /* the authority topic is read with it */
	/* The source, with its password: the lag in seconds reads the oldest
	 * uncopied records with it.  NULL: no lag in seconds. */
	const km_kafka_endpoint_t *src;
	km_journal_t *jr;               /* read only (fence state, gates); may be NULL */
	km_metrics_t *metrics;          /* required (borrowed): what triggers read */
	/* Gates are evaluated at most this often; 0: 60 s; < 0: never. */
	int64_t gates_every_ms;
} km_monitor_conf_t;

typedef struct km_monitor_s km_monitor_t;

/* @returns a new monitor (conf copied, its pointers borrowed); destroy
 * with km_monitor_destroy(). */
km_monitor_t *km_monitor_new(const km_monitor_conf_t *conf);
void km_monitor_destroy(km_monitor_t *mon);

/*
 * Takes one sample at wall-clock now_ms and evaluates every trigger.
 * A cluster that cannot be read is not an error of the sample: its
 * measurements are unknown (and so are the triggers that read them), and it
 * is listed in "errors".
 * @returns KM_ERR_OK and *samplep (new):
 *   {"at", "duration_ms", "errors": [{"cluster", "what", "message"}],
 *    "triggers": [{"name", "value" (null: unknown), "unknown", "op",
 *                  "threshold", "for_s", "state": "inactive"|"pending"|"firing",
 *                  "pending_since" (ms or null), "fired": true the sample it
 *                  starts firing, "wave", "owner", "source": metric or query,
 *                  "evidence": [[at_ms, value|null], ...] (bounded at 32,
 *                  halved in resolution when full, since pending)}],
 *    "stale_readers": [{"group", "wave", "owner", "members", "clients"}],
 *    "totals": {"group_lag": {...}, "replication_lag": N|null,
 *               "replication_lag_seconds": S|null (the oldest uncopied
 *               record's age; null: unknown), "canary"?: {"topic", "as",
 *               "partitions", "error_ratio", "authorization_failures",
 *               "latency_ms", "errors": {code: true}} (only with
 *               monitoring.canary_topic)}}
 */
km_err_t km_monitor_sample(km_monitor_t *mon, int64_t now_ms, json_t **samplep, char *errstr,
			   size_t errstr_size);

/* Prometheus alerting rules equivalent to the plan's triggers, as a rules
 * file (YAML) that `promtool check rules` accepts.  @returns owned text. */
char *km_monitor_rules(const km_plan_t *plan);

/* The PromQL expression of a trigger's value (a built-in metric as
 * max(name{labels})); owned. */
char *km_monitor_trigger_expr(const km_plan_trigger_t *t);

#endif
