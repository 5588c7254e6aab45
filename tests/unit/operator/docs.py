"""Builders of the objects the reconcilers read, as the apiserver returns them."""

from __future__ import annotations

from typing import Any

NOW = 1_800_000_000.0
CODE = {"inline": {"app.py": "def handler(event, context):\n    return 1\n"}}


def meta(name: str, generation: int = 1, created: str = "2027-01-01T00:00:00Z") -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "default",
        "generation": generation,
        "uid": f"uid-{name}",
        "resourceVersion": "7",
        "creationTimestamp": created,
    }


def function(
    name: str = "hello",
    *,
    generation: int = 1,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "kubelambda.dev/v1alpha1",
        "kind": "Function",
        "metadata": meta(name, generation),
        "spec": {"runtime": "python3.12", "handler": "app.handler", "code": CODE, **spec},
    }
    if status is not None:
        doc["status"] = status
    return doc


def active_function(sha: str = "a" * 64, latest: int | None = None, **spec: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "state": "Active",
        "codeSha256": sha,
        "codeSize": 42,
        "observedGeneration": 1,
    }
    if latest is not None:
        status["latestVersion"] = latest
    return function(status=status, **spec)


def version(
    name: str,
    *,
    status: dict[str, Any] | None = None,
    created: str = "2027-01-01T00:00:00Z",
    **spec: Any,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "kubelambda.dev/v1alpha1",
        "kind": "Version",
        "metadata": meta(name, created=created),
        "spec": {"functionName": "hello", **spec},
    }
    if status is not None:
        doc["status"] = status
    return doc


def published(name: str, number: int) -> dict[str, Any]:
    return version(name, version=number, status={"state": "Active", "version": number})


def alias(
    object_name: str, /, *, created: str = "2027-01-01T00:00:00Z", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "kubelambda.dev/v1alpha1",
        "kind": "Alias",
        "metadata": meta(object_name, created=created),
        "spec": {"functionName": "hello", "functionVersion": "1", **spec},
    }
