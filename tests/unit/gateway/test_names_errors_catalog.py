"""Pure gateway logic: name parsing, error shapes against botocore's model, catalog resolution."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.loaders import Loader

from kubelambda.api.resources import parse_resource
from kubelambda.serving.catalog import AliasRoute, build_catalog
from kubelambda.serving.errors import ERRORS, LambdaError, throttled
from kubelambda.serving.names import FunctionRef, parse_function_name

MODEL = Loader().load_service_model("lambda", "service-2")


@pytest.mark.parametrize(("code", "entry"), sorted(ERRORS.items()))
def test_error_table_matches_botocore(code: str, entry: tuple[int, str]) -> None:
    shape = MODEL["shapes"][code]
    status, message_key = entry
    assert shape["error"]["httpStatusCode"] == status
    assert message_key in shape["members"]


def test_throttle_body_and_headers_follow_the_model() -> None:
    err = throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
    body = json.loads(err.body())
    assert body["Reason"] in MODEL["shapes"]["ThrottleReason"]["enum"]
    assert err.response_headers()["x-amzn-ErrorType"] == "TooManyRequestsException"
    header = MODEL["shapes"]["TooManyRequestsException"]["members"]["retryAfterSeconds"]
    assert header["locationName"] in err.response_headers()


@pytest.mark.parametrize(
    ("raw", "qualifier", "expected"),
    [
        ("hello", None, FunctionRef("default", "hello", None)),
        ("hello:live", None, FunctionRef("default", "hello", "live")),
        ("team-a.hello", "3", FunctionRef("team-a", "hello", "3")),
        (
            "arn:aws:lambda:us-east-1:123456789012:function:hello",
            None,
            FunctionRef("default", "hello", None),
        ),
        (
            "arn:aws:lambda:eu-west-1:000000000000:function:ns.f:$LATEST",
            None,
            FunctionRef("ns", "f", "$LATEST"),
        ),
        ("123456789012:function:hello:7", None, FunctionRef("default", "hello", "7")),
        ("hello:live", "live", FunctionRef("default", "hello", "live")),
    ],
)
def test_accepted_name_forms(raw: str, qualifier: str | None, expected: FunctionRef) -> None:
    assert parse_function_name(raw, qualifier, "default") == expected


@pytest.mark.parametrize("raw", ["Hello", "a.b.c", "arn:aws:s3:::bucket", "", "hello:"])
def test_rejected_name_forms(raw: str) -> None:
    with pytest.raises(LambdaError) as refused:
        parse_function_name(raw, None, "default")
    assert refused.value.code == "InvalidParameterValueException"


def test_conflicting_qualifiers_are_refused() -> None:
    with pytest.raises(LambdaError):
        parse_function_name("hello:live", "3", "default")


def test_alias_choice_follows_the_weights_exactly() -> None:
    alias = AliasRoute("live", "1", {"2": 0.25})
    assert [alias.choose(d) for d in (0.0, 0.2499, 0.25, 0.9999)] == ["2", "2", "1", "1"]
    assert AliasRoute("x", "1", {}).choose(0.0) == "1"
    assert alias.describe() == "1=75% 2=25%"


def manifest(kind: str, name: str, spec: dict[str, Any]) -> Any:
    return parse_resource(
        {
            "apiVersion": "kubelambda.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }
    )


FN = {"runtime": "python3.11", "handler": "a.b", "code": {"inline": {"a.py": "x"}}}


def test_catalog_resolves_versions_aliases_and_reports_problems() -> None:
    v1 = manifest(
        "Version", "f-1", {"functionName": "f", "version": 1, "function": {**FN, "memorySize": 256}}
    )
    catalog = build_catalog(
        [
            manifest("Function", "f", FN),
            v1,
            manifest("Alias", "live", {"functionName": "f", "functionVersion": "1"}),
            manifest("Alias", "broken", {"functionName": "f", "functionVersion": "9"}),
            manifest("Version", "g-1", {"functionName": "g", "version": 1, "function": FN}),
            manifest("Version", "f-unpublished", {"functionName": "f"}),
        ]
    )
    resolved = catalog.resolve(FunctionRef("default", "f", "live"), 0.5)
    assert resolved.version.version == "1" and resolved.alias == "live"
    assert resolved.version.spec.memory_size == 256, "a Version serves its frozen configuration"
    assert catalog.resolve(FunctionRef("default", "f", None), 0.5).version.spec.memory_size == 128
    assert len(catalog.problems) == 3
    for qualifier in ("broken", "2"):
        with pytest.raises(LambdaError) as refused:
            catalog.resolve(FunctionRef("default", "f", qualifier), 0.5)
        assert refused.value.code == "ResourceNotFoundException"
    assert catalog.entry("default", "f").latest.revision != resolved.version.revision
