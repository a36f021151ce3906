#!/usr/bin/env bash
# The OMB-like matrix against one running broker: 1 KiB records; 16 and 100 partitions;
# acks=1 and acks=all; no compression and lz4. For each cell, RUNS max-throughput `produce`
# runs, then RUNS `e2e` runs at 50% of the median max rate (for latency). JSON per run in OUT.
#
#   bench/omb.sh BOOTSTRAP BROKER_PID LABEL OUT [DURATION_S] [RUNS]
#   python3 bench/summarize.py OUT        medians as a markdown table
set -euo pipefail
cd "$(dirname "$0")/.."
bootstrap=${1:?bootstrap}; pid=${2:?broker pid}; label=${3:?label}; out=${4:?output dir}
duration=${5:-10}; runs=${6:-3}
bench="${CARGO_TARGET_DIR:-target}/release/strata-bench"
mkdir -p "$out"
for partitions in 16 100; do
  for acks in 1 all; do
    for compression in none lz4; do
      cell="$label-p$partitions-acks$acks-$compression"
      rates=()
      for run in $(seq 1 "$runs"); do
        "$bench" produce --bootstrap "$bootstrap" --broker-pid "$pid" --partitions "$partitions" --acks "$acks" \
          --compression "$compression" --duration "$duration" --quiet --json "$out/$cell-max-$run.json" >/dev/null
        rates+=("$(python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['records_per_s']))" "$out/$cell-max-$run.json")")
      done
      half=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print int(a[int((NR+1)/2)] / 2)}')
      for run in $(seq 1 "$runs"); do
        "$bench" e2e --bootstrap "$bootstrap" --broker-pid "$pid" --partitions "$partitions" --acks "$acks" \
          --compression "$compression" --duration "$duration" --rate "$half" --quiet --json "$out/$cell-half-$run.json" >/dev/null
      done
      echo "$cell: max records/s ${rates[*]}; latency runs at $half/s"
    done
  done
done
