"""The event a function URL sends its function: Lambda's payload format 2.0, field for field. Pure.

Headers are lower-cased and repeated ones comma-joined; the Cookie header becomes `cookies`;
repeated query parameters are comma-joined in `queryStringParameters` (absent without a query);
a body is base64-encoded unless its content type is text; `body` is absent without one.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from kubelambda.serving.names import ACCOUNT

# Content types sent to the function as text; everything else arrives base64-encoded.
_TEXT_MARKERS = ("json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "graphql", "csv")


@dataclass(frozen=True)
class UrlRequest:
    """One HTTP request to a function URL, as the gateway received it."""

    method: str
    raw_path: str  # without the query, the path form's prefix removed
    raw_query: str
    headers: Iterable[tuple[str, str]]  # as received, repeated names kept
    body: bytes
    source_ip: str
    domain_name: str
    request_id: str
    protocol: str = "HTTP/1.1"
    epoch: float = field(default_factory=time.time)
    iam: dict[str, Any] | None = None  # the SigV4 caller of an AWS_IAM URL


def is_text(content_type: str | None) -> bool:
    if not content_type:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind.startswith("text/") or any(marker in kind for marker in _TEXT_MARKERS)


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs:
        out[name] = f"{out[name]},{value}" if name in out else value
    return out


def clf_time(epoch: float) -> str:
    """The requestContext.time format: `12/Mar/2020:19:03:58 +0000`."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch))


def build_event(request: UrlRequest) -> dict[str, Any]:
    cookies: list[str] = []
    headers: list[tuple[str, str]] = []
    for name, value in request.headers:
        lower = name.lower()
        if lower == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        else:
            headers.append((lower, value))
    joined = _joined(headers)
    domain_prefix = request.domain_name.split(".", 1)[0]
    context: dict[str, Any] = {
        "accountId": "anonymous" if request.iam is None else ACCOUNT,
        "apiId": domain_prefix,
        "domainName": request.domain_name,
        "domainPrefix": domain_prefix,
        "http": {
            "method": request.method,
            "path": request.raw_path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": request.request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": clf_time(request.epoch),
        "timeEpoch": int(request.epoch * 1000),
    }
    if request.iam is not None:
        context["authorizer"] = {"iam": request.iam}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
        "headers": joined,
    }
    if cookies:
        event["cookies"] = cookies
    if request.raw_query:
        event["queryStringParameters"] = _joined(
            parse_qsl(request.raw_query, keep_blank_values=True)
        )
    event["requestContext"] = context
    if request.body:
        if is_text(joined.get("content-type")):
            try:
                event["body"] = request.body.decode()
                event["isBase64Encoded"] = False
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(request.body).decode()
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(request.body).decode()
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event
