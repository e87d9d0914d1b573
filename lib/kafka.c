#include "kafka.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "util.h"

/* One ApiVersions row seen in librdkafka's feature debug log. */
typedef struct apiv_s {
	char *hostport;
	int key, min, max;
	char *name;
} apiv_t;

struct km_kafka_s {
	rd_kafka_t *rk;
	km_kafka_endpoint_t ep; /* borrowed strings, password not kept */
	pthread_mutex_t lock;
	/* The last error the client reported through error_cb that means the
	 * cluster cannot be used as configured; read by km_kafka_wait(). */
	rd_kafka_resp_err_t fatal;
	char fatal_str[512];
	int brokers_down;
	apiv_t *apiv;
	int napiv, capiv;
	/* km_kafka_committed()'s consumer handles kept with
	 * KM_KAFKA_KEEP_READERS: one per group, until km_kafka_close(). */
	struct reader_s {
		char *group;
		rd_kafka_t *rk;
	} *readers;
	size_t nreaders;
};

void km_kafka_endpoint_clear(km_kafka_endpoint_t *ep)
{
	if (ep->password) {
		memset(ep->password, 0, strlen(ep->password));
		free(ep->password);
		ep->password = NULL;
	}
	free(ep->props);
	ep->props = NULL;
}

km_err_t km_kafka_endpoint_from_plan(const km_plan_cluster_t *c,
				     km_kafka_endpoint_t *ep, char *errstr,
				     size_t errstr_size)
{
	static const char *const protos[] = {"plaintext", "ssl",
					     "sasl_plaintext", "sasl_ssl"};
	km_err_t err;

	memset(ep, 0, sizeof(*ep));
	ep->role = c->role;
	ep->bootstrap = c->bootstrap;
	ep->security_protocol = protos[c->security_protocol];
	ep->sasl_mechanism = c->sasl_mechanism;
	ep->username = c->username;
	ep->ssl_ca = c->ssl_ca;
	if ((err = km_plan_cluster_password(c, &ep->password, errstr,
					    errstr_size)))
		return err;
	if (c->props_cnt) {
		ep->props = km_calloc(c->props_cnt * 2 + 1, sizeof(*ep->props));
		for (size_t i = 0; i < c->props_cnt; i++) {
			ep->props[i * 2] = c->props[i].key;
			ep->props[i * 2 + 1] = c->props[i].value;
		}
	}
	return KM_ERR_OK;
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v,
	       char *errstr, size_t errstr_size)
{
	char rerr[256];

	if (rd_kafka_conf_set(conf, k, v, rerr, sizeof(rerr)) !=
	    RD_KAFKA_CONF_OK) {
		km_seterr(errstr, errstr_size, KM_ERR_PLAN,
			  "cannot set client property '%s': %s", k, rerr);
		return -1;
	}
	return 0;
}

/* librdkafka's log of every client kmigrate makes: the engine never prints,
 * so it is shown only with KM_DEBUG set (its errors reach the commands as
 * errors: callbacks, results, delivery reports).  Without it, a consumer
 * closed while its coordinator connection was still authenticating printed
 * "SASL authentication error: ... Broker transport failure" into the
 * output of a command that had succeeded.  Handles that need their log
 * (the admin handle's ApiVersions capture) set their own. */
static void quiet_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	if (level <= 3 && getenv("KM_DEBUG"))
		fprintf(stderr, "%%%d|%s|%s\n", level, fac, buf);
}

km_err_t km_kafka_conf_new(const km_kafka_endpoint_t *ep, const char **extra,
			   rd_kafka_conf_t **confp, char *errstr,
			   size_t errstr_size)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const char **p;

	*confp = NULL;
	/* KIP-714 metrics push makes every client close wait about a second
	 * to send its last metrics: kmigrate opens many short-lived clients. */
	if (set(conf, "bootstrap.servers", ep->bootstrap, errstr, errstr_size) ||
	    set(conf, "client.id", "kmigrate", errstr, errstr_size) ||
	    set(conf, "enable.metrics.push", "false", errstr, errstr_size) ||
	    set(conf, "security.protocol",
		ep->security_protocol ? ep->security_protocol : "plaintext",
		errstr, errstr_size))
		goto fail;
	if (ep->sasl_mechanism &&
	    set(conf, "sasl.mechanism", ep->sasl_mechanism, errstr, errstr_size))
		goto fail;
	if (ep->username &&
	    set(conf, "sasl.username", ep->username, errstr, errstr_size))
		goto fail;
	if (ep->password &&
	    set(conf, "sasl.password", ep->password, errstr, errstr_size))
		goto fail;
	if (ep->ssl_ca &&
	    set(conf, "ssl.ca.location", ep->ssl_ca, errstr, errstr_size))
		goto fail;
	for (p = ep->props; p && p[0] && p[1]; p += 2)
		if (set(conf, p[0], p[1], errstr, errstr_size))
			goto fail;
	for (p = extra; p && p[0] && p[1]; p += 2)
		if (set(conf, p[0], p[1], errstr, errstr_size))
			goto fail;
	rd_kafka_conf_set_log_cb(conf, quiet_log_cb);
	*confp = conf;
	return KM_ERR_OK;
fail:
	rd_kafka_conf_destroy(conf);
	return KM_ERR_PLAN;
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	km_kafka_t *k = opaque;

	(void)rk;
	pthread_mutex_lock(&k->lock);
	switch (err) {
	case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
		k->brokers_down = 1;
		break;
	case RD_KAFKA_RESP_ERR__AUTHENTICATION:
	case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
	case RD_KAFKA_RESP_ERR__SSL:
		k->fatal = err;
		snprintf(k->fatal_str, sizeof(k->fatal_str), "%s", reason);
		break;
	case RD_KAFKA_RESP_ERR__TRANSPORT:
	case RD_KAFKA_RESP_ERR__RESOLVE:
		/* Keep the first transport reason: it names the address. */
		if (!k->fatal) {
			k->fatal = err;
			snprintf(k->fatal_str, sizeof(k->fatal_str), "%s",
				 reason);
		}
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&k->lock);
}

/* Parses "...: host:port/id:   ApiKey Produce (0) Versions 0..11". */
static void capture_apiversion(km_kafka_t *k, const char *buf)
{
	const char *ak = strstr(buf, "ApiKey "), *bp, *slash, *sp;
	char name[64];
	int key, min, max;

	if (!ak || sscanf(ak, "ApiKey %63s (%d) Versions %d..%d", name, &key,
			  &min, &max) != 4)
		return;
	/* The broker name precedes the message: "]: host:port/id: ". */
	bp = strstr(buf, "]: ");
	if (!bp)
		return;
	bp += 3;
	/* librdkafka prefixes the address with the protocol on non-plaintext
	 * listeners ("sasl_ssl://host:port/id"). */
	sp = strchr(bp, ' ');
	if (strstr(bp, "://") && (!sp || strstr(bp, "://") < sp))
		bp = strstr(bp, "://") + 3;
	slash = strchr(bp, '/');
	if (!slash || (sp && sp < slash))
		return;

	pthread_mutex_lock(&k->lock);
	for (int i = 0; i < k->napiv; i++)
		if (k->apiv[i].key == key &&
		    !strncmp(k->apiv[i].hostport, bp, (size_t)(slash - bp)) &&
		    k->apiv[i].hostport[slash - bp] == '\0') {
			pthread_mutex_unlock(&k->lock);
			return;
		}
	if (k->napiv == k->capiv) {
		k->capiv = k->capiv ? k->capiv * 2 : 128;
		k->apiv = km_realloc(k->apiv, (size_t)k->capiv * sizeof(*k->apiv));
	}
	k->apiv[k->napiv].hostport = km_strndup(bp, (size_t)(slash - bp));
	k->apiv[k->napiv].name = km_strdup(name);
	k->apiv[k->napiv].key = key;
	k->apiv[k->napiv].min = min;
	k->apiv[k->napiv].max = max;
	k->napiv++;
	pthread_mutex_unlock(&k->lock);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
		   const char *buf)
{
	km_kafka_t *k = rd_kafka_opaque(rk);

	if (k && !strcmp(fac, "APIVERSION"))
		capture_apiversion(k, buf);
	else if (level <= 3 && getenv("KM_DEBUG"))
		fprintf(stderr, "%%%d|%s|%s\n", level, fac, buf);
}

/* The ACL operation each Kafka call needs, as kafka-acls spells it, and the
 * resource when the call always targets the same kind (Kafka's
 * AuthHelper/KafkaApis: DescribeUserScramCredentials, DescribeAcls and
 * ListGroups of every group need DESCRIBE on the CLUSTER).  For the others
 * the broker's error code says which kind of resource refused. */
static const struct {
	const char *call, *operation, *resource;
} acl_needed[] = {
	{"DescribeUserScramCredentials", "Describe", "--cluster"},
	{"DescribeAcls", "Describe", "--cluster"},
	{"CreateAcls", "Alter", "--cluster"},
	{"DeleteAcls", "Alter", "--cluster"},
	{"ListConsumerGroups", "Describe", "--cluster"},
	{"DescribeCluster", "Describe", "--cluster"},
	{"DescribeConfigs", "DescribeConfigs", NULL},
	{"AlterConfigs", "AlterConfigs", NULL},
	{"IncrementalAlterConfigs", "AlterConfigs", NULL},
	{"CreateTopics", "Create", NULL},
	{"DeleteTopics", "Delete", NULL},
	{"CreatePartitions", "Alter", NULL},
	{"DescribeConsumerGroups", "Describe", NULL},
	{"ListConsumerGroupOffsets", "Describe", NULL},
	{"OffsetFetch", "Describe", NULL},
	{"AlterConsumerGroupOffsets", "Read", NULL},
	{"DeleteConsumerGroups", "Delete", NULL},
	{"Metadata", "Describe", NULL},
	{"ListOffsets", "Describe", NULL},
	{"DescribeTopics", "Describe", NULL},
};

/* Writes the kafka-acls arguments that grant what `what` was refused, or
 * an empty string when the call is not in the table. */
static void acl_hint(const km_kafka_t *k, rd_kafka_resp_err_t rerr,
		     const char *what, char *buf, size_t size)
{
	const char *resource = NULL, *op = NULL;
	size_t n = strcspn(what, " ");

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(acl_needed) / sizeof(acl_needed[0]); i++)
		if (strlen(acl_needed[i].call) == n &&
		    !strncmp(acl_needed[i].call, what, n)) {
			op = acl_needed[i].operation;
			resource = acl_needed[i].resource;
		}
	if (!op)
		return;
	switch (rerr) {
	case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
		resource = "--cluster";
		break;
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
		resource = "--topic NAME";
		break;
	case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
		resource = "--group ID";
		break;
	case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
		resource = "--transactional-id ID";
		break;
	default:
		break;
	}
	if (!resource)
		return;
	/* A subject quoted in `what` ("DescribeConfigs of topic 'orders'")
	 * replaces the placeholder of a named resource. */
	const char *q1 = strchr(what, '\''), *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
	const char *sp = strchr(resource, ' ');
	char res[300];

	if (q2 && sp)
		snprintf(res, sizeof(res), "%.*s'%.*s'", (int)(sp - resource + 1),
			 resource, (int)(q2 - q1 - 1), q1 + 1);
	else
		snprintf(res, sizeof(res), "%s", resource);
	snprintf(buf, size,
		 "kafka-acls --bootstrap-server %s --add --allow-principal "
		 "User:%s --operation %s %s",
		 k->ep.bootstrap, k->ep.username ? k->ep.username : "ANONYMOUS",
		 op, res);
}

km_err_t km_kafka_err(km_kafka_t *k, rd_kafka_resp_err_t rerr,
		      const char *what, const char *detail, char *errstr,
		      size_t errstr_size)
{
	const char *role = k->ep.role, *bs = k->ep.bootstrap;
	const char *text = detail && *detail ? detail : rd_kafka_err2str(rerr);
	char hint[512];

	switch (rerr) {
	case RD_KAFKA_RESP_ERR__AUTHENTICATION:
	case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
		return km_seterr(errstr, errstr_size, KM_ERR_AUTH,
				 "authentication to the %s cluster '%s' failed "
				 "for user '%s': %s (check %s.username and the "
				 "password in %s.password_env or "
				 "%s.password_file)",
				 role, bs, k->ep.username ? k->ep.username : "",
				 text, role, role, role);
	case RD_KAFKA_RESP_ERR__SSL:
		return km_seterr(errstr, errstr_size, KM_ERR_AUTH,
				 "TLS handshake with the %s cluster '%s' failed: "
				 "%s (check %s.ssl_ca and %s.security_protocol)",
				 role, bs, text, role, role);
	case RD_KAFKA_RESP_ERR__TRANSPORT:
	case RD_KAFKA_RESP_ERR__RESOLVE:
	case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
		return km_seterr(errstr, errstr_size, KM_ERR_UNREACHABLE,
				 "cannot reach the %s cluster at '%s': %s (check "
				 "%s.bootstrap and that the cluster is up)",
				 role, bs, text, role);
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_DELEGATION_TOKEN_AUTHORIZATION_FAILED:
		acl_hint(k, rerr, what, hint, sizeof(hint));
		if (hint[0])
			return km_seterr(errstr, errstr_size, KM_ERR_AUTHZ,
					 "not authorized to %s on the %s cluster "
					 "'%s' as '%s': %s (grant it: %s)",
					 what, role, bs,
					 k->ep.username ? k->ep.username : "ANONYMOUS",
					 text, hint);
		return km_seterr(errstr, errstr_size, KM_ERR_AUTHZ,
				 "not authorized to %s on the %s cluster '%s' as "
				 "'%s': %s (grant the principal the ACL it needs)",
				 what, role, bs,
				 k->ep.username ? k->ep.username : "ANONYMOUS",
				 text);
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
		return km_seterr(errstr, errstr_size, KM_ERR_TIMEOUT,
				 "%s on the %s cluster '%s' timed out: %s (check "
				 "that the cluster is healthy)",
				 what, role, bs, text);
	default:
		return km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				 "%s on the %s cluster '%s' failed: %s", what,
				 role, bs, text);
	}
}

km_err_t km_kafka_wait(km_kafka_t *k, rd_kafka_queue_t *q,
		       rd_kafka_event_type_t type, int timeout_ms,
		       const char *what, rd_kafka_event_t **evp, char *errstr,
		       size_t errstr_size)
{
	int64_t deadline = km_mono_ms() + timeout_ms;
	rd_kafka_resp_err_t fatal;
	char reason[512];

	*evp = NULL;
	for (;;) {
		rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);

		if (ev && rd_kafka_event_type(ev) == type) {
			rd_kafka_resp_err_t rerr = rd_kafka_event_error(ev);
			if (rerr) {
				km_err_t err = km_kafka_err(
					k, rerr, what,
					rd_kafka_event_error_string(ev), errstr,
					errstr_size);
				/* librdkafka 2.8 stores a request-level broker
				 * error of DescribeUserScramCredentials as a
				 * pointer it does not own (rd_kafka_err2str()'s
				 * static text, or a stack copy of the
				 * message), then frees it with the event:
				 * destroying that event aborts the process
				 * ("munmap_chunk(): invalid pointer").  Such
				 * an event is left alive: one small leak per
				 * failed call, instead of a crash.  Callers
				 * avoid the call when the cluster's authorized
				 * operations already say it will be refused.
				 * Errors librdkafka raises itself (negative
				 * codes: timeouts, transport) are owned
				 * copies and are freed. */
				if (!(type == RD_KAFKA_EVENT_DESCRIBEUSERSCRAMCREDENTIALS_RESULT &&
				      rerr > 0))
					rd_kafka_event_destroy(ev);
				return err;
			}
			*evp = ev;
			return KM_ERR_OK;
		}
		if (ev)
			rd_kafka_event_destroy(ev);
		/* Error events wait on the main queue: serve them so that
		 * error_cb sees authentication and transport failures. */
		rd_kafka_poll(k->rk, 0);

		pthread_mutex_lock(&k->lock);
		fatal = k->fatal;
		snprintf(reason, sizeof(reason), "%s", k->fatal_str);
		int down = k->brokers_down;
		pthread_mutex_unlock(&k->lock);
		/* Authentication and TLS failures never heal by retrying;
		 * transport errors count once every broker is down. */
		if (fatal == RD_KAFKA_RESP_ERR__AUTHENTICATION ||
		    fatal == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED ||
		    fatal == RD_KAFKA_RESP_ERR__SSL ||
		    (fatal && down))
			return km_kafka_err(k, fatal, what, reason, errstr,
					    errstr_size);
		if (km_mono_ms() >= deadline)
			return km_kafka_err(
				k,
				fatal ? fatal : RD_KAFKA_RESP_ERR__TIMED_OUT,
				what, fatal ? reason : "no answer before the deadline",
				errstr, errstr_size);
	}
}

km_err_t km_kafka_open(const km_kafka_endpoint_t *ep, int flags,
		       km_kafka_t **kp, char *errstr, size_t errstr_size)
{
	static const char *admin_props[] = {
		"socket.connection.setup.timeout.ms", "10000",
		"reconnect.backoff.max.ms", "2000",
		"log.connection.close", "false",
		NULL};
	static const char *apiv_props[] = {
		"socket.connection.setup.timeout.ms", "10000",
		"reconnect.backoff.max.ms", "2000",
		"log.connection.close", "false",
		"debug", "feature",
		NULL};
	rd_kafka_conf_t *conf;
	km_kafka_t *k;
	char rerr[512];
	km_kafka_call_t call;
	rd_kafka_event_t *ev;
	km_err_t err;

	*kp = NULL;
	if ((err = km_kafka_conf_new(ep,
				     (flags & KM_KAFKA_F_APIVERSIONS) ? apiv_props
								      : admin_props,
				     &conf, errstr, errstr_size)))
		return err;
	k = km_calloc(1, sizeof(*k));
	pthread_mutex_init(&k->lock, NULL);
	/* Keep a private copy of what other clients of this cluster need
	 * (the sampling consumer, producers): the password and the property
	 * array; plain strings stay borrowed from the caller. */
	k->ep = *ep;
	k->ep.password = km_strdup(ep->password);
	k->ep.props = NULL;
	if (ep->props) {
		size_t np = 0;
		while (ep->props[np])
			np++;
		k->ep.props = km_calloc(np + 1, sizeof(*k->ep.props));
		memcpy(k->ep.props, ep->props, np * sizeof(*k->ep.props));
	}
	rd_kafka_conf_set_opaque(conf, k);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rerr, sizeof(rerr));
	if (!k->rk) {
		rd_kafka_conf_destroy(conf);
		km_seterr(errstr, errstr_size, KM_ERR_PLAN,
			  "cannot create a client for the %s cluster: %s",
			  ep->role, rerr);
		km_kafka_close(k);
		return KM_ERR_PLAN;
	}

	/* Prove the cluster answers before anything else is attempted. */
	km_kafka_call_begin(k, RD_KAFKA_ADMIN_OP_DESCRIBECLUSTER, KM_KAFKA_TIMEOUT_MS, &call);
	rd_kafka_DescribeCluster(k->rk, call.options, call.q);
	err = km_kafka_call_wait(k, &call, RD_KAFKA_EVENT_DESCRIBECLUSTER_RESULT,
				 "DescribeCluster", &ev, errstr, errstr_size);
	if (ev)
		rd_kafka_event_destroy(ev);
	if (err) {
		km_kafka_close(k);
		return err;
	}
	*kp = k;
	return KM_ERR_OK;
}

void km_kafka_close(km_kafka_t *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->nreaders; i++) {
		rd_kafka_destroy_flags(k->readers[i].rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
		free(k->readers[i].group);
	}
	free(k->readers);
	if (k->rk)
		rd_kafka_destroy(k->rk);
	for (int i = 0; i < k->napiv; i++) {
		free(k->apiv[i].hostport);
		free(k->apiv[i].name);
	}
	free(k->apiv);
	km_kafka_endpoint_clear(&k->ep);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

rd_kafka_t *km_kafka_rk(km_kafka_t *k)
{
	return k->rk;
}

const km_kafka_endpoint_t *km_kafka_endpoint(const km_kafka_t *k)
{
	return &k->ep;
}

int km_kafka_apiversions(km_kafka_t *k, const char *hostport,
			 void (*cb)(void *opaque, int key, const char *name,
				    int min, int max),
			 void *opaque)
{
	int n = 0;

	pthread_mutex_lock(&k->lock);
	for (int i = 0; i < k->napiv; i++)
		if (!strcmp(k->apiv[i].hostport, hostport)) {
			cb(opaque, k->apiv[i].key, k->apiv[i].name,
			   k->apiv[i].min, k->apiv[i].max);
			n++;
		}
	pthread_mutex_unlock(&k->lock);
	return n;
}

km_err_t km_kafka_watermarks(km_kafka_t *k, const char *topic, int partition,
			     int64_t *lowp, int64_t *highp, char *errstr,
			     size_t errstr_size)
{
	char what[300];
	rd_kafka_resp_err_t rerr = rd_kafka_query_watermark_offsets(
		k->rk, topic, partition, lowp, highp, KM_KAFKA_TIMEOUT_MS);

	if (!rerr)
		return KM_ERR_OK;
	snprintf(what, sizeof(what), "ListOffsets of '%s'[%d]", topic,
		 partition);
	return km_kafka_err(k, rerr, what, NULL, errstr, errstr_size);
}

rd_kafka_AdminOptions_t *km_kafka_admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t op,
						int timeout_ms)
{
	rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);

	rd_kafka_AdminOptions_set_request_timeout(o, timeout_ms, NULL, 0);
	/* The calls whose broker-side work has its own deadline: without
	 * it the controller's answer may come before the change is done. */
	if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS || op == RD_KAFKA_ADMIN_OP_DELETETOPICS ||
	    op == RD_KAFKA_ADMIN_OP_CREATEPARTITIONS || op == RD_KAFKA_ADMIN_OP_DELETERECORDS)
		rd_kafka_AdminOptions_set_operation_timeout(o, timeout_ms, NULL, 0);
	return o;
}

/* What the result may take beyond the request timeout: librdkafka posts
 * its own timeout error at the deadline, and the event has to reach us. */
#define CALL_MARGIN_MS 1000

void km_kafka_call_begin(km_kafka_t *k, rd_kafka_admin_op_t op, int timeout_ms,
			 km_kafka_call_t *call)
{
	call->timeout_ms = timeout_ms > 0 ? timeout_ms : KM_KAFKA_TIMEOUT_MS;
	call->options = km_kafka_admin_options(k->rk, op, call->timeout_ms);
	call->q = rd_kafka_queue_new(k->rk);
}

km_err_t km_kafka_call_wait(km_kafka_t *k, km_kafka_call_t *call,
			    rd_kafka_event_type_t type, const char *what,
			    rd_kafka_event_t **evp, char *errstr, size_t errstr_size)
{
	km_err_t err = km_kafka_wait(k, call->q, type, call->timeout_ms + CALL_MARGIN_MS,
				     what, evp, errstr, errstr_size);

	rd_kafka_AdminOptions_destroy(call->options);
	rd_kafka_queue_destroy(call->q);
	call->options = NULL;
	call->q = NULL;
	return err;
}

km_err_t km_kafka_create_topics(km_kafka_t *k, rd_kafka_NewTopic_t **nt, size_t n,
				const char *what, char *errstr, size_t errstr_size)
{
	rd_kafka_event_t *ev = NULL;
	km_kafka_call_t call;
	km_err_t err;
	size_t nr;

	km_kafka_call_begin(k, RD_KAFKA_ADMIN_OP_CREATETOPICS, 0, &call);
	rd_kafka_CreateTopics(k->rk, nt, n, call.options, call.q);
	err = km_kafka_call_wait(k, &call, RD_KAFKA_EVENT_CREATETOPICS_RESULT, "CreateTopics", &ev,
				 errstr, errstr_size);
	if (!err) {
		const rd_kafka_topic_result_t **res =
			rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &nr);
		for (size_t i = 0; i < nr && !err; i++) {
			rd_kafka_resp_err_t te = rd_kafka_topic_result_error(res[i]);
			if (te && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
				err = km_kafka_err(k, te, what, rd_kafka_topic_result_error_string(res[i]),
						   errstr, errstr_size);
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	return err;
}

km_err_t km_kafka_list_offsets(km_kafka_t *k, rd_kafka_topic_partition_list_t *tps,
			       km_kafka_offset_t which, char *errstr, size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(tps->cnt);
	rd_kafka_event_t *ev = NULL;
	km_kafka_call_t call;
	km_err_t err;
	size_t nr;

	if (!tps->cnt) {
		rd_kafka_topic_partition_list_destroy(l);
		return KM_ERR_OK;
	}
	for (int i = 0; i < tps->cnt; i++)
		rd_kafka_topic_partition_list_add(l, tps->elems[i].topic, tps->elems[i].partition)
			->offset = which == KM_KAFKA_LOG_START ? RD_KAFKA_OFFSET_SPEC_EARLIEST
								: RD_KAFKA_OFFSET_SPEC_LATEST;
	km_kafka_call_begin(k, RD_KAFKA_ADMIN_OP_LISTOFFSETS, 0, &call);
	if (which == KM_KAFKA_LSO) {
		/* LATEST under read_committed is the last stable offset. */
		rd_kafka_error_t *e = rd_kafka_AdminOptions_set_isolation_level(
			call.options, RD_KAFKA_ISOLATION_LEVEL_READ_COMMITTED);
		if (e)
			KM_BUG("isolation level: %s", rd_kafka_error_string(e));
	}
	rd_kafka_ListOffsets(k->rk, l, call.options, call.q);
	err = km_kafka_call_wait(k, &call, RD_KAFKA_EVENT_LISTOFFSETS_RESULT, "ListOffsets", &ev,
				 errstr, errstr_size);
	if (err)
		goto done;
	const rd_kafka_ListOffsetsResultInfo_t **ri =
		rd_kafka_ListOffsets_result_infos(rd_kafka_event_ListOffsets_result(ev), &nr);
	/* The answers usually come in the order asked: each search starts
	 * after the previous match and wraps, linear then instead of
	 * quadratic in the partition count. */
	size_t next = 0;
	for (int i = 0; i < tps->cnt && !err; i++) {
		rd_kafka_topic_partition_t *want = &tps->elems[i];
		bool seen = false;
		for (size_t n = 0, j = next; n < nr && !err && !seen; n++, j = (j + 1) % nr) {
			const rd_kafka_topic_partition_t *p =
				rd_kafka_ListOffsetsResultInfo_topic_partition(ri[j]);
			if (strcmp(p->topic, want->topic) || p->partition != want->partition)
				continue;
			seen = true;
			next = (j + 1) % nr;
			if (p->err) {
				char what[400];
				snprintf(what, sizeof(what), "ListOffsets of '%s'[%d]", p->topic,
					 p->partition);
				err = km_kafka_err(k, p->err, what, NULL, errstr, errstr_size);
			}
			want->offset = p->offset;
		}
		if (!seen && !err)
			err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
					"ListOffsets of '%s'[%d] on the %s cluster returned no "
					"answer for the partition (retry; check the cluster's health)",
					want->topic, want->partition, k->ep.role);
	}
done:
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_topic_partition_list_destroy(l);
	return err;
}

const char *km_kafka_config_source_name(rd_kafka_ConfigSource_t s)
{
	switch (s) {
	case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG: return "topic";
	case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG: return "broker-dynamic";
	case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG:
		return "cluster-dynamic-default";
	case RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG: return "broker-static";
	case RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG: return "default";
	default: return "unknown";
	}
}

/* ---- committed offsets ----------------------------------------------------------- */

/* Handles opened ahead of the group being read (see kafka.h). */
#define READER_WINDOW 8

/* A consumer handle for group that never subscribes.  read_uncommitted:
 * the committed offset as the admin call gave it, without waiting for
 * a pending transactional commit to settle (require_stable). */
static rd_kafka_t *reader_new(km_kafka_t *k, const char *group, char *errstr, size_t errstr_size)
{
	const char *props[] = {"group.id", group,
			       "enable.auto.commit", "false",
			       "isolation.level", "read_uncommitted",
			       "socket.connection.setup.timeout.ms", "10000",
			       "reconnect.backoff.max.ms", "2000",
			       "log.connection.close", "false",
			       NULL};
	rd_kafka_conf_t *conf;
	char rerr[512];
	rd_kafka_t *rk;

	if (km_kafka_conf_new(&k->ep, props, &conf, errstr, errstr_size))
		return NULL;
	/* librdkafka's own log goes through log_cb: the engine never prints. */
	rd_kafka_conf_set_opaque(conf, k);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		km_seterr(errstr, errstr_size, KM_ERR_PLAN,
			  "cannot create a consumer for group '%s' on the %s cluster '%s': %s", group,
			  k->ep.role, k->ep.bootstrap, rerr);
	}
	return rk;
}

/* The kept handle of group, or a new one (kept when keep). */
static rd_kafka_t *reader_get(km_kafka_t *k, const char *group, bool keep, bool *keptp,
			      char *errstr, size_t errstr_size)
{
	rd_kafka_t *rk = NULL;

	pthread_mutex_lock(&k->lock);
	for (size_t i = 0; i < k->nreaders && !rk; i++)
		if (!strcmp(k->readers[i].group, group))
			rk = k->readers[i].rk;
	pthread_mutex_unlock(&k->lock);
	*keptp = rk != NULL;
	if (rk || !(rk = reader_new(k, group, errstr, errstr_size)) || !keep)
		return rk;
	pthread_mutex_lock(&k->lock);
	k->readers = km_realloc(k->readers, (k->nreaders + 1) * sizeof(*k->readers));
	k->readers[k->nreaders].group = km_strdup(group);
	k->readers[k->nreaders].rk = rk;
	k->nreaders++;
	pthread_mutex_unlock(&k->lock);
	*keptp = true;
	return rk;
}

static void reader_close(rd_kafka_t *rk)
{
	/* It never subscribed: there is no group membership to leave. */
	if (rk)
		rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

/* Every partition of every topic on the cluster. */
static km_err_t all_partitions(km_kafka_t *k, rd_kafka_topic_partition_list_t **lp, char *errstr,
			       size_t errstr_size)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t rerr = rd_kafka_metadata(k->rk, 1, NULL, &md, KM_KAFKA_TIMEOUT_MS);

	if (rerr)
		return km_kafka_err(k, rerr, "Metadata of every topic", NULL, errstr, errstr_size);
	*lp = rd_kafka_topic_partition_list_new(16);
	for (int t = 0; t < md->topic_cnt; t++)
		/* A topic whose metadata erred (not authorized to describe
		 * it) has no partitions listed: nothing to ask about. */
		for (int p = 0; p < md->topics[t].partition_cnt; p++)
			rd_kafka_topic_partition_list_add(*lp, md->topics[t].topic,
							  md->topics[t].partitions[p].id);
	rd_kafka_metadata_destroy(md);
	return KM_ERR_OK;
}

/* Errors that mean "ask again": the coordinator is loading, moved, or not
 * yet reachable (a restart).  The reader's own group re-finds its
 * coordinator on NOT_COORDINATOR. */
static bool coordinator_err(rd_kafka_resp_err_t rerr)
{
	return rerr == RD_KAFKA_RESP_ERR_NOT_COORDINATOR ||
	       rerr == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
	       rerr == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS ||
	       rerr == RD_KAFKA_RESP_ERR__TRANSPORT || rerr == RD_KAFKA_RESP_ERR__TIMED_OUT;
}

/* Reads one group's offsets of l on rk until the deadline.  Attempts are
 * short and grow, so that an error the handle reports on its consumer
 * queue meanwhile (FindCoordinator not authorized: rd_kafka_committed()
 * itself would only wait for a coordinator until its timeout) fails the
 * call at once. */
static km_err_t read_group(km_kafka_t *k, rd_kafka_t *rk, const char *group,
			   rd_kafka_topic_partition_list_t *l, int timeout_ms, char *errstr,
			   size_t errstr_size)
{
	int64_t deadline = km_mono_ms() + timeout_ms;
	int attempt_ms = 500;
	rd_kafka_resp_err_t rerr;
	char what[300];

	snprintf(what, sizeof(what), "OffsetFetch of group '%s'", group);
	for (;;) {
		int64_t left = deadline - km_mono_ms();
		if (left <= 0) {
			rerr = RD_KAFKA_RESP_ERR__TIMED_OUT;
			break;
		}
		rerr = rd_kafka_committed(rk, l, (int)(left < attempt_ms ? left : attempt_ms));
		if (!rerr || !coordinator_err(rerr))
			break;
		attempt_ms = attempt_ms < 4000 ? attempt_ms * 2 : attempt_ms;
		/* Not subscribed: polling only hands over errors. */
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 0);
		if (m) {
			rd_kafka_resp_err_t qerr = m->err;
			rd_kafka_message_destroy(m);
			if (qerr && !coordinator_err(qerr) && qerr != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN &&
			    qerr != RD_KAFKA_RESP_ERR__RESOLVE) {
				rerr = qerr;
				break;
			}
		}
	}
	if (!rerr)
		return KM_ERR_OK;
	return km_kafka_err(k, rerr, what,
			    rerr == RD_KAFKA_RESP_ERR__TIMED_OUT
				    ? "the group's coordinator did not answer before the deadline"
				    : NULL,
			    errstr, errstr_size);
}

km_err_t km_kafka_committed(km_kafka_t *k, const char *const *groups, size_t n,
			    const rd_kafka_topic_partition_list_t *parts, int flags, int timeout_ms,
			    rd_kafka_topic_partition_list_t **out, char *errstr, size_t errstr_size)
{
	bool keep = flags & KM_KAFKA_KEEP_READERS;
	rd_kafka_t **h = km_calloc(n ? n : 1, sizeof(*h));
	bool *kept = km_calloc(n ? n : 1, sizeof(*kept));
	rd_kafka_topic_partition_list_t *all = NULL;
	km_err_t err = KM_ERR_OK;

	if (timeout_ms <= 0)
		timeout_ms = KM_KAFKA_TIMEOUT_MS;
	for (size_t i = 0; i < n; i++)
		out[i] = NULL;
	if (!parts && n && (err = all_partitions(k, &all, errstr, errstr_size)))
		goto done;
	for (size_t i = 0; i < n && !err; i++) {
		for (size_t j = i; j < n && j < i + READER_WINDOW && !err; j++)
			if (!h[j] && !(h[j] = reader_get(k, groups[j], keep, &kept[j], errstr,
							 errstr_size)))
				err = KM_ERR_PLAN;
		if (err)
			break;
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_copy(parts ? parts : all);
		/* An empty list sends nothing and gets no answer. */
		if (l->cnt && (err = read_group(k, h[i], groups[i], l, timeout_ms, errstr, errstr_size))) {
			rd_kafka_topic_partition_list_destroy(l);
			break;
		}
		if (!parts) {
			rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_new(l->cnt ? 8 : 1);
			for (int p = 0; p < l->cnt; p++)
				if (l->elems[p].offset >= 0 || l->elems[p].err) {
					rd_kafka_topic_partition_t *e = rd_kafka_topic_partition_list_add(
						c, l->elems[p].topic, l->elems[p].partition);
					e->offset = l->elems[p].offset;
					e->err = l->elems[p].err;
					if (l->elems[p].metadata_size) {
						e->metadata = km_malloc(l->elems[p].metadata_size);
						memcpy(e->metadata, l->elems[p].metadata,
						       l->elems[p].metadata_size);
						e->metadata_size = l->elems[p].metadata_size;
					}
				}
			rd_kafka_topic_partition_list_destroy(l);
			l = c;
		}
		out[i] = l;
		if (!kept[i]) {
			reader_close(h[i]);
			h[i] = NULL;
		}
	}
done:
	for (size_t i = 0; i < n; i++) {
		if (!kept[i])
			reader_close(h[i]);
		if (err && out[i]) {
			rd_kafka_topic_partition_list_destroy(out[i]);
			out[i] = NULL;
		}
	}
	if (all)
		rd_kafka_topic_partition_list_destroy(all);
	free(h);
	free(kept);
	return err;
}

static void put_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	rd_kafka_resp_err_t *first = opaque;
	(void)rk;
	if (m->err && !*first)
		*first = m->err;
}

km_err_t km_kafka_put(const km_kafka_endpoint_t *ep, const char *topic, int partition,
		      const char *const *keys, const char *const *vals, size_t n, char *errstr,
		      size_t errstr_size)
{
	const char *extra[] = {"enable.idempotence", "true", "acks", "all", "linger.ms", "0",
			       "message.timeout.ms", "30000", NULL};
	rd_kafka_resp_err_t derr = RD_KAFKA_RESP_ERR_NO_ERROR;
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk;
	char rerr[512];
	km_err_t err;

	if ((err = km_kafka_conf_new(ep, extra, &conf, errstr, errstr_size)))
		return err;
	rd_kafka_conf_set_dr_msg_cb(conf, put_dr);
	rd_kafka_conf_set_opaque(conf, &derr);
	if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		return km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				 "cannot create a producer on the %s cluster: %s", ep->role, rerr);
	}
	for (size_t i = 0; i < n; i++) {
		rd_kafka_resp_err_t perr = rd_kafka_producev(
			rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
			RD_KAFKA_V_KEY(keys[i], strlen(keys[i])),
			RD_KAFKA_V_VALUE((void *)vals[i], strlen(vals[i])),
			RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		if (perr && !derr)
			derr = perr;
	}
	if (rd_kafka_flush(rk, 60000) && !derr)
		derr = RD_KAFKA_RESP_ERR__TIMED_OUT;
	rd_kafka_destroy(rk);
	if (!derr)
		return KM_ERR_OK;
	return km_seterr(errstr, errstr_size,
			 derr == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ? KM_ERR_AUTHZ
									  : KM_ERR_KAFKA,
			 "writing '%s'[%d] on the %s cluster: %s", topic, partition, ep->role,
			 rd_kafka_err2str(derr));
}
