"""The worker's decisions with an in-memory queue, a scripted invoker and recorded deliveries:
the paths the end-to-end tests cannot reach cheaply (crash loops, a function that went away,
platform errors)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from kubelambda.api.function import Destination
from kubelambda.api.resources import parse_resource
from kubelambda.gateway.asyncq.event import AsyncEvent
from kubelambda.gateway.asyncq.queue import AsyncQueue, DeadLetter, Delivery
from kubelambda.gateway.asyncq.schedule import RetrySchedule
from kubelambda.gateway.asyncq.worker import AsyncWorker
from kubelambda.gateway.invoker import Outcome
from kubelambda.gateway.metrics import GatewayMetrics
from kubelambda.runtime.spec import InvokeRequest as Invocation
from kubelambda.runtime.spec import InvokeResult
from kubelambda.serving.catalog import Resolved, build_catalog
from kubelambda.serving.errors import LambdaError, throttled
from kubelambda.serving.names import FunctionRef

NOW = 10_000.0


class MemoryQueue(AsyncQueue):
    def __init__(self) -> None:
        self.acked: list[AsyncEvent] = []
        self.retried: list[tuple[AsyncEvent, float]] = []
        self.dead: list[tuple[AsyncEvent, str, bytes | None]] = []
        self.enqueued: list[AsyncEvent] = []

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    async def enqueue(self, event: AsyncEvent) -> None:
        self.enqueued.append(event)

    async def receive(self, limit: int, wait: float) -> list[Delivery]:
        return []

    async def ack(self, delivery: Delivery) -> None:
        self.acked.append(delivery.event)

    async def retry_later(self, delivery: Delivery, event: AsyncEvent, delay: float) -> None:
        self.retried.append((event, delay))

    async def dead_letter(self, delivery: Delivery, reason: str, record: bytes | None) -> None:
        self.dead.append((delivery.event, reason, record))

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return []

    def describe(self) -> str:
        return "memory"


@dataclass
class ScriptedInvoker:
    """Resolves from a real catalog; each invoke pops the next scripted outcome."""

    script: list[InvokeResult | LambdaError]
    region: str = "us-east-1"
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    calls: list[Invocation] = field(default_factory=list)

    def __post_init__(self) -> None:
        spec = {
            "runtime": "python3.11",
            "handler": "a.b",
            "code": {"inline": {"a.py": "x"}},
            "asyncConfig": {
                "maximumRetryAttempts": 1,
                "destinations": {"onSuccess": {"url": "http://127.0.0.1:1/ok"}},
            },
            "deadLetterConfig": {"nats": "dlq"},
        }
        doc = {"apiVersion": "kubelambda.dev/v1alpha1", "kind": "Function"}
        self.catalog = build_catalog(
            [parse_resource({**doc, "metadata": {"name": "fn"}, "spec": spec})]
        )

    def resolve(self, ref: FunctionRef) -> Resolved:
        return self.catalog.resolve(ref, 0.5)

    async def invoke(self, resolved: Resolved, call: Invocation) -> Outcome:
        self.calls.append(call)
        step = self.script.pop(0)
        if isinstance(step, LambdaError):
            raise step
        return Outcome(resolved, step, "warm")


@dataclass
class RecordingDestinations:
    fail: bool = False
    sent: list[tuple[Destination, bytes, dict[str, str] | None]] = field(default_factory=list)

    async def deliver(
        self,
        destination: Destination,
        namespace: str,
        body: bytes,
        attributes: dict[str, str] | None = None,
    ) -> str | None:
        self.sent.append((destination, body, attributes))
        return "POST answered 500" if self.fail else None


def result(error: str | None = None) -> InvokeResult:
    payload = b'{"errorMessage": "boom"}' if error else b'{"ok": 1}'
    return InvokeResult(
        request_id="r",
        payload=payload,
        function_error=error,
        duration_ms=1,
        billed_duration_ms=1,
        max_memory_used_mb=1,
        executed_version="$LATEST",
    )


def make(
    script: list[InvokeResult | LambdaError], fail_destinations: bool = False
) -> tuple[AsyncWorker, MemoryQueue, ScriptedInvoker, RecordingDestinations]:
    queue = MemoryQueue()
    invoker = ScriptedInvoker(script)
    destinations = RecordingDestinations(fail_destinations)
    worker = AsyncWorker(
        queue,
        invoker,  # type: ignore[arg-type]
        destinations,  # type: ignore[arg-type]
        schedule=RetrySchedule.scaled(1.0),
        clock=lambda: NOW,
        draw=lambda: 0.5,
    )
    return worker, queue, invoker, destinations


def delivery(name: str = "fn", deliveries: int = 1, age: float = 1.0) -> Delivery:
    event = AsyncEvent("default", name, None, b'{"in": 1}', NOW - age, "rid")
    return Delivery(event, deliveries)


def metric(invoker: ScriptedInvoker, name: str) -> float:
    value = invoker.metrics.registry.get_sample_value(
        name, {"namespace": "default", "function": "fn", "version": "$LATEST", "alias": ""}
    )
    return value or 0.0


async def test_a_crash_loop_is_dead_lettered_without_invoking() -> None:
    worker, queue, invoker, _ = make([])
    await worker.process(delivery(deliveries=6))
    [(_event, reason, record)] = queue.dead
    assert reason == "delivered 6 times without an outcome" and record is None
    assert invoker.calls == []
    assert metric(invoker, "kubelambda_async_events_dropped_total") == 1


async def test_an_event_for_a_function_that_went_away_is_kept() -> None:
    worker, queue, _invoker, _ = make([])
    await worker.process(delivery(name="gone"))
    [(event, reason, _)] = queue.dead
    assert event.function == "gone" and reason.startswith("not invocable: Function not found")


async def test_a_throttle_holds_the_event_without_using_an_attempt() -> None:
    worker, queue, _invoker, _ = make(
        [throttled("ReservedFunctionConcurrentInvocationLimitExceeded")]
    )
    await worker.process(delivery())
    [(event, delay)] = queue.retried
    assert (event.attempts, event.throttles) == (0, 1)
    assert delay == pytest.approx(1.0 / 60 * 0.75)
    assert queue.acked == [] and queue.dead == []


async def test_a_platform_error_counts_as_an_attempt() -> None:
    worker, queue, _invoker, _ = make([LambdaError("ServiceException", "environment died")])
    await worker.process(delivery())
    [(event, delay)] = queue.retried
    assert event.attempts == 1 and delay == 1.0


async def test_success_sends_the_record_and_acks() -> None:
    worker, queue, invoker, destinations = make([result()])
    await worker.process(delivery())
    [(destination, body, attributes)] = destinations.sent
    assert destination.url is not None and attributes is None
    record = json.loads(body)
    assert record["requestContext"]["condition"] == "Success"
    assert record["responsePayload"] == {"ok": 1}
    assert invoker.calls[0].request_id == "rid", "every attempt keeps the event's request id"
    assert [e.id for e in queue.acked] == ["rid"]
    assert metric(invoker, "kubelambda_async_event_age_seconds_count") == 1


async def test_an_undeliverable_record_keeps_the_event_with_it() -> None:
    worker, queue, invoker, _ = make([result()], fail_destinations=True)
    await worker.process(delivery())
    [(_, reason, record)] = queue.dead
    assert reason == "onSuccess destination: POST answered 500"
    assert record is not None and json.loads(record)["requestContext"]["condition"] == "Success"
    assert queue.acked == []
    assert metric(invoker, "kubelambda_destination_delivery_failures_total") == 1


async def test_exhausted_retries_go_to_the_dead_letter_target_with_the_original_event() -> None:
    worker, queue, invoker, destinations = make([result("Unhandled")])
    retried = delivery()
    retried = Delivery(retried.event.step(attempts=1), 1)  # the second (last) attempt
    await worker.process(retried)
    [(destination, body, attributes)] = destinations.sent  # no onFailure destination set
    assert destination.nats == "dlq"
    assert body == b'{"in": 1}'
    assert attributes == {"RequestID": "rid", "ErrorCode": "200", "ErrorMessage": "boom"}
    assert [e.id for e in queue.acked] == ["rid"]
    assert metric(invoker, "kubelambda_async_events_dropped_total") == 1


async def test_an_aged_event_is_not_invoked() -> None:
    worker, queue, invoker, destinations = make([])
    await worker.process(delivery(age=21_600))
    assert invoker.calls == []
    [(destination, _body, attributes)] = destinations.sent
    assert destination.nats == "dlq"
    assert attributes is not None
    assert attributes["ErrorMessage"] == "Event dropped: EventAgeExceeded"
    assert len(queue.acked) == 1
