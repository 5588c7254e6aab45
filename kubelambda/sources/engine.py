"""The poller loops every source shares: queue batches and stream partitions.

Readers only read, acknowledge and shape; the loops here batch (`Batcher`), filter, invoke
through the gateway, read the answer (`interpret`) and decide (`StreamBatch`), so the rules
live once. Queues (SQS, RabbitMQ): filtered messages are acknowledged, a batch's successes
are acknowledged and its failures released to the broker's own redelivery. Streams (Kafka,
Redis, NATS): one batch in flight per partition, checkpoints only over settled records,
retries, bisect and record age as Lambda does, given-up records to `onFailure`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from kubelambda.sources.batching import Batcher
from kubelambda.sources.config import PollerConfig
from kubelambda.sources.invoke import GatewayInvoker, InvokeResult
from kubelambda.sources.metrics import SourceMetrics
from kubelambda.sources.responses import Outcome, failure, interpret
from kubelambda.sources.shapes import Shaped, stream_failure_record
from kubelambda.sources.streams import GivenUp, StreamBatch

log = logging.getLogger(__name__)
RETRY_FIRST = 0.1
RETRY_CAP = 2.0


def encode(event: dict[str, Any]) -> bytes:
    """An event as the invoke's payload (compact JSON; orjson: a tenth of json's cost, which
    is most of a record's way through the poller)."""
    return orjson.dumps(event)


@dataclass(eq=False)
class Item:
    """One record read from a source."""

    ident: str  # the itemIdentifier a function reports
    shaped: Shaped  # the record as it goes into the event, and what filters see
    size: int  # bytes it adds to the event
    arrived: float  # epoch seconds it entered the source
    handle: Any = None  # the reader's own (receipt handle, message, offset ...)

    @property
    def record(self) -> dict[str, Any]:
        return self.shaped.record

    @property
    def view(self) -> dict[str, Any]:
        return self.shaped.view

    @classmethod
    def of(cls, ident: str, shaped: Shaped, arrived: float, handle: Any = None) -> Item:
        size = len(encode(shaped.record)) + 1  # and a comma
        return cls(ident, shaped, size, arrived, handle)


Deliver = Callable[[dict[str, Any]], Awaitable[None]]


class StateStore(Protocol):
    """Per-mapping values kept across restarts (a file in dev mode, the Lease in a cluster)."""

    async def load(self) -> dict[str, Any]: ...
    async def save(self, values: dict[str, Any]) -> None: ...


@dataclass
class Context:
    """What a poller runs with; one per mapping."""

    config: PollerConfig
    invoker: GatewayInvoker
    metrics: SourceMetrics
    region: str = "us-east-1"
    on_result: Callable[[str], None] = lambda _result: None
    deliver_failure: Deliver | None = None  # onFailure, for streams
    clock: Callable[[], float] = time.time
    credentials: dict[str, str] = field(default_factory=dict)  # never logged
    state: StateStore | None = None  # small values that must outlive the poller (schedules)
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        c = self.config
        self.labels = {
            "namespace": c.namespace,
            "mapping": c.name,
            "function": c.function,
            "source": c.kind,
        }

    @property
    def function_arn(self) -> str:
        c = self.config
        arn = f"arn:aws:lambda:{self.region}:000000000000:function:{c.namespace}.{c.function}"
        return f"{arn}:{c.qualifier}" if c.qualifier else arn

    def split(self, items: Sequence[Item]) -> tuple[list[Item], list[Item]]:
        """(kept, filtered) by the mapping's filters, counting both."""
        self.metrics.polled.labels(**self.labels).inc(len(items))
        filters = self.config.filters
        if not filters.patterns:
            return list(items), []
        kept = [i for i in items if filters.keeps(i.view)]
        dropped = [i for i in items if not filters.keeps(i.view)] if len(kept) < len(items) else []
        if dropped:
            self.metrics.filtered.labels(**self.labels).inc(len(dropped))
        return kept, dropped

    async def invoke(
        self, event: dict[str, Any], items: Sequence[Item]
    ) -> tuple[Outcome, InvokeResult]:
        payload = encode(event)
        result = await self.invoker.invoke(self.config.invoke_name, self.config.qualifier, payload)
        if result.status >= 300:
            outcome = failure(f"invoke failed: {result.describe()}")
        else:
            outcome = interpret(
                result.function_error,
                result.payload,
                self.config.report_item_failures,
                [i.ident for i in items],
            )
        self.metrics.batches.labels(**self.labels, outcome=outcome.kind).inc()
        if outcome.kind == "failure":
            self.metrics.failed.labels(**self.labels).inc(len(items))
            self.on_result(f"PROBLEM: Function call failed: {outcome.reason}")
        elif outcome.kind == "partial":
            self.metrics.failed.labels(**self.labels).inc(len(outcome.failed))
            self.metrics.delivered.labels(**self.labels).inc(len(items) - len(outcome.failed))
            self.on_result("OK")
        else:
            self.metrics.delivered.labels(**self.labels).inc(len(items))
            self.on_result("OK")
        return outcome, result


# --- queues -----------------------------------------------------------------------------------


class QueueReader(Protocol):
    async def receive(self, max_items: int, wait: float) -> list[Item]: ...
    async def ack(self, items: list[Item]) -> None: ...
    async def release(self, items: list[Item]) -> None: ...
    def event(self, items: list[Item]) -> dict[str, Any]: ...


LONG_POLL = 20.0


async def run_queue(ctx: Context, reader: QueueReader) -> None:
    """One queue worker: receive, filter, batch, invoke, acknowledge; until cancelled."""
    batcher: Batcher[Item] = Batcher(ctx.config.limits)
    while True:
        deadline = batcher.deadline()
        wait = LONG_POLL if deadline is None else max(0.0, deadline - ctx.clock())
        room = ctx.config.limits.size - len(batcher)
        items = await reader.receive(room, wait)
        kept, dropped = ctx.split(items)
        if dropped:
            await reader.ack(dropped)
        ready: list[list[Item]] = []
        now = ctx.clock()
        for item in kept:
            ready += batcher.add(item, item.size, now)
        if batcher.due(ctx.clock()):
            ready.append(batcher.flush())
        for batch in ready:
            if batch:
                await _queue_batch(ctx, reader, batch)


async def _queue_batch(ctx: Context, reader: QueueReader, batch: list[Item]) -> None:
    outcome, _ = await ctx.invoke(reader.event(batch), batch)
    if outcome.kind == "success":
        await reader.ack(batch)
        return
    failed = set(outcome.failed) if outcome.kind == "partial" else {i.ident for i in batch}
    done = [i for i in batch if i.ident not in failed]
    if done:
        await reader.ack(done)
    await reader.release([i for i in batch if i.ident in failed])


# --- streams ----------------------------------------------------------------------------------


class StreamReader(Protocol):
    def event(self, items: list[Item]) -> dict[str, Any]: ...

    async def settle(self, partition: str, items: list[Item], upto: Item | None) -> None:
        """`items` are newly settled (ack them); everything up to `upto` is settled (commit)."""

    def batch_info(self, partition: str, items: list[Item]) -> tuple[str, dict[str, Any]]:
        """The onFailure record's `<Source>BatchInfo` key and value."""
        ...


@dataclass
class _Open:
    """The records of a partition's current batch, in stream order, filtered ones included."""

    order: list[Item] = field(default_factory=list)
    skipped: set[int] = field(default_factory=set)  # ids of filtered items


async def run_partition(
    ctx: Context, reader: StreamReader, partition: str, feed: asyncio.Queue[list[Item]]
) -> None:
    """One partition: batches from `feed` in order, one in flight; until cancelled."""
    batcher: Batcher[Item] = Batcher(ctx.config.limits)
    current = _Open()
    while True:
        deadline = batcher.deadline()
        timeout = None if deadline is None else max(0.0, deadline - ctx.clock())
        try:
            items = await asyncio.wait_for(feed.get(), timeout)
        except TimeoutError:
            items = []
        _, dropped = ctx.split(items)
        skipped = {id(i) for i in dropped}
        ready: list[tuple[list[Item], _Open]] = []
        for item in items:
            if id(item) in skipped:
                if not len(batcher):  # nothing open before it: settle it now
                    await reader.settle(partition, [item], item)
                    continue
                current.skipped.add(id(item))
            current.order.append(item)
            if id(item) in skipped:
                continue
            for full in batcher.add(item, item.size, ctx.clock()):
                done, current = _cut(current, full)
                ready.append((full, done))
        if batcher.due(ctx.clock()):
            ready.append((batcher.flush(), current))
            current = _Open()
        for batch, opened in ready:
            if batch:
                await _stream_batch(ctx, reader, partition, batch, opened)


def _cut(current: _Open, batch: list[Item]) -> tuple[_Open, _Open]:
    """Splits the open records after the batch's last member: (the batch's, the rest)."""
    members = {id(i) for i in batch}
    last = max(n for n, i in enumerate(current.order) if id(i) in members)
    head, tail = current.order[: last + 1], current.order[last + 1 :]
    head_ids = {id(i) for i in head}
    return (
        _Open(head, {s for s in current.skipped if s in head_ids}),
        _Open(tail, {s for s in current.skipped if s not in head_ids}),
    )


async def _stream_batch(
    ctx: Context, reader: StreamReader, partition: str, batch: list[Item], opened: _Open
) -> None:
    plan: StreamBatch[Item] = StreamBatch(
        batch, ctx.config.policy, identify=lambda i: i.ident, arrived=lambda i: i.arrived
    )
    acked: set[int] = set()
    retries = 0
    last: InvokeResult | None = None
    while True:
        records = plan.next(ctx.clock())
        await _deliver_given_up(ctx, reader, partition, plan.given_up, last)
        await _settle(reader, partition, plan, opened.order or batch, opened.skipped, acked)
        if not records:
            return
        age = max(0.0, ctx.clock() - records[-1].arrived)
        ctx.metrics.iterator_age.labels(**ctx.labels).set(age)
        outcome, last = await ctx.invoke(reader.event(records), records)
        plan.settle(outcome)
        if outcome.kind != "success" and not plan.finished:
            retries += 1
            await asyncio.sleep(min(RETRY_FIRST * 2 ** (retries - 1), RETRY_CAP))


async def _settle(
    reader: StreamReader,
    partition: str,
    plan: StreamBatch[Item],
    order: list[Item],
    skipped: set[int],
    acked: set[int],
) -> None:
    settled = {id(i) for i in plan.settled()} | skipped
    fresh = [i for i in order if id(i) in settled and id(i) not in acked]
    if not fresh:
        return
    upto: Item | None = None
    for item in order:
        if id(item) not in settled:
            break
        upto = item
    acked.update(id(i) for i in fresh)
    await reader.settle(partition, fresh, upto)


async def _deliver_given_up(
    ctx: Context,
    reader: StreamReader,
    partition: str,
    given_up: list[GivenUp[Item]],
    last: InvokeResult | None,
) -> None:
    while given_up:
        gave = given_up.pop(0)
        ctx.metrics.given_up.labels(**ctx.labels, condition=gave.condition).inc(len(gave.records))
        log.warning(
            "%s: gave up %d record(s) of %s: %s (%s)",
            ctx.config.key,
            len(gave.records),
            partition,
            gave.condition,
            gave.reason,
        )
        if ctx.deliver_failure is None:
            continue
        key, info = reader.batch_info(partition, gave.records)
        record = stream_failure_record(
            function_arn=ctx.function_arn,
            condition=gave.condition,
            attempts=gave.attempts,
            info_key=key,
            info=info,
            status=last.status if last is not None else None,
            function_error=last.function_error if last is not None else None,
            executed_version=last.executed_version if last is not None else None,
            now=ctx.clock(),
        )
        delay = RETRY_FIRST
        while True:
            try:
                await ctx.deliver_failure(record)
                break
            except Exception as exc:  # a destination down: keep the position, retry
                ctx.on_result(f"PROBLEM: onFailure destination failed: {type(exc).__name__}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
