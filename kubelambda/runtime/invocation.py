"""What the runtime receives with an event: the Lambda-Runtime-* headers of GET /next."""

from __future__ import annotations

import base64
import binascii
import json

from kubelambda.runtime.limits import CLIENT_CONTEXT_LIMIT
from kubelambda.runtime.spec import InvokeRequest


class InvalidClientContext(ValueError):
    """X-Amz-Client-Context was not base64-encoded JSON (Lambda answers 400 for it)."""


def decode_client_context(value: str | None) -> str | None:
    """The JSON text of a base64 client context, re-encoded as compact ASCII for a header."""
    if not value:
        return None
    if len(value) > CLIENT_CONTEXT_LIMIT:
        raise InvalidClientContext(
            f"Client context must be at most {CLIENT_CONTEXT_LIMIT} bytes of base64-encoded "
            f"data (got {len(value)} bytes)."
        )
    try:
        parsed = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise InvalidClientContext(
            "Client context must be a valid Base64-encoded JSON object."
        ) from exc
    if not isinstance(parsed, dict):
        raise InvalidClientContext("Client context must be a valid Base64-encoded JSON object.")
    return json.dumps(parsed, separators=(",", ":"))


def next_headers(
    request: InvokeRequest, deadline_ms: int, client_context: str | None
) -> dict[str, str]:
    """The response headers of GET /next for `request`, as Lambda sends them."""
    headers = {
        "Lambda-Runtime-Aws-Request-Id": request.request_id,
        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
        "Lambda-Runtime-Invoked-Function-Arn": request.invoked_function_arn,
        "Content-Type": "application/json",
    }
    if request.trace_id:
        headers["Lambda-Runtime-Trace-Id"] = request.trace_id
    if client_context:
        headers["Lambda-Runtime-Client-Context"] = client_context
    if request.cognito_identity:
        headers["Lambda-Runtime-Cognito-Identity"] = request.cognito_identity
    return headers
