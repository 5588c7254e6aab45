"""Lambda's filter pattern syntax, matcher by matcher, on parsed bodies and metadata."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelambda.sources.filters import (
    FilterError,
    compile_filters,
    compile_pattern,
    filter_view,
)


def match(pattern: dict[str, Any], record: dict[str, Any]) -> bool:
    return compile_pattern(json.dumps(pattern)).matches(record)


@pytest.mark.parametrize(
    ("pattern", "record", "expected"),
    [
        # exact values: strings, numbers (1 == 1.0), booleans, null
        ({"a": ["x"]}, {"a": "x"}, True),
        ({"a": ["x"]}, {"a": "y"}, False),
        ({"a": ["x", "y"]}, {"a": "y"}, True),
        ({"a": [1]}, {"a": 1.0}, True),
        ({"a": [1]}, {"a": "1"}, False),
        ({"a": [True]}, {"a": True}, True),
        ({"a": [True]}, {"a": 1}, False),
        ({"a": [None]}, {"a": None}, True),
        ({"a": [None]}, {}, False),
        ({"a": [""]}, {"a": ""}, True),
        # list values: any element
        ({"a": ["x"]}, {"a": ["w", "x"]}, True),
        ({"a": ["x"]}, {"a": ["w"]}, False),
        # nesting, and every key must match
        ({"a": {"b": ["x"]}}, {"a": {"b": "x"}}, True),
        ({"a": {"b": ["x"]}}, {"a": {"b": "y"}}, False),
        ({"a": {"b": ["x"]}}, {"a": "x"}, False),
        ({"a": ["x"], "b": ["y"]}, {"a": "x", "b": "z"}, False),
        ({"a": {"b": ["x"]}}, {"a": [{"b": "y"}, {"b": "x"}]}, True),
        # prefix / suffix, plain and ignoring case
        ({"a": [{"prefix": "ord"}]}, {"a": "order"}, True),
        ({"a": [{"prefix": "ord"}]}, {"a": "Order"}, False),
        ({"a": [{"prefix": {"equals-ignore-case": "ORD"}}]}, {"a": "order"}, True),
        ({"a": [{"suffix": ".png"}]}, {"a": "cat.png"}, True),
        ({"a": [{"suffix": ".png"}]}, {"a": "cat.jpg"}, False),
        ({"a": [{"suffix": {"equals-ignore-case": ".PNG"}}]}, {"a": "cat.png"}, True),
        ({"a": [{"prefix": "1"}]}, {"a": 12}, False),
        # equals-ignore-case
        ({"a": [{"equals-ignore-case": "HeLLo"}]}, {"a": "hello"}, True),
        ({"a": [{"equals-ignore-case": "HeLLo"}]}, {"a": "hell"}, False),
        # wildcard, with an escaped star
        ({"a": [{"wildcard": "*.png"}]}, {"a": "dir/cat.png"}, True),
        ({"a": [{"wildcard": "a*c*e"}]}, {"a": "abcde"}, True),
        ({"a": [{"wildcard": "a*c*e"}]}, {"a": "abcd"}, False),
        ({"a": [{"wildcard": "a\\*b"}]}, {"a": "a*b"}, True),
        ({"a": [{"wildcard": "a\\*b"}]}, {"a": "axb"}, False),
        # anything-but: a value, a list, a prefix, a suffix, ignoring case, a wildcard
        ({"a": [{"anything-but": "x"}]}, {"a": "y"}, True),
        ({"a": [{"anything-but": "x"}]}, {"a": "x"}, False),
        ({"a": [{"anything-but": "x"}]}, {}, False),
        ({"a": [{"anything-but": ["x", "y"]}]}, {"a": "y"}, False),
        ({"a": [{"anything-but": [1, 2]}]}, {"a": 3}, True),
        ({"a": [{"anything-but": {"prefix": "in"}}]}, {"a": "internal"}, False),
        ({"a": [{"anything-but": {"prefix": "in"}}]}, {"a": "public"}, True),
        ({"a": [{"anything-but": {"suffix": ".tmp"}}]}, {"a": "x.tmp"}, False),
        ({"a": [{"anything-but": {"equals-ignore-case": ["A", "B"]}}]}, {"a": "b"}, False),
        ({"a": [{"anything-but": {"equals-ignore-case": ["A", "B"]}}]}, {"a": "c"}, True),
        ({"a": [{"anything-but": {"wildcard": "*.tmp"}}]}, {"a": "x.tmp"}, False),
        # numeric
        ({"a": [{"numeric": [">", 0]}]}, {"a": 1}, True),
        ({"a": [{"numeric": [">", 0]}]}, {"a": 0}, False),
        ({"a": [{"numeric": [">=", 0, "<", 10]}]}, {"a": 0}, True),
        ({"a": [{"numeric": [">=", 0, "<", 10]}]}, {"a": 10}, False),
        ({"a": [{"numeric": [">", 0, "<=", 10]}]}, {"a": 10}, True),
        ({"a": [{"numeric": ["=", 3.5]}]}, {"a": 3.5}, True),
        ({"a": [{"numeric": [">", 0]}]}, {"a": "5"}, False),
        ({"a": [{"numeric": [">", 0]}]}, {"a": True}, False),
        # exists
        ({"a": [{"exists": True}]}, {"a": "x"}, True),
        ({"a": [{"exists": True}]}, {"a": None}, True),
        ({"a": [{"exists": True}]}, {}, False),
        ({"a": [{"exists": True}]}, {"a": {"b": 1}}, False),  # leaves only
        ({"a": [{"exists": False}]}, {}, True),
        ({"a": [{"exists": False}]}, {"a": "x"}, False),
        ({"a": {"b": [{"exists": False}]}}, {"a": {}}, True),
        ({"a": {"b": [{"exists": False}]}}, {}, True),
        # cidr
        ({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.0.7"}, True),
        ({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.1.7"}, False),
        ({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "nope"}, False),
        # $or at the top and nested
        ({"$or": [{"a": ["x"]}, {"b": ["y"]}]}, {"b": "y"}, True),
        ({"$or": [{"a": ["x"]}, {"b": ["y"]}]}, {"a": "y"}, False),
        ({"c": ["z"], "$or": [{"a": ["x"]}, {"b": ["y"]}]}, {"a": "x", "c": "w"}, False),
        ({"d": {"$or": [{"a": ["x"]}, {"b": [{"numeric": [">", 1]}]}]}}, {"d": {"b": 2}}, True),
    ],
)
def test_matchers(pattern: dict[str, Any], record: dict[str, Any], expected: bool) -> None:
    assert match(pattern, record) is expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("[1]", "must be a JSON object"),
        ("{}", "may not be empty"),
        ('{"a": "x"}', "list of matchers"),
        ('{"a": []}', "may not be empty"),
        ('{"a": [[1]]}', "may not contain a list"),
        ('{"a": [{"nope": 1}]}', "unknown operator 'nope'"),
        ('{"a": [{"prefix": 1}]}', "takes a string"),
        ('{"a": [{"prefix": "x", "suffix": "y"}]}', "exactly one operator"),
        ('{"a": [{"numeric": [">"]}]}', "'numeric' takes"),
        ('{"a": [{"numeric": ["~", 1]}]}', "operator"),
        ('{"a": [{"numeric": ["<", 1, ">", 5]}]}', "range"),
        ('{"a": [{"exists": "yes"}]}', "true or false"),
        ('{"a": [{"wildcard": "a**"}]}', "consecutive"),
        ('{"a": [{"anything-but": {"numeric": [">", 1]}}]}', "does not take"),
        ('{"a": [{"anything-but": [{"x": 1}]}]}', "takes values"),
        ('{"a": [{"cidr": "300.1.1.1/8"}]}', "not a network"),
        ('{"$or": [{"a": ["x"]}]}', "at least two"),
        ("{nope", "not JSON"),
    ],
)
def test_bad_patterns_name_the_field(pattern: str, message: str) -> None:
    with pytest.raises(FilterError, match=message) as info:
        compile_filters(['{"ok": ["x"]}', pattern])
    assert str(info.value).startswith("filterCriteria.filters[1].pattern")


def test_filter_set_is_an_or_and_empty_keeps_all() -> None:
    assert compile_filters([]).keeps({"anything": 1})
    filters = compile_filters(['{"a": ["x"]}', '{"b": ["y"]}'])
    assert filters.keeps({"b": "y"})
    assert not filters.keeps({"a": "y", "b": "x"})


def test_views_parse_json_bodies_and_keep_text() -> None:
    view = filter_view({"messageId": "1"}, "body", '{"type": "order", "n": 3}')
    assert view == {"messageId": "1", "body": {"type": "order", "n": 3}}
    assert filter_view({}, "body", "plain text") == {"body": "plain text"}
    assert filter_view({}, "data", b"\xff\xfe") == {}  # not text: only metadata matches
    pattern = compile_pattern('{"body": {"type": ["order"]}, "messageId": [{"exists": true}]}')
    assert pattern.matches(view)
    assert not pattern.matches(filter_view({}, "body", '{"type": "order"}'))


text = st.text(max_size=12)


@given(text, text)
def test_prefix_and_suffix_agree_with_str(value: str, affix: str) -> None:
    assert match({"a": [{"prefix": affix}]}, {"a": value}) is value.startswith(affix)
    assert match({"a": [{"suffix": affix}]}, {"a": value}) is value.endswith(affix)


@given(text, text)
def test_anything_but_is_the_negation_of_equality(value: str, other: str) -> None:
    assert match({"a": [{"anything-but": other}]}, {"a": value}) is (value != other)


numbers = st.integers(-1000, 1000) | st.floats(-1e6, 1e6, allow_nan=False)


@given(numbers, numbers, numbers)
def test_numeric_ranges_agree_with_comparisons(value: float, low: float, high: float) -> None:
    pattern = {"a": [{"numeric": [">=", low, "<", high]}]}
    assert match(pattern, {"a": value}) is (low <= value < high)


@given(st.text(alphabet="ab*", max_size=6), st.text(alphabet="ab", max_size=8))
def test_wildcard_agrees_with_fnmatch(pattern: str, value: str) -> None:
    import fnmatch

    if "**" in pattern:
        return
    expected = fnmatch.fnmatchcase(value, pattern)
    assert match({"a": [{"wildcard": pattern}]}, {"a": value}) is expected
