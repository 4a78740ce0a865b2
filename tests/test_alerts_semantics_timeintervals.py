"""``time_intervals`` read as Alertmanager reads them: ``amtool check-config`` decides
which entries are valid, and the week starts on Sunday (Go's ``time.Weekday``)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from autoscaler.alerts.timeintervals import TimeSpec
from tests.realparts import missing_real_part

ENTRIES = [
    {"weekdays": ["sunday:thursday"]},  # a Sunday-to-Thursday working week
    {"weekdays": ["sunday:saturday"]},
    {"weekdays": ["Monday:Friday"]},
    {"weekdays": ["monday:sunday"]},  # ends before it starts: Sunday is day 0
    {"weekdays": ["saturday:sunday"]},
    {"days_of_month": ["-1"]},
    {"days_of_month": ["5:-3"]},
    {"days_of_month": ["-7:-1"]},
    {"days_of_month": ["-3:5"]},  # from the end to a day from the start: never a day
    {"days_of_month": ["20:-10"]},  # empty in February
    {"days_of_month": ["10:5"]},
    {"months": ["december:january"]},
    {"years": ["2027:2026"]},
]


def _amtool_accepts(tmp_path: Path, entry: dict[str, list[str]]) -> bool:
    amtool = shutil.which("amtool")
    if amtool is None:
        missing_real_part("amtool not installed (apt-get install prometheus-alertmanager)")
    doc = {
        "route": {"receiver": "r"},
        "receivers": [{"name": "r"}],
        "time_intervals": [{"name": "w", "time_intervals": [entry]}],
    }
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    res = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30
    )
    return res.returncode == 0


def _we_accept(entry: dict[str, list[str]]) -> bool:
    try:
        TimeSpec.model_validate(entry)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: ",".join(next(iter(e.values()))))
def test_time_interval_entries_are_valid_exactly_when_amtool_says_so(
    tmp_path: Path, entry: dict[str, list[str]]
) -> None:
    assert _we_accept(entry) == _amtool_accepts(tmp_path, entry)


def test_a_sunday_to_thursday_week_contains_sunday_and_not_friday() -> None:
    spec = TimeSpec.model_validate({"weekdays": ["sunday:thursday"]})
    sunday = datetime(2026, 1, 4, 12, tzinfo=UTC)
    inside = {
        (sunday + timedelta(days=d)).strftime("%A")
        for d in range(7)
        if spec.contains(sunday + timedelta(days=d))
    }
    assert inside == {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday"}


@pytest.mark.parametrize(
    ("item", "error"),
    [
        ("monday:sunday", "weeks run sunday to saturday"),
        ("-3:5", "must end so too"),
        ("20:-10", "ends before it starts in a 28-day month"),
    ],
)
def test_refused_ranges_say_why(item: str, error: str) -> None:
    field = "weekdays" if item[0].isalpha() else "days_of_month"
    with pytest.raises(ValidationError, match=error):
        TimeSpec.model_validate({field: [item]})


def test_the_last_day_of_the_month_holds_across_a_daylight_saving_change() -> None:
    """March in Brussels has 31 days though one is 23 hours long: -1 is the 31st."""
    spec = TimeSpec.model_validate({"days_of_month": ["-1"], "location": "Europe/Brussels"})
    assert spec.contains(datetime(2026, 3, 31, 10, tzinfo=UTC))
    assert not spec.contains(datetime(2026, 3, 30, 10, tzinfo=UTC))
