"""Event invocations end to end, on both queue backends: `kubelambda dev` as a subprocess, the
functions as real runtime processes, destinations at a real webhook receiver, moto_server's SQS,
a real nats-server and another function."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.component.asyncq.conftest import BACKENDS, Functions, queue_args
from tests.component.asyncq.helpers import (
    EVENT,
    burst,
    nats_dead_letters,
    post,
    send_event,
    sqlite_dead_letters,
)
from tests.component.asyncq.servers import (
    KubelambdaDev,
    MotoServer,
    NatsServer,
    Receiver,
    wait_until,
)

ARN = "arn:aws:lambda:us-east-1:000000000000:function:default"


@dataclass
class World:
    backend: str
    gateway: KubelambdaDev
    fns: Functions
    receiver: Receiver
    nats: NatsServer
    stream: str | None
    sqs_queue: str
    sqs: Any

    def hook(self, name: str) -> str:
        return f"/hook/{self.backend}-{name}"

    def url(self, name: str) -> str:
        return self.gateway.invoke_url(name)

    def runs(self, name: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        return wait_until(
            lambda: len(got := self.fns.runs_of(name)) >= count and got,
            timeout,
            f"{count} run(s) of {name}",
        )

    def dead_letters(self) -> list[tuple[str, str, str, bytes | None]]:
        if self.stream is None:
            return sqlite_dead_letters(self.fns.folder / ".kubelambda")
        return nats_dead_letters(self.nats.url, self.stream)


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    nats_server: NatsServer,
    moto: MotoServer,
    receiver: Receiver,
) -> Iterator[World]:
    backend: str = request.param
    fns = Functions(tmp_path_factory.mktemp(f"async-{backend}"))
    sqs = moto.sqs()
    sqs_queue = sqs.create_queue(QueueName=f"failed-{backend}")["QueueUrl"]

    def hook(name: str) -> str:
        return f"{receiver.url}/hook/{backend}-{name}"

    def on(kind: str, target: dict[str, str], **config: Any) -> dict[str, Any]:
        return {"asyncConfig": {**config, "destinations": {kind: target}}}

    fail = {"FAIL": "1"}
    fns.add("once", **on("onSuccess", {"url": hook("once")}))
    fns.add("shape", **on("onSuccess", {"url": hook("shape")}))
    fns.add(
        "dlqbad",
        fail,
        asyncConfig={"maximumRetryAttempts": 0},
        deadLetterConfig={"url": f"{receiver.url}/fail/{backend}-dlqbad"},
    )
    fns.add("fails", fail, **on("onFailure", {"url": hook("fails")}))
    fns.add("fails0", fail, **on("onFailure", {"sqs": sqs_queue}, maximumRetryAttempts=0))
    fns.add(
        "natsfail", fail, **on("onFailure", {"nats": f"failed.{backend}"}, maximumRetryAttempts=0)
    )
    fns.add(
        "dlq", fail, asyncConfig={"maximumRetryAttempts": 1}, deadLetterConfig={"url": hook("dlq")}
    )
    fns.add("chain", **on("onSuccess", {"function": "audit"}))
    fns.add("audit", {"KEEP_EVENT": "1"})
    fns.add("throttled", {"SLEEP": "0.2"}, reservedConcurrency=1)
    fns.add("badhook", **on("onSuccess", {"url": f"{receiver.url}/fail/{backend}-badhook"}))
    fns.add("badin")
    scoped = {
        "runtime": "python3.11",
        "handler": "app.handler",
        "code": {"path": "./counter"},
        "environment": {"variables": {"OUT": str(fns.runs / "scoped.jsonl"), "FAIL": "1"}},
        "asyncConfig": {"maximumRetryAttempts": 2},
    }
    fns.write(
        "scoped",
        [
            {"kind": "Function", "metadata": {"name": "scoped"}, "spec": scoped},
            {
                "kind": "Version",
                "metadata": {"name": "scoped-1"},
                "spec": {"functionName": "scoped", "version": 1, "function": scoped},
            },
            {
                "kind": "Alias",
                "metadata": {"name": "live"},
                "spec": {
                    "functionName": "scoped",
                    "functionVersion": "1",
                    "asyncConfig": {
                        "maximumRetryAttempts": 0,
                        "destinations": {"onFailure": {"url": hook("scoped-live")}},
                    },
                },
            },
        ],
    )
    args, stream = queue_args(backend, nats_server)
    gateway = KubelambdaDev(fns.folder, "--retry-base", "0.2", "--nats-url", nats_server.url, *args)
    yield World(backend, gateway, fns, receiver, nats_server, stream, sqs_queue, sqs)
    gateway.stop()


def test_event_invoke_answers_202_and_runs_once(world: World) -> None:
    client = boto3.client(
        "lambda",
        endpoint_url=world.gateway.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}),
    )
    answer = client.invoke(FunctionName="once", InvocationType="Event", Payload=b'{"n": 1}')
    assert answer["StatusCode"] == 202
    assert "ExecutedVersion" not in answer
    request_id = answer["ResponseMetadata"]["RequestId"]
    # The onSuccess record is sent after the run; then no further run may follow.
    [hook] = world.receiver.wait_for(world.hook("once"))
    assert hook.json()["requestContext"]["requestId"] == request_id
    assert [run["id"] for run in world.fns.runs_of("once")] == [request_id]


def test_on_success_record_has_lambdas_shape(world: World) -> None:
    request_id = send_event(world.url("shape") + "?Qualifier=$LATEST", {"shape": [1, "two"]})
    [hook] = world.receiver.wait_for(world.hook("shape"))
    record = hook.json()
    assert hook.headers["Content-Type"] == "application/json"
    assert set(record) == {
        "version",
        "timestamp",
        "requestContext",
        "requestPayload",
        "responseContext",
        "responsePayload",
    }
    assert record["version"] == "1.0"
    assert time.strptime(record["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": f"{ARN}.shape:$LATEST",
        "condition": "Success",
        "approximateInvokeCount": 1,
    }
    assert record["requestPayload"] == {"shape": [1, "two"]}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"ok": True, "id": request_id}


def test_failing_function_runs_one_plus_retries_then_on_failure(world: World) -> None:
    request_id = send_event(world.url("fails"), {"f": 1})
    [hook] = world.receiver.wait_for(world.hook("fails"))
    record = hook.json()
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["requestId"] == request_id
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "ValueError"
    runs = world.fns.runs_of("fails")
    assert [r["id"] for r in runs] == [request_id] * 3, "1 + maximumRetryAttempts (2) runs"
    gaps = [b["start"] - a["end"] for a, b in itertools.pairwise(runs)]
    # Lambda's backoff, scaled by --retry-base 0.2: about 0.2 s, then about 0.4 s.
    assert gaps[0] >= 0.15 and gaps[1] >= 0.35, gaps


def test_max_retry_attempts_zero_runs_once_and_reports_to_sqs(world: World) -> None:
    request_id = send_event(world.url("fails0"), {"zero": True})

    def record() -> dict[str, Any] | None:
        got = world.sqs.receive_message(
            QueueUrl=world.sqs_queue, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        )
        messages = got.get("Messages", [])
        return json.loads(messages[0]["Body"]) if messages else None

    body = wait_until(record, 20, "the onFailure record in SQS")
    assert body["requestContext"]["condition"] == "RetriesExhausted"
    assert body["requestContext"]["approximateInvokeCount"] == 1
    assert body["requestPayload"] == {"zero": True}
    assert [r["id"] for r in world.fns.runs_of("fails0")] == [request_id]


def test_on_failure_to_a_nats_subject(world: World) -> None:
    async def scenario() -> tuple[str, dict[str, Any]]:
        import nats

        nc = await nats.connect(world.nats.url)
        try:
            sub = await nc.subscribe(f"failed.{world.backend}")
            request_id = await asyncio.to_thread(send_event, world.url("natsfail"), {"n": 3})
            msg = await sub.next_msg(timeout=20)
            return request_id, json.loads(msg.data)
        finally:
            await nc.close()

    request_id, record = asyncio.run(scenario())
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 1


def test_dead_letter_target_receives_the_original_event(world: World) -> None:
    payload = {"original": "event", "nested": {"k": [1, 2, 3]}}
    request_id = send_event(world.url("dlq"), payload)
    [hook] = world.receiver.wait_for(world.hook("dlq"))
    assert hook.json() == payload, "the DLQ gets the event itself, not a record"
    assert hook.headers["X-Kubelambda-RequestID"] == request_id
    assert hook.headers["X-Kubelambda-ErrorMessage"] == f"boom {request_id}"
    assert len(world.fns.runs_of("dlq")) == 2  # maximumRetryAttempts 1


def test_on_success_destination_function_is_invoked_async(world: World) -> None:
    request_id = send_event(world.url("chain"), {"chained": 1})
    [run] = world.runs("audit", 1)
    record = run["event"]
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["functionArn"] == f"{ARN}.chain:$LATEST"
    assert record["requestPayload"] == {"chained": 1}
    assert run["id"] != request_id, "the destination call is an invocation of its own"


def test_alias_scoped_async_config_overrides_the_versions(world: World) -> None:
    request_id = send_event(world.url("scoped") + "?Qualifier=live", {"via": "alias"})
    [hook] = world.receiver.wait_for(world.hook("scoped-live"))
    record = hook.json()
    assert record["requestContext"]["functionArn"] == f"{ARN}.scoped:live"
    assert record["requestContext"]["approximateInvokeCount"] == 1  # the alias says 0 retries
    assert record["responseContext"]["executedVersion"] == "1"
    assert [r["id"] for r in world.fns.runs_of("scoped")] == [request_id]


def test_throttled_events_are_delayed_and_all_processed(world: World) -> None:
    before = world.gateway.metric("kubelambda_throttles_total", function="throttled")
    results = burst(world.url("throttled"), [{"i": i} for i in range(6)])
    assert [status for status, _ in results] == [202] * 6
    ids = {request_id for _, request_id in results}
    runs = world.runs("throttled", 6, timeout=30)
    assert {r["id"] for r in runs} == ids, "every throttled event ran in the end"
    assert len(runs) == 6, "and each exactly once"
    spans = sorted((r["start"], r["end"]) for r in runs)
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans)), (
        "reservedConcurrency 1 held: runs never overlapped"
    )
    throttles = world.gateway.metric("kubelambda_throttles_total", function="throttled")
    assert throttles > before, "the burst was throttled by admission, and retried"
    assert world.gateway.metric("kubelambda_async_events_dropped_total", function="throttled") == 0


def test_failing_destination_is_retried_counted_and_the_event_kept(world: World) -> None:
    request_id = send_event(world.url("badhook"), {"x": 1})
    path = f"/fail/{world.backend}-badhook"
    world.receiver.wait_for(path, count=3)  # three delivery attempts
    wait_until(
        lambda: (
            world.gateway.metric(
                "kubelambda_destination_delivery_failures_total", function="badhook"
            )
            == 1
        ),
        20,
        "DestinationDeliveryFailures to count the failure",
    )
    kept = wait_until(
        lambda: [d for d in world.dead_letters() if d[1] == request_id],
        20,
        "the event in the dead-letter store",
    )
    [(function, _, reason, record)] = kept
    assert function == "badhook"
    assert "onSuccess destination" in reason and "500" in reason
    assert record is not None and json.loads(record)["requestContext"]["condition"] == "Success"
    assert f"async event {request_id}" in world.gateway.log()
    assert len(world.receiver.received(path)) == 3


def test_bad_input_gets_lambdas_errors_and_nothing_is_enqueued(world: World) -> None:
    url = world.url("badin")
    received = "kubelambda_async_events_received_total"
    total_before = world.gateway.metric(received)

    too_big = json.dumps({"pad": "x" * (256 * 1024)}).encode()
    status, headers, body = post(url, too_big, EVENT)
    assert (status, headers["x-amzn-ErrorType"]) == (413, "RequestTooLargeException")
    assert "262144" in json.loads(body)["message"]

    status, headers, body = post(url, b"{not json", EVENT)
    assert (status, headers["x-amzn-ErrorType"]) == (400, "InvalidRequestContentException")

    for name in ("nosuch", "badin:nosuchalias", "badin:7"):
        status, headers, body = post(world.url(name), b"{}", EVENT)
        assert (status, headers["x-amzn-ErrorType"]) == (404, "ResourceNotFoundException"), name
        assert "Message" in json.loads(body)

    # Just under the limit is fine; it is the marker after which nothing else may run.
    fits = json.dumps({"pad": "x" * (256 * 1024 - 20)}).encode()
    status, headers, _ = post(url, fits, EVENT)
    assert status == 202
    marker = headers["x-amzn-RequestId"]
    assert [r["id"] for r in world.runs("badin", 1)] == [marker]
    assert world.gateway.metric(received) == total_before + 1
    assert world.gateway.metric(received, function="badin") == 1


def test_failing_dead_letter_target_is_counted_and_the_event_kept(world: World) -> None:
    request_id = send_event(world.url("dlqbad"), {"y": 2})
    world.receiver.wait_for(f"/fail/{world.backend}-dlqbad", count=3)
    kept = wait_until(
        lambda: [d for d in world.dead_letters() if d[1] == request_id],
        20,
        "the event in the dead-letter store",
    )
    assert "deadLetterConfig" in kept[0][2]
    assert world.gateway.metric("kubelambda_dead_letter_errors_total", function="dlqbad") == 1
    assert world.gateway.metric("kubelambda_async_events_dropped_total", function="dlqbad") == 1
    age = world.gateway.metric("kubelambda_async_event_age_seconds_count", function="dlqbad")
    assert age == 1, "AsyncEventAge is observed once per attempt"
