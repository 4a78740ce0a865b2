"""Scheduled windows: is a cron window open at ``now`` in its time zone, and the bounds it sets.

A window opens at each cron time (wall clock of its time zone, so it follows DST) and
stays open for ``duration`` of real time; it may run past midnight. Only the latest
opening at or before ``now`` matters: a later opening also closes later. When the clock is
set back, the times of the repeated hour open a window each time the clock reads them;
times it skips when set forward open one at the jump, as cron runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
    start = _latest_opening(schedule.cron, schedule.timezone, utc(now))
    if start is None:
        return None
    end = start + schedule.duration
    if start <= utc(now) < end:
        return Window(schedule, start, end)
    return None


_MAX_SHIFT = timedelta(hours=3)
"""More than any change of a zone's clock (daylight saving moves it by 1 h, at most 2 h)."""

_SPANS: dict[tuple[str, str], tuple[datetime, datetime]] = {}
"""(cron, zone) -> [an opening, the next one) in UTC: every instant in between has that
opening as its latest, so one cron walk serves every pass until the next opening. Only
correct results are stored, so what a call returns never depends on earlier calls."""


def _latest_opening(cron: str, zone: str, now: datetime) -> datetime | None:
    known = _SPANS.get((cron, zone))
    if known is not None and known[0] <= now < known[1]:
        return known[0]
    tz = ZoneInfo(zone)
    try:
        opened = _nearest(cron, tz, now, forward=False)
        following = _nearest(cron, tz, now, forward=True)
    except ValueError:  # a valid expression that never fires, e.g. 30 February
        return None
    if opened is not None and following is not None:
        _SPANS[(cron, zone)] = (opened, following)
    return opened


def _offset(tz: ZoneInfo, at: datetime) -> timedelta:
    return at.astimezone(tz).utcoffset() or timedelta(0)


def _set_back(tz: ZoneInfo, start: datetime, end: datetime) -> timedelta:
    """How far the clock was set back between two instants (0 when it was not)."""
    return max(timedelta(0), _offset(tz, start) - _offset(tz, end))


def _reads(tz: ZoneInfo, at: datetime) -> datetime:
    """The wall clock of ``tz`` at an instant, as a naive time."""
    return at.astimezone(tz).replace(tzinfo=None)


def _instants(wall: datetime, tz: ZoneInfo) -> tuple[datetime, ...]:
    """The instants (UTC) at which the clock of ``tz`` reads ``wall``: one; both, in the hour
    that repeats when the clock is set back; and for a time it skips when set forward, the
    instant of the jump, as cron runs what falls in the gap."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return (first,)
    lo, hi = min(first, second), max(first, second)
    if _reads(tz, lo) == wall and _reads(tz, hi) == wall:
        return (lo, hi)
    # skipped: lo reads before ``wall``, hi after it; the jump is the first instant after
    while hi - lo > timedelta(seconds=1):
        mid = lo + timedelta(seconds=(hi - lo).total_seconds() // 2)
        if _reads(tz, mid) > wall:
            hi = mid
        else:
            lo = mid
    return (hi,)


def _nearest(cron: str, tz: ZoneInfo, now: datetime, forward: bool) -> datetime | None:
    """The latest opening at or before ``now`` (or with ``forward``, the first after it).

    croniter walks the naive wall clock (its own DST handling misreads the repeated hour);
    each wall time is turned into its instants here. Wall time and real time run in the same
    order except around a change of the clock, which ``_MAX_SHIFT`` of wall time covers.
    """
    wall = _reads(tz, now)
    if forward:
        begin = wall - _set_back(tz, now, now + _MAX_SHIFT)
        it = croniter(cron, begin - timedelta(microseconds=1))
    else:
        begin = wall + _set_back(tz, now - _MAX_SHIFT, now)
        it = croniter(cron, begin + timedelta(microseconds=1))  # an opening at now counts
    best: datetime | None = None
    best_wall = wall
    while True:
        at = it.get_next(datetime) if forward else it.get_prev(datetime)
        if best is not None and abs(at - best_wall) > _MAX_SHIFT:
            return best
        for instant in _instants(at, tz):
            on_side = instant > now if forward else instant <= now
            nearer = best is None or (instant < best if forward else instant > best)
            if on_side and nearer:
                best, best_wall = instant, at
        if best is None:
            continue
        # a wall time further on can only give a nearer instant across a change of clock
        if forward and not _set_back(tz, max(now, best - _MAX_SHIFT), best):
            return best
        if not forward and not _set_back(tz, best, min(now, best + _MAX_SHIFT)):
            return best


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
