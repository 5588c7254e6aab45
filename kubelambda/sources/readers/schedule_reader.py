"""Schedules: one asynchronous invoke per tick, with EventBridge's scheduled event.

The last tick fired and the schedule's anchor are kept in the mapping's state store, so a
restarted poller neither fires a tick twice nor replays every tick it missed: it fires the
latest missed one once (see `schedule.due`). The invoke is an Event invoke, so the gateway's
durable async queue takes it from the 202 on, with its retries and destinations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from kubelambda.sources.engine import Context
from kubelambda.sources.schedule import due
from kubelambda.sources.shapes import scheduled_event

Sleep = Callable[[float], Awaitable[None]]
MAX_NAP = 30.0  # wake at least this often, so clock jumps are noticed


async def run(ctx: Context, sleep: Sleep = asyncio.sleep) -> None:
    config = ctx.config
    schedule = config.schedule
    source = config.spec.source.schedule
    assert schedule is not None and source is not None
    state = await ctx.state.load() if ctx.state is not None else {}
    stored = state.get("anchor")
    anchor = float(stored) if stored is not None else ctx.clock()
    last = state.get("lastFired")
    last_fired = float(last) if last is not None else None
    if ctx.state is not None and "anchor" not in state:
        await ctx.state.save({"anchor": anchor, "lastFired": last_fired})
    while True:
        now = ctx.clock()
        tick = due(schedule, anchor, last_fired, now)
        if tick is not None:
            event = scheduled_event(config.name, ctx.region, tick.at, source.input)
            result = await ctx.invoker.invoke(
                config.invoke_name, config.qualifier, event, invocation_type="Event"
            )
            outcome = "success" if result.status < 300 else "failure"
            ctx.metrics.batches.labels(**ctx.labels, outcome=outcome).inc()
            ctx.metrics.polled.labels(**ctx.labels).inc()
            if result.status >= 300:
                ctx.on_result(f"PROBLEM: Function call failed: {result.describe()}")
                await sleep(1.0)
                continue  # the same tick again: not lost
            last_fired = tick.at
            if ctx.state is not None:
                await ctx.state.save({"anchor": anchor, "lastFired": last_fired})
            ctx.on_result("OK")
            continue
        nxt = schedule.next_after(max(now, last_fired or now), anchor)
        await sleep(min(MAX_NAP, max(0.0, nxt - ctx.clock())))
