/*
 * lock.h -- the cutover lock: at most one `kmigrate cutover` of a migration
 * runs at a time, whichever host it runs on.
 *
 * The lock lives on the target cluster, where every kmigrate process of the
 * migration already goes: it is the ownership of partition 0 of the
 * single-partition topic __kmigrate.<m>.lock (created if missing, holds no
 * record) in the classic consumer group __kmigrate.<m>.cutover-lock, with
 * the cooperative-sticky assignor (an owner keeps the partition when
 * another member joins, so a newcomer can never take it from a live
 * holder).  The member's client.id names the holder: "kmigrate-cutover
 * host=<h> pid=<p> wave=<W> since=<ISO 8601>".
 *
 * Taking it: DescribeConsumerGroups first; a group with members is held
 * (its member's client.id is named).  A holder killed with -9 stays a member
 * until its session times out (6 s), so a group with members is asked
 * again until wait_ms has passed before the refusal.  An empty group is
 * joined; two processes that both saw it empty both join, the assignor
 * gives the partition to one of them, and the other leaves and is refused.
 * A thread keeps polling the member while it is held (the session and
 * max.poll.interval.ms stay alive however long a step waits); releasing
 * it is closing the member (LeaveGroup: the next process gets it at once).
 *
 * What it does not do: fence anything.  A holder whose membership the
 * broker dropped (a process frozen past its session) has lost the lock and
 * is told through *lost_flag; it is the caller's to stop.
 */
#ifndef KM_LOCK_H
#define KM_LOCK_H

#include <signal.h>
#include <stdbool.h>

#include "err.h"
#include "kafka.h"

/* The session of the lock's member: how long a holder killed with -9 keeps
 * the lock. */
#define KM_LOCK_SESSION_MS 6000
/* The default wait for a holder that may have died (a bit more than the
 * session, and the rebalance that follows it). */
#define KM_LOCK_WAIT_MS 15000

typedef struct km_lock_s km_lock_t;

/* Takes the cutover lock of migration on the target tgt (its secrets are
 * read from it).  wave: the wave this process cuts over (named in its
 * client.id).  wait_ms: how long a held lock is asked again before the
 * refusal (<= 0: KM_LOCK_WAIT_MS).  lost_flag (may be NULL) is set to 1 by
 * the lock's thread if the lock is lost while held.
 * @returns KM_ERR_OK and a new lock in *lockp (release with
 * km_lock_release), KM_ERR_NOGO when another process holds it ("cutover of
 * migration 'm' is already running (held by <client.id> since <when>):
 * wait for it or stop it"), or a cluster error. */
km_err_t km_lock_acquire(const km_kafka_endpoint_t *tgt, const char *migration, const char *wave,
			 int wait_ms, volatile sig_atomic_t *lost_flag, km_lock_t **lockp,
			 char *errstr, size_t errstr_size);

/* km_lock_acquire() for command ("cutover", "rollback"), named in the
 * holder's client.id ("kmigrate-<command> host=..."): `rollback` takes the
 * same lock, so a cutover and a rollback, or two rollbacks, of one
 * migration never run at once; the refusal names the command holding it
 * ("rollback of migration 'm' is already running (held by ...)"). */
km_err_t km_lock_acquire_for(const km_kafka_endpoint_t *tgt, const char *migration,
			     const char *command, const char *wave, int wait_ms,
			     volatile sig_atomic_t *lost_flag, km_lock_t **lockp, char *errstr,
			     size_t errstr_size);

/* Whether the lock was lost while held (the broker dropped the member). */
bool km_lock_lost(const km_lock_t *lock);

/* The holder's client.id (static for the lock's life). */
const char *km_lock_holder(const km_lock_t *lock);

/* Releases the lock (leaves the group) and frees it; NULL is a no-op. */
void km_lock_release(km_lock_t *lock);

#endif
