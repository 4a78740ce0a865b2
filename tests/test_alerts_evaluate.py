"""Alert rule states with Prometheus' semantics: pending -> firing -> resolved."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.alerts.config import AlertRule
from autoscaler.alerts.evaluate import (
    RESOLVED_RETENTION,
    ActiveAlert,
    RuleSpec,
    Sample,
    evaluate,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def run(spec: RuleSpec, steps: list[tuple[int, list[Sample]]]) -> list[dict[str, ActiveAlert]]:
    state: dict[str, ActiveAlert] = {}
    out = []
    for second, samples in steps:
        state = evaluate(spec, samples, state, T0 + second * S)
        out.append(state)
    return out


def only(state: dict[str, ActiveAlert]) -> ActiveAlert:
    assert len(state) == 1
    return next(iter(state.values()))


def test_for_holds_pending_then_fires() -> None:
    spec = RuleSpec("X", for_=timedelta(seconds=60))
    hit = [Sample({}, 3)]
    states = run(spec, [(0, hit), (30, hit), (59, hit), (60, hit)])
    assert [only(s).state for s in states] == ["pending", "pending", "pending", "firing"]
    assert only(states[-1]).fired_at == T0 + 60 * S
    assert only(states[0]).to_alert() is None  # pending alerts are never sent


def test_pending_that_clears_is_dropped_without_resolving() -> None:
    spec = RuleSpec("X", for_=timedelta(seconds=60))
    states = run(spec, [(0, [Sample({}, 1)]), (30, [])])
    assert states[-1] == {}


def test_zero_for_fires_at_once_and_resolves_when_clear() -> None:
    spec = RuleSpec("X")
    states = run(spec, [(0, [Sample({}, 1)]), (15, [])])
    assert only(states[0]).state == "firing"
    resolved = only(states[1])
    assert resolved.state == "inactive" and resolved.resolved_at == T0 + 15 * S
    alert = resolved.to_alert()
    assert alert is not None and alert.resolved(T0 + 15 * S)


def test_keep_firing_for_holds_then_resolves() -> None:
    spec = RuleSpec("X", keep_firing_for=timedelta(seconds=60))
    states = run(spec, [(0, [Sample({}, 1)]), (10, []), (69, []), (70, [])])
    assert [only(s).state for s in states] == ["firing", "firing", "firing", "inactive"]
    assert only(states[-1]).resolved_at == T0 + 70 * S


def test_keep_firing_restarts_when_the_condition_returns() -> None:
    spec = RuleSpec("X", keep_firing_for=timedelta(seconds=60))
    hit = [Sample({}, 1)]
    states = run(spec, [(0, hit), (10, []), (50, hit), (60, []), (115, [])])
    assert only(states[-1]).state == "firing"  # held since 60, not since 10


def test_resolved_alerts_are_kept_for_the_retention_then_dropped() -> None:
    spec = RuleSpec("X")
    end = int(RESOLVED_RETENTION.total_seconds())
    states = run(spec, [(0, [Sample({}, 1)]), (1, []), (1 + end, []), (2 + end, [])])
    assert only(states[2]).state == "inactive"
    assert states[3] == {}


def test_one_alert_per_series_with_labels_and_templated_annotations() -> None:
    spec = RuleSpec(
        "HighErrors",
        severity="critical",
        labels={"team": "api"},
        annotations={"summary": '{{ $labels.service }} at {{ $value | printf "%.1f" }}'},
        runbook="https://runbooks/errors",
    )
    samples = [Sample({"service": "a", "__name__": "x"}, 0.26), Sample({"service": "b"}, 2)]
    state = run(spec, [(0, samples)])[0]
    got = sorted(((a.labels, a.annotations) for a in state.values()), key=lambda x: x[0]["service"])
    assert got == [
        (
            {"service": "a", "team": "api", "severity": "critical", "alertname": "HighErrors"},
            {"summary": "a at 0.3", "runbook_url": "https://runbooks/errors"},
        ),
        (
            {"service": "b", "team": "api", "severity": "critical", "alertname": "HighErrors"},
            {"summary": "b at 2.0", "runbook_url": "https://runbooks/errors"},
        ),
    ]


def test_a_firing_alert_updates_its_value_and_annotations() -> None:
    spec = RuleSpec("X", annotations={"summary": "{{ $value }} waiting"})
    states = run(spec, [(0, [Sample({}, 1)]), (15, [Sample({}, 4)])])
    a = only(states[-1])
    assert (a.state, a.value, a.annotations["summary"], a.active_at) == (
        "firing",
        4,
        "4 waiting",
        T0,
    )


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"signal": "x", "op": ">"}, "all of 'signal', 'op' and 'value'"),
        ({"expr": "up ==", "for": "1m"}, "PromQL does not parse"),
        ({"expr": "up == 0", "signal": "x"}, "either 'expr' or"),
        ({"expr": "up", "annotations": {"s": "{{ .Foo }}"}}, "not supported here"),
        ({"expr": "up", "annotations": {"s": "{{ $value | shout }}"}}, "not supported"),
        ({"expr": "up", "labels": {"alertname": "y"}}, "set by the alert itself"),
        ({"expr": "up", "labels": {"team": "{{ $externalLabels.x }}"}}, "not supported here"),
    ],
)
def test_bad_alert_rules_are_refused(raw: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        AlertRule.model_validate(raw)


def test_a_template_that_cannot_format_the_value_never_stops_the_evaluation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Prometheus answers +Inf, which "%d" cannot format: the value is shown as it is."""
    spec = RuleSpec("Busy", annotations={"summary": '{{ $value | printf "%d" }} waiting'})
    assert only(run(spec, [(0, [Sample({}, float("inf"))])])[0]).annotations == {
        "summary": "+Inf waiting"
    }

    def broken(text: str, resolve: object) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr("autoscaler.alerts.templating.render", broken)
    (state,) = run(spec, [(0, [Sample({}, 1.0)])])
    assert only(state).annotations["summary"].endswith("(not rendered: RuntimeError)")


def test_title_is_gos_strings_title_as_in_prometheus() -> None:
    """``title`` upper-cases the first letter of each word and leaves the others: a
    camel-case alert or app name keeps its capitals; ``_`` and digits continue a word."""
    spec = RuleSpec("X", annotations={"summary": "{{ $labels.app | title }}"})
    sample = Sample({"app": "shinyApp hELLO_world 2nd run-time"}, 1)
    (state,) = run(spec, [(0, [sample])])
    assert only(state).annotations["summary"] == "ShinyApp HELLO_world 2nd Run-Time"


@pytest.mark.parametrize(
    ("value", "shown"),
    [  # what Go's strconv.FormatFloat(v, 'g', -1, 64) prints, as Prometheus' {{ $value }}
        (40.0, "40"),
        (83.2, "83.2"),
        (1 / 3, "0.3333333333333333"),
        (999999.0, "999999"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5, "-2.5"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
        (0.0, "0"),
    ],
)
def test_values_are_printed_as_go_prints_them(value: float, shown: str) -> None:
    from autoscaler.alerts.templating import render

    assert render("{{ $value }}", lambda path: value) == shown
    if math.isinf(value) or math.isnan(value):
        assert render("{{ $value | humanize }}", lambda path: value) == shown
