"""Every example in examples/event-sources/ runs in `kubelambda dev` with its broker up.

One `kubelambda dev` serves a copy of examples/ (the functions and all six mappings), with the
brokers' loopback addresses swapped for the session's own brokers. Per broker the test creates
what the example's comment says must exist (queue, topic, stream), sends records, and checks
that the gateway's metrics count them delivered to the function and that the broker holds
nothing unacknowledged afterwards. examples/event-sources/README.md marks what these prove.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
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


def metric(dev: DevGateway, name: str, mapping: str) -> float:
    text = urllib.request.urlopen(f"{dev.url}/metrics", timeout=5).read().decode()
    found = re.findall(rf"^kubelambda_esm_{name}_total\{{([^}}]*)\}} (\S+)", text, re.M)
    return sum(float(value) for labels, value in found if f'mapping="{mapping}"' in labels)


class Examples:
    def __init__(self, dev: DevGateway, servers: dict[str, Any]) -> None:
        self.dev = dev
        self.servers = servers

    def enabled(self, mapping: str) -> None:
        self.dev.wait_for_log(rf"event source default/{mapping}: Enabled", timeout=60)

    def delivered(self, mapping: str, count: int) -> None:
        wait_until(
            lambda: metric(self.dev, "records_delivered", mapping) >= count,
            60,
            f"{count} records of {mapping} delivered",
        )
        self.dev.wait_for_log(rf"{mapping}: Enabled \(OK\)")


def _rewrite(text: str, old: str, new: str) -> str:
    assert old in text, f"the example no longer names {old}"
    return text.replace(old, new)


@pytest.fixture(scope="module")
def examples(
    brokers: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Examples]:
    servers = {name: broker(brokers, name, tmp_path_factory) for name in KINDS}
    out = tmp_path_factory.mktemp("examples") / "examples"
    out.mkdir()
    for name in ("greeter", "hello"):
        shutil.copy(EXAMPLES / f"{name}.yaml", out)
        shutil.copytree(EXAMPLES / name, out / name)
    sqs, kafka, rabbit = servers["sqs"], servers["kafka"], servers["rabbitmq"]
    # The Redis example's stream lives in database 1 here: test_dev_mode uses database 0.
    redis_url = servers["redis"].url.rsplit("/", 1)[0] + "/1"
    swaps = {
        "sqs.yaml": [("http://127.0.0.1:9324", sqs.url)],
        "kafka.yaml": [("127.0.0.1:9092", kafka.bootstrap)],
        "rabbitmq.yaml": [("amqp://guest:guest@127.0.0.1:5672", rabbit.url.rstrip("/"))],
        "redis.yaml": [("redis://127.0.0.1:6379/0", redis_url)],
        "nats.yaml": [("nats://127.0.0.1:4222", servers["nats"].url)],
        "schedule.yaml": [],
    }
    assert sorted(p.name for p in MAPPINGS.glob("*.yaml")) == sorted(swaps), "a new example?"
    for name, pairs in swaps.items():
        text = (MAPPINGS / name).read_text()
        for old, new in pairs:
            text = _rewrite(text, old, new)
        (out / name).write_text(text)
    # What the examples' comments ask for, made before the pollers start.
    KINDS["sqs"].create(sqs, "orders")
    KINDS["kafka"].create(kafka, "clicks")
    KINDS["rabbitmq"].create(rabbit, "jobs")
    KINDS["nats"].create(servers["nats"], "audit")  # stream AUDIT on audit.>
    with pytest.MonkeyPatch.context() as env:
        # boto3 needs credentials even for ElasticMQ; dev mode takes them from the environment.
        env.setenv("AWS_ACCESS_KEY_ID", "test")
        env.setenv("AWS_SECRET_ACCESS_KEY", "test")
        dev = DevGateway(out)
    try:
        yield Examples(dev, servers)
    finally:
        dev.stop()


def test_sqs_example(examples: Examples) -> None:
    server = examples.servers["sqs"]
    examples.enabled("greeter-orders-sqs")
    KINDS["sqs"].produce(server, "orders", [{"name": f"sqs{n}", "n": n} for n in range(N)])
    examples.delivered("greeter-orders-sqs", N)
    client = server.client()
    url = f"{server.url}/000000000000/orders"

    def drained() -> bool:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        found = client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return all(found[n] == "0" for n in names)

    wait_until(drained, 20, "every message deleted from orders")


def test_kafka_example(examples: Examples) -> None:
    server = examples.servers["kafka"]
    examples.enabled("greeter-clicks-kafka")
    KINDS["kafka"].produce(server, "clicks", [{"name": f"k{n}", "n": n} for n in range(N)])
    examples.delivered("greeter-clicks-kafka", N)

    async def committed() -> int:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=server.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets("greeter")
        finally:
            await admin.close()
        return sum(o.offset for o in offsets.values() if o.offset > 0)

    wait_until(lambda: asyncio.run(committed()) == N, 20, "group greeter's offsets committed")


def test_rabbitmq_example_filters_out_what_is_not_an_order(examples: Examples) -> None:
    server = examples.servers["rabbitmq"]
    mapping = "greeter-jobs-rabbitmq"
    examples.enabled(mapping)
    orders = [{"type": "order", "n": n} for n in range(N)]
    others = [{"type": "refund", "n": N + n} for n in range(10)]
    KINDS["rabbitmq"].produce(server, "jobs", orders + others)
    examples.delivered(mapping, N)
    wait_until(lambda: metric(examples.dev, "records_filtered", mapping) >= 10, 20, "filtered")
    assert metric(examples.dev, "records_delivered", mapping) == N  # no refund reached it
    wait_until(lambda: rabbit_count(server, "jobs") == 0, 20, "every message acknowledged")


def test_redis_example(examples: Examples) -> None:
    mapping = "greeter-events-redis"
    examples.enabled(mapping)
    client = examples.servers["redis"].client()
    client.select(1)
    try:
        # LATEST: the group starts at the end, so only records sent after it exists count.
        wait_until(lambda: client.exists("events"), 20, "the consumer group to be created")
        for n in range(N):
            client.xadd("events", {"data": json.dumps({"name": f"r{n}"})})
        examples.delivered(mapping, N)
        wait_until(lambda: client.xpending("events", "greeter")["pending"] == 0, 20, "XACKs")
    finally:
        client.close()


def test_nats_example(examples: Examples) -> None:
    server = examples.servers["nats"]
    mapping = "greeter-audit-nats"
    examples.enabled(mapping)
    KINDS["nats"].produce(server, "audit", [{"name": f"n{n}", "n": n} for n in range(N)])
    examples.delivered(mapping, N)

    async def unacked() -> int:
        import nats

        nc = await nats.connect(server.url)
        try:
            info = await nc.jetstream().consumer_info("AUDIT", "greeter")
        finally:
            await nc.close()
        return int(info.num_ack_pending or 0) + int(info.num_pending or 0)

    wait_until(lambda: asyncio.run(unacked()) == 0, 20, "every message acknowledged")


def test_schedule_example_is_scheduled(examples: Examples) -> None:
    """Its cron fires at 08:00 on weekdays; firing itself is tested on an injected clock."""
    examples.enabled("hello-morning")
    assert "hello-morning: PROBLEM" not in examples.dev.log()
