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


JUNCTORS = ("not", "oneOf", "anyOf", "allOf")


def _walk(
    node: Any, path: str = "", in_junctor: bool = False
) -> list[tuple[str, dict[str, Any], bool]]:
    """Every schema node reachable through properties, items, additionalProperties and the
    junctors (not, oneOf, anyOf, allOf), with whether it lies inside a junctor."""
    out = [(path, node, in_junctor)]
    for key, sub in node.get("properties", {}).items():
        out += _walk(sub, f"{path}.{key}", in_junctor)
    if isinstance(node.get("items"), dict):
        out += _walk(node["items"], f"{path}[]", in_junctor)
    if isinstance(node.get("additionalProperties"), dict):
        out += _walk(node["additionalProperties"], f"{path}{{}}", in_junctor)
    for junctor in JUNCTORS:
        branches = node.get(junctor)
        for index, branch in enumerate(branches if isinstance(branches, list) else [branches]):
            if isinstance(branch, dict):
                out += _walk(branch, f"{path}.{junctor}[{index}]", True)
    return out


FORBIDDEN = {"$ref", "$defs", "definitions", "patternProperties", "const", "title"}
# What a structural schema forbids inside not/oneOf/anyOf/allOf (besides x-kubernetes-*).
NOT_IN_JUNCTORS = {"type", "default", "description", "nullable", "additionalProperties"}


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_schema_is_structural(name: str) -> None:
    version = DOCS[name]["spec"]["versions"][0]
    nodes = _walk(version["schema"]["openAPIV3Schema"])
    assert any(inside for _, _, inside in nodes) or name.startswith("eventsource"), (
        "the walk reaches the junctors"
    )
    for path, node, inside in nodes:
        assert not FORBIDDEN & node.keys(), f"{path}: {FORBIDDEN & node.keys()}"
        assert node.get("default", 0) is not None, path
        if inside:
            extensions = {k for k in node if k.startswith("x-kubernetes-")}
            assert not (NOT_IN_JUNCTORS | extensions) & node.keys(), f"{path}: {node}"
            continue
        assert "anyOf" not in node, path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert not ("properties" in node and "additionalProperties" in node), path


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
