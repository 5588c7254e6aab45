"""Auth's pure parts: SigV4 verification against botocore's signer (the reference), the key
rules, the decision cache and the --auth modes."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from kubelambda.gateway.auth import sigv4
from kubelambda.gateway.auth.cache import TtlCache
from kubelambda.gateway.auth.guard import parse_modes
from kubelambda.gateway.auth.keys import KeysError, parse_keys
from kubelambda.serving.errors import LambdaError

KEY, SECRET = "AKIDEXAMPLE000000001", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SEGMENT = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="/?#"),
    min_size=1,
    max_size=12,
)
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.~ :$%&=", min_size=0, max_size=10)


def botocore_signed(
    method: str, url: str, headers: dict[str, str], body: bytes
) -> sigv4.SignedRequest:
    """What a server receives from a request botocore signed (the HTTP client adds Host)."""
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(Credentials(KEY, SECRET), "lambda", "us-east-1").add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    sent = [("Host", parts.netloc), *prepared.headers.items()]
    return sigv4.SignedRequest(method, parts.path or "/", parts.query, sent, body)


def secret_of(key: str) -> str | None:
    return SECRET if key == KEY else None


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    st.lists(SEGMENT, max_size=4),
    st.lists(st.tuples(WORD, WORD), max_size=4),
    st.dictionaries(
        st.sampled_from(["X-Amz-Invocation-Type", "X-Custom", "Content-Type"]),
        st.text(alphabet="ab c\t-", min_size=1, max_size=8).map(str.strip).filter(bool),
    ),
    st.binary(max_size=64),
)
def test_what_botocore_signs_verifies(
    method: str,
    segments: list[str],
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
) -> None:
    from urllib.parse import quote, urlencode

    path = "/" + "/".join(quote(s, safe="") for s in segments)
    url = f"http://gw.example:9000{path}" + (f"?{urlencode(query)}" if query else "")
    request = botocore_signed(method, url, headers, body)
    auth = sigv4.verify(request, secret_of)
    assert (auth.access_key, auth.service, auth.region) == (KEY, "lambda", "us-east-1")


def test_any_change_to_what_was_signed_is_refused() -> None:
    request = botocore_signed(
        "POST",
        "http://gw:9000/2015-03-31/functions/echo/invocations?Qualifier=live",
        {"X-Amz-Invocation-Type": "Event"},
        b'{"a": 1}',
    )
    sigv4.verify(request, secret_of)
    changes = [
        {"body": b'{"a": 2}'},
        {"raw_path": "/2015-03-31/functions/other/invocations"},
        {"raw_query": "Qualifier=dev"},
        {"method": "PUT"},
        {
            "headers": [
                (k, "RequestResponse" if k == "X-Amz-Invocation-Type" else v)
                for k, v in request.headers
            ]
        },
    ]
    for change in changes:
        with pytest.raises(LambdaError) as refused:
            sigv4.verify(request._replace(**change), secret_of)  # type: ignore[arg-type]
        assert refused.value.code == "InvalidSignatureException", change


def test_errors_for_missing_unknown_and_skewed() -> None:
    request = botocore_signed("GET", "http://gw:9000/2015-03-31/functions/", {}, b"")
    bare = sigv4.SignedRequest("GET", "/", "", [("Host", "gw")], b"")
    with pytest.raises(LambdaError) as missing:
        sigv4.verify(bare, secret_of)
    assert missing.value.code == "MissingAuthenticationTokenException"
    with pytest.raises(LambdaError) as unknown:
        sigv4.verify(request, lambda key: None)
    assert unknown.value.code == "UnrecognizedClientException"
    now = time.time()
    sigv4.verify(request, secret_of, now=now + 290)
    for skew, words in ((301 + 5, "Signature expired"), (-301 - 5, "Signature not yet current")):
        with pytest.raises(LambdaError) as skewed:
            sigv4.verify(request, secret_of, now=now + skew)
        assert skewed.value.code == "InvalidSignatureException"
        assert skewed.value.message.startswith(words)


def test_dot_segments_are_removed_as_botocore_does() -> None:
    from botocore.utils import normalize_url_path

    for path in ("/a/./b/../c", "/a/b/..", "/../x", "/", "", "/a//b/", "/a/b/.", "//", "a/b"):
        assert sigv4.remove_dot_segments(path) == normalize_url_path(path), path


def test_keys_document_and_dev_rules() -> None:
    keys = parse_keys(
        "keys:\n- {accessKeyId: AKIDEXAMPLE000000001, secretAccessKey: 0123456789abcdefgh,"
        " user: bob, functions: ['team-a/*'], verbs: [invoke]}\n"
    ).by_id()
    bob = keys["AKIDEXAMPLE000000001"]
    assert bob.allows("invoke", "team-a", "x") and not bob.allows("invoke", "team-b", "x")
    assert not bob.allows("get", "team-a", "x")
    for bad, where in (
        ("keys: []", "keys"),
        (
            "keys: [{accessKeyId: short, secretAccessKey: 0123456789abcdefgh, user: u}]",
            "accessKeyId",
        ),
        (
            "keys: [{accessKeyId: AKIDEXAMPLE000000001, secretAccessKey: 0123456789abcdefgh,"
            " user: 'system:admin'}]",
            "user",
        ),
        ("{", "not YAML"),
    ):
        with pytest.raises(KeysError, match=where):
            parse_keys(bad)


def test_cache_expires_and_is_bounded() -> None:
    now = [0.0]
    cache: TtlCache[bool] = TtlCache(5.0, size=2, clock=lambda: now[0])
    cache.put("a", True)
    cache.put("b", False, ttl=1.0)
    assert cache.get("a") is True and cache.get("b") is False
    now[0] = 1.5
    assert cache.get("b") is None and cache.get("a") is True
    cache.put("c", True)
    cache.put("d", True)
    assert len(cache) == 2 and cache.get("a") is None
    now[0] = 10.0
    assert cache.get("c") is None


def test_auth_modes() -> None:
    assert parse_modes("none") == frozenset()
    assert parse_modes("sigv4,kubernetes") == {"sigv4", "kubernetes"}
    assert parse_modes("kubernetes") == {"kubernetes"}
    for bad in ("", "oauth", "sigv4,none"):
        with pytest.raises(ValueError):
            parse_modes(bad)


def test_malformed_timestamps_are_invalid_signatures() -> None:
    now = time.time()
    for stamp in ("20240101T000000", "2024-01-01T00:00:00Z", "20241301T000000Z", "x" * 16):
        with pytest.raises(LambdaError) as refused:
            sigv4.check_time(stamp, now)
        assert refused.value.code == "InvalidSignatureException", stamp
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    sigv4.check_time(stamp, now)


def test_every_lambda_api_route_is_guarded_and_nothing_else() -> None:
    """A route the guard's table misses would be served without authorization: the table must
    list exactly the Lambda API routes the gateway serves; only probes, metrics and function
    URLs are open (the operations it does not serve authenticate, then answer their error)."""
    from typing import Any, cast

    from kubelambda.gateway import operations
    from kubelambda.gateway.api import GatewayApi
    from kubelambda.gateway.auth.guard import OPEN, ROUTES
    from kubelambda.gateway.invoker import Invoker
    from kubelambda.gateway.pool import EnvironmentPool, PoolSettings

    pool = EnvironmentPool(cast(Any, None), PoolSettings())  # routes only: never started
    app = GatewayApi(Invoker(pool)).app()
    handled = {
        route.resource.canonical
        for route in app.router.routes()
        if route.resource is not None and route.handler.__module__ != operations.__name__
    }
    urls = {"/urls/{tail}"}  # URLs: their authType decides
    assert {"/healthz", "/readyz", "/metrics"} == OPEN
    assert handled - OPEN - urls == set(ROUTES)
    unserved = {r.canonical for r in app.router.resources()} - handled
    assert unserved and not unserved & (OPEN | set(ROUTES))


def test_control_operations_need_the_verb_of_their_method() -> None:
    from kubelambda.gateway.auth.guard import operation_verb

    assert operation_verb("POST", "CreateFunction", False) == "create"
    assert operation_verb("PUT", "UpdateFunctionCode", True) == "update"
    assert operation_verb("DELETE", "DeleteAlias", True) == "delete"
    assert operation_verb("GET", "GetAlias", True) == "get"
    assert operation_verb("GET", "ListLayers", False) == "list"
    assert operation_verb("GET", "GetAccountSettings", False) == "get"


def test_callers_who_may_not_read_get_no_environment() -> None:
    from kubelambda.gateway.control_api.routes import without_environment

    env = {"Variables": {"TOKEN": "x"}}
    got = without_environment("GetFunction", {"Configuration": {"Environment": env, "A": 1}})
    assert got == {"Configuration": {"A": 1}}
    listed = without_environment("ListFunctions", {"Functions": [{"Environment": env}, {}]})
    assert listed == {"Functions": [{}, {}]}
    assert without_environment("GetFunctionConfiguration", {"Environment": env}) == {}
    assert without_environment("ListVersionsByFunction", {"Versions": [{"Environment": env}]}) == {
        "Versions": [{}]
    }
    assert without_environment("GetAlias", {"Name": "live"}) == {"Name": "live"}


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["AKIDEXAMPLE000000001", "AK/ID", "AK ID", ""]),
    st.sampled_from(["20261201", "2026120", "2026-12-01"]),
    st.sampled_from(["us-east-1", "US", "eu west"]),
    st.sampled_from(["lambda", "s3"]),
    st.sampled_from(["aws4_request", "aws4"]),
    st.sampled_from(["host;x-amz-date", "host", "Host;X", "host;x_y.z"]),
    st.sampled_from(["0e12feb8a24b", "ZZ", "0e12 feb8"]),
    st.sampled_from([", ", ",", " , ", ",\t"]),
)
def test_the_usual_header_form_parses_as_the_general_parse_does(
    key: str,
    date: str,
    region: str,
    service: str,
    terminal: str,
    signed: str,
    signature: str,
    comma: str,
) -> None:
    """botocore's form takes a shortcut: wherever it applies, the result is the general one's."""
    header = (
        f"AWS4-HMAC-SHA256 Credential={key}/{date}/{region}/{service}/{terminal}{comma}"
        f"SignedHeaders={signed}{comma}Signature={signature}"
    )

    def outcome(parse: object) -> object:
        try:
            return parse(header)  # type: ignore[operator]
        except LambdaError as exc:
            return exc.code, exc.message

    assert outcome(sigv4.parse_authorization) == outcome(sigv4._parse_fields)
