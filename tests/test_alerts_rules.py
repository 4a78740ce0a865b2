"""Alert rules and routing in rules/: validated by ``autoscaler check`` with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.rules.loader import load_paths

ROOT = Path(__file__).resolve().parent.parent

BASE = """
signals:
  waiting:
    swarm: {metric: pending_sessions}
"""


def problems(tmp_path: Path, *files: str) -> list[str]:
    paths = []
    for i, text in enumerate(files):
        p = tmp_path / f"f{i}.yml"
        p.write_text(text, encoding="utf-8")
        paths.append(p)
    result = load_paths(paths)
    return [str(p).replace(str(tmp_path) + "/", "") for p in result.problems]


def test_shipped_rules_with_alerts_are_valid() -> None:
    result = load_paths([ROOT / "rules"])
    assert result.problems == []
    assert result.policies is not None
    assert "NoNodeForSessions" in result.policies.alerts
    assert result.policies.route is not None and result.policies.receivers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "route:\n  receiver: ops\n  routes:\n    - receiver: pager\n"
            "receivers:\n  - name: ops\n",
            "f1.yml:4: route.routes[0].receiver: undefined receiver 'pager' (defined: ops)",
        ),
        (
            "alerts:\n  Waiting:\n    signal: waitng\n    op: '>'\n    value: 0\n",
            "f1.yml:3: alerts.Waiting.signal: unknown signal 'waitng': did you mean 'waiting'?",
        ),
        (
            "alerts:\n  AutoscalerLoopStalled:\n    expr: up == 0\n",
            "f1.yml:2: alerts.AutoscalerLoopStalled: 'AutoscalerLoopStalled' is a built-in alert",
        ),
        (
            "receivers:\n  - name: ops\n    pagerduty_configs: []\n",
            "f1.yml:2: receivers[0]: 'pagerduty_configs' is not supported",
        ),
        (
            "alerts:\n  X:\n    expr: up\n    for: soon\n",
            "f1.yml:4: alerts.X.for: bad duration 'soon'",
        ),
        (
            "route:\n  receiver: ops\n  routes:\n    - matchers: ['a=~(']\n"
            "receivers:\n  - name: ops\n",
            "f1.yml:4: route.routes[0].matchers: bad regular expression",
        ),
        (
            "route:\n  receiver: ops\n  routes:\n    - mute_time_intervals: [night]\n"
            "receivers:\n  - name: ops\n",
            "f1.yml:4: route.routes[0].mute_time_intervals[0]: undefined time interval 'night'",
        ),
        (  # at run time the last one would win
            "route: {receiver: ops}\nreceivers: [{name: ops}]\ntime_intervals:\n"
            "  - name: night\n  - name: night\n",
            "f1.yml:5: time_intervals[1].name: time interval 'night' is defined twice",
        ),
        (  # 1 is Monday to Alertmanager's Go, Sunday to cron: names only
            "time_intervals:\n  - name: week\n    time_intervals:\n      - weekdays: ['1:5']\n",
            "f1.yml:4: time_intervals[0].time_intervals[0].weekdays: weekday '1:5': use names",
        ),
        (
            "inhibit_rules:\n  - source_matchers: ['a=b']\n    equal: [bad-label]\n",
            "f1.yml:3: inhibit_rules[0].equal: invalid label name 'bad-label'",
        ),
        (  # the keys are Alertmanager's: `for`, never the name `for_` behind it
            "alerts:\n  A:\n    signal: waiting\n    op: '>'\n    value: 1\n    for_: 5m\n",
            "f1.yml:6: alerts.A.for_: unknown key 'for_': did you mean 'for'?",
        ),
        (  # Alertmanager refuses the whole alert for such a name
            "alerts:\n  A:\n    expr: up\n    annotations:\n      runbook-url: x\n",
            "f1.yml:4: alerts.A.annotations: invalid annotation name 'runbook-url'",
        ),
        (
            "inhibit_rules:\n  - source_match: {bad-label: x}\n",
            "f1.yml:2: inhibit_rules[0].source_match: invalid label name 'bad-label'",
        ),
        (  # labels are templates, as annotations: checked when loaded, each at its line
            "alerts:\n  A:\n    expr: up\n    labels:\n      tier: x\n"
            "      team: '{{ $labels.owner | shout }}'\n",
            "f1.yml:6: alerts.A.labels.team: template function 'shout' is not supported",
        ),
        (
            "alerts:\n  A:\n    expr: up\n    labels:\n      team: '{{ .Foo }}'\n",
            "f1.yml:5: alerts.A.labels.team: template field '.Foo' is not supported here",
        ),
        (
            "alerts:\n  A:\n    expr: up\n    annotations:\n      a: ok\n"
            "      summary: '{{ $labels.x'\n",
            "f1.yml:6: alerts.A.annotations.summary: unclosed '{{' in template",
        ),
    ],
)
def test_alerting_problems_name_file_line_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    got = problems(tmp_path, BASE, text)
    assert any(p.startswith(expected) for p in got), got


def test_receivers_in_two_files_are_reported(tmp_path: Path) -> None:
    r = "receivers:\n  - name: ops\n"
    got = problems(tmp_path, BASE + "route: {receiver: ops}\n" + r, r)
    assert any("section 'receivers' is defined twice" in p for p in got), got


def test_route_and_receivers_may_live_in_separate_files(tmp_path: Path) -> None:
    assert (
        problems(tmp_path, BASE + "route: {receiver: ops}\n", "receivers:\n  - name: ops\n") == []
    )


def test_alertmanager_sections_that_are_not_read_are_named(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        "route: {receiver: a}\nreceivers: [{name: a}]\n"
        "global:\n  smtp_smarthost: x:25\ntemplates: ['*.tmpl']\n",
    )
    assert got == [
        "f0.yml:3: global: the Alertmanager section 'global' is not supported: "
        "set smarthost, from, api_url_file ... on each receiver instead",
        "f0.yml:5: templates: the Alertmanager section 'templates' is not supported: "
        "use the title/text/html/headers templates of the receivers instead",
    ]


def test_a_label_named_signal_is_not_a_signal(tmp_path: Path) -> None:
    """Labels, annotations and headers are free text: a key named signal is no reference."""
    alert = (
        "alerts:\n  Busy:\n    signal: {ref}\n    op: '>'\n    value: 1\n"
        "    labels: {{signal: queue-depth}}\n    annotations: {{signal: x}}\n"
    )
    assert problems(tmp_path, BASE + alert.format(ref="waiting")) == []
    (unknown,) = problems(tmp_path, BASE + alert.format(ref="t"))
    assert unknown.startswith("f0.yml:7: alerts.Busy.signal: unknown signal 't'")
