"""kubelambda's Python runtime: `python -m kubelambda.runtime.bootstrap`.

It speaks the Lambda Runtime API at AWS_LAMBDA_RUNTIME_API over one keep-alive connection, or,
released by the warm shim with the pipe channel, as frames on the shim's socketpair (both in
`runtime_client`); it imports `_HANDLER` (init) and calls it with Lambda's context object for
each event. Errors use Lambda's JSON (errorMessage, errorType, requestId, stackTrace) and
Lambda's init error types. Standard library only, so it starts fast; the warm shim imports it
ahead of time.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from types import TracebackType
from typing import Any

from kubelambda.runtime.handler_stream import is_stream, stream_parts
from kubelambda.runtime.runtime_client import PipeClient, RuntimeClient

Handler = Callable[[Any, "LambdaContext"], Any]


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, data: dict[str, Any] | None) -> None:
        data = data or {}
        self.cognito_identity_id = data.get("cognitoIdentityId")
        self.cognito_identity_pool_id = data.get("cognitoIdentityPoolId")


class Client:
    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __init__(self, data: dict[str, Any] | None) -> None:
        data = data or {}
        self.installation_id = data.get("installation_id")
        self.app_title = data.get("app_title")
        self.app_version_name = data.get("app_version_name")
        self.app_version_code = data.get("app_version_code")
        self.app_package_name = data.get("app_package_name")


class ClientContext:
    __slots__ = ("client", "custom", "env")

    def __init__(self, data: dict[str, Any]) -> None:
        self.client = Client(data.get("client")) if data.get("client") is not None else None
        self.custom = data.get("custom")
        self.env = data.get("env")


class LambdaContext:
    """The context object, with the attributes and methods Lambda's Python runtime provides."""

    def __init__(
        self,
        request_id: str,
        deadline_ms: int,
        invoked_function_arn: str,
        client_context: dict[str, Any] | None = None,
        identity: dict[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> None:
        env = os.environ
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.client_context = ClientContext(client_context) if client_context else None
        self.identity = CognitoIdentity(identity)
        self.tenant_id = tenant_id
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, message: str) -> None:
        sys.stdout.write(str(message))
        sys.stdout.flush()


class Fault(Exception):
    """A failure Lambda reports with one of its own error types (Runtime.*)."""

    def __init__(self, error_type: str, message: str, trace: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.trace = trace or []


def load_handler(name: str) -> Handler:
    """Import `module.function`, raising Fault with Lambda's error types."""
    try:
        module_name, function_name = name.rsplit(".", 1)
    except ValueError as exc:
        raise Fault("Runtime.MalformedHandlerName", f"Bad handler '{name}': {exc}") from None
    module_name = module_name.replace("/", ".")
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise Fault(
            "Runtime.BuiltInModuleConflict",
            f"Cannot use built-in module {module_name} as a handler module",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise Fault(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from None
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise Fault(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc}",
            trace,
        ) from None
    handler = getattr(module, function_name, None)
    if handler is None:
        raise Fault(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        )
    return handler  # type: ignore[no-any-return]


def stack_trace(tb: TracebackType | None) -> list[str]:
    """Formatted frames of a traceback, without this module's own frames."""
    import traceback  # only errors pay for it (the warm shim pre-imports it)

    frames = [f for f in traceback.extract_tb(tb) if f.filename != __file__]
    return traceback.format_list(frames)


def error_json(exc: BaseException, request_id: str = "") -> dict[str, Any]:
    if isinstance(exc, Fault):
        return make_error(str(exc), exc.error_type, exc.trace, request_id)
    return make_error(str(exc), type(exc).__name__, stack_trace(exc.__traceback__), request_id)


def make_error(message: str, error_type: str, trace: list[str], request_id: str) -> dict[str, Any]:
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": trace,
    }


def log_error(error: dict[str, Any]) -> None:
    """Write an error to the function's log as Lambda's Python runtime does."""
    lines = [f"[ERROR] {error['errorType']}: {error['errorMessage']}"]
    if error["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        lines += [line.rstrip("\n") for line in error["stackTrace"]]
    sys.stdout.write("\n".join(lines) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_result(result: Any) -> tuple[bytes, str]:
    if isinstance(result, bytes):
        return result, "application/unknown"
    try:
        return json.dumps(result, default=_json_default).encode(), "application/json"
    except (TypeError, ValueError) as exc:
        raise Fault("Runtime.MarshalError", f"Unable to marshal response: {exc}") from None


_RESPONSE_MODE = "Lambda-Runtime-Function-Response-Mode"


class _RequestIdFilter(logging.Filter):
    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


_REQUEST = _RequestIdFilter()


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                + f".{int(record.msecs):03d}Z",
                "level": record.levelname,
                "message": record.getMessage(),
                "logger": record.name,
                "requestId": getattr(record, "aws_request_id", ""),
            }
        )


# AWS_LAMBDA_LOG_LEVEL's names as the logging module's levels, mapped as Lambda's runtime does.
LOG_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
}


def setup_logging() -> None:
    """The root logger writes Lambda's format to stdout, with the request id on each line."""
    handler = logging.StreamHandler(sys.stdout)
    if os.environ.get("AWS_LAMBDA_LOG_FORMAT") == "JSON":
        handler.setFormatter(_JsonFormatter())
    else:
        formatter = logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
            "%Y-%m-%dT%H:%M:%S",
        )
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    handler.addFilter(_REQUEST)
    root = logging.getLogger()
    root.addHandler(handler)
    level = LOG_LEVELS.get(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper())
    if level is not None:
        root.setLevel(level)


def _parse_json_header(value: str | None) -> dict[str, Any] | None:
    parsed: dict[str, Any] | None = json.loads(value) if value else None
    return parsed


def serve(client: RuntimeClient | PipeClient, handler: Handler) -> None:
    """The invoke loop: next event, call the handler, post its result or error (and ask for
    the next event with it)."""
    environ = os.environ
    stdout, stderr = sys.stdout, sys.stderr
    streamer: RuntimeClient | None = None  # HTTP, for streamed responses
    body, headers = client.next()
    while True:
        request_id = headers.get("lambda-runtime-aws-request-id", "")
        _REQUEST.request_id = request_id
        trace_id = headers.get("lambda-runtime-trace-id")
        if trace_id:
            environ["_X_AMZN_TRACE_ID"] = trace_id
        else:
            environ.pop("_X_AMZN_TRACE_ID", None)
        try:
            context = LambdaContext(
                request_id,
                int(headers.get("lambda-runtime-deadline-ms") or 0),
                headers.get("lambda-runtime-invoked-function-arn", ""),
                _parse_json_header(headers.get("lambda-runtime-client-context")),
                _parse_json_header(headers.get("lambda-runtime-cognito-identity")),
                headers.get("lambda-runtime-aws-tenant-id"),
            )
            try:
                event = json.loads(body) if body else {}
            except ValueError as exc:
                raise Fault("Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}") from None
            returned = handler(event, context)
            if is_stream(returned):
                content_type, chunks = stream_parts(returned, _json_default)
            else:
                result, content_type = encode_result(returned)
        except Exception as exc:
            error = error_json(exc, request_id)
            log_error(error)
            stdout.flush()
            stderr.flush()
            body, headers = client.respond_then_next(
                f"/invocation/{request_id}/error",
                json.dumps(error).encode(),
                {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Function-Error-Type": error["errorType"],
                },
            )
            continue
        if is_stream(returned):
            # The pipe carries whole messages only: a stream goes over HTTP (the same Runtime
            # API core answers both), then the next event is asked for on `client` again.
            if streamer is None:
                streamer = (
                    client
                    if isinstance(client, RuntimeClient)
                    else RuntimeClient(environ["AWS_LAMBDA_RUNTIME_API"])
                )
            streamer.post_stream(
                f"/invocation/{request_id}/response",
                _flushed(chunks, request_id, stdout, stderr),
                {"Content-Type": content_type, _RESPONSE_MODE: "streaming"},
            )
            body, headers = client.next()
            continue
        # The agent cuts the log at the response: what the handler printed must be out first.
        stdout.flush()
        stderr.flush()
        body, headers = client.respond_then_next(
            f"/invocation/{request_id}/response", result, {"Content-Type": content_type}
        )


def _flushed(chunks: Iterator[bytes], request_id: str, *outputs: Any) -> Iterator[bytes]:
    """The chunks, with what the handler printed flushed before each one goes out; a failure
    is logged (Lambda's error JSON) before the stream is broken off."""
    try:
        for chunk in chunks:
            for output in outputs:
                output.flush()
            yield chunk
    except Exception as exc:
        log_error(error_json(exc, request_id))
        for output in outputs:
            output.flush()
        raise


def post_init_error(client: RuntimeClient | PipeClient, error: dict[str, Any]) -> None:
    log_error(error)
    sys.stdout.flush()
    client.post(
        "/init/error",
        json.dumps(error).encode(),
        {
            "Content-Type": "application/json",
            "Lambda-Runtime-Function-Error-Type": error["errorType"],
        },
    )


def report_init_error(error_type: str, message: str) -> None:
    """Report an init failure found outside the handler (e.g. an entry point that won't exec)."""
    client = RuntimeClient(os.environ["AWS_LAMBDA_RUNTIME_API"])
    post_init_error(client, make_error(message, error_type, [], ""))


def main(channel_fd: int | None = None) -> None:
    """Serve until the agent goes away; `channel_fd`: the warm shim's socketpair (the pipe
    channel), else HTTP at AWS_LAMBDA_RUNTIME_API."""
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    task_root = os.environ.get("LAMBDA_TASK_ROOT")
    if task_root and task_root not in sys.path:
        sys.path.insert(0, task_root)
    client: RuntimeClient | PipeClient
    if channel_fd is not None:
        client = PipeClient(channel_fd)
    else:
        client = RuntimeClient(os.environ["AWS_LAMBDA_RUNTIME_API"])
    setup_logging()
    try:
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except Exception as exc:
        post_init_error(client, error_json(exc))
        sys.exit(1)
    serve(client, handler)


if __name__ == "__main__":
    main()
