"""Reconciling a Function: validate, resolve and verify its code, and say so in status. Pure.

Lambda's lifecycle, as `status`: a new function is `Pending` (lastUpdateStatus InProgress) until
its code is resolved, then `Active` (Successful) with codeSha256 and codeSize. A change to the
spec (a new generation) goes through InProgress again. An invalid spec, or code that cannot be
served, ends in `Failed` with a stateReason that names the field, and a Warning Event. The handler
(`handlers.py`) reads ConfigMaps and writes status; everything here is a function of its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubelambda.api.resources import Function
from kubelambda.kube.codefacts import CodeFacts, CodeProblem, code_facts, image_facts
from kubelambda.operator.status import Event, condition, timestamp, validate


@dataclass
class FunctionOutcome:
    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)

    @property
    def state(self) -> str:
        return str(self.status.get("state"))


ASSUMABLE = "kubelambda.dev/assumable"  # a ServiceAccount's opt-in to be a Function's role


def needs_update(doc: dict[str, Any]) -> bool:
    """Whether this generation of the Function has not been reconciled yet."""
    status = doc.get("status") or {}
    generation = doc.get("metadata", {}).get("generation")
    return status.get("observedGeneration") != generation or status.get("state") is None


def in_progress(doc: dict[str, Any], now: float) -> dict[str, Any]:
    """The status written while a generation is being reconciled."""
    status = dict(doc.get("status") or {})
    first = status.get("state") in (None, "Pending")
    generation = doc.get("metadata", {}).get("generation")
    return {
        "state": "Pending" if first else status["state"],
        "stateReason": "The function is being created" if first else status.get("stateReason"),
        "stateReasonCode": "Creating" if first else status.get("stateReasonCode"),
        "lastUpdateStatus": "InProgress",
        "lastUpdateStatusReason": f"Reconciling generation {generation}",
        "conditions": condition(
            status.get("conditions"), "Ready", False, "Reconciling", "", generation, now
        ),
    }


def reconcile(
    doc: dict[str, Any], configmap: dict[str, Any] | None, now: float, url: str | None = None
) -> FunctionOutcome:
    """The final status for the Function's current generation; `url` is where its function
    URL is served (status.url is set only while spec.functionUrl is)."""
    previous = doc.get("status") or {}
    generation = doc.get("metadata", {}).get("generation")
    resource, problems = validate(doc)
    facts: CodeFacts | None = None
    reason_code = "InvalidConfiguration"
    if resource is not None:
        assert isinstance(resource, Function)
        spec = resource.spec
        if spec.package_type == "Image":
            problems, facts = image_facts(spec)
        else:
            try:
                facts = code_facts(resource.spec.code, configmap)
            except CodeProblem as exc:
                problems, reason_code = [str(exc)], "InvalidCode"
    conditions = previous.get("conditions")
    if facts is None:
        reason = "; ".join(problems)
        return FunctionOutcome(
            {
                "state": "Failed",
                "stateReason": reason,
                "stateReasonCode": reason_code,
                "lastUpdateStatus": "Failed",
                "lastUpdateStatusReason": reason,
                "observedGeneration": generation,
                "conditions": condition(
                    conditions, "Ready", False, reason_code, reason, generation, now
                ),
            },
            [Event("Warning", "Failed", reason)],
        )
    changed = facts.sha256 != previous.get("codeSha256")
    status: dict[str, Any] = {
        "state": "Active",
        "stateReason": "The function is ready",
        "stateReasonCode": "Idle",
        "lastUpdateStatus": "Successful",
        "lastUpdateStatusReason": None,
        "codeSha256": facts.sha256,
        "codeSize": facts.size,
        "url": url if resource is not None and resource.spec.function_url else None,
        "observedGeneration": generation,
        "conditions": condition(
            conditions, "Ready", True, "Active", "The function is ready", generation, now
        ),
    }
    if changed or previous.get("observedGeneration") != generation:
        status["lastModified"] = timestamp(now)
    events = []
    if previous.get("state") != "Active":
        events.append(Event("Normal", "Active", f"code {facts.sha256[:12]} is ready"))
    elif changed:
        events.append(Event("Normal", "CodeUpdated", f"code is now {facts.sha256[:12]}"))
    return FunctionOutcome(status, events)


def serving_refusal(
    doc: dict[str, Any],
    home: str | None,
    service_account: dict[str, Any] | None,
    listed: bool = False,
) -> str | None:
    """Why an otherwise valid Function must not be served, naming the field; None: it may.

    The operator's own namespace never serves functions, and `spec.role` may name only a
    ServiceAccount that opted in, by its annotation or by being `listed` in the operator's
    values (`--assumable-role`): its token is mounted into the function's pods.
    """
    namespace = (doc.get("metadata") or {}).get("namespace", "")
    if home and namespace == home:
        return (
            f"metadata.namespace: {namespace} is the operator's own namespace, which never "
            "serves functions"
        )
    role = (doc.get("spec") or {}).get("role")
    if not role:
        return None
    if service_account is None:
        return f"spec.role: ServiceAccount {role} does not exist in namespace {namespace}"
    notes = (service_account.get("metadata") or {}).get("annotations") or {}
    if not listed and notes.get(ASSUMABLE) != "true":
        return (
            f'spec.role: ServiceAccount {role} has not opted in (annotate it {ASSUMABLE}: "true", '
            "or list it in the chart's functionRoles, to let Functions run as it)"
        )
    return None


def refused(doc: dict[str, Any], reason: str, now: float) -> FunctionOutcome:
    """The Failed outcome for a `serving_refusal`."""
    previous = doc.get("status") or {}
    generation = doc.get("metadata", {}).get("generation")
    code = "InvalidRole" if reason.startswith("spec.role") else "ReservedNamespace"
    return FunctionOutcome(
        {
            "state": "Failed",
            "stateReason": reason,
            "stateReasonCode": "InvalidConfiguration",
            "lastUpdateStatus": "Failed",
            "lastUpdateStatusReason": reason,
            "observedGeneration": generation,
            "conditions": condition(
                previous.get("conditions"), "Ready", False, code, reason, generation, now
            ),
        },
        [Event("Warning", code, reason)],
    )
