"""Invalid manifests are refused with a message that names the field (and the range).

Each case is a valid base object with one thing broken. `schema` says whether the CRD's
openAPIV3Schema alone can refuse it too; the rest are CEL rules or checks only the models
(and so the operator) make.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubelambda.api.resources import ManifestError, parse_resource
from tests.unit.api.crd_schema import schema_errors

API = "kubelambda.dev/v1alpha1"
FUNCTION = {
    "apiVersion": API,
    "kind": "Function",
    "metadata": {"name": "hello"},
    "spec": {
        "runtime": "python3.12",
        "handler": "app.handler",
        "code": {"inline": {"app.py": "x"}},
    },
}
VERSION = {
    "apiVersion": API,
    "kind": "Version",
    "metadata": {"name": "v"},
    "spec": {"functionName": "hello"},
}
ALIAS = {
    "apiVersion": API,
    "kind": "Alias",
    "metadata": {"name": "live"},
    "spec": {"functionName": "hello", "functionVersion": "1"},
}
ESM = {
    "apiVersion": API,
    "kind": "EventSourceMapping",
    "metadata": {"name": "m"},
    "spec": {"functionName": "hello", "source": {"sqs": {"queueUrl": "http://127.0.0.1:1/q"}}},
}
STREAM = {"nats": {"url": "nats://127.0.0.1:4222", "stream": "S"}}


def case(
    base: dict[str, Any], spec: dict[str, Any], field: str, says: str, *, schema: bool = True
) -> Any:
    doc = copy.deepcopy(base)
    doc["spec"].update(spec)
    return pytest.param(doc, field, says, schema, id=f"{base['kind']}:{field}:{says}")


CASES = [
    case(FUNCTION, {"memorySize": 64}, "spec.memorySize", "between 128 and 10240"),
    case(FUNCTION, {"memorySize": 10241}, "spec.memorySize", "between 128 and 10240"),
    case(FUNCTION, {"timeout": 0}, "spec.timeout", "between 1 and 900"),
    case(FUNCTION, {"timeout": 901}, "spec.timeout", "between 1 and 900"),
    case(FUNCTION, {"ephemeralStorage": 100}, "spec.ephemeralStorage", "between 512 and 10240"),
    case(
        FUNCTION,
        {"environment": {"variables": {"BIG": "x" * 5000}}},
        "spec.environment",
        "limit is 4096 bytes",
        schema=False,
    ),
    case(
        FUNCTION,
        {"environment": {"variables": {"AWS_REGION": "x"}}},
        "spec.environment.variables",
        "AWS_REGION: reserved, Lambda sets it",
        schema=False,
    ),
    case(
        FUNCTION,
        {"environment": {"variables": {"1BAD": "x"}}},
        "spec.environment.variables",
        "1BAD: a name must match",
        schema=False,
    ),
    case(
        FUNCTION,
        {"environment": {"secretKeyRefs": {"AWS_SESSION_TOKEN": {"name": "s", "key": "k"}}}},
        "spec.environment.secretKeyRefs",
        "AWS_SESSION_TOKEN: reserved",
        schema=False,
    ),
    case(FUNCTION, {"layers": [{"path": f"l{i}"} for i in range(6)]}, "spec.layers", "at most 5"),
    case(FUNCTION, {"runtime": "python2.7"}, "spec.runtime", "python3.12"),
    case(FUNCTION, {"packageType": "Jar"}, "spec.packageType", "'Zip' or 'Image'"),
    case(FUNCTION, {"code": {}}, "spec.code", "exactly one of inline"),
    case(
        FUNCTION,
        {"code": {"inline": {"a.py": ""}, "path": "./x"}},
        "spec.code",
        "got inline, path",
    ),
    case(
        FUNCTION,
        {"code": {"url": "https://example.com/f.zip"}},
        "spec.code",
        "sha256 is required",
        schema=False,
    ),
    case(FUNCTION, {"code": {"path": "x", "sha256": "abc"}}, "spec.code.sha256", "must match"),
    case(FUNCTION, {"handler": None}, "spec", "handler is required", schema=False),
    case(FUNCTION, {"packageType": "Image"}, "spec", "requires code.image", schema=False),
    case(FUNCTION, {"reservedConcurrency": -1}, "spec.reservedConcurrency", "at least 0"),
    case(FUNCTION, {"architectures": ["x86_64", "arm64"]}, "spec.architectures", "exactly 1 item"),
    case(FUNCTION, {"memroySize": 256}, "spec.memroySize", "not a known field"),
    case(
        FUNCTION,
        {"asyncConfig": {"maximumRetryAttempts": 3}},
        "spec.asyncConfig.maximumRetryAttempts",
        "between 0 and 2",
    ),
    case(
        FUNCTION,
        {"asyncConfig": {"maximumEventAgeInSeconds": 59}},
        "spec.asyncConfig.maximumEventAgeInSeconds",
        "between 60 and 21600",
    ),
    case(
        FUNCTION,
        {"asyncConfig": {"destinations": {"onSuccess": {}}}},
        "spec.asyncConfig.destinations.onSuccess",
        "exactly one of function, url, sqs, nats",
    ),
    case(
        FUNCTION,
        {"loggingConfig": {"logFormat": "Text", "applicationLogLevel": "DEBUG"}},
        "spec.loggingConfig",
        "require logFormat JSON",
        schema=False,
    ),
    case(FUNCTION, {"autoPublishAlias": "42"}, "spec.autoPublishAlias", "all digits"),
    case(VERSION, {"version": 0}, "spec.version", "at least 1"),
    case(VERSION, {"functionName": "Hello_World"}, "spec.functionName", "must match"),
    case(
        VERSION,
        {"function": {"runtime": "python3.12", "handler": "a.b"}},
        "spec.function.code",
        "required",
    ),
    case(
        ALIAS,
        {
            "functionVersion": "2",
            "routingConfig": {"additionalVersionWeights": {"3": 0.7, "4": 0.5}},
        },
        "spec.routingConfig.additionalVersionWeights",
        "at most 1",
    ),
    case(
        ALIAS,
        {"routingConfig": {"additionalVersionWeights": {"2": 1.2}}},
        "spec.routingConfig.additionalVersionWeights.2",
        "between 0 and 1",
    ),
    case(
        ALIAS,
        {"functionVersion": "$LATEST", "routingConfig": {"additionalVersionWeights": {"2": 0.1}}},
        "spec",
        "$LATEST cannot route",
        schema=False,
    ),
    case(
        ALIAS,
        {"routingConfig": {"additionalVersionWeights": {"$LATEST": 0.1}}},
        "spec.routingConfig.additionalVersionWeights.$LATEST (key)",
        "must match",
        schema=False,
    ),
    case(ALIAS, {"name": "123"}, "spec.name", "all digits"),
    case(ALIAS, {"functionVersion": "latest"}, "spec.functionVersion", "must match"),
    case(ALIAS, {"provisionedConcurrency": -2}, "spec.provisionedConcurrency", "at least 0"),
    case(ESM, {"batchSize": 0}, "spec.batchSize", "between 1 and 10000"),
    case(ESM, {"batchSize": 10001}, "spec.batchSize", "between 1 and 10000"),
    case(ESM, {"batchSize": 100}, "spec", "at least 1", schema=False),
    case(
        ESM,
        {"maximumBatchingWindowInSeconds": 301},
        "spec.maximumBatchingWindowInSeconds",
        "between 0 and 300",
    ),
    case(ESM, {"startingPosition": "LATEST"}, "spec", "only to stream sources", schema=False),
    case(ESM, {"source": STREAM}, "spec", "startingPosition is required", schema=False),
    case(ESM, {"source": {}}, "spec.source", "exactly one of sqs"),
    case(
        ESM,
        {"functionResponseTypes": ["Everything"]},
        "spec.functionResponseTypes[0]",
        "ReportBatchItemFailures",
    ),
    case(
        ESM,
        {"scalingConfig": {"maximumConcurrency": 1}},
        "spec.scalingConfig.maximumConcurrency",
        "between 2 and 1000",
    ),
    case(
        ESM,
        {"filterCriteria": {"filters": [{"pattern": "not json"}]}},
        "spec.filterCriteria.filters[0].pattern",
        "JSON object",
        schema=False,
    ),
    case(
        ESM,
        {"filterCriteria": {"filters": [{"pattern": "{}"}] * 6}},
        "spec.filterCriteria.filters",
        "at most 5",
    ),
    case(
        ESM,
        {"source": {"schedule": {"expression": "every day"}}},
        "spec.source.schedule.expression",
        "rate(N minutes",
        schema=False,
    ),
    case(
        ESM,
        {"source": {"schedule": {"expression": "cron(0 8 * *)"}}},
        "spec.source.schedule.expression",
        "6 fields",
        schema=False,
    ),
    case(
        ESM,
        {"source": {**STREAM}, "startingPosition": "LATEST", "maximumRecordAgeInSeconds": 30},
        "spec",
        "-1 (forever) or 60",
        schema=False,
    ),
    case(ESM, {"functionName": "hello:"}, "spec.functionName", "must match"),
]


def test_there_are_at_least_30_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(("doc", "field", "says", "schema"), CASES)
def test_models_refuse_and_name_the_field(
    doc: dict[str, Any], field: str, says: str, schema: bool
) -> None:
    with pytest.raises(ManifestError) as refused:
        parse_resource(doc)
    lines = refused.value.problems
    assert any(f": {field}: " in line and says in line for line in lines), lines


@pytest.mark.parametrize(("doc", "field", "says", "schema"), [c for c in CASES if c.values[3]])
def test_crd_schema_refuses_what_it_can(
    doc: dict[str, Any], field: str, says: str, schema: bool
) -> None:
    assert schema_errors(doc), f"the CRD schema accepted {doc['spec']}"


def test_errors_are_collected_per_object() -> None:
    doc = copy.deepcopy(FUNCTION)
    doc["spec"].update(memorySize=1, timeout=0)
    with pytest.raises(ManifestError) as refused:
        parse_resource(doc, where="fn.yaml")
    assert len(refused.value.problems) == 2
    assert all(line.startswith("fn.yaml: Function/hello: spec.") for line in refused.value.problems)
