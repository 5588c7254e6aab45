"""Lambda's state machine, read from an object's metadata and status. Pure.

A Function is `Pending` (LastUpdateStatus `InProgress`) until its first generation is observed,
then `Active` or `Failed` with a reason; while a later generation is not yet observed it keeps
its state and its LastUpdateStatus is `InProgress`. This is what the AWS CLI's waiters poll
(`function-active`, `function-updated`, `published-version-active`). In a cluster the operator
writes the status; in dev mode `served_status` does, once the gateway serves the generation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def lambda_time(moment: datetime | None = None) -> str:
    """Lambda's LastModified format: `2024-05-01T12:00:00.000+0000`."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def served_status(generation: int, problem: str | None) -> Obj:
    """The status of a generation the gateway now serves (dev mode's stand-in for the
    operator): Active, or Failed with the reason its invocations would be refused with."""
    if problem is not None:
        return {
            "state": "Failed",
            "stateReason": problem,
            "stateReasonCode": "InvalidConfiguration",
            "lastUpdateStatus": "Failed",
            "lastUpdateStatusReason": problem,
            "observedGeneration": generation,
        }
    return {
        "state": "Active",
        "stateReason": "The function is ready",
        "stateReasonCode": "Idle",
        "lastUpdateStatus": "Successful",
        "observedGeneration": generation,
    }


def function_state(obj: Obj) -> Obj:
    """State, StateReason(Code), LastUpdateStatus(Reason, ReasonCode) as Lambda answers them."""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation") or 1
    observed = status.get("observedGeneration")
    state = status.get("state")
    if observed is None or state in (None, "Pending"):
        return {
            "State": "Pending",
            "StateReason": "The function is being created.",
            "StateReasonCode": "Creating",
            "LastUpdateStatus": "InProgress",
            "LastUpdateStatusReason": "The function is being created.",
            "LastUpdateStatusReasonCode": "Creating",
        }
    out: Obj = {"State": state}
    if status.get("stateReason"):
        out["StateReason"] = status["stateReason"]
    if status.get("stateReasonCode"):
        out["StateReasonCode"] = status["stateReasonCode"]
    if observed < generation:
        out["LastUpdateStatus"] = "InProgress"
        out["LastUpdateStatusReason"] = "The function is being updated."
        out["LastUpdateStatusReasonCode"] = "InProgress"
        return out
    out["LastUpdateStatus"] = status.get("lastUpdateStatus") or (
        "Failed" if state == "Failed" else "Successful"
    )
    if out["LastUpdateStatus"] == "Failed":
        out["LastUpdateStatusReason"] = status.get("lastUpdateStatusReason") or status.get(
            "stateReason", ""
        )
        out["LastUpdateStatusReasonCode"] = status.get("stateReasonCode") or "InvalidConfiguration"
    return out


def version_state(obj: Obj) -> Obj:
    """A published version: Pending until the operator (or dev mode) has published it."""
    status = obj.get("status") or {}
    state = status.get("state") or "Pending"
    out: Obj = {"State": state, "LastUpdateStatus": "Successful"}
    if state == "Pending":
        out["StateReason"] = status.get("stateReason") or "The version is being published."
        out["StateReasonCode"] = "Creating"
        out["LastUpdateStatus"] = "InProgress"
    elif state == "Failed":
        out["StateReason"] = status.get("stateReason") or ""
        out["StateReasonCode"] = "InvalidConfiguration"
        out["LastUpdateStatus"] = "Failed"
    return out
