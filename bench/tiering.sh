#!/usr/bin/env bash
# Tiered storage, measured: PUTs per GiB ingested into 1 partition and into 100, and the
# cold-read throughput of a consumer replaying tiered data against the object store's own
# ranged-GET throughput, measured in the same run on the same objects, and against the same
# consumer replaying as many bytes from the local log (remote.storage.enable=false).
#
#   bench/tiering.sh [file|moto] [RECORDS_PER_SECOND] [SECONDS]
#   e.g. bench/tiering.sh file 50000 20     (about 1 GiB per partition count)
#
# Needs release builds of strata and strata-bench (cargo build --release -p strata -p strata-bench)
# and the test venv (scripts/install-test-deps.sh: confluent-kafka creates the local topic,
# moto is the S3 server).
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-file}; rate=${2:-50000}; secs=${3:-20}
bin="${CARGO_TARGET_DIR:-target}/release"
scratch=$(mktemp -d)
broker_pid=; moto_pid=
cleanup() {
  for pid in $broker_pid $moto_pid; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT

case "$kind" in
  file)
    store="file://$scratch/objects" ;;
  moto)
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$HOME/.cache/strata/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    moto_pid=$!
    for _ in $(seq 1 100); do curl -s -X PUT "http://127.0.0.1:$port/bench" >/dev/null && break; sleep 0.2; done
    export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true
    store="s3://bench/strata?endpoint=http://127.0.0.1:$port&region=us-east-1&path_style=true" ;;
  *) echo "store kind is file or moto" >&2; exit 2 ;;
esac

cat >"$scratch/strata.toml" <<'TOML'
"remote.log.manager.task.interval.ms" = 1000
"strata.tiering.upload.max.lag.ms" = 5000
"log.local.retention.bytes" = 0
"log.retention.ms" = -1
TOML

start_broker() {
  "$bin/strata" server --data-dir "$scratch/data" --object-store "$store" --config "$scratch/strata.toml" \
    --kafka-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 >"$scratch/broker.log" 2>&1 &
  broker_pid=$!
  bootstrap=; admin=
  for _ in $(seq 1 200); do
    bootstrap=$(grep -o 'kafka=[0-9.:]*' "$scratch/broker.log" | head -1 | cut -d= -f2 || true)
    admin=$(grep -o 'admin=[0-9.:]*' "$scratch/broker.log" | head -1 | cut -d= -f2 || true)
    [ -n "$bootstrap" ] && [ -n "$admin" ] && break
    sleep 0.05
  done
  until curl -sf "http://$admin/readyz" >/dev/null; do sleep 0.1; done
}
stop_broker() { kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true; broker_pid=; }
metric() { # NAME (exact, with labels) -> value, 0 when absent
  curl -s "http://$admin/metrics" | awk -v n="$1" '$1 == n { print $2; found=1 } END { if (!found) print 0 }'
}
puts_metric='strata_object_store_requests_total{op="put",purpose="segments"}'
wait_uploaded() {
  for _ in $(seq 1 600); do
    [ "$(metric strata_tiering_upload_lag_records)" = "0" ] && return 0
    sleep 0.5
  done
  echo "the upload never caught up" >&2; exit 1
}

start_broker
echo "store: $kind; ${rate} records/s of 1 KiB for ${secs} s per partition count"
printf '%-11s %10s %8s %12s\n' partitions "MiB" PUTs "PUTs/GiB"
for partitions in 1 100; do
  puts_before=$(metric "$puts_metric"); bytes_before=$(metric strata_tiering_uploaded_bytes_total)
  "$bin/strata-bench" produce --bootstrap "$bootstrap" --topic "tier-$partitions" --partitions "$partitions" \
    --rate "$rate" --duration "$secs" --quiet >/dev/null
  wait_uploaded
  puts=$(python3 -c "print(int($(metric "$puts_metric") - $puts_before))")
  bytes=$(python3 -c "print($(metric strata_tiering_uploaded_bytes_total) - $bytes_before)")
  python3 -c "b=$bytes; p=$puts; print(f'{$partitions:<11} {b/2**20:10.0f} {p:8d} {p/(b/2**30):12.1f}')"
done

# The baseline for the broker's own read path: as many bytes in a 100-partition topic that
# is not tiered, replayed from the local log (page cache) by the same consumer.
"$HOME/.cache/strata/venv/bin/python" - "$bootstrap" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
topic = NewTopic("local-100", 100, 1, config={"remote.storage.enable": "false"})
admin.create_topics([topic])["local-100"].result(timeout=30)
PY
"$bin/strata-bench" produce --bootstrap "$bootstrap" --topic local-100 --partitions 100 \
  --rate "$rate" --duration "$secs" --quiet >/dev/null

# Cold reads: a restarted broker with an empty read cache replays the 100-partition topic,
# every byte of which is only in the object store now; then replays it again, warm (from
# the read cache's memory and disk tiers); then replays the local topic.
stop_broker
rm -rf "$scratch/data/cache"
start_broker
for pass in cold warm local; do
  topic=tier-100; [ "$pass" = local ] && topic=local-100
  "$bin/strata-bench" consume --bootstrap "$bootstrap" --topic "$topic" --partitions 100 \
    --duration 60 --quiet --json "$scratch/$pass.json" >/dev/null
done
stop_broker
"$bin/strata-bench" raw-get --store "$store" >"$scratch/raw.json"
python3 - "$scratch"/{cold,raw,warm,local}.json <<'PY'
import json, sys
cold, raw, warm, local = (json.load(open(path)) for path in sys.argv[1:5])
cold_mb = cold["mb_per_s"]
print(f"cold replay through the broker: {cold_mb:.0f} MB/s ({cold['bytes']/2**20:.0f} MiB)")
print(f"warm replay (read cache):       {warm['mb_per_s']:.0f} MB/s")
print(f"local replay (not tiered):      {local['mb_per_s']:.0f} MB/s ({local['bytes']/2**20:.0f} MiB)")
print(f"raw ranged GETs from the store: {raw['mb_per_s']:.0f} MB/s ({raw['bytes']/2**20:.0f} MiB in {raw['gets']} GETs)")
print(f"cold / raw GET: {cold_mb / raw['mb_per_s']:.2f}; cold / warm: {cold_mb / warm['mb_per_s']:.2f}; "
      f"warm / local: {warm['mb_per_s'] / local['mb_per_s']:.2f}")
PY
