"""Every example in examples/event-sources/ runs in `kubelambda dev` with its broker up.

Per example, `kubelambda dev` serves the example functions and that one mapping, its loopback
address swapped for the session's own broker. The test creates what the example's comment says
must exist (queue, topic, stream), sends records, and checks that the gateway's metrics count
them delivered to the function and that the broker holds nothing unacknowledged afterwards.
examples/event-sources/README.md marks what these prove.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.component.asyncq.servers import wait_until
from tests.component.gateway.conftest import DevGateway
from tests.component.sources.conftest import broker
from tests.component.sources.kinds import KINDS, rabbit_count

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
MAPPINGS = EXAMPLES / "event-sources"
N = 30  # records per example
# A test may start its broker for the session (Kafka's JVM) and a `kubelambda dev`.
pytestmark = pytest.mark.timeout(300)


def metric(dev: DevGateway, name: str, mapping: str) -> float:
    text = urllib.request.urlopen(f"{dev.url}/metrics", timeout=5).read().decode()
    found = re.findall(rf"^kubelambda_esm_{name}_total\{{([^}}]*)\}} (\S+)", text, re.M)
    return sum(float(value) for labels, value in found if f'mapping="{mapping}"' in labels)


class Example:
    """`kubelambda dev` serving the example functions and one example mapping."""

    def __init__(self, dev: DevGateway, server: Any, mapping: str) -> None:
        self.dev = dev
        self.server = server
        self.mapping = mapping
        self.dev.wait_for_log(rf"event source default/{mapping}: Enabled", timeout=60)

    def metric(self, name: str) -> float:
        return metric(self.dev, name, self.mapping)

    def delivered(self, count: int) -> None:
        wait_until(
            lambda: self.metric("records_delivered") >= count,
            60,
            f"{count} records of {self.mapping} delivered",
        )
        self.dev.wait_for_log(rf"{self.mapping}: Enabled \(OK\)")


# example file -> (its broker, the loopback address it names, the mapping's name)
EXAMPLE_BROKERS = {
    "sqs.yaml": ("sqs", "http://127.0.0.1:9324", "greeter-orders-sqs"),
    "kafka.yaml": ("kafka", "127.0.0.1:9092", "greeter-clicks-kafka"),
    "rabbitmq.yaml": ("rabbitmq", "amqp://guest:guest@127.0.0.1:5672", "greeter-jobs-rabbitmq"),
    "redis.yaml": ("redis", "redis://127.0.0.1:6379/0", "greeter-events-redis"),
    "nats.yaml": ("nats", "nats://127.0.0.1:4222", "greeter-audit-nats"),
    "schedule.yaml": (None, None, "hello-morning"),
}


def address(kind: str, server: Any) -> str:
    return {
        "sqs": lambda: server.url,
        "kafka": lambda: server.bootstrap,
        "rabbitmq": lambda: server.broker,
        "redis": lambda: server.url,
        "nats": lambda: server.url,
    }[kind]()


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in MAPPINGS.glob("*.yaml")) == sorted(EXAMPLE_BROKERS)


@pytest.fixture
def serve(
    brokers: dict[str, Any], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Example]]:
    """Starts the example's broker (once per session) and a `kubelambda dev` for it."""
    started: list[DevGateway] = []

    def start(example: str, prepare: Callable[[Any], None] = lambda _server: None) -> Example:
        kind, old, mapping = EXAMPLE_BROKERS[example]
        server = broker(brokers, kind, tmp_path_factory) if kind else None
        out = tmp_path / "examples"
        out.mkdir()
        for name in ("greeter", "hello"):
            shutil.copy(EXAMPLES / f"{name}.yaml", out)
            shutil.copytree(EXAMPLES / name, out / name)
        text = (MAPPINGS / example).read_text()
        if kind is not None and old is not None:
            assert old in text, f"{example} no longer names {old}"
            text = text.replace(old, address(kind, server))
        if kind == "rabbitmq":  # the session's broker has its own virtual host, not `/`
            assert "virtualHost: /\n" in text, f"{example} no longer names virtualHost /"
            text = text.replace("virtualHost: /\n", f"virtualHost: {server.vhost}\n")
        (out / example).write_text(text)
        prepare(server)  # what the example's comment says must exist
        with pytest.MonkeyPatch.context() as env:
            # boto3 wants credentials even for ElasticMQ; dev mode takes them from the env.
            env.setenv("AWS_ACCESS_KEY_ID", "test")
            env.setenv("AWS_SECRET_ACCESS_KEY", "test")
            dev = DevGateway(out)
        started.append(dev)
        return Example(dev, server, mapping)

    yield start
    for dev in started:
        dev.stop()


def test_sqs_example(serve: Callable[..., Example]) -> None:
    ex = serve("sqs.yaml", lambda server: KINDS["sqs"].create(server, "orders"))
    KINDS["sqs"].produce(ex.server, "orders", [{"name": f"sqs{n}", "n": n} for n in range(N)])
    ex.delivered(N)
    client = ex.server.client()
    url = f"{ex.server.url}/000000000000/orders"

    def drained() -> bool:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        found = client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return all(found[n] == "0" for n in names)

    wait_until(drained, 20, "every message deleted from orders")


def test_kafka_example(serve: Callable[..., Example]) -> None:
    ex = serve("kafka.yaml", lambda server: KINDS["kafka"].create(server, "clicks"))
    KINDS["kafka"].produce(ex.server, "clicks", [{"name": f"k{n}", "n": n} for n in range(N)])
    ex.delivered(N)

    async def committed() -> int:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=ex.server.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets("greeter")
        finally:
            await admin.close()
        return sum(o.offset for o in offsets.values() if o.offset > 0)

    wait_until(lambda: asyncio.run(committed()) == N, 20, "group greeter's offsets committed")


def test_rabbitmq_example_filters_out_what_is_not_an_order(serve: Callable[..., Example]) -> None:
    ex = serve("rabbitmq.yaml", lambda server: KINDS["rabbitmq"].create(server, "jobs"))
    orders = [{"type": "order", "n": n} for n in range(N)]
    others = [{"type": "refund", "n": N + n} for n in range(10)]
    KINDS["rabbitmq"].produce(ex.server, "jobs", orders + others)
    ex.delivered(N)
    wait_until(lambda: ex.metric("records_filtered") >= 10, 20, "10 refunds filtered out")
    assert ex.metric("records_delivered") == N  # no refund reached the function
    wait_until(lambda: rabbit_count(ex.server, "jobs") == 0, 20, "every message acknowledged")


def test_redis_example_polls_and_stops_when_disabled_on_reload(
    serve: Callable[..., Example],
) -> None:
    ex = serve("redis.yaml")
    client = ex.server.client()
    try:
        # LATEST: the group starts at the end, so only records sent after it exists count.
        wait_until(lambda: client.exists("events"), 20, "the consumer group to be created")
        for n in range(N):
            client.xadd("events", {"data": json.dumps({"name": f"r{n}"})})
        ex.delivered(N)
        wait_until(lambda: client.xpending("events", "greeter")["pending"] == 0, 20, "XACKs")
        path = ex.dev.folder / "redis.yaml"
        path.write_text(
            path.read_text().replace(
                "bisectBatchOnFunctionError: true",
                "bisectBatchOnFunctionError: true\n  enabled: false",
            )
        )
        ex.dev.wait_for_log(r"greeter-events-redis: Disabled")
    finally:
        client.close()


def test_nats_example(serve: Callable[..., Example]) -> None:
    ex = serve("nats.yaml", lambda server: KINDS["nats"].create(server, "audit"))  # AUDIT, audit.>
    KINDS["nats"].produce(ex.server, "audit", [{"name": f"n{n}", "n": n} for n in range(N)])
    ex.delivered(N)

    async def unacked() -> int:
        import nats

        nc = await nats.connect(ex.server.url)
        try:
            info = await nc.jetstream().consumer_info("AUDIT", "greeter")
        finally:
            await nc.close()
        return int(info.num_ack_pending or 0) + int(info.num_pending or 0)

    wait_until(lambda: asyncio.run(unacked()) == 0, 20, "every message acknowledged")


def test_schedule_example_is_scheduled(serve: Callable[..., Example]) -> None:
    """Its cron fires at 08:00 on weekdays; firing itself is tested on an injected clock."""
    ex = serve("schedule.yaml")
    assert "hello-morning: PROBLEM" not in ex.dev.log()
