"""A cron expression of five fields that cron refuses says which field and what it allows,
rather than asking for the five fields it already has."""

from __future__ import annotations

import pytest

from autoscaler.rules.loader import RuleSource, load_sources

POLICY = """\
signals:
  rps:
    prometheus: {{query: up}}
services:
  api:
    max: 4
    target_tracking: [{{signal: rps, average_value: 20}}]
    schedules:
      - {{cron: '{cron}', duration: 1h, min: 2}}
"""


def _problems(cron: str) -> list[str]:
    text = POLICY.format(cron=cron)
    return [str(p) for p in load_sources([RuleSource("r.yml", text.encode())]).problems]


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("60 8 * * *", "the minute field '60' is not valid (0-59)"),
        ("0 24 * * *", "the hour field '24' is not valid (0-23)"),
        ("0 8 0 * *", "the day of month field '0' is not valid (1-31)"),
        ("0 8 * 13 *", "the month field '13' is not valid (1-12 or jan-dec)"),
        ("0 8 * * 8", "the day of week field '8' is not valid (0-7 or sun-sat)"),
        ("*/0 8 * * *", "the minute field '*/0' is not valid (0-59)"),
    ],
)
def test_the_field_at_fault_is_named(cron: str, says: str) -> None:
    assert _problems(cron) == [
        f"r.yml:9: services.api.schedules[0].cron: bad cron expression '{cron}': {says}"
    ]


def test_a_wrong_number_of_fields_asks_for_five() -> None:
    assert _problems("0 0 8 * * *") == [
        "r.yml:9: services.api.schedules[0].cron: bad cron expression '0 0 8 * * *': "
        "use 5 fields, e.g. '0 8 * * 1-5'"
    ]


def test_a_date_that_never_comes_never_fires() -> None:
    assert _problems("0 8 30 2 *") == [
        "r.yml:9: services.api.schedules[0].cron: cron expression '0 8 30 2 *' never fires"
    ]
