"""Alertmanager ``time_intervals``: named weekly/monthly windows that mute or activate routes."""

from __future__ import annotations

import calendar
import functools
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from autoscaler.model import Written

# Alertmanager's numbering (Go's time.Weekday): the week starts on Sunday, so
# 'sunday:thursday' is a range and 'monday:sunday' is not. Spelled out, not read from
# calendar.day_name, which follows the process' locale.
_WEEKDAYS = {
    d: i
    for i, d in enumerate(
        ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
    )
}
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        (
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        )
    )
}
_TIME = re.compile(r"^(\d{2}):(\d{2})$")


LOCALTIME = "/etc/localtime"


def local_zone() -> tzinfo:
    """The zone Alertmanager (Go's ``time.Local``) means by ``location: Local``."""
    return _zone_for_tz(os.environ.get("TZ"))


@functools.lru_cache(maxsize=8)  # read once, not at every check of every alert
def _zone_for_tz(tz: str | None) -> tzinfo:
    # Go reads TZ as the zone's name (an optional leading ':' dropped), "" as UTC and,
    # when TZ is unset, /etc/localtime; a zone it cannot load is UTC.
    if tz is None:
        try:
            with open(LOCALTIME, "rb") as f:
                return ZoneInfo.from_file(f, key="Local")
        except (OSError, ValueError):
            return UTC
    name = tz.removeprefix(":")
    if not name:
        return UTC
    try:
        if name.startswith("/"):
            with open(name, "rb") as f:
                return ZoneInfo.from_file(f, key=name)
        return ZoneInfo(name)
    except (OSError, ValueError, ZoneInfoNotFoundError):
        return UTC


def _zone(location: str) -> tzinfo:
    return local_zone() if location == "Local" else ZoneInfo(location)


class TimeRange(Written):
    start_time: str
    end_time: str

    @field_validator("start_time", "end_time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        m = _TIME.match(v)
        if not m or int(m.group(2)) > 59 or int(m.group(1)) * 60 + int(m.group(2)) > 24 * 60:
            raise ValueError(f"bad time {v!r}: use HH:MM between 00:00 and 24:00")
        return v

    def minutes(self) -> tuple[int, int]:
        def mins(t: str) -> int:
            h, m = t.split(":")
            return int(h) * 60 + int(m)

        start, end = mins(self.start_time), mins(self.end_time)
        if start >= end:
            raise ValueError(
                f"start_time {self.start_time} must be before end_time {self.end_time}"
            )
        return start, end


class TimeSpec(Written):
    """One ``time_intervals`` entry: every field given must match (empty = any)."""

    times: tuple[TimeRange, ...] = ()
    weekdays: tuple[str, ...] = ()
    days_of_month: tuple[str, ...] = ()
    months: tuple[str, ...] = ()
    years: tuple[str, ...] = ()
    location: str = "UTC"

    @field_validator("times")
    @classmethod
    def _times(cls, v: tuple[TimeRange, ...]) -> tuple[TimeRange, ...]:
        for t in v:
            t.minutes()
        return v

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for item in v:
            # by name only, as Alertmanager: tools disagree on what a number means (is 7
            # Sunday? is 1 Monday or the week's first day?)
            if any(p.strip().lstrip("-").isdigit() for p in item.split(":")):
                raise ValueError(f"weekday {item!r}: use names (monday:friday), not numbers")
            a, b = _range(item, _WEEKDAYS, 0, 6, "weekday")
            if a > b:
                raise ValueError(
                    f"weekday range {item!r} ends before it starts: weeks run sunday to "
                    "saturday, as in Alertmanager; split it at sunday (e.g. 'saturday', 'sunday')"
                )
        return v

    @field_validator("days_of_month")
    @classmethod
    def _days(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for item in v:
            lo, hi = _range(item, {}, -31, 31, "day of month")
            if lo == 0 or hi == 0:
                raise ValueError("days_of_month are 1..31 or -31..-1, not 0")
            # Alertmanager's checks: a range that matches no day in some or all months
            # (e.g. '-3:5', '20:-10') is refused rather than silently never muting.
            if lo < 0 < hi:
                raise ValueError(
                    f"day of month range {item!r}: a range that starts counted from the "
                    "month's end (negative) must end so too"
                )
            if (lo if lo > 0 else 28 + lo) > (hi if hi > 0 else 28 + hi):
                short = " in a 28-day month" if hi < 0 else ""
                raise ValueError(f"day of month range {item!r} ends before it starts{short}")
        return v

    @field_validator("months")
    @classmethod
    def _months(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for item in v:
            _ordered(item, _range(item, _MONTHS, 1, 12, "month"), "month")
        return v

    @field_validator("years")
    @classmethod
    def _years(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for item in v:
            _ordered(item, _range(item, {}, 0, 9999, "year"), "year")
        return v

    @field_validator("location")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            _zone(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    def contains(self, at: datetime) -> bool:
        t = at.astimezone(_zone(self.location))
        if self.times:
            minute = t.hour * 60 + t.minute
            if not any(s <= minute < e for s, e in (r.minutes() for r in self.times)):
                return False
        if self.weekdays and not any(
            _in(item, _WEEKDAYS, 0, 6, t.isoweekday() % 7) for item in self.weekdays
        ):
            return False
        if self.days_of_month:
            last = calendar.monthrange(t.year, t.month)[1]
            if not any(_day_in(item, t.day, last) for item in self.days_of_month):
                return False
        if self.months and not any(_in(item, _MONTHS, 1, 12, t.month) for item in self.months):
            return False
        return not self.years or any(_in(item, {}, 0, 9999, t.year) for item in self.years)


class TimeInterval(Written):
    name: str = Field(min_length=1)
    time_intervals: tuple[TimeSpec, ...] = ()

    def contains(self, at: datetime) -> bool:
        return any(spec.contains(at) for spec in self.time_intervals)


def any_active(intervals: Sequence[TimeInterval], at: datetime) -> bool:
    return any(i.contains(at) for i in intervals)


def _value(text: str, names: dict[str, int], what: str) -> int:
    t = text.strip().lower()
    if t in names:
        return names[t]
    try:
        return int(t)
    except ValueError:
        raise ValueError(f"bad {what} {text!r}") from None


def _range(item: str, names: dict[str, int], lo: int, hi: int, what: str) -> tuple[int, int]:
    first, _, last = item.partition(":")
    a = _value(first, names, what)
    b = _value(last, names, what) if last else a
    for v in (a, b):
        if not lo <= v <= hi:
            raise ValueError(f"{what} {item!r} is out of range")
    return a, b


def _ordered(item: str, bounds: tuple[int, int], what: str) -> None:
    if bounds[0] > bounds[1]:
        raise ValueError(f"{what} range {item!r} ends before it starts")


def _in(item: str, names: dict[str, int], lo: int, hi: int, value: int) -> bool:
    a, b = _range(item, names, lo, hi, "value")
    return a <= value <= b


def _day_in(item: str, day: int, last: int) -> bool:
    a, b = _range(item, {}, -31, 31, "day of month")
    a = a if a > 0 else last + a + 1
    b = b if b > 0 else last + b + 1
    return a <= day <= b
