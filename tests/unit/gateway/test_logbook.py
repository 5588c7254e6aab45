"""The gateway's per-function log buffer, and a cluster gateway filling it from log tails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kubelambda.api.resources import parse_resource
from kubelambda.gateway.invoker import Invoker
from kubelambda.gateway.pool import EnvironmentPool
from kubelambda.runtime.spec import InvokeRequest, InvokeResult
from kubelambda.serving.catalog import build_catalog
from kubelambda.serving.logbook import LogBook, parse_since
from kubelambda.serving.names import FunctionRef
from tests.unit.gateway.test_pool import FakeEnv, FakeProvider


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lines_are_kept_per_function_bounded_and_filtered_by_time() -> None:
    clock = Clock()
    book = LogBook(per_function=3, clock=clock)
    for i in range(5):
        clock.now += 1
        book.add("default", "f", "$LATEST", f"line {i}")
    book.add("team", "f", "1", "elsewhere")
    assert [e.line for e in book.lines("default", "f")] == ["line 2", "line 3", "line 4"]
    assert [e.line for e in book.lines("default", "f", since=1004.5)] == ["line 4"]
    assert [(e.version, e.line) for e in book.lines("team", "f")] == [("1", "elsewhere")]
    assert book.lines("default", "nope") == []


async def test_followers_get_new_lines_and_never_block_the_writer() -> None:
    book = LogBook()
    queue = book.follow("default", "f")
    book.add("default", "f", "$LATEST", "one")
    book.add("default", "g", "$LATEST", "not mine")
    assert (await asyncio.wait_for(queue.get(), 1)).line == "one"
    assert queue.empty()
    for i in range(2000):  # a stalled follower loses its oldest lines, the writer goes on
        book.add("default", "f", "$LATEST", str(i))
    assert queue.full() and (await queue.get()).line == "1000"
    book.unfollow("default", "f", queue)
    book.add("default", "f", "$LATEST", "after")
    assert (await queue.get()).line == "1001"  # nothing new was queued after unfollow
    assert all(item.line != "after" for item in [queue.get_nowait() for _ in range(queue.qsize())])


def test_a_tail_cut_inside_its_first_line_drops_that_line() -> None:
    book = LogBook()
    book.add_tail("default", "f", "2", "ial line\nsaid hi\nEND RequestId: r\n")
    assert [e.line for e in book.lines("default", "f")] == ["said hi", "END RequestId: r"]
    book.add_tail("default", "g", "2", "START RequestId: r Version: 2\nEND RequestId: r\n")
    assert [e.line for e in book.lines("default", "g")] == [
        "START RequestId: r Version: 2",
        "END RequestId: r",
    ]


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("45", 45)]
)
def test_since_durations(text: str, seconds: float) -> None:
    assert parse_since(text) == seconds


def test_since_refuses_what_is_not_a_duration() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_since("soon")


class TailEnv(FakeEnv):
    requests: list[InvokeRequest]

    async def invoke(self, request: InvokeRequest, stream: object = None) -> InvokeResult:
        self.requests = [*getattr(self, "requests", []), request]
        tail = f"START RequestId: {request.request_id} Version: $LATEST\nsaid\n"
        return InvokeResult(
            request_id=request.request_id,
            payload=b"1",
            duration_ms=1.0,
            billed_duration_ms=1,
            max_memory_used_mb=1,
            log_tail=tail if request.log_tail else None,
            executed_version="$LATEST",
        )


class TailProvider(FakeProvider):
    async def start_environment(self, runtime: str) -> Any:
        env = TailEnv(runtime)
        self.started.append(env)
        return env


async def test_a_cluster_gateway_buffers_each_invocations_tail() -> None:
    def call(request_id: str) -> InvokeRequest:
        arn = resolved.invoked_arn
        return InvokeRequest(payload=b"{}", request_id=request_id, invoked_function_arn=arn)

    fn = parse_resource(
        {
            "apiVersion": "kubelambda.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "f"},
            "spec": {"runtime": "python3.11", "handler": "a.b", "code": {"inline": {"a.py": ""}}},
        }
    )
    pool = EnvironmentPool(TailProvider())  # type: ignore[arg-type]
    invoker = Invoker(pool, tail_to_logbook=True)
    invoker.set_catalog(build_catalog([fn]))
    resolved = invoker.resolve(FunctionRef("default", "f", None))
    outcome = await invoker.invoke(resolved, call("r-1"))
    lines = [e.line for e in invoker.logbook.lines("default", "f")]
    assert lines == ["START RequestId: r-1 Version: $LATEST", "said"]
    env = pool.provider.started[0]  # type: ignore[attr-defined]
    assert outcome.result.function_error is None and env.requests[0].log_tail is True
    # Dev mode buffers from its environments' output instead: no tail is asked for.
    invoker.tail_to_logbook = False
    await invoker.invoke(resolved, call("r-2"))
    assert env.requests[1].log_tail is False
    assert len(invoker.logbook.lines("default", "f")) == 2
    await pool.close()


def test_the_buffer_is_bounded_in_characters_too() -> None:
    """Issue 12, defect 4: a runtime's output is cut into 256 KiB lines; 2,000 of them would be
    half a gigabyte per function."""
    from kubelambda.serving.logbook import LogBook

    book = LogBook(chars_per_function=1000)
    for index in range(50):
        book.add("default", "spew", "$LATEST", str(index % 10) * 100)
    kept = book.lines("default", "spew")
    assert sum(len(e.line) for e in kept) <= 1000 and len(kept) == 10
    assert kept[-1].line == "9" * 100  # the newest stay
    book.add("default", "spew", "$LATEST", "x" * 5000)  # one line over the budget is kept alone
    assert [len(e.line) for e in book.lines("default", "spew")] == [5000]
