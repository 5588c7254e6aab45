#!/usr/bin/env bash
# `make cluster-down`: stop what `make cluster-up` started (SIGTERM to the harness, which stops
# the kubelet's pods and the control plane by PID), then check that no process it recorded is
# alive and no port it recorded is still listening.
set -euo pipefail

cd "$(dirname "$0")/.."
DIR=.cluster
PYTHON=${PYTHON_BIN:-.venv/bin/python}

if [ ! -f "$DIR/harness.pid" ]; then
  echo "cluster-down: nothing to stop (no $DIR/harness.pid)"
  exit 0
fi
pid=$(cat "$DIR/harness.pid")
if kill -0 "$pid" 2>/dev/null; then
  echo "==> stopping the harness (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 600); do  # 60 s
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "cluster-down: pid $pid did not stop within 60 s; killing it" >&2
    kill -KILL "$pid"
  fi
fi
rm -f "$DIR/harness.pid" "$DIR/ready"

if [ -f "$DIR/state.json" ]; then
  "$PYTHON" - "$DIR/state.json" <<'PY'
"""Fail if a recorded process is alive or a recorded port still listens."""

import json
import sys
import time

import psutil

state = json.load(open(sys.argv[1]))
deadline = time.monotonic() + 10
while True:
    alive = [pid for pid in state["pids"] if psutil.pid_exists(pid)
             and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    listening = sorted(
        c.laddr.port for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in state["ports"]
        and c.laddr.ip == "127.0.0.1"
    )
    if not alive and not listening:
        break
    if time.monotonic() > deadline:
        sys.exit(f"cluster-down: left behind: processes {alive}, ports {listening}")
    time.sleep(0.1)
print("==> stopped; no process or port left behind")
PY
  rm -f "$DIR/state.json" "$DIR/kubeconfig"
fi
