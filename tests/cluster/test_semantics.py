"""Unit tests of the pure pieces: selectors, patches, schema admission, pod-spec translation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.cluster.apiserver import REPO
from tests.cluster.podspec import ImageTable, Rewriter, container_argv, expand, quantity
from tests.cluster.resources import crd_resource_types
from tests.cluster.schema import admit_custom_object
from tests.cluster.semantics import (
    ApiError,
    Selector,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)


def test_label_selector_grammar() -> None:
    sel = Selector.parse("a in (x, y),b!=z,!c,d", "", "Pod")
    assert sel.matches({"metadata": {"labels": {"a": "x", "d": ""}}})
    assert not sel.matches({"metadata": {"labels": {"a": "x", "c": "1", "d": ""}}})
    assert not sel.matches({"metadata": {"labels": {"a": "q", "d": ""}}})
    with pytest.raises(ApiError):
        Selector.parse("a in x", "", "Pod")


def test_pod_field_selectors() -> None:
    sel = Selector.parse("", "status.phase!=Failed,spec.nodeName=n", "Pod")
    assert sel.matches({"metadata": {}, "spec": {"nodeName": "n"}, "status": {"phase": "Running"}})
    assert not sel.matches(
        {"metadata": {}, "spec": {"nodeName": "n"}, "status": {"phase": "Failed"}}
    )
    with pytest.raises(ApiError) as exc:
        Selector.parse("", "status.phase=Running", "ConfigMap")
    assert exc.value.code == 400


def test_merge_and_strategic_patches() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {
        "a": {"c": 2, "d": 3}
    }
    pod = {"spec": {"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 1}]}]}}
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "a", "image": "y"}, {"name": "b", "image": "z"}],
        }
    }
    merged = strategic_merge_patch(pod, patch)
    assert merged["spec"]["containers"] == [
        {"name": "a", "image": "y", "ports": [{"containerPort": 1}]},
        {"name": "b", "image": "z"},
    ]


def test_json_patch_errors_are_422() -> None:
    assert json_patch({"a": 1}, [{"op": "replace", "path": "/a", "value": 2}]) == {"a": 2}
    for ops in ([{"op": "test", "path": "/a", "value": 2}], [{"op": "remove", "path": "/zz"}]):
        with pytest.raises(ApiError) as exc:
            json_patch({"a": 1}, ops)
        assert exc.value.code == 422


def test_our_function_crd_defaults_and_validates() -> None:
    crd = yaml.safe_load((REPO / "crds" / "functions.kubelambda.dev.yaml").read_text())
    (rt,) = crd_resource_types(crd)
    spec = {
        "runtime": "python3.12",
        "handler": "app.handler",
        "code": {"inline": {"app.py": "def handler(e, c): return 1"}},
    }
    base = {"metadata": {"name": "f"}, "spec": spec}
    admitted = admit_custom_object(rt, base, None, "Strict")
    assert admitted["spec"]["memorySize"] == 128 and admitted["spec"]["timeout"] == 3
    too_small = {**base, "spec": {**spec, "memorySize": 64}}
    with pytest.raises(ApiError) as exc:
        admit_custom_object(rt, too_small, None, "")
    assert exc.value.code == 422 and "spec.memorySize" in exc.value.message


def test_podspec_translation() -> None:
    assert expand("$(A)-$$(A)-$(B)", {"A": "1"}) == "1-$(A)-$(B)"
    assert quantity("256Mi") == 256 * 2**20 and quantity("500m") == 0.5
    rewrite = Rewriter({"/var/task": Path("/tmp/x/task")}, "127.0.9.9")
    assert rewrite("--dir=/var/task/app --host=0.0.0.0") == "--dir=/tmp/x/task/app --host=127.0.9.9"
    assert rewrite("/var/taskforce http://localhost:80") == "/var/taskforce http://127.0.9.9:80"
    image = ImageTable.default().resolve("public.ecr.aws/lambda/python:3.12")
    assert container_argv({"args": ["app.handler"]}, image, {})[:3] == [
        "python3",
        "-m",
        "awslambdaric",
    ]
    assert container_argv({"command": ["kubelambda", "agent"]}, image, {}) == [
        "kubelambda",
        "agent",
    ]
