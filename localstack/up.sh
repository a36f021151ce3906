#!/usr/bin/env bash
# Starts LocalStack S3, three Strata nodes, an OpenTelemetry collector and Jaeger (Docker).
# Without Docker: ./host.sh runs the same topology as local processes.
set -euo pipefail
cd "$(dirname "$0")"
docker compose -f compose.yaml up -d --build --wait
cat <<TXT
Strata is up.
  Kafka clients:  bootstrap.servers=127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094
  metrics:        http://127.0.0.1:19644/metrics (and 19645, 19646)
  traces:         http://127.0.0.1:16686 (Jaeger, service "strata")
  S3 (LocalStack): http://127.0.0.1:4566, bucket "strata", keys test/test
Stop and remove everything: ./down.sh
TXT
