"""`kubelambda dev` runs the example mappings in-process beside its gateway, and reloads them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.component.asyncq.servers import wait_until
from tests.component.gateway.conftest import DevGateway
from tests.component.sources.conftest import broker

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture
def folder(
    tmp_path: Path, brokers: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The examples' functions and their Redis mapping, pointed at the test's Redis."""
    redis = broker(brokers, "redis", tmp_path_factory)
    out = tmp_path / "examples"
    out.mkdir()
    for name in ("greeter", "hello"):
        shutil.copy(EXAMPLES / f"{name}.yaml", out)
        shutil.copytree(EXAMPLES / name, out / name)
    mapping = (EXAMPLES / "event-sources" / "redis.yaml").read_text()
    assert "redis://127.0.0.1:6379/0" in mapping
    (out / "redis.yaml").write_text(mapping.replace("redis://127.0.0.1:6379/0", redis.url))
    return out


def test_the_redis_example_polls_in_dev_mode_and_reloads(
    folder: Path, brokers: dict[str, Any]
) -> None:
    redis = brokers["redis"]
    dev = DevGateway(folder)
    try:
        dev.wait_for_log(r"event source default/greeter-events-redis: Enabled")
        client = redis.client()
        # LATEST: the group starts at the end, so records sent now are the ones delivered.
        wait_until(lambda: client.exists("events"), 10, "the consumer group to be created")
        for n in range(25):
            client.xadd("events", {"data": f'{{"name": "r{n}"}}'})
        dev.wait_for_log(r"greeter-events-redis: Enabled \(OK\)")

        def delivered() -> float:
            import urllib.request

            text = urllib.request.urlopen(f"{dev.url}/metrics", timeout=5).read().decode()
            metric = r"^kubelambda_esm_records_polled_total\{([^}]*)\} (\S+)"
            found = [
                value
                for labels, value in re.findall(metric, text, re.M)
                if 'mapping="greeter-events-redis"' in labels
            ]
            return sum(float(v) for v in found)

        wait_until(lambda: delivered() >= 25, 20, "25 records polled")
        wait_until(lambda: client.xpending("events", "greeter")["pending"] == 0, 20, "XACKs")
        path = folder / "redis.yaml"
        path.write_text(
            path.read_text().replace(
                "bisectBatchOnFunctionError: true",
                "bisectBatchOnFunctionError: true\n  enabled: false",
            )
        )
        dev.wait_for_log(r"greeter-events-redis: Disabled")
        client.close()
    finally:
        dev.stop()
