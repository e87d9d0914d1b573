#include "mapstore.h"

#include <inttypes.h>
#include <stdbool.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Longest silence a reader waits for before it calls the target stuck: the
 * deadline moves with every record, so a long map is never cut short. */
#define READ_IDLE_MS 60000

void km_mapstore_names(const char *migration, const char *direction, km_mapstore_names_t *n)
{
	/* Room for the longest suffix: the names never truncate. */
	char pfx[KM_MAPSTORE_NAME_MAX - 16];

	if (direction && *direction)
		snprintf(pfx, sizeof(pfx), "__kmigrate.%s.%s", migration, direction);
	else
		snprintf(pfx, sizeof(pfx), "__kmigrate.%s", migration);
	snprintf(n->tasks, sizeof(n->tasks), "%s.tasks", pfx);
	snprintf(n->progress, sizeof(n->progress), "%s.progress", pfx);
	snprintf(n->offmap, sizeof(n->offmap), "%s.offsetmap", pfx);
}

int km_mapstore_task_of(const char *topic, int partition, int ntasks, int group)
{
	uint32_t h = 2166136261u;
	for (const char *p = topic; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	/* The topic's hash picks where its partition 0 goes, the partitions
	 * then follow round-robin: a topic's partitions spread evenly over
	 * the tasks (a hash per partition left some tasks with twice the
	 * work of others, and the slowest task sets the copy's pace), and a
	 * partition's task still depends on nothing but its own name. */
	if (group < 1)
		group = 1;
	return (int)((h % (uint32_t)ntasks + (uint32_t)(partition / group)) % (uint32_t)ntasks);
}

/* ---- encodings -------------------------------------------------------------- */

static int fit(int n, size_t size)
{
	return n < 0 || (size_t)n >= size ? -1 : n;
}

int km_mapstore_key_encode(const char *topic, int partition, char *buf, size_t size)
{
	char num[16];
	size_t tl = strlen(topic);
	int nl = snprintf(num, sizeof(num), "%d", partition);

	if (partition < 0 || strchr(topic, ':') || tl + 1 + (size_t)nl + 1 > size)
		return -1;
	memcpy(buf, topic, tl);
	buf[tl] = ':';
	memcpy(buf + tl + 1, num, (size_t)nl + 1);
	return (int)(tl + 1 + (size_t)nl);
}

int km_mapstore_progress_encode(const km_mapstore_progress_t *p, char *buf, size_t size)
{
	/* Topic ids are base64: nothing in them needs escaping.  Anything
	 * else would be written as invalid JSON, so refuse it. */
	for (const char *c = p->topic_id; *c; c++)
		if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
			return -1;
	return fit(snprintf(buf, size, "{\"next\":%" PRId64 ",\"tgt_next\":%" PRId64
			    ",\"topic_id\":\"%s\"}",
			    p->next, p->tgt_next, p->topic_id),
		   size);
}

int km_mapstore_run_encode(const km_offrun_t *run, char *buf, size_t size)
{
	return fit(snprintf(buf, size, "{\"s\":%" PRId64 ",\"t\":%" PRId64 ",\"n\":%" PRId64 "}",
			    run->src_first, run->tgt_first, run->count),
		   size);
}

/* ---- decodings -------------------------------------------------------------- */

km_err_t km_mapstore_key_decode(const void *key, size_t len, char *topic, size_t topic_size,
				int *partition, char *errstr, size_t errstr_size)
{
	const char *k = key, *colon = NULL;
	int64_t p = 0;

	if (!k || len == 0)
		return km_seterr(errstr, errstr_size, KM_ERR_BUG, "the key is empty");
	for (size_t i = 0; i < len; i++)
		if (k[i] == ':')
			colon = k + i;
	if (!colon || colon == k || colon == k + len - 1)
		return km_seterr(errstr, errstr_size, KM_ERR_BUG,
				 "the key '%.*s' is not 'topic:partition'", (int)(len > 200 ? 200 : len),
				 k);
	for (const char *c = colon + 1; c < k + len; c++) {
		if (*c < '0' || *c > '9' || p > INT32_MAX / 10)
			return km_seterr(errstr, errstr_size, KM_ERR_BUG,
					 "the key '%.*s' has no valid partition number",
					 (int)(len > 200 ? 200 : len), k);
		p = p * 10 + (*c - '0');
	}
	if (p > INT32_MAX || (size_t)(colon - k) >= topic_size)
		return km_seterr(errstr, errstr_size, KM_ERR_BUG, "the key '%.*s' is out of range",
				 (int)(len > 200 ? 200 : len), k);
	memcpy(topic, k, (size_t)(colon - k));
	topic[colon - k] = '\0';
	*partition = (int)p;
	return KM_ERR_OK;
}

/* Parses val as one JSON object whose keys are all in `allowed`. */
static km_err_t load_object(const void *val, size_t len, const char *const *allowed,
			    json_t **objp, char *errstr, size_t errstr_size)
{
	json_error_t je;
	json_t *o;
	const char *name;
	json_t *v;

	*objp = NULL;
	if (!val || len == 0)
		return km_seterr(errstr, errstr_size, KM_ERR_BUG, "the value is empty");
	if (!(o = json_loadb(val, len, JSON_REJECT_DUPLICATES, &je)))
		return km_seterr(errstr, errstr_size, KM_ERR_BUG, "the value is not JSON: %s",
				 je.text);
	if (!json_is_object(o)) {
		json_decref(o);
		return km_seterr(errstr, errstr_size, KM_ERR_BUG, "the value is not a JSON object");
	}
	json_object_foreach(o, name, v) {
		int known = 0;
		for (const char *const *a = allowed; *a; a++)
			known |= !strcmp(*a, name);
		if (!known) {
			/* The name belongs to o: format before releasing it. */
			km_err_t err = km_seterr(errstr, errstr_size, KM_ERR_BUG,
						 "the value has an unknown field '%s'", name);
			json_decref(o);
			return err;
		}
	}
	*objp = o;
	return KM_ERR_OK;
}

/* An integer field that must be present and >= min. */
static km_err_t int_field(json_t *o, const char *name, int64_t min, int64_t *out, char *errstr,
			  size_t errstr_size)
{
	json_t *v = json_object_get(o, name);

	if (!v)
		return km_seterr(errstr, errstr_size, KM_ERR_BUG, "field '%s' is missing", name);
	if (!json_is_integer(v))
		return km_seterr(errstr, errstr_size, KM_ERR_BUG, "field '%s' is not an integer",
				 name);
	if (json_integer_value(v) < min)
		return km_seterr(errstr, errstr_size, KM_ERR_BUG, "field '%s' is %lld, below %lld",
				 name, (long long)json_integer_value(v), (long long)min);
	*out = json_integer_value(v);
	return KM_ERR_OK;
}

km_err_t km_mapstore_progress_decode(const void *val, size_t len, km_mapstore_progress_t *p,
				     char *errstr, size_t errstr_size)
{
	static const char *const allowed[] = {"next", "tgt_next", "topic_id", NULL};
	json_t *o, *id;
	km_err_t err;

	memset(p, 0, sizeof(*p));
	if ((err = load_object(val, len, allowed, &o, errstr, errstr_size)))
		return err;
	if ((err = int_field(o, "next", 0, &p->next, errstr, errstr_size)) ||
	    (err = int_field(o, "tgt_next", 0, &p->tgt_next, errstr, errstr_size)))
		goto done;
	id = json_object_get(o, "topic_id");
	if (!id || !json_is_string(id))
		err = km_seterr(errstr, errstr_size, KM_ERR_BUG,
				"field 'topic_id' is %s", id ? "not a string" : "missing");
	else if (json_string_length(id) >= sizeof(p->topic_id))
		err = km_seterr(errstr, errstr_size, KM_ERR_BUG, "field 'topic_id' is too long");
	else
		snprintf(p->topic_id, sizeof(p->topic_id), "%s", json_string_value(id));
done:
	json_decref(o);
	return err;
}

km_err_t km_mapstore_run_decode(const void *val, size_t len, km_offrun_t *run, char *errstr,
				size_t errstr_size)
{
	static const char *const allowed[] = {"s", "t", "n", NULL};
	json_t *o;
	km_err_t err;

	memset(run, 0, sizeof(*run));
	if ((err = load_object(val, len, allowed, &o, errstr, errstr_size)))
		return err;
	if (!(err = int_field(o, "s", 0, &run->src_first, errstr, errstr_size)) &&
	    !(err = int_field(o, "t", 0, &run->tgt_first, errstr, errstr_size)) &&
	    !(err = int_field(o, "n", 1, &run->count, errstr, errstr_size)) &&
	    (run->src_first > INT64_MAX - run->count || run->tgt_first > INT64_MAX - run->count))
		err = km_seterr(errstr, errstr_size, KM_ERR_BUG,
				"the run ends beyond the largest offset");
	json_decref(o);
	return err;
}

/* ---- authority ---------------------------------------------------------------- */

void km_mapstore_authority_topic(const char *migration, char *buf, size_t size)
{
	snprintf(buf, size, "__kmigrate.%s.authority", migration);
}

int km_mapstore_authority_encode(const km_mapstore_authority_t *a, char *buf, size_t size)
{
	if (strcmp(a->authority, "target") && strcmp(a->authority, "source"))
		return -1;
	/* jansson escapes the wave name; PRESERVE_ORDER keeps the pinned
	 * field order. */
	json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "authority", a->authority, "wave", a->wave,
			      "at", (json_int_t)a->at, "run_id", (json_int_t)a->run_id);
	char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	int n = txt ? fit(snprintf(buf, size, "%s", txt), size) : -1;
	free(txt);
	json_decref(o);
	return n;
}

km_err_t km_mapstore_authority_decode(const void *val, size_t len, km_mapstore_authority_t *a,
				      char *errstr, size_t errstr_size)
{
	static const char *const allowed[] = {"authority", "wave", "at", "run_id", NULL};
	json_t *o;
	const char *au, *w;
	km_err_t err;

	memset(a, 0, sizeof(*a));
	if ((err = load_object(val, len, allowed, &o, errstr, errstr_size)))
		return err;
	au = json_string_value(json_object_get(o, "authority"));
	w = json_string_value(json_object_get(o, "wave"));
	if (!au || (strcmp(au, "target") && strcmp(au, "source")))
		err = km_seterr(errstr, errstr_size, KM_ERR_BUG,
				"field 'authority' is missing or not \"target\"/\"source\"");
	else if (!w || !*w || strlen(w) >= sizeof(a->wave))
		err = km_seterr(errstr, errstr_size, KM_ERR_BUG,
				"field 'wave' is missing, empty or too long");
	else if (!(err = int_field(o, "at", 0, &a->at, errstr, errstr_size)) &&
		 !(err = int_field(o, "run_id", 1, &a->run_id, errstr, errstr_size))) {
		snprintf(a->authority, sizeof(a->authority), "%s", au);
		snprintf(a->wave, sizeof(a->wave), "%s", w);
	}
	json_decref(o);
	return err;
}

/* ---- what a reader read ------------------------------------------------------ */

typedef struct entry_s {
	char *key; /* "topic:partition" (owned) */
	km_offmap_t m;
	km_mapstore_progress_t progress;
	int has_progress;
} entry_t;

struct km_mapstore_s {
	entry_t *e;
	size_t ne, cap;
	json_t *index; /* key -> position in e */
	km_offmap_t empty;
	json_t *authority; /* source topic -> latest record (kind 'a') */
	int layout_group;  /* the first layout record's (kind 'l'), 0: none */
};

km_mapstore_t *km_mapstore_new(void)
{
	km_mapstore_t *ms = km_calloc(1, sizeof(*ms));
	ms->index = json_object();
	return ms;
}

void km_mapstore_destroy(km_mapstore_t *ms)
{
	if (!ms)
		return;
	for (size_t i = 0; i < ms->ne; i++) {
		free(ms->e[i].key);
		km_offmap_clear(&ms->e[i].m);
	}
	free(ms->e);
	json_decref(ms->index);
	json_decref(ms->authority);
	free(ms);
}

static entry_t *entry(const km_mapstore_t *cms, const char *key, int add)
{
	km_mapstore_t *ms = (km_mapstore_t *)cms;
	json_t *at;

	if ((at = json_object_get(ms->index, key)))
		return &ms->e[json_integer_value(at)];
	if (!add)
		return NULL;
	if (ms->ne == ms->cap) {
		ms->cap = ms->cap ? ms->cap * 2 : 64;
		ms->e = km_realloc(ms->e, ms->cap * sizeof(*ms->e));
	}
	entry_t *e = &ms->e[ms->ne];
	memset(e, 0, sizeof(*e));
	e->key = km_strdup(key);
	json_object_set_new(ms->index, key, json_integer((json_int_t)ms->ne++));
	return e;
}

km_err_t km_mapstore_feed(km_mapstore_t *ms, int kind, const char *topic, int partition,
			  int64_t offset, const void *key, size_t key_len, const void *val,
			  size_t val_len, char *errstr, size_t errstr_size)
{
	char stopic[KM_MAPSTORE_KEY_MAX], skey[KM_MAPSTORE_KEY_MAX], why[400];
	int sp;
	km_offrun_t run;
	km_mapstore_progress_t pr;
	km_err_t err;
	entry_t *e;

	if ((err = km_mapstore_key_decode(key, key_len, stopic, sizeof(stopic), &sp, why,
					  sizeof(why))) ||
	    (kind == 'o' ? (err = km_mapstore_run_decode(val, val_len, &run, why, sizeof(why)))
			 : (err = km_mapstore_progress_decode(val, val_len, &pr, why, sizeof(why)))))
		goto corrupt;
	km_mapstore_key_encode(stopic, sp, skey, sizeof(skey));
	e = entry(ms, skey, 1);
	if (kind == 'p') {
		/* Compacted: the last committed value is the one that counts. */
		e->progress = pr;
		e->has_progress = 1;
		return KM_ERR_OK;
	}
	if (km_offmap_add(&e->m, run.src_first, run.tgt_first, run.count)) {
		const km_offrun_t *last = &e->m.runs[e->m.cnt - 1];
		snprintf(why, sizeof(why),
			 "the run {s:%lld, t:%lld, n:%lld} of '%s'[%d] overlaps or precedes the "
			 "previous one {s:%lld, t:%lld, n:%lld}",
			 (long long)run.src_first, (long long)run.tgt_first, (long long)run.count,
			 stopic, sp, (long long)last->src_first, (long long)last->tgt_first,
			 (long long)last->count);
		err = KM_ERR_BUG;
		goto corrupt;
	}
	return KM_ERR_OK;
corrupt:
	return km_seterr(errstr, errstr_size, err,
			 "the replication state on the target is corrupt: record at offset %lld of "
			 "'%s'[%d]: %s (the offset map cannot be trusted: stop every replicator of "
			 "this migration and report it; do not translate offsets or validate from it)",
			 (long long)offset, topic, partition, why);
}

const km_offmap_t *km_mapstore_offmap(const km_mapstore_t *ms, const char *topic, int partition)
{
	char key[KM_MAPSTORE_KEY_MAX];
	entry_t *e;

	if (km_mapstore_key_encode(topic, partition, key, sizeof(key)) < 0 ||
	    !(e = entry(ms, key, 0)))
		return &ms->empty;
	return &e->m;
}

const km_mapstore_progress_t *km_mapstore_progress(const km_mapstore_t *ms, const char *topic,
						   int partition)
{
	char key[KM_MAPSTORE_KEY_MAX];
	entry_t *e;

	if (km_mapstore_key_encode(topic, partition, key, sizeof(key)) < 0 ||
	    !(e = entry(ms, key, 0)) || !e->has_progress)
		return NULL;
	return &e->progress;
}

size_t km_mapstore_count(const km_mapstore_t *ms)
{
	return ms->ne;
}

/* ---- readers ------------------------------------------------------------------ */

/* One authority record: compacted, so the last one per key counts.  A
 * record that does not decode is an error, never skipped: a skipped one
 * could hide that a topic's authority moved. */
static km_err_t feed_authority(km_mapstore_t *ms, const char *topic, const rd_kafka_message_t *m,
			       char *errstr, size_t errstr_size)
{
	km_mapstore_authority_t a;
	char why[400], key[KM_MAPSTORE_KEY_MAX];
	km_err_t err;

	if (!m->key || !m->key_len || m->key_len >= sizeof(key))
		return km_seterr(errstr, errstr_size, KM_ERR_BUG,
				 "'%s'[%d]@%lld: the key is empty or too long for a topic name",
				 topic, (int)m->partition, (long long)m->offset);
	if ((err = km_mapstore_authority_decode(m->payload, m->len, &a, why, sizeof(why))))
		return km_seterr(errstr, errstr_size, err, "'%s'[%d]@%lld: %s", topic,
				 (int)m->partition, (long long)m->offset, why);
	memcpy(key, m->key, m->key_len);
	key[m->key_len] = '\0';
	if (!ms->authority)
		ms->authority = json_object();
	json_object_set_new(ms->authority, key,
			    json_pack("{s:s, s:s, s:I, s:I}", "authority", a.authority, "wave",
				      a.wave, "at", (json_int_t)a.at, "run_id",
				      (json_int_t)a.run_id));
	return KM_ERR_OK;
}

/* Reads partitions [first, first+n) of topic -- all at once, with
 * read_committed -- each to its end, feeding every record to ms.  n < 0:
 * every partition of the topic (from its metadata). */
static km_err_t read_to_end(const km_kafka_endpoint_t *tgt, const char *topic, int first, int n,
			    int kind, km_mapstore_t *ms, char *errstr, size_t errstr_size)
{
	/* fetch.wait.max.ms 10: every partition is read to its end, and the
	 * end shows only on a fetch that returns nothing, which would
	 * otherwise wait out the broker's 500 ms (this wins over the plan's
	 * pass-through properties: it is how the store is read, not a
	 * tuning). */
	const char *props[] = {"group.id", "kmigrate-mapstore-reader", "enable.auto.commit", "false",
			       "isolation.level", "read_committed", "enable.partition.eof", "true",
			       "auto.offset.reset", "error", "fetch.wait.max.ms", "10", NULL};
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *c = NULL;
	rd_kafka_topic_partition_list_t *tp = NULL;
	const struct rd_kafka_metadata *md = NULL;
	char rerr[512];
	char *eof = NULL;
	int left;
	int64_t deadline;
	km_err_t err;

	if ((err = km_kafka_conf_new(tgt, props, &conf, errstr, errstr_size)))
		goto done;
	if (!(c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof(rerr)))) {
		rd_kafka_conf_destroy(conf);
		err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				"cannot create a consumer on the target: %s", rerr);
		goto done;
	}
	/* The topic's metadata first, always: assigned before its leader is
	 * known, a partition's first offset lookup fails and is retried
	 * after 500 ms (librdkafka), which every read of one partition -- a
	 * task's progress, the layout -- paid. */
	{
		rd_kafka_topic_t *rkt = rd_kafka_topic_new(c, topic, NULL);
		rd_kafka_resp_err_t me = rd_kafka_metadata(c, 0, rkt, &md, KM_KAFKA_TIMEOUT_MS);
		rd_kafka_topic_destroy(rkt);
		if (me) {
			err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
					"cannot read the metadata of '%s' on the target: %s", topic,
					rd_kafka_err2str(me));
			goto done;
		}
		if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt < 1) {
			err = km_seterr(errstr, errstr_size, KM_ERR_NOT_FOUND,
					"'%s' does not exist on the target (run `kmigrate replicate` "
					"first)",
					topic);
			goto done;
		}
		if (n < 0) {
			first = 0;
			n = md->topics[0].partition_cnt;
		} else if (first + n > md->topics[0].partition_cnt) {
			err = km_seterr(errstr, errstr_size, KM_ERR_CONFLICT,
					"'%s' on the target has %d partitions, partition %d was "
					"expected (a kmigrate topic changed by hand?)",
					topic, md->topics[0].partition_cnt, first + n - 1);
			goto done;
		}
	}
	/* One pass over every partition at once: a migration's map is read
	 * in the time of its largest partition, not the sum of them all. */
	tp = rd_kafka_topic_partition_list_new(n);
	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(tp, topic, first + i)->offset =
			RD_KAFKA_OFFSET_BEGINNING;
	if (rd_kafka_assign(c, tp)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA, "cannot assign '%s'", topic);
		goto done;
	}
	eof = km_calloc((size_t)n, 1);
	left = n;
	deadline = km_mono_ms() + READ_IDLE_MS;
	while (left > 0) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
		if (!m) {
			if (km_mono_ms() > deadline) {
				err = km_seterr(errstr, errstr_size, KM_ERR_TIMEOUT,
						"reading '%s' on the target did not reach its end "
						"(%d of %d partitions) after %d s without a record",
						topic, n - left, n, READ_IDLE_MS / 1000);
				goto done;
			}
			continue;
		}
		deadline = km_mono_ms() + READ_IDLE_MS;
		int i = m->partition - first;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (i >= 0 && i < n && !eof[i]) {
				eof[i] = 1;
				left--;
			}
		} else if (m->err) {
			err = km_seterr(errstr, errstr_size,
					m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED
						? KM_ERR_AUTHZ
						: KM_ERR_KAFKA,
					"reading '%s' on the target: %s%s", topic,
					rd_kafka_message_errstr(m),
					m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED
						? " (grant READ on the topic to kmigrate's principal)"
						: "");
		} else if (kind == 'a') {
			err = feed_authority(ms, topic, m, errstr, errstr_size);
		} else if (kind == 'l') {
			int g = 0;
			char why[300];
			if ((err = km_mapstore_layout_decode(m->key, m->key_len, m->payload, m->len,
							     &g, why, sizeof(why))))
				km_seterr(errstr, errstr_size, err, "'%s'[%d]@%lld: %s", topic,
					  (int)m->partition, (long long)m->offset, why);
			else if (!ms->layout_group)
				ms->layout_group = g; /* the first one decides */
		} else {
			err = km_mapstore_feed(ms, kind, topic, m->partition, m->offset, m->key,
					       m->key_len, m->payload, m->len, errstr, errstr_size);
		}
		rd_kafka_message_destroy(m);
		if (err)
			goto done;
	}
done:
	free(eof);
	if (tp)
		rd_kafka_topic_partition_list_destroy(tp);
	if (md)
		rd_kafka_metadata_destroy(md);
	if (c) {
		rd_kafka_consumer_close(c);
		rd_kafka_destroy(c);
	}
	return err;
}

km_err_t km_mapstore_read_offmaps(const km_kafka_endpoint_t *tgt, const char *t_offmap,
				  km_mapstore_t **msp, char *errstr, size_t errstr_size)
{
	km_mapstore_t *ms = km_mapstore_new();
	km_err_t err = read_to_end(tgt, t_offmap, 0, -1, 'o', ms, errstr, errstr_size);

	if (err) {
		km_mapstore_destroy(ms);
		ms = NULL;
	}
	*msp = ms;
	return err;
}

km_err_t km_mapstore_read_progress(const km_kafka_endpoint_t *tgt, const char *t_progress, int k,
				   km_mapstore_t **msp, char *errstr, size_t errstr_size)
{
	km_mapstore_t *ms = km_mapstore_new();
	/* k < 0: every partition (km_mapstore_read_progress_all). */
	km_err_t err = read_to_end(tgt, t_progress, k < 0 ? 0 : k, k < 0 ? -1 : 1, 'p', ms, errstr,
				   errstr_size);

	if (err) {
		km_mapstore_destroy(ms);
		ms = NULL;
	}
	*msp = ms;
	return err;
}

km_err_t km_mapstore_read_authority(const km_kafka_endpoint_t *tgt, const char *t_authority,
				    json_t **recordsp, char *errstr, size_t errstr_size)
{
	km_mapstore_t *ms = km_mapstore_new();
	km_err_t err = read_to_end(tgt, t_authority, 0, -1, 'a', ms, errstr, errstr_size);

	*recordsp = NULL;
	if (!err)
		*recordsp = ms->authority ? json_incref(ms->authority) : json_object();
	km_mapstore_destroy(ms);
	return err;
}

km_err_t km_mapstore_load_authority(const char *migration, const km_kafka_endpoint_t *tgt,
				    json_t **recordsp, char *errstr, size_t errstr_size)
{
	char topic[KM_MAPSTORE_NAME_MAX];
	km_kafka_t *kt = NULL;
	km_err_t err;

	*recordsp = NULL;
	if ((err = km_kafka_open(tgt, 0, &kt, errstr, errstr_size)))
		return err;
	km_mapstore_authority_topic(migration, topic, sizeof(topic));
	err = km_mapstore_read_authority(km_kafka_endpoint(kt), topic, recordsp, errstr,
					 errstr_size);
	km_kafka_close(kt);
	/* No topic: no cutover wrote a record yet, which is a known answer
	 * (source), unlike a read that failed. */
	if (err == KM_ERR_NOT_FOUND) {
		*recordsp = json_object();
		err = KM_ERR_OK;
	}
	return err;
}

const json_t *km_mapstore_authority_target(const json_t *records, const char *topic)
{
	const json_t *r = json_object_get(records, topic);
	const char *a = json_string_value(json_object_get(r, "authority"));

	return a && !strcmp(a, "target") ? r : NULL;
}

km_err_t km_mapstore_read_progress_all(const km_kafka_endpoint_t *tgt, const char *t_progress,
				       km_mapstore_t **msp, char *errstr, size_t errstr_size)
{
	return km_mapstore_read_progress(tgt, t_progress, -1, msp, errstr, errstr_size);
}

km_err_t km_mapstore_open(const char *migration, const char *direction,
			  const km_kafka_endpoint_t *tgt, km_mapstore_t **msp, char *errstr,
			  size_t errstr_size)
{
	km_mapstore_names_t names;
	km_kafka_t *kt = NULL;
	km_err_t err;

	*msp = NULL;
	if ((err = km_kafka_open(tgt, 0, &kt, errstr, errstr_size)))
		return err;
	km_mapstore_names(migration, direction, &names);
	err = km_mapstore_read_offmaps(km_kafka_endpoint(kt), names.offmap, msp, errstr,
				       errstr_size);
	km_kafka_close(kt);
	if (err == KM_ERR_NOT_FOUND)
		return km_seterr(errstr, errstr_size, KM_ERR_NOT_FOUND,
				 "no %sreplication state for migration '%s' on the %s (run "
				 "`kmigrate replicate%s` first)",
				 direction && *direction ? "reverse " : "", migration, tgt->role,
				 direction && *direction ? " --reverse --wave W" : "");
	return err;
}

/* ---- layout ----------------------------------------------------------------- */

int km_mapstore_layout_choose(int npartitions, int ntasks)
{
	if (ntasks < 1 || npartitions < KM_MAPSTORE_GROUP_FROM)
		return 1;
	return (npartitions + 8 * ntasks - 1) / (8 * ntasks);
}

int km_mapstore_layout_encode(int group, char *buf, size_t size)
{
	if (group < 1)
		return -1;
	return fit(snprintf(buf, size, "{\"group\":%d}", group), size);
}

km_err_t km_mapstore_layout_decode(const void *key, size_t klen, const void *val, size_t len,
				   int *group, char *errstr, size_t errstr_size)
{
	json_error_t je;
	json_t *v;
	json_int_t g;

	if (!key || klen != strlen(KM_MAPSTORE_LAYOUT_KEY) ||
	    memcmp(key, KM_MAPSTORE_LAYOUT_KEY, klen))
		return km_seterr(errstr, errstr_size, KM_ERR_BUG,
				 "a record that is not the layout (its key is not \"%s\")",
				 KM_MAPSTORE_LAYOUT_KEY);
	if (!val || !(v = json_loadb(val, len, JSON_REJECT_DUPLICATES, &je)))
		return km_seterr(errstr, errstr_size, KM_ERR_BUG, "a layout that is not JSON");
	g = json_integer_value(json_object_get(v, "group"));
	bool ok = json_is_integer(json_object_get(v, "group")) && json_object_size(v) == 1 &&
		  g >= 1 && g <= 1000000000;
	json_decref(v);
	if (!ok)
		return km_seterr(errstr, errstr_size, KM_ERR_BUG,
				 "a layout without a positive integer \"group\" (and nothing else)");
	*group = (int)g;
	return KM_ERR_OK;
}

km_err_t km_mapstore_read_layout(const km_kafka_endpoint_t *tgt, const char *t_tasks, int *group,
				 char *errstr, size_t errstr_size)
{
	km_mapstore_t *ms = km_mapstore_new();
	km_err_t err = read_to_end(tgt, t_tasks, 0, 1, 'l', ms, errstr, errstr_size);

	*group = err ? 0 : ms->layout_group;
	km_mapstore_destroy(ms);
	return err;
}
