"""No accepted event is lost across a kill -9 of the gateway, on both backends.

`kubelambda dev` runs as a subprocess; a counter function appends each event's request id to a
file with O_APPEND, so the file proves which events ran (duplicates allowed, and counted). The
gateway is SIGKILLed while events are being processed, restarted on the same queue, and every
event that was answered 202 must then have run at least once.
"""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.request

import pytest

from tests.component.asyncq.conftest import BACKENDS, Functions, queue_args
from tests.component.asyncq.helpers import EVENT, burst
from tests.component.asyncq.servers import KUBELAMBDA, KubelambdaDev, NatsServer, wait_until


class Sender(threading.Thread):
    """Sends `count` Event invokes from 4 threads' worth of sequential requests; records ids."""

    def __init__(self, url: str, count: int) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.count = count
        self.accepted: list[str] = []
        self.refused = 0
        self.unexpected: list[int] = []  # statuses other than 202
        self._lock = threading.Lock()

    def run(self) -> None:
        workers = [threading.Thread(target=self._send, args=(i,)) for i in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _send(self, offset: int) -> None:
        for i in range(offset, self.count, 4):
            body = json.dumps({"i": i}).encode()
            request = urllib.request.Request(self.url, data=body, headers=EVENT, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as response, self._lock:
                    if response.status == 202:
                        self.accepted.append(response.headers["x-amzn-RequestId"])
                    else:
                        self.unexpected.append(response.status)
            except urllib.error.HTTPError as error:
                with self._lock:
                    self.unexpected.append(error.code)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                with self._lock:
                    self.refused += 1  # no 202: the event may or may not have been stored


def run_ids(fns: Functions) -> list[str]:
    return [run["id"] for run in fns.runs_of("count")]


def check_all_ran(fns: Functions, accepted: set[str]) -> tuple[int, int]:
    """Waits until every accepted event ran; returns (runs, duplicates)."""
    wait_until(
        lambda: accepted <= set(run_ids(fns)),
        90,
        f"all {len(accepted)} accepted events to run after the restart "
        f"(missing so far: {len(accepted - set(run_ids(fns)))})",
        interval=0.2,
    )
    ids = run_ids(fns)
    return len(ids), len(ids) - len(set(ids))


def gateway_for(backend: str, fns: Functions, nats: NatsServer) -> KubelambdaDev:
    # ack_wait=1: JetStream redelivers the dead gateway's leases after a second.
    args, _ = queue_args(backend, nats, ack_wait=1)
    return KubelambdaDev(fns.folder, "--async-concurrency", "4", *args)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill9_while_accepting_and_processing_loses_no_accepted_event(
    backend: str, tmp_path, nats_server: NatsServer
) -> None:
    fns = Functions(tmp_path)
    fns.add("count", {"SLEEP": "0.01"})
    gateway = gateway_for(backend, fns, nats_server)
    try:
        sender = Sender(gateway.invoke_url("count"), 200)
        sender.start()
        wait_until(
            lambda: len(sender.accepted) >= 100 and len(run_ids(fns)) >= 10,
            30,
            "100 accepted and 10 run",
        )
        gateway.kill9()
        ran_before = len(set(run_ids(fns)))
        sender.join(30)
        assert not sender.is_alive()
        assert sender.unexpected == [], "only 202s, or no answer from the killed gateway"
        accepted = set(sender.accepted)
        assert ran_before < len(accepted), "the kill must interrupt processing"
        gateway.start()
        runs, duplicates = check_all_ran(fns, accepted)
        print(
            f"{backend}: {len(accepted)} accepted, {sender.refused} refused by the dead gateway,"
            f" {ran_before} ran before the kill, {runs} runs, {duplicates} duplicates"
        )
    finally:
        gateway.stop()


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_kill9_after_accepting_1000_events_loses_none(
    backend: str, tmp_path, nats_server: NatsServer
) -> None:
    fns = Functions(tmp_path)
    fns.add("count", {"SLEEP": "0.02"})
    gateway = gateway_for(backend, fns, nats_server)
    try:
        results = burst(gateway.invoke_url("count"), [{"i": i} for i in range(1000)], 16)
        accepted = {request_id for status, request_id in results if status == 202}
        assert len(accepted) == 1000
        wait_until(lambda: len(run_ids(fns)) >= 100, 60, "100 events to run")
        gateway.kill9()
        ran_before = len(set(run_ids(fns)))
        assert ran_before < 1000, "the kill must interrupt processing"
        gateway.start()
        runs, duplicates = check_all_ran(fns, accepted)
        print(
            f"{backend}: 1000 accepted, {ran_before} ran before the kill, {runs} runs, "
            f"{duplicates} duplicates"
        )
    finally:
        gateway.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_graceful_restart_resumes_the_pending_events(
    backend: str, tmp_path, nats_server: NatsServer
) -> None:
    fns = Functions(tmp_path)
    fns.add("count", {"SLEEP": "0.1"})
    args, _ = queue_args(backend, nats_server)
    gateway = KubelambdaDev(fns.folder, "--async-concurrency", "2", *args)
    try:
        results = burst(gateway.invoke_url("count"), [{"i": i} for i in range(20)], 8)
        accepted = {request_id for status, request_id in results if status == 202}
        assert len(accepted) == 20
        wait_until(lambda: len(run_ids(fns)) >= 4, 30, "4 events to run")
        gateway.stop()  # SIGTERM: in-flight events finish or go back to the queue
        assert len(set(run_ids(fns))) < 20, "the stop must leave events pending"
        gateway.start()
        check_all_ran(fns, accepted)
    finally:
        gateway.stop()


def test_an_unusable_queue_url_stops_kubelambda_dev(tmp_path) -> None:
    fns = Functions(tmp_path)
    fns.add("count")
    done = subprocess.run(
        [KUBELAMBDA, "dev", str(fns.folder), "--port", "0", "--queue", "redis://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--queue" in done.stderr and "sqlite:///PATH or nats://HOST:PORT" in done.stderr
