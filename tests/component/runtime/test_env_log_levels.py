"""loggingConfig's levels reach the runtime as Lambda sets them: the root logger's level in our
Python bootstrap, in Text and JSON, and the platform lines' systemLogLevel."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubelambda.runtime.provider import ProcessProvider

from .helpers import make_request, make_spec

CODE = {
    "app.py": (
        "import logging\n"
        "log = logging.getLogger('app')\n"
        "def handler(event, context):\n"
        "    log.debug('d-line')\n"
        "    log.info('i-line')\n"
        "    log.warning('w-line')\n"
        "    log.error('e-line')\n"
        "    return 'ok'\n"
    )
}


async def _levels(provider: ProcessProvider, logs: list[str], **fields: Any) -> list[str]:
    logs.clear()
    env = await provider.start_environment("python3.12")
    await env.specialize(make_spec(CODE, **fields))
    result = await env.invoke(make_request())
    assert json.loads(result.payload) == "ok"
    if fields.get("log_format") == "JSON":
        records = [json.loads(line) for line in logs if line.startswith('{"timestamp"')]
        return [r["level"] for r in records]
    return [line.split("\t")[0] for line in logs if line.startswith("[")]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("TRACE", ["DEBUG", "INFO", "WARNING", "ERROR"]),
        ("DEBUG", ["DEBUG", "INFO", "WARNING", "ERROR"]),
        ("INFO", ["INFO", "WARNING", "ERROR"]),
        ("WARN", ["WARNING", "ERROR"]),
        ("ERROR", ["ERROR"]),
        (None, ["INFO", "WARNING", "ERROR"]),  # JSON without a level: Lambda's INFO
    ],
)
async def test_json_application_log_level(
    provider: ProcessProvider, logs: list[str], level: str | None, expected: list[str]
) -> None:
    got = await _levels(provider, logs, log_format="JSON", application_log_level=level)
    assert got == expected


async def test_text_format_levels(provider: ProcessProvider, logs: list[str]) -> None:
    # Text without a level: the root logger stays at WARNING, as in Lambda.
    assert await _levels(provider, logs) == ["[WARNING]", "[ERROR]"]
    # A user's AWS_LAMBDA_LOG_LEVEL is honoured in Text format, as Lambda's runtime does.
    debug = await _levels(provider, logs, environment={"AWS_LAMBDA_LOG_LEVEL": "DEBUG"})
    assert debug == ["[DEBUG]", "[INFO]", "[WARNING]", "[ERROR]"]
    warn = await _levels(provider, logs, environment={"AWS_LAMBDA_LOG_LEVEL": "WARN"})
    assert warn == ["[WARNING]", "[ERROR]"]


async def test_json_records_carry_the_request_and_the_logger(
    provider: ProcessProvider, logs: list[str]
) -> None:
    await _levels(provider, logs, log_format="JSON", application_log_level="DEBUG")
    record = next(json.loads(line) for line in logs if '"d-line"' in line)
    assert record["level"] == "DEBUG" and record["logger"] == "app"
    assert record["requestId"].startswith("req-")


async def test_system_log_level_filters_platform_lines(
    provider: ProcessProvider, logs: list[str]
) -> None:
    await _levels(provider, logs, log_format="JSON", system_log_level="WARN")
    assert not [line for line in logs if '"type": "platform.' in line]
    await _levels(provider, logs, log_format="JSON", system_log_level="INFO")
    kinds = [json.loads(line)["type"] for line in logs if '"type": "platform.' in line]
    assert kinds == [
        "platform.initStart",
        "platform.start",
        "platform.runtimeDone",
        "platform.report",
    ]
