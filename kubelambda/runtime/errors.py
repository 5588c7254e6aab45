"""The agent's exceptions and the error bodies it produces in Lambda's exact shapes.

Everything here is pure: the environment decides *that* an invocation timed out or its runtime
exited; these functions decide what the caller and the log then see.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from kubelambda.runtime.limits import MAX_RESPONSE_BYTES


class EnvironmentBusy(RuntimeError):
    """The environment is serving another invocation; environments never queue."""


class EnvironmentStateError(RuntimeError):
    """The call does not fit the environment's state (e.g. invoke before specialize)."""


# posted: the runtime called init/error; exit: it died; timeout: the init bound passed;
# spawn: it could not be started (no entry point).
InitFailureKind = Literal["posted", "exit", "timeout", "spawn"]
# A REPORT's Status: None on success.
Status = Literal["timeout", "error"]


@dataclass(frozen=True, slots=True)
class InitFailure:
    """Why an init phase failed; shaped into a body only when an invoke reports it."""

    kind: InitFailureKind
    body: bytes = b""
    error_type: str | None = None
    exit_status: int | None = None
    seconds: float = 0.0
    detail: str = ""


def lambda_timestamp(epoch: float) -> str:
    """Lambda's log timestamp: ISO 8601 in UTC with milliseconds, e.g. 2024-01-31T12:00:00.123Z."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def timeout_message(request_id: str, seconds: float, epoch: float) -> str:
    """The log line and error message of a timed-out invocation."""
    return f"{lambda_timestamp(epoch)} {request_id} Task timed out after {seconds:.2f} seconds"


def timeout_body(request_id: str, seconds: float, epoch: float) -> bytes:
    return _body("Sandbox.Timedout", timeout_message(request_id, seconds, epoch))


def exit_reason(returncode: int) -> str:
    """Go's wording, as Lambda prints it: "exit status 3" or "signal: killed"."""
    if returncode >= 0:
        return f"exit status {returncode}"
    names = {
        signal.SIGKILL: "killed",
        signal.SIGTERM: "terminated",
        signal.SIGSEGV: "segmentation fault",
        signal.SIGABRT: "aborted",
        signal.SIGINT: "interrupt",
        signal.SIGBUS: "bus error",
    }
    try:
        name = names.get(signal.Signals(-returncode)) or signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"signal: {name}"


def exit_error_body(request_id: str, returncode: int) -> bytes:
    return _body(
        "Runtime.ExitError",
        f"RequestId: {request_id} Error: Runtime exited with error: {exit_reason(returncode)}",
    )


class _Ended(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def body(self) -> bytes: ...
    @property
    def error_type(self) -> str | None: ...


def ending_kind(outcome: _Ended, oom_killed: bool) -> str:
    """How an invocation ended, with "oom" for going over memorySize: the kernel killed the
    runtime for its cgroup's memory.max, or (under the address-space cap) an allocation failed."""
    if outcome.kind == "exit" and oom_killed:
        return "oom"
    if outcome.kind == "error" and error_type_of(outcome.body, outcome.error_type) == "MemoryError":
        return "oom"
    return outcome.kind


def ended_body(kind: str, request_id: str, returncode: int) -> tuple[bytes, str]:
    """The body and error type of an invocation whose runtime was ended (not a timeout)."""
    if kind == "oom":
        return out_of_memory_body(request_id), "Runtime.OutOfMemory"
    return exit_error_body(request_id, returncode), "Runtime.ExitError"


def out_of_memory_body(request_id: str) -> bytes:
    """Lambda's answer when the runtime went over memorySize and was killed for it."""
    return _body(
        "Runtime.OutOfMemory",
        f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
    )


def response_too_large_body(size: int, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """What a response over `limit` is replaced with: the agent's limit, or the Invoke API's."""
    return _body(
        "Function.ResponseSizeTooLarge",
        f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
        f"({limit} bytes).",
    )


def init_failure_body(failure: InitFailure, request_id: str) -> tuple[bytes, str]:
    """The body the invoke that reports a failed init returns, and its error type."""
    if failure.kind == "posted":
        error_type = failure.error_type or _error_type_of(failure.body) or "Runtime.Unknown"
        body = failure.body or _body(error_type, f"RequestId: {request_id} Error: init failed")
        return body, error_type
    if failure.kind == "exit":
        return exit_error_body(request_id, failure.exit_status or 0), "Runtime.ExitError"
    if failure.kind == "timeout":
        # Lambda re-runs a timed-out init inside the invoke; what the caller sees is a timeout.
        return _body(
            "Sandbox.Timedout",
            f"RequestId: {request_id} Error: Init phase timed out after {failure.seconds:.2f} "
            "seconds",
        ), "Sandbox.Timedout"
    return _body(
        "Runtime.InvalidEntrypoint", f"RequestId: {request_id} Error: {failure.detail}"
    ), "Runtime.InvalidEntrypoint"


def error_type_of(body: bytes, header: str | None) -> str:
    """The error type of a runtime's invocation error: the header, else the body's errorType."""
    return header or _error_type_of(body) or "Unhandled"


def control_error(error_type: str, message: str) -> dict[str, str]:
    """A JSON error of the agent's control API (and of the Runtime API's own rejections)."""
    return {"errorType": error_type, "errorMessage": message}


def _body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


def _error_type_of(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    value = parsed.get("errorType") if isinstance(parsed, dict) else None
    return value if isinstance(value, str) and value else None
