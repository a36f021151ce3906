#!/usr/bin/env bash
# Every measurement of docs/benchmarks.md's report in one run on one machine: the machine's
# baselines (disk buffered and fsync'd, loopback TCP), each broker's time to first answer and
# idle RSS, then the OMB-like matrix (bench/omb.sh) cell by cell, brokers taking turns within
# a cell so that drift in a shared machine's noise falls on all of them alike. Each broker
# starts on a fresh data directory for each cell, gets one unrecorded warm-up run, and is
# stopped after the cell.
#
#   bench/report.sh OUT [DURATION_S] [RUNS] [BROKERS]
#   CELLS="16:1:none" bench/report.sh ...     only these cells (see bench/omb.sh)
#   python3 bench/summarize.py OUT
#   MAX_S, RETAIN_MIB: as in bench/omb.sh (the sustained report sets both)
#
# BROKERS defaults to "strata kafka tansu-memory tansu-s3": Strata (release build,
# --durability os), Apache Kafka 4.4 (KRaft combined mode, default heap), Tansu with its
# memory engine (writes nothing to disk) and Tansu with its durable s3 engine against a local
# S3 server (moto, in memory; its CPU is not counted as the broker's). Data directories go
# under BENCH_DIR (default /tmp): put it on the disk you want to measure.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:?output directory}"); duration=${2:-5}; runs=${3:-3}
brokers=${4:-strata kafka tansu-memory tansu-s3}
target=${CARGO_TARGET_DIR:-target}
bench="$target/release/strata-bench"
strata="$target/release/strata"
cache="${STRATA_CACHE:-$HOME/.cache/strata}"
cells=${CELLS:-"16:1:none 16:1:lz4 16:all:none 16:all:lz4 100:1:none 100:1:lz4 100:all:none 100:all:lz4"}
mkdir -p "$out"
scratch=$(mktemp -d -p "${BENCH_DIR:-/tmp}" strata-report.XXXXXX)
broker_pid=; s3_pid=
cleanup() {
  for pid in $broker_pid $s3_pid; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for_port() { # PORT
  for _ in $(seq 1 240); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
    sleep 0.25
  done
  echo "nothing listens on $1" >&2; return 1
}

prepare() { # BROKER: installs what it needs
  case "$1" in
    strata) [ -x "$strata" ] || cargo build --release -p strata ;;
    kafka) bench/peers.sh install >/dev/null ;;
    tansu-memory) bench/peers.sh tansu-install >/dev/null ;;
    tansu-s3)
      bench/peers.sh tansu-install >/dev/null
      [ -x "$cache/venv/bin/moto_server" ] || "$cache/venv/bin/pip" install -q 'moto[server]==5.2.5'
      ;;
  esac
}

# Starts the S3 server Tansu's s3 engine writes to, with an empty bucket "tansu".
start_s3() {
  local port; port=$(free_port)
  "$cache/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$scratch/moto.log" 2>&1 &
  s3_pid=$!
  wait_for_port "$port"
  export AWS_ENDPOINT="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=bench \
    AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1
  curl -sf -X PUT "$AWS_ENDPOINT/tansu" >/dev/null
}

# Prints the command that runs BROKER in the foreground on PORT with data in DIR.
broker_command() { # BROKER DIR PORT
  case "$1" in
    strata) echo "$strata server --data-dir $2 --kafka-listen 127.0.0.1:$3 --admin-listen 127.0.0.1:0 --durability os$(strata_sustained_config)" ;;
    kafka) bench/peers.sh kafka-config "$2" "$3" >/dev/null 2>&1; echo "bench/peers.sh kafka-exec $2" ;;
    tansu-memory) echo "bench/peers.sh tansu-exec $3" ;;
    tansu-s3) echo "bench/peers.sh tansu-exec $3 s3://tansu/" ;;
  esac
}

# With RETAIN_MIB (long runs), the objects of data retention dropped are deleted within minutes
# rather than after the default orphan grace of an hour, which at these rates outgrows the disk
# (docs/benchmarks.md, "Sustained load"). The sweeper deletes at once the objects it saw
# referenced, but retention here keeps seconds of data, so most objects are committed and
# dropped between two sweeps, and only the grace reclaims them.
strata_sustained_config() {
  [ -n "${RETAIN_MIB:-}" ] || return 0
  cat >"$scratch/strata-sustained.toml" <<'TOML'
"strata.tiering.orphan.grace.ms" = 120000
"strata.tiering.sweep.interval.ms" = 30000
TOML
  echo " --config $scratch/strata-sustained.toml"
}

stop_s3() {
  kill "$s3_pid" 2>/dev/null || true; wait "$s3_pid" 2>/dev/null || true; s3_pid=
}

echo "== baselines"
for broker in $brokers; do prepare "$broker"; done
"$bench" baseline --dir "$scratch" --disk-mib 4096 >"$out/baseline.json"
cat "$out/baseline.json"

echo "== startup"
for broker in $brokers; do
  dir="$scratch/$broker-startup"; mkdir -p "$dir"; port=$(free_port)
  if [ "$broker" = tansu-s3 ]; then start_s3; fi
  # shellcheck disable=SC2046 # the command is split into words on purpose
  "$bench" startup --bootstrap "127.0.0.1:$port" -- $(broker_command "$broker" "$dir" "$port") \
    >"$out/startup-$broker.json"
  if [ -n "$s3_pid" ]; then stop_s3; fi
  rm -rf "$dir"
  echo "$broker: $(tr -d '\n ' <"$out/startup-$broker.json")"
done

echo "== matrix: $duration s runs, $runs per cell"
for cell in $cells; do
  for broker in $brokers; do
    dir="$scratch/$broker"; rm -rf "$dir"; mkdir -p "$dir"; port=$(free_port)
    if [ "$broker" = tansu-s3 ]; then start_s3; fi
    # shellcheck disable=SC2046
    $(broker_command "$broker" "$dir" "$port") >"$scratch/$broker.log" 2>&1 &
    broker_pid=$!
    wait_for_port "$port"
    # One unrecorded run first, so a JIT (Kafka's) is warm when measuring starts.
    IFS=: read -r partitions acks codec <<<"$cell"
    "$bench" produce --bootstrap "127.0.0.1:$port" --partitions "$partitions" --acks "$acks" \
      --compression "$codec" --duration 5 --quiet >/dev/null 2>&1 || true
    CELLS=$cell bench/omb.sh "127.0.0.1:$port" "$broker_pid" "$broker" "$out" "$duration" "$runs"
    kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true; broker_pid=
    if [ -n "$s3_pid" ]; then stop_s3; fi
    rm -rf "$dir"
  done
done
echo "== done: python3 bench/summarize.py $out"
