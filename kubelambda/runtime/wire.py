"""How an invocation crosses the agent's control HTTP API: the payload is the body, the rest
travels in headers (Lambda's own names where Lambda has one)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from kubelambda.runtime.spec import InvokeRequest, InvokeResult

# A streamed invocation over the control API: the request asks with STREAM; the answer is a
# chunked body of frames, each one kind byte and a 4-byte big-endian length: BEGIN (the
# runtime's Content-Type), CHUNK (body bytes, in order), RESULT (the result headers as JSON
# then, after a NUL, the buffered payload), then STATE (the environment's state after it).
STREAM = "X-Kubelambda-Stream"
FRAME_BEGIN, FRAME_CHUNK, FRAME_RESULT, FRAME_STATE = b"B", b"C", b"R", b"S"

REQUEST_ID = "Lambda-Runtime-Aws-Request-Id"
CLIENT_CONTEXT = "X-Amz-Client-Context"
LOG_TYPE = "X-Amz-Log-Type"
TRACE_ID = "X-Amzn-Trace-Id"
COGNITO_IDENTITY = "X-Kubelambda-Cognito-Identity"
FUNCTION_ARN = "X-Kubelambda-Invoked-Function-Arn"
FUNCTION_ERROR = "X-Amz-Function-Error"
EXECUTED_VERSION = "X-Amz-Executed-Version"
LOG_RESULT = "X-Amz-Log-Result"
DURATION = "X-Kubelambda-Duration-Ms"
BILLED = "X-Kubelambda-Billed-Duration-Ms"
MEMORY_USED = "X-Kubelambda-Max-Memory-Used-Mb"
INIT_DURATION = "X-Kubelambda-Init-Duration-Ms"
STATE = "X-Kubelambda-State"
STREAMED = "X-Kubelambda-Streamed"
SERVER_TIMING = "Server-Timing"  # the agent's own time in a specialization, per phase


def request_headers(request: InvokeRequest) -> dict[str, str]:
    headers = {REQUEST_ID: request.request_id, FUNCTION_ARN: request.invoked_function_arn}
    if request.client_context:
        headers[CLIENT_CONTEXT] = request.client_context
    if request.log_tail:
        headers[LOG_TYPE] = "Tail"
    if request.trace_id:
        headers[TRACE_ID] = request.trace_id
    if request.cognito_identity:
        headers[COGNITO_IDENTITY] = request.cognito_identity
    return headers


def request_from(headers: Mapping[str, str], payload: bytes) -> InvokeRequest:
    return InvokeRequest(
        request_id=headers.get(REQUEST_ID) or str(uuid.uuid4()),
        payload=payload,
        client_context=headers.get(CLIENT_CONTEXT),
        cognito_identity=headers.get(COGNITO_IDENTITY),
        trace_id=headers.get(TRACE_ID),
        log_tail=headers.get(LOG_TYPE, "").lower() == "tail",
        invoked_function_arn=headers.get(FUNCTION_ARN, ""),
    )


def result_headers(result: InvokeResult) -> dict[str, str]:
    headers = {
        REQUEST_ID: result.request_id,
        EXECUTED_VERSION: result.executed_version,
        DURATION: repr(result.duration_ms),
        BILLED: str(result.billed_duration_ms),
        MEMORY_USED: str(result.max_memory_used_mb),
    }
    if result.function_error:
        headers[FUNCTION_ERROR] = result.function_error
    if result.init_duration_ms is not None:
        headers[INIT_DURATION] = repr(result.init_duration_ms)
    if result.log_tail is not None:
        headers[LOG_RESULT] = base64.b64encode(result.log_tail.encode()).decode()
    return headers


def frame(kind: bytes, data: bytes) -> bytes:
    return kind + len(data).to_bytes(4, "big") + data


def result_frame(result: InvokeResult) -> bytes:
    head = json.dumps(result_headers(result) | {STREAMED: "1" if result.streamed else ""})
    return frame(FRAME_RESULT, head.encode() + b"\0" + result.payload)


def result_from_frame(data: bytes) -> InvokeResult:
    head, _, payload = data.partition(b"\0")
    headers: dict[str, str] = json.loads(head)
    result = result_from(headers, payload)
    result.streamed = bool(headers.get(STREAMED))
    return result


def result_from(headers: Mapping[str, str], payload: bytes) -> InvokeResult:
    tail = headers.get(LOG_RESULT)
    init = headers.get(INIT_DURATION)
    return InvokeResult(
        request_id=headers.get(REQUEST_ID, ""),
        payload=payload,
        function_error=headers.get(FUNCTION_ERROR),
        duration_ms=float(headers.get(DURATION, "0")),
        billed_duration_ms=int(headers.get(BILLED, "0")),
        max_memory_used_mb=int(headers.get(MEMORY_USED, "0")),
        init_duration_ms=float(init) if init is not None else None,
        log_tail=base64.b64decode(tail).decode() if tail is not None else None,
        executed_version=headers.get(EXECUTED_VERSION, ""),
    )


# The agent's channel (`agent_app._channel`): each WebSocket message is a JSON head, a NUL (JSON
# never holds a raw one) and the body. To the agent the head is the request's headers (as
# `request_headers`); back, `[status, headers]` (as `result_headers`, with STATE) and the
# payload, or an error status and the error document as the body.
CHANNEL_MAX_MESSAGE = 8 * 1024 * 1024  # Lambda's 6 MB payloads and their headers


def channel_pack(head: object, body: bytes) -> bytes:
    return orjson.dumps(head) + b"\0" + body  # orjson: a third of json's cost, per call


def channel_unpack(data: bytes) -> tuple[Any, bytes]:
    head, _, body = data.partition(b"\0")
    return orjson.loads(head), body


def server_timing(**seconds: float) -> str:
    """A Server-Timing header value (`name;dur=MS, ...`) from phases in seconds."""
    return ", ".join(f"{name};dur={value * 1000:.2f}" for name, value in seconds.items())


def server_timing_ms(value: str) -> dict[str, float]:
    """The phases of a Server-Timing value, in ms; what does not parse is left out."""
    phases: dict[str, float] = {}
    for part in value.split(","):
        name, _, rest = part.strip().partition(";")
        key, _, number = rest.partition("=")
        if name and key.strip() == "dur":
            try:
                phases[name] = float(number)
            except ValueError:
                continue
    return phases
