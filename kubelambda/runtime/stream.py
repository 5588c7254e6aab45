"""Where a streamed response goes while the function is still running.

A runtime streams by posting its response with `Lambda-Runtime-Function-Response-Mode:
streaming` and chunked transfer. The Runtime API hands each chunk, as it arrives, to the
invocation's `ResponseStream` (the gateway's InvokeWithResponseStream or a RESPONSE_STREAM
function URL); an invocation without one collects the chunks into an ordinary buffered payload.
A body that breaks off (the connection closes before its last chunk) is the function's error.
Lambda's error trailers (Lambda-Runtime-Function-Error-Type/-Body) are not read: aiohttp's HTTP
parser drops trailers, so a runtime that ends a stream with them is seen as having succeeded.
"""

from __future__ import annotations

from typing import Protocol

RESPONSE_MODE = "Lambda-Runtime-Function-Response-Mode"
STREAMING = "streaming"


class ResponseStream(Protocol):
    """The receiving end of one streamed response."""

    async def begin(self, content_type: str) -> None:
        """Called once, before the first chunk, with the runtime's Content-Type."""
        ...

    async def write(self, chunk: bytes) -> None:
        """One piece of the body, in order; awaiting it applies the client's back-pressure."""
        ...
