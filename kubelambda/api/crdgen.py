"""CustomResourceDefinitions generated from the pydantic models.

pydantic's JSON schema is not yet a Kubernetes *structural* schema: it uses `$ref`, `anyOf` with
null, `patternProperties`, `const` and free-form objects. `structural()` rewrites those into what
the apiserver accepts. Rules the models check in Python that a plain schema cannot say (exactly
one code source, no routing with $LATEST, set-once Version fields) are added as `oneOf` and CEL
`x-kubernetes-validations`, so the apiserver rejects what it can before the operator sees it.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from kubelambda.api.common import GROUP, VERSION
from kubelambda.api.resources import Alias, EventSourceMapping, Function, Resource, Version
from kubelambda.api.version import SET_ONCE_FIELDS

CATEGORIES = ["kubelambda"]
_DROP = {"title", "discriminator"}
_JUNCTORS = ("not", "oneOf", "anyOf", "allOf")
# A structural schema allows only value validations inside the junctors: no types, defaults,
# descriptions, nullable, additionalProperties or x-kubernetes-* extensions.
_NOT_IN_JUNCTORS = {"type", "default", "description", "nullable", "additionalProperties"}


def _cel(rule: str, message: str, **extra: str) -> dict[str, str]:
    return {"rule": rule, "message": message, **extra}


def _one_of(*fields: str) -> list[dict[str, Any]]:
    return [{"required": [f]} for f in fields]


# Extra validation per model ($defs name), beyond what the JSON schema carries.
_RULES: dict[str, dict[str, Any]] = {
    "Code": {
        "oneOf": _one_of("inline", "configMap", "url", "s3", "image", "path"),
        "x-kubernetes-validations": [
            _cel("!has(self.url) || has(self.sha256)", "sha256 is required with url")
        ],
    },
    "Layer": {"oneOf": _one_of("inline", "configMap", "url", "s3", "path")},
    "Destination": {"oneOf": _one_of("function", "url", "sqs", "nats")},
    "Source": {"oneOf": _one_of("sqs", "kafka", "rabbitmq", "redis", "nats", "schedule")},
    "FunctionSpec": {
        "x-kubernetes-validations": [
            _cel(
                "self.packageType == 'Image' ? has(self.code.image) : has(self.runtime)",
                "packageType Image requires code.image; packageType Zip requires runtime",
            )
        ]
    },
    "AliasSpec": {
        "x-kubernetes-validations": [
            _cel(
                "self.functionVersion != '$LATEST' || !has(self.routingConfig) || "
                "!has(self.routingConfig.additionalVersionWeights) || "
                "size(self.routingConfig.additionalVersionWeights) == 0",
                "an alias that points to $LATEST cannot route to other versions",
                fieldPath=".routingConfig",
            )
        ]
    },
    "VersionSpec": {
        "x-kubernetes-validations": [
            _cel(
                f"has(self.{field}) || !has(oldSelf.{field})",
                f"{field} cannot be removed once set",
                fieldPath=f".{field}",
            )
            for field in SET_ONCE_FIELDS
        ]
    },
}


def value_validation(node: Any) -> Any:
    """A junctor branch (inside not/oneOf/anyOf/allOf) reduced to its value validations."""
    if isinstance(node, list):
        return [value_validation(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _NOT_IN_JUNCTORS or key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {name: value_validation(sub) for name, sub in value.items()}
        elif key in ("items", *_JUNCTORS):
            out[key] = value_validation(value)
        else:
            out[key] = value
    return out


def structural(node: Any, defs: dict[str, Any]) -> Any:
    """Rewrites a pydantic JSON schema node into a Kubernetes structural schema node."""
    if isinstance(node, list):
        return [structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    extra: dict[str, Any] = {}
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        extra = {**_RULES.get(name, {}), **extra}
        rest = {k: v for k, v in node.items() if k != "$ref"}
        node = {**defs[name], **rest}
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) == 1:
            rest = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
            return structural({**branches[0], **rest}, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or (key == "default" and (value is None or value == {} or value == [])):
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = structural(value, defs)
        elif key in _JUNCTORS:
            out[key] = value_validation(structural(value, defs))
        elif key == "additionalProperties":
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out[key] = structural(value, defs)
            # `false` is implied for objects with properties, and not allowed beside them
        elif key == "patternProperties":
            (pattern, sub), *_ = value.items()
            out["additionalProperties"] = structural(sub, defs)
            out.setdefault("x-kubernetes-validations", []).append(
                _cel(f"self.all(k, k.matches('{pattern}'))", f"keys must match {pattern}")
            )
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = value
    if out.get("type") is None and "x-kubernetes-preserve-unknown-fields" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    for key, value in extra.items():
        if key == "x-kubernetes-validations":
            out.setdefault(key, []).extend(value)
        else:
            out[key] = value
    return out


def _schema_of(model: type[BaseModel], field: str) -> dict[str, Any]:
    full = model.model_json_schema(by_alias=True, mode="validation")
    result: dict[str, Any] = structural(full["properties"][field], full.get("$defs", {}))
    return result


def _column(
    name: str, path: str, kind: str = "string", priority: int = 0, **kw: str
) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        column["priority"] = priority
    column.update(kw)
    return column


_AGE = _column("Age", ".metadata.creationTimestamp", "date")

PRINTER_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "Function": [
        _column("Runtime", ".spec.runtime"),
        _column("State", ".status.state"),
        _column("Latest Version", ".status.latestVersion", "integer"),
        _column("Reserved", ".spec.reservedConcurrency", "integer"),
        _AGE,
        _column("Reason", ".status.stateReason", priority=1),
        _column("Code SHA256", ".status.codeSha256", priority=1),
        _column("URL", ".status.url", priority=1),
    ],
    "Version": [
        _column("Function", ".spec.functionName"),
        _column("Version", ".status.version", "integer"),
        _column("State", ".status.state"),
        _column("Provisioned", ".spec.provisionedConcurrency", "integer"),
        _AGE,
        _column("Code SHA256", ".status.codeSha256", priority=1),
        _column("Description", ".spec.description", priority=1),
    ],
    "Alias": [
        _column("Function", ".spec.functionName"),
        _column("Alias", ".status.name"),
        _column("Version", ".spec.functionVersion"),
        _column("Routing", ".status.routing"),
        _column("Provisioned", ".spec.provisionedConcurrency", "integer"),
        _AGE,
    ],
    "EventSourceMapping": [
        _column("Function", ".spec.functionName"),
        _column("Source", ".status.sourceType"),
        _column("Enabled", ".spec.enabled", "boolean"),
        _column("State", ".status.state"),
        _column("Batch", ".spec.batchSize", "integer"),
        _AGE,
        _column("Last Result", ".status.lastProcessingResult", priority=1),
    ],
}

SHORT_NAMES = {
    "Function": ["fn"],
    "Version": ["fnv"],
    "Alias": ["fna"],
    "EventSourceMapping": ["esm"],
}


def crd_for(model: type[Resource]) -> dict[str, Any]:
    kind = model.kind_name
    status = _schema_of(model, "status")
    # kopf records handler progress and results under status; keep what it writes.
    status["x-kubernetes-preserve-unknown-fields"] = True
    spec = _schema_of(model, "spec")
    if model is Version:
        # Set-once fields: CEL transition rules, checked by the apiserver on every update.
        for field in ("functionName", *SET_ONCE_FIELDS):
            spec["properties"][field].setdefault("x-kubernetes-validations", []).append(
                _cel("self == oldSelf", f"{field} is immutable once set")
            )
    schema = {
        "type": "object",
        "description": (model.__doc__ or kind).strip().splitlines()[0],
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{model.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "kubelambda"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": model.plural,
                "singular": kind.lower(),
                "shortNames": SHORT_NAMES[kind],
                "categories": CATEGORIES,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS[kind],
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


MODELS: tuple[type[Resource], ...] = (Function, Version, Alias, EventSourceMapping)


def render_all() -> dict[str, str]:
    """File name → YAML text for every CRD, exactly as committed in `crds/`."""
    header = "# Generated by `kubelambda crds` from kubelambda/api. Do not edit by hand.\n"
    return {
        f"{model.plural}.{GROUP}.yaml": header
        + yaml.safe_dump(crd_for(model), sort_keys=False, width=100)
        for model in MODELS
    }
