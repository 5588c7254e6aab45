"""The cluster gateway's hop on the warm path: its CPU per call, and its latency over the agent's.

The real control plane of `tests/cluster`, the real operator and `kubelambda gateway --cluster`
(as `bench.cluster` starts them). One function is invoked once (a pod is claimed and
specialized), then rounds of sequential warm calls alternate between the gateway (a kept-alive
connection, as an SDK uses) and the pod's agent directly (`POST /kubelambda/v1/invoke` with the
token a gateway derives, what the gateway itself sends), and `kubelambda dev` serving the same
handler (the same dispatch core, its runtime on a pipe: no hop). CPU time per call is utime +
stime from /proc/PID/stat over each process's own rounds (and, through the gateway, each of the
pod's containers' CPU from schedstat). With `--profile FILE`, py-spy samples the cluster gateway
(and the pod's agent, into FILE.agent) during one more round (the thread holding the GIL; a send
that wakes another process shows as time in the send, CPU or not) and prints the top entries.

Run: `.venv/bin/python -m bench.hop [--calls N] [--rounds N] [--profile FILE]`.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from pathlib import Path

from bench.cluster import cpu_snapshot, serving_parts, uptime
from bench.gateway import Gateway
from kubelambda.kube.agentauth import NONCE, agent_token
from tests.cluster.conftest import crd_documents, install_crds
from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.controlplane import REPO
from tests.cluster.lambda_stack import LambdaStack, handler_code, running_stack

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of process `pid`, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def timed(
    conn: http.client.HTTPConnection, path: str, headers: dict[str, str], n: int
) -> list[float]:
    samples = []
    for index in range(n):
        started = time.perf_counter()
        conn.request("POST", path, body=b"{}", headers={**headers, "X-Call": str(index)})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}")
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def measure(stack: LambdaStack, calls: int, rounds: int, profile: Path | None) -> None:
    url = stack.gateways["gw-a"][1]
    gateway = stack.gateways["gw-a"][0].proc.pid
    stack.function("hop", handler_code("event"))
    stack.wait_state("functions", "hop", "Active")
    stack.wait_servable("hop")
    stack.invoke("hop")
    (pod,) = stack.claimed_pods("kubelambda.dev/function=hop")
    groups = serving_parts(stack, "hop")  # the gateway, and the pod's containers' groups
    parts: dict[str, float] = {}
    key = stack.agent_key_file.read_bytes().strip()
    token = agent_token(key, pod.metadata.annotations[NONCE])
    port = int(url.rsplit(":", 1)[1])
    to_gateway = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    to_agent = http.client.HTTPConnection(pod.status.pod_ip, 8080, timeout=30)
    gw_path = "/2015-03-31/functions/hop/invocations"
    agent_path = "/kubelambda/v1/invoke"
    agent_headers = {
        "Authorization": f"Bearer {token}",
        "Lambda-Runtime-Aws-Request-Id": "bench",
        "X-Kubelambda-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:hop",
    }
    dev = Gateway()  # `kubelambda dev` with the same no-op handler: the same dispatch, no hop
    dev_url = urllib.parse.urlsplit(dev.url)
    to_dev = http.client.HTTPConnection("127.0.0.1", dev_url.port, timeout=30)
    timed(to_gateway, gw_path, {}, 50)  # warm-up: the connections open, code paths warm
    timed(to_agent, agent_path, agent_headers, 50)
    timed(to_dev, dev_url.path, {}, 50)
    through: list[float] = []
    direct: list[float] = []
    in_dev: list[float] = []
    dev_cpu = 0.0
    user = system = 0.0
    idle = cpu_seconds(gateway)
    time.sleep(3.0)
    after_idle = cpu_seconds(gateway)
    idle_rate = (sum(after_idle) - sum(idle)) / 3.0  # CPU seconds per second with no calls
    print(f"load before the rounds: {uptime()}")
    wall = 0.0
    for _ in range(rounds):
        before = cpu_seconds(gateway)
        snapshot = cpu_snapshot(groups) if groups else {}
        started = time.perf_counter()
        through += timed(to_gateway, gw_path, {}, calls)
        wall += time.perf_counter() - started
        after = cpu_seconds(gateway)
        if groups:
            for part, ns in cpu_snapshot(groups).items():
                parts[part] = parts.get(part, 0.0) + (ns - snapshot[part]) / 1e9
        user += after[0] - before[0]
        system += after[1] - before[1]
        direct += timed(to_agent, agent_path, agent_headers, calls)
        before = cpu_seconds(dev.proc.pid)
        in_dev += timed(to_dev, dev_url.path, {}, calls)
        dev_cpu += sum(cpu_seconds(dev.proc.pid)) - sum(before)
    to_dev.close()
    dev.stop()
    print(f"load after the rounds:  {uptime()}")
    n = len(through)
    print(f"{'warm invoke, sequential, kept-alive':<58} {'n':>5} {'p50':>9} {'p95':>9}")
    for label, samples in (
        ("through the cluster gateway", through),
        ("straight to the pod's agent", direct),
        ("kubelambda dev (the same dispatch, its own runtime)", in_dev),
    ):
        p95 = sorted(samples)[int(len(samples) * 0.95)]
        print(f"{label:<58} {len(samples):>5} {statistics.median(samples):>7.2f}ms {p95:>7.2f}ms")
    print(
        f"gateway CPU per warm call (utime+stime over {n} calls): "
        f"{(user + system) / n * 1000:.3f} ms (user {user / n * 1000:.3f}, "
        f"system {system / n * 1000:.3f})"
    )
    print(f"kubelambda dev's CPU per warm call, same rounds: {dev_cpu / n * 1000:.3f} ms")
    print(
        f"gateway CPU at rest: {idle_rate * 1000:.1f} ms per second; per call without it: "
        f"{(user + system - idle_rate * wall) / n * 1000:.3f} ms"
    )
    if parts:
        print(
            "CPU per warm call through the gateway (schedstat, at rest included): "
            + ", ".join(f"{part} {seconds / n * 1000:.3f} ms" for part, seconds in parts.items())
        )
    if profile is not None:
        # The gateway, and the agent (its container's process) when it was found.
        targets = {"gateway": (gateway, profile)}
        if groups:
            targets["agent"] = (groups["agent"], profile.with_name(profile.name + ".agent"))
        spies = [
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--format",
                    "raw",
                    "--rate",
                    "500",
                    "--gil",  # only the thread holding the GIL: Python's CPU, not its waits
                    "--nonblocking",
                    "-p",
                    str(pid),
                    "-o",
                    str(path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid, path in targets.values()
        ]
        time.sleep(1.0)  # py-spy attaches
        timed(to_gateway, gw_path, {}, calls * 3)
        for spy in spies:
            spy.send_signal(2)
            spy.wait(30)
        for name, (_pid, path) in targets.items():
            top(path, name)
    to_gateway.close()
    to_agent.close()


def top(profile: Path, name: str, count: int = 25) -> None:
    """Self and inclusive shares of the sampled frames, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in profile.read_text().splitlines():
        stack, _, weight = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        samples = int(weight)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    print(f"py-spy: {total} samples of the {name}")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"  top by {title}:")
        for frame, samples in counter.most_common(count):
            print(f"    {samples / total * 100:5.1f}%  {frame[:110]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=200, help="calls per round (200)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each path (5)")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the gateway into FILE (and the agent into FILE.agent)"
    )
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="kubelambda-bench-") as tmp,
        Cluster(Path(tmp) / "cluster") as cluster,
    ):
        assert cluster.client is not None
        install_crds(cluster.client, crd_documents(REPO / "crds"))
        with running_stack(cluster, Path(tmp) / "stack", warm=2) as stack:
            measure(stack, args.calls, args.rounds, args.profile)


if __name__ == "__main__":
    main()
