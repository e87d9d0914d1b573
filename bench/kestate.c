/* kestate -- builds the estate of bench/run-offsets (not part of kmigrate).
 *
 *   kestate -b BOOT [-T TOPICS] [-P PARTITIONS] [-r RECORDS] [-g GROUPS] [-t TOPICS_PER_GROUP]
 *
 * Creates TOPICS topics bo.NNN of PARTITIONS partitions (default 200 x 5),
 * writes RECORDS records to each partition (default 40) in transactions of
 * ten topics each, every fourth transaction aborted (so the logs hold
 * commit and abort markers and aborted records, as a transactional estate
 * does), then commits GROUPS groups bench-g-NN (default 10) on
 * TOPICS_PER_GROUP topics each (default 20, i.e. 100 group-partitions per
 * group).  Group g takes topics g*T/2 .. g*T/2+T-1 (mod TOPICS): every
 * partition is in two groups, at different positions, so the proof reads
 * one partition at several positions.  A position is a mid-log offset, or
 * the end (the high watermark, after the final marker) for one partition
 * in five.  Prints the number of group-partitions committed.
 *
 * Talks to librdkafka directly; exits non-zero with a message on any error.
 */
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("kestate: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *boot, const char *txn_id)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char err[512];
	rd_kafka_t *rk;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", boot, err, sizeof(err)) ||
	    (txn_id && rd_kafka_conf_set(conf, "transactional.id", txn_id, err, sizeof(err))) ||
	    (type == RD_KAFKA_PRODUCER &&
	     rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err))))
		die("config: %s", err);
	if (!(rk = rd_kafka_new(type, conf, err, sizeof(err))))
		die("client: %s", err);
	return rk;
}

static rd_kafka_event_t *wait_ev(rd_kafka_queue_t *q, const char *what)
{
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 120000);
	if (!ev)
		die("%s: timed out", what);
	if (rd_kafka_event_error(ev))
		die("%s: %s", what, rd_kafka_event_error_string(ev));
	return ev;
}

static void create_topics(rd_kafka_t *rk, int topics, int partitions)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	for (int first = 0; first < topics; first += 50) {
		int n = topics - first < 50 ? topics - first : 50;
		rd_kafka_NewTopic_t *nt[50];
		char name[64], err[256];
		for (int i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "bo.%03d", first + i);
			if (!(nt[i] = rd_kafka_NewTopic_new(name, partitions, 1, err, sizeof(err))))
				die("NewTopic %s: %s", name, err);
		}
		rd_kafka_CreateTopics(rk, nt, (size_t)n, NULL, q);
		rd_kafka_event_t *ev = wait_ev(q, "CreateTopics");
		size_t cnt;
		const rd_kafka_topic_result_t **tr =
			rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
		for (size_t i = 0; i < cnt; i++)
			if (rd_kafka_topic_result_error(tr[i]))
				die("CreateTopics %s: %s", rd_kafka_topic_result_name(tr[i]),
				    rd_kafka_topic_result_error_string(tr[i]));
		rd_kafka_event_destroy(ev);
		rd_kafka_NewTopic_destroy_array(nt, (size_t)n);
	}
	rd_kafka_queue_destroy(q);
}

static void check(rd_kafka_error_t *e, const char *what)
{
	if (e)
		die("%s: %s", what, rd_kafka_error_string(e));
}

int main(int argc, char **argv)
{
	const char *boot = NULL;
	int topics = 200, parts = 5, records = 40, groups = 10, per_group = 20, c;
	char name[64], val[64];

	while ((c = getopt(argc, argv, "b:T:P:r:g:t:")) != -1) {
		switch (c) {
		case 'b': boot = optarg; break;
		case 'T': topics = atoi(optarg); break;
		case 'P': parts = atoi(optarg); break;
		case 'r': records = atoi(optarg); break;
		case 'g': groups = atoi(optarg); break;
		case 't': per_group = atoi(optarg); break;
		default: die("usage: kestate -b BOOT [-T topics] [-P partitions] [-r records] "
			     "[-g groups] [-t topics-per-group]");
		}
	}
	if (!boot || topics < 1 || parts < 1 || records < 2 || groups < 1 || per_group < 1 ||
	    per_group > topics)
		die("usage: kestate -b BOOT [-T topics] [-P partitions] [-r records] [-g groups] "
		    "[-t topics-per-group]");

	rd_kafka_t *adm = client(RD_KAFKA_PRODUCER, boot, NULL);
	create_topics(adm, topics, parts);

	rd_kafka_t *p = client(RD_KAFKA_PRODUCER, boot, "kestate");
	check(rd_kafka_init_transactions(p, 60000), "init_transactions");
	/* Transactions of ten topics, two per ten topics, every fourth
	 * one aborted: markers and aborted records in the logs. */
	for (int first = 0, tx = 0; first < topics; first += 10) {
		for (int half = 0; half < 2; half++, tx++) {
			check(rd_kafka_begin_transaction(p), "begin_transaction");
			for (int t = first; t < first + 10 && t < topics; t++) {
				snprintf(name, sizeof(name), "bo.%03d", t);
				for (int part = 0; part < parts; part++)
					for (int i = 0; i < records / 2; i++) {
						snprintf(val, sizeof(val), "%.8s-%d-%d-%d", name,
							 part % 1000, half, i % 100000);
						rd_kafka_resp_err_t e = rd_kafka_producev(
							p, RD_KAFKA_V_TOPIC(name),
							RD_KAFKA_V_PARTITION(part),
							RD_KAFKA_V_KEY(val, strlen(val)),
							RD_KAFKA_V_VALUE(val, strlen(val)),
							RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
							RD_KAFKA_V_END);
						if (e)
							die("produce %s: %s", name, rd_kafka_err2str(e));
					}
			}
			/* Everything sent before the end: an abort racing the
			 * partitions' registration is refused by the broker. */
			if (rd_kafka_flush(p, 60000))
				die("flush: timed out");
			if (tx % 4 == 3)
				check(rd_kafka_abort_transaction(p, 60000), "abort_transaction");
			else
				check(rd_kafka_commit_transaction(p, 60000), "commit_transaction");
		}
	}
	rd_kafka_destroy(p);

	/* Commits: one AlterConsumerGroupOffsets per group. */
	rd_kafka_queue_t *q = rd_kafka_queue_new(adm);
	int total = 0;
	for (int g = 0; g < groups; g++) {
		rd_kafka_topic_partition_list_t *tps = rd_kafka_topic_partition_list_new(per_group * parts);
		for (int k = 0; k < per_group; k++) {
			int t = (g * per_group / 2 + k) % topics;
			snprintf(name, sizeof(name), "bo.%03d", t);
			for (int part = 0; part < parts; part++) {
				int64_t lo, hi;
				rd_kafka_resp_err_t e =
					rd_kafka_query_watermark_offsets(adm, name, part, &lo, &hi, 30000);
				if (e)
					die("watermarks %s[%d]: %s", name, part, rd_kafka_err2str(e));
				int64_t off = (k * parts + part + g) % 5 == 0 ? hi : 1 + (g * 7 + k * 3 + part) % (records - 1);
				rd_kafka_topic_partition_list_add(tps, name, part)->offset = off;
				total++;
			}
		}
		snprintf(name, sizeof(name), "bench-g-%02d", g);
		/* Per-partition errors too (the group coordinator may still be
		 * loading right after the start): retried, then fatal. */
		for (int attempt = 0;; attempt++) {
			rd_kafka_AlterConsumerGroupOffsets_t *a =
				rd_kafka_AlterConsumerGroupOffsets_new(name, tps);
			rd_kafka_AlterConsumerGroupOffsets(adm, &a, 1, NULL, q);
			rd_kafka_event_t *ev = wait_ev(q, "AlterConsumerGroupOffsets");
			size_t n;
			const char *bad = NULL;
			const rd_kafka_group_result_t **gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
				rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
			for (size_t i = 0; i < n && !bad; i++) {
				const rd_kafka_topic_partition_list_t *r =
					rd_kafka_group_result_partitions(gr[i]);
				if (rd_kafka_group_result_error(gr[i]))
					bad = rd_kafka_error_string(rd_kafka_group_result_error(gr[i]));
				for (int j = 0; !bad && r && j < r->cnt; j++)
					if (r->elems[j].err)
						bad = rd_kafka_err2str(r->elems[j].err);
			}
			if (bad && attempt >= 20)
				die("AlterConsumerGroupOffsets %s: %s", name, bad);
			rd_kafka_event_destroy(ev);
			rd_kafka_AlterConsumerGroupOffsets_destroy(a);
			if (!bad)
				break;
			sleep(1);
		}
		rd_kafka_topic_partition_list_destroy(tps);
	}
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(adm);
	printf("%d\n", total);
	return 0;
}
