/*
 * util.h -- allocation wrappers, a growable string buffer and clocks.
 *
 * Allocation failure is not a recoverable condition for kmigrate: the
 * wrappers print one line and abort, so no caller checks for NULL.
 */
#ifndef KM_UTIL_H
#define KM_UTIL_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

void *km_malloc(size_t n);
void *km_calloc(size_t nmemb, size_t n);
void *km_realloc(void *p, size_t n);
/* @returns an owned copy of s, or NULL when s is NULL. */
char *km_strdup(const char *s);
char *km_strndup(const char *s, size_t n);
/* @returns an owned, formatted string. */
char *km_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Growable NUL-terminated buffer (git strbuf).  Zero-initialise, or use
 * KM_SB_INIT; release with km_sb_free(). */
typedef struct km_sb_s {
	char *buf;
	size_t len;
	size_t cap;
} km_sb_t;
#define KM_SB_INIT {NULL, 0, 0}
void km_sb_add(km_sb_t *sb, const char *s, size_t n);
void km_sb_puts(km_sb_t *sb, const char *s);
void km_sb_printf(km_sb_t *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void km_sb_vprintf(km_sb_t *sb, const char *fmt, va_list ap);
/* @returns the buffer, never NULL (an empty string when nothing was added). */
const char *km_sb_str(km_sb_t *sb);
/* Hands the buffer to the caller (owned) and resets sb. */
char *km_sb_detach(km_sb_t *sb);
void km_sb_reset(km_sb_t *sb);
void km_sb_free(km_sb_t *sb);

/* Milliseconds: wall clock since the epoch, and a monotonic clock. */
int64_t km_now_ms(void);
int64_t km_mono_ms(void);
/* Formats a wall-clock ms as ISO-8601 UTC ("2026-11-25T17:38:11.123Z"). */
void km_iso8601(int64_t ms, char *buf, size_t size);

/* Strict integer parse of a whole string; @returns 0 on success. */
int km_parse_i64(const char *s, int64_t *out);

/* Sorts an array of JSON rows by their "topic" member, then "partition". */
void km_sort_tp_rows(json_t *rows);

#endif
