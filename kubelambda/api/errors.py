"""Validation errors as one line each: the field's path, what is allowed, and what was given.

pydantic reports a bound one side at a time ("greater than or equal to 128"); users want the
whole range. The range is read back from the model's JSON schema at the error's location, so
the message can never disagree with the model.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

_BOUNDS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}


@cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True)


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _branches(node: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(node, root)
    if "anyOf" in node:
        return [_resolve(b, root) for b in node["anyOf"] if b.get("type") != "null"]
    return [node]


def schema_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> dict[str, Any]:
    """The JSON schema node for a location in a validation error ({} when not found)."""
    root = _schema(model)
    node: dict[str, Any] = root
    for part in loc:
        for branch in _branches(node, root):
            if isinstance(part, int) and "items" in branch:
                node = branch["items"]
                break
            if isinstance(part, str) and part in branch.get("properties", {}):
                node = branch["properties"][part]
                break
            if isinstance(part, str) and isinstance(branch.get("additionalProperties"), dict):
                node = branch["additionalProperties"]
                break
            if isinstance(part, str) and branch.get("patternProperties"):
                node = next(iter(branch["patternProperties"].values()))
                break
        else:
            return {}
    merged: dict[str, Any] = {}
    for branch in _branches(node, root):
        merged.update(branch)
    return merged


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        else:
            out += f".{part}" if out else str(part)
    return out or "(object)"


def _range(node: dict[str, Any], low_key: str, high_key: str, unit: str = "") -> str:
    low, high = node.get(low_key), node.get(high_key)
    if low is not None and low == high:
        return f"exactly {low:g}{unit}"
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}{unit}"
    if low is not None:
        return f"at least {low:g}{unit}"
    if high is not None:
        return f"at most {high:g}{unit}"
    return "in range"


def describe(error: Any, model: type[BaseModel]) -> str:
    """One line for one pydantic error dict."""
    loc: tuple[int | str, ...] = tuple(error["loc"])
    kind: str = error["type"]
    given = error.get("input")
    node = schema_at(model, tuple(p for p in loc if p != "[key]"))
    if kind in _BOUNDS:
        why = f"must be {_range(node, 'minimum', 'maximum')} (got {given!r})"
    elif kind in ("too_short", "too_long"):
        if node.get("type") == "object":
            why = f"must have {_range(node, 'minProperties', 'maxProperties', ' entries')}"
        else:
            why = f"must have {_range(node, 'minItems', 'maxItems', ' items')}"
        # pydantic leaves actual_length unset for a dict that is too long: count it ourselves.
        actual = error.get("ctx", {}).get("actual_length")
        if actual is None and hasattr(given, "__len__"):
            actual = len(given)
        why = why.replace(" 1 entries", " 1 entry").replace(" 1 items", " 1 item")
        why += f" (got {actual if actual is not None else '?'})"
    elif kind in ("string_too_short", "string_too_long"):
        length = len(given) if isinstance(given, str) else "?"
        why = f"must be {_range(node, 'minLength', 'maxLength', ' characters')} long (got {length})"
    elif kind == "string_pattern_mismatch":
        why = f"{given!r} must match {error['ctx']['pattern']}"
    elif kind in ("literal_error", "enum"):
        why = f"must be {error['ctx']['expected']} (got {given!r})"
    elif kind == "extra_forbidden":
        why = "is not a known field (check its spelling and place)"
    elif kind == "missing":
        why = "is required"
    elif kind == "value_error":
        why = str(error["msg"]).removeprefix("Value error, ")
    else:
        why = f"{error['msg']} (got {given!r})"
    return f"{_path(loc)}: {why}"


def describe_errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    return [describe(err, model) for err in exc.errors(include_url=False)]
