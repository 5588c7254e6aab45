"""The Function reconciler: every state transition, every way to fail, and the code digests."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from kubelambda.api.function import Code
from kubelambda.operator import functions as f
from kubelambda.runtime.archive import tree_digest
from tests.unit.operator.docs import CODE, NOW, active_function, function

INLINE_DIGEST = tree_digest([(name, text.encode()) for name, text in CODE["inline"].items()])


def test_a_new_function_is_pending_then_active_with_its_digest() -> None:
    doc = function()
    assert f.needs_update(doc)
    pending = f.in_progress(doc, NOW)
    assert pending["state"] == "Pending"
    assert pending["lastUpdateStatus"] == "InProgress"
    assert pending["conditions"][0]["status"] == "False"
    doc["status"] = pending
    outcome = f.reconcile(doc, None, NOW)
    status = outcome.status
    assert status["state"] == "Active"
    assert status["lastUpdateStatus"] == "Successful"
    assert status["codeSha256"] == INLINE_DIGEST
    assert status["codeSize"] == len(CODE["inline"]["app.py"].encode())
    assert status["observedGeneration"] == 1
    assert (
        status["conditions"][0]["type"] == "Ready" and status["conditions"][0]["status"] == "True"
    )
    assert [(e.type, e.reason) for e in outcome.events] == [("Normal", "Active")]
    doc["status"] = status
    assert not f.needs_update(doc)


def test_an_update_stays_active_while_in_progress_and_reports_new_code() -> None:
    doc = active_function(sha=INLINE_DIGEST)
    doc["metadata"]["generation"] = 2
    doc["spec"]["code"] = {"inline": {"app.py": "def handler(e, c):\n    return 2\n"}}
    assert f.needs_update(doc)
    during = f.in_progress(doc, NOW)
    assert (during["state"], during["lastUpdateStatus"]) == ("Active", "InProgress")
    outcome = f.reconcile(doc, None, NOW)
    assert outcome.status["codeSha256"] != INLINE_DIGEST
    assert outcome.status["observedGeneration"] == 2
    assert "lastModified" in outcome.status
    assert [e.reason for e in outcome.events] == ["CodeUpdated"]


def test_a_config_only_update_keeps_the_digest_and_posts_nothing() -> None:
    doc = active_function(sha=INLINE_DIGEST)
    doc["metadata"]["generation"] = 2
    doc["spec"]["memorySize"] = 256
    outcome = f.reconcile(doc, None, NOW)
    assert outcome.status["codeSha256"] == INLINE_DIGEST
    assert outcome.events == []


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"environment": {"variables": {"AWS_REGION": "x"}}}, "spec.environment"),
        ({"memorySize": 64}, "spec.memorySize"),
        ({"runtime": None}, "spec"),
        ({"handler": None}, "spec"),
        ({"timeout": 901}, "spec.timeout"),
        ({"architectures": ["x86_64", "arm64"]}, "spec.architectures"),
        ({"code": {"inline": {"app.py": "x"}, "url": "https://e.example/a.zip"}}, "spec.code"),
        ({"reservedConcurrency": -1}, "spec.reservedConcurrency"),
        ({"bogus": 1}, "spec.bogus"),
    ],
)
def test_an_invalid_function_fails_with_the_field_named(spec: dict[str, Any], field: str) -> None:
    doc = function(**spec)
    doc["spec"] = {k: v for k, v in doc["spec"].items() if v is not None}
    outcome = f.reconcile(doc, None, NOW)
    reason = outcome.status["stateReason"]
    assert outcome.state == "Failed"
    assert reason.startswith(field), reason
    assert outcome.status["lastUpdateStatus"] == "Failed"
    assert outcome.status["stateReasonCode"] == "InvalidConfiguration"
    assert [(e.type, e.reason) for e in outcome.events] == [("Warning", "Failed")]


def test_a_failed_function_that_is_fixed_becomes_active() -> None:
    doc = function(status={"state": "Failed", "stateReason": "x", "observedGeneration": 1})
    doc["metadata"]["generation"] = 2
    assert f.needs_update(doc)
    assert f.in_progress(doc, NOW)["state"] == "Failed"
    outcome = f.reconcile(doc, None, NOW)
    assert outcome.state == "Active"
    assert [e.reason for e in outcome.events] == ["Active"]


def test_an_active_function_broken_by_an_update_fails() -> None:
    doc = active_function()
    doc["metadata"]["generation"] = 2
    doc["spec"]["memorySize"] = 99999
    outcome = f.reconcile(doc, None, NOW)
    assert outcome.state == "Failed"
    assert outcome.status["stateReason"].startswith("spec.memorySize")


def test_image_functions_need_their_handler_in_image_config() -> None:
    doc = function(packageType="Image", code={"image": "registry.example/fn:1"})
    outcome = f.reconcile(doc, None, NOW)
    assert outcome.state == "Failed"
    assert outcome.status["stateReason"].startswith("spec.imageConfig")


def test_image_functions_are_active_with_the_image_digest() -> None:
    digest = "ab" * 32
    doc = function(
        packageType="Image",
        code={"image": f"registry.example/fn@sha256:{digest}"},
        imageConfig={"command": ["app.handler"]},
    )
    outcome = f.reconcile(doc, None, NOW)
    assert outcome.state == "Active" and outcome.status["codeSha256"] == digest


@pytest.mark.parametrize(
    ("code", "field"),
    [
        ({"path": "./hello"}, "spec.code.path"),
        # s3 is served once pinned: the agent checks the digest as it downloads
        ({"s3": {"bucket": "bucket", "key": "k.zip"}}, "spec.code.sha256"),
    ],
)
def test_sources_the_cluster_cannot_serve_fail_the_function(
    code: dict[str, Any], field: str
) -> None:
    outcome = f.reconcile(function(code=code), None, NOW)
    assert outcome.state == "Failed"
    assert outcome.status["stateReason"].startswith(field)
    assert outcome.status["stateReasonCode"] == "InvalidCode"


def test_s3_code_pinned_by_sha256_is_active_with_that_digest() -> None:
    digest = "c" * 64
    code = {"s3": {"bucket": "code", "key": f"sha256/{digest}.zip"}, "sha256": digest}
    outcome = f.reconcile(function(code=code), None, NOW)
    assert outcome.state == "Active" and outcome.status["codeSha256"] == digest


def test_a_wrong_sha256_pin_fails_the_function() -> None:
    code = {**CODE, "sha256": "b" * 64}
    outcome = f.reconcile(function(code=code), None, NOW)
    assert outcome.state == "Failed"
    assert outcome.status["stateReason"].startswith("spec.code.sha256")
    good = f.reconcile(function(code={**CODE, "sha256": INLINE_DIGEST}), None, NOW)
    assert good.state == "Active"


def test_url_code_takes_its_pinned_digest() -> None:
    code = Code.model_validate({"url": "https://e.example/a.zip", "sha256": "c" * 64})
    assert f.code_facts(code) == f.CodeFacts("c" * 64, None)


def test_configmap_code_digests() -> None:
    files = {"app.py": "def handler(e, c):\n    return 1\n", "util.py": "X = 1\n"}
    configmap = {"data": files}
    tree = Code.model_validate({"configMap": {"name": "code"}})
    facts = f.code_facts(tree, configmap)
    assert facts.sha256 == tree_digest((k, v.encode()) for k, v in files.items())
    zipped = b"PK\x03\x04 pretend zip"
    cm_zip = {"binaryData": {"code.zip": base64.b64encode(zipped).decode()}}
    keyed = Code.model_validate({"configMap": {"name": "code", "key": "code.zip"}})
    assert f.code_facts(keyed, cm_zip) == f.CodeFacts(
        hashlib.sha256(zipped).hexdigest(), len(zipped)
    )


@pytest.mark.parametrize(
    ("configmap", "message"),
    [
        (None, "spec.code.configMap: ConfigMap code not found"),
        ({"data": {}}, "spec.code.configMap: ConfigMap code is empty"),
        ({"binaryData": {"a": "!!!"}}, "binaryData.a"),
    ],
)
def test_configmap_problems(configmap: dict[str, Any] | None, message: str) -> None:
    code = Code.model_validate({"configMap": {"name": "code"}})
    with pytest.raises(f.CodeProblem, match=message.replace(".", r"\.")):
        f.code_facts(code, configmap)
    keyed = Code.model_validate({"configMap": {"name": "code", "key": "zip"}})
    with pytest.raises(f.CodeProblem, match=r"spec\.code\.configMap\.key"):
        f.code_facts(keyed, {"data": {"other": "x"}})


def test_condition_transition_time_moves_only_when_the_status_flips() -> None:
    doc = function()
    first = f.reconcile(doc, None, NOW).status
    doc["status"] = first
    doc["metadata"]["generation"] = 2
    later = f.reconcile(doc, None, NOW + 60).status
    assert (
        later["conditions"][0]["lastTransitionTime"] == first["conditions"][0]["lastTransitionTime"]
    )
    doc["spec"]["memorySize"] = 1
    failed = f.reconcile(doc, None, NOW + 120).status
    assert (
        failed["conditions"][0]["lastTransitionTime"]
        != first["conditions"][0]["lastTransitionTime"]
    )


def test_secret_environment_is_served_and_auto_publish_is_not_flagged_any_more() -> None:
    # The gateway resolves secretKeyRefs; the Function's status never names a value.
    refs = {"secretKeyRefs": {"TOKEN": {"name": "s", "key": "k"}}}
    outcome = f.reconcile(function(environment=refs), None, NOW)
    assert outcome.state == "Active"
    auto = f.reconcile(function(autoPublishAlias="live"), None, NOW)
    assert auto.state == "Active"
    assert "NotBuilt" not in [e.reason for e in auto.events]  # publishing.py builds it


def test_status_url_is_set_only_while_the_function_has_a_url() -> None:
    from kubelambda.serving.urls import UrlDomain

    url = UrlDomain("lambda.example.com", "https").url("default", "hello")
    doc = function()
    assert f.reconcile(doc, None, NOW, url=url).status["url"] is None
    doc["spec"]["functionUrl"] = {"authType": "NONE"}
    status = f.reconcile(doc, None, NOW, url=url).status
    assert status["url"] == "https://hello.default.lambda.example.com/"
    assert UrlDomain("lambda.example.com").route_host("hello.default.lambda.example.com") == (
        "default",
        "hello",
    )
