"""SQS (any SQS-compatible endpoint): long polling, visibility extended while a message is
held, delete on success, and the queue's own redrive for failures.

Calls go through `sqs_client.SqsClient` (botocore's serializer, signer and parser over one
aiohttp session; no threads). `scalingConfig.maximumConcurrency` workers poll at once
(default five, as Lambda starts with). SQS hands out at most ten messages a
call, so while messages flow (the last receive came back full) a worker fills its batch with
several receives at once (one per ten messages it has room for); an idle queue gets one long
poll per worker, so a trickle is not spread over many batches. A settled batch's messages are
deleted in the background by concurrent DeleteMessageBatch calls (ten per call, retried), so
the worker receives its next batch at once; a stopping poller waits for them.
A failed message is simply no longer extended: it reappears after the queue's visibility
timeout, and the queue's redrive policy moves it to its dead-letter queue after
maxReceiveCount, as with Lambda.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiohttp

from kubelambda.sources.engine import Context, Item, run_queue
from kubelambda.sources.readers.sqs_client import SqsClient, SqsError
from kubelambda.sources.shapes import records_event, sqs_queue_arn, sqs_record

DEFAULT_WORKERS = 5
MAX_WAIT = 2  # seconds of long poll per receive; short enough to stop promptly
PER_CALL = 10  # SQS's most messages per ReceiveMessage and entries per DeleteMessageBatch
CALLS_PER_WORKER = 10  # receives one worker has in flight at most
DELETES_IN_FLIGHT = 32  # DeleteMessageBatch calls at once, per mapping
DELETE_ATTEMPTS = 4
DRAIN_SECONDS = 10.0  # a stopping poller waits this long for its deletes
log = logging.getLogger(__name__)


class SqsReader:
    def __init__(self, ctx: Context, client: SqsClient, queue_url: str) -> None:
        self.ctx = ctx
        self.client = client
        self.queue_url = queue_url
        self.arn = sqs_queue_arn(queue_url, ctx.region)
        self.visibility = 30
        self.held: dict[str, tuple[str, float]] = {}  # messageId -> (receipt, extended at)
        self.flowing = False  # the last receive came back full: there is a backlog
        self.deleting: set[asyncio.Task[None]] = set()  # deletes in flight, off the hot path
        self._delete_slots = asyncio.Semaphore(DELETES_IN_FLIGHT)

    async def call(self, action: str, **params: Any) -> Any:
        return await self.client.call(action, {"QueueUrl": self.queue_url, **params})

    async def prepare(self) -> None:
        answer = await self.call("GetQueueAttributes", AttributeNames=["VisibilityTimeout"])
        self.visibility = int(answer.get("Attributes", {}).get("VisibilityTimeout", 30))

    async def receive(self, max_items: int, wait: float) -> list[Item]:
        calls = max(1, min(CALLS_PER_WORKER, -(-max_items // PER_CALL))) if self.flowing else 1
        wanted = [min(PER_CALL, max_items - n * PER_CALL) for n in range(calls)]
        answers = await asyncio.gather(
            *(
                self.call(
                    "ReceiveMessage",
                    MaxNumberOfMessages=max(1, count),
                    WaitTimeSeconds=int(min(MAX_WAIT, max(0.0, wait))),
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
                for count in wanted
            ),
            return_exceptions=True,
        )
        # A receive that failed beside others that did not: keep what arrived (those messages
        # are invisible now and would otherwise wait out their timeout), raise if all failed.
        messages = [m for a in answers if isinstance(a, dict) for m in a.get("Messages", [])]
        full = [
            isinstance(a, dict) and len(a.get("Messages", [])) >= n
            for a, n in zip(answers, wanted, strict=True)
        ]
        self.flowing = any(full)
        errors = [a for a in answers if isinstance(a, BaseException)]
        if errors and len(errors) == len(answers):
            raise errors[0]
        now = time.monotonic()
        items = []
        for message in messages:
            shaped = sqs_record(message, self.arn, self.ctx.region)
            sent = int(message.get("Attributes", {}).get("SentTimestamp", "0")) / 1000
            item = Item.of(message["MessageId"], shaped, sent, handle=message["ReceiptHandle"])
            self.held[item.ident] = (message["ReceiptHandle"], now)
            items.append(item)
        return items

    async def ack(self, items: list[Item]) -> None:
        """Deletes in the background: the worker goes on to its next batch at once. The
        messages stay invisible meanwhile (their visibility timeout has just been set or
        extended), and a delete that never lands only makes them come back: at least once."""
        for at in range(0, len(items), PER_CALL):
            chunk = items[at : at + PER_CALL]
            for item in chunk:
                self.held.pop(item.ident, None)  # settled: no longer extended
            task = asyncio.create_task(self._delete(chunk))
            self.deleting.add(task)
            task.add_done_callback(self.deleting.discard)

    async def _delete(self, chunk: list[Item]) -> None:
        entries = [{"Id": str(n), "ReceiptHandle": i.handle} for n, i in enumerate(chunk)]
        delay = 0.1
        async with self._delete_slots:
            for attempt in range(DELETE_ATTEMPTS):
                try:
                    answer = await self.call("DeleteMessageBatch", Entries=entries)
                except (SqsError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                    if attempt == DELETE_ATTEMPTS - 1:
                        log.warning("SQS delete failed (%s): messages will come back", exc)
                        return
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                failed = answer.get("Failed") or []
                if failed:
                    log.warning("SQS delete refused for %d message(s): %s", len(failed), failed[0])
                return

    async def drain(self) -> None:
        """Waits for the deletes in flight (a stopping poller settles what it processed)."""
        while self.deleting:
            await asyncio.gather(*list(self.deleting), return_exceptions=True)

    async def release(self, items: list[Item]) -> None:
        for item in items:  # no longer extended: visible again after the timeout
            self.held.pop(item.ident, None)

    def event(self, items: list[Item]) -> dict[str, Any]:
        return records_event([i.record for i in items])

    async def extend(self) -> None:
        """Keeps held messages invisible while they wait in a batch or run."""
        while True:
            await asyncio.sleep(max(1.0, self.visibility / 3))
            now = time.monotonic()
            due = [
                (mid, receipt)
                for mid, (receipt, at) in list(self.held.items())
                if now - at >= self.visibility / 3
            ]
            for start in range(0, len(due), 10):
                chunk = due[start : start + 10]
                entries = [
                    {"Id": str(n), "ReceiptHandle": r, "VisibilityTimeout": self.visibility}
                    for n, (_, r) in enumerate(chunk)
                ]
                with contextlib.suppress(Exception):
                    await self.call("ChangeMessageVisibilityBatch", Entries=entries)
                for mid, receipt in chunk:
                    if mid in self.held:
                        self.held[mid] = (receipt, now)


def client_for(ctx: Context) -> SqsClient:
    source = ctx.config.spec.source.sqs
    assert source is not None
    return SqsClient(source.endpoint or None, source.region or ctx.region, ctx.credentials)


async def run(ctx: Context) -> None:
    source = ctx.config.spec.source.sqs
    assert source is not None
    scaling = ctx.config.spec.scaling_config
    workers = scaling.maximum_concurrency if scaling is not None else DEFAULT_WORKERS
    client = client_for(ctx)
    reader = SqsReader(ctx, client, source.queue_url)
    tasks: list[asyncio.Task[None]] = []
    try:
        await reader.prepare()
        tasks.append(asyncio.create_task(reader.extend()))
        tasks += [asyncio.create_task(run_queue(ctx, reader)) for _ in range(workers)]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.drain(), DRAIN_SECONDS)
        await client.close()
