"""rate() and six-field cron() with timezones, and the one-tick catch-up rule."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelambda.sources.schedule import ScheduleError, due, parse_schedule


def ts(*args: int, tz: str = "UTC") -> float:
    return datetime(*args, tzinfo=ZoneInfo(tz)).timestamp()  # type: ignore[misc]


def test_rate_ticks_from_the_anchor() -> None:
    s = parse_schedule("rate(1 minute)")
    assert s.period == 60
    assert s.next_after(1000, anchor=1000) == 1060
    assert s.next_after(1059.9, anchor=1000) == 1060
    assert s.next_after(1060, anchor=1000) == 1120
    assert s.latest_at_or_before(1059, anchor=1000) is None
    assert s.latest_at_or_before(1130, anchor=1000) == 1120
    assert parse_schedule("rate(2 hours)").period == 7200
    assert parse_schedule("rate(1 day)").period == 86400


def test_cron_weekdays_at_eight_utc() -> None:
    s = parse_schedule("cron(0 8 ? * MON-FRI *)")
    friday_noon = ts(2024, 3, 29, 12)
    assert s.next_after(friday_noon, anchor=0) == ts(2024, 4, 1, 8)  # Monday


def test_cron_numbers_days_from_sunday_as_eventbridge() -> None:
    s = parse_schedule("cron(0 12 ? * 1 *)")  # 1 = Sunday
    nxt = datetime.fromtimestamp(s.next_after(ts(2024, 3, 27), anchor=0), UTC)
    assert nxt.strftime("%A %H:%M") == "Sunday 12:00"
    s = parse_schedule("cron(0 12 ? * 7 *)")  # 7 = Saturday
    nxt = datetime.fromtimestamp(s.next_after(ts(2024, 3, 27), anchor=0), UTC)
    assert nxt.strftime("%A") == "Saturday"


def test_cron_keeps_local_time_across_daylight_saving() -> None:
    s = parse_schedule("cron(0 8 * * ? *)", "Europe/Paris")
    before = s.next_after(ts(2024, 3, 30, 7, tz="Europe/Paris"), anchor=0)
    after = s.next_after(before, anchor=0)
    assert datetime.fromtimestamp(before, ZoneInfo("Europe/Paris")).hour == 8
    assert datetime.fromtimestamp(after, ZoneInfo("Europe/Paris")).hour == 8
    assert after - before == 23 * 3600  # the night the clocks go forward


def test_cron_year_field() -> None:
    s = parse_schedule("cron(0 0 1 1 ? 2030)")
    assert s.next_after(ts(2024, 6, 1), anchor=0) == ts(2030, 1, 1)
    s = parse_schedule("cron(0 0 1 1 ? 2025-2026)")
    with pytest.raises(ScheduleError):
        s.next_after(ts(2027, 1, 1), anchor=0)
    s = parse_schedule("cron(0 0 1 1 ? */2)")
    assert datetime.fromtimestamp(s.next_after(ts(2025, 6, 1), anchor=0), UTC).year == 2026


@pytest.mark.parametrize(
    ("expression", "tz", "message"),
    [
        ("rate(0 minutes)", None, "positive"),
        ("every minute", None, "neither"),
        ("cron(0 8 * * *)", None, "6 fields"),
        ("cron(0 8 1 * MON *)", None, "must be '?'"),
        ("cron(99 8 ? * MON *)", None, "not a valid"),
        ("cron(0 8 ? * MON 20x5)", None, "year field"),
        ("rate(1 minute)", "Mars/Olympus", "timezone"),
    ],
)
def test_bad_schedules_say_why(expression: str, tz: str | None, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(expression, tz)


def test_due_fires_each_tick_once() -> None:
    s = parse_schedule("rate(1 minute)")
    assert due(s, anchor=0, last_fired=None, now=59) is None
    tick = due(s, anchor=0, last_fired=None, now=60.5)
    assert tick is not None and tick.at == 60 and not tick.caught_up
    assert due(s, anchor=0, last_fired=60, now=61) is None  # already fired: never again
    assert due(s, anchor=0, last_fired=60, now=120).at == 120  # type: ignore[union-attr]


def test_ticks_missed_while_down_are_caught_up_once() -> None:
    s = parse_schedule("rate(1 minute)")
    tick = due(s, anchor=0, last_fired=60, now=60 * 10 + 5)
    assert tick is not None and tick.at == 600 and tick.caught_up
    assert due(s, anchor=0, last_fired=tick.at, now=60 * 10 + 6) is None


@given(st.integers(1, 120), st.floats(0, 1e6), st.floats(0, 1e5))
def test_rate_ticks_are_aligned_and_increasing(minutes: int, anchor: float, later: float) -> None:
    s = parse_schedule(f"rate({minutes} minutes)")
    moment = anchor + later
    nxt = s.next_after(moment, anchor)
    assert nxt > moment
    assert nxt - moment <= minutes * 60 + 1e-6
    assert abs(((nxt - anchor) / (minutes * 60)) - round((nxt - anchor) / (minutes * 60))) < 1e-6
