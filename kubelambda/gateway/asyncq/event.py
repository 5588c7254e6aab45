"""The event record: one accepted Event invocation and its progress through retries.

The queue stores exactly this. `attempts` is Lambda's approximateInvokeCount; `throttles` counts
refusals by admission (which never use up an attempt); `not_before` holds a retry back;
`generation` grows with every recorded step, so a backend can tell steps apart (JetStream uses it
in the message id it deduplicates on). Times are wall-clock epoch seconds because they must mean
the same after a restart.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass, field

from kubelambda.serving.names import FunctionRef


@dataclass(frozen=True)
class AsyncEvent:
    namespace: str
    function: str
    qualifier: str | None  # as invoked; None means unqualified ($LATEST)
    payload: bytes
    received_at: float
    id: str = field(default_factory=lambda: str(uuid.uuid4()))  # the request id of the 202
    attempts: int = 0
    throttles: int = 0
    not_before: float = 0.0
    generation: int = 0

    @classmethod
    def accept(cls, ref: FunctionRef, payload: bytes, now: float) -> AsyncEvent:
        return cls(ref.namespace, ref.name, ref.qualifier, payload, received_at=now)

    @property
    def ref(self) -> FunctionRef:
        return FunctionRef(self.namespace, self.function, self.qualifier)

    def age(self, now: float) -> float:
        return max(now - self.received_at, 0.0)

    def step(
        self,
        *,
        attempts: int | None = None,
        throttles: int | None = None,
        not_before: float | None = None,
    ) -> AsyncEvent:
        """A copy with the given fields changed, as the next recorded step."""
        return dataclasses.replace(
            self,
            attempts=self.attempts if attempts is None else attempts,
            throttles=self.throttles if throttles is None else throttles,
            not_before=self.not_before if not_before is None else not_before,
            generation=self.generation + 1,
        )

    def to_header(self) -> str:
        """Every field but the payload, as one compact header value (JetStream carries the
        payload as the message body; one header rather than ten halves the publish cost)."""
        return json.dumps(
            [
                self.id,
                self.namespace,
                self.function,
                self.qualifier,
                self.received_at,
                self.attempts,
                self.throttles,
                self.not_before,
                self.generation,
            ],
            separators=(",", ":"),
        )

    @classmethod
    def from_header(cls, value: str, payload: bytes) -> AsyncEvent:
        """The inverse of `to_header`. Raises ValueError on a foreign value."""
        try:
            ident, ns, fn, qualifier, received, attempts, throttles, not_before, gen = json.loads(
                value
            )
            return cls(
                str(ns),
                str(fn),
                None if qualifier is None else str(qualifier),
                payload,
                float(received),
                str(ident),
                int(attempts),
                int(throttles),
                float(not_before),
                int(gen),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not an event header: {value[:200]!r}") from exc
