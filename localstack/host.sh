#!/usr/bin/env bash
# The localstack/ topology without Docker: LocalStack S3 in host mode, three Strata nodes
# (controllers and brokers) tiering into it, and a small OTLP sink standing in for the
# collector, all as local processes on loopback ports the OS picks.
#
#   localstack/host.sh          start, print where to connect, run until Ctrl-C
#   localstack/host.sh check    start, produce and consume through the cluster, see spans
#                               arrive at the sink, and stop (the test command runs this)
#
# LocalStack 4.14 needs Python 3.13+ (it imports warnings.deprecated); it is installed once
# into ~/.cache/strata/localstack-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
CACHE="${HOME}/.cache/strata"
LS_VENV="$CACHE/localstack-venv"
TEST_VENV="$CACHE/venv"
STRATA="${STRATA_BIN:-${CARGO_TARGET_DIR:-target}/debug/strata}"
scratch=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # LocalStack can hang in its own shutdown: 10 s for everything, then SIGKILL.
  for _ in $(seq 1 50); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT
say() { printf '  %s\n' "$*"; }
# N distinct free loopback ports, below the kernel's ephemeral range: a port from bind(0)
# could be taken by any outgoing connection before the process it is meant for binds it.
free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports = []
for port in random.sample(range(10000, low), low - 10000):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    ports.append(port)
    if len(ports) == int(sys.argv[1]):
        break
print(*ports)
PY
}
wait_http() { # URL
  for _ in $(seq 1 300); do curl -sf -m 2 "$1" >/dev/null && return 0; sleep 0.2; done
  echo "nothing answered at $1" >&2; return 1
}

python313=""
for candidate in python3.14 python3.13 "${HOME}"/.pyenv/versions/3.1[3-9]*/bin/python python3; do
  if command -v "$candidate" >/dev/null \
    && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null; then
    python313=$(command -v "$candidate"); break
  fi
done
# What the venv is built from and with; a venv built otherwise is rebuilt.
ls_packages="localstack-core[runtime]==4.14.0 cbor2<6 pyOpenSSL==24.2.1 cryptography==43.0.3 service-identity"
if [ -z "$python313" ]; then
  say "FALLBACK: LocalStack needs Python 3.13 or later and none is installed; moto stands in for its S3"
else
  ls_stamp="$("$python313" -c 'import sys; print(sys.version)' | head -1) $ls_packages"
  if [ "$(cat "$LS_VENV/.strata-ready" 2>/dev/null)" != "$ls_stamp" ]; then
    say "installing LocalStack (host mode, S3 only) into $LS_VENV"
    rm -rf "$LS_VENV"
    "$python313" -m venv "$LS_VENV"
    # shellcheck disable=SC2086 # one word per package
    "$LS_VENV/bin/pip" install -q $ls_packages
    echo "$ls_stamp" >"$LS_VENV/.strata-ready"
  fi
fi
[ -x "$STRATA" ] || { echo "build strata first (cargo build -p strata): $STRATA is missing" >&2; exit 1; }

# LocalStack S3 on loopback: hypercorn bound to 127.0.0.1, no DNS server.
read -r s3_port otlp_port k0 k1 k2 a0 a1 a2 c0 c1 c2 < <(free_ports 11)
if [ -n "$python313" ]; then
  GATEWAY_SERVER=hypercorn GATEWAY_LISTEN="127.0.0.1:$s3_port" SERVICES=s3 DNS_ADDRESS=0 \
    DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 FILESYSTEM_ROOT="$scratch/localstack" \
    LOCALSTACK_VOLUME_DIR="$scratch/localstack/vol" \
    "$LS_VENV/bin/python" -m localstack.runtime.main >"$scratch/localstack.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$s3_port/_localstack/health"
  s3_name="LocalStack S3"
else
  "$TEST_VENV/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >"$scratch/moto.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$s3_port/"
  s3_name="moto S3 (fallback)"
fi
curl -sf -m 10 -X PUT "http://127.0.0.1:$s3_port/strata" >/dev/null \
  || { echo "$s3_name did not create the bucket; its log:" >&2; tail -20 "$scratch"/*.log >&2; exit 1; }
say "$s3_name at http://127.0.0.1:$s3_port (bucket strata)"

# The OTLP/HTTP sink: accepts what the brokers export and counts it.
python3 - "$otlp_port" "$scratch/spans" >"$scratch/otlp.log" 2>&1 <<'PY' &
import http.server, sys
port, out = int(sys.argv[1]), sys.argv[2]
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(out, "a") as f:
            f.write(f"{self.path} {len(body)}\n")
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()
PY
pids+=($!)

# Three nodes, each both controller and broker, tiering within seconds (a dev setting).
cat >"$scratch/strata.toml" <<'TOML'
"remote.log.manager.task.interval.ms" = 500
"strata.tiering.upload.max.lag.ms" = 2000
TOML
kafka=("$k0" "$k1" "$k2") admin=("$a0" "$a1" "$a2") controller=("$c0" "$c1" "$c2")
quorum="0@127.0.0.1:${controller[0]},1@127.0.0.1:${controller[1]},2@127.0.0.1:${controller[2]}"
store="s3://strata/cluster?endpoint=http://127.0.0.1:$s3_port&region=us-east-1&path_style=true"
for i in 0 1 2; do
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp_port" OTEL_SERVICE_NAME=strata \
    "$STRATA" server --node-id "$i" --data-dir "$scratch/node-$i" --object-store "$store" \
    --config "$scratch/strata.toml" \
    --kafka-listen "127.0.0.1:${kafka[$i]}" --admin-listen "127.0.0.1:${admin[$i]}" \
    --controller-listen "127.0.0.1:${controller[$i]}" --controller-quorum "$quorum" \
    >"$scratch/node-$i.log" 2>&1 &
  pids+=($!)
done
for i in 0 1 2; do wait_http "http://127.0.0.1:${admin[$i]}/readyz"; done
bootstrap="127.0.0.1:${kafka[0]},127.0.0.1:${kafka[1]},127.0.0.1:${kafka[2]}"
say "Strata: bootstrap.servers=$bootstrap"
say "metrics: http://127.0.0.1:${admin[0]}/metrics (and ${admin[1]}, ${admin[2]})"
say "spans: OTLP/HTTP to 127.0.0.1:$otlp_port, counted in $scratch/spans"

if [ "$mode" != check ]; then
  say "Ctrl-C stops everything"
  wait
  exit 0
fi

"$TEST_VENV/bin/python" - "$bootstrap" <<'PY'
import sys
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap = sys.argv[1]
admin = AdminClient({"bootstrap.servers": bootstrap})
for future in admin.create_topics([NewTopic("localstack-check", 3, 1)]).values():
    future.result(30)
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(300)}
for key, value in sent.items():
    producer.produce("localstack-check", value, key)
assert producer.flush(30) == 0, "every record acknowledged"
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "localstack-check",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
consumer.assign([TopicPartition("localstack-check", p, 0) for p in range(3)])
seen = {}
while len(seen) < len(sent):
    message = consumer.poll(30)
    assert message is not None, f"only {len(seen)} of {len(sent)} records came back"
    assert message.error() is None, message.error()
    seen[message.key()] = message.value()
assert seen == sent, "every record comes back as sent"
consumer.close()
print(f"  produced and consumed {len(sent)} records through the three nodes")
PY
for _ in $(seq 1 100); do
  [ -s "$scratch/spans" ] && grep -q '^/v1/traces ' "$scratch/spans" && break
  sleep 0.2
done
grep -q '^/v1/traces ' "$scratch/spans" || { echo "no spans reached the OTLP sink" >&2; exit 1; }
say "spans arrived at the OTLP sink: $(grep -c '^/v1/traces ' "$scratch/spans") export(s)"
for _ in $(seq 1 100); do
  curl -s -m 10 "http://127.0.0.1:$s3_port/strata?list-type=2&prefix=cluster/segments/" | grep -q '<Key>' && break
  sleep 0.2
done
curl -s -m 10 "http://127.0.0.1:$s3_port/strata?list-type=2&prefix=cluster/segments/" | grep -q '<Key>' \
  || { echo "no tiered objects reached $s3_name" >&2; exit 1; }
say "tiered objects are in $s3_name under s3://strata/cluster/segments/"
