"""The Invoke API's Event path: resolve, store durably, then let the API answer 202.

The API has already read the payload and checked it against Lambda's 256 KB async limit and for
JSON. Here: the function, version or alias must exist (ResourceNotFoundException), and the event
id is returned only after `enqueue` returned, i.e. after the event is durable; the API sends the
202 with it. Nothing is stored when any check fails. No HTTP here: errors are `LambdaError`s.
"""

from __future__ import annotations

import time
from collections.abc import Callable

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

    async def __call__(self, ref: FunctionRef, payload: bytes) -> str:
        """Stores the event durably and returns its request id."""
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
        return event.id
