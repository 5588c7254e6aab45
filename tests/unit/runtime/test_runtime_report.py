"""Billing, memory rounding, START/END/REPORT lines and the 4 KB log tail."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from kubelambda.runtime import report


def test_billed_duration_rounds_up_to_the_millisecond() -> None:
    assert report.billed_duration_ms(0.0) == 1
    assert report.billed_duration_ms(0.2) == 1
    assert report.billed_duration_ms(1.0) == 1
    assert report.billed_duration_ms(1.0001) == 2
    assert report.billed_duration_ms(1234.5) == 1235


@given(st.floats(min_value=0, max_value=1e7, allow_nan=False))
def test_billed_is_never_below_duration(duration: float) -> None:
    billed = report.billed_duration_ms(duration)
    assert billed >= 1 and billed >= duration - 1e-6 and billed - duration < 1 + 1e-6


def test_memory_mb_rounds_up() -> None:
    assert report.memory_mb(0) == 0
    assert report.memory_mb(1) == 1
    assert report.memory_mb(1024) == 1
    assert report.memory_mb(1025) == 2


def test_report_line_has_lambda_fields_tab_separated() -> None:
    line = report.report_line(report.Report("abc", 1.234, 2, 128, 40, 50.123))
    assert line == (
        "REPORT RequestId: abc\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB"
        "\tMax Memory Used: 40 MB\tInit Duration: 50.12 ms"
    )
    timeout = report.report_line(report.Report("abc", 3000.5, 3001, 128, 40, None, "timeout"))
    assert timeout.endswith("Max Memory Used: 40 MB\tStatus: timeout")
    crash = report.Report("abc", 1, 1, 128, 40, None, "error", "Runtime.ExitError")
    assert report.report_line(crash).endswith("Status: error\tError Type: Runtime.ExitError")
    assert report.start_line("abc", "$LATEST") == "START RequestId: abc Version: $LATEST"
    assert report.end_line("abc") == "END RequestId: abc"


def test_json_platform_records() -> None:
    record = json.loads(report.report_line(report.Report("r", 1.5, 2, 256, 30, 10.0), "JSON"))
    assert record["type"] == "platform.report"
    assert record["record"]["metrics"] == {
        "durationMs": 1.5,
        "billedDurationMs": 2,
        "memorySizeMB": 256,
        "maxMemoryUsedMB": 30,
        "initDurationMs": 10.0,
    }
    assert json.loads(report.start_line("r", "3", "JSON"))["record"] == {
        "requestId": "r",
        "version": "3",
    }


def test_init_report_line() -> None:
    line = report.init_report_line(12.345, "error", "Runtime.ImportModuleError", "Text")
    assert line == (
        "INIT_REPORT Init Duration: 12.35 ms\tPhase: init\tStatus: error"
        "\tError Type: Runtime.ImportModuleError"
    )


@given(st.text(max_size=6000))
def test_tail_text_keeps_the_last_4kb_on_character_boundaries(text: str) -> None:
    tail = report.tail_text(text)
    assert len(tail.encode()) <= report.LOG_TAIL_BYTES
    assert text.endswith(tail)
    if len(text.encode()) <= report.LOG_TAIL_BYTES:
        assert tail == text
    else:
        assert len(tail.encode()) > report.LOG_TAIL_BYTES - 4


def test_log_tail_keeps_the_end() -> None:
    tail = report.LogTail()
    tail.add("START RequestId: r Version: $LATEST")
    for index in range(2000):
        tail.add(f"line {index}")
    tail.add("REPORT RequestId: r")
    text = tail.text()
    assert len(text.encode()) <= 4096
    assert text.endswith("line 1999\nREPORT RequestId: r\n")
    short = report.LogTail()
    short.add("a")
    short.add("ü")
    assert short.text() == "a\nü\n"
