# Shared by the bench scripts (sourced): a scratch directory and the processes a script
# started, both removed on exit; a free loopback port; Apache Kafka's three-node cluster.

scratch=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts three Kafka nodes under DIR (bench/peers.sh kafka-cluster) with MIN_ISR; sets
# `kafka_bootstrap` and adds their PIDs to `pids`.
start_kafka_cluster() { # DIR MIN_ISR
  local started started_pids
  started=$(bash bench/peers.sh kafka-cluster "$1" "$2")
  kafka_bootstrap=$(echo "$started" | sed -n 's/.*bootstrap=\([^ ]*\).*/\1/p')
  IFS=, read -r -a started_pids <<<"$(echo "$started" | sed -n 's/.*pids=\([^ ]*\).*/\1/p')"
  pids+=("${started_pids[@]}")
}
