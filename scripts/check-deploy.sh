#!/usr/bin/env bash
# Offline checks of the deployment files (no cluster, no cloud account, no Docker daemon):
#   - every k8s overlay renders with `kubectl kustomize` and passes `kubernetes-validate --strict`;
#   - the Dockerfile builds only the strata binary and runs it as a non-root user.
# Uses the test venv (scripts/install-test-deps.sh) for kubernetes-validate.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${STRATA_VENV:-${HOME}/.cache/strata/venv}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
say() { printf '  %s\n' "$*"; }

# Kubernetes: the oldest version the manifests promise (pod-index labels: 1.28+) and the newest.
if ! command -v kubectl >/dev/null; then
  say "kubectl is not installed: the k8s overlays were NOT rendered or validated"
  exit 1
fi
for overlay in k8s/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" >"$out/$name.yaml"
  for version in 1.28.0 1.37.0; do
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$out/$name.yaml"
  done
  say "k8s/overlays/$name: $(grep -c '^kind:' "$out/$name.yaml") objects render and validate (1.28, 1.37)"
done

# The image: a multi-stage build whose runtime stage holds the binary alone, as a non-root user.
grep -q '^FROM .* AS build$' Dockerfile
grep -q '^COPY --from=build /src/target/release/strata /usr/local/bin/strata$' Dockerfile
grep -q '^USER 10001' Dockerfile
say "Dockerfile: multi-stage, the strata binary only, non-root"
