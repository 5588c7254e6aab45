"""Running a long-lived role's event loop: uvloop where it is installed, asyncio otherwise; the
stop signals every role obeys; cancelling a role's background tasks; a quick exit once done.

uvloop cuts the per-request cost of the gateway and the Runtime API by about a tenth on the
warm path (see bench/README.md); everything works the same on the standard loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(main)
    finally:
        exiting()


def exiting() -> None:
    """Call when a role is done and its process is about to exit. The interpreter's garbage
    collections while it finalizes walk the whole heap (seconds, for a cluster gateway after a
    long run, so every stop took that long); frozen, the heap is skipped, and the exit frees
    it anyway. Finalizers and exit handlers still run."""
    gc.freeze()


def stop_requested() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, for a role that serves until it is told to stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel background tasks and wait until each has ended (in the order given)."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
