#!/usr/bin/env bash
# Long-uptime check: a tiered broker with short upload rounds and many partitions, under a
# trickle of records, for a while; prints its open descriptors every 10 s and fails if they
# grew. The test suite runs a 20-second version (tests/e2e/uptime.rs).
#
#   scripts/soak-fds.sh [MINUTES=5] [PARTITIONS=500]
#
# Uses target/release/strata and strata-bench (cargo build --release -p strata -p strata-bench),
# or STRATA_BIN / STRATA_BENCH_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-5}
partitions=${2:-500}
target=${CARGO_TARGET_DIR:-target}
strata=${STRATA_BIN:-$target/release/strata}
bench=${STRATA_BENCH_BIN:-$target/release/strata-bench}
work=$(mktemp -d)
trap 'kill "$broker" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

cat > "$work/strata.toml" <<TOML
"strata.tiering.upload.max.lag.ms" = 1000
"remote.log.manager.task.interval.ms" = 200
"log.local.retention.ms" = 600000
TOML
"$strata" server --data-dir "$work/data" --kafka-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --config "$work/strata.toml" 2> "$work/broker.log" &
broker=$!
for _ in $(seq 1 300); do
    line=$(grep -m1 'strata listening' "$work/broker.log" || true)
    [ -n "$line" ] && break
    sleep 0.1
done
[ -n "$line" ] || { echo "the broker did not start:"; cat "$work/broker.log"; exit 1; }
kafka=$(sed -E 's/.*kafka=([^ ]+).*/\1/' <<<"$line")

seconds=$((minutes * 60))
"$bench" produce --bootstrap "$kafka" --topic soak --partitions "$partitions" \
    --rate "$partitions" --record-size 100 --duration "$seconds" --quiet > "$work/bench.log" 2>&1 &
load=$!
printf '%8s %10s\n' seconds descriptors
first=""
for t in $(seq 0 10 "$seconds"); do
    fds=$(ls "/proc/$broker/fd" | wc -l)
    printf '%8d %10d\n' "$t" "$fds"
    # The first minute is the warm-up: every partition rolls and uploads once.
    if [ "$t" -ge 60 ] && [ -z "$first" ]; then first=$fds; fi
    last=$fds
    sleep 10
done
wait "$load" || { echo "the load generator failed:"; cat "$work/bench.log"; exit 1; }
if [ -n "$first" ] && [ "$last" -gt $((first + first / 10 + 20)) ]; then
    echo "descriptors grew from $first to $last"
    exit 1
fi
echo "descriptors flat: ${first:-$last} after the first minute, $last at the end"
