"""Fuzzing the Invoke API and the read API with requests generated from botocore's Lambda model.

Every operation of the model is a template: its method and requestUri, its URI labels, query
members and headers (each drawn from the model's enums and patterns, from names that exist here,
and from Hypothesis' arbitrary text) and a body (JSON, broken JSON, bytes). Each request goes
over a real socket to a real `kubelambda dev`; the answer must never be a 5xx, and every error
must be JSON with `x-amzn-ErrorType` naming an error whose status botocore's model agrees
with. Afterwards the gateway must be healthy and the warm environment the same process.

`make test` sends FUZZ_EXAMPLES (default 2000) requests, within 60 s; `make fuzz` sends more.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import requests
from botocore.loaders import Loader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.component.gateway.conftest import DevGateway

MODEL: dict[str, Any] = Loader().load_service_model("lambda", "service-2")
SHAPES: dict[str, Any] = MODEL["shapes"]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))
READ_API = (
    "Invoke",
    "GetFunction",
    "GetFunctionConfiguration",
    "ListFunctions",
    "ListVersionsByFunction",
    "ListAliases",
    "GetAlias",
    "GetFunctionConcurrency",
)
HOSTILE = Path(__file__).parent / "hostile"
MANIFESTS = """\
apiVersion: kubelambda.dev/v1alpha1
kind: Function
metadata: {name: warm}
spec: {runtime: python3.11, handler: app.handler, code: {path: ./warm}, reservedConcurrency: 50}
---
apiVersion: kubelambda.dev/v1alpha1
kind: Version
metadata: {name: warm-1}
spec: {functionName: warm, version: 1}
---
apiVersion: kubelambda.dev/v1alpha1
kind: Alias
metadata: {name: warm-live}
spec: {functionName: warm, name: live, functionVersion: "1"}
"""
NAMES = [
    "warm",
    "warm:live",
    "warm:1",
    "warm:$LATEST",
    "default.warm",
    "function:warm",
    "arn:aws:lambda:us-east-1:000000000000:function:default.warm:live",
    "000000000000:function:warm",
    "nothing-here",
    "warm:9",
    "warm:nope",
]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevGateway]:
    folder = tmp_path_factory.mktemp("fuzz") / "fns"
    folder.mkdir()
    shutil.copytree(HOSTILE / "warm", folder / "warm")
    (folder / "fns.yaml").write_text(MANIFESTS)
    dev = DevGateway(folder, "--no-reload", "--warm-per-runtime", "1")
    yield dev
    dev.stop()


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=300)


def _value(shape_name: str, member: str) -> st.SearchStrategy[str]:
    shape = SHAPES[shape_name]
    choices: list[st.SearchStrategy[str]] = [_text]
    if "enum" in shape:
        choices.append(st.sampled_from(shape["enum"]))
    if shape.get("type") in ("integer", "long"):
        choices.append(st.integers(-5, 20_000).map(str))
    if shape.get("type") == "boolean":
        choices.append(st.sampled_from(["true", "false"]))
    if "Name" in member or member in ("Resource", "Qualifier", "FunctionVersion"):
        choices.append(st.sampled_from([*NAMES, "", "$LATEST", "1", "live", "a" * 200]))
    if member == "ClientContext":
        choices.append(st.sampled_from(["e30=", "!!", "WzFd", "A" * 3584]))
    return st.one_of(*choices)


_bodies = st.one_of(
    st.just(b""),
    st.just(b"{}"),
    st.sampled_from([b"NaN", b'{"a": Infinity}', b"[1,", b'"\xff"', b"null", b'{"k":1}']),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=10,
    ).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=512),
)


@st.composite
def requests_from_the_model(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes]:
    everything = sorted(MODEL["operations"])
    name = draw(st.one_of(st.sampled_from(READ_API), st.sampled_from(everything)))
    operation = MODEL["operations"][name]
    members = SHAPES[operation["input"]["shape"]]["members"] if "input" in operation else {}
    path, _, fixed = operation["http"]["requestUri"].partition("?")
    query: list[tuple[str, str]] = [tuple(kv.split("=", 1)) for kv in fixed.split("&") if kv]
    headers: dict[str, str] = {}
    for member, spec in members.items():
        location = spec.get("location")
        if location == "uri":
            value = draw(_value(spec["shape"], member)) or "x"
            path = path.replace("{" + spec.get("locationName", member) + "}", quote(value, safe=""))
        elif location == "querystring" and draw(st.booleans()):
            query.append((spec.get("locationName", member), draw(_value(spec["shape"], member))))
        elif location == "header" and draw(st.booleans()):
            value = draw(_value(spec["shape"], member))
            if not value.isprintable() or not value.isascii():
                value = quote(value)  # what a client can put in a header at all
            headers[spec.get("locationName", member)] = value
    if query:
        path += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    method = draw(st.sampled_from([operation["http"]["method"]] * 6 + ["PATCH", "GET", "POST"]))
    return method, path, headers, draw(_bodies)


def check_answer(response: requests.Response, request: str) -> None:
    check(response.status_code, response.headers, response.content, request)


def check(status: int, headers: Any, content: bytes, request: str) -> None:
    assert status < 500, f"{request} -> {status}: {content[:300]!r}"
    if status < 400:
        return
    code = headers.get("x-amzn-ErrorType", "")
    assert code, f"{request} -> {status} without x-amzn-ErrorType: {content[:300]!r}"
    assert headers["Content-Type"].startswith("application/json"), request
    body = json.loads(content)
    assert isinstance(body, dict) and ("message" in body or "Message" in body), request
    modelled = SHAPES.get(code, {}).get("error", {}).get("httpStatusCode")
    assert modelled == status, f"{request} -> {status} {code}, the model says {modelled}"


@pytest.mark.timeout(max(120, EXAMPLES // 10))  # about 20 ms a request; make fuzz sends more
def test_generated_requests_get_lambda_shaped_answers(fuzzed: DevGateway) -> None:
    loop = asyncio.new_event_loop()
    # aiohttp sends a request in one write (no delayed-ACK stall between headers and body).
    session = loop.run_until_complete(_session())
    pid = loop.run_until_complete(_call(session, "POST", fuzzed.url + INVOKE, {}, b"{}"))[2]
    sent = 0
    started = time.monotonic()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(requests_from_the_model())
    def one(request: tuple[str, str, dict[str, str], bytes]) -> None:
        nonlocal sent
        method, path, headers, body = request
        status, answer, content = loop.run_until_complete(
            _call(session, method, fuzzed.url + path, headers, body)
        )
        sent += 1
        check(status, answer, content, f"{method} {path} {headers}")

    try:
        one()
        elapsed = time.monotonic() - started
        print(f"fuzz: {sent} requests in {elapsed:.1f} s")
        assert sent >= EXAMPLES  # Hypothesis ran all it was asked to
        assert requests.get(fuzzed.url + "/healthz", timeout=10).json() == {"status": "ok"}
        after = loop.run_until_complete(_call(session, "POST", fuzzed.url + INVOKE, {}, b"{}"))
        assert json.loads(after[2])["pid"] == json.loads(pid)["pid"]  # still the same warm one
    finally:
        loop.run_until_complete(session.close())
        loop.close()


INVOKE = "/2015-03-31/functions/warm/invocations"


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30), skip_auto_headers=["Content-Type"]
    )


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], body: bytes
) -> tuple[int, Any, bytes]:
    async with session.request(method, yarl_url(url), headers=headers, data=body) as response:
        return response.status, response.headers, await response.read()


def yarl_url(url: str) -> Any:
    import yarl

    return yarl.URL(url, encoded=True)  # as generated: already quoted


def test_the_alphabet_of_names_reaches_the_parser(fuzzed: DevGateway) -> None:
    """Every printable character in a FunctionName is refused or served, never a 5xx."""
    for char in string.printable.strip():
        path = "/2015-03-31/functions/" + quote("warm" + char, safe="") + "/invocations"
        response = requests.post(fuzzed.url + path, data=b"{}", timeout=30)
        check_answer(response, path)
