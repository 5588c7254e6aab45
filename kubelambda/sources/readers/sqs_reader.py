"""SQS (any SQS-compatible endpoint): long polling, visibility extended while a message is
held, delete on success, and the queue's own redrive for failures.

boto3 runs in a thread pool of this poller's own. `scalingConfig.maximumConcurrency` workers
poll at once (default five, as Lambda starts with). SQS hands out at most ten messages a
call, so while messages flow (the last receive came back full) a worker fills its batch with
several receives at once (one per ten messages it has room for); an idle queue gets one long
poll per worker, so a trickle is not spread over many batches. It deletes a batch's messages
with concurrent DeleteMessageBatch calls: a batch of 100 costs two round trips, not twenty.
A failed message is simply no longer extended: it reappears after the queue's visibility
timeout, and the queue's redrive policy moves it to its dead-letter queue after
maxReceiveCount, as with Lambda.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from kubelambda.sources.engine import Context, Item, run_queue
from kubelambda.sources.shapes import records_event, sqs_queue_arn, sqs_record

DEFAULT_WORKERS = 5
MAX_WAIT = 2  # seconds of long poll per receive; short enough to stop promptly
PER_CALL = 10  # SQS's most messages per ReceiveMessage and entries per DeleteMessageBatch
CALLS_PER_WORKER = 10  # receives (or deletes) one worker has in flight at most


class SqsReader:
    def __init__(self, ctx: Context, client: Any, queue_url: str, pool: ThreadPoolExecutor) -> None:
        self.ctx = ctx
        self.client = client
        self.queue_url = queue_url
        self.pool = pool
        self.arn = sqs_queue_arn(queue_url, ctx.region)
        self.visibility = 30
        self.held: dict[str, tuple[str, float]] = {}  # messageId -> (receipt, extended at)
        self.flowing = False  # the last receive came back full: there is a backlog

    async def call(self, method: str, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.pool, partial(getattr(self.client, method), QueueUrl=self.queue_url, **kwargs)
        )

    async def prepare(self) -> None:
        answer = await self.call("get_queue_attributes", AttributeNames=["VisibilityTimeout"])
        self.visibility = int(answer.get("Attributes", {}).get("VisibilityTimeout", 30))

    async def receive(self, max_items: int, wait: float) -> list[Item]:
        calls = max(1, min(CALLS_PER_WORKER, -(-max_items // PER_CALL))) if self.flowing else 1
        wanted = [min(PER_CALL, max_items - n * PER_CALL) for n in range(calls)]
        answers = await asyncio.gather(
            *(
                self.call(
                    "receive_message",
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
        chunks = [items[at : at + PER_CALL] for at in range(0, len(items), PER_CALL)]
        for first in range(0, len(chunks), CALLS_PER_WORKER):
            await asyncio.gather(
                *(self._delete(c) for c in chunks[first : first + CALLS_PER_WORKER])
            )

    async def _delete(self, chunk: list[Item]) -> None:
        entries = [{"Id": str(n), "ReceiptHandle": i.handle} for n, i in enumerate(chunk)]
        await self.call("delete_message_batch", Entries=entries)
        for item in chunk:
            self.held.pop(item.ident, None)

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
                    await self.call("change_message_visibility_batch", Entries=entries)
                for mid, receipt in chunk:
                    if mid in self.held:
                        self.held[mid] = (receipt, now)


def client_for(ctx: Context) -> Any:
    import boto3
    from botocore.config import Config

    source = ctx.config.spec.source.sqs
    assert source is not None
    creds = ctx.credentials
    return boto3.session.Session().client(
        "sqs",
        endpoint_url=source.endpoint or None,
        region_name=source.region or ctx.region,
        aws_access_key_id=creds.get("accessKeyId"),
        aws_secret_access_key=creds.get("secretAccessKey"),
        aws_session_token=creds.get("sessionToken"),
        config=Config(retries={"mode": "standard"}, max_pool_connections=64),
    )


async def run(ctx: Context) -> None:
    source = ctx.config.spec.source.sqs
    assert source is not None
    scaling = ctx.config.spec.scaling_config
    workers = scaling.maximum_concurrency if scaling is not None else DEFAULT_WORKERS
    # Enough threads for every worker's receives, and the visibility extender's calls.
    pool = ThreadPoolExecutor(
        max_workers=min(64, workers * CALLS_PER_WORKER) + 2, thread_name_prefix="sqs"
    )
    reader = SqsReader(ctx, client_for(ctx), source.queue_url, pool)
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
        pool.shutdown(wait=False, cancel_futures=True)
