"""The async worker: leases events, invokes them through the dispatch core, records the outcome.

Up to `concurrency` events are in flight. Each goes through `Invoker.invoke`, the sync path's
own admission included, so reserved and unreserved concurrency hold for async calls too: an
event that admission throttles is held back and retried with backoff (never dropped) until its
maximum age. Function errors are retried on Lambda's schedule up to maximumRetryAttempts. The
final outcome sends the invocation record to the onSuccess/onFailure destination and, on
failure, the original event to the dead-letter target; if either cannot be delivered the event
goes to the queue's dead-letter store instead of being acked. Events are taken in due order,
but with several in flight and retries, ordering is not guaranteed (as in Lambda).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable

from kubelambda.api.common import LATEST, is_digits
from kubelambda.gateway.asyncq.destinations import Destinations
from kubelambda.gateway.asyncq.policy import (
    Finish,
    Retry,
    after_attempt,
    after_throttle,
    expired,
)
from kubelambda.gateway.asyncq.queue import AsyncQueue, Delivery, QueueError
from kubelambda.gateway.asyncq.record import Response, dead_letter_attributes, invocation_record
from kubelambda.gateway.asyncq.schedule import RetrySchedule
from kubelambda.gateway.asyncq.scope import EventConfig, event_config
from kubelambda.gateway.invoker import Invoker
from kubelambda.gateway.metrics import GatewayMetrics
from kubelambda.runtime.spec import InvokeRequest
from kubelambda.serving.catalog import Resolved
from kubelambda.serving.errors import LambdaError
from kubelambda.serving.names import function_arn

log = logging.getLogger(__name__)

RECEIVE_WAIT = 1.0  # seconds a receive blocks when the queue is empty


class AsyncWorker:
    def __init__(
        self,
        queue: AsyncQueue,
        invoker: Invoker,
        destinations: Destinations,
        *,
        schedule: RetrySchedule | None = None,
        concurrency: int = 16,
        age_cap: float | None = None,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.queue = queue
        self.invoker = invoker
        self.destinations = destinations
        self.schedule = schedule or RetrySchedule()
        self.concurrency = max(concurrency, 1)
        self.age_cap = age_cap
        self.clock = clock
        self.draw = draw
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def metrics(self) -> GatewayMetrics:  # the invoker's, so /metrics shows them together
        return self.invoker.metrics

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def start(self) -> None:
        self._stopping = False
        self._runner = asyncio.create_task(self.run(), name="asyncq-worker")

    async def stop(self, grace: float = 5.0) -> None:
        """Stops leasing; in-flight events get `grace` seconds, then their leases lapse.

        The receive loop is asked to stop rather than cancelled: a pull from JetStream that is
        cancelled mid-wait can swallow the cancellation (nats-py on Python 3.11), so the loop
        checks a flag between bounded receives. Cancellation is only the fallback, and every
        wait here is bounded, so a stop can never hang.
        """
        self._stopping = True
        if self._runner is not None:
            done, _ = await asyncio.wait({self._runner}, timeout=RECEIVE_WAIT + grace)
            if not done:
                self._runner.cancel()
                await asyncio.wait({self._runner}, timeout=1.0)
            self._runner = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)

    async def run(self) -> None:
        while not self._stopping:
            while len(self._tasks) >= self.concurrency and not self._stopping:
                await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
            if self._stopping:
                break
            try:
                batch = await self.queue.receive(self.concurrency - len(self._tasks), RECEIVE_WAIT)
            except QueueError as exc:
                log.warning("async queue %s: receive failed: %s", self.queue.describe(), exc)
                await asyncio.sleep(RECEIVE_WAIT)
                continue
            for delivery in batch:
                task = asyncio.create_task(self._handle(delivery))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _handle(self, delivery: Delivery) -> None:
        try:
            await self.process(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:
            event = delivery.event
            log.exception("async event %s of %s: processing failed", event.id, event.function)
            # Try again soon; if even that fails the lease lapses and the event comes back.
            with contextlib.suppress(Exception):
                delay = self.schedule.after_throttle(1, self.draw())
                await self.queue.retry_later(delivery, event.step(), delay)

    async def process(self, delivery: Delivery) -> None:
        event = delivery.event
        if delivery.deliveries > self.queue.max_deliveries:
            self.metrics.async_dropped.labels(*self._event_labels(delivery)).inc()
            reason = f"delivered {delivery.deliveries} times without an outcome"
            log.warning("async event %s of %s: %s; dead-lettered", event.id, event.function, reason)
            await self.queue.dead_letter(delivery, reason, None)
            return
        try:
            resolved = self.invoker.resolve(event.ref)
        except LambdaError as exc:
            # The function went away after the 202: keep the event readable, don't spin on it.
            self.metrics.async_dropped.labels(*self._event_labels(delivery)).inc()
            log.warning("async event %s: %s; dead-lettered", event.id, exc.message)
            await self.queue.dead_letter(delivery, f"not invocable: {exc.message}", None)
            return
        config = event_config(resolved, self.age_cap)
        now = self.clock()
        if expired(event, config.limits, now):
            await self._finish(delivery, resolved, config, Finish("EventAgeExceeded", event), None)
            return
        self.metrics.async_event_age.labels(*self._labels(resolved)).observe(event.age(now))
        call = InvokeRequest(
            request_id=event.id, payload=event.payload, invoked_function_arn=resolved.invoked_arn
        )
        try:
            outcome = await self.invoker.invoke(resolved, call)
        except LambdaError as exc:
            if exc.code == "TooManyRequestsException":
                held = after_throttle(
                    event, config.limits, self.clock(), self.schedule, self.draw()
                )
                await self._apply(delivery, resolved, config, held, None)
                return
            # The platform failed the attempt (an environment that would not start or died):
            # it counts as an attempt, so a broken function cannot loop for hours.
            response = Response(exc.status, resolved.version.version, "Unhandled", exc.body())
        else:
            result = outcome.result
            executed = result.executed_version or resolved.version.version
            response = Response(200, executed, result.function_error, result.payload)
        failed = response.function_error is not None
        step = after_attempt(event, failed, config.limits, self.clock(), self.schedule)
        await self._apply(delivery, resolved, config, step, response)

    async def _apply(
        self,
        delivery: Delivery,
        resolved: Resolved,
        config: EventConfig,
        step: Retry | Finish,
        response: Response | None,
    ) -> None:
        if isinstance(step, Retry):
            what = "throttled" if response is None else f"attempt {step.event.attempts} failed"
            log.info(
                "async event %s of %s: %s; retrying in %.0f s",
                delivery.event.id,
                resolved.entry.name,
                what,
                step.delay,
            )
            await self.queue.retry_later(delivery, step.event, step.delay)
        else:
            await self._finish(delivery, resolved, config, step, response)

    async def _finish(
        self,
        delivery: Delivery,
        resolved: Resolved,
        config: EventConfig,
        finish: Finish,
        response: Response | None,
    ) -> None:
        event, condition = finish.event, finish.condition
        labels = self._labels(resolved)
        namespace = resolved.entry.namespace
        arn = function_arn(
            self.invoker.region, namespace, resolved.entry.name, event.qualifier or LATEST
        )
        record = invocation_record(
            event=event, function_arn=arn, condition=condition, response=response, now=self.clock()
        )
        body = json.dumps(record).encode()
        problems: list[str] = []
        if condition != "Success":
            self.metrics.async_dropped.labels(*labels).inc()
            log.info(
                "async event %s of %s: %s after %d attempt(s)",
                event.id,
                resolved.entry.name,
                condition,
                event.attempts,
            )
            if config.dead_letter is not None:
                attributes = dead_letter_attributes(event, condition, response)
                error = await self.destinations.deliver(
                    config.dead_letter, namespace, event.payload, attributes
                )
                if error is not None:
                    self.metrics.dead_letter_errors.labels(*labels).inc()
                    problems.append(f"deadLetterConfig: {error}")
        destination = config.destination(condition)
        if destination is not None:
            error = await self.destinations.deliver(destination, namespace, body)
            if error is not None:
                self.metrics.destination_failures.labels(*labels).inc()
                which = "onSuccess" if condition == "Success" else "onFailure"
                problems.append(f"{which} destination: {error}")
        if problems:
            reason = "; ".join(problems)
            log.warning(
                "async event %s of %s: %s; kept in the dead-letter store of %s",
                event.id,
                resolved.entry.name,
                reason,
                self.queue.describe(),
            )
            await self.queue.dead_letter(delivery, reason, body)
        else:
            await self.queue.ack(delivery)

    @staticmethod
    def _labels(resolved: Resolved) -> tuple[str, str, str, str]:
        return (
            resolved.entry.namespace,
            resolved.entry.name,
            resolved.version.version,
            resolved.alias or "",
        )

    @staticmethod
    def _event_labels(delivery: Delivery) -> tuple[str, str, str, str]:
        event = delivery.event
        qualifier = event.qualifier or LATEST
        alias = "" if qualifier == LATEST or is_digits(qualifier) else qualifier
        return (event.namespace, event.function, "" if alias else qualifier, alias)
