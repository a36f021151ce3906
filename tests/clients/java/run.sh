#!/usr/bin/env bash
# Runs the Java client's compatibility checks (built by scripts/install-test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")"
exec java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "target/classes:target/dependency/*" strata.Compat
