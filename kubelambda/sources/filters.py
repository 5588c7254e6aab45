"""Lambda's event filtering: the pattern syntax of `filterCriteria`, compiled once, matched fast.

A pattern is a JSON object whose keys follow the record's structure. A leaf is a list of
matchers, any of which may match; a record's list value matches when any element does. The
matchers are Lambda's (EventBridge's) set: literal values (strings, numbers, true/false, null),
`prefix`, `suffix`, `equals-ignore-case`, `wildcard`, `anything-but` (of a value, a list, a
prefix, a suffix, equals-ignore-case or a wildcard), `numeric` ranges, `exists` and `cidr`, and
`$or` between sub-patterns at any level. A mapping keeps a record when any of its filters (at
most five) matches; with no filters, every record is kept.

A key that the record lacks matches only `{"exists": false}`. Compiling checks the grammar and
raises `FilterError` with the field's path, so a bad pattern is reported by name, never guessed.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_MISSING = object()
Leaf = Callable[[Any], bool]  # takes the record's value at the key, or _MISSING
_NUMERIC_OPS = {"<", "<=", "=", ">", ">="}


class FilterError(ValueError):
    """A pattern that does not follow the grammar; the message names where."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _literal_equal(want: Any, have: Any) -> bool:
    if want is None or isinstance(want, bool):
        return have is want
    if _is_number(want):
        return _is_number(have) and float(want) == float(have)
    return isinstance(have, str) and have == want


def _wildcard(pattern: str, where: str) -> re.Pattern[str]:
    if "**" in pattern:
        raise FilterError(f"{where}: wildcard {pattern!r} may not contain consecutive '*'")
    parts = re.split(r"(\\\*|\*)", pattern)
    regex = "".join(
        ".*" if p == "*" else re.escape("*") if p == "\\*" else re.escape(p) for p in parts
    )
    return re.compile(rf"\A{regex}\Z", re.S)


def _string_operand(spec: Any, op: str, where: str) -> str:
    if not isinstance(spec, str):
        raise FilterError(f"{where}: {op!r} takes a string")
    return spec


def _text_test(op: str, spec: Any, where: str) -> Callable[[str], bool]:
    """A test on a string value for prefix/suffix/equals-ignore-case/wildcard."""
    if op in ("prefix", "suffix") and isinstance(spec, dict):
        if set(spec) != {"equals-ignore-case"}:
            raise FilterError(f"{where}: {op!r} takes a string or {{'equals-ignore-case': str}}")
        folded = _string_operand(spec["equals-ignore-case"], op, where).casefold()
        if op == "prefix":
            return lambda s: s.casefold().startswith(folded)
        return lambda s: s.casefold().endswith(folded)
    text = _string_operand(spec, op, where)
    if op == "prefix":
        return lambda s: s.startswith(text)
    if op == "suffix":
        return lambda s: s.endswith(text)
    if op == "equals-ignore-case":
        folded = text.casefold()
        return lambda s: s.casefold() == folded
    regex = _wildcard(text, where)
    return lambda s: regex.match(s) is not None


def _numeric(spec: Any, where: str) -> Leaf:
    if not isinstance(spec, list) or len(spec) not in (2, 4):
        raise FilterError(f"{where}: 'numeric' takes [op, n] or [op, n, op, n]")
    tests: list[Callable[[float], bool]] = []
    for i in range(0, len(spec), 2):
        op, bound = spec[i], spec[i + 1]
        if op not in _NUMERIC_OPS or not _is_number(bound):
            raise FilterError(
                f"{where}: 'numeric' needs an operator of {sorted(_NUMERIC_OPS)} and a number"
            )
        b = float(bound)
        tests.append(
            {
                "<": lambda v, b=b: v < b,
                "<=": lambda v, b=b: v <= b,
                "=": lambda v, b=b: v == b,
                ">": lambda v, b=b: v > b,
                ">=": lambda v, b=b: v >= b,
            }[op]
        )
    if len(tests) == 2 and (spec[0] not in (">", ">=") or spec[2] not in ("<", "<=")):
        raise FilterError(f"{where}: a numeric range is [>|>=, low, <|<=, high]")
    return lambda v: _is_number(v) and all(t(float(v)) for t in tests)


def _cidr(spec: Any, where: str) -> Leaf:
    try:
        network = ipaddress.ip_network(_string_operand(spec, "cidr", where), strict=False)
    except ValueError as exc:
        raise FilterError(f"{where}: 'cidr' {spec!r} is not a network: {exc}") from None

    def test(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            return ipaddress.ip_address(value) in network
        except ValueError:
            return False

    return test


def _anything_but(spec: Any, where: str) -> Leaf:
    if isinstance(spec, dict):
        if len(spec) != 1:
            raise FilterError(f"{where}: 'anything-but' takes one operator")
        op, operand = next(iter(spec.items()))
        if op not in ("prefix", "suffix", "equals-ignore-case", "wildcard"):
            raise FilterError(f"{where}: 'anything-but' does not take {op!r}")
        operands = operand if isinstance(operand, list) else [operand]
        if op in ("prefix", "suffix") and isinstance(operand, list):
            raise FilterError(f"{where}: 'anything-but' {op!r} takes one string")
        tests = [_text_test(op, o, where) for o in operands]
        return lambda v: isinstance(v, str) and not any(t(v) for t in tests)
    values = spec if isinstance(spec, list) else [spec]
    for value in values:
        if isinstance(value, dict | list):
            raise FilterError(f"{where}: 'anything-but' takes values, a list or one operator")
    return lambda v: v is not _MISSING and not any(_literal_equal(w, v) for w in values)


def _matcher(spec: Any, where: str) -> tuple[Leaf, bool]:
    """One matcher -> (test on a single value, whether it is `exists: false`)."""
    if not isinstance(spec, dict):
        if isinstance(spec, list):
            raise FilterError(f"{where}: a matcher list may not contain a list")
        return (lambda v: _literal_equal(spec, v)), False
    if len(spec) != 1:
        raise FilterError(f"{where}: a matcher object has exactly one operator, got {list(spec)}")
    op, operand = next(iter(spec.items()))
    if op == "exists":
        if not isinstance(operand, bool):
            raise FilterError(f"{where}: 'exists' takes true or false")
        return (lambda v: v is not _MISSING and not isinstance(v, dict)), not operand
    if op in ("prefix", "suffix", "equals-ignore-case", "wildcard"):
        test = _text_test(op, operand, where)
        return (lambda v: isinstance(v, str) and test(v)), False
    if op == "anything-but":
        return _anything_but(operand, where), False
    if op == "numeric":
        return _numeric(operand, where), False
    if op == "cidr":
        return _cidr(operand, where), False
    raise FilterError(f"{where}: unknown operator {op!r}")


def _leaf(specs: list[Any], where: str) -> Callable[[Any], bool]:
    if not specs:
        raise FilterError(f"{where}: a matcher list may not be empty")
    tests: list[Leaf] = []
    absent_ok = False
    for i, spec in enumerate(specs):
        test, is_absent = _matcher(spec, f"{where}[{i}]")
        if is_absent:
            absent_ok = True
        else:
            tests.append(test)

    def match(value: Any) -> bool:
        if value is _MISSING:
            return absent_ok
        if isinstance(value, list):
            if not value:  # an empty list holds no value, as a missing key
                return absent_ok
            return any(t(item) for item in value for t in tests)
        return any(t(value) for t in tests)

    return match


Node = Callable[[Any], bool]  # takes the record's object (or _MISSING)


def _object(pattern: Any, where: str) -> Node:
    if not isinstance(pattern, dict):
        raise FilterError(f"{where}: must be a JSON object")
    if not pattern:
        raise FilterError(f"{where}: may not be empty")
    parts: list[Node] = []
    for key, spec in pattern.items():
        path = f"{where}.{key}"
        if key == "$or":
            if not isinstance(spec, list) or len(spec) < 2:
                raise FilterError(f"{path}: takes a list of at least two patterns")
            parts.append(_any_of([_object(p, f"{path}[{i}]") for i, p in enumerate(spec)]))
        elif isinstance(spec, dict):
            parts.append(_field(key, _object(spec, path)))
        elif isinstance(spec, list):
            parts.append(_field(key, _leaf(spec, path)))
        else:
            raise FilterError(f"{path}: must be a list of matchers or a nested object")
    return lambda obj: all(part(obj) for part in parts)


def _any_of(branches: list[Node]) -> Node:
    return lambda obj: any(branch(obj) for branch in branches)


def _field(key: str, inner: Node) -> Node:
    def match(obj: Any) -> bool:
        if isinstance(obj, list):  # an array of objects matches when any element does
            return any(match(item) for item in obj)
        value = obj.get(key, _MISSING) if isinstance(obj, dict) else _MISSING
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return any(inner(v) for v in value)
        return inner(value)

    return match


@dataclass(frozen=True)
class Pattern:
    source: str
    _match: Node

    def matches(self, record: dict[str, Any]) -> bool:
        return self._match(record)


def compile_pattern(text: str, where: str = "pattern") -> Pattern:
    """Parses and checks one pattern (a JSON string); raises FilterError naming the field."""
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise FilterError(f"{where}: not JSON: {exc}") from None
    return Pattern(text, _object(parsed, where))


@dataclass(frozen=True)
class FilterSet:
    patterns: tuple[Pattern, ...] = ()

    def keeps(self, record: dict[str, Any]) -> bool:
        """True when the record reaches the function: no filters, or any filter matches."""
        return not self.patterns or any(p.matches(record) for p in self.patterns)


def compile_filters(patterns: Sequence[str]) -> FilterSet:
    return FilterSet(
        tuple(
            compile_pattern(p, f"filterCriteria.filters[{i}].pattern")
            for i, p in enumerate(patterns)
        )
    )


def parse_payload(raw: bytes | str) -> Any:
    """What a pattern sees of a body or data: the JSON value when it parses, else the text.

    Bytes that are not UTF-8 give _MISSING-like absence (None is a real JSON value, so the
    caller leaves the key out instead).
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode()
        except UnicodeDecodeError:
            return _MISSING
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def filter_view(metadata: dict[str, Any], key: str, raw: bytes | str) -> dict[str, Any]:
    """The object a pattern is matched against: the metadata, plus `key` -> the parsed payload."""
    view = dict(metadata)
    value = parse_payload(raw)
    if value is not _MISSING:
        view[key] = value
    return view
