"""Issue 16, point 6, on the real control plane: a provided.al2023 Zip function runs its own
`bootstrap` in a runtime container of the official base image.

The image's own entry point (`/lambda-entrypoint.sh`) execs /var/runtime/bootstrap, which only an
image built FROM it fills; a Zip's bootstrap is in /var/task, or a layer's in /opt. The operator's
generic pod therefore starts the runtime container with our shim, which execs the function's
bootstrap once the agent has released the code (with the image's entry point instead, the
function fails with Runtime.ExitError, exit status 127). The bootstrap is the component tests'
POSIX shell custom runtime over curl, talking HTTP to the agent's Runtime API. The process
kubelet stands in for the node (see tests/cluster/README.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.lambda_stack import LambdaStack, running_stack
from tests.component.runtime.helpers import SHELL_BOOTSTRAP

IMAGE = "public.ecr.aws/lambda/provided:al2023"
RUNTIME = "provided.al2023"


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster, lambda_crds: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaStack]:
    flags = (f"--runtime-image={RUNTIME}={IMAGE}", f"--warm-pool={RUNTIME}=1")
    with running_stack(
        cluster, tmp_path_factory.mktemp("stack"), warm=0, operator_flags=flags
    ) as running:
        yield running


def test_a_provided_zip_function_runs_its_own_bootstrap_in_the_base_image(
    stack: LambdaStack,
) -> None:
    # The generic warm pod: the official base image as its runtime container, then the agent.
    (warm,) = stack.wait_pods("kubelambda.dev/pool=generic", 1)
    assert [c.image for c in warm.spec.containers] == [IMAGE, "kubelambda/kubelambda:0.1.0"]

    stack.function("custom", {"bootstrap": SHELL_BOOTSTRAP}, runtime=RUNTIME, handler="fn.handler")
    stack.wait_state("functions", "custom", "Active")
    stack.wait_servable("custom")
    ok = stack.invoke("custom", {"n": 1})
    assert ok["body"] == {
        "echo": {"n": 1},
        "handler": "fn.handler",
        "rid": ok["ResponseMetadata"]["RequestId"],
    }
    (claimed,) = stack.claimed_pods("kubelambda.dev/function=custom")
    assert claimed.metadata.name == warm.metadata.name  # the generic pod was specialized
    again = stack.invoke("custom", [1, 2])
    assert again["body"]["echo"] == [1, 2]  # the same runtime, still serving
