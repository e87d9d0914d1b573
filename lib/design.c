#include "design.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Kafka's topic configs and the broker configs that give their defaults
 * (LogConfig's synonyms).  Where the broker config is in milliseconds with
 * coarser fallbacks (log.retention.hours), `fallback` and `scale` say how to
 * derive it.  A topic config whose broker synonym the target does not list
 * at all is not accepted by the target's Kafka version. */
static const struct synonym {
	const char *topic;
	const char *broker;
	const char *fallback1;
	int64_t scale1;
	const char *fallback2;
	int64_t scale2;
} synonyms[] = {
	{"cleanup.policy", "log.cleanup.policy", NULL, 0, NULL, 0},
	{"compression.type", "compression.type", NULL, 0, NULL, 0},
	{"compression.gzip.level", "compression.gzip.level", NULL, 0, NULL, 0},
	{"compression.lz4.level", "compression.lz4.level", NULL, 0, NULL, 0},
	{"compression.zstd.level", "compression.zstd.level", NULL, 0, NULL, 0},
	{"delete.retention.ms", "log.cleaner.delete.retention.ms", NULL, 0, NULL, 0},
	{"file.delete.delay.ms", "log.segment.delete.delay.ms", NULL, 0, NULL, 0},
	{"flush.messages", "log.flush.interval.messages", NULL, 0, NULL, 0},
	{"flush.ms", "log.flush.interval.ms", "log.flush.scheduler.interval.ms", 1, NULL, 0},
	{"index.interval.bytes", "log.index.interval.bytes", NULL, 0, NULL, 0},
	{"local.retention.bytes", "log.local.retention.bytes", NULL, 0, NULL, 0},
	{"local.retention.ms", "log.local.retention.ms", NULL, 0, NULL, 0},
	{"max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", NULL, 0, NULL, 0},
	{"max.message.bytes", "message.max.bytes", NULL, 0, NULL, 0},
	{"message.downconversion.enable", "log.message.downconversion.enable", NULL, 0, NULL, 0},
	{"message.format.version", "log.message.format.version", NULL, 0, NULL, 0},
	{"message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms", NULL, 0, NULL, 0},
	{"message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms", NULL, 0, NULL, 0},
	{"message.timestamp.difference.max.ms", "log.message.timestamp.difference.max.ms", NULL, 0, NULL, 0},
	{"message.timestamp.type", "log.message.timestamp.type", NULL, 0, NULL, 0},
	{"min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", NULL, 0, NULL, 0},
	{"min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", NULL, 0, NULL, 0},
	{"min.insync.replicas", "min.insync.replicas", NULL, 0, NULL, 0},
	{"preallocate", "log.preallocate", NULL, 0, NULL, 0},
	{"retention.bytes", "log.retention.bytes", NULL, 0, NULL, 0},
	{"retention.ms", "log.retention.ms", "log.retention.minutes", 60000, "log.retention.hours", 3600000},
	{"segment.bytes", "log.segment.bytes", NULL, 0, NULL, 0},
	{"segment.index.bytes", "log.index.size.max.bytes", NULL, 0, NULL, 0},
	{"segment.jitter.ms", "log.roll.jitter.ms", "log.roll.jitter.hours", 3600000, NULL, 0},
	{"segment.ms", "log.roll.ms", "log.roll.hours", 3600000, NULL, 0},
	{"unclean.leader.election.enable", "unclean.leader.election.enable", NULL, 0, NULL, 0},
};

/* Per-replica placement settings: about the source's brokers, not data. */
static const char *const placement[] = {
	"leader.replication.throttled.replicas",
	"follower.replication.throttled.replicas",
};

/* Configs whose effective value a migration must keep even when the
 * target's default cannot be read: they decide retention, compaction,
 * record limits, durability, timestamps and storage format. */
static const char *const matters[] = {
	"retention.ms", "retention.bytes", "cleanup.policy", "delete.retention.ms",
	"min.compaction.lag.ms", "max.compaction.lag.ms", "min.cleanable.dirty.ratio",
	"max.message.bytes", "min.insync.replicas", "message.timestamp.type",
	"compression.type",
};

/* Lowest values the target's Kafka accepts for a topic config, by the
 * Kafka version they hold from.  Values below them are refused by
 * CreateTopics and IncrementalAlterConfigs (INVALID_CONFIG), so the design
 * shows the topic blocked instead of an action apply would fail on.
 *   segment.bytes: LogConfig validates atLeast(LegacyRecord.RECORD_OVERHEAD_V0)
 *     = 14 bytes up to 3.9; KIP-1030 raised it to 1 MiB in 4.0 (LogConfig:
 *     atLeast(1024 * 1024)).  Checked on the test clusters: 4.3.1 refuses
 *     65536 with "Value must be at least 1048576"; 3.9.2 accepts it.
 * KIP-1030's other new minimums (segment.ms 1 min, segment.index.bytes 1 KiB,
 * max.compaction.lag.ms 60 s) are planned for 5.0: 4.3.1 still accepts
 * segment.ms=1, segment.index.bytes=4 and max.compaction.lag.ms=1. */
static const struct limit {
	const char *config;
	int since; /* Kafka major version from which the minimum holds */
	int64_t min;
	const char *why;
} limits[] = {
	{"segment.bytes", 0, 14, "Kafka's minimum (one legacy record)"},
	{"segment.bytes", 4, 1048576, "Kafka 4.0 raised the minimum to 1 MiB (KIP-1030)"},
};

/* The target's Kafka major version as far as ApiVersions tell: Kafka 4.0
 * removed Fetch v0-v3 (KIP-896), so a broker whose lowest Fetch version is
 * 4 or more runs Kafka 4 or later.  @returns 4, 3 (before 4.0) or -1 when
 * no broker's ApiVersions were captured. */
static int target_major(const json_t *tgt_inv)
{
	json_t *b, *a;
	size_t i, j;

	json_array_foreach(json_object_get(tgt_inv, "brokers"), i, b)
		json_array_foreach(json_object_get(b, "api_versions"), j, a)
			if (json_integer_value(json_object_get(a, "key")) == 1)
				return json_integer_value(json_object_get(a, "min")) >= 4 ? 4 : 3;
	return -1;
}

/* Appends to blocked every designed config the target would refuse.  An
 * unknown target version is held to every limit: "unknown" never passes. */
static void check_limits(const json_t *configs, int major, json_t *blocked)
{
	const char *cname;
	json_t *c;

	json_object_foreach((json_t *)configs, cname, c) {
		const char *v = json_string_value(json_object_get(c, "value"));
		int64_t n;

		if (!v || km_parse_i64(v, &n))
			continue;
		for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
			const struct limit *l = &limits[i];
			char *reason;

			if (strcmp(l->config, cname) || n >= l->min ||
			    (major >= 0 && major < l->since))
				continue;
			reason = km_asprintf(
				"%s=%s is below the target's minimum %lld (%s; target Kafka %s): "
				"raise %s on the source topic to at least %lld, or create "
				"the target topic by hand",
				cname, v, (long long)l->min, l->why,
				major < 0 ? "version unknown, held to the newest limits"
				: major >= 4 ? "4.x, from its ApiVersions" : "3.x, from its ApiVersions",
				cname, (long long)l->min);
			json_array_append_new(blocked,
					      json_pack("{s:s, s:s, s:s}", "config", cname,
							"value", v, "reason", reason));
			free(reason);
			break;
		}
	}
}

static bool in_list(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], s))
			return true;
	return false;
}

static const struct synonym *synonym_of(const char *topic_cfg)
{
	for (size_t i = 0; i < sizeof(synonyms) / sizeof(synonyms[0]); i++)
		if (!strcmp(synonyms[i].topic, topic_cfg))
			return &synonyms[i];
	return NULL;
}

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* Target default of a topic config for a new topic, from the target
 * broker's configs.  *accepted is false when the target's Kafka has no such
 * setting at all.  @returns an owned string, or NULL when unknown. */
static char *target_default(const json_t *tgt_inv, const char *cname, bool *accepted)
{
	const json_t *bc = json_object_get(tgt_inv, "broker_configs");
	const struct synonym *syn = synonym_of(cname);
	const json_t *e;
	const char *v;
	int64_t n;

	*accepted = true;
	if (!syn || !json_is_object(bc) || json_object_get(bc, "not_inventoried"))
		return NULL;
	e = json_object_get(bc, syn->broker);
	if (!e) {
		*accepted = false;
		return NULL;
	}
	if ((v = jstr(e, "value")))
		return km_strdup(v);
	/* log.retention.ms is null unless set: fall back like Kafka does. */
	if (syn->fallback1 && (v = jstr(json_object_get(bc, syn->fallback1), "value")) &&
	    !km_parse_i64(v, &n))
		return km_asprintf("%lld", (long long)(n * syn->scale1));
	if (syn->fallback2 && (v = jstr(json_object_get(bc, syn->fallback2), "value")) &&
	    !km_parse_i64(v, &n))
		return km_asprintf("%lld", (long long)(n * syn->scale2));
	return NULL;
}

static void note(json_t *arr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(json_t *arr, const char *fmt, ...)
{
	km_sb_t sb = KM_SB_INIT;
	va_list ap;

	va_start(ap, fmt);
	km_sb_vprintf(&sb, fmt, ap);
	va_end(ap);
	json_array_append_new(arr, json_string(km_sb_str(&sb)));
	km_sb_free(&sb);
}

static json_t *design_topic(const km_plan_t *plan, const char *name, const json_t *st,
			    const json_t *tgt_inv, int nbrokers, json_t *warnings)
{
	json_t *configs = json_object(), *unsupported = json_array(), *c;
	char *tname = km_plan_target_topic(plan, name);
	json_int_t rf = json_integer_value(json_object_get(st, "replication_factor"));
	const char *cname;
	json_t *t;

	json_object_foreach(json_object_get(st, "configs"), cname, c) {
		const char *v = jstr(c, "value"), *src = jstr(c, "source");
		bool accepted;
		char *tdef;

		if (!v || !src || in_list(placement, sizeof(placement) / sizeof(placement[0]), cname))
			continue;
		tdef = target_default(tgt_inv, cname, &accepted);
		if (!accepted) {
			/* Only a value someone chose is lost: a Kafka default
			 * of a setting the target dropped needs no carrying. */
			if (strcmp(src, "default"))
				json_array_append_new(
					unsupported,
					json_pack("{s:s, s:s, s:s}", "config", cname, "value", v,
						  "reason",
						  "the target's Kafka version no longer has this "
						  "setting (its broker lists no synonym)"));
		} else if (!strcmp(src, "topic")) {
			json_object_set_new(configs, cname,
					    json_pack("{s:s, s:s}", "value", v, "why",
						      "topic override on the source"));
		} else if (!tdef) {
			if (in_list(matters, sizeof(matters) / sizeof(matters[0]), cname)) {
				char *why = km_asprintf("source %s value; the target's default "
							"cannot be read, so it is pinned", src);
				json_object_set_new(configs, cname,
						    json_pack("{s:s, s:s}", "value", v, "why", why));
				free(why);
			}
		} else if (strcmp(tdef, v)) {
			char *why = km_asprintf("source %s value %s differs from the target "
						"default %s: pinned so the effective value matches",
						src, v, tdef);
			json_object_set_new(configs, cname,
					    json_pack("{s:s, s:s}", "value", v, "why", why));
			free(why);
		}
		free(tdef);
	}
	json_t *blocked = json_array();
	check_limits(configs, target_major(tgt_inv), blocked);
	t = json_pack("{s:s, s:s, s:O, s:I, s:o, s:o, s:o}", "source", name, "target", tname,
		      "partitions", json_object_get(st, "partition_count"),
		      "replication_factor", (json_int_t)(rf < nbrokers || nbrokers <= 0 ? rf : nbrokers),
		      "configs", configs, "unsupported", unsupported, "blocked", blocked);
	if (nbrokers > 0 && rf > nbrokers) {
		json_object_set_new(t, "replication_factor_source", json_integer(rf));
		note(warnings,
		     "topic '%s': replication factor %lld capped at the target's %d broker(s)",
		     tname, (long long)rf, nbrokers);
	}
	free(tname);
	return t;
}

static json_t *design_acl(const km_plan_t *plan, const json_t *a, json_t *warnings)
{
	json_t *out = json_deep_copy(a);
	const char *rt = jstr(a, "resource_type"), *pt = jstr(a, "pattern_type");
	const char *name = jstr(a, "name");

	if (!rt || strcmp(rt, "TOPIC") || !name || !strcmp(name, "*"))
		return out;
	if (!strcmp(pt, "LITERAL")) {
		char *t = km_plan_target_topic(plan, name);
		json_object_set_new(out, "name", json_string(t));
		free(t);
	} else if (plan->naming.mode == KM_PLAN_NAMING_PREFIX) {
		char *t = km_asprintf("%s%s", plan->naming.prefix, name);
		json_object_set_new(out, "name", json_string(t));
		free(t);
	} else if (plan->naming.mode == KM_PLAN_NAMING_MAP) {
		note(warnings,
		     "prefixed topic ACL '%s' for %s kept as is: an explicit name map "
		     "cannot map a prefix, check it by hand",
		     name, jstr(a, "principal"));
	}
	if (strcmp(jstr(out, "name"), name))
		json_object_set_new(out, "source_name", json_string(name));
	return out;
}

/* Manual items on the target belong to whoever runs the target. */
static json_t *owner_of(const km_plan_t *plan)
{
	return plan->target.owner ? json_string(plan->target.owner) : json_null();
}

km_err_t km_design_build(const km_plan_t *plan, const json_t *src_inv,
			 const json_t *tgt_inv, json_t **designp, char *errstr,
			 size_t errstr_size)
{
	json_t *design = json_object(), *topics = json_array(), *acls = json_array();
	json_t *manual = json_array(), *warnings = json_array(), *skipped = json_array();
	json_t *workers = json_array();
	json_t *st, *a, *u, *q;
	int nbrokers = (int)json_array_size(json_object_get(tgt_inv, "brokers"));
	const char *name;
	size_t i;

	(void)errstr;
	(void)errstr_size;
	json_object_foreach(json_object_get(src_inv, "topics"), name, st) {
		if (json_object_get(st, "error")) {
			note(warnings, "source topic '%s' could not be described: %s", name,
			     jstr(st, "error"));
			continue;
		}
		/* A Connect worker's config, offsets or status topic is the
		 * source worker's own state: a copy would make the target
		 * worker share it (lib/inventory.h). */
		if (json_object_get(st, "connect_internal")) {
			json_array_append_new(
				workers, json_pack("{s:s, s:O}", "source", name, "role",
						   json_object_get(json_object_get(st, "connect_internal"),
								   "role")));
			continue;
		}
		json_array_append_new(topics, design_topic(plan, name, st, tgt_inv,
							   nbrokers, warnings));
	}
	if (json_is_array(json_object_get(src_inv, "acls"))) {
		json_array_foreach(json_object_get(src_inv, "acls"), i, a) {
			/* A literal ACL on a topic that is not migrated protects
			 * nothing on the target. */
			const char *n = jstr(a, "name");
			if (!strcmp(jstr(a, "resource_type"), "TOPIC") &&
			    !strcmp(jstr(a, "pattern_type"), "LITERAL") && strcmp(n, "*") &&
			    !km_plan_topic_in_scope(plan, n)) {
				json_array_append(skipped, a);
				continue;
			}
			json_array_append_new(acls, design_acl(plan, a, warnings));
		}
	} else {
		note(warnings, "source ACLs not inventoried (%s): nothing to copy",
		     jstr(json_object_get(src_inv, "acls"), "not_inventoried"));
	}
	/* SCRAM passwords cannot be read back: someone must set each one. */
	if (json_is_array(json_object_get(src_inv, "scram_users"))) {
		json_array_foreach(json_object_get(src_inv, "scram_users"), i, u) {
			char *what = km_asprintf(
				"set the password on the target: kafka-configs --alter "
				"--entity-type users --entity-name %s --add-config "
				"'%s=[password=...]'",
				jstr(u, "user"),
				jstr(json_array_get(json_object_get(u, "mechanisms"), 0), "mechanism")
					?: "SCRAM-SHA-512");
			json_array_append_new(manual,
					      json_pack("{s:s, s:s, s:s, s:o}", "kind", "scram-user",
							"subject", jstr(u, "user"), "action", what,
							"owner", owner_of(plan)));
			free(what);
		}
	} else {
		json_array_append_new(manual,
				      json_pack("{s:s, s:s, s:s, s:o}", "kind", "scram-user",
						"subject", "*", "action",
						"source SCRAM users were not inventoried: list and "
						"re-create them by hand",
						"owner", owner_of(plan)));
	}
	if (json_is_array(json_object_get(src_inv, "quotas"))) {
		json_array_foreach(json_object_get(src_inv, "quotas"), i, q) {
			char *ent = json_dumps(json_object_get(q, "entity"), JSON_COMPACT | JSON_SORT_KEYS);
			char *val = json_dumps(json_object_get(q, "values"), JSON_COMPACT | JSON_SORT_KEYS);
			char *what = km_asprintf("re-create client quota %s on the target "
						 "(kafka-configs --alter --entity-type users/clients)",
						 val);
			json_array_append_new(manual,
					      json_pack("{s:s, s:s, s:s, s:o}", "kind", "quota",
							"subject", ent, "action", what, "owner",
							owner_of(plan)));
			free(ent);
			free(val);
			free(what);
		}
	} else {
		json_array_append_new(
			manual, json_pack("{s:s, s:s, s:s, s:o}", "kind", "quota", "subject", "*",
					  "action",
					  jstr(json_object_get(src_inv, "quotas"), "not_inventoried"),
					  "owner", owner_of(plan)));
	}
	json_object_set_new(design, "migration", json_string(plan->migration));
	json_object_set_new(design, "source", json_string(plan->source.bootstrap));
	json_object_set_new(design, "target", json_string(plan->target.bootstrap));
	json_object_set_new(design, "naming",
			    json_string(km_plan_naming_mode_str(plan->naming.mode)));
	json_object_set_new(design, "target_brokers", json_integer(nbrokers));
	json_object_set_new(design, "topics", topics);
	json_object_set_new(design, "connect_internal_topics", workers);
	json_object_set_new(design, "acls", acls);
	json_object_set_new(design, "acls_out_of_scope", skipped);
	json_object_set_new(design, "manual", manual);
	json_object_set_new(design, "warnings", warnings);
	*designp = design;
	return KM_ERR_OK;
}

/* ---- delta ---------------------------------------------------------------- */

static bool acl_equal(const json_t *a, const json_t *b)
{
	static const char *const keys[] = {"resource_type", "pattern_type", "name",
					   "principal", "host", "operation", "permission"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *x = jstr(a, keys[i]), *y = jstr(b, keys[i]);
		if (!x || !y || strcmp(x, y))
			return false;
	}
	return true;
}

static char *acl_subject(const json_t *a)
{
	return km_asprintf("%s %s '%s' %s@%s %s %s", jstr(a, "resource_type"),
			   jstr(a, "pattern_type"), jstr(a, "name"), jstr(a, "principal"),
			   jstr(a, "host"), jstr(a, "operation"), jstr(a, "permission"));
}

json_t *km_design_delta(const json_t *design, const json_t *tgt_inv)
{
	json_t *actions = json_array(), *t, *a, *m;
	json_t *ttopics = json_object_get(tgt_inv, "topics");
	json_t *tacls = json_object_get(tgt_inv, "acls");
	size_t i, j;

	json_array_foreach(json_object_get(design, "topics"), i, t) {
		const char *tname = jstr(t, "target");
		json_t *tt = json_object_get(ttopics, tname);
		json_t *want = json_object_get(t, "configs"), *c;
		const char *cname;

		/* A config the target refuses blocks the whole topic, created
		 * or changed: half a topic's configs is not the design. */
		if (json_array_size(json_object_get(t, "blocked")) > 0) {
			km_sb_t why = KM_SB_INIT;
			json_t *b;
			size_t k;

			json_array_foreach(json_object_get(t, "blocked"), k, b)
				km_sb_printf(&why, "%s%s", k ? "; " : "", jstr(b, "reason"));
			json_array_append_new(actions, json_pack("{s:s, s:s, s:s}", "op", "blocked",
								 "subject", tname, "reason",
								 km_sb_str(&why)));
			km_sb_free(&why);
			continue;
		}
		if (!tt) {
			json_t *cfg = json_object();
			json_object_foreach(want, cname, c)
				json_object_set(cfg, cname, json_object_get(c, "value"));
			json_array_append_new(
				actions,
				json_pack("{s:s, s:s, s:s, s:O, s:O, s:o}", "op", "create-topic",
					  "subject", tname, "source_topic", jstr(t, "source"),
					  "partitions", json_object_get(t, "partitions"),
					  "replication_factor", json_object_get(t, "replication_factor"),
					  "configs", cfg));
			continue;
		}
		json_int_t have = json_integer_value(json_object_get(tt, "partition_count"));
		json_int_t need = json_integer_value(json_object_get(t, "partitions"));
		if (have != need) {
			char *why = km_asprintf(
				"target topic '%s' exists with %lld partitions, the source '%s' has "
				"%lld: offset translation needs equal counts, and kmigrate never "
				"shrinks or re-partitions a topic (delete or rename it on the target)",
				tname, (long long)have, jstr(t, "source"), (long long)need);
			json_array_append_new(actions, json_pack("{s:s, s:s, s:s}", "op", "blocked",
								 "subject", tname, "reason", why));
			free(why);
			continue;
		}
		json_t *changes = json_array();
		json_object_foreach(want, cname, c) {
			const char *v = jstr(c, "value");
			const char *cur = jstr(json_object_get(json_object_get(tt, "configs"), cname),
					       "value");
			if (!cur || strcmp(cur, v))
				json_array_append_new(changes,
						      json_pack("{s:s, s:o, s:s}", "config", cname,
								"from", cur ? json_string(cur) : json_null(),
								"to", v));
		}
		if (json_array_size(changes))
			json_array_append_new(actions,
					      json_pack("{s:s, s:s, s:o}", "op", "alter-configs",
							"subject", tname, "changes", changes));
		else
			json_decref(changes);
	}

	json_array_foreach(json_object_get(design, "acls"), i, a) {
		bool found = false;
		json_t *b;
		char *subj = acl_subject(a);

		if (!json_is_array(tacls)) {
			char *why = km_asprintf("ACL %s cannot be created: the target %s", subj,
						jstr(tacls, "not_inventoried") ?: "ACLs are unknown");
			json_array_append_new(actions, json_pack("{s:s, s:s, s:s}", "op", "blocked",
								 "subject", subj, "reason", why));
			free(why);
			free(subj);
			continue;
		}
		json_array_foreach(tacls, j, b)
			if (acl_equal(a, b))
				found = true;
		if (!found)
			json_array_append_new(actions, json_pack("{s:s, s:s, s:O}", "op", "create-acl",
								 "subject", subj, "acl", a));
		free(subj);
	}
	json_array_foreach(json_object_get(design, "manual"), i, m)
		json_array_append_new(actions,
				      json_pack("{s:s, s:s, s:s, s:s, s:O}", "op", "manual", "kind",
						jstr(m, "kind"), "subject", jstr(m, "subject"),
						"action", jstr(m, "action"), "owner",
						json_object_get(m, "owner")));
	return actions;
}

size_t km_design_count(const json_t *actions, const char *op)
{
	size_t n = 0, i;
	json_t *a;

	json_array_foreach(actions, i, a)
		if (!strcmp(jstr(a, "op"), op))
			n++;
	return n;
}

/* ---- apply ---------------------------------------------------------------- */

/* apply sends one request per *kind* of change, not one per object: every
 * CreateTopics, IncrementalAlterConfigs or CreateAcls round trip is a
 * controller commit, and a loaded controller takes tens of milliseconds per
 * commit however small it is (bench/README.md "apply at 2,000 partitions":
 * 400 one-topic CreateTopics took 12.5 s where one request of 400 took
 * about a second).  Kafka still answers per object: each topic is created,
 * and each topic's configs change, all or nothing, so the journal learns
 * exactly which objects a failed request did change.
 *
 * A request carries at most APPLY_BATCH_RECORDS metadata records (a topic
 * is one record, plus one per partition and per config; an ACL or a config
 * change one): the KRaft controller refuses a single operation of more than
 * 10,000 records (QuorumController's MAX_RECORDS_PER_USER_OP), so half of
 * that leaves room and keeps each request's deadline meaningful. */
#define APPLY_BATCH_RECORDS 5000

/* Each request's deadline: 15 s, plus 10 ms per record it carries (a
 * controller writing 5,000 partition records on a loaded machine takes
 * seconds), at most 2 minutes.  A change the controller has not finished
 * by then is reported, never waited on forever. */
static int batch_timeout_ms(size_t records)
{
	int64_t t = KM_KAFKA_TIMEOUT_MS + 10 * (int64_t)records;
	return t > 120000 ? 120000 : (int)t;
}

/* The requests of one batch: actions[idx[0..n-1]], all of one kind. */
typedef struct batch_s {
	const json_t *actions;
	size_t *idx;
	size_t n, cap;
	size_t records;
} batch_t;

static size_t topic_records(const json_t *a)
{
	if (!strcmp(jstr(a, "op"), "create-topic"))
		return 1 + (size_t)json_integer_value(json_object_get(a, "partitions")) +
		       json_object_size(json_object_get(a, "configs"));
	return json_array_size(json_object_get(a, "changes")) ?: 1;
}

static void batch_add(batch_t *b, size_t i, size_t records)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 64;
		b->idx = km_realloc(b->idx, b->cap * sizeof(*b->idx));
	}
	b->idx[b->n++] = i;
	b->records += records;
}

/* Per-object outcome of one request: errs[j] is the error of the batch's
 * j-th action (0 when applied), errmsg[j] its broker text (borrowed from
 * the result event). */
typedef struct outcome_s {
	rd_kafka_resp_err_t *errs;
	const char **msgs;
} outcome_t;

/* Results of CreateTopics and IncrementalAlterConfigs name their topic;
 * a batch holds each topic once.  Every object starts as failed with
 * `missing`, so one the response leaves out is never taken as applied.
 * @returns a new object: topic name -> position in the batch. */
static json_t *positions(const batch_t *b, outcome_t *o, const char *missing)
{
	json_t *pos = json_object();

	for (size_t i = 0; i < b->n; i++) {
		json_object_set_new(pos, jstr(json_array_get(b->actions, b->idx[i]), "subject"),
				    json_integer((json_int_t)i));
		o->errs[i] = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
		o->msgs[i] = missing;
	}
	return pos;
}

static void set_outcome(const json_t *pos, outcome_t *o, const char *name,
			rd_kafka_resp_err_t e, const char *msg)
{
	json_t *j = json_object_get(pos, name);

	if (!j)
		return;
	o->errs[json_integer_value(j)] = e;
	o->msgs[json_integer_value(j)] = msg;
}

static km_err_t create_topics(km_kafka_t *k, const batch_t *b, outcome_t *o,
			      char *errstr, size_t errstr_size, rd_kafka_event_t **evp)
{
	rd_kafka_NewTopic_t **nts = km_calloc(b->n, sizeof(*nts));
	km_kafka_call_t call;
	char rerr[512];
	km_err_t err = KM_ERR_OK;
	size_t i, n;

	for (i = 0; i < b->n; i++) {
		const json_t *a = json_array_get(b->actions, b->idx[i]);
		const char *cname;
		json_t *v;

		nts[i] = rd_kafka_NewTopic_new(
			jstr(a, "subject"), (int)json_integer_value(json_object_get(a, "partitions")),
			(int)json_integer_value(json_object_get(a, "replication_factor")), rerr,
			sizeof(rerr));
		if (!nts[i]) {
			err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
					"cannot create topic '%s': %s", jstr(a, "subject"), rerr);
			goto done;
		}
		json_object_foreach(json_object_get(a, "configs"), cname, v)
			rd_kafka_NewTopic_set_config(nts[i], cname, json_string_value(v));
	}
	km_kafka_call_begin(k, RD_KAFKA_ADMIN_OP_CREATETOPICS, batch_timeout_ms(b->records), &call);
	rd_kafka_CreateTopics(km_kafka_rk(k), nts, b->n, call.options, call.q);
	if ((err = km_kafka_call_wait(k, &call, RD_KAFKA_EVENT_CREATETOPICS_RESULT, "CreateTopics",
				      evp, errstr, errstr_size)))
		goto done;
	const rd_kafka_topic_result_t **res =
		rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(*evp), &n);
	json_t *pos = positions(b, o, "no result for this topic in the CreateTopics response");
	for (i = 0; i < n; i++)
		set_outcome(pos, o, rd_kafka_topic_result_name(res[i]),
			    rd_kafka_topic_result_error(res[i]),
			    rd_kafka_topic_result_error_string(res[i]));
	json_decref(pos);
done:
	for (i = 0; i < b->n; i++)
		if (nts[i])
			rd_kafka_NewTopic_destroy(nts[i]);
	free(nts);
	return err;
}

static km_err_t alter_configs(km_kafka_t *k, const batch_t *b, outcome_t *o,
			      char *errstr, size_t errstr_size, rd_kafka_event_t **evp)
{
	rd_kafka_ConfigResource_t **rs = km_calloc(b->n, sizeof(*rs));
	km_kafka_call_t call;
	km_err_t err = KM_ERR_OK;
	size_t i, j, n;

	/* One resource per topic: Kafka applies a resource's changes
	 * together or not at all. */
	for (i = 0; i < b->n; i++) {
		const json_t *a = json_array_get(b->actions, b->idx[i]), *c;

		rs[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, jstr(a, "subject"));
		json_array_foreach(json_object_get(a, "changes"), j, c) {
			rd_kafka_error_t *e = rd_kafka_ConfigResource_add_incremental_config(
				rs[i], jstr(c, "config"), RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
				jstr(c, "to"));
			if (e) {
				err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
						"cannot set '%s' on '%s': %s", jstr(c, "config"),
						jstr(a, "subject"), rd_kafka_error_string(e));
				rd_kafka_error_destroy(e);
				goto done;
			}
		}
	}
	km_kafka_call_begin(k, RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
			    batch_timeout_ms(b->records), &call);
	rd_kafka_IncrementalAlterConfigs(km_kafka_rk(k), rs, b->n, call.options, call.q);
	if ((err = km_kafka_call_wait(k, &call, RD_KAFKA_EVENT_INCREMENTALALTERCONFIGS_RESULT,
				      "IncrementalAlterConfigs", evp, errstr, errstr_size)))
		goto done;
	const rd_kafka_ConfigResource_t **res = rd_kafka_IncrementalAlterConfigs_result_resources(
		rd_kafka_event_IncrementalAlterConfigs_result(*evp), &n);
	json_t *pos = positions(b, o,
				"no result for this topic in the IncrementalAlterConfigs response");
	for (i = 0; i < n; i++)
		set_outcome(pos, o, rd_kafka_ConfigResource_name(res[i]),
			    rd_kafka_ConfigResource_error(res[i]),
			    rd_kafka_ConfigResource_error_string(res[i]));
	json_decref(pos);
done:
	for (i = 0; i < b->n; i++)
		if (rs[i])
			rd_kafka_ConfigResource_destroy(rs[i]);
	free(rs);
	return err;
}

static int enum_of(const char *const *names, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (names[i] && !strcmp(names[i], s))
			return i;
	return -1;
}

static km_err_t create_acls(km_kafka_t *k, const batch_t *b, outcome_t *o,
			    char *errstr, size_t errstr_size, rd_kafka_event_t **evp)
{
	/* librdkafka's enum values, in order; CLUSTER is its "BROKER". */
	static const char *const rts[] = {NULL, NULL, "TOPIC", "GROUP", "CLUSTER",
					  "TRANSACTIONAL_ID"};
	static const char *const pts[] = {NULL, NULL, NULL, "LITERAL", "PREFIXED"};
	static const char *const ops[] = {NULL, NULL, "ALL", "READ", "WRITE", "CREATE",
					  "DELETE", "ALTER", "DESCRIBE", "CLUSTER_ACTION",
					  "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE"};
	static const char *const perms[] = {NULL, NULL, "DENY", "ALLOW"};
	rd_kafka_AclBinding_t **bs = km_calloc(b->n, sizeof(*bs));
	km_kafka_call_t call;
	char rerr[512];
	km_err_t err = KM_ERR_OK;
	size_t i, n;

	for (i = 0; i < b->n; i++) {
		const json_t *a = json_array_get(b->actions, b->idx[i]);
		const json_t *acl = json_object_get(a, "acl");
		int rt = enum_of(rts, 6, jstr(acl, "resource_type"));
		int pt = enum_of(pts, 5, jstr(acl, "pattern_type"));
		int op = enum_of(ops, 13, jstr(acl, "operation"));
		int perm = enum_of(perms, 4, jstr(acl, "permission"));

		if (rt < 0 || pt < 0 || op < 0 || perm < 0) {
			err = km_seterr(errstr, errstr_size, KM_ERR_UNSUPPORTED,
					"ACL %s cannot be expressed through librdkafka's admin API",
					jstr(a, "subject"));
			goto done;
		}
		bs[i] = rd_kafka_AclBinding_new(
			(rd_kafka_ResourceType_t)rt, jstr(acl, "name"),
			(rd_kafka_ResourcePatternType_t)pt, jstr(acl, "principal"), jstr(acl, "host"),
			(rd_kafka_AclOperation_t)op, (rd_kafka_AclPermissionType_t)perm, rerr,
			sizeof(rerr));
		if (!bs[i]) {
			err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG, "ACL %s: %s",
					jstr(a, "subject"), rerr);
			goto done;
		}
	}
	km_kafka_call_begin(k, RD_KAFKA_ADMIN_OP_CREATEACLS, batch_timeout_ms(b->records), &call);
	rd_kafka_CreateAcls(km_kafka_rk(k), bs, b->n, call.options, call.q);
	if ((err = km_kafka_call_wait(k, &call, RD_KAFKA_EVENT_CREATEACLS_RESULT, "CreateAcls", evp,
				      errstr, errstr_size)))
		goto done;
	/* CreateAcls answers in the order of the request, without names. */
	const rd_kafka_acl_result_t **res =
		rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(*evp), &n);
	for (i = 0; i < b->n; i++) {
		const rd_kafka_error_t *e = i < n ? rd_kafka_acl_result_error(res[i]) : NULL;
		o->errs[i] = i >= n ? RD_KAFKA_RESP_ERR__BAD_MSG : e ? rd_kafka_error_code(e) : 0;
		o->msgs[i] = i >= n ? "no result for this ACL in the CreateAcls response"
			     : e    ? rd_kafka_error_string(e)
				    : NULL;
	}
done:
	for (i = 0; i < b->n; i++)
		if (bs[i])
			rd_kafka_AclBinding_destroy(bs[i]);
	free(bs);
	return err;
}

/* Sends batch b (one kind: create-topic, alter-configs or ACLs), then
 * reports every object it changed through cb, in the order of the actions,
 * and only then the first object Kafka refused: what a failed request did
 * change is journaled before apply stops. */
static km_err_t flush(km_kafka_t *k, batch_t *b, const char *kind, km_design_applied_cb cb,
		      void *opaque, int *appliedp, km_design_requests_t *req, char *errstr,
		      size_t errstr_size)
{
	outcome_t o;
	rd_kafka_event_t *ev = NULL;
	km_err_t err, first = KM_ERR_OK;
	size_t i;

	if (!b->n)
		return KM_ERR_OK;
	o.errs = km_calloc(b->n, sizeof(*o.errs));
	o.msgs = km_calloc(b->n, sizeof(*o.msgs));
	if (!strcmp(kind, "create-topic")) {
		req->create_topics++;
		err = create_topics(k, b, &o, errstr, errstr_size, &ev);
	} else if (!strcmp(kind, "alter-configs")) {
		req->alter_configs++;
		err = alter_configs(k, b, &o, errstr, errstr_size, &ev);
	} else {
		req->create_acls++;
		err = create_acls(k, b, &o, errstr, errstr_size, &ev);
	}
	if (err)
		goto done;
	for (i = 0; i < b->n; i++) {
		const json_t *a = json_array_get(b->actions, b->idx[i]);
		char what[600];

		if (o.errs[i]) {
			if (first)
				continue;
			if (!strcmp(kind, "create-topic"))
				snprintf(what, sizeof(what), "CreateTopics of '%s'", jstr(a, "subject"));
			else if (!strcmp(kind, "alter-configs"))
				snprintf(what, sizeof(what), "IncrementalAlterConfigs of '%s'",
					 jstr(a, "subject"));
			else
				snprintf(what, sizeof(what), "CreateAcls");
			first = km_kafka_err(k, o.errs[i], what, o.msgs[i], errstr, errstr_size);
			continue;
		}
		(*appliedp)++;
		/* A journal failure stops everything: the error is its. */
		if (cb && (err = cb(opaque, a, errstr, errstr_size)))
			goto done;
	}
	err = first;
done:
	if (ev)
		rd_kafka_event_destroy(ev);
	free(o.errs);
	free(o.msgs);
	b->n = 0;
	b->records = 0;
	return err;
}

/* Which request an action goes in; NULL for actions apply does not
 * perform.  Guards and copied ACLs are kept apart so that every guard
 * DENY is in force before any copied ALLOW (lib/guard.h). */
static const char *kind_of(const char *op)
{
	if (!strcmp(op, "manual") || !strcmp(op, "guard-finding"))
		return NULL;
	if (!strcmp(op, "create-topic") || !strcmp(op, "alter-configs") ||
	    !strcmp(op, "create-acl") || !strcmp(op, "create-guard"))
		return op;
	KM_BUG("unknown design action '%s'", op);
	return NULL;
}

km_err_t km_design_apply(km_kafka_t *k, const json_t *actions,
			 km_design_applied_cb cb, void *opaque, int *appliedp,
			 km_design_requests_t *reqp, char *errstr, size_t errstr_size)
{
	/* Pending batches.  Topic actions (creates and config changes of
	 * different topics, independent of each other) gather in two
	 * batches; an ACL action, a guard or a blocked topic sends what is
	 * pending first, so actions of different kinds keep their order. */
	batch_t creates = {actions, NULL, 0, 0, 0}, alters = {actions, NULL, 0, 0, 0};
	batch_t acls = {actions, NULL, 0, 0, 0};
	const char *acl_kind = NULL;
	km_design_requests_t req = {0, 0, 0};
	km_err_t err = KM_ERR_OK;
	json_t *a;
	size_t i;

	*appliedp = 0;
#define FLUSH(b, kind)                                                                        \
	do {                                                                                  \
		if ((err = flush(k, &(b), kind, cb, opaque, appliedp, &req, errstr, errstr_size))) \
			goto done;                                                            \
	} while (0)
	json_array_foreach(actions, i, a) {
		const char *op = jstr(a, "op"), *kind;
		size_t recs;

		if (!strcmp(op, "blocked")) {
			/* Every action before it is applied, none after. */
			FLUSH(acls, acl_kind);
			FLUSH(creates, "create-topic");
			FLUSH(alters, "alter-configs");
			err = km_seterr(errstr, errstr_size, KM_ERR_FINDINGS,
					"stopped before '%s': %s", jstr(a, "subject"),
					jstr(a, "reason"));
			goto done;
		}
		/* Work for people, and what the target guard cannot do
		 * (lib/guard.h), are reported, never applied. */
		if (!(kind = kind_of(op)))
			continue;
		if (!strcmp(kind, "create-topic") || !strcmp(kind, "alter-configs")) {
			batch_t *b = !strcmp(kind, "create-topic") ? &creates : &alters;
			FLUSH(acls, acl_kind);
			recs = topic_records(a);
			if (b->n && b->records + recs > APPLY_BATCH_RECORDS)
				FLUSH(*b, kind);
			batch_add(b, i, recs);
		} else {
			FLUSH(creates, "create-topic");
			FLUSH(alters, "alter-configs");
			if (acls.n && (strcmp(acl_kind, kind) || acls.records + 1 > APPLY_BATCH_RECORDS))
				FLUSH(acls, acl_kind);
			acl_kind = kind;
			batch_add(&acls, i, 1);
		}
	}
	FLUSH(acls, acl_kind);
	FLUSH(creates, "create-topic");
	FLUSH(alters, "alter-configs");
#undef FLUSH
done:
	free(creates.idx);
	free(alters.idx);
	free(acls.idx);
	if (reqp)
		*reqp = req;
	return err;
}
