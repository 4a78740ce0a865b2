"""Aggregation groups as a real Alertmanager forms them (``/api/v2/alerts/groups``)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import yaml

from autoscaler.alerts.config import RoutingConfig
from autoscaler.alerts.routing import Route
from autoscaler.lab.backends import Backend, start_alertmanager
from tests.realparts import missing_real_part

# A child that writes `group_by: []` next to children that set a list, leave it out or
# group by everything.
CONFIG = """
route:
  receiver: r
  group_by: [team]
  routes:
    - matchers: ['env="prod"']
      group_by: []
    - matchers: ['env="test"']
      group_by: [env]
    - matchers: ['env="dev"']
    - matchers: ['env="lab"']
      group_by: ['...']
receivers:
  - name: r
"""

ALERTS = [
    {"alertname": name, "env": env, "team": team}
    for env in ("prod", "test", "dev", "lab")
    for team in ("x", "y")
    for name in ("A", "B")
]


def _key(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Backend]:
    if shutil.which("prometheus-alertmanager") is None:
        missing_real_part(
            "prometheus-alertmanager not installed (apt-get install prometheus-alertmanager)"
        )
    backend = start_alertmanager(tmp_path, CONFIG)
    try:
        yield backend
    finally:
        backend.stop()


def _their_groups(url: str) -> list[tuple[str, int]]:
    now = datetime.now(UTC).isoformat()
    body = [{"labels": a, "startsAt": now} for a in ALERTS]
    requests.post(f"{url}/api/v2/alerts", json=body, timeout=5).raise_for_status()
    deadline = time.monotonic() + 15
    while True:
        groups = requests.get(f"{url}/api/v2/alerts/groups", timeout=5).json()
        count = sum(len(g["alerts"]) for g in groups)
        if count == len(ALERTS) or time.monotonic() > deadline:
            # one group per route and label set: two routes may make groups alike
            return sorted((_key(g["labels"]), len(g["alerts"])) for g in groups)
        time.sleep(0.2)


def _our_groups() -> list[tuple[str, int]]:
    root = Route.build(RoutingConfig.model_validate(yaml.safe_load(CONFIG)).route)
    out: dict[tuple[str, str], int] = {}
    for labels in ALERTS:
        for route in root.match(labels):
            key = (route.id(), _key(route.group_labels(labels)))
            out[key] = out.get(key, 0) + 1
    return sorted((labels, n) for (_, labels), n in out.items())


@pytest.mark.real
def test_groups_equal_a_real_alertmanagers_including_an_empty_group_by(
    alertmanager: Backend,
) -> None:
    theirs = _their_groups(alertmanager.url)
    assert _our_groups() == theirs
    # `group_by: []` inherits [team] there: the prod alerts make two groups, not one
    assert theirs.count((_key({"team": "x"}), 2)) == 2  # of the prod and the dev route


def test_an_empty_group_by_inherits_the_parents() -> None:
    root = Route.build(RoutingConfig.model_validate(yaml.safe_load(CONFIG)).route)
    prod = root.match({"env": "prod", "team": "x"})[0]
    assert prod.opts.group_by == frozenset({"team"}) and not prod.opts.group_by_all
