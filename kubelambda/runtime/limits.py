"""Lambda's payload, log and memory quotas, defined once for the gateway and the agent."""

from __future__ import annotations

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024  # a synchronous invoke's request, and its response (6 MB)
ASYNC_PAYLOAD_LIMIT = 256 * 1024  # an Event invocation's request
# A function's response: the same 6 MB (6,291,456 bytes) in the Runtime API and the Invoke API,
# so every message that names the limit names the same number.
MAX_RESPONSE_BYTES = SYNC_PAYLOAD_LIMIT
LOG_TAIL_BYTES = 4096  # the end of the log an invoke with LogType Tail returns
# A streamed response may be larger than a buffered one (Lambda: 20 MB by default).
STREAMED_RESPONSE_LIMIT = 20 * 1024 * 1024
CLIENT_CONTEXT_LIMIT = 3583  # X-Amz-Client-Context: base64 of a JSON object, at most this long
# Where no cgroup caps an environment's memory, the runtime's address space is capped instead:
# its memorySize plus what an interpreter maps without using (code, thread stacks, arenas).
ADDRESS_SPACE_HEADROOM_MB = 256


def address_space(memory_mb: int) -> int:
    """The RLIMIT_AS, in bytes, that stands in for a `memory_mb` cgroup limit."""
    return (memory_mb + ADDRESS_SPACE_HEADROOM_MB) * 1024 * 1024
