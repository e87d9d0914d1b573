/*
 * quotas.c -- DescribeClientQuotas (ApiKey 48, KIP-546) spoken directly.
 *
 * librdkafka has no client-quota admin API, so the inventory sends this one
 * request itself: version 0, non-flexible, header v1.  Only plaintext
 * connections are supported; for TLS or SASL listeners the caller records
 * "not inventoried" with the reason instead of guessing.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "inventory.h"
#include "util.h"

#define APIKEY_DESCRIBE_CLIENT_QUOTAS 48
#define MAX_RESPONSE (16 * 1024 * 1024)

/* Reads or writes exactly n bytes before the deadline. */
static int io_full(int fd, void *buf, size_t n, int writing, int64_t deadline)
{
	size_t done = 0;

	while (done < n) {
		struct pollfd pfd = {fd, (short)(writing ? POLLOUT : POLLIN), 0};
		int64_t left = deadline - km_mono_ms();
		ssize_t r;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return -1;
		r = writing ? write(fd, (char *)buf + done, n - done)
			    : read(fd, (char *)buf + done, n - done);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

static int dial(const char *bootstrap, int64_t deadline, char *why, size_t whysz)
{
	char host[256], *colon;
	struct addrinfo hints = {0}, *ai = NULL;
	const char *comma = strchr(bootstrap, ',');
	size_t len = comma ? (size_t)(comma - bootstrap) : strlen(bootstrap);
	int fd = -1, rc;

	if (len >= sizeof(host)) {
		snprintf(why, whysz, "bootstrap address too long");
		return -1;
	}
	memcpy(host, bootstrap, len);
	host[len] = '\0';
	colon = strrchr(host, ':');
	if (!colon) {
		snprintf(why, whysz, "bootstrap '%s' has no port", host);
		return -1;
	}
	*colon = '\0';
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &ai)) != 0) {
		snprintf(why, whysz, "cannot resolve '%s': %s", host,
			 gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(why, whysz, "socket: %s", strerror(errno));
		freeaddrinfo(ai);
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		struct pollfd pfd = {fd, POLLOUT, 0};
		int soerr = errno;
		socklen_t sl = sizeof(soerr);
		int64_t left = deadline - km_mono_ms();

		if (soerr == EINPROGRESS) {
			soerr = ETIMEDOUT;
			if (left > 0 && poll(&pfd, 1, (int)left) > 0 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
				soerr = errno;
		}
		if (soerr) {
			snprintf(why, whysz, "cannot connect to '%s:%s': %s",
				 host, colon + 1, strerror(soerr));
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	return fd;
}

typedef struct {
	const unsigned char *p, *end;
	int bad;
} rd_t;

static int64_t rd_int(rd_t *r, int n)
{
	int64_t v = 0;
	if (r->bad || r->end - r->p < n) {
		r->bad = 1;
		return 0;
	}
	for (int i = 0; i < n; i++)
		v = (v << 8) | r->p[i];
	r->p += n;
	/* sign-extend */
	if (n < 8 && (v & ((int64_t)1 << (n * 8 - 1))))
		v -= (int64_t)1 << (n * 8);
	return v;
}

static json_t *rd_str(rd_t *r)
{
	int64_t len = rd_int(r, 2);
	json_t *s;
	if (len < 0)
		return json_null();
	if (r->bad || r->end - r->p < len) {
		r->bad = 1;
		return json_null();
	}
	s = json_stringn((const char *)r->p, (size_t)len);
	r->p += len;
	return s ? s : json_null();
}

static void put16(unsigned char *b, size_t *n, int v)
{
	b[(*n)++] = (unsigned char)(v >> 8);
	b[(*n)++] = (unsigned char)v;
}

static void put32(unsigned char *b, size_t *n, int32_t v)
{
	put16(b, n, (int)((uint32_t)v >> 16));
	put16(b, n, v & 0xffff);
}

km_err_t km_quotas_describe(const km_kafka_endpoint_t *ep, int timeout_ms,
			    json_t **entriesp, char *errstr, size_t errstr_size)
{
	int64_t deadline = km_mono_ms() + timeout_ms;
	unsigned char req[64], hdr[8], *resp = NULL;
	const char *cid = "kmigrate";
	size_t n = 4;
	int fd;
	int64_t size, corr, ecode;
	char why[300];
	km_err_t err = KM_ERR_OK;
	json_t *entries = NULL, *emsg;
	rd_t r;

	*entriesp = NULL;
	if (ep->security_protocol && strcasecmp(ep->security_protocol, "plaintext"))
		return km_seterr(errstr, errstr_size, KM_ERR_UNSUPPORTED,
				 "client quotas not inventoried: kmigrate sends "
				 "DescribeClientQuotas itself and only over plaintext "
				 "(this cluster uses %s); list them with kafka-configs "
				 "--describe --entity-type users --entity-type clients",
				 ep->security_protocol);
	why[0] = '\0';
	if ((fd = dial(ep->bootstrap, deadline, why, sizeof(why))) < 0)
		return km_seterr(errstr, errstr_size, KM_ERR_UNREACHABLE,
				 "client quotas not inventoried: %s", why);

	/* Header v1 and a v0 body matching every entity (no components,
	 * strict=false). */
	put16(req, &n, APIKEY_DESCRIBE_CLIENT_QUOTAS);
	put16(req, &n, 0);
	put32(req, &n, 1);
	put16(req, &n, (int)strlen(cid));
	memcpy(req + n, cid, strlen(cid));
	n += strlen(cid);
	put32(req, &n, 0);
	req[n++] = 0;
	size_t tmp = 0;
	put32(req, &tmp, (int32_t)(n - 4));

	if (io_full(fd, req, n, 1, deadline) || io_full(fd, hdr, 4, 0, deadline)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_UNREACHABLE,
				"client quotas not inventoried: no DescribeClientQuotas "
				"answer from '%s'",
				ep->bootstrap);
		goto done;
	}
	r.p = hdr;
	r.end = hdr + 4;
	r.bad = 0;
	size = rd_int(&r, 4);
	if (size < 8 || size > MAX_RESPONSE) {
		err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				"client quotas not inventoried: bad response size %lld",
				(long long)size);
		goto done;
	}
	resp = km_malloc((size_t)size);
	if (io_full(fd, resp, (size_t)size, 0, deadline)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_UNREACHABLE,
				"client quotas not inventoried: truncated response");
		goto done;
	}
	r.p = resp;
	r.end = resp + size;
	corr = rd_int(&r, 4);
	(void)rd_int(&r, 4); /* throttle_time_ms */
	ecode = rd_int(&r, 2);
	emsg = rd_str(&r);
	if (r.bad || corr != 1) {
		json_decref(emsg);
		err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				"client quotas not inventoried: malformed response");
		goto done;
	}
	if (ecode) {
		err = km_seterr(errstr, errstr_size,
				ecode == 31 ? KM_ERR_AUTHZ : KM_ERR_KAFKA,
				"client quotas not inventoried: broker error %lld%s%s",
				(long long)ecode, json_is_string(emsg) ? ": " : "",
				json_is_string(emsg) ? json_string_value(emsg) : "");
		json_decref(emsg);
		goto done;
	}
	json_decref(emsg);
	entries = json_array();
	int64_t ne = rd_int(&r, 4);
	for (int64_t e = 0; e < ne && !r.bad; e++) {
		json_t *entity = json_object(), *values = json_object();
		int64_t nent = rd_int(&r, 4);
		for (int64_t i = 0; i < nent && !r.bad; i++) {
			json_t *type = rd_str(&r), *name = rd_str(&r);
			if (json_is_string(type))
				json_object_set_new(entity, json_string_value(type),
						    json_is_string(name)
							    ? name
							    : json_string("<default>"));
			else
				json_decref(name);
			json_decref(type);
		}
		int64_t nv = rd_int(&r, 4);
		for (int64_t i = 0; i < nv && !r.bad; i++) {
			json_t *key = rd_str(&r);
			uint64_t bits = (uint64_t)rd_int(&r, 8);
			double d;
			memcpy(&d, &bits, sizeof(d));
			if (json_is_string(key))
				json_object_set_new(values, json_string_value(key),
						    json_real(d));
			json_decref(key);
		}
		json_array_append_new(entries, json_pack("{s:o, s:o}", "entity",
							 entity, "values", values));
	}
	if (r.bad) {
		json_decref(entries);
		entries = NULL;
		err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				"client quotas not inventoried: malformed response");
		goto done;
	}
	*entriesp = entries;
done:
	free(resp);
	close(fd);
	return err;
}
