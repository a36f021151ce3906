#!/usr/bin/env bash
# Replication's cost: one strata-bench produce workload against a single embedded node
# (acks=1, RF 1) and against three nodes on loopback (acks=all, RF 3, min.insync.replicas 2),
# alternating single, cluster, single, cluster, ... with fresh data directories per run, and
# the medians side by side.
#
#   bench/replication.sh STRATA_BIN RUNS [strata-bench produce args...]
#   e.g. bench/replication.sh target/release/strata 3 --duration 10 --partitions 12
#
# With KAFKA=1, each round also runs Apache Kafka 4.4 with three brokers (RF 3, acks=all,
# min.insync.replicas 2; bench/peers.sh install first) under the same workload.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?strata binary}; runs=${2:?runs}; shift 2
bench_args=("$@")
bench="${CARGO_TARGET_DIR:-target}/release/strata-bench"
source bench/lib.sh

# Waits for a node's "strata listening" line; prints its Kafka address.
kafka_address() {
  for _ in $(seq 1 400); do
    address=$(grep -o 'kafka=[0-9.:]*' "$1" | head -1 | cut -d= -f2 || true)
    [ -n "$address" ] && { echo "$address"; return; }
    sleep 0.05
  done
  echo "no listening line in $1" >&2; exit 1
}

wait_ready() { # ADMIN_ADDRESS
  for _ in $(seq 1 600); do
    curl -sf "http://$1/readyz" >/dev/null && return
    sleep 0.1
  done
  echo "node at $1 never became ready" >&2; exit 1
}

stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pids=()
}

run_single() { # RUN
  rm -rf "$scratch/single"
  "$bin" server --data-dir "$scratch/single" --kafka-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    >"$scratch/single.log" 2>&1 &
  pids=($!)
  local bootstrap; bootstrap=$(kafka_address "$scratch/single.log")
  "$bench" produce --bootstrap "$bootstrap" --broker-pid "${pids[0]}" --quiet --acks 1 \
    --json "$scratch/single-$1.json" "${bench_args[@]}" >/dev/null
  stop_all
}

run_cluster() { # RUN
  rm -rf "$scratch"/node*
  local controllers=() admins=() quorum
  for n in 1 2 3; do controllers+=("$(free_port)"); admins+=("$(free_port)"); done
  quorum="1@127.0.0.1:${controllers[0]},2@127.0.0.1:${controllers[1]},3@127.0.0.1:${controllers[2]}"
  printf 'min.insync.replicas = "2"\n' >"$scratch/cluster.toml"
  for n in 1 2 3; do
    "$bin" server --node-id "$n" --data-dir "$scratch/node$n" --kafka-listen 127.0.0.1:0 \
      --admin-listen "127.0.0.1:${admins[$((n - 1))]}" --controller-quorum "$quorum" \
      --config "$scratch/cluster.toml" >"$scratch/node$n.log" 2>&1 &
    pids+=($!)
  done
  for n in 1 2 3; do wait_ready "127.0.0.1:${admins[$((n - 1))]}"; done
  local bootstrap; bootstrap=$(kafka_address "$scratch/node1.log")
  "$bench" produce --bootstrap "$bootstrap" --broker-pid "${pids[0]}" --quiet --acks all \
    --replication-factor 3 --json "$scratch/cluster-$1.json" "${bench_args[@]}" >/dev/null
  stop_all
}

run_kafka() { # RUN
  rm -rf "$scratch/kafka"
  start_kafka_cluster "$scratch/kafka" 2
  "$bench" produce --bootstrap "$kafka_bootstrap" --quiet --acks all \
    --replication-factor 3 --json "$scratch/kafka-$1.json" "${bench_args[@]}" >/dev/null
  stop_all
}

for run in $(seq 1 "$runs"); do
  run_single "$run"
  run_cluster "$run"
  if [ "${KAFKA:-0}" = 1 ]; then run_kafka "$run"; fi
done

python3 - "$scratch" <<'PY'
import json, pathlib, statistics, sys
scratch = pathlib.Path(sys.argv[1])
def pick(report, path):
    for key in path.split("."):
        report = (report or {}).get(key)
    return report
metrics = [("MB/s", "mb_per_s", 1), ("produce p50 ms", "produce_latency_us.p50", 1e3),
           ("produce p99 ms", "produce_latency_us.p99", 1e3)]
sides = {"single": "1 node, acks=1", "cluster": "3 nodes, RF 3, acks=all, min ISR 2",
         "kafka": "Apache Kafka, 3 brokers, same"}
sides = {side: name for side, name in sides.items() if any(scratch.glob(f"{side}-*.json"))}
print("| metric | " + " | ".join(sides.values()) + " | cluster / single |")
print("|---" * (len(sides) + 2) + "|")
runs = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
for label, path, scale in metrics:
    medians = {}
    for side in sides:
        values = [v / scale for v in (pick(json.loads(p.read_text()), path)
                                      for p in sorted(scratch.glob(f"{side}-*.json"))) if v is not None]
        medians[side] = (statistics.median(values), values) if values else None
    if all(medians.values()):
        cells = " | ".join(f"{m:.2f} ({runs(v)})" for m, v in medians.values())
        ratio = medians["cluster"][0] / medians["single"][0]
        print(f"| {label} | {cells} | {ratio:.2f}× |")
PY
