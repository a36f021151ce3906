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
# No ~/.terraformrc here, and terraform warns about that on every command.
: >"$out/terraformrc"
export TF_CLI_CONFIG_FILE="$out/terraformrc"
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
    "$VENV/bin/kubernetes-validate" --strict --quiet --no-warn -k "$version" "$out/$name.yaml"
  done
  crds=$(grep -c '^apiVersion: monitoring.coreos.com' "$out/$name.yaml" || true)
  say "k8s/overlays/$name: $(grep -c '^kind:' "$out/$name.yaml") objects render and validate (1.28, 1.37; $crds Prometheus Operator object(s) have no schema to check)"
done

# The image: a multi-stage build whose runtime stage holds the binary alone, as a non-root user.
grep -q '^FROM .* AS build$' Dockerfile
grep -q '^COPY --from=build /src/target/release/strata /usr/local/bin/strata$' Dockerfile
grep -q '^USER 10001' Dockerfile
say "Dockerfile: multi-stage, the strata binary only, non-root"

# Terraform: formatting, every module and root validated, `terraform test` (mock provider,
# plans only), and the local root applied against moto (S3 + IAM) with its lifecycle rules
# read back from the server. Without terraform or the provider mirror, the structural
# fallback runs instead and says so.
if command -v terraform >/dev/null && [ -d /opt/tf-plugins ]; then
  terraform fmt -check -recursive terraform
  for dir in terraform/modules/*/ terraform/examples/*/ terraform/localstack/; do
    data="$out/tf-$(echo "$dir" | tr '/' '-')"
    export TF_DATA_DIR="$data" TF_IN_AUTOMATION=1
    terraform -chdir="$dir" init -backend=false -plugin-dir=/opt/tf-plugins -input=false -no-color >"$out/init.log" 2>&1 \
      || { cat "$out/init.log"; exit 1; }
    terraform -chdir="$dir" validate -no-color >/dev/null
    if [ -d "$dir/tests" ]; then
      terraform -chdir="$dir" test -no-color >"$out/test.log" 2>&1 || { cat "$out/test.log"; exit 1; }
      say "$dir: valid; $(grep -o '[0-9]* passed' "$out/test.log") in terraform test"
    else
      say "$dir: valid"
    fi
    rm -f "$dir/.terraform.lock.hcl"
  done
  if [ -x "$VENV/bin/moto_server" ]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$out/moto.log" 2>&1 &
    moto=$!
    trap 'kill "$moto" 2>/dev/null || true; rm -rf "$out"' EXIT
    for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.2; done
    export TF_DATA_DIR="$out/tf-apply"
    terraform -chdir=terraform/localstack init -backend=false -plugin-dir=/opt/tf-plugins -input=false -no-color >/dev/null
    apply() {
      terraform -chdir=terraform/localstack "$1" -auto-approve -input=false -no-color \
        -state="$out/local.tfstate" -var "endpoint=http://127.0.0.1:$port" >"$out/apply.log" 2>&1 \
        || { cat "$out/apply.log"; exit 1; }
    }
    apply apply
    lifecycle=$(curl -s "http://127.0.0.1:$port/strata?lifecycle")
    grep -q '<ID>abort-incomplete-multipart-uploads</ID>' <<<"$lifecycle"
    grep -q '<ID>expire-check-probes</ID>' <<<"$lifecycle"
    apply destroy
    rm -f terraform/localstack/.terraform.lock.hcl
    say "terraform/localstack: applied against moto; the bucket's lifecycle rules are on the server; destroyed"
  else
    say "moto is not installed: the terraform apply against a local S3 was SKIPPED"
  fi
else
  "$VENV/bin/python" scripts/check-terraform-structure.py
  say "terraform is missing: the apply against a local S3 was SKIPPED"
fi

# The local cloud: the compose file parses, builds strata from the Dockerfile, names only
# pinned public images, publishes ports on loopback only, and mounts files that exist.
"$VENV/bin/python" - localstack/compose.yaml <<'PY'
import re, sys
from pathlib import Path
import yaml

path = Path(sys.argv[1])
compose = yaml.safe_load(path.read_text())
services = compose["services"]
built = [n for n, s in services.items() if "build" in s]
assert built, "strata is built from the repository's Dockerfile"
for name in built:
    build = services[name]["build"]
    assert (path.parent / build["context"] / build["dockerfile"]).is_file(), name
for name, service in services.items():
    if "build" in service:
        continue
    image = service["image"]
    assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+", image), f"{name}: {image} is not pinned to a version"
    for port in service.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        assert (path.parent / source).exists(), f"{name} mounts {source}, which does not exist"
for name in built:
    for port in services[name].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
print(f"  localstack/compose.yaml: {len(services)} services; {len(built)} built from the Dockerfile, the rest pinned; loopback ports only")
PY
