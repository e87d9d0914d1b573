/*
 * metrics.h -- kmigrate's own metrics: a small thread-safe registry of
 * counters and gauges with labelled series, rendered in the Prometheus text
 * exposition format (version 0.0.4) and served on /metrics by an embedded
 * HTTP server (libmicrohttpd).
 *
 * Every metric kmigrate exports is a row of one catalogue (km_metrics_
 * catalogue[]): its name, type, help text, label names and whether a
 * rollback trigger may watch it.  The registry refuses a name that is not
 * in the catalogue (KM_BUG), so a metric cannot be exported without being
 * documented: docs/metrics.md mirrors the catalogue, and the plan checks a
 * trigger's `metric:` against it at load time.  Names follow Prometheus'
 * conventions: the kmigrate_ prefix, base units (seconds, bytes), counters
 * ending in _total.
 *
 * Updates are meant for "per batch", not "per record": each takes one
 * mutex.  Rendering copies nothing it does not print.
 *
 * What this module does not do: measure anything (replicate and monitor
 * set the values), keep history, print, or exit.
 *
 * @locality any thread; the server answers scrapes on its own thread.
 */
#ifndef KM_METRICS_H
#define KM_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

typedef enum { KM_METRIC_COUNTER = 0, KM_METRIC_GAUGE } km_metric_type_t;

/* One row of the catalogue. */
typedef struct km_metric_def_s {
	const char *name;
	km_metric_type_t type;
	const char *labels; /* comma-separated label names, "" for none */
	const char *help;
	/* A rollback trigger may name it (rollback.triggers[].metric): kmigrate
	 * `monitor` measures it itself. */
	bool trigger;
} km_metric_def_t;

/* The catalogue, terminated by a row whose name is NULL. */
extern const km_metric_def_t km_metrics_catalogue[];

/* @returns the catalogue row of name, or NULL. */
const km_metric_def_t *km_metrics_def(const char *name);

typedef struct km_metrics_s km_metrics_t;

/* @returns a new, empty registry; destroy with km_metrics_destroy(). */
km_metrics_t *km_metrics_new(void);
/* Stops nothing: stop the server first.  NULL is fine. */
void km_metrics_destroy(km_metrics_t *m);

/*
 * Label sets are passed as alternating names and values, NULL-terminated:
 *   km_metrics_set(m, "kmigrate_replication_lag_records", 12.0,
 *                  "topic", "orders", "partition", "3", NULL);
 * The names must be the catalogue's, in its order (checked: KM_BUG).
 * Values are escaped as the format requires.  m may be NULL (no-op), so
 * that callers without metrics pay one branch.
 */
void km_metrics_set(km_metrics_t *m, const char *name, double v, ...);
void km_metrics_add(km_metrics_t *m, const char *name, double delta, ...);
/* Removes every series of name (a gauge re-measured from scratch: series
 * whose subject went away must not stay at their last value). */
void km_metrics_clear(km_metrics_t *m, const char *name);
/* A gauge re-measured in place: km_metrics_mark(), set every series that
 * still exists, km_metrics_sweep() removes the others.  Unlike clear-then-
 * set, a scrape in between never sees the family empty. */
void km_metrics_mark(km_metrics_t *m, const char *name);
void km_metrics_sweep(km_metrics_t *m, const char *name);
/* @returns whether the series exists, its value in *vp. */
bool km_metrics_get(km_metrics_t *m, const char *name, double *vp, ...);

/* The largest value among name's series whose labels include every pair
 * of filter (n pairs: filter[2i] = filter[2i+1]; NaN values are skipped).
 * @returns the number of matching series; *vp is set when > 0. */
size_t km_metrics_max(km_metrics_t *m, const char *name, const char *const *filter, size_t n,
		      double *vp);

/* @returns the registry in the text exposition format (owned; free()). */
char *km_metrics_render(km_metrics_t *m);

/*
 * Serves GET /metrics (anything else: 404) on addr "HOST:PORT" ("[v6]:PORT"
 * for IPv6; HOST may be a name).  The address is bound before this returns,
 * so a port in use fails here: KM_ERR_IO "cannot serve metrics on
 * '127.0.0.1:9400': Address already in use: ...".  A malformed address is
 * KM_ERR_INVALID_ARG.
 * @returns a server in *srvp; stop it with km_metrics_serve_stop().
 */
typedef struct km_metrics_server_s km_metrics_server_t;
km_err_t km_metrics_serve(km_metrics_t *m, const char *addr, km_metrics_server_t **srvp,
			  char *errstr, size_t errstr_size);
/* NULL is fine. */
void km_metrics_serve_stop(km_metrics_server_t *srv);

/* Checks "HOST:PORT" without binding (flag and plan validation).
 * @returns 0 when well-formed. */
int km_metrics_addr_check(const char *addr);
/* Splits addr into host and port (each NUL-terminated).  @returns 0 when
 * well-formed, the port a number in 1..65535. */
int km_metrics_addr_split(const char *addr, char *host, size_t hsize, char *port, size_t psize);

#endif
