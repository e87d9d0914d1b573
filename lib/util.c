#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void oom(size_t n)
{
	fprintf(stderr, "kmigrate: out of memory allocating %zu bytes\n", n);
	abort();
}

void *km_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *km_calloc(size_t nmemb, size_t n)
{
	void *p = calloc(nmemb ? nmemb : 1, n ? n : 1);
	if (!p)
		oom(nmemb * n);
	return p;
}

void *km_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *km_strdup(const char *s)
{
	return s ? km_strndup(s, strlen(s)) : NULL;
}

char *km_strndup(const char *s, size_t n)
{
	char *d = km_malloc(n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *km_asprintf(const char *fmt, ...)
{
	km_sb_t sb = KM_SB_INIT;
	va_list ap;

	va_start(ap, fmt);
	km_sb_vprintf(&sb, fmt, ap);
	va_end(ap);
	return km_sb_detach(&sb);
}

static void sb_grow(km_sb_t *sb, size_t extra)
{
	size_t need = sb->len + extra + 1;
	if (need <= sb->cap)
		return;
	size_t cap = sb->cap ? sb->cap : 64;
	while (cap < need)
		cap *= 2;
	sb->buf = km_realloc(sb->buf, cap);
	sb->cap = cap;
}

void km_sb_add(km_sb_t *sb, const char *s, size_t n)
{
	sb_grow(sb, n);
	memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void km_sb_puts(km_sb_t *sb, const char *s)
{
	km_sb_add(sb, s, strlen(s));
}

void km_sb_vprintf(km_sb_t *sb, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	sb_grow(sb, (size_t)n);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
}

void km_sb_printf(km_sb_t *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	km_sb_vprintf(sb, fmt, ap);
	va_end(ap);
}

const char *km_sb_str(km_sb_t *sb)
{
	return sb->buf ? sb->buf : "";
}

char *km_sb_detach(km_sb_t *sb)
{
	char *s = sb->buf ? sb->buf : km_strdup("");
	sb->buf = NULL;
	sb->len = sb->cap = 0;
	return s;
}

void km_sb_reset(km_sb_t *sb)
{
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

void km_sb_free(km_sb_t *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = sb->cap = 0;
}

int64_t km_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t km_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void km_iso8601(int64_t ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char tmp[32];

	gmtime_r(&t, &tm);
	strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%03dZ", tmp, (int)(ms % 1000));
}

int km_parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

static int cmp_tp(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int c = strcmp(json_string_value(json_object_get(x, "topic")),
		       json_string_value(json_object_get(y, "topic")));
	if (c)
		return c;
	return (int)(json_integer_value(json_object_get(x, "partition")) -
		     json_integer_value(json_object_get(y, "partition")));
}

void km_sort_tp_rows(json_t *arr)
{
	size_t n = json_array_size(arr), i;
	json_t **v = km_calloc(n + 1, sizeof(*v));

	for (i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(arr, i));
	qsort(v, n, sizeof(*v), cmp_tp);
	json_array_clear(arr);
	for (i = 0; i < n; i++)
		json_array_append_new(arr, v[i]);
	free(v);
}
