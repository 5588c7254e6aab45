"""How our Python bootstrap streams: a handler that returns a generator (or another iterator)
has each item sent as the Runtime API's streaming response while it runs. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

# The Content-Type of a stream that opens with an HTTP prelude (function URLs read it).
HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"


def is_stream(result: Any) -> bool:
    """A handler streams its response by returning a generator (or another iterator)."""
    return isinstance(result, Iterator) and not isinstance(result, (str, bytes, dict, list))


def stream_parts(
    result: Iterator[Any], default: Callable[[Any], Any]
) -> tuple[str, Iterator[bytes]]:
    """The Content-Type and the chunks of a streamed result.

    Each item is sent as it is produced: bytes as they are, str as UTF-8, anything else as
    JSON. A first item that is a dict with `statusCode` is the HTTP prelude of a function URL
    (status, headers, cookies), sent as Lambda's HTTP integration response.
    """
    first = next(result, None)

    def encode(item: Any) -> bytes:
        if isinstance(item, bytes):
            return item
        if isinstance(item, str):
            return item.encode()
        return json.dumps(item, default=default).encode()

    def chunks() -> Iterator[bytes]:
        if first is not None:
            if prelude:
                yield json.dumps(first, default=default).encode() + b"\0" * 8
            else:
                yield encode(first)
        for item in result:
            yield encode(item)

    prelude = isinstance(first, dict) and "statusCode" in first
    return (HTTP_INTEGRATION if prelude else "application/octet-stream"), chunks()
