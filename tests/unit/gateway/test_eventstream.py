"""The event-stream encoder, decoded by botocore's own parser (the reference)."""

from __future__ import annotations

import json

from botocore.eventstream import EventStreamBuffer
from hypothesis import given
from hypothesis import strategies as st

from kubelambda.gateway import eventstream


def decode(data: bytes) -> list[tuple[dict[str, str], bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return [(dict(m.headers), m.payload) for m in buffer]


@given(st.lists(st.binary(max_size=3000), max_size=5))
def test_chunks_then_complete_decode_in_order(chunks: list[bytes]) -> None:
    wire = b"".join(eventstream.payload_chunk(c) for c in chunks)
    wire += eventstream.invoke_complete("Unhandled", '{"errorType": "X"}', "bG9n")
    messages = decode(wire)
    assert [p for _, p in messages[:-1]] == chunks
    assert all(h[":event-type"] == "PayloadChunk" for h, _ in messages[:-1])
    headers, payload = messages[-1]
    assert headers[":event-type"] == "InvokeComplete"
    assert json.loads(payload) == {
        "ErrorCode": "Unhandled",
        "ErrorDetails": '{"errorType": "X"}',
        "LogResult": "bG9n",
    }


def test_a_clean_completion_has_no_error_fields() -> None:
    [(headers, payload)] = decode(eventstream.invoke_complete())
    assert headers[":message-type"] == "event" and json.loads(payload) == {}
