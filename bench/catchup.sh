#!/usr/bin/env bash
# Produce latency with and without a cold catch-up reader: one broker (tiering on, the
# embedded file:// store) is first filled with a "cold" topic whose local copy is dropped once
# tiered, so replaying it reads the object store through the block cache. Then RUNS pairs of
# produce runs at RATE records/s to a fresh topic each: alone, and with a consumer replaying
# the cold topic from its start as fast as it can. Prints the medians per side as a markdown
# table.
#
#   bench/catchup.sh OUT [RATE] [SECONDS] [RUNS] [COLD_SECONDS]
#   e.g. bench/catchup.sh /tmp/catchup 130000 60 2 20
#
# Needs release builds of strata and strata-bench (cargo build --release -p strata -p strata-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
out=$(realpath -m "${1:?output directory}"); rate=${2:-130000}; secs=${3:-60}; runs=${4:-2}
cold_secs=${5:-20}
bin="${CARGO_TARGET_DIR:-target}/release"
mkdir -p "$out"

cat >"$scratch/strata.toml" <<'TOML'
# Tier the cold topic within seconds of it being written.
"remote.log.manager.task.interval.ms" = 1000
"strata.tiering.upload.max.lag.ms" = 5000
TOML
"$bin/strata" server --data-dir "$scratch/data" --kafka-listen 127.0.0.1:0 \
  --admin-listen 127.0.0.1:0 --durability os --config "$scratch/strata.toml" >"$scratch/broker.log" 2>&1 &
broker=$!
pids+=("$broker")
for _ in $(seq 1 100); do
  bootstrap=$(grep -o 'kafka=[0-9.:]*' "$scratch/broker.log" | head -1 | cut -d= -f2 || true)
  [ -n "$bootstrap" ] && break
  sleep 0.1
done
admin=$(grep -o 'admin=[0-9.:]*' "$scratch/broker.log" | head -1 | cut -d= -f2)

echo "== filling the cold topic for $cold_secs s"
"$bin/strata-bench" produce --bootstrap "$bootstrap" --topic cold --partitions 16 \
  --duration "$cold_secs" --topic-config local.retention.bytes=0 --quiet --json "$out/cold-fill.json" >/dev/null
metric() { curl -s "http://$admin/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
for _ in $(seq 1 600); do
  [ "$(metric strata_tiering_upload_lag_bytes)" = 0 ] && break
  sleep 1
done
echo "tiered: $(metric strata_tiering_upload_lag_bytes) bytes left to upload; local: $(du -sh "$scratch/data" | cut -f1)"

for i in $(seq 1 "$runs"); do
  for side in alone reader; do
    reader=
    if [ "$side" = reader ]; then
      "$bin/strata-bench" consume --bootstrap "$bootstrap" --topic cold --partitions 16 \
        --duration "$secs" --quiet --json "$out/reader-$i.json" >/dev/null 2>&1 &
      reader=$!
    fi
    "$bin/strata-bench" produce --bootstrap "$bootstrap" --partitions 16 --rate "$rate" \
      --duration "$secs" --broker-pid "$broker" --quiet --json "$out/produce-$side-$i.json" >/dev/null
    if [ -n "$reader" ]; then wait "$reader" || echo "reader run $i failed" >&2; fi
    echo "wrote $out/produce-$side-$i.json"
  done
done
python3 - "$out" <<'PY'
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
def runs(pattern):
    return [json.loads(p.read_text()) for p in sorted(out.glob(pattern))]
def med(values):
    return statistics.median(values) if values else float("nan")
print("| side | produce p99 ms | produce p99.9 ms | worst window p99.9 ms | broker core-s/GiB | reader MB/s |")
print("|---|---|---|---|---|---|")
for side in ("alone", "reader"):
    r = runs(f"produce-{side}-*.json")
    readers = runs("reader-*.json") if side == "reader" else []
    print(f"| {side} | {med([x['produce_latency_us']['p99'] / 1e3 for x in r]):.1f} "
          f"| {med([x['produce_latency_us']['p999'] / 1e3 for x in r]):.1f} "
          f"| {med([max(w['p999'] for w in x['produce_windows']) / 1e3 for x in r]):.1f} "
          f"| {med([x['broker']['cpu_core_seconds_per_gib'] for x in r]):.2f} "
          f"| {med([x['mb_per_s'] for x in readers]) if readers else 0:.0f} |")
PY
