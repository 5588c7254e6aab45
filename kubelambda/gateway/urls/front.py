"""The aiohttp edge of function URLs: route by Host header (or the `/urls/NS/FN/` path form),
build the 2.0 event, dispatch through the shared core, map the answer.

A preflight is answered from the URL's CORS config without invoking. AWS_IAM URLs are checked
by the gateway's guard (SigV4) before anything runs. BUFFERED URLs map the result with Lambda's
rules; RESPONSE_STREAM URLs send the body as the function streams it (after the HTTP prelude,
when the stream opens with one). Errors are Lambda's: 502 for a function error or a result that
is no HTTP response, 429 when throttled, 413 for a request over 6 MB.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from kubelambda.api.function import Cors, FunctionUrlConfig
from kubelambda.gateway.http import CLOSE, body_once, refuse_unread
from kubelambda.gateway.invoker import Invoker
from kubelambda.gateway.urls import cors as cors_rules
from kubelambda.gateway.urls.event import UrlRequest, build_event
from kubelambda.gateway.urls.response import (
    HTTP_INTEGRATION,
    BadResponse,
    UrlResponse,
    map_result,
    split_prelude,
)
from kubelambda.runtime.limits import SYNC_PAYLOAD_LIMIT
from kubelambda.runtime.spec import InvokeRequest
from kubelambda.serving.errors import LambdaError
from kubelambda.serving.names import FunctionRef
from kubelambda.serving.urls import UrlDomain, route_path

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Hop-by-hop and framing headers a function may not set: the gateway frames the answer.
_FRAMING = {"content-length", "transfer-encoding", "connection", "keep-alive"}


class UrlGuard(Protocol):
    """Checks the SigV4 signature of a request to an AWS_IAM URL (reading its body through
    `http.body_once`); returns the caller's `requestContext.authorizer.iam`, or raises
    LambdaError (403)."""

    async def url_caller(
        self, request: web.Request, namespace: str, function: str
    ) -> dict[str, Any]: ...


def url_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        {"Message": message}, status=status, headers={"x-amzn-ErrorType": code}
    )


def _status_of(exc: LambdaError) -> web.Response:
    if exc.code == "TooManyRequestsException":
        return url_error(429, exc.code, "Rate Exceeded.")
    if exc.code == "RequestTooLargeException":
        return url_error(413, exc.code, "Request must be smaller than 6291456 bytes")
    if exc.code == "InvalidRequestContentException":  # e.g. a body that stalled
        return url_error(400, exc.code, exc.message)
    if exc.code == "ResourceNotFoundException":
        return url_error(404, exc.code, exc.message)
    if exc.status == 403:
        return web.Response(status=403, body=exc.body(), headers=exc.response_headers())
    return url_error(502, exc.code, "Internal Server Error")


class UrlFront:
    def __init__(self, invoker: Invoker, domain: UrlDomain, guard: UrlGuard | None = None):
        self.invoker = invoker
        self.domain = domain
        self.guard = guard

    @web.middleware
    async def by_host(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Requests to `<fn>.<ns>.<domain>` are function URLs, whatever their path."""
        routed = self.domain.route_host(request.host)
        if routed is None:
            return await handler(request)
        namespace, function = routed
        path = request.raw_path.split("?", 1)[0]
        return await self.serve(request, namespace, function, path, by_host=True)

    async def by_path(self, request: web.Request) -> web.StreamResponse:
        routed = route_path(request.raw_path.split("?", 1)[0])
        if routed is None:
            return url_error(404, "ResourceNotFoundException", "No function URL at this path")
        return await self.serve(request, *routed)

    def config(self, namespace: str, function: str) -> FunctionUrlConfig | None:
        entry = self.invoker.catalog.functions.get((namespace, function))
        return entry.latest.spec.function_url if entry is not None else None

    async def serve(
        self,
        request: web.Request,
        namespace: str,
        function: str,
        raw_path: str,
        *,
        by_host: bool = False,
    ) -> web.StreamResponse:
        config = self.config(namespace, function)
        if config is None:
            return url_error(404, "ResourceNotFoundException", "No function URL at this address")
        lowered = {k.lower(): v for k, v in request.headers.items()}
        if config.cors is not None and cors_rules.is_preflight(request.method, lowered):
            return web.Response(status=200, headers=cors_rules.preflight(config.cors, lowered))
        try:
            iam = None
            if config.auth_type == "AWS_IAM" and self.guard is not None:
                iam = await self.guard.url_caller(request, namespace, function)
            body = await body_once(request, SYNC_PAYLOAD_LIMIT)  # what the guard read, if it did
            # The path form is served on the gateway's own host: name the URL's host instead.
            host = (request.host or "").rsplit(":", 1)[0] if by_host else ""
            domain = host or f"{function}.{namespace}.{self.domain.domain}"
            return await self._invoke(
                request, config, namespace, function, raw_path, body, iam, domain
            )
        except LambdaError as exc:
            answer = _status_of(exc)
            if refuse_unread(request, exc).headers.get("Connection") == CLOSE["Connection"]:
                answer.force_close()  # a body refused (or never read) is never read on
            return answer

    async def _invoke(
        self,
        request: web.Request,
        config: FunctionUrlConfig,
        namespace: str,
        function: str,
        raw_path: str,
        body: bytes,
        iam: dict[str, Any] | None,
        domain_name: str,
    ) -> web.StreamResponse:
        resolved = self.invoker.resolve(FunctionRef(namespace, function, config.qualifier))
        call = InvokeRequest(payload=b"", invoked_function_arn=resolved.invoked_arn)
        event = build_event(
            UrlRequest(
                method=request.method,
                raw_path=raw_path,
                raw_query=request.query_string,
                headers=request.headers.items(),
                body=body,
                source_ip=request.remote or "",
                domain_name=domain_name,
                request_id=call.request_id,
                protocol=f"HTTP/{request.version.major}.{request.version.minor}",
                iam=iam,
            )
        )
        call.payload = json.dumps(event).encode()
        origin = request.headers.get("Origin")
        sink = (
            UrlStream(request, config.cors, origin)
            if config.invoke_mode == "RESPONSE_STREAM"
            else None
        )
        outcome = await self.invoker.invoke(resolved, call, sink)
        result = outcome.result
        if sink is not None and sink.response is not None:
            return await sink.finish(failed=bool(result.function_error))
        if result.streamed and not result.function_error:  # a prelude that never ended
            return url_error(502, "InvalidResponse", "Internal Server Error")
        if result.function_error:
            return url_error(502, "Unhandled", "Internal Server Error")
        if len(result.payload) > SYNC_PAYLOAD_LIMIT:
            return url_error(502, "ResponseSizeTooLarge", "Response payload size exceeded")
        try:
            mapped = map_result(result.payload)
        except BadResponse as exc:
            log.warning("function URL of %s/%s: %s", namespace, function, exc)
            return url_error(502, "InvalidResponse", "Internal Server Error")
        return build_response(mapped, config.cors, origin)


def _headers(mapped: UrlResponse, cors: Cors | None, origin: str | None) -> list[tuple[str, str]]:
    headers = [(k, v) for k, v in mapped.headers if k.lower() not in _FRAMING]
    return cors_rules.apply(cors, origin, headers) if cors is not None else headers


def build_response(mapped: UrlResponse, cors: Cors | None, origin: str | None) -> web.Response:
    response = web.Response(status=mapped.status, body=mapped.body)
    for name, value in _headers(mapped, cors, origin):
        if name.lower() == "content-type":
            response.headers["Content-Type"] = value
        else:
            response.headers.add(name, value)
    return response


class UrlStream:
    """A `ResponseStream` for RESPONSE_STREAM URLs: the HTTP prelude (if any) sets status and
    headers, and the body goes to the client as the function streams it."""

    def __init__(self, request: web.Request, cors: Cors | None, origin: str | None) -> None:
        self.request = request
        self.cors = cors
        self.origin = origin
        self.response: web.StreamResponse | None = None
        self._prelude: bytearray | None = None
        self._content_type = "application/octet-stream"

    async def begin(self, content_type: str) -> None:
        self._content_type = content_type
        if content_type.split(";", 1)[0].strip().lower() == HTTP_INTEGRATION:
            self._prelude = bytearray()
        else:
            await self._open(UrlResponse(200, [("Content-Type", content_type)]))

    async def _open(self, head: UrlResponse) -> web.StreamResponse:
        response = web.StreamResponse(status=head.status)
        for name, value in _headers(head, self.cors, self.origin):
            response.headers.add(name, value)
        response.enable_chunked_encoding()
        await response.prepare(self.request)
        self.response = response
        return response

    async def write(self, chunk: bytes) -> None:
        if self.response is not None:
            await self.response.write(chunk)
            return
        if self._prelude is None:
            await self.begin(self._content_type)
            await self.write(chunk)
            return
        self._prelude += chunk
        split = split_prelude(bytes(self._prelude))  # BadResponse: the function's error
        if split is None:
            return
        head, rest = split
        response = await self._open(head)
        if rest:
            await response.write(rest)

    async def finish(self, failed: bool) -> web.StreamResponse:
        """End the body; after a failure mid-stream the connection is dropped, so the client
        sees a broken response rather than a complete one."""
        assert self.response is not None
        if failed:
            if self.request.transport is not None:
                self.request.transport.close()
            return self.response
        await self.response.write_eof()
        return self.response
