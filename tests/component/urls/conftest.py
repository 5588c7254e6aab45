"""Fixtures for function URLs and response streaming: a real `kubelambda dev` serving the
functions in ./functions, on a free loopback port, stopped by PID at the end of the module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.component.gateway.conftest import DevGateway

FUNCTIONS = Path(__file__).parent / "functions"


def serve_functions(root: Path, *args: str) -> DevGateway:
    folder = root / "fns"
    shutil.copytree(FUNCTIONS, folder)
    return DevGateway(folder, "--no-reload", *args)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevGateway]:
    dev = serve_functions(tmp_path_factory.mktemp("urls"))
    yield dev
    dev.stop()
