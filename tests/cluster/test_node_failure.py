"""A node that dies takes its pods out of service at once: two process kubelets (two Nodes), the
one running the claimed pod stops its heartbeat, the real node-lifecycle controller marks that
Node NotReady (Unknown), and from then on

- the gateway sends the pod no more invokes (it watches the Nodes: a pod is served only while it
  is Ready on a Ready Node, not just "Running"), so the next invoke is served by a pod on the
  living node, and the dead node's pod is released;
- the operator counts no pod of the dead node in its pool: its warm pods are deleted and the
  pool is refilled on the living node.

The real operator and gateway (subprocesses) on the real control plane; the controller-manager
runs with its defaults (1.35: --node-monitor-grace-period 50 s, checked every 5 s), and the
process kubelet renews its Lease every 10 s, so the Node is marked about 50-60 s after the last
beat. The operator's log must say why the dead node's warm pod went ("its node ... is not
Ready"): before the Node was watched, it went only later, for being not Ready too long.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.kubelet import Kubelet
from tests.cluster.harness.waiting import wait_until
from tests.cluster.lambda_stack import LambdaStack, _ready, handler_code, running_stack

SECOND = "harness-node-2"
WHERE = "kubelambda.dev/function=where"
CLAIMED = f"{WHERE},kubelambda.dev/state=claimed"
WARM = "kubelambda.dev/pool=generic,kubelambda.dev/state=warm"


@pytest.fixture(scope="module")
def second_node(cluster: Cluster) -> Iterator[Kubelet]:
    kubelet = cluster.add_node(SECOND)
    try:
        yield kubelet
    finally:
        errors = list(kubelet.errors)
        cluster.remove_node(kubelet)
        assert not errors, f"the second kubelet failed: {errors!r}"


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster,
    second_node: Kubelet,
    lambda_crds: list[Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LambdaStack]:
    with running_stack(cluster, tmp_path_factory.mktemp("node"), warm=1) as running:
        yield running


def node_ready(stack: LambdaStack, node: str) -> str:
    conditions = stack.core.read_node(node).status.conditions or []
    return next((c.status for c in conditions if c.type == "Ready"), "")


@pytest.mark.slow  # over a minute of wall time: make test-slow
def test_a_dead_nodes_pods_get_no_invokes_and_the_pool_refills_on_the_living_node(
    stack: LambdaStack, cluster: Cluster, second_node: Kubelet
) -> None:
    assert cluster.kubelet is not None
    kubelets = {k.node_name: k for k in (cluster.kubelet, second_node)}
    (warm,) = stack.wait_pods(WARM, 1, timeout=60)
    dead = warm.spec.node_name
    (living,) = set(kubelets) - {dead}
    # Everything on the node that will die (the other cordoned): the claimed pod and the warm
    # pool, so serving again needs the pool refilled on the living node.
    stack.core.patch_node(living, {"spec": {"unschedulable": True}})
    try:
        stack.function("where", handler_code("1"))
        stack.wait_state("functions", "where", "Active")
        stack.wait_servable("where")
        assert stack.invoke("where")["body"] == 1
        (pod,) = stack.claimed_pods(WHERE)
        dead_pod = pod.metadata.name
        assert pod.spec.node_name == dead
        (spare,) = stack.wait_pods(WARM, 1, timeout=60)
        assert spare.spec.node_name == dead
    finally:
        stack.core.patch_node(living, {"spec": {"unschedulable": False}})
    kubelets[dead].pause_heartbeat()
    try:
        wait_until(
            lambda: node_ready(stack, dead) == "Unknown",
            timeout=150,
            interval=0.2,
            what="the node-lifecycle controller to mark the Node NotReady",
        )
        marked = time.monotonic()
        # At once, not once the controller gets to the pod: the next invoke goes elsewhere.
        still_ready = _ready(stack.core.read_namespaced_pod(dead_pod, stack.ns))
        answer = stack.invoke("where")
        assert answer.get("body") == 1 and "FunctionError" not in answer, answer
        served = wait_until(
            lambda: [p for p in stack.live_pods(CLAIMED) if p.metadata.name != dead_pod],
            timeout=10,
            interval=0.1,
            what="the pod that served it to be labelled",
        )
        assert [p.spec.node_name for p in served] == [living], (
            f"the invoke was not served on {living}: {[p.metadata.name for p in served]}\n"
            f"{stack.logs()}"
        )

        def dropped() -> bool:
            try:
                current = stack.core.read_namespaced_pod(dead_pod, stack.ns)
            except kubernetes.client.ApiException as exc:
                if exc.status == 404:
                    return True  # released, deleted, and gone (this kubelet still deletes)
                raise
            state = (current.metadata.labels or {}).get("kubelambda.dev/state")
            return state == "released" or current.metadata.deletion_timestamp is not None

        wait_until(dropped, timeout=10, what="the gateway to drop the pod on the dead node")
        dropped_after = time.monotonic() - marked

        # The operator counts nothing on the dead node: its warm pod is deleted for that reason
        # (not for being not Ready too long) and the pool is one Ready pod on the living node.
        def refilled() -> list[Any]:
            warm = stack.live_pods(WARM)
            return warm if [(p.spec.node_name, _ready(p)) for p in warm] == [(living, True)] else []

        try:
            wait_until(refilled, timeout=60, what=f"one Ready warm pod, on {living} only")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{stack.logs()}") from None
        assert stack.operator is not None
        why = f"deleted pod {stack.ns}/{spare.metadata.name}: its node {dead} is not Ready"
        assert why in stack.operator.log(), stack.logs()
    finally:
        kubelets[dead].resume_heartbeat()
    print(
        f"dead pod dropped {dropped_after:.1f} s after the Node was marked "
        f"(its own Ready was {'still True' if still_ready else 'already False'} then)"
    )
    wait_until(lambda: node_ready(stack, dead) == "True", timeout=60, what="the Node Ready again")
    kubelets[dead].resync_pods()
