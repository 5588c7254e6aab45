"""Fixtures for the async invocation tests: real servers, functions written as manifests, and
`kubelambda dev` gateways on each queue backend."""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.component.asyncq.servers import MotoServer, NatsServer, Receiver

HERE = Path(__file__).parent
BACKENDS = ["sqlite", "nats"]
_streams = itertools.count(1)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats") / "store")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def queue_args(
    backend: str, nats: NatsServer, ack_wait: float = 10
) -> tuple[list[str], str | None]:
    """`kubelambda dev` flags for a backend, and the JetStream stream (each gateway its own)."""
    if backend == "sqlite":
        return [], None  # the default: SQLite in the state folder
    n = next(_streams)
    return ["--queue", f"{nats.url}?stream=T{n}&prefix=t{n}&ack_wait={ack_wait}"], f"T{n}"


class Functions:
    """A folder of Function manifests sharing the counter code; each writes runs/NAME.jsonl."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "fns"
        self.runs = root / "runs"
        (self.folder / "counter").mkdir(parents=True)
        self.runs.mkdir()
        shutil.copy(HERE / "counter_app.py", self.folder / "counter" / "app.py")

    def add(self, name: str, env: dict[str, str] | None = None, **spec: Any) -> None:
        variables = {"OUT": str(self.runs / f"{name}.jsonl"), **(env or {})}
        body = {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"path": "./counter"},
            "environment": {"variables": variables},
            **spec,
        }
        self.write(name, [{"kind": "Function", "metadata": {"name": name}, "spec": body}])

    def write(self, name: str, docs: list[dict[str, Any]]) -> None:
        full = [{"apiVersion": "kubelambda.dev/v1alpha1", **doc} for doc in docs]
        (self.folder / f"{name}.yaml").write_text(yaml.safe_dump_all(full))

    def runs_of(self, name: str) -> list[dict[str, Any]]:
        path = self.runs / f"{name}.jsonl"
        if not path.exists():
            return []
        # Only whole lines: a run may be writing its line as this reads (seen in make test).
        lines = path.read_text().split("\n")[:-1]
        return [json.loads(line) for line in lines if line]
