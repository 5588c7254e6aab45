"""CORS for function URLs, answered by the gateway from the URL's `cors` config. Pure.

A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered without invoking
the function. On other responses the gateway sets the CORS headers and drops any the function
set itself, as Lambda does once a URL has a CORS config. An origin that is not allowed gets no
Access-Control-Allow-Origin, so the browser refuses the response.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubelambda.api.function import Cors

Headers = list[tuple[str, str]]


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    return (
        method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers
    )


def _allowed_origin(cors: Cors, origin: str | None) -> str | None:
    if not origin:
        return None
    allowed = [o.rstrip("/").lower() for o in cors.allow_origins]
    if "*" in allowed:
        # A credentialed answer may not use the wildcard: browsers refuse it.
        return origin if cors.allow_credentials else "*"
    return origin if origin.rstrip("/").lower() in allowed else None


def _origin_headers(cors: Cors, origin: str) -> Headers:
    headers = [("Access-Control-Allow-Origin", origin)]
    if cors.allow_credentials:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    if origin != "*":
        headers.append(("Vary", "Origin"))
    return headers


def preflight(cors: Cors, headers: Mapping[str, str]) -> Headers:
    """The headers of the 200 that answers a preflight (`headers`: lower-cased names)."""
    origin = _allowed_origin(cors, headers.get("origin"))
    if origin is None:
        return []
    method = headers.get("access-control-request-method", "").upper()
    methods = [m.upper() for m in cors.allow_methods]
    if "*" not in methods and method not in methods:
        return []
    out = _origin_headers(cors, origin)
    out.append(("Access-Control-Allow-Methods", ",".join(methods) if methods else method))
    requested = headers.get("access-control-request-headers", "")
    allow = [h.lower() for h in cors.allow_headers]
    if "*" in allow and requested:
        out.append(("Access-Control-Allow-Headers", requested))
    elif allow:
        out.append(("Access-Control-Allow-Headers", ",".join(allow)))
    if cors.max_age is not None:
        out.append(("Access-Control-Max-Age", str(cors.max_age)))
    return out


def apply(cors: Cors, origin: str | None, response_headers: Headers) -> Headers:
    """The function's response headers with the URL's CORS headers in place of its own."""
    kept = [(k, v) for k, v in response_headers if not k.lower().startswith("access-control-")]
    allowed = _allowed_origin(cors, origin)
    if allowed is None:
        return kept
    kept += _origin_headers(cors, allowed)
    if cors.expose_headers:
        kept.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
    return kept
