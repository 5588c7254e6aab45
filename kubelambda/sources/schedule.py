"""Schedules: EventBridge's `rate()` and six-field `cron()` in a timezone, as tick times. Pure.

`cron(minutes hours day-of-month month day-of-week year)` follows EventBridge: `?` stands for
"any" in day-of-month or day-of-week, days of the week are 1-7 from Sunday (or SUN-SAT), `L`
and `#` work as croniter has them, and the year field takes `*`, values, ranges, lists and
steps. croniter computes the times, in the mapping's timezone (UTC by default), so a daily
08:00 stays at 08:00 local time across daylight-saving changes.

`rate(N unit)` ticks every N units from an anchor (the mapping's first start).

`due()` decides what to fire when the poller wakes: at most one tick, the latest that came
since the last one fired, so ticks missed while the poller was down are caught up once, not
replayed one by one, and a tick already fired is never fired again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_UNIT = {"minute": 60, "hour": 3600, "day": 86400}
_YEAR_PART = re.compile(r"^(\*|\d{4})(?:-(\d{4}))?(?:/(\d+))?$")
_HORIZON = 200  # cron candidates tried while looking for a matching year


class ScheduleError(ValueError):
    pass


def _dow(field: str) -> str:
    """EventBridge numbers days 1-7 from Sunday; croniter numbers them 0-6."""
    return re.sub(r"(?<![#/\d])([1-7])(?!\d)", lambda m: str(int(m.group(1)) - 1), field)


def _years(field: str) -> frozenset[int] | None:
    """The years a year field allows (None: any), up to 2199 as EventBridge does."""
    if field in ("*", "?"):
        return None
    years: set[int] = set()
    for part in field.split(","):
        found = _YEAR_PART.match(part)
        if not found:
            raise ScheduleError(f"year field {field!r} is not valid")
        start_text, end_text, step_text = found.groups()
        start = 1970 if start_text == "*" else int(start_text)
        end = int(end_text) if end_text else (2199 if start_text == "*" or step_text else start)
        years.update(range(start, end + 1, int(step_text or 1)))
    return frozenset(years)


@dataclass(frozen=True)
class Schedule:
    expression: str
    timezone: str = "UTC"
    period: float | None = None  # rate(): seconds between ticks
    cron: str | None = None  # cron(): croniter's five fields
    years: frozenset[int] | None = None

    def next_after(self, moment: float, anchor: float) -> float:
        """The first tick strictly after `moment` (epoch seconds)."""
        if self.period is not None:
            if moment < anchor:
                return anchor + self.period
            steps = int((moment - anchor) // self.period) + 1
            return anchor + steps * self.period
        assert self.cron is not None
        zone = ZoneInfo(self.timezone)
        start = datetime.fromtimestamp(moment, zone)
        it = croniter(self.cron, start)
        for _ in range(_HORIZON):
            candidate: datetime = it.get_next(datetime)
            if self.years is None or candidate.year in self.years:
                return candidate.timestamp()
            if self.years and candidate.year > max(self.years):
                break
        raise ScheduleError(f"{self.expression} has no tick after {start.isoformat()}")

    def latest_at_or_before(self, moment: float, anchor: float) -> float | None:
        """The last tick at or before `moment`, or None when there was none yet."""
        if self.period is not None:
            if moment < anchor + self.period:
                return None
            steps = int((moment - anchor) // self.period)
            return anchor + steps * self.period
        assert self.cron is not None
        zone = ZoneInfo(self.timezone)
        it = croniter(self.cron, datetime.fromtimestamp(moment + 0.001, zone))
        for _ in range(_HORIZON):
            candidate: datetime = it.get_prev(datetime)
            if candidate.timestamp() < anchor:
                return None
            if self.years is None or candidate.year in self.years:
                return candidate.timestamp()
        return None


def parse_schedule(expression: str, timezone: str | None = None) -> Schedule:
    zone = timezone or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"timezone {zone!r} is not a known IANA timezone") from None
    rate = _RATE.match(expression)
    if rate:
        count = int(rate.group(1))
        if count < 1:
            raise ScheduleError("rate() needs a positive value")
        return Schedule(expression, zone, period=count * _UNIT[rate.group(2).rstrip("s")])
    cron = _CRON.match(expression)
    if not cron:
        raise ScheduleError(f"{expression!r} is neither rate() nor cron()")
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ScheduleError(f"cron() takes 6 fields (m h dom mon dow year); got {len(fields)}")
    minute, hour, dom, month, dow, year = fields
    if dom != "?" and dow != "?":
        raise ScheduleError("cron(): one of day-of-month and day-of-week must be '?'")
    five = " ".join([minute, hour, dom.replace("?", "*"), month, _dow(dow).replace("?", "*")])
    if not croniter.is_valid(five):
        raise ScheduleError(f"cron({cron.group(1)}) is not a valid expression")
    return Schedule(expression, zone, cron=five, years=_years(year))


@dataclass(frozen=True)
class Tick:
    at: float  # the tick's scheduled time, epoch seconds
    caught_up: bool  # it passed before `now` (the poller was down or late)


def due(schedule: Schedule, anchor: float, last_fired: float | None, now: float) -> Tick | None:
    """The one tick to fire now, if any: the latest since `last_fired`, at or before `now`."""
    latest = schedule.latest_at_or_before(now, anchor)
    if latest is None or (last_fired is not None and latest <= last_fired):
        return None
    nxt_after_last = schedule.next_after(last_fired, anchor) if last_fired is not None else latest
    return Tick(latest, caught_up=nxt_after_last < latest)
