"""Claims are leases: a live gateway renews them, and the pods of a gateway that died are reaped.

Runs the real operator and gateway (subprocesses) on the real control plane with a 4-second
claim lease, so that reaping shows within the test's time.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.waiting import wait_until
from tests.cluster.lambda_stack import LambdaStack, handler_code, running_stack

RENEWED = "kubelambda.dev/claim-renewed"


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster, lambda_crds: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaStack]:
    with running_stack(cluster, tmp_path_factory.mktemp("reaping"), warm=1, lease=4.0) as running:
        yield running


def test_a_live_gateway_renews_its_claims_and_a_dead_ones_pods_are_reaped(
    stack: LambdaStack,
) -> None:
    stack.function("held", handler_code("1"))
    stack.wait_state("functions", "held", "Active")
    stack.wait_servable("held")
    assert stack.invoke("held")["body"] == 1
    (pod,) = stack.claimed_pods("kubelambda.dev/function=held")
    name = pod.metadata.name
    first = float(pod.metadata.annotations[RENEWED])

    def renewed_past_the_lease() -> bool:
        current = stack.core.read_namespaced_pod(name, stack.ns).metadata
        assert current.deletion_timestamp is None, "a renewed claim was reaped"
        return float(current.annotations[RENEWED]) > first + 4.5

    wait_until(renewed_past_the_lease, timeout=15, what="the gateway to renew past one lease")
    assert stack.invoke("held")["body"] == 1, "the same pod still serves"

    role, _ = stack.gateways["gw-a"]
    role.stop(signal.SIGKILL)  # no release: only the lapsed lease tells the operator
    stack.wait_pod_gone(name, timeout=20)
    assert stack.operator is not None
    assert f"deleted pod {stack.ns}/{name}: orphaned: gw-a stopped renewing" in stack.operator.log()
    stack.wait_pods("kubelambda.dev/pool=generic,kubelambda.dev/state=warm", 1)
