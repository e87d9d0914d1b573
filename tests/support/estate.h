/*
 * estate.h -- the small, realistic estate the demo and the inventory tests
 * build on a source cluster.  The constants are the facts tests assert.
 *
 *   orders     6 partitions x 50 keyed records with two headers each;
 *              retention.ms and max.message.bytes overridden
 *   payments   3 partitions; 3 committed transactions of 20 records, one
 *              aborted transaction of 10
 *   customers  compacted, 2 partitions; updates and tombstones
 *   audit.log  1 partition; records near max.message.bytes (10000)
 *   ACLs       literal and prefixed topic ACLs, literal and prefixed group
 *              ACLs, a cluster ACL, a transactional-id ACL, a DENY
 *   groups     billing (10 behind on every orders partition), analytics
 *              (at 0 on orders: all behind), fraud-detector (caught up on
 *              payments, with a live member)
 */
#ifndef KM_ESTATE_H
#define KM_ESTATE_H

#include "tk.h"

#define ESTATE_ORDERS "orders"
#define ESTATE_ORDERS_PARTS 6
#define ESTATE_ORDERS_PER_PART 50
#define ESTATE_ORDERS_RETENTION "259200000"
#define ESTATE_ORDERS_MAXBYTES "2097152"
#define ESTATE_PAYMENTS "payments"
#define ESTATE_PAYMENTS_PARTS 3
#define ESTATE_CUSTOMERS "customers"
#define ESTATE_AUDIT "audit.log"
#define ESTATE_AUDIT_MAXBYTES "10000"
#define ESTATE_AUDIT_RECORD 9500
#define ESTATE_BILLING_LAG 10
#define ESTATE_NACLS 7

/* Builds the estate (topic names prefixed with prefix, "" for none) and
 * returns the pid of the live group member (stop it with tk_member_stop). */
pid_t estate_seed(const tk_cluster_t *c, const char *prefix);

#endif
