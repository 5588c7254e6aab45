"""Lambda-shaped API errors: the `x-amzn-ErrorType` header, status code and JSON body.

The table mirrors botocore's Lambda service model (a unit test checks every entry against it),
so boto3 and the AWS CLI raise the same exception classes they raise against AWS.
`as_lambda_error` is the one place that turns any failure into one of them: the gateway's
middleware and the dispatch core both call it, so nothing reaches a client as a bare 500.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from kubelambda.runtime.archive import CodeError
from kubelambda.runtime.invocation import InvalidClientContext

log = logging.getLogger(__name__)

# error code -> (HTTP status, the body member that holds the message: botocore spells it
# "Message" for some shapes and "message" for others)
ERRORS: dict[str, tuple[int, str]] = {
    "ResourceNotFoundException": (404, "Message"),
    "TooManyRequestsException": (429, "message"),
    "RequestTooLargeException": (413, "message"),
    "InvalidRequestContentException": (400, "message"),
    "InvalidParameterValueException": (400, "message"),
    "ResourceConflictException": (409, "message"),
    "ResourceNotReadyException": (502, "message"),
    "UnsupportedMediaTypeException": (415, "message"),
    "ServiceException": (500, "Message"),
    "PreconditionFailedException": (412, "message"),
    "ProvisionedConcurrencyConfigNotFoundException": (404, "message"),
    "ResourceInUseException": (400, "Message"),
}

# AWS's own auth errors: not in Lambda's model (every AWS service answers them the same way);
# botocore raises ClientError with these codes from the x-amzn-ErrorType header.
AUTH_ERRORS: dict[str, tuple[int, str]] = {
    "MissingAuthenticationTokenException": (403, "message"),
    "UnrecognizedClientException": (403, "message"),
    "InvalidSignatureException": (403, "message"),
    "AccessDeniedException": (403, "Message"),  # also: Kubernetes RBAC refused the caller
}
_TABLE = {**ERRORS, **AUTH_ERRORS}

# ThrottleReason values from the service model.
RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"
# Over the scaling rate (new environments per 10 s), for unreserved and reserved functions.
RATE_LIMIT = "FunctionInvocationRateLimitExceeded"
RESERVED_RATE_LIMIT = "ReservedFunctionInvocationRateLimitExceeded"


@dataclass
class LambdaError(Exception):
    """An error answered to the client exactly as Lambda would."""

    code: str
    message: str
    extra: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.code}: {self.message}")

    @property
    def status(self) -> int:
        return _TABLE[self.code][0]

    def body(self) -> bytes:
        _, message_key = _TABLE[self.code]
        kind = "Service" if self.status >= 500 else "User"
        return json.dumps({"Type": kind, message_key: self.message, **self.extra}).encode()

    def response_headers(self) -> dict[str, str]:
        return {"x-amzn-ErrorType": self.code, "Content-Type": "application/json", **self.headers}


def not_found(what: str) -> LambdaError:
    return LambdaError("ResourceNotFoundException", f"Function not found: {what}")


def throttled(reason: str) -> LambdaError:
    message = {
        RESERVED_LIMIT: "Rate Exceeded.",
        ACCOUNT_LIMIT: "Rate Exceeded.",
    }.get(reason, "Rate Exceeded.")
    return LambdaError(
        "TooManyRequestsException", message, extra={"Reason": reason}, headers={"Retry-After": "1"}
    )


def too_large(size: int, limit: int, operation: str = "InvokeFunction") -> LambdaError:
    return LambdaError(
        "RequestTooLargeException",
        f"Request must be smaller than {limit} bytes for the {operation} operation "
        f"(got {size} bytes)",
    )


def bad_json(detail: str) -> LambdaError:
    return LambdaError(
        "InvalidRequestContentException",
        f"Could not parse request body into json: Could not parse payload into json: {detail}",
    )


def bad_parameter(message: str) -> LambdaError:
    return LambdaError("InvalidParameterValueException", message)


def unknown_operation(method: str, path: str) -> LambdaError:
    """A request that matches no operation of the Lambda API (unknown path or method)."""
    return LambdaError(
        "ResourceNotFoundException",
        f"No Lambda API operation matches {method} {path}",
    )


def unserved_operation(operation: str, method: str, path: str) -> LambdaError:
    """An operation of botocore's Lambda model that this gateway does not serve."""
    return LambdaError(
        "InvalidParameterValueException",
        f"The {operation} operation ({method} {path}) is not served by kubelambda; "
        "docs/compatibility.md lists the operations that are",
        extra={"Operation": operation},
    )


def as_lambda_error(exc: BaseException) -> LambdaError:
    """The Lambda error a failure is answered with: the caller's fault as a 4xx naming what was
    wrong, anything unexpected as ServiceException (logged with its traceback)."""
    if isinstance(exc, LambdaError):
        return exc
    if isinstance(exc, InvalidClientContext):
        return LambdaError("InvalidRequestContentException", str(exc))
    if isinstance(exc, CodeError):
        return LambdaError("InvalidParameterValueException", f"The function's code: {exc}")
    log.error("unexpected failure answered as ServiceException", exc_info=exc)
    return LambdaError("ServiceException", f"The gateway failed to serve the request: {exc!r}")
