"""Discovery documents of the emulated apiserver: /api, /apis, /openapi/v3, and Tables.

Only what clients read is produced. The OpenAPI v3 documents describe each resource's paths
and PATCH parameters (kubectl reads them to learn that the server validates fields itself, and
then sends `fieldValidation=Strict` instead of validating client-side); they carry no schemas.
Tables (`kubectl get`) are built for custom resources from additionalPrinterColumns; built-in
kinds get a plain list, which kubectl prints as NAME and AGE.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from tests.cluster.resources import ResourceType
from tests.cluster.semantics import ApiError, JsonDict

_PARAMS = ("fieldValidation", "dryRun", "fieldManager", "force")


def api_group(group: str, types: Iterable[ResourceType]) -> JsonDict:
    versions = sorted({rt.version for rt in types if rt.group == group}, reverse=True)
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def document(path: str, types: list[ResourceType], host: str) -> JsonDict:
    """The discovery document at `path` (already stripped of a trailing slash)."""
    if path == "/version":
        return {
            "major": "1",
            "minor": "33",
            "gitVersion": "v1.33.0-kubelambda-emulated",
            "platform": "linux/amd64",
        }
    if path in ("/healthz", "/readyz", "/livez"):
        return {"status": "ok"}
    if path == "/api":
        addr = [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": addr}
    if path == "/apis":
        groups = sorted({rt.group for rt in types if rt.group})
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [api_group(g, types) for g in groups],
        }
    if path == "/":
        paths = {"/api", "/api/v1", "/apis", "/version", "/healthz", "/openapi/v3"}
        paths |= {f"/apis/{rt.group}/{rt.version}" for rt in types if rt.group}
        return {"paths": sorted(paths)}
    if path == "/openapi/v3":
        return {
            "paths": {
                gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={_hash(gv, types)}"}
                for gv in _gvs(types)
            }
        }
    if path.startswith("/openapi/v3/"):
        gv = path.removeprefix("/openapi/v3/")
        served = [rt for rt in types if _gv_path(rt) == gv]
        if served:
            return _openapi(served)
    parts = [p for p in path.split("/") if p]
    if parts[:1] in (["api"], ["apis"]):
        gv = "/".join(parts)
        served = [rt for rt in types if _gv_path(rt) == gv]
        if served:
            resources = [r for rt in served for r in rt.discovery()]
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": served[0].api_version,
                "resources": resources,
            }
        if len(parts) == 2 and parts[0] == "apis" and any(rt.group == parts[1] for rt in types):
            return {"kind": "APIGroup", "apiVersion": "v1", **api_group(parts[1], types)}
    raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")


def _gv_path(rt: ResourceType) -> str:
    return f"apis/{rt.group}/{rt.version}" if rt.group else f"api/{rt.version}"


def _gvs(types: Iterable[ResourceType]) -> list[str]:
    return sorted({_gv_path(rt) for rt in types})


def _hash(gv: str, types: Iterable[ResourceType]) -> str:
    names = sorted(rt.plural for rt in types if _gv_path(rt) == gv)
    return hashlib.sha256(json.dumps([gv, names]).encode()).hexdigest()[:16].upper()


def _openapi(types: list[ResourceType]) -> JsonDict:
    paths: JsonDict = {}
    params = [{"name": p, "in": "query", "schema": {"type": "string"}} for p in _PARAMS]
    for rt in types:
        prefix = "/" + _gv_path(rt) + ("/namespaces/{namespace}" if rt.namespaced else "")
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        op = {
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params,
            "responses": {"200": {"description": "OK"}},
        }
        paths[f"{prefix}/{rt.plural}/{{name}}"] = {
            "get": {**op, "x-kubernetes-action": "get"},
            "put": {**op, "x-kubernetes-action": "put"},
            "patch": {**op, "x-kubernetes-action": "patch"},
            "delete": {**op, "x-kubernetes-action": "delete"},
        }
        paths[f"{prefix}/{rt.plural}"] = {
            "get": {**op, "x-kubernetes-action": "list"},
            "post": {**op, "x-kubernetes-action": "post"},
        }
    info = {"title": "Kubernetes (emulated)", "version": "v1.33.0"}
    return {"openapi": "3.0.0", "info": info, "paths": paths, "components": {"schemas": {}}}


# --- tables -----------------------------------------------------------------------------------


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def _json_path(obj: Any, path: str) -> Any:
    """The simple JSONPath of printer columns: `.a.b`, `.a[0].b`."""
    value = obj
    for part in path.strip().lstrip(".").replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("[") and isinstance(value, list):
            index = int(part.strip("[]"))
            value = value[index] if -len(value) <= index < len(value) else None
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def _age(timestamp: str) -> str:
    """Date columns render as an age, as the apiserver's table convertor does."""
    then = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    seconds = int((datetime.datetime.now(datetime.UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def table(rt: ResourceType, items: list[JsonDict], resource_version: str) -> JsonDict:
    columns = [
        {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}
    ]
    printer = list(rt.printer_columns) or [
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]
    for col in printer:
        columns.append(
            {
                "name": col["name"],
                "type": col.get("type", "string"),
                "format": col.get("format", ""),
                "description": col.get("description", ""),
                "priority": col.get("priority", 0),
            }
        )
    rows = []
    for item in items:
        cells = [item["metadata"]["name"]]
        for col in printer:
            value = _json_path(item, col["jsonPath"])
            cells.append(_age(value) if col.get("type") == "date" and value else value)
        rows.append({"cells": cells, "object": item})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    }
