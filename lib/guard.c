/*
 * guard.c -- the target's split-brain guard: DENY WRITE for every principal
 * but kmigrate's own on target topics not yet cut over (lib/guard.h,
 * docs/internals/gates.md "The target guard").
 */
#include "guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapstore.h"
#include "util.h"

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool is(const json_t *o, const char *k, const char *v)
{
	const char *s = jstr(o, k);
	return s && !strcmp(s, v);
}

/* Does TOPIC binding b apply to topic t?  (Stored bindings are LITERAL,
 * with * the wildcard, or PREFIXED; MATCH exists only in filters.) */
static bool covers(const json_t *b, const char *t)
{
	const char *name = jstr(b, "name");

	if (!is(b, "resource_type", "TOPIC") || !name)
		return false;
	if (is(b, "pattern_type", "LITERAL"))
		return !strcmp(name, "*") || !strcmp(name, t);
	if (is(b, "pattern_type", "PREFIXED"))
		return !strncmp(name, t, strlen(name));
	return false;
}

static bool grants_write(const json_t *b)
{
	return is(b, "operation", "WRITE") || is(b, "operation", "ALL");
}

char *km_guard_principal(const km_plan_t *plan)
{
	const km_plan_cluster_t *c = &plan->target;

	/* PLAIN and SCRAM authenticate the principal User:<username> with
	 * Kafka's default principal builder; OAUTHBEARER's principal is the
	 * token's subject, and TLS's the certificate's DN: not in the plan.
	 * A PLAINTEXT listener authenticates nobody: every client there is
	 * User:ANONYMOUS, kmigrate included. */
	if (c->security_protocol == KM_PLAN_SEC_PLAINTEXT)
		return km_strdup("User:ANONYMOUS");
	if (!c->username || !c->sasl_mechanism ||
	    (strcmp(c->sasl_mechanism, "PLAIN") && strncmp(c->sasl_mechanism, "SCRAM-", 6)))
		return NULL;
	return km_asprintf("User:%s", c->username);
}

static json_t *guard_acl(const char *topic, const char *principal)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "resource_type", "TOPIC",
			 "pattern_type", "LITERAL", "name", topic, "principal", principal, "host",
			 "*", "operation", "WRITE", "permission", "DENY");
}

static void add_finding(json_t *findings, const char *subject, char *reason)
{
	json_t *f;
	size_t i;

	json_array_foreach(findings, i, f)
		if (!strcmp(jstr(f, "reason"), reason)) {
			free(reason);
			return;
		}
	json_array_append_new(findings, json_pack("{s:s, s:s}", "subject", subject, "reason",
						  reason));
	free(reason);
}

/*
 * The guard of pairs [{"source", "target"}] against bindings acls (NULL:
 * the target has no authorizer, or its ACLs are unknown: why).
 * @returns {"guards": [{"topic", "principal", "acl", "present"}],
 *           "findings": [{"subject", "reason"}], "cut_over": [source...]}
 */
static json_t *compute(const json_t *pairs, const json_t *acls, const char *why,
		       const json_t *authority, const char *me)
{
	json_t *guards = json_array(), *findings = json_array(), *cut = json_array();
	json_t *pr, *b, *d;
	size_t i, j, k;

	if (!acls)
		add_finding(findings, "*",
			    km_asprintf("the target topics cannot be guarded: %s; until cutover "
					"nothing stops another producer writing to them (the "
					"replication gate's foreign-record check only sees it "
					"after): enable an authorizer on the target, or keep every "
					"other producer off it until cutover",
					why ? why : "the target's ACLs are unknown"));
	json_array_foreach(pairs, i, pr) {
		const char *src = jstr(pr, "source"), *t = jstr(pr, "target");

		if (is(json_object_get(authority, src), "authority", "target")) {
			json_array_append_new(cut, json_string(src));
			continue;
		}
		json_array_foreach(acls, j, b) {
			const char *p = jstr(b, "principal");
			bool seen = false, present = false;

			if (!is(b, "permission", "ALLOW") || !grants_write(b) || !covers(b, t) || !p)
				continue;
			if (me && !strcmp(p, me))
				continue;
			if (!strcmp(p, "User:*")) {
				add_finding(findings, t,
					    km_asprintf(
						    "target topic '%s' cannot be guarded: %s %s '%s' "
						    "ALLOWs %s to User:*, every principal, kmigrate's "
						    "own included, and a DENY for User:* would stop "
						    "the replicator too (DENY beats ALLOW): replace "
						    "it with ALLOWs for the principals that need it",
						    t, jstr(b, "pattern_type"), "binding",
						    jstr(b, "name"), jstr(b, "operation")));
				continue;
			}
			if (!me) {
				add_finding(findings, "*",
					    km_strdup("the target topics cannot be guarded: "
						      "kmigrate's own principal on the target is "
						      "unknown (only SASL PLAIN/SCRAM name it, as "
						      "User:<username>), so a guard could deny "
						      "the replicator: use a SASL PLAIN/SCRAM user "
						      "for target:"));
				continue;
			}
			json_array_foreach(guards, k, d)
				if (!strcmp(jstr(d, "topic"), t) && !strcmp(jstr(d, "principal"), p))
					seen = true;
			if (seen)
				continue;
			/* A DENY that already covers the topic for this
			 * principal is a guard too, but not kmigrate's: the
			 * lift never removes it. */
			json_array_foreach(acls, k, d)
				if (is(d, "permission", "DENY") && grants_write(d) && covers(d, t) &&
				    (is(d, "principal", p) || is(d, "principal", "User:*")) &&
				    is(d, "host", "*"))
					present = true;
			json_array_append_new(guards, json_pack("{s:s, s:s, s:o, s:b}", "topic", t,
								"principal", p, "acl",
								guard_acl(t, p), "present", present));
		}
	}
	return json_pack("{s:o, s:o, s:o}", "guards", guards, "findings", findings, "cut_over",
			 cut);
}

static char *acl_subject(const json_t *a)
{
	return km_asprintf("%s %s '%s' %s@%s %s %s", jstr(a, "resource_type"),
			   jstr(a, "pattern_type"), jstr(a, "name"), jstr(a, "principal"),
			   jstr(a, "host"), jstr(a, "operation"), jstr(a, "permission"));
}

json_t *km_guard_actions(const km_plan_t *plan, const json_t *design, const json_t *tgt_inv,
			 const json_t *authority)
{
	const json_t *tacls = json_object_get(tgt_inv, "acls");
	json_t *pairs = json_array(), *acls = NULL, *out = json_array(), *res, *t, *g;
	char *me = km_guard_principal(plan);
	size_t i;

	json_array_foreach(json_object_get(design, "topics"), i, t)
		json_array_append_new(pairs, json_pack("{s:s, s:s}", "source", jstr(t, "source"),
						       "target", jstr(t, "target")));
	/* The ACLs the target will have: its own and those apply copies. */
	if (json_is_array(tacls)) {
		acls = json_deep_copy(tacls);
		json_array_extend(acls, json_object_get(design, "acls"));
	}
	res = compute(pairs, acls, jstr(tacls, "not_inventoried"), authority, me);
	json_array_foreach(json_object_get(res, "guards"), i, g) {
		char *subj;

		if (json_is_true(json_object_get(g, "present")))
			continue;
		subj = acl_subject(json_object_get(g, "acl"));
		json_array_append_new(out, json_pack("{s:s, s:s, s:O, s:O, s:O}", "op",
						     "create-guard", "subject", subj, "topic",
						     json_object_get(g, "topic"), "principal",
						     json_object_get(g, "principal"), "acl",
						     json_object_get(g, "acl")));
		free(subj);
	}
	json_array_foreach(json_object_get(res, "findings"), i, g)
		json_array_append_new(out, json_pack("{s:s, s:O, s:O}", "op", "guard-finding",
						     "subject", json_object_get(g, "subject"),
						     "reason", json_object_get(g, "reason")));
	json_decref(res);
	json_decref(acls);
	json_decref(pairs);
	free(me);
	return out;
}

/* ---- live reads -------------------------------------------------------------- */

/* Whether the target has an authorizer: its brokers' authorizer.class.name
 * (librdkafka 2.8 hides DescribeAcls' SECURITY_DISABLED, so an empty ACL
 * list alone would read as "no ACLs").  *whyp (owned) says why not. */
static km_err_t read_authorizer(km_kafka_t *kt, bool *hasp, char **whyp, char *errstr,
				size_t errstr_size)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_ConfigResource_t *res = NULL;
	rd_kafka_event_t *ev = NULL;
	km_kafka_call_t call;
	rd_kafka_resp_err_t rerr;
	char bid[32];
	km_err_t err;
	size_t n, nc;

	*hasp = false;
	*whyp = NULL;
	rerr = rd_kafka_metadata(km_kafka_rk(kt), 0, NULL, &md, KM_KAFKA_TIMEOUT_MS);
	if (rerr)
		return km_kafka_err(kt, rerr, "Metadata", NULL, errstr, errstr_size);
	if (md->broker_cnt < 1) {
		rd_kafka_metadata_destroy(md);
		return km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				 "the target's metadata lists no broker: check the cluster");
	}
	snprintf(bid, sizeof(bid), "%d", md->brokers[0].id);
	rd_kafka_metadata_destroy(md);
	res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_BROKER, bid);
	km_kafka_call_begin(kt, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, 0, &call);
	rd_kafka_DescribeConfigs(km_kafka_rk(kt), &res, 1, call.options, call.q);
	if ((err = km_kafka_call_wait(kt, &call, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT,
				      "DescribeConfigs of a target broker", &ev, errstr,
				      errstr_size)))
		goto done;
	const rd_kafka_ConfigResource_t **rs =
		rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
	if (n != 1 || rd_kafka_ConfigResource_error(rs[0])) {
		err = km_kafka_err(kt, n == 1 ? rd_kafka_ConfigResource_error(rs[0])
					      : RD_KAFKA_RESP_ERR__BAD_MSG,
				   "DescribeConfigs of a target broker",
				   n == 1 ? rd_kafka_ConfigResource_error_string(rs[0]) : NULL,
				   errstr, errstr_size);
		goto done;
	}
	const rd_kafka_ConfigEntry_t **es = rd_kafka_ConfigResource_configs(rs[0], &nc);
	for (size_t i = 0; i < nc; i++)
		if (!strcmp(rd_kafka_ConfigEntry_name(es[i]), "authorizer.class.name")) {
			const char *v = rd_kafka_ConfigEntry_value(es[i]);
			*hasp = v && *v;
		}
	if (!*hasp)
		*whyp = km_strdup("the target has no authorizer (authorizer.class.name is empty)");
done:
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_ConfigResource_destroy(res);
	return err;
}

/* Every TOPIC binding on the target, as JSON (the inventory's form). */
static km_err_t read_topic_acls(km_kafka_t *kt, json_t **aclsp, char *errstr, size_t errstr_size)
{
	rd_kafka_AclBindingFilter_t *f;
	rd_kafka_event_t *ev = NULL;
	km_kafka_call_t call;
	char ferr[256];
	km_err_t err;
	size_t n;

	*aclsp = NULL;
	f = rd_kafka_AclBindingFilter_new(RD_KAFKA_RESOURCE_TOPIC, NULL,
					  RD_KAFKA_RESOURCE_PATTERN_ANY, NULL, NULL,
					  RD_KAFKA_ACL_OPERATION_ANY, RD_KAFKA_ACL_PERMISSION_TYPE_ANY,
					  ferr, sizeof(ferr));
	if (!f)
		KM_BUG("DescribeAcls filter: %s", ferr);
	km_kafka_call_begin(kt, RD_KAFKA_ADMIN_OP_DESCRIBEACLS, 0, &call);
	rd_kafka_DescribeAcls(km_kafka_rk(kt), f, call.options, call.q);
	err = km_kafka_call_wait(kt, &call, RD_KAFKA_EVENT_DESCRIBEACLS_RESULT,
				 "DescribeAcls on the target", &ev, errstr, errstr_size);
	if (!err) {
		const rd_kafka_AclBinding_t **bs =
			rd_kafka_DescribeAcls_result_acls(rd_kafka_event_DescribeAcls_result(ev), &n);
		*aclsp = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(
				*aclsp,
				json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "resource_type",
					  "TOPIC", "pattern_type",
					  rd_kafka_ResourcePatternType_name(
						  rd_kafka_AclBinding_resource_pattern_type(bs[i])),
					  "name", rd_kafka_AclBinding_name(bs[i]), "principal",
					  rd_kafka_AclBinding_principal(bs[i]), "host",
					  rd_kafka_AclBinding_host(bs[i]), "operation",
					  rd_kafka_AclOperation_name(rd_kafka_AclBinding_operation(bs[i])),
					  "permission",
					  rd_kafka_AclPermissionType_name(
						  rd_kafka_AclBinding_permission_type(bs[i]))));
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AclBinding_destroy(f);
	return err;
}

/* The migration's authority records (an empty object when none). */
static km_err_t read_authority(km_kafka_t *kt, const km_plan_t *plan, json_t **recsp,
			       char *errstr, size_t errstr_size)
{
	char topic[KM_MAPSTORE_NAME_MAX];
	km_err_t err;

	km_mapstore_authority_topic(plan->migration, topic, sizeof(topic));
	err = km_mapstore_read_authority(km_kafka_endpoint(kt), topic, recsp, errstr, errstr_size);
	if (err == KM_ERR_NOT_FOUND) {
		*recsp = json_object();
		errstr[0] = '\0';
		return KM_ERR_OK;
	}
	return err;
}

static const char *name_of(const json_t *e)
{
	return json_is_string(e) ? json_string_value(e) : jstr(e, "topic");
}

km_err_t km_guard_check(km_kafka_t *kt, const km_plan_t *plan, const json_t *topics,
			json_t **reportp, char *errstr, size_t errstr_size)
{
	json_t *acls = NULL, *auth = NULL, *pairs = json_array(), *res = NULL, *missing, *e, *g;
	char *why = NULL, *me = km_guard_principal(plan);
	bool has = false;
	size_t i, guarded = 0;
	km_err_t err;

	*reportp = NULL;
	if ((err = read_authorizer(kt, &has, &why, errstr, errstr_size)) ||
	    (has && (err = read_topic_acls(kt, &acls, errstr, errstr_size))) ||
	    (err = read_authority(kt, plan, &auth, errstr, errstr_size)))
		goto done;
	json_array_foreach(topics, i, e) {
		char *t = km_plan_target_topic(plan, name_of(e));
		json_array_append_new(pairs, json_pack("{s:s, s:s}", "source", name_of(e), "target",
						       t));
		free(t);
	}
	res = compute(pairs, acls, why, auth, me);
	missing = json_array();
	json_array_foreach(json_object_get(res, "guards"), i, g) {
		if (json_is_true(json_object_get(g, "present")))
			guarded++;
		else
			json_array_append_new(missing, json_pack("{s:O, s:O}", "topic",
								 json_object_get(g, "topic"),
								 "principal",
								 json_object_get(g, "principal")));
	}
	json_t *findings = json_array();
	json_array_foreach(json_object_get(res, "findings"), i, g)
		json_array_append(findings, json_object_get(g, "reason"));
	*reportp = json_pack("{s:b, s:o, s:o, s:o, s:I, s:O, s:o}", "authorizer", has, "principal",
			     me ? json_string(me) : json_null(), "missing", missing, "findings",
			     findings, "guarded", (json_int_t)guarded, "cut_over",
			     json_object_get(res, "cut_over"), "why",
			     why ? json_string(why) : json_null());
done:
	json_decref(res);
	json_decref(pairs);
	json_decref(acls);
	json_decref(auth);
	free(why);
	free(me);
	return err;
}

km_err_t km_guard_writers(km_kafka_t *kt, const km_plan_t *plan, const json_t *targets,
			  json_t **deniesp, char *errstr, size_t errstr_size)
{
	json_t *acls = NULL, *pairs = json_array(), *res = NULL, *denies = NULL, *e, *g;
	char *why = NULL, *me = km_guard_principal(plan);
	bool has = false;
	size_t i;
	km_err_t err;

	*deniesp = NULL;
	if ((err = read_authorizer(kt, &has, &why, errstr, errstr_size)) ||
	    (has && (err = read_topic_acls(kt, &acls, errstr, errstr_size))))
		goto done;
	/* The guard's computation on the target names themselves, with no
	 * authority records: the caller fences whatever the authority says. */
	json_array_foreach(targets, i, e)
		json_array_append_new(pairs, json_pack("{s:O, s:O}", "source", e, "target", e));
	res = compute(pairs, acls, why, NULL, me);
	if (json_array_size(json_object_get(res, "findings"))) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOGO, "%s",
				jstr(json_array_get(json_object_get(res, "findings"), 0), "reason"));
		goto done;
	}
	denies = json_array();
	json_array_foreach(json_object_get(res, "guards"), i, g)
		json_array_append_new(denies, json_pack("{s:O, s:O}", "topic",
							json_object_get(g, "topic"), "principal",
							json_object_get(g, "principal")));
	*deniesp = denies;
done:
	json_decref(res);
	json_decref(pairs);
	json_decref(acls);
	free(why);
	free(me);
	return err;
}

/* ---- lift -------------------------------------------------------------------- */

km_err_t km_guard_lift(km_kafka_t *kt, const km_plan_t *plan, km_journal_t *jr,
		       const json_t *topics, json_t **liftedp, char *errstr, size_t errstr_size)
{
	json_t *facts = NULL, *targets = json_array(), *lifted = json_array(), *f, *e;
	rd_kafka_AclBindingFilter_t **fs = NULL;
	rd_kafka_event_t *ev = NULL;
	km_kafka_call_t call;
	size_t i, j, n = 0, nr;
	km_err_t err;

	*liftedp = NULL;
	json_array_foreach(topics, i, e) {
		char *t = km_plan_target_topic(plan, name_of(e));
		json_array_append_new(targets, json_string(t));
		free(t);
	}
	/* Exactly what apply created: the journal's apply.change facts of
	 * create-guard.  A DENY that was there before (copied from the source
	 * or set by an operator) was never created by apply, so it is never
	 * lifted. */
	if ((err = km_journal_facts(jr, 0, "apply.change", &facts, errstr, errstr_size)))
		goto done;
	json_array_foreach(facts, i, f) {
		const char *subj = jstr(f, "subject");
		const json_t *a = json_object_get(json_object_get(f, "body"), "after");
		bool want = false, dup = false;

		if (!subj || strncmp(subj, "create-guard ", 13) || !is(a, "permission", "DENY"))
			continue;
		json_array_foreach(targets, j, e)
			if (is(a, "name", json_string_value(e)))
				want = true;
		json_array_foreach(lifted, j, e)
			if (json_equal(e, a))
				dup = true;
		if (want && !dup)
			json_array_append(lifted, (json_t *)a);
	}
	if (!json_array_size(lifted))
		goto done;
	fs = km_calloc(json_array_size(lifted), sizeof(*fs));
	json_array_foreach(lifted, i, e) {
		char ferr[256];
		fs[n] = rd_kafka_AclBindingFilter_new(
			RD_KAFKA_RESOURCE_TOPIC, jstr(e, "name"), RD_KAFKA_RESOURCE_PATTERN_LITERAL,
			jstr(e, "principal"), jstr(e, "host"), RD_KAFKA_ACL_OPERATION_WRITE,
			RD_KAFKA_ACL_PERMISSION_TYPE_DENY, ferr, sizeof(ferr));
		if (!fs[n]) {
			err = km_seterr(errstr, errstr_size, KM_ERR_BUG,
					"journaled guard on '%s' is not a valid ACL filter: %s",
					jstr(e, "name"), ferr);
			goto done;
		}
		n++;
	}
	km_kafka_call_begin(kt, RD_KAFKA_ADMIN_OP_DELETEACLS, 0, &call);
	rd_kafka_DeleteAcls(km_kafka_rk(kt), fs, n, call.options, call.q);
	if ((err = km_kafka_call_wait(kt, &call, RD_KAFKA_EVENT_DELETEACLS_RESULT,
				      "DeleteAcls of the target guard", &ev, errstr, errstr_size)))
		goto done;
	const rd_kafka_DeleteAcls_result_response_t **dr =
		rd_kafka_DeleteAcls_result_responses(rd_kafka_event_DeleteAcls_result(ev), &nr);
	for (i = 0; i < nr; i++) {
		const rd_kafka_error_t *re = rd_kafka_DeleteAcls_result_response_error(dr[i]);
		if (re) {
			char what[400];
			snprintf(what, sizeof(what), "DeleteAcls of the guard on '%s'",
				 jstr(json_array_get(lifted, i), "name"));
			err = km_kafka_err(kt, rd_kafka_error_code(re), what,
					   rd_kafka_error_string(re), errstr, errstr_size);
			goto done;
		}
	}
done:
	if (ev)
		rd_kafka_event_destroy(ev);
	for (i = 0; i < n; i++)
		rd_kafka_AclBinding_destroy(fs[i]);
	free(fs);
	if (!err) {
		*liftedp = lifted;
		lifted = NULL;
	}
	json_decref(lifted);
	json_decref(targets);
	json_decref(facts);
	return err;
}
