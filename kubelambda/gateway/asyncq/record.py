"""The async invocation record sent to destinations, and the dead-letter message attributes.

The shape is Lambda's:

    {"version": "1.0", "timestamp": "2019-11-14T18:16:05.568Z",
     "requestContext": {"requestId", "functionArn", "condition", "approximateInvokeCount"},
     "requestPayload": <the event>,
     "responseContext": {"statusCode", "executedVersion", "functionError"},
     "responsePayload": <what the function returned, or its error>}

`responseContext` and `responsePayload` are left out when the function never ran (an event that
aged out before its first attempt); `functionError` only appears on failures, as in Lambda.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubelambda.gateway.asyncq.event import AsyncEvent
from kubelambda.gateway.asyncq.policy import Condition

RECORD_VERSION = "1.0"
ERROR_MESSAGE_LIMIT = 1024  # Lambda's DLQ ErrorMessage attribute keeps the first 1 KB


@dataclass(frozen=True)
class Response:
    """The last attempt's result, as the record reports it."""

    status_code: int
    executed_version: str
    function_error: str | None
    payload: bytes


def iso_timestamp(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def json_or_text(data: bytes) -> Any:
    """A payload as JSON when it parses, else as text (a record must stay valid JSON)."""
    if not data:
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return data.decode("utf-8", "replace")


def invocation_record(
    *,
    event: AsyncEvent,
    function_arn: str,
    condition: Condition,
    response: Response | None,
    now: float,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "version": RECORD_VERSION,
        "timestamp": iso_timestamp(now),
        "requestContext": {
            "requestId": event.id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": event.attempts,
        },
        "requestPayload": json_or_text(event.payload),
    }
    if response is not None:
        context: dict[str, Any] = {
            "statusCode": response.status_code,
            "executedVersion": response.executed_version,
        }
        if response.function_error:
            context["functionError"] = response.function_error
        record["responseContext"] = context
        record["responsePayload"] = json_or_text(response.payload)
    return record


def error_message(condition: Condition, response: Response | None) -> str:
    """What a dead-letter message says about the failure."""
    if response is None or condition == "EventAgeExceeded":
        return f"Event dropped: {condition}"
    body = json_or_text(response.payload)
    if isinstance(body, dict) and isinstance(body.get("errorMessage"), str):
        text = str(body["errorMessage"])
    else:
        text = json.dumps(body) if not isinstance(body, str) else body
    return text[:ERROR_MESSAGE_LIMIT]


def dead_letter_attributes(
    event: AsyncEvent, condition: Condition, response: Response | None
) -> dict[str, str]:
    """Lambda's DLQ message attributes: RequestID, ErrorCode and ErrorMessage."""
    return {
        "RequestID": event.id,
        "ErrorCode": str(response.status_code if response is not None else 200),
        "ErrorMessage": error_message(condition, response),
    }
