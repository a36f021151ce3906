#!/usr/bin/env bash
# The one test command: installs what the tests need (idempotently), then runs the whole
# gate — formatting, lints, unit tests, and end-to-end tests with real Kafka clients.
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies"
bash scripts/install-test-deps.sh

step "strata-wire's request layouts match Kafka's message specs"
python3 scripts/gen-wire-schema.py --check

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "deployment files (k8s, Dockerfile, terraform, compose)"
bash scripts/check-deploy.sh

step "building the strata and strata-bench binaries (the end-to-end tests run them)"
cargo build -p strata -p strata-bench --locked

step "the local cloud without Docker: LocalStack S3, three nodes, an OTLP sink (localstack/host.sh check)"
STRATA_BIN="${CARGO_TARGET_DIR:-target}/debug/strata" bash localstack/host.sh check

step "fault runs with a history check, short version (tests/faults/faults.py --short)"
"${STRATA_CACHE:-$HOME/.cache/strata}/venv/bin/python" tests/faults/faults.py --short \
  --strata "${CARGO_TARGET_DIR:-target}/debug/strata" 2>&1 | grep -v '^%'

step "cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
STRATA_REQUIRE_CLIENTS=1 cargo test --workspace --locked -- --test-threads="${STRATA_TEST_THREADS:-2}" 2>&1 | tee "$log"
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "\nsummary: %d passed, %d failed\n", p, f }' "$log"
