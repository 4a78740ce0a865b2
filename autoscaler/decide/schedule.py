"""Scheduled windows: is a cron window open at ``now`` in its time zone, and the bounds it sets.

A window opens at each cron time (wall clock of its time zone, so it follows DST) and
stays open for ``duration`` of real time; it may run past midnight. Only the latest
opening at or before ``now`` matters: a later opening also closes later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

from autoscaler.decide.text import clock, span, utc
from autoscaler.rules.schema import Schedule, ServicePolicy
from autoscaler.rules.windows import CronWindow


@dataclass(frozen=True)
class Window:
    schedule: CronWindow
    start: datetime
    end: datetime


def active_window(schedule: CronWindow, now: datetime) -> Window | None:
    """The window of ``schedule`` that is open at ``now``, if any."""
    local_now = utc(now).astimezone(ZoneInfo(schedule.timezone))
    # Cron fires on whole minutes, so the latest opening at or before now is the latest
    # at or before now's minute: that makes the (costly) cron walk cacheable per minute.
    # The key holds the zone's name: aware datetimes of one instant compare equal across zones.
    start = _latest_opening(
        schedule.cron, schedule.timezone, local_now.replace(second=0, microsecond=0)
    )
    if start is None:
        return None
    end = start + schedule.duration
    if start <= utc(now) < end:
        return Window(schedule, start, end)
    return None


_SPANS: dict[tuple[str, str], tuple[datetime, datetime]] = {}
"""(cron, zone) -> [an opening, the next one): every minute in between has that opening as
its latest, so one cron walk serves every pass until the next opening."""


def _latest_opening(cron: str, zone: str, local_minute: datetime) -> datetime | None:
    at = utc(local_minute)
    known = _SPANS.get((cron, zone))
    if known is not None and known[0] <= at < known[1]:
        return known[0]
    return _walk(cron, zone, local_minute)


@lru_cache(maxsize=1024)
def _walk(cron: str, zone: str, local_minute: datetime) -> datetime | None:
    try:
        # get_prev is strictly before its start; nudge so an opening exactly at now counts
        opened = croniter(cron, local_minute + timedelta(microseconds=1)).get_prev(datetime)
        following = croniter(cron, opened).get_next(datetime)
    except ValueError:  # a valid expression that never fires, e.g. 30 February
        return None
    _SPANS[(cron, zone)] = (utc(opened), utc(following))
    return utc(opened)


@dataclass(frozen=True)
class Bounds:
    min: int
    max: int
    reasons: tuple[str, ...] = ()


def _describe(s: Schedule, w: Window) -> str:
    sets = ", ".join(f"{k} {v}" for k, v in (("min", s.min), ("max", s.max)) if v is not None)
    return (
        f"schedule '{s.cron}' ({s.timezone}, {span(s.duration)}) active until "
        f"{clock(w.end)}: {sets}"
    )


def effective_bounds(policy: ServicePolicy, now: datetime) -> Bounds:
    """Policy min/max, replaced by the largest min and largest max of the open windows.

    When the result has min > max, the value a schedule set wins over the policy's; when
    schedules set both, the minimum wins (it errs towards capacity).
    """
    opened = [(s, w) for s in policy.schedules if (w := active_window(s, now)) is not None]
    mins = [s.min for s, _ in opened if s.min is not None]
    maxes = [s.max for s, _ in opened if s.max is not None]
    lo = max(mins) if mins else policy.min
    hi = max(maxes) if maxes else policy.max
    reasons = [_describe(s, w) for s, w in opened]
    if lo > hi:
        if mins:
            reasons.append(f"scheduled min {lo} is above max {hi}: max raised to {lo}")
            hi = lo
        else:
            reasons.append(f"scheduled max {hi} is below min {lo}: min lowered to {hi}")
            lo = hi
    return Bounds(lo, hi, tuple(reasons))
