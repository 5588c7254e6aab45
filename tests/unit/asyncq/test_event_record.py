"""The event record's wire form and the async invocation record's shape."""

from __future__ import annotations

import json

import pytest

from kubelambda.gateway.asyncq.event import AsyncEvent
from kubelambda.gateway.asyncq.record import (
    Response,
    dead_letter_attributes,
    invocation_record,
    iso_timestamp,
    json_or_text,
)
from kubelambda.serving.names import FunctionRef

ARN = "arn:aws:lambda:us-east-1:000000000000:function:default.fn:$LATEST"


def test_header_round_trips_every_field() -> None:
    original = AsyncEvent("team-a", "fn", "live", b'{"a": 1}', 1234.5678, "rid", 2, 3, 1240.25, 7)
    assert AsyncEvent.from_header(original.to_header(), original.payload) == original
    unqualified = AsyncEvent.accept(FunctionRef("default", "fn", None), b"{}", 1.0)
    back = AsyncEvent.from_header(unqualified.to_header(), b"{}")
    assert back.qualifier is None
    assert back == unqualified


@pytest.mark.parametrize("value", ["", "{}", "[1, 2]", '["a","b","c",null,"x",0,0,0,0]', "[["])
def test_a_foreign_header_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        AsyncEvent.from_header(value, b"{}")


def test_accept_gives_every_event_its_own_request_id() -> None:
    ref = FunctionRef("default", "fn", None)
    ids = {AsyncEvent.accept(ref, b"{}", 1.0).id for _ in range(100)}
    assert len(ids) == 100


def test_timestamp_is_utc_with_milliseconds() -> None:
    assert iso_timestamp(1573755365.568) == "2019-11-14T18:16:05.568Z"


def test_success_record_has_lambdas_shape() -> None:
    event = AsyncEvent("default", "fn", None, b'{"k": "v"}', 100.0, "rid", attempts=1)
    response = Response(200, "$LATEST", None, b'{"ok": true}')
    record = invocation_record(
        event=event, function_arn=ARN, condition="Success", response=response, now=1573755365.568
    )
    assert record == {
        "version": "1.0",
        "timestamp": "2019-11-14T18:16:05.568Z",
        "requestContext": {
            "requestId": "rid",
            "functionArn": ARN,
            "condition": "Success",
            "approximateInvokeCount": 1,
        },
        "requestPayload": {"k": "v"},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
        "responsePayload": {"ok": True},
    }
    json.dumps(record)  # serializable as is


def test_failure_record_names_the_function_error() -> None:
    event = AsyncEvent("default", "fn", "3", b"{}", 100.0, "rid", attempts=3)
    error = b'{"errorMessage": "boom", "errorType": "ValueError"}'
    record = invocation_record(
        event=event,
        function_arn=ARN,
        condition="RetriesExhausted",
        response=Response(200, "3", "Unhandled", error),
        now=200.0,
    )
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "3",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "ValueError"
    assert record["requestContext"]["approximateInvokeCount"] == 3


def test_an_event_that_never_ran_has_no_response_part() -> None:
    event = AsyncEvent("default", "fn", None, b"[1, 2]", 100.0, "rid")
    record = invocation_record(
        event=event, function_arn=ARN, condition="EventAgeExceeded", response=None, now=200.0
    )
    assert "responseContext" not in record and "responsePayload" not in record
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["requestPayload"] == [1, 2]


def test_payloads_that_are_not_json_stay_text() -> None:
    assert json_or_text(b"") is None
    assert json_or_text(b"not json") == "not json"
    assert json_or_text(b"\xff\xfe") == "\ufffd\ufffd"


def test_dead_letter_attributes_carry_the_error() -> None:
    event = AsyncEvent("default", "fn", None, b"{}", 100.0, "rid", attempts=1)
    error = b'{"errorMessage": "' + b"x" * 2000 + b'", "errorType": "E"}'
    attributes = dead_letter_attributes(
        event, "RetriesExhausted", Response(200, "$LATEST", "Unhandled", error)
    )
    assert attributes["RequestID"] == "rid"
    assert attributes["ErrorCode"] == "200"
    assert attributes["ErrorMessage"] == "x" * 1024
    aged = dead_letter_attributes(event, "EventAgeExceeded", None)
    assert aged["ErrorMessage"] == "Event dropped: EventAgeExceeded"
