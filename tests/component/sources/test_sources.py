"""Each source against its real broker: every record delivered, Lambda's batching, filtering
and failure semantics, a poller killed mid-batch losing nothing, enabled: false stopping it."""

from __future__ import annotations

import json
import time
from collections import Counter

from tests.component.asyncq.servers import wait_until
from tests.component.sources.conftest import Case, settle


def batch_size_for(case: Case, wanted: int) -> dict[str, int]:
    if case.kind.name == "sqs" and wanted > 10:
        return {"batchSize": wanted, "maximumBatchingWindowInSeconds": 1}
    return {"batchSize": wanted}


def test_every_record_is_delivered_in_batches_within_batch_size(case: Case) -> None:
    size = 10 if case.kind.name == "sqs" else 50
    case.poller(batchSize=size)
    total = 1000
    case.produce([{"n": n} for n in range(total)])
    batches = case.recorder.wait_for(case.run, set(range(total)), timeout=90)
    assert set(case.recorder.seen(case.run)) == set(range(total))
    assert max(len(b["ns"]) for b in batches) <= size
    assert all(len(b["ns"]) >= 1 for b in batches)
    if case.kind.name == "kafka":  # order holds within each partition
        by_part: dict[str, list[int]] = {}
        for b in batches:
            assert len(set(b["parts"])) == 1, "a batch holds one partition"
            by_part.setdefault(b["parts"][0], []).extend(b["ns"])
        assert len(by_part) == 3
        for ns in by_part.values():
            assert ns == sorted(ns)
    if case.kind.stream and case.kind.name != "kafka":
        ns = [n for b in batches for n in b["ns"]]
        assert ns == sorted(ns), "a stream is delivered in order"


def test_the_window_gathers_records_into_one_batch(case: Case) -> None:
    case.poller(batchSize=500, maximumBatchingWindowInSeconds=2)
    sent = time.time()
    case.produce([{"n": n} for n in range(5)])
    batches = case.recorder.wait_for(case.run, set(range(5)))
    if case.kind.name == "kafka":  # one batch per partition
        assert sorted(len(b["ns"]) for b in batches) == [1, 2, 2]
    else:
        assert [len(b["ns"]) for b in batches] == [5]
    assert min(b["t"] for b in batches) - sent >= 1.5  # not sent before the window ended


def test_partial_failures_retry_the_reported_items_and_filters_drop(case: Case) -> None:
    key = case.kind.payload_key
    case.poller(
        **batch_size_for(case, 10),
        functionResponseTypes=["ReportBatchItemFailures"],
        filterCriteria={"filters": [{"pattern": json.dumps({key: {"keep": [True]}})}]},
    )
    payloads = [
        {"n": n, "keep": n % 5 != 4, **({"fail": 1} if n % 10 == 3 else {})} for n in range(30)
    ]
    case.produce(payloads)
    kept = {p["n"] for p in payloads if p["keep"]}
    failing = {p["n"] for p in payloads if p.get("fail")}

    def wait_counts() -> Counter[int]:
        return Counter(case.recorder.seen(case.run))

    wait_until(
        lambda: all(wait_counts()[n] >= 2 for n in failing) and kept <= set(wait_counts()),
        60,
        "the failed records' retries",
    )
    settle(1.0)
    counts = wait_counts()
    assert set(counts) == kept, "filtered records never reach the function"
    if not case.kind.stream:  # queues: exactly the reported items come back
        assert {n for n, c in counts.items() if c > 1} == failing
        assert all(counts[n] == 2 for n in failing)
    else:  # streams: the retry starts at the first failed record of its batch
        batches = case.batches()
        for i, b in enumerate(batches):
            bad = [n for n in b["ns"] if n in failing and counts[n] >= 2]
            if bad and i + 1 < len(batches):
                later = [x for x in batches[i + 1 :] if x["parts"][0] == b["parts"][0]]
                first_bad = next(n for n in b["ns"] if n in failing)
                assert later and later[0]["ns"][0] == first_bad
                break
        else:
            raise AssertionError("no batch reported failures")


def test_a_poller_killed_mid_batch_loses_nothing(case: Case) -> None:
    poller = case.poller(**batch_size_for(case, 20))
    total = 200
    case.produce([{"n": n, **({"sleep": 1.0} if n == 0 else {})} for n in range(total)])
    wait_until(lambda: case.batches(), 30, "the first batch to be in flight")
    poller.kill9()
    poller.start()
    case.recorder.wait_for(case.run, set(range(total)), timeout=60)


def test_enabled_false_stops_polling_and_keeps_the_position(case: Case) -> None:
    poller = case.poller(batchSize=10)
    case.produce([{"n": n} for n in range(10)])
    case.recorder.wait_for(case.run, set(range(10)))
    case.write(batchSize=10, enabled=False)
    asked = time.monotonic()
    poller.reload()
    poller.wait_for_log(r": Disabled \(")
    assert time.monotonic() - asked < 5
    case.produce([{"n": n} for n in range(10, 20)])
    settle(3.0)
    assert set(case.recorder.seen(case.run)) == set(range(10))
    case.write(batchSize=10, enabled=True)
    poller.reload()
    case.recorder.wait_for(case.run, set(range(20)))
