"""values.schema.json (and the chart's cross-field checks) reject wrong values with clear messages.

Each case runs the real `helm template` (and some `helm lint`) with a bad `--set` and checks that
helm fails and that its message names the value and what is wrong with it.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from kubelambda.api.runtimes import RUNTIMES, base_image
from tests.chart.chart_helpers import CHART, run_helm, template, values_args

RUNTIME_KEYS = set(RUNTIMES)

# (id, --set values, fragments that must all appear in helm's error output)
SCHEMA_CASES: list[tuple[str, list[str], list[str]]] = [
    ("wrong type: total", ["concurrency.total=lots"], ["/concurrency/total", "want integer"]),
    (
        "negative warm pool",
        [r"runtimes.python3\.12.warmPool=-1"],
        ["/runtimes/python3.12/warmPool", "minimum: got -1, want 0"],
    ),
    (
        "unknown runtime key",
        ["runtimes.java21.image=public.ecr.aws/lambda/java:21", "runtimes.java21.warmPool=1"],
        ["/runtimes", "additional properties 'java21' not allowed"],
    ),
    (
        "negative unreserved floor",
        ["concurrency.unreservedFloor=-5"],
        ["/concurrency/unreservedFloor", "minimum: got -5, want 0"],
    ),
    ("zero keep-alive", ["idleKeepAliveSeconds=0"], ["/idleKeepAliveSeconds", "minimum"]),
    (
        "a 16 MiB agent sidecar",
        ["functionPods.agent.memoryMiB=16"],
        ["/functionPods/agent/memoryMiB", "minimum"],
    ),
    (
        "wrong type: keep-alive",
        ["idleKeepAliveSeconds=five minutes"],
        ["/idleKeepAliveSeconds", "want integer"],
    ),
    (
        "image tag latest",
        ["image.tag=latest"],
        ["/image/tag", "the tag latest is not allowed"],
    ),
    (
        "runtime image latest",
        [r"runtimes.nodejs22\.x.image=public.ecr.aws/lambda/nodejs:latest"],
        ["/runtimes/nodejs22.x/image", "the tag latest is not allowed"],
    ),
    (
        "untagged runtime image",
        [r"runtimes.python3\.12.image=public.ecr.aws/lambda/python"],
        ["/runtimes/python3.12/image", "does not match pattern"],
    ),
    ("bad digest", ["image.digest=sha256:abc"], ["/image/digest", "does not match pattern"]),
    (
        "unknown auth mode",
        ["gateway.auth.mode=iam"],
        [
            "/gateway/auth/mode",
            "value must be one of 'none', 'kubernetes', 'sigv4', 'sigv4,kubernetes'",
        ],
    ),
    (
        "unknown queue backend",
        ["queue.backend=kafka"],
        ["/queue/backend", "value must be one of 'sqlite', 'nats'"],
    ),
    (
        "nats url scheme",
        ["queue.backend=nats", "queue.nats.url=http://nats:4222"],
        ["/queue/nats/url", "does not match pattern"],
    ),
    ("port out of range", ["gateway.service.port=70000"], ["/gateway/service/port", "maximum"]),
    (
        "zero operator replicas",
        ["operator.replicas=0"],
        ["/operator/replicas", "minimum: got 0, want 1"],
    ),
    (
        "invalid namespace name",
        ["functionNamespaces[0]=Team_A"],
        ["/functionNamespaces/0", "does not match pattern"],
    ),
    (
        "misspelt top-level key",
        ["concurency.total=10"],
        ["additional properties 'concurency' not allowed"],
    ),
    (
        "wrong type: boolean",
        ["networkPolicy.enabled=maybe"],
        ["/networkPolicy/enabled", "want boolean"],
    ),
    (
        "service type",
        ["gateway.service.type=ExternalName"],
        ["/gateway/service/type", "value must be one of"],
    ),
]

# Rules across several values (JSON Schema draft-07 cannot express them): the templates `fail`.
CROSS_FIELD_CASES: list[tuple[str, list[str], list[str]]] = [
    (
        "floor above total",
        ["concurrency.total=50", "concurrency.unreservedFloor=100"],
        ["concurrency.unreservedFloor (100) must not exceed concurrency.total (50)"],
    ),
    (
        "sqlite with two gateways",
        ["queue.backend=sqlite", "gateway.replicas=2"],
        ["gateway.replicas is 2 but queue.backend=sqlite"],
    ),
    (
        "nats without a server",
        ["queue.backend=nats", "queue.nats.install=false"],
        ["queue.backend=nats needs queue.nats.install=true or queue.nats.url"],
    ),
    (
        "functions in the release namespace",
        ["functionNamespaces={kubelambda-system}"],
        ["functionNamespaces includes the release namespace kubelambda-system"],
    ),
    (
        "httpRoute without parents",
        ["gateway.httpRoute.enabled=true"],
        ["gateway.httpRoute.enabled=true needs gateway.httpRoute.parentRefs"],
    ),
]


def test_enough_wrong_values_are_checked() -> None:
    assert len(SCHEMA_CASES) >= 10


@pytest.mark.parametrize(
    ("sets", "fragments"),
    [pytest.param(s, f, id=i) for i, s, f in SCHEMA_CASES],
)
def test_schema_rejects_wrong_values(sets: list[str], fragments: list[str]) -> None:
    result = template(sets=sets)
    assert result.returncode != 0, f"helm accepted {sets}"
    assert "values don't meet the specifications of the schema" in result.output, result.output
    for fragment in fragments:
        assert fragment in result.output, f"{fragment!r} not in helm's message:\n{result.output}"


@pytest.mark.parametrize(
    ("sets", "fragments"),
    [pytest.param(s, f, id=i) for i, s, f in CROSS_FIELD_CASES],
)
def test_cross_field_rules_fail_with_a_message(sets: list[str], fragments: list[str]) -> None:
    result = template(sets=sets)
    assert result.returncode != 0, f"helm accepted {sets}"
    for fragment in fragments:
        assert fragment in result.output, f"{fragment!r} not in helm's message:\n{result.output}"


@pytest.mark.parametrize(
    "sets", [["concurrency.total=-1"], [r"runtimes.python3\.12.warmPool=many"]]
)
def test_helm_lint_also_rejects_wrong_values(sets: list[str]) -> None:
    args = ["lint", str(CHART), *values_args((), sets)]
    result = run_helm(args)
    assert result.returncode != 0
    assert "1 chart(s) failed" in result.output


def test_defaults_and_valid_overrides_are_accepted() -> None:
    ok = template(
        sets=[
            "concurrency.total=5000",
            "concurrency.unreservedFloor=0",
            r"runtimes.provided\.al2023.warmPool=4",
            "image.tag=0.2.0-rc.1",
            "functionNamespaces={a,b}",
        ]
    )
    assert ok.returncode == 0, ok.output


def _schema() -> dict[str, object]:
    schema: dict[str, object] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def test_schema_is_valid_draft7_and_accepts_values_yaml() -> None:
    schema = _schema()
    jsonschema.Draft7Validator.check_schema(schema)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(values)


def test_runtime_keys_are_the_supported_runtimes() -> None:
    schema = _schema()
    properties = schema["properties"]
    assert isinstance(properties, dict)
    assert set(properties["runtimes"]["properties"]) == RUNTIME_KEYS
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["runtimes"]) == RUNTIME_KEYS
    for runtime, spec in values["runtimes"].items():
        assert spec["image"] == base_image(runtime)


def test_concurrency_and_keepalive_defaults() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["concurrency"] == {"total": 1000, "unreservedFloor": 100}
    assert values["idleKeepAliveSeconds"] == 300
