"""The init phase of one runtime process: its bound, its duration and how it ended.

An environment begins an init each time it releases a runtime (specialization, and every re-init
after a timeout or a crash). The init succeeds when the runtime first polls /next, and fails when
it posts init/error, exits, cannot be spawned, or outlives the init bound. INIT_START (an INFO
platform line) and, on a failure, INIT_REPORT (written at any level) go to the log here; the Init
Duration is handed to the next invoke's REPORT once, except for provisioned concurrency, whose
first init ran ahead of any call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from kubelambda.runtime import errors, report
from kubelambda.runtime.errors import InitFailure, Status


class InitPhase:
    """The current init of an environment's runtime; `future` resolves to None or the failure."""

    def __init__(
        self,
        runtime: str,
        bound: float,
        *,
        emit: Callable[[str], None],
        info: Callable[[str], None],
        kill: Callable[[], None],
        settled: Callable[[], None],
    ) -> None:
        self.runtime = runtime
        self.bound = bound  # seconds an init may take
        self._emit = emit  # lines written at any systemLogLevel (a failed init)
        self._info = info  # INFO platform lines (INIT_START), which systemLogLevel WARN hides
        self._kill = kill  # ends the runtime whose init ran out of time
        self._settled = settled  # told once each init has ended, either way
        self.future: asyncio.Future[InitFailure | None] | None = None
        self._format = "Text"
        self._started = 0.0
        self._duration_ms: float | None = None
        self._ahead = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> bool:
        return self.future is not None and not self.future.done()

    @property
    def done(self) -> bool:
        return self.future is not None and self.future.done()

    @property
    def succeeded(self) -> bool:
        return self.future is not None and self.future.done() and self.future.result() is None

    def begin(self, log_format: str, *, ahead: bool = False) -> None:
        """A new init starts now; `ahead`: provisioned, so no REPORT will show its duration."""
        loop = asyncio.get_running_loop()
        self.future = future = loop.create_future()
        self._format = log_format
        self._started = time.perf_counter()
        self._duration_ms = None
        self._ahead = ahead
        self._timer = loop.call_later(self.bound, self._on_timeout, future)
        self._info(report.init_start_line(self.runtime, log_format))

    def ready(self) -> bool:
        """The runtime polled /next: the init succeeded. False when no init was pending."""
        future = self.future
        if future is None or future.done():
            return False
        self._duration_ms = (time.perf_counter() - self._started) * 1000
        if self._timer is not None:
            self._timer.cancel()
        future.set_result(None)
        self._settled()
        return True

    def fail(self, failure: InitFailure) -> None:
        """The pending init failed: INIT_REPORT now, the failure for the next invoke."""
        future = self.future
        assert future is not None and not future.done()
        self._duration_ms = (time.perf_counter() - self._started) * 1000
        if self._timer is not None:
            self._timer.cancel()
        status: Status = "timeout" if failure.kind == "timeout" else "error"
        error_type = errors.init_failure_body(failure, "")[1]
        self._emit(report.init_report_line(self._duration_ms, status, error_type, self._format))
        future.set_result(failure)
        self._settled()

    def take_duration(self) -> float | None:
        """The Init Duration for the next REPORT, once; None when none is to be shown."""
        duration, self._duration_ms = self._duration_ms, None
        if self._ahead:
            duration, self._ahead = None, False
        return duration

    def _on_timeout(self, future: asyncio.Future[InitFailure | None]) -> None:
        if future is self.future and not future.done():
            self._kill()
            self.fail(InitFailure("timeout", seconds=self.bound))
