"""Pollers invoke through the gateway's Invoke API over HTTP, so admission stays one ledger.

A 429 (admission's TooManyRequestsException) and an unreachable or failing gateway (5xx that
is not the function's own error) are retried with capped exponential backoff and jitter until
they succeed or the poller stops: a throttled batch is delayed, never dropped. Any other
answer goes back to the poller, whose source decides what a failure means. Credentials (a
bearer token or a SigV4 key, `credentials.py`) are sent, never logged.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import aiohttp

from kubelambda.sources.credentials import BearerToken, Credentials

log = logging.getLogger(__name__)
BACKOFF_FIRST = 0.05
BACKOFF_CAP = 5.0


@dataclass(frozen=True)
class InvokeResult:
    status: int
    payload: bytes
    function_error: str | None
    executed_version: str | None
    error_type: str | None = None  # x-amzn-ErrorType of a gateway error

    @property
    def ok(self) -> bool:
        return self.status < 300 and not self.function_error

    def describe(self) -> str:
        if self.function_error:
            return f"function error ({self.function_error})"
        if self.status >= 300:
            return f"{self.error_type or 'error'} ({self.status})"
        return "ok"


def retryable(status: int, error_type: str | None) -> bool:
    """Throttles and the gateway's own trouble are retried; the function's answers are not."""
    if status == 429:
        return True
    return status >= 500 and error_type not in ("RequestTooLargeException",)


class GatewayInvoker:
    """Invokes functions at one gateway; one connection pool for all pollers of a process."""

    def __init__(
        self,
        base_url: str,
        *,
        token_file: Path | None = None,
        credentials: Credentials | None = None,
        timeout: float = 960.0,
        on_throttle: Callable[[str], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials or (BearerToken(token_file) if token_file else None)
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self.on_throttle = on_throttle

    def _headers(self, invocation_type: str, url: str, payload: bytes) -> dict[str, str]:
        headers = {"X-Amz-Invocation-Type": invocation_type, "Content-Type": "application/json"}
        if self._credentials is None:
            return headers
        return self._credentials.headers("POST", url, payload, headers)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256),
                timeout=aiohttp.ClientTimeout(total=self._timeout, sock_connect=5),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def invoke(
        self,
        function: str,
        qualifier: str | None,
        payload: bytes,
        *,
        invocation_type: str = "RequestResponse",
    ) -> InvokeResult:
        """One invoke, retried through throttles and gateway outages (never given up)."""
        url = f"{self.base_url}/2015-03-31/functions/{quote(function, safe='.')}/invocations"
        if qualifier:  # in the URL itself: a SigV4 signature covers the query string
            url = f"{url}?{urlencode({'Qualifier': qualifier})}"
        delay = BACKOFF_FIRST
        while True:
            try:
                headers = self._headers(invocation_type, url, payload)  # signed per attempt
                async with self._client().post(url, data=payload, headers=headers) as response:
                    body = await response.read()
                    result = InvokeResult(
                        status=response.status,
                        payload=body,
                        function_error=response.headers.get("X-Amz-Function-Error"),
                        executed_version=response.headers.get("X-Amz-Executed-Version"),
                        error_type=response.headers.get("x-amzn-ErrorType"),
                    )
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning(
                    "gateway unreachable for %s: %s; retrying", function, type(exc).__name__
                )
                result = None
            if result is not None and not retryable(result.status, result.error_type):
                return result
            if result is not None and result.status == 429 and self.on_throttle is not None:
                self.on_throttle(function)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, BACKOFF_CAP)
