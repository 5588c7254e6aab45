"""Fixtures for gateway tests: a real `kubelambda dev` process on a free loopback port.

The gateway runs as a subprocess, exactly as a user starts it; tests talk to it with boto3, the
AWS CLI or aiohttp. On teardown it gets SIGTERM, and every process it started must be gone.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
from botocore.config import Config

HERE = Path(__file__).parent
FUNCTIONS = HERE / "functions"
KUBELAMBDA = str(Path(sys.executable).parent / "kubelambda")
# `ready:` comes once the generic warm pool is full: a few seconds idle, over 30 s on a loaded
# two-core machine (five test suites at once).
READY_TIMEOUT = 90.0


class DevGateway:
    def __init__(self, folder: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.log_path = folder.parent / "dev.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [KUBELAMBDA, "dev", str(folder), "--port", "0", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.url = self._wait_ready()

    def _wait_ready(self, timeout: float = READY_TIMEOUT) -> str:
        """The endpoint `ready:` names, once said; the pause between looks is a wait for the
        process to exit (which fails at once), never a sleep."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"^ready: .*--endpoint-url (\S+)", self.log(), re.M)
            if found:
                return found.group(1)
            try:
                self.proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"kubelambda dev exited early:\n{self.log()}")
        raise AssertionError(f"kubelambda dev did not become ready in {timeout:g} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log(), re.M)
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} did not appear in the log:\n{self.log()[-3000:]}")

    def client(self, **config: Any) -> Any:
        return boto3.client(
            "lambda",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"total_max_attempts": 1}, read_timeout=60, **config),
        )

    def stop(self) -> None:
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("kubelambda dev did not stop on SIGTERM") from None
        finally:
            self._log.close()
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f"processes outlived the gateway: {[p.pid for p in alive]}"


def copy_functions(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "fns"
    folder.mkdir()
    for name in names:
        shutil.copy(FUNCTIONS / f"{name}.yaml", folder)
        if (FUNCTIONS / name).is_dir():
            shutil.copytree(FUNCTIONS / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevGateway]:
    """One gateway serving every fixture function, shared by a module's tests."""
    root = tmp_path_factory.mktemp("gateway")
    folder = copy_functions(root, *sorted(p.stem for p in FUNCTIONS.glob("*.yaml")))
    dev = DevGateway(folder, "--no-reload", "--warm-per-runtime", "2")
    yield dev
    dev.stop()
