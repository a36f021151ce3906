#!/usr/bin/env bash
# The OMB-like matrix against one running broker: 1 KiB records; 16 and 100 partitions;
# acks=1 and acks=all; no compression and lz4. For each cell, RUNS max-throughput `produce`
# runs, then RUNS `e2e` runs at 50% of the median max rate (for latency). JSON per run in OUT;
# a failed run is reported and left out.
#
#   bench/omb.sh BOOTSTRAP BROKER_PID LABEL OUT [DURATION_S] [RUNS]
#   CELLS="16:1:none 100:all:lz4" bench/omb.sh ...   only these cells (partitions:acks:codec)
#   python3 bench/summarize.py OUT        medians as a markdown table
#   MAX_S=20 bench/omb.sh ...     max-throughput runs of 20 s instead of DURATION_S
#   RETAIN_MIB=3072 bench/omb.sh ...   topics keep about this much (retention.bytes split over
#                                      the partitions, in segments of an eighth of that),
#                                      so a long run fits on the disk
set -uo pipefail
cd "$(dirname "$0")/.."
bootstrap=${1:?bootstrap}; pid=${2:?broker pid}; label=${3:?label}; out=${4:?output dir}
duration=${5:-10}; runs=${6:-3}
bench="${CARGO_TARGET_DIR:-target}/release/strata-bench"
all_cells="16:1:none 16:1:lz4 16:all:none 16:all:lz4 100:1:none 100:1:lz4 100:all:none 100:all:lz4"
mkdir -p "$out"

run() { # WORKLOAD JSON_PATH PARTITIONS ACKS CODEC DURATION_S [ARGS...]
  local workload=$1 json=$2 partitions=$3 acks=$4 codec=$5 seconds=$6; shift 6
  local retain=()
  if [ -n "${RETAIN_MIB:-}" ]; then
    local bytes=$((RETAIN_MIB * 1048576 / partitions))
    retain=(--topic-config "retention.bytes=$bytes" --topic-config "segment.bytes=$((bytes / 8))"
      --topic-config local.retention.bytes=0)
  fi
  "$bench" "$workload" --bootstrap "$bootstrap" --broker-pid "$pid" --partitions "$partitions" --acks "$acks" \
    --compression "$codec" --duration "$seconds" --quiet --json "$json" "${retain[@]}" "$@" >/dev/null 2>"$json.err" \
    && rm -f "$json.err" || echo "run failed: $json ($(tail -1 "$json.err"))" >&2
}

for spec in ${CELLS:-$all_cells}; do
  IFS=: read -r partitions acks codec <<<"$spec"
  cell="$label-p$partitions-acks$acks-$codec"
  rates=()
  for i in $(seq 1 "$runs"); do
    run produce "$out/$cell-max-$i.json" "$partitions" "$acks" "$codec" "${MAX_S:-$duration}"
    [ -f "$out/$cell-max-$i.json" ] && rates+=("$(python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['records_per_s']))" "$out/$cell-max-$i.json")")
  done
  if [ ${#rates[@]} -eq 0 ]; then echo "$cell: no max run succeeded" >&2; continue; fi
  half=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print int(a[int((NR+1)/2)] / 2)}')
  for i in $(seq 1 "$runs"); do
    run e2e "$out/$cell-half-$i.json" "$partitions" "$acks" "$codec" "$duration" --rate "$half"
  done
  echo "$cell: max records/s ${rates[*]}; latency runs at $half/s"
done
