#include "offsets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inventory.h"
#include "offmap.h"
#include "replicate.h"
#include "validate.h"
#include "util.h"

/* ---- reading one record ------------------------------------------------------ */

/* The record digest is validate's, so that an offsets proof and a
 * validation verdict say "the same record" in the same way. */
static uint64_t record_digest(const rd_kafka_message_t *m)
{
	km_vdigest_t d;

	km_validate_digest_message(m, &d);
	return d.all;
}

/* One read_committed consumer per cluster, reused for every proof read:
 * each read re-assigns a single partition at its offset. */
typedef struct reader_s {
	const km_kafka_endpoint_t *ep;
	rd_kafka_t *c;
} reader_t;

static void reader_close(reader_t *rd)
{
	if (rd->c) {
		rd_kafka_consumer_close(rd->c);
		rd_kafka_destroy(rd->c);
		rd->c = NULL;
	}
}

/* Reads the first committed record at or after `from`.  @returns 1 with
 * *offp and *digestp, 0 when the log ends first (*offp = the end), or -1
 * with errstr. */
static int first_record(reader_t *rd, const char *topic, int partition, int64_t from,
			int64_t *offp, uint64_t *digestp, char *errstr, size_t errstr_size)
{
	const char *props[] = {"group.id", "kmigrate-offsets-proof", "enable.auto.commit", "false",
			       "isolation.level", "read_committed", "enable.partition.eof", "true",
			       "auto.offset.reset", "error", NULL};
	const km_kafka_endpoint_t *ep = rd->ep;
	int64_t deadline = km_mono_ms() + 30000;
	int rc = -1;

	if (!rd->c) {
		rd_kafka_conf_t *conf;
		char rerr[512];
		if (km_kafka_conf_new(ep, props, &conf, errstr, errstr_size))
			return -1;
		if (!(rd->c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof(rerr)))) {
			rd_kafka_conf_destroy(conf);
			km_seterr(errstr, errstr_size, KM_ERR_KAFKA, "consumer: %s", rerr);
			return -1;
		}
	}
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(tp, topic, partition)->offset = from;
	rd_kafka_assign(rd->c, tp);
	rd_kafka_topic_partition_list_destroy(tp);
	while (km_mono_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rd->c, 200);
		if (!m)
			continue;
		/* Anything still queued from the previous read is not ours. */
		if (!m->rkt || m->partition != partition ||
		    strcmp(rd_kafka_topic_name(m->rkt), topic) ||
		    (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && !m->err && m->offset < from)) {
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			*offp = m->offset;
			rc = 0;
		} else if (m->err) {
			km_seterr(errstr, errstr_size, KM_ERR_KAFKA,
				  "reading %s '%s'[%d] at %lld: %s", ep->role, topic, partition,
				  (long long)from, rd_kafka_message_errstr(m));
		} else {
			*offp = m->offset;
			*digestp = record_digest(m);
			rc = 1;
		}
		rd_kafka_message_destroy(m);
		break;
	}
	if (rc == -1 && km_mono_ms() >= deadline)
		km_seterr(errstr, errstr_size, KM_ERR_TIMEOUT,
			  "reading %s '%s'[%d] at %lld timed out", ep->role, topic, partition,
			  (long long)from);
	rd_kafka_assign(rd->c, NULL);
	return rc;
}

/* ---- group listing ------------------------------------------------------------- */

static km_err_t committed_offsets(km_kafka_t *k, const char *group, json_t **rowsp,
				  char *errstr, size_t errstr_size)
{
	rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
	rd_kafka_queue_t *q = rd_kafka_queue_new(km_kafka_rk(k));
	rd_kafka_event_t *ev = NULL;
	json_t *rows = json_array();
	km_err_t err;
	size_t n;

	rd_kafka_ListConsumerGroupOffsets(km_kafka_rk(k), &req, 1, NULL, q);
	err = km_kafka_wait(k, q, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT,
			    KM_KAFKA_TIMEOUT_MS, "ListConsumerGroupOffsets", &ev, errstr, errstr_size);
	if (!err) {
		const rd_kafka_group_result_t **gr = rd_kafka_ListConsumerGroupOffsets_result_groups(
			rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
		for (size_t g = 0; g < n; g++) {
			const rd_kafka_topic_partition_list_t *tps = rd_kafka_group_result_partitions(gr[g]);
			for (int i = 0; tps && i < tps->cnt; i++)
				if (tps->elems[i].offset >= 0)
					json_array_append_new(
						rows, json_pack("{s:s, s:i, s:I}", "topic", tps->elems[i].topic,
								"partition", tps->elems[i].partition,
								"committed", (json_int_t)tps->elems[i].offset));
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_ListConsumerGroupOffsets_destroy(req);
	rd_kafka_queue_destroy(q);
	if (err) {
		json_decref(rows);
		return err;
	}
	*rowsp = rows;
	return KM_ERR_OK;
}

/* Groups to move: the plan's, then any other group on the source; only
 * `only` when it is given (the others are neither listed nor read). */
static km_err_t group_ids(const km_plan_t *plan, km_kafka_t *ks, const char *only, json_t **idsp,
			  char *errstr, size_t errstr_size)
{
	json_t *ids = json_array();
	rd_kafka_queue_t *q;
	rd_kafka_event_t *ev = NULL;
	km_err_t err;
	size_t n;

	if (only) {
		json_array_append_new(ids, json_string(only));
		*idsp = ids;
		return KM_ERR_OK;
	}
	q = rd_kafka_queue_new(km_kafka_rk(ks));
	for (size_t i = 0; i < plan->groups_cnt; i++)
		json_array_append_new(ids, json_string(plan->groups[i].id));
	rd_kafka_ListConsumerGroups(km_kafka_rk(ks), NULL, q);
	err = km_kafka_wait(ks, q, RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT, KM_KAFKA_TIMEOUT_MS,
			    "ListConsumerGroups", &ev, errstr, errstr_size);
	if (!err) {
		const rd_kafka_ConsumerGroupListing_t **gl = rd_kafka_ListConsumerGroups_result_valid(
			rd_kafka_event_ListConsumerGroups_result(ev), &n);
		for (size_t i = 0; i < n; i++) {
			const char *id = rd_kafka_ConsumerGroupListing_group_id(gl[i]);
			bool have = false;
			json_t *v;
			size_t j;
			/* kmigrate's own groups are not the estate's. */
			if (!strncmp(id, "kmigrate", 8))
				continue;
			json_array_foreach(ids, j, v)
				if (!strcmp(json_string_value(v), id))
					have = true;
			if (!have)
				json_array_append_new(ids, json_string(id));
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(q);
	if (err) {
		json_decref(ids);
		return err;
	}
	*idsp = ids;
	return KM_ERR_OK;
}

/* ---- translation --------------------------------------------------------------- */

/* The offset maps, opened on the first translated row: each partition of
 * the offset-map topic is read once for all the groups. */
static km_err_t offmap_of(const km_plan_t *plan, const km_kafka_endpoint_t *tgt,
			  km_repl_offmaps_t **maps, const char *topic, int partition,
			  const km_offmap_t **mp, char *errstr, size_t errstr_size)
{
	km_err_t err;

	if (!*maps && (err = km_repl_offmaps_open(plan, tgt, maps, errstr, errstr_size)))
		return err;
	return km_repl_offmaps_get(*maps, topic, partition, mp, errstr, errstr_size);
}

static const km_plan_group_t *plan_group(const km_plan_t *plan, const char *id)
{
	for (size_t i = 0; i < plan->groups_cnt; i++)
		if (!strcmp(plan->groups[i].id, id))
			return &plan->groups[i];
	return NULL;
}

/* Translates one committed position and proves it by reading. */
static km_err_t translate_row(const km_plan_t *plan, reader_t *rs_src, reader_t *rs_tgt,
			      km_kafka_t *kt, km_repl_offmaps_t **maps, json_t *row, char *errstr,
			      size_t errstr_size)
{
	const char *topic = json_string_value(json_object_get(row, "topic"));
	int p = (int)json_integer_value(json_object_get(row, "partition"));
	int64_t c = json_integer_value(json_object_get(row, "committed"));
	const char *ttopic = json_string_value(json_object_get(row, "target_topic"));
	const km_offmap_t *m = NULL;
	int64_t t, so = -1, to = -1;
	uint64_t sd = 0, td = 0;
	km_err_t err;
	int rs, rt;

	if ((err = offmap_of(plan, km_kafka_endpoint(kt), maps, topic, p, &m, errstr, errstr_size)))
		return err;
	if (!km_offmap_translate(m, c, &t)) {
		/* Proof: the record the group reads next on the source is
		 * the one at t on the target. */
		rs = first_record(rs_src, topic, p, c, &so, &sd, errstr, errstr_size);
		rt = first_record(rs_tgt, ttopic, p, t, &to, &td, errstr, errstr_size);
		if (rs < 0 || rt < 0)
			return KM_ERR_KAFKA;
		bool ok = rs == 1 && rt == 1 && to == t && sd == td &&
			  km_offmap_source_of(m, t) == so;
		json_object_set_new(row, "target_offset", json_integer(t));
		json_object_set_new(row, "status", json_string(ok ? "translated" : "proof-failed"));
		json_object_set_new(
			row, "proof",
			json_pack("{s:I, s:I, s:o, s:o, s:b}", "source_offset", (json_int_t)so,
				  "target_offset", (json_int_t)to, "source_digest",
				  json_sprintf("%016llx", (unsigned long long)sd), "target_digest",
				  json_sprintf("%016llx", (unsigned long long)td), "match", ok));
		return KM_ERR_OK;
	}
	/* No copied record at or after c.  If the source has no committed
	 * record at or after c either (the group and the replication are
	 * both at the end), the group resumes right after the last copied
	 * record; otherwise c is beyond what has been replicated. */
	int64_t copied_end = -1, tgt_end = 0;
	if (m->cnt) {
		const km_offrun_t *last = &m->runs[m->cnt - 1];
		copied_end = last->src_first + last->count;
		tgt_end = last->tgt_first + last->count;
	}
	rs = first_record(rs_src, topic, p, c, &so, &sd, errstr, errstr_size);
	if (rs < 0)
		return KM_ERR_KAFKA;
	if (rs == 0 && copied_end >= 0) {
		/* Every source record before c was copied (c >= copied_end
		 * and none exists at or after c): the group is at the end.
		 * Right after the last copied record come the markers of its
		 * transaction (and of later empty or aborted ones); a reader
		 * skips them, so any position up to the end is the same for
		 * the group, but only the end itself reads as lag 0 on the
		 * dashboards.  The read_committed reader's end-of-partition
		 * offset is the last stable offset, reached only after it
		 * passed every marker, and it met no committed record on
		 * the way: that is the proof, and the position. */
		rt = first_record(rs_tgt, ttopic, p, tgt_end, &to, &td, errstr,
				  errstr_size);
		if (rt < 0)
			return KM_ERR_KAFKA;
		json_object_set_new(row, "target_offset",
				    json_integer(rt == 0 && to >= tgt_end ? to : tgt_end));
		json_object_set_new(row, "status", json_string(rt == 0 && to >= tgt_end
								       ? "translated"
								       : "proof-failed"));
		json_object_set_new(row, "proof",
				    json_pack("{s:s, s:I, s:I, s:I, s:b}", "kind", "end-of-log",
					      "source_end", (json_int_t)so, "target_end", (json_int_t)to,
					      "last_copied_end", (json_int_t)tgt_end, "match",
					      rt == 0 && to >= tgt_end));
		return KM_ERR_OK;
	}
	json_object_set_new(row, "target_offset", json_null());
	json_object_set_new(row, "status", json_string("not-yet"));
	json_object_set_new(row, "lag", json_integer(rs == 1 && copied_end >= 0 ? so - copied_end + 1
								    : (copied_end < 0 ? c : c - copied_end)));
	return KM_ERR_OK;
}

static km_err_t policy_row(km_kafka_t *kt, const km_plan_group_t *pg, json_t *row, char *errstr,
			   size_t errstr_size)
{
	const char *ttopic = json_string_value(json_object_get(row, "target_topic"));
	int p = (int)json_integer_value(json_object_get(row, "partition"));
	int64_t lo, hi, t;

	if (pg->restart == KM_PLAN_RESTART_TIMESTAMP) {
		rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(tp, ttopic, p)->offset = pg->restart_ts_ms;
		rd_kafka_resp_err_t rerr =
			rd_kafka_offsets_for_times(km_kafka_rk(kt), tp, KM_KAFKA_TIMEOUT_MS);
		if (!rerr)
			rerr = tp->elems[0].err;
		t = tp->elems[0].offset;
		rd_kafka_topic_partition_list_destroy(tp);
		if (rerr)
			return km_kafka_err(kt, rerr, "ListOffsets (offsetsForTimes)", NULL, errstr,
					    errstr_size);
		if (t < 0) {
			/* No record at or after the time: the end. */
			if (km_kafka_watermarks(kt, ttopic, p, &lo, &hi, errstr, errstr_size))
				return KM_ERR_KAFKA;
			t = hi;
		}
	} else {
		if (km_kafka_watermarks(kt, ttopic, p, &lo, &hi, errstr, errstr_size))
			return KM_ERR_KAFKA;
		t = pg->restart == KM_PLAN_RESTART_EARLIEST ? lo : hi;
	}
	json_object_set_new(row, "target_offset", json_integer(t));
	json_object_set_new(row, "status", json_string("policy"));
	return KM_ERR_OK;
}

km_err_t km_offsets_translate(const km_plan_t *plan, km_kafka_t *ks, km_kafka_t *kt,
			      const char *only, json_t **groupsp, char *errstr, size_t errstr_size)
{
	json_t *ids = NULL, *out = json_array(), *id;
	km_repl_offmaps_t *maps = NULL;
	reader_t rsrc = {km_kafka_endpoint(ks), NULL}, rtgt = {km_kafka_endpoint(kt), NULL};
	km_err_t err;
	size_t i, j;

	*groupsp = NULL;
	if ((err = group_ids(plan, ks, only, &ids, errstr, errstr_size)))
		goto done;
	json_array_foreach(ids, i, id) {
		const char *gid = json_string_value(id);
		const km_plan_group_t *pg = plan_group(plan, gid);
		json_t *rows = NULL, *kept = json_array(), *row;
		char pbuf[64];
		bool translatable = true;

		if ((err = committed_offsets(ks, gid, &rows, errstr, errstr_size))) {
			json_decref(kept);
			goto done;
		}
		km_inventory_sort_rows(rows);
		json_array_foreach(rows, j, row) {
			const char *topic = json_string_value(json_object_get(row, "topic"));
			if (!km_plan_topic_in_scope(plan, topic))
				continue;
			char *tt = km_plan_target_topic(plan, topic);
			json_object_set_new(row, "target_topic", json_string(tt));
			free(tt);
			if (pg && pg->restart != KM_PLAN_RESTART_TRANSLATED)
				err = policy_row(kt, pg, row, errstr, errstr_size);
			else
				err = translate_row(plan, &rsrc, &rtgt, kt, &maps, row, errstr,
						    errstr_size);
			if (err) {
				json_decref(rows);
				json_decref(kept);
				goto done;
			}
			const char *st = json_string_value(json_object_get(row, "status"));
			if (strcmp(st, "translated") && strcmp(st, "policy"))
				translatable = false;
			json_array_append(kept, row);
		}
		json_decref(rows);
		if (!json_array_size(kept)) {
			json_decref(kept);
			continue; /* no commits on in-scope topics: nothing to move */
		}
		json_array_append_new(
			out, json_pack("{s:s, s:s, s:o, s:o, s:b, s:b, s:o}", "group", gid, "policy",
				       pg ? km_plan_group_restart_str(pg, pbuf, sizeof(pbuf))
					  : "translated",
				       "chosen_by",
				       pg && pg->chosen_by ? json_string(pg->chosen_by)
				       : pg ? json_string("the plan (no chosen_by)")
					    : json_string("default: group not declared in the plan"),
				       "owner", pg && pg->owner ? json_string(pg->owner) : json_null(),
				       "declared", pg != NULL, "translatable", translatable,
				       "partitions", kept));
	}
	if (only && !json_array_size(out)) {
		err = km_seterr(errstr, errstr_size, KM_ERR_NOT_FOUND,
				"group '%s' has no committed offset on an in-scope topic of the source: "
				"nothing to translate; check the group id (`kmigrate offsets` lists the "
				"groups)",
				only);
		goto done;
	}
	*groupsp = out;
	out = NULL;
done:
	reader_close(&rsrc);
	reader_close(&rtgt);
	km_repl_offmaps_close(maps);
	json_decref(ids);
	json_decref(out);
	return err;
}

/* ---- commit ---------------------------------------------------------------------- */

static km_err_t target_members(km_kafka_t *kt, const char *gid, int *membersp, char *clients,
			       size_t csize, char *errstr, size_t errstr_size)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(km_kafka_rk(kt));
	rd_kafka_event_t *ev = NULL;
	const char *ids[1] = {gid};
	km_err_t err;
	size_t n;

	*membersp = 0;
	clients[0] = '\0';
	rd_kafka_DescribeConsumerGroups(km_kafka_rk(kt), ids, 1, NULL, q);
	err = km_kafka_wait(kt, q, RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT, KM_KAFKA_TIMEOUT_MS,
			    "DescribeConsumerGroups", &ev, errstr, errstr_size);
	if (!err) {
		const rd_kafka_ConsumerGroupDescription_t **gd =
			rd_kafka_DescribeConsumerGroups_result_groups(
				rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
		for (size_t i = 0; i < n; i++) {
			size_t mc = rd_kafka_ConsumerGroupDescription_member_count(gd[i]);
			*membersp += (int)mc;
			for (size_t m = 0; m < mc; m++) {
				const rd_kafka_MemberDescription_t *md =
					rd_kafka_ConsumerGroupDescription_member(gd[i], m);
				size_t l = strlen(clients);
				snprintf(clients + l, csize - l, "%s%s@%s", l ? ", " : "",
					 rd_kafka_MemberDescription_client_id(md),
					 rd_kafka_MemberDescription_host(md));
			}
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(q);
	return err;
}

km_err_t km_offsets_commit(km_kafka_t *kt, const json_t *group, char *errstr, size_t errstr_size)
{
	const char *gid = json_string_value(json_object_get(group, "group"));
	rd_kafka_topic_partition_list_t *tps;
	rd_kafka_AlterConsumerGroupOffsets_t *a;
	rd_kafka_queue_t *q;
	rd_kafka_event_t *ev = NULL;
	char clients[1024];
	int members;
	json_t *row;
	km_err_t err;
	size_t i, n;

	if (!json_is_true(json_object_get(group, "translatable")))
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "group '%s' has partitions that are not translatable yet (replication "
				 "behind or proof failed): nothing committed; run replicate, then retry",
				 gid);
	if ((err = target_members(kt, gid, &members, clients, sizeof(clients), errstr, errstr_size)))
		return err;
	if (members > 0)
		return km_seterr(errstr, errstr_size, KM_ERR_NOGO,
				 "target group '%s' has %d active member(s) (%s): committing under "
				 "them would be overwritten or skip records; stop them, then retry",
				 gid, members, clients);
	tps = rd_kafka_topic_partition_list_new(8);
	json_array_foreach(json_object_get(group, "partitions"), i, row)
		rd_kafka_topic_partition_list_add(
			tps, json_string_value(json_object_get(row, "target_topic")),
			(int32_t)json_integer_value(json_object_get(row, "partition")))
			->offset = json_integer_value(json_object_get(row, "target_offset"));
	a = rd_kafka_AlterConsumerGroupOffsets_new(gid, tps);
	q = rd_kafka_queue_new(km_kafka_rk(kt));
	rd_kafka_AlterConsumerGroupOffsets(km_kafka_rk(kt), &a, 1, NULL, q);
	err = km_kafka_wait(kt, q, RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT,
			    KM_KAFKA_TIMEOUT_MS, "AlterConsumerGroupOffsets", &ev, errstr, errstr_size);
	if (!err) {
		const rd_kafka_group_result_t **gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
			rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
		for (size_t g = 0; g < n && !err; g++) {
			const rd_kafka_error_t *ge = rd_kafka_group_result_error(gr[g]);
			const rd_kafka_topic_partition_list_t *p = rd_kafka_group_result_partitions(gr[g]);
			if (ge)
				err = km_kafka_err(kt, rd_kafka_error_code(ge), "AlterConsumerGroupOffsets",
						   rd_kafka_error_string(ge), errstr, errstr_size);
			for (int j = 0; !err && p && j < p->cnt; j++)
				if (p->elems[j].err)
					err = km_kafka_err(kt, p->elems[j].err,
							   "AlterConsumerGroupOffsets", NULL, errstr,
							   errstr_size);
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AlterConsumerGroupOffsets_destroy(a);
	rd_kafka_topic_partition_list_destroy(tps);
	rd_kafka_queue_destroy(q);
	return err;
}
