#!/usr/bin/env bash
# Before/after: runs one strata-bench workload against two strata binaries, alternating
# A, B, A, B, ... with a fresh broker (fresh data dir) per run, and prints the medians.
# Alternating spreads the noise of a shared machine over both sides.
#
#   bench/ab.sh BIN_A BIN_B RUNS WORKLOAD [strata-bench args...]
#   e.g. bench/ab.sh /tmp/strata-before target/release/strata 5 produce --duration 5
# AB_BROKER_ARGS adds flags to both brokers (e.g. AB_BROKER_ARGS="--durability fsync").
# AB_PREFILL runs a strata-bench workload first, unmeasured, on each fresh broker: data for a
# replay, e.g. AB_PREFILL="produce --topic replay --rate 100000 --duration 20" with the
# measured workload "consume --topic replay".
set -euo pipefail
cd "$(dirname "$0")/.."
bin_a=${1:?binary A}; bin_b=${2:?binary B}; runs=${3:?runs}; workload=${4:?workload}; shift 4
bench_args=("$@")
bench="${CARGO_TARGET_DIR:-target}/release/strata-bench"
scratch=$(mktemp -d)
broker_pid=
cleanup() {
  if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  rm -rf "$scratch"
}
trap cleanup EXIT

run_one() { # BIN LABEL RUN
  rm -rf "$scratch/data"
  # shellcheck disable=SC2086 # AB_BROKER_ARGS is a list of flags
  "$1" server --data-dir "$scratch/data" --kafka-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    ${AB_BROKER_ARGS:-} >"$scratch/broker.log" 2>&1 &
  broker_pid=$!
  local bootstrap=
  for _ in $(seq 1 100); do
    bootstrap=$(grep -o 'kafka=[0-9.:]*' "$scratch/broker.log" | head -1 | cut -d= -f2 || true)
    [ -n "$bootstrap" ] && break
    sleep 0.05
  done
  if [ -n "${AB_PREFILL:-}" ]; then
    # shellcheck disable=SC2086 # AB_PREFILL is a workload and its flags
    "$bench" $AB_PREFILL --bootstrap "$bootstrap" --quiet >/dev/null
  fi
  "$bench" "$workload" --bootstrap "$bootstrap" --broker-pid "$broker_pid" --quiet \
    --json "$scratch/$2-$3.json" "${bench_args[@]}" >/dev/null
  kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true; broker_pid=
}

for run in $(seq 1 "$runs"); do
  run_one "$bin_a" a "$run"
  run_one "$bin_b" b "$run"
done

python3 - "$scratch" "$bin_a" "$bin_b" <<'PY'
import json, pathlib, statistics, sys
scratch, names = pathlib.Path(sys.argv[1]), {"a": sys.argv[2], "b": sys.argv[3]}
def pick(report, path):
    for key in path.split("."):
        report = (report or {}).get(key)
    return report
def worst_window(report):
    windows = report.get("produce_windows", []) + report.get("e2e_windows", [])
    return max((w["p999"] for w in windows), default=None) if len(windows) > 2 else None
metrics = [("MB/s", "mb_per_s", 1), ("core-s/GiB", "broker.cpu_core_seconds_per_gib", 1),
           ("produce p99 ms", "produce_latency_us.p99", 1e3), ("produce p99.9 ms", "produce_latency_us.p999", 1e3),
           ("e2e p99 ms", "e2e_latency_us.p99", 1e3), ("e2e p99.9 ms", "e2e_latency_us.p999", 1e3),
           ("worst window p99.9 ms", worst_window, 1e3)]
medians = {}
for side in "ab":
    reports = [json.loads(p.read_text()) for p in sorted(scratch.glob(f"{side}-*.json"))]
    for label, path, scale in metrics:
        found = (path(r) if callable(path) else pick(r, path) for r in reports)
        values = [v / scale for v in found if v is not None]
        if values:
            medians[(side, label)] = (statistics.median(values), values)
print(f"| metric | A: {names['a']} | B: {names['b']} | B / A |")
print("|---|---|---|---|")
for label, _, _ in metrics:
    if ("a", label) in medians and ("b", label) in medians:
        (a, a_runs), (b, b_runs) = medians[("a", label)], medians[("b", label)]
        runs = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
        print(f"| {label} | {a:.2f} ({runs(a_runs)}) | {b:.2f} ({runs(b_runs)}) | {b / a:.2f}× |")
PY
