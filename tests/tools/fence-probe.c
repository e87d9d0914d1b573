/*
 * fence-probe -- proves (or disproves) the topic-configuration fence on a
 * real cluster: `max.message.bytes=0` set on one topic with
 * IncrementalAlterConfigs.  Research tool for the cutover (issue 10), not
 * part of kmigrate; see docs/internals/fences.md for what it found.
 *
 *   KM_FENCE=127.0.0.1:19232 fence-probe [LABEL]
 *
 * Optional security settings come from KM_FENCE_PROTOCOL, _MECHANISM, _USER,
 * _PASSWORD and _CA (the test kit's convention).  Two phases, each on a
 * fresh 2-partition topic with committed data (plain and transactional):
 *  1. drained: no transaction open at fence time.  Every kind of librdkafka
 *     produce must be refused at once and non-retriably, nothing appended,
 *     readers read everything, the exact inverse restores writes.
 *  2. open transactions at fence time (the hazard): their markers are
 *     refused, the LSO stays stuck even after the undo, and a transactional
 *     id that wrote while fenced is wedged.  These checks PASS when the
 *     hazard is there; the cluster must be restarted or wiped after.
 *  3. with KM_FENCE_USER2 / KM_FENCE_USER2_PASSWORD (a secure cluster whose
 *     KM_FENCE_USER is a super user): the ACL fence, DENY WRITE on the
 *     topic and on a transactional id for that ordinary user.
 * KM_FENCE_PHASES (e.g. "drained,acl") runs a subset.
 * It prints one PASS/FAIL line per check, INFO lines with what it measured,
 * and `N passed, N failed`; exit 1 when a check failed.
 *
 * A check's expectation is what we rely on for the cutover; a FAIL means the
 * broker behaves differently from what fences.md says and the doc (and the
 * cutover's use of this fence) must be revisited.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tk.h"

#define PARTS 2
#define WAIT_MS 30000

static tk_cluster_t clu;   /* the admin: creates, configures, reads */
static tk_cluster_t alice; /* the ACL phase's ordinary user */
static const tk_cluster_t *as = &clu; /* whom producers connect as */
static const char *label = "";
static char topic[128];
static int npass, nfail;

static void check(int ok, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void check(int ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("%s %s %s: ", ok ? "PASS" : "FAIL", label, name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (ok)
		npass++;
	else
		nfail++;
}

static void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void info(const char *fmt, ...)
{
	va_list ap;

	printf("INFO %s ", label);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* ---- producing and observing each delivery --------------------------- */

/* What the delivery report of the last message said. */
typedef struct dr_s {
	int done;
	rd_kafka_resp_err_t err;
	rd_kafka_msg_status_t status;
} dr_t;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	dr_t *d = m->_private;

	(void)rk;
	(void)opaque;
	if (!d)
		return;
	d->err = m->err;
	d->status = rd_kafka_message_status(m);
	d->done = 1;
}

/* A producer with extra settings (key, value, ..., NULL). */
static rd_kafka_t *producer(const char *first, ...)
{
	rd_kafka_conf_t *cf = tk_conf(as);
	rd_kafka_t *rk;
	char err[256];
	va_list ap;

	tk_conf_set(cf, "linger.ms", "0");
	/* Long enough that a refusal that librdkafka retried would show up as
	 * _MSG_TIMED_OUT after 20 s, not as the broker's own error. */
	tk_conf_set(cf, "message.timeout.ms", "20000");
	rd_kafka_conf_set_dr_msg_cb(cf, dr_cb);
	va_start(ap, first);
	for (const char *k = first; k; k = va_arg(ap, const char *))
		tk_conf_set(cf, k, va_arg(ap, const char *));
	va_end(ap);
	if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, cf, err, sizeof(err))))
		tk_fail("producer: %s", err);
	return rk;
}

/* A transactional producer with an id unique to this run. */
static char run_id[64];
static rd_kafka_t *txn_producer_t(const char *name, const char *timeout_ms)
{
	char id[160];

	snprintf(id, sizeof(id), "fence-probe-%s-%s", run_id, name);
	rd_kafka_t *rk = producer("transactional.id", id, "transaction.timeout.ms", timeout_ms, NULL);
	rd_kafka_error_t *e = rd_kafka_init_transactions(rk, WAIT_MS);

	if (e)
		tk_fail("init_transactions %s: %s", id, rd_kafka_error_string(e));
	return rk;
}

static rd_kafka_t *txn_producer(const char *name)
{
	return txn_producer_t(name, "120000");
}

/* Produces one record and waits for its delivery report.  *ms gets the
 * time it took. */
static rd_kafka_resp_err_t produce1(rd_kafka_t *rk, int partition, const char *key,
				    const void *value, size_t len, dr_t *d, int64_t *ms)
{
	int64_t t0 = tk_mono_ms();
	rd_kafka_resp_err_t err;

	memset(d, 0, sizeof(*d));
	err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
				RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
				RD_KAFKA_V_VALUE((void *)value, len),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(d),
				RD_KAFKA_V_END);
	if (err)
		tk_fail("producev: %s", rd_kafka_err2str(err));
	while (!d->done && tk_mono_ms() - t0 < 60000)
		rd_kafka_poll(rk, 100);
	if (ms)
		*ms = tk_mono_ms() - t0;
	if (!d->done)
		tk_fail("no delivery report within 60 s");
	return d->err;
}

static const char *status_name(rd_kafka_msg_status_t s)
{
	return s == RD_KAFKA_MSG_STATUS_NOT_PERSISTED	   ? "NOT_PERSISTED"
	       : s == RD_KAFKA_MSG_STATUS_PERSISTED	   ? "PERSISTED"
							   : "POSSIBLY_PERSISTED";
}

/* ---- admin helpers ------------------------------------------------------ */

static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, const char *what)
{
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, WAIT_MS);

	if (!ev)
		tk_fail("%s: no result", what);
	if (rd_kafka_event_error(ev))
		tk_fail("%s: %s", what, rd_kafka_event_error_string(ev));
	return ev;
}

/* max.message.bytes of the topic and where it comes from; value owned. */
static char *describe_mmb(rd_kafka_ConfigSource_t *source)
{
	rd_kafka_t *rk = tk_admin(&clu);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
	char *out = NULL;
	size_t n, m;

	rd_kafka_DescribeConfigs(rk, &res, 1, NULL, q);
	rd_kafka_event_t *ev = admin_wait(q, "DescribeConfigs");
	const rd_kafka_ConfigResource_t **rs =
		rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
	if (n != 1 || rd_kafka_ConfigResource_error(rs[0]))
		tk_fail("DescribeConfigs %s failed", topic);
	const rd_kafka_ConfigEntry_t **e = rd_kafka_ConfigResource_configs(rs[0], &m);
	for (size_t i = 0; i < m; i++)
		if (!strcmp(rd_kafka_ConfigEntry_name(e[i]), "max.message.bytes")) {
			out = strdup(rd_kafka_ConfigEntry_value(e[i]));
			*source = rd_kafka_ConfigEntry_source(e[i]);
		}
	rd_kafka_event_destroy(ev);
	rd_kafka_ConfigResource_destroy(res);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
	if (!out)
		tk_fail("DescribeConfigs %s: no max.message.bytes", topic);
	return out;
}

/* IncrementalAlterConfigs SET (value) or DELETE (value NULL) of
 * max.message.bytes.  @returns the per-resource error text or NULL. */
static char *alter_mmb(const char *value)
{
	rd_kafka_t *rk = tk_admin(&clu);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
	rd_kafka_error_t *e = rd_kafka_ConfigResource_add_incremental_config(
		res, "max.message.bytes",
		value ? RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET : RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE, value);
	char *out = NULL;
	size_t n;

	if (e)
		tk_fail("config: %s", rd_kafka_error_string(e));
	rd_kafka_IncrementalAlterConfigs(rk, &res, 1, NULL, q);
	rd_kafka_event_t *ev = admin_wait(q, "IncrementalAlterConfigs");
	const rd_kafka_ConfigResource_t **rs = rd_kafka_IncrementalAlterConfigs_result_resources(
		rd_kafka_event_IncrementalAlterConfigs_result(ev), &n);
	if (n == 1 && rd_kafka_ConfigResource_error(rs[0]))
		out = strdup(rd_kafka_ConfigResource_error_string(rs[0]));
	rd_kafka_event_destroy(ev);
	rd_kafka_ConfigResource_destroy(res);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
	return out;
}

/* End offset of a partition: the high watermark (read_uncommitted) or the
 * last stable offset (read_committed), by ListOffsets LATEST. */
static int64_t end_offset(int partition, int committed)
{
	rd_kafka_t *rk = tk_admin(&clu);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
	rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_LISTOFFSETS);
	int64_t off = -1;
	size_t n;

	rd_kafka_topic_partition_list_add(tp, topic, partition)->offset = RD_KAFKA_OFFSET_SPEC_LATEST;
	rd_kafka_error_t *e = rd_kafka_AdminOptions_set_isolation_level(
		o, committed ? RD_KAFKA_ISOLATION_LEVEL_READ_COMMITTED
			     : RD_KAFKA_ISOLATION_LEVEL_READ_UNCOMMITTED);
	if (e)
		tk_fail("isolation level: %s", rd_kafka_error_string(e));
	rd_kafka_ListOffsets(rk, tp, o, q);
	rd_kafka_event_t *ev = admin_wait(q, "ListOffsets");
	const rd_kafka_ListOffsetsResultInfo_t **ri =
		rd_kafka_ListOffsets_result_infos(rd_kafka_event_ListOffsets_result(ev), &n);
	if (n == 1) {
		const rd_kafka_topic_partition_t *r = rd_kafka_ListOffsetsResultInfo_topic_partition(ri[0]);
		if (!r->err)
			off = r->offset;
	}
	rd_kafka_event_destroy(ev);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_topic_partition_list_destroy(tp);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
	return off;
}

static int64_t total_end(int committed)
{
	int64_t sum = 0;

	for (int p = 0; p < PARTS; p++)
		sum += end_offset(p, committed);
	return sum;
}

/* Waits until LSO == HWM on every partition. @returns ms waited, -1 when
 * it did not happen within WAIT_MS. */
static int64_t wait_stable(void)
{
	int64_t t0 = tk_mono_ms();

	while (tk_mono_ms() - t0 < WAIT_MS) {
		int stable = 1;
		for (int p = 0; p < PARTS && stable; p++)
			stable = end_offset(p, 1) == end_offset(p, 0);
		if (stable)
			return tk_mono_ms() - t0;
		usleep(250 * 1000);
	}
	return -1;
}

static size_t count_records(int committed)
{
	size_t n = 0;

	for (int p = 0; p < PARTS; p++) {
		tk_digests_t d;
		tk_digest_partition(&clu, topic, p, committed, &d);
		n += d.n;
		tk_digests_free(&d);
	}
	return n;
}

/* ---- the experiment ------------------------------------------------------ */

/* One kind of producer tried against the fenced topic. */
typedef struct variant_s {
	const char *name;
	const char *k1, *v1, *k2, *v2, *k3, *v3;
	const char *key;   /* NULL = null key */
	const char *value; /* NULL = null value (tombstone) */
} variant_t;

static const variant_t variants[] = {
	{"plain acks=1", "enable.idempotence", "false", "acks", "1", NULL, NULL, "k", "v"},
	{"plain acks=all retries", "enable.idempotence", "false", "acks", "all", "retries", "5", "k",
	 "v"},
	{"idempotent acks=all", "enable.idempotence", "true", "acks", "all", NULL, NULL, "k", "v"},
	{"idempotent lz4", "enable.idempotence", "true", "compression.type", "lz4", NULL, NULL, "k",
	 "v"},
	{"idempotent zstd", "enable.idempotence", "true", "compression.type", "zstd", NULL, NULL, "k",
	 "v"},
	{"idempotent gzip", "enable.idempotence", "true", "compression.type", "gzip", NULL, NULL, "k",
	 "v"},
	{"idempotent snappy", "enable.idempotence", "true", "compression.type", "snappy", NULL, NULL,
	 "k", "v"},
	{"idempotent null key empty value", "enable.idempotence", "true", NULL, NULL, NULL, NULL, NULL,
	 ""},
	{"idempotent null key null value", "enable.idempotence", "true", NULL, NULL, NULL, NULL, NULL,
	 NULL},
};

static void seed(void)
{
	rd_kafka_t *rk = producer("enable.idempotence", "true", NULL);
	rd_kafka_t *tx = txn_producer("seed");
	dr_t d;
	rd_kafka_error_t *e;

	for (int p = 0; p < PARTS; p++)
		for (int i = 0; i < 5; i++)
			if (produce1(rk, p, "seed", "v", 1, &d, NULL))
				tk_fail("seeding %s[%d]: %s", topic, p, rd_kafka_err2str(d.err));
	/* A committed transaction too, so the log already holds control
	 * batches before the fence. */
	if ((e = rd_kafka_begin_transaction(tx)))
		tk_fail("begin: %s", rd_kafka_error_string(e));
	for (int p = 0; p < PARTS; p++)
		if (produce1(tx, p, "seed-txn", "v", 1, &d, NULL))
			tk_fail("seeding txn: %s", rd_kafka_err2str(d.err));
	if ((e = rd_kafka_commit_transaction(tx, WAIT_MS)))
		tk_fail("commit: %s", rd_kafka_error_string(e));
	rd_kafka_destroy(tx);
	rd_kafka_destroy(rk);
	/* The commit's markers are written after EndTxn returns: wait for
	 * them so that what follows starts from a stable log. */
	if (wait_stable() < 0)
		tk_fail("the seed transaction's markers did not land on %s", topic);
}

/* Begins a transaction and writes n records to every partition, leaving it
 * open. */
static rd_kafka_t *open_txn(const char *name, int n)
{
	rd_kafka_t *tx = txn_producer(name);
	rd_kafka_error_t *e;
	dr_t d;

	if ((e = rd_kafka_begin_transaction(tx)))
		tk_fail("begin: %s", rd_kafka_error_string(e));
	for (int p = 0; p < PARTS; p++)
		for (int i = 0; i < n; i++)
			if (produce1(tx, p, name, "open", 4, &d, NULL))
				tk_fail("open txn: %s", rd_kafka_err2str(d.err));
	return tx;
}

static void new_topic(const char *what)
{
	snprintf(topic, sizeof(topic), "fence-probe-%s-%s", what, run_id);
	tk_create_topic(&clu, topic, PARTS, NULL);
	info("topic %s", topic);
	seed();
}

/* Sets the fence and waits until a canary is refused on every partition:
 * the config reaches the partition's log asynchronously (metadata log ->
 * broker), so the cutover must prove it the same way.  *src0 and the
 * returned value (owned) are the state before, for the exact inverse. */
static char *fence(rd_kafka_ConfigSource_t *src0)
{
	rd_kafka_ConfigSource_t src;
	char *prev = describe_mmb(src0), *err, *now;
	dr_t d;

	info("max.message.bytes before: %s (source %s)", prev, rd_kafka_ConfigSource_name(*src0));
	err = alter_mmb("-1");
	check(err != NULL, "max.message.bytes=-1 is refused", "%s", err ? err : "accepted");
	free(err);
	err = alter_mmb("0");
	check(!err, "fence max.message.bytes=0 accepted", "%s", err ? err : "ok");
	free(err);
	now = describe_mmb(&src);
	check(!strcmp(now, "0") && src == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG,
	      "fence is a topic override", "value %s, source %s", now,
	      rd_kafka_ConfigSource_name(src));
	free(now);

	rd_kafka_t *rk = producer("enable.idempotence", "false", "acks", "all", NULL);
	int64_t t0 = tk_mono_ms(), took = -1;
	for (int p = 0; p < PARTS; p++) {
		took = -1;
		while (tk_mono_ms() - t0 < WAIT_MS) {
			if (produce1(rk, p, "canary", "c", 1, &d, NULL) ==
			    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
				took = tk_mono_ms() - t0;
				break;
			}
			info("canary to partition %d: %s: fence not in force yet", p,
			     rd_kafka_err2name(d.err));
			usleep(100 * 1000);
		}
	}
	check(took >= 0, "canary refused on every partition", "after %lld ms", (long long)took);
	rd_kafka_destroy(rk);
	return prev;
}

/* The exact inverse: DELETE the override when there was none before,
 * otherwise SET the previous value back. */
static void undo(char *prev, rd_kafka_ConfigSource_t src0)
{
	rd_kafka_ConfigSource_t src;
	char *err = alter_mmb(src0 == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG ? prev : NULL);
	char *now = describe_mmb(&src);

	check(!err && !strcmp(now, prev) && src == src0, "undo restores the previous config",
	      "%s; value %s source %s (before: %s %s)", err ? err : "ok", now,
	      rd_kafka_ConfigSource_name(src), prev, rd_kafka_ConfigSource_name(src0));
	free(err);
	free(now);
	free(prev);
}

/* Phase 1, the way the cutover may use the fence: the topic is drained (no
 * open transaction) when it is fenced and no transactional producer writes
 * while it is. */
static void phase_drained(void)
{
	rd_kafka_ConfigSource_t src0;
	dr_t d;
	int64_t ms;

	new_topic("drained");
	ms = wait_stable();
	int64_t hwm0 = total_end(0);
	check(ms >= 0, "precondition: no open transaction (LSO = HWM)", "HWM sum %lld",
	      (long long)hwm0);
	size_t n0 = count_records(1);
	char *prev = fence(&src0);
	hwm0 = total_end(0); /* a canary that got in before the fence counts */

	/* Every kind of producer: refused at once with the broker's
	 * MESSAGE_TOO_LARGE, never retried into a timeout, nothing
	 * appended, and the idempotent producer stays usable. */
	rd_kafka_t *idem_kept = NULL;
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		const variant_t *v = &variants[i];
		rd_kafka_t *rk = producer(v->k1, v->v1, v->k2, v->v2, v->k3, v->v3, NULL);
		char fatal[256];
		int all = 1;
		for (int p = 0; p < PARTS; p++) {
			produce1(rk, p, v->key, v->value, v->value ? strlen(v->value) : 0, &d, &ms);
			all = all && d.err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE &&
			      d.status == RD_KAFKA_MSG_STATUS_NOT_PERSISTED && ms < 10000;
		}
		if (!rd_kafka_fatal_error(rk, fatal, sizeof(fatal)))
			fatal[0] = '\0';
		check(all && !fatal[0], v->name, "%s (%s), status %s, %lld ms, fatal: %s",
		      rd_kafka_err2name(d.err), rd_kafka_err2str(d.err), status_name(d.status),
		      (long long)ms, fatal[0] ? fatal : "no");
		if (!strcmp(v->name, "idempotent acks=all"))
			idem_kept = rk;
		else
			rd_kafka_destroy(rk);
	}
	int64_t hwm1 = total_end(0);
	check(hwm1 == hwm0, "nothing appended while fenced", "HWM sum %lld -> %lld",
	      (long long)hwm0, (long long)hwm1);
	size_t rc = count_records(1), ru = count_records(0);
	check(rc == n0 && ru == n0, "readers from the beginning read everything while fenced",
	      "read_committed %zu, read_uncommitted %zu (want %zu)", rc, ru, n0);

	undo(prev, src0);
	int64_t t1 = tk_mono_ms();
	do
		produce1(idem_kept, 0, "after", "v", 1, &d, NULL);
	while (d.err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && tk_mono_ms() - t1 < WAIT_MS &&
	       (usleep(100 * 1000), 1));
	char fatal[256];
	rd_kafka_resp_err_t fe = rd_kafka_fatal_error(idem_kept, fatal, sizeof(fatal));
	check(!d.err && !fe, "the refused idempotent producer writes again after the undo",
	      "%s after %lld ms; fatal: %s", rd_kafka_err2name(d.err),
	      (long long)(tk_mono_ms() - t1), fe ? fatal : "no");
	rd_kafka_destroy(idem_kept);

	rd_kafka_t *tx = txn_producer("after-undo");
	rd_kafka_error_t *e = rd_kafka_begin_transaction(tx);
	if (e)
		tk_fail("begin: %s", rd_kafka_error_string(e));
	produce1(tx, 1, "after", "v", 1, &d, NULL);
	e = rd_kafka_commit_transaction(tx, WAIT_MS);
	ms = wait_stable();
	check(!d.err && !e && ms >= 0, "a transactional producer commits after the undo",
	      "%s; commit %s; LSO = HWM after %lld ms", rd_kafka_err2name(d.err),
	      e ? rd_kafka_error_string(e) : "ok", (long long)ms);
	if (e)
		rd_kafka_error_destroy(e);
	rd_kafka_destroy(tx);
	tk_delete_topic(&clu, topic);
}

/* Phase 2, the hazard: transactions open when the fence lands.  Their
 * commit/abort markers are control batches that the partition leader
 * checks against max.message.bytes like any batch, so the coordinator's
 * WriteTxnMarkers gets MESSAGE_TOO_LARGE, which it treats as a fatal
 * IllegalStateException and never retries.  Each check below PASSES when
 * the hazard is there as documented in fences.md. */
static void phase_open_txn(void)
{
	rd_kafka_ConfigSource_t src0;
	rd_kafka_error_t *e;
	dr_t d;
	int64_t ms;

	new_topic("opentxn");
	size_t n0 = count_records(1);
	rd_kafka_t *tx_commit = open_txn("open-commit", 3);
	rd_kafka_t *tx_abort = open_txn("open-abort", 2);
	int64_t hwm0 = total_end(0), lso0 = total_end(1);
	info("open transactions: HWM sum %lld, LSO sum %lld", (long long)hwm0, (long long)lso0);
	char *prev = fence(&src0);
	hwm0 = total_end(0);

	/* A transaction begun while fenced: AddPartitionsToTxn is not
	 * subject to the config, the produce is refused (abortable), the
	 * abort "succeeds" for the client, but its marker is refused too. */
	rd_kafka_t *tx_new = txn_producer("fenced-new");
	if ((e = rd_kafka_begin_transaction(tx_new)))
		tk_fail("begin: %s", rd_kafka_error_string(e));
	produce1(tx_new, 0, "k", "v", 1, &d, &ms);
	rd_kafka_error_t *ce = rd_kafka_commit_transaction(tx_new, WAIT_MS);
	check(d.err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && ce &&
		      rd_kafka_error_txn_requires_abort(ce) && !rd_kafka_error_is_fatal(ce),
	      "transactional produce while fenced is refused, abortable",
	      "record %s in %lld ms; commit: %s", rd_kafka_err2name(d.err), (long long)ms,
	      ce ? rd_kafka_error_string(ce) : "succeeded");
	if (ce)
		rd_kafka_error_destroy(ce);
	e = rd_kafka_abort_transaction(tx_new, WAIT_MS);
	info("abort of the refused transaction: %s", e ? rd_kafka_error_string(e) : "ok");
	if (e)
		rd_kafka_error_destroy(e);
	rd_kafka_destroy(tx_new);

	/* The open transactions: EndTxn only writes PREPARE_* to the
	 * transaction log, so the client sees success either way. */
	e = rd_kafka_commit_transaction(tx_commit, WAIT_MS);
	info("commit of the transaction open at fence time: %s",
	     e ? rd_kafka_error_string(e) : "ok for the client");
	if (e)
		rd_kafka_error_destroy(e);
	e = rd_kafka_abort_transaction(tx_abort, WAIT_MS);
	info("abort of the transaction open at fence time: %s",
	     e ? rd_kafka_error_string(e) : "ok for the client");
	if (e)
		rd_kafka_error_destroy(e);
	sleep(5);
	int64_t hwm1 = total_end(0), lso1 = total_end(1);
	check(hwm1 == hwm0 && lso1 < hwm1,
	      "HAZARD: markers of transactions ended while fenced are refused",
	      "5 s after commit/abort: HWM sum %lld -> %lld, LSO sum %lld (stuck below HWM)",
	      (long long)hwm0, (long long)hwm1, (long long)lso1);
	size_t rc = count_records(1), ru = count_records(0);
	check(rc == n0 && ru == n0 + 5 * PARTS,
	      "HAZARD: read_committed readers stop at the stuck LSO",
	      "read_committed %zu (committed before: %zu), read_uncommitted %zu", rc, n0, ru);

	undo(prev, src0);
	sleep(5);
	int64_t lso2 = total_end(1), hwm2 = total_end(0);
	check(lso2 < hwm2, "HAZARD: undoing the fence does not complete them",
	      "5 s after the undo: HWM sum %lld, LSO sum %lld: the coordinator does not "
	      "retry; a coordinator reload (broker restart, __transaction_state leader "
	      "change) does", (long long)hwm2, (long long)lso2);
	char id[160];
	snprintf(id, sizeof(id), "fence-probe-%s-fenced-new", run_id);
	rd_kafka_t *rk = producer("transactional.id", id, NULL);
	e = rd_kafka_init_transactions(rk, 5000);
	check(e != NULL, "HAZARD: the transactional id that wrote while fenced is wedged",
	      "init_transactions after the undo: %s", e ? rd_kafka_error_string(e) : "ok");
	if (e)
		rd_kafka_error_destroy(e);
	rd_kafka_destroy(rk);
	rd_kafka_destroy(tx_commit);
	rd_kafka_destroy(tx_abort);
	/* The topic stays: its stuck transactions are evidence; the wrapper
	 * wipes the cluster. */
}

/* ---- phase 3: the ACL fence (needs KM_FENCE_USER2 / _USER2_PASSWORD) ---- */

/* DeleteAcls of exactly one binding (the fence's inverse). */
static void delete_acl(rd_kafka_ResourceType_t rt, const char *name, rd_kafka_AclOperation_t op,
		       rd_kafka_AclPermissionType_t perm, const char *principal)
{
	rd_kafka_t *rk = tk_admin(&clu);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	char err[256];
	rd_kafka_AclBindingFilter_t *f = rd_kafka_AclBindingFilter_new(
		rt, name, RD_KAFKA_RESOURCE_PATTERN_LITERAL, principal, "*", op, perm, err,
		sizeof(err));

	if (!f)
		tk_fail("acl filter: %s", err);
	rd_kafka_DeleteAcls(rk, &f, 1, NULL, q);
	rd_kafka_event_destroy(admin_wait(q, "DeleteAcls"));
	rd_kafka_AclBinding_destroy(f);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

static void allow(rd_kafka_ResourceType_t rt, const char *name, rd_kafka_AclOperation_t op)
{
	tk_acl(&clu, rt, name, RD_KAFKA_RESOURCE_PATTERN_LITERAL, "User:alice", "*", op,
	       RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW);
}

/* Produces as alice until the produce's error is `want` (ACLs reach the
 * broker asynchronously). @returns ms waited, -1 on timeout. */
static int64_t until(rd_kafka_t *rk, rd_kafka_resp_err_t want)
{
	int64_t t0 = tk_mono_ms();
	dr_t d;

	while (tk_mono_ms() - t0 < WAIT_MS) {
		if (produce1(rk, 0, "canary", "c", 1, &d, NULL) == want)
			return tk_mono_ms() - t0;
		usleep(200 * 1000);
	}
	return -1;
}

static void phase_acl(void)
{
	char id_commit[160], id_denied[160];
	rd_kafka_error_t *e;
	dr_t d;
	int64_t ms;

	new_topic("acl");
	snprintf(id_commit, sizeof(id_commit), "fence-probe-%s-alice-commit", run_id);
	snprintf(id_denied, sizeof(id_denied), "fence-probe-%s-alice-denied", run_id);
	allow(RD_KAFKA_RESOURCE_TOPIC, topic, RD_KAFKA_ACL_OPERATION_WRITE);
	allow(RD_KAFKA_RESOURCE_TOPIC, topic, RD_KAFKA_ACL_OPERATION_DESCRIBE);
	allow(RD_KAFKA_RESOURCE_TRANSACTIONAL_ID, id_commit, RD_KAFKA_ACL_OPERATION_WRITE);
	allow(RD_KAFKA_RESOURCE_TRANSACTIONAL_ID, id_denied, RD_KAFKA_ACL_OPERATION_WRITE);

	as = &alice;
	rd_kafka_t *idem = producer("enable.idempotence", "true", "acks", "all", NULL);
	ms = until(idem, RD_KAFKA_RESP_ERR_NO_ERROR);
	check(ms >= 0, "alice can write with ALLOW WRITE", "after %lld ms", (long long)ms);
	rd_kafka_t *tx_commit = open_txn("alice-commit", 3);
	/* Short timeout: once its EndTxn is denied, the coordinator aborts
	 * it when this expires. */
	rd_kafka_t *tx_denied = txn_producer_t("alice-denied", "20000");
	if ((e = rd_kafka_begin_transaction(tx_denied)))
		tk_fail("begin: %s", rd_kafka_error_string(e));
	for (int p = 0; p < PARTS; p++)
		if (produce1(tx_denied, p, "denied", "v", 1, &d, NULL))
			tk_fail("alice txn: %s", rd_kafka_err2str(d.err));
	as = &clu;
	int64_t hwm0 = total_end(0);
	info("alice's open transactions: HWM sum %lld, LSO sum %lld", (long long)hwm0,
	     (long long)total_end(1));

	/* The fence: DENY WRITE on the topic for alice (her ALLOW stays,
	 * DENY wins). */
	tk_acl(&clu, RD_KAFKA_RESOURCE_TOPIC, topic, RD_KAFKA_RESOURCE_PATTERN_LITERAL,
	       "User:alice", "*", RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_DENY);
	as = &alice;
	rd_kafka_t *canary = producer("enable.idempotence", "false", NULL);
	ms = until(canary, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
	check(ms >= 0, "DENY WRITE refuses alice's canary", "TOPIC_AUTHORIZATION_FAILED after %lld ms",
	      (long long)ms);
	rd_kafka_destroy(canary);

	char fatal[256];
	produce1(idem, 1, "k", "v", 1, &d, &ms);
	rd_kafka_resp_err_t fe = rd_kafka_fatal_error(idem, fatal, sizeof(fatal));
	check(d.err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
	      "alice's running idempotent producer is refused", "%s, status %s, %lld ms, fatal: %s",
	      rd_kafka_err2name(d.err), status_name(d.status), (long long)ms, fe ? fatal : "no");
	rd_kafka_t *fresh = producer("enable.idempotence", "true", "acks", "all", NULL);
	produce1(fresh, 1, "k", "v", 1, &d, &ms);
	fe = rd_kafka_fatal_error(fresh, fatal, sizeof(fatal));
	/* Since Kafka 3.0 (KIP-679) an idempotent producer's InitProducerId
	 * needs WRITE on some topic (or IDEMPOTENT_WRITE on the cluster): a
	 * principal whose only WRITE is denied cannot even start one, and
	 * librdkafka makes that CLUSTER_AUTHORIZATION_FAILED fatal. */
	check(d.err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
		      fe == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED,
	      "alice's new idempotent producer is refused", "%s, status %s, %lld ms, fatal: %s",
	      rd_kafka_err2name(d.err), status_name(d.status), (long long)ms, fe ? fatal : "no");
	rd_kafka_destroy(fresh);

	/* Her open transaction still commits: EndTxn needs WRITE on the
	 * transactional id only, and the markers are written by the
	 * coordinator as the broker. */
	int64_t t0 = tk_mono_ms();
	e = rd_kafka_commit_transaction(tx_commit, WAIT_MS);
	as = &clu;
	/* The markers land after EndTxn returns: wait for them. */
	int64_t hwm1 = total_end(0);
	while (hwm1 < hwm0 + PARTS && tk_mono_ms() - t0 < WAIT_MS) {
		usleep(200 * 1000);
		hwm1 = total_end(0);
	}
	check(!e && hwm1 == hwm0 + PARTS, "alice's open transaction still commits (topic DENY)",
	      "%s in %lld ms, markers: HWM sum %lld -> %lld", e ? rd_kafka_error_string(e) : "ok",
	      (long long)(tk_mono_ms() - t0), (long long)hwm0, (long long)hwm1);
	if (e)
		rd_kafka_error_destroy(e);

	/* The same producer (its transactional id still allowed) begins a new
	 * transaction: AddPartitionsToTxn needs WRITE on the topic. */
	as = &alice;
	if ((e = rd_kafka_begin_transaction(tx_commit)))
		tk_fail("begin: %s", rd_kafka_error_string(e));
	produce1(tx_commit, 0, "k", "v", 1, &d, &ms);
	e = rd_kafka_commit_transaction(tx_commit, WAIT_MS);
	/* AddPartitionsToTxn is refused first: librdkafka purges the queued
	 * record (_PURGE_QUEUE) and makes the transaction abortable. */
	check(e && rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED &&
		      (d.err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
		       d.err == RD_KAFKA_RESP_ERR__PURGE_QUEUE),
	      "alice's new transaction is refused", "record %s in %lld ms; commit: %s (%s%s)",
	      rd_kafka_err2name(d.err), (long long)ms, e ? rd_kafka_error_string(e) : "succeeded",
	      e && rd_kafka_error_is_fatal(e) ? "fatal" : "",
	      e && rd_kafka_error_txn_requires_abort(e) ? "abortable" : "");
	if (e) {
		int abortable = rd_kafka_error_txn_requires_abort(e);
		rd_kafka_error_destroy(e);
		if (abortable) {
			e = rd_kafka_abort_transaction(tx_commit, WAIT_MS);
			info("abort of that transaction: %s",
			     e ? rd_kafka_error_string(e) : "ok");
			if (e)
				rd_kafka_error_destroy(e);
		}
	}
	as = &clu;
	hwm1 = total_end(0);

	/* The super user is not stopped by the ACL fence. */
	rd_kafka_t *su = producer("enable.idempotence", "true", NULL);
	produce1(su, 0, "admin", "v", 1, &d, NULL);
	check(!d.err, "the super user still writes through the ACL fence", "%s",
	      rd_kafka_err2name(d.err));
	rd_kafka_destroy(su);

	/* DENY WRITE on her other transactional id: EndTxn is refused; the
	 * coordinator aborts the open transaction when its timeout (20 s)
	 * expires. */
	tk_acl(&clu, RD_KAFKA_RESOURCE_TRANSACTIONAL_ID, id_denied,
	       RD_KAFKA_RESOURCE_PATTERN_LITERAL, "User:alice", "*", RD_KAFKA_ACL_OPERATION_WRITE,
	       RD_KAFKA_ACL_PERMISSION_TYPE_DENY);
	sleep(2); /* no canary for EndTxn: give the ACL time to reach the broker */
	t0 = tk_mono_ms();
	e = rd_kafka_commit_transaction(tx_denied, WAIT_MS);
	check(e != NULL, "DENY WRITE on the transactional id refuses EndTxn", "%s (%s%s%s)",
	      e ? rd_kafka_error_string(e) : "committed",
	      e ? rd_kafka_err2name(rd_kafka_error_code(e)) : "",
	      e && rd_kafka_error_is_fatal(e) ? ", fatal" : "",
	      e && rd_kafka_error_txn_requires_abort(e) ? ", abortable" : "");
	if (e)
		rd_kafka_error_destroy(e);
	t0 = tk_mono_ms();
	int64_t waited = -1;
	while (tk_mono_ms() - t0 < 120000) {
		if (total_end(1) == total_end(0)) {
			waited = tk_mono_ms() - t0;
			break;
		}
		usleep(500 * 1000);
	}
	check(waited >= 0, "the coordinator aborts the denied open transaction on its timeout",
	      "LSO = HWM %lld ms after the refused EndTxn (transaction.timeout.ms 20000)",
	      (long long)waited);
	size_t rc = count_records(1);
	info("read_committed records after: %zu", rc);

	/* The inverse: delete the DENYs; alice writes again. */
	delete_acl(RD_KAFKA_RESOURCE_TOPIC, topic, RD_KAFKA_ACL_OPERATION_WRITE,
		   RD_KAFKA_ACL_PERMISSION_TYPE_DENY, "User:alice");
	delete_acl(RD_KAFKA_RESOURCE_TRANSACTIONAL_ID, id_denied, RD_KAFKA_ACL_OPERATION_WRITE,
		   RD_KAFKA_ACL_PERMISSION_TYPE_DENY, "User:alice");
	as = &alice;
	fresh = producer("enable.idempotence", "true", "acks", "all", NULL);
	ms = until(fresh, RD_KAFKA_RESP_ERR_NO_ERROR);
	check(ms >= 0, "deleting the DENY restores alice's writes", "after %lld ms", (long long)ms);
	rd_kafka_destroy(fresh);
	produce1(idem, 1, "k", "v", 1, &d, &ms);
	fe = rd_kafka_fatal_error(idem, fatal, sizeof(fatal));
	info("alice's refused idempotent producer after the undo: %s, fatal: %s",
	     rd_kafka_err2name(d.err), fe ? fatal : "no");
	rd_kafka_destroy(idem);
	rd_kafka_destroy(tx_commit);
	rd_kafka_destroy(tx_denied);
	as = &clu;
	/* ACLs outlive their topic: leave none behind, or a later run's
	 * alice would still hold WRITE somewhere, which changes how her new
	 * idempotent producer fails (see the check above). */
	delete_acl(RD_KAFKA_RESOURCE_TOPIC, topic, RD_KAFKA_ACL_OPERATION_ANY,
		   RD_KAFKA_ACL_PERMISSION_TYPE_ANY, "User:alice");
	delete_acl(RD_KAFKA_RESOURCE_TRANSACTIONAL_ID, id_commit, RD_KAFKA_ACL_OPERATION_ANY,
		   RD_KAFKA_ACL_PERMISSION_TYPE_ANY, "User:alice");
	delete_acl(RD_KAFKA_RESOURCE_TRANSACTIONAL_ID, id_denied, RD_KAFKA_ACL_OPERATION_ANY,
		   RD_KAFKA_ACL_PERMISSION_TYPE_ANY, "User:alice");
	tk_delete_topic(&clu, topic);
}

int main(int argc, char **argv)
{
	if (argc > 2) {
		fprintf(stderr, "usage: KM_FENCE=BOOTSTRAP fence-probe [LABEL]\n");
		return 2;
	}
	tk_cluster_from_env(&clu, "KM_FENCE");
	label = argc == 2 ? argv[1] : clu.bootstrap;
	snprintf(run_id, sizeof(run_id), "%ld-%d", (long)time(NULL), (int)getpid());
	info("librdkafka %s", rd_kafka_version_str());
	const char *only = getenv("KM_FENCE_PHASES"); /* e.g. "drained,acl" */
	if (!only || strstr(only, "drained"))
		phase_drained();
	if (!only || strstr(only, "opentxn"))
		phase_open_txn();
	const char *u2 = getenv("KM_FENCE_USER2"), *p2 = getenv("KM_FENCE_USER2_PASSWORD");
	if (u2 && p2 && (!only || strstr(only, "acl"))) {
		alice = clu;
		for (int i = 0; alice.props[i]; i += 2)
			if (!strcmp(alice.props[i], "sasl.username"))
				alice.props[i + 1] = u2;
			else if (!strcmp(alice.props[i], "sasl.password"))
				alice.props[i + 1] = p2;
		phase_acl();
	}
	printf("%s: %d passed, %d failed\n", label, npass, nfail);
	return nfail ? 1 : 0;
}
