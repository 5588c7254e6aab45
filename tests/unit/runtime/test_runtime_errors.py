"""Lambda's error bodies: timeouts, exits, oversized responses, init failures."""

from __future__ import annotations

import json
import re

from kubelambda.runtime import errors
from kubelambda.runtime.errors import InitFailure


def test_timeout_message_matches_lambda() -> None:
    message = errors.timeout_message("rid-1", 3, 1700000000.1234)
    assert message == "2023-11-14T22:13:20.123Z rid-1 Task timed out after 3.00 seconds"
    body = json.loads(errors.timeout_body("rid-1", 0.5, 0))
    assert body["errorType"] == "Sandbox.Timedout"
    assert re.fullmatch(r"\S+Z rid-1 Task timed out after 0\.50 seconds", body["errorMessage"])


def test_exit_reasons_read_like_go() -> None:
    assert errors.exit_reason(3) == "exit status 3"
    assert errors.exit_reason(0) == "exit status 0"
    assert errors.exit_reason(-9) == "signal: killed"
    assert errors.exit_reason(-15) == "signal: terminated"
    assert errors.exit_reason(-11) == "signal: segmentation fault"
    body = json.loads(errors.exit_error_body("r", 2))
    assert body == {
        "errorMessage": "RequestId: r Error: Runtime exited with error: exit status 2",
        "errorType": "Runtime.ExitError",
    }


def test_response_too_large() -> None:
    body = json.loads(errors.response_too_large_body(7000000))
    assert body["errorType"] == "Function.ResponseSizeTooLarge"
    assert body["errorMessage"] == (
        "Response payload size (7000000 bytes) exceeded maximum allowed payload size "
        "(6291456 bytes)."
    )


def test_init_failure_bodies() -> None:
    posted = InitFailure("posted", b'{"errorType": "Runtime.ImportModuleError"}')
    body, kind = errors.init_failure_body(posted, "r")
    assert kind == "Runtime.ImportModuleError" and body == posted.body
    body, kind = errors.init_failure_body(InitFailure("exit", exit_status=1), "r")
    assert kind == "Runtime.ExitError" and b"exit status 1" in body
    body, kind = errors.init_failure_body(InitFailure("timeout", seconds=10), "r")
    assert kind == "Sandbox.Timedout" and b"10.00 seconds" in body
    body, kind = errors.init_failure_body(InitFailure("spawn", detail="no bootstrap"), "r")
    assert kind == "Runtime.InvalidEntrypoint" and b"no bootstrap" in body


def test_error_type_of_prefers_the_header() -> None:
    assert errors.error_type_of(b'{"errorType": "A"}', "B") == "B"
    assert errors.error_type_of(b'{"errorType": "A"}', None) == "A"
    assert errors.error_type_of(b"not json", None) == "Unhandled"
