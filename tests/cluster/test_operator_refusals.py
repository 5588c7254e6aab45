"""Failed pod creates are visible and backed off: a ResourceQuota that forbids the pods makes the
operator back off per pool (1, 2, 4, ... s, capped), post Warning Events on the Function and set
its `PodsCreated` condition to False naming the reason; lifting the quota clears it.

The real operator (a subprocess) on the real control plane, whose ResourceQuota admission
refuses the pods.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.waiting import wait_until
from tests.cluster.lambda_stack import LambdaStack, handler_code, running_stack

NEXT_TRY = re.compile(
    r"creating a pod of pool function/[^ ]+ failed \(QuotaExceeded: .*\); next try in (\d+) s"
)


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster, lambda_crds: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaStack]:
    with running_stack(cluster, tmp_path_factory.mktemp("refusals"), warm=0) as running:
        yield running


def condition(stack: LambdaStack, name: str) -> dict[str, Any]:
    conditions = (stack.get("functions", name).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "PodsCreated"), {})


def test_a_quota_that_forbids_the_pods_shows_on_the_function_and_backs_off(
    stack: LambdaStack,
) -> None:
    quota = {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
    stack.core.create_namespaced_resource_quota(stack.ns, quota)
    wait_until(
        lambda: stack.core.read_namespaced_resource_quota("no-pods", stack.ns).status.hard,
        timeout=30,
        what="the quota controller to count the quota",
    )
    # 1024 MB fits no generic pod: the function gets its own warm pod, which the quota refuses.
    stack.function("big", handler_code("1"), memorySize=1024)
    stack.wait_state("functions", "big", "Active")
    refused = wait_until(
        lambda: condition(stack, "big").get("status") == "False" and condition(stack, "big"),
        timeout=30,
        what="the PodsCreated condition to be False",
    )
    assert refused["reason"] == "QuotaExceeded", refused
    assert "exceeded quota: no-pods" in refused["message"], refused

    def warnings() -> list[Any]:
        listing = stack.core.list_namespaced_event(
            stack.ns, field_selector="involvedObject.name=big,involvedObject.kind=Function"
        )
        return [e for e in listing.items if e.reason == "QuotaExceeded" and e.type == "Warning"]

    wait_until(warnings, timeout=15, what="a QuotaExceeded Event on the Function")

    # Backed off per pool: each next try waits twice as long (1, 2, 4, ... s), not every pass.
    assert stack.operator is not None
    operator = stack.operator

    def delays() -> list[int]:
        found = [int(d) for d in NEXT_TRY.findall(operator.log())]
        return found if len(found) >= 4 else []

    seen = wait_until(delays, timeout=60, what="four backed-off tries")
    assert seen[:4] == [1, 2, 4, 8], seen
    assert not stack.live_pods("kubelambda.dev/function=big")

    stack.core.delete_namespaced_resource_quota("no-pods", stack.ns)
    stack.wait_pods("kubelambda.dev/function=big", 1, timeout=60)
    cleared = wait_until(
        lambda: condition(stack, "big").get("status") == "True" and condition(stack, "big"),
        timeout=30,
        what="the PodsCreated condition to be True again",
    )
    assert cleared["reason"] == "Created"
