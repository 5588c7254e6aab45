"""Property tests: valid objects round-trip through the CRD schema; invalid ones never pass.

Hypothesis builds manifests from the documented ranges, independently of the models, so a
model that drifts from Lambda's quotas fails here.
"""

from __future__ import annotations

import copy
import string
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubelambda.api.common import PYTHON_RUNTIMES
from kubelambda.api.resources import ManifestError, parse_resource
from tests.unit.api.crd_schema import schema_errors

API = "kubelambda.dev/v1alpha1"
dns_label = st.from_regex(r"\A[a-z][a-z0-9-]{0,20}[a-z0-9]\Z")
env_name = st.from_regex(r"\A[A-Z][A-Z0-9_]{1,15}\Z").filter(
    lambda n: not n.startswith(("AWS_", "LAMBDA_"))
)
sha = st.text("0123456789abcdef", min_size=64, max_size=64)
small_text = st.text(string.ascii_letters + string.digits + " -_.", max_size=40)

code = st.one_of(
    st.builds(
        lambda f: {"inline": {f: "def handler(e, c):\n    return e\n"}},
        st.sampled_from(["app.py", "src/app.py"]),
    ),
    st.builds(lambda p: {"path": p}, st.sampled_from(["./hello", "fn.zip"])),
    st.builds(lambda s: {"url": "https://code.example.com/fn.zip", "sha256": s}, sha),
    st.builds(lambda n: {"configMap": {"name": n, "key": "code.zip"}}, dns_label),
    st.builds(
        lambda b: {"s3": {"bucket": b, "key": "fn.zip"}}, dns_label.filter(lambda b: len(b) >= 3)
    ),
)
destination = st.one_of(
    st.builds(lambda n: {"function": n}, dns_label),
    st.just({"url": "https://hooks.example.com/done"}),
    st.just({"nats": "kubelambda.failed"}),
)


@st.composite
def function_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "runtime": draw(st.sampled_from(PYTHON_RUNTIMES)),
        "handler": "app.handler",
        "code": draw(code),
        "memorySize": draw(st.integers(128, 10240)),
        "timeout": draw(st.integers(1, 900)),
        "ephemeralStorage": draw(st.integers(512, 10240)),
    }
    if draw(st.booleans()):
        spec["environment"] = {"variables": draw(st.dictionaries(env_name, small_text, max_size=8))}
    if draw(st.booleans()):
        spec["layers"] = draw(st.lists(st.builds(lambda p: {"path": p}, dns_label), max_size=5))
    if draw(st.booleans()):
        spec["reservedConcurrency"] = draw(st.integers(0, 3000))
    if draw(st.booleans()):
        spec["asyncConfig"] = {
            "maximumRetryAttempts": draw(st.integers(0, 2)),
            "maximumEventAgeInSeconds": draw(st.integers(60, 21600)),
            "destinations": {"onFailure": draw(destination)},
        }
    return spec


@st.composite
def alias_specs(draw: st.DrawFn) -> dict[str, Any]:
    primary = draw(st.integers(1, 500))
    spec: dict[str, Any] = {
        "functionName": draw(dns_label),
        "name": draw(st.from_regex(r"\A[a-zA-Z_-][a-zA-Z0-9_-]{0,30}\Z")),
        "functionVersion": str(primary),
    }
    if draw(st.booleans()):
        other = draw(st.integers(1, 500).filter(lambda v: v != primary))
        spec["routingConfig"] = {
            "additionalVersionWeights": {str(other): draw(st.floats(0.0, 1.0))}
        }
    return spec


@st.composite
def esm_specs(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        batch = draw(st.integers(1, 10000))
        spec: dict[str, Any] = {
            "source": {"sqs": {"queueUrl": "http://127.0.0.1:4566/000000000000/q"}},
            "batchSize": batch,
            "maximumBatchingWindowInSeconds": draw(st.integers(1 if batch > 10 else 0, 300)),
        }
    else:
        spec = {
            "source": {"nats": {"url": "nats://127.0.0.1:4222", "stream": "S"}},
            "startingPosition": draw(st.sampled_from(["TRIM_HORIZON", "LATEST"])),
            "batchSize": draw(st.integers(1, 10000)),
            "maximumRetryAttempts": draw(st.integers(-1, 10000)),
            "maximumRecordAgeInSeconds": draw(st.one_of(st.just(-1), st.integers(60, 604800))),
        }
    spec["functionName"] = draw(dns_label) + draw(st.sampled_from(["", ":live", ":3", ":$LATEST"]))
    return spec


def manifest(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": "obj"}, "spec": spec}


def assert_round_trip(doc: dict[str, Any]) -> None:
    resource = parse_resource(doc)
    dumped = resource.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert schema_errors(doc) == []
    assert schema_errors(dumped) == []
    assert parse_resource(dumped) == resource


@settings(max_examples=150, deadline=None)
@given(function_specs())
def test_valid_functions_round_trip(spec: dict[str, Any]) -> None:
    assert_round_trip(manifest("Function", spec))


@settings(max_examples=100, deadline=None)
@given(function_specs(), st.integers(1, 10**6))
def test_valid_versions_round_trip(spec: dict[str, Any], number: int) -> None:
    assert_round_trip(
        manifest("Version", {"functionName": "fn", "version": number, "function": spec})
    )


@settings(max_examples=150, deadline=None)
@given(alias_specs())
def test_valid_aliases_round_trip(spec: dict[str, Any]) -> None:
    assert_round_trip(manifest("Alias", spec))


@settings(max_examples=150, deadline=None)
@given(esm_specs())
def test_valid_mappings_round_trip(spec: dict[str, Any]) -> None:
    assert_round_trip(manifest("EventSourceMapping", spec))


RANGES = {
    "memorySize": (128, 10240),
    "timeout": (1, 900),
    "ephemeralStorage": (512, 10240),
}
out_of_range = st.sampled_from(sorted(RANGES)).flatmap(
    lambda f: st.tuples(
        st.just(f),
        st.one_of(st.integers(max_value=RANGES[f][0] - 1), st.integers(min_value=RANGES[f][1] + 1)),
    )
)


@settings(max_examples=200, deadline=None)
@given(function_specs(), out_of_range)
def test_out_of_range_functions_never_pass(spec: dict[str, Any], bad: tuple[str, int]) -> None:
    field, value = bad
    doc = manifest("Function", {**copy.deepcopy(spec), field: value})
    try:
        parse_resource(doc)
    except ManifestError as exc:
        assert any(f"spec.{field}: must be between" in line for line in exc.problems)
    else:
        raise AssertionError(f"{field}={value} was accepted")
    assert schema_errors(doc), "the CRD schema accepted it"


@settings(max_examples=200, deadline=None)
@given(
    alias_specs(),
    st.dictionaries(st.integers(1, 99).map(str), st.floats(0.0, 2.0), min_size=1, max_size=3),
)
def test_alias_weights_over_the_rules_never_pass(
    spec: dict[str, Any], weights: dict[str, float]
) -> None:
    spec = {**spec, "routingConfig": {"additionalVersionWeights": weights}}
    valid = (
        len(weights) == 1
        and spec["functionVersion"] not in weights
        and all(0 <= w <= 1 for w in weights.values())
    )
    try:
        parse_resource(manifest("Alias", spec))
    except ManifestError as exc:
        assert not valid, exc.problems
        assert any("routingConfig" in line for line in exc.problems)
    else:
        assert valid, f"{weights} was accepted"


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(env_name, st.text(max_size=600), min_size=1, max_size=20))
def test_environment_over_4kb_never_passes(variables: dict[str, str]) -> None:
    size = sum(len(k.encode()) + len(v.encode()) for k, v in variables.items())
    spec = {"runtime": "python3.12", "handler": "a.b", "code": {"path": "."}}
    doc = manifest("Function", {**spec, "environment": {"variables": variables}})
    try:
        parse_resource(doc)
    except ManifestError as exc:
        assert size > 4096, exc.problems
        assert any("spec.environment: variables total" in line for line in exc.problems)
    else:
        assert size <= 4096
