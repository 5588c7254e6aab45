"""The gateway's bounded log buffer: the last lines of each function, and followers of them.

Dev mode feeds it every line its environments write; a cluster gateway feeds it the log tail of
each invocation it dispatches (the agents' full output stays in the pods' logs). `kubelambda
logs` reads it over `GET /kubelambda/v1/functions/{name}/logs` (`logs_api`). No I/O here: lines
in, lines out, and one asyncio queue per follower that never blocks the writer.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

LINES_PER_FUNCTION = 2000
# ...and at most this many characters of them: a runtime's lines may be 256 KiB long each.
CHARS_PER_FUNCTION = 2 * 1024 * 1024
FOLLOWER_BACKLOG = 1000  # a follower that falls this far behind loses its oldest lines

Key = tuple[str, str]  # (namespace, function)


@dataclass(frozen=True, slots=True)
class LogEntry:
    time: float  # epoch seconds
    version: str
    line: str


class LogBook:
    def __init__(
        self,
        per_function: int = LINES_PER_FUNCTION,
        clock: Callable[[], float] = time.time,
        chars_per_function: int = CHARS_PER_FUNCTION,
    ) -> None:
        self._per_function = per_function
        self._chars_per_function = chars_per_function
        self._clock = clock
        self._lines: dict[Key, deque[LogEntry]] = {}
        self._chars: dict[Key, int] = {}
        self._followers: dict[Key, set[asyncio.Queue[LogEntry]]] = {}

    def add(self, namespace: str, function: str, version: str, line: str) -> None:
        entry = LogEntry(self._clock(), version, line)
        key = (namespace, function)
        lines = self._lines.get(key)
        if lines is None:
            lines = self._lines[key] = deque()
        lines.append(entry)
        held = self._chars.get(key, 0) + len(line)
        while len(lines) > 1 and (
            len(lines) > self._per_function or held > self._chars_per_function
        ):
            held -= len(lines.popleft().line)
        self._chars[key] = held
        for queue in self._followers.get(key, ()):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(entry)

    def add_tail(self, namespace: str, function: str, version: str, tail: str) -> None:
        """An invocation's log tail (its last 4 KB): a first line cut by the limit is dropped."""
        lines = tail.splitlines()
        if lines and not lines[0].startswith(("START ", "INIT_START ", '{"time"')):
            lines = lines[1:]
        for line in lines:
            self.add(namespace, function, version, line)

    def lines(self, namespace: str, function: str, since: float | None = None) -> list[LogEntry]:
        kept = self._lines.get((namespace, function), ())
        return [e for e in kept if since is None or e.time >= since]

    def follow(self, namespace: str, function: str) -> asyncio.Queue[LogEntry]:
        queue: asyncio.Queue[LogEntry] = asyncio.Queue(maxsize=FOLLOWER_BACKLOG)
        self._followers.setdefault((namespace, function), set()).add(queue)
        return queue

    def unfollow(self, namespace: str, function: str, queue: asyncio.Queue[LogEntry]) -> None:
        followers = self._followers.get((namespace, function))
        if followers is not None:
            followers.discard(queue)
            if not followers:
                del self._followers[(namespace, function)]


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> float:
    """`10m`, `90s`, `2h`, `1d` or plain seconds, as a duration in seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if found is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 10m, 2h or 1d")
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]
