#!/usr/bin/env bash
# What moving a partition costs: fills one partition on broker 1 of a three-node cluster,
# then moves it to broker 2 with kafka-reassign-partitions and times the move until the
# metadata lists only broker 2 (and it is in sync). Strata's new replica copies only the hot
# tail above the tiered log (the nodes share one object store); Apache Kafka's copies all.
#
#   bench/move.sh strata STRATA_BIN [GIB]   default 10 GiB
#   bench/move.sh kafka [GIB]               needs bench/peers.sh install
#
# Needs the Java runner's tools (scripts/install-test-deps.sh), kcat and strata-bench
# (release). Prints one line: system, bytes in the partition, hot tail copied, seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
system=${1:?strata or kafka}; shift
if [ "$system" = strata ]; then bin=${1:?strata binary}; shift; fi
gib=${1:-10}
bench="${CARGO_TARGET_DIR:-target}/release/strata-bench"
tools="tests/clients/java/target/dependency/*"
source bench/lib.sh
tool() { local class=$1; shift; java -cp "$tools" "$class" --bootstrap-server "$bootstrap" "$@" 2>/dev/null; }
now() { date +%s.%N; }

# Partition 0 of topic `big` as "replicas isr", from Metadata.
placement() {
  kcat -b "$bootstrap" -L -t big -J 2>/dev/null | python3 -c '
import json, sys
p = json.load(sys.stdin)["topics"][0]["partitions"][0]
print(",".join(str(r["id"]) for r in p["replicas"]), ",".join(str(r["id"]) for r in p["isrs"]))'
}

# The log end offset of partition 0 (ListOffsets latest).
log_end() { kcat -b "$bootstrap" -Q -t big:0:-1 2>/dev/null | awk '{print $NF}'; }

kafka_ports=(); controller_ports=()
for n in 1 2 3; do kafka_ports+=("$(free_port)"); controller_ports+=("$(free_port)"); done
voters="1@127.0.0.1:${controller_ports[0]},2@127.0.0.1:${controller_ports[1]},3@127.0.0.1:${controller_ports[2]}"
bootstrap="127.0.0.1:${kafka_ports[0]}"   # Strata's; Kafka's comes from peers.sh

start_strata() {
  admins=()
  cat >"$scratch/strata.toml" <<'TOML'
# Keep 1 GiB locally once tiered, so the leader's disk holds what a real one would.
"log.local.retention.bytes" = 1073741824
TOML
  for n in 1 2 3; do
    admins+=("$(free_port)")
    "$bin" server --node-id "$n" --data-dir "$scratch/node$n" \
      --kafka-listen "127.0.0.1:${kafka_ports[$((n - 1))]}" --admin-listen "127.0.0.1:${admins[$((n - 1))]}" \
      --controller-quorum "$voters" --object-store "file://$scratch/objects" \
      --config "$scratch/strata.toml" >"$scratch/node$n.log" 2>&1 &
    pids+=($!)
  done
  for n in 1 2 3; do
    until curl -sf "http://127.0.0.1:${admins[$((n - 1))]}/readyz" >/dev/null; do sleep 0.2; done
  done
}

start_kafka() {
  start_kafka_cluster "$scratch" 1
  bootstrap=$kafka_bootstrap
}

case "$system" in
  strata) start_strata ;;
  kafka) start_kafka ;;
  *) echo "unknown system $system" >&2; exit 2 ;;
esac

tool org.apache.kafka.tools.TopicCommand --create --topic big --replica-assignment 1 >/dev/null
target=$((gib * 1024 * 1024))   # 1 KiB records
while [ "$(log_end)" -lt "$target" ]; do
  "$bench" produce --bootstrap "$bootstrap" --topic big --partitions 1 --quiet --acks 1 \
    --duration 5 >/dev/null
done
records=$(log_end)
if [ "$system" = strata ]; then
  # Let the uploader catch up with the sealed segments, as it does within its lag on a live
  # broker: what stays local is the active segment, up to `segment.bytes` (1 GiB).
  lag() { curl -s "http://127.0.0.1:${admins[0]}/metrics" | awk '$1 == "strata_tiering_upload_lag_bytes" {print $2}'; }
  until [ "$(lag)" -le $((1100 * 1024 * 1024)) ]; do sleep 1; done
  tiered_end=$(kcat -b "$bootstrap" -Q -t big:0:-5 2>/dev/null | awk '{print $NF}')
  bytes=$(du -sb "$scratch/objects" | awk '{print $1}')
  hot_tail=$(( (records - tiered_end) * 1024 ))
else
  bytes=$(du -sb "$scratch/kafka1/logs" | awk '{print $1}')
  hot_tail=$bytes
fi

echo '{"version":1,"partitions":[{"topic":"big","partition":0,"replicas":[2]}]}' >"$scratch/move.json"
start=$(now)
tool org.apache.kafka.tools.reassign.ReassignPartitionsCommand --reassignment-json-file "$scratch/move.json" --execute >/dev/null
until [ "$(placement)" = "2 2" ]; do sleep 0.1; done
moved=$(now)
# The moved partition serves its first and its last records from its new broker.
kcat -b "$bootstrap" -C -t big -p 0 -o beginning -c 100 -e -q >/dev/null
kcat -b "$bootstrap" -C -t big -p 0 -o -100 -c 100 -e -q >/dev/null
printf '%s records=%s partition_bytes=%s copied_bytes~%s move_seconds=%.1f\n' \
  "$system" "$records" "$bytes" "$hot_tail" "$(echo "$moved - $start" | bc)"
