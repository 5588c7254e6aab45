"""Dev mode's terminal: kubelambda's own lines at once, the functions' lines in batches.

Every invocation writes at least three lines (START, END, REPORT). Written and flushed one by one
they were a write syscall each, and each woke whatever reads the terminal: about a sixth of the
gateway's CPU per warm call. The functions' lines are therefore gathered and written together
`BATCH_SECONDS` after the first of them (one write for every line of that window); kubelambda's
own lines (`say`, and the logging stream) write what is gathered first, so the order on the
terminal is the order the lines were made in. Outside a running event loop nothing waits.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

# Long enough to gather a burst of calls into one write, short enough to look immediate.
BATCH_SECONDS = 0.02


class Terminal:
    """One output stream shared by kubelambda's lines and the functions' lines."""

    def __init__(self, stream: TextIO | None = None, batch_seconds: float = BATCH_SECONDS) -> None:
        self._stream = stream
        self._batch_seconds = batch_seconds
        self._pending: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout

    def say(self, line: str) -> None:
        """A line of kubelambda's own, written now (after the functions' lines before it)."""
        self.write(line + "\n")
        self.flush()

    def function_line(self, line: str) -> None:
        """A line a function's environment wrote; written with the others of its batch."""
        self._pending.append(line)
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._timer = loop.call_later(self._batch_seconds, self.flush)

    # The logging module writes through these, so its lines keep their place too.
    def write(self, text: str) -> int:
        self._write_pending()
        return self.stream.write(text)

    def flush(self) -> None:
        self._write_pending()
        self.stream.flush()

    def _write_pending(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            lines, self._pending = self._pending, []
            self.stream.write("\n".join(lines) + "\n")
