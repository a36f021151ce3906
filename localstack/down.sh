#!/usr/bin/env bash
# Stops and removes everything ./up.sh started, volumes included.
set -euo pipefail
cd "$(dirname "$0")"
docker compose -f compose.yaml down --volumes --remove-orphans
