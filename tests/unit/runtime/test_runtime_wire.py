"""Client context decoding, Runtime API headers, and the control API's header mapping."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelambda.runtime import wire
from kubelambda.runtime.invocation import (
    InvalidClientContext,
    decode_client_context,
    next_headers,
)
from kubelambda.runtime.spec import InvokeRequest, InvokeResult


def test_client_context_is_decoded_to_ascii_json() -> None:
    raw = base64.b64encode(json.dumps({"custom": {"k": "é"}}).encode()).decode()
    decoded = decode_client_context(raw)
    assert decoded is not None and decoded.isascii()
    assert json.loads(decoded) == {"custom": {"k": "é"}}
    assert decode_client_context(None) is None
    for bad in ("%%%", base64.b64encode(b"[1]").decode(), base64.b64encode(b"{").decode()):
        with pytest.raises(InvalidClientContext):
            decode_client_context(bad)


def test_next_headers() -> None:
    request = InvokeRequest(
        request_id="r", invoked_function_arn="arn", trace_id="Root=1", cognito_identity="{}"
    )
    headers = next_headers(request, 123, '{"a":1}')
    assert headers == {
        "Lambda-Runtime-Aws-Request-Id": "r",
        "Lambda-Runtime-Deadline-Ms": "123",
        "Lambda-Runtime-Invoked-Function-Arn": "arn",
        "Content-Type": "application/json",
        "Lambda-Runtime-Trace-Id": "Root=1",
        "Lambda-Runtime-Client-Context": '{"a":1}',
        "Lambda-Runtime-Cognito-Identity": "{}",
    }
    bare = next_headers(InvokeRequest(request_id="r", invoked_function_arn="a"), 1, None)
    assert "Lambda-Runtime-Trace-Id" not in bare and "Lambda-Runtime-Client-Context" not in bare


_ascii = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)


@given(
    rid=_ascii,
    tail=st.booleans(),
    trace=st.none() | _ascii,
    payload=st.binary(max_size=64),
)
def test_request_round_trip(rid: str, tail: bool, trace: str | None, payload: bytes) -> None:
    request = InvokeRequest(
        request_id=rid, payload=payload, log_tail=tail, trace_id=trace, invoked_function_arn="a"
    )
    assert wire.request_from(wire.request_headers(request), payload) == request


@given(
    error=st.none() | st.just("Unhandled"),
    init=st.none() | st.floats(min_value=0, max_value=1e5),
    tail=st.none() | st.text(max_size=100),
    duration=st.floats(min_value=0, max_value=1e6),
)
def test_result_round_trip(
    error: str | None, init: float | None, tail: str | None, duration: float
) -> None:
    result = InvokeResult(
        request_id="r",
        payload=b"{}",
        function_error=error,
        duration_ms=duration,
        billed_duration_ms=3,
        max_memory_used_mb=40,
        init_duration_ms=init,
        log_tail=tail,
        executed_version="2",
    )
    assert wire.result_from(wire.result_headers(result), b"{}") == result


def test_parse_vm_hwm() -> None:
    from kubelambda.runtime.process import parse_vm_hwm

    status = b"Name:\tpython\nVmPeak:\t  20000 kB\nVmHWM:\t   34088 kB\nVmRSS:\t 30000 kB\n"
    assert parse_vm_hwm(status) == 34088
    assert parse_vm_hwm(b"Name:\tkthread\n") == 0


def test_server_timing_round_trip_and_what_does_not_parse() -> None:
    value = wire.server_timing(read=0.0001, parse=0.00042, specialize=0.0021)
    assert value == "read;dur=0.10, parse;dur=0.42, specialize;dur=2.10"
    assert wire.server_timing_ms(value) == {"read": 0.1, "parse": 0.42, "specialize": 2.1}
    assert wire.server_timing_ms("") == {}
    assert wire.server_timing_ms("a;dur=x, b;desc=y, c;dur=1.5,;dur=2") == {"c": 1.5}
