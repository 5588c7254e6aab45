"""InvokeWithResponseStream through boto3, against `kubelambda dev` and real runtimes.

"Before the function finishes" is measured with a gate the test controls: the function sends
its first chunk and then waits for a file that the test creates only after it has read that
chunk, so the function cannot have finished when the chunk arrived.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.component.gateway.conftest import DevGateway


def events(response: dict[str, Any]) -> list[dict[str, Any]]:
    return list(response["EventStream"])


def chunks_of(received: list[dict[str, Any]]) -> bytes:
    return b"".join(e["PayloadChunk"]["Payload"] for e in received if "PayloadChunk" in e)


@pytest.mark.parametrize(
    ("name", "first", "rest"),
    [
        ("streamer", b"first;", b"second;third"),
        ("shellstream", b"shell-first;", b"shell-last"),
    ],
)
def test_first_chunk_arrives_before_the_function_finishes(
    gateway: DevGateway, tmp_path: Path, name: str, first: bytes, rest: bytes
) -> None:
    gate = tmp_path / f"{name}.gate"
    response = gateway.client().invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"gate": str(gate)}).encode()
    )
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    stream = iter(response["EventStream"])
    head = next(stream)
    # The function is still blocked on the gate: this chunk was sent while it ran.
    assert not gate.exists()
    assert head["PayloadChunk"]["Payload"] == first[: len(head["PayloadChunk"]["Payload"])]
    gate.touch()
    received = [head, *stream]
    assert chunks_of(received) == first + rest
    assert list(received[-1]) == ["InvokeComplete"]
    assert "ErrorCode" not in received[-1]["InvokeComplete"]
    assert sum("InvokeComplete" in e for e in received) == 1


def test_a_buffered_function_is_one_chunk_and_the_log_tail_comes_at_the_end(
    gateway: DevGateway,
) -> None:
    response = gateway.client().invoke_with_response_stream(
        FunctionName="streamer", Payload=b'{"mode": "buffered"}', LogType="Tail"
    )
    received = events(response)
    assert [list(e) for e in received] == [["PayloadChunk"], ["InvokeComplete"]]
    assert json.loads(received[0]["PayloadChunk"]["Payload"]) == {"buffered": True}
    import base64

    tail = base64.b64decode(received[1]["InvokeComplete"]["LogResult"]).decode()
    assert "REPORT RequestId:" in tail


def test_errors_before_and_after_the_first_byte(gateway: DevGateway) -> None:
    client = gateway.client()
    early = events(
        client.invoke_with_response_stream(
            FunctionName="streamer", Payload=b'{"mode": "fail-early"}'
        )
    )
    assert [list(e) for e in early] == [["InvokeComplete"]]
    complete = early[0]["InvokeComplete"]
    assert complete["ErrorCode"] == "ValueError"
    assert json.loads(complete["ErrorDetails"])["errorMessage"] == "refused before streaming"

    late = events(
        client.invoke_with_response_stream(
            FunctionName="streamer", Payload=b'{"mode": "fail-late"}'
        )
    )
    assert chunks_of(late) == b"first;second;"
    assert late[-1]["InvokeComplete"]["ErrorCode"] == "Runtime.StreamError"

    with pytest.raises(ClientError) as missing:
        client.invoke_with_response_stream(FunctionName="nope")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    dry = client.invoke_with_response_stream(FunctionName="streamer", InvocationType="DryRun")
    assert dry["StatusCode"] == 204
