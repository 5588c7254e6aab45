"""Reconciling an Alias: its name, its target versions and weights, its routing in status. Pure.

An alias is refused (Failed, the field named) when it is invalid (weights, `$LATEST` routing,
an all-digit name) or when another Alias object of the same function already holds its name (the
older object keeps it). It waits (Pending) while a version it names is not published yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubelambda.api.checks import missing_function, missing_version
from kubelambda.api.common import DEFAULT_REGION, LATEST
from kubelambda.api.resources import Alias
from kubelambda.operator.status import Event, condition, validate
from kubelambda.operator.versions import number_of
from kubelambda.serving.catalog import AliasRoute
from kubelambda.serving.names import function_arn


@dataclass
class AliasPlan:
    wait: str | None = None
    failed: str | None = None
    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


def _seniority(doc: dict[str, Any]) -> tuple[str, str]:
    meta = doc.get("metadata", {})
    return (meta.get("creationTimestamp") or "", meta.get("name") or "")


def effective_name(doc: dict[str, Any]) -> str:
    return str((doc.get("spec") or {}).get("name") or doc.get("metadata", {}).get("name", ""))


def plan(
    doc: dict[str, Any],
    function: dict[str, Any] | None,
    versions: list[dict[str, Any]],
    aliases: list[dict[str, Any]],
    now: float,
    *,
    region: str = DEFAULT_REGION,
) -> AliasPlan:
    """`versions`: the function's Versions; `aliases`: its other Alias objects."""
    generation = doc.get("metadata", {}).get("generation")
    previous = doc.get("status") or {}

    def failed(reason: str) -> AliasPlan:
        status = {
            "state": "Failed",
            "observedGeneration": generation,
            "conditions": condition(
                previous.get("conditions"), "Ready", False, "Failed", reason, generation, now
            ),
        }
        return AliasPlan(failed=reason, status=status, events=[Event("Warning", "Failed", reason)])

    resource, problems = validate(doc)
    if resource is None:
        return failed("; ".join(problems))
    assert isinstance(resource, Alias)
    spec, name = resource.spec, resource.alias_name
    if function is None:
        return AliasPlan(wait=missing_function("spec.functionName", spec.function_name))
    rivals = [
        other
        for other in aliases
        if effective_name(other) == name and _seniority(other) < _seniority(doc)
    ]
    if rivals:
        holder = rivals[0]["metadata"]["name"]
        return failed(
            f"spec.name: alias {name} of {spec.function_name} is already defined by Alias/{holder}"
        )
    published = {str(n) for v in versions if (n := number_of(v)) is not None and _active(v)}
    fields = [("spec.functionVersion", spec.function_version)] + [
        (f"spec.routingConfig.additionalVersionWeights.{v}", v) for v in spec.weights()
    ]
    for where, version in fields:
        if version != LATEST and version not in published:
            # Waiting, not failed: in a cluster the Version may be published later.
            return AliasPlan(wait=missing_version(where, spec.function_name, version, published))
    route = AliasRoute(name, spec.function_version, spec.weights())
    status = {
        "name": name,
        "aliasArn": function_arn(region, resource.namespace, spec.function_name, name),
        "routing": route.describe(),
        "state": "Active",
        "observedGeneration": generation,
        "conditions": condition(
            previous.get("conditions"), "Ready", True, "Active", route.describe(), generation, now
        ),
    }
    events = []
    if previous.get("routing") != status["routing"]:
        events.append(Event("Normal", "Routing", f"{name} -> {route.describe()}"))
    return AliasPlan(status=status, events=events)


def _active(version: dict[str, Any]) -> bool:
    return (version.get("status") or {}).get("state") == "Active"
