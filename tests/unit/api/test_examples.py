"""Every example manifest is valid for the models and for the CRD schemas."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelambda.api.resources import is_kubelambda_manifest, iter_documents, parse_resource
from tests.unit.api.crd_schema import schema_errors

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
DOCS = [
    (where, doc)
    for path in sorted(EXAMPLES.rglob("*.yaml"))
    for where, doc in iter_documents(path)
    if is_kubelambda_manifest(doc)
]


def test_examples_cover_every_kind_and_source() -> None:
    kinds = {doc["kind"] for _, doc in DOCS}
    assert kinds == {"Function", "Version", "Alias", "EventSourceMapping"}
    sources = {
        next(iter(doc["spec"]["source"])) for _, doc in DOCS if doc["kind"] == "EventSourceMapping"
    }
    assert sources == {"sqs", "kafka", "rabbitmq", "redis", "nats", "schedule"}
    versions = [doc for _, doc in DOCS if doc["kind"] == "Version"]
    aliases = [doc for _, doc in DOCS if doc["kind"] == "Alias"]
    assert len(versions) >= 2
    assert any(a["spec"].get("routingConfig") for a in aliases)


@pytest.mark.parametrize(("where", "doc"), DOCS, ids=[w for w, _ in DOCS])
def test_example_is_valid(where: str, doc: dict[str, object]) -> None:
    resource = parse_resource(doc, where=where)
    assert schema_errors(doc) == []
    # What the models write back (with defaults filled) is valid for the CRD too.
    assert schema_errors(resource.model_dump(mode="json", by_alias=True, exclude_none=True)) == []
