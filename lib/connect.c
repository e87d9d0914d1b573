/*
 * connect.c -- Kafka Connect: REST client, inventory, findings, target
 * design, apply in STOPPED state, and the per-wave connector cutover (see
 * connect.h and docs/internals/connect.md).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "connect.h"
#include "offsets.h"
#include "util.h"

#define STOP_TIMEOUT_MS 60000
#define POLL_MS 500

struct km_connect_s {
	char *url;  /* without a trailing '/' */
	char *role; /* the plan key, for errors */
	char *version;
	int timeout_ms;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *p, size_t size, size_t n, void *opaque)
{
	km_sb_add(opaque, p, size * n);
	return size * n;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

km_err_t km_connect_call(km_connect_t *c, const char *method, const char *path,
			 const json_t *body, json_t **outp, char *errstr, size_t errstr_size)
{
	km_sb_t resp = KM_SB_INIT;
	char *url = km_asprintf("%s%s", c->url, path), *req = NULL;
	struct curl_slist *hdrs = NULL;
	char cerr[CURL_ERROR_SIZE] = "";
	long status = 0;
	km_err_t err = KM_ERR_OK;
	CURL *h;
	CURLcode rc;

	if (outp)
		*outp = NULL;
	pthread_once(&curl_once, curl_init);
	h = curl_easy_init();
	if (!h) {
		err = km_seterr(errstr, errstr_size, KM_ERR_BUG, "libcurl could not start a request");
		goto done;
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (body) {
		req = json_dumps(body, JSON_COMPACT);
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		err = km_seterr(errstr, errstr_size,
				rc == CURLE_OPERATION_TIMEDOUT ? KM_ERR_TIMEOUT : KM_ERR_UNREACHABLE,
				"Kafka Connect at '%s' (%s) is unreachable: %s; start the worker or "
				"fix %s in the plan",
				url, c->role, cerr[0] ? cerr : curl_easy_strerror(rc), c->role);
		goto done;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	json_t *j = resp.len ? json_loadb(resp.buf, resp.len, 0, NULL) : json_null();
	if (status < 200 || status > 299) {
		const char *m = json_string_value(json_object_get(j, "message"));
		char snippet[160];
		snprintf(snippet, sizeof(snippet), "%.*s", (int)(resp.len < 150 ? resp.len : 150),
			 resp.buf ? resp.buf : "");
		for (char *s = snippet; *s; s++)
			if (*s == '\n' || *s == '\r')
				*s = ' ';
		err = km_seterr(errstr, errstr_size,
				status == 404   ? KM_ERR_NOT_FOUND
				: status == 409 ? KM_ERR_CONFLICT
						: KM_ERR_KAFKA,
				"Kafka Connect %s '%s' answered HTTP %ld: %s; %s", method, url, status,
				m ? m : snippet,
				status == 404 ? "check the connector's name and the worker's version "
						"(KIP-875 needs Connect >= 3.5, KIP-980 >= 3.7)"
				: status == 409 ? "the worker is rebalancing or the connector is in "
						  "the wrong state: retry, or stop it first"
				: status >= 500 ? "see the worker's log"
						: "fix the request or the connector's config");
		json_decref(j);
		goto done;
	}
	if (!j) {
		err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				"Kafka Connect %s '%s' answered HTTP %ld with a body that is not "
				"JSON; check that %s points at a Connect worker's REST listener",
				method, url, status, c->role);
		goto done;
	}
	if (outp)
		*outp = j;
	else
		json_decref(j);
done:
	if (h)
		curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	free(req);
	free(url);
	km_sb_free(&resp);
	return err;
}

km_err_t km_connect_open(const char *url, const char *role, int timeout_ms, km_connect_t **cp,
			 char *errstr, size_t errstr_size)
{
	km_connect_t *c = km_calloc(1, sizeof(*c));
	json_t *root = NULL;
	km_err_t err;
	size_t n = strlen(url);

	while (n && url[n - 1] == '/')
		n--;
	c->url = km_strndup(url, n);
	c->role = km_strdup(role);
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : KM_CONNECT_TIMEOUT_MS;
	*cp = NULL;
	if ((err = km_connect_call(c, "GET", "/", NULL, &root, errstr, errstr_size))) {
		km_connect_close(c);
		return err;
	}
	const char *v = json_string_value(json_object_get(root, "version"));
	if (!v) {
		json_decref(root);
		km_connect_close(c);
		return km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				 "'%s' (%s) answered but is not a Kafka Connect worker (no version "
				 "in GET /); fix %s in the plan",
				 url, role, role);
	}
	c->version = km_strdup(v);
	json_decref(root);
	*cp = c;
	return KM_ERR_OK;
}

void km_connect_close(km_connect_t *c)
{
	if (!c)
		return;
	free(c->url);
	free(c->role);
	free(c->version);
	free(c);
}

const char *km_connect_version(const km_connect_t *c)
{
	return c->version;
}

static char *path_of(const char *fmt, const char *name, const char *tail)
{
	/* Connector names are free text: percent-encode them. */
	char *enc = curl_easy_escape(NULL, name, 0);
	char *p = km_asprintf(fmt, enc, tail ? tail : "");
	curl_free(enc);
	return p;
}

km_err_t km_connect_status(km_connect_t *c, const char *name, json_t **statusp, char *errstr,
			   size_t errstr_size)
{
	char *p = path_of("/connectors/%s/status%s", name, NULL);
	json_t *st = NULL;
	km_err_t err = km_connect_call(c, "GET", p, NULL, &st, errstr, errstr_size);

	free(p);
	*statusp = NULL;
	if (err)
		return err;
	json_t *tasks = json_array(), *t;
	size_t i;
	json_array_foreach(json_object_get(st, "tasks"), i, t)
	{
		json_t *row = json_pack("{s:O?, s:O?}", "id", json_object_get(t, "id"), "state",
					json_object_get(t, "state"));
		if (json_object_get(t, "trace"))
			json_object_set(row, "trace", json_object_get(t, "trace"));
		json_array_append_new(tasks, row);
	}
	*statusp = json_pack("{s:O?, s:o}", "state",
			     json_object_get(json_object_get(st, "connector"), "state"), "tasks",
			     tasks);
	json_decref(st);
	return KM_ERR_OK;
}

/* ---- masking ------------------------------------------------------------------------ */

static bool key_is_secret(const char *k)
{
	static const char *const words[] = {"password", "passwd",     "secret",    "token",
					    "credential", "jaas",     "api.key",   "apikey",
					    "access.key", "private.key", "secret.key", NULL};
	char low[256];
	size_t i, n = strlen(k);

	if (n >= sizeof(low))
		n = sizeof(low) - 1;
	for (i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)k[i]);
	low[n] = 0;
	for (i = 0; words[i]; i++)
		if (strstr(low, words[i]))
			return true;
	/* "ssl.key" or "aws.key" hold a key; "key.converter" does not. */
	return n > 4 && !strcmp(low + n - 4, ".key");
}

static bool value_embeds_secret(const char *v)
{
	static const char *const words[] = {"password=", "pwd=", "secret=", "token=", NULL};
	char *low = km_strdup(v);
	bool hit = false;

	for (char *s = low; *s; s++)
		*s = (char)tolower((unsigned char)*s);
	for (int i = 0; words[i] && !hit; i++)
		hit = strstr(low, words[i]) != NULL;
	free(low);
	return hit;
}

json_t *km_connect_mask_config(const json_t *config)
{
	json_t *out = json_object(), *v;
	const char *k;

	json_object_foreach((json_t *)config, k, v)
	{
		const char *s = json_string_value(v);
		/* A ${provider:path:key} reference names where the secret
		 * lives; it is what the target must carry, and not a secret. */
		bool ref = s && !strncmp(s, "${", 2) && s[strlen(s) - 1] == '}';
		if (s && !ref && (key_is_secret(k) || value_embeds_secret(s)))
			json_object_set_new(out, k, json_string("********"));
		else
			json_object_set(out, k, v);
	}
	return out;
}

/* ---- reading a connector ------------------------------------------------------------ */

static void split_topics(const char *list, json_t *out)
{
	const char *p = list;

	while (p && *p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		while (n && isspace((unsigned char)*p))
			p++, n--;
		while (n && isspace((unsigned char)p[n - 1]))
			n--;
		if (n) {
			char *t = km_strndup(p, n);
			json_array_append_new(out, json_string(t));
			free(t);
		}
		p = e ? e + 1 : NULL;
	}
}

/* The topics a connector's config names: `topics` (sinks), `topic`
 * (FileStreamSource and many sources). */
static json_t *config_topics(const json_t *cfg)
{
	json_t *out = json_array();
	split_topics(json_string_value(json_object_get(cfg, "topics")), out);
	split_topics(json_string_value(json_object_get(cfg, "topic")), out);
	return out;
}

/* The topics a connector uses: its config's, and (KIP-558) those it has
 * really used -- a source connector that derives its topic names (a
 * prefix, a router) names none in its config.  A worker that cannot tell
 * adds nothing: the caller decides what an empty answer means. */
static json_t *connector_topics(km_connect_t *c, const char *name, const json_t *cfg)
{
	json_t *topics = config_topics(cfg), *tp = NULL, *x, *y;
	char *p = path_of("/connectors/%s/topics%s", name, NULL), e[256];
	size_t i, k;

	if (!km_connect_call(c, "GET", p, NULL, &tp, e, sizeof(e)))
		json_array_foreach(json_object_get(json_object_get(tp, name), "topics"), i, x)
		{
			bool seen = false;
			json_array_foreach(topics, k, y) seen = seen || json_equal(x, y);
			if (!seen)
				json_array_append(topics, x);
		}
	free(p);
	json_decref(tp);
	return topics;
}

/* KM_ERR_NOGO for a connector whose topics cannot be told: it cannot be
 * placed in the scope or a wave, and unknown is never "not ours". */
static km_err_t topics_known(const char *name, const json_t *topics, char *errstr,
			     size_t errstr_size)
{
	if (json_array_size(topics))
		return KM_ERR_OK;
	return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
			 "connector '%s' on the source Connect names no topic in its config and "
			 "has used none (KIP-558): kmigrate cannot tell whether it moves; give it "
			 "a `topics`/`topic` config or run it once, or delete it if unused",
			 name);
}

static const km_plan_connector_t *plan_connector(const km_plan_t *plan, const char *name)
{
	for (size_t i = 0; i < plan->connectors_cnt; i++)
		if (!strcmp(plan->connectors[i].name, name))
			return &plan->connectors[i];
	return NULL;
}

/* The sink's consumer group: the config's override, the plan's, or
 * Connect's default connect-<name>. */
static char *sink_group(const km_plan_t *plan, const char *name, const json_t *cfg)
{
	const char *o = json_string_value(json_object_get(cfg, "consumer.override.group.id"));
	const km_plan_connector_t *pc = plan ? plan_connector(plan, name) : NULL;

	if (o)
		return km_strdup(o);
	if (pc && pc->group)
		return km_strdup(pc->group);
	return km_asprintf("connect-%s", name);
}

static km_err_t get_offsets(km_connect_t *c, const char *name, json_t **offp, char *errstr,
			    size_t errstr_size)
{
	char *p = path_of("/connectors/%s/offsets%s", name, NULL);
	json_t *o = NULL;
	km_err_t err = km_connect_call(c, "GET", p, NULL, &o, errstr, errstr_size);

	free(p);
	*offp = NULL;
	if (err)
		return err;
	*offp = json_incref(json_object_get(o, "offsets"));
	json_decref(o);
	if (!*offp)
		*offp = json_array();
	return KM_ERR_OK;
}

km_err_t km_connect_inventory(km_connect_t *c, const km_plan_t *plan, json_t **outp,
			      char *errstr, size_t errstr_size)
{
	json_t *all = NULL, *rows = json_array(), *e;
	const char *name;
	km_err_t err;

	*outp = NULL;
	if ((err = km_connect_call(c, "GET", "/connectors?expand=info&expand=status", NULL, &all,
				   errstr, errstr_size)))
		goto done;
	json_object_foreach(all, name, e)
	{
		json_t *info = json_object_get(e, "info"), *st = json_object_get(e, "status");
		json_t *cfg = json_object_get(info, "config"), *offs = NULL, *t;
		const char *type = json_string_value(json_object_get(info, "type"));
		char oerr[512] = "";
		size_t i;

		json_t *tasks = json_array();
		json_array_foreach(json_object_get(st, "tasks"), i, t)
			json_array_append_new(tasks,
					      json_pack("{s:O?, s:O?}", "id", json_object_get(t, "id"),
							"state", json_object_get(t, "state")));
		json_t *topics = connector_topics(c, name, cfg);
		get_offsets(c, name, &offs, oerr, sizeof(oerr));
		json_t *row = json_pack(
			"{s:s, s:O?, s:s?, s:o, s:O?, s:o, s:o, s:O?}", "name", name, "class",
			json_object_get(cfg, "connector.class"), "type", type, "config",
			km_connect_mask_config(cfg), "state",
			json_object_get(json_object_get(st, "connector"), "state"), "tasks", tasks,
			"topics", topics, "dlq_topic",
			json_object_get(cfg, "errors.deadletterqueue.topic.name"));
		if (type && !strcmp(type, "sink")) {
			char *g = sink_group(plan, name, cfg);
			json_object_set_new(row, "group", json_string(g));
			free(g);
		}
		/* unknown is never "none": a worker that cannot tell says why */
		json_object_set_new(row, "offsets", offs ? offs : json_null());
		if (!offs)
			json_object_set_new(row, "offsets_error", json_string(oerr));
		json_array_append_new(rows, row);
	}
	*outp = json_pack("{s:s, s:s, s:o}", "url", c->url, "version", c->version, "connectors",
			  rows);
	rows = NULL;
done:
	json_decref(all);
	json_decref(rows);
	return err;
}

json_t *km_connect_findings(const km_plan_t *plan, const json_t *inv)
{
	json_t *out = json_array(), *row;
	size_t i;

#define FINDING(kind_, name_, sev_, problem_, ...)                                             \
	do {                                                                                   \
		char *s_ = km_asprintf("connector:%s", name_), *f_ = km_asprintf(__VA_ARGS__);  \
		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:s}", "subject",   \
						     s_, "problem", problem_, "fix", f_,       \
						     "kind", kind_, "severity", sev_));        \
		free(s_);                                                                      \
		free(f_);                                                                      \
	} while (0)

	json_array_foreach(json_object_get(inv, "connectors"), i, row)
	{
		const char *name = json_string_value(json_object_get(row, "name"));
		const char *type = json_string_value(json_object_get(row, "type"));
		const km_plan_connector_t *pc = plan_connector(plan, name);
		json_t *t;
		size_t k;

		/* A declared one without an owner is the declared items'
		 * finding already (lib/inventory.c). */
		if (!pc)
			FINDING("connector.undeclared", name, "medium",
				"runs on the source Connect but is not declared in the plan",
				"add '%s' to connectors[] with owner, side_effects, idempotent and "
				"validation",
				name);
		if (!type || strcmp(type, "sink"))
			continue;
		json_array_foreach(json_object_get(row, "topics"), k, t)
		{
			const char *topic = json_string_value(t);
			const km_plan_rule_t *r = km_plan_topic_rule(plan, topic);
			if (!r || r->duplicates != KM_PLAN_DUPLICATES_NONE ||
			    (pc && pc->idempotent == KM_PLAN_YES))
				continue;
			char *p = km_asprintf("high risk (connector.duplicate-risk): a sink on '%s' "
					      "(duplicates: none) whose side effect is not declared "
					      "idempotent: a replay writes twice downstream",
					      topic);
			FINDING("connector.duplicate-risk", name, "high", p,
				"declare `idempotent: yes` on '%s' if its side effect is, else keep "
				"its cutover exact (kmigrate cutover moves its offsets) and review "
				"its target",
				name);
			free(p);
		}
	}
	for (size_t j = 0; j < plan->connectors_cnt; j++) {
		bool seen = false;
		json_array_foreach(json_object_get(inv, "connectors"), i, row) seen =
			seen ||
			!strcmp(json_string_value(json_object_get(row, "name")),
				plan->connectors[j].name);
		if (!seen)
			FINDING("connector.absent", plan->connectors[j].name, "low",
				"declared in the plan but not on the source Connect",
				"remove '%s' from connectors[] or fix source.connect_url",
				plan->connectors[j].name);
	}
#undef FINDING
	return out;
}

/* ---- target design ------------------------------------------------------------------ */

static void change(json_t *changes, const char *key, const json_t *from, const char *to)
{
	json_array_append_new(changes,
			      json_pack("{s:s, s:O?, s:s}", "key", key, "from", from, "to", to));
}

static char *map_list(const km_plan_t *plan, const char *list)
{
	json_t *ts = json_array(), *t;
	km_sb_t sb = KM_SB_INIT;
	size_t i;

	split_topics(list, ts);
	json_array_foreach(ts, i, t)
	{
		char *m = km_plan_target_topic(plan, json_string_value(t));
		km_sb_printf(&sb, "%s%s", i ? "," : "", m);
		free(m);
	}
	json_decref(ts);
	return km_sb_detach(&sb);
}

km_err_t km_connect_target_config(const km_plan_t *plan, const char *name, const json_t *cfg,
				  json_t **outp, char *errstr, size_t errstr_size)
{
	static const char *const topic_keys[] = {"topics", "topic",
						 "errors.deadletterqueue.topic.name", NULL};
	static const char *const bs_keys[] = {"consumer.override.bootstrap.servers",
					      "producer.override.bootstrap.servers",
					      "admin.override.bootstrap.servers", NULL};
	json_t *out = json_deep_copy(cfg), *changes = json_array();

	*outp = NULL;
	if (json_object_get(cfg, "topics.regex") && plan->naming.mode != KM_PLAN_NAMING_IDENTITY) {
		json_decref(out);
		json_decref(changes);
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "connector '%s' selects its topics with topics.regex, which the "
				 "plan's naming cannot map: give it an explicit `topics` list",
				 name);
	}
	for (int i = 0; topic_keys[i]; i++) {
		const char *v = json_string_value(json_object_get(cfg, topic_keys[i]));
		if (!v)
			continue;
		char *m = map_list(plan, v);
		if (strcmp(m, v)) {
			change(changes, topic_keys[i], json_object_get(cfg, topic_keys[i]), m);
			json_object_set_new(out, topic_keys[i], json_string(m));
		}
		free(m);
	}
	for (int i = 0; bs_keys[i]; i++) {
		const json_t *v = json_object_get(cfg, bs_keys[i]);
		if (!v)
			continue;
		change(changes, bs_keys[i], v, plan->target.bootstrap);
		json_object_set_new(out, bs_keys[i], json_string(plan->target.bootstrap));
	}
	const char *type = NULL;
	/* A sink on the target must not read the records of aborted
	 * transactions (kmigrate copies in transactions; Java consumers read
	 * uncommitted by default): that would be a duplicate downstream. */
	if (json_object_get(cfg, "topics") &&
	    !json_object_get(cfg, "consumer.override.isolation.level")) {
		type = "read_committed";
		change(changes, "consumer.override.isolation.level", NULL, type);
		json_object_set_new(out, "consumer.override.isolation.level", json_string(type));
	}
	*outp = json_pack("{s:s, s:o, s:o}", "name", name, "config", out, "changes", changes);
	return KM_ERR_OK;
}

km_err_t km_connect_design(const km_plan_t *plan, json_t **outp, char *errstr,
			   size_t errstr_size)
{
	km_connect_t *c = NULL;
	json_t *all = NULL, *out = json_array(), *e;
	const char *name;
	km_err_t err = KM_ERR_OK;

	*outp = NULL;
	if (!plan->source.connect_url) {
		*outp = out;
		return KM_ERR_OK;
	}
	if ((err = km_connect_open(plan->source.connect_url, "source.connect_url", 0, &c, errstr,
				   errstr_size)) ||
	    (err = km_connect_call(c, "GET", "/connectors?expand=info", NULL, &all, errstr,
				   errstr_size)))
		goto done;
	json_object_foreach(all, name, e)
	{
		json_t *cfg = json_object_get(json_object_get(e, "info"), "config");
		json_t *ts = connector_topics(c, name, cfg), *t, *d = NULL;
		bool in = false;
		size_t i;
		json_array_foreach(ts, i, t) in = in || km_plan_topic_in_scope(plan, json_string_value(t));
		err = topics_known(name, ts, errstr, errstr_size);
		json_decref(ts);
		if (err)
			goto done;
		if (!in)
			continue;
		if ((err = km_connect_target_config(plan, name, cfg, &d, errstr, errstr_size)))
			goto done;
		json_array_append_new(out, d);
	}
	*outp = out;
	out = NULL;
done:
	json_decref(all);
	json_decref(out);
	km_connect_close(c);
	return err;
}

km_err_t km_connect_apply(const km_plan_t *plan, const json_t *designs, json_t **resultp,
			  char *errstr, size_t errstr_size)
{
	km_connect_t *c = NULL;
	json_t *res = json_array(), *d;
	km_err_t err = KM_ERR_OK;
	size_t i;

	*resultp = NULL;
	if (!json_array_size(designs)) {
		*resultp = res;
		return KM_ERR_OK;
	}
	if (!plan->target.connect_url) {
		json_decref(res);
		return km_seterr(errstr, errstr_size, KM_ERR_PLAN,
				 "the design has %zu connector(s) but the plan has no "
				 "target.connect_url: add the target Connect worker's REST URL",
				 json_array_size(designs));
	}
	if ((err = km_connect_open(plan->target.connect_url, "target.connect_url", 0, &c, errstr,
				   errstr_size)))
		goto done;
	/* Every conflict first, so that a refusal changes nothing. */
	json_array_foreach(designs, i, d)
	{
		const char *name = json_string_value(json_object_get(d, "name"));
		char *p = path_of("/connectors/%s/config%s", name, NULL);
		json_t *have = NULL;
		km_err_t e = km_connect_call(c, "GET", p, NULL, &have, errstr, errstr_size);
		free(p);
		if (e == KM_ERR_NOT_FOUND)
			continue;
		if (e) {
			err = e;
			goto done;
		}
		if (!json_equal(have, json_object_get(d, "config"))) {
			json_decref(have);
			err = km_seterr(errstr, errstr_size, KM_ERR_CONFLICT,
					"connector '%s' already exists on the target Connect with "
					"another config: delete it there or align it with the design "
					"(`kmigrate plan`), then apply again",
					name);
			goto done;
		}
		json_decref(have);
	}
	json_array_foreach(designs, i, d)
	{
		const char *name = json_string_value(json_object_get(d, "name"));
		char *p = path_of("/connectors/%s/config%s", name, NULL);
		km_err_t e = km_connect_call(c, "GET", p, NULL, NULL, errstr, errstr_size);
		free(p);
		if (!e) {
			json_array_append_new(res, json_pack("{s:s, s:s}", "name", name, "action",
							     "exists"));
			continue;
		}
		if (e != KM_ERR_NOT_FOUND) {
			err = e;
			goto done;
		}
		/* KIP-980: nothing runs on the target before its cutover. */
		json_t *body = json_pack("{s:s, s:O, s:s}", "name", name, "config",
					 json_object_get(d, "config"), "initial_state", "STOPPED");
		err = km_connect_call(c, "POST", "/connectors", body, NULL, errstr, errstr_size);
		json_decref(body);
		if (err)
			goto done;
		json_array_append_new(res, json_pack("{s:s, s:s}", "name", name, "action",
						     "created"));
	}
	/* The read-back: each created connector is STOPPED on the target.
	 * The worker writes a new connector's status asynchronously (a GET
	 * right after the POST answers 404 for a moment), so wait on the
	 * condition; any other state means the worker did not honour
	 * initial_state, and the connector runs before its cutover. */
	json_array_foreach(res, i, d)
	{
		const char *name = json_string_value(json_object_get(d, "name"));
		int64_t end = km_mono_ms() + 30000;
		json_t *st = NULL;

		if (strcmp(json_string_value(json_object_get(d, "action")), "created"))
			continue;
		for (;;) {
			km_err_t e = km_connect_status(c, name, &st, errstr, errstr_size);
			if (e && e != KM_ERR_NOT_FOUND) {
				err = e;
				goto done;
			}
			const char *state = st ? json_string_value(json_object_get(st, "state")) : NULL;
			if (state && !strcmp(state, "STOPPED"))
				break;
			if (state) {
				err = km_seterr(errstr, errstr_size, KM_ERR_CONFLICT,
						"connector '%s' on the target Connect is %s after "
						"apply created it STOPPED: the worker did not honour "
						"initial_state (KIP-980 needs Connect >= 3.7); stop it "
						"now (PUT /connectors/%s/stop) and upgrade the worker",
						name, state, name);
				json_decref(st);
				goto done;
			}
			if (km_mono_ms() >= end) {
				err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
						"connector '%s' on the target Connect has no status 30 s "
						"after apply created it: look at the worker's log, then "
						"apply again",
						name);
				goto done;
			}
			json_decref(st);
			st = NULL;
			sleep_ms(250);
		}
		json_decref(st);
	}
	*resultp = res;
	res = NULL;
done:
	json_decref(res);
	km_connect_close(c);
	return err;
}

km_err_t km_connect_apply_preview(const km_plan_t *plan, const json_t *designs,
				  json_t **resultp, char *errstr, size_t errstr_size)
{
	km_connect_t *c = NULL;
	json_t *res = json_array(), *d;
	km_err_t err = KM_ERR_OK;
	size_t i;

	*resultp = NULL;
	if (json_array_size(designs) && !plan->target.connect_url)
		err = km_seterr(errstr, errstr_size, KM_ERR_PLAN,
				"the design has %zu connector(s) but the plan has no "
				"target.connect_url: add the target Connect worker's REST URL",
				json_array_size(designs));
	else if (json_array_size(designs))
		err = km_connect_open(plan->target.connect_url, "target.connect_url", 0, &c, errstr,
				      errstr_size);
	json_array_foreach(err ? NULL : designs, i, d)
	{
		const char *name = json_string_value(json_object_get(d, "name"));
		char *p = path_of("/connectors/%s/config%s", name, NULL);
		json_t *have = NULL;
		km_err_t e = km_connect_call(c, "GET", p, NULL, &have, errstr, errstr_size);
		free(p);
		if (e && e != KM_ERR_NOT_FOUND) {
			err = e;
			break;
		}
		/* the saved design is masked: a masked value compares as the
		 * mask, so compare the masked forms */
		json_t *mh = have ? km_connect_mask_config(have) : NULL;
		json_t *md = km_connect_mask_config(json_object_get(d, "config"));
		json_array_append_new(res, json_pack("{s:s, s:s}", "name", name, "action",
						     !have		    ? "create-stopped"
						     : json_equal(mh, md) ? "exists"
									  : "conflict"));
		json_decref(have);
		json_decref(mh);
		json_decref(md);
	}
	km_connect_close(c);
	if (err)
		json_decref(res);
	else
		*resultp = res;
	return err;
}

/* ---- cutover ------------------------------------------------------------------------ */

static const char *state_of(const json_t *st)
{
	const char *s = json_string_value(json_object_get(st, "state"));
	return s ? s : "unknown";
}

/* Both connectors' states now, appended to phases as {"phase", "source_state",
 * "target_state", "at"} plus extra (stolen). */
static km_err_t record(km_connect_t *sc, km_connect_t *tc, const char *name, json_t *phases,
		       const char *phase, json_t *extra, char *srcst, char *tgtst, char *errstr,
		       size_t errstr_size)
{
	json_t *ss = NULL, *ts = NULL;
	km_err_t err;

	if ((err = km_connect_status(sc, name, &ss, errstr, errstr_size)) ||
	    (err = km_connect_status(tc, name, &ts, errstr, errstr_size)))
		goto done;
	snprintf(srcst, 32, "%s", state_of(ss));
	snprintf(tgtst, 32, "%s", state_of(ts));
	json_t *row = json_pack("{s:s, s:s, s:s, s:I}", "phase", phase, "source_state", srcst,
				"target_state", tgtst, "at", (json_int_t)km_now_ms());
	if (extra)
		json_object_update(row, extra);
	json_array_append_new(phases, row);
done:
	json_decref(extra);
	json_decref(ss);
	json_decref(ts);
	return err;
}

/* Stops the source connector and waits until it is STOPPED with no task
 * left and its offsets read the same twice in a row. */
static km_err_t stop_source(km_connect_t *sc, const char *name, int timeout_ms, json_t **offp,
			    char *errstr, size_t errstr_size)
{
	char *p = path_of("/connectors/%s/stop%s", name, NULL);
	json_t *st = NULL, *prev = NULL, *cur = NULL;
	int64_t end = km_mono_ms() + timeout_ms;
	km_err_t err;

	*offp = NULL;
	err = km_connect_call(sc, "PUT", p, NULL, NULL, errstr, errstr_size);
	free(p);
	if (err)
		return err;
	for (;;) {
		json_decref(st);
		st = NULL;
		if ((err = km_connect_status(sc, name, &st, errstr, errstr_size)))
			goto done;
		if (!strcmp(state_of(st), "STOPPED") && !json_array_size(json_object_get(st, "tasks"))) {
			json_decref(cur);
			cur = NULL;
			if ((err = get_offsets(sc, name, &cur, errstr, errstr_size)))
				goto done;
			if (prev && json_equal(prev, cur))
				break;
			json_decref(prev);
			prev = json_incref(cur);
		}
		if (km_mono_ms() >= end) {
			err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
					"connector '%s' on the source Connect did not stop within "
					"%d ms (state %s%s): the target connector is untouched and "
					"STOPPED, the source one is left stopping; find why in the "
					"source worker's log, then re-run the cutover",
					name, timeout_ms, state_of(st),
					strcmp(state_of(st), "STOPPED") ? ""
									: ", offsets not yet seen stable");
			goto done;
		}
		sleep_ms(POLL_MS);
	}
	*offp = cur;
	cur = NULL;
done:
	json_decref(st);
	json_decref(prev);
	json_decref(cur);
	return err;
}

/* The sink's target positions: its group translated through the exact
 * offset map, the wave's partitions only. */
static km_err_t sink_positions(const km_plan_t *plan, km_kafka_t *ks, km_kafka_t *kt,
			       const km_plan_wave_t *w, const char *name, const char *group,
			       json_t **bodyp, json_t **proofp, char *errstr, size_t errstr_size)
{
	km_offsets_opts_t o = {.only = group};
	json_t *gs = NULL, *row, *offs = json_array(), *proof = json_array();
	km_err_t err;
	size_t j;

	*bodyp = *proofp = NULL;
	err = km_offsets_translate(plan, ks, kt, &o, &gs, errstr, errstr_size);
	if (err == KM_ERR_NOT_FOUND)
		/* Without a position the target sink would start where its
		 * reset policy says: a replay or a gap downstream. */
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"sink connector '%s' has no committed position (group '%s') on an "
				"in-scope topic: let it consume on the source first, or remove it "
				"from the wave",
				name, group);
	if (err)
		goto done;
	json_array_foreach(json_object_get(json_array_get(gs, 0), "partitions"), j, row)
	{
		const char *st = json_string_value(json_object_get(row, "status"));
		if (!km_plan_wave_has_topic(plan, w, json_string_value(json_object_get(row, "topic"))))
			continue;
		/* a declared restart policy (earliest, latest, timestamp) is
		 * the owner's choice, resolved on the target by lib/offsets */
		bool ok = st && (!strcmp(st, "translated") ||
				 (!strcmp(st, "policy") &&
				  json_is_integer(json_object_get(row, "target_offset"))));
		if (!ok) {
			err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
					"sink connector '%s' (group '%s'): '%s'[%" JSON_INTEGER_FORMAT
					"] is %s, not translated: nothing written; see `kmigrate "
					"offsets`, then re-run the cutover",
					name, group,
					json_string_value(json_object_get(row, "topic")),
					json_integer_value(json_object_get(row, "partition")),
					st ? st : "unknown");
			goto done;
		}
		json_array_append_new(
			offs, json_pack("{s:{s:O, s:O}, s:{s:O}}", "partition", "kafka_topic",
					json_object_get(row, "target_topic"), "kafka_partition",
					json_object_get(row, "partition"), "offset", "kafka_offset",
					json_object_get(row, "target_offset")));
		json_array_append_new(
			proof, json_pack("{s:O, s:O, s:O, s:O, s:O}", "topic",
					 json_object_get(row, "topic"), "partition",
					 json_object_get(row, "partition"), "committed",
					 json_object_get(row, "committed"), "target_topic",
					 json_object_get(row, "target_topic"), "target_offset",
					 json_object_get(row, "target_offset")));
	}
	*bodyp = json_pack("{s:o}", "offsets", offs);
	*proofp = proof;
	offs = proof = NULL;
done:
	json_decref(gs);
	json_decref(offs);
	json_decref(proof);
	return err;
}

static km_err_t wait_state(km_connect_t *c, const char *name, const char *want, int timeout_ms,
			   char *errstr, size_t errstr_size)
{
	int64_t end = km_mono_ms() + timeout_ms;
	json_t *st = NULL;
	km_err_t err;

	for (;;) {
		json_decref(st);
		st = NULL;
		if ((err = km_connect_status(c, name, &st, errstr, errstr_size)))
			break;
		if (!strcmp(state_of(st), want))
			break;
		if (km_mono_ms() >= end) {
			err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
					"connector '%s' did not reach %s within %d ms (state %s); see "
					"the worker's log",
					name, want, timeout_ms, state_of(st));
			break;
		}
		sleep_ms(POLL_MS);
	}
	json_decref(st);
	return err;
}

/* One connector of the wave. */
static km_err_t cut_one(const km_plan_t *plan, km_kafka_t *ks, km_kafka_t *kt,
			const km_plan_wave_t *w, km_connect_t *sc, km_connect_t *tc,
			const char *name, const json_t *info, bool dry_run, int timeout_ms,
			json_t *out, char *errstr, size_t errstr_size)
{
	const char *type = json_string_value(json_object_get(info, "type"));
	json_t *cfg = json_object_get(info, "config");
	json_t *phases = json_array(), *offs = NULL, *body = NULL, *proof = NULL;
	char ss[32], ts[32], *p = NULL, *group = NULL;
	bool sink = type && !strcmp(type, "sink");
	km_err_t err;

	err = record(sc, tc, name, phases, "before", NULL, ss, ts, errstr, errstr_size);
	if (err == KM_ERR_NOT_FOUND)
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"connector '%s' of wave '%s' does not exist on the target Connect: "
				"run `kmigrate apply` (it creates it STOPPED), then re-run the cutover",
				name, w->name);
	if (err)
		goto done;
	if (!strcmp(ts, "RUNNING") || !strcmp(ts, "PAUSED")) {
		/* Only this step resumes the target, after the source stopped:
		 * a target running now is a resumed run's, or someone else's. */
		if (strcmp(ss, "STOPPED")) {
			err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
					"connector '%s' runs on BOTH Connect clusters (source %s, "
					"target %s): stop one of them now (PUT .../stop), check its "
					"side effects for duplicates, then re-run the cutover",
					name, ss, ts);
			goto done;
		}
		goto ok; /* resumed by an earlier run that ended before its fact */
	}
	if (dry_run) {
		json_array_append_new(phases, json_pack("{s:s, s:s}", "phase", "would",
							"what",
							sink ? "stop the source sink, translate its group "
							       "through the offset map, PATCH the target's "
							       "offsets, resume the target"
							     : "stop the source connector, copy its source "
							       "positions verbatim, resume the target"));
		goto ok;
	}
	if ((err = stop_source(sc, name, timeout_ms, &offs, errstr, errstr_size)) ||
	    (err = record(sc, tc, name, phases, "source-stopped",
			  json_pack("{s:O}", "source_offsets", offs), ss, ts, errstr, errstr_size)))
		goto done;
	if (strcmp(ts, "STOPPED")) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"connector '%s' on the target Connect is %s, not STOPPED: its offsets "
				"cannot be written (KIP-875); stop it there, then re-run the cutover",
				name, ts);
		goto done;
	}
	if (sink) {
		group = sink_group(plan, name, cfg);
		if ((err = sink_positions(plan, ks, kt, w, name, group, &body, &proof, errstr,
					  errstr_size)))
			goto done;
	} else {
		/* A source connector's positions are in the source system (a
		 * file, a database log): the same on both sides. */
		body = json_pack("{s:O}", "offsets", offs);
		proof = json_pack("{s:s}", "copied", "verbatim");
	}
	if (json_array_size(json_object_get(body, "offsets"))) {
		p = path_of("/connectors/%s/offsets%s", name, NULL);
		if ((err = km_connect_call(tc, "PATCH", p, body, NULL, errstr, errstr_size)))
			goto done;
	}
	if ((err = record(sc, tc, name, phases, "offsets-written",
			  json_pack("{s:O, s:s?, s:O}", "written", json_object_get(body, "offsets"),
				    "group", group, "translation", proof),
			  ss, ts, errstr, errstr_size)))
		goto done;
	/* The last look before two could run: the source must still be
	 * STOPPED (someone may have resumed it by hand meanwhile). */
	if (strcmp(ss, "STOPPED")) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"connector '%s' on the source Connect is %s again after it was "
				"stopped: the target stays STOPPED; stop the source one, then re-run",
				name, ss);
		goto done;
	}
	free(p);
	p = path_of("/connectors/%s/resume%s", name, NULL);
	if ((err = km_connect_call(tc, "PUT", p, NULL, NULL, errstr, errstr_size)) ||
	    (err = wait_state(tc, name, "RUNNING", timeout_ms, errstr, errstr_size)))
		goto done;
ok:
	if ((err = record(sc, tc, name, phases, dry_run ? "unchanged" : "target-resumed", NULL, ss,
			  ts, errstr, errstr_size)))
		goto done;
	json_array_append_new(out, json_pack("{s:s, s:s?, s:o}", "name", name, "type", type,
					     "phases", phases));
	phases = NULL;
done:
	json_decref(phases);
	json_decref(offs);
	json_decref(body);
	json_decref(proof);
	free(p);
	free(group);
	return err;
}

/* Both workers, and the source's connectors with their configs. */
static km_err_t open_both(const km_plan_t *plan, km_connect_t **scp, km_connect_t **tcp,
			  json_t **allp, char *errstr, size_t errstr_size)
{
	km_err_t err;

	if ((err = km_connect_open(plan->source.connect_url, "source.connect_url", 0, scp, errstr,
				   errstr_size)) ||
	    (err = km_connect_open(plan->target.connect_url, "target.connect_url", 0, tcp, errstr,
				   errstr_size)))
		return err;
	return km_connect_call(*scp, "GET", "/connectors?expand=info", NULL, allp, errstr,
			       errstr_size);
}

/* The wave's connectors (read on the source worker, as the cutover placed
 * them): [{"name", "type", "config"}]; the same refusals as the cutover
 * (topics unknown, or inside and outside the wave). */
static km_err_t wave_connectors(const km_plan_t *plan, const km_plan_wave_t *w, km_connect_t *sc,
				const json_t *all, json_t **outp, char *errstr, size_t errstr_size)
{
	json_t *out = json_array(), *e;
	const char *name;
	km_err_t err = KM_ERR_OK;

	*outp = NULL;
	json_object_foreach((json_t *)all, name, e)
	{
		json_t *info = json_object_get(e, "info");
		json_t *ts = connector_topics(sc, name, json_object_get(info, "config")), *t;
		size_t i, in = 0;
		json_array_foreach(ts, i, t) in += km_plan_wave_has_topic(plan, w, json_string_value(t));
		err = topics_known(name, ts, errstr, errstr_size);
		if (!err && in && in < json_array_size(ts))
			err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
					"connector '%s' uses topics of wave '%s' and topics outside "
					"it: it can only move with all of them; put its topics in one "
					"wave",
					name, w->name);
		json_decref(ts);
		if (err)
			break;
		if (in)
			json_array_append_new(out, json_pack("{s:s, s:O?, s:O?}", "name", name, "type",
							     json_object_get(info, "type"), "config",
							     json_object_get(info, "config")));
	}
	if (err)
		json_decref(out);
	else
		*outp = out;
	return err;
}

/* The prologue of every per-wave connector pass: the wave, both workers
 * and the wave's connectors ([] with nothing to do: no source Connect, or
 * no target one and !need_target; a cutover needs the target: NOGO). */
static km_err_t wave_open(const km_plan_t *plan, const char *wn, bool need_target,
			  int *stop_timeout_ms, km_connect_t **scp, km_connect_t **tcp,
			  json_t **connsp, char *errstr, size_t errstr_size)
{
	const km_plan_wave_t *w = km_plan_wave(plan, wn);
	json_t *all = NULL;
	km_err_t err;

	*scp = *tcp = NULL;
	*connsp = NULL;
	if (*stop_timeout_ms <= 0)
		*stop_timeout_ms = STOP_TIMEOUT_MS;
	if (!w)
		return km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG, "no wave '%s'", wn);
	if (plan->source.connect_url && !plan->target.connect_url && need_target)
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "the plan has source.connect_url but no target.connect_url: the "
				 "wave's connectors have nowhere to move; add target.connect_url");
	if (!plan->source.connect_url || !plan->target.connect_url) {
		*connsp = json_array();
		return KM_ERR_OK;
	}
	if (!(err = open_both(plan, scp, tcp, &all, errstr, errstr_size)))
		err = wave_connectors(plan, w, *scp, all, connsp, errstr, errstr_size);
	json_decref(all);
	return err;
}

/* Before the fence: a source connector is one of the wave's producers.
 * Stopped gracefully, it commits the positions of every record the source
 * acknowledged; fenced while running, it would fail with records in
 * flight and positions that may lag what was written. */
static km_err_t stop_early(km_connect_t *sc, km_connect_t *tc, const char *name,
			   const json_t *info, bool dry_run, int timeout_ms, json_t *out,
			   char *errstr, size_t errstr_size)
{
	const char *type = json_string_value(json_object_get(info, "type"));
	json_t *phases = json_array(), *offs = NULL;
	char ss[32], ts[32];
	km_err_t err;

	/* Every connector of the wave: its target twin exists and is
	 * STOPPED now, before the fence -- found missing after the
	 * authority, the wave would be stuck half cut over. */
	err = record(sc, tc, name, phases, "before", NULL, ss, ts, errstr, errstr_size);
	if (err == KM_ERR_NOT_FOUND)
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"connector '%s' does not exist on the target Connect: run `kmigrate "
				"apply` (it creates it STOPPED), then re-run the cutover",
				name);
	if (!err && strcmp(ts, "STOPPED"))
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"connector '%s' is %s on the target Connect before its cutover: "
				"stop it there (PUT /connectors/%s/stop) and check its side effects "
				"for duplicates, then re-run the cutover",
				name, ts, name);
	if (err)
		goto done;
	if (!type || strcmp(type, "source")) {
		/* sinks stop and move after the authority */
	} else if (dry_run) {
		json_array_append_new(phases, json_pack("{s:s, s:s}", "phase", "would", "what",
							"stop the source connector before the fence"));
	} else if ((err = stop_source(sc, name, timeout_ms, &offs, errstr, errstr_size)) ||
		   (err = record(sc, tc, name, phases, "source-stopped",
				 json_pack("{s:O}", "source_offsets", offs), ss, ts, errstr,
				 errstr_size))) {
		goto done;
	}
	json_array_append_new(out, json_pack("{s:s, s:s?, s:o}", "name", name, "type", type,
					     "phases", phases));
	phases = NULL;
done:
	json_decref(phases);
	json_decref(offs);
	return err;
}

km_err_t km_connect_cutover(const km_plan_t *plan, km_kafka_t *ks, km_kafka_t *kt, const char *wn,
			    bool stop_sources, bool dry_run, int stop_timeout_ms, json_t **evidencep,
			    char *errstr, size_t errstr_size)
{
	const km_plan_wave_t *w = km_plan_wave(plan, wn);
	km_connect_t *sc = NULL, *tc = NULL;
	json_t *conns = NULL, *out = json_array(), *cn;
	km_err_t err;
	size_t i;

	*evidencep = NULL;
	if ((err = wave_open(plan, wn, true, &stop_timeout_ms, &sc, &tc, &conns, errstr,
			     errstr_size)))
		goto done;
	json_array_foreach(conns, i, cn)
	{
		const char *name = json_string_value(json_object_get(cn, "name"));
		if (stop_sources)
			err = stop_early(sc, tc, name, cn, dry_run, stop_timeout_ms, out, errstr,
					 errstr_size);
		else
			err = cut_one(plan, ks, kt, w, sc, tc, name, cn, dry_run, stop_timeout_ms,
				      out, errstr, errstr_size);
		if (err)
			goto done;
	}
	*evidencep = json_pack("{s:o}", "connectors", out);
	out = NULL;
done:
	json_decref(conns);
	json_decref(out);
	km_connect_close(sc);
	km_connect_close(tc);
	return err;
}

/* ---- the saved design --------------------------------------------------------------- */

json_t *km_connect_design_masked(const json_t *designs)
{
	json_t *out = json_array(), *d;
	size_t i;

	json_array_foreach(designs, i, d)
	{
		json_t *m = json_deep_copy(d);
		json_object_set_new(m, "config", km_connect_mask_config(json_object_get(d, "config")));
		json_array_append_new(out, m);
	}
	return out;
}

km_err_t km_connect_design_check(const json_t *saved, const json_t *live, char *errstr,
				 size_t errstr_size)
{
	json_t *m = km_connect_design_masked(live), *d;
	km_err_t err = KM_ERR_OK;
	size_t i;

	json_array_foreach(m, i, d)
	{
		const char *name = json_string_value(json_object_get(d, "name"));
		json_t *s = NULL, *x;
		size_t j;
		json_array_foreach((json_t *)saved, j, x) if (!strcmp(json_string_value(json_object_get(x, "name")), name)) s = x;
		if (!s || !json_equal(json_object_get(s, "config"), json_object_get(d, "config"))) {
			err = km_seterr(errstr, errstr_size, KM_ERR_CONFLICT,
					"connector '%s' on the source Connect %s since the design was "
					"saved: run `kmigrate plan` again and review it",
					name, s ? "changed" : "appeared");
			break;
		}
	}
	if (!err && json_array_size(saved) != json_array_size(m))
		err = km_seterr(errstr, errstr_size, KM_ERR_CONFLICT,
				"the source Connect runs %zu in-scope connector(s), the saved design "
				"has %zu: run `kmigrate plan` again and review it",
				json_array_size(m), json_array_size(saved));
	json_decref(m);
	return err;
}

/* ---- rollback after the authority moved ---------------------------------------------- */

static bool is_type(const json_t *c, const char *type)
{
	const char *t = json_string_value(json_object_get(c, "type"));
	return t && !strcmp(t, type);
}

/* Stops the TARGET connector (the one the cutover resumed) and waits until
 * it is STOPPED, task-less, its offsets stable: stop_source() pointed at
 * the other worker. */
static km_err_t stop_target(km_connect_t *tc, const char *name, int timeout_ms, json_t **offp,
			    char *errstr, size_t errstr_size)
{
	km_err_t err = stop_source(tc, name, timeout_ms, offp, errstr, errstr_size);
	if (err == KM_ERR_NOGO)
		/* stop_source's message speaks of the source side */
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"connector '%s' on the target Connect did not stop within %d ms "
				"(or its offsets did not settle): the source one stays STOPPED; "
				"find why in the target worker's log, then re-run the rollback",
				name, timeout_ms);
	return err;
}

km_err_t km_connect_rollback_stop(const km_plan_t *plan, const char *wn, bool sinks,
				  bool dry_run, int stop_timeout_ms, json_t **evidencep,
				  char *errstr, size_t errstr_size)
{
	km_connect_t *sc = NULL, *tc = NULL;
	json_t *conns = NULL, *out = json_array(), *cn, *phases = NULL, *offs = NULL;
	km_err_t err;
	size_t i;

	*evidencep = NULL;
	if ((err = wave_open(plan, wn, false, &stop_timeout_ms, &sc, &tc, &conns, errstr,
			     errstr_size)))
		goto done;
	json_array_foreach(conns, i, cn)
	{
		const char *name = json_string_value(json_object_get(cn, "name"));
		char ss[32], ts[32];

		if (is_type(cn, "sink") != sinks)
			continue;
		phases = json_array();
		err = record(sc, tc, name, phases, "before", NULL, ss, ts, errstr, errstr_size);
		if (err == KM_ERR_NOT_FOUND)
			/* the cutover needed it; gone now, nothing runs there */
			err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
					"connector '%s' of wave '%s' is gone from the target Connect: "
					"its position there is lost; look at the target worker, then "
					"set the source connector's offsets by hand (PATCH "
					"/connectors/%s/offsets) before re-running the rollback",
					name, wn, name);
		if (err)
			goto done;
		if (dry_run) {
			json_array_append_new(phases,
					      json_pack("{s:s, s:s}", "phase", "would", "what",
							"stop the target connector, wait until STOPPED "
							"with stable offsets"));
		} else {
			/* The source side stays as the cutover left it: STOPPED.
			 * Stopping the target first is the safe direction even
			 * when someone resumed the source by hand (checked in
			 * connectors-back, before its offsets are written). */
			if ((err = stop_target(tc, name, stop_timeout_ms, &offs, errstr,
					       errstr_size)) ||
			    (err = record(sc, tc, name, phases, "target-stopped",
					  json_pack("{s:O}", "target_offsets", offs), ss, ts, errstr,
					  errstr_size)))
				goto done;
			json_decref(offs);
			offs = NULL;
		}
		json_array_append_new(out, json_pack("{s:s, s:O?, s:o}", "name", name, "type",
						     json_object_get(cn, "type"), "phases", phases));
		phases = NULL;
	}
	*evidencep = json_pack("{s:o}", "connectors", out);
	out = NULL;
done:
	json_decref(conns);
	json_decref(out);
	json_decref(phases);
	json_decref(offs);
	km_connect_close(sc);
	km_connect_close(tc);
	return err;
}

/* The source sink's positions: its TARGET group's committed positions
 * translated back (km_offsets_translate_back, as offsets-back does for
 * every group), the wave's partitions; PATCH body and proof. */
static km_err_t sink_positions_back(const km_plan_t *plan, km_kafka_t *ks, km_kafka_t *kt,
				    const char *name, const char *group, const json_t *parts,
				    json_t **bodyp, json_t **proofp, char *errstr,
				    size_t errstr_size)
{
	json_t *g = NULL, *row, *offs = json_array(), *proof = json_array();
	km_err_t err;
	size_t j;

	*bodyp = *proofp = NULL;
	if ((err = km_offsets_translate_back(plan, ks, kt, group, parts, &g, errstr, errstr_size)))
		goto done;
	json_array_foreach(json_object_get(g, "partitions"), j, row)
	{
		const char *st = json_string_value(json_object_get(row, "status"));
		if (st && !strcmp(st, "no-commit"))
			continue; /* the source connector keeps its own position */
		if (!st || strcmp(st, "translated") ||
		    !json_is_integer(json_object_get(row, "source_offset"))) {
			err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
					"sink connector '%s' (group '%s'): its target position %lld on "
					"'%s'[%d] did not translate back (%s): nothing written, both "
					"connectors STOPPED; look at both logs, then re-run the "
					"rollback",
					name, group,
					(long long)json_integer_value(json_object_get(row, "committed")),
					json_string_value(json_object_get(row, "target_topic")),
					(int)json_integer_value(json_object_get(row, "partition")),
					st ? st : "unknown");
			goto done;
		}
		json_array_append_new(
			offs, json_pack("{s:{s:O, s:O}, s:{s:O}}", "partition", "kafka_topic",
					json_object_get(row, "topic"), "kafka_partition",
					json_object_get(row, "partition"), "offset", "kafka_offset",
					json_object_get(row, "source_offset")));
		json_array_append(proof, row);
	}
	*bodyp = json_pack("{s:o}", "offsets", offs);
	*proofp = proof;
	offs = proof = NULL;
done:
	json_decref(g);
	json_decref(offs);
	json_decref(proof);
	return err;
}

km_err_t km_connect_rollback_offsets(const km_plan_t *plan, km_kafka_t *ks, km_kafka_t *kt,
				     const char *wn, const json_t *parts, bool moved,
				     bool dry_run, int stop_timeout_ms, json_t **evidencep,
				     char *errstr, size_t errstr_size)
{
	km_connect_t *sc = NULL, *tc = NULL;
	json_t *conns = NULL, *out = json_array(), *cn, *phases = NULL;
	json_t *offs = NULL, *body = NULL, *proof = NULL;
	char *p = NULL, *group = NULL;
	km_err_t err;
	size_t i;

	*evidencep = NULL;
	if ((err = wave_open(plan, wn, false, &stop_timeout_ms, &sc, &tc, &conns, errstr,
			     errstr_size)))
		goto done;
	json_array_foreach(conns, i, cn)
	{
		const char *name = json_string_value(json_object_get(cn, "name"));
		bool sink = is_type(cn, "sink");
		char ss[32], ts[32];

		phases = json_array();
		if ((err = record(sc, tc, name, phases, "before", NULL, ss, ts, errstr,
				  errstr_size)))
			goto done;
		if (!moved) {
			/* The cutover stopped before its connectors step: the
			 * target twin never ran in this attempt (apply left it
			 * STOPPED, the step resumes it only after moving its
			 * position), and the source one holds the position: a
			 * sink kept consuming the fenced source topic and now
			 * consumes what the reverse copy wrote there.  One
			 * running on the target now was resumed by hand: what it
			 * consumed or wrote is unknown. */
			if (strcmp(ts, "STOPPED")) {
				err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
						"connector '%s' is %s on the target Connect, but the "
						"cutover never moved it there (it stopped before its "
						"connectors step): someone resumed it; stop it, check "
						"its side effects for duplicates, then re-run the "
						"rollback",
						name, ts);
				goto done;
			}
			if (sink)
				group = sink_group(plan, name, json_object_get(cn, "config"));
			json_array_append_new(
				phases,
				json_pack("{s:s, s:s, s:s, s:I, s:s?, s:s}", "phase", "not-moved",
					  "source_state", ss, "target_state", ts, "at",
					  (json_int_t)km_now_ms(), "group", group, "why",
					  "the cutover stopped before its connectors step: the "
					  "target connector never ran, the source one keeps its "
					  "own position; nothing written"));
			goto next;
		}
		if (dry_run) {
			json_array_append_new(
				phases, json_pack("{s:s, s:s}", "phase", "would", "what",
						  sink ? "stop the target sink, translate its group "
							 "back, PATCH the source connector's offsets"
						       : "copy the target connector's source "
							 "positions verbatim to the source connector"));
			goto next;
		}
		/* The target sink read the target until now (it appended what
		 * the applications wrote there): stopped here, after the
		 * reverse copy, its committed position is final. */
		if (sink) {
			if ((err = stop_target(tc, name, stop_timeout_ms, &offs, errstr,
					       errstr_size)) ||
			    (err = record(sc, tc, name, phases, "target-stopped",
					  json_pack("{s:O}", "target_offsets", offs), ss, ts, errstr,
					  errstr_size)))
				goto done;
		} else if ((err = get_offsets(tc, name, &offs, errstr, errstr_size))) {
			goto done;
		}
		/* KIP-875 writes offsets only on a STOPPED connector, and a
		 * source connector running again means someone resumed it: its
		 * position is no longer the one the cutover left. */
		if (strcmp(ts, "STOPPED") || strcmp(ss, "STOPPED")) {
			err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
					"connector '%s' is %s on the source Connect and %s on the "
					"target: both must be STOPPED before its position goes back; "
					"stop the running one (check its side effects for duplicates), "
					"then re-run the rollback",
					name, ss, ts);
			goto done;
		}
		if (sink) {
			group = sink_group(plan, name, json_object_get(cn, "config"));
			if ((err = sink_positions_back(plan, ks, kt, name, group, parts, &body,
						       &proof, errstr, errstr_size)))
				goto done;
		} else {
			/* The source system's positions are the same on both
			 * sides: the target's, where it stopped, verbatim. */
			body = json_pack("{s:O}", "offsets", offs);
			proof = json_pack("{s:s}", "copied", "verbatim");
		}
		if (json_array_size(json_object_get(body, "offsets"))) {
			p = path_of("/connectors/%s/offsets%s", name, NULL);
			if ((err = km_connect_call(sc, "PATCH", p, body, NULL, errstr, errstr_size)))
				goto done;
		}
		if ((err = record(sc, tc, name, phases, "offsets-back",
				  json_pack("{s:O, s:s?, s:O}", "written",
					    json_object_get(body, "offsets"), "group", group,
					    "translation", proof),
				  ss, ts, errstr, errstr_size)))
			goto done;
	next:
		json_array_append_new(out, json_pack("{s:s, s:O?, s:o}", "name", name, "type",
						     json_object_get(cn, "type"), "phases", phases));
		phases = NULL;
		json_decref(offs);
		json_decref(body);
		json_decref(proof);
		offs = body = proof = NULL;
		free(p);
		free(group);
		p = group = NULL;
	}
	*evidencep = json_pack("{s:o, s:b}", "connectors", out, "moved", moved);
	out = NULL;
done:
	json_decref(conns);
	json_decref(out);
	json_decref(phases);
	json_decref(offs);
	json_decref(body);
	json_decref(proof);
	free(p);
	free(group);
	km_connect_close(sc);
	km_connect_close(tc);
	return err;
}

/* ---- rollback before the authority moved --------------------------------------------- */

km_err_t km_connect_resume_sources(const km_plan_t *plan, const char *wn, bool sinks_too,
				   bool dry_run, json_t **evidencep, char *errstr, size_t errstr_size)
{
	const km_plan_wave_t *w = km_plan_wave(plan, wn);
	km_connect_t *sc = NULL, *tc = NULL;
	json_t *all = NULL, *out = json_array(), *e;
	const char *name;
	km_err_t err = KM_ERR_OK;

	*evidencep = NULL;
	if (!w)
		return km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG, "no wave '%s'", wn);
	if (!plan->source.connect_url || !plan->target.connect_url)
		goto ok;
	if ((err = open_both(plan, &sc, &tc, &all, errstr, errstr_size)))
		goto done;
	json_object_foreach(all, name, e)
	{
		json_t *info = json_object_get(e, "info"), *phases, *ts;
		const char *type = json_string_value(json_object_get(info, "type"));
		char ss[32], tt[32], *p;
		size_t i, in = 0;
		json_t *t;

		if (!type || (strcmp(type, "source") && !(sinks_too && !strcmp(type, "sink"))))
			continue;
		ts = connector_topics(sc, name, json_object_get(info, "config"));
		json_array_foreach(ts, i, t) in += km_plan_wave_has_topic(plan, w, json_string_value(t));
		json_decref(ts);
		if (!in)
			continue;
		phases = json_array();
		if ((err = record(sc, tc, name, phases, "before", NULL, ss, tt, errstr, errstr_size))) {
			json_decref(phases);
			goto done;
		}
		/* Before the authority moved the target twin never ran; one
		 * running now must not get a second writer beside it. */
		if (strcmp(tt, "STOPPED")) {
			json_decref(phases);
			err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
					"connector '%s' is %s on the target Connect: the source one "
					"stays STOPPED (both would run); stop the target one, then "
					"re-run the rollback",
					name, tt);
			goto done;
		}
		if (!dry_run && strcmp(ss, "RUNNING")) {
			p = path_of("/connectors/%s/resume%s", name, NULL);
			err = km_connect_call(sc, "PUT", p, NULL, NULL, errstr, errstr_size);
			free(p);
			if (!err)
				err = wait_state(sc, name, "RUNNING", STOP_TIMEOUT_MS, errstr,
						 errstr_size);
			if (!err)
				err = record(sc, tc, name, phases, "source-resumed", NULL, ss, tt,
					     errstr, errstr_size);
			if (err) {
				json_decref(phases);
				goto done;
			}
		}
		json_array_append_new(out, json_pack("{s:s, s:s, s:o}", "name", name, "type", type,
						     "phases", phases));
	}
ok:
	*evidencep = json_pack("{s:o}", "connectors", out);
	out = NULL;
done:
	json_decref(all);
	json_decref(out);
	km_connect_close(sc);
	km_connect_close(tc);
	return err;
}
