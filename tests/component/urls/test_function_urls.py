"""Function URLs in dev mode: a Starlette app behind Mangum, reached by Host header and by the
path form, with real HTTP (http.client), plus Lambda's mapping, errors and CORS preflight."""

from __future__ import annotations

import http.client
import json
import os
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.component.gateway.conftest import DevGateway

DOMAIN = "lambda-url.localhost"


def call(
    gateway: DevGateway,
    method: str,
    path: str,
    *,
    host: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request to the gateway's port; `host` is the Host header (a function's own host)."""
    address = urlsplit(gateway.url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=60)
    try:
        sent = dict(headers or {})
        if host is not None:
            sent["Host"] = f"{host}:{address.port}"
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def by_host(function: str) -> str:
    return f"{function}.default.{DOMAIN}"


@pytest.mark.parametrize("form", ["host", "path"])
def test_mangum_app_routes_query_cookies_headers_status(gateway: DevGateway, form: str) -> None:
    host, prefix = (by_host("webapp"), "") if form == "host" else (None, "/urls/default/webapp")
    status, headers, body = call(
        gateway,
        "GET",
        f"{prefix}/items/42?tag=a&tag=b",
        host=host,
        headers={"Cookie": "session=s3cret; theme=dark", "X-Test": "present"},
    )
    assert status == 200, body
    document = json.loads(body)
    assert document == {
        "item": "42",
        "tags": ["a", "b"],
        "session": "s3cret",
        "theme": "dark",
        "x_test": "present",
        "path": "/items/42",  # the path form's prefix is not in rawPath
    }
    assert headers["X-App"] == "starlette"
    cookies = headers.get_all("Set-Cookie") or []
    assert sorted(c.split(";")[0] for c in cookies) == ["lang=en", "seen=1"]
    status, _, body = call(gateway, "GET", f"{prefix}/teapot", host=host)
    assert (status, body) == (418, b"short and stout")
    status, _, _ = call(gateway, "GET", f"{prefix}/nowhere", host=host)
    assert status == 404


def test_binary_bodies_both_ways(gateway: DevGateway) -> None:
    payload = os.urandom(2048) + b"\x00\xff"
    status, headers, body = call(
        gateway,
        "POST",
        "/echo-bytes",
        host=by_host("webapp"),
        body=payload,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status == 200
    assert headers["Content-Type"] == "application/octet-stream"
    assert body == bytes(reversed(payload))


def test_cors_preflight_is_answered_by_the_gateway(gateway: DevGateway) -> None:
    status, headers, body = call(
        gateway,
        "OPTIONS",
        "/items/1",
        host=by_host("webapp"),
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert status == 200 and body == b""
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert headers["Access-Control-Allow-Methods"] == "GET,POST"
    assert headers["Access-Control-Allow-Headers"] == "content-type,x-test"
    assert headers["Access-Control-Max-Age"] == "300"
    # A disallowed origin gets no grant, so the browser refuses.
    _, denied, _ = call(
        gateway,
        "OPTIONS",
        "/items/1",
        host=by_host("webapp"),
        headers={"Origin": "https://other.example", "Access-Control-Request-Method": "GET"},
    )
    assert "Access-Control-Allow-Origin" not in denied
    # On a real response the URL's CORS headers replace the function's own.
    _, actual, _ = call(
        gateway,
        "GET",
        "/items/1",
        host=by_host("webapp"),
        headers={"Origin": "https://app.example"},
    )
    assert actual.get_all("Access-Control-Allow-Origin") == ["https://app.example"]
    assert actual["Access-Control-Expose-Headers"] == "x-app"


def test_payload_format_2_0_field_for_field(gateway: DevGateway) -> None:
    status, headers, body = call(
        gateway,
        "POST",
        "/some/path?b=2&a=1&a=3",
        host=by_host("raw"),
        body=b'{"hello": "world"}',
        headers={
            "Content-Type": "application/json",
            "Cookie": "c1=v1; c2=v2",
            "User-Agent": "kubelambda-test",
            "X-Multi": "one",
        },
    )
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    event: dict[str, Any] = json.loads(body)
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/some/path"
    assert event["rawQueryString"] == "b=2&a=1&a=3"
    assert event["queryStringParameters"] == {"a": "1,3", "b": "2"}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-multi"] == "one"
    assert event["headers"]["content-type"] == "application/json"
    assert event["body"] == '{"hello": "world"}' and event["isBase64Encoded"] is False
    http_context = event["requestContext"]["http"]
    assert http_context == {
        "method": "POST",
        "path": "/some/path",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "kubelambda-test",
    }
    context = event["requestContext"]
    assert context["domainName"] == by_host("raw")
    assert context["domainPrefix"] == "raw"
    assert isinstance(context["timeEpoch"], int) and context["time"].endswith("+0000")
    assert context["requestId"] and "authorizer" not in context
    _, _, by_path = call(gateway, "GET", "/urls/default/raw/x")
    assert json.loads(by_path)["requestContext"]["domainName"] == by_host("raw")
    assert json.loads(by_path)["rawPath"] == "/x"


def test_errors_502_429_413_and_unknown_urls(gateway: DevGateway) -> None:
    status, headers, _ = call(gateway, "GET", "/", host=by_host("broken"))
    assert status == 502
    status, headers, _ = call(gateway, "GET", "/", host=by_host("capped"))
    assert status == 429 and headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    status, _, _ = call(
        gateway, "POST", "/", host=by_host("raw"), body=b"x" * (6 * 1024 * 1024 + 1)
    )
    assert status == 413
    status, _, _ = call(gateway, "GET", "/", host=by_host("nosuchfunction"))
    assert status == 404
    status, _, _ = call(gateway, "GET", "/urls/default/shellstream/")  # no functionUrl
    assert status == 404


def test_get_function_url_config_and_the_ready_line(gateway: DevGateway) -> None:
    config = gateway.client().get_function_url_config(FunctionName="webapp")
    port = urlsplit(gateway.url).port
    assert config["FunctionUrl"] == f"http://webapp.default.{DOMAIN}:{port}/"
    assert config["AuthType"] == "NONE" and config["InvokeMode"] == "BUFFERED"
    assert config["Cors"]["AllowOrigins"] == ["https://app.example"]
    assert config["Cors"]["MaxAge"] == 300
    assert config["FunctionUrl"] in gateway.log()
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as none:
        gateway.client().get_function_url_config(FunctionName="shellstream")
    assert none.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_response_stream_url_sends_prelude_status_and_chunks(gateway: DevGateway) -> None:
    status, headers, body = call(
        gateway,
        "POST",
        "/",
        host=by_host("streamer"),
        body=b"middle;",
        headers={"Content-Type": "text/plain"},
    )
    # Without the HTTP prelude the stream is a 200 of the runtime's content type.
    assert status == 200
    assert body == b"first;middle;second;third"
    assert headers["Transfer-Encoding"] == "chunked"


def test_response_stream_url_with_the_http_prelude(gateway: DevGateway) -> None:
    status, headers, body = call(gateway, "GET", "/prelude", host=by_host("streamer"))
    assert status == 201
    assert headers["X-Streamed"] == "yes"
    assert headers.get_all("Set-Cookie") == ["s=1"]
    assert body == b"first;second;third"
