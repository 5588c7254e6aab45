"""Structural-schema handling of custom resources, as the apiserver does it for a CRD.

On every create, update and patch of a custom object, in the apiserver's order: unknown fields
are pruned (or, with `fieldValidation=Strict`, rejected with 400), `default:` values are filled
in, the object is validated against the version's `openAPIV3Schema` with jsonschema (422 naming
each field), and the only CEL rule evaluated here, the transition rule `self == oldSelf`, is
checked against the previous object. Every other `x-kubernetes-validations` rule is skipped.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import jsonschema

from tests.cluster.resources import ResourceType
from tests.cluster.semantics import ApiError, JsonDict, invalid

_ROOT_KEPT = frozenset({"apiVersion", "kind", "metadata"})
_IMMUTABLE_RULES = frozenset({"self == oldSelf", "self==oldSelf", "oldSelf == self"})


def _to_json_schema(node: Any) -> Any:
    """Translate OpenAPI v3 (as CRDs use it) into JSON Schema draft 4 keywords."""
    if isinstance(node, list):
        return [_to_json_schema(n) for n in node]
    if not isinstance(node, Mapping):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    out.pop("nullable", None)
    out.pop("default", None)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(_to_json_schema(json.loads(schema_json)))


def _unknown_fields(
    schema: Mapping[str, Any], obj: Any, path: str
) -> Iterator[tuple[dict[str, Any], str, str]]:
    """Yield (container, key, dotted path) for every field the schema does not declare."""
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return
    if isinstance(obj, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in list(obj.items()):
            child = f"{path}.{key}" if path else key
            if path == "" and key in _ROOT_KEPT:
                continue  # the apiserver handles metadata itself, never by the CRD's schema
            if props is not None and key in props:
                yield from _unknown_fields(props[key], value, child)
            elif isinstance(extra, Mapping):
                yield from _unknown_fields(extra, value, child)
            elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                continue
            elif props is not None or schema.get("type") == "object":
                yield obj, key, child
    elif isinstance(obj, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(obj):
            yield from _unknown_fields(schema["items"], item, f"{path}[{i}]")


def _apply_defaults(schema: Mapping[str, Any], obj: Any) -> None:
    if isinstance(obj, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                _apply_defaults(sub, obj[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for value in obj.values():
                _apply_defaults(extra, value)
    elif isinstance(obj, list) and isinstance(schema.get("items"), Mapping):
        for item in obj:
            _apply_defaults(schema["items"], item)


def _transition_causes(
    schema: Mapping[str, Any], new: Any, old: Any, path: str
) -> Iterator[tuple[str, str]]:
    for rule in schema.get("x-kubernetes-validations") or ():
        if rule.get("rule", "").strip() in _IMMUTABLE_RULES and new != old:
            message = rule.get("message") or "Value is immutable"
            yield path, f"Invalid value: {json.dumps(new)}: {message}"
    if isinstance(new, dict) and isinstance(old, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in new and key in old:
                yield from _transition_causes(sub, new[key], old[key], f"{path}.{key}".lstrip("."))


def _schema_causes(schema: Mapping[str, Any], obj: JsonDict) -> list[tuple[str, str]]:
    causes = []
    validator = _validator(json.dumps(schema, sort_keys=True))
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path))):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path).lstrip(".")
        if error.validator == "required":
            missing = str(error.message).split("'")[1]
            causes.append((f"{path}.{missing}".lstrip("."), "Required value"))
        elif error.validator == "enum":
            allowed = ", ".join(json.dumps(v) for v in error.validator_value)
            value = json.dumps(error.instance)
            causes.append((path, f"Unsupported value: {value}: supported values: {allowed}"))
        else:
            value = json.dumps(error.instance)
            causes.append((path, f"Invalid value: {value}: {path} in body: {error.message}"))
    return causes


def admit_custom_object(
    rt: ResourceType, obj: JsonDict, old: JsonDict | None, field_validation: str
) -> JsonDict:
    """Prune or reject unknown fields, default, validate; return the object to store."""
    if rt.schema is None:
        return obj
    obj = copy.deepcopy(obj)
    unknown = [path for _, _, path in _unknown_fields(rt.schema, obj, "")]
    if unknown and field_validation == "Strict":
        fields = ", ".join(f'unknown field "{p}"' for p in unknown)
        raise ApiError(
            400,
            "BadRequest",
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}:'
            f" strict decoding error: {fields}",
        )
    for container, key, _ in list(_unknown_fields(rt.schema, obj, "")):
        container.pop(key, None)
    _apply_defaults(rt.schema, obj)
    causes = _schema_causes(rt.schema, obj)
    if old is not None:
        causes += list(_transition_causes(rt.schema, obj, old, ""))
    if causes:
        raise invalid(rt.kind_group, obj.get("metadata", {}).get("name", ""), causes)
    return obj


def pruned_field_warnings(rt: ResourceType, obj: JsonDict) -> list[str]:
    """The `Warning`s the apiserver sends for unknown fields it drops (fieldValidation=Warn)."""
    if rt.schema is None:
        return []
    return [f'unknown field "{p}"' for _, _, p in _unknown_fields(rt.schema, obj, "")]
