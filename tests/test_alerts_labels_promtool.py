"""The labels of an alert rule as Prometheus makes them: templated per series like the
annotations, empty ones removed, and two series that end up with one label set failing the
rule's evaluation. Each case is run by the real ``promtool test rules`` too."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.alerts.config import AlertRule
from autoscaler.alerts.evaluate import RuleSpec, Sample, evaluate
from autoscaler.alerts.manager import Alerting
from autoscaler.loop import PassResult
from autoscaler.rules.schema import Policies
from autoscaler.sources.prometheus import PrometheusClient
from tests.fixtures_backends import PrometheusLab
from tests.test_alert_rules import promtool

LABELS = {
    "team": "{{ $labels.owner | toUpper }}",
    "level": 'at {{ $value | printf "%.1f" }}',
    "instance": "",  # removes the series' own label, as labels.Builder.Set(name, "") does
    "gone": "{{ $labels.missing }}",  # expands to nothing: no label
    "tier": "fixed",
}
# Prometheus' rules.ErrDuplicateAlertLabelSet
DUPLICATE = "vector contains metrics with the same labelset after applying alert labels"
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SERIES = [
    ({"__name__": "sessions", "app": "a", "owner": "data", "instance": "h1"}, 5.0),
    ({"__name__": "sessions", "app": "b", "owner": "web", "instance": "h2"}, 7.25),
]


def _promtool(tmp_path: Path, rule: dict[str, Any], test: dict[str, Any]) -> str:
    """promtool's output; the test passed when it is empty of FAILED."""
    rules = {"groups": [{"name": "g", "rules": [rule]}]}
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [test]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    res = promtool("test", "rules", tmp_path / "tests.yml")
    return f"rc={res.returncode}\n{res.stdout}{res.stderr}"


def _series(labels: dict[str, str], value: float) -> dict[str, str]:
    name = labels["__name__"]
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items() if k != "__name__")
    return {"series": f"{name}{{{inner}}}", "values": str(value)}


def test_rule_labels_are_templated_per_series_as_promtool_expands_them(tmp_path: Path) -> None:
    spec = RuleSpec("Busy", labels=LABELS)
    state = evaluate(spec, [Sample(labels, value) for labels, value in SERIES], {}, T0)
    ours = sorted((a.labels for a in state.values()), key=lambda labels: labels["app"])
    assert ours == [
        {
            "app": "a",
            "owner": "data",
            "team": "DATA",
            "level": "at 5.0",
            "tier": "fixed",
            "severity": "warning",
            "alertname": "Busy",
        },
        {
            "app": "b",
            "owner": "web",
            "team": "WEB",
            "level": "at 7.2",
            "tier": "fixed",
            "severity": "warning",
            "alertname": "Busy",
        },
    ]
    # Prometheus is given the severity label the sidecar adds; promtool adds alertname
    rule = {"alert": "Busy", "expr": "sessions > 2", "labels": {**LABELS, "severity": "warning"}}
    expected = [{"exp_labels": {k: v for k, v in o.items() if k != "alertname"}} for o in ours]
    test = {
        "interval": "1m",
        "input_series": [_series(labels, value) for labels, value in SERIES],
        "alert_rule_test": [{"eval_time": "0m", "alertname": "Busy", "exp_alerts": expected}],
    }
    out = _promtool(tmp_path, rule, test)
    assert out.startswith("rc=0") and "SUCCESS" in out, out


def test_two_series_that_make_one_alert_fail_the_rule_as_in_promtool(tmp_path: Path) -> None:
    spec = RuleSpec("Busy", labels={"owner": "{{ $labels.app }}"})
    same = [Sample({"app": "a", "owner": "data"}, 5.0), Sample({"app": "a", "owner": "web"}, 7.0)]
    with pytest.raises(ValueError, match=DUPLICATE):
        evaluate(spec, same, {}, T0)

    rule = {"alert": "Busy", "expr": "sessions > 2", "labels": {"owner": "{{ $labels.app }}"}}
    test = {
        "interval": "1m",
        "input_series": [_series({"__name__": "sessions", **s.labels}, s.value) for s in same],
        "alert_rule_test": [{"eval_time": "0m", "alertname": "Busy", "exp_alerts": []}],
    }
    out = _promtool(tmp_path, rule, test)
    assert out.startswith("rc=1"), out
    assert DUPLICATE in out


@pytest.mark.real
def test_a_rule_whose_series_make_one_alert_keeps_its_alerts_and_says_why(
    prometheus: PrometheusLab, caplog: pytest.LogCaptureFixture
) -> None:
    one = 'label_replace(vector(3), "owner", "data", "", "")'
    two = f'{one} or label_replace(vector(9), "owner", "web", "", "")'

    def rule(expr: str) -> Policies:
        raw = {"expr": expr, "labels": {"owner": "all"}, "annotations": {"s": "{{ $value }}"}}
        return Policies(alerts={"Busy": AlertRule.model_validate(raw)})

    def busy() -> list[tuple[dict[str, str], str, float]]:
        return [
            (a["labels"], a["state"], a["value"])
            for a in alerting.list_alerts()
            if a["labels"]["alertname"] == "Busy"
        ]

    alerting = Alerting(prometheus=PrometheusClient(prometheus.url, 10.0))
    alerting.configure(rule(one))
    alerting.after_pass(PassResult("t", True, 0.0))
    firing = {"owner": "all", "severity": "warning", "alertname": "Busy"}
    assert busy() == [(firing, "firing", 3.0)]

    alerting.configure(rule(two))
    with caplog.at_level(logging.WARNING, logger="autoscaler.alerts.manager"):
        alerting.after_pass(PassResult("t", True, 0.0))
    # neither series' value is taken: the alert is as the last evaluation left it
    assert busy() == [(firing, "firing", 3.0)]
    (warning,) = [r.getMessage() for r in caplog.records if "Busy" in r.getMessage()]
    assert warning.startswith(f"alert rule Busy not evaluated: {DUPLICATE}")
