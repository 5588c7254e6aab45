"""Lambda requests -> resource specs: what the models accept, and what they refuse, named. Pure."""

from __future__ import annotations

from typing import Any

import pytest

from kubelambda.serving.control.translate import (
    alias_spec,
    async_config,
    code_members,
    function_spec,
    mapping_spec,
    url_config,
)
from kubelambda.serving.errors import LambdaError

CODE = {"path": "/state/code.zip", "sha256": "a" * 64}


def create(**params: Any) -> dict[str, Any]:
    base = {"Runtime": "python3.12", "Handler": "app.handler"}
    return function_spec({**base, **params}, CODE, [], "us-east-1", "default")


def test_create_function_members_become_the_spec() -> None:
    spec = create(
        MemorySize=1024,
        Timeout=30,
        Environment={"Variables": {"GREETING": "hi"}},
        EphemeralStorage={"Size": 1024},
        Architectures=["arm64"],
        LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG"},
        DeadLetterConfig={"TargetArn": "arn:aws:sqs:us-east-1:000000000000:dlq"},
        TracingConfig={"Mode": "PassThrough"},
    )
    assert spec["memorySize"] == 1024 and spec["timeout"] == 30
    assert spec["environment"] == {"variables": {"GREETING": "hi"}}
    assert spec["ephemeralStorage"] == 1024 and spec["architectures"] == ["arm64"]
    assert spec["loggingConfig"] == {"logFormat": "JSON", "applicationLogLevel": "DEBUG"}
    assert spec["deadLetterConfig"] == {
        "sqs": "https://sqs.us-east-1.amazonaws.com/000000000000/dlq"
    }
    assert spec["code"] == CODE


def test_update_merges_over_the_current_spec() -> None:
    base = create(Environment={"Variables": {"AA": "1"}}, Timeout=5)
    spec = function_spec({"MemorySize": 256}, CODE, [], "us-east-1", "default", base)
    assert spec["timeout"] == 5 and spec["memorySize"] == 256
    assert spec["environment"] == {"variables": {"AA": "1"}}


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"MemorySize": 64}, "memorySize"),
        ({"Timeout": 0}, "timeout"),
        ({"Handler": None, "Runtime": "python3.12"}, "handler"),
        ({"FileSystemConfigs": [{"Arn": "x", "LocalMountPath": "/mnt/x"}]}, "FileSystemConfigs"),
        ({"SnapStart": {"ApplyOn": "PublishedVersions"}}, "SnapStart"),
        ({"Environment": {"Variables": {"AWS_LAMBDA_RUNTIME_API": "x"}}}, "reserved"),
    ],
)
def test_refusals_name_the_field(params: dict[str, Any], words: str) -> None:
    with pytest.raises(LambdaError) as caught:
        function_spec(
            {"Runtime": "python3.12", "Handler": "app.handler", **params},
            CODE,
            [],
            "us-east-1",
            "default",
        )
    assert caught.value.code == "InvalidParameterValueException"
    assert words in caught.value.message


def test_off_values_of_unsupported_members_are_accepted() -> None:
    create(VpcConfig={"SubnetIds": [], "SecurityGroupIds": []}, SnapStart={"ApplyOn": "None"})


@pytest.mark.parametrize(
    ("code", "chosen"),
    [
        ({"ZipFile": "UEs="}, "ZipFile"),
        ({"S3Bucket": "b", "S3Key": "k"}, "S3Bucket"),
        ({"ImageUri": "registry/x:1"}, "ImageUri"),
    ],
)
def test_exactly_one_code_source(code: dict[str, str], chosen: str) -> None:
    assert code_members(code) == chosen


@pytest.mark.parametrize("code", [{}, {"ZipFile": "x", "ImageUri": "y"}, {"S3Bucket": "b"}])
def test_code_sources_that_are_not_exactly_one_are_refused(code: dict[str, str]) -> None:
    with pytest.raises(LambdaError):
        code_members(code)


def test_alias_weights_are_checked_by_the_model() -> None:
    spec = alias_spec(
        "hello",
        "live",
        {"FunctionVersion": "1", "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.1}}},
    )
    assert spec["routingConfig"] == {"additionalVersionWeights": {"2": 0.1}}
    with pytest.raises(LambdaError, match="additionalVersionWeights"):
        alias_spec(
            "hello",
            "live",
            {"FunctionVersion": "1", "RoutingConfig": {"AdditionalVersionWeights": {"2": 1.5}}},
        )
    with pytest.raises(LambdaError, match="LATEST"):
        alias_spec(
            "hello",
            "live",
            {
                "FunctionVersion": "$LATEST",
                "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.5}},
            },
        )


def test_event_invoke_config_ranges() -> None:
    config = async_config(
        {
            "MaximumRetryAttempts": 0,
            "DestinationConfig": {"OnSuccess": {"Destination": "https://hooks.example/ok"}},
        },
        "us-east-1",
        "default",
    )
    assert config == {
        "maximumRetryAttempts": 0,
        "destinations": {"onSuccess": {"url": "https://hooks.example/ok"}},
    }
    with pytest.raises(LambdaError, match="maximumEventAgeInSeconds"):
        async_config({"MaximumEventAgeInSeconds": 30}, "us-east-1", "default")


def test_url_config_and_mappings() -> None:
    assert url_config({"AuthType": "NONE", "Cors": {"AllowOrigins": ["*"], "MaxAge": 5}}) == {
        "authType": "NONE",
        "cors": {"allowOrigins": ["*"], "maxAge": 5},
    }
    sqs = mapping_spec(
        {"EventSourceArn": "arn:aws:sqs:eu-west-1:123456789012:jobs", "BatchSize": 5},
        "hello:live",
        "us-east-1",
        "default",
    )
    assert sqs["source"] == {
        "sqs": {"queueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"}
    }
    kafka = mapping_spec(
        {
            "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["k:9092"]}},
            "Topics": ["orders"],
            "StartingPosition": "LATEST",
        },
        "hello",
        "us-east-1",
        "default",
    )
    assert kafka["source"] == {"kafka": {"bootstrapServers": ["k:9092"], "topic": "orders"}}
    with pytest.raises(LambdaError, match="startingPosition"):
        mapping_spec(
            {
                "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["k:9092"]}},
                "Topics": ["orders"],
            },
            "hello",
            "us-east-1",
            "default",
        )
