"""Validating objects against the committed CRDs' openAPIV3Schema with jsonschema.

A fast, I/O-free stand-in for the apiserver's validation in unit tests: structural-schema checks
plus `fieldValidation=Strict` (unknown fields are errors), which kubectl asks for by default. CEL
rules are not evaluated here; the real apiserver checks them (and the schemas) in
tests/cluster/test_crds_on_the_apiserver.py, and the models enforce the same rules in Python.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS = Path(__file__).resolve().parents[3] / "crds"


@cache
def crd(kind: str) -> dict[str, Any]:
    for path in sorted(CRDS.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc["spec"]["names"]["kind"] == kind:
            return dict(doc)
    raise KeyError(kind)


def strict(node: Any) -> Any:
    """Adds additionalProperties: false wherever the schema lists properties and keeps no others."""
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def _validator(kind: str) -> jsonschema.Draft7Validator:
    schema = copy.deepcopy(crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(strict(schema))


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """Messages for every schema violation, each prefixed with the field's path."""
    errors = _validator(obj["kind"]).iter_errors(obj)
    return sorted(f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in errors)
