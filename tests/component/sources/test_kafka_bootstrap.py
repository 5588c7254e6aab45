"""A Kafka poller whose bootstrap fails (no broker on the port) closes its consumer, so each
restart of the poller does not leak one ("Unclosed AIOKafkaConsumer")."""

from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError

from kubelambda.api.resources import EventSourceMapping, parse_resource
from kubelambda.sources.config import poller_config
from kubelambda.sources.engine import Context
from kubelambda.sources.invoke import GatewayInvoker
from kubelambda.sources.metrics import SourceMetrics
from kubelambda.sources.readers import kafka_reader
from tests.component.asyncq.servers import free_port


def test_a_failed_bootstrap_closes_the_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[AIOKafkaConsumer] = []

    class Recorded(AIOKafkaConsumer):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(kafka_reader, "AIOKafkaConsumer", Recorded)
    doc = {
        "apiVersion": "kubelambda.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "m", "namespace": "team"},
        "spec": {
            "functionName": "fn",
            # Nothing listens there: the bootstrap is refused.
            "source": {"kafka": {"bootstrapServers": [f"127.0.0.1:{free_port()}"], "topic": "t"}},
            "startingPosition": "LATEST",
        },
    }
    mapping = parse_resource(doc)
    assert isinstance(mapping, EventSourceMapping)

    async def go() -> None:
        invoker = GatewayInvoker("http://127.0.0.1:9")
        ctx = Context(poller_config(mapping), invoker, SourceMetrics())
        try:
            with pytest.raises(KafkaConnectionError):
                await kafka_reader.run(ctx)
        finally:
            await invoker.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(go())
        assert len(made) == 1
        assert made[0]._closed is True  # stopped, not merely dropped
        made.clear()
        gc.collect()
    unclosed = [w for w in caught if "Unclosed AIOKafkaConsumer" in str(w.message)]
    assert not unclosed, unclosed
