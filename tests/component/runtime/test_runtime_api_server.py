"""The Runtime API's status codes and bodies, driven by a real HTTP client as a runtime would."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from kubelambda.runtime.errors import MAX_RESPONSE_BYTES
from kubelambda.runtime.server import PendingInvocation, RuntimeApi

BASE = "/2018-06-01/runtime"


class Harness:
    def __init__(self) -> None:
        self.ready = 0
        self.init_errors: list[tuple[bytes, str | None]] = []
        self.api = RuntimeApi(
            "127.0.0.1",
            0,
            on_ready=self._ready,
            on_init_error=lambda body, kind: self.init_errors.append((body, kind)),
        )

    def _ready(self) -> None:
        self.ready += 1

    def url(self, path: str) -> str:
        return f"http://{self.api.address}{BASE}{path}"


@pytest.fixture
async def harness() -> AsyncIterator[tuple[Harness, aiohttp.ClientSession]]:
    h = Harness()
    await h.api.start()
    async with aiohttp.ClientSession() as session:
        try:
            yield h, session
        finally:
            await h.api.close()


def _post(address: str, path: str, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(address, timeout=10)
    try:
        connection.request("POST", path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _invocation(rid: str = "rid-1") -> PendingInvocation:
    headers = {
        "Lambda-Runtime-Aws-Request-Id": rid,
        "Lambda-Runtime-Deadline-Ms": "1700000000000",
        "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:0:function:f",
        "Lambda-Runtime-Trace-Id": "Root=1-abc",
        "Content-Type": "application/json",
    }
    return PendingInvocation(rid, b'{"k": 1}', headers)


async def test_next_response_and_state_errors(
    harness: tuple[Harness, aiohttp.ClientSession],
) -> None:
    h, session = harness
    invocation = _invocation()
    pending = asyncio.create_task(session.get(h.url("/invocation/next")))
    await asyncio.sleep(0)  # let the long poll start before the event arrives
    h.api.dispatch(invocation)
    response = await asyncio.wait_for(pending, 5)
    assert response.status == 200 and await response.read() == b'{"k": 1}'
    assert response.headers["Lambda-Runtime-Aws-Request-Id"] == "rid-1"
    assert response.headers["Lambda-Runtime-Deadline-Ms"] == "1700000000000"
    assert response.headers["Lambda-Runtime-Trace-Id"] == "Root=1-abc"
    assert response.headers["Lambda-Runtime-Invoked-Function-Arn"].endswith(":function:f")
    assert h.ready == 1

    wrong = await session.post(h.url("/invocation/other/response"), data=b"1")
    assert wrong.status == 400
    assert await wrong.json() == {
        "errorType": "InvalidRequestID",
        "errorMessage": "Invalid request ID",
    }

    ok = await session.post(h.url("/invocation/rid-1/response"), data=b'"done"')
    assert ok.status == 202 and await ok.json() == {"status": "OK"}
    outcome = await invocation.outcome
    assert (outcome.kind, outcome.body) == ("response", b'"done"')

    twice = await session.post(h.url("/invocation/rid-1/response"), data=b'"again"')
    assert twice.status == 403
    body = await twice.json()
    assert body["errorType"] == "InvalidStateTransition"
    assert "RuntimeResponseSentState" in body["errorMessage"]

    late_init = await session.post(h.url("/init/error"), json={"errorType": "X"})
    assert late_init.status == 403


async def test_error_response_and_too_large(
    harness: tuple[Harness, aiohttp.ClientSession],
) -> None:
    h, session = harness
    first = _invocation("rid-a")
    h.api.dispatch(first)  # queued before the runtime polls
    await (await session.get(h.url("/invocation/next"))).read()
    error = await session.post(
        h.url("/invocation/rid-a/error"),
        data=b'{"errorType": "Boom", "errorMessage": "x"}',
        headers={"Lambda-Runtime-Function-Error-Type": "Boom"},
    )
    assert error.status == 202
    outcome = await first.outcome
    assert (outcome.kind, outcome.error_type) == ("error", "Boom")

    second = _invocation("rid-b")
    h.api.dispatch(second)
    await (await session.get(h.url("/invocation/next"))).read()
    # Posted as a runtime does (http.client sends the whole body, then reads the answer).
    status, body = await asyncio.to_thread(
        _post, h.api.address, f"{BASE}/invocation/rid-b/response", b"x" * (7 * 1024 * 1024)
    )
    assert status == 413
    assert json.loads(body) == {
        "errorType": "RequestEntityTooLarge",
        "errorMessage": f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
    }
    outcome = await second.outcome
    assert outcome.kind == "too_large" and outcome.size == 7 * 1024 * 1024

    missing = await session.get(f"http://{h.api.address}/nope")
    assert missing.status == 404


async def test_init_error_during_init(harness: tuple[Harness, aiohttp.ClientSession]) -> None:
    h, session = harness
    response = await session.post(
        h.url("/init/error"),
        data=b'{"errorType": "Runtime.ImportModuleError", "errorMessage": "no"}',
        headers={"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"},
    )
    assert response.status == 202
    assert h.init_errors == [
        (
            b'{"errorType": "Runtime.ImportModuleError", "errorMessage": "no"}',
            "Runtime.ImportModuleError",
        )
    ]
