"""Delivering to a Destination: choosing its target, retrying, and owning the clients.

`deliver` makes up to `attempts` tries with a doubling pause between them and returns None on
success or the last error; the worker counts failures (DestinationDeliveryFailures,
DeadLetterErrors) and keeps the event in the queue's dead-letter store. The HTTP session, the
SQS clients and the NATS connection are created on first use and shared.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp

from kubelambda.api.common import DEFAULT_REGION
from kubelambda.api.function import Destination
from kubelambda.gateway.asyncq.event import AsyncEvent
from kubelambda.gateway.asyncq.targets import (
    DeliveryError,
    FunctionTarget,
    NatsTarget,
    SqsTarget,
    Target,
    WebhookTarget,
)
from kubelambda.serving.names import FunctionRef, parse_function_name

if TYPE_CHECKING:
    from nats.aio.client import Client

log = logging.getLogger(__name__)

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


class Destinations:
    def __init__(
        self,
        *,
        check: Callable[[FunctionRef], object],
        enqueue: Callable[[AsyncEvent], Awaitable[None]],
        clock: Callable[[], float],
        region: str = DEFAULT_REGION,
        attempts: int = 3,
        backoff: float = 0.5,
        nats_connection: Callable[[], Client] | None = None,
        nats_url: str = DEFAULT_NATS_URL,
    ) -> None:
        self.check = check
        self.enqueue = enqueue
        self.clock = clock
        self.region = region
        self.attempts = max(attempts, 1)
        self.backoff = backoff
        self._shared_nats = nats_connection  # the queue's own connection, when it is NATS
        self.nats_url = nats_url
        self._own_nats: Client | None = None
        self._nats_lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._sqs: dict[tuple[str, str], Any] = {}
        self._sqs_lock = threading.Lock()

    def target(self, destination: Destination, namespace: str) -> Target:
        if destination.function is not None:
            ref = parse_function_name(destination.function, None, namespace)
            return FunctionTarget(ref, self.check, self.enqueue, self.clock)
        if destination.url is not None:
            return WebhookTarget(str(destination.url), self._http)
        if destination.sqs is not None:
            return SqsTarget(str(destination.sqs), self._sqs_client, self.region)
        assert destination.nats is not None  # the model allows exactly one target
        return NatsTarget(destination.nats, self._nats)

    async def deliver(
        self,
        destination: Destination,
        namespace: str,
        body: bytes,
        attributes: dict[str, str] | None = None,
    ) -> str | None:
        """None once delivered; otherwise the last attempt's error."""
        try:
            target = self.target(destination, namespace)
        except Exception as exc:  # an unparsable function name
            return str(exc)
        error = ""
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                await target.send(body, attributes or {})
                return None
            except DeliveryError as exc:
                error = str(exc)
                log.info("delivery attempt %d/%d failed: %s", attempt + 1, self.attempts, error)
        return error

    # Clients, created on first use.

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _sqs_client(self, endpoint: str, region: str) -> Any:
        # Called from worker threads: boto3's default session is not thread-safe to build on.
        with self._sqs_lock:
            client = self._sqs.get((endpoint, region))
            if client is None:
                import boto3.session

                client = boto3.session.Session().client(
                    "sqs", endpoint_url=endpoint, region_name=region
                )
                self._sqs[(endpoint, region)] = client
            return client

    async def _nats(self) -> Client:
        if self._shared_nats is not None:
            return self._shared_nats()
        async with self._nats_lock:
            if self._own_nats is None or self._own_nats.is_closed:
                import nats  # an optional extra, needed only for NATS destinations

                self._own_nats = await nats.connect(
                    servers=[self.nats_url], connect_timeout=5, max_reconnect_attempts=3
                )
            return self._own_nats

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._own_nats is not None and not self._own_nats.is_closed:
            await self._own_nats.close()
