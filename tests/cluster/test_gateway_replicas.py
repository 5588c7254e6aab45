"""Three gateway replicas share one concurrency ledger on the real control plane.

100 concurrent boto3 callers (in four processes of their own, `tests/cluster/callers.py`, so
they do not share the GIL with the process kubelet) spread over three `kubelambda gateway
--cluster` processes (with `--ledger-namespace`). The function has reservedConcurrency 10 and
appends its own start and end times to a file on the host, so calls whose answers are lost (the
killed replica's) count too. Never more than 10 run at once; every refusal is a 429 with
Lambda's reason; after one replica is killed with SIGKILL mid-load, the bound holds and the two
others reach 90 % of the reservation within 5 s.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.controlplane import REPO
from tests.cluster.harness.waiting import wait_until
from tests.cluster.lambda_stack import LambdaStack, _ready, running_stack

RESERVED = 10
WARM = "kubelambda.dev/pool=generic,kubelambda.dev/state=warm"
CALLERS = 100
PROCESSES = 4  # the callers' processes (25 boto3 threads each)
GATEWAYS = ("gw-a", "gw-b", "gw-c")
REASONS = {
    "ReservedFunctionConcurrentInvocationLimitExceeded",
    "ReservedFunctionInvocationRateLimitExceeded",
}

CODE = {
    "app.py": (
        "import json, os, time\n\n"
        "def handler(event, context):\n"
        "    start = time.time()\n"
        "    time.sleep(0.5)\n"
        "    end = time.time()\n"
        "    with open(os.environ['TRACE'], 'a') as f:\n"
        "        f.write(json.dumps([start, end, context.aws_request_id]) + '\\n')\n"
        "    return {'start': start, 'end': end}\n"
    )
}


@pytest.fixture(scope="module")
def stack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaStack]:
    with running_stack(cluster, tmp_path_factory.mktemp("replicas"), warm=10, ledger=True) as s:
        yield s


@dataclass
class Calls:
    """What the caller processes saw, gathered from their output by one thread each."""

    served: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    unreachable: set[str] = field(default_factory=set)
    killed: tuple[str, float] | None = None  # the replica killed with SIGKILL, and when
    lost: int = 0  # calls the killed replica never answered
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, record: dict[str, Any]) -> None:
        with self.lock:
            if "served" in record:
                self.served.setdefault(record["served"], []).append(
                    (record["start"], record["end"])
                )
            elif "refused" in record:
                self.refusals.append(record)
            elif self.killed and record["failed"] == self.killed[0] and record.get("transport"):
                # Dropped mid-call or refused once it was killed: the callers move on.
                self.unreachable.add(record["failed"])
                self.lost += 1
            else:
                self.other.append(f"{record['failed']}: {record['error']}")


def _callers(stack: LambdaStack, calls: Calls) -> list[subprocess.Popen[str]]:
    """CALLERS boto3 threads over PROCESSES processes (tests/cluster/callers.py), each
    process's output read into `calls` as it comes."""
    urls = [f"{g}={stack.gateways[g][1]}" for g in GATEWAYS]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.cluster.callers", str(CALLERS // PROCESSES), *urls],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(PROCESSES)
    ]

    def read(proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            calls.take(json.loads(line))

    for proc in procs:
        threading.Thread(target=read, args=(proc,), daemon=True).start()
    return procs


def _intervals(trace: Path) -> list[tuple[float, float]]:
    if not trace.exists():
        return []
    rows = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    return [(start, end) for start, end, _ in rows]


def _peak(intervals: list[tuple[float, float]], after: float = 0.0) -> tuple[int, float]:
    """The most intervals open at once, and the first time (>= after) that many were open."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    open_, best, when = 0, 0, 0.0
    for t, step in events:
        open_ += step
        if t >= after and open_ > best:
            best, when = open_, t
    return best, when


def _first_reaching(intervals: list[tuple[float, float]], level: int, after: float) -> float:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    open_ = 0
    for t, step in events:
        open_ += step
        if t >= after and open_ >= level:
            return t
    return float("inf")


@pytest.mark.slow  # 100 client threads and a dozen pods: minutes on a 2-core machine
@pytest.mark.timeout(600)
def test_three_replicas_never_run_more_than_the_reservation(stack: LambdaStack) -> None:
    trace = stack.workdir / "trace.jsonl"
    # A full warm pool first (ten pods starting at once slow everything else on 2 cores): the
    # reservation is then claimable at once (pod starts are the operator's, not measured here).
    stack.wait_pods(WARM, stack.warm, timeout=240)
    stack.start_gateway("gw-b")
    stack.start_gateway("gw-c")
    stack.function(
        "bounded",
        CODE,
        reservedConcurrency=RESERVED,
        environment={"variables": {"TRACE": str(trace)}},
    )
    stack.wait_state("functions", "bounded", "Active", timeout=60)
    for gateway in GATEWAYS:
        client = stack.lambda_client(gateway)

        def known(client: Any = client) -> bool:
            try:
                client.get_function_configuration(FunctionName="bounded")
            except client.exceptions.ResourceNotFoundException:
                return False
            return True

        wait_until(known, timeout=30, interval=0.1, what=f"{gateway} to serve the function")

    calls = Calls()
    procs = _callers(stack, calls)
    try:
        # Warm: the three replicas together reach the reservation.
        wait_until(
            lambda: _peak(_intervals(trace))[0] >= RESERVED - 1,
            timeout=180,
            interval=0.5,
            what="the callers to reach the reservation",
        )
        # Every replica serves some of it (the ledger splits the reservation, not one replica).
        wait_until(
            lambda: all(calls.served.get(g) for g in GATEWAYS),
            timeout=30,
            interval=0.2,
            what="every replica to serve calls",
        )
        # Pods for gw-c's share wait in the pool, as they would on a cluster kept warm.
        wait_until(
            lambda: len([p for p in stack.live_pods(WARM) if _ready(p)]) >= 4,
            timeout=180,
            interval=0.5,
            what="the warm pool to refill",
        )
        role, _ = stack.gateways["gw-c"]
        killed = time.time()
        with calls.lock:
            calls.killed = ("gw-c", killed)
        role.proc.send_signal(signal.SIGKILL)
        role.proc.wait(10)
        survivors = ("gw-a", "gw-b")

        def taken_over() -> bool:
            with calls.lock:
                mine = [iv for g in survivors for iv in calls.served.get(g, []) if iv[1] > killed]
            return _first_reaching(mine, RESERVED - 1, killed) < float("inf")

        wait_until(taken_over, timeout=60, interval=0.2, what="the survivors to take over")
        # More load after the takeover, so the bound is checked there too.
        so_far = len(_intervals(trace))
        wait_until(
            lambda: len(_intervals(trace)) >= so_far + 3 * RESERVED,
            timeout=60,
            interval=0.2,
            what="calls after the takeover",
        )
    finally:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()  # each caller finishes its call in flight, then exits
        for proc in procs:
            proc.wait(180)

    intervals = _intervals(trace)
    peak, when = _peak(intervals)
    with calls.lock:
        mine = [iv for g in survivors for iv in calls.served.get(g, []) if iv[1] > killed]
    takeover = _first_reaching(mine, RESERVED - 1, killed) - killed
    print(
        f"\n{len(intervals)} calls ran, at most {peak} at once; {len(calls.refusals)} refused; "
        f"the survivors ran {RESERVED - 1} at once {takeover:.2f} s after the kill; served per "
        f"replica: { {g: len(v) for g, v in calls.served.items()} }; lost with gw-c: {calls.lost}"
    )
    assert peak <= RESERVED, f"{peak} ran at once at {when}"
    assert not calls.other, f"{len(calls.other)}: {calls.other[:3]}\n{stack.logs()}"
    assert calls.refusals, "100 callers on a reservation of 10: some must be refused"
    bad = [
        r
        for r in calls.refusals
        if r["status"] != 429
        or r["code"] != "TooManyRequestsException"
        or r["reason"] not in REASONS
    ]
    assert not bad, bad[:5]
    assert takeover <= 5.0, f"the survivors took {takeover:.2f} s to take over"
    assert "gw-c" in calls.unreachable
