"""Concurrent boto3 callers in a process of their own, for the gateway-replica test.

A hundred boto3 threads in the test's own process would share its GIL with the process
kubelet (a thread there), so the pods' probes and the callers' request bodies both starve on a
2-core machine (gateways then answer 400: the body did not arrive in time). The test starts a
few of these processes instead: `python -m tests.cluster.callers THREADS NAME=URL ...`.

Each thread invokes `bounded` on the gateways in turn until stdin closes, and every outcome is
one JSON line on stdout: `{"served": NAME, "start": S, "end": E}`, `{"refused": NAME, "status":
..., "code": ..., "reason": ...}`, `{"failed": NAME, "error": TEXT, "at": T, "transport": B}`
(`transport`: the connection failed or dropped, as it does for a killed replica, which the
caller then avoids). The test decides which failures are allowed.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

FUNCTION = "bounded"


class Out:
    """The process's stdout, one whole line per outcome across threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.unreachable: set[str] = set()

    def line(self, record: dict[str, Any]) -> None:
        with self.lock:
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()


def client(url: str) -> Any:
    return boto3.session.Session().client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        # No retries: every answer is seen. Admitted calls may wait for a pod up to the
        # gateway's claim timeout (60 s) on a loaded machine.
        config=botocore.config.Config(
            retries={"total_max_attempts": 1}, read_timeout=150, connect_timeout=5
        ),
    )


def caller(index: int, gateways: dict[str, str], out: Out, stop: threading.Event) -> None:
    clients = {name: client(url) for name, url in gateways.items()}
    turn = index
    while not stop.is_set():
        live = [g for g in gateways if g not in out.unreachable]
        if not live:
            return
        gateway = live[turn % len(live)]
        turn += 1
        try:
            response = clients[gateway].invoke(FunctionName=FUNCTION, Payload=b"{}")
            body = json.loads(response["Payload"].read())
            out.line({"served": gateway, "start": body["start"], "end": body["end"]})
        except botocore.exceptions.ClientError as exc:
            meta = exc.response.get("ResponseMetadata", {})
            error = exc.response.get("Error", {})
            status, code = meta.get("HTTPStatusCode"), error.get("Code")
            if status == 429 or code == "TooManyRequestsException":
                out.line(
                    {
                        "refused": gateway,
                        "status": status,
                        "code": code,
                        "reason": exc.response.get("Reason"),
                    }
                )
            else:
                message = f"{status} {code}: {error.get('Message')}"
                out.line({"failed": gateway, "error": message, "at": time.time()})
            stop.wait(random.uniform(0.5, 1.5))  # the client honours Retry-After: 1
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            # Dropped mid-call or refused: move on to the other replicas.
            with out.lock:
                out.unreachable.add(gateway)
            out.line({"failed": gateway, "error": repr(exc), "at": time.time(), "transport": True})


def main(argv: list[str]) -> None:
    threads = int(argv[0])
    gateways = dict(item.split("=", 1) for item in argv[1:])
    out, stop = Out(), threading.Event()
    workers = [
        threading.Thread(target=caller, args=(i, gateways, out, stop), daemon=True)
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    sys.stdin.read()  # until the test closes it
    stop.set()
    for worker in workers:
        worker.join(30)


if __name__ == "__main__":
    main(sys.argv[1:])
