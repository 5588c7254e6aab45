"""Resolve once, pass down: a served catalog hands each resolution its Target, worked out once."""

from __future__ import annotations

from typing import Any

import pytest

from kubelambda.api.resources import parse_resource
from kubelambda.serving.catalog import Catalog, FunctionVersion, build_catalog
from kubelambda.serving.errors import LambdaError
from kubelambda.serving.names import FunctionRef
from kubelambda.serving.shape import shape_of
from kubelambda.serving.specs import SpecBuilder
from kubelambda.serving.target import Target

DOC = {"apiVersion": "kubelambda.dev/v1alpha1"}
ZIP = {"runtime": "python3.12", "handler": "app.handler", "code": {"inline": {"app.py": "x"}}}
IMAGE = {
    "packageType": "Image",
    "code": {"image": "registry.example/fn:1"},
    "imageConfig": {"command": ["app.handler"]},
    "memorySize": 1024,
}


def catalog(**specs: dict[str, Any]) -> Catalog:
    resources = [
        parse_resource({**DOC, "kind": "Function", "metadata": {"name": name}, "spec": spec})
        for name, spec in specs.items()
    ]
    resources.append(
        parse_resource(
            {
                **DOC,
                "kind": "Version",
                "metadata": {"name": "zip-1"},
                "spec": {"functionName": "zip", "version": 1, "function": ZIP},
            }
        )
    )
    resources.append(
        parse_resource(
            {
                **DOC,
                "kind": "Alias",
                "metadata": {"name": "live"},
                "spec": {"functionName": "zip", "functionVersion": "1"},
            }
        )
    )
    return build_catalog(resources)


def test_resolving_a_served_catalog_hands_down_spec_shape_and_arn() -> None:
    served = catalog(zip=ZIP).serve(SpecBuilder(region="eu-west-1").target, "eu-west-1")
    resolved = served.resolve(FunctionRef("default", "zip", "live"), 0.5)
    target = resolved.target
    assert target is not None and target.problem is None
    assert target.revision == resolved.version.revision and target.runtime == "python3.12"
    assert target.shape == shape_of(resolved.version.spec)
    assert target.spec().function_version == "1"
    assert target.spec().initialization_type == "on-demand"
    assert target.spec("provisioned-concurrency").initialization_type == "provisioned-concurrency"
    assert resolved.invoked_arn == "arn:aws:lambda:eu-west-1:000000000000:function:default.zip:live"
    latest = served.resolve(FunctionRef("default", "zip", None), 0.5)
    assert latest.invoked_arn == "arn:aws:lambda:eu-west-1:000000000000:function:default.zip"
    with pytest.raises(LambdaError, match="eu-west-1"):
        served.resolve(FunctionRef("default", "nope", None), 0.5)


def test_an_unserved_catalog_resolves_without_a_target() -> None:
    resolved = catalog(zip=ZIP).resolve(FunctionRef("default", "zip", None), 0.5)
    assert resolved.target is None


def test_the_image_rule_is_the_builders_and_travels_as_the_targets_problem() -> None:
    dev = catalog(img=IMAGE).serve(SpecBuilder().target, "us-east-1")
    target = dev.resolve(FunctionRef("default", "img", None), 0.5).target
    assert target is not None and target.problem is not None
    assert target.shape.image == "registry.example/fn:1" and target.shape.memory == 1024
    first, second = target.error(), target.error()
    assert first is not second, "a fresh exception per invocation"
    assert first.code == "InvalidParameterValueException" and "Image" in first.message
    with pytest.raises(LambdaError, match="packageType Image needs cluster mode"):
        target.spec()
    cluster = catalog(img=IMAGE).serve(SpecBuilder(images=True).target, "us-east-1")
    served = cluster.resolve(FunctionRef("default", "img", None), 0.5).target
    assert served is not None and served.problem is None
    assert served.spec().code.image == "registry.example/fn:1"


def test_servable_targets_are_kept_across_catalogs_and_problems_worked_out_again() -> None:
    built: list[str] = []
    broken = {"zip"}

    def target_of(version: FunctionVersion) -> Target:
        built.append(version.function)
        if version.function in broken:
            problem = LambdaError("InvalidParameterValueException", "not yet")
            return Target(version.revision, "", shape_of(version.spec), problem=problem)
        return SpecBuilder().target(version)

    first = catalog(zip=ZIP, other=ZIP).serve(target_of, "us-east-1")
    assert sorted(built) == ["other", "zip", "zip"]  # $LATEST of each, and zip's version 1
    built.clear()
    broken.clear()
    second = catalog(zip=ZIP, other=ZIP).serve(target_of, "us-east-1", known=first.targets)
    assert sorted(built) == ["zip", "zip"], "only the targets that had a problem are rebuilt"
    assert all(t.problem is None for t in second.targets.values())
    kept = [rev for rev, t in second.targets.items() if first.targets[rev] is t]
    assert len(kept) == 1
