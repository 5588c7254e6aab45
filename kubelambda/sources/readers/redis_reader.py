"""Redis Streams: a consumer group, XACK on settle, pending entries recovered after a crash.

The consumer's name is derived from the mapping, so a restarted poller (here or on another
replica) first reads its own pending entries (id 0) and then new ones (`>`); entries another
consumer left pending longer than `CLAIM_IDLE` are taken over with XAUTOCLAIM.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from kubelambda.sources.engine import Context, Item, run_partition
from kubelambda.sources.shapes import records_event, redis_record, stream_batch_info

CLAIM_IDLE_MS = 30_000
BLOCK_MS = 1000


class RedisReader:
    def __init__(self, ctx: Context, client: Any, stream: str, group: str) -> None:
        self.ctx = ctx
        self.client = client
        self.stream = stream
        self.group = group

    def event(self, items: list[Item]) -> dict[str, Any]:
        return records_event([i.record for i in items])

    async def settle(self, partition: str, items: list[Item], upto: Item | None) -> None:
        await self.client.xack(self.stream, self.group, *[i.ident for i in items])

    def batch_info(self, partition: str, items: list[Item]) -> tuple[str, dict[str, Any]]:
        first, last = items[0], items[-1]
        ends = (first.ident, first.arrived), (last.ident, last.arrived)
        info = stream_batch_info("redis", self.ctx.region, self.stream, *ends, len(items))
        return "RedisBatchInfo", info

    def items(self, entries: list[tuple[bytes, dict[bytes, bytes]]], deliveries: int) -> list[Item]:
        out = []
        for raw_id, fields in entries:
            if fields is None:  # deleted while pending
                continue
            entry_id = raw_id.decode()
            shaped = redis_record(self.ctx.region, self.stream, entry_id, fields, deliveries)
            out.append(
                Item.of(entry_id, shaped, shaped.record["redis"]["approximateArrivalTimestamp"])
            )
        return out


def start_id(ctx: Context) -> str:
    spec = ctx.config.spec
    if spec.starting_position == "TRIM_HORIZON":
        return "0"
    if spec.starting_position == "AT_TIMESTAMP" and spec.starting_position_timestamp is not None:
        return f"{int(spec.starting_position_timestamp.timestamp() * 1000)}-0"
    return "$"


async def run(ctx: Context) -> None:
    source = ctx.config.spec.source.redis
    assert source is not None
    kwargs: dict[str, Any] = {}
    if ctx.credentials.get("password"):
        kwargs["password"] = ctx.credentials["password"]
    if ctx.credentials.get("username"):
        kwargs["username"] = ctx.credentials["username"]
    client: Any = aioredis.from_url(source.url, **kwargs)  # RESP2 replies: lists
    group = source.consumer_group or f"kubelambda.{ctx.config.namespace}.{ctx.config.name}"
    consumer = f"kubelambda-{ctx.config.uid[:13]}"
    stream = source.stream
    reader = RedisReader(ctx, client, stream, group)
    feed: asyncio.Queue[list[Item]] = asyncio.Queue(maxsize=2)
    worker = asyncio.create_task(run_partition(ctx, reader, stream, feed))
    try:
        try:
            await client.xgroup_create(stream, group, id=start_id(ctx), mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        count = ctx.config.limits.size
        # Our own pending entries first: what a previous run of this mapping read, unsettled.
        last = "0"
        while True:
            answer = await client.xreadgroup(group, consumer, {stream: last}, count=count)
            entries = answer[0][1] if answer else []
            if not entries:
                break
            await feed.put(reader.items(entries, deliveries=2))
            last = entries[-1][0].decode()
        claimed_at = 0.0
        while True:
            if worker.done():
                worker.result()
            now = ctx.clock()
            if now - claimed_at > CLAIM_IDLE_MS / 1000:
                claimed_at = now
                cursor = "0-0"
                while True:
                    cursor_raw, entries, *_ = await client.xautoclaim(
                        stream, group, consumer, CLAIM_IDLE_MS, cursor, count=count
                    )
                    if entries:
                        await feed.put(reader.items(entries, deliveries=2))
                    cursor = cursor_raw.decode() if isinstance(cursor_raw, bytes) else cursor_raw
                    if cursor == "0-0":
                        break
            answer = await client.xreadgroup(
                group, consumer, {stream: ">"}, count=count, block=BLOCK_MS
            )
            if answer:
                await feed.put(reader.items(answer[0][1], deliveries=1))
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker
        # Bounded: a command cancelled mid-read can leave the pool's disconnect waiting.
        with contextlib.suppress(TimeoutError, Exception):
            async with asyncio.timeout(2.0):
                await client.aclose()
