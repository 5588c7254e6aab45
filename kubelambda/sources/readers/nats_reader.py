"""NATS JetStream: a durable pull consumer, explicit acks, in-progress heartbeats while a batch
is held, nak with a delay for what a stopping poller leaves unsettled.

The consumer is durable (named after the mapping unless `consumer` is set), so a restarted
poller resumes where the last acknowledged message left it; unacknowledged messages come back
after `ack_wait`. With `maximumRetryAttempts` set, deliveries are bounded (`max_deliver`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError

from kubelambda.sources.engine import Context, Item, run_partition
from kubelambda.sources.shapes import nats_record, records_event, stream_batch_info

ACK_WAIT = 10.0  # unacknowledged messages of a dead poller come back after this
NAK_DELAY = 1.0


class NatsReader:
    def __init__(self, ctx: Context, stream: str) -> None:
        self.ctx = ctx
        self.stream = stream
        self.held: dict[int, Any] = {}  # id(item) -> message, until settled

    def event(self, items: list[Item]) -> dict[str, Any]:
        return records_event([i.record for i in items])

    async def settle(self, partition: str, items: list[Item], upto: Item | None) -> None:
        for item in items:
            self.held.pop(id(item), None)
            await item.handle.ack()

    def batch_info(self, partition: str, items: list[Item]) -> tuple[str, dict[str, Any]]:
        first, last = items[0], items[-1]
        ends = (first.ident, first.arrived), (last.ident, last.arrived)
        info = stream_batch_info("nats", self.ctx.region, self.stream, *ends, len(items))
        return "NatsBatchInfo", info

    def items(self, messages: list[Any]) -> list[Item]:
        out = []
        for msg in messages:
            meta = msg.metadata
            arrived = meta.timestamp.timestamp() if meta.timestamp else self.ctx.clock()
            headers = {k: [v] for k, v in (msg.headers or {}).items()}
            shaped = nats_record(
                self.ctx.region,
                self.stream,
                msg.subject,
                meta.sequence.stream,
                msg.data,
                arrived,
                headers,
                meta.num_delivered,
            )
            item = Item.of(str(meta.sequence.stream), shaped, arrived, handle=msg)
            self.held[id(item)] = msg
            out.append(item)
        return out

    async def heartbeat(self) -> None:
        """Tells the server the held messages are being worked on, so none is redelivered."""
        while True:
            await asyncio.sleep(ACK_WAIT / 3)
            for msg in list(self.held.values()):
                with contextlib.suppress(Exception):
                    await msg.in_progress()


def deliver_policy(ctx: Context) -> dict[str, Any]:
    spec = ctx.config.spec
    if spec.starting_position == "TRIM_HORIZON":
        return {"deliver_policy": DeliverPolicy.ALL}
    if spec.starting_position == "AT_TIMESTAMP" and spec.starting_position_timestamp is not None:
        stamp = spec.starting_position_timestamp.isoformat().replace("+00:00", "Z")
        return {"deliver_policy": DeliverPolicy.BY_START_TIME, "opt_start_time": stamp}
    return {"deliver_policy": DeliverPolicy.NEW}


async def _quiet(_exc: Exception) -> None:
    return None


async def run(ctx: Context) -> None:
    source = ctx.config.spec.source.nats
    assert source is not None
    options: dict[str, Any] = {
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        # The poller reports a broker it cannot reach (status and one warning per restart);
        # nats-py's default callback would log a traceback for every attempt.
        "error_cb": _quiet,
    }
    for key in ("user", "password", "token"):
        if ctx.credentials.get(key):
            options[key] = ctx.credentials[key]
    nc = await nats.connect(source.url, **options)
    reader = NatsReader(ctx, source.stream)
    feed: asyncio.Queue[list[Item]] = asyncio.Queue(maxsize=2)
    worker = asyncio.create_task(run_partition(ctx, reader, source.stream, feed))
    beat = asyncio.create_task(reader.heartbeat())
    try:
        js = nc.jetstream()
        durable = source.consumer or f"kubelambda-{ctx.config.namespace}-{ctx.config.name}"
        policy = ctx.config.policy
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT,
            max_deliver=policy.max_retries + 2 if policy.bounded else -1,
            max_ack_pending=max(ctx.config.limits.size * 4, 1000),
            filter_subject=source.subject,
            **deliver_policy(ctx),
        )
        sub = await js.pull_subscribe(
            source.subject or "", durable=durable, stream=source.stream, config=config
        )
        size = ctx.config.limits.size
        while True:
            if worker.done():
                worker.result()
            try:
                messages = await sub.fetch(size, timeout=1.0)
            except (FetchTimeoutError, TimeoutError):
                continue
            await feed.put(reader.items(messages))
    finally:
        beat.cancel()
        worker.cancel()
        for task in (beat, worker):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for msg in list(reader.held.values()):  # hand back what we hold, soon redelivered
            with contextlib.suppress(Exception):
                await msg.nak(delay=NAK_DELAY)
        with contextlib.suppress(Exception):
            await nc.close()
