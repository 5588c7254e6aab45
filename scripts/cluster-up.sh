#!/usr/bin/env bash
# `make cluster-up`: the test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler) and the process kubelet, in the background, for people and outside checks.
#
# State lives in .cluster/: kubeconfig (admin), harness.pid, harness.log, state.json (every PID
# and port), and the kubelet's pod folders (kubelet/<ns>_<pod>_<uid>/logs/<container>.log are
# the containers' logs: there is no kubelet API, so `kubectl logs` cannot reach them).
# `make cluster-down` stops it all. Needs `make tools` (the Makefile target runs it first).
set -euo pipefail

cd "$(dirname "$0")/.."
DIR=.cluster
PYTHON=${PYTHON_BIN:-.venv/bin/python}
KUBECTL=${KUBECTL:-.venv/bin/kubectl}

if [ -f "$DIR/harness.pid" ] && kill -0 "$(cat "$DIR/harness.pid")" 2>/dev/null; then
  echo "cluster-up: already running (pid $(cat "$DIR/harness.pid")); make cluster-down stops it" >&2
  exit 1
fi
mkdir -p "$DIR"
rm -f "$DIR/ready"
echo "==> starting the control plane and the process kubelet (log: $DIR/harness.log)"
setsid "$PYTHON" -m tests.cluster.harness up "$DIR" >"$DIR/harness.log" 2>&1 </dev/null &
echo $! >"$DIR/harness.pid"

for _ in $(seq 1 1200); do  # 120 s
  if [ -f "$DIR/ready" ]; then
    echo "==> ready: export KUBECONFIG=$PWD/$DIR/kubeconfig"
    "$KUBECTL" --kubeconfig "$DIR/kubeconfig" get nodes
    exit 0
  fi
  if ! kill -0 "$(cat "$DIR/harness.pid")" 2>/dev/null; then
    echo "cluster-up: the harness exited; its log:" >&2
    tail -40 "$DIR/harness.log" >&2
    rm -f "$DIR/harness.pid"
    exit 1
  fi
  sleep 0.1
done
echo "cluster-up: not ready within 120 s; stopping it (log: $DIR/harness.log)" >&2
scripts/cluster-down.sh
exit 1
