"""Recurring time windows (cron + duration + time zone), shared by services and pools."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import field_validator

from autoscaler.durations import Duration
from autoscaler.model import Written


class CronWindow(Written):
    """A recurring window: opens at each cron time (in its time zone), lasts ``duration``."""

    cron: str
    duration: Duration
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        if len(v.split()) != 5 or not croniter.is_valid(v):
            raise ValueError(f"bad cron expression {v!r}: use 5 fields, e.g. '0 8 * * 1-5'")
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
