"""Publishing Versions: numbering (never reused), snapshots, preconditions, waiting, refusing."""

from __future__ import annotations

from kubelambda.operator import versions as v
from tests.unit.operator.docs import CODE, NOW, active_function, function, published, version


def test_waits_for_a_missing_function() -> None:
    plan = v.plan(version("hello-v"), None, [], NOW)
    assert plan.wait is not None and plan.wait.startswith("spec.functionName")
    assert plan.number is None and not plan.status


def test_waits_while_the_function_is_pending_or_updating() -> None:
    pending = function(status={"state": "Pending"})
    assert v.plan(version("x"), pending, [], NOW).wait
    updating = active_function()
    updating["metadata"]["generation"] = 2  # observedGeneration is 1
    assert v.plan(version("x"), updating, [], NOW).wait


def test_a_failed_function_fails_the_version() -> None:
    failed = function(status={"state": "Failed", "observedGeneration": 1})
    plan = v.plan(version("x"), failed, [], NOW)
    assert plan.failed is not None and plan.failed.startswith("spec.functionName")
    assert plan.status["state"] == "Failed"
    assert [e.type for e in plan.events] == ["Warning"]


def test_the_first_version_is_one_and_snapshots_latest() -> None:
    fn = active_function()
    plan = v.plan(version("hello-v1"), fn, [], NOW, region="eu-west-1")
    assert plan.number == 1 and plan.bump_latest_to == 1
    assert plan.spec_patch == {"version": 1, "function": fn["spec"]}
    assert plan.status["state"] == "Active"
    assert plan.status["version"] == 1
    assert plan.status["codeSha256"] == "a" * 64 and plan.status["codeSize"] == 42
    assert plan.status["functionArn"].endswith(":function:default.hello:1")
    assert plan.status["functionArn"].startswith("arn:aws:lambda:eu-west-1:")
    assert [e.reason for e in plan.events] == ["Published"]


def test_numbers_follow_the_counter_and_every_number_in_use() -> None:
    # The counter says 3 (versions 2 and 3 were deleted); a sibling holds 1.
    plan = v.plan(version("next"), active_function(latest=3), [published("one", 1)], NOW)
    assert plan.number == 4 and plan.bump_latest_to == 4
    # A sibling took 7 explicitly, beyond the counter: the next is 8.
    plan = v.plan(version("next"), active_function(latest=3), [published("seven", 7)], NOW)
    assert plan.number == 8


def test_an_explicit_number_is_kept_and_raises_the_counter() -> None:
    plan = v.plan(version("x", version=5), active_function(latest=2), [], NOW)
    assert plan.number == 5 and plan.bump_latest_to == 5
    assert "version" not in plan.spec_patch
    low = v.plan(version("x", version=1), active_function(latest=2), [], NOW)
    assert low.number == 1 and low.bump_latest_to is None


def test_an_explicit_number_in_use_fails() -> None:
    plan = v.plan(version("dup", version=1), active_function(latest=1), [published("a", 1)], NOW)
    assert plan.failed is not None
    assert plan.failed.startswith("spec.version") and "Version/a" in plan.failed


def test_the_codesha256_precondition() -> None:
    fn = active_function(sha="a" * 64)
    refused = v.plan(version("x", codeSha256="b" * 64), fn, [], NOW)
    assert refused.failed is not None and refused.failed.startswith("spec.codeSha256")
    assert refused.number is None, "no number is taken"
    ok = v.plan(version("x", codeSha256="a" * 64), fn, [], NOW)
    assert ok.number == 1


def test_an_explicit_snapshot_is_digested_not_copied() -> None:
    snapshot = {"runtime": "python3.11", "handler": "app.handler", "code": CODE}
    plan = v.plan(version("x", function=snapshot), active_function(), [], NOW)
    assert "function" not in plan.spec_patch
    assert plan.status["codeSha256"] != "a" * 64  # the snapshot's own code, not $LATEST's
    bad = {"runtime": "python3.11", "handler": "h.h", "code": {"path": "./x"}}
    failed = v.plan(version("y", function=bad), active_function(), [], NOW)
    assert failed.failed is not None and failed.failed.startswith("spec.function.code.path")


def test_a_published_version_replans_to_the_same_result() -> None:
    fn = active_function(latest=1)
    doc = version("x", version=1, function=fn["spec"], status={"state": "Active", "version": 1})
    plan = v.plan(doc, fn, [], NOW)
    assert plan.number == 1 and plan.bump_latest_to is None and plan.spec_patch == {}
    assert plan.events == [], "no second Published event"


def test_an_invalid_version_fails_with_the_field_named() -> None:
    plan = v.plan(version("x", version=0), active_function(), [], NOW)
    assert plan.failed is not None and plan.failed.startswith("spec.version")


def test_set_once_fields_cannot_change() -> None:
    old = {"functionName": "hello", "version": 1, "codeSha256": "a" * 64}
    assert v.set_once_violations(old, dict(old)) == []
    assert v.set_once_violations({"functionName": "hello"}, {**old}) == []  # set for the first time
    changed = v.set_once_violations(old, {**old, "version": 2, "functionName": "other"})
    assert [line.split(":")[0] for line in changed] == ["spec.functionName", "spec.version"]
    removed = v.set_once_violations(old, {"functionName": "hello", "version": 1})
    assert removed and removed[0].startswith("spec.codeSha256")
