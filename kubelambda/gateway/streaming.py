"""InvokeWithResponseStream: the response as AWS event-stream messages while the function runs.

`POST /2021-11-15/functions/{name}/response-streaming-invocations` answers 200 with
PayloadChunk events, then one InvokeComplete (ErrorCode, ErrorDetails, LogResult). A function
that streams (the Runtime API's streaming mode) has each chunk sent on as it arrives; a buffered
one sends its whole payload as one chunk. Errors found before the first byte (not found,
throttled, too large) are ordinary Lambda errors; after it, they go in InvokeComplete.
"""

from __future__ import annotations

import json

from aiohttp import web

from kubelambda.gateway import eventstream
from kubelambda.gateway.api import (
    STREAM_ROUTE,
    GatewayApi,
    check_json,
    dry_run,
    invocation_type,
    invoke_headers,
    log_result,
    sync_call,
)
from kubelambda.gateway.http import body_once
from kubelambda.runtime.limits import SYNC_PAYLOAD_LIMIT
from kubelambda.serving.errors import as_lambda_error

ROUTE = STREAM_ROUTE
INVOCATION_TYPES = ("RequestResponse", "DryRun")


class EventStreamSink:
    """A `ResponseStream` that writes PayloadChunk events to the client as chunks arrive."""

    def __init__(self, request: web.Request, headers: dict[str, str]) -> None:
        self.request = request
        self.headers = headers
        self.response: web.StreamResponse | None = None

    async def open(self) -> web.StreamResponse:
        if self.response is None:
            response = web.StreamResponse(
                status=200, headers={"Content-Type": eventstream.CONTENT_TYPE, **self.headers}
            )
            response.enable_chunked_encoding()
            await response.prepare(self.request)
            self.response = response
        return self.response

    async def begin(self, content_type: str) -> None:
        await self.open()

    async def write(self, chunk: bytes) -> None:
        await (await self.open()).write(eventstream.payload_chunk(chunk))

    async def complete(
        self, code: str | None = None, details: str | None = None, log: str | None = None
    ) -> web.StreamResponse:
        response = await self.open()
        await response.write(eventstream.invoke_complete(code, details, log))
        await response.write_eof()
        return response


def error_fields(payload: bytes) -> tuple[str, str]:
    """InvokeComplete's ErrorCode and ErrorDetails for a failed invocation's error payload."""
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        document = None
    code = "Unhandled"
    if isinstance(document, dict) and isinstance(document.get("errorType"), str):
        code = document["errorType"]
    return code, payload.decode(errors="replace")


async def invoke_stream(api: GatewayApi, request: web.Request) -> web.StreamResponse:
    kind = invocation_type(request, INVOCATION_TYPES)
    log_tail, client_context = invoke_headers(request)
    ref = api.function_ref(request)
    payload = check_json(await body_once(request, SYNC_PAYLOAD_LIMIT))
    resolved = api.invoker.resolve(ref)
    executed = resolved.version.version
    if kind == "DryRun":
        return dry_run(resolved)
    call = sync_call(request, resolved, payload, log_tail, client_context)
    sink = EventStreamSink(
        request, {"X-Amz-Executed-Version": executed, "x-amzn-RequestId": call.request_id}
    )
    try:
        outcome = await api.invoker.invoke(resolved, call, sink)
    except Exception as exc:
        if sink.response is None:
            raise  # nothing sent yet: an ordinary Lambda error (the API's middleware)
        error = as_lambda_error(exc)  # the 200 is out: the error goes in InvokeComplete
        return await sink.complete(error.code, error.message)
    result = outcome.result
    tail = log_result(result.log_tail) if call.log_tail else None
    if result.function_error:
        code, details = error_fields(result.payload)
        return await sink.complete(code, details, tail)
    if not result.streamed and result.payload:
        await sink.write(result.payload)
    return await sink.complete(log=tail)
