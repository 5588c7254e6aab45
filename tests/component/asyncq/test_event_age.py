"""maximumEventAgeInSeconds on both backends: an event that outlives it is reported with
EventAgeExceeded, whether it ran before (and failed) or was throttled the whole time.

Lambda's minimum age is 60 s; the gateway's `--max-event-age` cap (a testing knob) shortens it
to 2 s here, so the test takes seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.component.asyncq.conftest import BACKENDS, Functions, queue_args
from tests.component.asyncq.helpers import send_event
from tests.component.asyncq.servers import KubelambdaDev, NatsServer, Receiver

AGE = 2.0


@pytest.fixture(scope="module", params=BACKENDS)
def aged(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    nats_server: NatsServer,
    receiver: Receiver,
) -> Iterator[tuple[str, KubelambdaDev, Functions]]:
    backend: str = request.param
    fns = Functions(tmp_path_factory.mktemp(f"age-{backend}"))

    def hook(name: str) -> dict[str, Any]:
        return {"url": f"{receiver.url}/hook/age-{backend}-{name}"}

    # Runs once for longer than the age, fails: the retry finds the event too old.
    fns.add(
        "slowfail",
        {"SLEEP": str(AGE + 0.5), "FAIL": "1"},
        timeout=10,
        asyncConfig={"destinations": {"onFailure": hook("slowfail")}},
    )
    # reservedConcurrency 0 throttles every call: the event is retried until it is too old.
    fns.add(
        "blocked",
        reservedConcurrency=0,
        asyncConfig={"destinations": {"onFailure": hook("blocked")}},
        deadLetterConfig=hook("blocked-dlq"),
    )
    args, _ = queue_args(backend, nats_server)
    gateway = KubelambdaDev(fns.folder, "--retry-base", "0.2", "--max-event-age", str(AGE), *args)
    yield backend, gateway, fns
    gateway.stop()


def test_a_retry_after_the_age_ran_out_reports_event_age_exceeded(
    aged: tuple[str, KubelambdaDev, Functions], receiver: Receiver
) -> None:
    backend, gateway, fns = aged
    request_id = send_event(gateway.invoke_url("slowfail"), {"slow": True})
    [hook] = receiver.wait_for(f"/hook/age-{backend}-slowfail")
    context = hook.json()["requestContext"]
    assert context["condition"] == "EventAgeExceeded"
    assert context["approximateInvokeCount"] == 1
    assert [r["id"] for r in fns.runs_of("slowfail")] == [request_id]
    assert hook.json()["responseContext"]["functionError"] == "Unhandled"


def test_an_event_throttled_until_too_old_is_reported_not_lost(
    aged: tuple[str, KubelambdaDev, Functions], receiver: Receiver
) -> None:
    backend, gateway, fns = aged
    request_id = send_event(gateway.invoke_url("blocked"), {"blocked": 1})
    [hook] = receiver.wait_for(f"/hook/age-{backend}-blocked")
    record = hook.json()
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in record
    [dlq] = receiver.wait_for(f"/hook/age-{backend}-blocked-dlq")
    assert dlq.json() == {"blocked": 1}
    assert fns.runs_of("blocked") == []
    assert gateway.metric("kubelambda_throttles_total", function="blocked") >= 2
    assert gateway.metric("kubelambda_async_events_dropped_total", function="blocked") == 1
