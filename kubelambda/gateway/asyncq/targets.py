"""The destination senders: one small class per kind of target, each one delivery attempt.

- `FunctionTarget` enqueues the body as a new Event invocation of another function, through the
  same durable queue (so it gets its own retries and destinations).
- `WebhookTarget` POSTs the body as JSON; any 2xx is a delivery.
- `SqsTarget` calls SQS SendMessage with botocore (blocking, so in a thread), with the
  attributes as message attributes. The endpoint is the queue URL's own origin, which is right
  for AWS and for SQS-compatible servers alike; credentials come from the usual AWS chain.
- `NatsTarget` publishes on a subject (core NATS; a JetStream stream on it stores it).

A failed attempt raises `DeliveryError`; retrying and counting is the caller's business.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from kubelambda.api.common import is_digits
from kubelambda.gateway.asyncq.event import AsyncEvent
from kubelambda.serving.names import FunctionRef

if TYPE_CHECKING:
    from nats.aio.client import Client

WEBHOOK_TIMEOUT = 10.0
_SQS_HOST = re.compile(r"^sqs[.-]([a-z0-9-]+)\.amazonaws\.com")
_UNSAFE_HEADER = re.compile(r"[^\x20-\x7e]")


class DeliveryError(Exception):
    """One delivery attempt failed."""


class Target(Protocol):
    async def send(self, body: bytes, attributes: dict[str, str]) -> None: ...


class FunctionTarget:
    def __init__(
        self,
        ref: FunctionRef,
        check: Callable[[FunctionRef], object],
        enqueue: Callable[[AsyncEvent], Awaitable[None]],
        clock: Callable[[], float],
    ) -> None:
        self.ref = ref
        self.check = check  # raises when the function does not exist
        self.enqueue = enqueue
        self.clock = clock

    async def send(self, body: bytes, attributes: dict[str, str]) -> None:
        try:
            self.check(self.ref)
        except Exception as exc:
            raise DeliveryError(f"destination function: {exc}") from exc
        try:
            await self.enqueue(AsyncEvent.accept(self.ref, body, self.clock()))
        except Exception as exc:
            raise DeliveryError(f"enqueue for {self.ref.name}: {exc}") from exc


def header_value(value: str) -> str:
    """Attributes as HTTP header values: printable ASCII only."""
    return _UNSAFE_HEADER.sub(" ", value)[:1024]


class WebhookTarget:
    def __init__(self, url: str, session: Callable[[], aiohttp.ClientSession]) -> None:
        self.url = url
        self.session = session

    async def send(self, body: bytes, attributes: dict[str, str]) -> None:
        headers = {"Content-Type": "application/json"}
        headers.update({f"X-Kubelambda-{k}": header_value(v) for k, v in attributes.items()})
        try:
            async with self.session().post(
                self.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT),
            ) as response:
                if not 200 <= response.status < 300:
                    raise DeliveryError(f"POST {self.url} answered {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"POST {self.url}: {exc!r}") from exc


def sqs_endpoint(queue_url: str, default_region: str) -> tuple[str, str]:
    """(endpoint URL, region) for a queue URL."""
    parts = urlsplit(queue_url)
    found = _SQS_HOST.match(parts.hostname or "")
    return f"{parts.scheme}://{parts.netloc}", found.group(1) if found else default_region


class SqsTarget:
    def __init__(self, queue_url: str, client: Callable[[str, str], Any], region: str) -> None:
        self.queue_url = queue_url
        self.client = client  # (endpoint, region) -> a botocore SQS client
        self.region = region

    async def send(self, body: bytes, attributes: dict[str, str]) -> None:
        endpoint, region = sqs_endpoint(self.queue_url, self.region)
        message_attributes = {
            name: {
                "DataType": "Number" if is_digits(value.lstrip("-")) else "String",
                "StringValue": value,
            }
            for name, value in attributes.items()
        }

        def call() -> None:
            self.client(endpoint, region).send_message(
                QueueUrl=self.queue_url,
                MessageBody=body.decode(),
                **({"MessageAttributes": message_attributes} if message_attributes else {}),
            )

        try:
            await asyncio.to_thread(call)
        except Exception as exc:  # botocore's errors share no base class worth naming here
            raise DeliveryError(f"SQS SendMessage to {self.queue_url}: {exc!r}") from exc


class NatsTarget:
    def __init__(self, subject: str, connection: Callable[[], Awaitable[Client]]) -> None:
        self.subject = subject
        self.connection = connection

    async def send(self, body: bytes, attributes: dict[str, str]) -> None:
        try:
            nc = await self.connection()
            headers = {f"Kl-{k}": header_value(v) for k, v in attributes.items()}
            await nc.publish(self.subject, body, headers=headers or None)
            await nc.flush(timeout=5)
        except Exception as exc:
            raise DeliveryError(f"NATS publish to {self.subject}: {exc!r}") from exc
