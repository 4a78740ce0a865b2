"""Scheduled windows: open or not at a time, in their time zone, and the bounds they set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autoscaler.decide.schedule import active_window, effective_bounds
from autoscaler.rules.schema import Schedule, ServicePolicy


def sched(cron: str, duration: str, tz: str = "UTC", **bounds: int) -> Schedule:
    return Schedule.model_validate(
        {"cron": cron, "duration": duration, "timezone": tz, **(bounds or {"min": 1})}
    )


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, sec: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, sec, tzinfo=UTC)


# (name, schedule, now, open?)
WINDOWS = [
    ("inside a weekday window", sched("0 8 * * 1-5", "10h"), utc(2024, 5, 6, 12, 0), True),
    ("before it opens", sched("0 8 * * 1-5", "10h"), utc(2024, 5, 6, 7, 59, 59), False),
    ("opening minute counts", sched("0 8 * * 1-5", "10h"), utc(2024, 5, 6, 8, 0), True),
    ("closing time does not", sched("0 8 * * 1-5", "10h"), utc(2024, 5, 6, 18, 0), False),
    ("weekend", sched("0 8 * * 1-5", "10h"), utc(2024, 5, 4, 12, 0), False),
    # a window opened on Friday 22:00 runs into Saturday
    ("across midnight, after", sched("0 22 * * 5", "4h"), utc(2024, 5, 4, 1, 30), True),
    ("across midnight, before", sched("0 22 * * 5", "4h"), utc(2024, 5, 3, 21, 30), False),
    ("across midnight, closed", sched("0 22 * * 5", "4h"), utc(2024, 5, 4, 2, 0), False),
    ("across midnight, wrong day", sched("0 22 * * 5", "4h"), utc(2024, 5, 5, 1, 30), False),
    # Europe/Berlin is UTC+2 in May: 08:00 local is 06:00Z
    ("time zone, inside", sched("0 8 * * *", "1h", "Europe/Berlin"), utc(2024, 5, 6, 6, 30),
     True),
    ("time zone, UTC reading would be inside", sched("0 8 * * *", "1h", "Europe/Berlin"),
     utc(2024, 5, 6, 8, 30), False),
    # DST starts 2024-03-31 02:00 in Berlin: 08:00 local is 07:00Z the day before, 06:00Z on it
    ("DST: day before, 06:30Z is 07:30 CET", sched("0 8 * * *", "1h", "Europe/Berlin"),
     utc(2024, 3, 30, 6, 30), False),
    ("DST: day before, 07:30Z is 08:30 CET", sched("0 8 * * *", "1h", "Europe/Berlin"),
     utc(2024, 3, 30, 7, 30), True),
    ("DST: change day, 06:30Z is 08:30 CEST", sched("0 8 * * *", "1h", "Europe/Berlin"),
     utc(2024, 3, 31, 6, 30), True),
    ("DST: change day, 07:30Z is 09:30 CEST", sched("0 8 * * *", "1h", "Europe/Berlin"),
     utc(2024, 3, 31, 7, 30), False),
    # the duration is real time: 01:00 CEST (23:00Z) + 3h ends 02:00Z, not 04:00 CET (03:00Z)
    ("DST end: open within 3h of real time", sched("0 1 * * *", "3h", "Europe/Berlin"),
     utc(2024, 10, 27, 1, 30), True),
    ("DST end: closed after 3h of real time", sched("0 1 * * *", "3h", "Europe/Berlin"),
     utc(2024, 10, 27, 2, 30), False),
    # DST ends 2024-10-27 03:00 CEST -> 02:00 CET in Brussels: 02:00-02:59 is read twice,
    # 00:00-00:59Z (CEST) and 01:00-01:59Z (CET). A window opened at 02:45 CEST (00:45Z)
    # is still open 25 minutes later, although the clock reads 02:10 again by then
    ("DST end: opened in the first 02:45, the clock reads 02:10 again",
     sched("45 2 * * *", "1h", "Europe/Brussels"), utc(2024, 10, 27, 1, 10), True),
    # and the clock reads 02:45 a second time: the window opens again
    ("DST end: 02:45 read a second time", sched("45 2 * * *", "10m", "Europe/Brussels"),
     utc(2024, 10, 27, 1, 50), True),
    ("DST end: between the two 02:45", sched("45 2 * * *", "10m", "Europe/Brussels"),
     utc(2024, 10, 27, 1, 10), False),
    # an hourly window opens every real hour, the repeated one included
    ("DST end: hourly window in the repeated hour", sched("0 * * * *", "20m", "Europe/Brussels"),
     utc(2024, 10, 27, 1, 10), True),
    # DST starts 2024-03-31 02:00 CET -> 03:00 CEST: 02:30 never shows; as cron runs what
    # falls in the gap at the jump, the window opens at 03:00 CEST (01:00Z)
    ("DST start: a skipped time opens at the jump", sched("30 2 * * *", "10m", "Europe/Brussels"),
     utc(2024, 3, 31, 1, 5), True),
    ("DST start: not before the jump", sched("30 2 * * *", "10m", "Europe/Brussels"),
     utc(2024, 3, 31, 0, 59), False),
    # refused in rules files ("never fires"); the window itself stays closed, never raises
    ("a date that never comes",
     sched("0 0 1 2 *", "1h").model_copy(update={"cron": "0 0 30 2 *"}),
     utc(2024, 3, 1, 0, 30), False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("schedule", "now", "expected"),
    [w[1:] for w in WINDOWS],
    ids=[w[0] for w in WINDOWS],
)
def test_active_window(schedule: Schedule, now: datetime, expected: bool) -> None:
    window = active_window(schedule, now)
    assert (window is not None) == expected
    if window is not None:
        assert window.start <= now < window.end
        assert window.end - window.start == schedule.duration


@pytest.mark.parametrize("first", [None, *[w[2] for w in WINDOWS]])
def test_active_window_does_not_depend_on_earlier_calls(first: datetime | None) -> None:
    """A replayed snapshot gets the live pass's answer, whatever was asked before it."""
    s = sched("45 2 * * *", "1h", "Europe/Brussels")
    fall_back = [utc(2024, 10, 27, 0, 50), utc(2024, 10, 27, 1, 50), utc(2024, 10, 27, 1, 10)]
    expected = [(utc(2024, 10, 27, 0, 45), True), (utc(2024, 10, 27, 1, 45), True),
                (utc(2024, 10, 27, 0, 45), True)]  # fmt: skip
    for order in (fall_back, fall_back[::-1], fall_back[1:] + fall_back[:1]):
        if first is not None:
            active_window(s, first)
        got = {}
        for t in order:
            w = active_window(s, t)
            got[t] = (w.start if w else None, w is not None)
        assert [got[t] for t in fall_back] == expected


def test_window_bounds_are_reported_in_utc() -> None:
    w = active_window(sched("0 8 * * *", "10h", "Europe/Berlin"), utc(2024, 5, 6, 12, 0))
    assert w is not None
    assert (w.start, w.end) == (utc(2024, 5, 6, 6, 0), utc(2024, 5, 6, 16, 0))


def policy(*schedules: dict[str, Any], lo: int = 1, hi: int = 10) -> ServicePolicy:
    return ServicePolicy.model_validate(
        {
            "min": lo,
            "max": hi,
            "steps": [{"signal": "q", "above": 1, "change": 1}],
            "schedules": list(schedules),
        }
    )


ALWAYS = {"cron": "* * * * *", "duration": "2m"}
NEVER = {"cron": "0 0 1 1 *", "duration": "1m"}
NOW = utc(2024, 5, 6, 12, 0)


@pytest.mark.parametrize(
    ("schedules", "lo", "hi", "expected", "note"),
    [
        ([], 1, 10, (1, 10), None),
        ([{**NEVER, "min": 5}], 1, 10, (1, 10), None),
        ([{**ALWAYS, "min": 5}], 1, 10, (5, 10), None),
        ([{**ALWAYS, "max": 4}], 1, 10, (1, 4), None),
        # the largest active min and the largest active max
        ([{**ALWAYS, "min": 5}, {**ALWAYS, "min": 3, "max": 6}, {**NEVER, "min": 9}], 1, 10,
         (5, 6), None),
        ([{**ALWAYS, "min": 12}], 1, 10, (12, 12), "scheduled min 12 is above max 10"),
        ([{**ALWAYS, "max": 2}], 4, 10, (2, 2), "scheduled max 2 is below min 4"),
        ([{**ALWAYS, "min": 8}, {**ALWAYS, "max": 5}], 1, 10, (8, 8),
         "scheduled min 8 is above max 5"),
    ],
)  # fmt: skip
def test_effective_bounds(
    schedules: list[dict[str, Any]], lo: int, hi: int, expected: tuple[int, int], note: str | None
) -> None:
    b = effective_bounds(policy(*schedules, lo=lo, hi=hi), NOW)
    assert (b.min, b.max) == expected
    active = sum(1 for s in schedules if s["cron"] == ALWAYS["cron"])
    assert sum(1 for r in b.reasons if r.startswith("schedule '")) == active
    if note is not None:
        assert any(note in r for r in b.reasons), b.reasons


def test_naive_time_is_taken_as_utc() -> None:
    s = sched("0 8 * * *", "1h", "Europe/Berlin")
    assert active_window(s, datetime(2024, 5, 6, 6, 30)) is not None
    assert active_window(s, datetime(2024, 5, 6, 6, 30) + timedelta(hours=1)) is None
