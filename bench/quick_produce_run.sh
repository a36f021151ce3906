#!/usr/bin/env bash
# A first produce figure (until `strata bench` exists): starts a release broker on port 0,
# produces 500k x 1 KiB records with bench/quick_produce.py, prints client throughput and
# the broker's CPU seconds (from /proc) for the run, then stops the broker by PID.
# usage: bench/quick_produce_run.sh ACKS DURABILITY     e.g. 1 os, all fsync
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${STRATA_CACHE:-$HOME/.cache/strata}/venv/bin/python"
D=$(mktemp -d)
${CARGO_TARGET_DIR:-target}/release/strata server --kafka-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir $D/data --durability $2 2> $D/broker.log &
PID=$!
sleep 1
BOOT=$(grep -o "kafka=[0-9.:]*" $D/broker.log | head -1 | cut -d= -f2)
[ -n "$BOOT" ] || { echo "the broker did not start:"; cat "$D/broker.log"; kill "$PID"; exit 1; }
t0=$(awk '{print $14+$15}' /proc/$PID/stat)
"$PY" bench/quick_produce.py --bootstrap $BOOT --count 500000 --size 1024 --partitions 16 --acks $1
t1=$(awk '{print $14+$15}' /proc/$PID/stat)
echo "broker_cpu_s=$(echo "scale=2; ($t1-$t0)/$(getconf CLK_TCK)" | bc) per $(echo "scale=3; 500000*1024/1073741824" | bc) GiB"
kill $PID
wait $PID 2>/dev/null || true
rm -rf $D
