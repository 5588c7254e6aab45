"""Fixtures for the source tests: real brokers (once per session), one `kubelambda dev`
gateway serving the recorder function, and `kubelambda poll` processes per test."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml

from tests.component.asyncq.servers import KubelambdaDev, NatsServer, stop_process, wait_until
from tests.component.sources.brokers import ElasticMQServer, KafkaServer, RabbitServer, RedisServer
from tests.component.sources.kinds import KINDS, Kind

HERE = Path(__file__).parent
KUBELAMBDA = str(Path(sys.executable).parent / "kubelambda")
_runs = itertools.count(1)


@pytest.fixture(scope="session")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Started on first use, stopped at the end of the session."""
    started: dict[str, Any] = {}
    yield started
    for server in started.values():
        server.stop()


class Folders(Protocol):
    """Where a broker keeps its data: pytest's TempPathFactory, or a bench's own."""

    def mktemp(self, basename: str, /) -> Path: ...


def broker(brokers: dict[str, Any], name: str, tmp: Folders) -> Any:
    if name not in brokers:
        folder = tmp.mktemp(name)
        factory = {
            "redis": RedisServer,
            "nats": lambda f: NatsServer(f / "store"),
            "rabbitmq": RabbitServer,
            "kafka": KafkaServer,
            "sqs": ElasticMQServer,
        }[name]
        brokers[name] = factory(folder)
    return brokers[name]


class Recorder:
    """What the recorder function saw, per run."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def batches(self, run: str) -> list[dict[str, Any]]:
        path = self.out / f"{run}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def seen(self, run: str) -> list[int]:
        return [n for b in self.batches(run) for n in b["ns"]]

    def wait_for(self, run: str, ns: set[int], timeout: float = 60) -> list[dict[str, Any]]:
        wait_until(lambda: ns <= set(self.seen(run)), timeout, f"{len(ns)} records of {run}")
        return self.batches(run)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KubelambdaDev, Recorder]]:
    root = tmp_path_factory.mktemp("sources-gateway")
    folder = root / "fns"
    out = root / "out"
    out.mkdir()
    shutil.copytree(HERE / "recorder", folder / "recorder")
    doc = {
        "apiVersion": "kubelambda.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "recorder"},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"path": "./recorder"},
            "timeout": 30,
            "environment": {"variables": {"OUT": str(out)}},
        },
    }
    (folder / "recorder.yaml").write_text(yaml.safe_dump(doc))
    dev = KubelambdaDev(folder, "--warm-per-runtime", "4")
    yield dev, Recorder(out)
    dev.stop()


class Poller:
    """`kubelambda poll` on a folder holding one mapping; may be SIGKILLed and restarted."""

    def __init__(self, folder: Path, gateway_url: str) -> None:
        self.folder = folder
        self.gateway_url = gateway_url
        self.log_path = folder.parent / f"{folder.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self._log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [KUBELAMBDA, "poll", str(self.folder), "--gateway", self.gateway_url],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
            },
        )
        self.wait_for_log(r": Enabled \(")

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, pattern: str, timeout: float = 30, count: int = 1) -> None:
        wait_until(
            lambda: (
                len(re.findall(pattern, self.log())) >= count
                or (self.proc is not None and self.proc.poll() is not None)
            ),
            timeout,
            f"{pattern!r} in the poller's log",
        )
        assert self.proc is not None and self.proc.poll() is None, self.log()[-3000:]

    def reload(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc, timeout=15)
            self._log.close()


class Case:
    """One test's mapping on one kind of source."""

    def __init__(
        self, kind: Kind, server: Any, gateway: KubelambdaDev, recorder: Recorder, root: Path
    ) -> None:
        self.kind = kind
        self.server = server
        self.gateway = gateway
        self.recorder = recorder
        self.run = f"r{next(_runs)}{kind.name}"
        self.folder = root / self.run
        self.folder.mkdir()
        self.pollers: list[Poller] = []
        self.kind.create(server, self.run)

    def write(self, **spec: Any) -> None:
        body = {"functionName": "recorder", **self.kind.spec(self.server, self.run), **spec}
        doc = {
            "apiVersion": "kubelambda.dev/v1alpha1",
            "kind": "EventSourceMapping",
            "metadata": {"name": self.run.lower()},
            "spec": body,
        }
        (self.folder / "mapping.yaml").write_text(yaml.safe_dump(doc))

    def poller(self, **spec: Any) -> Poller:
        self.write(**spec)
        poller = Poller(self.folder, self.gateway.url)
        self.pollers.append(poller)
        return poller

    def produce(self, payloads: list[dict[str, Any]], **kw: Any) -> None:
        self.kind.produce(self.server, self.run, [{"run": self.run, **p} for p in payloads], **kw)

    def batches(self) -> list[dict[str, Any]]:
        return self.recorder.batches(self.run)

    def close(self) -> None:
        for poller in self.pollers:
            poller.stop()


@pytest.fixture(params=sorted(KINDS))
def case(
    request: pytest.FixtureRequest,
    brokers: dict[str, Any],
    gateway: tuple[KubelambdaDev, Recorder],
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> Iterator[Case]:
    kind = KINDS[request.param]
    server = broker(brokers, kind.name, tmp_path_factory)
    dev, recorder = gateway
    made = Case(kind, server, dev, recorder, tmp_path)
    yield made
    made.close()


def settle(seconds: float) -> None:
    """Lets time pass where a test asserts that nothing happens (a bounded quiet period)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)
