"""packageType Image in cluster mode: the function's own image runs as the runtime container.

`example.com/team/hello:1` is a test image (tests/cluster/README.md): the kubelet's image table
maps its `/lambda-entrypoint.sh` to a script that runs awslambdaric in a folder the code was
baked into, as an image built FROM public.ecr.aws/lambda/python would. The agent never fetches
its code; it only releases the image's entry point. A timeout and a crash give Lambda's errors
and a re-init (the next REPORT shows an Init Duration).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.podspec import lambda_python_image
from tests.cluster.lambda_stack import LambdaStack, running_stack

IMAGE = "example.com/team/hello:1"
CODE = """
import os, time
def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("exit"):
        os._exit(event["exit"])
    return {"hello": event.get("name"), "fn": context.function_name, "cwd": os.getcwd()}
"""


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster, lambda_crds: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaStack]:
    baked = tmp_path_factory.mktemp("image-task")
    (baked / "app.py").write_text(CODE)
    entry = baked.parent / "hello-entrypoint.sh"
    entry.write_text(f'#!/bin/sh\ncd "{baked}" && exec python3 -m awslambdaric "$1"\n')
    entry.chmod(0o755)
    base = lambda_python_image("12")
    image = dataclasses.replace(
        base,
        env={**base.env, "LAMBDA_TASK_ROOT": str(baked)},
        executables={**base.executables, "/lambda-entrypoint.sh": str(entry)},
    )
    with running_stack(cluster, tmp_path_factory.mktemp("stack"), warm=0) as running:
        assert running.kubelet is not None
        running.kubelet.images.add(IMAGE, image)
        yield running


def _tail(response: dict[str, object]) -> str:
    return base64.b64decode(str(response["LogResult"])).decode()


def test_an_image_function_runs_its_image_and_recovers(stack: LambdaStack) -> None:
    spec = {
        "packageType": "Image",
        "code": {"image": IMAGE},
        "imageConfig": {"command": ["app.handler"]},
        "timeout": 2,
    }
    stack.apply("functions", "img", spec)
    status = stack.wait_state("functions", "img", "Active")["status"]
    assert len(status["codeSha256"]) == 64
    stack.wait_servable("img")
    (pod,) = stack.wait_pods("kubelambda.dev/pool=function,kubelambda.dev/function=img", 1)
    # The runtime container (the function's image) first, then the agent.
    assert [c.image for c in pod.spec.containers] == [IMAGE, "kubelambda/kubelambda:0.1.0"]

    ok = stack.invoke("img", {"name": "image"})
    assert ok["body"]["hello"] == "image" and ok["body"]["fn"] == "img"
    # An image runs its own entry point (awslambdaric here): HTTP, never our pipe channel.
    assert stack.agent_state(pod.metadata.name)["channel"] == "http"
    assert ok["body"]["cwd"].endswith("image-task0")  # the image's code, not a fetched copy

    late = stack.invoke("img", {"sleep": 10}, LogType="Tail")
    assert late["FunctionError"] == "Unhandled"
    assert late["body"]["errorType"] == "Sandbox.Timedout"
    again = stack.invoke("img", {"name": "again"}, LogType="Tail")
    assert again["body"]["hello"] == "again" and "Init Duration" in _tail(again)

    crashed = stack.invoke("img", {"exit": 3})
    assert crashed["body"]["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in json.dumps(crashed["body"])
    last = stack.invoke("img", {"name": "last"}, LogType="Tail")
    assert last["body"]["hello"] == "last" and "Init Duration" in _tail(last)


def test_an_image_function_without_a_handler_fails_with_the_field_named(
    stack: LambdaStack,
) -> None:
    stack.apply("functions", "img-nocmd", {"packageType": "Image", "code": {"image": IMAGE}})
    status = stack.wait_state("functions", "img-nocmd", "Failed")["status"]
    assert status["stateReason"].startswith("spec.imageConfig:")
