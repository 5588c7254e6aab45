"""A pod on a dead node receives no more invokes: the process kubelet stops its heartbeat, the
real node-lifecycle controller marks the Node NotReady and its pods not Ready, and the gateway
drops the claimed pod (it requires the pod's Ready condition, not just phase Running) instead of
sending it the next invoke, which a fresh pod serves once the node is back.

The real operator and gateway (subprocesses) on the real control plane; the controller-manager
runs with its default node-monitor grace period, so this test waits about a minute for it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.waiting import wait_until
from tests.cluster.lambda_stack import LambdaStack, _ready, handler_code, running_stack

CLAIMED = "kubelambda.dev/function=where,kubelambda.dev/state=claimed"


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster, lambda_crds: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaStack]:
    with running_stack(cluster, tmp_path_factory.mktemp("node"), warm=1) as running:
        yield running


def node_ready(stack: LambdaStack, node: str) -> str:
    conditions = stack.core.read_node(node).status.conditions or []
    return next((c.status for c in conditions if c.type == "Ready"), "")


@pytest.mark.slow  # over a minute of wall time: make test-slow
def test_a_pod_on_a_node_without_heartbeat_gets_no_more_invokes(
    stack: LambdaStack, cluster: Cluster
) -> None:
    kubelet = cluster.kubelet
    assert kubelet is not None
    stack.function("where", handler_code("1"))
    stack.wait_state("functions", "where", "Active")
    stack.wait_servable("where")
    assert stack.invoke("where")["body"] == 1
    (pod,) = stack.live_pods(CLAIMED)
    dead = pod.metadata.name
    node = pod.spec.node_name
    answer: dict[str, Any] = {}
    worker: threading.Thread | None = None
    kubelet.pause_heartbeat()
    try:
        wait_until(
            lambda: node_ready(stack, node) == "Unknown",
            timeout=150,
            interval=0.5,
            what="the node-lifecycle controller to mark the Node NotReady",
        )
        wait_until(
            lambda: not _ready(stack.core.read_namespaced_pod(dead, stack.ns)),
            timeout=60,
            interval=0.2,
            what="the controller to mark the claimed pod not Ready",
        )
        phase = stack.core.read_namespaced_pod(dead, stack.ns).status.phase
        assert phase == "Running", "the pod still looks Running; only Ready tells"

        def call() -> None:
            answer.update(stack.invoke("where"))

        worker = threading.Thread(target=call, daemon=True)
        worker.start()

        def dropped() -> bool:
            current = stack.core.read_namespaced_pod(dead, stack.ns)
            state = (current.metadata.labels or {}).get("kubelambda.dev/state")
            return state == "released" or current.metadata.deletion_timestamp is not None

        wait_until(dropped, timeout=30, what="the gateway to drop the pod on the dead node")
    finally:
        kubelet.resume_heartbeat()
    wait_until(lambda: node_ready(stack, node) == "True", timeout=60, what="the Node Ready again")
    kubelet.resync_pods()
    assert worker is not None
    worker.join(120)
    assert not worker.is_alive(), f"the invoke never returned\n{stack.logs()}"
    assert answer.get("body") == 1, answer
    assert "FunctionError" not in answer, answer
    (serving,) = stack.live_pods(CLAIMED)
    assert serving.metadata.name != dead, "a fresh pod served the invoke"
