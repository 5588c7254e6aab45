"""Publishing a Version: its number, its frozen configuration, its status. Pure.

As Lambda's PublishVersion: the number is the function's next one (`status.latestVersion` + 1,
and above every number in use, so none is ever reused); the configuration is the Function's
spec when omitted; a `codeSha256` precondition must match $LATEST's code; a function that is
still Pending makes the publication wait, a Failed one fails it. The handler bumps
`latestVersion` with a resourceVersion precondition (so two Versions published at once get two
numbers) and then writes the set-once fields, which the CRD keeps immutable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubelambda.api.checks import missing_function
from kubelambda.api.common import DEFAULT_REGION
from kubelambda.api.resources import Version
from kubelambda.api.version import SET_ONCE_FIELDS
from kubelambda.kube.codefacts import CodeFacts, CodeProblem, code_facts
from kubelambda.operator.status import Event, condition, timestamp, validate
from kubelambda.serving.names import function_arn


@dataclass
class VersionPlan:
    """What to do for one Version. Exactly one of `wait`, `failed` or a publication."""

    wait: str | None = None  # retry later; the reason goes to status
    failed: str | None = None
    number: int | None = None
    bump_latest_to: int | None = None  # the Function's new status.latestVersion, if it grows
    spec_patch: dict[str, Any] = field(default_factory=dict)  # set-once fields to fill in
    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


def number_of(doc: dict[str, Any]) -> int | None:
    spec, status = doc.get("spec") or {}, doc.get("status") or {}
    value = spec.get("version") or status.get("version")
    return int(value) if value else None


def set_once_violations(old_spec: dict[str, Any], new_spec: dict[str, Any]) -> list[str]:
    """Set-once fields that changed after being set (the CRD's CEL rules refuse these too)."""
    return [
        f"spec.{name}: is immutable once set (was {old_spec[name]!r})"
        for name in ("functionName", *SET_ONCE_FIELDS)
        if old_spec.get(name) is not None and new_spec.get(name) != old_spec.get(name)
    ]


def _failed(reason: str, doc: dict[str, Any], now: float) -> VersionPlan:
    generation = doc.get("metadata", {}).get("generation")
    previous = (doc.get("status") or {}).get("conditions")
    status = {
        "state": "Failed",
        "stateReason": reason,
        "observedGeneration": generation,
        "conditions": condition(previous, "Ready", False, "Failed", reason, generation, now),
    }
    return VersionPlan(failed=reason, status=status, events=[Event("Warning", "Failed", reason)])


def plan(
    doc: dict[str, Any],
    function: dict[str, Any] | None,
    siblings: list[dict[str, Any]],
    now: float,
    *,
    region: str = DEFAULT_REGION,
    snapshot_configmap: dict[str, Any] | None = None,
) -> VersionPlan:
    """`siblings`: the function's other Versions. `snapshot_configmap`: the ConfigMap an explicit
    `spec.function` takes its code from, if any."""
    resource, problems = validate(doc)
    if resource is None:
        return _failed("; ".join(problems), doc, now)
    assert isinstance(resource, Version)
    spec = resource.spec
    name = spec.function_name
    if function is None:
        return VersionPlan(wait=missing_function("spec.functionName", name))
    fn_status = function.get("status") or {}
    if fn_status.get("state") == "Failed":
        return _failed(f"spec.functionName: function {name} is Failed", doc, now)
    current = fn_status.get("observedGeneration") == function["metadata"].get("generation")
    if fn_status.get("state") != "Active" or not current:
        return VersionPlan(wait=f"function {name} is being updated; publishing when it is Active")

    taken = {n: s["metadata"]["name"] for s in siblings if (n := number_of(s)) is not None}
    number = spec.version or (doc.get("status") or {}).get("version")
    if number is not None and number in taken:
        owner = taken[number]
        return _failed(f"spec.version: version {number} of {name} is Version/{owner}", doc, now)
    latest = int(fn_status.get("latestVersion") or 0)
    if number is None:
        number = max([latest, *taken]) + 1
    bump = number if number > latest else None

    if spec.function is None:
        if spec.code_sha256 is not None and spec.code_sha256 != fn_status.get("codeSha256"):
            return _failed(
                f"spec.codeSha256: {spec.code_sha256} does not match $LATEST's code "
                f"({fn_status.get('codeSha256')}); not published (PreconditionFailed)",
                doc,
                now,
            )
        snapshot = function["spec"]
        facts = CodeFacts(fn_status["codeSha256"], fn_status.get("codeSize"))
    else:
        snapshot = spec.function.to_manifest()
        try:
            facts = code_facts(spec.function.code, snapshot_configmap)
        except CodeProblem as exc:
            return _failed(str(exc).replace("spec.code", "spec.function.code", 1), doc, now)
        if spec.code_sha256 is not None and spec.code_sha256 != facts.sha256:
            return _failed(f"spec.codeSha256: the snapshot's code is {facts.sha256}", doc, now)

    spec_patch: dict[str, Any] = {}
    if spec.version is None:
        spec_patch["version"] = number
    if spec.function is None:
        spec_patch["function"] = snapshot
    generation = doc.get("metadata", {}).get("generation")
    previous = doc.get("status") or {}
    status = {
        "state": "Active",
        "stateReason": f"version {number} of {name} is published",
        "version": number,
        "codeSha256": facts.sha256,
        "codeSize": facts.size,
        "functionArn": function_arn(region, resource.namespace, name, str(number)),
        "observedGeneration": generation,
        "conditions": condition(
            previous.get("conditions"), "Ready", True, "Published", "", generation, now
        ),
    }
    events = []
    if previous.get("state") != "Active":
        status["lastModified"] = timestamp(now)
        events.append(Event("Normal", "Published", f"version {number} of {name}"))
    return VersionPlan(
        number=number, bump_latest_to=bump, spec_patch=spec_patch, status=status, events=events
    )
