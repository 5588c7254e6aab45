"""Issue 16, point 6, on the real control plane: a provided.al2023 Zip function runs its own
`bootstrap` in a runtime container of the official base image.

The image's own entry point (`/lambda-entrypoint.sh`) execs /var/runtime/bootstrap, which only an
image built FROM it fills; a Zip's bootstrap is in /var/task, or a layer's in /opt. The operator's
generic pod therefore starts the runtime container with our shim, which execs the function's
bootstrap once the agent has released the code. The bootstrap here is a POSIX shell custom
runtime over curl (what AWS's custom-runtime tutorial ships), talking HTTP to the agent's Runtime
API. The process kubelet stands in for the node (see tests/cluster/README.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.lambda_stack import LambdaStack, running_stack

IMAGE = "public.ecr.aws/lambda/provided:al2023"
RUNTIME = "provided.al2023"
# Echoes the event with the handler setting, its own path and the task root; an event with "fail" is
# reported as a function error through /invocation/{id}/error.
BOOTSTRAP = """#!/bin/sh
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
headers="$(mktemp)"
while :; do
  event="$(curl -sS -D "$headers" "$api/invocation/next")"
  rid="$(sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: *\\([^[:space:]]*\\).*/\\1/p' \\
    "$headers" | tr -d '\\r')"
  case "$event" in
    *'"fail"'*)
      curl -sS -o /dev/null -X POST "$api/invocation/$rid/error" \\
        -H 'Lambda-Runtime-Function-Error-Type: Custom.Failure' \\
        -d '{"errorMessage": "asked to fail", "errorType": "Custom.Failure"}' ;;
    *)
      curl -sS -o /dev/null -X POST "$api/invocation/$rid/response" \\
        -H 'Content-Type: application/json' \\
        -d "{\\"echo\\": $event, \\"handler\\": \\"$_HANDLER\\", \\"self\\": \\"$0\\", \\
\\"task\\": \\"${LAMBDA_TASK_ROOT:-}\\"}" ;;
  esac
done
"""


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

    stack.function("custom", {"bootstrap": BOOTSTRAP}, runtime=RUNTIME, handler="function.handler")
    stack.wait_state("functions", "custom", "Active")
    stack.wait_servable("custom")
    ok = stack.invoke("custom", {"n": 1})
    assert "FunctionError" not in ok, ok["body"]
    assert ok["body"]["echo"] == {"n": 1}
    assert ok["body"]["handler"] == "function.handler"
    # The bootstrap that ran is the function's own, in the task root (the process kubelet shows
    # the container's /var/task as the volume's local folder).
    assert ok["body"]["self"] == ok["body"]["task"] + "/bootstrap", ok["body"]

    failed = stack.invoke("custom", {"fail": True})
    assert failed["FunctionError"] == "Unhandled"
    assert failed["body"] == {"errorMessage": "asked to fail", "errorType": "Custom.Failure"}
    again = stack.invoke("custom", {"n": 2})
    assert again["body"]["echo"] == {"n": 2}  # the same runtime, still serving
