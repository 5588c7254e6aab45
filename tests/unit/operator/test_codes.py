"""ConfigMap code for the cluster path: the CodeRef an agent gets, and when it is fetched again."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kubelambda.api.function import Code, ConfigMapSource
from kubelambda.kube.catalog import catalog_from_objects
from kubelambda.kube.codefacts import CodeProblem, code_facts
from kubelambda.kube.codes import ConfigMapCode, configmap_code_ref, wanted_configmaps
from kubelambda.runtime.archive import tree_digest
from kubelambda.runtime.spec import CodeOrigin
from kubelambda.serving.specs import environment_spec
from tests.unit.operator.docs import active_function

FILES = {"app.py": "def handler(e, c):\n    return 1\n"}
DIGEST = tree_digest((k, v.encode()) for k, v in FILES.items())


def test_files_become_inline_code_pinned_to_the_verified_digest() -> None:
    ref = configmap_code_ref(ConfigMapSource(name="c"), {"data": FILES}, DIGEST)
    assert ref.inline == FILES and ref.sha256 == DIGEST
    assert ref.origin == CodeOrigin(config_map="c")  # so a pod can mount it (podbuilder)


def test_a_key_becomes_a_zip() -> None:
    zipped = b"PK\x03\x04zip"
    doc = {"binaryData": {"code.zip": base64.b64encode(zipped).decode()}}
    ref = configmap_code_ref(ConfigMapSource(name="c", key="code.zip"), doc, None)
    assert ref.zip_base64 is not None and base64.b64decode(ref.zip_base64) == zipped
    assert ref.origin == CodeOrigin(config_map="c", key="code.zip")
    with pytest.raises(CodeProblem, match="no key 'other'"):
        configmap_code_ref(ConfigMapSource(name="c", key="other"), doc, None)
    with pytest.raises(CodeProblem, match="binary files need `key`"):
        configmap_code_ref(ConfigMapSource(name="c"), doc, None)


class FakeApi:
    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs
        self.gets: list[str] = []

    async def get(self, path: str) -> dict[str, Any]:
        self.gets.append(path)
        return self.docs[path.rsplit("/", 1)[-1]]


async def test_configmaps_are_fetched_once_per_verified_digest() -> None:
    fn = active_function(sha=DIGEST, code={"configMap": {"name": "code"}})
    catalog = catalog_from_objects([fn], [], [])
    assert wanted_configmaps(catalog) == {("default", "code", None, DIGEST)}
    api = FakeApi({"code": {"data": FILES}})
    cache = ConfigMapCode(api)  # type: ignore[arg-type]
    await cache.refresh(catalog)
    await cache.refresh(catalog)
    assert api.gets == ["/api/v1/namespaces/default/configmaps/code"]
    spec = environment_spec(
        catalog.functions[("default", "hello")].latest, region="us-east-1", resolve=cache.resolve
    )
    assert spec.code.inline == FILES and spec.code.sha256 == DIGEST
    # The operator saw new content (a new digest): fetched again.
    changed = {"app.py": "def handler(e, c):\n    return 2\n"}
    api.docs["code"] = {"data": changed}
    new = tree_digest((k, v.encode()) for k, v in changed.items())
    await cache.refresh(
        catalog_from_objects([active_function(sha=new, code=fn["spec"]["code"])], [], [])
    )
    assert len(api.gets) == 2
    assert (
        code_facts(
            Code(config_map=ConfigMapSource(name="code")), cache.docs[("default", "code")]
        ).sha256
        == new
    )


def test_without_a_resolver_configmap_code_is_refused() -> None:
    fn = active_function(code={"configMap": {"name": "code"}})
    version = catalog_from_objects([fn], [], []).functions[("default", "hello")].latest
    with pytest.raises(Exception, match="needs cluster mode"):
        environment_spec(version, region="us-east-1")


def test_an_image_is_served_only_where_images_run() -> None:
    fn = active_function(
        packageType="Image",
        code={"image": "registry.example/fn:1"},
        imageConfig={"command": ["app.handler"]},
    )
    fn["spec"].pop("runtime", None)
    fn["spec"].pop("handler", None)
    version = catalog_from_objects([fn], [], []).functions[("default", "hello")].latest
    with pytest.raises(Exception, match="packageType Image needs cluster mode"):
        environment_spec(version, region="us-east-1")  # dev mode: no container engine
    spec = environment_spec(version, region="us-east-1", images=True)
    assert spec.package_type == "Image" and spec.code.image == "registry.example/fn:1"
