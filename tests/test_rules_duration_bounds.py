"""Durations in rules files are bounded: one so long that now minus it (or plus it) leaves
the calendar is refused at load time, never left to fail every decision at run time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autoscaler.decide import plan
from autoscaler.decide.plan_types import Memory
from autoscaler.rules.loader import RuleSource, load_sources
from autoscaler.snapshot import Service, Snapshot, SwarmState

HEAD = """\
signals:
  rps:
    prometheus: {query: up}
services:
  api:
    max: 10
    target_tracking: [{signal: rps, average_value: 20}]
"""

# where a duration goes -> (the lines that set it, its line, its field)
PLACES = {
    "stabilization_window": (
        "    behavior:\n      scale_down:\n        stabilization_window: {d}\n",
        10,
        "services.api.behavior.scale_down.stabilization_window",
    ),
    "period": (
        "    behavior:\n      scale_up:\n        policies:\n"
        "          - {{type: replicas, value: 1, period: {d}}}\n",
        11,
        "services.api.behavior.scale_up.policies[0].period",
    ),
    "schedule": (
        "    schedules:\n      - {{cron: '0 8 * * *', duration: {d}, min: 2}}\n",
        9,
        "services.api.schedules[0].duration",
    ),
}


def _load(place: str, duration: str) -> tuple[str, list[str]]:
    lines, _, _ = PLACES[place]
    text = HEAD + lines.format(d=duration)
    result = load_sources([RuleSource("r.yml", text.encode())])
    return text, [str(p) for p in result.problems]


@pytest.mark.parametrize("place", sorted(PLACES))
def test_a_duration_past_the_calendar_is_a_load_problem(place: str) -> None:
    _, line, field = PLACES[place]
    assert _load(place, "1000000000h")[1] == [
        f"r.yml:{line}: {field}: duration too long: at most 36525d (100 years)"
    ]


@pytest.mark.parametrize("place", sorted(PLACES))
def test_the_longest_allowed_duration_decides_without_error(place: str) -> None:
    text, problems = _load(place, "36525d")
    assert problems == []
    result = load_sources([RuleSource("r.yml", text.encode())])
    assert result.policies is not None
    api = Service.model_validate(
        {"id": "a", "name": "api", "mode": "replicated", "replicas": 4, "running": 4, "version": 1}
    )
    snapshot = Snapshot(
        taken_at=datetime(2024, 6, 3, 12, tzinfo=UTC),
        swarm=SwarmState(services=(api,)),
    )
    decisions = plan(snapshot, result.policies, Memory()).decisions
    assert [d.outcome for d in decisions if d.outcome == "error"] == []


ALERTS = """\
alerts:
  Busy:
    expr: up == 0
    for: {for_}
route:
  receiver: log
  repeat_interval: {repeat}
receivers:
  - name: log
"""


@pytest.mark.parametrize(
    ("for_", "repeat", "problem"),
    [
        ("3000000d", "4h", "r.yml:4: alerts.Busy.for: duration too long"),
        ("10m", "3000000d", "r.yml:7: route.repeat_interval: duration too long"),
    ],
)
def test_an_alert_duration_past_the_calendar_is_a_load_problem(
    for_: str, repeat: str, problem: str
) -> None:
    """Alert timers are added to the time an alert started: past the calendar, every
    evaluation would fail."""
    text = ALERTS.format(for_=for_, repeat=repeat)
    problems = [str(p) for p in load_sources([RuleSource("r.yml", text.encode())]).problems]
    assert [p.split(": at most")[0] for p in problems] == [problem]
