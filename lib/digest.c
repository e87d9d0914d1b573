/*
 * digest.c -- the record digest (see digest.h).
 */
#include "digest.h"

#include <stdbool.h>
#include <string.h>

/* The digest is on the hot path: inline XXH3 so that short keys and headers
 * cost a few nanoseconds, not a library call each. */
#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t km_digest_bytes(const void *p, size_t n)
{
	return p ? XXH3_64bits(p, n) : KM_DIGEST_NULL;
}

/* Header serialisation for the digest: a stack buffer for the usual few
 * short headers, spilling into a streaming XXH3 state only when a record
 * carries more than 4 KiB of headers. */
typedef struct hbuf_s {
	unsigned char buf[4096];
	size_t len;
	bool streaming;
	XXH3_state_t st;
} hbuf_t;

static void hbuf_add(hbuf_t *h, const void *p, size_t n)
{
	if (h->len + n > sizeof(h->buf)) {
		if (!h->streaming) {
			XXH3_64bits_reset(&h->st);
			h->streaming = true;
		}
		XXH3_64bits_update(&h->st, h->buf, h->len);
		h->len = 0;
		if (n > sizeof(h->buf)) {
			XXH3_64bits_update(&h->st, p, n);
			return;
		}
	}
	memcpy(h->buf + h->len, p, n);
	h->len += n;
}

static void hbuf_header(hbuf_t *h, const char *name, const void *value, size_t size)
{
	/* Lengths make the encoding unambiguous: ("ab","c") != ("a","bc"). */
	uint32_t nl = (uint32_t)strlen(name), vl = (uint32_t)size;
	unsigned char isnull = value ? 0 : 1;
	hbuf_add(h, &nl, sizeof(nl));
	hbuf_add(h, name, nl);
	hbuf_add(h, &isnull, 1);
	if (value) {
		hbuf_add(h, &vl, sizeof(vl));
		hbuf_add(h, value, size);
	}
}

static uint64_t hbuf_digest(hbuf_t *h)
{
	if (!h->streaming)
		return XXH3_64bits(h->buf, h->len);
	XXH3_64bits_update(&h->st, h->buf, h->len);
	return XXH3_64bits_digest(&h->st);
}

static inline void digest_combine(km_digest_t *d)
{
	uint64_t parts[4] = {d->key, d->value, d->headers, (uint64_t)d->ts};
	d->all = XXH3_64bits(parts, sizeof(parts));
}

void km_digest_record(const void *key, size_t key_len, const void *value, size_t value_len,
			const km_digest_header_t *hdrs, size_t nhdrs, int64_t ts, km_digest_t *d)
{
	d->key = km_digest_bytes(key, key_len);
	d->value = km_digest_bytes(value, value_len);
	d->ts = ts;
	if (nhdrs) {
		hbuf_t h;
		h.len = 0;
		h.streaming = false;
		for (size_t i = 0; i < nhdrs; i++)
			hbuf_header(&h, hdrs[i].name, hdrs[i].value, hdrs[i].size);
		d->headers = hbuf_digest(&h);
	} else {
		d->headers = XXH3_64bits(NULL, 0);
	}
	digest_combine(d);
}


size_t km_digest_message(const rd_kafka_message_t *rkm, km_digest_t *d)
{
	rd_kafka_timestamp_type_t tstype;
	rd_kafka_headers_t *hdrs = NULL;
	size_t n = 0, size;
	const char *name;
	const void *val;

	d->key = km_digest_bytes(rkm->key, rkm->key_len);
	d->value = km_digest_bytes(rkm->payload, rkm->len);
	d->ts = rd_kafka_message_timestamp(rkm, &tstype);
	if (rd_kafka_message_headers(rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    !rd_kafka_header_get_all(hdrs, 0, &name, &val, &size)) {
		hbuf_t h;
		h.len = 0;
		h.streaming = false;
		for (; !rd_kafka_header_get_all(hdrs, n, &name, &val, &size); n++)
			hbuf_header(&h, name, val, size);
		d->headers = hbuf_digest(&h);
	} else {
		d->headers = XXH3_64bits(NULL, 0);
	}
	digest_combine(d);
	return n;
}
