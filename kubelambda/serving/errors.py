"""Lambda-shaped API errors: the `x-amzn-ErrorType` header, status code and JSON body.

The table mirrors botocore's Lambda service model (a unit test checks every entry against it),
so boto3 and the AWS CLI raise the same exception classes they raise against AWS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

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

# Answers botocore's model has no shape for. botocore still raises a ClientError with the code;
# 501 is not among the statuses its retry handlers retry.
UNMODELED: dict[str, tuple[int, str]] = {
    "AccessDeniedException": (403, "Message"),  # Kubernetes RBAC refused the caller
    "NotImplementedException": (501, "message"),  # an operation kubelambda does not serve
}

# ThrottleReason values from the service model.
RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"


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
        return (ERRORS.get(self.code) or UNMODELED[self.code])[0]

    def body(self) -> bytes:
        _, message_key = ERRORS.get(self.code) or UNMODELED[self.code]
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


def too_large(size: int, limit: int) -> LambdaError:
    return LambdaError(
        "RequestTooLargeException",
        f"Request must be smaller than {limit} bytes for the InvokeFunction operation "
        f"(got {size} bytes)",
    )


def bad_json(detail: str) -> LambdaError:
    return LambdaError(
        "InvalidRequestContentException",
        f"Could not parse request body into json: Could not parse payload into json: {detail}",
    )


def bad_parameter(message: str) -> LambdaError:
    return LambdaError("InvalidParameterValueException", message)
