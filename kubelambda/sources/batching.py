"""When a batch goes out: full, its window ended, or the next record would pass 6 MB. Pure.

Lambda sends a batch when the first of these happens: it holds `batchSize` records, the
batching window (`maximumBatchingWindowInSeconds`, counted from the first record) has ended,
or adding the next record would take the invoke payload past 6 MB. A record that alone is over
the limit still goes out, alone, so nothing is held forever; the invoke then fails with
RequestTooLargeException and the source's failure handling takes it from there.

The clock is passed in, so the rules are tested without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

PAYLOAD_LIMIT = 6 * 1024 * 1024  # a synchronous invoke's request limit
ENVELOPE = 1024  # the event's own keys around the records, generously

T = TypeVar("T")


@dataclass(frozen=True)
class BatchLimits:
    size: int  # batchSize
    window: float  # seconds; 0 sends what one read returned
    payload: int = PAYLOAD_LIMIT

    def __post_init__(self) -> None:
        if self.size < 1 or self.window < 0 or self.payload < 1:
            raise ValueError("batch limits must be positive")


@dataclass
class Batcher(Generic[T]):
    """Collects records into batches under `limits`; `add` hands back batches ready to send."""

    limits: BatchLimits
    _items: list[T] = field(default_factory=list)
    _bytes: int = ENVELOPE
    _opened: float | None = None  # when the first record of the open batch arrived

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T, size: int, now: float) -> list[list[T]]:
        """Adds one record of `size` bytes (as serialized in the event); returns full batches."""
        out: list[list[T]] = []
        if self._items and self._bytes + size > self.limits.payload:
            out.append(self._take())
        if not self._items:
            self._opened = now
        self._items.append(item)
        self._bytes += size
        if len(self._items) >= self.limits.size or self._bytes >= self.limits.payload:
            out.append(self._take())
        return out

    def due(self, now: float) -> bool:
        """True when the open batch's window has ended (with a window of 0: whenever open)."""
        return self._opened is not None and now - self._opened >= self.limits.window

    def deadline(self) -> float | None:
        """When the open batch must go out, or None with nothing open."""
        return None if self._opened is None else self._opened + self.limits.window

    def flush(self) -> list[T]:
        """Takes the open batch (possibly empty)."""
        return self._take()

    def _take(self) -> list[T]:
        items, self._items = self._items, []
        self._bytes = ENVELOPE
        self._opened = None
        return items
