"""The embedded queue backend: one SQLite file in WAL mode, written with group commits.

Every operation runs on one writer thread that owns the connection. The thread takes whatever
operations are waiting, runs them in one transaction and commits it with `synchronous=FULL`
(the WAL is fsynced at each commit), and only then completes their futures. So an `enqueue`
returns - and the gateway answers 202 - only after the event's batch is on disk, while one fsync
is shared by every event that arrived during the previous one (group commit).

Rows are never deleted before `ack`. A lease is a row with `leased = 1` and `due` moved to the
lease's end; on open, the leases of a previous run (a gateway killed with -9) are released at
once, and a lease that outlives `lease_seconds` is taken again. Dead-lettered rows stay in the
table with state `parked`, their reason and the undelivered invocation record. A lock file keeps
a second gateway from opening the same queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import functools
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubelambda.gateway.asyncq.event import AsyncEvent
from kubelambda.gateway.asyncq.queue import (
    DEFAULT_MAX_DELIVERIES,
    AsyncQueue,
    DeadLetter,
    Delivery,
    QueueError,
)

log = logging.getLogger(__name__)

# Longer than the longest function timeout (900 s), so a live lease is never taken twice.
LEASE_SECONDS = 960.0
# Operations per transaction: bounds the latency one commit adds to the first caller.
MAX_BATCH = 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    function TEXT NOT NULL,
    qualifier TEXT,
    payload BLOB NOT NULL,
    received_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    throttles INTEGER NOT NULL,
    not_before REAL NOT NULL,
    generation INTEGER NOT NULL,
    state TEXT NOT NULL,          -- queued | parked
    due REAL NOT NULL,            -- queued: deliverable from (not_before, or the lease's end)
    leased INTEGER NOT NULL,
    deliveries INTEGER NOT NULL,  -- leases since the last recorded step
    reason TEXT,
    record BLOB,
    parked_at REAL
);
CREATE INDEX IF NOT EXISTS events_due ON events (state, due);
"""
_EVENT_COLUMNS = (
    "id, namespace, function, qualifier, payload, received_at, attempts, throttles, "
    "not_before, generation"
)

Op = Callable[[sqlite3.Connection], Any]


@dataclass
class _Pending:
    op: Op
    future: asyncio.Future[Any]
    wakes: bool  # makes events deliverable: wake the receivers after the commit


def _event(row: tuple[Any, ...]) -> AsyncEvent:
    ident, ns, fn, qualifier, payload, received, attempts, throttles, not_before, gen = row
    return AsyncEvent(
        ns, fn, qualifier, bytes(payload), received, ident, attempts, throttles, not_before, gen
    )


class SqliteQueue(AsyncQueue):
    def __init__(
        self,
        path: Path,
        *,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        lease_seconds: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_deliveries = max_deliveries
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._ops: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.commits = 0  # transactions committed; bench and tests read it

    def describe(self) -> str:
        return f"sqlite:///{self.path}"

    # Lifecycle.

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise QueueError(f"{self.path} is in use by another gateway") from None
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        opened: asyncio.Future[int] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._writer, args=(opened,), name="asyncq-sqlite", daemon=True
        )
        self._thread.start()
        released = await opened
        if released:
            log.info("async queue %s: %d event(s) leased before a restart are due", self, released)

    async def close(self) -> None:
        if self._thread is not None:
            self._ops.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _writer(self, opened: asyncio.Future[int]) -> None:
        assert self._loop is not None
        loop = self._loop
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # fsync the WAL at every commit
            conn.executescript(_SCHEMA)
            released = conn.execute(
                "UPDATE events SET due = not_before, leased = 0 WHERE leased = 1"
            ).rowcount
        except Exception as exc:
            loop.call_soon_threadsafe(_settle_one, opened, None, QueueError(str(exc)))
            return
        loop.call_soon_threadsafe(_settle_one, opened, released, None)
        stopping = False
        while not stopping:
            first = self._ops.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    more = self._ops.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            self._run_batch(conn, batch)
        conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        assert self._loop is not None
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in batch:
                try:
                    results.append((item.future, item.op(conn), None))
                except Exception as exc:  # one bad operation must not fail its batch
                    results.append((item.future, None, QueueError(str(exc))))
            conn.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            error = QueueError(f"commit failed: {exc}")
            results = [(item.future, None, error) for item in batch]
        wakes = any(item.wakes for item in batch)
        self._loop.call_soon_threadsafe(self._settle, results, wakes)

    def _settle(
        self, results: list[tuple[asyncio.Future[Any], Any, BaseException | None]], wakes: bool
    ) -> None:
        for future, value, error in results:
            _settle_one(future, value, error)
        if wakes and self._wake is not None:
            self._wake.set()

    async def _call(self, op: Op, *, wakes: bool = False) -> Any:
        if self._thread is None or self._loop is None:
            raise QueueError("the queue is not open")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._ops.put(_Pending(op, future, wakes))
        return await future

    # Operations.

    async def enqueue(self, event: AsyncEvent) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO events ({_EVENT_COLUMNS}, state, due, leased, deliveries) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, 0, 0)",
                (
                    event.id,
                    event.namespace,
                    event.function,
                    event.qualifier,
                    event.payload,
                    event.received_at,
                    event.attempts,
                    event.throttles,
                    event.not_before,
                    event.generation,
                    event.not_before,
                ),
            )

        await self._call(insert, wakes=True)

    async def receive(self, limit: int, wait: float) -> list[Delivery]:
        assert self._wake is not None
        deadline = time.monotonic() + wait
        while True:
            self._wake.clear()  # before the query, so a commit after it still wakes us
            now = self.clock()

            rows, next_due = await self._call(functools.partial(self._lease, now=now, limit=limit))
            if rows:
                return [Delivery(_event(tuple(r[2:])), r[1], r[0]) for r in rows]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if next_due is not None:
                remaining = min(remaining, max(next_due - self.clock(), 0.001))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)

    def _lease(
        self, conn: sqlite3.Connection, *, now: float, limit: int
    ) -> tuple[list[Any], float | None]:
        """Leases due rows; when there are none, says when the next one is due."""
        rows = conn.execute(
            "UPDATE events SET due = ?, leased = 1, deliveries = deliveries + 1 "
            "WHERE seq IN (SELECT seq FROM events WHERE state = 'queued' AND due <= ? "
            "ORDER BY due LIMIT ?) "
            f"RETURNING seq, deliveries, {_EVENT_COLUMNS}",
            (now + self.lease_seconds, now, limit),
        ).fetchall()
        if rows:
            return rows, None
        due = conn.execute("SELECT MIN(due) FROM events WHERE state = 'queued'").fetchone()[0]
        return rows, due

    async def ack(self, delivery: Delivery) -> None:
        seq = delivery.token
        await self._call(lambda conn: conn.execute("DELETE FROM events WHERE seq = ?", (seq,)))

    async def retry_later(self, delivery: Delivery, event: AsyncEvent, delay: float) -> None:
        event = dataclasses.replace(event, not_before=self.clock() + max(delay, 0.0))
        seq = delivery.token

        def update(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE events SET attempts = ?, throttles = ?, not_before = ?, generation = ?, "
                "due = ?, leased = 0, deliveries = 0 WHERE seq = ?",
                (
                    event.attempts,
                    event.throttles,
                    event.not_before,
                    event.generation,
                    event.not_before,
                    seq,
                ),
            )

        await self._call(update, wakes=True)

    async def dead_letter(self, delivery: Delivery, reason: str, record: bytes | None) -> None:
        seq, now = delivery.token, self.clock()
        await self._call(
            lambda conn: conn.execute(
                "UPDATE events SET state = 'parked', leased = 0, reason = ?, record = ?, "
                "parked_at = ? WHERE seq = ?",
                (reason, record, now, seq),
            )
        )

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = await self._call(
            lambda conn: conn.execute(
                f"SELECT reason, record, parked_at, {_EVENT_COLUMNS} FROM events "
                "WHERE state = 'parked' ORDER BY parked_at LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [
            DeadLetter(_event(tuple(r[3:])), r[0], bytes(r[1]) if r[1] else None, r[2])
            for r in rows
        ]

    async def depth(self) -> int:
        """Events waiting or leased (not dead-lettered)."""
        count: int = await self._call(
            lambda conn: conn.execute(
                "SELECT COUNT(*) FROM events WHERE state = 'queued'"
            ).fetchone()[0]
        )
        return count

    def __str__(self) -> str:
        return self.describe()


def _settle_one(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; the operation happened anyway
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
