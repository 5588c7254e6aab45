"""The async subsystem of one gateway: its queue, worker, destinations and the Event intake.

The gateway assembly (`kubelambda.gateway.assembly`, in dev and cluster mode alike) builds one
`AsyncService` beside its `Invoker`, hands `service.submit` to the `GatewayApi` it constructs,
and starts the service before it serves traffic. Starting opens the queue, which makes the
events a previous run had leased deliverable again, and starts the worker: a restart resumes
where the last run stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kubelambda.gateway.asyncq.backends import open_queue
from kubelambda.gateway.asyncq.destinations import DEFAULT_NATS_URL, Destinations
from kubelambda.gateway.asyncq.queue import DEFAULT_MAX_DELIVERIES, AsyncQueue
from kubelambda.gateway.asyncq.schedule import LAMBDA_BASE, RetrySchedule
from kubelambda.gateway.asyncq.submit import EventSubmitter
from kubelambda.gateway.asyncq.worker import AsyncWorker
from kubelambda.gateway.invoker import Invoker

if TYPE_CHECKING:
    from nats.aio.client import Client


@dataclass(frozen=True)
class AsyncSettings:
    queue_url: str  # see kubelambda.gateway.asyncq.backends
    concurrency: int = 16  # events in flight per gateway
    retry_base: float = LAMBDA_BASE  # first retry after a function error (Lambda: ~60 s)
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    destination_attempts: int = 3
    destination_backoff: float = 0.5
    age_cap: float | None = None  # caps every maximumEventAgeInSeconds (testing)
    nats_url: str = DEFAULT_NATS_URL  # for NATS destinations when the queue is not NATS
    stop_grace: float = 5.0
    clock: Callable[[], float] = field(default=time.time, compare=False)


class AsyncService:
    def __init__(
        self, invoker: Invoker, settings: AsyncSettings, queue: AsyncQueue | None = None
    ) -> None:
        self.invoker = invoker
        self.settings = settings
        self.queue = queue or open_queue(
            settings.queue_url, max_deliveries=settings.max_deliveries, clock=settings.clock
        )
        self.destinations = Destinations(
            check=invoker.resolve,
            enqueue=self.queue.enqueue,
            clock=settings.clock,
            region=invoker.region,
            attempts=settings.destination_attempts,
            backoff=settings.destination_backoff,
            nats_connection=self._queue_nats(),
            nats_url=settings.nats_url,
        )
        self.worker = AsyncWorker(
            self.queue,
            invoker,
            self.destinations,
            schedule=RetrySchedule.scaled(settings.retry_base),
            concurrency=settings.concurrency,
            age_cap=settings.age_cap,
            clock=settings.clock,
        )
        self.submit = EventSubmitter(invoker, self.queue, settings.clock)

    def _queue_nats(self) -> Callable[[], Client] | None:
        """NATS destinations reuse the queue's connection when the queue is JetStream."""
        try:
            from kubelambda.gateway.asyncq.jetstream import JetStreamQueue
        except ImportError:  # nats-py is an optional extra
            return None
        if isinstance(self.queue, JetStreamQueue):
            queue = self.queue
            return lambda: queue.nc
        return None

    async def start(self) -> None:
        """Opens the queue (raises QueueError) and starts the worker."""
        await self.queue.start()
        self.worker.start()

    async def stop_worker(self) -> None:
        """Stops taking events; in-flight ones get the grace period. 202s still work."""
        await self.worker.stop(self.settings.stop_grace)

    async def close(self) -> None:
        """After the HTTP side has stopped: closes the destinations' clients and the queue."""
        await self.worker.stop(0)
        await self.destinations.close()
        await self.queue.close()
