"""Twelve served namespaces starve nothing: the operator and the gateway each hold 4 watches per
namespace (48 long-lived connections, more than the request pool's 32), and still list, claim,
patch and invoke, because watches have their own connection pool.

The real operator and gateway (subprocesses) on the real control plane.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.waiting import wait_until
from tests.cluster.lambda_stack import GROUP, RUNTIME, VERSION, LambdaStack, running_stack

NAMESPACES = 12


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster, lambda_crds: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaStack]:
    workdir = tmp_path_factory.mktemp("many")
    with running_stack(cluster, workdir, warm=0, extra_namespaces=NAMESPACES - 1) as running:
        yield running


@pytest.mark.slow  # over a minute of wall time: make test-slow
def test_twelve_namespaces_are_served_by_one_operator_and_one_gateway(
    stack: LambdaStack,
) -> None:
    served = [stack.ns, *stack.extra]
    assert len(served) == NAMESPACES
    last = served[-1]
    # 1024 MB fits no generic pod: the function gets its own warm pod in its namespace.
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Function",
        "metadata": {"name": "far", "namespace": last},
        "spec": {
            "runtime": RUNTIME,
            "handler": "app.handler",
            "memorySize": 1024,
            "code": {"inline": {"app.py": "def handler(event, context):\n    return 12\n"}},
        },
    }
    stack.custom.create_namespaced_custom_object(GROUP, VERSION, last, "functions", body)

    def active() -> bool:
        obj = stack.custom.get_namespaced_custom_object(GROUP, VERSION, last, "functions", "far")
        return bool((obj.get("status") or {}).get("state") == "Active")

    wait_until(active, timeout=60, what="the Function in the 12th namespace to be Active")

    def warm() -> bool:
        pods = stack.core.list_namespaced_pod(last, label_selector="kubelambda.dev/function=far")
        return any(
            c.type == "Ready" and c.status == "True"
            for p in pods.items
            for c in (p.status.conditions or [])
        )

    wait_until(warm, timeout=90, what="its warm pod, created by the operator, to be Ready")
    stack.wait_servable(f"{last}.far", timeout=30)
    assert stack.invoke(f"{last}.far")["body"] == 12
    # The gateway claimed the pod through the same client that holds the 48 watches.
    claimed = wait_until(
        lambda: (
            stack.core.list_namespaced_pod(
                last, label_selector="kubelambda.dev/function=far,kubelambda.dev/state=claimed"
            ).items
        ),
        timeout=10,
        interval=0.1,
        what="the pod it claimed to be labelled",
    )
    assert len(claimed) == 1
