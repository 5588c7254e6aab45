"""Sends a stream's onFailure record to its destination: a function, a webhook, SQS or NATS.

A function is invoked asynchronously through the gateway (so its async queue owns it from the
202 on). Failures raise; the engine keeps the partition's position and retries the delivery.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from kubelambda.api.function import Destination
from kubelambda.sources.invoke import GatewayInvoker


class DestinationError(Exception):
    pass


class FailureSender:
    def __init__(self, invoker: GatewayInvoker, namespace: str, region: str, nats_url: str) -> None:
        self.invoker = invoker
        self.namespace = namespace
        self.region = region
        self.nats_url = nats_url

    async def send(self, destination: Destination, record: dict[str, Any]) -> None:
        body = json.dumps(record).encode()
        if destination.function is not None:
            name, _, qualifier = destination.function.partition(":")
            target = name if "." in name or ":" in name else f"{self.namespace}.{name}"
            result = await self.invoker.invoke(
                target, qualifier or None, body, invocation_type="Event"
            )
            if result.status >= 300:
                raise DestinationError(f"function destination answered {result.status}")
        elif destination.url is not None:
            timeout = aiohttp.ClientTimeout(total=30)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(
                    str(destination.url),
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as response,
            ):
                if response.status >= 300:
                    raise DestinationError(f"webhook answered {response.status}")
        elif destination.sqs is not None:
            await asyncio.to_thread(self._sqs, str(destination.sqs), body.decode())
        elif destination.nats is not None:
            import nats

            nc = await nats.connect(self.nats_url)
            try:
                await nc.publish(destination.nats, body)
                await nc.flush()
            finally:
                await nc.close()

    def _sqs(self, queue_url: str, body: str) -> None:
        import boto3

        endpoint = queue_url.split("/", 3)
        client = boto3.client("sqs", endpoint_url="/".join(endpoint[:3]), region_name=self.region)
        client.send_message(QueueUrl=queue_url, MessageBody=body)
