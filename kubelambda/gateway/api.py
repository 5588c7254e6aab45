"""The gateway's HTTP surface: Lambda's Invoke API, the read-only control calls, metrics, probes.

Handlers are thin: parse the request, call the dispatch core (`Invoker`) or `control`, and shape
the answer exactly as Lambda does. A `LambdaError` raised anywhere becomes Lambda's error
response through one middleware.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kubelambda.gateway import control, logs_api
from kubelambda.gateway.control_api.routes import ControlRoutes
from kubelambda.gateway.invoker import Invoker
from kubelambda.runtime.errors import response_too_large_body
from kubelambda.runtime.limits import ASYNC_PAYLOAD_LIMIT, LOG_TAIL_BYTES, SYNC_PAYLOAD_LIMIT
from kubelambda.runtime.spec import InvokeRequest
from kubelambda.serving.errors import (
    LambdaError,
    bad_json,
    bad_parameter,
    too_large,
)
from kubelambda.serving.names import FunctionRef, parse_function_name

log = logging.getLogger(__name__)

INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
INVOKER: web.AppKey[Invoker] = web.AppKey("invoker", Invoker)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The async queue's intake: stores an Event invocation durably and returns its request id (the
# 202 is answered after it returns); raises LambdaError when the event is refused.
AsyncSubmit = Callable[[FunctionRef, bytes], Awaitable[str]]


@web.middleware
async def lambda_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except LambdaError as exc:
        return web.Response(status=exc.status, body=exc.body(), headers=exc.response_headers())


class GatewayApi:
    def __init__(
        self,
        invoker: Invoker,
        *,
        default_namespace: str = "default",
        ready: Callable[[], bool] = lambda: True,
        submit: AsyncSubmit | None = None,
        control: ControlRoutes | None = None,
    ) -> None:
        self.invoker = invoker
        self.control = control  # None: only the read-only control calls below
        self.default_namespace = default_namespace
        self.ready = ready
        self.submit = submit  # None: the gateway runs without an async queue

    def app(self) -> web.Application:
        app = web.Application(middlewares=[lambda_errors], client_max_size=SYNC_PAYLOAD_LIMIT * 2)
        app[INVOKER] = self.invoker
        fn = "/2015-03-31/functions/{name}"
        app.router.add_post(f"{fn}/invocations", self.invoke)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        logs_api.add_routes(app, self.invoker, self.invoker.logbook, self.default_namespace)
        if self.control is not None:  # the whole control API, reads included
            self.control.add_to(app)
            return app
        app.router.add_get("/2015-03-31/functions/", self.list_functions)
        app.router.add_get("/2015-03-31/functions", self.list_functions)
        app.router.add_get(fn, self.get_function)
        app.router.add_get(f"{fn}/configuration", self.get_configuration)
        app.router.add_get(f"{fn}/versions", self.list_versions)
        app.router.add_get(f"{fn}/aliases", self.list_aliases)
        app.router.add_get(f"{fn}/aliases/{{alias}}", self.get_alias)
        app.router.add_get("/2019-09-30/functions/{name}/concurrency", self.get_concurrency)
        return app

    def _ref(self, request: web.Request) -> FunctionRef:
        return parse_function_name(
            request.match_info["name"], request.query.get("Qualifier"), self.default_namespace
        )

    # Invoke.

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind not in INVOCATION_TYPES:
            raise bad_parameter(
                f"1 validation error detected: Value '{kind}' at 'invocationType' failed to "
                f"satisfy constraint: Member must satisfy enum value set: {list(INVOCATION_TYPES)}"
            )
        ref = self._ref(request)
        length = request.content_length
        if length is not None and length > SYNC_PAYLOAD_LIMIT:
            raise too_large(length, SYNC_PAYLOAD_LIMIT)
        payload = await request.read()
        limit = ASYNC_PAYLOAD_LIMIT if kind == "Event" else SYNC_PAYLOAD_LIMIT
        if len(payload) > limit:
            raise too_large(len(payload), limit)
        payload = check_json(payload)
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
            return web.Response(status=204, headers={"X-Amz-Executed-Version": executed})
        call = InvokeRequest(
            payload=payload,
            client_context=request.headers.get("X-Amz-Client-Context"),
            trace_id=request.headers.get("X-Amzn-Trace-Id"),
            log_tail=request.headers.get("X-Amz-Log-Type") == "Tail",
            invoked_function_arn=resolved.invoked_arn,
        )
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
        if call.log_tail and result.log_tail is not None:
            tail = result.log_tail.encode()[-LOG_TAIL_BYTES:]
            headers["X-Amz-Log-Result"] = base64.b64encode(tail).decode()
        return web.Response(status=200, body=body, headers=headers)

    # Control (read-only).

    def _json(self, body: dict[str, Any]) -> web.Response:
        return web.json_response(body)

    async def list_functions(self, request: web.Request) -> web.Response:
        namespace = request.query.get("Namespace", self.default_namespace)
        return self._json(
            control.list_functions(
                self.invoker.catalog,
                namespace,
                self.invoker.region,
                request.query.get("Marker"),
                request.query.get("MaxItems"),
            )
        )

    async def get_function(self, request: web.Request) -> web.Response:
        ref = self._ref(request)
        return self._json(control.get_function(self.invoker.catalog, ref, self.invoker.region))

    async def get_configuration(self, request: web.Request) -> web.Response:
        ref = self._ref(request)
        body = control.get_function_configuration(self.invoker.catalog, ref, self.invoker.region)
        return self._json(body)

    async def list_versions(self, request: web.Request) -> web.Response:
        ref = self._ref(request)
        q = request.query
        body = control.list_versions(
            self.invoker.catalog, ref, self.invoker.region, q.get("Marker"), q.get("MaxItems")
        )
        return self._json(body)

    async def list_aliases(self, request: web.Request) -> web.Response:
        ref = self._ref(request)
        q = request.query
        body = control.list_aliases(
            self.invoker.catalog, ref, self.invoker.region, q.get("Marker"), q.get("MaxItems")
        )
        return self._json(body)

    async def get_alias(self, request: web.Request) -> web.Response:
        ref = self._ref(request)
        body = control.get_alias(
            self.invoker.catalog, ref, request.match_info["alias"], self.invoker.region
        )
        return self._json(body)

    async def get_concurrency(self, request: web.Request) -> web.Response:
        ref = self._ref(request)
        return self._json(control.get_function_concurrency(self.invoker.catalog, ref))

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
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound: int = runner.addresses[0][1]
    return runner, bound


def check_json(payload: bytes) -> bytes:
    """The payload as the function will see it: empty means `{}`; anything else must be JSON."""
    if not payload.strip():
        return b"{}"
    try:
        json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_json(str(exc)) from None
    return payload
