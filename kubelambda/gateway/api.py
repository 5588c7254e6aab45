"""The gateway's HTTP surface: Lambda's Invoke API, the read-only control calls, metrics, probes.

Handlers are thin: parse the request, call the dispatch core (`Invoker`) or `control`, and shape
the answer exactly as Lambda does. Every failure raised anywhere — a `LambdaError`, aiohttp's
404/405, anything unexpected — becomes Lambda's JSON error response in one middleware
(`serving.errors.as_lambda_error`); every operation of botocore's Lambda model has a route
(`operations.py`), and bodies are read by the one bounded reader (`http.body_once`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kubelambda.gateway import control, logs_api
from kubelambda.gateway.auth.guard import FUNCTION_REF, GUARD, Guard, may_read
from kubelambda.gateway.control_api.routes import ControlRoutes
from kubelambda.gateway.http import BODIES, CLOSE, BodyBudget, body_once, runner_for
from kubelambda.gateway.invoker import Invoker
from kubelambda.gateway.operations import add_unserved_routes
from kubelambda.gateway.urls.front import UrlFront
from kubelambda.runtime.errors import response_too_large_body
from kubelambda.runtime.invocation import InvalidClientContext, decode_client_context
from kubelambda.runtime.limits import ASYNC_PAYLOAD_LIMIT, LOG_TAIL_BYTES, SYNC_PAYLOAD_LIMIT
from kubelambda.runtime.spec import InvokeRequest
from kubelambda.serving.catalog import Resolved
from kubelambda.serving.errors import (
    LambdaError,
    as_lambda_error,
    bad_json,
    bad_parameter,
    unknown_operation,
)
from kubelambda.serving.names import FunctionRef, cached_function_ref, validation_error
from kubelambda.serving.urls import PATH_PREFIX, UrlDomain

log = logging.getLogger(__name__)

INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
LOG_TYPES = ("None", "Tail")
STREAM_ROUTE = "/2021-11-15/functions/{name}/response-streaming-invocations"
INVOKER: web.AppKey[Invoker] = web.AppKey("invoker", Invoker)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The async queue's intake: stores an Event invocation durably and returns its request id (the
# 202 is answered after it returns); raises LambdaError when the event is refused.
AsyncSubmit = Callable[[FunctionRef, bytes], Awaitable[str]]


@web.middleware
async def lambda_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place a failure becomes Lambda's answer (no plain text, no bare 500)."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # a redirect is an answer, not a failure
        error = _http_error(request, exc)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        error = as_lambda_error(exc)
    answer = web.Response(status=error.status, body=error.body(), headers=error.response_headers())
    if error.headers.get("Connection") == CLOSE["Connection"]:
        answer.force_close()
    # The traceback holds this frame, which holds the error: a cycle that would keep every
    # frame it passed through (and their buffers) alive until the garbage collector runs.
    error.__traceback__ = None
    return answer


def _http_error(request: web.Request, exc: web.HTTPException) -> LambdaError:
    if exc.status in (404, 405):  # no route: no Lambda operation has this path and method
        return unknown_operation(request.method, request.path)
    if exc.status == 413:
        return LambdaError("RequestTooLargeException", exc.text or exc.reason)
    return LambdaError("InvalidRequestContentException", exc.reason)


class GatewayApi:
    def __init__(
        self,
        invoker: Invoker,
        *,
        default_namespace: str = "default",
        ready: Callable[[], bool] = lambda: True,
        submit: AsyncSubmit | None = None,
        urls: UrlFront | None = None,
        guard: Guard | None = None,
        control: ControlRoutes | None = None,
    ) -> None:
        self.invoker = invoker
        self.control = control  # None: only the read-only control calls below
        self.default_namespace = default_namespace
        self.ready = ready
        self.submit = submit  # None: the gateway runs without an async queue
        self.bodies = BodyBudget()
        self.urls = urls or UrlFront(invoker, UrlDomain())
        self.guard = guard  # None: --auth none

    def app(self) -> web.Application:
        # Outermost first: every failure is Lambda's answer; function URL hosts are served
        # whatever their path; then the guard (auth before a handler reads any body).
        middlewares: list[Any] = [lambda_errors, self.urls.by_host]
        if self.guard is not None:
            middlewares.append(self.guard.middleware)
        app = web.Application(middlewares=middlewares, client_max_size=SYNC_PAYLOAD_LIMIT)
        app[INVOKER] = self.invoker
        if self.guard is not None:
            app[GUARD] = self.guard  # the control API's routes ask it in dev mode
        app[BODIES] = self.bodies  # `http.body_once`: the guard and the handlers read through it
        app.router.add_route("*", PATH_PREFIX + "{tail:.*}", self.urls.by_path)
        fn = "/2015-03-31/functions/{name}"
        app.router.add_post(f"{fn}/invocations", self.invoke)
        app.router.add_post(STREAM_ROUTE, self.invoke_stream)
        logs_api.add_routes(app, self.invoker, self.invoker.logbook, self.default_namespace)
        if self.control is not None:  # the control API's operations, reads included
            self.control.add_to(app)
        else:
            app.router.add_get("/2021-10-31/functions/{name}/url", self.get_url_config)
            app.router.add_get("/2015-03-31/functions/", self.list_functions)
            app.router.add_get("/2015-03-31/functions", self.list_functions)
            app.router.add_get(fn, self.get_function)
            app.router.add_get(f"{fn}/configuration", self.get_configuration)
            app.router.add_get(f"{fn}/versions", self.list_versions)
            app.router.add_get(f"{fn}/aliases", self.list_aliases)
            app.router.add_get(f"{fn}/aliases/{{alias}}", self.get_alias)
            app.router.add_get("/2019-09-30/functions/{name}/concurrency", self.get_concurrency)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        add_unserved_routes(app.router)  # every other Lambda operation: a clear Lambda error
        return app

    def function_ref(self, request: web.Request) -> FunctionRef:
        parsed: FunctionRef | None = request.get(FUNCTION_REF)  # the guard's, with auth on
        guard = self.guard
        if (
            parsed is not None
            and guard is not None
            and guard.default_namespace == self.default_namespace
        ):
            return parsed
        # An empty `Qualifier=` is refused, as Lambda refuses it (it never means $LATEST).
        return cached_function_ref(
            request.match_info["name"], request.query.get("Qualifier"), self.default_namespace
        )

    # Invoke.

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        kind = invocation_type(request, INVOCATION_TYPES)
        log_tail, client_context = invoke_headers(request)
        ref = self.function_ref(request)
        limit = ASYNC_PAYLOAD_LIMIT if kind == "Event" else SYNC_PAYLOAD_LIMIT
        payload = check_json(await body_once(request, limit))
        if kind == "Event":
            if self.submit is None:
                raise LambdaError(
                    "InvalidParameterValueException",
                    "InvocationType Event is not served by this gateway: it was started "
                    "without an async queue",
                )
            # As in Lambda, the 202 carries the request id and no X-Amz-Executed-Version.
            event_id = await self.submit(ref, payload)
            return web.Response(status=202, headers={"x-amzn-RequestId": event_id})
        resolved = self.invoker.resolve(ref)
        executed = resolved.version.version
        if kind == "DryRun":
            return dry_run(resolved)
        call = sync_call(request, resolved, payload, log_tail, client_context)
        outcome = await self.invoker.invoke(resolved, call)
        result = outcome.result
        headers = {
            "X-Amz-Executed-Version": result.executed_version or executed,
            "x-amzn-RequestId": call.request_id,
            "Content-Type": "application/json",
        }
        body = result.payload
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        if len(body) > SYNC_PAYLOAD_LIMIT:
            headers["X-Amz-Function-Error"] = "Unhandled"
            body = response_too_large_body(len(body), SYNC_PAYLOAD_LIMIT)
        tail = log_result(result.log_tail) if call.log_tail else None
        if tail is not None:
            headers["X-Amz-Log-Result"] = tail
        return web.Response(status=200, body=body, headers=headers)

    async def invoke_stream(self, request: web.Request) -> web.StreamResponse:
        from kubelambda.gateway import streaming  # it builds on this module's helpers

        return await streaming.invoke_stream(self, request)

    # Control (read-only).

    def _json(self, body: dict[str, Any]) -> web.Response:
        return web.json_response(body)

    async def list_functions(self, request: web.Request) -> web.Response:
        namespace = request.query.get("Namespace", self.default_namespace)
        body = control.list_functions(
            self.invoker.catalog,
            namespace,
            self.invoker.region,
            request.query.get("Marker"),
            request.query.get("MaxItems"),
        )
        if not may_read(request):
            for config in body["Functions"]:
                config.pop("Environment", None)
        return self._json(body)

    async def get_function(self, request: web.Request) -> web.Response:
        ref = self.function_ref(request)
        reserved = self.invoker.reservation(ref.namespace, ref.name)
        body = control.get_function(self.invoker.catalog, ref, self.invoker.region, reserved)
        if not may_read(request):
            body["Configuration"].pop("Environment", None)
        return self._json(body)

    async def get_configuration(self, request: web.Request) -> web.Response:
        ref = self.function_ref(request)
        body = control.get_function_configuration(self.invoker.catalog, ref, self.invoker.region)
        if not may_read(request):
            body.pop("Environment", None)
        return self._json(body)

    async def list_versions(self, request: web.Request) -> web.Response:
        ref = self.function_ref(request)
        q = request.query
        body = control.list_versions(
            self.invoker.catalog, ref, self.invoker.region, q.get("Marker"), q.get("MaxItems")
        )
        return self._json(body)

    async def list_aliases(self, request: web.Request) -> web.Response:
        ref = self.function_ref(request)
        q = request.query
        body = control.list_aliases(
            self.invoker.catalog, ref, self.invoker.region, q.get("Marker"), q.get("MaxItems")
        )
        return self._json(body)

    async def get_alias(self, request: web.Request) -> web.Response:
        ref = self.function_ref(request)
        body = control.get_alias(
            self.invoker.catalog, ref, request.match_info["alias"], self.invoker.region
        )
        return self._json(body)

    async def get_url_config(self, request: web.Request) -> web.Response:
        ref = self.function_ref(request)
        body = control.get_function_url_config(
            self.invoker.catalog, ref, self.invoker.region, self.urls.domain
        )
        return self._json(body)

    async def get_concurrency(self, request: web.Request) -> web.Response:
        ref = self.function_ref(request)
        reserved = self.invoker.reservation(ref.namespace, ref.name)
        return self._json(control.get_function_concurrency(self.invoker.catalog, ref, reserved))

    # Operations.

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.invoker.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        ready = self.ready()
        return web.json_response({"ready": ready}, status=200 if ready else 503)


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Starts serving `app`; returns the runner and the port bound (useful with port 0)."""
    runner = runner_for(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound: int = runner.addresses[0][1]
    return runner, bound


def invocation_type(request: web.Request, allowed: tuple[str, ...]) -> str:
    kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
    if kind not in allowed:
        raise bad_parameter(
            f"1 validation error detected: Value '{kind}' at 'invocationType' failed to "
            f"satisfy constraint: Member must satisfy enum value set: {list(allowed)}"
        )
    return kind


def invoke_headers(request: web.Request) -> tuple[bool, str | None]:
    """X-Amz-Log-Type (whether to return the log tail) and X-Amz-Client-Context (checked,
    None when it holds nothing), refused before any environment is touched."""
    log_type = request.headers.get("X-Amz-Log-Type", "None")
    if log_type not in LOG_TYPES:
        raise validation_error(
            log_type, "logType", f"Member must satisfy enum value set: {list(LOG_TYPES)}"
        )
    raw = request.headers.get("X-Amz-Client-Context")
    try:
        decoded = decode_client_context(raw)
    except InvalidClientContext as exc:
        raise as_lambda_error(exc) from None
    return log_type == "Tail", raw if decoded else None


def dry_run(resolved: Resolved) -> web.Response:
    """A DryRun's answer: the function and its qualifier exist (Lambda checks nothing else)."""
    return web.Response(status=204, headers={"X-Amz-Executed-Version": resolved.version.version})


def sync_call(
    request: web.Request,
    resolved: Resolved,
    payload: bytes,
    log_tail: bool,
    client_context: str | None,
) -> InvokeRequest:
    """The invocation a synchronous Invoke, buffered or streamed, hands the dispatch core."""
    return InvokeRequest(
        payload=payload,
        client_context=client_context,
        trace_id=request.headers.get("X-Amzn-Trace-Id"),
        log_tail=log_tail,
        invoked_function_arn=resolved.invoked_arn,
    )


def log_result(tail: str | None) -> str | None:
    """X-Amz-Log-Result: the last 4 KB of the invocation's log, base64."""
    if tail is None:
        return None
    return base64.b64encode(tail.encode()[-LOG_TAIL_BYTES:]).decode()


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def check_json(payload: bytes) -> bytes:
    """The payload as the function will see it: empty means `{}`; anything else must be strict
    JSON (NaN and Infinity are not JSON, and Lambda refuses them)."""
    if not payload.strip():
        return b"{}"
    try:
        orjson.loads(payload)  # strict JSON, and fast; what it refuses json decides below
        return payload
    except orjson.JSONDecodeError:
        pass
    try:
        json.loads(payload, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_json(str(exc)) from None
    except RecursionError:  # deeper than Python's parser goes: no Python runtime could read it
        raise bad_json("it nests arrays or objects too deeply to be parsed") from None
    return payload
