"""Reconciling Aliases: routing in status, invalid input, conflicts and waiting for versions."""

from __future__ import annotations

from typing import Any

import pytest

from kubelambda.operator import aliases as a
from tests.unit.operator.docs import NOW, active_function, alias, published, version

VERSIONS = [published("one", 1), published("two", 2)]


def test_a_weighted_alias_reports_its_routing() -> None:
    doc = alias("live", routingConfig={"additionalVersionWeights": {"2": 0.1}})
    plan = a.plan(doc, active_function(), VERSIONS, [], NOW)
    assert plan.wait is None and plan.failed is None
    assert plan.status["state"] == "Active"
    assert plan.status["name"] == "live"
    assert plan.status["routing"] == "1=90% 2=10%"
    assert plan.status["aliasArn"].endswith(":function:default.hello:live")
    assert [e.reason for e in plan.events] == ["Routing"]


def test_spec_name_overrides_the_object_name() -> None:
    plan = a.plan(alias("hello-prod", name="Prod"), active_function(), VERSIONS, [], NOW)
    assert plan.status["name"] == "Prod"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"routingConfig": {"additionalVersionWeights": {"2": 1.5}}}, "spec.routingConfig"),
        (
            {"routingConfig": {"additionalVersionWeights": {"2": 0.7, "3": 0.7}}},
            "spec.routingConfig",
        ),
        (
            {
                "functionVersion": "$LATEST",
                "routingConfig": {"additionalVersionWeights": {"2": 0.5}},
            },
            "spec",
        ),
        ({"name": "123"}, "spec.name"),
        ({"functionVersion": "latest"}, "spec.functionVersion"),
    ],
)
def test_invalid_aliases_fail_with_the_field_named(spec: dict[str, Any], field: str) -> None:
    plan = a.plan(alias("bad", **spec), active_function(), VERSIONS, [], NOW)
    assert plan.failed is not None and plan.failed.startswith(field), plan.failed
    assert plan.status["state"] == "Failed"
    assert plan.status["conditions"][0]["status"] == "False"


def test_waits_for_the_function_and_for_unpublished_versions() -> None:
    assert a.plan(alias("live"), None, [], [], NOW).wait is not None
    missing = a.plan(alias("live", functionVersion="3"), active_function(), VERSIONS, [], NOW)
    assert missing.wait is not None and missing.wait.startswith("spec.functionVersion")
    weighted = alias("live", routingConfig={"additionalVersionWeights": {"5": 0.5}})
    plan = a.plan(weighted, active_function(), VERSIONS, [], NOW)
    assert plan.wait is not None
    assert plan.wait.startswith("spec.routingConfig.additionalVersionWeights.5")
    unpublished = [published("one", 1), version("pending")]
    assert a.plan(alias("live"), active_function(), unpublished, [], NOW).wait is None


def test_latest_needs_no_published_version() -> None:
    plan = a.plan(alias("dev", functionVersion="$LATEST"), active_function(), [], [], NOW)
    assert plan.status["routing"] == "$LATEST=100%"


def test_the_older_alias_keeps_a_contested_name() -> None:
    older = alias("live-a", name="live", created="2027-01-01T00:00:00Z")
    younger = alias("live-b", name="live", created="2027-01-02T00:00:00Z")
    loses = a.plan(younger, active_function(), VERSIONS, [older], NOW)
    assert loses.failed is not None and loses.failed.startswith("spec.name")
    assert "Alias/live-a" in loses.failed
    keeps = a.plan(older, active_function(), VERSIONS, [younger], NOW)
    assert keeps.failed is None and keeps.status["state"] == "Active"
    other_name = alias("beta", created="2026-01-01T00:00:00Z")
    assert a.plan(younger, active_function(), VERSIONS, [other_name], NOW).failed is None
