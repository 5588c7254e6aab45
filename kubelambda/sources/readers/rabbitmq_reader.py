"""RabbitMQ: a consumer with prefetch, ack on success, nack with requeue on failure.

Failed messages go back to the queue; the queue's own policy decides when they have been
retried enough: a quorum queue with `x-delivery-limit` and a dead-letter exchange moves them
there, as Amazon MQ leaves it to the broker. A poller that dies leaves its unacknowledged
messages to the broker, which redelivers them.

The mapping's credentials (its Secret's username and password) and `virtualHost` go into the
broker URL: aio_pika's own `login`/`virtualhost` options are ignored once a URL is given.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import quote

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from yarl import URL

from kubelambda.sources.engine import Context, Item, run_queue
from kubelambda.sources.shapes import rmq_event, rmq_record

PREFETCH_CAP = 10_000


def broker_url(
    url: str, username: str | None, password: str | None, virtual_host: str | None
) -> URL:
    """The AMQP URL to connect to: the mapping's credentials and virtual host, when given,
    replace the URL's own (an AMQP URL's path is the vhost, percent-encoded, `/` as %2F)."""
    address = URL(url)
    if username:
        address = address.with_user(username).with_password(password or "")
    if virtual_host:
        address = address.with_path("/" + quote(virtual_host, safe=""), encoded=True)
    return address


def properties(msg: AbstractIncomingMessage) -> dict[str, Any]:
    return {
        "contentType": msg.content_type,
        "contentEncoding": msg.content_encoding,
        "headers": dict(msg.headers or {}),
        "deliveryMode": int(msg.delivery_mode) if msg.delivery_mode is not None else None,
        "priority": msg.priority,
        "correlationId": msg.correlation_id,
        "replyTo": msg.reply_to,
        "expiration": str(msg.expiration) if msg.expiration is not None else None,
        "messageId": msg.message_id,
        "timestamp": msg.timestamp,
        "type": msg.type,
        "userId": msg.user_id,
        "appId": msg.app_id,
        "clusterId": msg.cluster_id,
    }


class RabbitReader:
    def __init__(self, ctx: Context, queue: str, vhost: str) -> None:
        self.ctx = ctx
        self.queue = queue
        self.vhost = vhost
        self.inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self.arn = f"arn:aws:mq:{ctx.region}:000000000000:broker:kubelambda:{queue}"

    async def on_message(self, msg: AbstractIncomingMessage) -> None:
        await self.inbox.put(msg)

    def item(self, msg: AbstractIncomingMessage) -> Item:
        tag = msg.delivery_tag or 0
        shaped = rmq_record(msg.body, properties(msg), bool(msg.redelivered), tag)
        ident = msg.message_id or str(tag)
        stamp = msg.timestamp.timestamp() if msg.timestamp else self.ctx.clock()
        return Item.of(ident, shaped, stamp, handle=msg)

    async def receive(self, max_items: int, wait: float) -> list[Item]:
        try:
            first = await asyncio.wait_for(self.inbox.get(), timeout=min(wait, 2.0))
        except TimeoutError:
            return []
        out = [self.item(first)]
        while len(out) < max_items and not self.inbox.empty():
            out.append(self.item(self.inbox.get_nowait()))
        return out

    async def ack(self, items: list[Item]) -> None:
        for item in items:
            await item.handle.ack()

    async def release(self, items: list[Item]) -> None:
        for item in items:
            await item.handle.nack(requeue=True)

    def event(self, items: list[Item]) -> dict[str, Any]:
        return rmq_event(self.queue, self.vhost, self.arn, [i.record for i in items])


async def run(ctx: Context) -> None:
    source = ctx.config.spec.source.rabbitmq
    assert source is not None
    url = broker_url(
        source.url,
        ctx.credentials.get("username"),
        ctx.credentials.get("password"),
        source.virtual_host,
    )
    connection = aio_pika.RobustConnection(url)
    try:
        # Closed on any failure, connect included: a connection dropped unclosed makes
        # aio_pika's finaliser schedule a close that is never awaited (a RuntimeWarning).
        await connection.connect()
        channel = await connection.channel()
        size = ctx.config.limits.size
        await channel.set_qos(prefetch_count=min(PREFETCH_CAP, max(size * 2, 10)))
        queue = await channel.get_queue(source.queue, ensure=True)
        reader = RabbitReader(ctx, source.queue, source.virtual_host or "/")
        await queue.consume(reader.on_message, no_ack=False)
        await run_queue(ctx, reader)
    finally:
        with contextlib.suppress(Exception):
            await connection.close()
