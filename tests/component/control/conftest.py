"""Fixtures for the control API tests: a real S3-compatible server (versitygw) for the session,
and `kubelambda dev` gateways that read S3Bucket/S3Key from it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.component.gateway.conftest import DevGateway
from tests.component.s3server import S3Server


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


def dev_gateway(folder: Path, s3: S3Server, *args: str) -> DevGateway:
    folder.mkdir(parents=True, exist_ok=True)
    return DevGateway(folder, "--no-reload", "--s3-endpoint", s3.url, *args, env=s3.env)


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Iterator[DevGateway]:
    """One dev gateway with an empty folder: everything in it is created through the API."""
    dev = dev_gateway(tmp_path_factory.mktemp("control") / "fns", s3)
    yield dev
    dev.stop()
