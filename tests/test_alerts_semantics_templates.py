"""Alert annotations render as Prometheus renders them: ``promtool test rules`` expands the
same templates over the same values and must expect exactly what the sidecar wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autoscaler.alerts.evaluate import RuleSpec, Sample, render_annotations
from tests.test_alert_rules import promtool

# Values around every prefix boundary, and beyond the last ones (Y, y).
VALUES = [
    "1234567",
    "-1500",
    "999.99",
    "0.5",
    "0.000123",
    "1e21",
    "1e24",
    "-2.5e27",
    "1e-21",
    "3e-24",
    "1e-27",
]
TEMPLATES = {
    "value": "{{ $value }}",
    "human": "{{ $value | humanize }}",
    # Go's trim markers drop the white space (new lines too) next to the action
    "trimmed": "at\n  {{- $value | humanize -}}  \n now, {{ $labels.i -}} . {{- $labels.none }} .",
}


def test_annotations_render_as_promtool_expands_them(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "g",
                "rules": [{"alert": "V", "expr": "x", "annotations": TEMPLATES}],
            }
        ]
    }
    spec = RuleSpec(name="V", annotations=TEMPLATES)
    expected = []
    for i, text in enumerate(VALUES):
        ours = render_annotations(spec, Sample({"i": str(i)}, float(text)))
        expected.append({"exp_labels": {"i": str(i)}, "exp_annotations": ours})
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f'x{{i="{i}"}}', "values": text} for i, text in enumerate(VALUES)
                ],
                "alert_rule_test": [{"eval_time": "0m", "alertname": "V", "exp_alerts": expected}],
            }
        ],
    }
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    res = promtool("test", "rules", tmp_path / "tests.yml")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(("value", "shown"), [(1e24, "1Y"), (2.5e27, "2500Y"), (3e-24, "3y")])
def test_humanize_uses_the_yotta_and_yocto_prefixes(value: float, shown: str) -> None:
    spec = RuleSpec(name="V", annotations={"s": "{{ $value | humanize }}"})
    assert render_annotations(spec, Sample({}, value))["s"] == shown


def test_trim_markers_drop_the_white_space_next_to_the_action() -> None:
    spec = RuleSpec(name="V", annotations={"s": "Value:\n  {{- $value -}}  \n end"})
    assert render_annotations(spec, Sample({}, 40))["s"] == "Value:40end"
