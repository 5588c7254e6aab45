"""Two operator replicas elect one leader with a coordination.k8s.io Lease: only the leader runs
the kopf handlers and the pool keeper, a standby takes over within 15 s of the leader's SIGKILL,
and the pools never overshoot (the pods are watched throughout).

The real operator (two subprocesses, `--leader-election`) on the real control plane.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.waiting import wait_until
from tests.cluster.lambda_stack import LambdaStack, Role, _ready, handler_code

LEASE = "kubelambda-operator"
WARM = 2
GENERIC = "app.kubernetes.io/part-of=kubelambda,kubelambda.dev/pool=generic"


class PodCounter:
    """Watches the generic pool's pods from its own thread; keeps the most ever live at once."""

    def __init__(self, client: kubernetes.client.ApiClient, namespace: str) -> None:
        self.core = kubernetes.client.CoreV1Api(client)
        self.namespace = namespace
        self.live: set[str] = set()
        self.most = 0
        self.events = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PodCounter:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        rv = None
        while not self._stop.is_set():
            watch = kubernetes.watch.Watch()
            kw: dict[str, Any] = {"label_selector": GENERIC, "timeout_seconds": 2}
            if rv:
                kw["resource_version"] = rv
            for event in watch.stream(self.core.list_namespaced_pod, self.namespace, **kw):
                pod = event["object"]
                rv = pod.metadata.resource_version
                self.events += 1
                gone = (
                    event["type"] == "DELETED"
                    or pod.metadata.deletion_timestamp is not None
                    or pod.status.phase in ("Failed", "Succeeded")
                )
                (self.live.discard if gone else self.live.add)(pod.metadata.name)
                self.most = max(self.most, len(self.live))
                if self._stop.is_set():
                    break


def holder(stack: LambdaStack) -> str:
    api = kubernetes.client.CoordinationV1Api(stack.client)
    try:
        lease = api.read_namespaced_lease(LEASE, stack.ns)
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return ""
        raise
    return str(lease.spec.holder_identity or "")


@pytest.fixture
def stack(cluster: Cluster, lambda_crds: list[Any], tmp_path: Path) -> Iterator[LambdaStack]:
    stack = LambdaStack(tmp_path, cluster, warm=WARM)
    stack.ns = cluster.new_namespace("leader")
    stack.client = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
    stack.core = kubernetes.client.CoreV1Api(stack.client)
    stack.custom = kubernetes.client.CustomObjectsApi(stack.client)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.mark.slow  # over a minute of wall time: make test-slow
def test_one_leader_a_standby_takes_over_within_15_s_and_pools_never_overshoot(
    stack: LambdaStack,
) -> None:
    assert stack.client is not None
    with PodCounter(stack.client, stack.ns) as counter:
        # Both start at once: a race for the Lease, and for the pool if both kept it.
        replicas = {n: stack.start_operator(n, election=LEASE) for n in ("op-a", "op-b")}
        first = wait_until(lambda: holder(stack), timeout=60, what="a replica to hold the Lease")
        leader_name = first.split("_")[0]
        standby_name = "op-b" if leader_name == "op-a" else "op-a"
        leader, standby = replicas[leader_name], replicas[standby_name]
        stack.wait_pods(GENERIC, WARM, timeout=60)
        stack.function("before", handler_code("1"))
        stack.wait_state("functions", "before", "Active")
        wait_until(
            lambda: "standing by: lease" in standby.log(), timeout=20, what="the standby to wait"
        )
        for quiet in ("created pod", "function_changed", "pool keeper"):
            assert quiet not in standby.log(), f"the standby acted ({quiet!r}):\n{standby.log()}"

        leader.stop(signal.SIGKILL)
        killed = time.monotonic()
        taken = wait_until(
            lambda: holder(stack).startswith(f"{standby_name}_") and holder(stack),
            timeout=20,
            interval=0.1,
            what="the standby to hold the Lease",
        )
        took = time.monotonic() - killed
        assert took <= 15, f"the standby took {took:.1f} s to lead"
        assert taken != first

        # The new leader runs the handlers ...
        stack.function("after", handler_code("2"))
        stack.wait_state("functions", "after", "Active", timeout=60)
        # ... and the keeper: a warm pod deleted is replaced.
        victim = stack.live_pods(GENERIC)[0].metadata.name
        stack.core.delete_namespaced_pod(victim, stack.ns)

        def replaced() -> bool:
            names = {p.metadata.name for p in stack.live_pods(GENERIC) if _ready(p)}
            return len(names) == WARM and victim not in names

        wait_until(replaced, timeout=60, what="the new leader to replace the deleted warm pod")
        assert "created pod" in standby.log()
    assert counter.events >= WARM, "the pod watch saw the pool"
    assert counter.most <= WARM, f"the pool overshot: {counter.most} live generic pods at once"
    print(f"standby led {took:.1f} s after the leader's SIGKILL; at most {counter.most} pods")


def test_a_clean_stop_releases_the_lease_at_once(stack: LambdaStack) -> None:
    one: Role = stack.start_operator("op-a", election=LEASE)
    wait_until(lambda: holder(stack).startswith("op-a_"), timeout=60, what="op-a to lead")
    assert one.stop() == 0
    assert holder(stack) == "", "the Lease was released on SIGTERM"
    two = stack.start_operator("op-b", election=LEASE)
    wait_until(lambda: holder(stack).startswith("op-b_"), timeout=30, what="op-b to lead")
    # A released Lease is free at the first try: op-b never stood by.
    assert "standing by" not in two.log(), two.log()


def test_a_frozen_leader_that_wakes_after_losing_the_lease_writes_nothing_and_exits(
    stack: LambdaStack,
) -> None:
    """SIGSTOP stands for a stalled node or a partition: the leader's Lease lapses while its
    process still believes it leads. When it resumes it must not touch the pool."""
    assert stack.client is not None
    with PodCounter(stack.client, stack.ns) as counter:
        first = stack.start_operator("op-a", election=LEASE)
        wait_until(lambda: holder(stack).startswith("op-a_"), timeout=60, what="op-a to lead")
        second = stack.start_operator("op-b", election=LEASE)
        stack.wait_pods(GENERIC, WARM, timeout=60)
        wait_until(lambda: "standing by" in second.log(), timeout=30, what="op-b to stand by")
        created_before = first.log().count("created pod")
        os.kill(first.proc.pid, signal.SIGSTOP)
        try:
            wait_until(
                lambda: holder(stack).startswith("op-b_"), timeout=20, what="op-b to take over"
            )
            # While op-a sleeps, its pool view goes stale: a pod goes and op-b replaces it.
            victim = stack.live_pods(GENERIC)[0].metadata.name
            stack.core.delete_namespaced_pod(victim, stack.ns)
            wait_until(lambda: "created pod" in second.log(), timeout=60, what="op-b to refill")
        finally:
            os.kill(first.proc.pid, signal.SIGCONT)
        assert first.proc.wait(30) == 3, first.log()
        assert "lost leadership" in first.log()
        stack.wait_pods(GENERIC, WARM, timeout=60)
    assert first.log().count("created pod") == created_before, (
        f"op-a woke and wrote:\n{first.log()}"
    )
    assert counter.most <= WARM, f"the pool overshot: {counter.most} live generic pods at once"
