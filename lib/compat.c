#include "compat.h"

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "kafka.h"
#include "util.h"

/* Kafka API keys go up to ~92 in 4.3; the table has room to spare. */
#define API_KEYS 128
/* Two partitions: enough for the second group member to take one over. */
#define CANARY_PARTITIONS 2
/* Records per canary batch, and the most a canary producer tracks. */
#define CANARY_RECORDS 3
#define PMAX 16
/* librdkafka refuses message.max.bytes above this. */
#define RDKAFKA_MAX_MSG 1000000000LL

void km_compat_opts_init(km_compat_opts_t *opts)
{
	opts->timeout_ms = KM_KAFKA_TIMEOUT_MS;
	opts->topic_bytes = 0;
	opts->stop = NULL;
}

/* ---- the run's state ----------------------------------------------------- */

typedef struct range_s {
	int min, max; /* min < 0: the API is not offered */
} range_t;

typedef struct ctx_s {
	const km_plan_t *plan;
	const km_compat_opts_t *opts;
	int tmo;
	km_kafka_t *k; /* admin client on the target, with ApiVersions */
	km_kafka_t *src; /* admin client on the source, opened before any check;
			  * NULL with --topic-bytes (the source is not read) */
	json_t *checks;
	json_t *target; /* the report's "target" object */
	json_t *nodes;  /* [{id, host, port}] from DescribeCluster */

	char prefix[128]; /* "kmigrate-canary.<migration>." */
	char topic[200], size_topic[256], group[200], reader[256], txn_id[200];
	bool topic_made, size_topic_made;
	char topic_err[1024];

	range_t api[API_KEYS];
	bool api_known; /* ApiVersions of every broker are in api[] */
	bool kip896;    /* the target refuses the versions KIP-896 removed */

	json_t *broker_cfg; /* target broker: config name -> value or null */
	char broker_cfg_err[1024];

	/* What the in-scope source topics need (read from the source). */
	bool need_known;
	char need_err[1024];
	int64_t need_all, source_default;
	char need_all_topic[256];
	const char *need_all_source; /* where need_all comes from */
	int need_topics;
	int64_t need_ms; /* time spent reading the source */

	rd_kafka_t *readers[2]; /* read_uncommitted, read_committed */
	json_t *leftovers; /* names of earlier runs' canaries deleted at start */
	km_sb_t cleanup_err;
	int64_t cleanup_ms;
} ctx_t;

static bool stopped(const ctx_t *c)
{
	return c->opts->stop && *c->opts->stop;
}

/* ---- one check = one row of evidence ------------------------------------- */

typedef struct chk_s {
	ctx_t *c;
	char *name;
	int64_t t0;
	int64_t extra_ms; /* time spent for this check before it began */
	km_sb_t tried;
} chk_t;

static void chk_begin(chk_t *ck, ctx_t *c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void chk_begin(chk_t *ck, ctx_t *c, const char *fmt, ...)
{
	va_list ap;
	km_sb_t sb = KM_SB_INIT;

	va_start(ap, fmt);
	km_sb_vprintf(&sb, fmt, ap);
	va_end(ap);
	memset(ck, 0, sizeof(*ck));
	ck->c = c;
	ck->name = km_sb_detach(&sb);
	ck->t0 = km_mono_ms();
}

/* Appends one step to what the check tried. */
static void chk_try(chk_t *ck, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void chk_try(chk_t *ck, const char *fmt, ...)
{
	va_list ap;

	if (ck->tried.len)
		km_sb_puts(&ck->tried, "; ");
	va_start(ap, fmt);
	km_sb_vprintf(&ck->tried, fmt, ap);
	va_end(ap);
}

static void chk_end(chk_t *ck, bool go, const char *fmt, va_list ap)
{
	km_sb_t text = KM_SB_INIT;

	km_sb_vprintf(&text, fmt, ap);
	json_array_append_new(
		ck->c->checks,
		json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "name", ck->name,
			  "result", go ? "GO" : "NO-GO", "latency_ms",
			  (json_int_t)(km_mono_ms() - ck->t0 + ck->extra_ms),
			  "tried", km_sb_str(&ck->tried), "detail",
			  go ? json_string(km_sb_str(&text)) : json_null(),
			  "error",
			  go ? json_null() : json_string(km_sb_str(&text))));
	km_sb_free(&text);
	km_sb_free(&ck->tried);
	free(ck->name);
	ck->name = NULL;
}

static void chk_go(chk_t *ck, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void chk_go(chk_t *ck, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	chk_end(ck, true, fmt, ap);
	va_end(ap);
}

static void chk_nogo(chk_t *ck, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void chk_nogo(chk_t *ck, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	chk_end(ck, false, fmt, ap);
	va_end(ap);
}

/* A check that cannot run is NO-GO with the reason: unknown is never a
 * pass.  @returns true when the check may run. */
static bool chk_can_run(chk_t *ck, bool needs_topic)
{
	if (stopped(ck->c)) {
		chk_nogo(ck, "not run: interrupted");
		return false;
	}
	if (needs_topic && !ck->c->topic_made) {
		chk_nogo(ck, "not run: the canary topic could not be created (%s)",
			 ck->c->topic_err);
		return false;
	}
	return true;
}

/* ---- admin helpers --------------------------------------------------------- */



typedef struct res_s {
	rd_kafka_ResourceType_t type;
	const char *name;
} res_t;

/* DescribeConfigs of n resources on k, 500 per request.  Fills out with
 * name -> {config: {"value": string|null, "source": ...}} or
 * name -> {"error": text} for a resource the broker refused. */
static km_err_t describe_configs(km_kafka_t *k, int tmo, const res_t *res,
				 size_t n, json_t *out, char *errstr,
				 size_t errstr_size)
{
	km_err_t err = KM_ERR_OK;

	for (size_t at = 0; at < n && !err; at += 500) {
		size_t cnt = n - at < 500 ? n - at : 500, nr;
		rd_kafka_ConfigResource_t **rs = km_calloc(cnt, sizeof(*rs));
		rd_kafka_queue_t *q = rd_kafka_queue_new(km_kafka_rk(k));
		rd_kafka_AdminOptions_t *o = km_kafka_admin_options(
			km_kafka_rk(k), RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, tmo);
		rd_kafka_event_t *ev = NULL;

		for (size_t i = 0; i < cnt; i++)
			rs[i] = rd_kafka_ConfigResource_new(res[at + i].type,
							    res[at + i].name);
		rd_kafka_DescribeConfigs(km_kafka_rk(k), rs, cnt, o, q);
		err = km_kafka_wait(k, q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT,
				    tmo + 1000, "DescribeConfigs", &ev, errstr,
				    errstr_size);
		if (!err) {
			const rd_kafka_ConfigResource_t **rr =
				rd_kafka_DescribeConfigs_result_resources(
					rd_kafka_event_DescribeConfigs_result(ev), &nr);
			for (size_t i = 0; i < nr; i++) {
				const char *rname = rd_kafka_ConfigResource_name(rr[i]);
				json_t *cfg = json_object();
				size_t ne;
				const rd_kafka_ConfigEntry_t **ents;

				if (rd_kafka_ConfigResource_error(rr[i])) {
					const char *es = rd_kafka_ConfigResource_error_string(rr[i]);
					json_object_set_new(
						cfg, "error",
						json_string(es && *es ? es
								      : rd_kafka_err2str(rd_kafka_ConfigResource_error(rr[i]))));
					json_object_set_new(out, rname, cfg);
					continue;
				}
				ents = rd_kafka_ConfigResource_configs(rr[i], &ne);
				for (size_t j = 0; j < ne; j++) {
					const char *v = rd_kafka_ConfigEntry_value(ents[j]);
					json_object_set_new(
						cfg, rd_kafka_ConfigEntry_name(ents[j]),
						json_pack("{s:o, s:s}", "value",
							  v ? json_string(v) : json_null(),
							  "source",
							  km_kafka_config_source_name(rd_kafka_ConfigEntry_source(ents[j]))));
				}
				json_object_set_new(out, rname, cfg);
			}
			rd_kafka_event_destroy(ev);
		}
		rd_kafka_ConfigResource_destroy_array(rs, cnt);
		free(rs);
		rd_kafka_AdminOptions_destroy(o);
		rd_kafka_queue_destroy(q);
	}
	return err;
}

static const char *cfg_value(json_t *cfg, const char *name)
{
	return json_string_value(
		json_object_get(json_object_get(cfg, name), "value"));
}

/* Waits on the condition "metadata shows topic with every partition led"
 * (present) or "metadata no longer shows topic" (!present). */
static km_err_t await_topic(ctx_t *c, const char *topic, int partitions,
			    bool present, char *errstr, size_t errstr_size)
{
	rd_kafka_t *rk = km_kafka_rk(c->k);
	int64_t deadline = km_mono_ms() + c->tmo;

	for (;;) {
		const struct rd_kafka_metadata *md = NULL;
		bool seen = false, ready = false;

		if (!rd_kafka_metadata(rk, 1, NULL, &md, c->tmo)) {
			for (int i = 0; i < md->topic_cnt; i++) {
				const struct rd_kafka_metadata_topic *t = &md->topics[i];
				if (strcmp(t->topic, topic) || t->err)
					continue;
				seen = true;
				ready = t->partition_cnt == partitions;
				for (int p = 0; ready && p < t->partition_cnt; p++)
					if (t->partitions[p].leader < 0)
						ready = false;
			}
			rd_kafka_metadata_destroy(md);
		}
		if (present ? ready : !seen)
			return KM_ERR_OK;
		if (km_mono_ms() >= deadline)
			return km_seterr(errstr, errstr_size, KM_ERR_TIMEOUT,
					 present ? "topic '%s' has no leader for every "
						   "partition after %d ms"
						 : "topic '%s' is still listed %d ms "
						   "after DeleteTopics",
					 topic, c->tmo);
		/* Serve the client's events while the controller works. */
		rd_kafka_poll(rk, 100);
	}
}

static km_err_t create_topic(ctx_t *c, const char *topic, int partitions,
			     const char **configs, char *errstr,
			     size_t errstr_size)
{
	rd_kafka_t *rk = km_kafka_rk(c->k);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *o = km_kafka_admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, c->tmo);
	char rerr[256], what[400];
	/* Replication factor -1: the target's default.replication.factor, as
	 * a migrated topic created without an explicit factor would get. */
	rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, -1,
							rerr, sizeof(rerr));
	rd_kafka_event_t *ev = NULL;
	km_err_t err;

	if (!nt)
		KM_BUG("NewTopic '%s': %s", topic, rerr);
	for (int i = 0; configs && configs[i]; i += 2)
		rd_kafka_NewTopic_set_config(nt, configs[i], configs[i + 1]);
	snprintf(what, sizeof(what), "CreateTopics of '%s'", topic);
	rd_kafka_CreateTopics(rk, &nt, 1, o, q);
	err = km_kafka_wait(c->k, q, RD_KAFKA_EVENT_CREATETOPICS_RESULT,
			    c->tmo + 1000, what, &ev, errstr, errstr_size);
	if (!err) {
		size_t n;
		const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(
			rd_kafka_event_CreateTopics_result(ev), &n);
		for (size_t i = 0; i < n && !err; i++)
			if (rd_kafka_topic_result_error(tr[i]))
				err = km_kafka_err(c->k, rd_kafka_topic_result_error(tr[i]),
						   what,
						   rd_kafka_topic_result_error_string(tr[i]),
						   errstr, errstr_size);
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_NewTopic_destroy(nt);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
	if (!err)
		err = await_topic(c, topic, partitions, true, errstr, errstr_size);
	return err;
}

/* Deletes topics; unknown topics count as deleted.  Waits until metadata no
 * longer lists them. */
static km_err_t delete_topics(ctx_t *c, const char **topics, size_t n,
			      char *errstr, size_t errstr_size)
{
	rd_kafka_t *rk = km_kafka_rk(c->k);
	rd_kafka_queue_t *q;
	rd_kafka_AdminOptions_t *o;
	rd_kafka_DeleteTopic_t **dt;
	rd_kafka_event_t *ev = NULL;
	km_err_t err;

	if (!n)
		return KM_ERR_OK;
	q = rd_kafka_queue_new(rk);
	o = km_kafka_admin_options(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS, c->tmo);
	dt = km_calloc(n, sizeof(*dt));
	for (size_t i = 0; i < n; i++)
		dt[i] = rd_kafka_DeleteTopic_new(topics[i]);
	rd_kafka_DeleteTopics(rk, dt, n, o, q);
	err = km_kafka_wait(c->k, q, RD_KAFKA_EVENT_DELETETOPICS_RESULT,
			    c->tmo + 1000, "DeleteTopics", &ev, errstr,
			    errstr_size);
	if (!err) {
		size_t nr;
		const rd_kafka_topic_result_t **tr = rd_kafka_DeleteTopics_result_topics(
			rd_kafka_event_DeleteTopics_result(ev), &nr);
		for (size_t i = 0; i < nr && !err; i++) {
			rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
			char what[400];
			if (!e || e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
				continue;
			snprintf(what, sizeof(what), "DeleteTopics of '%s'",
				 rd_kafka_topic_result_name(tr[i]));
			err = km_kafka_err(c->k, e, what,
					   rd_kafka_topic_result_error_string(tr[i]),
					   errstr, errstr_size);
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_DeleteTopic_destroy_array(dt, n);
	free(dt);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
	for (size_t i = 0; i < n && !err; i++)
		err = await_topic(c, topics[i], 0, false, errstr, errstr_size);
	return err;
}

/* Deletes a consumer group.  A group whose members are still leaving
 * answers NON_EMPTY_GROUP: asked again until the deadline.  A group that
 * does not exist counts as deleted. */
static km_err_t delete_group(ctx_t *c, const char *group, bool *deletedp,
			     char *errstr, size_t errstr_size)
{
	rd_kafka_t *rk = km_kafka_rk(c->k);
	int64_t deadline = km_mono_ms() + c->tmo;
	char what[400];

	snprintf(what, sizeof(what), "DeleteGroups of '%s'", group);
	for (;;) {
		rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
		rd_kafka_AdminOptions_t *o = km_kafka_admin_options(rk, RD_KAFKA_ADMIN_OP_DELETEGROUPS, c->tmo);
		rd_kafka_DeleteGroup_t *dg = rd_kafka_DeleteGroup_new(group);
		rd_kafka_event_t *ev = NULL;
		rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
		char es[512] = "";
		km_err_t err;

		rd_kafka_DeleteGroups(rk, &dg, 1, o, q);
		err = km_kafka_wait(c->k, q, RD_KAFKA_EVENT_DELETEGROUPS_RESULT,
				    c->tmo + 1000, what, &ev, errstr, errstr_size);
		if (!err) {
			size_t n;
			const rd_kafka_group_result_t **gr = rd_kafka_DeleteGroups_result_groups(
				rd_kafka_event_DeleteGroups_result(ev), &n);
			for (size_t i = 0; i < n; i++) {
				const rd_kafka_error_t *ge = rd_kafka_group_result_error(gr[i]);
				if (ge) {
					e = rd_kafka_error_code(ge);
					snprintf(es, sizeof(es), "%s", rd_kafka_error_string(ge));
				}
			}
			rd_kafka_event_destroy(ev);
		}
		rd_kafka_DeleteGroup_destroy(dg);
		rd_kafka_AdminOptions_destroy(o);
		rd_kafka_queue_destroy(q);
		if (err)
			return err;
		if (!e || e == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
			if (deletedp)
				*deletedp = !e;
			return KM_ERR_OK;
		}
		if (e != RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP &&
		    e != RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS &&
		    e != RD_KAFKA_RESP_ERR_NOT_COORDINATOR)
			return km_kafka_err(c->k, e, what, es, errstr, errstr_size);
		if (km_mono_ms() >= deadline)
			return km_kafka_err(c->k, e, what, es, errstr, errstr_size);
		rd_kafka_poll(rk, 200);
	}
}

/* ---- canary producers and readers ---------------------------------------- */

typedef struct pstate_s {
	pthread_mutex_t lock;
	int sent, done;
	struct {
		rd_kafka_resp_err_t err;
		int64_t offset;
	} r[PMAX];
	char err[512];         /* the last error_cb report */
	char warn[512];        /* the last log line of level warning or worse */
	char compression[512]; /* "Broker does not support compression ..." */
	char txncoord[512];    /* "Failed to find transaction coordinator: ..." */
} pstate_t;

static void p_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	pstate_t *ps = opaque;
	intptr_t i = (intptr_t)m->_private;

	(void)rk;
	if (i >= 0 && i < PMAX) {
		ps->r[i].err = m->err;
		ps->r[i].offset = m->offset;
	}
	ps->done++;
}

static void p_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	pstate_t *ps = opaque;

	(void)rk;
	pthread_mutex_lock(&ps->lock);
	snprintf(ps->err, sizeof(ps->err), "%s: %s",
		 rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
	pthread_mutex_unlock(&ps->lock);
}

static void p_log_cb(const rd_kafka_t *rk, int level, const char *fac,
		     const char *buf)
{
	pstate_t *ps = rd_kafka_opaque(rk);

	if (!ps)
		return;
	pthread_mutex_lock(&ps->lock);
	/* librdkafka sends a batch uncompressed, with only a log line to say
	 * so, when it believes the broker lacks the codec (librdkafka #4956):
	 * the codec check must see that. */
	if (!strcmp(fac, "COMPRESSION"))
		snprintf(ps->compression, sizeof(ps->compression), "%s", buf);
	/* With debug=eos: why no transaction coordinator could be found,
	 * which init_transactions() itself reports only as a timeout. */
	else if (!strcmp(fac, "TXNCOORD") && strstr(buf, "Failed"))
		snprintf(ps->txncoord, sizeof(ps->txncoord), "%s",
			 strstr(buf, "]: ") ? strstr(buf, "]: ") + 3 : buf);
	else if (level <= 4)
		snprintf(ps->warn, sizeof(ps->warn), "%s", buf);
	pthread_mutex_unlock(&ps->lock);
}

/* A producer on the target with the plan's security settings plus extra
 * (key, value, ..., NULL).  @returns NULL with errstr set on failure. */
static rd_kafka_t *producer_new(ctx_t *c, pstate_t *ps, const char **extra,
				char *errstr, size_t errstr_size)
{
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	char rerr[512];

	memset(ps, 0, sizeof(*ps));
	pthread_mutex_init(&ps->lock, NULL);
	if (km_kafka_conf_new(km_kafka_endpoint(c->k), extra, &conf, errstr,
			      errstr_size)) {
		pthread_mutex_destroy(&ps->lock);
		return NULL;
	}
	rd_kafka_conf_set_opaque(conf, ps);
	rd_kafka_conf_set_dr_msg_cb(conf, p_dr_cb);
	rd_kafka_conf_set_error_cb(conf, p_error_cb);
	rd_kafka_conf_set_log_cb(conf, p_log_cb);
	if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		pthread_mutex_destroy(&ps->lock);
		snprintf(errstr, errstr_size, "cannot create a producer: %s", rerr);
	}
	return rk;
}

/* Destroys what producer_new() made; NULL (creation failed) is fine. */
static void producer_destroy(rd_kafka_t *rk, pstate_t *ps)
{
	if (!rk)
		return;
	rd_kafka_destroy(rk);
	pthread_mutex_destroy(&ps->lock);
}

static rd_kafka_resp_err_t produce(rd_kafka_t *rk, pstate_t *ps,
				   const char *topic, int partition,
				   const void *key, size_t klen,
				   const void *val, size_t vlen)
{
	intptr_t i = ps->sent < PMAX ? ps->sent : -1;
	rd_kafka_resp_err_t e = rd_kafka_producev(
		rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
		RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_OPAQUE((void *)i), RD_KAFKA_V_END);

	if (!e)
		ps->sent++;
	return e;
}

/* Waits for every delivery report (rd_kafka_flush: a deadline on "nothing
 * outstanding").  @returns the first delivery error, or __TIMED_OUT. */
static rd_kafka_resp_err_t await_deliveries(ctx_t *c, rd_kafka_t *rk,
					    pstate_t *ps, int from)
{
	if (rd_kafka_flush(rk, c->tmo) || ps->done < ps->sent)
		return RD_KAFKA_RESP_ERR__TIMED_OUT;
	for (int i = from; i < ps->sent && i < PMAX; i++)
		if (ps->r[i].err)
			return ps->r[i].err;
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Records read back from one partition. */
typedef struct got_s {
	int n;
	int64_t off[PMAX];
	char *val[PMAX];
	size_t len[PMAX];
} got_t;

static void got_free(got_t *g)
{
	for (int i = 0; i < g->n; i++)
		free(g->val[i]);
	memset(g, 0, sizeof(*g));
}

/* The read-back consumers, one per isolation level, made on first use and
 * shared by every check: each librdkafka instance costs a connection and,
 * at destroy, sometimes a second of its main thread's timer wait.  They use
 * their own group id only because librdkafka's consumer API needs one: they
 * assign partitions themselves and never join or commit, so no group is
 * created on the target. */
static rd_kafka_t *reader_get(ctx_t *c, bool committed, char *errstr,
			      size_t errstr_size)
{
	char fetch[32], recv[32];
	int64_t big = c->need_all > 0 ? c->need_all + 65536 : 0;
	int64_t fmax = big > 52428800 ? big : 52428800;
	const char *extra[] = {"group.id", c->reader,
			       "enable.auto.commit", "false",
			       "enable.partition.eof", "true",
			       "auto.offset.reset", "error",
			       "isolation.level",
			       committed ? "read_committed" : "read_uncommitted",
			       /* the end of the partition is the condition
				* waited on: let empty fetches come back at once */
			       "fetch.wait.max.ms", "10",
			       /* room for the record at max.message.bytes */
			       "fetch.max.bytes", fetch,
			       "max.partition.fetch.bytes", fetch,
			       "receive.message.max.bytes", recv,
			       NULL};
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	char rerr[512];

	if (c->readers[committed])
		return c->readers[committed];
	snprintf(fetch, sizeof(fetch), "%" PRId64, fmax);
	snprintf(recv, sizeof(recv), "%" PRId64, fmax + 1024);
	if (km_kafka_conf_new(km_kafka_endpoint(c->k), extra, &conf, errstr,
			      errstr_size))
		return NULL;
	if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		km_seterr(errstr, errstr_size, KM_ERR_BUG,
			  "cannot create a consumer: %s", rerr);
		return NULL;
	}
	rd_kafka_poll_set_consumer(rk);
	return c->readers[committed] = rk;
}

static void readers_close(ctx_t *c)
{
	for (int i = 0; i < 2; i++)
		if (c->readers[i]) {
			rd_kafka_consumer_close(c->readers[i]);
			rd_kafka_destroy(c->readers[i]);
			c->readers[i] = NULL;
		}
}

/* Reads topic[partition] from offset `from` until the consumer reports the
 * end of the partition at or beyond `end` (the high watermark, or the last
 * stable offset under read_committed), collecting the records before end. */
static km_err_t read_back(ctx_t *c, const char *topic, int partition,
			  int64_t from, int64_t end, bool committed, got_t *got,
			  char *errstr, size_t errstr_size)
{
	const char *isolation = committed ? "read_committed" : "read_uncommitted";
	rd_kafka_t *rk;
	rd_kafka_topic_partition_list_t *tps;
	int64_t deadline = km_mono_ms() + c->tmo;
	km_err_t err = KM_ERR_TIMEOUT;

	memset(got, 0, sizeof(*got));
	if (!(rk = reader_get(c, committed, errstr, errstr_size)))
		return KM_ERR_BUG;
	tps = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(tps, topic, partition)->offset = from;
	rd_kafka_assign(rk, tps);
	rd_kafka_topic_partition_list_destroy(tps);
	while (km_mono_ms() < deadline && !stopped(c)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		bool ours;

		if (!m)
			continue;
		/* The previous assignment's events may still be queued. */
		ours = m->rkt && m->partition == partition &&
		       !strcmp(rd_kafka_topic_name(m->rkt), topic);
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			bool done = ours && m->offset >= end;
			rd_kafka_message_destroy(m);
			if (done) {
				err = KM_ERR_OK;
				break;
			}
			continue;
		}
		if (m->err) {
			err = km_kafka_err(c->k, m->err, "Fetch (read-back)",
					   rd_kafka_message_errstr(m), errstr,
					   errstr_size);
			rd_kafka_message_destroy(m);
			break;
		}
		if (ours && m->offset >= from && m->offset < end && got->n < PMAX) {
			got->off[got->n] = m->offset;
			got->len[got->n] = m->len;
			got->val[got->n] = km_malloc(m->len + 1);
			memcpy(got->val[got->n], m->payload, m->len);
			got->n++;
		}
		rd_kafka_message_destroy(m);
	}
	if (err == KM_ERR_TIMEOUT)
		km_seterr(errstr, errstr_size, KM_ERR_TIMEOUT,
			  "reading '%s'[%d] from offset %" PRId64 " with %s did not "
			  "reach offset %" PRId64 " within %d ms (%d records seen)",
			  topic, partition, from, isolation, end, c->tmo, got->n);
	rd_kafka_assign(rk, NULL);
	return err;
}

/* ---- check: connectivity and authentication ------------------------------- */

static void check_connect(ctx_t *c, int64_t open_ms)
{
	const km_kafka_endpoint_t *ep = km_kafka_endpoint(c->k);
	rd_kafka_t *rk = km_kafka_rk(c->k);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *o = km_kafka_admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBECLUSTER, c->tmo);
	rd_kafka_event_t *ev = NULL;
	char errstr[1024];
	chk_t ck;
	km_err_t err;

	chk_begin(&ck, c, "connect");
	ck.extra_ms = open_ms;
	chk_try(&ck, "open a client on '%s' over %s", ep->bootstrap,
		ep->security_protocol ? ep->security_protocol : "plaintext");
	if (ep->sasl_mechanism)
		chk_try(&ck, "SASL %s as '%s'", ep->sasl_mechanism,
			ep->username ? ep->username : "");
	if (ep->ssl_ca)
		chk_try(&ck, "CA '%s'", ep->ssl_ca);
	chk_try(&ck, "DescribeCluster");
	rd_kafka_DescribeCluster(rk, o, q);
	err = km_kafka_wait(c->k, q, RD_KAFKA_EVENT_DESCRIBECLUSTER_RESULT,
			    c->tmo + 1000, "DescribeCluster", &ev, errstr,
			    sizeof(errstr));
	if (err) {
		chk_nogo(&ck, "%s", errstr);
	} else {
		const rd_kafka_DescribeCluster_result_t *res =
			rd_kafka_event_DescribeCluster_result(ev);
		const rd_kafka_Node_t **nodes, *ctrl;
		const char *cid = rd_kafka_DescribeCluster_result_cluster_id(res);
		size_t n;

		nodes = rd_kafka_DescribeCluster_result_nodes(res, &n);
		for (size_t i = 0; i < n; i++)
			json_array_append_new(
				c->nodes,
				json_pack("{s:i, s:s, s:i}", "id", rd_kafka_Node_id(nodes[i]),
					  "host", rd_kafka_Node_host(nodes[i]), "port",
					  (int)rd_kafka_Node_port(nodes[i])));
		ctrl = rd_kafka_DescribeCluster_result_controller(res);
		json_object_set_new(c->target, "cluster_id",
				    cid ? json_string(cid) : json_null());
		json_object_set_new(c->target, "brokers", json_integer((json_int_t)n));
		chk_go(&ck, "connected and authenticated: cluster id %s, %zu broker%s, "
			    "controller %d",
		       cid ? cid : "(none)", n, n == 1 ? "" : "s",
		       ctrl ? rd_kafka_Node_id(ctrl) : -1);
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
}

/* ---- check: broker API versions ---------------------------------------------- */

/* What a feature needs from the broker: API key, the lowest version that
 * carries the feature, and why.  Sources: the Kafka protocol guide and the
 * KIPs named; docs/internals/compat.md has the table. */
typedef struct apireq_s {
	int key;
	const char *name;
	int min;
	const char *why;
} apireq_t;

static const apireq_t REQ_PRODUCE[] = {
	{3, "Metadata", 0, "partition leaders"},
	{0, "Produce", 3, "record batches, message format v2 (KIP-98)"},
	{-1, NULL, 0, NULL}};
static const apireq_t REQ_IDEMPOTENCE[] = {
	{22, "InitProducerId", 0, "a producer id (KIP-98)"},
	{0, "Produce", 3, "sequence numbers in record batches (KIP-98)"},
	{-1, NULL, 0, NULL}};
static const apireq_t REQ_TRANSACTIONS[] = {
	{10, "FindCoordinator", 1, "the transaction coordinator (key type 1)"},
	{22, "InitProducerId", 0, "a transactional producer id"},
	{24, "AddPartitionsToTxn", 0, "partitions joining a transaction"},
	{25, "AddOffsetsToTxn", 0, "consumer offsets joining a transaction"},
	{26, "EndTxn", 0, "commit and abort"},
	{28, "TxnOffsetCommit", 0, "offsets committed inside a transaction"},
	{-1, NULL, 0, NULL}};
static const apireq_t REQ_CONSUME[] = {
	{3, "Metadata", 0, "partition leaders"},
	{1, "Fetch", 4, "isolation level, read_committed (KIP-98)"},
	{2, "ListOffsets", 1, "offsets by timestamp (KIP-79)"},
	{10, "FindCoordinator", 0, "the group coordinator"},
	{11, "JoinGroup", 0, "group membership"},
	{14, "SyncGroup", 0, "assignments"},
	{12, "Heartbeat", 0, "liveness"},
	{13, "LeaveGroup", 0, "leaving"},
	{8, "OffsetCommit", 2, "committed offsets kept by Kafka"},
	{9, "OffsetFetch", 1, "committed offsets read from Kafka"},
	{-1, NULL, 0, NULL}};
/* What kmigrate itself and its canaries call on the target. */
static const apireq_t REQ_ADMIN[] = {
	{19, "CreateTopics", 2, "topic creation"},
	{20, "DeleteTopics", 1, "topic deletion"},
	{32, "DescribeConfigs", 1, "config reads"},
	{44, "IncrementalAlterConfigs", 0, "config changes (KIP-339)"},
	{29, "DescribeAcls", 1, "ACL reads"},
	{16, "ListGroups", 0, "group listing"},
	{15, "DescribeGroups", 0, "group state"},
	{42, "DeleteGroups", 0, "group deletion"},
	{-1, NULL, 0, NULL}};

/* The target's range for an API, with one correction: Kafka 4 advertises
 * Produce v0-v2 in ApiVersions although it refuses them (KAFKA-18659, kept
 * so that librdkafka's feature detection keeps compression on), so on a
 * broker that applied KIP-896 Produce really starts at v3. */
static range_t api_range(const ctx_t *c, int key)
{
	range_t r = c->api[key];

	if (key == 0 && c->kip896 && r.min >= 0 && r.min < 3)
		r.min = 3;
	return r;
}

/* Appends to why every requirement in reqs the target does not meet. */
static void need_apis(const ctx_t *c, const apireq_t *reqs, km_sb_t *why)
{
	for (const apireq_t *q = reqs; q->key >= 0; q++) {
		range_t r = api_range(c, q->key);
		if (r.min < 0)
			km_sb_printf(why, "%s%s (%d) is not offered (needed for %s)",
				     why->len ? "; " : "", q->name, q->key, q->why);
		else if (r.max < q->min)
			km_sb_printf(why, "%s%s v%d+ is needed for %s, the target "
				     "offers v%d..%d",
				     why->len ? "; " : "", q->name, q->min, q->why,
				     r.min, r.max);
	}
}

static void apiv_cb(void *opaque, int key, const char *name, int min, int max)
{
	range_t *r = opaque;

	(void)name;
	if (key >= 0 && key < API_KEYS) {
		r[key].min = min;
		r[key].max = max;
	}
}

/* Reads one broker's ApiVersions from what the client captured.  A broker
 * the client never talked to is made to answer a DescribeConfigs of its own
 * broker resource, which librdkafka sends to that very broker. */
static int broker_apis(ctx_t *c, int id, const char *hostport, range_t *r)
{
	int n;

	for (int i = 0; i < API_KEYS; i++)
		r[i].min = r[i].max = -1;
	if ((n = km_kafka_apiversions(c->k, hostport, apiv_cb, r)) > 0)
		return n;
	char bid[32], errstr[512];
	res_t res = {RD_KAFKA_RESOURCE_BROKER, bid};
	json_t *out = json_object();
	snprintf(bid, sizeof(bid), "%d", id);
	describe_configs(c->k, c->tmo, &res, 1, out, errstr, sizeof(errstr));
	json_decref(out);
	return km_kafka_apiversions(c->k, hostport, apiv_cb, r);
}

static void check_api_versions(ctx_t *c)
{
	static const struct {
		const char *label;
		const apireq_t *reqs;
	} sets[] = {{"produce", REQ_PRODUCE},
		    {"idempotence", REQ_IDEMPOTENCE},
		    {"transactions", REQ_TRANSACTIONS},
		    {"consume", REQ_CONSUME},
		    {"admin", REQ_ADMIN}};
	static const int shown[] = {0, 1, 2, 3, 8, 9, 11, 22, 24, 26, 28};
	km_sb_t why = KM_SB_INIT, ranges = KM_SB_INIT, unknown = KM_SB_INIT;
	json_t *node;
	size_t i;
	chk_t ck;

	chk_begin(&ck, c, "api.versions");
	if (!chk_can_run(&ck, false))
		return;
	for (int key = 0; key < API_KEYS; key++)
		c->api[key].min = c->api[key].max = -1;
	chk_try(&ck, "ApiVersions of %zu broker%s", json_array_size(c->nodes),
		json_array_size(c->nodes) == 1 ? "" : "s");
	/* The cluster's usable range is the intersection over its brokers:
	 * a client may land on any of them. */
	json_array_foreach(c->nodes, i, node) {
		range_t r[API_KEYS];
		char hp[300];
		snprintf(hp, sizeof(hp), "%s:%d",
			 json_string_value(json_object_get(node, "host")),
			 (int)json_integer_value(json_object_get(node, "port")));
		if (broker_apis(c, (int)json_integer_value(json_object_get(node, "id")),
				hp, r) <= 0) {
			km_sb_printf(&unknown, "%s%s", unknown.len ? ", " : "", hp);
			continue;
		}
		for (int key = 0; key < API_KEYS; key++) {
			if (i == 0 || c->api[key].min < 0 || r[key].min < 0) {
				c->api[key] = i == 0 ? r[key] : (range_t){-1, -1};
				continue;
			}
			if (r[key].min > c->api[key].min)
				c->api[key].min = r[key].min;
			if (r[key].max < c->api[key].max)
				c->api[key].max = r[key].max;
		}
	}
	if (!json_array_size(c->nodes)) {
		chk_nogo(&ck, "unknown: the broker list could not be read, so no "
			      "ApiVersions could be compared");
		goto done;
	}
	if (unknown.len) {
		chk_nogo(&ck, "unknown: no ApiVersions answer from %s",
			 km_sb_str(&unknown));
		goto done;
	}
	c->api_known = true;
	/* KIP-896 (Kafka 4.0) removed the protocol versions older than Kafka
	 * 2.1 spoke; Fetch v0-v3 went with them.  Produce's advertised minimum
	 * cannot tell (KAFKA-18659), Fetch's can. */
	c->kip896 = c->api[1].min >= 4;
	json_object_set_new(c->target, "kip896_floor", json_boolean(c->kip896));
	for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
		km_sb_t one = KM_SB_INIT;
		need_apis(c, sets[s].reqs, &one);
		if (one.len)
			km_sb_printf(&why, "%s%s: %s", why.len ? "; " : "",
				     sets[s].label, km_sb_str(&one));
		km_sb_free(&one);
	}
	for (size_t s = 0; s < sizeof(shown) / sizeof(shown[0]); s++) {
		range_t r = api_range(c, shown[s]);
		static const char *const names[] = {
			[0] = "Produce", [1] = "Fetch", [2] = "ListOffsets",
			[3] = "Metadata", [8] = "OffsetCommit", [9] = "OffsetFetch",
			[11] = "JoinGroup", [22] = "InitProducerId",
			[24] = "AddPartitionsToTxn", [26] = "EndTxn",
			[28] = "TxnOffsetCommit"};
		if (r.min >= 0)
			km_sb_printf(&ranges, "%s%s %d..%d", ranges.len ? ", " : "",
				     names[shown[s]], r.min, r.max);
	}
	chk_try(&ck, "compared with what producers, idempotence, transactions, "
		     "consumers and kmigrate's admin calls need");
	if (why.len)
		chk_nogo(&ck, "%s", km_sb_str(&why));
	else
		chk_go(&ck, "%s; %s", km_sb_str(&ranges),
		       c->kip896 ? "the target applies KIP-896's protocol floor "
				   "(Kafka 4: Fetch from v4, Produce from v3)"
				 : "the target keeps pre-KIP-896 protocol versions");
done:
	km_sb_free(&why);
	km_sb_free(&ranges);
	km_sb_free(&unknown);
}

/* ---- check: declared clients ------------------------------------------------- */

typedef struct ver_s {
	int v[3];
} ver_t;

/* "2.3.0", "v1.30.1", "3.7.0-ccs", "2.1" -> numbers; @returns false when
 * the string does not start with a number. */
static bool parse_ver(const char *s, ver_t *out)
{
	memset(out, 0, sizeof(*out));
	if (*s == 'v' || *s == 'V')
		s++;
	if (!isdigit((unsigned char)*s))
		return false;
	for (int i = 0; i < 3; i++) {
		char *end;
		long n = strtol(s, &end, 10);
		if (end == s || n < 0 || n > 100000)
			return false;
		out->v[i] = (int)n;
		s = end;
		if (*s != '.' || !isdigit((unsigned char)s[1]))
			break;
		s++;
	}
	return true;
}

static int ver_cmp(const ver_t *a, const char *b)
{
	ver_t vb;

	if (!parse_ver(b, &vb))
		KM_BUG("bad version literal '%s'", b);
	for (int i = 0; i < 3; i++)
		if (a->v[i] != vb.v[i])
			return a->v[i] < vb.v[i] ? -1 : 1;
	return 0;
}

/* Client families and the oldest release that works with a broker that
 * applied KIP-896 (Kafka >= 4.0).  Sources, also in docs/internals/compat.md:
 *   java: KIP-896 sets the protocol baseline to Apache Kafka 2.1; Kafka 4.0's
 *         compatibility matrix marks 0.x, 1.x and 2.0 clients incompatible.
 *   librdkafka, kafkajs, sarama, kafka-python: the releases KIP-896 checked
 *         its removals against (librdkafka 1.8.2, KafkaJS 1.15.0, Sarama
 *         1.30.1, kafka-python 2.0.2); older releases are not verified, and
 *         unverified is NO-GO.
 * Feature floors: idempotence and transactions arrived with KIP-98 in Java
 * 0.11.0; librdkafka got the idempotent producer in 1.0.0 and transactions
 * in 1.4.0. */
typedef struct family_s {
	const char *aliases[8];
	const char *label;
	const char *floor;
	const char *floor_why;
	const char *idempotence;  /* first release with it, NULL: not tabulated */
	const char *transactions; /* idem */
	bool rdkafka_numbers;     /* versions are librdkafka's */
} family_t;

static const family_t FAMILIES[] = {
	{{"java", "kafka-clients", "apache-kafka", "kafka-streams", "kafka-connect", NULL},
	 "java", "2.1.0",
	 "the oldest Java client a KIP-896 broker accepts (KIP-896; Apache Kafka 4.0 "
	 "compatibility matrix)",
	 "0.11.0", "0.11.0", false},
	{{"librdkafka", "confluent-kafka", "confluent-kafka-python",
	  "confluent-kafka-go", "confluent-kafka-dotnet", NULL},
	 "librdkafka", "1.8.2",
	 "the oldest librdkafka KIP-896 was checked against; older releases are "
	 "not verified (some still send ListOffsets v0)",
	 "1.0.0", "1.4.0", true},
	{{"kafkajs", NULL}, "kafkajs", "1.15.0",
	 "the oldest KafkaJS KIP-896 was checked against", NULL, NULL, false},
	{{"sarama", "ibm/sarama", "shopify/sarama", "github.com/ibm/sarama",
	  "github.com/shopify/sarama", NULL},
	 "sarama", "1.30.1",
	 "the oldest Sarama KIP-896 was checked against (its Config.Version must "
	 "also be at least V2_1_0_0)",
	 NULL, NULL, false},
	{{"kafka-python", NULL}, "kafka-python", "2.0.2",
	 "the oldest kafka-python KIP-896 was checked against", NULL, NULL, false},
};

/* What the Java client of a release speaks at most, for the two APIs whose
 * floor KIP-896 raised furthest (from the Kafka protocol guide's version
 * history).  Releases from 2.1 on speak at least the 2.1 row. */
static const struct {
	const char *release;
	int produce_max, fetch_max;
} JAVA_SPEAKS[] = {
	{"0.10.0", 2, 2}, {"0.10.1", 2, 3}, {"0.10.2", 2, 3}, {"0.11.0", 3, 5},
	{"1.0.0", 5, 6},  {"1.1.0", 5, 7},  {"2.0.0", 6, 8},  {"2.1.0", 7, 10},
};

static const family_t *family_find(const char *client)
{
	char low[128];
	size_t i;

	for (i = 0; client[i] && i < sizeof(low) - 1; i++)
		low[i] = (char)tolower((unsigned char)client[i]);
	low[i] = '\0';
	for (size_t f = 0; f < sizeof(FAMILIES) / sizeof(FAMILIES[0]); f++)
		for (int a = 0; FAMILIES[f].aliases[a]; a++)
			if (!strcmp(low, FAMILIES[f].aliases[a]))
				return &FAMILIES[f];
	return NULL;
}

static void check_client(ctx_t *c, const char *kind, const char *name,
			 const char *client, const char *version,
			 km_plan_tri_t idem, km_plan_tri_t txn)
{
	const km_plan_cluster_t *t = &c->plan->target;
	km_sb_t why = KM_SB_INIT, apis = KM_SB_INIT;
	const family_t *fam = client ? family_find(client) : NULL;
	bool producer = !strcmp(kind, "producer");
	ver_t v;
	chk_t ck;

	chk_begin(&ck, c, "client.%s.%s", kind, name);
	if (!chk_can_run(&ck, false))
		return;
	chk_try(&ck, "%s '%s' declares client %s %s", kind, name,
		client ? client : "(none)", version ? version : "(none)");
	if (producer)
		chk_try(&ck, "idempotence %s, transactions %s", km_plan_tri_str(idem),
			km_plan_tri_str(txn));
	chk_try(&ck, "compared with the client requirement table and the "
		     "target's ApiVersions");

	if (!client || !version) {
		km_sb_printf(&why, "unknown: %s not declared, so whether it can "
				   "talk to the target is unknown (declare client "
				   "and client_version)",
			     !client && !version ? "client and client_version"
						 : !client ? "client" : "client_version");
		goto verdict;
	}
	if (!fam) {
		km_sb_printf(&why, "unknown: client '%s' is not in the requirement "
				   "table (java, librdkafka and its confluent-kafka "
				   "bindings, kafkajs, sarama, kafka-python)",
			     client);
		goto verdict;
	}
	if (!parse_ver(version, &v)) {
		km_sb_printf(&why, "unknown: client_version '%s' is not a version "
				   "number",
			     version);
		goto verdict;
	}
	if (producer && (idem == KM_PLAN_UNSET || txn == KM_PLAN_UNSET))
		km_sb_printf(&why, "unknown: %s not declared, and an undeclared "
				   "semantic is never a pass (declare idempotence "
				   "and transactions: true or false)",
			     idem == KM_PLAN_UNSET && txn == KM_PLAN_UNSET
				     ? "idempotence and transactions"
				     : idem == KM_PLAN_UNSET ? "idempotence" : "transactions");

	/* The protocol floor of Kafka 4 (KIP-896). */
	if (c->kip896 && ver_cmp(&v, fam->floor) < 0)
		km_sb_printf(&why, "%s%s %s is older than %s, %s", why.len ? "; " : "",
			     fam->label, version, fam->floor, fam->floor_why);
	/* The Java client's own ranges say which request would fail. */
	if (!strcmp(fam->label, "java") && c->api_known) {
		if (ver_cmp(&v, "0.10.0") < 0)
			km_sb_printf(&why, "%sjava %s predates ApiVersions (KIP-35) "
					   "and cannot negotiate request versions",
				     why.len ? "; " : "", version);
		else if (ver_cmp(&v, "2.1.0") < 0) {
			int pm = 0, fm = 0;
			for (size_t i = 0; i < sizeof(JAVA_SPEAKS) / sizeof(JAVA_SPEAKS[0]); i++)
				if (ver_cmp(&v, JAVA_SPEAKS[i].release) >= 0) {
					pm = JAVA_SPEAKS[i].produce_max;
					fm = JAVA_SPEAKS[i].fetch_max;
				}
			range_t rp = api_range(c, 0), rf = api_range(c, 1);
			if (producer && rp.min > pm)
				km_sb_printf(&why, "%sProduce: java %s speaks v0..%d, the "
						   "target accepts v%d..%d",
					     why.len ? "; " : "", version, pm, rp.min, rp.max);
			if (!producer && rf.min > fm)
				km_sb_printf(&why, "%sFetch: java %s speaks v0..%d, the "
						   "target accepts v%d..%d",
					     why.len ? "; " : "", version, fm, rf.min, rf.max);
		}
	}
	if (producer && idem == KM_PLAN_YES && fam->idempotence &&
	    ver_cmp(&v, fam->idempotence) < 0)
		km_sb_printf(&why, "%sidempotence needs %s %s or later", why.len ? "; " : "",
			     fam->label, fam->idempotence);
	if (producer && txn == KM_PLAN_YES && fam->transactions &&
	    ver_cmp(&v, fam->transactions) < 0)
		km_sb_printf(&why, "%stransactions need %s %s or later",
			     why.len ? "; " : "", fam->label, fam->transactions);
	/* librdkafka before 2.6.1 repeats the client nonce in the SCRAM
	 * client-final message (librdkafka #4895); Kafka 3.8.1-3.9 tolerate
	 * it, Kafka 4 refuses the login (tests/cluster/kafka-cluster found it). */
	if (fam->rdkafka_numbers && c->kip896 && t->sasl_mechanism &&
	    !strncmp(t->sasl_mechanism, "SCRAM-", 6) && ver_cmp(&v, "2.6.1") < 0)
		km_sb_printf(&why, "%s%s %s cannot log in with %s to a Kafka 4 broker: "
				   "SCRAM needs librdkafka 2.6.1 or later (librdkafka "
				   "#4895)",
			     why.len ? "; " : "", fam->label, version, t->sasl_mechanism);

	/* What the declared use needs from the broker. */
	if (!c->api_known) {
		km_sb_printf(&why, "%sunknown: the target's ApiVersions could not "
				   "be read",
			     why.len ? "; " : "");
	} else if (producer) {
		need_apis(c, REQ_PRODUCE, &apis);
		if (idem != KM_PLAN_NO || txn != KM_PLAN_NO)
			need_apis(c, REQ_IDEMPOTENCE, &apis);
		if (txn != KM_PLAN_NO)
			need_apis(c, REQ_TRANSACTIONS, &apis);
	} else {
		need_apis(c, REQ_CONSUME, &apis);
	}
	if (apis.len)
		km_sb_printf(&why, "%s%s", why.len ? "; " : "", km_sb_str(&apis));
verdict:
	if (why.len)
		chk_nogo(&ck, "%s", km_sb_str(&why));
	else if (c->kip896)
		chk_go(&ck, "%s %s is at or past %s, the KIP-896 floor for %s; the "
			    "target offers every API its declared use needs",
		       fam->label, version, fam->floor, fam->label);
	else
		chk_go(&ck, "%s %s: the target keeps the protocol versions KIP-896 "
			    "removed, so no version floor applies; it offers every "
			    "API the declared use needs",
		       fam->label, version);
	km_sb_free(&why);
	km_sb_free(&apis);
}

static void check_clients(ctx_t *c)
{
	const km_plan_t *p = c->plan;

	for (size_t i = 0; i < p->producers_cnt; i++)
		check_client(c, "producer", p->producers[i].name,
			     p->producers[i].client, p->producers[i].client_version,
			     p->producers[i].idempotence, p->producers[i].transactions);
	for (size_t i = 0; i < p->consumers_cnt; i++)
		check_client(c, "consumer", p->consumers[i].name,
			     p->consumers[i].client, p->consumers[i].client_version,
			     KM_PLAN_NO, KM_PLAN_NO);
	if (!p->producers_cnt && !p->consumers_cnt) {
		chk_t ck;
		chk_begin(&ck, c, "clients");
		chk_try(&ck, "looked for producers and consumers in the plan");
		chk_nogo(&ck, "unknown: the plan declares no producers or consumers, "
			      "so which clients will talk to the target is unknown "
			      "(declare them with client and client_version)");
	}
}

/* The endpoint of one of the plan's clusters, for kmigrate's own clients:
 * the plan's settings plus client telemetry (KIP-714) off.  A librdkafka
 * instance that pushes metrics waits for the last push when destroyed,
 * often a whole second; a canary has no metrics worth that, and the gate
 * makes some twenty instances. */
static km_err_t endpoint_for(const km_plan_cluster_t *pc, km_kafka_endpoint_t *ep,
			     char *errstr, size_t errstr_size)
{
	size_t np = 0;
	const char **props;
	km_err_t err;

	if ((err = km_kafka_endpoint_from_plan(pc, ep, errstr, errstr_size)))
		return err;
	while (ep->props && ep->props[np])
		np++;
	props = km_calloc(np + 3, sizeof(*props));
	for (size_t i = 0; i < np; i++)
		props[i] = ep->props[i];
	props[np] = "enable.metrics.push";
	props[np + 1] = "false";
	free(ep->props);
	ep->props = props;
	return KM_ERR_OK;
}

/* ---- the source's record size limits ------------------------------------- */

/* Reads the largest max.message.bytes of the in-scope source topics: the
 * record size the migrated topics must accept.  kmigrate's target design
 * makes every topic's effective value equal to the source's (an override
 * copied, or a source broker default pinned as an override), so that is
 * the size a topic override on the target must honour.  With no topic in
 * scope, the source broker's message.max.bytes stands in: any topic created
 * later inherits it. */
static void read_source_sizes(ctx_t *c)
{
	km_kafka_t *ks = NULL;
	const struct rd_kafka_metadata *md = NULL;
	res_t *res = NULL;
	json_t *cfgs = json_object();
	char errstr[1024], bid[32];
	size_t nres = 0;
	int64_t t0 = km_mono_ms();
	rd_kafka_resp_err_t rerr;

	if (c->opts->topic_bytes > 0) {
		c->need_all = c->opts->topic_bytes;
		c->need_all_source = "given with --topic-bytes";
		snprintf(c->need_all_topic, sizeof(c->need_all_topic), "-");
		c->need_known = true;
		goto done;
	}
	/* Opened by km_compat_check(), which fails before any check when the
	 * source cannot be used; released here, its only reader. */
	ks = c->src;
	c->src = NULL;
	if ((rerr = rd_kafka_metadata(km_kafka_rk(ks), 1, NULL, &md, c->tmo))) {
		km_kafka_err(ks, rerr, "Metadata", NULL, errstr, sizeof(errstr));
		snprintf(c->need_err, sizeof(c->need_err), "%s", errstr);
		goto done;
	}
	res = km_calloc((size_t)md->topic_cnt + 1, sizeof(*res));
	for (int i = 0; i < md->topic_cnt; i++)
		if (!md->topics[i].err &&
		    km_plan_topic_in_scope(c->plan, md->topics[i].topic))
			res[nres++] = (res_t){RD_KAFKA_RESOURCE_TOPIC, md->topics[i].topic};
	c->need_topics = (int)nres;
	snprintf(bid, sizeof(bid), "%d", md->broker_cnt ? md->brokers[0].id : 1);
	res[nres++] = (res_t){RD_KAFKA_RESOURCE_BROKER, bid};
	if (describe_configs(ks, c->tmo, res, nres, cfgs, errstr, sizeof(errstr))) {
		snprintf(c->need_err, sizeof(c->need_err), "%s", errstr);
		goto done;
	}
	const char *bv = cfg_value(json_object_get(cfgs, bid), "message.max.bytes");
	if (!bv || km_parse_i64(bv, &c->source_default)) {
		snprintf(c->need_err, sizeof(c->need_err),
			 "the source broker's message.max.bytes could not be read");
		goto done;
	}
	c->need_all = -1;
	for (size_t i = 0; i + 1 < nres; i++) {
		json_t *cfg = json_object_get(cfgs, res[i].name);
		json_t *e = json_object_get(cfg, "max.message.bytes");
		const char *val = json_string_value(json_object_get(e, "value"));
		const char *src = json_string_value(json_object_get(e, "source"));
		int64_t n;

		if (!val || km_parse_i64(val, &n)) {
			snprintf(c->need_err, sizeof(c->need_err),
				 "max.message.bytes of source topic '%s' could not be "
				 "read: %s",
				 res[i].name,
				 json_string_value(json_object_get(cfg, "error"))
					 ? json_string_value(json_object_get(cfg, "error"))
					 : "no value");
			goto done;
		}
		if (n > c->need_all) {
			c->need_all = n;
			c->need_all_source = src && !strcmp(src, "topic")
						     ? "a topic override"
						     : "inherited from the source broker";
			snprintf(c->need_all_topic, sizeof(c->need_all_topic), "%s",
				 res[i].name);
		}
	}
	if (c->need_all < 0) {
		c->need_all = c->source_default;
		c->need_all_source = "the source broker's message.max.bytes: no topic "
				     "is in scope yet";
		snprintf(c->need_all_topic, sizeof(c->need_all_topic), "-");
	}
	c->need_known = true;
done:
	if (md)
		rd_kafka_metadata_destroy(md);
	json_decref(cfgs);
	free(res);
	km_kafka_close(ks);
	c->need_ms = km_mono_ms() - t0;
}

/* ---- canary names and leftovers -------------------------------------------- */

static void random_hex(char *buf, size_t ndigits)
{
	unsigned char b[32];
	size_t nb = (ndigits + 1) / 2;

	if (nb > sizeof(b))
		nb = sizeof(b);
	if (getrandom(b, nb, 0) != (ssize_t)nb) {
		/* No entropy source: time and pid still make a run unique. */
		uint64_t x = (uint64_t)km_now_ms() ^ ((uint64_t)getpid() << 32);
		for (size_t i = 0; i < nb; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			b[i] = (unsigned char)x;
		}
	}
	for (size_t i = 0; i < ndigits && i / 2 < nb; i++)
		buf[i] = "0123456789abcdef"[(b[i / 2] >> ((i % 2) ? 0 : 4)) & 0xf];
	buf[ndigits] = '\0';
}

/* Deletes canaries earlier runs of this migration left behind (a run that
 * was killed cannot clean up after itself). */
static void clean_leftovers(ctx_t *c)
{
	rd_kafka_t *rk = km_kafka_rk(c->k);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *o = km_kafka_admin_options(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS, c->tmo);
	rd_kafka_event_t *ev = NULL;
	const char **topics = NULL;
	size_t ntopics = 0, plen = strlen(c->prefix);
	char errstr[1024];
	int64_t t0 = km_mono_ms();
	rd_kafka_resp_err_t rerr;

	if ((rerr = rd_kafka_metadata(rk, 1, NULL, &md, c->tmo))) {
		km_kafka_err(c->k, rerr, "Metadata (leftover canaries)", NULL, errstr,
			     sizeof(errstr));
		km_sb_printf(&c->cleanup_err, "%s%s", c->cleanup_err.len ? "; " : "", errstr);
	} else {
		topics = km_calloc((size_t)md->topic_cnt + 1, sizeof(*topics));
		for (int i = 0; i < md->topic_cnt; i++)
			if (!strncmp(md->topics[i].topic, c->prefix, plen)) {
				topics[ntopics++] = md->topics[i].topic;
				json_array_append_new(c->leftovers,
						      json_sprintf("topic %s", md->topics[i].topic));
			}
		if (delete_topics(c, topics, ntopics, errstr, sizeof(errstr)))
			km_sb_printf(&c->cleanup_err, "%sleftover topics: %s",
				     c->cleanup_err.len ? "; " : "", errstr);
	}
	rd_kafka_ListConsumerGroups(rk, o, q);
	if (km_kafka_wait(c->k, q, RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT,
			  c->tmo + 1000, "ListConsumerGroups", &ev, errstr,
			  sizeof(errstr))) {
		km_sb_printf(&c->cleanup_err, "%sleftover groups: %s",
			     c->cleanup_err.len ? "; " : "", errstr);
	} else {
		size_t n;
		const rd_kafka_ConsumerGroupListing_t **gl =
			rd_kafka_ListConsumerGroups_result_valid(
				rd_kafka_event_ListConsumerGroups_result(ev), &n);
		for (size_t i = 0; i < n; i++) {
			const char *g = rd_kafka_ConsumerGroupListing_group_id(gl[i]);
			if (strncmp(g, c->prefix, plen))
				continue;
			json_array_append_new(c->leftovers, json_sprintf("group %s", g));
			if (delete_group(c, g, NULL, errstr, sizeof(errstr)))
				km_sb_printf(&c->cleanup_err, "%sleftover group: %s",
					     c->cleanup_err.len ? "; " : "", errstr);
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	free(topics);
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
	c->cleanup_ms += km_mono_ms() - t0;
}

/* ---- checks: admin operations ------------------------------------------- */

static void check_create_topic(ctx_t *c)
{
	/* Short retention: a canary that outlives a killed run ages out even
	 * before the next run deletes it. */
	static const char *cfg[] = {"retention.ms", "600000", NULL};
	char errstr[1024];
	chk_t ck;

	chk_begin(&ck, c, "admin.create_topic");
	if (!chk_can_run(&ck, false)) {
		snprintf(c->topic_err, sizeof(c->topic_err), "interrupted");
		return;
	}
	chk_try(&ck, "CreateTopics '%s' (%d partitions, the target's default "
		     "replication factor, retention.ms=600000)",
		c->topic, CANARY_PARTITIONS);
	chk_try(&ck, "wait until metadata shows a leader for every partition");
	if (create_topic(c, c->topic, CANARY_PARTITIONS, cfg, errstr, sizeof(errstr))) {
		snprintf(c->topic_err, sizeof(c->topic_err), "%s", errstr);
		chk_nogo(&ck, "%s", errstr);
		/* A topic whose leaders never showed still needs deleting. */
		c->topic_made = false;
		return;
	}
	c->topic_made = true;
	chk_go(&ck, "created '%s' and every partition has a leader", c->topic);
}

static void check_describe_configs(ctx_t *c)
{
	json_t *out = json_object(), *node = json_array_get(c->nodes, 0);
	char errstr[1024], bid[32];
	res_t res[2];
	size_t n = 0;
	chk_t ck;

	chk_begin(&ck, c, "admin.describe_configs");
	if (!chk_can_run(&ck, false)) {
		snprintf(c->broker_cfg_err, sizeof(c->broker_cfg_err), "not run");
		goto done;
	}
	/* The broker's configs are read even without a canary topic: the
	 * ACL and transaction checks need them. */
	snprintf(bid, sizeof(bid), "%" JSON_INTEGER_FORMAT,
		 node ? json_integer_value(json_object_get(node, "id")) : (json_int_t)1);
	res[n++] = (res_t){RD_KAFKA_RESOURCE_BROKER, bid};
	if (c->topic_made)
		res[n++] = (res_t){RD_KAFKA_RESOURCE_TOPIC, c->topic};
	chk_try(&ck, "DescribeConfigs of broker %s%s%s", bid,
		c->topic_made ? " and topic " : "", c->topic_made ? c->topic : "");
	if (describe_configs(c->k, c->tmo, res, n, out, errstr, sizeof(errstr))) {
		snprintf(c->broker_cfg_err, sizeof(c->broker_cfg_err), "%s", errstr);
		chk_nogo(&ck, "%s", errstr);
		goto done;
	}
	json_t *bcfg = json_object_get(out, bid), *tcfg = json_object_get(out, c->topic);
	if (!bcfg || json_object_get(bcfg, "error")) {
		snprintf(c->broker_cfg_err, sizeof(c->broker_cfg_err), "%s",
			 bcfg ? json_string_value(json_object_get(bcfg, "error"))
			      : "no answer for the broker");
		chk_nogo(&ck, "DescribeConfigs of broker %s refused: %s", bid,
			 c->broker_cfg_err);
		goto done;
	}
	c->broker_cfg = json_incref(bcfg);
	if (!c->topic_made) {
		chk_nogo(&ck, "broker %s: %zu configs; the canary topic's configs "
			      "could not be read: it could not be created (%s)",
			 bid, json_object_size(bcfg), c->topic_err);
		goto done;
	}
	if (!tcfg || json_object_get(tcfg, "error")) {
		chk_nogo(&ck, "DescribeConfigs of topic '%s' refused: %s", c->topic,
			 tcfg ? json_string_value(json_object_get(tcfg, "error"))
			      : "no answer for the topic");
		goto done;
	}
	if (!cfg_value(tcfg, "retention.ms") ||
	    strcmp(cfg_value(tcfg, "retention.ms"), "600000")) {
		chk_nogo(&ck, "the canary topic's retention.ms reads '%s', not the "
			      "600000 it was created with",
			 cfg_value(tcfg, "retention.ms") ? cfg_value(tcfg, "retention.ms")
							 : "(none)");
		goto done;
	}
	chk_go(&ck, "broker %s: %zu configs (message.max.bytes=%s); topic: %zu "
		    "configs (retention.ms=600000 as created)",
	       bid, json_object_size(bcfg),
	       cfg_value(bcfg, "message.max.bytes") ? cfg_value(bcfg, "message.max.bytes")
						    : "?",
	       json_object_size(tcfg));
done:
	json_decref(out);
}

static void check_alter_configs(ctx_t *c)
{
	rd_kafka_t *rk = km_kafka_rk(c->k);
	int64_t deadline;
	char errstr[1024];
	chk_t ck;

	chk_begin(&ck, c, "admin.alter_configs");
	if (!chk_can_run(&ck, true))
		return;
	chk_try(&ck, "IncrementalAlterConfigs SET retention.ms=3600000 on '%s'", c->topic);
	{
		rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
		rd_kafka_AdminOptions_t *o =
			km_kafka_admin_options(rk, RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS, c->tmo);
		rd_kafka_ConfigResource_t *r =
			rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, c->topic);
		rd_kafka_event_t *ev = NULL;
		rd_kafka_error_t *e = rd_kafka_ConfigResource_add_incremental_config(
			r, "retention.ms", RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET, "3600000");
		km_err_t err;

		if (e)
			KM_BUG("incremental config: %s", rd_kafka_error_string(e));
		rd_kafka_IncrementalAlterConfigs(rk, &r, 1, o, q);
		err = km_kafka_wait(c->k, q, RD_KAFKA_EVENT_INCREMENTALALTERCONFIGS_RESULT,
				    c->tmo + 1000, "IncrementalAlterConfigs", &ev,
				    errstr, sizeof(errstr));
		if (!err) {
			size_t n;
			const rd_kafka_ConfigResource_t **rr =
				rd_kafka_IncrementalAlterConfigs_result_resources(
					rd_kafka_event_IncrementalAlterConfigs_result(ev), &n);
			for (size_t i = 0; i < n && !err; i++)
				if (rd_kafka_ConfigResource_error(rr[i]))
					err = km_kafka_err(c->k, rd_kafka_ConfigResource_error(rr[i]),
							   "IncrementalAlterConfigs",
							   rd_kafka_ConfigResource_error_string(rr[i]),
							   errstr, sizeof(errstr));
		}
		if (ev)
			rd_kafka_event_destroy(ev);
		rd_kafka_ConfigResource_destroy(r);
		rd_kafka_AdminOptions_destroy(o);
		rd_kafka_queue_destroy(q);
		if (err) {
			chk_nogo(&ck, "%s", errstr);
			return;
		}
	}
	/* The change is acknowledged by the controller; wait on the
	 * condition that a DescribeConfigs shows it. */
	chk_try(&ck, "DescribeConfigs until retention.ms reads 3600000");
	deadline = km_mono_ms() + c->tmo;
	for (;;) {
		json_t *out = json_object();
		res_t res = {RD_KAFKA_RESOURCE_TOPIC, c->topic};
		km_err_t err = describe_configs(c->k, c->tmo, &res, 1, out, errstr,
						sizeof(errstr));
		const char *v = err ? NULL : cfg_value(json_object_get(out, c->topic),
						       "retention.ms");
		bool ok = v && !strcmp(v, "3600000");
		json_decref(out);
		if (ok)
			break;
		if (err) {
			chk_nogo(&ck, "%s", errstr);
			return;
		}
		if (km_mono_ms() >= deadline) {
			chk_nogo(&ck, "retention.ms still reads '%s' %d ms after "
				      "IncrementalAlterConfigs succeeded",
				 v ? v : "(none)", c->tmo);
			return;
		}
		rd_kafka_poll(rk, 100);
	}
	chk_go(&ck, "retention.ms changed from 600000 to 3600000 and reads back");
}

static void check_describe_acls(ctx_t *c)
{
	rd_kafka_t *rk = km_kafka_rk(c->k);
	const char *authz;
	char ferr[256], errstr[1024];
	chk_t ck;

	chk_begin(&ck, c, "admin.describe_acls");
	if (!chk_can_run(&ck, false))
		return;
	/* librdkafka (2.8) drops DescribeAcls' top-level error, so a target
	 * without an authorizer (SECURITY_DISABLED) would look like one with
	 * no ACLs.  The broker's authorizer.class.name tells them apart. */
	chk_try(&ck, "read authorizer.class.name from the broker config");
	if (!c->broker_cfg) {
		chk_nogo(&ck, "unknown: the broker config could not be read (%s), so "
			      "whether the target has an authorizer is unknown",
			 c->broker_cfg_err);
		return;
	}
	authz = cfg_value(c->broker_cfg, "authorizer.class.name");
	if (!authz || !*authz) {
		chk_nogo(&ck, "the target has no authorizer (authorizer.class.name "
			      "is empty): ACLs cannot be re-created there and "
			      "DescribeAcls answers SECURITY_DISABLED, which "
			      "librdkafka hides");
		return;
	}
	chk_try(&ck, "DescribeAcls for every resource");
	rd_kafka_AclBindingFilter_t *f = rd_kafka_AclBindingFilter_new(
		RD_KAFKA_RESOURCE_ANY, NULL, RD_KAFKA_RESOURCE_PATTERN_ANY, NULL,
		NULL, RD_KAFKA_ACL_OPERATION_ANY, RD_KAFKA_ACL_PERMISSION_TYPE_ANY,
		ferr, sizeof(ferr));
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *o = km_kafka_admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBEACLS, c->tmo);
	rd_kafka_event_t *ev = NULL;

	rd_kafka_DescribeAcls(rk, f, o, q);
	if (km_kafka_wait(c->k, q, RD_KAFKA_EVENT_DESCRIBEACLS_RESULT, c->tmo + 1000,
			  "DescribeAcls", &ev, errstr, sizeof(errstr))) {
		chk_nogo(&ck, "%s", errstr);
	} else {
		size_t n;
		rd_kafka_DescribeAcls_result_acls(rd_kafka_event_DescribeAcls_result(ev), &n);
		chk_go(&ck, "authorizer %s; DescribeAcls answered with %zu binding%s",
		       authz, n, n == 1 ? "" : "s");
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AclBinding_destroy(f);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
}

/* ---- checks: producing --------------------------------------------------- */

/* A canary payload: recognisable, unique to this run, and compressible so
 * that a codec really has something to do. */
static char *canary_payload(ctx_t *c, const char *what, int i, size_t *lenp)
{
	km_sb_t sb = KM_SB_INIT;

	km_sb_printf(&sb, "kmigrate canary %s #%d of %s |", what, i, c->topic);
	for (int r = 0; r < 12; r++)
		km_sb_printf(&sb, " %s-%d-%02d", what, i, r);
	*lenp = sb.len;
	return km_sb_detach(&sb);
}

/* @returns true when got holds exactly want[0..n) in order. */
static bool same_records(const got_t *got, char **want, const size_t *wlen,
			 int n)
{
	if (got->n != n)
		return false;
	for (int i = 0; i < n; i++)
		if (got->len[i] != wlen[i] || memcmp(got->val[i], want[i], wlen[i]))
			return false;
	return true;
}

static void check_idempotent(ctx_t *c)
{
	static const char *extra[] = {"enable.idempotence", "true", "acks", "all",
				      "linger.ms", "5", NULL};
	char *want[CANARY_RECORDS] = {0}, errstr[1024];
	size_t wlen[CANARY_RECORDS];
	rd_kafka_t *rk;
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
	pstate_t ps;
	got_t got = {0};
	const int n = CANARY_RECORDS;
	chk_t ck;

	chk_begin(&ck, c, "produce.idempotent");
	if (!chk_can_run(&ck, true))
		return;
	chk_try(&ck, "produce %d records to '%s'[0] with enable.idempotence=true, "
		     "acks=all",
		n, c->topic);
	if (!(rk = producer_new(c, &ps, extra, errstr, sizeof(errstr)))) {
		chk_nogo(&ck, "%s", errstr);
		goto done;
	}
	for (int i = 0; i < n && !e; i++) {
		want[i] = canary_payload(c, "idempotent", i, &wlen[i]);
		e = produce(rk, &ps, c->topic, 0, NULL, 0, want[i], wlen[i]);
	}
	if (e || (e = await_deliveries(c, rk, &ps, 0))) {
		chk_nogo(&ck, "delivery failed: %s%s%s", rd_kafka_err2str(e),
			 ps.err[0] ? "; client: " : "", ps.err);
		goto done;
	}
	for (int i = 1; i < n; i++)
		if (ps.r[i].offset != ps.r[0].offset + i) {
			chk_nogo(&ck, "delivered at offsets %" PRId64 " and %" PRId64
				      ": not contiguous",
				 ps.r[0].offset, ps.r[i].offset);
			goto done;
		}
	chk_try(&ck, "read offsets %" PRId64 "..%" PRId64 " back and compare bytes",
		ps.r[0].offset, ps.r[n - 1].offset);
	if (read_back(c, c->topic, 0, ps.r[0].offset, ps.r[n - 1].offset + 1,
		      false, &got, errstr, sizeof(errstr))) {
		chk_nogo(&ck, "%s", errstr);
		goto done;
	}
	if (!same_records(&got, want, wlen, n)) {
		chk_nogo(&ck, "read back %d records, not the %d produced byte for byte",
			 got.n, n);
		goto done;
	}
	chk_go(&ck, "%d records delivered at offsets %" PRId64 "..%" PRId64
		    " and read back byte for byte",
	       n, ps.r[0].offset, ps.r[n - 1].offset);
done:
	for (int i = 0; i < n; i++)
		free(want[i]);
	got_free(&got);
	producer_destroy(rk, &ps);
}

/* rd_kafka_error_t to text, destroying it.  @returns false when e is NULL. */
static bool txn_failed(rd_kafka_error_t *e, const char *what, pstate_t *ps,
		       char *errstr, size_t errstr_size)
{
	if (!e)
		return false;
	pthread_mutex_lock(&ps->lock);
	snprintf(errstr, errstr_size, "%s failed: %s: %s%s%s", what,
		 rd_kafka_error_name(e), rd_kafka_error_string(e),
		 ps->warn[0] ? "; client log: " : "", ps->warn);
	pthread_mutex_unlock(&ps->lock);
	rd_kafka_error_destroy(e);
	return true;
}

/* init_transactions() within the step's deadline, in slices so that an
 * interruption is seen: a timed-out call is resumed by calling again. */
static rd_kafka_error_t *init_transactions(ctx_t *c, rd_kafka_t *rk)
{
	int64_t deadline = km_mono_ms() + c->tmo;

	for (;;) {
		int64_t left = deadline - km_mono_ms();
		rd_kafka_error_t *e = rd_kafka_init_transactions(
			rk, left < 500 ? (left > 0 ? (int)left : 1) : 500);
		if (!e || !rd_kafka_error_is_retriable(e) ||
		    km_mono_ms() >= deadline || stopped(c))
			return e;
		rd_kafka_error_destroy(e);
	}
}

static void check_transactions(ctx_t *c)
{
	char tmo[32], ttmo[32], errstr[1024];
	const char *extra[] = {"transactional.id", c->txn_id,
			       "enable.idempotence", "true",
			       "acks", "all",
			       "transaction.timeout.ms", ttmo,
			       "message.timeout.ms", tmo,
			       /* only for the coordinator lookup's reason */
			       "debug", "eos",
			       NULL};
	char *want[2 * CANARY_RECORDS] = {0};
	size_t wlen[2 * CANARY_RECORDS];
	rd_kafka_t *rk = NULL;
	rd_kafka_resp_err_t e;
	int64_t lo, hw;
	pstate_t ps;
	got_t rc = {0}, ru = {0};
	chk_t ck;

	snprintf(tmo, sizeof(tmo), "%d", c->tmo);
	/* The transaction must outlive every step of the check. */
	snprintf(ttmo, sizeof(ttmo), "%d", c->tmo * 4 > 60000 ? c->tmo * 4 : 60000);
	chk_begin(&ck, c, "transactions");
	if (!chk_can_run(&ck, true))
		return;
	chk_try(&ck, "init_transactions with transactional.id '%s' (deadline %d ms)",
		c->txn_id, c->tmo);
	if (!(rk = producer_new(c, &ps, extra, errstr, sizeof(errstr)))) {
		chk_nogo(&ck, "%s", errstr);
		return;
	}
	if (txn_failed(init_transactions(c, rk),
		       "init_transactions (a producer id from the transaction "
		       "coordinator)",
		       &ps, errstr, sizeof(errstr))) {
		km_sb_t why = KM_SB_INIT;
		const char *rf = c->broker_cfg ? cfg_value(c->broker_cfg,
			"transaction.state.log.replication.factor") : NULL;
		int64_t nrf;

		if (stopped(c))
			km_sb_puts(&why, "not finished: interrupted; ");
		km_sb_puts(&why, errstr);
		pthread_mutex_lock(&ps.lock);
		if (ps.txncoord[0])
			km_sb_printf(&why, "; librdkafka: %s", ps.txncoord);
		pthread_mutex_unlock(&ps.lock);
		/* The usual cause: the transaction state topic cannot be
		 * created with the replication factor the broker demands. */
		if (rf && !km_parse_i64(rf, &nrf) &&
		    nrf > (int64_t)json_array_size(c->nodes))
			km_sb_printf(&why, "; the target's transaction.state.log."
				     "replication.factor=%s exceeds its %zu broker%s, "
				     "so __transaction_state cannot be created and no "
				     "transaction coordinator can exist",
				     rf, json_array_size(c->nodes),
				     json_array_size(c->nodes) == 1 ? "" : "s");
		chk_nogo(&ck, "%s", km_sb_str(&why));
		km_sb_free(&why);
		goto done;
	}
	chk_try(&ck, "commit %d records to '%s'[0]", CANARY_RECORDS, c->topic);
	for (int i = 0; i < 2 * CANARY_RECORDS; i++)
		want[i] = canary_payload(c, i < CANARY_RECORDS ? "committed" : "aborted",
					 i, &wlen[i]);
	if (txn_failed(rd_kafka_begin_transaction(rk), "begin_transaction", &ps,
		       errstr, sizeof(errstr)))
		goto fail;
	for (int i = 0; i < CANARY_RECORDS; i++)
		if ((e = produce(rk, &ps, c->topic, 0, NULL, 0, want[i], wlen[i]))) {
			snprintf(errstr, sizeof(errstr), "produce: %s", rd_kafka_err2str(e));
			goto fail;
		}
	if ((e = await_deliveries(c, rk, &ps, 0))) {
		snprintf(errstr, sizeof(errstr), "delivery: %s", rd_kafka_err2str(e));
		goto fail;
	}
	if (txn_failed(rd_kafka_commit_transaction(rk, c->tmo), "commit_transaction",
		       &ps, errstr, sizeof(errstr)))
		goto fail;
	/* The aborted records are written first (flushed), then aborted: they
	 * sit in the log and only the abort marker hides them. */
	chk_try(&ck, "write %d more and abort them", CANARY_RECORDS);
	if (txn_failed(rd_kafka_begin_transaction(rk), "begin_transaction", &ps,
		       errstr, sizeof(errstr)))
		goto fail;
	for (int i = CANARY_RECORDS; i < 2 * CANARY_RECORDS; i++)
		if ((e = produce(rk, &ps, c->topic, 0, NULL, 0, want[i], wlen[i]))) {
			snprintf(errstr, sizeof(errstr), "produce: %s", rd_kafka_err2str(e));
			goto fail;
		}
	if ((e = await_deliveries(c, rk, &ps, CANARY_RECORDS))) {
		snprintf(errstr, sizeof(errstr), "delivery: %s", rd_kafka_err2str(e));
		goto fail;
	}
	if (txn_failed(rd_kafka_abort_transaction(rk, c->tmo), "abort_transaction",
		       &ps, errstr, sizeof(errstr)))
		goto fail;
	/* Read up to just past the last aborted record.  Not the watermark
	 * that ListOffsets reports: the admin client asks it with
	 * read_committed, which answers the last stable offset.  The
	 * read_committed reader reaches that end only once the abort marker
	 * is written (EndTxn returns before the markers are). */
	lo = ps.r[0].offset;
	hw = ps.r[2 * CANARY_RECORDS - 1].offset + 1;
	chk_try(&ck, "read offsets %" PRId64 "..%" PRId64 " with read_committed and "
		     "with read_uncommitted",
		lo, hw - 1);
	if (read_back(c, c->topic, 0, lo, hw, true, &rc, errstr, sizeof(errstr)) ||
	    read_back(c, c->topic, 0, lo, hw, false, &ru, errstr, sizeof(errstr)))
		goto fail;
	if (!same_records(&rc, want, wlen, CANARY_RECORDS)) {
		km_sb_t seen = KM_SB_INIT;
		for (int i = 0; i < rc.n; i++)
			km_sb_printf(&seen, "%s%" PRId64, i ? "," : "", rc.off[i]);
		snprintf(errstr, sizeof(errstr),
			 "read_committed saw %d records (offsets %s before %" PRId64 "), "
			 "not exactly the %d committed",
			 rc.n, km_sb_str(&seen), hw, CANARY_RECORDS);
		km_sb_free(&seen);
		goto fail;
	}
	if (!same_records(&ru, want, wlen, 2 * CANARY_RECORDS)) {
		km_sb_t seen = KM_SB_INIT;
		for (int i = 0; i < ru.n; i++)
			km_sb_printf(&seen, "%s%" PRId64, i ? "," : "", ru.off[i]);
		snprintf(errstr, sizeof(errstr),
			 "read_uncommitted saw %d records (offsets %s before %" PRId64 "), "
			 "not the %d committed and aborted ones",
			 ru.n, km_sb_str(&seen), hw, 2 * CANARY_RECORDS);
		km_sb_free(&seen);
		goto fail;
	}
	chk_go(&ck, "committed %d records at %" PRId64 "..%" PRId64 ", aborted %d at "
		    "%" PRId64 "..%" PRId64 "; read_committed saw only the %d "
		    "committed, read_uncommitted all %d",
	       CANARY_RECORDS, ps.r[0].offset, ps.r[CANARY_RECORDS - 1].offset,
	       CANARY_RECORDS, ps.r[CANARY_RECORDS].offset,
	       ps.r[2 * CANARY_RECORDS - 1].offset, rc.n, ru.n);
	goto done;
fail:
	chk_nogo(&ck, "%s", errstr);
done:
	for (int i = 0; i < 2 * CANARY_RECORDS; i++)
		free(want[i]);
	got_free(&rc);
	got_free(&ru);
	producer_destroy(rk, &ps);
}

static void check_compression(ctx_t *c, const char *codec)
{
	const char *extra[] = {"compression.codec", codec, "acks", "all",
			       "enable.idempotence", "true",
			       /* one batch for all the records */
			       "linger.ms", "100", NULL};
	char *want[CANARY_RECORDS] = {0}, errstr[1024];
	size_t wlen[CANARY_RECORDS];
	rd_kafka_t *rk = NULL;
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
	pstate_t ps;
	got_t got = {0};
	chk_t ck;

	chk_begin(&ck, c, "compression.%s", codec);
	if (!chk_can_run(&ck, true))
		return;
	chk_try(&ck, "produce %d compressible records to '%s'[0] with "
		     "compression.codec=%s",
		CANARY_RECORDS, c->topic, codec);
	if (!(rk = producer_new(c, &ps, extra, errstr, sizeof(errstr)))) {
		/* librdkafka refuses a codec it was built without. */
		chk_nogo(&ck, "unknown: this kmigrate cannot produce with %s: %s",
			 codec, errstr);
		return;
	}
	for (int i = 0; i < CANARY_RECORDS && !e; i++) {
		want[i] = canary_payload(c, codec, i, &wlen[i]);
		e = produce(rk, &ps, c->topic, 0, NULL, 0, want[i], wlen[i]);
	}
	if (e || (e = await_deliveries(c, rk, &ps, 0))) {
		chk_nogo(&ck, "delivery failed: %s%s%s", rd_kafka_err2str(e),
			 ps.err[0] ? "; client: " : "", ps.err);
		goto done;
	}
	pthread_mutex_lock(&ps.lock);
	if (ps.compression[0]) {
		chk_nogo(&ck, "the batch went out uncompressed: %s", ps.compression);
		pthread_mutex_unlock(&ps.lock);
		goto done;
	}
	pthread_mutex_unlock(&ps.lock);
	chk_try(&ck, "read offsets %" PRId64 "..%" PRId64 " back and compare bytes",
		ps.r[0].offset, ps.r[CANARY_RECORDS - 1].offset);
	if (read_back(c, c->topic, 0, ps.r[0].offset,
		      ps.r[CANARY_RECORDS - 1].offset + 1, false, &got, errstr,
		      sizeof(errstr))) {
		chk_nogo(&ck, "%s", errstr);
		goto done;
	}
	if (!same_records(&got, want, wlen, CANARY_RECORDS)) {
		chk_nogo(&ck, "read back %d records, not the %d produced byte for byte",
			 got.n, CANARY_RECORDS);
		goto done;
	}
	chk_go(&ck, "%d %s-compressed records delivered at %" PRId64 "..%" PRId64
		    " and read back byte for byte",
	       CANARY_RECORDS, codec, ps.r[0].offset, ps.r[CANARY_RECORDS - 1].offset);
done:
	for (int i = 0; i < CANARY_RECORDS; i++)
		free(want[i]);
	got_free(&got);
	producer_destroy(rk, &ps);
}

/* ---- checks: record size limits ------------------------------------------ */

/* Bytes of a zig-zag varint, as record fields are written (KIP-98). */
static int64_t varint_len(int64_t v)
{
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	int64_t n = 1;

	while (z >= 0x80) {
		z >>= 7;
		n++;
	}
	return n;
}

/* Size of a v2 record batch holding one uncompressed record with a key of
 * klen bytes (-1: null), a value of vlen bytes and no headers.  The broker
 * compares exactly this with max.message.bytes (the batch's sizeInBytes):
 *   61 bytes of batch header (base offset 8, length 4, leader epoch 4,
 *   magic 1, crc 4, attributes 2, last offset delta 4, first and max
 *   timestamp 8+8, producer id 8, epoch 2, base sequence 4, count 4),
 *   then the record: varint length, attributes 1, timestamp delta (0: 1),
 *   offset delta (0: 1), varint key length + key, varint value length +
 *   value, varint header count (0: 1). */
static int64_t batch_bytes(int64_t klen, int64_t vlen)
{
	int64_t body = 1 + 1 + 1 + varint_len(klen) + (klen > 0 ? klen : 0) +
		       varint_len(vlen) + vlen + 1;
	return 61 + varint_len(body) + body;
}

/* Finds a key and value length whose batch is exactly `batch` bytes.  Where
 * a varint grows by a byte, no value length hits the target with a null key;
 * a one-byte key then fills the gap.  @returns false when batch is below a
 * one-record batch. */
static bool size_record(int64_t batch, int64_t *klenp, int64_t *vlenp)
{
	for (int64_t klen = -1; klen <= 2; klen++) {
		if (klen == 0)
			continue;
		int64_t v = batch - 70 > 0 ? batch - 70 : 0;
		/* batch_bytes grows with v by 1, or by up to 3 at a varint
		 * boundary: step down from above until it fits. */
		while (v > 0 && batch_bytes(klen, v) > batch)
			v--;
		while (batch_bytes(klen, v + 1) <= batch)
			v++;
		if (batch_bytes(klen, v) == batch) {
			*klenp = klen;
			*vlenp = v;
			return true;
		}
	}
	return false;
}

/* A producer for records up to max_batch bytes: uncompressed, not
 * idempotent, no lingering, and its own message.max.bytes well above the
 * batch so that librdkafka never refuses a record first: the broker
 * decides. */
static rd_kafka_t *sized_producer(ctx_t *c, int64_t max_batch, pstate_t *ps,
				  char *errstr, size_t errstr_size)
{
	char mmb[32], tmo[32];
	int64_t limit = max_batch + 1048576 < RDKAFKA_MAX_MSG ? max_batch + 1048576
							      : RDKAFKA_MAX_MSG;
	const char *extra[] = {"message.max.bytes", mmb, "batch.size", mmb,
			       "compression.codec", "none", "acks", "all",
			       "enable.idempotence", "false", "linger.ms", "0",
			       "message.timeout.ms", tmo, NULL};

	snprintf(mmb, sizeof(mmb), "%" PRId64, limit);
	snprintf(tmo, sizeof(tmo), "%d", c->tmo);
	return producer_new(c, ps, extra, errstr, errstr_size);
}

/* Produces one record whose batch is exactly `batch` bytes, alone (the
 * previous one was delivered first, so no other record shares its batch),
 * and waits for its delivery report.  @returns the delivery error; *offp is
 * the offset on success, *valp the value (owned) for comparing what is read
 * back. */
static rd_kafka_resp_err_t produce_sized(ctx_t *c, rd_kafka_t *rk, pstate_t *ps,
					 const char *topic, int partition,
					 int64_t batch, int64_t *offp, char **valp,
					 int64_t *vlenp, char *errstr,
					 size_t errstr_size)
{
	int64_t klen, vlen;
	int idx = ps->sent;
	rd_kafka_resp_err_t e;
	char *val;

	*valp = NULL;
	if (batch >= RDKAFKA_MAX_MSG || !size_record(batch, &klen, &vlen)) {
		snprintf(errstr, errstr_size, "a %" PRId64 "-byte batch cannot be built "
			 "with one record", batch);
		return RD_KAFKA_RESP_ERR__INVALID_ARG;
	}
	val = km_malloc((size_t)vlen + 1);
	for (int64_t i = 0; i < vlen; i++)
		val[i] = (char)('a' + (i * 7 + batch) % 26);
	e = produce(rk, ps, topic, partition, klen > 0 ? "k" : NULL,
		    klen > 0 ? (size_t)klen : 0, val, (size_t)vlen);
	if (e)
		snprintf(errstr, errstr_size, "librdkafka refused the record before "
			 "sending it: %s", rd_kafka_err2str(e));
	else if ((e = await_deliveries(c, rk, ps, idx)))
		snprintf(errstr, errstr_size, "%s: %s", rd_kafka_err2name(e),
			 rd_kafka_err2str(e));
	else
		*offp = ps->r[idx].offset;
	*vlenp = vlen;
	*valp = val;
	return e;
}

static bool too_large(rd_kafka_resp_err_t e)
{
	/* MESSAGE_TOO_LARGE (librdkafka's MSG_SIZE_TOO_LARGE, 10) for a
	 * batch over max.message.bytes; RECORD_LIST_TOO_LARGE (18) where a
	 * broker judges the whole record set. */
	return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
	       e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

static void check_max_message_bytes(ctx_t *c)
{
	char cfg_v[32], errstr[1024];
	const char *cfg[] = {"max.message.bytes", cfg_v, "retention.ms", "600000", NULL};
	int64_t off = -1, vlen = 0, n = c->need_all;
	char *val = NULL, *val2 = NULL;
	got_t got = {0};
	rd_kafka_t *rk = NULL;
	pstate_t ps;
	rd_kafka_resp_err_t e;
	chk_t ck;

	chk_begin(&ck, c, "max.message.bytes");
	ck.extra_ms = c->need_ms;
	if (!chk_can_run(&ck, false))
		return;
	if (c->opts->topic_bytes <= 0)
		chk_try(&ck, "DescribeConfigs of the in-scope source topics");
	if (!c->need_known) {
		chk_nogo(&ck, "unknown: the size the plan's topics need could not be "
			      "read from the source: %s",
			 c->need_err);
		return;
	}
	snprintf(cfg_v, sizeof(cfg_v), "%" PRId64, n);
	if (c->opts->topic_bytes > 0)
		chk_try(&ck, "size %" PRId64 " %s", n, c->need_all_source);
	else
		chk_try(&ck, "largest max.message.bytes of %d in-scope source topic%s: "
			     "%" PRId64 " ('%s', %s)",
			c->need_topics, c->need_topics == 1 ? "" : "s", n,
			c->need_all_topic, c->need_all_source);
	chk_try(&ck, "CreateTopics '%s' with max.message.bytes=%" PRId64,
		c->size_topic, n);
	if (create_topic(c, c->size_topic, 1, cfg, errstr, sizeof(errstr))) {
		c->size_topic_made = true; /* may exist half-made: delete it */
		chk_nogo(&ck, "the target refused a topic with max.message.bytes=%" PRId64
			      ": %s",
			 n, errstr);
		return;
	}
	c->size_topic_made = true;
	chk_try(&ck, "produce one record in a batch of exactly %" PRId64 " bytes", n);
	if (!(rk = sized_producer(c, n + 1, &ps, errstr, sizeof(errstr)))) {
		chk_nogo(&ck, "%s", errstr);
		goto done;
	}
	if ((e = produce_sized(c, rk, &ps, c->size_topic, 0, n, &off, &val, &vlen,
			       errstr, sizeof(errstr)))) {
		chk_nogo(&ck, "a %" PRId64 "-byte batch (at max.message.bytes) was not "
			      "accepted: %s",
			 n, errstr);
		goto done;
	}
	chk_try(&ck, "read it back");
	if (read_back(c, c->size_topic, 0, off, off + 1, false, &got, errstr,
		      sizeof(errstr))) {
		chk_nogo(&ck, "the %" PRId64 "-byte record was accepted but not read "
			      "back: %s",
			 n, errstr);
		goto done;
	}
	if (got.n != 1 || (int64_t)got.len[0] != vlen || memcmp(got.val[0], val, (size_t)vlen)) {
		chk_nogo(&ck, "the %" PRId64 "-byte record read back differs", n);
		goto done;
	}
	chk_try(&ck, "produce a batch of %" PRId64 " bytes (one over)", n + 1);
	e = produce_sized(c, rk, &ps, c->size_topic, 0, n + 1, &off, &val2, &vlen,
			  errstr, sizeof(errstr));
	if (!e) {
		chk_nogo(&ck, "a %" PRId64 "-byte batch, one byte over max.message.bytes="
			      "%" PRId64 ", was accepted: the limit in force is not "
			      "the one the topic declares",
			 n + 1, n);
		goto done;
	}
	if (!too_large(e)) {
		chk_nogo(&ck, "the %" PRId64 "-byte batch failed, but not as too large: %s",
			 n + 1, errstr);
		goto done;
	}
	chk_go(&ck, "a topic with max.message.bytes=%" PRId64 " accepted a batch of "
		    "exactly that size (one record, %" PRId64 "-byte value) and it read "
		    "back byte for byte; one byte more was refused with %s",
	       n, (int64_t)got.len[0], rd_kafka_err2name(e));
done:
	free(val);
	free(val2);
	got_free(&got);
	producer_destroy(rk, &ps);
}

/* ---- check: consumer group ------------------------------------------------- */

typedef struct member_s {
	const char *label;
	rd_kafka_t *rk;
	bool owned[CANARY_PARTITIONS];
	const char *protocol;
	int commits;
	rd_kafka_resp_err_t commit_err;
	char err[512];
	km_sb_t *events;
} member_t;

static int owned_cnt(const member_t *m)
{
	int n = 0;
	for (int p = 0; p < CANARY_PARTITIONS; p++)
		n += m->owned[p];
	return n;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	member_t *m = opaque;
	bool assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
	bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
	rd_kafka_error_t *e = NULL;

	m->protocol = coop ? "COOPERATIVE" : "EAGER";
	km_sb_printf(m->events, "%s%s%s[", m->events->len ? " " : "", m->label,
		     assign ? "+" : "-");
	for (int i = 0; i < parts->cnt; i++) {
		km_sb_printf(m->events, "%s%d", i ? "," : "", parts->elems[i].partition);
		if (parts->elems[i].partition >= 0 &&
		    parts->elems[i].partition < CANARY_PARTITIONS)
			m->owned[parts->elems[i].partition] = assign;
	}
	km_sb_puts(m->events, "]");
	if (coop)
		e = assign ? rd_kafka_incremental_assign(rk, parts)
			   : rd_kafka_incremental_unassign(rk, parts);
	else {
		rd_kafka_assign(rk, assign ? parts : NULL);
		if (!assign)
			memset(m->owned, 0, sizeof(m->owned));
	}
	if (e) {
		snprintf(m->err, sizeof(m->err), "%s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
}

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
		      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
	member_t *m = opaque;

	(void)rk;
	for (int i = 0; !err && offsets && i < offsets->cnt; i++)
		err = offsets->elems[i].err;
	if (err && !m->commit_err)
		m->commit_err = err;
	m->commits++;
}

static km_err_t member_start(ctx_t *c, member_t *m, const char *client_id,
			     char *errstr, size_t errstr_size)
{
	const char *extra[] = {"group.id", c->group,
			       "client.id", client_id,
			       "partition.assignment.strategy", "cooperative-sticky",
			       "enable.auto.commit", "false",
			       "auto.offset.reset", "earliest",
			       /* A member learns of a rebalance at its next
			        * heartbeat: keep the canary's short. */
			       "heartbeat.interval.ms", "250",
			       NULL};
	rd_kafka_conf_t *conf;
	rd_kafka_topic_partition_list_t *sub;
	char rerr[512];

	if (km_kafka_conf_new(km_kafka_endpoint(c->k), extra, &conf, errstr,
			      errstr_size))
		return KM_ERR_PLAN;
	rd_kafka_conf_set_opaque(conf, m);
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_offset_commit_cb(conf, commit_cb);
	if (!(m->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		return km_seterr(errstr, errstr_size, KM_ERR_BUG,
				 "cannot create consumer %s: %s", m->label, rerr);
	}
	rd_kafka_poll_set_consumer(m->rk);
	sub = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, c->topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t e = rd_kafka_subscribe(m->rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (e)
		return km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				 "subscribe of %s failed: %s", m->label,
				 rd_kafka_err2str(e));
	return KM_ERR_OK;
}

static void member_poll(member_t *m)
{
	rd_kafka_message_t *msg;

	if (!m->rk)
		return;
	if ((msg = rd_kafka_consumer_poll(m->rk, 50))) {
		if (msg->err && msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			snprintf(m->err, sizeof(m->err), "%s: %s",
				 rd_kafka_err2name(msg->err), rd_kafka_message_errstr(msg));
		rd_kafka_message_destroy(msg);
	}
}

typedef bool (*group_cond_t)(const member_t *a, const member_t *b);

static bool cond_a_all(const member_t *a, const member_t *b)
{
	(void)b;
	return owned_cnt(a) == CANARY_PARTITIONS;
}

static bool cond_split(const member_t *a, const member_t *b)
{
	if (owned_cnt(a) + owned_cnt(b) != CANARY_PARTITIONS || !owned_cnt(b) ||
	    !owned_cnt(a))
		return false;
	for (int p = 0; p < CANARY_PARTITIONS; p++)
		if (a->owned[p] && b->owned[p])
			return false;
	return true;
}

static bool cond_committed(const member_t *a, const member_t *b)
{
	return a->commits > 0 && b->commits > 0;
}

/* Serves both members until cond holds: a deadline on a condition. */
static bool pump(ctx_t *c, member_t *a, member_t *b, group_cond_t cond)
{
	int64_t deadline = km_mono_ms() + c->tmo;

	while (!cond(a, b)) {
		if (km_mono_ms() >= deadline || stopped(c))
			return false;
		member_poll(a);
		member_poll(b);
	}
	return true;
}

static void member_close(member_t *m)
{
	if (!m->rk)
		return;
	rd_kafka_consumer_close(m->rk);
	rd_kafka_destroy(m->rk);
	m->rk = NULL;
}

/* Commits the member's partitions at their end offsets (ListOffsets). */
static km_err_t member_commit(ctx_t *c, member_t *m, int64_t *want,
			      char *errstr, size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *tps = rd_kafka_topic_partition_list_new(2);
	rd_kafka_resp_err_t e;
	km_err_t err = KM_ERR_OK;

	for (int p = 0; p < CANARY_PARTITIONS && !err; p++) {
		int64_t lo;
		if (!m->owned[p])
			continue;
		if ((err = km_kafka_watermarks(c->k, c->topic, p, &lo, &want[p], errstr,
					       errstr_size)))
			break;
		rd_kafka_topic_partition_list_add(tps, c->topic, p)->offset = want[p];
	}
	if (!err && (e = rd_kafka_commit(m->rk, tps, 1)))
		err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA, "commit by %s: %s",
				m->label, rd_kafka_err2str(e));
	rd_kafka_topic_partition_list_destroy(tps);
	return err;
}

static void check_group(ctx_t *c)
{
	km_sb_t events = KM_SB_INIT;
	member_t a = {"A", NULL, {false}, "?", 0, 0, "", &events};
	member_t b = {"B", NULL, {false}, "?", 0, 0, "", &events};
	int64_t want[CANARY_PARTITIONS];
	char errstr[2048];
	chk_t ck;

	for (int p = 0; p < CANARY_PARTITIONS; p++)
		want[p] = -1;
	chk_begin(&ck, c, "consumer.group");
	if (!chk_can_run(&ck, true))
		return;
	chk_try(&ck, "member A joins group '%s' on '%s' with "
		     "partition.assignment.strategy=cooperative-sticky",
		c->group, c->topic);
	if (member_start(c, &a, "kmigrate-canary-a", errstr, sizeof(errstr)))
		goto fail;
	if (!pump(c, &a, &b, cond_a_all)) {
		snprintf(errstr, sizeof(errstr), "member A was not assigned both "
			 "partitions within %d ms (%s)%s%s", c->tmo,
			 events.len ? km_sb_str(&events) : "no rebalance",
			 a.err[0] ? ": " : "", a.err);
		goto fail;
	}
	chk_try(&ck, "member B joins");
	if (member_start(c, &b, "kmigrate-canary-b", errstr, sizeof(errstr)))
		goto fail;
	if (!pump(c, &a, &b, cond_split)) {
		snprintf(errstr, sizeof(errstr), "the partitions were not split between "
			 "A and B within %d ms (%s)%s%s%s%s", c->tmo, km_sb_str(&events),
			 a.err[0] ? "; A: " : "", a.err, b.err[0] ? "; B: " : "", b.err);
		goto fail;
	}
	if (strcmp(a.protocol, "COOPERATIVE") || strcmp(b.protocol, "COOPERATIVE")) {
		snprintf(errstr, sizeof(errstr), "the rebalance protocol was %s, not "
			 "COOPERATIVE (%s)", a.protocol, km_sb_str(&events));
		goto fail;
	}
	chk_try(&ck, "both commit their partitions' end offsets");
	if (member_commit(c, &a, want, errstr, sizeof(errstr)) ||
	    member_commit(c, &b, want, errstr, sizeof(errstr)))
		goto fail;
	if (!pump(c, &a, &b, cond_committed) || a.commit_err || b.commit_err) {
		snprintf(errstr, sizeof(errstr), "the commits did not succeed within "
			 "%d ms: %s", c->tmo,
			 rd_kafka_err2str(a.commit_err ? a.commit_err
				   : b.commit_err ? b.commit_err
						  : RD_KAFKA_RESP_ERR__TIMED_OUT));
		goto fail;
	}
	chk_try(&ck, "ListConsumerGroupOffsets of '%s'", c->group);
	{
		/* Through km_kafka_committed, not the admin call: librdkafka
		 * 2.8's ListConsumerGroupOffsets crashes when the coordinator
		 * is not ready (lib/kafka.h). */
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(CANARY_PARTITIONS),
						*tps = NULL;
		const char *gid = c->group;
		int64_t seen[CANARY_PARTITIONS];
		km_err_t err;

		for (int p = 0; p < CANARY_PARTITIONS; p++) {
			seen[p] = -1;
			rd_kafka_topic_partition_list_add(l, c->topic, p);
		}
		err = km_kafka_committed(c->k, &gid, 1, l, 0, c->tmo, &tps, errstr, sizeof(errstr));
		for (int i = 0; !err && i < tps->cnt; i++)
			if (!strcmp(tps->elems[i].topic, c->topic) && tps->elems[i].partition >= 0 &&
			    tps->elems[i].partition < CANARY_PARTITIONS && tps->elems[i].offset >= 0)
				seen[tps->elems[i].partition] = tps->elems[i].offset;
		if (tps)
			rd_kafka_topic_partition_list_destroy(tps);
		rd_kafka_topic_partition_list_destroy(l);
		if (err)
			goto fail;
		for (int p = 0; p < CANARY_PARTITIONS; p++)
			if (seen[p] != want[p]) {
				snprintf(errstr, sizeof(errstr), "ListConsumerGroupOffsets shows "
					 "%" PRId64 " for partition %d, %" PRId64 " was committed",
					 seen[p], p, want[p]);
				goto fail;
			}
	}
	chk_go(&ck, "rebalances %s (protocol COOPERATIVE: A kept partition %d); "
		    "commits %" PRId64 " and %" PRId64 " visible through "
		    "ListConsumerGroupOffsets",
	       km_sb_str(&events), a.owned[0] ? 0 : 1, want[0], want[1]);
	goto done;
fail:
	chk_nogo(&ck, "%s", errstr);
done:
	member_close(&a);
	member_close(&b);
	km_sb_free(&events);
}

/* ---- cleanup ----------------------------------------------------------------- */

static void check_cleanup(ctx_t *c)
{
	const char *topics[2];
	size_t n = 0;
	char errstr[1024];
	km_sb_t done = KM_SB_INIT;
	bool group_deleted = false;
	chk_t ck;

	chk_begin(&ck, c, "cleanup");
	ck.extra_ms = c->cleanup_ms;
	/* Runs whatever happened before, interrupted included. */
	if (json_array_size(c->leftovers)) {
		json_t *v;
		size_t i;
		km_sb_t l = KM_SB_INIT;
		json_array_foreach(c->leftovers, i, v)
			km_sb_printf(&l, "%s%s", i ? ", " : "", json_string_value(v));
		chk_try(&ck, "deleted leftovers of earlier runs: %s", km_sb_str(&l));
		km_sb_printf(&done, "removed %zu leftover%s of earlier runs; ",
			     json_array_size(c->leftovers),
			     json_array_size(c->leftovers) == 1 ? "" : "s");
		km_sb_free(&l);
	} else {
		chk_try(&ck, "looked for leftovers of earlier runs (prefix '%s'): none",
			c->prefix);
	}
	chk_try(&ck, "DeleteGroups '%s'", c->group);
	if (delete_group(c, c->group, &group_deleted, errstr, sizeof(errstr)))
		km_sb_printf(&c->cleanup_err, "%s%s", c->cleanup_err.len ? "; " : "", errstr);
	if (c->topic_made || c->topic_err[0])
		topics[n++] = c->topic;
	if (c->size_topic_made)
		topics[n++] = c->size_topic;
	if (n) {
		chk_try(&ck, "DeleteTopics %s%s%s and wait until metadata no longer "
			     "lists %s",
			topics[0], n > 1 ? ", " : "", n > 1 ? topics[1] : "",
			n > 1 ? "them" : "it");
		if (delete_topics(c, topics, n, errstr, sizeof(errstr)))
			km_sb_printf(&c->cleanup_err, "%s%s", c->cleanup_err.len ? "; " : "",
				     errstr);
	}
	if (c->cleanup_err.len)
		chk_nogo(&ck, "canaries may remain on the target: %s",
			 km_sb_str(&c->cleanup_err));
	else
		chk_go(&ck, "%sdeleted %zu canary topic%s; group '%s' %s; "
			    "transactional id '%s' cannot be deleted and expires "
			    "after transactional.id.expiration.ms",
		       km_sb_str(&done), n, n == 1 ? "" : "s", c->group,
		       group_deleted ? "deleted" : "was never created", c->txn_id);
	km_sb_free(&done);
}

/* ---- the gate ---------------------------------------------------------------- */

km_err_t km_compat_check(const km_plan_t *plan, const km_compat_opts_t *opts,
			 json_t **reportp, char *errstr, size_t errstr_size)
{
	static const char *const codecs[] = {"none", "gzip", "snappy", "lz4", "zstd"};
	km_compat_opts_t defaults;
	km_kafka_endpoint_t ep;
	ctx_t c;
	char rnd[17];
	int64_t t0, open_ms;
	json_t *check, *no_go;
	size_t i;
	km_err_t err;

	*reportp = NULL;
	if (!opts) {
		km_compat_opts_init(&defaults);
		opts = &defaults;
	}
	memset(&c, 0, sizeof(c));
	c.plan = plan;
	c.opts = opts;
	c.tmo = opts->timeout_ms > 0 ? opts->timeout_ms : KM_KAFKA_TIMEOUT_MS;

	if ((err = endpoint_for(&plan->target, &ep, errstr, errstr_size)))
		return err;
	t0 = km_mono_ms();
	err = km_kafka_open(&ep, KM_KAFKA_F_APIVERSIONS, &c.k, errstr, errstr_size);
	open_ms = km_mono_ms() - t0;
	km_kafka_endpoint_clear(&ep);
	if (err)
		return err;
	/* The source is read for the record sizes the plan needs.  A source
	 * that cannot be reached or refuses the credentials fails the command
	 * here, before any canary exists or anything is journaled: it is a
	 * mistake to fix, not a fact about the target (NO-GO).  --topic-bytes
	 * gives the size instead, and then the source is not needed. */
	if (opts->topic_bytes <= 0) {
		if (!(err = endpoint_for(&plan->source, &ep, errstr, errstr_size))) {
			err = km_kafka_open(&ep, 0, &c.src, errstr, errstr_size);
			km_kafka_endpoint_clear(&ep);
		}
		if (err) {
			km_kafka_close(c.k);
			return err;
		}
	}

	random_hex(rnd, 12);
	snprintf(c.prefix, sizeof(c.prefix), KM_COMPAT_CANARY_PREFIX "%s.", plan->migration);
	snprintf(c.topic, sizeof(c.topic), "%s%s", c.prefix, rnd);
	snprintf(c.size_topic, sizeof(c.size_topic), "%s.size", c.topic);
	snprintf(c.group, sizeof(c.group), "%s", c.topic);
	snprintf(c.reader, sizeof(c.reader), "%s.reader", c.topic);
	snprintf(c.txn_id, sizeof(c.txn_id), "%s", c.topic);
	c.checks = json_array();
	c.nodes = json_array();
	c.leftovers = json_array();
	c.target = json_pack("{s:s, s:s, s:o}", "bootstrap", plan->target.bootstrap,
			     "security_protocol",
			     km_plan_secproto_str(plan->target.security_protocol),
			     "sasl_mechanism",
			     plan->target.sasl_mechanism
				     ? json_string(plan->target.sasl_mechanism)
				     : json_null());

	check_connect(&c, open_ms);
	check_api_versions(&c);
	check_clients(&c);
	if (!stopped(&c))
		read_source_sizes(&c);
	if (!stopped(&c))
		clean_leftovers(&c);
	check_create_topic(&c);
	check_describe_configs(&c);
	check_alter_configs(&c);
	check_describe_acls(&c);
	check_idempotent(&c);
	check_transactions(&c);
	for (size_t k = 0; k < sizeof(codecs) / sizeof(codecs[0]); k++)
		check_compression(&c, codecs[k]);
	check_max_message_bytes(&c);
	check_group(&c);
	readers_close(&c);
	check_cleanup(&c);

	no_go = json_array();
	json_array_foreach(c.checks, i, check)
		if (strcmp(json_string_value(json_object_get(check, "result")), "GO"))
			json_array_append_new(no_go, json_incref(json_object_get(check, "name")));
	*reportp = json_pack(
		"{s:s, s:o, s:{s:s, s:s, s:s, s:s}, s:o, s:s, s:o, s:b}",
		"migration", plan->migration, "target", c.target, "canary",
		"topic", c.topic, "size_topic", c.size_topic, "group", c.group,
		"transactional_id", c.txn_id, "checks", c.checks, "verdict",
		json_array_size(no_go) ? "NO-GO" : "GO", "no_go", no_go,
		"interrupted", stopped(&c));
	json_decref(c.nodes);
	json_decref(c.leftovers);
	json_decref(c.broker_cfg);
	km_sb_free(&c.cleanup_err);
	km_kafka_close(c.src);
	km_kafka_close(c.k);
	return KM_ERR_OK;
}
