"""A real S3-compatible server for tests: versitygw (posix backend), built by `make tools` from
its Go module into .tools/bin, on 127.0.0.1 and a free port, with a temporary root; stopped by
PID."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VERSITYGW = ROOT / ".tools" / "bin" / "versitygw"
ACCESS_KEY = "kubelambda-test"
SECRET_KEY = "kubelambda-test-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class S3Server:
    def __init__(self, root: Path) -> None:
        if not VERSITYGW.is_file():
            raise AssertionError(f"{VERSITYGW} is missing: run `make tools` (scripts/build-s3.sh)")
        self.root = root / "data"
        self.root.mkdir(parents=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "versitygw.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [
                str(VERSITYGW),
                "--access",
                ACCESS_KEY,
                "--secret",
                SECRET_KEY,
                "--port",
                f"127.0.0.1:{self.port}",
                "--quiet",
                "posix",
                str(self.root),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while not _open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"versitygw did not start:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    @property
    def env(self) -> dict[str, str]:
        """The credentials, as the AWS SDKs read them from the environment."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}),
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
