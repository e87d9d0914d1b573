/*
 * compat.h -- the compatibility gate: can the target cluster carry what the
 * plan says runs on the source?
 *
 * km_compat_check() opens the TARGET with the plan's security settings and
 * proves, with canaries rather than with configuration reads wherever a
 * canary can, what the migrated applications will rely on: connectivity and
 * authentication; broker API version ranges against the declared producers
 * and consumers (their client and client_version, KIP-896's protocol floor);
 * an idempotent produce read back; a transaction committed and one aborted,
 * read back with read_committed and read_uncommitted; every compression codec
 * round-tripped; records at the largest max.message.bytes the in-scope SOURCE
 * topics allow (read from the source) accepted and one byte more refused;
 * a cooperative-sticky consumer group that rebalances and commits; and the
 * admin operations the plan needs (create, describe, alter, delete topics,
 * describe configs and ACLs).  Every check becomes one row of evidence: what
 * was tried, how long it took, GO or NO-GO, and the error text.  Anything
 * that cannot be established is NO-GO, never skipped.
 *
 * Canaries live in a topic and a group named "kmigrate-canary.<migration>.
 * <random>" (docs/internals/compat.md says why) and are deleted in every
 * path, failure included; leftovers of killed runs with the same prefix are
 * deleted by the next run.
 *
 * What this module does not do: it never prints, never exits, never touches
 * the journal (the command records the rows it returns), and never changes
 * anything on the target but its own canaries.  It reads the source only for
 * the in-scope topics' max.message.bytes.
 *
 * @locality the calling thread; librdkafka's threads run callbacks that only
 *           fill the check's own state.
 */
#ifndef KM_COMPAT_H
#define KM_COMPAT_H

#include <jansson.h>
#include <signal.h>
#include <stdint.h>

#include "err.h"
#include "plan.h"

/* Canary names start with this, then "<migration>.". */
#define KM_COMPAT_CANARY_PREFIX "kmigrate-canary."

typedef struct km_compat_opts_s {
	/* Deadline of each step (an admin call, a delivery, a read-back, a
	 * rebalance), in ms.  Default KM_KAFKA_TIMEOUT_MS. */
	int timeout_ms;
	/* > 0: the record size (bytes, a whole batch) the max.message.bytes
	 * check proves, instead of the largest max.message.bytes of the
	 * in-scope source topics (which needs the source reachable). */
	int64_t topic_bytes;
	/* When non-NULL and set (by a signal handler), the checks not yet run
	 * are reported NO-GO "not run: interrupted", the canaries are cleaned
	 * up, and the report says "interrupted". */
	volatile sig_atomic_t *stop;
} km_compat_opts_t;

void km_compat_opts_init(km_compat_opts_t *opts);

/*
 * Runs the gate against the plan's target.
 *
 * @returns KM_ERR_OK and a new report in *reportp (json_decref it) whenever
 *          the checks ran, whatever their verdict:
 *            {"migration", "target": {bootstrap, security_protocol,
 *             sasl_mechanism, cluster_id, brokers}, "canary": {topic,
 *             size_topic, group, transactional_id},
 *             "checks": [{name, result "GO"|"NO-GO", latency_ms, tried,
 *                         detail, error (null on GO)}],
 *             "verdict": "GO"|"NO-GO", "no_go": [names], "interrupted"}
 *          Before any check: KM_ERR_PLAN when the target's password cannot
 *          be read; KM_ERR_UNREACHABLE, KM_ERR_AUTH or KM_ERR_TIMEOUT when
 *          the target cannot be reached or refuses the credentials.  Then
 *          *reportp is NULL and nothing was created on the target.
 */
km_err_t km_compat_check(const km_plan_t *plan, const km_compat_opts_t *opts,
			 json_t **reportp, char *errstr, size_t errstr_size);

#endif
