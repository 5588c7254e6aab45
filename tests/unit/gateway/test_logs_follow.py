"""`GET .../logs?follow=true` over a real aiohttp server: a follower gets the backlog and the
next lines, and a gateway that stops ends its stream rather than waiting for its heartbeat
(aiohttp's shutdown waits for running handlers: it held `kubelambda dev`'s exit 15 s)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from kubelambda.gateway import logs_api
from kubelambda.serving.logbook import LogBook


class _Catalog:
    def entry(self, namespace: str, name: str) -> object:
        return object()


async def test_a_stopping_gateway_ends_each_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs_api, "HEARTBEAT", 3600.0)  # only the shutdown can end the wait
    book = LogBook()
    book.add("default", "f", "$LATEST", "before")
    app = web.Application()
    invoker: Any = SimpleNamespace(catalog=_Catalog())
    logs_api.add_routes(app, invoker, book, "default")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}/kubelambda/v1/functions/f/logs?follow=true"
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            assert json.loads(await response.content.readline())["line"] == "before"
            book.add("default", "f", "$LATEST", "after")
            assert json.loads(await response.content.readline())["line"] == "after"

            await asyncio.wait_for(runner.cleanup(), timeout=30)
            assert await asyncio.wait_for(response.content.read(), timeout=30) == b""
    finally:
        await runner.cleanup()
