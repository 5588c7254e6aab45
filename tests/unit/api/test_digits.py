"""Numbers in requests and manifests are ASCII digits only (markers, qualifiers, versions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelambda.api.common import is_digits
from kubelambda.gateway.control import _page


@pytest.mark.parametrize("text", ["0", "7", "42", "000123"])
def test_ascii_digits_are_numbers(text: str) -> None:
    assert is_digits(text)


# Each of these is str.isdigit(); none is a number Lambda reads.
@pytest.mark.parametrize("text", ["¹", "²3", "٣", "\uff11\uff12", "", "-1", "1.0", " 1", "1e3"])
def test_anything_else_is_not(text: str) -> None:
    assert not is_digits(text)


@given(st.text(max_size=8))
def test_whatever_it_accepts_int_reads_as_the_same_digits(text: str) -> None:
    if is_digits(text):
        assert str(int(text)) == text.lstrip("0") or int(text) == 0


def test_a_marker_that_only_looks_like_digits_starts_from_the_beginning() -> None:
    items = [{"n": n} for n in range(3)]
    assert _page(items, "¹", None, "Items") == {"Items": items}
    assert _page(items, "1", "1", "Items") == {"Items": [{"n": 1}], "NextMarker": "2"}
    assert _page(items, "1", "²", "Items")["Items"] == [{"n": 1}, {"n": 2}]
