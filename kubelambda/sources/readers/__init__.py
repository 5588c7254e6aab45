"""One thin asyncio reader per kind of source; each exposes `run(ctx)`, which polls until
cancelled. What they share (batching, filters, retries, checkpoints) is in `engine`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kubelambda.sources.engine import Context

Runner = Callable[[Context], Awaitable[None]]


def runner_for(kind: str) -> Runner:
    """The reader's `run` for a source type; its client library is imported only when used."""
    import importlib

    module = importlib.import_module(f"kubelambda.sources.readers.{kind}_reader")
    run: Runner = module.run
    return run
