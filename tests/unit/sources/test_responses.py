"""ReportBatchItemFailures: what counts as success, partial failure and total failure."""

from __future__ import annotations

import json

import pytest

from kubelambda.sources.responses import interpret

IDS = ["m1", "m2", "m3"]


def failures(*ids: object) -> bytes:
    return json.dumps({"batchItemFailures": [{"itemIdentifier": i} for i in ids]}).encode()


@pytest.mark.parametrize(
    "payload",
    [b"", b"null", b"{}", b'{"batchItemFailures": null}', b'{"batchItemFailures": []}'],
)
def test_complete_success(payload: bytes) -> None:
    assert interpret(None, payload, True, IDS).ok


def test_reported_items_are_the_partial_failure() -> None:
    outcome = interpret(None, failures("m3", "m1", "m3"), True, IDS)
    assert outcome.kind == "partial"
    assert outcome.failed == ("m3", "m1")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not JSON"),
        (b'"a string"', "not an object"),
        (b'{"batchItemFailures": {"itemIdentifier": "m1"}}', "not a list"),
        (b'{"batchItemFailures": [{"id": "m1"}]}', "no itemIdentifier"),
        (b'{"batchItemFailures": ["m1"]}', "no itemIdentifier"),
        (failures(""), "empty"),
        (failures(None), "empty"),
        (failures(7), "not a string"),
        (failures("m9"), "not in the batch"),
    ],
)
def test_malformed_answers_fail_the_whole_batch(payload: bytes, reason: str) -> None:
    outcome = interpret(None, payload, True, IDS)
    assert outcome.kind == "failure"
    assert reason in outcome.reason


def test_a_function_error_fails_everything_and_names_the_error() -> None:
    body = json.dumps({"errorType": "ValueError", "errorMessage": "bad"}).encode()
    outcome = interpret("Unhandled", body, True, IDS)
    assert outcome.kind == "failure" and "ValueError" in outcome.reason


def test_without_report_item_failures_any_answer_is_success() -> None:
    assert interpret(None, failures("m1"), False, IDS).ok
    assert interpret(None, b"garbage", False, IDS).ok
