"""The cluster queue backend: NATS JetStream, shared by every gateway replica.

- Events live in a file-backed **work-queue** stream (`<prefix>.events.<ns>.<fn>`); a message is
  removed when it is acked. `enqueue` returns after the stream's PubAck, i.e. once the server
  has stored the message (on every replica of an R3 stream), so the 202 follows durability.
- Gateways share one durable **pull consumer** with explicit acks. A lease is a delivered,
  unacked message; the lease holder sends in-progress acks while it works, so a message is
  redelivered `ack_wait` seconds after its gateway died, and never while one works on it.
- A recorded step (`retry_later`) publishes the updated event and then acks the old message
  (a crash in between duplicates, never loses). A message that is not due yet is nak'ed with
  the delay left, which JetStream redelivers on time.
- Deliveries are bounded twice: the worker dead-letters past `max_deliveries` (the message's
  delivery count), and the consumer's own `max_deliver` stops a loop the worker cannot see.
- Dead letters go to a second, limits-retention stream (`<prefix>.dead.<ns>.<fn>`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from kubelambda.gateway.asyncq.event import AsyncEvent
from kubelambda.gateway.asyncq.queue import (
    DEFAULT_MAX_DELIVERIES,
    AsyncQueue,
    DeadLetter,
    Delivery,
    QueueError,
)

log = logging.getLogger(__name__)

CONSUMER = "workers"
MSG_ID = "Nats-Msg-Id"
EVENT = "Kl-Event"
REASON = "Kl-Dead-Reason"
DEAD_AT = "Kl-Dead-At"


class JetStreamQueue(AsyncQueue):
    def __init__(
        self,
        servers: list[str],
        *,
        stream: str = "KUBELAMBDA_ASYNC",
        prefix: str = "kubelambda.async",
        replicas: int = 1,
        ack_wait: float = 10.0,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        clock: Callable[[], float] = time.time,
        connect_deadline: float = 15.0,
    ) -> None:
        self.servers = servers
        self.connect_deadline = connect_deadline
        self.stream = stream
        self.dead_stream = f"{stream}_DEAD"
        self.prefix = prefix
        self.replicas = replicas
        self.ack_wait = ack_wait
        self.max_deliveries = max_deliveries
        self.clock = clock
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._leased: dict[int, Msg] = {}  # id(msg) -> msg, kept alive by the heartbeat
        self._heartbeat: asyncio.Task[None] | None = None

    def describe(self) -> str:
        return f"{','.join(self.servers)} (JetStream stream {self.stream})"

    @property
    def nc(self) -> Client:
        """The connection, shared with NATS destinations."""
        if self._nc is None:
            raise QueueError("the queue is not open")
        return self._nc

    # Lifecycle.

    async def start(self) -> None:
        try:
            # Reconnects are unlimited once connected; the first connection has a deadline,
            # so a gateway pointed at no server fails to start instead of hanging.
            self._nc = await asyncio.wait_for(
                nats.connect(
                    servers=self.servers,
                    connect_timeout=min(5.0, self.connect_deadline),
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    error_cb=self._on_error,
                ),
                self.connect_deadline,
            )
            self._js = self._nc.jetstream(timeout=10)
            await self._ensure_streams(self._js)
            self._sub = await self._js.pull_subscribe_bind(durable=CONSUMER, stream=self.stream)
        except (OSError, nats.errors.Error, TimeoutError) as exc:
            await self.close()
            raise QueueError(f"NATS JetStream at {','.join(self.servers)}: {exc!r}") from exc
        self._heartbeat = asyncio.create_task(self._keep_leases())

    async def _on_error(self, exc: Exception) -> None:
        log.warning("NATS %s: %r", ",".join(self.servers), exc)

    async def _ensure_streams(self, js: JetStreamContext) -> None:
        events = StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.events.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=self.replicas,
            duplicate_window=120.0,
        )
        dead = StreamConfig(
            name=self.dead_stream,
            subjects=[f"{self.prefix}.dead.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=self.replicas,
        )
        for config in (events, dead):
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError:  # exists with another config: keep it
                log.info("JetStream stream %s exists; using it as it is", config.name)
        consumer = ConsumerConfig(
            durable_name=CONSUMER,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            # The worker dead-letters first; this stops loops it cannot see (a crash on receipt).
            max_deliver=self.max_deliveries + 3,
            max_ack_pending=-1,
            filter_subject=f"{self.prefix}.events.>",
        )
        try:
            await js.add_consumer(self.stream, consumer)
        except nats.js.errors.BadRequestError as exc:
            log.info("JetStream consumer %s exists (%s); using it as it is", CONSUMER, exc)

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        if self._nc is not None and self._nc.is_connected:
            # Give unfinished leases back now rather than after ack_wait.
            for msg in list(self._leased.values()):
                with contextlib.suppress(Exception):
                    await msg.nak()
            # Not drain(): it waits for the pull subscription's open request to expire.
            with contextlib.suppress(Exception):
                await self._nc.flush(timeout=2)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._leased.clear()
        self._nc = self._js = self._sub = None

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            for msg in list(self._leased.values()):
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    # Operations.

    def _subject(self, kind: str, event: AsyncEvent) -> str:
        return f"{self.prefix}.{kind}.{event.namespace}.{event.function}"

    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise QueueError("the queue is not open")
        return self._js

    async def _publish(self, event: AsyncEvent) -> None:
        headers = {
            EVENT: event.to_header(),
            # Deduplicates a step published twice (a crash between a republish and its ack).
            MSG_ID: f"{event.id}.{event.generation}",
        }
        try:
            await self._jetstream().publish(
                self._subject("events", event), event.payload, headers=headers
            )
        except (nats.errors.Error, TimeoutError) as exc:
            raise QueueError(f"publish to {self.stream} failed: {exc!r}") from exc

    async def enqueue(self, event: AsyncEvent) -> None:
        await self._publish(event)

    async def receive(self, limit: int, wait: float) -> list[Delivery]:
        if self._sub is None:
            raise QueueError("the queue is not open")
        try:
            msgs = await self._sub.fetch(limit, timeout=max(wait, 0.05))
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except nats.errors.Error as exc:  # disconnected: the worker retries after a pause
            raise QueueError(f"fetch from {self.stream} failed: {exc!r}") from exc
        now = self.clock()
        deliveries: list[Delivery] = []
        for msg in msgs:
            try:
                event = AsyncEvent.from_header((msg.headers or {})[EVENT], msg.data)
            except (KeyError, ValueError):
                log.warning("dropping a foreign message on %s: %r", msg.subject, msg.headers)
                await msg.term()
                continue
            if event.not_before > now:
                await msg.nak(delay=event.not_before - now)
                continue
            self._leased[id(msg)] = msg
            deliveries.append(Delivery(event, msg.metadata.num_delivered, msg))
        return deliveries

    def _release(self, delivery: Delivery) -> Msg:
        msg: Msg = delivery.token
        self._leased.pop(id(msg), None)
        return msg

    async def _ack(self, msg: Msg) -> None:
        try:
            await msg.ack_sync(timeout=10)
        except (nats.errors.Error, TimeoutError) as exc:
            # The message will be redelivered after ack_wait: a duplicate, not a loss.
            log.warning("ack of %s failed: %r", msg.headers, exc)

    async def ack(self, delivery: Delivery) -> None:
        await self._ack(self._release(delivery))

    async def retry_later(self, delivery: Delivery, event: AsyncEvent, delay: float) -> None:
        event = dataclasses.replace(event, not_before=self.clock() + max(delay, 0.0))
        await self._publish(event)
        await self._ack(self._release(delivery))

    async def dead_letter(self, delivery: Delivery, reason: str, record: bytes | None) -> None:
        event = delivery.event
        headers = {EVENT: event.to_header(), REASON: reason, DEAD_AT: repr(self.clock())}
        body = json.dumps(
            {
                "payload": event.payload.decode("utf-8", "replace"),
                "record": json.loads(record) if record else None,
            }
        ).encode()
        try:
            await self._jetstream().publish(
                self._subject("dead", event), body, stream=self.dead_stream, headers=headers
            )
        except (nats.errors.Error, TimeoutError) as exc:
            raise QueueError(f"publish to {self.dead_stream} failed: {exc!r}") from exc
        await self._ack(self._release(delivery))

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        js = self._jetstream()
        info = await js.stream_info(self.dead_stream)
        found: list[DeadLetter] = []
        seq = info.state.first_seq
        while seq and seq <= info.state.last_seq and len(found) < limit:
            try:
                raw = await js.get_msg(self.dead_stream, seq)
            except nats.js.errors.NotFoundError:
                seq += 1
                continue
            headers: dict[str, Any] = dict(raw.headers or {})
            body = json.loads(raw.data or b"{}")
            event = AsyncEvent.from_header(headers[EVENT], body["payload"].encode())
            record = json.dumps(body["record"]).encode() if body.get("record") else None
            found.append(DeadLetter(event, headers[REASON], record, float(headers[DEAD_AT])))
            seq += 1
        return found

    def __str__(self) -> str:
        return self.describe()
