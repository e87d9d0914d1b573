/*
 * metrics.c -- the metrics catalogue, the registry and its /metrics server.
 *
 * The registry is one mutex over a list of series per catalogue row.  A
 * series is found by its rendered label set ({topic="a",partition="0"}),
 * which is also what /metrics prints, so a scrape is a walk and a copy.  The
 * lookups are linear: the busiest writer (replicate's per-second lag of
 * every partition it owns) sets a few hundred series a second, and a hash
 * would be worth it only well beyond that.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

/* ---- registry ------------------------------------------------------------- */

typedef struct series_s {
	char *labels; /* rendered: "" or {a="x",b="y"} */
	double v;
	bool seen; /* set since the family's last km_metrics_mark() */
} series_t;

typedef struct family_s {
	series_t *s;
	size_t n, cap;
} family_t;

struct km_metrics_s {
	pthread_mutex_t lock;
	family_t *fam; /* indexed like the catalogue */
	size_t nfam;
};

km_metrics_t *km_metrics_new(void)
{
	km_metrics_t *m = km_calloc(1, sizeof(*m));
	while (km_metrics_catalogue[m->nfam].name)
		m->nfam++;
	m->fam = km_calloc(m->nfam, sizeof(*m->fam));
	pthread_mutex_init(&m->lock, NULL);
	return m;
}

static void family_clear(family_t *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->s[i].labels);
	f->n = 0;
}

void km_metrics_destroy(km_metrics_t *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nfam; i++) {
		family_clear(&m->fam[i]);
		free(m->fam[i].s);
	}
	free(m->fam);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static size_t family_index(const km_metrics_t *m, const char *name)
{
	for (size_t i = 0; i < m->nfam; i++)
		if (!strcmp(km_metrics_catalogue[i].name, name))
			return i;
	KM_BUG("metric '%s' is not in the catalogue (lib/metrics.c, docs/metrics.md)", name);
}

/* Renders the label set of ap into sb, checking the names against the
 * catalogue row's, in order: a mistyped label would otherwise be a
 * different series that no dashboard shows. */
static void render_labels(const km_metric_def_t *d, va_list ap, km_sb_t *sb)
{
	const char *want = d->labels, *k;
	int n = 0;

	while ((k = va_arg(ap, const char *))) {
		const char *v = va_arg(ap, const char *);
		size_t kl = strlen(k);
		if (strncmp(want, k, kl) || (want[kl] != ',' && want[kl] != '\0'))
			KM_BUG("metric '%s': label '%s' where '%s' was expected", d->name, k,
			       want);
		want += kl + (want[kl] == ',');
		km_sb_puts(sb, n++ ? "," : "{");
		km_sb_puts(sb, k);
		km_sb_puts(sb, "=\"");
		for (const char *c = v ? v : ""; *c; c++) {
			if (*c == '\\')
				km_sb_puts(sb, "\\\\");
			else if (*c == '"')
				km_sb_puts(sb, "\\\"");
			else if (*c == '\n')
				km_sb_puts(sb, "\\n");
			else
				km_sb_add(sb, c, 1);
		}
		km_sb_puts(sb, "\"");
	}
	if (*want)
		KM_BUG("metric '%s': label(s) '%s' missing", d->name, want);
	if (n)
		km_sb_puts(sb, "}");
}

static series_t *series_get(family_t *f, const char *labels, bool create)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->s[i].labels, labels))
			return &f->s[i];
	if (!create)
		return NULL;
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 8;
		f->s = km_realloc(f->s, f->cap * sizeof(*f->s));
	}
	f->s[f->n].labels = km_strdup(labels);
	f->s[f->n].v = 0;
	return &f->s[f->n++];
}

static void update(km_metrics_t *m, const char *name, double v, bool add, va_list ap)
{
	size_t i = family_index(m, name);
	const km_metric_def_t *d = &km_metrics_catalogue[i];
	km_sb_t sb = KM_SB_INIT;

	if (d->type == KM_METRIC_COUNTER && (!add || v < 0))
		KM_BUG("counter '%s' only goes up", name);
	render_labels(d, ap, &sb);
	pthread_mutex_lock(&m->lock);
	series_t *s = series_get(&m->fam[i], km_sb_str(&sb), true);
	s->v = add ? s->v + v : v;
	s->seen = true;
	pthread_mutex_unlock(&m->lock);
	km_sb_free(&sb);
}

void km_metrics_set(km_metrics_t *m, const char *name, double v, ...)
{
	va_list ap;
	if (!m)
		return;
	va_start(ap, v);
	update(m, name, v, false, ap);
	va_end(ap);
}

void km_metrics_add(km_metrics_t *m, const char *name, double delta, ...)
{
	va_list ap;
	if (!m)
		return;
	va_start(ap, delta);
	update(m, name, delta, true, ap);
	va_end(ap);
}

void km_metrics_clear(km_metrics_t *m, const char *name)
{
	if (!m)
		return;
	size_t i = family_index(m, name);
	pthread_mutex_lock(&m->lock);
	family_clear(&m->fam[i]);
	pthread_mutex_unlock(&m->lock);
}

void km_metrics_mark(km_metrics_t *m, const char *name)
{
	if (!m)
		return;
	family_t *f = &m->fam[family_index(m, name)];
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < f->n; i++)
		f->s[i].seen = false;
	pthread_mutex_unlock(&m->lock);
}

void km_metrics_sweep(km_metrics_t *m, const char *name)
{
	if (!m)
		return;
	family_t *f = &m->fam[family_index(m, name)];
	size_t k = 0;
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < f->n; i++) {
		if (f->s[i].seen)
			f->s[k++] = f->s[i];
		else
			free(f->s[i].labels);
	}
	f->n = k;
	pthread_mutex_unlock(&m->lock);
}

bool km_metrics_get(km_metrics_t *m, const char *name, double *vp, ...)
{
	va_list ap;
	km_sb_t sb = KM_SB_INIT;
	bool found = false;

	if (!m)
		return false;
	size_t i = family_index(m, name);
	va_start(ap, vp);
	render_labels(&km_metrics_catalogue[i], ap, &sb);
	va_end(ap);
	pthread_mutex_lock(&m->lock);
	series_t *s = series_get(&m->fam[i], km_sb_str(&sb), false);
	if (s) {
		*vp = s->v;
		found = true;
	}
	pthread_mutex_unlock(&m->lock);
	km_sb_free(&sb);
	return found;
}

/* Whether rendered labels hold k="v" (v escaped as rendered). */
static bool has_label(const char *labels, const char *k, const char *v)
{
	km_sb_t want = KM_SB_INIT;
	bool found = false;

	km_sb_printf(&want, "%s=\"", k);
	for (const char *c = v; *c; c++) {
		if (*c == '\\' || *c == '"')
			km_sb_add(&want, "\\", 1);
		if (*c == '\n')
			km_sb_puts(&want, "\\n");
		else
			km_sb_add(&want, c, 1);
	}
	km_sb_puts(&want, "\"");
	for (const char *p = labels; (p = strstr(p, km_sb_str(&want))); p++) {
		char before = p == labels ? '\0' : p[-1];
		char after = p[want.len];
		if ((before == '{' || before == ',') && (after == ',' || after == '}')) {
			found = true;
			break;
		}
	}
	km_sb_free(&want);
	return found;
}

size_t km_metrics_max(km_metrics_t *m, const char *name, const char *const *filter, size_t n,
		      double *vp)
{
	size_t i = family_index(m, name), hits = 0;

	pthread_mutex_lock(&m->lock);
	for (size_t j = 0; j < m->fam[i].n; j++) {
		const series_t *s = &m->fam[i].s[j];
		bool ok = !isnan(s->v);
		for (size_t k = 0; ok && k < n; k++)
			ok = has_label(s->labels, filter[2 * k], filter[2 * k + 1]);
		if (!ok)
			continue;
		if (!hits++ || s->v > *vp)
			*vp = s->v;
	}
	pthread_mutex_unlock(&m->lock);
	return hits;
}

static void put_value(km_sb_t *sb, double v)
{
	if (isnan(v))
		km_sb_puts(sb, "NaN");
	else if (isinf(v))
		km_sb_puts(sb, v > 0 ? "+Inf" : "-Inf");
	else if (v == (double)(long long)v && fabs(v) < 9e15)
		km_sb_printf(sb, "%lld", (long long)v);
	else
		km_sb_printf(sb, "%.17g", v);
}

char *km_metrics_render(km_metrics_t *m)
{
	km_sb_t sb = KM_SB_INIT;

	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->nfam; i++) {
		const km_metric_def_t *d = &km_metrics_catalogue[i];
		family_t *f = &m->fam[i];
		/* A family with no series is left out: HELP and TYPE without a
		 * sample would say a metric exists that this command never
		 * measures. */
		if (!f->n)
			continue;
		km_sb_printf(&sb, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name,
			     d->type == KM_METRIC_COUNTER ? "counter" : "gauge");
		for (size_t j = 0; j < f->n; j++) {
			km_sb_printf(&sb, "%s%s ", d->name, f->s[j].labels);
			put_value(&sb, f->s[j].v);
			km_sb_puts(&sb, "\n");
		}
	}
	pthread_mutex_unlock(&m->lock);
	return km_sb_detach(&sb);
}

/* ---- server ---------------------------------------------------------------- */

struct km_metrics_server_s {
	struct MHD_Daemon *d;
	km_metrics_t *m;
	int fd;
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *data,
			      size_t *data_size, void **con_cls)
{
	km_metrics_server_t *srv = cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	unsigned code = MHD_HTTP_OK;
	char *body;

	(void)version;
	(void)data;
	(void)data_size;
	(void)con_cls;
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		body = km_strdup("only GET\n");
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (!strcmp(url, "/metrics")) {
		body = km_metrics_render(srv->m);
	} else {
		body = km_strdup("kmigrate serves /metrics\n");
		code = MHD_HTTP_NOT_FOUND;
	}
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, "Content-Type",
				code == MHD_HTTP_OK ? "text/plain; version=0.0.4; charset=utf-8"
						    : "text/plain; charset=utf-8");
	ret = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return ret;
}

km_err_t km_metrics_serve(km_metrics_t *m, const char *addr, km_metrics_server_t **srvp,
			  char *errstr, size_t errstr_size)
{
	struct addrinfo hints = {0}, *ai = NULL;
	char host[256], port[16];
	km_metrics_server_t *srv = NULL;
	km_err_t err = KM_ERR_OK;
	int fd = -1, one = 1, rc;

	*srvp = NULL;
	if (km_metrics_addr_split(addr, host, sizeof(host), port, sizeof(port))) {
		snprintf(errstr, errstr_size,
			 "invalid metrics address '%.200s': write HOST:PORT, e.g. 127.0.0.1:9464",
			 addr ? addr : "");
		return KM_ERR_INVALID_ARG;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if ((rc = getaddrinfo(host, port, &hints, &ai))) {
		snprintf(errstr, errstr_size,
			 "cannot serve metrics on '%s': cannot resolve '%s': %s: give an address "
			 "of this host",
			 addr, host, gai_strerror(rc));
		return KM_ERR_INVALID_ARG;
	}
	/* Bound here, not by the HTTP library, so that a port in use is named
	 * with the kernel's reason before the command starts its work. */
	if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 32)) {
		snprintf(errstr, errstr_size,
			 "cannot serve metrics on '%s': %s: choose a free port with "
			 "--metrics-addr or monitoring.metrics_addr",
			 addr, strerror(errno));
		err = KM_ERR_IO;
		goto done;
	}
	srv = km_calloc(1, sizeof(*srv));
	srv->m = m;
	srv->fd = fd;
	srv->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, answer, srv,
				  MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT,
				  (unsigned int)10, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64,
				  MHD_OPTION_END);
	if (!srv->d) {
		snprintf(errstr, errstr_size,
			 "cannot serve metrics on '%s': libmicrohttpd did not start", addr);
		err = KM_ERR_IO;
		goto done;
	}
	fd = -1; /* the daemon's; closed by km_metrics_serve_stop() */
	*srvp = srv;
	srv = NULL;
done:
	if (ai)
		freeaddrinfo(ai);
	if (fd >= 0)
		close(fd);
	free(srv);
	return err;
}

void km_metrics_serve_stop(km_metrics_server_t *srv)
{
	if (!srv)
		return;
	/* MHD does not close a socket it was given. */
	MHD_stop_daemon(srv->d);
	close(srv->fd);
	free(srv);
}
