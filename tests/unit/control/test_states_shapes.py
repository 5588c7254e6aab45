"""The state machine the CLI's waiters poll, and the answer shapes. Pure."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from kubelambda.serving.control.shapes import alias_configuration, configuration
from kubelambda.serving.control.states import function_state, served_status, version_state
from kubelambda.serving.control.translate import (
    destination_arn,
    destination_spec,
    sha256_base64,
    sha256_hex,
)
from kubelambda.serving.errors import LambdaError

SHA = hashlib.sha256(b"zip").hexdigest()


def fn(generation: int = 1, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "Function",
        "metadata": {
            "name": "hello",
            "namespace": "team",
            "generation": generation,
            "resourceVersion": "42",
            "annotations": {"kubelambda.dev/code-size": "123"},
        },
        "spec": {
            "runtime": "python3.12",
            "handler": "app.handler",
            "code": {"path": "/x.zip", "sha256": SHA},
        },
        **({"status": status} if status is not None else {}),
    }


def test_a_new_function_is_pending_until_observed() -> None:
    assert function_state(fn())["State"] == "Pending"
    assert function_state(fn())["LastUpdateStatus"] == "InProgress"
    active = fn(status=served_status(1, None))
    assert (function_state(active)["State"], function_state(active)["LastUpdateStatus"]) == (
        "Active",
        "Successful",
    )


def test_an_update_not_yet_observed_is_in_progress_and_keeps_the_state() -> None:
    state = function_state(fn(generation=2, status=served_status(1, None)))
    assert (state["State"], state["LastUpdateStatus"]) == ("Active", "InProgress")


def test_a_failed_generation_says_why() -> None:
    state = function_state(fn(generation=2, status=served_status(2, "no image here")))
    assert (state["State"], state["LastUpdateStatus"]) == ("Failed", "Failed")
    assert state["LastUpdateStatusReason"] == "no image here"


def test_versions_are_pending_until_published() -> None:
    assert version_state({"status": {}})["State"] == "Pending"
    assert version_state({"status": {"state": "Active"}})["State"] == "Active"
    failed = version_state({"status": {"state": "Failed", "stateReason": "why"}})
    assert (failed["State"], failed["StateReason"]) == ("Failed", "why")


def test_configuration_shape() -> None:
    config = configuration(fn(status=served_status(1, None)), "eu-west-1")
    assert config["FunctionArn"] == "arn:aws:lambda:eu-west-1:000000000000:function:team.hello"
    assert config["CodeSha256"] == base64.b64encode(hashlib.sha256(b"zip").digest()).decode()
    assert config["CodeSize"] == 123
    assert config["RevisionId"] == "42"
    assert config["Version"] == "$LATEST"
    version = {
        "kind": "Version",
        "metadata": {"name": "hello-3", "namespace": "team", "resourceVersion": "7"},
        "spec": {"functionName": "hello", "version": 3, "function": fn()["spec"]},
        "status": {"state": "Active"},
    }
    config = configuration(version, "eu-west-1")
    assert config["Version"] == "3" and config["FunctionArn"].endswith("team.hello:3")
    assert config["State"] == "Active"


def test_alias_shape() -> None:
    alias = {
        "metadata": {"name": "hello-live", "namespace": "team", "resourceVersion": "9"},
        "spec": {
            "functionName": "hello",
            "name": "Live",
            "functionVersion": "1",
            "routingConfig": {"additionalVersionWeights": {"2": 0.1}},
        },
    }
    body = alias_configuration(alias, "us-east-1")
    assert body["Name"] == "Live" and body["AliasArn"].endswith("function:team.hello:Live")
    assert body["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.1}}


def test_code_sha256_is_base64_both_ways() -> None:
    assert sha256_hex(sha256_base64(SHA)) == SHA
    with pytest.raises(LambdaError):
        sha256_hex("not-a-digest")


@pytest.mark.parametrize(
    ("arn", "spec"),
    [
        ("arn:aws:lambda:us-east-1:000000000000:function:team.audit", {"function": "audit"}),
        (
            "arn:aws:sqs:us-east-1:123456789012:failed",
            {"sqs": "https://sqs.us-east-1.amazonaws.com/123456789012/failed"},
        ),
        ("https://hooks.example/x", {"url": "https://hooks.example/x"}),
        ("nats:events.failed", {"nats": "events.failed"}),
    ],
)
def test_destinations_round_trip(arn: str, spec: dict[str, str]) -> None:
    assert destination_spec(arn, "us-east-1", "team") == spec
    assert destination_arn(spec, "us-east-1", "team") == arn


def test_a_destination_of_another_namespace_is_refused() -> None:
    with pytest.raises(LambdaError):
        destination_spec("arn:aws:lambda:us-east-1:000000000000:function:other.f", "r", "team")
