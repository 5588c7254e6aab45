"""Dev mode's deferred END and REPORT: one loop turn after the answer, never out of order."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubelambda.runtime.provider import ProcessProvider

from .helpers import make_request, make_spec

APP = """
import sys
def handler(event, context):
    if "grow" in event:
        event["blob"] = bytearray(event["grow"] * 1024 * 1024)
    if "print" in event:
        print(event["print"], end="")  # no newline: the output's last, partial line
        sys.stdout.flush()
    if event.get("raise"):
        raise ValueError("boom")
    return {"ok": True}
"""


@pytest.fixture
async def deferring(tmp_path: Path, logs: list[str]) -> AsyncIterator[ProcessProvider]:
    prov = ProcessProvider(
        tmp_path / "envs", log_sink=logs.append, stop_grace=1.0, defer_closing=True
    )
    try:
        yield prov
    finally:
        await prov.stop_all()


def _event(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def _kinds(logs: list[str]) -> list[str]:
    return [line.split(" ", 1)[0] for line in logs if line.startswith(("START", "END", "REPORT"))]


async def test_end_and_report_follow_the_answer_within_one_loop_turn(
    deferring: ProcessProvider, logs: list[str]
) -> None:
    env = await deferring.start_environment("python3.12")
    await env.specialize(make_spec({"app.py": APP}))
    result = await env.invoke(make_request(_event()))
    assert json.loads(result.payload) == {"ok": True}
    assert _kinds(logs) == ["START"]  # the answer is out before END and REPORT are made
    await asyncio.sleep(0)  # the loop turn in which the gateway has written the answer
    assert _kinds(logs) == ["START", "END", "REPORT"]
    assert logs[-1].startswith(f"REPORT RequestId: {result.request_id}\t")


async def test_back_to_back_calls_keep_each_report_before_the_next_start(
    deferring: ProcessProvider, logs: list[str]
) -> None:
    env = await deferring.start_environment("python3.12")
    await env.specialize(make_spec({"app.py": APP}))
    first = await env.invoke(make_request(_event()))
    second = await env.invoke(make_request(_event(print="no newline")))  # same loop turn
    await asyncio.sleep(0)
    assert _kinds(logs) == ["START", "END", "REPORT"] * 2
    report_lines = [line for line in logs if line.startswith("REPORT")]
    assert [line.split("\t", 1)[0] for line in report_lines] == [
        f"REPORT RequestId: {first.request_id}",
        f"REPORT RequestId: {second.request_id}",
    ]
    # The handler's last line, printed without a newline, still comes before its END.
    end = logs.index(f"END RequestId: {second.request_id}")
    assert "no newline" in logs[end - 1]


async def test_max_memory_used_is_the_peak_read_when_the_report_is_written(
    deferring: ProcessProvider, logs: list[str]
) -> None:
    env = await deferring.start_environment("python3.12")
    await env.specialize(make_spec({"app.py": APP}, memory_size=512))
    result = await env.invoke(make_request(_event(grow=64)))
    await asyncio.sleep(0)
    used = re.search(r"Max Memory Used: (\d+) MB", logs[-1])
    assert used is not None and int(used.group(1)) >= 64
    assert result.max_memory_used_mb == int(used.group(1))  # the result is brought up to date


async def test_a_log_tail_is_written_first_and_an_error_is_closed_too(
    deferring: ProcessProvider, logs: list[str]
) -> None:
    env = await deferring.start_environment("python3.12")
    await env.specialize(make_spec({"app.py": APP}))
    tailed = await env.invoke(make_request(_event(), log_tail=True))
    # Asked for the tail: END and REPORT are in it, so they are written before the answer.
    assert tailed.log_tail is not None and "REPORT RequestId" in tailed.log_tail
    assert _kinds(logs) == ["START", "END", "REPORT"]
    failed = await env.invoke(make_request(_event(**{"raise": True})))
    assert failed.function_error == "Unhandled"
    await env.stop()
    assert _kinds(logs) == ["START", "END", "REPORT"] * 2
    assert logs[-1].startswith(f"REPORT RequestId: {failed.request_id}\t")
