"""The queue interface's contract, checked the same way on SQLite and on a real JetStream."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from kubelambda.gateway.asyncq.event import AsyncEvent
from kubelambda.gateway.asyncq.jetstream import JetStreamQueue
from kubelambda.gateway.asyncq.queue import AsyncQueue, QueueError
from kubelambda.gateway.asyncq.sqlite import SqliteQueue
from tests.component.asyncq.conftest import BACKENDS
from tests.component.asyncq.servers import NatsServer

_streams = itertools.count(1)
Opener = Callable[[], AsyncQueue]


@pytest.fixture(params=BACKENDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path, nats_server: NatsServer) -> Opener:
    """Opens (another instance of) the same queue: a restart of its gateway."""
    if request.param == "sqlite":
        return lambda: SqliteQueue(tmp_path / "q.sqlite3")
    n = next(_streams)
    return lambda: JetStreamQueue([nats_server.url], stream=f"C{n}", prefix=f"c{n}", ack_wait=2.0)


@pytest.fixture
async def queue(opener: Opener) -> AsyncIterator[AsyncQueue]:
    opened = opener()
    await opened.start()
    yield opened
    await opened.close()


def event(n: int = 0) -> AsyncEvent:
    return AsyncEvent("default", "fn", None, b'{"n": %d}' % n, time.time())


async def receive_all(queue: AsyncQueue, count: int, within: float = 10) -> list:
    got: list = []
    deadline = time.monotonic() + within
    while len(got) < count and time.monotonic() < deadline:
        got += await queue.receive(count - len(got), 0.5)
    return got


async def test_enqueue_receive_ack(queue: AsyncQueue) -> None:
    sent = event(1)
    await queue.enqueue(sent)
    [delivery] = await receive_all(queue, 1)
    assert delivery.event == sent
    assert delivery.deliveries == 1
    await queue.ack(delivery)
    assert await queue.receive(10, 0.5) == []


async def test_retry_later_holds_the_event_back_and_records_the_step(queue: AsyncQueue) -> None:
    await queue.enqueue(event(2))
    [first] = await receive_all(queue, 1)
    held = first.event.step(attempts=1)
    started = time.monotonic()
    await queue.retry_later(first, held, 0.6)
    [again] = await receive_all(queue, 1)
    assert time.monotonic() - started >= 0.55
    assert again.event.attempts == 1
    assert again.event.generation == first.event.generation + 1
    assert again.event.not_before >= first.event.received_at
    await queue.ack(again)


async def test_dead_letters_leave_circulation_and_stay_readable(queue: AsyncQueue) -> None:
    sent = event(3)
    await queue.enqueue(sent)
    [delivery] = await receive_all(queue, 1)
    await queue.dead_letter(delivery, "onSuccess destination: 500", b'{"version": "1.0"}')
    assert await queue.receive(10, 0.5) == []
    [kept] = await queue.dead_letters()
    assert kept.event.id == sent.id and kept.event.payload == sent.payload
    assert kept.reason == "onSuccess destination: 500"
    assert kept.record == b'{"version": "1.0"}'


async def test_an_unfinished_lease_is_delivered_again_after_a_restart(opener: Opener) -> None:
    first = opener()
    await first.start()
    sent = [event(i) for i in range(5)]
    for e in sent:
        await first.enqueue(e)
    leased = await receive_all(first, 5)
    assert len(leased) == 5
    await first.ack(leased[0])
    await first.close()  # the other four were never finished
    second = opener()
    await second.start()
    try:
        again = await receive_all(second, 4)
        assert {d.event.id for d in again} == {e.id for e in sent[1:]}
        assert all(d.deliveries == 2 for d in again), "deliveries are counted, so bounded"
        for d in again:
            await second.ack(d)
    finally:
        await second.close()


async def test_many_concurrent_enqueues_are_all_durable(opener: Opener) -> None:
    first = opener()
    await first.start()
    sent = [event(i) for i in range(300)]
    await asyncio.gather(*(first.enqueue(e) for e in sent))
    if isinstance(first, SqliteQueue):
        assert first.commits < 100, "concurrent enqueues share commits (group commit)"
    await first.close()
    second = opener()
    await second.start()
    try:
        got = await receive_all(second, 300)
        assert sorted(d.event.id for d in got) == sorted(e.id for e in sent)
    finally:
        await second.close()


async def test_a_sqlite_queue_has_one_owner(tmp_path: Path) -> None:
    owner = SqliteQueue(tmp_path / "q.sqlite3")
    await owner.start()
    try:
        with pytest.raises(QueueError, match="in use"):
            await SqliteQueue(tmp_path / "q.sqlite3").start()
    finally:
        await owner.close()


async def test_an_unreachable_nats_server_is_a_queue_error() -> None:
    from tests.component.asyncq.servers import free_port

    queue = JetStreamQueue([f"nats://127.0.0.1:{free_port()}"], connect_deadline=1.0)
    started = time.monotonic()
    with pytest.raises(QueueError):
        await queue.start()
    assert time.monotonic() - started < 5
