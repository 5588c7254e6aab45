"""The queue interface every backend implements, and what it hands a worker.

Semantics, for every backend:

- `enqueue` returns only once the event is durable; the gateway answers 202 after it.
- `receive` leases due events (`not_before` passed). A lease that ends without `ack`,
  `retry_later` or `dead_letter` (the gateway died) makes the event deliverable again:
  at-least-once.
- `retry_later` records the event's next step durably and holds it back for `delay` seconds.
- `dead_letter` takes the event out of circulation into the backend's dead-letter store, with a
  reason and the invocation record, where it stays readable (`dead_letters`).
- Deliveries are bounded: `Delivery.deliveries` counts leases since the last recorded step, and
  the worker dead-letters an event whose count passes `max_deliveries` (a crash loop).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from kubelambda.gateway.asyncq.event import AsyncEvent

DEFAULT_MAX_DELIVERIES = 5


class QueueError(Exception):
    """The queue backend is unreachable or refused an operation."""


@dataclass
class Delivery:
    event: AsyncEvent
    deliveries: int  # leases since the event's last recorded step; 1 on a first delivery
    token: Any = field(default=None, repr=False)  # the backend's handle on the lease


@dataclass(frozen=True)
class DeadLetter:
    event: AsyncEvent
    reason: str
    record: bytes | None  # the invocation record that could not be delivered, JSON
    at: float


class AsyncQueue(abc.ABC):
    max_deliveries: int = DEFAULT_MAX_DELIVERIES

    @abc.abstractmethod
    async def start(self) -> None:
        """Opens the backend; after a restart, leases of the previous run become deliverable."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Releases the backend; unfinished leases become deliverable again."""

    @abc.abstractmethod
    async def enqueue(self, event: AsyncEvent) -> None:
        """Stores `event`; returns once it is durable. Raises QueueError."""

    @abc.abstractmethod
    async def receive(self, limit: int, wait: float) -> list[Delivery]:
        """Leases up to `limit` due events, waiting up to `wait` seconds for the first."""

    @abc.abstractmethod
    async def ack(self, delivery: Delivery) -> None:
        """The event is done: removes it."""

    @abc.abstractmethod
    async def retry_later(self, delivery: Delivery, event: AsyncEvent, delay: float) -> None:
        """Replaces the leased event by `event` (its next step), deliverable after `delay` s."""

    @abc.abstractmethod
    async def dead_letter(self, delivery: Delivery, reason: str, record: bytes | None) -> None:
        """Moves the event to the dead-letter store, where it stays readable."""

    @abc.abstractmethod
    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest `limit` events in the dead-letter store."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the queue lives, for the startup banner and logs."""
