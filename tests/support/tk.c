/* nftw() is XSI. */
#define _XOPEN_SOURCE 700
#include "tk.h"
#include "util.h"
#include "journal.h"
#include "kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TK_TIMEOUT_MS 30000

void tk_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "TEST FAILURE: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	/* Kill our process group's children (members) before leaving. */
	exit(1);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tk_cluster_from_env(tk_cluster_t *c, const char *var)
{
	char name[128];
	const char *v = getenv(var);
	int n = 0;

	memset(c, 0, sizeof(*c));
	TK_ASSERT(v && *v, "environment variable %s is not set: run the test "
		  "through ctest, which starts the clusters", var);
	c->bootstrap = v;
	/* Optional security: <VAR>_PROTOCOL, _USER, _PASSWORD, _CA. */
	static const struct { const char *suffix, *prop; } map[] = {
		{"_PROTOCOL", "security.protocol"}, {"_MECHANISM", "sasl.mechanism"},
		{"_USER", "sasl.username"}, {"_PASSWORD", "sasl.password"},
		{"_CA", "ssl.ca.location"}};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		snprintf(name, sizeof(name), "%s%s", var, map[i].suffix);
		if ((v = getenv(name)) && *v) {
			c->props[n++] = map[i].prop;
			c->props[n++] = v;
		}
	}
	c->props[n] = NULL;
}

static rd_kafka_conf_t *conf(const tk_cluster_t *c)
{
	rd_kafka_conf_t *cf = rd_kafka_conf_new();
	char err[256];

	if (rd_kafka_conf_set(cf, "bootstrap.servers", c->bootstrap, err, sizeof(err)))
		tk_fail("conf: %s", err);
	for (int i = 0; c->props[i]; i += 2)
		if (rd_kafka_conf_set(cf, c->props[i], c->props[i + 1], err, sizeof(err)))
			tk_fail("conf %s: %s", c->props[i], err);
	return cf;
}

static void set(rd_kafka_conf_t *cf, const char *k, const char *v)
{
	char err[256];
	if (rd_kafka_conf_set(cf, k, v, err, sizeof(err)))
		tk_fail("conf %s: %s", k, err);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	if (m->err)
		tk_fail("delivery to %s[%d] failed: %s", rd_kafka_topic_name(m->rkt),
			m->partition, rd_kafka_err2str(m->err));
}

rd_kafka_conf_t *tk_conf(const tk_cluster_t *c)
{
	return conf(c);
}

void tk_conf_set(rd_kafka_conf_t *cf, const char *name, const char *value)
{
	set(cf, name, value);
}

rd_kafka_t *tk_producer(const tk_cluster_t *c, const char *txn_id)
{
	rd_kafka_conf_t *cf = conf(c);
	rd_kafka_t *rk;
	char err[256];

	set(cf, "enable.idempotence", "true");
	set(cf, "linger.ms", "5");
	rd_kafka_conf_set_dr_msg_cb(cf, dr_cb);
	if (txn_id)
		set(cf, "transactional.id", txn_id);
	if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, cf, err, sizeof(err))))
		tk_fail("producer: %s", err);
	if (txn_id) {
		rd_kafka_error_t *e = rd_kafka_init_transactions(rk, TK_TIMEOUT_MS);
		if (e)
			tk_fail("init_transactions: %s", rd_kafka_error_string(e));
	}
	return rk;
}

rd_kafka_t *tk_admin(const tk_cluster_t *c)
{
	char err[256];
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf(c), err, sizeof(err));
	if (!rk)
		tk_fail("admin: %s", err);
	return rk;
}

static rd_kafka_event_t *wait_ev(rd_kafka_queue_t *q, const char *what)
{
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, TK_TIMEOUT_MS);
	if (!ev)
		tk_fail("%s: no result within %d ms", what, TK_TIMEOUT_MS);
	if (rd_kafka_event_error(ev))
		tk_fail("%s: %s", what, rd_kafka_event_error_string(ev));
	return ev;
}

void tk_create_topic(const tk_cluster_t *c, const char *topic, int partitions,
		     const char **configs)
{
	rd_kafka_t *rk = tk_admin(c);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	char err[256];
	rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof(err));
	const rd_kafka_topic_result_t **res;
	size_t n;
	int64_t deadline;

	for (int i = 0; configs && configs[i]; i += 2)
		rd_kafka_NewTopic_set_config(nt, configs[i], configs[i + 1]);
	rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
	rd_kafka_event_t *ev = wait_ev(q, "CreateTopics");
	res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
	if (n == 1 && rd_kafka_topic_result_error(res[0]) &&
	    rd_kafka_topic_result_error(res[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
		tk_fail("create topic %s: %s", topic, rd_kafka_topic_result_error_string(res[0]));
	rd_kafka_event_destroy(ev);
	rd_kafka_NewTopic_destroy(nt);

	/* Wait on the condition "every partition has a leader". */
	deadline = now_ms() + TK_TIMEOUT_MS;
	for (;;) {
		const struct rd_kafka_metadata *md = NULL;
		rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
		int ok = 0;
		if (!rd_kafka_metadata(rk, 0, rkt, &md, 5000)) {
			if (md->topic_cnt == 1 && !md->topics[0].err &&
			    md->topics[0].partition_cnt == partitions) {
				ok = 1;
				for (int p = 0; p < partitions; p++)
					if (md->topics[0].partitions[p].leader < 0)
						ok = 0;
			}
			rd_kafka_metadata_destroy(md);
		}
		rd_kafka_topic_destroy(rkt);
		if (ok)
			break;
		if (now_ms() > deadline)
			tk_fail("topic %s has no leaders after %d ms", topic, TK_TIMEOUT_MS);
		poll(NULL, 0, 100);
	}
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

void tk_delete_topic(const tk_cluster_t *c, const char *topic)
{
	rd_kafka_t *rk = tk_admin(c);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);

	rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
	rd_kafka_event_destroy(wait_ev(q, "DeleteTopics"));
	rd_kafka_DeleteTopic_destroy(dt);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

void tk_produce(rd_kafka_t *rk, const char *topic, const tk_msg_t *m)
{
	rd_kafka_headers_t *hdrs = NULL;
	rd_kafka_resp_err_t err;

	if (m->headers) {
		hdrs = rd_kafka_headers_new(4);
		for (int i = 0; m->headers[i]; i += 2)
			rd_kafka_header_add(hdrs, m->headers[i], -1, m->headers[i + 1], -1);
	}
	for (;;) {
		err = rd_kafka_producev(
			rk, RD_KAFKA_V_TOPIC(topic),
			RD_KAFKA_V_PARTITION(m->partition >= 0 ? m->partition : RD_KAFKA_PARTITION_UA),
			RD_KAFKA_V_KEY(m->key, m->key ? strlen(m->key) : 0),
			RD_KAFKA_V_VALUE((void *)m->value,
					 m->value ? (m->value_len ? m->value_len : strlen(m->value)) : 0),
			RD_KAFKA_V_TIMESTAMP(m->timestamp),
			RD_KAFKA_V_HEADERS(hdrs),
			RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(rk, 50);
	}
	if (err) {
		if (hdrs)
			rd_kafka_headers_destroy(hdrs);
		tk_fail("produce to %s: %s", topic, rd_kafka_err2str(err));
	}
	rd_kafka_poll(rk, 0);
}

void tk_flush(rd_kafka_t *rk)
{
	if (rd_kafka_flush(rk, TK_TIMEOUT_MS))
		tk_fail("flush timed out");
}

void tk_acl(const tk_cluster_t *c, rd_kafka_ResourceType_t rt, const char *name,
	    rd_kafka_ResourcePatternType_t pt, const char *principal,
	    const char *host, rd_kafka_AclOperation_t op,
	    rd_kafka_AclPermissionType_t perm)
{
	rd_kafka_t *rk = tk_admin(c);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	char err[256];
	rd_kafka_AclBinding_t *b = rd_kafka_AclBinding_new(rt, name, pt, principal, host,
							   op, perm, err, sizeof(err));
	const rd_kafka_acl_result_t **res;
	size_t n;

	if (!b)
		tk_fail("acl: %s", err);
	rd_kafka_CreateAcls(rk, &b, 1, NULL, q);
	rd_kafka_event_t *ev = wait_ev(q, "CreateAcls");
	res = rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev), &n);
	for (size_t i = 0; i < n; i++)
		if (rd_kafka_acl_result_error(res[i]))
			tk_fail("CreateAcls: %s",
				rd_kafka_error_string(rd_kafka_acl_result_error(res[i])));
	rd_kafka_event_destroy(ev);
	rd_kafka_AclBinding_destroy(b);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

static bool retriable_group_err(rd_kafka_resp_err_t e)
{
	return e == RD_KAFKA_RESP_ERR_NOT_COORDINATOR ||
	       e == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS ||
	       e == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE;
}

/* One AlterConsumerGroupOffsets; @returns the error, 0 on success. */
static rd_kafka_resp_err_t commit_once(rd_kafka_t *rk, const char *group,
				       const char *topic, int partition,
				       int64_t offset, char *why, size_t whysz)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_topic_partition_list_t *tps = rd_kafka_topic_partition_list_new(1);
	rd_kafka_AlterConsumerGroupOffsets_t *a;
	const rd_kafka_group_result_t **gr;
	rd_kafka_resp_err_t err = 0;
	size_t n;

	rd_kafka_topic_partition_list_add(tps, topic, partition)->offset = offset;
	a = rd_kafka_AlterConsumerGroupOffsets_new(group, tps);
	rd_kafka_AlterConsumerGroupOffsets(rk, &a, 1, NULL, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, TK_TIMEOUT_MS);
	if (!ev) {
		err = RD_KAFKA_RESP_ERR__TIMED_OUT;
	} else if ((err = rd_kafka_event_error(ev))) {
		snprintf(why, whysz, "%s", rd_kafka_event_error_string(ev));
	} else {
		gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
			rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
		for (size_t i = 0; i < n && !err; i++) {
			const rd_kafka_topic_partition_list_t *p = rd_kafka_group_result_partitions(gr[i]);
			if (rd_kafka_group_result_error(gr[i])) {
				err = rd_kafka_error_code(rd_kafka_group_result_error(gr[i]));
				snprintf(why, whysz, "%s",
					 rd_kafka_error_string(rd_kafka_group_result_error(gr[i])));
			}
			for (int j = 0; p && j < p->cnt && !err; j++)
				if ((err = p->elems[j].err))
					snprintf(why, whysz, "%s", rd_kafka_err2str(err));
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AlterConsumerGroupOffsets_destroy(a);
	rd_kafka_topic_partition_list_destroy(tps);
	rd_kafka_queue_destroy(q);
	return err;
}

void tk_commit(const tk_cluster_t *c, const char *group, const char *topic,
	       int partition, int64_t offset)
{
	rd_kafka_t *rk = tk_admin(c);
	int64_t deadline = now_ms() + TK_TIMEOUT_MS;
	rd_kafka_resp_err_t err;
	char why[512] = "";

	/* A fresh cluster's group coordinator may still be loading: retry
	 * the retriable errors until the deadline. */
	while ((err = commit_once(rk, group, topic, partition, offset, why, sizeof(why))) &&
	       retriable_group_err(err) && now_ms() < deadline)
		poll(NULL, 0, 200);
	if (err)
		tk_fail("commit %s %s[%d]: %s", group, topic, partition, why);
	rd_kafka_destroy(rk);
}

static volatile sig_atomic_t member_stop;
static void on_term(int sig)
{
	(void)sig;
	member_stop = 1;
}

static pid_t member_start(const tk_cluster_t *c, const char *group, const char *topic,
			  const char *client_id, bool commit);

pid_t tk_member_start(const tk_cluster_t *c, const char *group,
		      const char *topic, const char *client_id)
{
	return member_start(c, group, topic, client_id, false);
}

pid_t tk_member_start_committing(const tk_cluster_t *c, const char *group, const char *topic,
				 const char *client_id)
{
	return member_start(c, group, topic, client_id, true);
}

static pid_t member_start(const tk_cluster_t *c, const char *group, const char *topic,
			  const char *client_id, bool commit)
{
	int fds[2];
	pid_t pid;
	char b;

	if (pipe(fds))
		tk_fail("pipe: %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		tk_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		rd_kafka_conf_t *cf = conf(c);
		rd_kafka_topic_partition_list_t *sub, *asg = NULL;
		rd_kafka_t *rk;
		char err[256];
		int told = 0;

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		signal(SIGTERM, on_term);
		close(fds[0]);
		set(cf, "group.id", group);
		set(cf, "client.id", client_id);
		set(cf, "enable.auto.commit", commit ? "true" : "false");
		if (commit)
			set(cf, "auto.commit.interval.ms", "500");
		set(cf, "auto.offset.reset", "earliest");
		if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, cf, err, sizeof(err))))
			_exit(2);
		rd_kafka_poll_set_consumer(rk);
		sub = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
		rd_kafka_subscribe(rk, sub);
		rd_kafka_topic_partition_list_destroy(sub);
		while (!member_stop) {
			rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
			if (m)
				rd_kafka_message_destroy(m);
			if (!told && !rd_kafka_assignment(rk, &asg)) {
				if (asg->cnt > 0) {
					(void)!write(fds[1], "r", 1);
					told = 1;
				}
				rd_kafka_topic_partition_list_destroy(asg);
			}
		}
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
		_exit(0);
	}
	close(fds[1]);
	/* Wait on the condition "the member has an assignment". */
	struct pollfd pfd = {fds[0], POLLIN, 0};
	if (poll(&pfd, 1, TK_TIMEOUT_MS) != 1 || read(fds[0], &b, 1) != 1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		tk_fail("group member %s of %s got no assignment within %d ms",
			client_id, group, TK_TIMEOUT_MS);
	}
	close(fds[0]);
	return pid;
}

void tk_member_stop(pid_t pid)
{
	int64_t deadline = now_ms() + 20000;
	int st;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		poll(NULL, 0, 50);
	}
}

static char *slurp_fd(int fd)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	ssize_t r;

	while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)r;
		if (cap - len < 2)
			buf = realloc(buf, cap *= 2);
	}
	buf[len] = '\0';
	return buf;
}

int tk_run(char **out, char **err, const char *const argv[])
{
	char outp[] = "/tmp/tk-out-XXXXXX", errp[] = "/tmp/tk-err-XXXXXX";
	int ofd = mkstemp(outp), efd = mkstemp(errp), st;
	pid_t pid;

	unlink(outp);
	unlink(errp);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		dup2(ofd, 1);
		dup2(efd, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	lseek(ofd, 0, SEEK_SET);
	lseek(efd, 0, SEEK_SET);
	char *o = slurp_fd(ofd), *e = slurp_fd(efd);
	close(ofd);
	close(efd);
	if (out)
		*out = o;
	else
		free(o);
	if (err)
		*err = e;
	else
		free(e);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

json_t *tk_json(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (!j)
		tk_fail("bad JSON at line %d: %s\n---\n%.2000s", je.line, je.text, text);
	return j;
}

/* The temporary folders this process made, removed when it exits with
 * status 0 (every case passed: cmocka_run_group_tests returns the number
 * of failures, which main returns) and kept otherwise, for the post-mortem.
 * on_exit() (glibc) is used because it is the one exit hook that sees the
 * status; the owner pid keeps a forked child that exits from removing its
 * parent's folders. */
static char **tmpdirs;
static size_t ntmpdirs;
static pid_t tmpdirs_owner;
static pthread_mutex_t tmpdirs_lock = PTHREAD_MUTEX_INITIALIZER;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	if (remove(path) && errno != ENOENT)
		fprintf(stderr, "tk: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void tmpdirs_at_exit(int status, void *arg)
{
	(void)arg;
	if (getpid() != tmpdirs_owner)
		return;
	for (size_t i = 0; i < ntmpdirs; i++) {
		if (status == 0)
			nftw(tmpdirs[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		else
			fprintf(stderr, "tk: kept %s (a case failed)\n", tmpdirs[i]);
		free(tmpdirs[i]);
	}
	free(tmpdirs);
	tmpdirs = NULL;
	ntmpdirs = 0;
}

char *tk_tmpdir(const char *name)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *p = km_asprintf("%s/km-%s-XXXXXX", base, name);
	if (!mkdtemp(p))
		tk_fail("mkdtemp: %s", strerror(errno));
	pthread_mutex_lock(&tmpdirs_lock);
	if (!tmpdirs_owner) {
		tmpdirs_owner = getpid();
		on_exit(tmpdirs_at_exit, NULL);
	}
	tmpdirs = realloc(tmpdirs, (ntmpdirs + 1) * sizeof(*tmpdirs));
	tmpdirs[ntmpdirs++] = km_strdup(p);
	pthread_mutex_unlock(&tmpdirs_lock);
	return p;
}

char *tk_write_file(const char *dir, const char *name, const char *text)
{
	char *p = km_asprintf("%s/%s", dir, name);
	FILE *fp;

	if (!(fp = fopen(p, "w")) || fputs(text, fp) < 0 || fclose(fp))
		tk_fail("write %s: %s", p, strerror(errno));
	return p;
}

const char *tk_kmigrate(void)
{
	const char *p = getenv("KMIGRATE");
	TK_ASSERT(p && *p, "KMIGRATE is not set: run through ctest");
	return p;
}

json_t *tk_topic_configs(const tk_cluster_t *c, const char *topic)
{
	json_t *src = tk_topic_config_sources(c, topic), *out = json_object(), *v;
	const char *name;

	json_object_foreach(src, name, v)
		json_object_set(out, name, json_object_get(v, "value"));
	json_decref(src);
	return out;
}

json_t *tk_acls(const tk_cluster_t *c)
{
	rd_kafka_t *rk = tk_admin(c);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	char err[256];
	rd_kafka_AclBindingFilter_t *f = rd_kafka_AclBindingFilter_new(
		RD_KAFKA_RESOURCE_ANY, NULL, RD_KAFKA_RESOURCE_PATTERN_ANY, NULL, NULL,
		RD_KAFKA_ACL_OPERATION_ANY, RD_KAFKA_ACL_PERMISSION_TYPE_ANY, err, sizeof(err));
	json_t *out = json_array();
	size_t n;

	rd_kafka_DescribeAcls(rk, f, NULL, q);
	rd_kafka_event_t *ev = wait_ev(q, "DescribeAcls");
	const rd_kafka_AclBinding_t **a =
		rd_kafka_DescribeAcls_result_acls(rd_kafka_event_DescribeAcls_result(ev), &n);
	for (size_t i = 0; i < n; i++) {
		rd_kafka_ResourceType_t rt = rd_kafka_AclBinding_restype(a[i]);
		json_array_append_new(
			out,
			json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "resource_type",
				  rt == RD_KAFKA_RESOURCE_BROKER ? "CLUSTER" : rd_kafka_ResourceType_name(rt),
				  "pattern_type",
				  rd_kafka_ResourcePatternType_name(rd_kafka_AclBinding_resource_pattern_type(a[i])),
				  "name", rd_kafka_AclBinding_name(a[i]), "principal",
				  rd_kafka_AclBinding_principal(a[i]), "host", rd_kafka_AclBinding_host(a[i]),
				  "operation", rd_kafka_AclOperation_name(rd_kafka_AclBinding_operation(a[i])),
				  "permission",
				  rd_kafka_AclPermissionType_name(rd_kafka_AclBinding_permission_type(a[i]))));
	}
	rd_kafka_event_destroy(ev);
	rd_kafka_AclBinding_destroy(f);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
	return out;
}

int tk_partitions(const tk_cluster_t *c, const char *topic)
{
	rd_kafka_t *rk = tk_admin(c);
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	int n = -1;

	if (rd_kafka_metadata(rk, 0, rkt, &md, 10000))
		tk_fail("metadata of %s", topic);
	if (md->topic_cnt == 1 && !md->topics[0].err)
		n = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);
	return n;
}

pid_t tk_spawn(const char *const argv[], const char *logpath)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		tk_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

int tk_wait_exit_rss(pid_t pid, int timeout_ms, long *maxrss_kb)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct rusage ru;
	int st;

	for (;;) {
		pid_t r = wait4(pid, &st, WNOHANG, &ru);
		if (r == pid) {
			if (maxrss_kb)
				*maxrss_kb = ru.ru_maxrss;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		poll(NULL, 0, 50);
	}
}

int tk_wait_exit(pid_t pid, int timeout_ms)
{
	return tk_wait_exit_rss(pid, timeout_ms, NULL);
}

int64_t tk_total_hwm(const tk_cluster_t *c, const char *topic)
{
	rd_kafka_t *rk = tk_admin(c);
	int parts = tk_partitions(c, topic);
	int64_t sum = 0, lo, hi;

	for (int p = 0; p < parts; p++) {
		if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000))
			tk_fail("watermarks of %s[%d]", topic, p);
		sum += hi;
	}
	rd_kafka_destroy(rk);
	return sum;
}

void tk_wait_total_hwm(const tk_cluster_t *c, const char *topic, int64_t want)
{
	int64_t deadline = now_ms() + TK_TIMEOUT_MS, have;

	/* Every delivery was acknowledged (dr_cb fails the test otherwise);
	 * on a loaded machine the end offsets have been seen to trail them,
	 * so wait on the condition instead of reading it once. */
	while ((have = tk_total_hwm(c, topic)) != want) {
		if (have > want || now_ms() > deadline)
			tk_fail("%s holds %lld records, want %lld (after %d ms)", topic,
				(long long)have, (long long)want, TK_TIMEOUT_MS);
		poll(NULL, 0, 100);
	}
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static void digest_into(tk_digests_t *out, const rd_kafka_message_t *m);

/* Reads topic[partition] on c from the beginning to its end (read_committed
 * or read_uncommitted), handing each record to cb. */
static void read_partition(const tk_cluster_t *c, const char *topic, int partition, bool committed,
			   void (*cb)(void *opaque, const rd_kafka_message_t *m), void *opaque)
{
	rd_kafka_conf_t *cf = conf(c);
	rd_kafka_t *rk;
	char err[256];
	int64_t lo, hi, deadline = now_ms() + 120000;

	set(cf, "group.id", "tk-digest");
	set(cf, "enable.auto.commit", "false");
	set(cf, "enable.partition.eof", "true");
	set(cf, "isolation.level", committed ? "read_committed" : "read_uncommitted");
	if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, cf, err, sizeof(err))))
		tk_fail("consumer: %s", err);
	if (rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi, 10000))
		tk_fail("watermarks of %s[%d]", topic, partition);
	if (hi > lo) {
		rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(tp, topic, partition)->offset = RD_KAFKA_OFFSET_BEGINNING;
		rd_kafka_assign(rk, tp);
		rd_kafka_topic_partition_list_destroy(tp);
		for (;;) {
			rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
			if (now_ms() > deadline)
				tk_fail("reading %s[%d] did not reach its end", topic, partition);
			if (!m)
				continue;
			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				rd_kafka_message_destroy(m);
				break;
			}
			if (m->err)
				tk_fail("reading %s[%d]: %s", topic, partition, rd_kafka_message_errstr(m));
			cb(opaque, m);
			rd_kafka_message_destroy(m);
		}
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
}

static void digest_cb(void *opaque, const rd_kafka_message_t *m)
{
	digest_into(opaque, m);
}

void tk_digest_partition(const tk_cluster_t *c, const char *topic, int partition,
			 bool committed, tk_digests_t *out)
{
	memset(out, 0, sizeof(*out));
	read_partition(c, topic, partition, committed, digest_cb, out);
}

static void value_cb(void *opaque, const rd_kafka_message_t *m)
{
	json_array_append_new(opaque, m->payload ? json_stringn(m->payload, m->len) : json_null());
}

json_t *tk_values(const tk_cluster_t *c, const char *topic, int partition)
{
	json_t *out = json_array();
	read_partition(c, topic, partition, true, value_cb, out);
	return out;
}

void tk_digests_free(tk_digests_t *d)
{
	free(d->d);
	free(d->off);
	memset(d, 0, sizeof(*d));
}

void tk_delete_records(const tk_cluster_t *c, const char *topic, int partition, int64_t before)
{
	rd_kafka_t *rk = tk_admin(c);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
	rd_kafka_DeleteRecords_t *dr;

	rd_kafka_topic_partition_list_add(tp, topic, partition)->offset = before;
	dr = rd_kafka_DeleteRecords_new(tp);
	rd_kafka_DeleteRecords(rk, &dr, 1, NULL, q);
	rd_kafka_event_t *ev = wait_ev(q, "DeleteRecords");
	const rd_kafka_topic_partition_list_t *res =
		rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev));
	for (int i = 0; res && i < res->cnt; i++)
		if (res->elems[i].err)
			tk_fail("DeleteRecords %s[%d]: %s", topic, partition,
				rd_kafka_err2str(res->elems[i].err));
	rd_kafka_event_destroy(ev);
	rd_kafka_DeleteRecords_destroy(dr);
	rd_kafka_topic_partition_list_destroy(tp);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

static void digest_into(tk_digests_t *out, const rd_kafka_message_t *m)
{
	uint64_t h = 1469598103934665603ull;
	unsigned char nk = m->key ? 1 : 0, nv = m->payload ? 1 : 0;
	rd_kafka_timestamp_type_t tst;
	int64_t ts = rd_kafka_message_timestamp(m, &tst);
	rd_kafka_headers_t *hdrs = NULL;

	h = fnv(h, &nk, 1);
	h = fnv(h, m->key, m->key_len);
	h = fnv(h, &nv, 1);
	h = fnv(h, m->payload, m->len);
	if (!rd_kafka_message_headers((rd_kafka_message_t *)m, &hdrs)) {
		const char *hn;
		const void *hv;
		size_t hs;
		for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &hn, &hv, &hs); i++) {
			unsigned char hnull = hv ? 1 : 0;
			h = fnv(h, hn, strlen(hn) + 1);
			h = fnv(h, &hnull, 1);
			h = fnv(h, hv, hs);
		}
	}
	h = fnv(h, &ts, sizeof(ts));
	if (out->n == out->cap) {
		out->cap = out->cap ? out->cap * 2 : 1024;
		out->d = realloc(out->d, out->cap * sizeof(*out->d));
		out->off = realloc(out->off, out->cap * sizeof(*out->off));
	}
	out->d[out->n] = h;
	out->off[out->n] = m->offset;
	out->n++;
}

void tk_group_read(const tk_cluster_t *c, const char *group, const char *topic, int partitions,
		   tk_digests_t *out)
{
	rd_kafka_conf_t *cf = conf(c);
	rd_kafka_t *rk;
	char err[256];
	int eof = 0;
	int64_t deadline = now_ms() + 120000;
	bool *done = calloc((size_t)partitions, sizeof(*done));

	for (int p = 0; p < partitions; p++)
		memset(&out[p], 0, sizeof(out[p]));
	set(cf, "group.id", group);
	set(cf, "enable.auto.commit", "false");
	set(cf, "enable.partition.eof", "true");
	set(cf, "auto.offset.reset", "error");
	set(cf, "isolation.level", "read_committed");
	if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, cf, err, sizeof(err))))
		tk_fail("consumer: %s", err);
	rd_kafka_poll_set_consumer(rk);
	rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	while (eof < partitions) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		if (now_ms() > deadline)
			tk_fail("group %s did not reach the end of %s within 120 s", group, topic);
		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (m->partition < partitions && !done[m->partition]) {
				done[m->partition] = true;
				eof++;
			}
		} else if (m->err) {
			tk_fail("group %s reading %s: %s", group, topic, rd_kafka_message_errstr(m));
		} else if (m->partition < partitions) {
			digest_into(&out[m->partition], m);
		}
		rd_kafka_message_destroy(m);
	}
	free(done);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
}

/* Through a consumer handle of the group that never subscribes, not the
 * admin ListConsumerGroupOffsets: librdkafka 2.8 dereferences the admin
 * handle's NULL consumer group when that call's OffsetFetch answers
 * NOT_COORDINATOR (librdkafka #5040; docs/internals/monitor.md). */
int64_t tk_committed(const tk_cluster_t *c, const char *group, const char *topic, int partition)
{
	rd_kafka_conf_t *cf = conf(c);
	char err[512];
	rd_kafka_t *rk;
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
	int64_t off = -1;

	tk_conf_set(cf, "group.id", group);
	tk_conf_set(cf, "enable.auto.commit", "false");
	if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, cf, err, sizeof(err))))
		tk_fail("consumer of group %s: %s", group, err);
	rd_kafka_topic_partition_list_add(tp, topic, partition);
	/* A coordinator still loading answers with a retriable error. */
	for (int attempt = 0; attempt < 30; attempt++) {
		e = rd_kafka_committed(rk, tp, 10000);
		if (!e)
			e = tp->elems[0].err;
		if (e != RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS &&
		    e != RD_KAFKA_RESP_ERR_NOT_COORDINATOR &&
		    e != RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE &&
		    e != RD_KAFKA_RESP_ERR__TIMED_OUT)
			break;
		usleep(500 * 1000);
	}
	if (e)
		tk_fail("committed offset of group %s on %s[%d]: %s", group, topic, partition,
			rd_kafka_err2str(e));
	off = tp->elems[0].offset;
	rd_kafka_topic_partition_list_destroy(tp);
	rd_kafka_destroy(rk);
	return off < 0 ? -1 : off;
}

void tk_set_topic_config(const tk_cluster_t *c, const char *topic, const char *name,
			 const char *value)
{
	rd_kafka_t *rk = tk_admin(c);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
	rd_kafka_error_t *e = rd_kafka_ConfigResource_add_incremental_config(
		res, name,
		value ? RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET : RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE,
		value);
	size_t n;

	if (e)
		tk_fail("config %s: %s", name, rd_kafka_error_string(e));
	rd_kafka_IncrementalAlterConfigs(rk, &res, 1, NULL, q);
	rd_kafka_event_t *ev = wait_ev(q, "IncrementalAlterConfigs");
	const rd_kafka_ConfigResource_t **rs = rd_kafka_IncrementalAlterConfigs_result_resources(
		rd_kafka_event_IncrementalAlterConfigs_result(ev), &n);
	if (n == 1 && rd_kafka_ConfigResource_error(rs[0]))
		tk_fail("IncrementalAlterConfigs %s: %s", topic,
			rd_kafka_ConfigResource_error_string(rs[0]));
	rd_kafka_event_destroy(ev);
	rd_kafka_ConfigResource_destroy(res);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

char *tk_read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = km_malloc((size_t)n + 1);
	size_t got = fread(buf, 1, (size_t)n, fp);
	buf[got] = '\0';
	if (len)
		*len = got;
	fclose(fp);
	return buf;
}

/* ---- running kmigrate on a plan ------------------------------------------ */

char *tk_plan(const tk_cluster_t *src, const tk_cluster_t *tgt, const char *dirname,
	      const char *migration, const char *include, const char *extra)
{
	char *dir = tk_tmpdir(dirname);
	char *text = km_asprintf("migration: %s\nsource:\n  bootstrap: %s\ntarget:\n  bootstrap: "
				 "%s\ntopics:\n  include: [%s]\n%s",
				 migration, src->bootstrap, tgt->bootstrap, include,
				 extra ? extra : "");
	char *p = tk_write_file(dir, "migration.yaml", text);
	free(text);
	free(dir);
	return p;
}

void tk_km(const char *plan, const char *cmd, const char *a1, const char *a2, int want_rc,
	   char **errp)
{
	char *out, *err;
	const char *argv[] = {tk_kmigrate(), cmd, "-p", plan, a1, a1 ? a2 : NULL, NULL};
	int rc = tk_run(&out, &err, argv);
	if (rc != want_rc)
		tk_fail("kmigrate %s %s%s%s: exit %d (want %d): %s%s", cmd, a1 ? a1 : "",
			a2 ? " " : "", a2 ? a2 : "", rc, want_rc, out, err);
	free(out);
	if (errp)
		*errp = err;
	else
		free(err);
}

long tk_catch_up(const char *plan, int timeout_ms, ...)
{
	const char *argv[32] = {tk_kmigrate(), "replicate", "-p", plan, "--until-caught-up"};
	int n = 5;
	long rss = 0;
	va_list ap;
	const char *a;

	va_start(ap, timeout_ms);
	while ((a = va_arg(ap, const char *)) && n < 31)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	char *log = km_asprintf("%s.log", plan);
	int rc = tk_wait_exit_rss(tk_spawn(argv, log), timeout_ms, &rss);
	if (rc != 0) {
		char *cmd = km_asprintf("tail -20 %s >&2", log);
		(void)!system(cmd);
		free(cmd);
		tk_fail("replicate --until-caught-up exit %d (log %s)", rc, log);
	}
	free(log);
	return rss;
}

int64_t tk_mono_ms(void)
{
	return now_ms();
}

json_t *tk_topic_config_sources(const tk_cluster_t *c, const char *topic)
{
	rd_kafka_t *rk = tk_admin(c);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
	json_t *out = json_object();
	size_t n, m;

	rd_kafka_DescribeConfigs(rk, &res, 1, NULL, q);
	rd_kafka_event_t *ev = wait_ev(q, "DescribeConfigs");
	const rd_kafka_ConfigResource_t **rs =
		rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
	if (n != 1 || rd_kafka_ConfigResource_error(rs[0]))
		tk_fail("DescribeConfigs %s: %s", topic,
			n ? rd_kafka_ConfigResource_error_string(rs[0]) : "no result");
	const rd_kafka_ConfigEntry_t **e = rd_kafka_ConfigResource_configs(rs[0], &m);
	for (size_t i = 0; i < m; i++) {
		const char *v = rd_kafka_ConfigEntry_value(e[i]);
		json_object_set_new(out, rd_kafka_ConfigEntry_name(e[i]),
				    json_pack("{s:o, s:s}", "value", v ? json_string(v) : json_null(),
					      "source",
					      km_kafka_config_source_name(rd_kafka_ConfigEntry_source(e[i]))));
	}
	rd_kafka_event_destroy(ev);
	rd_kafka_ConfigResource_destroy(res);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
	return out;
}

struct tk_writer_s {
	rd_kafka_t *rk;
	char *topic;
	pthread_t thr;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;
	tk_writer_stats_t st;
	int64_t seq;    /* the next record's number, across re-points */
	char **props;   /* the caller's extra properties, for a re-point */
	int64_t *acked; /* the numbers of the acknowledged records */
	size_t nacked, capacked;
	bool halted;    /* the thread joined and the producer flushed */
};

/* Stops sending and waits up to timeout_ms for every record in flight to
 * end (acknowledged or failed); idempotent. */
static void writer_halt(tk_writer_t *w, int timeout_ms)
{
	if (w->halted)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thr, NULL);
	rd_kafka_flush(w->rk, timeout_ms);
	w->halted = true;
}

static void writer_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	tk_writer_t *w = opaque;

	(void)rk;
	pthread_mutex_lock(&w->lock);
	if (m->err) {
		w->st.failed++;
		w->st.last_err = m->err;
	} else {
		w->st.acked++;
		w->st.last_ack_offset = m->offset;
		if (w->nacked == w->capacked) {
			w->capacked = w->capacked ? 2 * w->capacked : 256;
			w->acked = realloc(w->acked, w->capacked * sizeof(*w->acked));
		}
		w->acked[w->nacked++] = (int64_t)(intptr_t)m->_private;
	}
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void *writer_main(void *arg)
{
	tk_writer_t *w = arg;
	char val[64];

	for (;; w->seq++) {
		pthread_mutex_lock(&w->lock);
		int stop = w->stop;
		pthread_mutex_unlock(&w->lock);
		if (stop)
			break;
		snprintf(val, sizeof(val), "w-%lld", (long long)w->seq);
		if (!rd_kafka_producev(w->rk, RD_KAFKA_V_TOPIC(w->topic),
				       RD_KAFKA_V_VALUE(val, strlen(val)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				       RD_KAFKA_V_OPAQUE((void *)(intptr_t)w->seq),
				       RD_KAFKA_V_END)) {
			pthread_mutex_lock(&w->lock);
			w->st.sent++;
			pthread_mutex_unlock(&w->lock);
		}
		rd_kafka_poll(w->rk, 20);
	}
	return NULL;
}

static rd_kafka_t *writer_producer(tk_writer_t *w, const tk_cluster_t *c)
{
	rd_kafka_conf_t *cf = conf(c);
	rd_kafka_t *rk;
	char err[256];

	set(cf, "enable.idempotence", "true");
	set(cf, "acks", "all");
	set(cf, "linger.ms", "5");
	set(cf, "message.timeout.ms", "30000");
	for (char **p = w->props; p && p[0]; p += 2)
		set(cf, p[0], p[1]);
	rd_kafka_conf_set_dr_msg_cb(cf, writer_dr);
	rd_kafka_conf_set_opaque(cf, w);
	if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, cf, err, sizeof(err))))
		tk_fail("writer producer: %s", err);
	return rk;
}

tk_writer_t *tk_writer_start(const tk_cluster_t *c, const char *topic, const char **props)
{
	tk_writer_t *w = calloc(1, sizeof(*w));
	size_t n = 0;

	while (props && props[n])
		n++;
	w->props = calloc(n + 1, sizeof(*w->props));
	for (size_t i = 0; i < n; i++)
		w->props[i] = strdup(props[i]);
	w->rk = writer_producer(w, c);
	w->topic = strdup(topic);
	w->st.last_ack_offset = -1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (pthread_create(&w->thr, NULL, writer_main, w))
		tk_fail("writer thread: %s", strerror(errno));
	return w;
}

void tk_writer_repoint(tk_writer_t *w, const tk_cluster_t *c)
{
	/* What the old cluster still holds in flight ends here, acknowledged
	 * or failed (a fenced source refuses it at once). */
	writer_halt(w, 30000);
	rd_kafka_destroy(w->rk);
	w->rk = writer_producer(w, c);
	w->stop = 0;
	w->halted = false;
	if (pthread_create(&w->thr, NULL, writer_main, w))
		tk_fail("writer thread: %s", strerror(errno));
}

void tk_writer_stats(tk_writer_t *w, tk_writer_stats_t *st)
{
	char buf[256];

	pthread_mutex_lock(&w->lock);
	*st = w->st;
	pthread_mutex_unlock(&w->lock);
	st->fatal = rd_kafka_fatal_error(w->rk, buf, sizeof(buf));
}

bool tk_writer_wait(tk_writer_t *w, int64_t acked, int64_t failed, int timeout_ms)
{
	int64_t deadline = tk_mono_ms() + timeout_ms;
	bool ok;

	pthread_mutex_lock(&w->lock);
	while (!(ok = w->st.acked >= acked && w->st.failed >= failed) && tk_mono_ms() < deadline) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&w->cond, &w->lock, &ts);
	}
	pthread_mutex_unlock(&w->lock);
	return ok;
}

void tk_writer_stop(tk_writer_t *w)
{
	writer_halt(w, 10000);
	rd_kafka_destroy(w->rk);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	for (char **p = w->props; p && *p; p++)
		free(*p);
	free(w->props);
	free(w->acked);
	free(w->topic);
	free(w);
}

void tk_writer_assert_fenced(tk_writer_t *w, const tk_cluster_t *c, const char *topic,
			     rd_kafka_resp_err_t want, int timeout_ms)
{
	tk_writer_stats_t s1, s2;
	int64_t hwm1 = tk_total_hwm(c, topic);

	tk_writer_stats(w, &s1);
	if (!tk_writer_wait(w, 0, s1.failed + 10, timeout_ms))
		tk_fail("the writer of '%s' reported no failures while fenced", topic);
	tk_writer_stats(w, &s2);
	if (s2.acked != s1.acked)
		tk_fail("%lld records to '%s' were acknowledged after the fence was proven",
			(long long)(s2.acked - s1.acked), topic);
	if (s2.last_err != want)
		tk_fail("the fenced writer of '%s' got %s, want %s", topic,
			rd_kafka_err2name(s2.last_err), rd_kafka_err2name(want));
	if (tk_total_hwm(c, topic) != hwm1)
		tk_fail("'%s' took records while fenced: high watermarks %lld -> %lld", topic,
			(long long)hwm1, (long long)tk_total_hwm(c, topic));
}

typedef struct seqs_s {
	int64_t *v;
	size_t n, cap;
} seqs_t;

/* The writer's record number of m ("w-<seq>"), appended to the seqs_t;
 * other records (a test's own) are not the writer's and are skipped. */
static void seq_cb(void *opaque, const rd_kafka_message_t *m)
{
	seqs_t *s = opaque;
	char v[64];
	long long seq;

	snprintf(v, sizeof(v), "%.*s", (int)(m->len < 63 ? m->len : 63),
		 m->payload ? (const char *)m->payload : "");
	if (sscanf(v, "w-%lld", &seq) != 1)
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 256;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = seq;
}

/* Every partition of topic on c, read_committed from the beginning to its
 * end: the writer's record numbers in each partition, in log order. */
static void writer_read(const tk_cluster_t *c, const char *topic, int64_t ***seqs, size_t **ns,
			int *np)
{
	int parts = tk_partitions(c, topic);
	*seqs = calloc((size_t)parts, sizeof(**seqs));
	*ns = calloc((size_t)parts, sizeof(**ns));
	*np = parts;
	for (int p = 0; p < parts; p++) {
		seqs_t s = {0};
		read_partition(c, topic, p, true, seq_cb, &s);
		(*seqs)[p] = s.v;
		(*ns)[p] = s.n;
	}
}

void tk_writer_assert_acked_once(tk_writer_t *w, const tk_cluster_t *c, const char *topic)
{
	int64_t **seqs;
	size_t *ns, total = 0;
	int np;

	/* Every acknowledgement is in before the reader looks (a record ends
	 * within message.timeout.ms, 30 s). */
	writer_halt(w, 35000);
	writer_read(c, topic, &seqs, &ns, &np);
	pthread_mutex_lock(&w->lock);
	int64_t max = 0;
	for (int p = 0; p < np; p++)
		for (size_t i = 0; i < ns[p]; i++)
			max = seqs[p][i] > max ? seqs[p][i] : max;
	for (size_t i = 0; i < w->nacked; i++)
		max = w->acked[i] > max ? w->acked[i] : max;
	unsigned char *seen = calloc((size_t)max + 1, 1);
	for (int p = 0; p < np; p++)
		for (size_t i = 0; i < ns[p]; i++) {
			int64_t s = seqs[p][i];
			if (s < 0)
				tk_fail("'%s'[%d] holds w-%lld, which the writer never sent", topic, p,
					(long long)s);
			if (seen[s]++)
				tk_fail("'%s' holds w-%lld twice", topic, (long long)s);
			/* The writer's order, per partition: what one producer
			 * sent to one partition stays in its send order. */
			if (i && seqs[p][i - 1] > s)
				tk_fail("'%s'[%d] holds w-%lld after w-%lld: out of order", topic, p,
					(long long)s, (long long)seqs[p][i - 1]);
			total++;
		}
	for (size_t i = 0; i < w->nacked; i++)
		if (!seen[w->acked[i]])
			tk_fail("w-%lld was acknowledged but is not on '%s' (%zu of the writer's "
				"records are there)",
				(long long)w->acked[i], topic, total);
	pthread_mutex_unlock(&w->lock);
	free(seen);
	for (int p = 0; p < np; p++)
		free(seqs[p]);
	free(seqs);
	free(ns);
}

void tk_acl_delete(const tk_cluster_t *c, rd_kafka_ResourceType_t rt, const char *name,
		   rd_kafka_ResourcePatternType_t pt, const char *principal, const char *host,
		   rd_kafka_AclOperation_t op, rd_kafka_AclPermissionType_t perm)
{
	rd_kafka_t *rk = tk_admin(c);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	char err[256];
	rd_kafka_AclBindingFilter_t *f = rd_kafka_AclBindingFilter_new(rt, name, pt, principal, host,
								       op, perm, err, sizeof(err));
	const rd_kafka_DeleteAcls_result_response_t **res;
	size_t n;

	if (!f)
		tk_fail("acl filter: %s", err);
	rd_kafka_DeleteAcls(rk, &f, 1, NULL, q);
	rd_kafka_event_t *ev = wait_ev(q, "DeleteAcls");
	res = rd_kafka_DeleteAcls_result_responses(rd_kafka_event_DeleteAcls_result(ev), &n);
	for (size_t i = 0; i < n; i++)
		if (rd_kafka_DeleteAcls_result_response_error(res[i]))
			tk_fail("DeleteAcls: %s", rd_kafka_error_string(
							 rd_kafka_DeleteAcls_result_response_error(res[i])));
	rd_kafka_event_destroy(ev);
	rd_kafka_AclBinding_destroy(f);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

void tk_scram_user(const tk_cluster_t *c, const char *user, const char *password)
{
	rd_kafka_t *rk = tk_admin(c);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_UserScramCredentialAlteration_t *a = rd_kafka_UserScramCredentialUpsertion_new(
		user, RD_KAFKA_SCRAM_MECHANISM_SHA_512, 4096, (const unsigned char *)password,
		strlen(password), NULL, 0);
	size_t n;

	rd_kafka_AlterUserScramCredentials(rk, &a, 1, NULL, q);
	rd_kafka_event_t *ev = wait_ev(q, "AlterUserScramCredentials");
	const rd_kafka_AlterUserScramCredentials_result_response_t **res =
		rd_kafka_AlterUserScramCredentials_result_responses(
			rd_kafka_event_AlterUserScramCredentials_result(ev), &n);
	for (size_t i = 0; i < n; i++) {
		const rd_kafka_error_t *e = rd_kafka_AlterUserScramCredentials_result_response_error(res[i]);
		if (e && rd_kafka_error_code(e))
			tk_fail("AlterUserScramCredentials of '%s': %s", user, rd_kafka_error_string(e));
	}
	rd_kafka_event_destroy(ev);
	rd_kafka_UserScramCredentialAlteration_destroy(a);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

void tk_cluster_as(tk_cluster_t *out, const tk_cluster_t *c, const char *user, const char *password)
{
	*out = *c;
	for (int i = 0; out->props[i]; i += 2) {
		if (!strcmp(out->props[i], "sasl.username"))
			out->props[i + 1] = user;
		if (!strcmp(out->props[i], "sasl.password"))
			out->props[i + 1] = password;
	}
}

static int cmp_line(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *tk_acl_lines(const tk_cluster_t *c)
{
	json_t *acls = tk_acls(c), *a;
	size_t n = json_array_size(acls), i, len = 1;
	char **rows = calloc(n + 1, sizeof(*rows)), *out;

	json_array_foreach(acls, i, a) {
		rows[i] = json_dumps(a, JSON_SORT_KEYS | JSON_COMPACT);
		len += strlen(rows[i]) + 1;
	}
	qsort(rows, n, sizeof(*rows), cmp_line);
	out = calloc(1, len);
	for (i = 0; i < n; i++) {
		strcat(out, rows[i]);
		strcat(out, "\n");
		free(rows[i]);
	}
	free(rows);
	json_decref(acls);
	return out;
}

void tk_produce_one(const tk_cluster_t *c, const char *topic, const char *text)
{
	rd_kafka_t *p = tk_producer(c, NULL);
	tk_msg_t m = {.key = text, .value = text, .partition = 0};
	tk_produce(p, topic, &m);
	tk_flush(p);
	rd_kafka_destroy(p);
}


int tk_kmv(char **outp, char **errp, ...)
{
	const char *argv[32] = {tk_kmigrate()};
	char *out, *err;
	va_list ap;
	int n = 1;

	va_start(ap, errp);
	for (const char *a; n < 31 && (a = va_arg(ap, const char *));)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	int rc = tk_run(&out, &err, argv);
	fprintf(stderr, "kmigrate %s: exit %d%s%s", argv[1], rc, *err ? ": " : "\n", err);
	if (outp)
		*outp = out;
	else
		free(out);
	if (errp)
		*errp = err;
	else
		free(err);
	return rc;
}

void tk_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

void tk_ready_for_cutover(const char *plan)
{
	/* Exit 1 is findings (on a source without an authorizer: "ACLs cannot
	 * fence"), which do not stop the migration here; anything else does. */
	const char *argv[] = {tk_kmigrate(), "inventory", "-p", plan, NULL};
	char *out, *err;
	int rc = tk_run(&out, &err, argv);
	if (rc != 0 && rc != 1)
		tk_fail("inventory: exit %d: %s", rc, err);
	free(out);
	free(err);
	tk_km(plan, "plan", NULL, NULL, 0, NULL);
	tk_km(plan, "apply", NULL, NULL, 0, NULL);
	tk_km(plan, "check", NULL, NULL, 0, NULL);
	tk_catch_up(plan, 120000, NULL);
	tk_km(plan, "validate", NULL, NULL, 0, NULL);
	tk_km(plan, "offsets", NULL, NULL, 0, NULL);
}

int tk_km_events(json_t **evsp, const char *env, const char *val, const char *const argv[])
{
	char *out, *err;
	if (env && val)
		setenv(env, val, 1);
	int rc = tk_run(&out, &err, argv);
	if (env && val)
		unsetenv(env);
	json_t *evs = json_array();
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		json_t *j = json_loads(line, 0, NULL);
		if (j)
			json_array_append_new(evs, j);
	}
	/* The command as a reader of the log wants it: no plan path, no --json. */
	fprintf(stderr, "%s", argv[1]);
	for (int i = 2; argv[i]; i++)
		if (strcmp(argv[i], "--json") && strcmp(argv[i], "-p") && strcmp(argv[i - 1], "-p"))
			fprintf(stderr, " %s", argv[i]);
	fprintf(stderr, "%s%s: exit %d%s%s\n", val ? " with " : "", val ? val : "", rc,
		*err ? ": " : "", err);
	free(out);
	free(err);
	if (evsp)
		*evsp = evs;
	else
		json_decref(evs);
	return rc;
}

const char *tk_event_state(const json_t *evs, const char *step)
{
	const char *st = NULL;
	json_t *e;
	size_t i;
	json_array_foreach(evs, i, e) {
		const char *s = json_string_value(json_object_get(e, "step"));
		const char *x = json_string_value(json_object_get(e, "state"));
		if (s && !strcmp(s, step) && x && strcmp(x, "start"))
			st = x;
	}
	return st;
}

/* The facts of kind in journal (the caller decrefs). */
static json_t *journal_facts(const char *journal, const char *kind)
{
	km_journal_t *jr = NULL;
	json_t *fs = NULL;
	char errstr[512];

	if (km_journal_open(journal, 0, &jr, errstr, sizeof(errstr)) ||
	    km_journal_facts(jr, 0, kind, &fs, errstr, sizeof(errstr)))
		tk_fail("journal %s: %s", journal, errstr);
	km_journal_close(jr);
	return fs;
}

int tk_journal_count(const char *journal, const char *kind, const char *prefix)
{
	json_t *fs = journal_facts(journal, kind), *f;
	size_t i;
	int n = 0;
	json_array_foreach(fs, i, f)
		n += !strncmp(json_string_value(json_object_get(f, "subject")), prefix, strlen(prefix));
	json_decref(fs);
	return n;
}

json_t *tk_journal_body(const char *journal, const char *kind, const char *subject)
{
	json_t *fs = journal_facts(journal, kind), *f, *body = NULL;
	size_t i;
	json_array_foreach(fs, i, f)
		if (!body && !strcmp(json_string_value(json_object_get(f, "subject")), subject))
			body = json_incref(json_object_get(f, "body"));
	json_decref(fs);
	return body;
}
