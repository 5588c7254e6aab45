"""`role` may name only a ServiceAccount that opted in (annotation kubelambda.dev/assumable:
"true") or that the operator's values list (`--assumable-role`, the chart's `functionRoles`):
otherwise the Function fails with a status naming `spec.role` and no pod runs as it.

The real operator (a subprocess) on the real control plane.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.lambda_stack import LambdaStack, handler_code, running_stack


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster, lambda_crds: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaStack]:
    with running_stack(
        cluster,
        tmp_path_factory.mktemp("roles"),
        warm=0,
        operator_flags=("--assumable-role=listed",),
    ) as running:
        yield running


def test_only_a_service_account_that_opted_in_may_be_a_functions_role(
    stack: LambdaStack,
) -> None:
    stack.core.create_namespaced_service_account(stack.ns, {"metadata": {"name": "plain"}})
    opted = {"metadata": {"name": "opted", "annotations": {"kubelambda.dev/assumable": "true"}}}
    stack.core.create_namespaced_service_account(stack.ns, opted)

    stack.function("as-plain", handler_code("1"), role="plain")
    failed = stack.wait_state("functions", "as-plain", "Failed")["status"]
    assert failed["stateReason"].startswith("spec.role: ServiceAccount plain has not opted in")
    ready = next(c for c in failed["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidRole"

    stack.function("as-ghost", handler_code("1"), role="ghost")
    ghost = stack.wait_state("functions", "as-ghost", "Failed")["status"]
    assert ghost["stateReason"].startswith("spec.role: ServiceAccount ghost does not exist")

    stack.function("as-opted", handler_code("1"), role="opted")
    stack.wait_state("functions", "as-opted", "Active")
    (pod,) = stack.wait_pods("kubelambda.dev/function=as-opted", 1, ready=False, timeout=60)
    assert pod.spec.service_account_name == "opted"
    assert not stack.pods("kubelambda.dev/function=as-plain")
    assert not stack.pods("kubelambda.dev/function=as-ghost")


def test_a_service_account_in_the_values_list_may_be_a_role_without_the_annotation(
    stack: LambdaStack,
) -> None:
    stack.core.create_namespaced_service_account(stack.ns, {"metadata": {"name": "listed"}})
    stack.core.create_namespaced_service_account(stack.ns, {"metadata": {"name": "unlisted"}})

    stack.function("as-unlisted", handler_code("1"), role="unlisted")
    failed = stack.wait_state("functions", "as-unlisted", "Failed")["status"]
    ready = next(c for c in failed["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidRole" and ready["status"] == "False"
    assert ready["message"].startswith("spec.role: ServiceAccount unlisted has not opted in")

    stack.function("as-listed", handler_code("1"), role="listed")
    stack.wait_state("functions", "as-listed", "Active")
    (pod,) = stack.wait_pods("kubelambda.dev/function=as-listed", 1, ready=False, timeout=60)
    assert pod.spec.service_account_name == "listed"
    assert not stack.pods("kubelambda.dev/function=as-unlisted")
