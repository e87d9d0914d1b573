/*
 * schemas.c -- schema registries: inventory, migration with IDs kept (or a
 * declared rewrite), the proof, and the per-record ID rewrite.
 * See schemas.h and docs/internals/schemas.md.
 */
#include "schemas.h"

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "util.h"

struct km_sr_s {
	char *url;  /* the ccompat base, no trailing '/' */
	char *base; /* scheme://host:port (+ prefix) before /apis/ccompat/..., or NULL */
	const char *role;
	CURL *curl;
	bool apicurio;
};

/* ------------------------------------------------------------------ */
/* HTTP                                                                 */

typedef struct body_s {
	km_sb_t sb;
	bool too_big;
} body_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	body_t *b = arg;

	if (b->sb.len + size * n > KM_SCHEMAS_MAX_BODY) {
		b->too_big = true;
		return 0;
	}
	km_sb_add(&b->sb, p, size * n);
	return size * n;
}

/* One request.  path is appended to the ccompat URL, or to the base when
 * `raw` (Apicurio's own API).  Any HTTP status is a success here; callers
 * decide what a status means.  The reply body is in *out (owned). */
static km_err_t http(km_sr_t *sr, const char *method, bool raw, const char *path,
		     const char *ctype, const void *req, size_t req_len, long *statusp,
		     char **out, char *errstr, size_t errstr_size)
{
	struct curl_slist *hdrs = NULL;
	body_t b = {KM_SB_INIT, false};
	char *url = km_asprintf("%s%s", raw ? sr->base : sr->url, path);
	char cerr[CURL_ERROR_SIZE] = "";
	km_err_t err = KM_ERR_OK;
	CURLcode cc;

	*out = NULL;
	curl_easy_reset(sr->curl);
	curl_easy_setopt(sr->curl, CURLOPT_URL, url);
	curl_easy_setopt(sr->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(sr->curl, CURLOPT_TIMEOUT_MS, (long)KM_SCHEMAS_TIMEOUT_MS);
	curl_easy_setopt(sr->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)KM_SCHEMAS_TIMEOUT_MS);
	curl_easy_setopt(sr->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(sr->curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(sr->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(sr->curl, CURLOPT_WRITEDATA, &b);
	hdrs = curl_slist_append(hdrs, "Accept: application/vnd.schemaregistry.v1+json, "
				       "application/json");
	if (req) {
		char *h = km_asprintf("Content-Type: %s", ctype);
		hdrs = curl_slist_append(hdrs, h);
		free(h);
		curl_easy_setopt(sr->curl, CURLOPT_POSTFIELDS, req);
		curl_easy_setopt(sr->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req_len);
	}
	curl_easy_setopt(sr->curl, CURLOPT_HTTPHEADER, hdrs);
	cc = curl_easy_perform(sr->curl);
	if (cc != CURLE_OK) {
		if (b.too_big)
			err = KM_ERR_UNSUPPORTED;
		else if (cc == CURLE_OPERATION_TIMEDOUT)
			err = KM_ERR_TIMEOUT;
		else
			err = KM_ERR_UNREACHABLE;
		snprintf(errstr, errstr_size,
			 "cannot %s %s schema registry '%s': %s; check %s.schema_registry_url "
			 "in the plan and that the registry runs",
			 method, sr->role, url,
			 b.too_big ? "reply larger than the limit" : (cerr[0] ? cerr : curl_easy_strerror(cc)),
			 sr->role);
		goto done;
	}
	curl_easy_getinfo(sr->curl, CURLINFO_RESPONSE_CODE, statusp);
	*out = km_sb_detach(&b.sb);
done:
	curl_slist_free_all(hdrs);
	km_sb_free(&b.sb);
	free(url);
	return err;
}

/* The one line for an unexpected status: the URL, the status and the
 * registry's own message. */
static km_err_t status_err(km_sr_t *sr, const char *method, const char *path, long status,
			   const char *body, char *errstr, size_t errstr_size)
{
	json_t *j = body ? json_loads(body, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(j, "message"));

	if (!msg)
		msg = json_string_value(json_object_get(j, "detail"));
	snprintf(errstr, errstr_size, "%s %s schema registry '%s%s' answered HTTP %ld: %.300s",
		 method, sr->role, sr->url, path, status, msg ? msg : (body ? body : ""));
	json_decref(j);
	return status == 401 || status == 403 ? KM_ERR_AUTHZ : KM_ERR_UNSUPPORTED;
}

/* A JSON request/answer.  *jp is NULL when the status is 404 (the caller
 * asked for something that may not exist). */
static km_err_t call_json(km_sr_t *sr, const char *method, const char *path, const json_t *req,
			  long *statusp, json_t **jp, char *errstr, size_t errstr_size)
{
	char *reqs = req ? json_dumps(req, JSON_COMPACT) : NULL;
	char *out = NULL;
	long status = 0;
	km_err_t err;

	*jp = NULL;
	if ((err = http(sr, method, false, path, "application/vnd.schemaregistry.v1+json", reqs,
			reqs ? strlen(reqs) : 0, &status, &out, errstr, errstr_size)))
		goto done;
	if (statusp)
		*statusp = status;
	if (status == 404 && statusp)
		goto done;
	if (status < 200 || status > 299) {
		err = status_err(sr, method, path, status, out, errstr, errstr_size);
		goto done;
	}
	if (!(*jp = json_loads(out, JSON_DECODE_ANY, NULL))) {
		snprintf(errstr, errstr_size, "%s %s schema registry '%s%s': the answer is not JSON",
			 method, sr->role, sr->url, path);
		err = KM_ERR_UNSUPPORTED;
	}
done:
	free(reqs);
	free(out);
	return err;
}

static char *esc(km_sr_t *sr, const char *s)
{
	char *e = curl_easy_escape(sr->curl, s, 0);
	char *r = km_strdup(e);
	curl_free(e);
	return r;
}

km_err_t km_sr_open(const char *url, const char *role, km_sr_t **srp, char *errstr,
		    size_t errstr_size)
{
	km_sr_t *sr = km_calloc(1, sizeof(*sr));
	char *out = NULL;
	const char *p;
	long status = 0;
	km_err_t err;
	json_t *j = NULL;

	*srp = NULL;
	sr->role = role;
	sr->url = km_strdup(url);
	while (*sr->url && sr->url[strlen(sr->url) - 1] == '/')
		sr->url[strlen(sr->url) - 1] = '\0';
	if ((p = strstr(sr->url, "/apis/ccompat/")))
		sr->base = km_strndup(sr->url, (size_t)(p - sr->url));
	if (!(sr->curl = curl_easy_init()))
		KM_BUG("curl_easy_init failed");
	if ((err = call_json(sr, "GET", "/subjects", NULL, NULL, &j, errstr, errstr_size)))
		goto done;
	if (!json_is_array(j)) {
		snprintf(errstr, errstr_size,
			 "%s schema registry '%s/subjects' did not answer a list of subjects: "
			 "set %s.schema_registry_url to the Confluent-compatible base URL "
			 "(for Apicurio: http://HOST:PORT/apis/ccompat/v7)",
			 role, sr->url, role);
		err = KM_ERR_UNSUPPORTED;
		goto done;
	}
	/* Apicurio's own API beside ccompat: the admin import that keeps IDs. */
	if (sr->base && !http(sr, "GET", true, "/apis/registry/v3/system/info", NULL, NULL, 0,
			      &status, &out, errstr, errstr_size) &&
	    status == 200 && out && strstr(out, "Apicurio"))
		sr->apicurio = true;
	errstr[0] = '\0';
	*srp = sr;
	sr = NULL;
done:
	free(out);
	json_decref(j);
	km_sr_close(sr);
	return err;
}

void km_sr_close(km_sr_t *sr)
{
	if (!sr)
		return;
	if (sr->curl)
		curl_easy_cleanup(sr->curl);
	free(sr->url);
	free(sr->base);
	free(sr);
}

/* ------------------------------------------------------------------ */
/* Inventory                                                            */

static const char *type_of(const json_t *v)
{
	const char *t = json_string_value(json_object_get(v, "schemaType"));
	/* Confluent leaves the type out for Avro. */
	return t ? t : "AVRO";
}

/* The effective compatibility of subject (NULL: global). */
static km_err_t get_compat(km_sr_t *sr, const char *subject, const char *global, char **levelp,
			   char *errstr, size_t errstr_size)
{
	char *path, *e = subject ? esc(sr, subject) : NULL;
	json_t *j = NULL;
	long status = 0;
	km_err_t err;
	const char *lvl;

	*levelp = NULL;
	path = subject ? km_asprintf("/config/%s?defaultToGlobal=true", e) : km_strdup("/config");
	if ((err = call_json(sr, "GET", path, NULL, &status, &j, errstr, errstr_size)))
		goto done;
	lvl = json_string_value(json_object_get(j, "compatibilityLevel"));
	if (!lvl)
		lvl = json_string_value(json_object_get(j, "compatibility"));
	/* No level of its own: the global one applies (Confluent answers 404
	 * for a subject without a config of its own). */
	if (!lvl)
		lvl = subject ? global : "BACKWARD";
	*levelp = km_strdup(lvl);
done:
	free(e);
	free(path);
	json_decref(j);
	return err;
}

km_err_t km_schemas_inventory(km_sr_t *sr, json_t **invp, char *errstr, size_t errstr_size)
{
	json_t *inv = json_object(), *subjects = NULL, *j = NULL, *vers = NULL, *ids = json_array();
	json_t *out = json_array(), *v;
	char *global = NULL, *path = NULL, *e = NULL, *lvl = NULL;
	km_err_t err;
	size_t i, k;

	*invp = NULL;
	json_object_set_new(inv, "url", json_string(sr->url));
	json_object_set_new(inv, "kind", json_string(sr->apicurio ? "apicurio" : "confluent-compatible"));
	if ((err = call_json(sr, "GET", "/mode", NULL, NULL, &j, errstr, errstr_size)))
		goto done;
	json_object_set(inv, "mode", json_object_get(j, "mode") ? json_object_get(j, "mode") : json_null());
	json_decref(j);
	j = NULL;
	if ((err = get_compat(sr, NULL, NULL, &global, errstr, errstr_size)))
		goto done;
	json_object_set_new(inv, "compatibility", json_string(global));
	if ((err = call_json(sr, "GET", "/subjects", NULL, NULL, &subjects, errstr, errstr_size)))
		goto done;
	for (i = 0; i < json_array_size(subjects); i++) {
		const char *s = json_string_value(json_array_get(subjects, i));
		json_t *subj = json_object(), *versions = json_array();
		if (!s)
			continue;
		free(e);
		e = esc(sr, s);
		json_object_set_new(subj, "subject", json_string(s));
		json_array_append_new(out, subj);
		free(lvl);
		if ((err = get_compat(sr, s, global, &lvl, errstr, errstr_size)))
			goto done;
		json_object_set_new(subj, "compatibility", json_string(lvl));
		json_object_set_new(subj, "versions", versions);
		free(path);
		path = km_asprintf("/subjects/%s/versions", e);
		json_decref(vers);
		if ((err = call_json(sr, "GET", path, NULL, NULL, &vers, errstr, errstr_size)))
			goto done;
		json_array_foreach(vers, k, v) {
			json_t *row = json_object(), *refs;
			free(path);
			path = km_asprintf("/subjects/%s/versions/%lld", e,
					   (long long)json_integer_value(v));
			json_decref(j);
			if ((err = call_json(sr, "GET", path, NULL, NULL, &j, errstr, errstr_size))) {
				json_decref(row);
				goto done;
			}
			json_object_set(row, "version", json_object_get(j, "version"));
			json_object_set(row, "id", json_object_get(j, "id"));
			json_object_set_new(row, "schemaType", json_string(type_of(j)));
			json_object_set(row, "schema", json_object_get(j, "schema"));
			refs = json_object_get(j, "references");
			json_object_set_new(row, "references", refs ? json_copy(refs) : json_array());
			json_array_append_new(versions, row);
			json_array_append(ids, json_object_get(j, "id"));
		}
	}
	/* Sorted, unique ids. */
	{
		size_t n = json_array_size(ids);
		json_int_t *a = km_calloc(n + 1, sizeof(*a));
		json_t *u = json_array();
		for (i = 0; i < n; i++)
			a[i] = json_integer_value(json_array_get(ids, i));
		for (i = 1; i < n; i++)
			for (k = i; k > 0 && a[k - 1] > a[k]; k--) {
				json_int_t t = a[k];
				a[k] = a[k - 1];
				a[k - 1] = t;
			}
		for (i = 0; i < n; i++)
			if (!i || a[i] != a[i - 1])
				json_array_append_new(u, json_integer(a[i]));
		free(a);
		json_object_set_new(inv, "ids", u);
	}
	json_object_set(inv, "subjects", out);
	*invp = inv;
	inv = NULL;
done:
	json_decref(inv);
	json_decref(subjects);
	json_decref(vers);
	json_decref(j);
	json_decref(ids);
	json_decref(out);
	free(global);
	free(path);
	free(e);
	free(lvl);
	return err;
}

/* ------------------------------------------------------------------ */
/* Canonical form                                                       */

/* The id of subject/version in an inventory, or -1. */
static json_int_t id_of(const json_t *inv, const char *subject, json_int_t version)
{
	json_t *s, *v;
	size_t i, k;

	json_array_foreach(json_object_get(inv, "subjects"), i, s) {
		if (strcmp(json_string_value(json_object_get(s, "subject")), subject))
			continue;
		json_array_foreach(json_object_get(s, "versions"), k, v)
			if (json_integer_value(json_object_get(v, "version")) == version)
				return json_integer_value(json_object_get(v, "id"));
	}
	return -1;
}

/* What "the same schema" means across registries: the type, the text
 * normalised (JSON text re-serialised with sorted keys -- Avro and JSON
 * Schema are JSON; Protobuf with whitespace runs collapsed) and the
 * references as (name, subject, ID of the referenced version), IDs on the
 * source side mapped when an id map is given: a reference's version number
 * may differ under rewrite, its schema may not. */
static char *canon(const char *type, const char *schema, const json_t *refs, const json_t *inv,
		   const json_t *id_map)
{
	km_sb_t sb = KM_SB_INIT;
	json_t *r;
	size_t i;

	km_sb_printf(&sb, "%s\n", type);
	if (strcmp(type, "PROTOBUF")) {
		json_t *j = json_loads(schema, JSON_DECODE_ANY, NULL);
		char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
		km_sb_puts(&sb, s ? s : schema);
		free(s);
		json_decref(j);
	} else {
		bool sp = false;
		const char *p = schema;
		while (isspace((unsigned char)*p))
			p++;
		for (; *p; p++) {
			if (isspace((unsigned char)*p)) {
				sp = true;
				continue;
			}
			if (sp)
				km_sb_add(&sb, " ", 1);
			sp = false;
			km_sb_add(&sb, p, 1);
		}
	}
	json_array_foreach(refs, i, r) {
		const char *subj = json_string_value(json_object_get(r, "subject"));
		json_int_t id = subj ? id_of(inv, subj, json_integer_value(json_object_get(r, "version"))) : -1;
		if (id_map && id >= 0) {
			char k[32];
			snprintf(k, sizeof(k), "%lld", (long long)id);
			id = json_object_get(id_map, k) ? json_integer_value(json_object_get(id_map, k)) : -1;
		}
		km_sb_printf(&sb, "\nref %s %s id=%lld", json_string_value(json_object_get(r, "name")),
			     subj ? subj : "?", (long long)id);
	}
	return km_sb_detach(&sb);
}

static char *canon_row(const json_t *row, const json_t *inv, const json_t *id_map)
{
	return canon(type_of(row), json_string_value(json_object_get(row, "schema")),
		     json_object_get(row, "references"), inv, id_map);
}

/* Source id -> its row (first subject version carrying it). */
static json_t *row_by_id(const json_t *inv, json_int_t id)
{
	json_t *s, *v;
	size_t i, k;

	json_array_foreach(json_object_get(inv, "subjects"), i, s)
		json_array_foreach(json_object_get(s, "versions"), k, v)
			if (json_integer_value(json_object_get(v, "id")) == id)
				return v;
	return NULL;
}

static json_t *subject_of(const json_t *inv, const char *name)
{
	json_t *s;
	size_t i;

	json_array_foreach(json_object_get(inv, "subjects"), i, s)
		if (!strcmp(json_string_value(json_object_get(s, "subject")), name))
			return s;
	return NULL;
}

/* GET /schemas/ids/{id} on sr, canonicalised against inv; NULL when 404. */
static km_err_t canon_of_id(km_sr_t *sr, const json_t *inv, json_int_t id, char **cp,
			    char *errstr, size_t errstr_size)
{
	char path[64];
	json_t *j = NULL;
	long status = 0;
	km_err_t err;

	*cp = NULL;
	snprintf(path, sizeof(path), "/schemas/ids/%lld", (long long)id);
	if ((err = call_json(sr, "GET", path, NULL, &status, &j, errstr, errstr_size)))
		return err;
	if (j)
		*cp = canon_row(j, inv, NULL);
	json_decref(j);
	return KM_ERR_OK;
}

/* ------------------------------------------------------------------ */
/* Verify                                                               */

static void mismatch(json_t *list, const char *what, json_int_t id, const char *detail)
{
	json_t *m = json_object();
	json_object_set_new(m, "what", json_string(what));
	if (id >= 0)
		json_object_set_new(m, "id", json_integer(id));
	json_object_set_new(m, "detail", json_string(detail));
	json_array_append_new(list, m);
}

static km_err_t verify_with(km_sr_t *src, km_sr_t *dst, const json_t *sinv, const json_t *dinv,
			    const json_t *id_map, const json_t *used, json_t **proofp, char *errstr,
			    size_t errstr_size)
{
	json_t *proof = json_object(), *mism = json_array(), *ids = json_array(), *v, *s;
	char *a = NULL, *b = NULL, *lvl = NULL;
	size_t i, checked = 0;
	km_err_t err = KM_ERR_OK;

	(void)src;
	json_array_extend(ids, json_object_get(sinv, "ids"));
	/* IDs seen in records: a source ID is proven once; one the source does
	 * not know is a mismatch below. */
	json_array_foreach(used, i, v)
		if (!row_by_id(sinv, json_integer_value(v)))
			json_array_append(ids, v);
	json_array_foreach(ids, i, v) {
		json_int_t sid = json_integer_value(v), did = sid;
		const json_t *row = row_by_id(sinv, sid);
		char k[32], msg[512];
		if (!row) {
			snprintf(msg, sizeof(msg),
				 "records use schema ID %lld, which the source registry does not know",
				 (long long)sid);
			mismatch(mism, "id", sid, msg);
			continue;
		}
		if (id_map) {
			snprintf(k, sizeof(k), "%lld", (long long)sid);
			if (!json_object_get(id_map, k)) {
				snprintf(msg, sizeof(msg), "source schema ID %lld has no target ID in the map",
					 (long long)sid);
				mismatch(mism, "id", sid, msg);
				continue;
			}
			did = json_integer_value(json_object_get(id_map, k));
		}
		free(a);
		free(b);
		b = NULL;
		a = canon_row(row, sinv, id_map);
		if ((err = canon_of_id(dst, dinv, did, &b, errstr, errstr_size)))
			goto done;
		checked++;
		if (!b) {
			snprintf(msg, sizeof(msg), "schema ID %lld does not exist on the target registry",
				 (long long)did);
			mismatch(mism, "id", sid, msg);
		} else if (strcmp(a, b)) {
			snprintf(msg, sizeof(msg),
				 "schema ID %lld on the target is not the source's schema ID %lld "
				 "(type, text or references differ)",
				 (long long)did, (long long)sid);
			mismatch(mism, "id", sid, msg);
		}
	}
	/* Compatibility levels: registries' defaults differ, so equal means
	 * equal effective levels, subject by subject. */
	json_array_foreach(json_object_get(sinv, "subjects"), i, s) {
		const char *name = json_string_value(json_object_get(s, "subject"));
		const json_t *ds = subject_of(dinv, name);
		const char *sl = json_string_value(json_object_get(s, "compatibility"));
		const char *dl = ds ? json_string_value(json_object_get(ds, "compatibility")) : NULL;
		char msg[512];
		if (!ds) {
			snprintf(msg, sizeof(msg), "subject '%s' is missing on the target", name);
			mismatch(mism, "subject", -1, msg);
		} else if (!sl || !dl || strcmp(sl, dl)) {
			snprintf(msg, sizeof(msg), "subject '%s' compatibility is %s on the source, %s on "
						   "the target", name, sl ? sl : "unknown", dl ? dl : "unknown");
			mismatch(mism, "compatibility", -1, msg);
		}
	}
	json_object_set_new(proof, "checked_ids", json_integer((json_int_t)checked));
	json_object_set_new(proof, "record_ids", used ? json_copy((json_t *)used) : json_array());
	json_object_set_new(proof, "id_map_applied", json_boolean(id_map != NULL));
	json_object_set(proof, "mismatches", mism);
	json_object_set_new(proof, "verdict", json_string(json_array_size(mism) ? "NO-GO" : "GO"));
	*proofp = proof;
	proof = NULL;
done:
	json_decref(proof);
	json_decref(mism);
	json_decref(ids);
	free(a);
	free(b);
	free(lvl);
	return err;
}

km_err_t km_schemas_verify(km_sr_t *src, km_sr_t *dst, const json_t *id_map, const json_t *used,
			   json_t **proofp, char *errstr, size_t errstr_size)
{
	json_t *sinv = NULL, *dinv = NULL;
	km_err_t err;

	*proofp = NULL;
	if (!(err = km_schemas_inventory(src, &sinv, errstr, errstr_size)) &&
	    !(err = km_schemas_inventory(dst, &dinv, errstr, errstr_size)))
		err = verify_with(src, dst, sinv, dinv, id_map, used, proofp, errstr, errstr_size);
	json_decref(sinv);
	json_decref(dinv);
	return err;
}

/* ------------------------------------------------------------------ */
/* The Apicurio admin import: a ZIP in Apicurio's export layout (3.0)   */

typedef struct zip_s {
	km_sb_t data;
	km_sb_t cdir;
	unsigned n;
} zip_t;

static void put16(km_sb_t *sb, unsigned v)
{
	unsigned char b[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
	km_sb_add(sb, (const char *)b, 2);
}

static void put32(km_sb_t *sb, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
			      (unsigned char)(v >> 24)};
	km_sb_add(sb, (const char *)b, 4);
}

/* A stored (uncompressed) entry: the registry reads it like any other. */
static void zip_add(zip_t *z, const char *name, const char *body)
{
	size_t nl = strlen(name), bl = strlen(body);
	uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)body, (uInt)bl);
	uint32_t off = (uint32_t)z->data.len;

	put32(&z->data, 0x04034b50);
	put16(&z->data, 20);
	put16(&z->data, 0x0800); /* UTF-8 names */
	put16(&z->data, 0);
	put16(&z->data, 0);
	put16(&z->data, 0x21);
	put32(&z->data, crc);
	put32(&z->data, (uint32_t)bl);
	put32(&z->data, (uint32_t)bl);
	put16(&z->data, (unsigned)nl);
	put16(&z->data, 0);
	km_sb_add(&z->data, name, nl);
	km_sb_add(&z->data, body, bl);

	put32(&z->cdir, 0x02014b50);
	put16(&z->cdir, 20);
	put16(&z->cdir, 20);
	put16(&z->cdir, 0x0800);
	put16(&z->cdir, 0);
	put16(&z->cdir, 0);
	put16(&z->cdir, 0x21);
	put32(&z->cdir, crc);
	put32(&z->cdir, (uint32_t)bl);
	put32(&z->cdir, (uint32_t)bl);
	put16(&z->cdir, (unsigned)nl);
	put16(&z->cdir, 0);
	put16(&z->cdir, 0);
	put16(&z->cdir, 0);
	put16(&z->cdir, 0);
	put32(&z->cdir, 0);
	put32(&z->cdir, off);
	km_sb_add(&z->cdir, name, nl);
	z->n++;
}

static void zip_add_json(zip_t *z, const char *name, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	zip_add(z, name, s);
	free(s);
	json_decref(j);
}

static void zip_finish(zip_t *z)
{
	uint32_t off = (uint32_t)z->data.len;

	km_sb_add(&z->data, z->cdir.buf ? z->cdir.buf : "", z->cdir.len);
	put32(&z->data, 0x06054b50);
	put16(&z->data, 0);
	put16(&z->data, 0);
	put16(&z->data, z->n);
	put16(&z->data, z->n);
	put32(&z->data, (uint32_t)z->cdir.len);
	put32(&z->data, off);
	put16(&z->data, 0);
}

static void sha256_hex(const char *s, char hex[65])
{
	unsigned char md[32];
	unsigned int n = 0;

	EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* The largest globalId on an Apicurio registry (0 when it has none):
 * imported versions take the ones after it, so they never collide. */
static km_err_t max_global_id(km_sr_t *sr, json_int_t *maxp, char *errstr, size_t errstr_size)
{
	char *out = NULL;
	long status = 0;
	json_t *j = NULL;
	km_err_t err;

	*maxp = 0;
	if ((err = http(sr, "GET", true, "/apis/registry/v3/search/versions?limit=1&orderby=globalId&order=desc",
			NULL, NULL, 0, &status, &out, errstr, errstr_size)))
		return err;
	if (status != 200 || !(j = json_loads(out, 0, NULL))) {
		err = status_err(sr, "GET", " (Apicurio search/versions)", status, out, errstr, errstr_size);
		goto done;
	}
	*maxp = json_integer_value(json_object_get(json_array_get(json_object_get(j, "versions"), 0),
						   "globalId"));
done:
	free(out);
	json_decref(j);
	return err;
}

/* Builds the ZIP of the source subjects named in `todo` (an array of
 * subject objects of the source inventory) and POSTs it to the target's
 * admin import: content id = the Confluent schema id, versions as on the
 * source.  The import is one request: it applies or it fails. */
static km_err_t apicurio_import(km_sr_t *dst, const json_t *todo, char *errstr, size_t errstr_size)
{
	zip_t z = {KM_SB_INIT, KM_SB_INIT, 0};
	json_t *seen = json_object(), *s, *v, *r;
	json_int_t gid = 0;
	char *out = NULL, name[512], hex[65];
	long status = 0;
	size_t i, k, m;
	km_err_t err;

	if ((err = max_global_id(dst, &gid, errstr, errstr_size)))
		goto done;
	zip_add_json(&z, "manifest-kmigrate.Manifest.json",
		     json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s}", "systemVersion", "3", "systemName",
			       "kmigrate", "systemDescription", "kmigrate schema migration",
			       "exportVersion", "3.0", "exportedOn", 0, "exportedBy", "kmigrate",
			       "dbVersion", "109"));
	json_array_foreach(todo, i, s) {
		const char *subj = json_string_value(json_object_get(s, "subject"));
		json_t *branch = json_array();
		json_array_foreach(json_object_get(s, "versions"), k, v) {
			json_int_t id = json_integer_value(json_object_get(v, "id"));
			json_int_t ver = json_integer_value(json_object_get(v, "version"));
			const char *type = type_of(v), *text = json_string_value(json_object_get(v, "schema"));
			char key[32], vs[32];
			snprintf(key, sizeof(key), "%lld", (long long)id);
			snprintf(vs, sizeof(vs), "%lld", (long long)ver);
			if (!k) {
				snprintf(name, sizeof(name), "groups/default/artifacts/%s/MetaData.Artifact.json", subj);
				zip_add_json(&z, name,
					     json_pack("{s:n,s:s,s:s,s:n,s:n,s:n,s:s,s:i,s:s,s:i}", "groupId",
						       "artifactId", subj, "artifactType", type, "name",
						       "description", "labels", "owner", "", "createdOn", 0,
						       "modifiedBy", "", "modifiedOn", 0));
			}
			if (!json_object_get(seen, key)) {
				/* One content per schema id; a schema shared by two
				 * subjects is one id on the source too. */
				json_t *refs = json_array(), *c;
				char *sref = NULL;
				json_array_foreach(json_object_get(v, "references"), m, r) {
					char rv[32];
					snprintf(rv, sizeof(rv), "%lld",
						 (long long)json_integer_value(json_object_get(r, "version")));
					json_array_append_new(refs, json_pack("{s:n,s:O,s:s,s:O}", "groupId", "artifactId",
									      json_object_get(r, "subject"), "version", rv,
									      "name", json_object_get(r, "name")));
				}
				if (json_array_size(refs))
					sref = json_dumps(refs, JSON_COMPACT);
				json_decref(refs);
				sha256_hex(text, hex);
				c = json_pack("{s:I,s:s,s:s,s:s,s:s}", "contentId", id, "canonicalHash", hex,
					      "contentHash", hex, "artifactType", type, "contentType",
					      strcmp(type, "PROTOBUF") ? "application/json" : "application/x-protobuf");
				json_object_set_new(c, "serializedReferences", sref ? json_string(sref) : json_null());
				free(sref);
				snprintf(name, sizeof(name), "content/%s-%s.Content.json", hex, key);
				zip_add_json(&z, name, c);
				snprintf(name, sizeof(name), "content/%s-%s.Content.data", hex, key);
				zip_add(&z, name, text);
				json_object_set_new(seen, key, json_true());
			}
			snprintf(name, sizeof(name), "groups/default/artifacts/%s/versions/%s.ArtifactVersion.json", subj, vs);
			zip_add_json(&z, name,
				     json_pack("{s:I,s:n,s:s,s:s,s:I,s:s,s:n,s:n,s:s,s:n,s:i,s:s,s:i,s:I}",
					       "globalId", ++gid, "groupId", "artifactId", subj, "version", vs,
					       "versionOrder", ver, "state", "ENABLED", "name", "description",
					       "owner", "", "labels", "createdOn", 0, "modifiedBy", "",
					       "modifiedOn", 0, "contentId", id));
			json_array_append_new(branch, json_string(vs));
		}
		snprintf(name, sizeof(name), "groups/default/artifacts/%s/branches/latest.Branch.json", subj);
		zip_add_json(&z, name,
			     json_pack("{s:n,s:s,s:s,s:n,s:b,s:s,s:i,s:s,s:i,s:o}", "groupId", "artifactId",
				       subj, "branchId", "latest", "description", "systemDefined", 1, "owner",
				       "", "createdOn", 0, "modifiedBy", "", "modifiedOn", 0, "versions",
				       branch));
	}
	zip_finish(&z);
	if ((err = http(dst, "POST", true, "/apis/registry/v3/admin/import?requireEmptyRegistry=false",
			"application/zip", z.data.buf, z.data.len, &status, &out, errstr, errstr_size)))
		goto done;
	if (status < 200 || status > 299)
		err = status_err(dst, "POST", " (Apicurio admin import)", status, out, errstr, errstr_size);
done:
	free(out);
	json_decref(seen);
	km_sb_free(&z.data);
	km_sb_free(&z.cdir);
	return err;
}

/* Confluent's IMPORT mode: the subject in IMPORT, each version with its
 * explicit id and version, the subject back to READWRITE. */
static km_err_t import_mode(km_sr_t *dst, const json_t *todo, char *errstr, size_t errstr_size)
{
	json_t *s, *v, *j = NULL, *req;
	char *e = NULL, *path = NULL;
	size_t i, k;
	km_err_t err = KM_ERR_OK;

	json_array_foreach(todo, i, s) {
		free(e);
		e = esc(dst, json_string_value(json_object_get(s, "subject")));
		free(path);
		path = km_asprintf("/mode/%s", e);
		req = json_pack("{s:s}", "mode", "IMPORT");
		err = call_json(dst, "PUT", path, req, NULL, &j, errstr, errstr_size);
		json_decref(req);
		json_decref(j);
		j = NULL;
		if (err)
			goto done;
		json_array_foreach(json_object_get(s, "versions"), k, v) {
			char *vp = km_asprintf("/subjects/%s/versions", e);
			req = json_pack("{s:O,s:s,s:O,s:O,s:O}", "schema", json_object_get(v, "schema"),
					"schemaType", type_of(v), "references", json_object_get(v, "references"),
					"id", json_object_get(v, "id"), "version", json_object_get(v, "version"));
			err = call_json(dst, "POST", vp, req, NULL, &j, errstr, errstr_size);
			free(vp);
			json_decref(req);
			json_decref(j);
			j = NULL;
			if (err)
				goto done;
		}
		req = json_pack("{s:s}", "mode", "READWRITE");
		err = call_json(dst, "PUT", path, req, NULL, &j, errstr, errstr_size);
		json_decref(req);
		json_decref(j);
		j = NULL;
		if (err)
			goto done;
	}
done:
	free(e);
	free(path);
	return err;
}

static km_err_t put_compat(km_sr_t *dst, const char *subject, const char *level, char *errstr,
			   size_t errstr_size)
{
	char *e = subject ? esc(dst, subject) : NULL;
	char *path = subject ? km_asprintf("/config/%s", e) : km_strdup("/config");
	json_t *req = json_pack("{s:s}", "compatibility", level), *j = NULL;
	km_err_t err = call_json(dst, "PUT", path, req, NULL, &j, errstr, errstr_size);

	json_decref(req);
	json_decref(j);
	free(path);
	free(e);
	return err;
}

/* Rewrite: register every source version on the target (references
 * rewritten to the target's version of the referenced schema) and record
 * source id -> target id.  Versions are registered once all they reference
 * is registered. */
static km_err_t register_all(km_sr_t *dst, const json_t *sinv, json_t *id_map, json_t *vmap,
			     char *errstr, size_t errstr_size)
{
	json_t *s, *v, *r, *j = NULL;
	size_t i, k, m;
	bool progress = true, left = true;
	km_err_t err = KM_ERR_OK;

	while (left && progress) {
		progress = false;
		left = false;
		json_array_foreach(json_object_get(sinv, "subjects"), i, s) {
			const char *subj = json_string_value(json_object_get(s, "subject"));
			json_array_foreach(json_object_get(s, "versions"), k, v) {
				char vk[600], *e, *path;
				json_t *refs = json_array(), *req;
				bool ready = true;
				snprintf(vk, sizeof(vk), "%s\x1f%lld", subj,
					 (long long)json_integer_value(json_object_get(v, "version")));
				if (json_object_get(vmap, vk)) {
					json_decref(refs);
					continue;
				}
				json_array_foreach(json_object_get(v, "references"), m, r) {
					char rk[600];
					snprintf(rk, sizeof(rk), "%s\x1f%lld",
						 json_string_value(json_object_get(r, "subject")),
						 (long long)json_integer_value(json_object_get(r, "version")));
					if (!json_object_get(vmap, rk)) {
						ready = false;
						break;
					}
					json_array_append_new(refs, json_pack("{s:O,s:O,s:O}", "name",
									      json_object_get(r, "name"), "subject",
									      json_object_get(r, "subject"), "version",
									      json_object_get(vmap, rk)));
				}
				if (!ready) {
					json_decref(refs);
					left = true;
					continue;
				}
				e = esc(dst, subj);
				req = json_pack("{s:O,s:s,s:o}", "schema", json_object_get(v, "schema"),
						"schemaType", type_of(v), "references", refs);
				/* Register (idempotent: an identical schema gets its id
				 * back), then look it up under the subject for the
				 * version it has there. */
				path = km_asprintf("/subjects/%s/versions", e);
				err = call_json(dst, "POST", path, req, NULL, &j, errstr, errstr_size);
				free(path);
				if (!err) {
					char key[32];
					snprintf(key, sizeof(key), "%lld",
						 (long long)json_integer_value(json_object_get(v, "id")));
					json_object_set(id_map, key, json_object_get(j, "id"));
					json_decref(j);
					j = NULL;
					path = km_asprintf("/subjects/%s", e);
					err = call_json(dst, "POST", path, req, NULL, &j, errstr, errstr_size);
					free(path);
					if (!err)
						json_object_set(vmap, vk, json_object_get(j, "version"));
				}
				json_decref(j);
				j = NULL;
				json_decref(req);
				free(e);
				if (err)
					return err;
				progress = true;
			}
		}
	}
	if (left) {
		snprintf(errstr, errstr_size, "source schema references form a cycle or name a missing "
					      "subject version: check the source registry's references");
		return KM_ERR_CONFLICT;
	}
	return KM_ERR_OK;
}

km_err_t km_schemas_migrate(const km_plan_t *plan, km_sr_t *src, km_sr_t *dst, bool dry_run,
			    const json_t *used, json_t **resultp, char *errstr, size_t errstr_size)
{
	json_t *res = json_object(), *sinv = NULL, *dinv = NULL, *coll = json_array();
	json_t *todo = json_array(), *done_l = json_array(), *lv = json_array(), *s, *v;
	json_t *id_map = NULL, *vmap = NULL, *proof = NULL;
	km_plan_schema_ids_t ids = plan->schemas.ids;
	const char *method;
	char *a = NULL, *b = NULL;
	size_t i, k;
	km_err_t err;

	*resultp = NULL;
	if ((err = km_schemas_inventory(src, &sinv, errstr, errstr_size)) ||
	    (err = km_schemas_inventory(dst, &dinv, errstr, errstr_size)))
		goto done;
	json_object_set_new(res, "ids", json_string(km_plan_schema_ids_str(ids)));
	json_object_set_new(res, "dry_run", json_boolean(dry_run));
	json_object_set(res, "source", json_object_get(sinv, "url"));
	json_object_set(res, "target", json_object_get(dinv, "url"));

	/* Collisions: a source id the target holds with another schema, a
	 * subject version the target holds with another id. */
	json_array_foreach(json_object_get(sinv, "subjects"), i, s) {
		const char *subj = json_string_value(json_object_get(s, "subject"));
		const json_t *ds = subject_of(dinv, subj);
		size_t present = 0;
		json_array_foreach(json_object_get(s, "versions"), k, v) {
			json_int_t id = json_integer_value(json_object_get(v, "id"));
			json_int_t ver = json_integer_value(json_object_get(v, "version"));
			json_int_t did = ds ? id_of(dinv, subj, ver) : -1;
			char msg[600];
			free(a);
			free(b);
			a = canon_row(v, sinv, NULL);
			if ((err = canon_of_id(dst, dinv, id, &b, errstr, errstr_size)))
				goto done;
			if (b && strcmp(a, b)) {
				snprintf(msg, sizeof(msg), "schema ID %lld ('%s' version %lld) is another "
							   "schema on the target", (long long)id, subj, (long long)ver);
				json_array_append_new(coll, json_string(msg));
			} else if (did >= 0 && did != id) {
				snprintf(msg, sizeof(msg), "subject '%s' version %lld has ID %lld on the "
							   "target, %lld on the source", subj, (long long)ver,
					 (long long)did, (long long)id);
				json_array_append_new(coll, json_string(msg));
			} else if (did == id) {
				present++;
			}
		}
		if (present == json_array_size(json_object_get(s, "versions")))
			json_array_append_new(done_l, json_string(subj));
		else if (present && dst->apicurio) {
			char msg[600];
			snprintf(msg, sizeof(msg), "subject '%s' exists on the target with only some of "
						   "its versions", subj);
			json_array_append_new(coll, json_string(msg));
		} else
			json_array_append(todo, s);
	}
	json_object_set(res, "collisions", coll);
	json_object_set(res, "already_present", done_l);
	{
		json_t *names = json_array(), *x;
		json_array_foreach(todo, i, x)
			json_array_append(names, json_object_get(x, "subject"));
		json_object_set_new(res, "subjects", names);
	}
	if (ids != KM_PLAN_SCHEMA_IDS_REWRITE && json_array_size(coll)) {
		json_object_set_new(res, "method", json_string("none"));
		json_object_set_new(res, "verdict", json_string("NO-GO"));
		json_object_set_new(
			res, "reason",
			json_string(ids == KM_PLAN_SCHEMA_IDS_KEEP
					    ? "schema IDs cannot be kept (the target already holds these IDs "
					      "with other schemas): migrate into an empty target registry, or "
					      "set schemas.ids: rewrite in the plan (replicate then rewrites "
					      "the ID in every record)"
					    : "schema IDs collide on the target and the plan does not say what "
					      "to do: declare schemas.ids: rewrite (replicate rewrites the ID in "
					      "every record) or keep with an empty target registry"));
		goto finish;
	}
	method = ids == KM_PLAN_SCHEMA_IDS_REWRITE ? "register (IDS REWRITTEN)"
		 : dst->apicurio                    ? "apicurio-admin-import"
						    : "import-mode";
	json_object_set_new(res, "method", json_string(method));
	if (dry_run) {
		json_object_set_new(res, "verdict", json_string("GO"));
		goto finish;
	}
	if (ids == KM_PLAN_SCHEMA_IDS_REWRITE) {
		id_map = json_object();
		vmap = json_object();
		/* The history was accepted by the source under its levels: the
		 * target checks nothing while it is copied, then gets the
		 * source's levels below. */
		json_array_foreach(json_object_get(sinv, "subjects"), i, s)
			if ((err = put_compat(dst, json_string_value(json_object_get(s, "subject")), "NONE",
					      errstr, errstr_size)))
				goto done;
		if ((err = register_all(dst, sinv, id_map, vmap, errstr, errstr_size)))
			goto done;
	} else if (json_array_size(todo)) {
		if ((err = dst->apicurio ? apicurio_import(dst, todo, errstr, errstr_size)
					 : import_mode(dst, todo, errstr, errstr_size)))
			goto done;
	}
	/* Levels carried explicitly: registries' defaults differ (Apicurio
	 * NONE, Confluent BACKWARD). */
	if ((err = put_compat(dst, NULL, json_string_value(json_object_get(sinv, "compatibility")),
			      errstr, errstr_size)))
		goto done;
	json_array_foreach(json_object_get(sinv, "subjects"), i, s) {
		const char *subj = json_string_value(json_object_get(s, "subject"));
		const char *lvl = json_string_value(json_object_get(s, "compatibility"));
		if ((err = put_compat(dst, subj, lvl, errstr, errstr_size)))
			goto done;
		json_array_append_new(lv, json_pack("{s:s,s:s}", "subject", subj, "compatibility", lvl));
	}
	json_object_set(res, "compatibility", lv);
	if (id_map) {
		json_object_set(res, "id_map", id_map);
		/* Said in the result itself, so that no reader of the journal
		 * takes the registry half for the whole of a rewrite. */
		json_object_set_new(res, "warning",
				    json_string("SCHEMA IDS REWRITTEN: replicate rewrites the ID of every "
						"wire-format key and value through id_map, validate compares "
						"with it applied"));
	}
	json_decref(dinv);
	dinv = NULL;
	if ((err = km_schemas_inventory(dst, &dinv, errstr, errstr_size)) ||
	    (err = verify_with(src, dst, sinv, dinv, id_map, used, &proof, errstr, errstr_size)))
		goto done;
	json_object_set(res, "proof", proof);
	json_object_set(res, "verdict", json_object_get(proof, "verdict"));
	if (strcmp(json_string_value(json_object_get(proof, "verdict")), "GO"))
		json_object_set_new(res, "reason",
				    json_string("the target does not resolve every source schema ID to "
						"the same schema: see proof.mismatches"));
finish:
	*resultp = res;
	res = NULL;
done:
	json_decref(res);
	json_decref(sinv);
	json_decref(dinv);
	json_decref(coll);
	json_decref(todo);
	json_decref(done_l);
	json_decref(lv);
	json_decref(id_map);
	json_decref(vmap);
	json_decref(proof);
	free(a);
	free(b);
	return err;
}

/* ------------------------------------------------------------------ */
/* The ID map and the per-record rewrite                                */

typedef struct idpair_s {
	uint32_t src, dst;
} idpair_t;

struct km_schemas_idmap_s {
	idpair_t *v;
	size_t n;
};

static int cmp_pair(const void *a, const void *b)
{
	const idpair_t *x = a, *y = b;
	return x->src < y->src ? -1 : x->src > y->src;
}

km_err_t km_schemas_idmap_build(km_sr_t *src, km_sr_t *dst, km_schemas_idmap_t **mapp,
				char *errstr, size_t errstr_size)
{
	json_t *sinv = NULL, *dinv = NULL, *s, *v, *w;
	km_schemas_idmap_t *map = km_calloc(1, sizeof(*map));
	char *a = NULL, *b = NULL;
	size_t i, k, m, cap = 0;
	km_err_t err;

	*mapp = NULL;
	if ((err = km_schemas_inventory(src, &sinv, errstr, errstr_size)) ||
	    (err = km_schemas_inventory(dst, &dinv, errstr, errstr_size)))
		goto done;
	/* By content within the same subject: the target's version numbers
	 * may differ, its schema for the record may not. */
	json_array_foreach(json_object_get(sinv, "subjects"), i, s) {
		const char *subj = json_string_value(json_object_get(s, "subject"));
		const json_t *ds = subject_of(dinv, subj);
		json_array_foreach(json_object_get(s, "versions"), k, v) {
			json_int_t sid = json_integer_value(json_object_get(v, "id")), did = -1;
			free(a);
			a = canon(type_of(v), json_string_value(json_object_get(v, "schema")), NULL, NULL, NULL);
			json_array_foreach(json_object_get(ds, "versions"), m, w) {
				free(b);
				b = canon(type_of(w), json_string_value(json_object_get(w, "schema")), NULL, NULL, NULL);
				if (!strcmp(a, b))
					did = json_integer_value(json_object_get(w, "id"));
			}
			if (did < 0) {
				snprintf(errstr, errstr_size, "source schema ID %lld ('%s' version %lld) has no "
							      "copy on the target registry '%s': run `kmigrate schemas` first",
					 (long long)sid, subj, (long long)json_integer_value(json_object_get(v, "version")),
					 dst->url);
				err = KM_ERR_NOT_FOUND;
				goto done;
			}
			if (map->n == cap) {
				cap = cap ? 2 * cap : 16;
				map->v = km_realloc(map->v, cap * sizeof(*map->v));
			}
			map->v[map->n].src = (uint32_t)sid;
			map->v[map->n].dst = (uint32_t)did;
			map->n++;
		}
	}
	qsort(map->v, map->n, sizeof(*map->v), cmp_pair);
	/* One source id -> exactly one target id. */
	for (i = 1, k = map->n ? 1 : 0; i < map->n; i++) {
		if (map->v[i].src == map->v[k - 1].src) {
			if (map->v[i].dst != map->v[k - 1].dst) {
				snprintf(errstr, errstr_size, "source schema ID %u maps to two target IDs (%u, %u): "
							      "the target registry's subjects differ from the source's",
					 map->v[i].src, map->v[k - 1].dst, map->v[i].dst);
				err = KM_ERR_CONFLICT;
				goto done;
			}
			continue;
		}
		map->v[k++] = map->v[i];
	}
	map->n = k;
	*mapp = map;
	map = NULL;
done:
	km_schemas_idmap_destroy(map);
	json_decref(sinv);
	json_decref(dinv);
	free(a);
	free(b);
	return err;
}

km_err_t km_schemas_idmap_for_plan(const km_plan_t *plan, km_schemas_idmap_t **mapp,
				   char *errstr, size_t errstr_size)
{
	km_sr_t *src = NULL, *dst = NULL;
	km_err_t err;

	*mapp = NULL;
	if (plan->schemas.ids != KM_PLAN_SCHEMA_IDS_REWRITE)
		return KM_ERR_OK;
	if (!plan->source.schema_registry_url || !plan->target.schema_registry_url) {
		snprintf(errstr, errstr_size,
			 "schemas.ids: rewrite needs both source.schema_registry_url and "
			 "target.schema_registry_url in the plan");
		return KM_ERR_PLAN;
	}
	if (!(err = km_sr_open(plan->source.schema_registry_url, "source", &src, errstr,
			       errstr_size)) &&
	    !(err = km_sr_open(plan->target.schema_registry_url, "target", &dst, errstr,
			       errstr_size)))
		err = km_schemas_idmap_build(src, dst, mapp, errstr, errstr_size);
	km_sr_close(src);
	km_sr_close(dst);
	return err;
}

size_t km_schemas_idmap_size(const km_schemas_idmap_t *map)
{
	return map ? map->n : 0;
}

void km_schemas_idmap_destroy(km_schemas_idmap_t *map)
{
	if (!map)
		return;
	free(map->v);
	free(map);
}

json_t *km_schemas_idmap_json(const km_schemas_idmap_t *map)
{
	json_t *o = json_object();
	char k[16];

	for (size_t i = 0; i < map->n; i++) {
		snprintf(k, sizeof(k), "%u", map->v[i].src);
		json_object_set_new(o, k, json_integer(map->v[i].dst));
	}
	return o;
}

km_err_t km_schemas_rewrite(const km_schemas_idmap_t *map, void *buf, size_t len, char *errstr,
			    size_t errstr_size)
{
	unsigned char *p = buf;
	idpair_t key, *hit;

	if (!p || len < KM_SCHEMAS_WIRE_HDR || p[0] != KM_SCHEMAS_WIRE_MAGIC)
		return KM_ERR_OK;
	key.src = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
	if (!(hit = bsearch(&key, map->v, map->n, sizeof(*map->v), cmp_pair))) {
		snprintf(errstr, errstr_size,
			 "record in wire format carries schema ID %u, which is not in the source "
			 "registry's ID map: register it on the source, then rerun `kmigrate schemas`",
			 key.src);
		return KM_ERR_NOT_FOUND;
	}
	p[1] = (unsigned char)(hit->dst >> 24);
	p[2] = (unsigned char)(hit->dst >> 16);
	p[3] = (unsigned char)(hit->dst >> 8);
	p[4] = (unsigned char)hit->dst;
	return KM_ERR_OK;
}
