/*
 * digest.h -- what "the same record" means, once for every phase.
 *
 * A record's digest is XXH3 over its key, its value, its headers (name,
 * null-ness and value of each, in order) and its timestamp, each component
 * hashed on its own so that a mismatch can say which part differs.  validate
 * compares records by it, offsets proves translated positions by it, and the
 * cutover and rollback proofs will too: one definition, so that a proof and a
 * validation verdict never disagree about whether two records are the same.
 *
 * Pure computation: no Kafka I/O, no allocation, any thread.
 */
#ifndef KM_DIGEST_H
#define KM_DIGEST_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* The digest of one record.  Each component is hashed on its own so that a
 * mismatch can say which part differs; `all` combines them.  A null key or
 * value hashes to KM_DIGEST_NULL, distinct from the hash of empty bytes. */
typedef struct km_digest_s {
	uint64_t key;
	uint64_t value;
	uint64_t headers; /* (name, value null-ness, value) of each, in order */
	int64_t ts;       /* the record timestamp, compared as is */
	uint64_t all;     /* the record digest */
} km_digest_t;

#define KM_DIGEST_NULL 0x6e756c6c2d6b6d31ull /* "null-km1" */

/* A header as the digest sees it; value NULL = null value. */
typedef struct km_digest_header_s {
	const char *name;
	const void *value;
	size_t size;
} km_digest_header_t;

/* Digests one record.  No allocation; headers up to 4 KiB in total are
 * hashed from a stack buffer, longer ones through a streaming XXH3 state.
 * @locality any thread */
void km_digest_record(const void *key, size_t key_len, const void *value, size_t value_len,
		      const km_digest_header_t *hdrs, size_t nhdrs, int64_t ts, km_digest_t *d);

/* Digests a consumed record (key, value, headers, timestamp) the same way.
 * @returns the number of headers (librdkafka parses them on first use). */
size_t km_digest_message(const rd_kafka_message_t *rkm, km_digest_t *d);

/* The digest of a byte string, KM_DIGEST_NULL for NULL (a null key or
 * value).  Used for keys in validate's per-key tables. */
uint64_t km_digest_bytes(const void *p, size_t n);

#endif
