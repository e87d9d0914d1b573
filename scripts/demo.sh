#!/usr/bin/env bash
# make demo: two real local clusters (Kafka 3.9 source, 4.3 target), a small
# realistic estate on the source, and every kmigrate command that exists so
# far run against it, as a user would see it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
km=$top/build/kmigrate
kc=$top/tests/cluster/kafka-cluster
sr=$top/tests/cluster/schema-registry
cw=$top/tests/cluster/connect-worker
demo=$top/demo
seed_pid=
repl_pid=
bg_pids=

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" | sed "s|$top/||g"; "$@"; }
# Every background process the demo started stops with it (the clusters
# stay, by design).
cleanup() {
	for p in $bg_pids $repl_pid $seed_pid; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	true
}
trap cleanup EXIT

step "Starting two fresh local clusters: source Kafka 3.9 on 19092, target Kafka 4.3 on 29092"
"$kc" stop demo-source --wipe >/dev/null 2>&1 || true
"$kc" stop demo-target --wipe >/dev/null 2>&1 || true
"$kc" start demo-source --version 3.9 --port 19092 --authorizer
"$kc" start demo-target --version 4.3 --port 29092 --authorizer

step "Starting two schema registries (Apicurio Registry from Maven Central, in-memory): source on 18081, target on 28081"
"$sr" stop demo-sr-source --wipe >/dev/null 2>&1 || true
"$sr" stop demo-sr-target --wipe >/dev/null 2>&1 || true
"$sr" start demo-sr-source --port 18081
"$sr" start demo-sr-target --port 28081

step "Starting a Kafka Connect worker beside each cluster (ConnectDistributed from the same Maven jars): source on 18083, target on 28083"
"$cw" stop demo-connect-source --wipe >/dev/null 2>&1 || true
"$cw" stop demo-connect-target --wipe >/dev/null 2>&1 || true
"$cw" start demo-connect-source --bootstrap 127.0.0.1:19092 --port 18083 --version 3.9
"$cw" start demo-connect-target --bootstrap 127.0.0.1:29092 --port 28083 --version 4.3

step "Seeding the source: orders (headers, custom configs), payments (transactions), customers (compacted), audit.log (large records), ACLs, three consumer groups"
rm -rf "$demo" && mkdir -p "$demo"
"$top/build/tests/kmtool" seed 127.0.0.1:19092 >"$demo/seed.log" 2>&1 &
seed_pid=$!
for _ in $(seq 1 600); do
	grep -q '^seeded' "$demo/seed.log" 2>/dev/null && break
	kill -0 "$seed_pid" 2>/dev/null || { cat "$demo/seed.log"; exit 1; }
	sleep 0.1
done
cat "$demo/seed.log"
cp "$top/examples/demo.yaml" "$demo/migration.yaml"

step "A FileStreamSink connector on the source Connect archives orders to demo/orders-archive.txt"
jq -n --arg f "$demo/orders-archive.txt" '{"connector.class": "FileStreamSink", "tasks.max": "1", topics: "orders", file: $f}' |
	curl -sf -X PUT -H 'Content-Type: application/json' --data @- \
		http://127.0.0.1:18083/connectors/orders-archive/config >/dev/null
for _ in $(seq 1 300); do
	[ -s "$demo/orders-archive.txt" ] && break
	sleep 0.2
done
echo "orders-archive: $(wc -l <"$demo/orders-archive.txt") lines so far"

step "Three schema subjects on the source registry (Avro in two versions, JSON Schema, Protobuf) and records in the wire format (magic 0 + the 4-byte schema ID) on the events topic"
srs=http://127.0.0.1:18081/apis/ccompat/v7
register() { # subject, schemaType, schema text -> the schema ID
	jq -n --arg s "$3" --arg t "$2" '{schema: $s, schemaType: $t}' |
		curl -sf -X POST -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
			--data @- "$srs/subjects/$1/versions" | jq -r .id
}
id_json=$(register clicks-value JSON '{"type":"object","properties":{"page":{"type":"string"}}}')
id_proto=$(register money-value PROTOBUF 'syntax = "proto3"; message Money { string currency = 1; int64 units = 2; }')
id_v1=$(register events-value AVRO '{"type":"record","name":"Event","fields":[{"name":"id","type":"string"}]}')
id_v2=$(register events-value AVRO '{"type":"record","name":"Event","fields":[{"name":"id","type":"string"},{"name":"kind","type":"string","default":"view"}]}')
echo "registered: clicks-value id $id_json, money-value id $id_proto, events-value v1 id $id_v1, v2 id $id_v2"
"$kc" create-topic demo-source events 1 >/dev/null 2>&1 || true
for id in $id_v1 $id_v2 $id_v2; do
	printf '\x00%b%s\n' "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((id >> 24 & 255)) $((id >> 16 & 255)) $((id >> 8 & 255)) $((id & 255)))" "event-$id"
done | kcat -b 127.0.0.1:19092 -P -t events -k e
echo "events: 3 records, schema IDs $id_v1 $id_v2 $id_v2 in their first 5 bytes"
cd "$demo"

step "kmigrate init: a starter plan from discovery (first lines)"
run "$km" init --source 127.0.0.1:19092 --target 127.0.0.1:29092 -o init.yaml
sed -n 1,30p init.yaml

step "kmigrate inventory: the source estate, risk classes and findings (exit 1 = findings)"
run "$km" inventory -p migration.yaml || echo "(exit $?)"

step "kmigrate inventory --cluster target: the target before the migration"
run "$km" inventory -p migration.yaml --cluster target --no-sample || echo "(exit $?)"

step "kmigrate inventory --diff: what changed on the source since the first snapshot"
"$top/tests/cluster/kafka-cluster" create-topic demo-source orders.v2 2 >/dev/null 2>&1 || true
run "$km" inventory -p migration.yaml --diff --no-sample | sed -n '/^Changes since/,$p' || true

step "kmigrate plan: the target design as a reviewable diff (+ create, ~ change, ! blocked)"
run "$km" plan -p migration.yaml || echo "(exit $?)"

step "kmigrate apply: make the target match the saved design"
run "$km" apply -p migration.yaml

step "kmigrate apply again: idempotent"
run "$km" apply -p migration.yaml

step "kmigrate schemas --dry-run, then kmigrate schemas: every subject with its IDs and versions kept (Apicurio: its admin import), compatibility carried, then every ID proven to resolve to the same schema on the target"
run "$km" schemas -p migration.yaml --dry-run || echo "(exit $?)"
run "$km" schemas -p migration.yaml || echo "(exit $?)"
echo "schema $id_v2 on the target registry:"
curl -sf "http://127.0.0.1:28081/apis/ccompat/v7/schemas/ids/$id_v2" | jq -c . || true

step "kmigrate check: the compatibility gate on the target (canaries in kmigrate-canary.demo.*, deleted afterwards)"
run "$km" check -p migration.yaml || echo "(exit $?)"

step "kmigrate replicate --until-caught-up: exactly-once copy of the estate"
run "$km" replicate -p migration.yaml --until-caught-up

step "kmigrate offsets map: the exact offset map of payments[0] (control-record gaps show as new runs)"
run "$km" offsets map -p migration.yaml --topic payments --partition 0

step "An independent reader (kcat) sees the same first records on both sides"
echo "source payments[0]:"; kcat -b 127.0.0.1:19092 -C -t payments -p 0 -e -q -X isolation.level=read_committed -f '  %o %k %s\n' | head -3
echo "target payments[0]:"; kcat -b 127.0.0.1:29092 -C -t payments -p 0 -e -q -X isolation.level=read_committed -f '  %o %k %s\n' | head -3

step "kmigrate validate: every replicated record compared by digest, paired through the offset map"
run "$km" validate -p migration.yaml || echo "(exit $?)"

step "kmigrate offsets: translate every group's committed offsets, each proven by reading both clusters"
run "$km" offsets -p migration.yaml || echo "(exit $?)"

step "kmigrate replicate in the background: it keeps copying while the waves are cut over (log: demo/replicate.log)"
"$km" replicate -p migration.yaml >"$demo/replicate.log" 2>&1 &
repl_pid=$!
echo "replicator pid $repl_pid"

step "kmigrate gate: the cutover gate of the canary wave, each criterion with its threshold, evidence and owner (unknown = NO-GO)"
run "$km" gate -p migration.yaml cutover --wave canary || echo "(exit $?)"

step "kmigrate cutover --verify before the cutover: nothing to verify yet (exit 1 names the next step)"
run "$km" cutover -p migration.yaml --wave canary --verify || echo "(exit $?)"

step "kmigrate cutover --wave canary: gate, fence (config: ANONYMOUS is a super user on this source, so no ACL can fence it, and the canary has no transactional producer), drain, validate, offsets, authority, switch"
run "$km" cutover -p migration.yaml --wave canary --dry-run | sed -n '1,3p;/switch/,$p'
echo "..."
run "$km" cutover -p migration.yaml --wave canary

step "A stale checkout-api instance still pointed at the source: refused at once (non-retriable)"
echo stale | kcat -b 127.0.0.1:19092 -P -t orders -X message.timeout.ms=5000 2>&1 | sed -n 1,2p || true

step "The owners switch: checkout-api writes to the target, billing and analytics consume there"
for i in 1 2 3 4 5; do echo "order-after-cutover-$i"; done |
	kcat -b 127.0.0.1:29092 -P -t orders -X enable.idempotence=true -X acks=all
for g in billing analytics; do
	kcat -b 127.0.0.1:29092 -G "$g" orders -q -o stored -X auto.commit.interval.ms=200 >/dev/null 2>&1 &
	bg_pids="$bg_pids $!"
done
echo "5 orders produced on the target; billing and analytics consumers running on the target"

step "kmigrate cutover --verify: the target takes writes, the groups consume there, the source stays fenced"
run "$km" cutover -p migration.yaml --wave canary --verify || echo "(exit $?)"
for p in $bg_pids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
bg_pids=

step "kmigrate gate: the next wave, all (its payments topic has a transactional producer: the config fence cannot hold it, the gate says what is missing)"
run "$km" gate -p migration.yaml cutover --wave all | sed -n '/NO-GO /p;/^Verdict/p' || true

step "Something is wrong after all: roll the canary wave back (the replicator stops first: the rollback gives the authority back and tells the forward map what the source gets back)"
kill "$repl_pid" 2>/dev/null; wait "$repl_pid" 2>/dev/null || true
repl_pid=
run "$km" rollback -p migration.yaml --wave canary || echo "(exit $?)"

step "The orders written on the target after the cutover are on the source now, after its own, each once"
kcat -b 127.0.0.1:19092 -C -t orders -e -q -X isolation.level=read_committed -f '  %p:%o %s\n' | grep order-after-cutover || true
echo "a stale producer on the target:"
echo stale | kcat -b 127.0.0.1:29092 -P -t orders -X message.timeout.ms=5000 2>&1 | sed -n 1,2p || true

step "The way back: --release-target lifts the rollback's config fence of the target (it refuses kmigrate's copy too), the forward copy resumes after what the rollback appended, and the canary wave cuts over again"
run "$km" rollback -p migration.yaml --wave canary --release-target || echo "(exit $?)"
run "$km" replicate -p migration.yaml --until-caught-up || echo "(exit $?)"
run "$km" validate -p migration.yaml || echo "(exit $?)"
run "$km" offsets -p migration.yaml || echo "(exit $?)"
run "$km" cutover -p migration.yaml --wave canary || echo "(exit $?)"

step "The archive file, written by the source connector, then the target one, then the source one again: every order once"
kcat -b 127.0.0.1:29092 -C -t orders -e -q -X isolation.level=read_committed -f '%s\n' | sort >"$demo/orders.sorted"
sort "$demo/orders-archive.txt" >"$demo/archive.sorted"
same=no; cmp -s "$demo/orders.sorted" "$demo/archive.sorted" && same=yes
echo "orders on the target: $(wc -l <"$demo/orders.sorted"), lines in the archive: $(wc -l <"$demo/archive.sorted"), the same records each once (sorted lists identical): $same"
curl -sf http://127.0.0.1:18083/connectors/orders-archive/status | jq -c '{source: .connector.state}' || true
curl -sf http://127.0.0.1:28083/connectors/orders-archive/status | jq -c '{target: .connector.state}' || true

step "kmigrate status: what the journal knows"
run "$km" status -p migration.yaml

step "Bad input is one line and a non-zero exit"
run "$km" inventory -p /nonexistent.yaml || echo "(exit $?)"
printf 'migration: demo\nsource:\n  bootstrap: 127.0.0.1:1\ntarget:\n  bootstrap: 127.0.0.1:29092\n' >unreachable.yaml
run "$km" inventory -p unreachable.yaml || echo "(exit $?)"

step "kmigrate report: the whole migration's evidence as one HTML file (from the journal alone; it loads nothing when opened)"
run "$km" report -p migration.yaml -o report.html
echo "The report is $demo/report.html (open it in any browser, offline)"
if command -v chromium >/dev/null; then
	echo "Opened in headless Chromium (tests/tools/cdp_check.py; screenshot demo/report.png):"
	python3 "$top/tests/tools/cdp_check.py" report.html report-check.json report.png report.pgid >/dev/null 2>&1 &&
		jq -r '"  sections: \(.dom.sections | length), gate verdicts: \(.dom.gates), charts: \(.dom.charts | length), offset rows: \(.dom.offset_rows), cutover/rollback steps: \(.dom.steps), network requests: \(.requests | length), console errors: \(.console_errors | length)"' report-check.json ||
		echo "  (the check did not run: see demo/report-check.json)"
fi

step "Done. The clusters and registries keep running; stop them with: tests/cluster/kafka-cluster stop-all; tests/cluster/schema-registry stop demo-sr-source; tests/cluster/schema-registry stop demo-sr-target; tests/cluster/connect-worker stop demo-connect-source; tests/cluster/connect-worker stop demo-connect-target"
