"""What the apiserver's registry strategies do to built-in kinds on a write, and when.

Secrets get `stringData` folded into base64 `data`; a new Pod gets the defaults the kubelet reads
(restartPolicy, terminationGracePeriodSeconds) and a Pending status. A bound pod's deletion stays
pending until its kubelet confirms it, and generation counts changes outside metadata (and outside
status when the kind has a status subresource).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from tests.cluster.resources import ResourceType
from tests.cluster.semantics import JsonDict


def builtin_defaults(rt: ResourceType, obj: JsonDict, old: JsonDict | None) -> JsonDict:
    obj["apiVersion"] = rt.api_version
    obj["kind"] = rt.kind
    if rt.group:
        return obj
    if rt.kind == "Secret" and "stringData" in obj:
        data = obj.get("data") or {}
        for k, v in obj.pop("stringData").items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        obj["data"] = data
    if rt.kind == "Pod" and old is None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    return obj


def spec_part(obj: JsonDict, rt: ResourceType) -> JsonDict:
    """What counts for metadata.generation: all but metadata (and status, given the subresource)."""
    skipped: Iterable[str] = {"metadata", "apiVersion", "kind"} | (
        {"status"} if "status" in rt.subresources else set()
    )
    return {k: v for k, v in obj.items() if k not in skipped}


def graceful_pending(rt: ResourceType, obj: JsonDict) -> bool:
    """A bound pod stays, marked, until its kubelet confirms the containers are gone."""
    meta = obj["metadata"]
    return bool(
        rt.kind == "Pod"
        and rt.group == ""
        and obj.get("spec", {}).get("nodeName")
        and meta.get("deletionGracePeriodSeconds")
    )
