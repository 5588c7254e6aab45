"""Real servers for the async tests, on 127.0.0.1 and free ports, stopped by PID.

- `NatsServer`: a nats-server with JetStream (`-js -sd <tmp>`), the Debian package.
- `MotoServer`: moto_server, for SQS destinations.
- `Receiver`: an aiohttp webhook receiver in its own thread and loop, so it keeps answering
  while a test blocks; it records every POST and can be told to fail.
- `KubelambdaDev`: `kubelambda dev` as a subprocess, which a test may SIGKILL and restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from aiohttp import web

KUBELAMBDA = str(Path(sys.executable).parent / "kubelambda")
MOTO = str(Path(sys.executable).parent / "moto_server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Polls `condition` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class NatsServer:
    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.log_path = store.parent / f"nats-{self.port}.log"
        self._log = self.log_path.open("w")
        cmd = ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store)]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(lambda: port_open(self.port) or self.proc.poll() is not None, 10, "nats")
        assert self.proc.poll() is None, self.log_path.read_text()

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


class MotoServer:
    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = (log_dir / "moto.log").open("w")
        self.proc = subprocess.Popen(
            [MOTO, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: port_open(self.port) or self.proc.poll() is not None, 30, "moto")
        assert self.proc.poll() is None

    def sqs(self) -> Any:
        import boto3

        return boto3.client(
            "sqs",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


@dataclass
class Hook:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Records POSTs to /hook/NAME; /fail/NAME answers 500 (and is recorded too)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hooks: list[Hook] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the webhook receiver did not start"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def record(request: web.Request) -> web.Response:
            hook = Hook(request.path, dict(request.headers), await request.read())
            with self._lock:
                self.hooks.append(hook)
            return web.Response(status=500 if request.path.startswith("/fail/") else 200)

        app = web.Application()
        app.router.add_post("/{kind}/{name}", record)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def received(self, path: str) -> list[Hook]:
        with self._lock:
            return [h for h in self.hooks if h.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 20.0) -> list[Hook]:
        hooks: list[Hook] = wait_until(
            lambda: (got := self.received(path)) and len(got) >= count and got,
            timeout,
            f"{count} POST(s) to {path}",
        )
        return hooks

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class KubelambdaDev:
    """`kubelambda dev FOLDER` as a subprocess on a free port."""

    def __init__(self, folder: Path, *args: str, log_name: str = "dev.log") -> None:
        self.folder = folder
        self.args = args
        self.log_path = folder.parent / log_name
        self.proc: subprocess.Popen[bytes] | None = None
        # A free port can be taken (an ephemeral port of someone's connect) before the gateway
        # binds it: the first start tries another one. Restarts keep theirs (the tests' URL).
        for attempt in range(3):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            try:
                self.start()
                return
            except AssertionError:
                self._log.close()
                if attempt == 2 or "address already in use" not in self.log()[-500:]:
                    raise

    def start(self) -> None:
        before = self.log().count("\nready: ") if self.log_path.exists() else 0
        self._log = self.log_path.open("a")
        self._log.write(f"\n==== start {time.time():.3f}\n")
        self._log.flush()
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self.proc = subprocess.Popen(
            [
                KUBELAMBDA,
                "dev",
                str(self.folder),
                "--port",
                str(self.port),
                "--no-reload",
                *self.args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_until(
            lambda: (
                self.log().count("\nready: ") > before
                or self.proc is None
                or self.proc.poll() is not None
            ),
            60,
            "kubelambda dev to be ready",
        )
        assert self.proc.poll() is None, f"kubelambda dev exited:\n{self.log()[-3000:]}"

    def log(self) -> str:
        return self.log_path.read_text()

    def invoke_url(self, name: str) -> str:
        return f"{self.url}/2015-03-31/functions/{name}/invocations"

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples whose labels include `labels` (0 when absent)."""
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            found = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
            if not found:
                continue
            have = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(found.group(2))
        return total

    def children(self) -> list[psutil.Process]:
        assert self.proc is not None
        try:
            found: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
            return found
        except psutil.NoSuchProcess:
            return []

    def kill9(self) -> None:
        """SIGKILL the gateway; its runtime processes die with it (PR_SET_PDEATHSIG)."""
        assert self.proc is not None
        children = self.children()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._log.close()
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"runtime processes outlived a killed gateway: {alive}"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        children = self.children()
        stop_process(self.proc, timeout=30)
        self._log.close()
        _, alive = psutil.wait_procs(children, timeout=10)
        for proc in alive:  # ours, by PID: the gateway failed to stop them
            proc.kill()
        assert not alive, f"processes outlived the gateway: {[p.pid for p in alive]}"
