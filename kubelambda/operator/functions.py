"""Reconciling a Function: validate, resolve and verify its code, and say so in status. Pure.

Lambda's lifecycle, as `status`: a new function is `Pending` (lastUpdateStatus InProgress) until
its code is resolved, then `Active` (Successful) with codeSha256 and codeSize. A change to the
spec (a new generation) goes through InProgress again. An invalid spec, or code that cannot be
served, ends in `Failed` with a stateReason that names the field, and a Warning Event. The handler
(`handlers.py`) reads ConfigMaps and writes status; everything here is a function of its inputs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from typing import Any

from kubelambda.api.function import Code, FunctionSpec
from kubelambda.api.resources import Function
from kubelambda.operator.status import Event, condition, timestamp, validate
from kubelambda.runtime.code import tree_digest

# Code sources the cluster path can serve today (see operator/README.md).
SERVED_SOURCES = ("inline", "url", "configMap")


@dataclass(frozen=True)
class CodeFacts:
    sha256: str
    size: int | None  # None when the operator does not hold the bytes (a URL)


class CodeProblem(ValueError):
    """The code cannot be served; the message starts with the field's path."""


@dataclass
class FunctionOutcome:
    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)

    @property
    def state(self) -> str:
        return str(self.status.get("state"))


def configmap_files(configmap: dict[str, Any]) -> dict[str, bytes]:
    """A ConfigMap's keys as file contents (data as UTF-8, binaryData decoded)."""
    files = {k: str(v).encode() for k, v in (configmap.get("data") or {}).items()}
    for key, value in (configmap.get("binaryData") or {}).items():
        try:
            files[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CodeProblem(f"binaryData.{key} of the ConfigMap is not base64: {exc}") from exc
    return files


def image_facts(spec: FunctionSpec) -> tuple[list[str], CodeFacts | None]:
    """packageType Image: the pod runs the image. Its digest (`@sha256:`) is the codeSha256,
    else the sha256 of the reference; its CMD is not read from a registry, so the handler (or a
    whole entry point) must be in imageConfig."""
    config = spec.image_config
    if config is None or not (config.command or config.entry_point):
        return [
            "spec.imageConfig: cluster mode needs imageConfig.command (the handler) or "
            "imageConfig.entryPoint: the image's own CMD is not read from its registry"
        ], None
    image = spec.code.image or ""
    _, _, digest = image.partition("@sha256:")
    return [], CodeFacts(digest or hashlib.sha256(image.encode()).hexdigest(), None)


def code_facts(code: Code, configmap: dict[str, Any] | None = None) -> CodeFacts:
    """The digest and size of a function's code, as the agent will verify them.

    inline and a ConfigMap without `key`: the tree digest of the files; a ConfigMap `key`: the
    sha256 of that zip; a URL: the pinned sha256 (the agent checks it when it downloads).
    """
    kind = code.source_kind()
    where = f"spec.code.{kind}"
    if kind not in SERVED_SOURCES:
        hint = "`kubelambda deploy` packages a folder" if kind == "path" else "not built yet"
        raise CodeProblem(
            f"{where}: not served in cluster mode ({hint}); use inline, url or configMap"
        )
    if code.inline is not None:
        files = {name: text.encode() for name, text in code.inline.items()}
        facts = CodeFacts(tree_digest(files.items()), sum(len(b) for b in files.values()))
    elif code.url is not None:
        assert code.sha256 is not None  # the model requires it with url
        return CodeFacts(code.sha256, None)
    else:
        assert code.config_map is not None
        if configmap is None:
            raise CodeProblem(f"{where}: ConfigMap {code.config_map.name} not found")
        files = configmap_files(configmap)
        key = code.config_map.key
        if key is not None:
            if key not in files:
                raise CodeProblem(
                    f"{where}.key: ConfigMap {code.config_map.name} has no key {key!r}"
                )
            data = files[key]
            facts = CodeFacts(hashlib.sha256(data).hexdigest(), len(data))
        else:
            if not files:
                raise CodeProblem(f"{where}: ConfigMap {code.config_map.name} is empty")
            if configmap.get("binaryData"):
                raise CodeProblem(f"{where}: binary files need `key` (the name of a zip)")
            facts = CodeFacts(tree_digest(files.items()), sum(len(b) for b in files.values()))
    if code.sha256 is not None and code.sha256 != facts.sha256:
        raise CodeProblem(
            f"spec.code.sha256: the code's digest is {facts.sha256}, not {code.sha256}"
        )
    return facts


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


def reconcile(doc: dict[str, Any], configmap: dict[str, Any] | None, now: float) -> FunctionOutcome:
    """The final status for the Function's current generation."""
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
        "observedGeneration": generation,
        "conditions": condition(
            conditions, "Ready", True, "Active", "The function is ready", generation, now
        ),
    }
    if changed or previous.get("observedGeneration") != generation:
        status["lastModified"] = timestamp(now)
    events = []
    if resource is not None and resource.spec.auto_publish_alias:
        events.append(
            Event(
                "Warning", "NotBuilt", "spec.autoPublishAlias is not acted on by this operator yet"
            )
        )
    if previous.get("state") != "Active":
        events.append(Event("Normal", "Active", f"code {facts.sha256[:12]} is ready"))
    elif changed:
        events.append(Event("Normal", "CodeUpdated", f"code is now {facts.sha256[:12]}"))
    return FunctionOutcome(status, events)
