"""Where dev mode's runtimes run: a lone invocation beside the gateway, concurrent ones apart.

Handing an event to a runtime that waits on another, idle CPU wakes that CPU, and the answer
wakes the gateway's CPU in turn (an interrupt between processors each way; on a VM, an exit
from halt); the same hand-off to a runtime on the gateway's own CPU is a context switch, with
the caches still warm. Concurrent invocations need the other CPUs instead. So dev mode pins its
gateway's event loop to one CPU (`home`) and places each runtime as its invocation starts: on
`home` while it is the only invocation running, on the other CPUs (`spread`) when others run
too (bench/README.md has the figures). A new runtime starts up on `spread`, off the gateway's
CPU. A runtime moves only between invocations, and only when its place changes: one
`sched_setaffinity` call. With a single CPU allowed, or where affinity cannot be set, nothing
is pinned. Processes a handler starts inherit its place when they start.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Literal

Place = Literal["home", "spread"]
SetAffinity = Callable[[int, frozenset[int]], None]


def place_for(running: int) -> Place:
    """Where a runtime goes when its invocation makes `running` invocations in all."""
    return "home" if running <= 1 else "spread"


def split(allowed: frozenset[int]) -> tuple[frozenset[int], frozenset[int]] | None:
    """The gateway's CPU (the highest allowed: CPU 0 takes the most interrupts) and the rest;
    None when there is nothing to split."""
    if len(allowed) < 2:
        return None
    home = max(allowed)
    return frozenset({home}), allowed - {home}


class CpuPlacement:
    """Counts the invocations running and moves each runtime to its place as one starts."""

    def __init__(
        self, home: frozenset[int], spread: frozenset[int], set_affinity: SetAffinity
    ) -> None:
        self.cpus: dict[Place, frozenset[int]] = {"home": home, "spread": spread}
        self._set_affinity = set_affinity
        self.running = 0

    @classmethod
    def pin_this_thread(cls) -> CpuPlacement | None:
        """Pin the calling thread (the gateway's event loop) to its home CPU and return the
        placement for its runtimes; None where this machine has no CPUs to split or refuses."""
        if not hasattr(os, "sched_setaffinity"):
            return None
        halves = split(frozenset(os.sched_getaffinity(0)))
        if halves is None:
            return None
        home, spread = halves
        try:
            os.sched_setaffinity(0, home)
        except OSError:
            return None
        return cls(home, spread, os.sched_setaffinity)

    def started(self, pid: int) -> Place | None:
        """A runtime process just started: it starts up on the other CPUs (it was born on the
        gateway's, the spawning thread's), so that warming it costs the gateway nothing."""
        return self._move(pid, "spread")

    def enter(self, pid: int, current: Place | None) -> Place | None:
        """An invocation starts on runtime `pid`, now at `current`; returns where it is after
        (None: unknown, as when the process refused or is gone)."""
        self.running += 1
        wanted = place_for(self.running)
        return current if wanted == current else self._move(pid, wanted)

    def leave(self) -> None:
        self.running -= 1

    def _move(self, pid: int, place: Place) -> Place | None:
        try:
            self._set_affinity(pid, self.cpus[place])
        except OSError:  # gone already, or not ours to move: it runs where it is
            return None
        return place
