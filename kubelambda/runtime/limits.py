"""Lambda's payload and log quotas, defined once for the gateway and the agent."""

from __future__ import annotations

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024  # a synchronous invoke's request, and its response
ASYNC_PAYLOAD_LIMIT = 256 * 1024  # an Event invocation's request
# The Runtime API accepts a response up to 6 MiB plus a small allowance, as Lambda does.
MAX_RESPONSE_BYTES = SYNC_PAYLOAD_LIMIT + 100
LOG_TAIL_BYTES = 4096  # the end of the log an invoke with LogType Tail returns
# A streamed response may be larger than a buffered one (Lambda: 20 MB by default).
STREAMED_RESPONSE_LIMIT = 20 * 1024 * 1024
