"""Retry, bisect and checkpoint planning for one batch of a stream partition. Pure.

Streams (Kafka, Redis Streams, NATS JetStream) keep order within a partition, so one batch is
in flight per partition and the checkpoint only moves forward over records that are settled:
processed, or given up on and sent to `destinationConfig.onFailure`. For one batch:

- Records older than `maximumRecordAgeInSeconds` are given up on before each invoke.
- Success settles the segment sent.
- A partial failure (ReportBatchItemFailures) settles the records before the first reported
  item; the segment from that item on is retried, and the retry counts.
- A function error with `bisectBatchOnFunctionError` splits the segment in two and sends each
  half in turn (splitting does not count as a retry); a single record, or bisect off, is
  retried as it is, and that counts.
- Past `maximumRetryAttempts` (-1: no limit) the failing segment is given up on, so a poison
  record never blocks its partition when retries are bounded.

Throttles and an unreachable gateway are not outcomes here: the invoker retries those without
counting them. The caller checkpoints `checkpoint()` records and sends `given_up` onward.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from kubelambda.sources.responses import Outcome

R = TypeVar("R")
Condition = Literal["RetryAttemptsExhausted", "RecordAgeExceeded"]


@dataclass(frozen=True)
class StreamPolicy:
    bisect: bool = False
    max_retries: int = -1  # -1: retry until the records expire (Lambda's default)
    max_age: float | None = None  # seconds; None: records never expire

    @property
    def bounded(self) -> bool:
        return self.max_retries >= 0


@dataclass(frozen=True)
class GivenUp(Generic[R]):
    records: list[R]
    condition: Condition
    attempts: int  # invokes of these records so far
    reason: str


@dataclass
class StreamBatch(Generic[R]):
    """One batch's life: `next()` gives what to invoke, `settle()` takes the outcome."""

    records: Sequence[R]
    policy: StreamPolicy
    identify: Callable[[R], str]
    arrived: Callable[[R], float]  # epoch seconds the record entered the stream
    given_up: list[GivenUp[R]] = field(default_factory=list)
    invokes: int = 0
    _segments: deque[list[int]] = field(default_factory=deque)  # indexes into records
    _done: list[bool] = field(default_factory=list)
    _attempts: int = 0  # failed attempts of the head segment that count as retries
    _tries: int = 0  # invokes of the head segment, for the destination record
    _sent: list[int] | None = None

    def __post_init__(self) -> None:
        self._done = [False] * len(self.records)
        if self.records:
            self._segments.append(list(range(len(self.records))))

    @property
    def finished(self) -> bool:
        return not self._segments

    def next(self, now: float) -> list[R]:
        """The records to invoke now; [] when the batch is finished. Expires old records."""
        assert self._sent is None, "settle() the previous segment first"
        while self._segments:
            head = self._segments[0]
            if self.policy.max_age is not None:
                old = [i for i in head if now - self.arrived(self.records[i]) > self.policy.max_age]
                if old:
                    self._give_up(old, "RecordAgeExceeded", "older than maximumRecordAgeInSeconds")
                    head = [i for i in head if i not in set(old)]
                    if not head:
                        self._pop()
                        continue
                    self._segments[0] = head
            self._sent = head
            self.invokes += 1
            self._tries += 1
            return [self.records[i] for i in head]
        return []

    def settle(self, outcome: Outcome) -> None:
        """Records the outcome of the segment `next()` gave."""
        sent, self._sent = self._sent, None
        assert sent is not None, "next() first"
        if outcome.kind == "success":
            self._mark(sent)
            self._pop()
            return
        if outcome.kind == "partial":
            failed = set(outcome.failed)
            first = next(
                (pos for pos, i in enumerate(sent) if self.identify(self.records[i]) in failed),
                len(sent),
            )
            self._mark(sent[:first])
            rest = sent[first:]
            if not rest:
                self._pop()
                return
            self._segments[0] = rest
            self._count_retry(rest, outcome.reason or "reported as failed")
            return
        if self.policy.bisect and len(sent) > 1:
            half = len(sent) // 2
            self._segments.popleft()
            self._segments.appendleft(sent[half:])
            self._segments.appendleft(sent[:half])
            self._attempts = 0
            self._tries = 0
            return
        self._count_retry(sent, outcome.reason)

    def checkpoint(self) -> int:
        """How many records, from the batch's start, are settled (the checkpoint's position)."""
        count = 0
        for done in self._done:
            if not done:
                break
            count += 1
        return count

    def settled(self) -> list[R]:
        """Every settled record, in order, whether or not a gap precedes it."""
        return [r for r, done in zip(self.records, self._done, strict=True) if done]

    def _count_retry(self, segment: list[int], reason: str) -> None:
        self._attempts += 1
        if self.policy.bounded and self._attempts > self.policy.max_retries:
            self._give_up(segment, "RetryAttemptsExhausted", reason)
            self._pop()

    def _give_up(self, indexes: list[int], condition: Condition, reason: str) -> None:
        self.given_up.append(
            GivenUp([self.records[i] for i in indexes], condition, self._tries, reason)
        )
        self._mark(indexes)

    def _mark(self, indexes: list[int]) -> None:
        for i in indexes:
            self._done[i] = True

    def _pop(self) -> None:
        self._segments.popleft()
        self._attempts = 0
        self._tries = 0
