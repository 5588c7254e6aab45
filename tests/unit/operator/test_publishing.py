"""autoPublishAlias (operator/publishing.py): one Version per generation, owned by the Function,
and the alias created or moved forward, never back."""

from __future__ import annotations

from typing import Any

from kubelambda.operator.publishing import (
    AUTO_ALIAS,
    alias_for,
    auto_version,
    moves_forward,
    object_name,
)


def function(alias: str | None = "Live_1", generation: int = 4) -> dict[str, Any]:
    spec: dict[str, Any] = {"runtime": "python3.12"}
    if alias:
        spec["autoPublishAlias"] = alias
    return {
        "metadata": {"name": "orders", "namespace": "ns", "uid": "u1", "generation": generation},
        "spec": spec,
    }


def test_no_alias_publishes_nothing() -> None:
    assert auto_version(function(None), "a" * 64) is None


def test_one_version_per_generation_pinned_to_its_code_and_owned_by_the_function() -> None:
    version = auto_version(function(), "a" * 64)
    assert version is not None
    assert version["metadata"]["name"] == "orders-auto-g4"
    assert auto_version(function(generation=5), "a" * 64)["metadata"]["name"] == "orders-auto-g5"  # type: ignore[index]
    assert version["spec"] == {"functionName": "orders", "codeSha256": "a" * 64}
    assert version["metadata"]["annotations"][AUTO_ALIAS] == "Live_1"
    (owner,) = version["metadata"]["ownerReferences"]
    assert owner["kind"] == "Function" and owner["uid"] == "u1"


def test_the_alias_is_named_for_its_function_and_points_at_the_number() -> None:
    version = auto_version(function(), "a" * 64)
    assert version is not None
    name, alias = alias_for(version, 3, function())  # type: ignore[misc]
    assert name == "orders-live-1" == object_name("orders", "Live_1")
    assert alias["spec"] == {"functionName": "orders", "name": "Live_1", "functionVersion": "3"}
    assert alias["metadata"]["ownerReferences"][0]["name"] == "orders"
    assert alias_for({"metadata": {"name": "v", "namespace": "ns"}, "spec": {}}, 3, None) is None


def test_the_alias_only_moves_forward() -> None:
    at = {"spec": {"functionVersion": "3"}}
    assert moves_forward(at, 4) and not moves_forward(at, 3) and not moves_forward(at, 2)
    assert moves_forward({"spec": {"functionVersion": "$LATEST"}}, 1)
