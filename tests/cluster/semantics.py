"""Pure Kubernetes API semantics used by the emulated API server: no I/O, no state.

Errors as Status bodies, the three patch types the apiserver accepts (JSON merge patch, a
strategic-merge approximation, JSON patch), label and field selectors, and name generation.
The store (`store.py`) and the HTTP layer (`emulator.py`) build on these.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import jsonpointer

JsonDict = dict[str, Any]


@dataclass
class ApiError(Exception):
    """An error the apiserver answers with a `Status` body (`reason` is Kubernetes' CamelCase)."""

    code: int
    reason: str
    message: str
    details: JsonDict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> JsonDict:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def not_found(qualified: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified} "{name}" not found', {"name": name})


def conflict(qualified: str, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified} "{name}": the object has been modified;'
        " please apply your changes to the latest version and try again",
        {"name": name},
    )


def invalid(kind_group: str, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """A 422 whose message names each field, as `kubectl` prints it: `spec.x: Invalid value`."""
    text = "; ".join(f"{path}: {msg}" if path else msg for path, msg in causes)
    joined = text if len(causes) == 1 else f"[{text}]"
    details = {
        "name": name,
        "kind": kind_group.split(".", 1)[0],
        "causes": [{"reason": "FieldValueInvalid", "message": m, "field": p} for p, m in causes],
    }
    return ApiError(422, "Invalid", f'{kind_group} "{name}" is invalid: {joined}', details)


# --- patches --------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# Merge keys of the list fields that kubectl's strategic-merge patches touch most; other lists
# are replaced whole, as in a merge patch.
STRATEGIC_MERGE_KEYS: Mapping[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "ownerReferences": "uid",
    "conditions": "type",
    "imagePullSecrets": "name",
    "tolerations": "key",
}


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """An approximation of strategic merge: merge keys from a fixed table, `$` directives dropped.

    It covers what `kubectl apply`/`edit` send for pods and workloads; it does not read the
    per-type OpenAPI patch strategies the real apiserver uses.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name, []) if v not in value]
        elif key.startswith("$"):
            continue
        elif value is None:
            result.pop(key, None)
        elif key in STRATEGIC_MERGE_KEYS and isinstance(value, list):
            result[key] = _merge_list(result.get(key) or [], value, STRATEGIC_MERGE_KEYS[key])
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _merge_list(old: list[Any], new: list[Any], key: str) -> list[Any]:
    merged = list(old)
    for item in new:
        if not isinstance(item, dict) or key not in item:
            return copy.deepcopy(new)  # not a keyed list after all: replace, like a merge patch
        index = next(
            (i for i, o in enumerate(merged) if isinstance(o, dict) and o.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(strategic_merge_patch({}, item))
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def json_patch(target: JsonDict, ops: Any) -> JsonDict:
    """RFC 6902 JSON patch. A failed `test` or a bad path is 422, as the apiserver answers."""
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
    try:
        result: JsonDict = jsonpatch.JsonPatch(ops).apply(target)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise ApiError(422, "Invalid", f"the server rejected our request: {exc}") from exc
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise ApiError(422, "Invalid", f"the server rejected our request: {exc}") from exc
    return result


PATCHERS: Mapping[str, Callable[[JsonDict, Any], Any]] = {
    "application/merge-patch+json": merge_patch,
    "application/strategic-merge-patch+json": strategic_merge_patch,
    "application/json-patch+json": json_patch,
}


# --- selectors ------------------------------------------------------------------------------

Requirement = Callable[[Mapping[str, str]], bool]
_REQUIREMENT = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9_./-]+)\s*"
    r"(?:(?P<op>==|!=|=|\s+in\s+|\s+notin\s+)\s*(?P<value>\([^)]*\)|[A-Za-z0-9_.-]*))?\s*$"
)


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside `in (a,b)` parentheses."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in (p.strip() for p in parts) if p]


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse `a=b,c!=d,e in (f,g),h notin (i),j,!k` into predicates over a label dict."""
    requirements: list[Requirement] = []
    for part in _split_top_level(text):
        m = _REQUIREMENT.match(part)
        if not m or (m["neg"] and m["op"]):
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")
        key, op, raw = m["key"], (m["op"] or "").strip(), m["value"] or ""
        if op in ("in", "notin") and not raw.startswith("("):
            raise ApiError(400, "BadRequest", f"set-based requirement needs (...): {part!r}")
        requirements.append(_requirement(key, op or ("!" if m["neg"] else ""), raw))
    return requirements


def _requirement(key: str, op: str, raw: str) -> Requirement:
    values = frozenset(v.strip() for v in raw.strip("()").split(",") if v.strip())

    def check(labels: Mapping[str, str]) -> bool:
        match op:
            case "":
                return key in labels
            case "!":
                return key not in labels
            case "in":
                return labels.get(key) in values
            case "notin":
                return labels.get(key) not in values
            case "!=":
                return labels.get(key) != raw
            case _:
                return labels.get(key) == raw

    return check


# Field selectors the real apiserver supports beyond metadata.name/namespace, per kind.
SELECTABLE_FIELDS: Mapping[str, frozenset[str]] = {
    "Pod": frozenset(
        {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        }
    ),
    "Secret": frozenset({"type"}),
    "Namespace": frozenset({"status.phase"}),
    "Node": frozenset({"spec.unschedulable"}),
    "Event": frozenset(
        {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
}


def field_value(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def parse_field_selector(text: str, kind: str) -> list[Callable[[Mapping[str, Any]], bool]]:
    """Parse `metadata.name=x,status.phase!=Failed`; unsupported fields are 400, as for real."""
    allowed = {"metadata.name", "metadata.namespace"} | SELECTABLE_FIELDS.get(kind, frozenset())
    predicates: list[Callable[[Mapping[str, Any]], bool]] = []
    for part in _split_top_level(text):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid field selector: {part!r}")
        path, op, value = m.groups()
        if path not in allowed:
            raise ApiError(400, "BadRequest", f'field label not supported: "{path}"')
        predicates.append(_field_predicate(path, value, negated=op == "!="))
    return predicates


def _field_predicate(
    path: str, value: str, *, negated: bool
) -> Callable[[Mapping[str, Any]], bool]:
    def check(obj: Mapping[str, Any]) -> bool:
        return (field_value(obj, path) == value) != negated

    return check


@dataclass(frozen=True)
class Selector:
    """Both selectors of a list or watch request, matched against one object."""

    labels: tuple[Requirement, ...] = ()
    fields: tuple[Callable[[Mapping[str, Any]], bool], ...] = ()

    @classmethod
    def parse(cls, label_selector: str, field_selector: str, kind: str) -> Selector:
        return cls(
            tuple(parse_label_selector(label_selector)),
            tuple(parse_field_selector(field_selector, kind)),
        )

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(r(labels) for r in self.labels) and all(f(obj) for f in self.fields)


# --- names ----------------------------------------------------------------------------------

_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's: no vowels, no look-alikes
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def generate_name(prefix: str) -> str:
    return prefix[:58] + "".join(random.choices(_NAME_ALPHABET, k=5))


def name_problem(name: str) -> str | None:
    if len(name) > 253:
        return "must be no more than 253 characters"
    if not DNS1123_SUBDOMAIN.match(name):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters,"
            " '-' or '.', and must start and end with an alphanumeric character"
        )
    return None
