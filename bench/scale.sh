#!/usr/bin/env bash
# Metadata at scale (issue 17): an embedded node with PARTITIONS partitions, each written a
# trickle (RATE 100-byte records per partition per second, default 1), its upload lag and
# upload interval shortened to LAG_MS so that upload rounds come 60000 / LAG_MS times faster
# than at the default lag (segments roll by a week compressed the same way), sampled every
# SAMPLE seconds for MINUTES minutes: manifest entries and objects, the raft log and snapshot
# (KiB on disk), resident memory, descriptors, CPU (% of one core over the sample), the
# metadata backup's PUTs and KiB written so far.
# Then the time from a restart to ready, and the same after a kill -9.
#
#   bench/scale.sh [PARTITIONS] [MINUTES] [LAG_MS] [SAMPLE] [RATE]
#   e.g. bench/scale.sh 500 10 1000 60     (about 10 hours of default operation)
#        bench/scale.sh 500 42 250 300 4   (a week of upload rounds: 10 080 of them, with
#                                           new data in every partition in each)
# RATE is records per partition per second (default 1); upload rounds run every LAG_MS.
#
# With BASELINE_BIN set to another build's strata binary, the restart is then timed three
# more times each for that build and this one, alternately, on the same data directory.
#
# Needs release builds of strata and strata-bench
# (cargo build --release -p strata -p strata-bench). Prints one table row per sample.
set -euo pipefail
cd "$(dirname "$0")/.."
partitions=${1:-500}; minutes=${2:-10}; lag_ms=${3:-1000}; sample=${4:-60}; rate=${5:-1}
bin="${CARGO_TARGET_DIR:-target}/release"
source bench/lib.sh

# Segments roll by the simulated week (Kafka's default segment.ms, compressed like the lag).
cat >"$scratch/strata.toml" <<TOML
"remote.log.manager.task.interval.ms" = $lag_ms
"strata.tiering.upload.max.lag.ms" = $lag_ms
"log.roll.ms" = $((604800000 * lag_ms / 60000))
TOML

broker_pid=
start_broker() { # [BINARY]
  : >"$scratch/broker.log"
  "${1:-$bin/strata}" server --data-dir "$scratch/data" --config "$scratch/strata.toml" \
    --kafka-listen "127.0.0.1:$kafka_port" --admin-listen "127.0.0.1:$admin_port" \
    >"$scratch/broker.log" 2>&1 &
  broker_pid=$!
  pids+=("$broker_pid")
  until curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null; do
    kill -0 "$broker_pid" 2>/dev/null || { cat "$scratch/broker.log" >&2; exit 1; }
    sleep 0.05
  done
}
metrics() { curl -s "http://127.0.0.1:$admin_port/metrics"; }
# The sum of every series of metric NAME whose labels contain each of LABELS.
metric() { # NAME [LABEL...]
  local name=$1; shift
  metrics | awk -v n="$name" -v want="$*" '
    { split($1, parts, "{"); if (parts[1] != n) next
      split(want, labels, " "); for (i in labels) if (index($1, labels[i]) == 0) next
      sum += $2 }
    END { printf "%.0f\n", sum }'
}
cpu_seconds() { awk '{ print ($14 + $15) / 100 }' "/proc/$broker_pid/stat"; }
rss_mib() { awk '/VmRSS/ { printf "%.0f\n", $2 / 1024 }' "/proc/$broker_pid/status"; }
fds() { ls "/proc/$broker_pid/fd" | wc -l; }
dir_kib() { du -sk "$1" 2>/dev/null | cut -f1; }
# Stops the broker (SIGTERM or kill -9), starts it (or BINARY) again and sets `restart_s` to
# the seconds from its start to ready.
restart() { # term | kill [BINARY]
  if [ "$1" = kill ]; then kill -9 "$broker_pid"; else kill "$broker_pid"; fi
  wait "$broker_pid" 2>/dev/null || true
  local started; started=$(date +%s.%N)
  start_broker "${2:-}"
  restart_s=$(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')")
}

kafka_port=$(free_port); admin_port=$(free_port)
start_broker
"$bin/strata-bench" produce --bootstrap "127.0.0.1:$kafka_port" --topic scale \
  --partitions "$partitions" --record-size 100 --rate $((partitions * rate)) \
  --duration $((minutes * 60)) --quiet >/dev/null &
load=$!
pids+=("$load")

factor=$((60000 / lag_ms))
echo "$partitions partitions, $((partitions * rate)) records/s, upload lag ${lag_ms} ms (time x$factor), ${minutes} min"
printf '%6s %9s %9s %9s %8s %8s %6s %5s %8s %9s %9s\n' min sim_hours entries objects log_KiB snap_KiB rss_MiB fds cpu_pct backupPUTs backupKiB
last_cpu=$(cpu_seconds); elapsed=0
while kill -0 "$load" 2>/dev/null; do
  sleep "$sample"; elapsed=$((elapsed + sample))
  cpu=$(cpu_seconds)
  printf '%6.1f %9.1f %9s %9s %8s %8s %6s %5s %8.0f %9s %9s\n' \
    "$(python3 -c "print($elapsed / 60)")" "$(python3 -c "print($elapsed * $factor / 3600)")" \
    "$(metric strata_tiering_manifest_segments)" "$(metric strata_tiering_manifest_objects)" \
    "$(dir_kib "$scratch/data/raft/log")" "$(dir_kib "$scratch/data/raft/state")" \
    "$(rss_mib)" "$(fds)" "$(python3 -c "print(100 * ($cpu - $last_cpu) / $sample)")" \
    "$(metric strata_object_store_requests_total 'op="put"' 'purpose="metadata"')" \
    "$(( $(metric strata_object_store_sent_bytes_total 'op="put"' 'purpose="metadata"') / 1024 ))"
  last_cpu=$cpu
done
wait "$load" || true
restart term; after_term=$restart_s
restart kill; after_kill=$restart_s
echo "restart to ready after SIGTERM: $after_term s; after kill -9: $after_kill s"
if [ -n "${BASELINE_BIN:-}" ]; then
  baseline=(); current=()
  for _ in 1 2 3; do
    restart term "$BASELINE_BIN"; baseline+=("$restart_s")
    restart term; current+=("$restart_s")
  done
  echo "restart to ready after SIGTERM, alternating: baseline ${baseline[*]} s; this build ${current[*]} s"
fi
