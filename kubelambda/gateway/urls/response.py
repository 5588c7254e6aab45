"""What a function URL answers: Lambda's response mapping of the function's result. Pure.

A JSON object with `statusCode` is mapped (headers, `cookies` as Set-Cookie, `body`, decoded
when `isBase64Encoded`); anything else is the body of a 200 `application/json` answer. A
streamed response may begin with Lambda's HTTP integration prelude (its JSON, then eight NUL
bytes), which carries the status, headers and cookies of the stream that follows.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

# The Content-Type a runtime gives a streamed response that starts with a prelude.
HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
PRELUDE_END = b"\0" * 8
JSON = "application/json"


class BadResponse(ValueError):
    """The function's result cannot be an HTTP response (Lambda answers 502)."""


@dataclass
class UrlResponse:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def _head(document: dict[str, Any]) -> UrlResponse:
    try:
        status = int(document.get("statusCode", 200))
    except (TypeError, ValueError):
        raise BadResponse(f"statusCode {document.get('statusCode')!r} is not a number") from None
    if not 100 <= status <= 599:
        raise BadResponse(f"statusCode {status} is not an HTTP status")
    raw_headers = document.get("headers")
    raw_headers = {} if raw_headers is None else raw_headers
    cookies = document.get("cookies")
    cookies = [] if cookies is None else cookies
    if not isinstance(raw_headers, dict) or not isinstance(cookies, list):
        raise BadResponse("headers must be an object and cookies a list")
    headers = [(str(k), _text(v)) for k, v in raw_headers.items() if v is not None]
    headers += [("Set-Cookie", str(c)) for c in cookies]
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", JSON))
    return UrlResponse(status, headers)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def map_result(payload: bytes) -> UrlResponse:
    """The HTTP response for a buffered function's result; raises BadResponse."""
    try:
        document = json.loads(payload) if payload.strip() else None
    except (ValueError, UnicodeDecodeError):
        return UrlResponse(200, [("Content-Type", JSON)], payload)
    if not isinstance(document, dict) or "statusCode" not in document:
        return UrlResponse(200, [("Content-Type", JSON)], payload)
    response = _head(document)
    body = document.get("body")
    if body is None:
        return response
    if not isinstance(body, str):
        body = json.dumps(body)
    if document.get("isBase64Encoded"):
        try:
            response.body = base64.b64decode(body, validate=True)
        except binascii.Error:
            raise BadResponse("isBase64Encoded is set but body is not base64") from None
    else:
        response.body = body.encode()
    return response


def split_prelude(buffer: bytes) -> tuple[UrlResponse, bytes] | None:
    """(head, rest of the body) once `buffer` holds the whole prelude; None while it does not.

    Raises BadResponse when the prelude is not a JSON object.
    """
    end = buffer.find(PRELUDE_END)
    if end < 0:
        return None
    try:
        document = json.loads(buffer[:end] or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BadResponse("the response prelude is not JSON") from None
    if not isinstance(document, dict):
        raise BadResponse("the response prelude is not a JSON object")
    return _head(document), buffer[end + len(PRELUDE_END) :]
