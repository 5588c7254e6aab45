"""`python -m tests.cluster.harness up DIR`: the test cluster in the foreground, for people.

`make cluster-up` runs this in the background (scripts/cluster-up.sh). It starts the control
plane and the process kubelet under DIR, installs the CRDs of crds/, copies the admin kubeconfig
to DIR/kubeconfig, records every PID and port in DIR/state.json, and writes DIR/ready. On SIGTERM
or SIGINT it stops the kubelet (its pods' processes die) and the control plane, by PID, then
removes DIR/ready. `make cluster-down` sends that SIGTERM and checks that nothing is left.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.controlplane import REPO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster.harness")
    parser.add_argument("command", choices=["up"])
    parser.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    folder: Path = args.dir.resolve()
    for stale in ("ready", "kubeconfig", "state.json"):
        (folder / stale).unlink(missing_ok=True)
    for stale in ("control-plane", "kubelet"):
        shutil.rmtree(folder / stale, ignore_errors=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    cluster = Cluster(folder)
    try:
        cluster.start()
        from tests.cluster.conftest import crd_documents, install_crds

        assert cluster.client is not None
        install_crds(cluster.client, crd_documents(REPO / "crds"))
        shutil.copyfile(cluster.kubeconfig, folder / "kubeconfig")
        state = {
            "pid": os.getpid(),
            "apiserver": cluster.url,
            "pids": cluster.control.pids,
            "ports": cluster.control.ports,
        }
        (folder / "state.json").write_text(json.dumps(state, indent=2))
        (folder / "ready").write_text(cluster.url + "\n")
        print(f"cluster up: {cluster.url}; kubeconfig {folder / 'kubeconfig'}", flush=True)
        while not stop.wait(1.0):
            if cluster.kubelet is not None and cluster.kubelet.errors:
                print(f"kubelet error: {cluster.kubelet.errors[-1]!r}", file=sys.stderr, flush=True)
                cluster.kubelet.errors.clear()
    finally:
        (folder / "ready").unlink(missing_ok=True)
        cluster.stop()
        print("cluster stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
