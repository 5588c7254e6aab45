"""Kafka: a consumer group, one batch in flight per partition, offsets committed after success.

Records are fetched for all assigned partitions and fed to one worker per partition, so a
partition that retries holds back only itself (it is paused while its worker is busy).
`startingPosition` applies when the group has no committed offset: TRIM_HORIZON reads from the
earliest record, LATEST from the end, AT_TIMESTAMP from the first record at or after the time.
A rebalance stops the workers of revoked partitions; their uncommitted records go to the new
owner (at least once).

Offsets are committed by one task beside the workers: a settled batch records its partition's
next offset and the next batch starts at once, while the committer sends every partition's
latest offset in one request, one request at a time. A crash before a commit re-delivers
those records (at least once, as before); revoked partitions and a stopping poller commit
what is settled first.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from kubelambda.sources.engine import Context, Item, run_partition
from kubelambda.sources.shapes import kafka_event, kafka_record


class Committer:
    """Commits the settled offsets of every partition, coalesced, one request in flight."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.pending: dict[TopicPartition, int] = {}  # the next offset to read, per partition
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one commit request at a time, so none overtakes another

    def settled(self, tp: TopicPartition, next_offset: int) -> None:
        if next_offset > self.pending.get(tp, -1):
            self.pending[tp] = next_offset
        self._wake.set()

    async def flush(self, only: set[TopicPartition] | None = None) -> None:
        async with self._lock:
            chosen = {tp: n for tp, n in self.pending.items() if only is None or tp in only}
            if not chosen:
                return
            with contextlib.suppress(Exception):  # revoked meanwhile: the new owner re-reads
                await self.consumer.commit(
                    {tp: OffsetAndMetadata(n, "") for tp, n in chosen.items()}
                )
            for tp, n in chosen.items():  # kept when cancelled mid-request: the stop commits them
                if self.pending.get(tp) == n:
                    del self.pending[tp]

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()


class KafkaReader:
    def __init__(self, ctx: Context, consumer: AIOKafkaConsumer, bootstrap: list[str]) -> None:
        self.ctx = ctx
        self.consumer = consumer
        self.bootstrap = bootstrap
        self.committer = Committer(consumer)

    def event(self, items: list[Item]) -> dict[str, Any]:
        return kafka_event(self.bootstrap, [i.record for i in items])

    async def settle(self, partition: str, items: list[Item], upto: Item | None) -> None:
        if upto is not None:
            self.committer.settled(upto.handle, upto.record["offset"] + 1)

    def batch_info(self, partition: str, items: list[Item]) -> tuple[str, dict[str, Any]]:
        first, last = items[0].record, items[-1].record
        return "KafkaBatchInfo", {
            "batchSize": len(items),
            "bootstrapServers": ",".join(self.bootstrap),
            "topic": first["topic"],
            "partition": first["partition"],
            "firstOffset": first["offset"],
            "lastOffset": last["offset"],
            "firstTimestamp": first["timestamp"],
            "lastTimestamp": last["timestamp"],
        }

    def item(self, tp: TopicPartition, msg: Any) -> Item:
        shaped = kafka_record(
            msg.topic,
            msg.partition,
            msg.offset,
            msg.timestamp,
            msg.key,
            msg.value,
            list(msg.headers or ()),
            "LOG_APPEND_TIME" if msg.timestamp_type == 1 else "CREATE_TIME",
        )
        return Item.of(str(msg.offset), shaped, msg.timestamp / 1000, handle=tp)


class Partitions(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, ctx: Context, reader: KafkaReader) -> None:
        self.ctx = ctx
        self.reader = reader
        self.feeds: dict[TopicPartition, asyncio.Queue[list[Item]]] = {}
        self.workers: dict[TopicPartition, asyncio.Task[None]] = {}

    async def on_partitions_revoked(self, revoked: Any) -> None:
        for tp in list(revoked):
            task = self.workers.pop(tp, None)
            self.feeds.pop(tp, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.reader.committer.flush(set(revoked))  # what they settled, before handing over

    async def on_partitions_assigned(self, assigned: Any) -> None:
        spec = self.ctx.config.spec
        consumer = self.reader.consumer
        if spec.starting_position == "AT_TIMESTAMP" and spec.starting_position_timestamp:
            millis = int(spec.starting_position_timestamp.timestamp() * 1000)
            fresh = [tp for tp in assigned if await consumer.committed(tp) is None]
            if fresh:
                found = await consumer.offsets_for_times(dict.fromkeys(fresh, millis))
                for tp in fresh:
                    if found.get(tp) is not None:
                        consumer.seek(tp, found[tp].offset)
                    else:
                        await consumer.seek_to_end(tp)

    def feed(self, tp: TopicPartition) -> asyncio.Queue[list[Item]]:
        if tp not in self.feeds:
            self.feeds[tp] = asyncio.Queue()
            name = f"{tp.topic}-{tp.partition}"
            self.workers[tp] = asyncio.create_task(
                run_partition(self.ctx, self.reader, name, self.feeds[tp])
            )
        return self.feeds[tp]

    async def stop(self) -> None:
        await self.on_partitions_revoked(list(self.workers))


async def run(ctx: Context) -> None:
    source = ctx.config.spec.source.kafka
    assert source is not None
    spec = ctx.config.spec
    options: dict[str, Any] = {}
    if ctx.credentials.get("username"):
        options.update(
            security_protocol=ctx.credentials.get("securityProtocol", "SASL_PLAINTEXT"),
            sasl_mechanism=ctx.credentials.get("saslMechanism", "PLAIN"),
            sasl_plain_username=ctx.credentials["username"],
            sasl_plain_password=ctx.credentials.get("password", ""),
        )
    size = ctx.config.limits.size
    consumer = AIOKafkaConsumer(
        bootstrap_servers=source.bootstrap_servers,
        group_id=source.consumer_group_id or ctx.config.uid,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if spec.starting_position == "TRIM_HORIZON" else "latest",
        max_poll_records=max(size, 500),
        max_partition_fetch_bytes=8 * 1024 * 1024,
        session_timeout_ms=6_000,  # the broker's minimum: a dead poller's partitions move soon
        heartbeat_interval_ms=2_000,
        **options,
    )
    try:
        reader = KafkaReader(ctx, consumer, list(source.bootstrap_servers))
        partitions = Partitions(ctx, reader)
        consumer.subscribe([source.topic], listener=partitions)
        await consumer.start()
    except BaseException:
        # A failed bootstrap (no broker, bad credentials) leaves the consumer open: close it,
        # or every restart of this poller leaks one ("Unclosed AIOKafkaConsumer").
        with contextlib.suppress(Exception):
            await consumer.stop()
        raise
    committer = asyncio.create_task(reader.committer.run(), name="kafka commits")
    try:
        while True:
            if committer.done():
                committer.result()
            for tp, task in list(partitions.workers.items()):
                if task.done():
                    task.result()
                feed = partitions.feeds.get(tp)
                if feed is not None:  # hold back a busy partition only
                    if feed.qsize() >= 2:
                        consumer.pause(tp)
                    elif tp in consumer.paused():
                        consumer.resume(tp)
            # With a partition held back, look again soon: its worker may be done meanwhile,
            # and a fetch that waits for the others would leave it idle.
            wait = 20 if consumer.paused() else 500
            fetched = await consumer.getmany(timeout_ms=wait, max_records=max(size, 500))
            for tp, messages in fetched.items():
                if messages:
                    partitions.feed(tp).put_nowait([reader.item(tp, m) for m in messages])
    finally:
        committer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await committer
        await partitions.stop()  # commits what the workers settled
        with contextlib.suppress(Exception):
            await consumer.stop()
