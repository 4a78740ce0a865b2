"""Cron expressions mean what cron means: what croniter reads otherwise is refused at load,
and the day fields combine as in cron."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autoscaler.decide.schedule import active_window
from autoscaler.rules.schema import Schedule
from tests.test_rules_cron_fields import _problems


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        # croniter widens a range from a value to itself to the whole field: '0 22-22 * * *'
        # would open every hour, where cron opens at 22:00 only
        ("0 22-22 * * *", "the hour field '22-22' is a range from 22 to itself, "
         "which would match every hour: write 22"),
        ("0 8 * * 5-5", "the day of week field '5-5' is a range from 5 to itself, "
         "which would match every day of week: write 5"),
        ("0 8 * * 1,sun-SUN", "the day of week field '1,sun-SUN' is a range from sun to "
         "itself, which would match every day of week: write sun"),
        ("0 8 1 jan-1 *", "the month field 'jan-1' is a range from jan to itself, "
         "which would match every month: write jan"),
        ("0 8 * * mon-mon#2", "the day of week field 'mon-mon#2' is a range from mon to "
         "itself, which would match every day of week: write mon#2"),
        ("30-30/5 8 * * *", "the minute field '30-30/5' is a range from 30 to itself, "
         "which would match every minute: write 30"),
        # croniter's R draws a new time whenever the expression is read: each pass
        ("R 8 * * *", "the minute field 'R' is random (another time each pass): write a time"),
        ("0 r(8-9) * * *", "the hour field 'r(8-9)' is random (another time each pass): "
         "write a time"),
    ],
)  # fmt: skip
def test_what_croniter_reads_unlike_cron_is_refused_naming_the_field(cron: str, says: str) -> None:
    assert _problems(cron) == [
        f"r.yml:9: services.api.schedules[0].cron: bad cron expression '{cron}': {says}"
    ]


@pytest.mark.parametrize(
    "cron",
    ["0 8 * * 1-5", "0 8 * * 0-7", "0 8 * * MON-FRI", "0 8 * * fri-mon", "*/15 8-17 * * *",
     "0 8 1 jan-mar/2 *", "0 8 * * 7", "0 0 1-7 * 1", "0 8 * * 1#1"],
)  # fmt: skip
def test_ranges_names_and_steps_still_load(cron: str) -> None:
    assert _problems(cron) == []


def _days_open(cron: str) -> list[int]:
    """The days of April 2024 on which a window of ``cron`` is open at 08:00 UTC."""
    s = Schedule.model_validate({"cron": cron, "duration": "1m", "min": 1})
    days = (datetime(2024, 4, d, 8, tzinfo=UTC) for d in range(1, 31))
    return [at.day for at in days if active_window(s, at) is not None]


def test_day_of_month_and_day_of_week_both_set_open_on_either() -> None:
    # as cron: with both day fields restricted, a day that matches either one opens
    # (Mondays in April 2024: 1, 8, 15, 22, 29)
    assert _days_open("0 8 1-7 * 1") == [1, 2, 3, 4, 5, 6, 7, 8, 15, 22, 29]
    assert _days_open("0 8 * * 1#1") == [1]
    # with one of them '*' the other alone decides
    assert _days_open("0 8 * * 1") == [1, 8, 15, 22, 29]
    assert _days_open("0 8 1-7 * *") == [1, 2, 3, 4, 5, 6, 7]
