"""Small clients the async tests share: Event invokes over HTTP, bursts, dead-letter readers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from kubelambda.gateway.asyncq.event import AsyncEvent

EVENT = {"X-Amz-Invocation-Type": "Event"}


def post(
    url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def send_event(url: str, payload: Any) -> str:
    """An Event invoke that must be accepted; returns its request id."""
    status, headers, body = post(url, json.dumps(payload).encode(), EVENT)
    assert status == 202, (status, body)
    assert body == b""
    assert "X-Amz-Executed-Version" not in headers
    request_id: str = headers["x-amzn-RequestId"]
    return request_id


async def _burst(url: str, payloads: list[Any], parallel: int) -> list[tuple[int, str | None]]:
    limit = asyncio.Semaphore(parallel)

    async def one(session: aiohttp.ClientSession, payload: Any) -> tuple[int, str | None]:
        async with limit:
            try:
                async with session.post(url, data=json.dumps(payload), headers=EVENT) as r:
                    await r.read()
                    return r.status, r.headers.get("x-amzn-RequestId")
            except (TimeoutError, aiohttp.ClientError):
                return 0, None  # the gateway went away mid-request: not accepted

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return await asyncio.gather(*(one(session, p) for p in payloads))


def burst(url: str, payloads: list[Any], parallel: int = 32) -> list[tuple[int, str | None]]:
    """Sends Event invokes concurrently; returns (status, request id) for each."""
    return asyncio.run(_burst(url, payloads, parallel))


def sqlite_dead_letters(state: Path) -> list[tuple[str, str, str, bytes | None]]:
    """(function, id, reason, record) of the dead-lettered rows in a dev gateway's SQLite queue."""
    path = state / "async" / "events.sqlite3"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT function, id, reason, record FROM events WHERE state = 'parked'"
        ).fetchall()
    finally:
        conn.close()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def sqlite_queued(state: Path) -> int:
    path = state / "async" / "events.sqlite3"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        count: int = conn.execute("SELECT COUNT(*) FROM events WHERE state = 'queued'").fetchone()[
            0
        ]
    finally:
        conn.close()
    return count


async def _nats_dead_letters(url: str, stream: str) -> list[tuple[str, str, str, bytes | None]]:
    import nats
    import nats.js.errors

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(f"{stream}_DEAD")
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if not info.state.messages:
                break
            try:
                msg = await js.get_msg(f"{stream}_DEAD", seq)
            except nats.js.errors.NotFoundError:
                continue
            headers = msg.headers or {}
            body = json.loads(msg.data or b"{}")
            record = json.dumps(body["record"]).encode() if body.get("record") else None
            event = AsyncEvent.from_header(headers["Kl-Event"], b"")
            found.append((event.function, event.id, headers["Kl-Dead-Reason"], record))
        return found
    finally:
        await nc.close()


def nats_dead_letters(url: str, stream: str) -> list[tuple[str, str, str, bytes | None]]:
    return asyncio.run(_nats_dead_letters(url, stream))


async def _nats_pending(url: str, stream: str) -> int:
    import nats

    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return int(info.state.messages)
    finally:
        await nc.close()


def nats_pending(url: str, stream: str) -> int:
    """Messages still in a work-queue stream (not yet acked)."""
    return asyncio.run(_nats_pending(url, stream))
