"""What a function's answer to a batch means: success, the reported failures, or total failure.

With `functionResponseTypes: [ReportBatchItemFailures]` a function returns
`{"batchItemFailures": [{"itemIdentifier": ID}, ...]}`. As Lambda does:

- a function error fails the whole batch;
- null, `{}`, a missing or null or empty `batchItemFailures` is a complete success;
- anything malformed fails the whole batch: a body that is not JSON, not an object, a list
  that is not a list, an item without a string `itemIdentifier`, an empty one, or one naming
  no record of the batch.

Without ReportBatchItemFailures, any answer that is not a function error is a success. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

OutcomeKind = Literal["success", "partial", "failure"]


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    failed: tuple[str, ...] = ()  # the reported identifiers, first-reported first, no repeats
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == "success"


SUCCESS = Outcome("success")


def failure(reason: str) -> Outcome:
    return Outcome("failure", reason=reason)


def interpret(
    function_error: str | None,
    payload: bytes,
    report_item_failures: bool,
    identifiers: Sequence[str],
) -> Outcome:
    """Reads one invoke's answer for a batch whose records have `identifiers`."""
    if function_error:
        return failure(f"function error ({function_error}): {_error_type(payload)}")
    if not report_item_failures:
        return SUCCESS
    text = payload.strip()
    if not text:
        return SUCCESS
    try:
        body = json.loads(text)
    except ValueError:
        return failure("the response is not JSON")
    if body is None:
        return SUCCESS
    if not isinstance(body, dict):
        return failure("the response is not an object with batchItemFailures")
    items = body.get("batchItemFailures")
    if items is None or items == []:
        return SUCCESS
    if not isinstance(items, list):
        return failure("batchItemFailures is not a list")
    known = set(identifiers)
    failed: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "itemIdentifier" not in item:
            return failure(f"batchItemFailures[{i}] has no itemIdentifier")
        ident = item["itemIdentifier"]
        if not isinstance(ident, str) or not ident:
            return failure(f"batchItemFailures[{i}].itemIdentifier is empty or not a string")
        if ident not in known:
            return failure(f"batchItemFailures[{i}].itemIdentifier {ident!r} is not in the batch")
        if ident not in failed:
            failed.append(ident)
    return Outcome("partial", tuple(failed))


def _error_type(payload: bytes) -> str:
    try:
        body = json.loads(payload)
    except ValueError:
        return "unreadable error"
    if isinstance(body, dict):
        return str(body.get("errorType") or body.get("errorMessage") or "error")
    return "error"
