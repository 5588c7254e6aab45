"""Strict JSON schemas for the non-core kinds the chart renders, which kubernetes-validate lacks.

ServiceMonitor and PodMonitor (Prometheus Operator) and HTTPRoute (Gateway API v1) come from
CRDs, not from Kubernetes' OpenAPI, so kubernetes-validate has no schema for them.
These are strict subsets of the upstream CRD schemas: each lists the fields of
the upstream schema that the chart may render, with their upstream types, and rejects every
other field. A field the chart starts rendering must be added here deliberately (after checking
the upstream CRD).
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _obj(properties: Schema, required: list[str] | None = None) -> Schema:
    schema: Schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = required
    return schema


_STR: Schema = {"type": "string"}
_STRMAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = _obj(
    {"name": _STR, "namespace": _STR, "labels": _STRMAP, "annotations": _STRMAP},
    required=["name"],
)
_LABEL_SELECTOR = _obj(
    {
        "matchLabels": _STRMAP,
        "matchExpressions": {
            "type": "array",
            "items": _obj(
                {"key": _STR, "operator": _STR, "values": {"type": "array", "items": _STR}},
                required=["key", "operator"],
            ),
        },
    }
)


def _resource(api_version: str, kind: str, spec: Schema | None) -> Schema:
    properties: Schema = {
        "apiVersion": {"const": api_version},
        "kind": {"const": kind},
        "metadata": _METADATA,
    }
    required = ["apiVersion", "kind", "metadata"]
    if spec is not None:
        properties["spec"] = spec
        required.append("spec")
    return _obj(properties, required=required)


_SERVICE_MONITOR = _resource(
    "monitoring.coreos.com/v1",
    "ServiceMonitor",
    _obj(
        {
            "jobLabel": _STR,
            "selector": _LABEL_SELECTOR,
            "namespaceSelector": _obj(
                {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": _STR}}
            ),
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": _obj(
                    {
                        "port": _STR,
                        "targetPort": {"type": ["integer", "string"]},
                        "path": _STR,
                        "scheme": {"enum": ["http", "https"]},
                        "interval": {"type": "string", "pattern": "^(0|(([0-9]+)(ms|s|m|h))+)$"},
                        "scrapeTimeout": _STR,
                        "honorLabels": {"type": "boolean"},
                    }
                ),
            },
        },
        required=["selector", "endpoints"],
    ),
)

_POD_MONITOR = _resource(
    "monitoring.coreos.com/v1",
    "PodMonitor",
    _obj(
        {
            "jobLabel": _STR,
            "selector": _LABEL_SELECTOR,
            "namespaceSelector": _obj(
                {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": _STR}}
            ),
            "podMetricsEndpoints": {
                "type": "array",
                "minItems": 1,
                "items": _obj(
                    {
                        "port": _STR,
                        "portNumber": {"type": "integer"},
                        "path": _STR,
                        "scheme": {"enum": ["http", "https"]},
                        "interval": {"type": "string", "pattern": "^(0|(([0-9]+)(ms|s|m|h))+)$"},
                        "scrapeTimeout": _STR,
                        "honorLabels": {"type": "boolean"},
                    }
                ),
            },
        },
        required=["selector"],
    ),
)

_PARENT_REF = _obj(
    {
        "group": _STR,
        "kind": _STR,
        "namespace": _STR,
        "name": _STR,
        "sectionName": _STR,
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    },
    required=["name"],
)

_HTTP_ROUTE = _resource(
    "gateway.networking.k8s.io/v1",
    "HTTPRoute",
    _obj(
        {
            "parentRefs": {"type": "array", "maxItems": 32, "items": _PARENT_REF},
            "hostnames": {"type": "array", "maxItems": 16, "items": _STR},
            "rules": {
                "type": "array",
                "maxItems": 16,
                "items": _obj(
                    {
                        "matches": {
                            "type": "array",
                            "items": _obj(
                                {
                                    "path": _obj(
                                        {
                                            "type": {
                                                "enum": [
                                                    "Exact",
                                                    "PathPrefix",
                                                    "RegularExpression",
                                                ]
                                            },
                                            "value": _STR,
                                        }
                                    ),
                                    "method": _STR,
                                }
                            ),
                        },
                        "backendRefs": {
                            "type": "array",
                            "items": _obj(
                                {
                                    "group": _STR,
                                    "kind": _STR,
                                    "name": _STR,
                                    "namespace": _STR,
                                    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                    "weight": {"type": "integer", "minimum": 0},
                                },
                                required=["name"],
                            ),
                        },
                    }
                ),
            },
        }
    ),
)

EXTRA_SCHEMAS: dict[tuple[str, str], Schema] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PodMonitor"): _POD_MONITOR,
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): _HTTP_ROUTE,
}
