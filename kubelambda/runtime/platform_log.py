"""One environment's log: its lines, to the sink and the log tail; each invocation's END and REPORT.

Every line an environment writes (the runtime's output, init's lines, the platform's) goes
through `emit`, so the log tail of a `LogType: Tail` invocation holds them in order. Platform
lines at INFO pass the function's systemLogLevel first (`report.platform_shown`).

An invocation is closed with END and REPORT. By default they are written at once and the
result carries their figures (the agent sends both with the answer). Dev mode's gateway defers
them (`defer=True`): the result is built at once, and the lines, with the Max Memory Used
read, follow in the loop turn after it, or earlier if the environment does anything else first
(its next START, a re-init, a stop: each calls `settle`), so no line changes place. A call that
asked for the tail is never deferred, since the lines belong in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from kubelambda.runtime import report
from kubelambda.runtime.errors import Status
from kubelambda.runtime.spec import EnvironmentSpec, InvokeResult

LogSink = Callable[[str], None]


class PlatformLog:
    """The log of one environment, across its runtime processes."""

    def __init__(
        self,
        sink: LogSink,
        *,
        level: Callable[[], str | None],
        measure: Callable[[], int],
        defer: bool = False,
    ) -> None:
        self._sink = sink
        self._level = level  # the function's systemLogLevel, once specialized
        self._measure = measure  # flushes the runtime's output; returns the memory peak (kB)
        self._defer = defer
        self._tail: report.LogTail | None = None
        self._unsettled: tuple[report.Closing, InvokeResult] | None = None

    def emit(self, line: str) -> None:
        self._sink(line)
        if self._tail is not None:
            self._tail.add(line)

    def platform(self, line: str) -> None:
        """An INFO platform line, written unless the function's systemLogLevel is WARN."""
        if report.platform_shown(self._level()):
            self.emit(line)

    def begin(self, spec: EnvironmentSpec, request_id: str, tail: bool) -> None:
        """An invocation starts: its START line, and its tail if it asked for one."""
        self._tail = report.LogTail() if tail else None
        self.platform(report.start_line(request_id, spec.function_version, spec.log_format))

    @property
    def deferring(self) -> bool:
        """Whether the invocation running now may be closed after its answer."""
        return self._defer and self._tail is None

    def close(
        self,
        spec: EnvironmentSpec,
        request_id: str,
        payload: bytes,
        duration_ms: float,
        init_ms: float | None,
        max_rss_kb: int,
        status: Status | None = None,
        error_type: str | None = None,
        function_error: bool = False,
    ) -> InvokeResult:
        """Write END and REPORT and build the result (Unhandled when anything failed)."""
        closing = report.Closing.of(
            spec, request_id, duration_ms, init_ms, max_rss_kb, status, error_type
        )
        self._write(closing)
        tail, self._tail = self._tail, None
        return closing.result(payload, function_error, tail.text() if tail is not None else None)

    def close_later(
        self,
        spec: EnvironmentSpec,
        request_id: str,
        payload: bytes,
        duration_ms: float,
        init_ms: float | None,
        max_rss_kb: int,
        function_error: bool,
    ) -> InvokeResult:
        """The result now (the caller sends it without yielding); END and REPORT in the next
        loop turn, with the memory peak read then (the result is brought up to date)."""
        self._tail = None
        closing = report.Closing.of(spec, request_id, duration_ms, init_ms, max_rss_kb, None, None)
        result = closing.result(payload, function_error, None)
        self._unsettled = (closing, result)
        asyncio.get_running_loop().call_soon(self.settle)
        return result

    def settle(self) -> None:
        """Write a deferred END and REPORT, if one is pending (the handler's output first)."""
        pending, self._unsettled = self._unsettled, None
        if pending is None:
            return
        closing, result = pending
        closing = replace(closing, used_mb=report.memory_mb(self._measure()))
        result.max_memory_used_mb = closing.used_mb
        self._write(closing)

    def _write(self, closing: report.Closing) -> None:
        end, report_line = closing.lines()
        self.platform(end)
        self.platform(report_line)
