/*
 * fence.c -- the source fence of the cutover: plan, inverse, apply, prove,
 * undo.  See fence.h for the contract and docs/internals/fences.md for the
 * experiments that say why each fence holds.
 */
#include "fence.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan.h"
#include "util.h"

#define MMB "max.message.bytes"
#define CANARY_HEADER "kmigrate.fence.canary"
#define PROVE_TIMEOUT_MS 30000
/* The read proof reads at most this many records per partition from the
 * log start: enough to show READ works, bounded on big topics. */
#define READ_MAX_RECORDS 1000

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* One fenced partition and its offsets. */
typedef struct tp_s {
	const char *topic; /* borrowed from the plan */
	int partition;
	int64_t low, hwm, lso;
} tp_t;

/* ---- ACL bindings as JSON -------------------------------------------- */

static json_t *acl_json(rd_kafka_ResourceType_t rt, const char *name,
			rd_kafka_ResourcePatternType_t pt, const char *principal, const char *host,
			rd_kafka_AclOperation_t op, rd_kafka_AclPermissionType_t perm)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "resource_type",
			 rd_kafka_ResourceType_name(rt), "name", name, "pattern_type",
			 rd_kafka_ResourcePatternType_name(pt), "principal", principal, "host",
			 host, "operation", rd_kafka_AclOperation_name(op), "permission",
			 rd_kafka_AclPermissionType_name(perm));
}

static json_t *acl_binding_json(const rd_kafka_AclBinding_t *b)
{
	return acl_json(rd_kafka_AclBinding_restype(b), rd_kafka_AclBinding_name(b),
			rd_kafka_AclBinding_resource_pattern_type(b),
			rd_kafka_AclBinding_principal(b), rd_kafka_AclBinding_host(b),
			rd_kafka_AclBinding_operation(b), rd_kafka_AclBinding_permission_type(b));
}

/* Looks name up among librdkafka's spellings of an enum (0..count-1). */
static int enum_of(const char *name, int count, const char *(*namef)(int))
{
	for (int i = 0; name && i < count; i++)
		if (!strcmp(namef(i), name))
			return i;
	return -1;
}
static const char *rt_name(int i) { return rd_kafka_ResourceType_name(i); }
static const char *pt_name(int i) { return rd_kafka_ResourcePatternType_name(i); }
static const char *op_name(int i) { return rd_kafka_AclOperation_name(i); }
static const char *perm_name(int i) { return rd_kafka_AclPermissionType_name(i); }

/* A binding (or, with filter, an exact filter) from its JSON form.
 * @returns NULL with errstr set on a malformed row. */
static rd_kafka_AclBinding_t *acl_from_json(const json_t *j, bool filter, char *errstr,
					    size_t errstr_size)
{
	int rt = enum_of(jstr(j, "resource_type"), RD_KAFKA_RESOURCE__CNT, rt_name);
	int pt = enum_of(jstr(j, "pattern_type"), RD_KAFKA_RESOURCE_PATTERN_TYPE__CNT, pt_name);
	int op = enum_of(jstr(j, "operation"), RD_KAFKA_ACL_OPERATION__CNT, op_name);
	int perm = enum_of(jstr(j, "permission"), RD_KAFKA_ACL_PERMISSION_TYPE__CNT, perm_name);
	char rerr[256];
	rd_kafka_AclBinding_t *b;

	if (rt < 0 || pt < 0 || op < 0 || perm < 0 || !jstr(j, "name") ||
	    !jstr(j, "principal") || !jstr(j, "host")) {
		km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
			  "malformed ACL binding in the fence document: need resource_type, "
			  "name, pattern_type, principal, host, operation, permission");
		return NULL;
	}
	b = (filter ? rd_kafka_AclBindingFilter_new : rd_kafka_AclBinding_new)(
		rt, jstr(j, "name"), pt, jstr(j, "principal"), jstr(j, "host"), op, perm, rerr,
		sizeof(rerr));
	if (!b)
		km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
			  "invalid ACL binding for '%s' in the fence document: %s",
			  jstr(j, "name"), rerr);
	return b;
}

static bool acl_equal(const json_t *a, const json_t *b)
{
	static const char *const keys[] = {"resource_type", "name",      "pattern_type",
					   "principal",     "host",      "operation",
					   "permission"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *x = jstr(a, keys[i]), *y = jstr(b, keys[i]);
		if (!x || !y || strcmp(x, y))
			return false;
	}
	return true;
}

static bool acl_in(const json_t *arr, const json_t *acl)
{
	size_t i;
	json_t *e;

	json_array_foreach(arr, i, e) if (acl_equal(e, acl)) return true;
	return false;
}

static bool str_in(const json_t *arr, const char *s)
{
	size_t i;
	json_t *e;

	json_array_foreach(arr, i, e) if (!strcmp(json_string_value(e), s)) return true;
	return false;
}

/* ---- reading the cluster --------------------------------------------- */

/* Every topic's partition count (name -> integer) and the broker ids.
 * Metadata is not an admin call; rd_kafka_metadata() takes its deadline. */
static km_err_t read_metadata(km_kafka_t *ks, json_t **topicsp, json_t **brokersp, char *errstr,
			      size_t errstr_size)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t rerr;

	rerr = rd_kafka_metadata(km_kafka_rk(ks), 1, NULL, &md, KM_KAFKA_TIMEOUT_MS);
	if (rerr)
		return km_kafka_err(ks, rerr, "Metadata", NULL, errstr, errstr_size);
	*topicsp = json_object();
	*brokersp = json_array();
	for (int i = 0; i < md->topic_cnt; i++)
		if (!md->topics[i].err)
			json_object_set_new(*topicsp, md->topics[i].topic,
					    json_integer(md->topics[i].partition_cnt));
	for (int i = 0; i < md->broker_cnt; i++)
		json_array_append_new(*brokersp, json_integer(md->brokers[i].id));
	rd_kafka_metadata_destroy(md);
	return KM_ERR_OK;
}

/* DescribeConfigs of resources (type rt, names[0..n-1]): @returns in *outp
 * name -> {config -> {value, source}}; a resource-level error fails. */
static km_err_t describe_configs(km_kafka_t *ks, rd_kafka_ResourceType_t rt,
				 const char *const *names, size_t n, json_t **outp, char *errstr,
				 size_t errstr_size)
{
	rd_kafka_ConfigResource_t **rs = km_calloc(n ? n : 1, sizeof(*rs));
	rd_kafka_event_t *ev = NULL;
	km_kafka_call_t call;
	km_err_t err;
	size_t nr;

	*outp = NULL;
	for (size_t i = 0; i < n; i++)
		rs[i] = rd_kafka_ConfigResource_new(rt, names[i]);
	km_kafka_call_begin(ks, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, 0, &call);
	rd_kafka_DescribeConfigs(km_kafka_rk(ks), rs, n, call.options, call.q);
	err = km_kafka_call_wait(ks, &call, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, "DescribeConfigs",
				 &ev, errstr, errstr_size);
	if (err)
		goto done;
	const rd_kafka_ConfigResource_t **rr =
		rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &nr);
	*outp = json_object();
	for (size_t i = 0; i < nr; i++) {
		const rd_kafka_ConfigEntry_t **ents;
		json_t *cfg;
		size_t ne;

		if (rd_kafka_ConfigResource_error(rr[i])) {
			char what[400];
			snprintf(what, sizeof(what), "DescribeConfigs of %s '%s'",
				 rt == RD_KAFKA_RESOURCE_TOPIC ? "topic" : "broker",
				 rd_kafka_ConfigResource_name(rr[i]));
			err = km_kafka_err(ks, rd_kafka_ConfigResource_error(rr[i]), what,
					   rd_kafka_ConfigResource_error_string(rr[i]), errstr,
					   errstr_size);
			json_decref(*outp);
			*outp = NULL;
			goto done;
		}
		cfg = json_object();
		ents = rd_kafka_ConfigResource_configs(rr[i], &ne);
		for (size_t j = 0; j < ne; j++) {
			const char *v = rd_kafka_ConfigEntry_value(ents[j]);
			json_object_set_new(
				cfg, rd_kafka_ConfigEntry_name(ents[j]),
				json_pack("{s:o, s:s}", "value", v ? json_string(v) : json_null(),
					  "source",
					  km_kafka_config_source_name(rd_kafka_ConfigEntry_source(ents[j]))));
		}
		json_object_set_new(*outp, rd_kafka_ConfigResource_name(rr[i]), cfg);
	}
done:
	if (ev)
		rd_kafka_event_destroy(ev);
	for (size_t i = 0; i < n; i++)
		rd_kafka_ConfigResource_destroy(rs[i]);
	free(rs);
	return err;
}

/* What the brokers say about authorization: the authorizer class, and,
 * when a broker reports them (Kafka reports them as sensitive, null), the
 * super users (union over brokers, else NULL) and whether any broker allows
 * everyone when no ACL matches (1/0, -1 unknown). */
static km_err_t read_authz(km_kafka_t *ks, const json_t *brokers, char **authorizerp,
			   json_t **superp, int *allow_everyonep, char *errstr, size_t errstr_size)
{
	size_t n = json_array_size(brokers), i;
	char **ids = km_calloc(n ? n : 1, sizeof(*ids));
	json_t *cfgs = NULL, *c, *e;
	const char *bid;
	km_err_t err;

	*authorizerp = NULL;
	*superp = NULL;
	*allow_everyonep = -1;
	json_array_foreach(brokers, i, e) ids[i] = km_asprintf("%lld", (long long)json_integer_value(e));
	err = describe_configs(ks, RD_KAFKA_RESOURCE_BROKER, (const char *const *)ids, n, &cfgs, errstr,
			       errstr_size);
	if (err)
		goto done;
	json_object_foreach(cfgs, bid, c) {
		const char *a = jstr(json_object_get(c, "authorizer.class.name"), "value");
		const char *su = jstr(json_object_get(c, "super.users"), "value");
		const char *ae = jstr(json_object_get(c, "allow.everyone.if.no.acl.found"), "value");

		if (a && *a && !*authorizerp)
			*authorizerp = km_strdup(a);
		if (ae && !strcmp(ae, "true"))
			*allow_everyonep = 1;
		else if (ae && *allow_everyonep < 0)
			*allow_everyonep = 0;
		if (su && !*superp)
			*superp = json_array();
		/* super.users is "User:a;User:b". */
		for (const char *p = su; p && *p;) {
			size_t len = strcspn(p, ";");
			char *one = km_strndup(p, len);
			char *s = one, *end;

			while (*s == ' ')
				s++;
			end = s + strlen(s);
			while (end > s && end[-1] == ' ')
				*--end = '\0';
			if (*s && !str_in(*superp, s))
				json_array_append_new(*superp, json_string(s));
			free(one);
			p += len;
			if (*p == ';')
				p++;
		}
	}
done:
	json_decref(cfgs);
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	return err;
}

/* DescribeAcls of every binding on resources of type rt. */
static km_err_t describe_acls(km_kafka_t *ks, rd_kafka_ResourceType_t rt, json_t **outp,
			      char *errstr, size_t errstr_size)
{
	rd_kafka_AclBindingFilter_t *f;
	rd_kafka_event_t *ev = NULL;
	km_kafka_call_t call;
	char ferr[256];
	km_err_t err;
	size_t n;

	*outp = NULL;
	f = rd_kafka_AclBindingFilter_new(rt, NULL, RD_KAFKA_RESOURCE_PATTERN_ANY, NULL, NULL,
					  RD_KAFKA_ACL_OPERATION_ANY,
					  RD_KAFKA_ACL_PERMISSION_TYPE_ANY, ferr, sizeof(ferr));
	if (!f)
		KM_BUG("DescribeAcls filter: %s", ferr);
	km_kafka_call_begin(ks, RD_KAFKA_ADMIN_OP_DESCRIBEACLS, 0, &call);
	rd_kafka_DescribeAcls(km_kafka_rk(ks), f, call.options, call.q);
	err = km_kafka_call_wait(ks, &call, RD_KAFKA_EVENT_DESCRIBEACLS_RESULT, "DescribeAcls", &ev,
				 errstr, errstr_size);
	if (!err) {
		const rd_kafka_AclBinding_t **bs =
			rd_kafka_DescribeAcls_result_acls(rd_kafka_event_DescribeAcls_result(ev), &n);
		*outp = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(*outp, acl_binding_json(bs[i]));
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AclBinding_destroy(f);
	return err;
}

/* One ListOffsets (lib/kafka.h) of every partition in tps[0..n-1]: which
 * 0 = log start, 1 = high watermark, 2 = last stable offset. */
static km_err_t list_offsets(km_kafka_t *ks, tp_t *tps, size_t n, int which, char *errstr,
			     size_t errstr_size)
{
	static const km_kafka_offset_t what[3] = {KM_KAFKA_LOG_START, KM_KAFKA_HWM, KM_KAFKA_LSO};
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
	km_err_t err;

	for (size_t i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, tps[i].topic, tps[i].partition);
	if (!(err = km_kafka_list_offsets(ks, l, what[which], errstr, errstr_size)))
		for (size_t i = 0; i < n; i++)
			*(which == 0 ? &tps[i].low : which == 1 ? &tps[i].hwm : &tps[i].lso) =
				l->elems[i].offset;
	rd_kafka_topic_partition_list_destroy(l);
	return err;
}

/* The fenced partitions of a plan ("topics": [{topic, partitions}]). */
static tp_t *plan_tps(const json_t *plan, size_t *np)
{
	size_t i, n = 0, k = 0;
	json_t *t;
	tp_t *tps;

	json_array_foreach(json_object_get(plan, "topics"), i, t) n +=
		(size_t)json_integer_value(json_object_get(t, "partitions"));
	tps = km_calloc(n ? n : 1, sizeof(*tps));
	json_array_foreach(json_object_get(plan, "topics"), i, t) {
		for (int p = 0; p < json_integer_value(json_object_get(t, "partitions")); p++) {
			tps[k].topic = jstr(t, "topic");
			tps[k].partition = p;
			k++;
		}
	}
	*np = n;
	return tps;
}

/* Refuses (KM_ERR_NOGO) the first partition with an open transaction.
 * The high watermark is read before the last stable offset: with live
 * writers the two calls see different moments, and LSO(t1) < HWM(t0) <=
 * HWM(t1) proves a transaction open at t1.  A transaction whose first
 * record came between t0 and t1 escapes this check, as does one that
 * begins after it; the proof after the fence (writes stopped, so stable
 * offsets) catches both. */
static km_err_t check_no_open_txn(km_kafka_t *ks, tp_t *tps, size_t n, char *errstr,
				  size_t errstr_size)
{
	km_err_t err;

	if ((err = list_offsets(ks, tps, n, 1, errstr, errstr_size)) ||
	    (err = list_offsets(ks, tps, n, 2, errstr, errstr_size)))
		return err;
	for (size_t i = 0; i < n; i++)
		if (tps[i].lso < tps[i].hwm)
			return km_seterr(
				errstr, errstr_size, KM_ERR_NOGO,
				"cannot fence '%s' with the config fence: partition %d has an open "
				"transaction (last stable offset %lld < high watermark %lld), whose "
				"markers max.message.bytes=0 would refuse, leaving it stuck until a "
				"broker restart (wait until it ends, or use cutover.fence: acl or "
				"external)",
				tps[i].topic, tps[i].partition, (long long)tps[i].lso,
				(long long)tps[i].hwm);
	return KM_ERR_OK;
}

/* ---- plan ------------------------------------------------------------ */

/* Does binding b (a TOPIC ACL) apply to topic t? */
static bool acl_covers(const json_t *b, const char *t)
{
	const char *name = jstr(b, "name"), *pt = jstr(b, "pattern_type");

	if (!strcmp(pt, "LITERAL"))
		return !strcmp(name, "*") || !strcmp(name, t);
	if (!strcmp(pt, "PREFIXED"))
		return !strncmp(name, t, strlen(name));
	return false;
}

static bool in_topics(const char *const *topics, size_t n, const char *t)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(topics[i], t))
			return true;
	return false;
}

static km_err_t plan_acl(km_kafka_t *ks, const char *const *topics, size_t ntopics,
			 const json_t *all_topics, const json_t *super, int allow_everyone,
			 json_t *principals_in, const char *const *txn_ids, size_t ntxn,
			 json_t *plan, char *errstr, size_t errstr_size)
{
	json_t *acls = NULL, *remove = json_array(), *kept = json_array(), *add = json_array(),
	       *present = json_array(), *deny = json_array(), *nf = json_array(),
	       *with_acls = json_object(), *txn_acls = NULL, *b, *p;
	const char *tname;
	km_err_t err;
	size_t i, j;

	if ((err = describe_acls(ks, RD_KAFKA_RESOURCE_TOPIC, &acls, errstr, errstr_size)) ||
	    (err = describe_acls(ks, RD_KAFKA_RESOURCE_TRANSACTIONAL_ID, &txn_acls, errstr,
				 errstr_size)))
		goto done;

	/* The principals to deny: those the caller found, and every holder of
	 * an ALLOW that grants WRITE on a fenced topic (the inventory may have
	 * missed a writer; its ACL did not). */
	json_array_foreach(principals_in, i, p) if (!str_in(deny, json_string_value(p)))
		json_array_append(deny, p);
	json_array_foreach(acls, i, b) {
		const char *op = jstr(b, "operation");
		bool fenced = false, other = false;

		for (j = 0; j < ntopics; j++)
			if (acl_covers(b, topics[j])) {
				fenced = true;
				json_object_set_new(with_acls, topics[j], json_true());
			}
		if (!fenced || strcmp(jstr(b, "permission"), "ALLOW") ||
		    (strcmp(op, "WRITE") && strcmp(op, "ALL")))
			continue;
		json_object_foreach((json_t *)all_topics, tname, p) if (!in_topics(topics, ntopics, tname) &&
									acl_covers(b, tname)) other = true;
		if (!str_in(deny, jstr(b, "principal")))
			json_array_append_new(deny, json_string(jstr(b, "principal")));
		/* Removing a binding that also grants other topics, or other
		 * operations (ALL), would change more than the fence: it is
		 * kept, and the DENY of its principal overrides it here. */
		if (!strcmp(op, "ALL"))
			json_array_append_new(kept, json_pack("{s:O, s:s}", "acl", b, "reason",
							      "ALLOW ALL also grants reads; its "
							      "principal is denied WRITE instead"));
		else if (!strcmp(jstr(b, "name"), "*") || other)
			json_array_append_new(
				kept, json_pack("{s:O, s:s}", "acl", b, "reason",
						"it also grants WRITE on topics outside the fence; "
						"its principal is denied WRITE instead"));
		else
			json_array_append(remove, b);
	}

	/* Super users bypass every ACL: list them, fence the others.  When
	 * nobody knows who they are, say so: the proof as each principal is
	 * then what shows that none of them is one. */
	if (!super)
		json_array_append_new(
			json_object_get(plan, "warnings"),
			json_string("the cluster hides super.users (DescribeConfigs reports it "
				    "as sensitive) and none were declared: a super user among the "
				    "principals would not be fenced by these ACLs; declare them, "
				    "or prove the fence as each principal"));
	for (i = 0; super && i < json_array_size(deny);) {
		const char *pr = json_string_value(json_array_get(deny, i));
		if (str_in(super, pr)) {
			json_array_append_new(
				nf, json_pack("{s:s, s:s}", "principal", pr, "reason",
					      "super user (super.users): ACLs do not bind it; cover "
					      "it with the config fence or an external fence"));
			json_array_remove(deny, i);
		} else {
			i++;
		}
	}

	/* On a cluster that allows everyone when no ACL matches, the first ACL
	 * on a topic makes it deny-by-default for every other principal:
	 * keep readers reading.  Topics that already had ACLs are unchanged. */
	for (j = 0; j < ntopics; j++) {
		if (json_object_get(with_acls, topics[j]) || allow_everyone == 0)
			continue;
		if (allow_everyone < 0) {
			err = km_seterr(
				errstr, errstr_size, KM_ERR_NOGO,
				"cannot plan the ACL fence of '%s': it has no ACL, and whether the "
				"%s cluster allows everyone when no ACL matches is unknown (the "
				"broker hides allow.everyone.if.no.acl.found), so a DENY could "
				"cut its readers off; declare allow.everyone.if.no.acl.found",
				topics[j], km_kafka_endpoint(ks)->role);
			goto done;
		}
		{
			json_array_append_new(add, acl_json(RD_KAFKA_RESOURCE_TOPIC, topics[j],
							    RD_KAFKA_RESOURCE_PATTERN_LITERAL,
							    "User:*", "*", RD_KAFKA_ACL_OPERATION_READ,
							    RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW));
			json_array_append_new(add, acl_json(RD_KAFKA_RESOURCE_TOPIC, topics[j],
							    RD_KAFKA_RESOURCE_PATTERN_LITERAL,
							    "User:*", "*",
							    RD_KAFKA_ACL_OPERATION_DESCRIBE,
							    RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW));
		}
	}
	json_array_foreach(deny, i, p) {
		const char *pr = json_string_value(p);
		for (j = 0; j < ntopics + ntxn; j++) {
			bool txn = j >= ntopics;
			json_t *a = acl_json(txn ? RD_KAFKA_RESOURCE_TRANSACTIONAL_ID
						 : RD_KAFKA_RESOURCE_TOPIC,
					     txn ? txn_ids[j - ntopics] : topics[j],
					     RD_KAFKA_RESOURCE_PATTERN_LITERAL, pr, "*",
					     RD_KAFKA_ACL_OPERATION_WRITE,
					     RD_KAFKA_ACL_PERMISSION_TYPE_DENY);
			/* A DENY that exists already is not ours to undo. */
			if (acl_in(txn ? txn_acls : acls, a))
				json_array_append_new(present, a);
			else
				json_array_append_new(add, a);
		}
	}
	json_object_set_new(plan, "principals", deny);
	deny = NULL;
	json_object_set_new(plan, "not_fenceable", nf);
	nf = NULL;
	json_object_set_new(plan, "remove", remove);
	remove = NULL;
	json_object_set_new(plan, "kept", kept);
	kept = NULL;
	json_object_set_new(plan, "add", add);
	add = NULL;
	json_object_set_new(plan, "already_present", present);
	present = NULL;
done:
	json_decref(acls);
	json_decref(txn_acls);
	json_decref(remove);
	json_decref(kept);
	json_decref(add);
	json_decref(present);
	json_decref(deny);
	json_decref(nf);
	json_decref(with_acls);
	return err;
}

/* The DENY-only ACL fence (the rollback's target fence): one DENY WRITE
 * (TOPIC, LITERAL, topic, host *) per {"topic", "principal"} of denies,
 * the caller's list (lib/guard.c's computation); nothing removed, so the
 * inverse deletes exactly the DENYs added.  A DENY already there is not
 * ours to undo; a known super user cannot be fenced by ACLs (named in
 * "not_fenceable", the caller's NO-GO). */
static km_err_t plan_deny(km_kafka_t *ks, const json_t *denies, const json_t *super,
			  json_t *plan, char *errstr, size_t errstr_size)
{
	json_t *acls = NULL, *add = json_array(), *present = json_array(), *pr = json_array(),
	       *nf = json_array(), *d;
	km_err_t err;
	size_t i;

	if ((err = describe_acls(ks, RD_KAFKA_RESOURCE_TOPIC, &acls, errstr, errstr_size)))
		goto done;
	json_array_foreach(denies, i, d) {
		const char *p = jstr(d, "principal"), *t = jstr(d, "topic");
		json_t *a;

		if (super && str_in(super, p)) {
			json_array_append_new(
				nf, json_pack("{s:s, s:s}", "principal", p, "reason",
					      "super user (super.users): ACLs do not bind it"));
			continue;
		}
		a = acl_json(RD_KAFKA_RESOURCE_TOPIC, t, RD_KAFKA_RESOURCE_PATTERN_LITERAL, p, "*",
			     RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_DENY);
		json_array_append_new(acl_in(acls, a) ? present : add, a);
		if (!str_in(pr, p))
			json_array_append_new(pr, json_string(p));
	}
	json_object_set(plan, "principals", pr);
	json_object_set(plan, "not_fenceable", nf);
	json_object_set_new(plan, "remove", json_array());
	json_object_set_new(plan, "kept", json_array());
	json_object_set(plan, "add", add);
	json_object_set(plan, "already_present", present);
done:
	json_decref(acls);
	json_decref(add);
	json_decref(present);
	json_decref(pr);
	json_decref(nf);
	return err;
}

static km_err_t plan_config(km_kafka_t *ks, const char *const *topics, size_t ntopics,
			    const char *const *txn_ids, size_t ntxn, json_t *plan, char *errstr,
			    size_t errstr_size)
{
	json_t *cfgs = NULL, *t;
	tp_t *tps = NULL;
	km_err_t err;
	size_t i, n;

	if (ntxn)
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "cannot fence '%s' with the config fence: transactional producer "
				 "'%s' writes it, and max.message.bytes=0 would refuse its "
				 "transaction markers, leaving a transaction stuck until a broker "
				 "restart (use cutover.fence: acl or external)",
				 topics[0], txn_ids[0]);
	if ((err = describe_configs(ks, RD_KAFKA_RESOURCE_TOPIC, topics, ntopics, &cfgs, errstr,
				    errstr_size)))
		return err;
	json_array_foreach(json_object_get(plan, "topics"), i, t) {
		const json_t *e = json_object_get(json_object_get(cfgs, jstr(t, "topic")), MMB);
		const char *v = jstr(e, "value"), *src = jstr(e, "source");
		bool override;

		if (!v || !src) {
			err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
					"DescribeConfigs of topic '%s' did not return %s, so its "
					"value before the fence would be unknown (check the "
					"principal's DESCRIBE_CONFIGS on the topic)",
					jstr(t, "topic"), MMB);
			goto done;
		}
		/* Only a topic override (DYNAMIC_TOPIC_CONFIG) is restored by
		 * SET; anything else by DELETE, so that later changes of the
		 * broker default still apply to the topic. */
		override = !strcmp(src, "topic");
		json_object_set_new(t, "max_message_bytes",
				    json_pack("{s:s, s:s, s:b}", "value", v, "source", src,
					      "override", override));
		json_object_set_new(t, "fenced_already",
				    json_boolean(override && !strcmp(v, KM_FENCE_MAX_MESSAGE_BYTES)));
	}
	tps = plan_tps(plan, &n);
	err = check_no_open_txn(ks, tps, n, errstr, errstr_size);
done:
	free(tps);
	json_decref(cfgs);
	return err;
}

static km_err_t plan_fence(km_kafka_t *ks, const char *const *topics, size_t ntopics,
			   const char *const *principals, size_t nprincipals,
			   const char *const *txn_ids, size_t ntxn_ids, const char *kind,
			   const km_fence_facts_t *facts, const json_t *denies, json_t **planp,
			   char *errstr, size_t errstr_size);

km_err_t km_fence_plan(km_kafka_t *ks, const char *const *topics, size_t ntopics,
		       const char *const *principals, size_t nprincipals,
		       const char *const *txn_ids, size_t ntxn_ids, const char *kind,
		       const km_fence_facts_t *facts, json_t **planp, char *errstr,
		       size_t errstr_size)
{
	return plan_fence(ks, topics, ntopics, principals, nprincipals, txn_ids, ntxn_ids, kind,
			  facts, NULL, planp, errstr, errstr_size);
}

km_err_t km_fence_plan_denies(km_kafka_t *ks, const json_t *denies, const km_fence_facts_t *facts,
			      json_t **planp, char *errstr, size_t errstr_size)
{
	const char **topics = km_calloc(json_array_size(denies) + 1, sizeof(*topics));
	size_t n = 0, i, j;
	json_t *d;
	km_err_t err;

	json_array_foreach(denies, i, d) {
		const char *t = jstr(d, "topic");
		for (j = 0; j < n && strcmp(topics[j], t); j++)
			;
		if (j == n)
			topics[n++] = t;
	}
	err = plan_fence(ks, topics, n, NULL, 0, NULL, 0, "acl", facts, denies, planp, errstr,
			 errstr_size);
	free(topics);
	return err;
}

static km_err_t plan_fence(km_kafka_t *ks, const char *const *topics, size_t ntopics,
			   const char *const *principals, size_t nprincipals,
			   const char *const *txn_ids, size_t ntxn_ids, const char *kind,
			   const km_fence_facts_t *facts, const json_t *denies, json_t **planp,
			   char *errstr, size_t errstr_size)
{
	json_t *all = NULL, *brokers = NULL, *super = NULL, *plan = NULL, *pin = json_array(),
	       *tarr = json_array();
	char *authorizer = NULL;
	const char *super_from = "broker", *ae_from = "broker";
	int allow_everyone = -1;
	bool acl;
	km_err_t err;

	*planp = NULL;
	if (!kind || (strcmp(kind, "acl") && strcmp(kind, "config"))) {
		err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
				"unknown fence kind '%s' (use acl or config; an external fence is "
				"proven by the drain's quiet check alone)",
				kind ? kind : "");
		goto done;
	}
	acl = !strcmp(kind, "acl");
	if (!ntopics) {
		err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
				"nothing to fence: no topic given (list the wave's topics)");
		goto done;
	}
	for (size_t i = 0; i < nprincipals; i++) {
		if (!principals[i] || !strchr(principals[i], ':') || principals[i][0] == ':') {
			err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
					"invalid principal '%s' (write it as Kafka does, e.g. "
					"User:alice)",
					principals[i] ? principals[i] : "");
			goto done;
		}
		json_array_append_new(pin, json_string(principals[i]));
	}
	for (size_t i = 0; i < ntxn_ids; i++)
		if (!txn_ids[i] || !*txn_ids[i]) {
			err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
					"empty transactional id in the fence's list (remove it)");
			goto done;
		}
	/* The config fence needs nothing of the authorizer: a principal
	 * without DESCRIBE_CONFIGS on the cluster can still plan it. */
	if ((err = read_metadata(ks, &all, &brokers, errstr, errstr_size)) ||
	    (acl && (err = read_authz(ks, brokers, &authorizer, &super, &allow_everyone, errstr,
				      errstr_size))))
		goto done;
	if (!super && facts && facts->super_users) {
		super = json_array();
		for (size_t i = 0; i < facts->nsuper_users; i++)
			json_array_append_new(super, json_string(facts->super_users[i]));
		super_from = "declared";
	} else if (!super) {
		super_from = "unknown";
	}
	if (allow_everyone < 0 && facts && facts->allow_everyone_if_no_acl_found >= 0) {
		allow_everyone = facts->allow_everyone_if_no_acl_found;
		ae_from = "declared";
	} else if (allow_everyone < 0) {
		ae_from = "unknown";
	}
	for (size_t i = 0; i < ntopics; i++) {
		json_t *pc = json_object_get(all, topics[i]);
		if (!pc) {
			err = km_seterr(errstr, errstr_size, KM_ERR_NOT_FOUND,
					"cannot fence topic '%s': it does not exist on the %s cluster "
					"'%s' (check the wave's topic list)",
					topics[i], km_kafka_endpoint(ks)->role,
					km_kafka_endpoint(ks)->bootstrap);
			goto done;
		}
		json_array_append_new(tarr, json_pack("{s:s, s:O}", "topic", topics[i],
						      "partitions", pc));
	}
	if (acl && !authorizer) {
		/* librdkafka (2.8) hides DescribeAcls' SECURITY_DISABLED: the
		 * broker config is the reliable answer. */
		err = km_seterr(errstr, errstr_size, KM_ERR_UNSUPPORTED,
				"cannot fence with ACLs: the %s cluster '%s' has no authorizer "
				"(authorizer.class.name is empty; use cutover.fence: config or "
				"external)",
				km_kafka_endpoint(ks)->role, km_kafka_endpoint(ks)->bootstrap);
		goto done;
	}
	plan = json_pack("{s:s, s:s, s:O, s:[], s:O?, s:s, s:o, s:s, s:s?, s:[]}", "kind", kind,
			 "cluster", km_kafka_endpoint(ks)->bootstrap, "topics", tarr, "txn_ids",
			 "super_users", super, "super_users_from", super_from,
			 "allow_everyone_if_no_acl_found",
			 allow_everyone < 0 ? json_null() : json_boolean(allow_everyone),
			 "allow_everyone_from", ae_from, "authorizer", authorizer, "warnings");
	for (size_t i = 0; i < ntxn_ids; i++)
		json_array_append_new(json_object_get(plan, "txn_ids"), json_string(txn_ids[i]));
	if (acl && denies)
		err = plan_deny(ks, denies, super, plan, errstr, errstr_size);
	else if (acl)
		err = plan_acl(ks, topics, ntopics, all, super, allow_everyone, pin, txn_ids,
			       ntxn_ids, plan, errstr, errstr_size);
	else
		err = plan_config(ks, topics, ntopics, txn_ids, ntxn_ids, plan, errstr,
				  errstr_size);
	if (!err) {
		*planp = plan;
		plan = NULL;
	}
done:
	json_decref(plan);
	json_decref(all);
	json_decref(brokers);
	json_decref(super);
	json_decref(pin);
	json_decref(tarr);
	free(authorizer);
	return err;
}

/* ---- inverse --------------------------------------------------------- */

km_err_t km_fence_inverse(const json_t *plan, json_t **inversep, char *errstr,
			  size_t errstr_size)
{
	const char *kind = jstr(plan, "kind");
	json_t *inv, *t;
	size_t i;

	*inversep = NULL;
	if (kind && !strcmp(kind, "acl")) {
		*inversep = json_pack("{s:s, s:O, s:O}", "kind", "acl", "delete",
				      json_object_get(plan, "add"), "create",
				      json_object_get(plan, "remove"));
		if (!*inversep)
			goto bad;
		return KM_ERR_OK;
	}
	if (!kind || strcmp(kind, "config"))
		goto bad;
	inv = json_pack("{s:s, s:[]}", "kind", "config", "configs");
	json_array_foreach(json_object_get(plan, "topics"), i, t) {
		const json_t *m = json_object_get(t, "max_message_bytes");
		if (!jstr(t, "topic") || !jstr(m, "value")) {
			json_decref(inv);
			goto bad;
		}
		if (json_is_true(json_object_get(t, "fenced_already"))) {
			json_decref(inv);
			return km_seterr(errstr, errstr_size, KM_ERR_CONFLICT,
					 "topic '%s' already has the fence's %s=0 override, so "
					 "this plan cannot know the value to restore (resume with "
					 "the journaled plan and inverse, not a new plan)",
					 jstr(t, "topic"), MMB);
		}
		if (json_is_true(json_object_get(m, "override")))
			json_array_append_new(json_object_get(inv, "configs"),
					      json_pack("{s:s, s:s, s:s, s:s}", "topic",
							jstr(t, "topic"), "name", MMB, "op", "SET",
							"value", jstr(m, "value")));
		else
			json_array_append_new(json_object_get(inv, "configs"),
					      json_pack("{s:s, s:s, s:s, s:s}", "topic",
							jstr(t, "topic"), "name", MMB, "op",
							"DELETE", "source", jstr(m, "source")));
	}
	*inversep = inv;
	return KM_ERR_OK;
bad:
	return km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
			 "malformed fence plan: need kind acl (add, remove) or config (topics "
			 "with max_message_bytes); pass the document km_fence_plan() returned");
}

/* ---- changing ACLs and configs --------------------------------------- */

/* CreateAcls (create) or DeleteAcls with one exact filter per binding, of
 * the bindings of arr whose permission is perm (NULL: all).  Creating an
 * existing binding is a no-op in Kafka, and deleting one that is gone
 * matches nothing, which is success: that is what makes apply and undo
 * idempotent. */
static km_err_t change_acls(km_kafka_t *ks, const json_t *arr, const char *perm, bool create,
			    char *errstr, size_t errstr_size)
{
	const char *what = create ? "CreateAcls" : "DeleteAcls";
	size_t n = json_array_size(arr), k = 0, i, nr = 0;
	rd_kafka_AclBinding_t **bs = km_calloc(n ? n : 1, sizeof(*bs));
	rd_kafka_event_t *ev = NULL;
	km_kafka_call_t call;
	km_err_t err = KM_ERR_OK;
	json_t *j;

	json_array_foreach(arr, i, j) {
		if (perm && strcmp(jstr(j, "permission") ? jstr(j, "permission") : "", perm))
			continue;
		if (!(bs[k] = acl_from_json(j, !create, errstr, errstr_size))) {
			err = KM_ERR_INVALID_ARG;
			goto done;
		}
		k++;
	}
	if (!k)
		goto done;
	km_kafka_call_begin(ks, create ? RD_KAFKA_ADMIN_OP_CREATEACLS : RD_KAFKA_ADMIN_OP_DELETEACLS,
			    0, &call);
	if (create)
		rd_kafka_CreateAcls(km_kafka_rk(ks), bs, k, call.options, call.q);
	else
		rd_kafka_DeleteAcls(km_kafka_rk(ks), bs, k, call.options, call.q);
	if ((err = km_kafka_call_wait(ks, &call,
				      create ? RD_KAFKA_EVENT_CREATEACLS_RESULT
					     : RD_KAFKA_EVENT_DELETEACLS_RESULT,
				      what, &ev, errstr, errstr_size)))
		goto done;
	const rd_kafka_acl_result_t **cr = NULL;
	const rd_kafka_DeleteAcls_result_response_t **dr = NULL;
	if (create)
		cr = rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev), &nr);
	else
		dr = rd_kafka_DeleteAcls_result_responses(rd_kafka_event_DeleteAcls_result(ev), &nr);
	for (i = 0; i < nr && i < k; i++) {
		const rd_kafka_error_t *e = create ? rd_kafka_acl_result_error(cr[i])
						   : rd_kafka_DeleteAcls_result_response_error(dr[i]);
		if (e) {
			char sub[400];
			snprintf(sub, sizeof(sub), "%s of %s %s on '%s' for '%s'", what,
				 rd_kafka_AclPermissionType_name(rd_kafka_AclBinding_permission_type(bs[i])),
				 rd_kafka_AclOperation_name(rd_kafka_AclBinding_operation(bs[i])),
				 rd_kafka_AclBinding_name(bs[i]), rd_kafka_AclBinding_principal(bs[i]));
			err = km_kafka_err(ks, rd_kafka_error_code(e), sub, rd_kafka_error_string(e),
					   errstr, errstr_size);
			goto done;
		}
	}
done:
	if (ev)
		rd_kafka_event_destroy(ev);
	for (i = 0; i < k; i++)
		rd_kafka_AclBinding_destroy(bs[i]);
	free(bs);
	return err;
}

/* IncrementalAlterConfigs of max.message.bytes on each row of rows
 * ({topic, op: SET|DELETE, value}), one resource per topic. */
static km_err_t alter_mmb(km_kafka_t *ks, const json_t *rows, char *errstr, size_t errstr_size)
{
	size_t n = json_array_size(rows), i, nr;
	rd_kafka_ConfigResource_t **rs = km_calloc(n ? n : 1, sizeof(*rs));
	rd_kafka_event_t *ev = NULL;
	km_kafka_call_t call;
	km_err_t err = KM_ERR_OK;
	json_t *r;

	json_array_foreach(rows, i, r) {
		const char *op = jstr(r, "op");
		bool set = op && !strcmp(op, "SET");
		rd_kafka_error_t *e;

		if (!jstr(r, "topic") || !op || (!set && strcmp(op, "DELETE")) ||
		    (set && !jstr(r, "value"))) {
			err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
					"malformed config row in the fence document: need topic, "
					"op SET (with value) or DELETE");
			goto done;
		}
		rs[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, jstr(r, "topic"));
		e = rd_kafka_ConfigResource_add_incremental_config(
			rs[i], MMB, set ? RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET
					: RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE,
			set ? jstr(r, "value") : NULL);
		if (e) {
			err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
					"cannot %s %s on '%s': %s", op, MMB, jstr(r, "topic"),
					rd_kafka_error_string(e));
			rd_kafka_error_destroy(e);
			goto done;
		}
	}
	if (!n)
		goto done;
	km_kafka_call_begin(ks, RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS, 0, &call);
	rd_kafka_IncrementalAlterConfigs(km_kafka_rk(ks), rs, n, call.options, call.q);
	if ((err = km_kafka_call_wait(ks, &call, RD_KAFKA_EVENT_INCREMENTALALTERCONFIGS_RESULT,
				      "IncrementalAlterConfigs", &ev, errstr, errstr_size)))
		goto done;
	const rd_kafka_ConfigResource_t **rr = rd_kafka_IncrementalAlterConfigs_result_resources(
		rd_kafka_event_IncrementalAlterConfigs_result(ev), &nr);
	for (i = 0; i < nr; i++)
		if (rd_kafka_ConfigResource_error(rr[i])) {
			char what[400];
			snprintf(what, sizeof(what), "IncrementalAlterConfigs of %s on '%s'", MMB,
				 rd_kafka_ConfigResource_name(rr[i]));
			err = km_kafka_err(ks, rd_kafka_ConfigResource_error(rr[i]), what,
					   rd_kafka_ConfigResource_error_string(rr[i]), errstr,
					   errstr_size);
			goto done;
		}
done:
	if (ev)
		rd_kafka_event_destroy(ev);
	for (i = 0; i < n; i++)
		if (rs[i])
			rd_kafka_ConfigResource_destroy(rs[i]);
	free(rs);
	return err;
}

km_err_t km_fence_apply(km_kafka_t *ks, const json_t *plan, json_t **inversep, char *errstr,
			size_t errstr_size)
{
	json_t *inv = NULL, *rows = NULL, *t;
	tp_t *tps = NULL;
	km_err_t err;
	size_t i, n;

	if (inversep)
		*inversep = NULL;
	/* The inverse comes first: a plan whose undo is unknown changes
	 * nothing. */
	if ((err = km_fence_inverse(plan, &inv, errstr, errstr_size)))
		return err;
	if (!strcmp(jstr(plan, "kind"), "acl")) {
		/* Order: the ALLOWs that keep readers reading exist before the
		 * first DENY makes the topic deny-by-default; the DENYs exist
		 * before any ALLOW WRITE is removed, so the fence holds from
		 * the first step that changes writes. */
		if ((err = change_acls(ks, json_object_get(plan, "add"), "ALLOW", true, errstr,
				       errstr_size)) ||
		    (err = change_acls(ks, json_object_get(plan, "add"), "DENY", true, errstr,
				       errstr_size)) ||
		    (err = change_acls(ks, json_object_get(plan, "remove"), NULL, false, errstr,
				       errstr_size)))
			goto done;
	} else {
		/* The plan checked LSO == HWM; a transaction may have begun
		 * since.  Check again as late as possible: a transaction that
		 * begins in the remaining window is caught by the proof. */
		tps = plan_tps(plan, &n);
		if ((err = check_no_open_txn(ks, tps, n, errstr, errstr_size)))
			goto done;
		rows = json_array();
		json_array_foreach(json_object_get(plan, "topics"), i, t)
			json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "topic",
							      jstr(t, "topic"), "op", "SET",
							      "value", KM_FENCE_MAX_MESSAGE_BYTES));
		if ((err = alter_mmb(ks, rows, errstr, errstr_size)))
			goto done;
	}
	if (inversep) {
		*inversep = inv;
		inv = NULL;
	}
done:
	free(tps);
	json_decref(rows);
	json_decref(inv);
	return err;
}

km_err_t km_fence_undo(km_kafka_t *ks, const json_t *inverse, char *errstr, size_t errstr_size)
{
	const char *kind = jstr(inverse, "kind");

	if (kind && !strcmp(kind, "acl")) {
		km_err_t err;
		/* The removed ALLOW WRITEs come back before the DENYs go, and
		 * the DENYs go before the reader ALLOWs, so no principal is
		 * ever refused more than under the fence. */
		if ((err = change_acls(ks, json_object_get(inverse, "create"), NULL, true, errstr,
				       errstr_size)) ||
		    (err = change_acls(ks, json_object_get(inverse, "delete"), "DENY", false, errstr,
				       errstr_size)))
			return err;
		return change_acls(ks, json_object_get(inverse, "delete"), "ALLOW", false, errstr,
				   errstr_size);
	}
	if (kind && !strcmp(kind, "config") && json_is_array(json_object_get(inverse, "configs")))
		return alter_mmb(ks, json_object_get(inverse, "configs"), errstr, errstr_size);
	return km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
			 "malformed fence inverse: need kind acl (delete, create) or config "
			 "(configs); pass the document km_fence_inverse() returned");
}

/* ---- prove ----------------------------------------------------------- */

/* Is the fence visible in what the cluster describes?  *whyp names what is
 * still missing (owned) when not. */
/* Is the fence visible in what the cluster describes (restored false), or
 * is what it changed back as it was (restored true: every removed ALLOW is
 * there again, no added binding is left, max.message.bytes has the value
 * and source the plan saw)?  *whyp names the first difference (owned). */
static km_err_t fence_state(km_kafka_t *ks, const json_t *plan, bool restored, bool *okp,
			    char **whyp, char *errstr, size_t errstr_size)
{
	json_t *acls = NULL, *txn = NULL, *cfgs = NULL, *b, *t;
	km_err_t err = KM_ERR_OK;
	size_t i;

	*okp = true;
	*whyp = NULL;
	if (!strcmp(jstr(plan, "kind"), "acl")) {
		if ((err = describe_acls(ks, RD_KAFKA_RESOURCE_TOPIC, &acls, errstr, errstr_size)) ||
		    (err = describe_acls(ks, RD_KAFKA_RESOURCE_TRANSACTIONAL_ID, &txn, errstr,
					 errstr_size)))
			goto done;
		json_array_extend(acls, txn);
		json_array_foreach(json_object_get(plan, "add"), i, b)
			if (acl_in(acls, b) == restored) {
				*okp = false;
				*whyp = km_asprintf("%s %s on '%s' for '%s' is %s",
						    jstr(b, "permission"), jstr(b, "operation"),
						    jstr(b, "name"), jstr(b, "principal"),
						    restored ? "still there" : "not there");
				goto done;
			}
		json_array_foreach(json_object_get(plan, "remove"), i, b)
			if (acl_in(acls, b) != restored) {
				*okp = false;
				*whyp = km_asprintf("ALLOW %s on '%s' for '%s' is %s",
						    jstr(b, "operation"), jstr(b, "name"),
						    jstr(b, "principal"),
						    restored ? "not there" : "still there");
				goto done;
			}
	} else {
		size_t n = json_array_size(json_object_get(plan, "topics"));
		const char **names = km_calloc(n ? n : 1, sizeof(*names));
		json_array_foreach(json_object_get(plan, "topics"), i, t) names[i] = jstr(t, "topic");
		err = describe_configs(ks, RD_KAFKA_RESOURCE_TOPIC, names, n, &cfgs, errstr,
				       errstr_size);
		free(names);
		if (err)
			goto done;
		json_array_foreach(json_object_get(plan, "topics"), i, t) {
			const json_t *e = json_object_get(json_object_get(cfgs, jstr(t, "topic")), MMB);
			const json_t *was = json_object_get(t, "max_message_bytes");
			const char *want_v = restored ? jstr(was, "value") : KM_FENCE_MAX_MESSAGE_BYTES;
			const char *want_s = restored ? jstr(was, "source") : "topic";
			if (!want_v || !want_s || !jstr(e, "value") || strcmp(jstr(e, "value"), want_v) ||
			    !jstr(e, "source") || strcmp(jstr(e, "source"), want_s)) {
				*okp = false;
				*whyp = km_asprintf("'%s' has %s=%s (%s)", jstr(t, "topic"), MMB,
						    jstr(e, "value") ? jstr(e, "value") : "?",
						    jstr(e, "source") ? jstr(e, "source") : "?");
				goto done;
			}
		}
	}
done:
	json_decref(acls);
	json_decref(txn);
	json_decref(cfgs);
	return err;
}

km_err_t km_fence_wait_restored(km_kafka_t *ks, const json_t *plan, int timeout_ms,
				json_t **evidencep, char *errstr, size_t errstr_size)
{
	int64_t t0 = km_mono_ms();
	bool ok = false;
	char *why = NULL;
	km_err_t err;

	*evidencep = NULL;
	if (timeout_ms <= 0)
		timeout_ms = 30000;
	for (;;) {
		if ((err = fence_state(ks, plan, true, &ok, &why, errstr, errstr_size)))
			return err;
		if (ok || km_mono_ms() - t0 > timeout_ms)
			break;
		free(why);
		why = NULL;
		usleep(200 * 1000);
	}
	if (!ok) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"the fence on the %s cluster '%s' is not undone after %d ms: %s "
				"(undo it again, or check who changed the ACLs or configs since)",
				km_kafka_endpoint(ks)->role, km_kafka_endpoint(ks)->bootstrap,
				timeout_ms, why ? why : "?");
		free(why);
		return err;
	}
	*evidencep = json_pack("{s:s, s:I, s:s}", "kind", jstr(plan, "kind"), "waited_ms",
			       (json_int_t)(km_mono_ms() - t0), "compared",
			       !strcmp(jstr(plan, "kind"), "acl")
				       ? "every removed ALLOW is back, no added binding is left"
				       : "max.message.bytes has the value and source it had before");
	return KM_ERR_OK;
}

static const char *principal_of(const km_kafka_endpoint_t *ep)
{
	return ep->username ? ep->username : "ANONYMOUS";
}

static void canary_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	km_fence_canary_t *c = m->_private;

	(void)rk;
	(void)opaque;
	c->err = m->err;
	c->offset = m->err ? -1 : m->offset;
	c->latency_ms = km_mono_ms() - c->latency_ms;
	c->done = true;
}

km_err_t km_fence_canaries(const km_kafka_endpoint_t *ep, const char *header,
			   km_fence_canary_t *cs, size_t n, int timeout_ms, char *errstr,
			   size_t errstr_size)
{
	char tmo[32];
	const char *extra[] = {"enable.idempotence", "false", "acks", "all", "retries", "0",
			       "linger.ms", "0", "message.timeout.ms", tmo, NULL};
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk = NULL;
	char rerr[512], stamp[64];
	km_err_t err;
	int64_t t0 = km_mono_ms();

	if (timeout_ms <= 0)
		timeout_ms = 30000;
	for (size_t i = 0; i < n; i++) {
		cs[i].err = RD_KAFKA_RESP_ERR__TIMED_OUT;
		cs[i].offset = -1;
		cs[i].latency_ms = -1;
		cs[i].done = false;
	}
	snprintf(tmo, sizeof(tmo), "%d", timeout_ms);
	if ((err = km_kafka_conf_new(ep, extra, &conf, errstr, errstr_size)))
		goto done;
	rd_kafka_conf_set_dr_msg_cb(conf, canary_dr);
	if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rerr, sizeof(rerr)))) {
		err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				"cannot create a canary producer for '%s': %s", ep->bootstrap, rerr);
		goto done;
	}
	conf = NULL;
	km_iso8601(km_now_ms(), stamp, sizeof(stamp));
	for (size_t i = 0; i < n; i++) {
		cs[i].latency_ms = km_mono_ms(); /* the send time until delivered */
		rd_kafka_resp_err_t perr = rd_kafka_producev(
			rk, RD_KAFKA_V_TOPIC(cs[i].topic), RD_KAFKA_V_PARTITION(cs[i].partition),
			RD_KAFKA_V_HEADER(header, stamp, (ssize_t)strlen(stamp)),
			RD_KAFKA_V_VALUE(NULL, 0), RD_KAFKA_V_OPAQUE(&cs[i]), RD_KAFKA_V_END);
		if (perr) {
			cs[i].err = perr;
			cs[i].latency_ms = -1;
			cs[i].done = true;
		}
	}
	/* The delivery reports bound the wait: message.timeout.ms. */
	while (km_mono_ms() - t0 < timeout_ms + 5000) {
		bool all = true;
		rd_kafka_poll(rk, 50);
		for (size_t i = 0; i < n; i++)
			all = all && cs[i].done;
		if (all)
			break;
	}
	for (size_t i = 0; i < n; i++)
		if (!cs[i].done) {
			cs[i].err = RD_KAFKA_RESP_ERR__TIMED_OUT;
			cs[i].latency_ms = -1;
		}
done:
	if (rk) {
		rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_flush(rk, 1000);
		rd_kafka_destroy(rk);
	}
	if (conf)
		rd_kafka_conf_destroy(conf);
	return err;
}

/* Produces one canary to every partition as ep (km_fence_canaries) and
 * records each outcome in canaries.  A plain producer (no idempotence, no
 * retries) so that the answer is the partition's own: an idempotent one
 * would first need InitProducerId, which an ACL fence may refuse for the
 * whole client. */
static km_err_t produce_canaries(const km_kafka_endpoint_t *ep, tp_t *tps, size_t n,
				 rd_kafka_resp_err_t want, int timeout_ms, json_t *canaries,
				 json_t *failures, char *errstr, size_t errstr_size)
{
	km_fence_canary_t *cs = km_calloc(n ? n : 1, sizeof(*cs));
	km_err_t err;

	for (size_t i = 0; i < n; i++) {
		cs[i].topic = tps[i].topic;
		cs[i].partition = tps[i].partition;
	}
	if ((err = km_fence_canaries(ep, CANARY_HEADER, cs, n, timeout_ms, errstr, errstr_size)))
		goto done;
	for (size_t i = 0; i < n; i++) {
		rd_kafka_resp_err_t e = cs[i].err;
		bool ok = e == want;
		json_t *row = json_pack("{s:s, s:s, s:i, s:s, s:s, s:b}", "as", principal_of(ep),
					"topic", tps[i].topic, "partition", tps[i].partition,
					"error", rd_kafka_err2name(e), "expected",
					rd_kafka_err2name(want), "ok", ok);
		if (!e)
			json_object_set_new(row, "appended_at", json_integer(cs[i].offset));
		json_array_append_new(canaries, row);
		if (!ok)
			json_array_append_new(
				failures,
				e ? json_sprintf("canary to '%s'[%d] as '%s' failed with %s, not %s",
						 tps[i].topic, tps[i].partition, principal_of(ep),
						 rd_kafka_err2name(e), rd_kafka_err2name(want))
				  : json_sprintf("canary to '%s'[%d] as '%s' was appended at offset "
						 "%lld: the fence does not hold",
						 tps[i].topic, tps[i].partition, principal_of(ep),
						 (long long)cs[i].offset));
	}
done:
	free(cs);
	return err;
}

/* Reads every partition from its log start with read_committed as ep, up
 * to its end or READ_MAX_RECORDS records; records per partition whether
 * the read got there. */
/* Releases what a proof's reader (an assign()ed consumer) held; each may
 * be NULL. */
static void reader_close(rd_kafka_topic_partition_list_t *l, rd_kafka_t *rk,
			 rd_kafka_conf_t *conf)
{
	if (l)
		rd_kafka_topic_partition_list_destroy(l);
	if (rk) {
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	if (conf)
		rd_kafka_conf_destroy(conf);
}

static km_err_t read_check(const km_kafka_endpoint_t *ep, tp_t *tps, size_t n, int timeout_ms,
			   json_t *rows, json_t *failures, char *errstr, size_t errstr_size)
{
	/* librdkafka's consumer poll needs a group.id even with assign();
	 * nothing joins or commits.  fetch.wait.max.ms: the end shows on an
	 * empty fetch, which would otherwise wait out the broker's 500 ms. */
	const char *extra[] = {"group.id", "kmigrate-fence-proof", "enable.auto.commit", "false",
			       "isolation.level", "read_committed", "enable.partition.eof", "true",
			       "auto.offset.reset", "earliest", "fetch.wait.max.ms", "10", NULL};
	int64_t *count = km_calloc(n ? n : 1, sizeof(*count));
	bool *end = km_calloc(n ? n : 1, sizeof(*end));
	rd_kafka_topic_partition_list_t *l = NULL;
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk = NULL;
	char rerr[512];
	km_err_t err;
	int64_t t0 = km_mono_ms();
	size_t left = n;

	if ((err = km_kafka_conf_new(ep, extra, &conf, errstr, errstr_size)))
		goto done;
	if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof(rerr)))) {
		err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				"cannot create the fence's read-check consumer for '%s': %s",
				ep->bootstrap, rerr);
		goto done;
	}
	conf = NULL;
	rd_kafka_poll_set_consumer(rk);
	/* assign(), not subscribe(): no group membership, nothing committed. */
	l = rd_kafka_topic_partition_list_new((int)n);
	for (size_t i = 0; i < n; i++) {
		rd_kafka_topic_partition_list_add(l, tps[i].topic, tps[i].partition)->offset =
			RD_KAFKA_OFFSET_BEGINNING;
		/* A partition with nothing committed below its end has
		 * nothing to read: its end is reached at once. */
		if (tps[i].low >= tps[i].lso) {
			end[i] = true;
			left--;
		}
	}
	if (rd_kafka_assign(rk, l)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				"cannot assign the fenced partitions to the read-check consumer");
		goto done;
	}
	while (left && km_mono_ms() - t0 < timeout_ms) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (!m)
			continue;
		for (size_t i = 0; i < n; i++) {
			if (end[i] || !m->rkt || strcmp(rd_kafka_topic_name(m->rkt), tps[i].topic) ||
			    m->partition != tps[i].partition)
				continue;
			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ||
			    (!m->err && ++count[i] >= READ_MAX_RECORDS) ||
			    (!m->err && m->offset + 1 >= tps[i].lso)) {
				end[i] = true;
				left--;
			}
		}
		rd_kafka_message_destroy(m);
	}
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(rows, json_pack("{s:s, s:i, s:I, s:b}", "topic", tps[i].topic,
						      "partition", tps[i].partition, "records",
						      (json_int_t)count[i], "ok", end[i]));
		if (!end[i])
			json_array_append_new(
				failures,
				json_sprintf("read_committed read of '%s'[%d] as '%s' from the log "
					     "start did not reach its end (%lld records read) in "
					     "%d ms",
					     tps[i].topic, tps[i].partition, principal_of(ep),
					     (long long)count[i], timeout_ms));
	}
done:
	reader_close(l, rk, conf);
	free(count);
	free(end);
	return err;
}

/* How many records (read_uncommitted: aborted ones count too) lie in
 * [from, to) of topic[partition], read as ep; transaction markers are not
 * records (a consumer never sees them).  A high watermark that moved while
 * fenced by markers alone -- the coordinator aborting a transaction at its
 * timeout, or completing one it had begun -- is no write that got through.
 * -1 in *countp when the range could not be read in timeout_ms. */
static km_err_t data_between(const km_kafka_endpoint_t *ep, const char *topic, int partition,
			     int64_t from, int64_t to, int timeout_ms, int64_t *countp,
			     char *errstr, size_t errstr_size)
{
	const char *extra[] = {"group.id", "kmigrate-fence-proof", "enable.auto.commit", "false",
			       "isolation.level", "read_uncommitted", "enable.partition.eof", "true",
			       "fetch.wait.max.ms", "10", NULL};
	rd_kafka_topic_partition_list_t *l = NULL;
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk = NULL;
	char rerr[512];
	int64_t t0 = km_mono_ms(), n = 0;
	bool done = false;
	km_err_t err;

	*countp = -1;
	if ((err = km_kafka_conf_new(ep, extra, &conf, errstr, errstr_size)))
		goto out;
	if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof(rerr)))) {
		err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				"cannot create the fence's range reader for '%s': %s", ep->bootstrap,
				rerr);
		goto out;
	}
	conf = NULL;
	rd_kafka_poll_set_consumer(rk);
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, topic, partition)->offset = from;
	if (rd_kafka_assign(rk, l)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				"cannot assign '%s'[%d] to the fence's range reader", topic, partition);
		goto out;
	}
	while (!done && km_mono_ms() - t0 < timeout_ms) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			done = m->offset >= to;
		else if (!m->err) {
			if (m->offset < to)
				n++;
			done = m->offset + 1 >= to;
		}
		rd_kafka_message_destroy(m);
	}
	if (done)
		*countp = n;
out:
	reader_close(l, rk, conf);
	return err;
}

km_err_t km_fence_prove(km_kafka_t *ks, const km_kafka_endpoint_t *ks_ep, const json_t *plan,
			const km_kafka_endpoint_t *const *as, size_t nas, int timeout_ms,
			json_t **proofp, char *errstr, size_t errstr_size)
{
	const char *kind = jstr(plan, "kind");
	bool acl = kind && !strcmp(kind, "acl"), visible = false;
	json_t *proof = NULL, *canaries = json_array(), *reads = json_array(),
	       *parts = json_array(), *failures = json_array();
	int64_t *hwm0 = NULL, t0 = km_mono_ms();
	char *why = NULL;
	tp_t *tps = NULL;
	km_err_t err = KM_ERR_OK;
	size_t n = 0;

	*proofp = NULL;
	if (timeout_ms <= 0)
		timeout_ms = PROVE_TIMEOUT_MS;
	if (!kind || (!acl && strcmp(kind, "config"))) {
		err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
				"malformed fence plan: kind must be acl or config");
		goto done;
	}
	if (!nas) {
		err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
				"cannot prove the fence without a principal to produce as (give "
				"a fenced principal's credentials)");
		goto done;
	}
	for (size_t i = 0; acl && i < nas; i++) {
		char *pr = km_asprintf("User:%s", principal_of(as[i]));
		bool fenced = str_in(json_object_get(plan, "principals"), pr) ||
			      str_in(json_object_get(plan, "principals"), "User:*");
		if (!fenced)
			err = km_seterr(errstr, errstr_size, KM_ERR_INVALID_ARG,
					"cannot prove the ACL fence as '%s': the plan does not "
					"fence that principal (%s; prove as one of its principals)",
					pr,
					str_in(json_object_get(plan, "super_users"), pr)
						? "a super user, ACLs do not bind it"
						: "not in the plan's principals");
		free(pr);
		if (err)
			goto done;
	}

	/* The change reaches the partition leaders asynchronously (tens of
	 * ms): a canary sent before would be appended.  Wait until the
	 * cluster describes the fence. */
	for (;;) {
		if ((err = fence_state(ks, plan, false, &visible, &why, errstr, errstr_size)))
			goto done;
		if (visible || km_mono_ms() - t0 > timeout_ms)
			break;
		free(why);
		why = NULL;
		usleep(200 * 1000);
	}
	if (!visible) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"the fence is not in place on the %s cluster '%s' after %d ms: %s "
				"(apply it first)",
				km_kafka_endpoint(ks)->role, km_kafka_endpoint(ks)->bootstrap,
				timeout_ms, why);
		goto done;
	}

	tps = plan_tps(plan, &n);
	if ((err = list_offsets(ks, tps, n, 0, errstr, errstr_size)) ||
	    (err = list_offsets(ks, tps, n, 1, errstr, errstr_size)) ||
	    (err = list_offsets(ks, tps, n, 2, errstr, errstr_size)))
		goto done;
	hwm0 = km_calloc(n ? n : 1, sizeof(*hwm0));
	/* Described is not yet applied: the broker that describes the new
	 * config may still append a write it validated against the old one
	 * (seen once: a live writer's record appended just after, and the
	 * proof said "records were appended").  The measure starts once the
	 * high watermarks stood still for three reads 200 ms apart -- with
	 * writers refused they do -- or at the deadline, when the proof
	 * judges whatever moved. */
	for (int still = 0; still < 3 && km_mono_ms() - t0 <= timeout_ms;) {
		for (size_t i = 0; i < n; i++)
			hwm0[i] = tps[i].hwm;
		usleep(200 * 1000);
		if ((err = list_offsets(ks, tps, n, 1, errstr, errstr_size)))
			goto done;
		bool same = true;
		for (size_t i = 0; i < n && same; i++)
			same = tps[i].hwm == hwm0[i];
		still = same ? still + 1 : 0;
	}
	if ((err = list_offsets(ks, tps, n, 2, errstr, errstr_size)))
		goto done;
	for (size_t i = 0; i < n; i++)
		hwm0[i] = tps[i].hwm;
	for (size_t i = 0; i < nas; i++)
		if ((err = produce_canaries(as[i], tps, n,
					    acl ? RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED
						: RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
					    timeout_ms, canaries, failures, errstr, errstr_size)))
			goto done;
	if ((err = read_check(ks_ep, tps, n, timeout_ms, reads, failures, errstr, errstr_size)))
		goto done;
	if ((err = list_offsets(ks, tps, n, 1, errstr, errstr_size)) ||
	    (err = list_offsets(ks, tps, n, 2, errstr, errstr_size)))
		goto done;
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(parts, json_pack("{s:s, s:i, s:I, s:I, s:I}", "topic",
						       tps[i].topic, "partition", tps[i].partition,
						       "hwm_before", (json_int_t)hwm0[i], "hwm_after",
						       (json_int_t)tps[i].hwm, "lso_after",
						       (json_int_t)tps[i].lso));
		if (tps[i].hwm != hwm0[i]) {
			int64_t data = -1;
			if ((err = data_between(ks_ep, tps[i].topic, tps[i].partition, hwm0[i],
						tps[i].hwm, timeout_ms, &data, errstr, errstr_size)))
				goto done;
			json_object_set_new(json_array_get(parts, json_array_size(parts) - 1),
					    "records_while_fenced", json_integer(data));
			if (data != 0)
				json_array_append_new(
					failures,
					json_sprintf("'%s'[%d]'s high watermark moved from %lld to "
						     "%lld while fenced (%s)",
						     tps[i].topic, tps[i].partition, (long long)hwm0[i],
						     (long long)tps[i].hwm,
						     data > 0 ? "records were appended"
							      : "the range could not be read"));
		}
		/* Under the config fence an open transaction can never end. */
		if (!acl && tps[i].lso < tps[i].hwm)
			json_array_append_new(
				failures, json_sprintf("'%s'[%d] has an open transaction under the "
						       "config fence (last stable offset %lld < "
						       "high watermark %lld): its markers will be "
						       "refused",
						       tps[i].topic, tps[i].partition,
						       (long long)tps[i].lso, (long long)tps[i].hwm));
	}
	proof = json_pack("{s:s, s:b, s:o, s:o, s:o, s:O}", "kind", kind, "ok",
			  json_array_size(failures) == 0, "partitions", parts, "canaries", canaries,
			  "reads", reads, "failures", failures);
	parts = canaries = reads = NULL;
	if (json_array_size(failures))
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"the %s fence is not proven: %s%s", kind,
				json_string_value(json_array_get(failures, 0)),
				json_array_size(failures) > 1 ? " (and more: see the proof)" : "");
	*proofp = proof;
done:
	free(why);
	free(tps);
	free(hwm0);
	json_decref(canaries);
	json_decref(reads);
	json_decref(parts);
	json_decref(failures);
	return err;
}

/* ---- cutover's ACL fence: writers, declarations, cover --------------- */

/* The writers the ACL bindings acls (DescribeAcls rows) let write any of
 * topics: holders of an ALLOW WRITE or ALL that covers one (LITERAL,
 * PREFIXED, the wildcard *), into principals (a JSON array of strings,
 * each once), and the transactional ids their ALLOW WRITE/ALL
 * TRANSACTIONAL_ID bindings name, into txns.  why gets one line per
 * finding.  @returns KM_ERR_NOGO for a transactional-id binding this fence
 * cannot deny (PREFIXED: the ids under it are unknown). */
static km_err_t writers_of(const json_t *acls, const char *const *topics, size_t ntopics,
			   json_t *principals, json_t *txns, json_t *why, char *errstr,
			   size_t errstr_size)
{
	json_t *b;
	size_t i;

	json_array_foreach(acls, i, b) {
		const char *op = jstr(b, "operation"), *rt = jstr(b, "resource_type");
		if (!rt || strcmp(rt, "TOPIC") || strcmp(jstr(b, "permission"), "ALLOW") ||
		    (strcmp(op, "WRITE") && strcmp(op, "ALL")))
			continue;
		for (size_t j = 0; j < ntopics; j++) {
			if (!acl_covers(b, topics[j]))
				continue;
			if (!str_in(principals, jstr(b, "principal"))) {
				json_array_append_new(principals, json_string(jstr(b, "principal")));
				json_array_append_new(
					why, json_pack("{s:s, s:s, s:O}", "principal",
						       jstr(b, "principal"), "from", "acl", "acl", b));
			}
			break;
		}
	}
	json_array_foreach(acls, i, b) {
		const char *op = jstr(b, "operation"), *rt = jstr(b, "resource_type");
		if (!rt || strcmp(rt, "TRANSACTIONAL_ID") || strcmp(jstr(b, "permission"), "ALLOW") ||
		    (strcmp(op, "WRITE") && strcmp(op, "ALL")) ||
		    !str_in(principals, jstr(b, "principal")))
			continue;
		if (strcmp(jstr(b, "pattern_type"), "LITERAL"))
			return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
					 "writer '%s' may use every transactional id prefixed '%s' "
					 "(a %s ACL): the ACL fence denies exact transactional ids "
					 "only, so an open transaction under that prefix could commit "
					 "after the fence (grant LITERAL transactional ids, or use "
					 "cutover.fence: external)",
					 jstr(b, "principal"), jstr(b, "name"), jstr(b, "pattern_type"));
		if (!str_in(txns, jstr(b, "name"))) {
			json_array_append_new(txns, json_string(jstr(b, "name")));
			json_array_append_new(why, json_pack("{s:s, s:s, s:O}", "transactional_id",
							     jstr(b, "name"), "from", "acl", "acl",
							     b));
		}
	}
	return KM_ERR_OK;
}

km_err_t km_fence_writers(km_kafka_t *ks, const json_t *snapshot_acls, const char *const *topics,
			  size_t ntopics, const char *const *declared, size_t ndeclared,
			  const char *const *declared_txns, size_t ndeclared_txns,
			  json_t **writersp, char *errstr, size_t errstr_size)
{
	json_t *now = NULL, *txn_now = NULL, *sp = json_array(), *st = json_array(),
	       *cp = json_array(), *ct = json_array(), *why = json_array(), *scratch = json_array(), *p;
	km_err_t err;
	size_t i;

	*writersp = NULL;
	if (!json_is_array(snapshot_acls)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"the source inventory in the journal has no ACL list (%s), so the "
				"writers to fence are unknown (run `kmigrate inventory` with a "
				"principal that may describe ACLs)",
				jstr(snapshot_acls, "not_inventoried") ? jstr(snapshot_acls, "not_inventoried")
								       : "missing");
		goto done;
	}
	/* The ACLs now, not only the snapshot's: a binding added since then
	 * may let a writer in that no one reviewed. */
	if ((err = describe_acls(ks, RD_KAFKA_RESOURCE_TOPIC, &now, errstr, errstr_size)) ||
	    (err = describe_acls(ks, RD_KAFKA_RESOURCE_TRANSACTIONAL_ID, &txn_now, errstr,
				 errstr_size)))
		goto done;
	json_array_extend(now, txn_now);
	if ((err = writers_of(snapshot_acls, topics, ntopics, sp, st, why, errstr, errstr_size)) ||
	    (err = writers_of(now, topics, ntopics, cp, ct, scratch, errstr, errstr_size)))
		goto done;
	json_array_foreach(cp, i, p) if (!str_in(sp, json_string_value(p))) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"'%s' may write a fenced topic by an ACL the inventory snapshot does "
				"not have (added since): an unreviewed writer is unknown; review it, "
				"then re-run `kmigrate inventory` (or remove the ACL)",
				json_string_value(p));
		goto done;
	}
	json_array_foreach(ct, i, p) if (!str_in(st, json_string_value(p))) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"transactional id '%s' of a writer was granted by an ACL the "
				"inventory snapshot does not have (added since): review it, then "
				"re-run `kmigrate inventory` (or remove the ACL)",
				json_string_value(p));
		goto done;
	}
	for (i = 0; i < ndeclared; i++)
		if (!str_in(sp, declared[i])) {
			json_array_append_new(sp, json_string(declared[i]));
			json_array_append_new(why, json_pack("{s:s, s:s}", "principal", declared[i],
							     "from", "plan"));
		}
	for (i = 0; i < ndeclared_txns; i++)
		if (!str_in(st, declared_txns[i])) {
			json_array_append_new(st, json_string(declared_txns[i]));
			json_array_append_new(why, json_pack("{s:s, s:s}", "transactional_id",
							     declared_txns[i], "from", "plan"));
		}
	*writersp = json_pack("{s:O, s:O, s:O}", "principals", sp, "txn_ids", st, "found", why);
done:
	json_decref(now);
	json_decref(txn_now);
	json_decref(sp);
	json_decref(st);
	json_decref(cp);
	json_decref(ct);
	json_decref(why);
	json_decref(scratch);
	return err;
}

km_err_t km_fence_acl_declared(const km_plan_t *plan, char *errstr, size_t errstr_size)
{
	const km_plan_cutover_t *co = &plan->cutover;
	const km_plan_fence_probe_t *pr = &co->fence_probe;

	if (!co->super_users_set)
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "cutover.fence is acl but the plan declares no cutover.super_users "
				 "(brokers hide super.users, and ACLs do not bind super users): add "
				 "`cutover.super_users: [User:admin, ...]` ([] when there is none)");
	if (co->super_users_cnt && co->super_users_fence == KM_PLAN_SUPER_FENCE_UNDECLARED)
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "cutover.fence is acl and super users are declared, but nothing "
				 "fences them (ACLs do not bind super users): add "
				 "`cutover.super_users_fence: config` or `external` (with "
				 "super_users_fence_owner)");
	if (co->super_users_fence == KM_PLAN_SUPER_FENCE_EXTERNAL && !co->super_users_fence_owner &&
	    !co->fence_owner)
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "cutover.super_users_fence is external but no one owns it: add "
				 "`cutover.super_users_fence_owner`");
	if (!pr->principal)
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "cutover.fence is acl but the plan declares no cutover.fence_probe, "
				 "so the fence cannot be proven by a fenced principal's canary: add "
				 "`cutover.fence_probe: {principal: User:NAME, username: NAME, "
				 "password_env: VAR}`");
	if (plan->source.security_protocol != KM_PLAN_SEC_SASL_PLAINTEXT &&
	    plan->source.security_protocol != KM_PLAN_SEC_SASL_SSL)
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "the ACL fence's proof logs in as cutover.fence_probe with SASL, "
				 "but the source's security_protocol is %s: declare the source's "
				 "SASL settings, or use cutover.fence: config or external",
				 km_plan_secproto_str(plan->source.security_protocol));
	if (strncmp(pr->principal, "User:", 5) || strcmp(pr->principal + 5, pr->username))
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "cutover.fence_probe.principal '%s' is not User:%s, the principal "
				 "SASL username '%s' logs in as: make them agree",
				 pr->principal, pr->username, pr->username);
	return KM_ERR_OK;
}

/* The probe's declaration for a fence on cluster c (the target's fence of
 * a rollback): a cutover.fence_probe whose principal is User:<username>,
 * and a SASL cluster to log it in on. */
static km_err_t probe_declared_on(const km_plan_t *plan, const km_plan_cluster_t *c,
				  const char *role, char *errstr, size_t errstr_size)
{
	const km_plan_fence_probe_t *pr = &plan->cutover.fence_probe;

	if (!pr->principal || !pr->username)
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "cutover.fence is acl but the plan declares no cutover.fence_probe, "
				 "so the %s fence cannot be proven by a fenced principal's canary: "
				 "add `cutover.fence_probe: {principal: User:NAME, username: NAME, "
				 "password_env: VAR}`",
				 role);
	if (c->security_protocol != KM_PLAN_SEC_SASL_PLAINTEXT &&
	    c->security_protocol != KM_PLAN_SEC_SASL_SSL)
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "the ACL fence's proof logs in as cutover.fence_probe with SASL, "
				 "but the %s's security_protocol is %s: declare the %s's SASL "
				 "settings, or use cutover.fence: config or external",
				 role, km_plan_secproto_str(c->security_protocol), role);
	if (strncmp(pr->principal, "User:", 5) || strcmp(pr->principal + 5, pr->username))
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "cutover.fence_probe.principal '%s' is not User:%s, the principal "
				 "SASL username '%s' logs in as: make them agree",
				 pr->principal, pr->username, pr->username);
	return KM_ERR_OK;
}

km_err_t km_fence_acl_cutover_plan(km_kafka_t *ks, const km_plan_t *plan, const char *wave,
				   const char *const *topics, size_t ntopics,
				   const json_t *inventory, json_t **docp, char *errstr,
				   size_t errstr_size)
{
	const km_plan_cutover_t *co = &plan->cutover;
	const km_plan_wave_t *w = km_plan_wave(plan, wave);
	const char **dp = km_calloc(w ? w->producers_cnt + 1 : 1, sizeof(*dp)),
		   **dt = km_calloc(w ? w->producers_cnt + 1 : 1, sizeof(*dt)), **pv = NULL,
		   **tv = NULL;
	size_t ndp = 0, ndt = 0, np, nt, i;
	json_t *writers = NULL, *aplan = NULL, *inv = NULL, *cover = NULL, *cplan = NULL,
	       *cinv = NULL;
	km_fence_facts_t facts = {(const char *const *)co->super_users, co->super_users_cnt,
				  co->allow_everyone_if_no_acl_found == KM_PLAN_YES    ? 1
				  : co->allow_everyone_if_no_acl_found == KM_PLAN_NO ? 0
											: -1};
	km_err_t err;

	*docp = NULL;
	if (!co->super_users_set)
		facts.super_users = NULL;
	else if (!facts.super_users)
		facts.super_users = (const char *const *)dp; /* declared: none */
	if ((err = km_fence_acl_declared(plan, errstr, errstr_size)))
		goto done;
	/* The wave's declared producers: their principal and transactional
	 * id.  A transactional one without its id is unknown. */
	for (i = 0; w && i < w->producers_cnt; i++) {
		for (size_t j = 0; j < plan->producers_cnt; j++) {
			const km_plan_producer_t *p = &plan->producers[j];
			if (strcmp(p->name, w->producers[i].name))
				continue;
			if (p->principal)
				dp[ndp++] = p->principal;
			if (p->transactional_id)
				dt[ndt++] = p->transactional_id;
			else if (p->transactions == KM_PLAN_YES) {
				err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
						"producer '%s' of wave '%s' is transactional but "
						"declares no transactional_id, which the ACL fence "
						"must deny: add producers[].transactional_id",
						p->name, wave);
				goto done;
			}
		}
	}
	if ((err = km_fence_writers(ks, json_object_get(inventory, "acls"), topics, ntopics, dp,
				    ndp, dt, ndt, &writers, errstr, errstr_size)))
		goto done;
	json_t *jp = json_object_get(writers, "principals"), *jt = json_object_get(writers, "txn_ids");
	np = json_array_size(jp);
	nt = json_array_size(jt);
	pv = km_calloc(np + 1, sizeof(*pv));
	tv = km_calloc(nt + 1, sizeof(*tv));
	for (i = 0; i < np; i++)
		pv[i] = json_string_value(json_array_get(jp, i));
	for (i = 0; i < nt; i++)
		tv[i] = json_string_value(json_array_get(jt, i));
	/* The probe's canary proves something only if its principal could
	 * write before: one the ACLs never let write is refused anyway. */
	if (!str_in(jp, co->fence_probe.principal)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"cutover.fence_probe '%s' has no ALLOW WRITE on the wave's topics, so "
				"its canary would be refused with or without the fence: grant it "
				"WRITE on them, or name a principal that writes them",
				co->fence_probe.principal);
		goto done;
	}
	if ((err = km_fence_plan(ks, topics, ntopics, pv, np, tv, nt, "acl", &facts, &aplan, errstr,
				 errstr_size)) ||
	    (err = km_fence_inverse(aplan, &inv, errstr, errstr_size)))
		goto done;
	if (str_in(json_object_get(aplan, "super_users"), co->fence_probe.principal)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				"cutover.fence_probe '%s' is a super user: ACLs do not bind it, so its "
				"canary proves nothing; name a principal that is not",
				co->fence_probe.principal);
		goto done;
	}
	/* Super users bypass ACLs: a declared one is covered by the config
	 * fence (which binds them) or by its external owner. */
	if (co->super_users_cnt && co->super_users_fence == KM_PLAN_SUPER_FENCE_CONFIG) {
		if ((err = km_fence_plan(ks, topics, ntopics, NULL, 0, tv, nt, "config", NULL, &cplan,
					 errstr, errstr_size))) {
			if (err == KM_ERR_NOGO) {
				char *why = km_strdup(errstr);
				km_seterr(errstr, errstr_size, KM_ERR_NOGO,
					  "the super users cannot be covered by the config fence: %s "
					  "(declare cutover.super_users_fence: external with its owner)",
					  why);
				free(why);
			}
			goto done;
		}
		if ((err = km_fence_inverse(cplan, &cinv, errstr, errstr_size)))
			goto done;
		cover = json_pack("{s:s, s:O, s:O}", "kind", "config", "plan", cplan, "inverse", cinv);
	} else if (co->super_users_cnt) {
		cover = json_pack("{s:s, s:s, s:s}", "kind", "external", "owner",
				  co->super_users_fence_owner ? co->super_users_fence_owner
							      : co->fence_owner,
				  "responsibility",
				  "ACLs do not bind super users: the owner stops their writes to the "
				  "wave's source topics; kmigrate proves it only by the drain's quiet "
				  "check");
	}
	*docp = json_pack("{s:s, s:O, s:O, s:O, s:O?, s:s}", "kind", "acl", "plan", aplan,
			  "inverse", inv, "writers", writers, "super_users_cover", cover, "probe",
			  co->fence_probe.principal);
done:
	free(dp);
	free(dt);
	free(pv);
	free(tv);
	json_decref(writers);
	json_decref(aplan);
	json_decref(inv);
	json_decref(cover);
	json_decref(cplan);
	json_decref(cinv);
	return err;
}

static const json_t *config_cover(const json_t *doc)
{
	const json_t *c = json_object_get(doc, "super_users_cover");
	return jstr(c, "kind") && !strcmp(jstr(c, "kind"), "config") ? json_object_get(c, "plan")
								   : NULL;
}

km_err_t km_fence_doc_apply(km_kafka_t *ks, const json_t *doc, char *errstr, size_t errstr_size)
{
	km_err_t err = km_fence_apply(ks, json_object_get(doc, "plan"), NULL, errstr, errstr_size);
	if (!err && config_cover(doc))
		err = km_fence_apply(ks, config_cover(doc), NULL, errstr, errstr_size);
	return err;
}

km_err_t km_fence_doc_undo(km_kafka_t *ks, const json_t *doc, json_t **evidencep, char *errstr,
			   size_t errstr_size)
{
	const json_t *cover = json_object_get(doc, "super_users_cover");
	json_t *e1 = NULL, *e2 = NULL;
	km_err_t err;

	*evidencep = NULL;
	/* The cover (a config fence on the same topics) goes first: the
	 * principals it binds are super users, who never depended on the ACLs
	 * the main inverse restores. */
	if (config_cover(doc) &&
	    ((err = km_fence_undo(ks, json_object_get(cover, "inverse"), errstr, errstr_size)) ||
	     (err = km_fence_wait_restored(ks, config_cover(doc), 0, &e2, errstr, errstr_size))))
		goto done;
	if ((err = km_fence_undo(ks, json_object_get(doc, "inverse"), errstr, errstr_size)) ||
	    (err = km_fence_wait_restored(ks, json_object_get(doc, "plan"), 0, &e1, errstr,
					  errstr_size)))
		goto done;
	*evidencep = json_pack("{s:O, s:O?}", "fence", e1, "super_users_cover", e2);
done:
	json_decref(e1);
	json_decref(e2);
	return err;
}

km_err_t km_fence_doc_enforce(km_kafka_t *k, const km_kafka_endpoint_t *ep,
			      const km_plan_t *plan, const json_t *doc, const char *what,
			      json_t **proofp, char *errstr, size_t errstr_size)
{
	km_err_t err;

	*proofp = NULL;
	if ((err = km_fence_doc_apply(k, doc, errstr, errstr_size)))
		return err;
	err = km_fence_doc_prove(k, ep, plan, doc, proofp, errstr, errstr_size);
	if (err == KM_ERR_NOGO) {
		/* The fence stays applied (its inverse is journaled): a cluster
		 * that may or may not take writes is not handed back silently. */
		char *why = km_asprintf("%s not proven: %s (the fence stays applied; its inverse "
					"is in the journal)",
					what, errstr);
		snprintf(errstr, errstr_size, "%s", why);
		free(why);
	}
	return err;
}

km_err_t km_fence_doc_prove(km_kafka_t *ks, const km_kafka_endpoint_t *ks_ep,
			    const km_plan_t *plan, const json_t *doc, json_t **proofp,
			    char *errstr, size_t errstr_size)
{
	const json_t *fp = json_object_get(doc, "plan");
	const km_kafka_endpoint_t *as[1] = {ks_ep};
	km_kafka_endpoint_t probe;
	json_t *p1 = NULL, *p2 = NULL;
	km_err_t err;

	*proofp = NULL;
	probe = *ks_ep;
	probe.password = NULL;
	probe.props = NULL;
	if (!strcmp(jstr(fp, "kind"), "acl")) {
		/* The canaries go as the probe: a principal the fence denies,
		 * logging in like kmigrate's own (same listener and CA). */
		const km_plan_fence_probe_t *pr = &plan->cutover.fence_probe;
		const char *pw = pr->password_env ? getenv(pr->password_env) : NULL;
		const char *cl = jstr(doc, "cluster");
		/* The rollback's target fence logs its probe in on the target:
		 * the target's SASL, not the source's, is what it needs. */
		if (cl && !strcmp(cl, "target")) {
			if ((err = probe_declared_on(plan, &plan->target, "target", errstr,
						     errstr_size)))
				return err;
		} else if ((err = km_fence_acl_declared(plan, errstr, errstr_size)))
			return err;
		if (!pw || !*pw)
			return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
					 "environment variable '%s' with cutover.fence_probe's "
					 "password is not set: export it (the fence stays applied; "
					 "re-run the cutover to prove it)",
					 pr->password_env);
		probe.username = pr->username;
		probe.password = km_strdup(pw);
		probe.props = ks_ep->props;
		as[0] = &probe;
	}
	err = km_fence_prove(ks, ks_ep, fp, as, 1, 0, &p1, errstr, errstr_size);
	if (!err && config_cover(doc))
		err = km_fence_prove(ks, ks_ep, config_cover(doc), (const km_kafka_endpoint_t *[]){ks_ep},
				     1, 0, &p2, errstr, errstr_size);
	if (p2)
		*proofp = json_pack("{s:o, s:o}", "fence", p1, "super_users_cover", p2);
	else
		*proofp = p1;
	if (probe.password) {
		memset(probe.password, 0, strlen(probe.password));
		free(probe.password);
	}
	return err;
}

km_err_t km_fence_config_fenced(km_kafka_t *ks, const char *const *topics, size_t n,
				char **fencedp, char *errstr, size_t errstr_size)
{
	json_t *cfgs = NULL;
	km_err_t err;

	*fencedp = NULL;
	if ((err = describe_configs(ks, RD_KAFKA_RESOURCE_TOPIC, topics, n, &cfgs, errstr,
				    errstr_size)))
		return err;
	for (size_t i = 0; i < n && !*fencedp; i++) {
		const char *v = jstr(json_object_get(json_object_get(cfgs, topics[i]), MMB), "value");
		int64_t mmb;
		/* A value the broker did not report is unknown, never "not
		 * fenced": say so. */
		if (!v || km_parse_i64(v, &mmb)) {
			err = km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
					"DescribeConfigs of topic '%s' gave no max.message.bytes: "
					"whether it is fenced is unknown (try again)",
					topics[i]);
			break;
		}
		if (mmb < 68)
			*fencedp = km_strdup(topics[i]);
	}
	json_decref(cfgs);
	return err;
}
