"""The committed CRDs are exactly what the models generate, and are valid structural CRDs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kubelambda.api.crdgen import render_all
from kubelambda.cli import main

CRDS = Path(__file__).resolve().parents[3] / "crds"
RENDERED = render_all()
DOCS = {name: yaml.safe_load(text) for name, text in RENDERED.items()}


def test_committed_crds_match_the_models() -> None:
    committed = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert committed == RENDERED, "crds/ is stale: run `make crds` and commit the result"


def test_crds_command_reproduces_the_folder_byte_for_byte(tmp_path: Path) -> None:
    assert main(["crds", "--output", str(tmp_path)]) == 0
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {
        p.name: p.read_bytes() for p in CRDS.glob("*.yaml")
    }
    assert main(["crds", "--output", str(tmp_path), "--check"]) == 0
    (tmp_path / "functions.kubelambda.dev.yaml").write_text("stale")
    assert main(["crds", "--output", str(tmp_path), "--check"]) == 1


@pytest.mark.parametrize("version", ["1.30.0", kubernetes_validate.latest_version()])
@pytest.mark.parametrize("name", sorted(RENDERED))
def test_crd_is_a_valid_kubernetes_object(name: str, version: str) -> None:
    kubernetes_validate.validate(DOCS[name], version, strict=True)


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node reachable through properties/items/additionalProperties."""
    out = [(path, node)]
    for key, sub in node.get("properties", {}).items():
        out += _walk(sub, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        out += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += _walk(node["additionalProperties"], f"{path}{{}}")
    return out


FORBIDDEN = {"$ref", "$defs", "definitions", "patternProperties", "const", "title", "anyOf"}
VALUE_VALIDATION_ONLY = {"required"}  # what oneOf branches may hold (no types, no defaults)


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_schema_is_structural(name: str) -> None:
    version = DOCS[name]["spec"]["versions"][0]
    for path, node in _walk(version["schema"]["openAPIV3Schema"]):
        assert not FORBIDDEN & node.keys(), f"{path}: {FORBIDDEN & node.keys()}"
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("default", 0) is not None, path
        for branch in node.get("oneOf", []):
            assert set(branch) <= VALUE_VALIDATION_ONLY, f"{path}: {branch}"


def test_names_columns_and_subresources() -> None:
    by_kind = {doc["spec"]["names"]["kind"]: doc["spec"] for doc in DOCS.values()}
    assert {k: s["names"]["shortNames"] for k, s in by_kind.items()} == {
        "Function": ["fn"],
        "Version": ["fnv"],
        "Alias": ["fna"],
        "EventSourceMapping": ["esm"],
    }
    for spec in by_kind.values():
        assert spec["names"]["categories"] == ["kubelambda"]
        assert spec["versions"][0]["subresources"] == {"status": {}}
    columns = [
        c["name"]
        for c in by_kind["Function"]["versions"][0]["additionalPrinterColumns"]
        if "priority" not in c
    ]
    assert columns == ["Runtime", "State", "Latest Version", "Reserved", "Age"]


def test_version_set_once_fields_have_cel_transition_rules() -> None:
    crd = next(d for d in DOCS.values() if d["spec"]["names"]["kind"] == "Version")
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for field in ("functionName", "version", "function", "codeSha256"):
        rules = [r["rule"] for r in spec["properties"][field]["x-kubernetes-validations"]]
        assert "self == oldSelf" in rules, field
    spec_rules = " ".join(r["rule"] for r in spec["x-kubernetes-validations"])
    assert "!has(oldSelf.version)" in spec_rules


def test_resource_reference_matches_the_models() -> None:
    from kubelambda.api.docgen import render

    committed = (CRDS.parent / "docs" / "resources.md").read_text()
    assert committed == render(), "docs/resources.md is stale: run `make crds` and commit it"
    assert "| `spec.memorySize` | integer | `128` | 128–10240 |" in committed
