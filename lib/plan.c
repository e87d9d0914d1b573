/*
 * plan.c -- migration.yaml: libyaml document -> validated km_plan_t.
 *
 * The YAML is loaded with libyaml's document API, which keeps the start mark
 * of every node, and is then decoded by walking a set of schema tables: one
 * table per mapping shape, one row per allowed key (type, where it goes in
 * the struct, whether it is required, its range or enum values).  The same
 * tables give unknown-key suggestions, the required-key checks and the free
 * routine, so a key added to a table is parsed, validated and released
 * without any other change; docs/plan.md mirrors them.
 *
 * The walk follows the schema, never the document: nesting the document
 * deeper than the schema is a type error, and an alias that refers back to
 * its own ancestor (which libyaml allows) cannot loop us.
 *
 * Every check fails fast with one line "file:line:col: message"; the first
 * problem in document order wins, then the cross-key checks of a mapping run
 * when its last key has been read, and the whole-plan checks run last.
 */
#include "plan.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "metrics.h"
#include "util.h"

/* Regexes are compiled by the C library, whose compile time and memory grow
 * quickly with pattern length and nested repetition; a topic pattern longer
 * than this is a mistake anyway. */
#define MAX_REGEX_LEN 512
/* glibc's regcomp() copies a subexpression once per repetition it may need
 * ("a+" is "aa*", "a{2,5}" five copies), so nested counts multiply; this
 * bounds the copies, and the nesting depth bounds its recursion. */
#define MAX_REGEX_COST 4096
#define MAX_REGEX_DEPTH 32
/* A password file is one line; anything bigger is the wrong file. */
#define MAX_PASSWORD_FILE (64u * 1024u)
/* Kafka's limit on topic name length (Topic.MAX_NAME_LENGTH). */
#define MAX_TOPIC_LEN 249
/* The most keys any one mapping shape may have (checked at decode time). */
#define MAX_FIELDS 32

_Static_assert(sizeof(km_plan_secproto_t) == sizeof(int), "enum size");
_Static_assert(sizeof(km_plan_ordering_t) == sizeof(int), "enum size");
_Static_assert(sizeof(km_plan_duplicates_t) == sizeof(int), "enum size");
_Static_assert(sizeof(km_plan_replay_t) == sizeof(int), "enum size");
_Static_assert(sizeof(km_plan_naming_mode_t) == sizeof(int), "enum size");
_Static_assert(sizeof(km_plan_restart_t) == sizeof(int), "enum size");
_Static_assert(sizeof(km_plan_tri_t) == sizeof(int), "enum size");
_Static_assert(sizeof(km_plan_isolation_t) == sizeof(int), "enum size");
_Static_assert(sizeof(km_plan_fence_t) == sizeof(int), "enum size");
_Static_assert(sizeof(km_plan_super_fence_t) == sizeof(int), "enum size");
_Static_assert(sizeof(km_plan_op_t) == sizeof(int), "enum size");

/*
 * Enum tables: the spelling in the plan and the value.  The first row of
 * each is also the name km_plan_*_str() returns for the value.
 */
typedef struct enumval_s {
	const char *name;
	int value;
} enumval_t;

static const enumval_t secproto_vals[] = {
	{"plaintext", KM_PLAN_SEC_PLAINTEXT},
	{"ssl", KM_PLAN_SEC_SSL},
	{"sasl_plaintext", KM_PLAN_SEC_SASL_PLAINTEXT},
	{"sasl_ssl", KM_PLAN_SEC_SASL_SSL},
	{NULL, 0}};
static const enumval_t ordering_vals[] = {{"strict", KM_PLAN_ORDERING_STRICT},
					  {"key", KM_PLAN_ORDERING_KEY},
					  {"none", KM_PLAN_ORDERING_NONE},
					  {NULL, 0}};
static const enumval_t duplicates_vals[] = {
	{"none", KM_PLAN_DUPLICATES_NONE},
	{"tolerated", KM_PLAN_DUPLICATES_TOLERATED},
	{NULL, 0}};
static const enumval_t replay_vals[] = {{"tolerated", KM_PLAN_REPLAY_TOLERATED},
					{"forbidden", KM_PLAN_REPLAY_FORBIDDEN},
					{NULL, 0}};
static const enumval_t naming_vals[] = {{"identity", KM_PLAN_NAMING_IDENTITY},
					{"prefix", KM_PLAN_NAMING_PREFIX},
					{"map", KM_PLAN_NAMING_MAP},
					{NULL, 0}};
/* Kafka's isolation.level spellings; "undeclared" (the default) cannot be
 * written: a consumer declares one or says nothing. */
static const enumval_t isolation_vals[] = {
	{"read_committed", KM_PLAN_ISOLATION_READ_COMMITTED},
	{"read_uncommitted", KM_PLAN_ISOLATION_READ_UNCOMMITTED},
	{NULL, 0}};
static const enumval_t restart_vals[] = {
	{"translated", KM_PLAN_RESTART_TRANSLATED},
	{"earliest", KM_PLAN_RESTART_EARLIEST},
	{"latest", KM_PLAN_RESTART_LATEST},
	{"timestamp", KM_PLAN_RESTART_TIMESTAMP},
	{NULL, 0}};
/* cutover.super_users_fence */
static const enumval_t super_fence_vals[] = {
	{"config", KM_PLAN_SUPER_FENCE_CONFIG},
	{"external", KM_PLAN_SUPER_FENCE_EXTERNAL},
	{NULL, 0}};

/* cutover.fence; "undeclared" (the zero value) cannot be written. */
static const enumval_t fence_vals[] = {{"acl", KM_PLAN_FENCE_ACL},
				       {"config", KM_PLAN_FENCE_CONFIG},
				       {"external", KM_PLAN_FENCE_EXTERNAL},
				       {NULL, 0}};
/* rollback.triggers[].op: PromQL's comparison operators. */
static const enumval_t op_vals[] = {{">", KM_PLAN_OP_GT}, {">=", KM_PLAN_OP_GE},
				    {"<", KM_PLAN_OP_LT}, {"<=", KM_PLAN_OP_LE},
				    {"==", KM_PLAN_OP_EQ}, {"!=", KM_PLAN_OP_NE},
				    {NULL, 0}};
/* schemas.ids; "undeclared" (the zero value) cannot be written. */
static const enumval_t schema_ids_vals[] = {{"keep", KM_PLAN_SCHEMA_IDS_KEEP},
					    {"rewrite", KM_PLAN_SCHEMA_IDS_REWRITE},
					    {NULL, 0}};
/* librdkafka's sasl.mechanism spellings (upper case). */
static const char *const sasl_mechanisms[] = {"SCRAM-SHA-512", "SCRAM-SHA-256",
					      "PLAIN", NULL};

/* --------------------------------------------------------------------- */
/* Decoding context and errors                                           */

typedef struct ctx_s {
	yaml_document_t *doc;
	const char *name; /* file name for messages */
	const char *dir;  /* base of relative paths */
	char *errstr;
	size_t errstr_size;
	/* Rotating buffers for quoted user text inside one message. */
	char qbuf[4][160];
	unsigned qi;
	/* Values left to decode.  Without aliases each node is decoded once
	 * at most; an alias decodes its anchor's node again, so a few lines
	 * could otherwise expand into billions of values ("billion laughs"). */
	size_t budget;
} ctx_t;

/*
 * Copies user text into buf for an error message: control characters are
 * escaped so the message stays on one line, and long text is cut (at a
 * UTF-8 character boundary) with "...".
 */
static const char *sanitize(const char *s, size_t len, char *buf,
			    size_t size, size_t max)
{
	size_t o = 0, i;

	if (max > size - 4)
		max = size - 4;
	for (i = 0; i < len && o < max; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f) {
			if (o + 4 > max)
				break;
			snprintf(buf + o, size - o, "\\x%02x", c);
			o += 4;
		} else {
			buf[o++] = (char)c;
		}
	}
	if (i < len) {
		/* Do not leave half a UTF-8 sequence before the "...". */
		while (o > 0 && ((unsigned char)buf[o - 1] & 0xc0) == 0x80)
			o--;
		if (o > 0 && ((unsigned char)buf[o - 1] & 0xc0) == 0xc0)
			o--;
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/* @returns s made safe for a message; valid until four more calls. */
static const char *q(ctx_t *cx, const char *s)
{
	char *buf = cx->qbuf[cx->qi++ % 4];
	return sanitize(s, strlen(s), buf, sizeof(cx->qbuf[0]), 64);
}

static km_plan_pos_t npos(const yaml_node_t *node)
{
	km_plan_pos_t pos = {(int)node->start_mark.line + 1,
			     (int)node->start_mark.column + 1};
	return pos;
}

static km_err_t perr(ctx_t *cx, km_plan_pos_t pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static km_err_t perr(ctx_t *cx, km_plan_pos_t pos, const char *fmt, ...)
{
	km_sb_t sb = KM_SB_INIT;
	char name[256];
	va_list ap;

	km_sb_printf(&sb, "%s:%d:%d: ",
		     sanitize(cx->name, strlen(cx->name), name, sizeof(name),
			      200),
		     pos.line, pos.col);
	va_start(ap, fmt);
	km_sb_vprintf(&sb, fmt, ap);
	va_end(ap);
	km_seterr(cx->errstr, cx->errstr_size, KM_ERR_PLAN, "%s",
		  km_sb_str(&sb));
	km_sb_free(&sb);
	return KM_ERR_PLAN;
}

/* " in 'path'" or " at top level", for messages about a mapping's keys. */
static const char *where(ctx_t *cx, const char *path, char *buf,
			 size_t size)
{
	if (!*path)
		return " at top level";
	snprintf(buf, size, " in '%s'", q(cx, path));
	return buf;
}

/* Paths name keys in messages ("topics.rules[0].match"); one cut short by
 * the buffer still points the user at the right place, so truncation is
 * accepted. */
static void child_path(char *buf, size_t size, const char *path,
		       const char *key)
{
	if (snprintf(buf, size, "%s%s%s", path, *path ? "." : "", key) < 0)
		buf[0] = '\0';
}

static void index_path(char *buf, size_t size, const char *path, size_t i)
{
	if (snprintf(buf, size, "%s[%zu]", path, i) < 0)
		buf[0] = '\0';
}

/* Optimal string alignment distance (edit distance counting a swap of two
 * neighbours as one edit, so "incldue" is one away from "include"),
 * case-insensitive.  Long strings are never close to a key name. */
static size_t edit_distance(const char *a, const char *b)
{
	unsigned char d[65][65]; /* metric names run to 45 characters */
	size_t la = strlen(a), lb = strlen(b), i, j;

	if (la > 64 || lb > 64)
		return SIZE_MAX;
	for (i = 0; i <= la; i++)
		d[i][0] = (unsigned char)i;
	for (j = 0; j <= lb; j++)
		d[0][j] = (unsigned char)j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			int ca = tolower((unsigned char)a[i - 1]);
			int cb = tolower((unsigned char)b[j - 1]);
			unsigned v = d[i - 1][j - 1] + (ca != cb);
			if (d[i - 1][j] + 1u < v)
				v = d[i - 1][j] + 1u;
			if (d[i][j - 1] + 1u < v)
				v = d[i][j - 1] + 1u;
			if (i > 1 && j > 1 &&
			    ca == tolower((unsigned char)b[j - 2]) &&
			    cb == tolower((unsigned char)a[i - 2]) &&
			    d[i - 2][j - 2] + 1u < v)
				v = d[i - 2][j - 2] + 1u;
			d[i][j] = (unsigned char)v;
		}
	}
	return d[la][lb];
}

/* Keeps the closest candidate seen so far if it is close enough to be a
 * plausible typo of word. */
static void suggest(const char *word, const char *cand, const char **best,
		    size_t *bestd)
{
	size_t d = edit_distance(word, cand);
	size_t longest = strlen(word) > strlen(cand) ? strlen(word)
						     : strlen(cand);
	size_t limit = longest >= 6 ? 2 : 1;

	if (d <= limit && d < *bestd) {
		*best = cand;
		*bestd = d;
	}
}

/* --------------------------------------------------------------------- */
/* Scalars                                                               */

static yaml_node_t *node_at(ctx_t *cx, int idx)
{
	yaml_node_t *node = yaml_document_get_node(cx->doc, idx);
	if (!node)
		KM_BUG("libyaml returned a dangling node index %d", idx);
	return node;
}

static const char *sval(const yaml_node_t *node)
{
	return (const char *)node->data.scalar.value;
}

static bool is_plain(const yaml_node_t *node)
{
	return node->type == YAML_SCALAR_NODE &&
	       node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* YAML 1.1/1.2 core null: an empty plain scalar, ~, null. */
static bool is_null(const yaml_node_t *node)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
	size_t i;

	if (!is_plain(node))
		return false;
	for (i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
		if (!strcmp(sval(node), nulls[i]))
			return true;
	return false;
}

/* "a mapping", "a list", "nothing" or the scalar in quotes. */
static const char *describe(ctx_t *cx, const yaml_node_t *node)
{
	char *buf;

	switch (node->type) {
	case YAML_MAPPING_NODE: return "a mapping";
	case YAML_SEQUENCE_NODE: return "a list";
	case YAML_SCALAR_NODE:
		if (is_null(node))
			return "nothing";
		buf = cx->qbuf[cx->qi++ % 4];
		buf[0] = '\'';
		sanitize(sval(node), node->data.scalar.length, buf + 1,
			 sizeof(cx->qbuf[0]) - 2, 64);
		strcat(buf, "'");
		return buf;
	default: return "an empty node";
	}
}

/* For a typed value written in quotes: YAML makes it a string. */
static const char *quoted_hint(const yaml_node_t *node)
{
	return node->type == YAML_SCALAR_NODE && !is_plain(node)
		       ? " (quoted values are strings: remove the quotes)"
		       : "";
}

/* Gets a non-null scalar as a C string: what the type of a string-valued key
 * demands.  A scalar with an escaped NUL inside cannot be a C string. */
static km_err_t get_str(ctx_t *cx, const yaml_node_t *node, const char *path,
			const char *what, const char **sp)
{
	if (node->type != YAML_SCALAR_NODE || is_null(node))
		return perr(cx, npos(node), "expected %s for '%s', got %s",
			    what, q(cx, path), describe(cx, node));
	if (strlen(sval(node)) != node->data.scalar.length)
		return perr(cx, npos(node), "'%s' contains a NUL character",
			    q(cx, path));
	*sp = sval(node);
	return KM_ERR_OK;
}

/* YAML 1.1 booleans, as YAML 1.1 spells them in its core schema. */
static int parse_bool(const char *s)
{
	static const char *const t[] = {"true", "True", "TRUE",
					"yes",  "Yes",  "YES"};
	static const char *const f[] = {"false", "False", "FALSE",
					"no",    "No",    "NO"};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (!strcmp(s, t[i]))
			return 1;
		if (!strcmp(s, f[i]))
			return 0;
	}
	return -1;
}

/* [-+]?[0-9]+ and nothing else: strtoll alone takes leading blanks. */
static bool int_syntax(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	if (!isdigit((unsigned char)*s))
		return false;
	while (isdigit((unsigned char)*s))
		s++;
	return *s == '\0';
}

/* [-+]?(digits[.digits]|.digits)([eE][-+]?digits)?: no hex, inf or nan. */
static bool float_syntax(const char *s)
{
	bool digits = false;

	if (*s == '-' || *s == '+')
		s++;
	while (isdigit((unsigned char)*s)) {
		s++;
		digits = true;
	}
	if (*s == '.') {
		s++;
		while (isdigit((unsigned char)*s)) {
			s++;
			digits = true;
		}
	}
	if (!digits)
		return false;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (!isdigit((unsigned char)*s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return *s == '\0';
}

/* strtod() follows LC_NUMERIC, and the command layer may have called
 * setlocale(): swap the '.' for the locale's radix before converting. */
static int parse_double(const char *s, double *out)
{
	char buf[64];
	const char *radix = localeconv()->decimal_point;
	char *dot, *end;
	size_t n = strlen(s);

	if (!float_syntax(s) || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n + 1);
	if ((dot = strchr(buf, '.')) && radix && radix[0] && !radix[1])
		*dot = radix[0];
	errno = 0;
	*out = strtod(buf, &end);
	if (*end || errno == ERANGE || !isfinite(*out))
		return -1;
	return 0;
}

/* A duration in seconds: an integer (seconds), or digits followed by one
 * unit s, m, h or d ("30m").  Plain or quoted: "30m" needs no quotes in
 * YAML, and a quoted "3600" means the same as 3600.  @returns -1 when s is
 * not a duration or overflows. */
static int parse_duration(const char *s, int64_t *secp)
{
	int64_t v = 0, mult = 1;
	const char *c = s;

	if (!isdigit((unsigned char)*c))
		return -1;
	for (; isdigit((unsigned char)*c); c++) {
		if (v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*c - '0');
	}
	switch (*c) {
	case '\0': break;
	case 's': mult = 1; c++; break;
	case 'm': mult = 60; c++; break;
	case 'h': mult = 3600; c++; break;
	case 'd': mult = 86400; c++; break;
	default: return -1;
	}
	if (*c || v > INT64_MAX / mult)
		return -1;
	*secp = v * mult;
	return 0;
}

/* --------------------------------------------------------------------- */
/* Paths                                                                 */

/* @returns p resolved against dir ("./" prefixes dropped), owned. */
static char *resolve_path(const char *dir, const char *p)
{
	if (p[0] == '/')
		return km_strdup(p);
	while (p[0] == '.' && p[1] == '/') {
		p += 2;
		while (*p == '/')
			p++;
	}
	if (!*p || !strcmp(p, "."))
		return km_strdup(dir);
	if (!strcmp(dir, "."))
		return km_strdup(p);
	if (dir[strlen(dir) - 1] == '/')
		return km_asprintf("%s%s", dir, p);
	return km_asprintf("%s/%s", dir, p);
}

/* --------------------------------------------------------------------- */
/* Schema tables                                                         */

typedef enum {
	T_STR,       /* char *; non-empty string */
	T_PATH,      /* char *; resolved against the plan directory */
	T_TRI,       /* km_plan_tri_t */
	T_BOOL,      /* bool */
	T_I64,       /* int64_t in [min, max] */
	T_INT,       /* int in [min, max] */
	T_DBL,       /* double, finite */
	T_ENUM,      /* an enum from ev */
	T_STRLIST,   /* char ** + size_t at cnt_off */
	T_NAMELIST,  /* km_plan_name_t * + size_t at cnt_off */
	T_DUR,       /* int64_t seconds in [min, max]: 90, "30s", "30m", "2h", "1d" */
	T_KV,        /* km_plan_kv_t * + size_t at cnt_off */
	T_REGEX,     /* km_plan_regex_t */
	T_REGEXLIST, /* km_plan_regex_t * + size_t at cnt_off */
	T_MAP,       /* embedded struct described by sub */
	T_LIST,      /* array of structs described by sub + size_t count */
	T_CUSTOM,    /* decoded by parse(); owns nothing */
	T_FORBIDDEN  /* a key that exists only to explain why it is refused */
} ftype_t;

#define F_REQ 0x1 /* the key must be present */

typedef struct schema_s schema_t;

typedef struct field_s {
	const char *key;
	ftype_t type;
	size_t off;
	size_t cnt_off;
	unsigned flags;
	const schema_t *sub;
	const enumval_t *ev;
	int64_t min, max;
	/* T_STR, T_PATH, T_STRLIST items: extra validation of the value. */
	km_err_t (*check)(ctx_t *cx, const yaml_node_t *val, const char *s,
			  const char *path);
	/* T_KV: validation of one entry (path is the mapping's). */
	km_err_t (*kvcheck)(ctx_t *cx, const yaml_node_t *key,
			    const yaml_node_t *val, const char *k,
			    const char *v, const char *path);
	/* T_CUSTOM: decodes val into the containing struct obj. */
	km_err_t (*parse)(ctx_t *cx, const yaml_node_t *val, void *obj,
			  const char *path);
	/* T_FORBIDDEN: why, and the keys to write instead (suggested for
	 * typos of the forbidden key). */
	const char *why;
	const char *instead;
} field_t;

struct schema_s {
	const char *what; /* for messages about list items */
	size_t size;
	const field_t *fields;
	size_t nfields;
	/* Sets defaults; the object is zeroed first.  Must not allocate. */
	void (*init)(void *obj);
	/* Cross-key checks once every key of the mapping has been decoded.
	 * keys/vals are indexed like fields, NULL for absent keys. */
	km_err_t (*check)(ctx_t *cx, const yaml_node_t *map, void *obj,
			  yaml_node_t *const *keys, yaml_node_t *const *vals,
			  const char *path);
};

static void *at(void *obj, size_t off)
{
	return (char *)obj + off;
}

static void *getp(void *obj, size_t off)
{
	void *p;
	memcpy(&p, at(obj, off), sizeof(p));
	return p;
}

static void setp(void *obj, size_t off, void *p)
{
	memcpy(at(obj, off), &p, sizeof(p));
}

static size_t getn(void *obj, size_t off)
{
	size_t n;
	memcpy(&n, at(obj, off), sizeof(n));
	return n;
}

static void setn(void *obj, size_t off, size_t n)
{
	memcpy(at(obj, off), &n, sizeof(n));
}

static void seti(void *obj, size_t off, int v)
{
	memcpy(at(obj, off), &v, sizeof(v));
}

static int field_index(const schema_t *sc, const char *key)
{
	size_t i;

	for (i = 0; i < sc->nfields; i++)
		if (!strcmp(sc->fields[i].key, key))
			return (int)i;
	return -1;
}

static void regex_free(km_plan_regex_t *rx)
{
	if (rx->pattern) {
		regfree(&rx->re);
		free(rx->pattern);
		rx->pattern = NULL;
	}
}

static void schema_init(const schema_t *sc, void *obj)
{
	size_t i;

	memset(obj, 0, sc->size);
	for (i = 0; i < sc->nfields; i++)
		if (sc->fields[i].type == T_MAP)
			schema_init(sc->fields[i].sub,
				    at(obj, sc->fields[i].off));
	if (sc->init)
		sc->init(obj);
}

static void schema_free(const schema_t *sc, void *obj)
{
	size_t i, j, n;

	for (i = 0; i < sc->nfields; i++) {
		const field_t *f = &sc->fields[i];
		void *p = at(obj, f->off);

		switch (f->type) {
		case T_STR:
		case T_PATH:
			free(getp(obj, f->off));
			setp(obj, f->off, NULL);
			break;
		case T_STRLIST: {
			char **v = getp(obj, f->off);
			n = getn(obj, f->cnt_off);
			for (j = 0; j < n; j++)
				free(v[j]);
			free(v);
			setp(obj, f->off, NULL);
			setn(obj, f->cnt_off, 0);
			break;
		}
		case T_NAMELIST: {
			km_plan_name_t *v = getp(obj, f->off);
			n = getn(obj, f->cnt_off);
			for (j = 0; j < n; j++)
				free(v[j].name);
			free(v);
			setp(obj, f->off, NULL);
			setn(obj, f->cnt_off, 0);
			break;
		}
		case T_KV: {
			km_plan_kv_t *kv = getp(obj, f->off);
			n = getn(obj, f->cnt_off);
			for (j = 0; j < n; j++) {
				free(kv[j].key);
				free(kv[j].value);
			}
			free(kv);
			setp(obj, f->off, NULL);
			setn(obj, f->cnt_off, 0);
			break;
		}
		case T_REGEX: regex_free(p); break;
		case T_REGEXLIST: {
			km_plan_regex_t *rx = getp(obj, f->off);
			n = getn(obj, f->cnt_off);
			for (j = 0; j < n; j++)
				regex_free(&rx[j]);
			free(rx);
			setp(obj, f->off, NULL);
			setn(obj, f->cnt_off, 0);
			break;
		}
		case T_MAP: schema_free(f->sub, p); break;
		case T_LIST: {
			char *items = getp(obj, f->off);
			n = getn(obj, f->cnt_off);
			for (j = 0; j < n; j++)
				schema_free(f->sub, items + j * f->sub->size);
			free(items);
			setp(obj, f->off, NULL);
			setn(obj, f->cnt_off, 0);
			break;
		}
		case T_TRI:
		case T_BOOL:
		case T_I64:
		case T_DUR:
		case T_INT:
		case T_DBL:
		case T_ENUM:
		case T_CUSTOM:
		case T_FORBIDDEN: break;
		}
	}
}

/* --------------------------------------------------------------------- */
/* Decoding                                                              */

static km_err_t decode_map(ctx_t *cx, yaml_node_t *map, const schema_t *sc,
			   void *obj, const char *path);

/* Parses "{m}", "{m,}", "{m,n}" or glibc's "{,n}" at p; @returns its
 * length, 0 if it is not an interval (then '{' is left to regcomp()). */
static size_t parse_interval(const char *p, size_t *maxp)
{
	const char *c = p + 1;
	size_t m = 0, n;

	if (!isdigit((unsigned char)*c) &&
	    !(*c == ',' && isdigit((unsigned char)c[1])))
		return 0;
	while (isdigit((unsigned char)*c) && m < 100000)
		m = m * 10 + (size_t)(*c++ - '0');
	n = m;
	if (*c == ',') {
		c++;
		if (isdigit((unsigned char)*c)) {
			n = 0;
			while (isdigit((unsigned char)*c) && n < 100000)
				n = n * 10 + (size_t)(*c++ - '0');
		} else {
			n = m + 1; /* m copies and a star */
		}
	}
	if (*c != '}')
		return 0;
	*maxp = n > m ? n : m;
	return (size_t)(c - p) + 1;
}

/*
 * Refuses a pattern the C library would take exponential memory or time to
 * compile, before regcomp() sees it: a repetition operator applied to
 * another one ("a++", undefined in POSIX ERE and doubling glibc's tree per
 * operator), nesting deeper than MAX_REGEX_DEPTH, and repetitions whose
 * copies multiply beyond MAX_REGEX_COST.  Anything else that is malformed
 * is left for regcomp() to report in its own words.
 * @returns NULL when fine, otherwise why not (static).
 */
static const char *regex_too_complex(const char *p)
{
	size_t sum[MAX_REGEX_DEPTH + 1], last[MAX_REGEX_DEPTH + 1];
	size_t d = 0, mult, len, size;
	bool prev_rep = false;

	sum[0] = last[0] = 0;
	while (*p) {
		size = 1;
		switch (*p) {
		case '\\':
			/* glibc takes \1..\9 in ERE too; matching with them
			 * is exponential, and POSIX ERE has none. */
			if (p[1] >= '1' && p[1] <= '9')
				return "it uses a backreference, which POSIX "
				       "extended regexes do not have";
			p += p[1] ? 2 : 1;
			break;
		case '[':
			/* A bracket expression is one node whatever its
			 * content; "]" first and "[:class:]" do not end it. */
			p++;
			if (*p == '^')
				p++;
			if (*p == ']')
				p++;
			while (*p && *p != ']') {
				if (*p == '[' &&
				    (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
					const char *end = strchr(p + 2, p[1]);
					while (end && end[1] != ']')
						end = strchr(end + 1, p[1]);
					if (!end)
						return NULL;
					p = end + 2;
				} else {
					p++;
				}
			}
			if (*p)
				p++;
			break;
		case '(':
			if (d == MAX_REGEX_DEPTH)
				return "groups nest too deeply";
			d++;
			sum[d] = last[d] = 0;
			prev_rep = false;
			p++;
			continue;
		case ')':
			p++;
			if (d == 0)
				break;
			size = sum[d] + 1;
			d--;
			break;
		case '|':
			last[d] = 0;
			prev_rep = false;
			p++;
			continue;
		case '*':
		case '+':
		case '?':
		case '{':
			mult = *p == '+' ? 2 : 1;
			len = 1;
			if (*p == '{' && !(len = parse_interval(p, &mult)))
				goto atom; /* a literal '{' */
			if (prev_rep)
				return "a repetition operator follows another "
				       "one";
			if (mult > MAX_REGEX_COST)
				return "a repetition count is too large";
			sum[d] += last[d] * (mult ? mult - 1 : 0);
			last[d] *= mult ? mult : 1;
			if (sum[d] > MAX_REGEX_COST)
				return "its repetitions multiply beyond "
				       "4096 copies";
			prev_rep = true;
			p += len;
			continue;
		default:
		atom:
			p++;
			break;
		}
		sum[d] += size;
		last[d] = size;
		prev_rep = false;
		if (sum[d] > MAX_REGEX_COST)
			return "its repetitions multiply beyond 4096 copies";
	}
	return NULL;
}

static km_err_t spend(ctx_t *cx, const yaml_node_t *node)
{
	if (cx->budget == 0)
		return perr(cx, npos(node),
			    "aliases repeat parts of the plan too many times: "
			    "write the values out");
	cx->budget--;
	return KM_ERR_OK;
}

static km_err_t compile_regex(ctx_t *cx, const yaml_node_t *node,
			      const char *path, km_plan_regex_t *rx)
{
	const char *s, *why;
	char msg[128];
	km_err_t err;
	int rc;

	if ((err = get_str(cx, node, path, "a regular expression", &s)))
		return err;
	if (strlen(s) > MAX_REGEX_LEN)
		return perr(cx, npos(node),
			    "regex for '%s' is longer than %d characters",
			    q(cx, path), MAX_REGEX_LEN);
	if ((why = regex_too_complex(s)))
		return perr(cx, npos(node),
			    "regex '%s' for '%s' is too complex: %s",
			    q(cx, s), q(cx, path), why);
	rc = regcomp(&rx->re, s, REG_EXTENDED | REG_NOSUB);
	if (rc) {
		regerror(rc, &rx->re, msg, sizeof(msg));
		/* regfree() after a failed regcomp() is not defined by
		 * POSIX; glibc frees on failure itself. */
		return perr(cx, npos(node), "invalid regex '%s' for '%s': %s",
			    q(cx, s), q(cx, path), msg);
	}
	rx->pattern = km_strdup(s);
	rx->pos = npos(node);
	return KM_ERR_OK;
}

/* A name and its position in document order, for duplicate checks. */
typedef struct named_s {
	const char *name;
	size_t i;
} named_t;

static int named_cmp(const void *a, const void *b)
{
	const named_t *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* Sorts v and finds the first duplicate in document order: @returns the
 * smallest .i whose name appeared at an earlier .i (that one in *firstp),
 * SIZE_MAX when all names differ.  O(n log n), so a large mapping is no
 * quadratic trap. */
static size_t first_dup(named_t *v, size_t n, size_t *firstp)
{
	size_t best = SIZE_MAX, k;

	qsort(v, n, sizeof(*v), named_cmp);
	for (k = 1; k < n; k++) {
		if (!strcmp(v[k - 1].name, v[k].name) &&
		    (k < 2 || strcmp(v[k - 2].name, v[k].name)) &&
		    v[k].i < best) {
			best = v[k].i;
			*firstp = v[k - 1].i;
		}
	}
	return best;
}

static km_err_t decode_kv(ctx_t *cx, const field_t *f, yaml_node_t *val,
			  void *obj, const char *path)
{
	yaml_node_pair_t *pairs = val->data.mapping.pairs.start;
	size_t n = (size_t)(val->data.mapping.pairs.top - pairs), i, m = 0;
	size_t dup = SIZE_MAX, first = 0;
	named_t *names = NULL;
	km_plan_kv_t *kv;
	km_err_t err = KM_ERR_OK;

	kv = km_calloc(n, sizeof(*kv));
	setp(obj, f->off, kv);
	/* All key names first, so that the duplicate check sees them all;
	 * keys that are not strings are reported in document order below. */
	names = km_malloc((n ? n : 1) * sizeof(*names));
	for (i = 0; i < n; i++) {
		yaml_node_t *k = node_at(cx, pairs[i].key);
		if (k->type != YAML_SCALAR_NODE || is_null(k))
			continue;
		names[m].name = sval(k);
		names[m].i = i;
		m++;
	}
	dup = first_dup(names, m, &first);
	for (i = 0; i < n; i++) {
		yaml_node_t *k = node_at(cx, pairs[i].key);
		yaml_node_t *v = node_at(cx, pairs[i].value);
		char cpath[256];
		const char *ks, *vs;

		if ((err = spend(cx, v)))
			goto done;
		if ((err = get_str(cx, k, path, "a string key", &ks)))
			goto done;
		if (!*ks) {
			err = perr(cx, npos(k), "empty key in '%s'",
				   q(cx, path));
			goto done;
		}
		if (i == dup) {
			err = perr(cx, npos(k),
				   "duplicate key '%s' in '%s' (first at line "
				   "%d)",
				   q(cx, ks), q(cx, path),
				   npos(node_at(cx, pairs[first].key)).line);
			goto done;
		}
		child_path(cpath, sizeof(cpath), path, ks);
		if ((err = get_str(cx, v, cpath, "a string", &vs)))
			goto done;
		if (f->kvcheck && (err = f->kvcheck(cx, k, v, ks, vs, path)))
			goto done;
		kv[i].pos = npos(k);
		kv[i].key = km_strdup(ks);
		kv[i].value = km_strdup(vs);
		setn(obj, f->cnt_off, i + 1);
	}
done:
	free(names);
	return err;
}

static km_err_t decode_list(ctx_t *cx, const field_t *f, yaml_node_t *val,
			    void *obj, const char *path)
{
	yaml_node_item_t *items = val->data.sequence.items.start;
	size_t n = (size_t)(val->data.sequence.items.top - items), i;
	char ipath[256];
	km_err_t err;

	switch (f->type) {
	case T_STRLIST:
	case T_NAMELIST: {
		/* The same items either way; a name list also keeps where
		 * each was written, for messages about what it refers to. */
		bool names = f->type == T_NAMELIST;
		char **v = names ? NULL : km_calloc(n, sizeof(*v));
		km_plan_name_t *nv = names ? km_calloc(n, sizeof(*nv)) : NULL;
		setp(obj, f->off, names ? (void *)nv : (void *)v);
		for (i = 0; i < n; i++) {
			yaml_node_t *item = node_at(cx, items[i]);
			const char *s;
			if ((err = spend(cx, item)))
				return err;
			index_path(ipath, sizeof(ipath), path, i);
			if ((err = get_str(cx, item, ipath, "a string", &s)))
				return err;
			if (!*s)
				return perr(cx, npos(item),
					    "'%s' must not be empty",
					    q(cx, ipath));
			if (f->check && (err = f->check(cx, item, s, ipath)))
				return err;
			if (names) {
				nv[i].pos = npos(item);
				nv[i].name = km_strdup(s);
			} else {
				v[i] = km_strdup(s);
			}
			setn(obj, f->cnt_off, i + 1);
		}
		return KM_ERR_OK;
	}
	case T_REGEXLIST: {
		km_plan_regex_t *rx = km_calloc(n, sizeof(*rx));
		setp(obj, f->off, rx);
		setn(obj, f->cnt_off, n);
		for (i = 0; i < n; i++) {
			index_path(ipath, sizeof(ipath), path, i);
			if ((err = spend(cx, node_at(cx, items[i]))))
				return err;
			if ((err = compile_regex(cx, node_at(cx, items[i]),
						 ipath, &rx[i])))
				return err;
		}
		return KM_ERR_OK;
	}
	case T_LIST: {
		char *arr = km_calloc(n, f->sub->size);
		/* Every item is initialised before any is decoded, so that
		 * the free routine can run over all n after a failure. */
		for (i = 0; i < n; i++)
			schema_init(f->sub, arr + i * f->sub->size);
		setp(obj, f->off, arr);
		setn(obj, f->cnt_off, n);
		for (i = 0; i < n; i++) {
			yaml_node_t *item = node_at(cx, items[i]);
			if ((err = spend(cx, item)))
				return err;
			index_path(ipath, sizeof(ipath), path, i);
			if (item->type != YAML_MAPPING_NODE)
				return perr(cx, npos(item),
					    "expected a mapping (%s) for "
					    "'%s', got %s",
					    f->sub->what, q(cx, ipath),
					    describe(cx, item));
			if ((err = decode_map(cx, item, f->sub,
					      arr + i * f->sub->size, ipath)))
				return err;
		}
		return KM_ERR_OK;
	}
	default: KM_BUG("decode_list on field '%s'", f->key);
	}
}

static km_err_t decode_field(ctx_t *cx, const field_t *f, yaml_node_t *key,
			     yaml_node_t *val, void *obj, const char *mpath)
{
	char path[256];
	const char *s;
	km_err_t err;
	int64_t i64;
	double d;
	int b;

	if ((err = spend(cx, val)))
		return err;
	child_path(path, sizeof(path), mpath, f->key);

	switch (f->type) {
	case T_STR:
	case T_PATH:
		if ((err = get_str(cx, val, path, "a string", &s)))
			return err;
		if (!*s)
			return perr(cx, npos(val), "'%s' must not be empty",
				    q(cx, path));
		if (f->check && (err = f->check(cx, val, s, path)))
			return err;
		free(getp(obj, f->off));
		setp(obj, f->off,
		     f->type == T_PATH ? resolve_path(cx->dir, s)
				       : km_strdup(s));
		return KM_ERR_OK;

	case T_TRI:
	case T_BOOL:
		b = is_plain(val) ? parse_bool(sval(val)) : -1;
		if (b < 0)
			return perr(cx, npos(val),
				    "expected true or false for '%s', got %s%s",
				    q(cx, path), describe(cx, val),
				    quoted_hint(val));
		if (f->type == T_TRI)
			seti(obj, f->off, b ? KM_PLAN_YES : KM_PLAN_NO);
		else
			*(bool *)at(obj, f->off) = b;
		return KM_ERR_OK;

	case T_I64:
	case T_INT:
		if (!is_plain(val) || is_null(val) || !int_syntax(sval(val)) ||
		    km_parse_i64(sval(val), &i64))
			return perr(cx, npos(val),
				    "expected an integer for '%s', got %s%s",
				    q(cx, path), describe(cx, val),
				    quoted_hint(val));
		if (i64 < f->min || i64 > f->max) {
			if (f->max == INT64_MAX)
				return perr(cx, npos(val),
					    "'%s' must be at least %lld, got "
					    "%lld",
					    q(cx, path), (long long)f->min,
					    (long long)i64);
			return perr(cx, npos(val),
				    "'%s' must be between %lld and %lld, got "
				    "%lld",
				    q(cx, path), (long long)f->min,
				    (long long)f->max, (long long)i64);
		}
		if (f->type == T_INT)
			seti(obj, f->off, (int)i64);
		else
			memcpy(at(obj, f->off), &i64, sizeof(i64));
		return KM_ERR_OK;

	case T_DBL:
		if (!is_plain(val) || is_null(val) ||
		    parse_double(sval(val), &d))
			return perr(cx, npos(val),
				    "expected a number for '%s', got %s%s",
				    q(cx, path), describe(cx, val),
				    quoted_hint(val));
		memcpy(at(obj, f->off), &d, sizeof(d));
		return KM_ERR_OK;

	case T_ENUM: {
		const enumval_t *e;
		const char *best = NULL;
		size_t bestd = SIZE_MAX;
		km_sb_t allowed = KM_SB_INIT;

		if ((err = get_str(cx, val, path, "a string", &s)))
			return err;
		for (e = f->ev; e->name; e++) {
			if (!strcasecmp(e->name, s)) {
				seti(obj, f->off, e->value);
				return KM_ERR_OK;
			}
		}
		for (e = f->ev; e->name; e++) {
			km_sb_printf(&allowed, "%s%s",
				     e == f->ev ? "" : (e[1].name ? ", " : " or "),
				     e->name);
			suggest(s, e->name, &best, &bestd);
		}
		err = perr(cx, npos(val),
			   "invalid value '%s' for '%s': expected %s%s%s%s",
			   q(cx, s), q(cx, path), km_sb_str(&allowed),
			   best ? " (did you mean '" : "", best ? best : "",
			   best ? "'?)" : "");
		km_sb_free(&allowed);
		return err;
	}

	case T_DUR:
		if (!is_null(val) && val->type == YAML_SCALAR_NODE &&
		    !parse_duration(sval(val), &i64)) {
			if (i64 < f->min || i64 > f->max)
				return perr(cx, npos(val),
					    "'%s' must be between %lld and %lld "
					    "seconds, got %lld",
					    q(cx, path), (long long)f->min,
					    (long long)f->max, (long long)i64);
			memcpy(at(obj, f->off), &i64, sizeof(i64));
			return KM_ERR_OK;
		}
		return perr(cx, npos(val),
			    "expected a duration for '%s' (seconds, or a "
			    "number with s, m, h or d such as 30m), got %s",
			    q(cx, path), describe(cx, val));

	case T_STRLIST:
	case T_NAMELIST:
	case T_REGEXLIST:
	case T_LIST:
		if (is_null(val))
			return KM_ERR_OK;
		if (val->type != YAML_SEQUENCE_NODE)
			return perr(cx, npos(val),
				    "expected a list for '%s', got %s",
				    q(cx, path), describe(cx, val));
		return decode_list(cx, f, val, obj, path);

	case T_KV:
		if (is_null(val))
			return KM_ERR_OK;
		if (val->type != YAML_MAPPING_NODE)
			return perr(cx, npos(val),
				    "expected a mapping for '%s', got %s",
				    q(cx, path), describe(cx, val));
		return decode_kv(cx, f, val, obj, path);

	case T_REGEX:
		return compile_regex(cx, val, path, at(obj, f->off));

	case T_MAP:
		if (is_null(val) && !(f->flags & F_REQ))
			return KM_ERR_OK;
		if (val->type != YAML_MAPPING_NODE)
			return perr(cx, npos(val),
				    "expected a mapping for '%s', got %s",
				    q(cx, path), describe(cx, val));
		return decode_map(cx, val, f->sub, at(obj, f->off), path);

	case T_CUSTOM:
		return f->parse(cx, val, obj, path);

	case T_FORBIDDEN:
		return perr(cx, npos(key), "'%s' is not allowed: %s",
			    q(cx, path), f->why);
	}
	KM_BUG("field type %d", (int)f->type);
}

static km_err_t unknown_key(ctx_t *cx, const schema_t *sc,
			    const yaml_node_t *k, const char *path)
{
	const char *best = NULL, *prev = NULL;
	size_t bestd = SIZE_MAX, i;
	char wbuf[200], hint[128] = "";

	for (i = 0; i < sc->nfields; i++) {
		suggest(sval(k), sc->fields[i].key, &best, &bestd);
		if (best != prev) {
			/* A typo of a refused key gets the keys to use. */
			if (sc->fields[i].type == T_FORBIDDEN)
				snprintf(hint, sizeof(hint),
					 " (did you mean %s?)",
					 sc->fields[i].instead);
			else
				snprintf(hint, sizeof(hint),
					 " (did you mean '%s'?)", best);
			prev = best;
		}
	}
	return perr(cx, npos(k), "unknown key '%s'%s%s", q(cx, sval(k)),
		    where(cx, path, wbuf, sizeof(wbuf)), hint);
}

static km_err_t decode_map(ctx_t *cx, yaml_node_t *map, const schema_t *sc,
			   void *obj, const char *path)
{
	yaml_node_t *keys[MAX_FIELDS] = {0}, *vals[MAX_FIELDS] = {0};
	yaml_node_pair_t *pair;
	km_plan_pos_t *pos = obj;
	char wbuf[200];
	km_err_t err;
	size_t i;

	if (sc->nfields > MAX_FIELDS)
		KM_BUG("schema '%s' has %zu keys", sc->what, sc->nfields);
	*pos = npos(map);

	for (pair = map->data.mapping.pairs.start;
	     pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = node_at(cx, pair->key);
		yaml_node_t *v = node_at(cx, pair->value);
		int fi;

		if (k->type != YAML_SCALAR_NODE || is_null(k))
			return perr(cx, npos(k),
				    "expected a key name%s, got %s",
				    where(cx, path, wbuf, sizeof(wbuf)),
				    describe(cx, k));
		fi = strlen(sval(k)) == k->data.scalar.length
			     ? field_index(sc, sval(k))
			     : -1;
		if (fi < 0)
			return unknown_key(cx, sc, k, path);
		if (keys[fi])
			return perr(cx, npos(k),
				    "duplicate key '%s'%s (first at line %d)",
				    q(cx, sval(k)), where(cx, path, wbuf, sizeof(wbuf)),
				    npos(keys[fi]).line);
		keys[fi] = k;
		vals[fi] = v;
		if ((err = decode_field(cx, &sc->fields[fi], k, v, obj, path)))
			return err;
	}

	for (i = 0; i < sc->nfields; i++)
		if ((sc->fields[i].flags & F_REQ) && !keys[i])
			return perr(cx, npos(map),
				    "missing required key '%s'%s",
				    sc->fields[i].key,
				    where(cx, path, wbuf, sizeof(wbuf)));

	if (sc->check)
		return sc->check(cx, map, obj, keys, vals, path);
	return KM_ERR_OK;
}

/* --------------------------------------------------------------------- */
/* Value checks                                                          */

static km_err_t check_migration_name(ctx_t *cx, const yaml_node_t *val,
				     const char *s, const char *path)
{
	size_t n = strlen(s), i;
	bool ok = n >= 1 && n <= 63 &&
		  (islower((unsigned char)s[0]) || isdigit((unsigned char)s[0]));

	(void)path;
	for (i = 1; ok && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		ok = (c >= 'a' && c <= 'z') || isdigit(c) || c == '.' ||
		     c == '_' || c == '-';
	}
	if (!ok)
		/* The name becomes part of topic names and transactional
		 * ids on the target (__kmigrate.<migration>.progress). */
		return perr(cx, npos(val),
			    "invalid migration name '%s': use 1 to 63 of "
			    "a-z, 0-9, '.', '_', '-', starting with a letter "
			    "or digit",
			    q(cx, s));
	return KM_ERR_OK;
}

static bool host_char(unsigned char c)
{
	return isalnum(c) || c == '.' || c == '-' || c == '_';
}

static km_err_t check_bootstrap(ctx_t *cx, const yaml_node_t *val,
				const char *s, const char *path)
{
	const char *p = s;

	for (;;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		const char *colon = NULL, *c;
		bool ok = n > 0;
		long port = 0;
		char ent[128];

		if (ok && p[0] == '[') { /* [ipv6]:port */
			const char *rb = memchr(p, ']', n);
			ok = rb && rb > p + 1 && rb + 1 < p + n &&
			     rb[1] == ':';
			for (c = p + 1; ok && c < rb; c++)
				ok = isxdigit((unsigned char)*c) ||
				     *c == ':' || *c == '.';
			colon = ok ? rb + 1 : NULL;
		} else if (ok) {
			for (c = p; c < p + n; c++)
				if (*c == ':')
					colon = c;
			ok = colon && colon > p;
			for (c = p; ok && c < colon; c++)
				ok = host_char((unsigned char)*c);
		}
		if (ok) {
			size_t digits = (size_t)(p + n - colon - 1);
			ok = digits >= 1 && digits <= 5;
			for (c = colon + 1; ok && c < p + n; c++) {
				ok = isdigit((unsigned char)*c);
				port = port * 10 + (*c - '0');
			}
			ok = ok && port >= 1 && port <= 65535;
		}
		if (!ok)
			return perr(cx, npos(val),
				    "invalid bootstrap entry '%s' in '%s': "
				    "expected host:port[,host:port...]",
				    sanitize(p, n, ent, sizeof(ent), 64),
				    q(cx, path));
		if (!end)
			return KM_ERR_OK;
		p = end + 1;
	}
}

static km_err_t check_url(ctx_t *cx, const yaml_node_t *val, const char *s,
			  const char *path)
{
	const char *rest = NULL, *c;

	if (!strncasecmp(s, "http://", 7))
		rest = s + 7;
	else if (!strncasecmp(s, "https://", 8))
		rest = s + 8;
	for (c = rest; rest && *c; c++)
		if (isspace((unsigned char)*c) || iscntrl((unsigned char)*c))
			rest = NULL;
	if (!rest || !*rest || *rest == '/')
		return perr(cx, npos(val),
			    "invalid URL '%s' for '%s': expected "
			    "http://host[:port][/path] or https://...",
			    q(cx, s), q(cx, path));
	return KM_ERR_OK;
}

static km_err_t check_env_name(ctx_t *cx, const yaml_node_t *val,
			       const char *s, const char *path)
{
	const char *c;
	bool ok = isalpha((unsigned char)s[0]) || s[0] == '_';

	for (c = s + 1; ok && *c; c++)
		ok = isalnum((unsigned char)*c) || *c == '_';
	if (!ok)
		return perr(cx, npos(val),
			    "invalid environment variable name '%s' for '%s': "
			    "use letters, digits and '_'",
			    q(cx, s), q(cx, path));
	return KM_ERR_OK;
}

/* A Kafka principal as ACLs name it: "Type:name" (User:alice). */
static km_err_t check_principal(ctx_t *cx, const yaml_node_t *val,
				const char *s, const char *path)
{
	const char *colon = strchr(s, ':');

	if (!colon || colon == s || !colon[1])
		return perr(cx, npos(val),
			    "invalid principal '%s' in '%s': write it as Kafka "
			    "does, e.g. User:alice",
			    q(cx, s), q(cx, path));
	return KM_ERR_OK;
}

static km_err_t check_sasl_mechanism(ctx_t *cx, const yaml_node_t *val,
				     const char *s, const char *path)
{
	const char *best = NULL;
	size_t bestd = SIZE_MAX, i;

	for (i = 0; sasl_mechanisms[i]; i++) {
		if (!strcasecmp(s, sasl_mechanisms[i]))
			return KM_ERR_OK;
		suggest(s, sasl_mechanisms[i], &best, &bestd);
	}
	return perr(cx, npos(val),
		    "invalid value '%s' for '%s': expected SCRAM-SHA-512, "
		    "SCRAM-SHA-256 or PLAIN%s%s%s",
		    q(cx, s), q(cx, path), best ? " (did you mean '" : "",
		    best ? best : "", best ? "'?)" : "");
}

static bool topic_name_ok(const char *s)
{
	size_t n = strlen(s);
	const char *c;

	if (n == 0 || n > MAX_TOPIC_LEN || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (c = s; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '.' && *c != '_' &&
		    *c != '-')
			return false;
	return true;
}

static km_err_t check_prefix(ctx_t *cx, const yaml_node_t *val,
			     const char *s, const char *path)
{
	const char *c;
	bool ok = strlen(s) < MAX_TOPIC_LEN;

	for (c = s; ok && *c; c++)
		ok = isalnum((unsigned char)*c) || *c == '.' || *c == '_' ||
		     *c == '-';
	if (!ok)
		return perr(cx, npos(val),
			    "invalid prefix '%s' for '%s': topic names allow "
			    "only a-z, A-Z, 0-9, '.', '_' and '-'",
			    q(cx, s), q(cx, path));
	return KM_ERR_OK;
}

static km_err_t kvcheck_naming_map(ctx_t *cx, const yaml_node_t *key,
				   const yaml_node_t *val, const char *k,
				   const char *v, const char *path)
{
	if (!topic_name_ok(k))
		return perr(cx, npos(key),
			    "invalid topic name '%s' in '%s': use 1 to %d of "
			    "a-z, A-Z, 0-9, '.', '_' and '-'",
			    q(cx, k), q(cx, path), MAX_TOPIC_LEN);
	if (!topic_name_ok(v))
		return perr(cx, npos(val),
			    "invalid topic name '%s' in '%s': use 1 to %d of "
			    "a-z, A-Z, 0-9, '.', '_' and '-'",
			    q(cx, v), q(cx, path), MAX_TOPIC_LEN);
	return KM_ERR_OK;
}

/* Properties that have a typed key of their own: one source of truth, and
 * the typed key is the one that is validated. */
static const struct {
	const char *prop;
	const char *key;
} typed_props[] = {
	{"bootstrap.servers", "bootstrap"},
	{"metadata.broker.list", "bootstrap"},
	{"security.protocol", "security_protocol"},
	{"sasl.mechanism", "sasl_mechanism"},
	{"sasl.mechanisms", "sasl_mechanism"},
	{"sasl.username", "username"},
	{"ssl.ca.location", "ssl_ca"},
};

static km_err_t kvcheck_property(ctx_t *cx, const yaml_node_t *key,
				 const yaml_node_t *val, const char *k,
				 const char *v, const char *path)
{
	char lower[128];
	size_t i;

	(void)val;
	(void)v;
	for (i = 0; i < sizeof(typed_props) / sizeof(typed_props[0]); i++)
		if (!strcasecmp(k, typed_props[i].prop))
			return perr(cx, npos(key),
				    "property '%s' in '%s' is set by the plan "
				    "key '%s': use that instead",
				    q(cx, k), q(cx, path), typed_props[i].key);
	for (i = 0; k[i] && i < sizeof(lower) - 1; i++)
		lower[i] = (char)tolower((unsigned char)k[i]);
	lower[i] = '\0';
	/* A plan is reviewed, committed and copied around; secrets must
	 * come from the environment or a protected file instead. */
	if (strstr(lower, "password") || strstr(lower, "secret") ||
	    strstr(lower, "jaas") || !strcmp(lower, "ssl.key.pem") ||
	    !strcmp(lower, "ssl_key"))
		return perr(cx, npos(key),
			    "property '%s' in '%s' would put a secret in the "
			    "plan file: kmigrate reads secrets only through "
			    "password_env or password_file",
			    q(cx, k), q(cx, path));
	return KM_ERR_OK;
}

/* ISO-8601 UTC "YYYY-MM-DDTHH:MM:SS[.fff]Z" -> epoch ms. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char **sp, int n)
{
	int v = 0;

	while (n-- > 0) {
		if (!isdigit((unsigned char)**sp))
			return -1;
		v = v * 10 + (**sp - '0');
		(*sp)++;
	}
	return v;
}

static int parse_iso8601_utc(const char *s, int64_t *msp)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, sec, ms = 0, scale = 100, dim;

	if ((y = digits(&s, 4)) < 0 || *s++ != '-' ||
	    (mo = digits(&s, 2)) < 0 || *s++ != '-' ||
	    (d = digits(&s, 2)) < 0 || (*s != 'T' && *s != 't') ||
	    (s++, (h = digits(&s, 2)) < 0) || *s++ != ':' ||
	    (mi = digits(&s, 2)) < 0 || *s++ != ':' ||
	    (sec = digits(&s, 2)) < 0)
		return -1;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -1;
		for (; isdigit((unsigned char)*s); s++) {
			ms += (*s - '0') * scale;
			scale /= 10;
		}
	}
	if ((*s != 'Z' && *s != 'z') || s[1])
		return -1;
	if (y < 1970 || mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 59)
		return -1;
	dim = mdays[mo - 1] +
	      (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
	if (d < 1 || d > dim)
		return -1;
	*msp = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 24 + h) * 60 +
		mi) * 60000 +
	       (int64_t)sec * 1000 + ms;
	return 0;
}

static km_err_t parse_restart(ctx_t *cx, const yaml_node_t *val, void *obj,
			      const char *path)
{
	km_plan_group_t *group = obj;
	const char *s, *best = NULL;
	size_t bestd = SIZE_MAX;
	const enumval_t *e;
	km_err_t err;

	if ((err = get_str(cx, val, path, "a string", &s)))
		return err;
	for (e = restart_vals; e->name; e++) {
		if (e->value != KM_PLAN_RESTART_TIMESTAMP &&
		    !strcasecmp(s, e->name)) {
			group->restart = (km_plan_restart_t)e->value;
			return KM_ERR_OK;
		}
	}
	if (!strncasecmp(s, "timestamp:", 10)) {
		if (parse_iso8601_utc(s + 10, &group->restart_ts_ms))
			return perr(cx, npos(val),
				    "invalid timestamp '%s' for '%s': expected "
				    "ISO-8601 UTC such as "
				    "timestamp:2026-11-25T10:00:00Z",
				    q(cx, s + 10), q(cx, path));
		group->restart = KM_PLAN_RESTART_TIMESTAMP;
		return KM_ERR_OK;
	}
	for (e = restart_vals; e->name; e++)
		suggest(s, e->name, &best, &bestd);
	return perr(cx, npos(val),
		    "invalid value '%s' for '%s': expected translated, "
		    "earliest, latest or timestamp:<YYYY-MM-DDTHH:MM:SSZ>%s%s%s",
		    q(cx, s), q(cx, path), best ? " (did you mean '" : "",
		    best ? best : "", best ? "'?)" : "");
}

/* --------------------------------------------------------------------- */
/* Mapping shapes                                                        */

#define FLD(st, k, t, m, ...)                                                  \
	{.key = k, .type = t, .off = offsetof(st, m), __VA_ARGS__}
#define LST(st, k, t, m, ...)                                                  \
	{.key = k,                                                             \
	 .type = t,                                                            \
	 .off = offsetof(st, m),                                               \
	 .cnt_off = offsetof(st, m##_cnt),                                     \
	 __VA_ARGS__}
#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/* The fields index of a key, for cross-key checks. */
static yaml_node_t *by_key(const schema_t *sc, yaml_node_t *const *nodes,
			   const char *key)
{
	int i = field_index(sc, key);
	if (i < 0)
		KM_BUG("no key '%s' in schema '%s'", key, sc->what);
	return nodes[i];
}

/* topics.rules[] */
static const field_t rule_fields[] = {
	FLD(km_plan_rule_t, "match", T_REGEX, match, .flags = F_REQ),
	FLD(km_plan_rule_t, "ordering", T_ENUM, ordering, .ev = ordering_vals),
	FLD(km_plan_rule_t, "duplicates", T_ENUM, duplicates,
	    .ev = duplicates_vals),
	FLD(km_plan_rule_t, "replay", T_ENUM, replay, .ev = replay_vals),
	FLD(km_plan_rule_t, "owner", T_STR, owner),
};
static const schema_t rule_schema = {"a topic rule", sizeof(km_plan_rule_t),
				     rule_fields, NFIELDS(rule_fields), NULL,
				     NULL};

/* topics: */
static const field_t topics_fields[] = {
	LST(km_plan_topics_t, "include", T_REGEXLIST, include),
	LST(km_plan_topics_t, "exclude", T_REGEXLIST, exclude),
	FLD(km_plan_topics_t, "internal", T_BOOL, internal),
	LST(km_plan_topics_t, "rules", T_LIST, rules, .sub = &rule_schema),
};

static const schema_t topics_schema;

static km_err_t check_topics(ctx_t *cx, const yaml_node_t *map, void *obj,
			     yaml_node_t *const *keys, yaml_node_t *const *vals,
			     const char *path)
{
	km_plan_topics_t *topics = obj;
	yaml_node_t *inc = by_key(&topics_schema, vals, "include");

	(void)map;
	(void)keys;
	/* An empty include list would make every later phase a silent
	 * no-op: say so instead of migrating nothing. */
	if (inc && topics->include_cnt == 0)
		return perr(cx, npos(inc),
			    "'%s.include' is empty, so no topic would be "
			    "migrated: remove the key to include every topic",
			    path);
	return KM_ERR_OK;
}

static const schema_t topics_schema = {
	"topics", sizeof(km_plan_topics_t), topics_fields,
	NFIELDS(topics_fields), NULL, check_topics};

/* source: / target: */
static const field_t cluster_fields[] = {
	FLD(km_plan_cluster_t, "bootstrap", T_STR, bootstrap, .flags = F_REQ,
	    .check = check_bootstrap),
	FLD(km_plan_cluster_t, "security_protocol", T_ENUM, security_protocol,
	    .ev = secproto_vals),
	FLD(km_plan_cluster_t, "sasl_mechanism", T_STR, sasl_mechanism,
	    .check = check_sasl_mechanism),
	FLD(km_plan_cluster_t, "username", T_STR, username),
	FLD(km_plan_cluster_t, "password_env", T_STR, password_env,
	    .check = check_env_name),
	FLD(km_plan_cluster_t, "password_file", T_PATH, password_file),
	{.key = "password",
	 .type = T_FORBIDDEN,
	 .why = "never write a password into the plan; use password_env or "
		"password_file",
	 .instead = "'password_env' or 'password_file'"},
	FLD(km_plan_cluster_t, "ssl_ca", T_PATH, ssl_ca),
	LST(km_plan_cluster_t, "properties", T_KV, props,
	    .kvcheck = kvcheck_property),
	FLD(km_plan_cluster_t, "connect_url", T_STR, connect_url,
	    .check = check_url),
	FLD(km_plan_cluster_t, "schema_registry_url", T_STR,
	    schema_registry_url, .check = check_url),
	FLD(km_plan_cluster_t, "owner", T_STR, owner),
};
static const schema_t cluster_schema;

static km_err_t check_cluster(ctx_t *cx, const yaml_node_t *map, void *obj,
			      yaml_node_t *const *keys,
			      yaml_node_t *const *vals, const char *path)
{
	static const char *const sasl_keys[] = {"sasl_mechanism", "username",
						"password_env",
						"password_file", NULL};
	km_plan_cluster_t *c = obj;
	bool sasl = c->security_protocol == KM_PLAN_SEC_SASL_PLAINTEXT ||
		    c->security_protocol == KM_PLAN_SEC_SASL_SSL;
	bool ssl = c->security_protocol == KM_PLAN_SEC_SSL ||
		   c->security_protocol == KM_PLAN_SEC_SASL_SSL;
	const char *proto = km_plan_secproto_str(c->security_protocol);
	yaml_node_t *k;
	size_t i;

	(void)vals;
	c->role = !strcmp(path, "source") ? "source" : "target";

	if (!sasl) {
		for (i = 0; sasl_keys[i]; i++)
			if ((k = by_key(&cluster_schema, keys, sasl_keys[i])))
				return perr(cx, npos(k),
					    "'%s.%s' is only used with "
					    "security_protocol sasl_plaintext "
					    "or sasl_ssl (it is %s)",
					    path, sasl_keys[i], proto);
	} else {
		if (!c->sasl_mechanism)
			return perr(cx, npos(map),
				    "missing required key 'sasl_mechanism' in "
				    "'%s' (security_protocol is %s)",
				    path, proto);
		if (!c->username)
			return perr(cx, npos(map),
				    "missing required key 'username' in '%s' "
				    "(security_protocol is %s)",
				    path, proto);
		if (!c->password_env && !c->password_file)
			return perr(cx, npos(map),
				    "missing 'password_env' or 'password_file' "
				    "in '%s' (security_protocol is %s)",
				    path, proto);
		if (c->password_env && c->password_file) {
			yaml_node_t *ke =
				by_key(&cluster_schema, keys, "password_env");
			yaml_node_t *kf =
				by_key(&cluster_schema, keys, "password_file");
			return perr(cx,
				    npos(ke->start_mark.index >
						 kf->start_mark.index
					 ? ke
					 : kf),
				    "both 'password_env' and 'password_file' "
				    "are set in '%s': keep one",
				    path);
		}
		/* librdkafka wants the canonical upper-case spelling. */
		for (i = 0; sasl_mechanisms[i]; i++) {
			if (!strcasecmp(c->sasl_mechanism,
					sasl_mechanisms[i])) {
				free(c->sasl_mechanism);
				c->sasl_mechanism =
					km_strdup(sasl_mechanisms[i]);
				break;
			}
		}
	}
	if (!ssl && (k = by_key(&cluster_schema, keys, "ssl_ca")))
		return perr(cx, npos(k),
			    "'%s.ssl_ca' is only used with security_protocol "
			    "ssl or sasl_ssl (it is %s)",
			    path, proto);
	return KM_ERR_OK;
}

static const schema_t cluster_schema = {
	"a cluster", sizeof(km_plan_cluster_t), cluster_fields,
	NFIELDS(cluster_fields), NULL, check_cluster};

/* naming: */
static const field_t naming_fields[] = {
	FLD(km_plan_naming_t, "mode", T_ENUM, mode, .ev = naming_vals),
	FLD(km_plan_naming_t, "prefix", T_STR, prefix, .check = check_prefix),
	LST(km_plan_naming_t, "map", T_KV, map, .kvcheck = kvcheck_naming_map),
};

static const schema_t naming_schema;

static km_err_t check_naming(ctx_t *cx, const yaml_node_t *map, void *obj,
			     yaml_node_t *const *keys, yaml_node_t *const *vals,
			     const char *path)
{
	km_plan_naming_t *naming = obj;
	const char *mode = km_plan_naming_mode_str(naming->mode);
	yaml_node_t *kp = by_key(&naming_schema, keys, "prefix");
	yaml_node_t *km = by_key(&naming_schema, keys, "map");
	named_t *targets;
	size_t dup, first = 0, i;

	(void)vals;
	if (naming->mode == KM_PLAN_NAMING_PREFIX && !naming->prefix)
		return perr(cx, npos(map),
			    "missing required key 'prefix' in '%s' (mode is "
			    "prefix)",
			    path);
	if (naming->mode == KM_PLAN_NAMING_MAP && !km)
		return perr(cx, npos(map),
			    "missing required key 'map' in '%s' (mode is map)",
			    path);
	if (naming->mode != KM_PLAN_NAMING_PREFIX && kp)
		return perr(cx, npos(kp),
			    "'%s.prefix' is only used with mode prefix (mode "
			    "is %s)",
			    path, mode);
	if (naming->mode != KM_PLAN_NAMING_MAP && km)
		return perr(cx, npos(km),
			    "'%s.map' is only used with mode map (mode is %s)",
			    path, mode);
	if (naming->mode == KM_PLAN_NAMING_MAP && naming->map_cnt == 0)
		return perr(cx, npos(by_key(&naming_schema, vals, "map")),
			    "'%s.map' is empty: map at least one topic, or "
			    "use mode identity",
			    path);

	/* Two source topics written into one target topic would interleave
	 * their records and make offset translation meaningless. */
	targets = km_malloc((naming->map_cnt ? naming->map_cnt : 1) *
			    sizeof(*targets));
	for (i = 0; i < naming->map_cnt; i++) {
		targets[i].name = naming->map[i].value;
		targets[i].i = i;
	}
	dup = first_dup(targets, naming->map_cnt, &first);
	free(targets);
	if (dup != SIZE_MAX)
		return perr(cx, naming->map[dup].pos,
			    "'%s.map' sends both '%s' and '%s' to '%s'", path,
			    q(cx, naming->map[first].key),
			    q(cx, naming->map[dup].key),
			    q(cx, naming->map[dup].value));
	return KM_ERR_OK;
}

static const schema_t naming_schema = {"naming", sizeof(km_plan_naming_t),
				       naming_fields, NFIELDS(naming_fields),
				       NULL, check_naming};

/* consumer_groups[] */
static const field_t group_fields[] = {
	FLD(km_plan_group_t, "id", T_STR, id, .flags = F_REQ),
	{.key = "restart", .type = T_CUSTOM, .parse = parse_restart},
	FLD(km_plan_group_t, "replay", T_ENUM, replay, .ev = replay_vals),
	FLD(km_plan_group_t, "owner", T_STR, owner),
	FLD(km_plan_group_t, "chosen_by", T_STR, chosen_by),
};
static const schema_t group_schema = {"a consumer group",
				      sizeof(km_plan_group_t), group_fields,
				      NFIELDS(group_fields), NULL, NULL};

/* producers[] */
static void init_producer(void *obj)
{
	km_plan_producer_t *p = obj;
	p->idempotence = KM_PLAN_UNSET;
	p->transactions = KM_PLAN_UNSET;
}

static const field_t producer_fields[] = {
	FLD(km_plan_producer_t, "name", T_STR, name, .flags = F_REQ),
	FLD(km_plan_producer_t, "client", T_STR, client),
	FLD(km_plan_producer_t, "client_version", T_STR, client_version),
	FLD(km_plan_producer_t, "idempotence", T_TRI, idempotence),
	FLD(km_plan_producer_t, "transactions", T_TRI, transactions),
	LST(km_plan_producer_t, "topics", T_STRLIST, topics),
	FLD(km_plan_producer_t, "owner", T_STR, owner),
	FLD(km_plan_producer_t, "validation", T_STR, validation),
	FLD(km_plan_producer_t, "principal", T_STR, principal,
	    .check = check_principal),
	FLD(km_plan_producer_t, "transactional_id", T_STR, transactional_id),
};
static const schema_t producer_schema = {
	"a producer",          sizeof(km_plan_producer_t), producer_fields,
	NFIELDS(producer_fields), init_producer,	      NULL};

/* consumers[] */
static const field_t consumer_fields[] = {
	FLD(km_plan_consumer_t, "name", T_STR, name, .flags = F_REQ),
	FLD(km_plan_consumer_t, "group", T_STR, group),
	FLD(km_plan_consumer_t, "client", T_STR, client),
	FLD(km_plan_consumer_t, "client_version", T_STR, client_version),
	FLD(km_plan_consumer_t, "isolation_level", T_ENUM, isolation_level, .ev = isolation_vals),
	FLD(km_plan_consumer_t, "owner", T_STR, owner),
	FLD(km_plan_consumer_t, "validation", T_STR, validation),
};
static const schema_t consumer_schema = {
	"a consumer", sizeof(km_plan_consumer_t), consumer_fields,
	NFIELDS(consumer_fields), NULL, NULL};

/* connectors[] */
static void init_connector(void *obj)
{
	((km_plan_connector_t *)obj)->idempotent = KM_PLAN_UNSET;
}

static const field_t connector_fields[] = {
	FLD(km_plan_connector_t, "name", T_STR, name, .flags = F_REQ),
	FLD(km_plan_connector_t, "class", T_STR, class_name),
	FLD(km_plan_connector_t, "side_effects", T_STR, side_effects),
	FLD(km_plan_connector_t, "owner", T_STR, owner),
	FLD(km_plan_connector_t, "validation", T_STR, validation),
	FLD(km_plan_connector_t, "idempotent", T_TRI, idempotent),
	FLD(km_plan_connector_t, "group", T_STR, group),
};
static const schema_t connector_schema = {
	"a connector", sizeof(km_plan_connector_t), connector_fields,
	NFIELDS(connector_fields), init_connector, NULL};

/* dashboards[], alerts[], runbooks[] */
static const field_t artifact_fields[] = {
	FLD(km_plan_artifact_t, "name", T_STR, name, .flags = F_REQ),
	FLD(km_plan_artifact_t, "owner", T_STR, owner),
	FLD(km_plan_artifact_t, "validation", T_STR, validation),
};
static const schema_t artifact_schema = {
	"an item with name, owner and validation", sizeof(km_plan_artifact_t),
	artifact_fields, NFIELDS(artifact_fields), NULL, NULL};

/* gates: */
static void init_gates(void *obj)
{
	km_plan_gates_t *g = obj;
	g->max_lag_records = 0;
	g->max_lag_seconds = 60;
	g->max_mismatches = 0;
	g->large_message_ratio = 0.9;
	g->many_partitions = 64;
	g->max_evidence_age = 3600;
}

static const field_t gates_fields[] = {
	FLD(km_plan_gates_t, "max_lag_records", T_I64, max_lag_records,
	    .min = 0, .max = INT64_MAX),
	FLD(km_plan_gates_t, "max_lag_seconds", T_I64, max_lag_seconds,
	    .min = 0, .max = INT64_MAX),
	FLD(km_plan_gates_t, "max_mismatches", T_I64, max_mismatches, .min = 0,
	    .max = INT64_MAX),
	FLD(km_plan_gates_t, "large_message_ratio", T_DBL,
	    large_message_ratio),
	FLD(km_plan_gates_t, "many_partitions", T_INT, many_partitions,
	    .min = 1, .max = INT_MAX),
	/* A year at most: evidence older than that is no evidence. */
	FLD(km_plan_gates_t, "max_evidence_age", T_DUR, max_evidence_age,
	    .min = 1, .max = 366 * 86400),
};

static const schema_t gates_schema;

static km_err_t check_gates(ctx_t *cx, const yaml_node_t *map, void *obj,
			    yaml_node_t *const *keys, yaml_node_t *const *vals,
			    const char *path)
{
	km_plan_gates_t *g = obj;
	yaml_node_t *v = by_key(&gates_schema, vals, "large_message_ratio");

	(void)map;
	(void)keys;
	if (v && !(g->large_message_ratio > 0 && g->large_message_ratio <= 1))
		return perr(cx, npos(v),
			    "'%s.large_message_ratio' must be greater than 0 "
			    "and at most 1, got %s",
			    path, describe(cx, v));
	return KM_ERR_OK;
}

static const schema_t gates_schema = {"gates", sizeof(km_plan_gates_t),
				      gates_fields, NFIELDS(gates_fields),
				      init_gates, check_gates};

/* rollback: */

/* A trigger's built-in metric must be one `monitor` measures (lib/metrics.h's
 * catalogue): an unknown name would never have a value, and a trigger that
 * can never fire is a silent pass. */
static km_err_t check_trigger_metric(ctx_t *cx, const yaml_node_t *val, const char *s,
				     const char *path)
{
	const km_metric_def_t *d = km_metrics_def(s), *e;
	const char *best = NULL;
	size_t bestd = SIZE_MAX;

	if (d && d->trigger)
		return KM_ERR_OK;
	for (e = km_metrics_catalogue; e->name; e++)
		if (e->trigger)
			suggest(s, e->name, &best, &bestd);
	return perr(cx, npos(val),
		    "unknown metric '%s' for '%s': a trigger watches one of kmigrate's own "
		    "metrics (docs/metrics.md)%s%s%s, or a PromQL 'query' instead",
		    q(cx, s), q(cx, path), best ? " (did you mean '" : "", best ? best : "",
		    best ? "'?)" : "");
}

static const field_t trigger_fields[] = {
	FLD(km_plan_trigger_t, "name", T_STR, name, .flags = F_REQ),
	FLD(km_plan_trigger_t, "metric", T_STR, metric, .check = check_trigger_metric),
	LST(km_plan_trigger_t, "labels", T_KV, labels),
	FLD(km_plan_trigger_t, "query", T_STR, query),
	FLD(km_plan_trigger_t, "op", T_ENUM, op, .ev = op_vals),
	FLD(km_plan_trigger_t, "threshold", T_DBL, threshold, .flags = F_REQ),
	FLD(km_plan_trigger_t, "for", T_DUR, for_s, .min = 0, .max = 86400),
	FLD(km_plan_trigger_t, "wave", T_STR, wave),
	FLD(km_plan_trigger_t, "owner", T_STR, owner),
};
static const schema_t trigger_schema;

static km_err_t check_trigger(ctx_t *cx, const yaml_node_t *map, void *obj,
			      yaml_node_t *const *keys, yaml_node_t *const *vals,
			      const char *path)
{
	km_plan_trigger_t *t = obj;
	const km_metric_def_t *d;

	(void)keys;
	if (!t->metric == !t->query)
		return perr(cx, npos(map),
			    "'%s' needs exactly one of 'metric' (one of kmigrate's own, "
			    "docs/metrics.md) or 'query' (PromQL against "
			    "monitoring.prometheus_url)",
			    path);
	if (t->labels_cnt && !t->metric)
		return perr(cx, npos(by_key(&trigger_schema, vals, "labels")),
			    "'%s.labels' filters a built-in 'metric': put the selector "
			    "inside the PromQL 'query' instead",
			    path);
	d = t->metric ? km_metrics_def(t->metric) : NULL;
	for (size_t i = 0; d && i < t->labels_cnt; i++) {
		const char *k = t->labels[i].key, *ls = d->labels;
		size_t kl = strlen(k);
		bool ok = false;
		for (; *ls; ls += strcspn(ls, ",") + (ls[strcspn(ls, ",")] == ',')) {
			if (!strncmp(ls, k, kl) && (ls[kl] == ',' || !ls[kl]))
				ok = true;
		}
		if (!ok)
			return perr(cx, t->labels[i].pos,
				    "unknown label '%s' in '%s.labels': '%s' has the labels %s",
				    q(cx, k), path, t->metric, *d->labels ? d->labels : "(none)");
	}
	return KM_ERR_OK;
}

static const schema_t trigger_schema = {
	"a rollback trigger", sizeof(km_plan_trigger_t), trigger_fields,
	NFIELDS(trigger_fields), NULL, check_trigger};

static const field_t rollback_fields[] = {
	LST(km_plan_rollback_t, "triggers", T_LIST, triggers,
	    .sub = &trigger_schema),
	FLD(km_plan_rollback_t, "automatic", T_BOOL, automatic),
};

/* monitoring: */
static void init_monitoring(void *obj)
{
	km_plan_monitoring_t *m = obj;
	m->interval = 10;
}

static km_err_t check_metrics_addr(ctx_t *cx, const yaml_node_t *val, const char *s,
				   const char *path)
{
	if (km_metrics_addr_check(s))
		return perr(cx, npos(val),
			    "invalid address '%s' for '%s': write HOST:PORT, e.g. "
			    "127.0.0.1:9464",
			    q(cx, s), q(cx, path));
	return KM_ERR_OK;
}

static const field_t monitoring_fields[] = {
	FLD(km_plan_monitoring_t, "metrics_addr", T_STR, metrics_addr,
	    .check = check_metrics_addr),
	FLD(km_plan_monitoring_t, "replicate_metrics_addr", T_STR, replicate_metrics_addr,
	    .check = check_metrics_addr),
	FLD(km_plan_monitoring_t, "cutover_metrics_addr", T_STR, cutover_metrics_addr,
	    .check = check_metrics_addr),
	FLD(km_plan_monitoring_t, "interval", T_DUR, interval, .min = 1, .max = 3600),
	FLD(km_plan_monitoring_t, "prometheus_url", T_STR, prometheus_url,
	    .check = check_url),
	FLD(km_plan_monitoring_t, "canary_topic", T_STR, canary_topic),
	FLD(km_plan_monitoring_t, "canary_username", T_STR, canary_username),
	FLD(km_plan_monitoring_t, "canary_password_env", T_STR, canary_password_env),
};
static const schema_t monitoring_schema = {
	"monitoring", sizeof(km_plan_monitoring_t), monitoring_fields,
	NFIELDS(monitoring_fields), init_monitoring, NULL};
static const schema_t rollback_schema = {
	"rollback", sizeof(km_plan_rollback_t), rollback_fields,
	NFIELDS(rollback_fields), NULL, NULL};

/* replication: */
static const enumval_t compression_vals[] = {{"none", KM_PLAN_COMPRESSION_NONE},
					     {"gzip", KM_PLAN_COMPRESSION_GZIP},
					     {"snappy", KM_PLAN_COMPRESSION_SNAPPY},
					     {"lz4", KM_PLAN_COMPRESSION_LZ4},
					     {"zstd", KM_PLAN_COMPRESSION_ZSTD},
					     {NULL, 0}};
static const field_t replication_fields[] = {
	FLD(km_plan_replication_t, "max_bytes_per_sec", T_I64, max_bytes_per_sec,
	    .min = 0, .max = INT64_MAX),
	FLD(km_plan_replication_t, "max_buffer_mb", T_INT, max_buffer_mb, .min = 8,
	    .max = 65536),
	FLD(km_plan_replication_t, "tasks", T_INT, tasks, .min = 1, .max = 256),
	FLD(km_plan_replication_t, "txn_max_records", T_INT, txn_max_records,
	    .min = 1, .max = 1000000),
	FLD(km_plan_replication_t, "txn_max_ms", T_INT, txn_max_ms, .min = 1,
	    .max = 60000),
	FLD(km_plan_replication_t, "compression", T_ENUM, compression, .ev = compression_vals),
};
static const schema_t replication_schema = {
	"replication", sizeof(km_plan_replication_t), replication_fields,
	NFIELDS(replication_fields), NULL, NULL};

/* cutover.waves[] */
static const field_t wave_fields[] = {
	FLD(km_plan_wave_t, "name", T_STR, name, .flags = F_REQ),
	LST(km_plan_wave_t, "topics", T_NAMELIST, topics),
	FLD(km_plan_wave_t, "all", T_BOOL, all),
	LST(km_plan_wave_t, "producers", T_NAMELIST, producers),
	LST(km_plan_wave_t, "consumers", T_NAMELIST, consumers),
	LST(km_plan_wave_t, "groups", T_NAMELIST, groups),
	FLD(km_plan_wave_t, "owner", T_STR, owner),
};

static const schema_t wave_schema;

static km_err_t check_wave(ctx_t *cx, const yaml_node_t *map, void *obj,
			   yaml_node_t *const *keys, yaml_node_t *const *vals,
			   const char *path)
{
	km_plan_wave_t *w = obj;
	yaml_node_t *kt = by_key(&wave_schema, keys, "topics");
	yaml_node_t *ka = by_key(&wave_schema, keys, "all");
	size_t i;

	(void)vals;
	for (i = 0; i < w->topics_cnt; i++) {
		if (!strcmp(w->topics[i].name, "all")) {
			w->all = true;
		} else if (!topic_name_ok(w->topics[i].name)) {
			/* Waves name topics exactly: a pattern here would be
			 * a second, silent scope. */
			return perr(cx, w->topics[i].pos,
				    "invalid topic name '%s' in '%s.topics': "
				    "waves list exact topic names (or all)",
				    q(cx, w->topics[i].name), path);
		}
	}
	if (!kt && !ka && !strcmp(w->name, "all"))
		w->all = true;
	if (!w->all && !w->topics_cnt)
		return perr(cx, npos(map),
			    "wave '%s' in '%s' moves no topic: list its "
			    "'topics', or write 'all: true' for every topic "
			    "no earlier wave takes",
			    q(cx, w->name), path);
	return KM_ERR_OK;
}

static const schema_t wave_schema = {"a cutover wave", sizeof(km_plan_wave_t),
				     wave_fields, NFIELDS(wave_fields), NULL,
				     check_wave};

/* cutover.fence_probe */
static const field_t probe_fields[] = {
	FLD(km_plan_fence_probe_t, "principal", T_STR, principal, .flags = F_REQ,
	    .check = check_principal),
	FLD(km_plan_fence_probe_t, "username", T_STR, username, .flags = F_REQ),
	FLD(km_plan_fence_probe_t, "password_env", T_STR, password_env,
	    .flags = F_REQ, .check = check_env_name),
	{.key = "password",
	 .type = T_FORBIDDEN,
	 .why = "never write a password into the plan; use password_env",
	 .instead = "'password_env'"},
};
static const schema_t probe_schema = {"cutover.fence_probe",
				      sizeof(km_plan_fence_probe_t), probe_fields,
				      NFIELDS(probe_fields), NULL, NULL};

/* cutover: */
static void init_cutover(void *obj)
{
	km_plan_cutover_t *c = obj;
	c->fence = KM_PLAN_FENCE_UNDECLARED;
	c->quiet_period = 10;
	c->allow_everyone_if_no_acl_found = KM_PLAN_UNSET;
	c->verify_window = 30;
}

static const field_t cutover_fields[] = {
	LST(km_plan_cutover_t, "waves", T_LIST, waves, .sub = &wave_schema),
	FLD(km_plan_cutover_t, "fence", T_ENUM, fence, .ev = fence_vals),
	FLD(km_plan_cutover_t, "fence_owner", T_STR, fence_owner),
	FLD(km_plan_cutover_t, "quiet_period", T_DUR, quiet_period, .min = 1,
	    .max = 86400),
	LST(km_plan_cutover_t, "super_users", T_STRLIST, super_users,
	    .check = check_principal),
	FLD(km_plan_cutover_t, "allow_everyone_if_no_acl_found", T_TRI,
	    allow_everyone_if_no_acl_found),
	FLD(km_plan_cutover_t, "super_users_fence", T_ENUM, super_users_fence,
	    .ev = super_fence_vals),
	FLD(km_plan_cutover_t, "super_users_fence_owner", T_STR,
	    super_users_fence_owner),
	FLD(km_plan_cutover_t, "fence_probe", T_MAP, fence_probe,
	    .sub = &probe_schema),
	FLD(km_plan_cutover_t, "verify_window", T_DUR, verify_window, .min = 1,
	    .max = 86400),
};
static const schema_t cutover_schema;

static km_err_t check_cutover(ctx_t *cx, const yaml_node_t *map, void *obj,
			      yaml_node_t *const *keys,
			      yaml_node_t *const *vals, const char *path)
{
	km_plan_cutover_t *c = obj;

	(void)cx;
	(void)map;
	(void)vals;
	(void)path;
	/* `super_users: []` is a declaration (none); an absent key is
	 * unknown. */
	c->super_users_set = by_key(&cutover_schema, keys, "super_users") != NULL;
	return KM_ERR_OK;
}

static const schema_t cutover_schema = {
	"cutover", sizeof(km_plan_cutover_t), cutover_fields,
	NFIELDS(cutover_fields), init_cutover, check_cutover};

/* schemas: */
static const field_t schemas_fields[] = {
	FLD(km_plan_schemas_t, "ids", T_ENUM, ids, .ev = schema_ids_vals),
};
static const schema_t schemas_schema = {"schemas", sizeof(km_plan_schemas_t),
					schemas_fields, NFIELDS(schemas_fields),
					NULL, NULL};

/* The top level. */
static const field_t plan_fields[] = {
	FLD(km_plan_t, "migration", T_STR, migration, .flags = F_REQ,
	    .check = check_migration_name),
	FLD(km_plan_t, "journal", T_PATH, journal),
	FLD(km_plan_t, "source", T_MAP, source, .flags = F_REQ,
	    .sub = &cluster_schema),
	FLD(km_plan_t, "target", T_MAP, target, .flags = F_REQ,
	    .sub = &cluster_schema),
	FLD(km_plan_t, "topics", T_MAP, topics, .sub = &topics_schema),
	FLD(km_plan_t, "naming", T_MAP, naming, .sub = &naming_schema),
	LST(km_plan_t, "consumer_groups", T_LIST, groups,
	    .sub = &group_schema),
	LST(km_plan_t, "producers", T_LIST, producers,
	    .sub = &producer_schema),
	LST(km_plan_t, "consumers", T_LIST, consumers,
	    .sub = &consumer_schema),
	LST(km_plan_t, "connectors", T_LIST, connectors,
	    .sub = &connector_schema),
	LST(km_plan_t, "dashboards", T_LIST, dashboards,
	    .sub = &artifact_schema),
	LST(km_plan_t, "alerts", T_LIST, alerts, .sub = &artifact_schema),
	LST(km_plan_t, "runbooks", T_LIST, runbooks, .sub = &artifact_schema),
	FLD(km_plan_t, "gates", T_MAP, gates, .sub = &gates_schema),
	FLD(km_plan_t, "rollback", T_MAP, rollback, .sub = &rollback_schema),
	FLD(km_plan_t, "replication", T_MAP, replication,
	    .sub = &replication_schema),
	FLD(km_plan_t, "cutover", T_MAP, cutover, .sub = &cutover_schema),
	FLD(km_plan_t, "monitoring", T_MAP, monitoring, .sub = &monitoring_schema),
	FLD(km_plan_t, "schemas", T_MAP, schemas, .sub = &schemas_schema),
};
static const schema_t plan_schema = {"the plan", sizeof(km_plan_t),
				     plan_fields, NFIELDS(plan_fields), NULL,
				     NULL};

/* --------------------------------------------------------------------- */
/* Whole-plan checks                                                     */

/* Names within one list must be unique: later phases key evidence, owners
 * and verdicts by them. */
static km_err_t check_unique(ctx_t *cx, const void *items, size_t n,
			     size_t size, size_t name_off, const char *what,
			     const char *list)
{
	named_t *v;
	size_t dup, first = 0, i;
	const km_plan_pos_t *p1, *p2;

	if (n < 2)
		return KM_ERR_OK;
	v = km_malloc(n * sizeof(*v));
	for (i = 0; i < n; i++) {
		memcpy(&v[i].name, (const char *)items + i * size + name_off,
		       sizeof(v[i].name));
		v[i].i = i;
	}
	dup = first_dup(v, n, &first);
	if (dup == SIZE_MAX) {
		free(v);
		return KM_ERR_OK;
	}
	for (i = 0; i < n; i++)
		if (v[i].i == dup)
			break;
	p1 = (const km_plan_pos_t *)((const char *)items + first * size);
	p2 = (const km_plan_pos_t *)((const char *)items + dup * size);
	perr(cx, *p2, "duplicate %s '%s' in '%s' (first at line %d)", what,
	     q(cx, v[i].name), list, p1->line);
	free(v);
	return KM_ERR_PLAN;
}

/* @returns whether name is one of n names at off in items of size. */
static bool declared(const void *items, size_t n, size_t size, size_t off,
		     const char *name)
{
	const char *s;
	size_t i;

	for (i = 0; i < n; i++) {
		memcpy(&s, (const char *)items + i * size + off, sizeof(s));
		if (!strcmp(s, name))
			return true;
	}
	return false;
}

/* A wave's references name what the plan declares; a name nobody declared
 * would move (or gate) nothing, silently.  Suggests a close declared name. */
static km_err_t check_refs(ctx_t *cx, const km_plan_name_t *refs, size_t n,
			   const void *items, size_t cnt, size_t size,
			   size_t off, const char *path, const char *list)
{
	const char *best, *s;
	size_t i, j, bestd;

	for (i = 0; i < n; i++) {
		if (declared(items, cnt, size, off, refs[i].name))
			continue;
		best = NULL;
		bestd = SIZE_MAX;
		for (j = 0; j < cnt; j++) {
			memcpy(&s, (const char *)items + j * size + off,
			       sizeof(s));
			suggest(refs[i].name, s, &best, &bestd);
		}
		return perr(cx, refs[i].pos,
			    "'%s[%zu]' names '%s', which '%s' does not "
			    "declare: declare it there, or fix the name%s%s%s",
			    path, i, q(cx, refs[i].name), list,
			    best ? " (did you mean '" : "", best ? best : "",
			    best ? "'?)" : "");
	}
	return KM_ERR_OK;
}

static km_err_t check_waves(ctx_t *cx, km_plan_t *plan)
{
	const km_plan_cutover_t *co = &plan->cutover;
	char path[128];
	km_err_t err;
	size_t w, i, v, j;

	if ((err = check_unique(cx, co->waves, co->waves_cnt,
				sizeof(km_plan_wave_t),
				offsetof(km_plan_wave_t, name), "wave name",
				"cutover.waves")))
		return err;
	for (w = 0; w < co->waves_cnt; w++) {
		const km_plan_wave_t *wv = &co->waves[w];

#define REFS(member, arr, type, field, list)                                   \
	do {                                                                   \
		snprintf(path, sizeof(path), "cutover.waves[%zu]." #member, w);  \
		if ((err = check_refs(cx, wv->member, wv->member##_cnt,        \
				      plan->arr, plan->arr##_cnt, sizeof(type), \
				      offsetof(type, field), path, list)))     \
			return err;                                            \
	} while (0)
		REFS(producers, producers, km_plan_producer_t, name,
		     "producers");
		REFS(consumers, consumers, km_plan_consumer_t, name,
		     "consumers");
		REFS(groups, groups, km_plan_group_t, id, "consumer_groups");
#undef REFS
		/* An `all` wave takes every topic left: nothing comes after
		 * it but waves that would move nothing. */
		if (w > 0 && co->waves[w - 1].all)
			return perr(cx, wv->pos,
				    "wave '%s' comes after wave '%s', which "
				    "already takes every remaining topic: make "
				    "'%s' the last wave",
				    q(cx, wv->name), q(cx, co->waves[w - 1].name),
				    q(cx, co->waves[w - 1].name));
		for (i = 0; i < wv->topics_cnt; i++) {
			const km_plan_name_t *t = &wv->topics[i];
			if (!strcmp(t->name, "all"))
				continue;
			if (!km_plan_topic_in_scope(plan, t->name))
				return perr(cx, t->pos,
					    "topic '%s' of wave '%s' is not in "
					    "the migration's scope (topics.include"
					    "/exclude): fix the name or the scope",
					    q(cx, t->name), q(cx, wv->name));
			/* One topic, one wave: write authority moves once. */
			for (v = 0; v <= w; v++)
				for (j = 0; j < co->waves[v].topics_cnt &&
					    (v < w || j < i);
				     j++)
					if (!strcmp(co->waves[v].topics[j].name,
						    t->name))
						return perr(
							cx, t->pos,
							"topic '%s' is in wave "
							"'%s' and again in wave "
							"'%s' (line %d): a topic "
							"moves in one wave",
							q(cx, t->name),
							q(cx, co->waves[v].name),
							q(cx, wv->name),
							co->waves[v].topics[j].pos.line);
		}
	}
	return KM_ERR_OK;
}

static km_err_t finish(ctx_t *cx, km_plan_t *plan)
{
	km_err_t err;

#define UNIQUE(arr, type, member, what, list)                                  \
	do {                                                                   \
		if ((err = check_unique(cx, plan->arr, plan->arr##_cnt,        \
					sizeof(type), offsetof(type, member),  \
					what, list)))                          \
			return err;                                            \
	} while (0)
	UNIQUE(groups, km_plan_group_t, id, "consumer group id",
	       "consumer_groups");
	UNIQUE(producers, km_plan_producer_t, name, "producer name",
	       "producers");
	UNIQUE(consumers, km_plan_consumer_t, name, "consumer name",
	       "consumers");
	UNIQUE(connectors, km_plan_connector_t, name, "connector name",
	       "connectors");
	UNIQUE(dashboards, km_plan_artifact_t, name, "dashboard name",
	       "dashboards");
	UNIQUE(alerts, km_plan_artifact_t, name, "alert name", "alerts");
	UNIQUE(runbooks, km_plan_artifact_t, name, "runbook name", "runbooks");
	if ((err = check_unique(cx, plan->rollback.triggers,
				plan->rollback.triggers_cnt,
				sizeof(km_plan_trigger_t),
				offsetof(km_plan_trigger_t, name),
				"trigger name", "rollback.triggers")))
		return err;
#undef UNIQUE
	if (!plan->monitoring.canary_username != !plan->monitoring.canary_password_env)
		return perr(cx, plan->monitoring.pos,
			    "'monitoring.canary_username' and 'monitoring.canary_password_env' "
			    "go together: declare both, or neither");
	for (size_t i = 0; i < plan->rollback.triggers_cnt; i++) {
		const km_plan_trigger_t *t = &plan->rollback.triggers[i];
		if (t->query && !plan->monitoring.prometheus_url)
			return perr(cx, t->pos,
				    "trigger '%s' has a PromQL 'query' but the plan has no "
				    "'monitoring.prometheus_url': set it to your Prometheus "
				    "(e.g. http://prometheus:9090)",
				    q(cx, t->name));
		/* A canary trigger without a canary could never have a value. */
		if (t->metric && !strncmp(t->metric, "kmigrate_canary_", 16) &&
		    !plan->monitoring.canary_topic)
			return perr(cx, t->pos,
				    "trigger '%s' watches '%s' but the plan has no "
				    "'monitoring.canary_topic': declare the target topic the "
				    "canaries may write",
				    q(cx, t->name), q(cx, t->metric));
		if (t->wave && !km_plan_wave(plan, t->wave))
			return perr(cx, t->pos,
				    "trigger '%s' names wave '%s', which 'cutover.waves' does "
				    "not declare: fix the name",
				    q(cx, t->name), q(cx, t->wave));
		if (plan->rollback.automatic && !t->wave)
			return perr(cx, t->pos,
				    "trigger '%s' has no 'wave' but 'rollback.automatic' is "
				    "true: name the wave it rolls back",
				    q(cx, t->name));
	}

	/* Copying a cluster onto itself under the same names would feed the
	 * replicator its own output. */
	if (!strcmp(plan->source.bootstrap, plan->target.bootstrap) &&
	    plan->naming.mode == KM_PLAN_NAMING_IDENTITY)
		return perr(cx, plan->target.pos,
			    "source and target have the same bootstrap '%s' "
			    "and naming mode identity: the migration would "
			    "copy every topic onto itself",
			    q(cx, plan->target.bootstrap));

	if (!plan->topics.include_cnt) {
		km_plan_regex_t *rx = km_calloc(1, sizeof(*rx));
		if (regcomp(&rx->re, ".*", REG_EXTENDED | REG_NOSUB))
			KM_BUG("regcomp(\".*\") failed");
		rx->pattern = km_strdup(".*");
		rx->pos = plan->topics.pos;
		plan->topics.include = rx;
		plan->topics.include_cnt = 1;
	}
	if (!plan->journal)
		plan->journal = resolve_path(plan->dir, "kmigrate.db");
	return check_waves(cx, plan);
}

/* --------------------------------------------------------------------- */
/* Loading                                                               */

static km_err_t yaml_error(ctx_t *cx, const yaml_parser_t *parser,
			   const char *buf, size_t len)
{
	km_plan_pos_t pos = {(int)parser->problem_mark.line + 1,
			     (int)parser->problem_mark.column + 1};
	const char *problem = parser->problem ? parser->problem : "error";
	size_t i;

	switch (parser->error) {
	case YAML_MEMORY_ERROR:
		KM_BUG("libyaml ran out of memory");
	case YAML_READER_ERROR:
		/* The reader reports a byte offset, not a mark. */
		pos.line = 1;
		pos.col = 1;
		for (i = 0; i < parser->problem_offset && i < len; i++) {
			if (buf[i] == '\n') {
				pos.line++;
				pos.col = 1;
			} else {
				pos.col++;
			}
		}
		return perr(cx, pos, "invalid YAML: %s", problem);
	default:
		/* The commonest syntax error in hand-written YAML. */
		if (parser->problem_mark.index < len &&
		    buf[parser->problem_mark.index] == '\t' &&
		    !strstr(problem, "tab"))
			return perr(cx, pos,
				    "invalid YAML: %s (a tab: YAML indents "
				    "with spaces only)",
				    problem);
		if (parser->context)
			return perr(cx, pos, "invalid YAML: %s (%s at line %d)",
				    problem, parser->context,
				    (int)parser->context_mark.line + 1);
		return perr(cx, pos, "invalid YAML: %s", problem);
	}
}

km_err_t km_plan_parse(const char *buf, size_t len, const char *name_for_errors,
		       const char *base_dir, km_plan_t **planp, char *errstr,
		       size_t errstr_size)
{
	yaml_parser_t parser;
	yaml_document_t doc, doc2;
	bool have_doc = false;
	yaml_node_t *root, *root2;
	km_plan_t *plan = NULL;
	km_plan_pos_t top = {1, 1};
	km_err_t err;
	ctx_t cx;

	*planp = NULL;
	if (!buf) {
		buf = "";
		len = 0;
	}
	memset(&cx, 0, sizeof(cx));
	cx.name = name_for_errors ? name_for_errors : "plan";
	cx.dir = base_dir && *base_dir ? base_dir : ".";
	cx.errstr = errstr;
	cx.errstr_size = errstr_size;
	cx.doc = &doc;

	if (!yaml_parser_initialize(&parser))
		KM_BUG("yaml_parser_initialize failed");
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

	if (!yaml_parser_load(&parser, &doc)) {
		err = yaml_error(&cx, &parser, buf, len);
		goto done;
	}
	have_doc = true;
	root = yaml_document_get_root_node(&doc);
	if (!root || is_null(root)) {
		err = perr(&cx, root ? npos(root) : top,
			   "plan is empty (create one with `kmigrate init`)");
		goto done;
	}
	if (root->type != YAML_MAPPING_NODE) {
		err = perr(&cx, npos(root),
			   "expected a mapping of plan keys at top level, got "
			   "%s",
			   describe(&cx, root));
		goto done;
	}
	/* One plan per file: a second document would be silently ignored. */
	if (!yaml_parser_load(&parser, &doc2)) {
		err = yaml_error(&cx, &parser, buf, len);
		goto done;
	}
	root2 = yaml_document_get_root_node(&doc2);
	if (root2) {
		err = perr(&cx, npos(root2),
			   "a plan file holds one YAML document; found a "
			   "second one");
		yaml_document_delete(&doc2);
		goto done;
	}
	yaml_document_delete(&doc2);

	cx.budget = 2 * (size_t)(doc.nodes.top - doc.nodes.start) + 64;
	plan = km_malloc(sizeof(*plan));
	schema_init(&plan_schema, plan);
	plan->path = km_strdup(cx.name);
	plan->dir = km_strdup(cx.dir);
	if ((err = decode_map(&cx, root, &plan_schema, plan, "")))
		goto done;
	err = finish(&cx, plan);

done:
	if (have_doc)
		yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (err)
		km_plan_destroy(plan);
	else
		*planp = plan;
	return err;
}

/* @returns the directory part of path, absolute when the current directory
 *          is known, owned. */
static char *plan_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char cwd[4096];
	char *dir, *abs;

	if (!slash)
		dir = km_strdup(".");
	else if (slash == path)
		dir = km_strdup("/");
	else
		dir = km_strndup(path, (size_t)(slash - path));
	if (dir[0] == '/')
		return dir;
	if (!getcwd(cwd, sizeof(cwd)))
		return dir; /* relative, but still right until a chdir() */
	abs = resolve_path(cwd, dir);
	free(dir);
	return abs;
}

km_err_t km_plan_load(const char *path, km_plan_t **planp, char *errstr,
		      size_t errstr_size)
{
	km_sb_t sb = KM_SB_INIT;
	char chunk[65536], name[256];
	char *dir = NULL;
	struct stat st;
	km_err_t err;
	ssize_t r;
	int fd;

	*planp = NULL;
	if (!path)
		return km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
				 "no plan file given");
	sanitize(path, strlen(path), name, sizeof(name), 200);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return km_seterr(errstr, errstr_size, KM_ERR_IO,
				 "cannot open plan '%s': %s (create one with "
				 "`kmigrate init`)",
				 name, strerror(errno));
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		return km_seterr(errstr, errstr_size, KM_ERR_IO,
				 "cannot open plan '%s': %s (create one with "
				 "`kmigrate init`)",
				 name, strerror(EISDIR));
	}
	for (;;) {
		r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = km_seterr(errstr, errstr_size, KM_ERR_IO,
					"cannot read plan '%s': %s", name,
					strerror(errno));
			goto done;
		}
		if (r == 0)
			break;
		if (sb.len + (size_t)r > KM_PLAN_MAX_SIZE) {
			err = km_seterr(errstr, errstr_size, KM_ERR_PLAN,
					"plan '%s' is larger than %u MiB: this "
					"is not a plan file",
					name, KM_PLAN_MAX_SIZE >> 20);
			goto done;
		}
		km_sb_add(&sb, chunk, (size_t)r);
	}
	dir = plan_dir(path);
	err = km_plan_parse(km_sb_str(&sb), sb.len, path, dir, planp, errstr,
			    errstr_size);
done:
	close(fd);
	free(dir);
	km_sb_free(&sb);
	return err;
}

void km_plan_destroy(km_plan_t *plan)
{
	if (!plan)
		return;
	schema_free(&plan_schema, plan);
	km_plan_set_worker_topics(plan, NULL, 0);
	free(plan->worker_topics);
	free(plan->path);
	free(plan->dir);
	free(plan);
}

/* --------------------------------------------------------------------- */
/* Queries                                                               */

static bool any_match(const km_plan_regex_t *rx, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (regexec(&rx[i].re, s, 0, NULL, 0) == 0)
			return true;
	return false;
}

bool km_plan_topic_in_scope(const km_plan_t *plan, const char *topic)
{
	return km_plan_topic_selected(plan, topic) && !km_plan_worker_topic(plan, topic);
}

bool km_plan_worker_topic(const km_plan_t *plan, const char *topic)
{
	for (size_t i = 0; plan && topic && i < plan->worker_topics_cnt; i++)
		if (!strcmp(plan->worker_topics[i], topic))
			return true;
	return false;
}

void km_plan_set_worker_topics(km_plan_t *plan, const char *const *topics, size_t cnt)
{
	for (size_t i = 0; i < plan->worker_topics_cnt; i++)
		free(plan->worker_topics[i]);
	free(plan->worker_topics);
	plan->worker_topics = km_calloc(cnt + 1, sizeof(*plan->worker_topics));
	for (size_t i = 0; i < cnt; i++)
		plan->worker_topics[i] = km_strdup(topics[i]);
	plan->worker_topics_cnt = cnt;
}

bool km_plan_topic_selected(const km_plan_t *plan, const char *topic)
{
	if (!plan || !topic || !*topic)
		return false;
	if (!plan->topics.internal && topic[0] == '_')
		return false;
	return any_match(plan->topics.include, plan->topics.include_cnt,
			 topic) &&
	       !any_match(plan->topics.exclude, plan->topics.exclude_cnt,
			  topic);
}

const km_plan_rule_t *km_plan_topic_rule(const km_plan_t *plan,
					 const char *topic)
{
	size_t i;

	if (!plan || !topic)
		return NULL;
	for (i = 0; i < plan->topics.rules_cnt; i++)
		if (regexec(&plan->topics.rules[i].match.re, topic, 0, NULL,
			    0) == 0)
			return &plan->topics.rules[i];
	return NULL;
}

char *km_plan_target_topic(const km_plan_t *plan, const char *topic)
{
	size_t i;

	switch (plan->naming.mode) {
	case KM_PLAN_NAMING_PREFIX:
		return km_asprintf("%s%s", plan->naming.prefix, topic);
	case KM_PLAN_NAMING_MAP:
		for (i = 0; i < plan->naming.map_cnt; i++)
			if (!strcmp(plan->naming.map[i].key, topic))
				return km_strdup(plan->naming.map[i].value);
		return km_strdup(topic);
	case KM_PLAN_NAMING_IDENTITY: return km_strdup(topic);
	}
	KM_BUG("naming mode %d", (int)plan->naming.mode);
}

/* --------------------------------------------------------------------- */
/* Secrets                                                               */

static void wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n--)
		*v++ = 0;
}

void km_plan_password_free(char *password)
{
	if (!password)
		return;
	wipe(password, strlen(password));
	free(password);
}

static size_t strip_newlines(const char *s, size_t n)
{
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	return n;
}

km_err_t km_plan_cluster_password(const km_plan_cluster_t *cluster,
				  char **passwordp, char *errstr,
				  size_t errstr_size)
{
	const char *role = cluster->role ? cluster->role : "cluster";
	const size_t size = MAX_PASSWORD_FILE + 1;
	char *buf, name[256];
	km_err_t err = KM_ERR_OK;
	size_t n = 0;
	ssize_t r;
	int fd;

	*passwordp = NULL;
	if (cluster->password_env) {
		const char *v = getenv(cluster->password_env);
		if (!v)
			return km_seterr(errstr, errstr_size, KM_ERR_PLAN,
					 "environment variable '%s' with the "
					 "%s password is not set: export it, "
					 "or set password_file in '%s'",
					 cluster->password_env, role, role);
		n = strip_newlines(v, strlen(v));
		if (!n)
			return km_seterr(errstr, errstr_size, KM_ERR_PLAN,
					 "environment variable '%s' with the "
					 "%s password is empty: export the "
					 "password in it",
					 cluster->password_env, role);
		*passwordp = km_strndup(v, n);
		return KM_ERR_OK;
	}
	if (!cluster->password_file)
		return KM_ERR_OK;

	sanitize(cluster->password_file, strlen(cluster->password_file), name,
		 sizeof(name), 200);
	fd = open(cluster->password_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return km_seterr(errstr, errstr_size, KM_ERR_PLAN,
				 "cannot read password file '%s' for the %s "
				 "cluster: %s (write the password into it, or "
				 "set password_env in '%s')",
				 name, role, strerror(errno), role);
	buf = km_malloc(size);
	for (;;) {
		r = read(fd, buf + n, size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = km_seterr(errstr, errstr_size, KM_ERR_PLAN,
					"cannot read password file '%s' for "
					"the %s cluster: %s",
					name, role, strerror(errno));
			goto done;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == size) {
			err = km_seterr(errstr, errstr_size, KM_ERR_PLAN,
					"password file '%s' for the %s cluster "
					"is larger than %u KiB: is it the "
					"right file?",
					name, role, MAX_PASSWORD_FILE >> 10);
			goto done;
		}
	}
	if (memchr(buf, '\0', n)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_PLAN,
				"password file '%s' for the %s cluster "
				"contains a NUL byte: is it the right file?",
				name, role);
		goto done;
	}
	n = strip_newlines(buf, n);
	if (!n) {
		err = km_seterr(errstr, errstr_size, KM_ERR_PLAN,
				"password file '%s' for the %s cluster is "
				"empty: write the password into it",
				name, role);
		goto done;
	}
	*passwordp = km_strndup(buf, n);
done:
	wipe(buf, size);
	free(buf);
	close(fd);
	return err;
}

/* --------------------------------------------------------------------- */
/* Names                                                                 */

static const char *enum_name(const enumval_t *ev, int value)
{
	for (; ev->name; ev++)
		if (ev->value == value)
			return ev->name;
	return "unknown";
}

const char *km_plan_secproto_str(km_plan_secproto_t proto)
{
	return enum_name(secproto_vals, (int)proto);
}

const char *km_plan_isolation_str(km_plan_isolation_t isolation)
{
	return isolation == KM_PLAN_ISOLATION_UNDECLARED ? "undeclared"
							 : enum_name(isolation_vals, (int)isolation);
}

km_plan_isolation_t km_plan_group_isolation(const km_plan_t *plan, const char *group)
{
	km_plan_isolation_t iso = KM_PLAN_ISOLATION_UNDECLARED;

	for (size_t i = 0; i < plan->consumers_cnt; i++) {
		const km_plan_consumer_t *c = &plan->consumers[i];
		if (!c->group || strcmp(c->group, group))
			continue;
		if (c->isolation_level == KM_PLAN_ISOLATION_READ_UNCOMMITTED)
			return KM_PLAN_ISOLATION_READ_UNCOMMITTED;
		if (c->isolation_level == KM_PLAN_ISOLATION_READ_COMMITTED)
			iso = KM_PLAN_ISOLATION_READ_COMMITTED;
	}
	return iso;
}

const char *km_plan_ordering_str(km_plan_ordering_t ordering)
{
	return enum_name(ordering_vals, (int)ordering);
}

const char *km_plan_duplicates_str(km_plan_duplicates_t duplicates)
{
	return enum_name(duplicates_vals, (int)duplicates);
}

const char *km_plan_replay_str(km_plan_replay_t replay)
{
	return enum_name(replay_vals, (int)replay);
}

const char *km_plan_naming_mode_str(km_plan_naming_mode_t mode)
{
	return enum_name(naming_vals, (int)mode);
}

const char *km_plan_restart_str(km_plan_restart_t restart)
{
	return enum_name(restart_vals, (int)restart);
}

const char *km_plan_super_fence_str(km_plan_super_fence_t f)
{
	return f == KM_PLAN_SUPER_FENCE_UNDECLARED ? "undeclared"
						   : enum_name(super_fence_vals, (int)f);
}

const char *km_plan_fence_str(km_plan_fence_t fence)
{
	return fence == KM_PLAN_FENCE_UNDECLARED ? "undeclared"
						 : enum_name(fence_vals, (int)fence);
}

const char *km_plan_schema_ids_str(km_plan_schema_ids_t ids)
{
	return ids == KM_PLAN_SCHEMA_IDS_UNDECLARED
		       ? "undeclared"
		       : enum_name(schema_ids_vals, (int)ids);
}

const km_plan_wave_t *km_plan_wave(const km_plan_t *plan, const char *name)
{
	for (size_t i = 0; i < plan->cutover.waves_cnt; i++)
		if (!strcmp(plan->cutover.waves[i].name, name))
			return &plan->cutover.waves[i];
	return NULL;
}

static bool wave_names(const km_plan_wave_t *w, const char *topic)
{
	for (size_t i = 0; i < w->topics_cnt; i++)
		if (!strcmp(w->topics[i].name, topic))
			return true;
	return false;
}

bool km_plan_wave_has_topic(const km_plan_t *plan, const km_plan_wave_t *w,
			    const char *topic)
{
	if (!km_plan_topic_in_scope(plan, topic))
		return false;
	if (wave_names(w, topic))
		return true;
	if (!w->all)
		return false;
	for (const km_plan_wave_t *e = plan->cutover.waves; e < w; e++)
		if (wave_names(e, topic))
			return false;
	return true;
}

const char *km_plan_tri_str(km_plan_tri_t tri)
{
	return tri == KM_PLAN_YES ? "true"
	       : tri == KM_PLAN_NO ? "false"
				   : "unset";
}

const char *km_plan_group_restart_str(const km_plan_group_t *group, char *buf,
				      size_t size)
{
	char ts[40];

	if (group->restart == KM_PLAN_RESTART_TIMESTAMP) {
		km_iso8601(group->restart_ts_ms, ts, sizeof(ts));
		snprintf(buf, size, "timestamp:%s", ts);
	} else {
		snprintf(buf, size, "%s", km_plan_restart_str(group->restart));
	}
	return buf;
}

const char *km_plan_op_str(km_plan_op_t op)
{
	return enum_name(op_vals, (int)op);
}

bool km_plan_op_holds(km_plan_op_t op, double v, double threshold)
{
	if (isnan(v))
		return false;
	switch (op) {
	case KM_PLAN_OP_GT: return v > threshold;
	case KM_PLAN_OP_GE: return v >= threshold;
	case KM_PLAN_OP_LT: return v < threshold;
	case KM_PLAN_OP_LE: return v <= threshold;
	case KM_PLAN_OP_EQ: return v == threshold;
	case KM_PLAN_OP_NE: return v != threshold;
	}
	return false;
}
