#!/usr/bin/env bash
# Installs and runs the peer brokers the benchmarks compare against, on loopback only.
#
#   bench/peers.sh install                 resolve Apache Kafka 4.4 from Maven Central (idempotent)
#   bench/peers.sh kafka-config DIR [PORT] write a single-node KRaft (combined mode) config for
#                                          DIR and format it; prints the bootstrap address
#   bench/peers.sh kafka-exec DIR          run that Kafka in the foreground
#   bench/peers.sh kafka-start DIR         config + run in the background; prints
#                                          "kafka bootstrap=HOST:PORT pid=PID" when ready
#   bench/peers.sh kafka-cluster DIR [MIN_ISR]  three KRaft combined nodes (-Xmx1g each) in the
#                                          background; prints "kafka bootstrap=HOST:PORT pids=A,B,C"
#                                          once all three serve
#   bench/peers.sh tansu-install           cargo install Tansu (the Rust peer) into the cache
#   bench/peers.sh tansu-exec PORT [URL]   run Tansu in the foreground (default memory engine)
#   bench/peers.sh stop PID                stop a peer this script started, by PID
set -euo pipefail
cd "$(dirname "$0")"
CACHE="${STRATA_CACHE:-$HOME/.cache/strata}"
LIBS="$CACHE/kafka-libs"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

case "${1:-}" in
  install)
    if [ -f "$LIBS/.done" ]; then echo "kafka libs present in $LIBS"; exit 0; fi
    (cd kafka && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$LIBS")
    touch "$LIBS/.done"
    echo "kafka libs installed in $LIBS"
    ;;
  kafka-config)
    # Writes DIR/server.properties (Kafka port PORT, or a free one) and formats the storage.
    dir="${2:?data directory}"
    port="${3:-$(free_port)}"
    controller=$(free_port)
    mkdir -p "$dir"
    cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/logs
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# Sustained runs bound their disk use with retention.bytes: apply it within seconds.
log.retention.check.interval.ms=5000
PROPS
    # Static voters: format without --standalone.
    java -cp "$LIBS/*" kafka.tools.StorageTool format -t "$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid)" \
      -c "$dir/server.properties" >"$dir/format.log" 2>&1
    echo "127.0.0.1:$port"
    ;;
  kafka-exec)
    # Runs a configured Kafka in the foreground (what `strata-bench startup` times).
    dir="${2:?data directory}"
    exec java -cp "$LIBS/*" kafka.Kafka "$dir/server.properties"
    ;;
  kafka-start)
    dir="${2:?data directory}"
    bootstrap=$("$0" kafka-config "$dir")
    nohup "$0" kafka-exec "$dir" >"$dir/kafka.log" 2>&1 &
    pid=$!
    port="${bootstrap##*:}"
    for _ in $(seq 1 120); do
      if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
        echo "kafka bootstrap=$bootstrap pid=$pid"
        exit 0
      fi
      sleep 0.5
    done
    echo "kafka did not start; see $dir/kafka.log" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
    ;;
  kafka-cluster)
    dir="${2:?data directory}"
    min_isr="${3:-1}"
    ports=(); controllers=()
    for n in 1 2 3; do ports+=("$(free_port)"); controllers+=("$(free_port)"); done
    voters="1@127.0.0.1:${controllers[0]},2@127.0.0.1:${controllers[1]},3@127.0.0.1:${controllers[2]}"
    cluster=$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null)
    pids=()
    for n in 1 2 3; do
      mkdir -p "$dir/kafka$n"
      cat >"$dir/kafka$n/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:${ports[$((n - 1))]},CONTROLLER://127.0.0.1:${controllers[$((n - 1))]}
advertised.listeners=PLAINTEXT://127.0.0.1:${ports[$((n - 1))]}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/kafka$n/logs
min.insync.replicas=$min_isr
group.initial.rebalance.delay.ms=0
PROPS
      java -cp "$LIBS/*" kafka.tools.StorageTool format -t "$cluster" \
        -c "$dir/kafka$n/server.properties" >"$dir/kafka$n/format.log" 2>&1
      nohup java -Xmx1g -cp "$LIBS/*" kafka.Kafka "$dir/kafka$n/server.properties" \
        >"$dir/kafka$n.log" 2>&1 &
      pids+=($!)
    done
    bootstrap="127.0.0.1:${ports[0]}"
    for _ in $(seq 1 240); do
      if kcat -b "$bootstrap" -L 2>/dev/null | grep -q ' 3 brokers'; then
        echo "kafka bootstrap=$bootstrap pids=$(IFS=,; echo "${pids[*]}")"
        exit 0
      fi
      sleep 0.5
    done
    echo "the Kafka cluster did not start; see $dir/kafka*.log" >&2
    kill "${pids[@]}" 2>/dev/null || true
    exit 1
    ;;
  tansu-install)
    # Nisshi/Tansu, the Rust peer, with its durable engines (~20 min on 2 cores, once).
    if [ -x "$CACHE/tansu/bin/tansu" ]; then echo "tansu present"; exit 0; fi
    CARGO_TARGET_DIR="$CACHE/tansu-target" cargo install tansu --locked --features dynostore --root "$CACHE/tansu"
    ;;
  tansu-exec)
    # Runs Tansu in the foreground on 127.0.0.1:PORT (it binds 0.0.0.0 unless told).
    port="${2:?port}"; engine="${3:-memory://tansu/}"
    exec "$CACHE/tansu/bin/tansu" broker --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine "$engine"
    ;;
  stop)
    kill "${2:?pid}"
    ;;
  *)
    sed -n '2,14p' "$0"
    exit 2
    ;;
esac
