/*
 * lock.c -- the cutover lock on the target (see lock.h).
 */
#include "lock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "util.h"

#define POLL_MS 200
#define DESCRIBE_EVERY_MS 500
/* How long a join may take before the process gives up (a join waits for
 * the other members to rejoin, at most their rebalance timeout). */
#define JOIN_TIMEOUT_MS 60000

struct km_lock_s {
	km_kafka_t *kt;  /* admin client: DescribeConsumerGroups */
	rd_kafka_t *c;   /* the member */
	char topic[400], group[400], client_id[600];
	pthread_t th;
	bool th_started;
	atomic_bool stop;   /* release: the thread ends */
	atomic_bool held;   /* partition 0 assigned to us */
	atomic_bool lost;   /* was held, then revoked or lost */
	volatile sig_atomic_t *lost_flag;
};

/* What the group looks like now. */
typedef struct view_s {
	int members;
	bool other_owns; /* a member other than us is assigned partition 0 */
	char holder[700]; /* the member owning partition 0, else the first */
} view_t;

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* "<client.id minus since=...> on <host> since <when>" of a member. */
static void describe_member(const rd_kafka_MemberDescription_t *md, char *buf, size_t size)
{
	const char *cid = rd_kafka_MemberDescription_client_id(md);
	const char *since = strstr(cid, " since=");
	int len = since ? (int)(since - cid) : (int)strlen(cid);

	snprintf(buf, size, "%.*s from %s since %s", len, cid, rd_kafka_MemberDescription_host(md),
		 since ? since + 7 : "an unknown time");
}

static km_err_t describe(km_lock_t *l, view_t *v, char *errstr, size_t errstr_size)
{
	km_kafka_call_t call;
	rd_kafka_event_t *ev = NULL;
	const char *ids[1] = {l->group};
	km_err_t err;
	size_t n;

	memset(v, 0, sizeof(*v));
	km_kafka_call_begin(l->kt, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, 0, &call);
	rd_kafka_DescribeConsumerGroups(km_kafka_rk(l->kt), ids, 1, call.options, call.q);
	if ((err = km_kafka_call_wait(l->kt, &call, RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT,
				      "DescribeConsumerGroups of the cutover lock", &ev, errstr,
				      errstr_size)))
		return err;
	const rd_kafka_ConsumerGroupDescription_t **gd =
		rd_kafka_DescribeConsumerGroups_result_groups(
			rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
	for (size_t i = 0; i < n && !err; i++) {
		const rd_kafka_error_t *ge = rd_kafka_ConsumerGroupDescription_error(gd[i]);
		/* A group that never existed has no member: free. */
		if (ge && rd_kafka_error_code(ge) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND)
			continue;
		if (ge) {
			err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
					"DescribeConsumerGroups of the cutover lock '%s' on the "
					"target: %s",
					l->group, rd_kafka_error_string(ge));
			break;
		}
		size_t mc = rd_kafka_ConsumerGroupDescription_member_count(gd[i]);
		v->members += (int)mc;
		for (size_t m = 0; m < mc; m++) {
			const rd_kafka_MemberDescription_t *md =
				rd_kafka_ConsumerGroupDescription_member(gd[i], m);
			const rd_kafka_MemberAssignment_t *ma = rd_kafka_MemberDescription_assignment(md);
			const rd_kafka_topic_partition_list_t *tp =
				ma ? rd_kafka_MemberAssignment_partitions(ma) : NULL;
			bool owns = tp && rd_kafka_topic_partition_list_find(tp, l->topic, 0);
			bool me = !strcmp(rd_kafka_MemberDescription_client_id(md), l->client_id);
			if (owns && !me)
				v->other_owns = true;
			if ((owns && !me) || (!v->holder[0] && !me))
				describe_member(md, v->holder, sizeof(v->holder));
		}
	}
	rd_kafka_event_destroy(ev);
	return err;
}

/* Cooperative-sticky hands out and takes back deltas: the incremental
 * calls.  Partition 0 revoked or lost after it was held = the lock lost. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	km_lock_t *l = opaque;
	bool has0 = rd_kafka_topic_partition_list_find(parts, l->topic, 0) != NULL;
	rd_kafka_error_t *e;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		e = rd_kafka_incremental_assign(rk, parts);
		if (has0 && !e)
			l->held = true;
	} else {
		if (has0 && l->held) {
			l->held = false;
			l->lost = true;
			if (l->lost_flag)
				*l->lost_flag = 1;
		}
		e = rd_kafka_incremental_unassign(rk, parts);
	}
	if (e)
		rd_kafka_error_destroy(e);
}

/* Keeps the member alive while the lock is held: librdkafka heartbeats on
 * its own thread, but a member that does not poll within
 * max.poll.interval.ms is dropped, and rebalances are served here. */
static void *keeper(void *arg)
{
	km_lock_t *l = arg;

	while (!l->stop) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(l->c, POLL_MS);
		if (m)
			rd_kafka_message_destroy(m);
		if (l->held && rd_kafka_assignment_lost(l->c)) {
			l->held = false;
			l->lost = true;
			if (l->lost_flag)
				*l->lost_flag = 1;
		}
	}
	return NULL;
}

static km_err_t refuse(const char *migration, const view_t *v, char *errstr, size_t errstr_size)
{
	/* The holder's client.id starts with "kmigrate-<command> ": a
	 * rollback holds the same lock as a cutover (they must never run at
	 * once), and the refusal names which one runs. */
	const char *what = !strncmp(v->holder, "kmigrate-rollback ", 18) ? "rollback" : "cutover";
	return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
			 "%s of migration '%s' is already running (held by %s): wait for it "
			 "or stop it",
			 what, migration, v->holder[0] ? v->holder : "another process");
}

static km_err_t create_topic(km_lock_t *l, char *errstr, size_t errstr_size)
{
	char e[256];
	rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(l->topic, 1, -1, e, sizeof(e));
	km_err_t err;

	if (!nt)
		return km_seterr(errstr, errstr_size, KM_ERR_BUG, "cannot describe topic '%s': %s",
				 l->topic, e);
	err = km_kafka_create_topics(l->kt, &nt, 1, "CreateTopics of the cutover lock topic",
				     errstr, errstr_size);
	rd_kafka_NewTopic_destroy(nt);
	return err;
}

static km_err_t join(km_lock_t *l, const km_kafka_endpoint_t *tgt, char *errstr,
		     size_t errstr_size)
{
	char session[16];
	snprintf(session, sizeof(session), "%d", KM_LOCK_SESSION_MS);
	const char *props[] = {"group.id", l->group, "client.id", l->client_id,
			       "group.protocol", "classic",
			       "partition.assignment.strategy", "cooperative-sticky",
			       "session.timeout.ms", session, "heartbeat.interval.ms", "1000",
			       "max.poll.interval.ms", "300000", "enable.auto.commit", "false",
			       "auto.offset.reset", "latest", NULL};
	rd_kafka_conf_t *conf = NULL;
	char rerr[512];
	km_err_t err;

	if ((err = km_kafka_conf_new(tgt, props, &conf, errstr, errstr_size)))
		return err;
	rd_kafka_conf_set_opaque(conf, l);
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	if (!(l->c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		return km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				 "cannot create the cutover lock's member on the target: %s", rerr);
	}
	rd_kafka_poll_set_consumer(l->c);
	rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, l->topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t se = rd_kafka_subscribe(l->c, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (se)
		return km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				 "cannot join the cutover lock group '%s' on the target: %s", l->group,
				 rd_kafka_err2str(se));
	return KM_ERR_OK;
}

km_err_t km_lock_acquire(const km_kafka_endpoint_t *tgt, const char *migration, const char *wave,
			 int wait_ms, volatile sig_atomic_t *lost_flag, km_lock_t **lockp,
			 char *errstr, size_t errstr_size)
{
	return km_lock_acquire_for(tgt, migration, "cutover", wave, wait_ms, lost_flag, lockp,
				   errstr, errstr_size);
}

km_err_t km_lock_acquire_for(const km_kafka_endpoint_t *tgt, const char *migration,
			     const char *command, const char *wave, int wait_ms,
			     volatile sig_atomic_t *lost_flag, km_lock_t **lockp, char *errstr,
			     size_t errstr_size)
{
	km_lock_t *l = km_calloc(1, sizeof(*l));
	char host[256], since[40];
	view_t v;
	km_err_t err;

	*lockp = NULL;
	l->lost_flag = lost_flag;
	if (wait_ms <= 0)
		wait_ms = KM_LOCK_WAIT_MS;
	if (gethostname(host, sizeof(host)) != 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	km_iso8601(km_now_ms(), since, sizeof(since));
	snprintf(l->topic, sizeof(l->topic), "__kmigrate.%s.lock", migration);
	snprintf(l->group, sizeof(l->group), "__kmigrate.%s.cutover-lock", migration);
	snprintf(l->client_id, sizeof(l->client_id), "kmigrate-%s host=%s pid=%ld wave=%s since=%s",
		 command, host, (long)getpid(), wave, since);
	if ((err = km_kafka_open(tgt, 0, &l->kt, errstr, errstr_size)) ||
	    (err = create_topic(l, errstr, errstr_size)))
		goto done;

	/* Held by someone: ask again until wait_ms has passed, so that a
	 * holder killed with -9 (a member until its session times out) does
	 * not block the re-run, while a live one is refused. */
	for (int64_t deadline = km_mono_ms() + wait_ms;;) {
		if ((err = describe(l, &v, errstr, errstr_size)))
			goto done;
		if (!v.members)
			break;
		if (km_mono_ms() >= deadline) {
			err = refuse(migration, &v, errstr, errstr_size);
			goto done;
		}
		sleep_ms(DESCRIBE_EVERY_MS);
	}
	if ((err = join(l, tgt, errstr, errstr_size)))
		goto done;
	/* Joined: either partition 0 comes to us, or a process that joined
	 * at the same time got it (the group then shows it assigned to the
	 * other member): leave and refuse. */
	int64_t join_deadline = km_mono_ms() + JOIN_TIMEOUT_MS, next_describe = 0;
	while (!l->held) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(l->c, POLL_MS);
		rd_kafka_resp_err_t me = m ? m->err : RD_KAFKA_RESP_ERR_NO_ERROR;
		if (m)
			rd_kafka_message_destroy(m);
		/* A refused join never ends: say which grant is missing. */
		if (me == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
		    me == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
			err = km_seterr(errstr, errstr_size, KM_ERR_AUTHZ,
					"joining the cutover lock group '%s' on the target: %s (grant "
					"READ and DESCRIBE on GROUP and TOPIC '__kmigrate.' PREFIXED "
					"to kmigrate's principal)",
					l->group, rd_kafka_err2str(me));
			goto done;
		}
		if (l->held)
			break;
		if (km_mono_ms() >= next_describe) {
			if ((err = describe(l, &v, errstr, errstr_size)))
				goto done;
			if (v.other_owns) {
				err = refuse(migration, &v, errstr, errstr_size);
				goto done;
			}
			next_describe = km_mono_ms() + DESCRIBE_EVERY_MS;
		}
		if (km_mono_ms() >= join_deadline) {
			err = km_seterr(errstr, errstr_size, KM_ERR_TIMEOUT,
					"joining the cutover lock group '%s' on the target did not "
					"end within %d s: try again",
					l->group, JOIN_TIMEOUT_MS / 1000);
			goto done;
		}
	}
	if (pthread_create(&l->th, NULL, keeper, l)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_BUG,
				"cannot start the cutover lock's thread");
		goto done;
	}
	l->th_started = true;
done:
	if (err) {
		km_lock_release(l);
		return err;
	}
	*lockp = l;
	return KM_ERR_OK;
}

bool km_lock_lost(const km_lock_t *lock)
{
	return lock && lock->lost;
}

const char *km_lock_holder(const km_lock_t *lock)
{
	return lock->client_id;
}

void km_lock_release(km_lock_t *l)
{
	if (!l)
		return;
	l->stop = true;
	if (l->th_started)
		pthread_join(l->th, NULL);
	/* A release is not a loss: the revocation closing brings is ours. */
	l->held = false;
	l->lost_flag = NULL;
	if (l->c) {
		/* LeaveGroup: the next process finds the group empty at once. */
		rd_kafka_consumer_close(l->c);
		rd_kafka_destroy(l->c);
	}
	km_kafka_close(l->kt);
	free(l);
}
