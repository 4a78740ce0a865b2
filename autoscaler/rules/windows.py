"""Recurring time windows (cron + duration + time zone), shared by services and pools, and
the durations policies may set."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import AfterValidator, field_validator

from autoscaler.durations import Duration
from autoscaler.model import Written

MAX_DURATION = timedelta(days=36525)
"""100 years: longer than anything meant, and far enough from datetime's year 1 and 9999
that a window or period subtracted from (or added to) now cannot overflow at run time."""


def _within_reach(v: timedelta) -> timedelta:
    if v > MAX_DURATION:
        raise ValueError(f"duration too long: at most {MAX_DURATION.days}d (100 years)")
    return v


RuleDuration = Annotated[Duration, AfterValidator(_within_reach)]
"""A duration in a rules file: as ``Duration``, and at most ``MAX_DURATION``."""


class CronWindow(Written):
    """A recurring window: opens at each cron time (in its time zone), lasts ``duration``."""

    cron: str
    duration: RuleDuration
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        fields = v.split()
        if len(fields) != 5:
            raise ValueError(f"bad cron expression {v!r}: use 5 fields, e.g. '0 8 * * 1-5'")
        if not croniter.is_valid(v):
            raise ValueError(f"bad cron expression {v!r}: {_bad_field(fields)}")
        unlike_cron = _unlike_cron(fields)
        if unlike_cron is not None:
            raise ValueError(f"bad cron expression {v!r}: {unlike_cron}")
        try:  # a valid expression may name a day that never comes (30 February)
            croniter(v, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
        except CroniterBadDateError:
            raise ValueError(f"cron expression {v!r} never fires") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("duration")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("duration must be longer than 0s")
        return v


_CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day of week", "0-7 or sun-sat"),
)


def _bad_field(fields: list[str]) -> str:
    """Which of five fields croniter refuses: each is tried alone, the others as '*'."""
    for i, (name, allowed) in enumerate(_CRON_FIELDS):
        alone = ["*"] * 5
        alone[i] = fields[i]
        if not croniter.is_valid(" ".join(alone)):
            return f"the {name} field {fields[i]!r} is not valid ({allowed})"
    return "the fields are not valid together"


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES = {3: {n: i + 1 for i, n in enumerate(_MONTHS)}, 4: {n: i for i, n in enumerate(_DAYS)}}
_RANDOM = re.compile(r"r(\(\d+-\d+\))?(/\d+)?", re.IGNORECASE)


def _number(text: str, field: int) -> int | None:
    t = text.strip().lower()
    return int(t) if t.isdigit() else _NAMES.get(field, {}).get(t)


def _unlike_cron(fields: list[str]) -> str | None:
    """What croniter accepts but reads unlike cron: ``R`` (a new random time each time an
    expression is read, so each pass) and a range from a value to itself (``5-5``), which
    croniter widens to the whole field where cron means the one value."""
    for i, (name, _) in enumerate(_CRON_FIELDS):
        for part in fields[i].split(","):
            if _RANDOM.fullmatch(part):
                return (
                    f"the {name} field {fields[i]!r} is random (another time each pass): "
                    "write a time"
                )
            low, dash, high = re.split("[/#]", part)[0].partition("-")
            lo, hi = _number(low, i), _number(high, i)
            if dash and lo is not None and lo == hi:
                nth = part.partition("#")[1:]
                return (
                    f"the {name} field {fields[i]!r} is a range from {low} to itself, "
                    f"which would match every {name}: write {low}{''.join(nth)}"
                )
    return None
