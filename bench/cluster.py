"""Cold start through the cluster path: take a warm pod and specialize it (p50, p95, breakdown).

The real `kubelambda operator` and `kubelambda gateway --cluster` run as subprocesses against the
real control plane of `tests/cluster` (kube-apiserver, controller-manager and scheduler built by
`make tools`), and the process kubelet runs pods as local processes, so there is no image pull.
Each run creates a new Function (so no environment of it exists), waits until the gateway serves
it and the warm pool is full, then times its first invocation from the client: admission, the
pick of a warm pod from the gateway's watch, the POST of the spec to the pod's agent (which takes
one specialization only, so it decides which replica wins), the runtime's init in the pod (Init
Duration) and the invocation. The claim's labels are written through the API server once the
first call is answered; that write's round trip is shown too, but is not part of the cold start.
The function is then deleted, so its pod goes back to the operator. Every other cold start runs
with the operator paused (SIGSTOP, then SIGCONT) for the call: on one machine the pool's refill
(a new pod, two interpreters starting) shares the cores with the cold start it replaces, and the
two figures show what that race costs. After each cold start, once the refill is done and the
machine is quiet (its watch events and status writes handled), a batch of sequential warm
invocations is timed on a function in use all along (one kept-alive connection, as an SDK
keeps), so warm and cold samples interleave and a drift in the machine's load hits both alike.
The batch's first 5 calls are shown apart: they follow an idle spell, and on this VM a call
that wakes idle CPUs costs about half again as much. Then the new function's own next 5 calls
(a fresh runtime's first warm calls) and 5 calls on a new connection each. Every call is timed
by a client in its own process (`bench.caller`): the process kubelet is a thread of this one
and reads each pod's output as it comes, so a client here would wait for the GIL behind it.

The breakdown comes from the gateway's log line for each cold start ("specialized pod ... pick
X ms, specialize Y ms; the claim's write Z ms") and the REPORT line's Init Duration; "the rest"
is what is left of the client's figure: admission, routing, the first invoke's hops to the
runtime and back, the client.

Around each warm batch (past its first 5 calls) the bench also reads the CPU time
(`/proc/PID/task/*/schedstat`, nanoseconds) of the gateway, of the serving pod's agent
container and of its runtime container (each container is its own process group in the
process kubelet), and again after an idle spell as long as the batch, so it prints each one's
CPU per warm call less what it burns without calls (watch events, probes), measured in the same
run as the latencies; and the Runtime API carrier the agent reports (`channel`: pipe for our
bootstrap, http for awslambdaric).

Run: `.venv/bin/python -m bench.cluster [--runs N] [--warm-batch N] [--refill-delay S]`
(`--refill-delay` is the operator's: how long a pool with a free pod left waits after a claim
before it refills; unset, the operator's default).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.caller import Caller
from bench.common import proc_stats
from tests.cluster.conftest import crd_documents, install_crds
from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.controlplane import REPO
from tests.cluster.lambda_stack import LambdaStack, handler_code, running_stack

WARM = "kubelambda.dev/pool=generic,kubelambda.dev/state=warm"
STEADY = "steady"  # the function in use all along, for the warm figures
PHASES = re.compile(
    r"specialized pod \S+ for (?P<name>\S+): pick (?P<pick>[0-9.]+) ms, "
    r"specialize (?P<specialize>[0-9.]+) ms (?:\(in the agent (?P<agent>[0-9.]+) ms\))?; "
    r"the claim's write (?P<write>[0-9.]+) ms"
)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def cold_invoke(caller: Caller, name: str) -> tuple[float, float | None]:
    """(client-side ms on a new connection, Init Duration in ms or None)."""
    elapsed, tail = caller.tail(name)
    found = re.search(r"Init Duration: ([0-9.]+) ms", tail)
    return elapsed, float(found.group(1)) if found else None


KINDS = ("cold", "pick", "write", "specialize", "agent", "init", "rest")
CPU_PARTS = ("gateway", "agent", "runtime")


def busy_jiffies() -> int:
    """The machine's CPU time so far outside idle and iowait, in clock ticks (/proc/stat)."""
    with open("/proc/stat") as file:
        fields = [int(x) for x in file.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]


def wait_quiet(window: float = 0.2, share: float = 0.15, timeout: float = 5.0) -> bool:
    """Wait until the whole machine spends under `share` of one core over `window` seconds:
    the refill, its watch events and status writes done. On a real cluster the control plane
    and other pods run elsewhere; here they share the two cores with the warm path. False if
    it never got that quiet within `timeout`."""
    tick = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = busy_jiffies()
        time.sleep(window)
        if (busy_jiffies() - before) / tick < share * window:
            return True
    return False


def _cpu_ns(pid: int) -> int:
    """CPU time of every thread of process `pid`, in ns (0 once it is gone)."""
    total = 0
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as file:
                total += int(file.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def group_cpu_ns(pgid: int) -> int:
    """CPU time of the processes of process group `pgid` (one container in the kubelet)."""
    return sum(_cpu_ns(pid) for pid, stat in proc_stats().items() if stat.group == pgid)


def serving_parts(stack: LambdaStack, name: str) -> dict[str, int] | None:
    """The gateway's PID and the process groups of `name`'s pod's containers (None: not
    found)."""
    pods = stack.live_pods(f"kubelambda.dev/function={name}")
    if len(pods) != 1 or stack.kubelet is None:
        return None
    run = stack.kubelet.pods.get((stack.ns, pods[0].metadata.name))
    if run is None:
        return None
    groups = {"gateway": stack.gateways["gw-a"][0].proc.pid}
    for container in run.mains:
        if container.proc is not None:
            groups[container.name] = container.proc.pid
    return groups if set(CPU_PARTS) <= set(groups) else None


def cpu_snapshot(groups: dict[str, int]) -> dict[str, int]:
    """CPU so far: the gateway's process (not a group leader), each container's group."""
    return {
        part: _cpu_ns(groups[part]) if part == "gateway" else group_cpu_ns(groups[part])
        for part in CPU_PARTS
    }


FIRST = 5  # the first calls of each warm batch, after an idle spell, are counted apart


def measure(
    stack: LambdaStack, caller: Caller, runs: int, warm_batch: int
) -> dict[str, list[float]]:
    """Cold starts, every other one with the operator paused (SIGSTOP) for the call: on this
    machine the pool's refill (a new pod: two interpreters starting) otherwise runs on the same
    cores as the cold start it replaces; `paused_*` is the cold start without that race."""
    assert stack.operator is not None
    operator = stack.operator.proc.pid
    figures: dict[str, list[float]] = {
        f"{prefix}{k}": [] for prefix in ("", "paused_") for k in KINDS
    }
    for kind in ("warm", "warm_first", "warm_after_cold", "warm_new"):
        figures[kind] = []
    for part in CPU_PARTS:
        figures[f"cpu_{part}"] = []  # ms of CPU per warm call, one figure per batch
    channels: dict[str, int] = {}
    quiet = 0  # warm batches taken on a quiet machine (the others waited 5 s in vain)
    # The steady state: one function in use for the whole run, on one kept-alive connection.
    stack.function(STEADY, handler_code("event"))
    stack.wait_state("functions", STEADY, "Active")
    stack.wait_servable(STEADY)
    caller.kept(STEADY, 50)  # its cold start, then the code paths warm
    stack.wait_pods(WARM, stack.warm)
    groups = serving_parts(stack, STEADY)
    for index in range(runs):
        name = f"cold-{index}"
        stack.function(name, handler_code("event"))
        stack.wait_state("functions", name, "Active")
        stack.wait_servable(name)
        stack.wait_pods(WARM, stack.warm)
        prefix = "paused_" if index % 2 else ""
        if prefix:
            os.kill(operator, signal.SIGSTOP)
        try:
            elapsed, init_ms = cold_invoke(caller, name)
        finally:
            if prefix:
                os.kill(operator, signal.SIGCONT)
        figures[f"{prefix}cold"].append(elapsed)
        phases = phases_of(stack, name)
        if init_ms is not None:
            figures[f"{prefix}init"].append(init_ms)
        if phases is not None:
            figures[f"{prefix}pick"].append(phases[0])
            figures[f"{prefix}write"].append(phases[2])
            figures[f"{prefix}specialize"].append(phases[1])
            if phases[3] is not None:
                figures[f"{prefix}agent"].append(phases[3])
            if init_ms is not None:
                figures[f"{prefix}rest"].append(elapsed - phases[0] - phases[1] - init_ms)
        # Warm calls once the refill the cold start set off is done and has settled.
        stack.wait_pods(WARM, stack.warm)
        quiet += wait_quiet()
        figures["warm_first"] += caller.kept(STEADY, FIRST)
        before = cpu_snapshot(groups) if groups else None
        started = time.perf_counter()
        kept = caller.kept(STEADY, max(1, warm_batch - FIRST))
        if groups and before:
            after = cpu_snapshot(groups)
            # What the same processes burn meanwhile without calls (watch events, probes,
            # the sync loop), over as long a quiet spell, is not the calls' CPU.
            time.sleep(time.perf_counter() - started)
            idle = cpu_snapshot(groups)
            for part in CPU_PARTS:
                busy = (after[part] - before[part]) - (idle[part] - after[part])
                figures[f"cpu_{part}"].append(max(0, busy) / 1e6 / len(kept))
        figures["warm_after_cold"] += caller.kept(name, FIRST)
        pod = stack.live_pods(f"kubelambda.dev/function={name}")[0].metadata.name
        channel = str(stack.agent_state(pod).get("channel", "http (not reported)"))
        channels[channel] = channels.get(channel, 0) + 1
        figures["warm"] += kept
        figures["warm_new"] += caller.fresh(name, FIRST)
        stack.delete("functions", name)
    print(f"Runtime API carrier of the cold-started pods (agent's state): {channels}")
    print(f"warm batches begun on a quiet machine: {quiet} of {runs}")
    return figures


def phases_of(stack: LambdaStack, name: str) -> tuple[float, float, float, float | None] | None:
    """(pick ms, specialize ms, the claim's write ms, the agent's own part of specialize ms
    if the line says) from the gateway's log line for `name`'s cold start."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for found in PHASES.finditer(stack.gateways["gw-a"][0].log()):
            if found.group("name") == name:
                return (
                    float(found.group("pick")),
                    float(found.group("specialize")),
                    float(found.group("write")),
                    float(found.group("agent")) if found.group("agent") else None,
                )
        time.sleep(0.05)
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=60, help="cold starts, half paused (60)")
    parser.add_argument(
        "--warm-batch", type=int, default=50, help="warm calls after each cold start (50)"
    )
    parser.add_argument("--refill-delay", type=float, help="the operator's --refill-delay")
    args = parser.parse_args(argv)
    flags = () if args.refill_delay is None else (f"--refill-delay={args.refill_delay:g}",)
    before = uptime()
    with (
        tempfile.TemporaryDirectory(prefix="kubelambda-bench-") as tmp,
        Cluster(Path(tmp) / "cluster") as cluster,
    ):
        assert cluster.client is not None
        install_crds(cluster.client, crd_documents(REPO / "crds"))
        with running_stack(cluster, Path(tmp) / "stack", warm=3, operator_flags=flags) as stack:
            stack.wait_pods(WARM, stack.warm)
            with Caller(stack.gateways["gw-a"][1]) as caller:
                invoke_warmup(stack, caller)
                started = uptime()
                figures = measure(stack, caller, args.runs, args.warm_batch)
    print(f"load before the stack: {before}")
    print(f"load before the runs:  {started}")
    print(f"load after the runs:   {uptime()}")
    print(f"{'measurement':<66} {'n':>4} {'p50':>9} {'p95':>9}")
    for title, prefix in (
        ("cold start, the pool's refill racing it (as deployed)", ""),
        ("cold start, the operator paused during the call (no refill racing)", "paused_"),
    ):
        print(title)
        for label, kind in (
            ("  take a warm pod + specialize + first invoke, at the client", "cold"),
            ("    the pick (a warm pod from the gateway's watch)", "pick"),
            ("    specialize (POST the spec; the agent fetches, releases)", "specialize"),
            ("      of which in the agent (read, parse, prepare, release)", "agent"),
            ("    Init Duration (the runtime's init in the pod)", "init"),
            ("    the rest (admission, first invoke's hops, client)", "rest"),
            ("  after it: the claim's write of the pod through the apiserver", "write"),
        ):
            row(label, figures[prefix + kind])
    print("warm invoke of a function in use, on a kept-alive connection (as SDKs keep one)")
    row("  sequential calls (each batch's calls after the first 5)", figures["warm"])
    row("  the first 5 calls of each batch (the machine idle before)", figures["warm_first"])
    row("warm invoke, a cold-started function's next 5 calls", figures["warm_after_cold"])
    row("warm invoke, a new connection per call", figures["warm_new"])
    print("CPU per warm call (kept-alive batches less an idle spell as long; p50/p95 of batches)")
    for part in CPU_PARTS:
        row(f"  {part}", figures[f"cpu_{part}"], unit="ms", digits=3)


def row(label: str, samples: list[float], unit: str = "ms", digits: int = 1) -> None:
    if samples:
        p50, p95 = statistics.median(samples), percentile(samples, 0.95)
        print(f"{label:<66} {len(samples):>4} {p50:>7.{digits}f}{unit} {p95:>7.{digits}f}{unit}")


def invoke_warmup(stack: LambdaStack, caller: Caller) -> None:
    """One throwaway cold start, so imports and connections in the gateway are warm."""
    stack.function("warmup", handler_code("event"))
    stack.wait_state("functions", "warmup", "Active")
    stack.wait_servable("warmup")
    caller.tail("warmup")
    stack.delete("functions", "warmup")


if __name__ == "__main__":
    main()
