"""Versions and Aliases over a Function's life: `autoPublishAlias` publishes each change and moves
the alias; an Alias waiting for a version is settled once it is published; lowering a Version's
provisioned concurrency removes the extra pods; Versions and Aliases are garbage-collected with
their Function (ownerReferences, the real garbage collector).

The real operator (a subprocess) on the real control plane.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.waiting import wait_until
from tests.cluster.lambda_stack import LambdaStack, handler_code, running_stack


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster, lambda_crds: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaStack]:
    with running_stack(cluster, tmp_path_factory.mktemp("lifecycle"), warm=0) as running:
        yield running


def test_auto_publish_moves_the_alias_and_everything_goes_with_the_function(
    stack: LambdaStack,
) -> None:
    stack.function("pub", handler_code("1"), autoPublishAlias="live")
    stack.wait_state("functions", "pub", "Active")
    first = stack.wait_state("versions", "pub-auto-g1", "Active", version=1)
    assert first["metadata"]["ownerReferences"][0]["name"] == "pub"
    alias = stack.wait_state("aliases", "pub-live", "Active", timeout=30)
    assert alias["spec"]["functionVersion"] == "1" and alias["spec"]["name"] == "live"

    stack.patch_spec("functions", "pub", {"code": {"inline": handler_code("2")}})
    stack.wait_state("versions", "pub-auto-g2", "Active", version=2, timeout=30)
    wait_until(
        lambda: stack.get("aliases", "pub-live")["spec"]["functionVersion"] == "2",
        timeout=30,
        what="the alias to move to version 2",
    )
    stack.wait_state("aliases", "pub-live", "Active", timeout=30)

    # An alias for a version not yet published waits, and is settled once it is published.
    # Which path settles it (the publication's wake or a kopf retry landing with it) is a race
    # here; test_operator_wake.py proves the wake with no retry running.
    stack.apply("aliases", "later", {"functionName": "pub", "functionVersion": "3"})
    stack.wait_state("aliases", "later", "Pending")
    stack.apply("versions", "pub-manual", {"functionName": "pub"})
    stack.wait_state("versions", "pub-manual", "Active", version=3, timeout=30)
    stack.wait_state("aliases", "later", "Active", timeout=30)
    later = stack.get("aliases", "later")
    assert (
        later["metadata"]["ownerReferences"][0]["uid"]
        == stack.get("functions", "pub")["metadata"]["uid"]
    )

    # Lowering provisioned concurrency removes the extra pods.
    stack.patch_spec("versions", "pub-manual", {"provisionedConcurrency": 2})
    selector = "kubelambda.dev/pool=provisioned,kubelambda.dev/function=pub"
    stack.wait_pods(selector, 2, timeout=90)
    stack.patch_spec("versions", "pub-manual", {"provisionedConcurrency": 1})
    stack.wait_pods(selector, 1, timeout=60)

    stack.delete("functions", "pub")

    def collected() -> bool:
        left = [
            item["metadata"]["name"]
            for plural in ("versions", "aliases")
            for item in stack.custom.list_namespaced_custom_object(
                "kubelambda.dev", "v1alpha1", stack.ns, plural
            )["items"]
        ]
        return not left

    wait_until(collected, timeout=90, interval=0.5, what="the garbage collector to remove them")
