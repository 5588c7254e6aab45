"""Lambda's platform log lines (START, END, REPORT, INIT_*), billing figures and the log tail.

Pure functions and one small bounded buffer; the environment feeds them measured numbers.
Text format uses Lambda's tab-separated fields; JSON format emits `platform.*` records as Lambda
does when a function's log format is JSON.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import deque
from dataclasses import dataclass

from kubelambda.runtime.errors import Status, lambda_timestamp
from kubelambda.runtime.limits import LOG_TAIL_BYTES
from kubelambda.runtime.spec import EnvironmentSpec, InvokeResult


def billed_duration_ms(duration_ms: float) -> int:
    """Lambda bills in 1 ms steps, rounding up; never less than 1 ms."""
    return max(1, math.ceil(duration_ms - 1e-9))


def memory_mb(kilobytes: int) -> int:
    """A high-water mark in kB as the whole MB Lambda reports (rounded up)."""
    return max(1, math.ceil(kilobytes / 1024)) if kilobytes > 0 else 0


def tail_text(text: str, limit: int = LOG_TAIL_BYTES) -> str:
    """The last `limit` bytes of `text` in UTF-8, never splitting a character."""
    data = text.encode()
    if len(data) <= limit:
        return text
    cut = data[-limit:]
    # Drop continuation bytes of a character whose lead byte was cut off.
    start = 0
    while start < len(cut) and (cut[start] & 0xC0) == 0x80:
        start += 1
    return cut[start:].decode()


@dataclass(frozen=True, slots=True)
class Report:
    request_id: str
    duration_ms: float
    billed_ms: int
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    status: Status | None = None  # None on success
    error_type: str | None = None


# loggingConfig.systemLogLevel: START, END, REPORT and INIT_START are INFO records; failed inits
# and timeouts are written at any level.
_SYSTEM_LEVELS = {"DEBUG": 1, "INFO": 2, "WARN": 3}


def platform_shown(system_log_level: str | None, line_level: str = "INFO") -> bool:
    """Whether a platform line of `line_level` passes the function's systemLogLevel."""
    threshold = _SYSTEM_LEVELS.get(system_log_level or "INFO", 2)
    return _SYSTEM_LEVELS[line_level] >= threshold


def start_line(request_id: str, version: str, log_format: str = "Text") -> str:
    if log_format == "JSON":
        return _platform("platform.start", {"requestId": request_id, "version": version})
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str, log_format: str = "Text") -> str:
    if log_format == "JSON":
        return _platform("platform.runtimeDone", {"requestId": request_id})
    return f"END RequestId: {request_id}"


def report_line(report: Report, log_format: str = "Text") -> str:
    if log_format == "JSON":
        metrics: dict[str, float | int] = {
            "durationMs": round(report.duration_ms, 3),
            "billedDurationMs": report.billed_ms,
            "memorySizeMB": report.memory_size_mb,
            "maxMemoryUsedMB": report.max_memory_used_mb,
        }
        if report.init_duration_ms is not None:
            metrics["initDurationMs"] = round(report.init_duration_ms, 3)
        record: dict[str, object] = {
            "requestId": report.request_id,
            "metrics": metrics,
            "status": report.status or "success",
        }
        if report.error_type:
            record["errorType"] = report.error_type
        return _platform("platform.report", record)
    fields = [
        f"REPORT RequestId: {report.request_id}",
        f"Duration: {report.duration_ms:.2f} ms",
        f"Billed Duration: {report.billed_ms} ms",
        f"Memory Size: {report.memory_size_mb} MB",
        f"Max Memory Used: {report.max_memory_used_mb} MB",
    ]
    if report.init_duration_ms is not None:
        fields.append(f"Init Duration: {report.init_duration_ms:.2f} ms")
    if report.status:
        fields.append(f"Status: {report.status}")
    if report.error_type:
        fields.append(f"Error Type: {report.error_type}")
    return "\t".join(fields)


def init_start_line(runtime: str, log_format: str = "Text") -> str:
    if log_format == "JSON":
        return _platform("platform.initStart", {"runtimeVersion": f"kubelambda:{runtime}"})
    return f"INIT_START Runtime Version: kubelambda:{runtime}"


def init_report_line(duration_ms: float, status: Status, error_type: str | None, fmt: str) -> str:
    """Lambda's INIT_REPORT, written when an init phase fails or times out."""
    if fmt == "JSON":
        record: dict[str, object] = {
            "initializationType": "on-demand",
            "phase": "init",
            "status": status,
            "metrics": {"durationMs": round(duration_ms, 3)},
        }
        if error_type:
            record["errorType"] = error_type
        return _platform("platform.initReport", record)
    line = f"INIT_REPORT Init Duration: {duration_ms:.2f} ms\tPhase: init\tStatus: {status}"
    return f"{line}\tError Type: {error_type}" if error_type else line


def _platform(kind: str, record: dict[str, object]) -> str:
    return json.dumps({"time": lambda_timestamp(time.time()), "type": kind, "record": record})


class LogTail:
    """The lines of one invocation, START through REPORT, keeping only about the last 4 KB."""

    __slots__ = ("_lines", "_size")

    def __init__(self) -> None:
        self._lines: deque[str] = deque()
        self._size = 0

    def add(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line) + 1
        # Keep one line beyond the limit so the byte-exact cut happens in text().
        while self._size - (len(self._lines[0]) + 1) > LOG_TAIL_BYTES * 2 and len(self._lines) > 1:
            self._size -= len(self._lines.popleft()) + 1

    def text(self) -> str:
        return tail_text("".join(f"{line}\n" for line in self._lines))


def stdout_sink(line: str) -> None:
    """Where an environment's lines go when no one else collects them."""
    sys.stdout.write(line + "\n")


@dataclass(frozen=True, slots=True)
class Closing:
    """The figures of one invocation's END and REPORT lines, which its result carries too."""

    spec: EnvironmentSpec
    request_id: str
    duration_ms: float
    billed_ms: int
    used_mb: int
    init_ms: float | None
    status: Status | None
    error_type: str | None

    @classmethod
    def of(
        cls,
        spec: EnvironmentSpec,
        request_id: str,
        duration_ms: float,
        init_ms: float | None,
        max_rss_kb: int,
        status: Status | None,
        error_type: str | None,
    ) -> Closing:
        billed = billed_duration_ms(duration_ms)
        used = memory_mb(max_rss_kb)
        return cls(spec, request_id, duration_ms, billed, used, init_ms, status, error_type)

    def lines(self) -> tuple[str, str]:
        """END, then REPORT, in the function's log format."""
        line = Report(
            self.request_id,
            self.duration_ms,
            self.billed_ms,
            self.spec.memory_size,
            self.used_mb,
            self.init_ms,
            self.status,
            self.error_type,
        )
        fmt = self.spec.log_format
        return end_line(self.request_id, fmt), report_line(line, fmt)

    def result(self, payload: bytes, function_error: bool, tail: str | None) -> InvokeResult:
        return InvokeResult(
            request_id=self.request_id,
            payload=payload,
            function_error="Unhandled" if self.error_type or function_error else None,
            duration_ms=self.duration_ms,
            billed_duration_ms=self.billed_ms,
            max_memory_used_mb=self.used_mb,
            init_duration_ms=self.init_ms,
            log_tail=tail,
            executed_version=self.spec.function_version,
        )
