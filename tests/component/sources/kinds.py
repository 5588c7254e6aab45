"""Per kind of source: create its queue/topic/stream, the mapping's source, and produce."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PARTITIONS = 3


@dataclass(frozen=True)
class Kind:
    name: str
    payload_key: str  # where filters see the payload
    stream: bool
    create: Callable[[Any, str], None]
    spec: Callable[[Any, str], dict[str, Any]]
    produce: Callable[..., None]
    max_batch: int = 10000


# --- redis -------------------------------------------------------------------------------------


def _redis_create(server: Any, run: str) -> None:
    return None


def _redis_spec(server: Any, run: str) -> dict[str, Any]:
    return {
        "source": {"redis": {"url": server.url, "stream": run}},
        "startingPosition": "TRIM_HORIZON",
    }


def _redis_produce(server: Any, run: str, payloads: list[dict[str, Any]]) -> None:
    client = server.client()
    pipe = client.pipeline()
    for p in payloads:
        pipe.xadd(run, {"data": json.dumps(p)})
    pipe.execute()
    client.close()


# --- nats --------------------------------------------------------------------------------------


def _nats_create(server: Any, run: str) -> None:
    async def go() -> None:
        import nats

        nc = await nats.connect(server.url)
        await nc.jetstream().add_stream(name=run.upper(), subjects=[f"{run}.>"])
        await nc.close()

    asyncio.run(go())


def _nats_spec(server: Any, run: str) -> dict[str, Any]:
    return {
        "source": {"nats": {"url": server.url, "stream": run.upper(), "subject": f"{run}.>"}},
        "startingPosition": "TRIM_HORIZON",
    }


def _nats_produce(server: Any, run: str, payloads: list[dict[str, Any]]) -> None:
    async def go() -> None:
        import nats

        nc = await nats.connect(server.url)
        js = nc.jetstream()
        acks = [js.publish(f"{run}.x", json.dumps(p).encode()) for p in payloads]
        for start in range(0, len(acks), 200):
            await asyncio.gather(*acks[start : start + 200])
        await nc.close()

    asyncio.run(go())


# --- kafka -------------------------------------------------------------------------------------


def _kafka_create(server: Any, run: str) -> None:
    async def go() -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=server.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(run, PARTITIONS, 1)])
        finally:
            await admin.close()

    asyncio.run(go())


def _kafka_spec(server: Any, run: str) -> dict[str, Any]:
    return {
        "source": {"kafka": {"bootstrapServers": [server.bootstrap], "topic": run}},
        "startingPosition": "TRIM_HORIZON",
    }


def _kafka_produce(server: Any, run: str, payloads: list[dict[str, Any]]) -> None:
    async def go() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=server.bootstrap, linger_ms=5)
        await producer.start()
        try:
            for p in payloads:  # keyed by n: one partition each, in order within it
                await producer.send(run, json.dumps(p).encode(), partition=p["n"] % PARTITIONS)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(go())


# --- rabbitmq ----------------------------------------------------------------------------------


def _rabbit_create(server: Any, run: str) -> None:
    async def go() -> None:
        import aio_pika

        conn = await aio_pika.connect(server.url)
        channel = await conn.channel()
        await channel.declare_queue(f"{run}-dlq", durable=True)
        await channel.declare_queue(
            run,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": 3,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": f"{run}-dlq",
            },
        )
        await conn.close()

    asyncio.run(go())


def _rabbit_spec(server: Any, run: str) -> dict[str, Any]:
    source = {"url": server.broker, "queue": run, "virtualHost": server.vhost}
    return {"source": {"rabbitmq": source}}


def _rabbit_produce(server: Any, run: str, payloads: list[dict[str, Any]]) -> None:
    async def go() -> None:
        import aio_pika

        conn = await aio_pika.connect(server.url)
        channel = await conn.channel(publisher_confirms=True)
        sends = [
            channel.default_exchange.publish(
                aio_pika.Message(json.dumps(p).encode(), message_id=f"{run}-{p['n']}"),
                routing_key=run,
            )
            for p in payloads
        ]
        for start in range(0, len(sends), 200):
            await asyncio.gather(*sends[start : start + 200])
        await conn.close()

    asyncio.run(go())


def rabbit_count(server: Any, queue: str) -> int:
    async def go() -> int:
        import aio_pika

        conn = await aio_pika.connect(server.url)
        channel = await conn.channel()
        q = await channel.declare_queue(queue, passive=True)
        count = q.declaration_result.message_count or 0
        await conn.close()
        return int(count)

    return asyncio.run(go())


# --- sqs ---------------------------------------------------------------------------------------

VISIBILITY = 3  # seconds: failed messages come back quickly in tests


def _sqs_create(server: Any, run: str) -> None:
    server.client().create_queue(QueueName=run, Attributes={"VisibilityTimeout": str(VISIBILITY)})


def sqs_url(server: Any, run: str) -> str:
    return f"{server.url}/000000000000/{run}"


def _sqs_spec(server: Any, run: str) -> dict[str, Any]:
    return {"source": {"sqs": {"queueUrl": sqs_url(server, run), "endpoint": server.url}}}


def _sqs_produce(server: Any, run: str, payloads: list[dict[str, Any]]) -> None:
    client = server.client()
    url = sqs_url(server, run)
    for start in range(0, len(payloads), 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps(p)}
            for i, p in enumerate(payloads[start : start + 10])
        ]
        answer = client.send_message_batch(QueueUrl=url, Entries=entries)
        assert not answer.get("Failed"), answer


KINDS = {
    k.name: k
    for k in (
        Kind("redis", "data", True, _redis_create, _redis_spec, _redis_produce),
        Kind("nats", "data", True, _nats_create, _nats_spec, _nats_produce),
        Kind("kafka", "value", True, _kafka_create, _kafka_spec, _kafka_produce),
        Kind("rabbitmq", "data", False, _rabbit_create, _rabbit_spec, _rabbit_produce),
        Kind("sqs", "body", False, _sqs_create, _sqs_spec, _sqs_produce),
    )
}
