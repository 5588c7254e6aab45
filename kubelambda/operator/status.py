"""Small pure helpers shared by the reconcilers: Events to post, conditions, validation lines."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from kubelambda.api.resources import ManifestError, Resource, parse_resource


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event the handler should post about the object."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def timestamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    previous: list[dict[str, Any]] | None,
    kind: str,
    ok: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: float,
) -> list[dict[str, Any]]:
    """The condition list with `kind` set; its transition time moves only when status flips."""
    value = "True" if ok else "False"
    kept = [c for c in previous or [] if c.get("type") != kind]
    old = next((c for c in previous or [] if c.get("type") == kind), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == value else None
    entry: dict[str, Any] = {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or timestamp(now),
    }
    if generation is not None:
        entry["observedGeneration"] = generation
    return [*kept, entry]


def strip_server_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The manifest part the models validate: no status, and kopf's annotations are harmless."""
    return {k: v for k, v in doc.items() if k in ("apiVersion", "kind", "metadata", "spec")}


def validate(doc: dict[str, Any]) -> tuple[Resource | None, list[str]]:
    """The typed resource, or the validation lines (each names the field, `spec.x.y: ...`)."""
    try:
        return parse_resource(strip_server_fields(doc)), []
    except ManifestError as exc:
        # Drop the "Kind/name: " prefix: the status belongs to that object already.
        return None, [line.split(": ", 1)[1] if ": " in line else line for line in exc.problems]
