"""Cold start through the cluster path: claim a warm pod and specialize it (p50, p95).

The real `kubelambda operator` and `kubelambda gateway --cluster` run as subprocesses against the
real control plane of `tests/cluster` (kube-apiserver, controller-manager and scheduler built by
`make tools`), and the process kubelet runs pods as local processes, so there is no image pull.
Each run creates a new Function (so no environment of it exists), waits until the gateway serves
it and the warm pool is full, then times its first invocation from the client: admission, the
claim (a label patch with a resourceVersion precondition through the API server), the POST of
the spec to the pod's agent, the handler's import (Init Duration) and the invocation. The
function is then deleted, so its pod goes back to the operator. Warm invocations through the same
path are timed for comparison.

Run: `.venv/bin/python -m bench.cluster [--runs N]`.
"""

from __future__ import annotations

import argparse
import base64
import re
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.cluster.conftest import crd_documents, install_crds
from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.controlplane import REPO
from tests.cluster.lambda_stack import LambdaStack, handler_code, running_stack

WARM = "kubelambda.dev/pool=generic,kubelambda.dev/state=warm"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def invoke(url: str, name: str) -> tuple[float, float | None]:
    """(client-side milliseconds, Init Duration in ms from the REPORT line or None)."""
    request = urllib.request.Request(
        f"{url}/2015-03-31/functions/{name}/invocations",
        data=b"{}",
        headers={"X-Amz-Log-Type": "Tail"},
        method="POST",
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
        tail = base64.b64decode(response.headers["X-Amz-Log-Result"]).decode()
    elapsed = (time.perf_counter() - started) * 1000
    found = re.search(r"Init Duration: ([0-9.]+) ms", tail)
    return elapsed, float(found.group(1)) if found else None


def measure(stack: LambdaStack, runs: int, warm_calls: int) -> dict[str, list[float]]:
    url = stack.gateways["gw-a"][1]
    cold: list[float] = []
    init: list[float] = []
    warm: list[float] = []
    for index in range(runs):
        name = f"cold-{index}"
        stack.function(name, handler_code("event"))
        stack.wait_state("functions", name, "Active")
        stack.wait_servable(name)
        stack.wait_pods(WARM, stack.warm)
        elapsed, init_ms = invoke(url, name)
        cold.append(elapsed)
        if init_ms is not None:
            init.append(init_ms)
        if index == 0:
            warm = [invoke(url, name)[0] for _ in range(warm_calls)]
        stack.delete("functions", name)
    return {"cold": cold, "init": init, "warm": warm}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=40, help="cold starts to time (40)")
    parser.add_argument("--warm-calls", type=int, default=200, help="warm calls to time (200)")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="kubelambda-bench-") as tmp,
        Cluster(Path(tmp) / "cluster") as cluster,
    ):
        assert cluster.client is not None
        install_crds(cluster.client, crd_documents(REPO / "crds"))
        with running_stack(cluster, Path(tmp) / "stack", warm=3) as stack:
            stack.wait_pods(WARM, stack.warm)
            invoke_warmup(stack)
            figures = measure(stack, args.runs, args.warm_calls)
    rows = [
        ("cold start: claim a warm pod + specialize + first invoke", figures["cold"]),
        ("  of which Init Duration (the handler's import, in the pod)", figures["init"]),
        ("warm invoke through the same path", figures["warm"]),
    ]
    print(f"{'measurement':<62} {'n':>4} {'p50':>9} {'p95':>9}")
    for label, samples in rows:
        if samples:
            p50, p95 = statistics.median(samples), percentile(samples, 0.95)
            print(f"{label:<62} {len(samples):>4} {p50:>7.1f}ms {p95:>7.1f}ms")


def invoke_warmup(stack: LambdaStack) -> None:
    """One throwaway cold start, so imports and connections in the gateway are warm."""
    stack.function("warmup", handler_code("event"))
    stack.wait_state("functions", "warmup", "Active")
    stack.wait_servable("warmup")
    invoke(stack.gateways["gw-a"][1], "warmup")
    stack.delete("functions", "warmup")


if __name__ == "__main__":
    main()
