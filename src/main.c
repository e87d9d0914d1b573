/*
 * main.c -- the kmigrate command table and entry point.
 *
 * Exit codes: 0 done or GO, 1 NO-GO or findings, 2 usage or plan error,
 * 3 cluster or IO failure.  Each command lives in cmd_<name>.c.
 */
#include <librdkafka/rdkafka.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#ifdef KM_MIMALLOC
#include <mimalloc.h>
#endif
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const cmd_t commands[] = {
	{"init", cmd_init, 0, "--source HOST:PORT --target HOST:PORT [-o FILE]",
	 "write a commented starter plan from discovery",
	 "Connects to both clusters (plaintext), lists their topics and consumer\n"
	 "groups, and writes a starter migration.yaml with every section of the\n"
	 "plan commented.  Without -o the plan goes to stdout.  An existing file\n"
	 "is never overwritten.\n"},
	{"inventory", cmd_inventory, CLI_NEED_PLAN | CLI_NEED_JOURNAL_PATH,
	 "-p PLAN [--cluster source|target] [--diff] [--no-sample] [--sample N]\n"
	 "       [--sample-partitions N] [--sample-budget MS]",
	 "discover the estate: topics, configs, ACLs, groups, users, quotas, risk",
	 "Reads the cluster (the source by default) and prints cluster id,\n"
	 "brokers and their API version ranges, the topics in scope with their\n"
	 "partitions and every config with its value and source, ACLs, consumer\n"
	 "groups with members and lag, SCRAM users and client quotas.  The plan's\n"
	 "declared items (producers, consumers, connectors, dashboards, alerts,\n"
	 "runbooks) are merged in and every item without an owner or a validation\n"
	 "method is a finding.  Each topic gets a migration risk class with its\n"
	 "reasons.  The snapshot is saved in the journal; --diff compares it with\n"
	 "the previous snapshot of the same cluster.\n"
	 "The tail of each partition is sampled (--sample N records, default 200)\n"
	 "for transaction markers and record sizes, at most --sample-partitions\n"
	 "partitions (default 1000, 0 = all), round-robin over the topics; the\n"
	 "others are listed as not sampled, with why; --sample-budget bounds the\n"
	 "whole read (default 20000 ms).\n"
	 "Exit 0 when nothing needs attention, 1 when there are findings.\n"},
	{"check", cmd_check, CLI_NEED_PLAN | CLI_NEED_JOURNAL_PATH | CLI_NEED_STOP,
	 "-p PLAN [--topic-bytes N] [--timeout S]",
	 "compatibility gate: canary produce/consume on the target",
	 "Runs canaries against the target with the plan's security settings:\n"
	 "connectivity and authentication, broker API versions against what the\n"
	 "declared clients need, idempotent and transactional produce, every\n"
	 "compression codec, records at and above max.message.bytes, a consumer\n"
	 "group with cooperative-sticky rebalancing and commits, and the admin\n"
	 "operations the migration relies on.  Each check is journaled as\n"
	 "evidence.  Exit 0 on GO, 1 on NO-GO; unknown counts as NO-GO.\n"},
	{"plan", cmd_plan, CLI_NEED_PLAN | CLI_NEED_JOURNAL_PATH, "-p PLAN",
	 "target design: the reviewable diff of what apply would do",
	 "Reads both clusters and designs the target: topics under their mapped\n"
	 "names with the source's partition count (replication factor capped at\n"
	 "the target's brokers), every topic override copied and every source\n"
	 "broker default that differs from the target's pinned so that effective\n"
	 "configs match, configs the target no longer accepts listed with the\n"
	 "reason, ACLs one for one with mapped names, SCRAM users and quotas as\n"
	 "manual items.  Prints + create, ~ change, ! blocked; saves the design in\n"
	 "the journal.  Exit 1 when something is blocked.\n"},
	{"apply", cmd_apply, CLI_NEED_PLAN | CLI_NEED_JOURNAL_PATH | CLI_NEED_JOURNAL,
	 "-p PLAN [--dry-run]",
	 "make the target match the saved design",
	 "Compares the design saved by `kmigrate plan` with the target as it is\n"
	 "now and performs the difference: creates topics and ACLs, sets configs.\n"
	 "Never deletes or shrinks anything; one atomic request per object; stops\n"
	 "at the first blocked object.  Every change is journaled with its before\n"
	 "and after.  A second run changes nothing and says so.  --dry-run prints\n"
	 "what plan prints.\n"},
	{"replicate", cmd_replicate,
	 CLI_NEED_PLAN | CLI_NEED_JOURNAL_PATH | CLI_NEED_ENDPOINTS | CLI_NEED_STOP,
	 "-p PLAN [--until-caught-up] [--tasks N] [--max-bytes-per-sec B] [--max-buffer-mb M]\n"
	 "       [--instance ID | --no-instance] [--group-protocol classic|consumer]\n"
	 "       [--reverse --wave W] [--metrics-addr HOST:PORT]",
	 "exactly-once copy with an exact offset map; run N of them to scale out",
	 "Copies the in-scope topics to the target, same partition numbers, keys,\n"
	 "values, headers, timestamps and tombstones byte for byte; aborted source\n"
	 "transactions are not copied (read_committed).  Every target transaction\n"
	 "carries the data, the offset-map runs and the progress, so a process\n"
	 "killed at any moment resumes with nothing lost or duplicated.  Several\n"
	 "processes share the tasks through a consumer group on the target; a new\n"
	 "owner fences a zombie.  Runs until SIGINT/SIGTERM, or with\n"
	 "--until-caught-up until every partition reached the source's high\n"
	 "watermark seen at start.  Stops loudly on records lost to retention,\n"
	 "a vanished topic, a partition-count mismatch or missing ACLs.\n"
	 "Each process joins with a group.instance.id (--instance, default\n"
	 "<hostname>-<n>, n the lowest free on this host), so one restarted after\n"
	 "a crash gets its tasks back at once; --max-bytes-per-sec is per process.\n"
	 "--reverse --wave W copies what the target got since wave W's switch back\n"
	 "onto the source topics, exactly once, its map and state on the source.\n"
	 "--metrics-addr (or monitoring.replicate_metrics_addr) serves /metrics in the\n"
	 "Prometheus format: lag per partition, records, bytes, transactions,\n"
	 "errors by code, tasks owned (docs/metrics.md).\n"},
	{"offsets", cmd_offsets, CLI_NEED_PLAN | CLI_NEED_JOURNAL_PATH | CLI_NEED_SOURCE | CLI_NEED_TARGET,
	 "-p PLAN [--commit] [--group G] | map -p PLAN --topic T --partition P [--reverse]",
	 "translate consumer-group offsets, prove them by reading, commit them",
	 "For every consumer group in scope (declared in the plan or found on the\n"
	 "source), translates each committed source offset c to the target offset\n"
	 "of the first copied record with source offset >= c, from the exact\n"
	 "offset map; a c beyond what has been replicated is 'not yet\n"
	 "translatable (lag N)', never guessed.  Each translated position is\n"
	 "proven by reading the record at both positions and comparing digests;\n"
	 "the proof goes into the journal.  Restart policies from the plan\n"
	 "(earliest, latest, timestamp:<ISO-8601>) are resolved on the target.\n"
	 "Dry run by default; --commit writes the offsets to the target groups\n"
	 "with AlterConsumerGroupOffsets and refuses, exit 1, while a target group\n"
	 "has active members.  Re-runnable.\n"
	 "`offsets map` prints the runs of one source partition.\n"},
	{"validate", cmd_validate,
	 CLI_NEED_PLAN | CLI_NEED_JOURNAL_PATH | CLI_NEED_ENDPOINTS | CLI_NEED_STOP,
	 "-p PLAN [--sample P] [--max-mismatches-shown N] [--workers N]",
	 "compare source and target record by record over the replicated range",
	 "Reads the offset map once (the snapshot), then streams every in-scope\n"
	 "partition on both clusters (read_committed) and compares per-record XXH3\n"
	 "digests: source record o must be at its exact target offset.  Reports\n"
	 "the first N mismatches per partition with both offsets and what differs\n"
	 "(key, value, header, timestamp, missing, extra, reordered), per-key\n"
	 "ordering where the plan's rule says strict or key, and for compacted\n"
	 "topics the latest value per key.  Partitions with nothing replicated are\n"
	 "NO-GO.  --sample P digests only records whose source offset hashes below\n"
	 "P% and labels the verdict sampled.  The verdict (gates.max_mismatches)\n"
	 "and the facts are journaled.  Exit 0 on GO, 1 on NO-GO.\n"},
	{"gate", cmd_gate, CLI_NEED_PLAN | CLI_NEED_JOURNAL | CLI_NEED_SOURCE | CLI_NEED_TARGET,
	 "-p PLAN [NAME] [--wave W]",
	 "evaluate a gate: GO / NO-GO with threshold, measurement, evidence, owner",
	 "Evaluates gate NAME (design, compatibility, replication, validation,\n"
	 "offsets, rollback-ready, or cutover = all of them plus the inventory's\n"
	 "owners and validation methods; default cutover) for the topics of wave W\n"
	 "(default: every topic in scope).  Each criterion shows the plan's\n"
	 "threshold, the measured value, the evidence (journal run and fact, when,\n"
	 "by which command, or measured live), the owner and the verdict.  Unknown\n"
	 "is NO-GO; evidence older than gates.max_evidence_age is NO-GO.  The\n"
	 "verdict is journaled as fact gate.NAME.  Exit 0 on GO, 1 on NO-GO.\n"},
	{"cutover", cmd_cutover,
	 CLI_NEED_PLAN | CLI_NEED_JOURNAL | CLI_NEED_SOURCE | CLI_NEED_TARGET | CLI_NEED_STOP |
		 CLI_NEED_ENDPOINTS,
	 "-p PLAN --wave W [--dry-run] [--drain-timeout S] [--lock-wait S] | --verify\n"
	 "       [--verify-window S] [--metrics-addr HOST:PORT]",
	 "cut a wave over: gate, fence, drain, validate, offsets, authority, switch",
	 "Runs, or resumes after a crash, wave W's cutover, each step journaled\n"
	 "as fact cutover.step with its evidence before the next starts:\n"
	 "gate: `gate cutover` for the wave is GO and every earlier wave is\n"
	 "complete; fence: the wave's source topics refuse writes (cutover.fence\n"
	 "acl: DENY WRITE for the writers the inventory's ACLs show, super users\n"
	 "covered by the config fence or an external owner; config:\n"
	 "max.message.bytes=0; plan and exact inverse journaled before it is\n"
	 "applied, then proven by canary produces; external: its owner's);\n"
	 "drain: LSO = HWM on every partition, HWMs still for\n"
	 "cutover.quiet_period, and the running replicator's committed progress\n"
	 "at them (--drain-timeout, default 300 s); validate: the wave's topics,\n"
	 "full; offsets: the wave's groups committed on the target; authority:\n"
	 "authority = target recorded on the target, the target guard lifted;\n"
	 "switch: the instructions\n"
	 "for each client's owner (new bootstrap, target topics, validation).\n"
	 "A re-run skips done steps.  One cutover per migration at a time (a\n"
	 "lock on the target, waited for --lock-wait S, default 15).  --verify,\n"
	 "after the switch, watches the\n"
	 "wave for --verify-window S (default cutover.verify_window, 30 s): the\n"
	 "target takes writes, the groups consume there without growing lag, the\n"
	 "source stays at its drained ends.  --dry-run shows what each step would\n"
	 "change.  --metrics-addr (or monitoring.cutover_metrics_addr) serves each step's\n"
	 "state on /metrics (kmigrate_cutover_step_done).\n"
	 "Exit 0 done (--verify: GO), 1 NO-GO, 2 usage, 3 cluster or\n"
	 "journal error.\n"},
	{"rollback", cmd_rollback,
	 CLI_NEED_PLAN | CLI_NEED_JOURNAL | CLI_NEED_SOURCE | CLI_NEED_TARGET | CLI_NEED_STOP |
		 CLI_NEED_ENDPOINTS,
	 "-p PLAN --wave W [--dry-run] [--drain-timeout S]",
	 "return a wave's write authority to the source (resumable)",
	 "Rolls back wave W's cutover, each step journaled as fact rollback.step\n"
	 "before the next starts; a re-run after a crash resumes.  assess: the\n"
	 "wave's authority (the target's authority topic) must still be the\n"
	 "source; unfence: the journaled inverse of the journaled fence plan is\n"
	 "applied and the source read back until its ACLs or configs are as they\n"
	 "were (an external fence is its owner's to lift); reset: the cutover\n"
	 "attempt is closed, and the next `cutover --wave W` starts at its gate.\n"
	 "After the authority moved: assess, fence-target (the target's wave\n"
	 "topics fenced, plan journaled first), drain-target, unfence (the\n"
	 "source), reverse (what the target got since the switch copied back,\n"
	 "the source checked for foreign records), offsets-back (groups\n"
	 "translated back, proven, committed on the source), authority-source,\n"
	 "reset (with the switch-back instructions).  Refused while a forward\n"
	 "replicator runs.  --dry-run shows what each step would change.\n"
	 "Exit 0 when rolled back (or nothing to roll back), 1 NO-GO.\n"},
	{"status", cmd_status, CLI_NEED_PLAN | CLI_NEED_JOURNAL, "-p PLAN",
	 "show what the journal knows so far, and each topic's authority",
	 "Prints the journal's commands and their last results, the snapshots\n"
	 "it holds, the open findings, each cutover wave's last journaled step,\n"
	 "and each topic's write authority as the target's authority topic says\n"
	 "(the only cluster it contacts).  Exit 3 when the target cannot be read:\n"
	 "the authority is then printed as unknown, never guessed.\n"},
	{"report", cmd_report, 0, "-p PLAN -o FILE [--journal FILE]",
	 "write the journal's evidence as one self-contained HTML file",
	 "Renders the journal alone as one HTML page an auditor reads top to\n"
	 "bottom: the plan and its owners, the inventory with risk classes, the\n"
	 "design diff and what apply changed, every gate verdict with its\n"
	 "criteria and evidence, replication throughput and lag over time (inline\n"
	 "SVG), validation with the first mismatches, the offset translation\n"
	 "table with its proofs, cutover and rollback steps, open findings, and\n"
	 "every other journaled fact.  No cluster is contacted; the page loads\n"
	 "nothing from the network.  --journal FILE reads a journal copied\n"
	 "elsewhere, without the plan.  -o - writes to stdout.\n"
	 "Exit 0 when written, 2 usage, 3 journal or file error.\n"},
	{"monitor", cmd_monitor,
	 CLI_NEED_PLAN | CLI_NEED_JOURNAL_PATH | CLI_NEED_SOURCE | CLI_NEED_TARGET | CLI_NEED_STOP |
		 CLI_NEED_ENDPOINTS,
	 "-p PLAN [--metrics-addr HOST:PORT] [--interval S] [--exit-on-trigger] [--once]\n"
	 "       | --emit-rules",
	 "watch both clusters, serve /metrics, evaluate the rollback triggers",
	 "Samples both clusters every monitoring.interval (--interval, default\n"
	 "10 s): the plan's groups' lag on source and target, each topic's high\n"
	 "watermark growth on both, the replication lag from the committed\n"
	 "progress, each topic's authority and fence, each gate's verdict, and\n"
	 "the stale readers (a cut-over wave's groups still consuming from the\n"
	 "source, with owners).  Serves them on /metrics (--metrics-addr or\n"
	 "monitoring.metrics_addr; docs/metrics.md).  Evaluates\n"
	 "rollback.triggers as alerting rules (value, comparison, for:); an\n"
	 "unknown value counts as the condition holding.  A firing is journaled\n"
	 "with its evidence and printed with the rollback command; with\n"
	 "rollback.automatic the wave's rollback runs here.  Samples are\n"
	 "journaled as evidence, downsampled.  --once takes one sample.\n"
	 "--emit-rules prints the triggers as Prometheus alerting rules.\n"
	 "Exit 0 when stopped, 4 when a trigger fired with --exit-on-trigger,\n"
	 "2 plan or usage error, 3 cluster or IO failure (a port in use).\n"},
	{"schemas", cmd_schemas, CLI_NEED_PLAN | CLI_NEED_JOURNAL_PATH,
	 "-p PLAN [--dry-run] [--inventory]",
	 "move schema-registry subjects with their IDs and versions; prove it",
	 "Reads both registries (source.schema_registry_url, target.schema_registry_url,\n"
	 "Confluent-compatible API) and copies every subject's versions to the\n"
	 "target keeping IDs and versions (Apicurio target: its admin import;\n"
	 "others: IMPORT mode with explicit id and version), carries compatibility\n"
	 "levels explicitly, then proves every source ID resolves on the target to\n"
	 "the same canonical schema.  An ID the target holds with another schema is\n"
	 "a collision: NO-GO unless the plan says schemas.ids: rewrite (subjects are\n"
	 "then registered with the target's IDs and replicate rewrites the ID in\n"
	 "every wire-format record).  --dry-run writes nothing; --inventory prints\n"
	 "both registries.  Journaled as fact `schemas`.  Exit 0 GO, 1 NO-GO,\n"
	 "3 a registry unreachable (nothing written).\n"},
};
#define NCOMMANDS (int)(sizeof(commands) / sizeof(commands[0]))

static const cmd_t *find_command(const char *name)
{
	for (int i = 0; i < NCOMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: kmigrate [--version] [--help] COMMAND [OPTIONS]\n\n"
		"Production-safe Kafka cluster-to-cluster migration.\n\n"
		"Commands:\n");
	for (int i = 0; i < NCOMMANDS; i++)
		fprintf(fp, "  %-10s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(fp,
		"\nCommon options: -p/--plan FILE (default ./migration.yaml), "
		"--json, -v/--verbose\n"
		"Exit codes: 0 ok/GO, 1 NO-GO or findings, 2 usage or plan "
		"error, 3 cluster or IO failure,\n"
		"4 a rollback trigger fired (monitor --exit-on-trigger).\n"
		"See `kmigrate help COMMAND`.\n");
}

static void version(void)
{
#ifdef KM_MIMALLOC
	/* Whether malloc() really is mimalloc's (the library linked ahead of
	 * libc): a block from malloc() lies in its heap. */
	void *probe = malloc(64);
	int v = mi_version();
	printf("kmigrate %s (librdkafka %s, mimalloc %d.%d.%d%s)\n", KM_VERSION,
	       rd_kafka_version_str(), v / 100, v / 10 % 10, v % 10,
	       mi_is_in_heap_region(probe) ? "" : ", NOT replacing malloc");
	free(probe);
#else
	printf("kmigrate %s (librdkafka %s, the C library's malloc)\n", KM_VERSION,
	       rd_kafka_version_str());
#endif
}

int main(int argc, char **argv)
{
	cli_t cli = {0};
	const cmd_t *cmd;
	int rc;

#ifdef __GLIBC__
	/* librdkafka and the replication tasks run many threads; glibc would
	 * give each its own malloc arena and the footprint would follow the
	 * thread count instead of the configured buffers. */
	mallopt(M_ARENA_MAX, 2);
#endif

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		version();
		return 0;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "help")) {
		if (argc < 3) {
			usage(stdout);
			return 0;
		}
		if (!(cmd = find_command(argv[2]))) {
			fprintf(stderr,
				"kmigrate: unknown command '%s' (see `kmigrate "
				"--help`)\n",
				argv[2]);
			return 2;
		}
		cli_print_help(cmd, stdout);
		return 0;
	}
	if (!(cmd = find_command(argv[1]))) {
		fprintf(stderr,
			"kmigrate: unknown command '%s' (see `kmigrate --help`)\n",
			argv[1]);
		return 2;
	}
	cli.cmd = cmd;
	cli.needs = cmd->needs;
	cli.plan_path = "migration.yaml";
	rc = cmd->fn(&cli, argc - 1, argv + 1);
	cli_release(&cli);
	return rc;
}
