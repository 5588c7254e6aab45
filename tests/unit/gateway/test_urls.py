"""Function URLs' pure parts: host and path routing, the 2.0 event, the response mapping, CORS."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelambda.api.function import Cors
from kubelambda.gateway.urls import cors
from kubelambda.gateway.urls.event import UrlRequest, build_event, is_text
from kubelambda.gateway.urls.response import BadResponse, map_result, split_prelude
from kubelambda.serving.urls import UrlDomain, route_path

LABEL = st.from_regex(r"^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$", fullmatch=True)


@given(LABEL, LABEL, st.sampled_from([None, 80, 9000]))
def test_the_url_handed_out_routes_back_to_its_function(fn: str, ns: str, port: int | None) -> None:
    domain = UrlDomain("lambda-url.localhost", "http", port)
    url = domain.url(ns, fn)
    host = url.split("://", 1)[1].rstrip("/")
    assert domain.route_host(host) == (ns, fn)
    assert domain.route_host(host.upper()) == (ns, fn)


def test_hosts_that_are_not_function_urls() -> None:
    domain = UrlDomain("lambda-url.localhost")
    for host in (
        None,
        "",
        "127.0.0.1:9000",
        "lambda-url.localhost",
        "a.lambda-url.localhost",
        "a.b.c.lambda-url.localhost",
        "a_b.ns.lambda-url.localhost",
        "fn.ns.lambda-url.localhost.evil",
        "[::1]:9000",
    ):
        assert domain.route_host(host) is None, host
    assert UrlDomain("x.io", "https", 443).url("ns", "fn") == "https://fn.ns.x.io/"


def test_path_form() -> None:
    assert route_path("/urls/ns/fn") == ("ns", "fn", "/")
    assert route_path("/urls/ns/fn/") == ("ns", "fn", "/")
    assert route_path("/urls/ns/fn/a/b") == ("ns", "fn", "/a/b")
    assert route_path("/urls/ns") is None
    assert route_path("/urls/NS/fn/") is None
    assert route_path("/2015-03-31/functions") is None


def request(**fields: object) -> UrlRequest:
    base: dict[str, object] = {
        "method": "GET",
        "raw_path": "/",
        "raw_query": "",
        "headers": [],
        "body": b"",
        "source_ip": "10.0.0.1",
        "domain_name": "fn.ns.lambda-url.localhost",
        "request_id": "rid",
        "epoch": 1583348638.390,
    }
    base.update(fields)
    return UrlRequest(**base)  # type: ignore[arg-type]


def test_event_headers_cookies_query_and_context() -> None:
    event = build_event(
        request(
            raw_query="x=1&x=2&empty=&sp=a%20b",
            headers=[
                ("Cookie", "a=1; b=2"),
                ("X-Many", "1"),
                ("x-many", "2"),
                ("User-Agent", "ua"),
            ],
        )
    )
    assert event["headers"] == {"x-many": "1,2", "user-agent": "ua"}
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["queryStringParameters"] == {"x": "1,2", "empty": "", "sp": "a b"}
    assert event["rawQueryString"] == "x=1&x=2&empty=&sp=a%20b"
    assert "body" not in event and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["time"] == "04/Mar/2020:19:03:58 +0000"
    assert context["timeEpoch"] == 1583348638390
    assert context["http"]["userAgent"] == "ua" and context["http"]["sourceIp"] == "10.0.0.1"
    assert "queryStringParameters" not in build_event(request())
    assert "cookies" not in build_event(request())


@given(st.binary(min_size=1, max_size=200))
def test_binary_bodies_are_base64_and_round_trip(body: bytes) -> None:
    event = build_event(request(body=body, headers=[("Content-Type", "image/png")]))
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_text_bodies_stay_text_unless_they_are_not_utf8() -> None:
    for kind in (
        "text/plain; charset=utf-8",
        "application/json",
        "application/x-www-form-urlencoded",
    ):
        assert is_text(kind)
    assert not is_text("application/octet-stream") and not is_text(None)
    event = build_event(request(body=b"\xff\xfe", headers=[("content-type", "text/plain")]))
    assert event["isBase64Encoded"] is True


def test_iam_callers_are_in_the_authorizer() -> None:
    iam = {"accessKey": "AKID", "userArn": "arn:aws:iam::000000000000:user/alice"}
    context = build_event(request(iam=iam))["requestContext"]
    assert context["authorizer"] == {"iam": iam}


def test_response_mapping() -> None:
    plain = map_result(b'{"message": "hi"}')
    assert (plain.status, plain.body) == (200, b'{"message": "hi"}')
    assert plain.headers == [("Content-Type", "application/json")]
    text = map_result(b'"Hello"')
    assert text.body == b'"Hello"'
    mapped = map_result(
        json.dumps(
            {
                "statusCode": 201,
                "headers": {"X-A": "1", "Content-Type": "text/plain", "X-N": 5, "X-B": True},
                "cookies": ["a=1", "b=2; Secure"],
                "body": "created",
            }
        ).encode()
    )
    assert mapped.status == 201 and mapped.body == b"created"
    assert ("X-N", "5") in mapped.headers and ("X-B", "true") in mapped.headers
    assert [v for k, v in mapped.headers if k == "Set-Cookie"] == ["a=1", "b=2; Secure"]
    binary = map_result(b'{"statusCode": 200, "body": "AAEC", "isBase64Encoded": true}')
    assert binary.body == b"\x00\x01\x02"
    assert map_result(b'{"statusCode": 204}').body == b""
    for bad in (
        b'{"statusCode": "x"}',
        b'{"statusCode": 99}',
        b'{"statusCode": 200, "headers": []}',
        b'{"statusCode": 200, "body": "%%%", "isBase64Encoded": true}',
    ):
        with pytest.raises(BadResponse):
            map_result(bad)


def test_stream_prelude() -> None:
    assert split_prelude(b'{"statusCode": 201}') is None
    head, rest = split_prelude(b'{"statusCode": 201, "cookies": ["a=1"]}' + b"\0" * 8 + b"body")  # type: ignore[misc]
    assert head.status == 201 and ("Set-Cookie", "a=1") in head.headers and rest == b"body"
    with pytest.raises(BadResponse):
        split_prelude(b"[1]" + b"\0" * 8)


CONFIG = Cors(
    allow_origins=["https://app.example"],
    allow_methods=["GET", "POST"],
    allow_headers=["X-Test"],
    expose_headers=["x-app"],
    max_age=60,
    allow_credentials=True,
)


def test_preflight() -> None:
    asked = {"origin": "https://app.example", "access-control-request-method": "POST"}
    assert cors.is_preflight("OPTIONS", asked) and not cors.is_preflight("GET", asked)
    granted = dict(cors.preflight(CONFIG, asked))
    assert granted["Access-Control-Allow-Origin"] == "https://app.example"
    assert granted["Access-Control-Allow-Credentials"] == "true"
    assert granted["Access-Control-Allow-Methods"] == "GET,POST"
    assert granted["Access-Control-Allow-Headers"] == "x-test"
    assert granted["Access-Control-Max-Age"] == "60"
    assert cors.preflight(CONFIG, {**asked, "access-control-request-method": "DELETE"}) == []
    assert cors.preflight(CONFIG, {**asked, "origin": "https://evil.example"}) == []
    anyone = Cors(allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
    wild = dict(cors.preflight(anyone, {**asked, "access-control-request-headers": "a,b"}))
    assert wild["Access-Control-Allow-Origin"] == "*"
    assert wild["Access-Control-Allow-Headers"] == "a,b"


def test_cors_on_responses_replaces_the_functions_own() -> None:
    own = [("Access-Control-Allow-Origin", "*"), ("X-Kept", "1")]
    out = cors.apply(CONFIG, "https://app.example", own)
    assert ("X-Kept", "1") in out
    assert [v for k, v in out if k == "Access-Control-Allow-Origin"] == ["https://app.example"]
    assert ("Access-Control-Expose-Headers", "x-app") in out and ("Vary", "Origin") in out
    assert cors.apply(CONFIG, "https://evil.example", own) == [("X-Kept", "1")]
