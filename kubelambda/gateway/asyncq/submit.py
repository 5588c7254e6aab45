"""The Invoke API's Event path: check, resolve, store durably, then answer 202.

Installed as `GatewayApi.async_submit`; the API has already read the payload and checked it
against Lambda's 256 KB async limit and for JSON. Here: the function, version or alias must
exist (ResourceNotFoundException), and the 202 is sent only after `enqueue` returned, i.e.
after the event is durable. Nothing is stored when any check fails. As in
Lambda, the answer carries the request id and no X-Amz-Executed-Version.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from kubelambda.gateway.asyncq.event import AsyncEvent
from kubelambda.gateway.asyncq.queue import AsyncQueue, QueueError
from kubelambda.gateway.invoker import Invoker
from kubelambda.serving.errors import LambdaError
from kubelambda.serving.names import FunctionRef


class EventSubmitter:
    def __init__(
        self, invoker: Invoker, queue: AsyncQueue, clock: Callable[[], float] = time.time
    ) -> None:
        self.invoker = invoker
        self.queue = queue
        self.clock = clock

    async def __call__(
        self, ref: FunctionRef, payload: bytes, request: web.Request
    ) -> web.StreamResponse:
        resolved = self.invoker.resolve(ref)  # ResourceNotFoundException before storing
        event = AsyncEvent.accept(ref, payload, self.clock())
        try:
            await self.queue.enqueue(event)
        except QueueError as exc:
            raise LambdaError(
                "ServiceException", f"The event could not be stored durably: {exc}"
            ) from exc
        self.invoker.metrics.async_received.labels(
            resolved.entry.namespace,
            resolved.entry.name,
            resolved.version.version,
            resolved.alias or "",
        ).inc()
        return web.Response(status=202, headers={"x-amzn-RequestId": event.id})
