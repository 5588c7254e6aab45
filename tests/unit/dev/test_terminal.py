"""Dev mode's terminal: functions' lines are batched, kubelambda's lines keep their place."""

from __future__ import annotations

import asyncio
import io
import logging

from kubelambda.dev.terminal import Terminal


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0
        self.flushed = asyncio.Event()

    def flush(self) -> None:
        self.flushes += 1
        self.flushed.set()
        super().flush()


def test_outside_a_loop_a_function_line_is_written_at_once() -> None:
    out = CountingStream()
    Terminal(out).function_line("START RequestId: a")
    assert out.getvalue() == "START RequestId: a\n" and out.flushes == 1


async def test_function_lines_wait_for_their_batch_then_go_out_in_one_flush() -> None:
    out = CountingStream()
    terminal = Terminal(out, batch_seconds=0.05)
    for line in ("START", "hello", "END", "REPORT"):
        terminal.function_line(line)
    assert out.getvalue() == ""  # nothing written yet: the batch is open
    await asyncio.wait_for(out.flushed.wait(), 5)
    assert out.getvalue() == "START\nhello\nEND\nREPORT\n"
    assert out.flushes == 1


async def test_kubelambdas_own_lines_come_after_the_function_lines_before_them() -> None:
    out = CountingStream()
    terminal = Terminal(out, batch_seconds=60)
    terminal.function_line("[greeter:$LATEST] START")
    terminal.say("kubelambda dev: stopping environments")
    terminal.function_line("[greeter:$LATEST] END")
    terminal.flush()
    assert out.getvalue().splitlines() == [
        "[greeter:$LATEST] START",
        "kubelambda dev: stopping environments",
        "[greeter:$LATEST] END",
    ]


async def test_logging_through_the_terminal_keeps_the_order() -> None:
    out = CountingStream()
    terminal = Terminal(out, batch_seconds=60)
    handler = logging.StreamHandler(terminal)  # type: ignore[arg-type]
    logger = logging.getLogger("test-terminal")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        terminal.function_line("a function's line")
        logger.warning("a note")
        assert out.getvalue().splitlines() == ["a function's line", "a note"]
    finally:
        logger.removeHandler(handler)


async def test_flush_cancels_the_pending_batch() -> None:
    out = CountingStream()
    terminal = Terminal(out, batch_seconds=0.01)
    terminal.function_line("one")
    terminal.flush()
    # A timer due after the batch's: the loop runs timers in order, so once it fires the
    # cancelled batch would have written (and flushed) already.
    later = asyncio.Event()
    asyncio.get_running_loop().call_later(0.02, later.set)
    await asyncio.wait_for(later.wait(), 5)
    assert out.getvalue() == "one\n"
    assert out.flushes == 1  # flush() itself; nothing from the cancelled batch
