#!/usr/bin/env bash
# Installs what the end-to-end tests need, idempotently and without prompts: kcat and
# iptables (apt), a Python venv with confluent-kafka (pip), kafkajs (npm ci), and the Java
# client's runner (Maven). A second run only checks and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${STRATA_CACHE:-$HOME/.cache/strata}"
mkdir -p "$CACHE"
say() { printf '  - %s\n' "$*"; }

# Installs the Debian package that provides command $1, unless the command is there.
apt_tool() {
  if command -v "$1" >/dev/null 2>&1; then
    say "$1 present"
  else
    say "installing $1 (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$1" >/dev/null
  fi
}

apt_tool kcat
# The fault runs (tests/faults) cut links between network namespaces with iptables.
apt_tool iptables

VENV="$CACHE/venv"
PY_REQS=tests/clients/python/requirements.txt
if [ ! -x "$VENV/bin/python" ]; then
  say "creating python venv at $VENV"
  python3 -m venv "$VENV"
fi
if ! cmp -s "$PY_REQS" "$VENV/.strata-requirements" 2>/dev/null; then
  say "installing python client packages (pip)"
  "$VENV/bin/pip" install -q -r "$PY_REQS"
  cp "$PY_REQS" "$VENV/.strata-requirements"
else
  say "python client packages present"
fi

JS=tests/clients/js
if [ ! -d "$JS/node_modules" ] || ! cmp -s "$JS/package-lock.json" "$JS/node_modules/.strata-lock" 2>/dev/null; then
  say "installing kafkajs (npm ci)"
  (cd "$JS" && npm ci --silent --no-audit --no-fund)
  cp "$JS/package-lock.json" "$JS/node_modules/.strata-lock"
else
  say "kafkajs present"
fi

JAVA=tests/clients/java
if [ ! -f "$JAVA/target/classes/strata/Compat.class" ] || [ "$JAVA/pom.xml" -nt "$JAVA/target/classes/strata/Compat.class" ] \
   || [ -n "$(find "$JAVA/src" -newer "$JAVA/target/classes/strata/Compat.class" -print -quit)" ]; then
  say "building the Java client runner (mvn)"
  (cd "$JAVA" && mvn -q -B package dependency:copy-dependencies -DoutputDirectory=target/dependency -DskipTests)
else
  say "Java client runner built"
fi
# Apache Kafka itself, for the differential tests (tests/e2e/differential.rs) and benchmarks.
say "Apache Kafka for differential tests: $(bash bench/peers.sh install)"
echo "test dependencies ready"
