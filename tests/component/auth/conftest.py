"""A `kubelambda dev --auth sigv4 --keys FILE` gateway on a free loopback port."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.component.gateway.conftest import DevGateway

HERE = Path(__file__).parent
ADMIN = ("AKIAADMINEXAMPLE0001", "admin-secret-key-0123456789")
ALICE = ("AKIAINVOKERONLY00002", "invoker-secret-key-0123456789")


def client(gateway: DevGateway, key: tuple[str, str], **config: Any) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=gateway.url,
        region_name="us-east-1",
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(retries={"total_max_attempts": 1}, read_timeout=60, **config),
    )


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevGateway]:
    root = tmp_path_factory.mktemp("auth")
    shutil.copytree(HERE / "functions", root / "fns")
    shutil.copy(HERE / "keys.yaml", root / "keys.yaml")
    dev = DevGateway(
        root / "fns", "--no-reload", "--auth", "sigv4", "--keys", str(root / "keys.yaml")
    )
    yield dev
    dev.stop()
