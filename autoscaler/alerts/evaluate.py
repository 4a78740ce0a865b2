"""Alert rule states with Prometheus' semantics (rules/alerting.go), as a pure function.

A condition true for less than ``for`` is pending; then firing. When it clears, a pending
alert is dropped, a firing one is held for ``keep_firing_for`` and then resolved; a
resolved alert is kept (and still reported) for RESOLVED_RETENTION.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from autoscaler.alerts import templating
from autoscaler.alerts.model import Alert, fingerprint

RESOLVED_RETENTION = timedelta(minutes=15)

State = Literal["pending", "firing", "inactive"]


@dataclass(frozen=True)
class Sample:
    """One series for which the condition holds, and its value."""

    labels: Mapping[str, str]
    value: float
    info: Mapping[str, str] = field(default_factory=dict)
    """Extra annotations (e.g. an error message) that do not make the alert a new one."""


@dataclass(frozen=True)
class RuleSpec:
    name: str
    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    severity: str = "warning"
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    runbook: str | None = None


@dataclass(frozen=True)
class ActiveAlert:
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float
    state: State
    active_at: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    keep_firing_since: datetime | None = None

    def to_alert(self) -> Alert | None:
        """What is sent on: firing and resolved alerts, never pending ones."""
        if self.state == "pending" or (self.state == "inactive" and self.fired_at is None):
            return None
        return Alert(
            labels=self.labels,
            annotations=self.annotations,
            starts_at=self.fired_at or self.active_at,
            ends_at=self.resolved_at if self.state == "inactive" else None,
        )


def alert_labels(rule: RuleSpec, sample_labels: Mapping[str, str]) -> dict[str, str]:
    labels = {k: v for k, v in sample_labels.items() if k != "__name__"}
    labels.update(rule.labels)
    labels["severity"] = rule.severity
    labels["alertname"] = rule.name
    return labels


def render_annotations(rule: RuleSpec, sample: Sample) -> dict[str, str]:
    def resolve(path: str) -> object:
        if path in ("$value", ".Value"):
            return sample.value
        for prefix in ("$labels.", ".Labels."):
            if path.startswith(prefix):
                return sample.labels.get(path[len(prefix) :], "")
        return ""

    out = {k: _render(v, resolve) for k, v in rule.annotations.items()}
    out.update(sample.info)
    if rule.runbook and "runbook_url" not in out:
        out["runbook_url"] = rule.runbook
    return out


def _render(text: str, resolve: templating.Resolver) -> str:
    """One annotation; a template that fails on this value must not stop every alert."""
    try:
        return templating.render(text, resolve)
    except Exception as e:
        return f"{text} (not rendered: {type(e).__name__})"


def evaluate(
    rule: RuleSpec,
    samples: Iterable[Sample],
    previous: Mapping[str, ActiveAlert],
    now: datetime,
) -> dict[str, ActiveAlert]:
    """The rule's alerts after one evaluation at ``now``, keyed by fingerprint."""
    active = dict(previous)
    seen: set[str] = set()
    for sample in samples:
        labels = alert_labels(rule, sample.labels)
        fp = fingerprint(labels)
        seen.add(fp)
        annotations = render_annotations(rule, sample)
        old = active.get(fp)
        if old is not None and old.state != "inactive":
            active[fp] = replace(
                old, value=sample.value, annotations=annotations, keep_firing_since=None
            )
        else:
            active[fp] = ActiveAlert(labels, annotations, sample.value, "pending", now)

    for fp, a in list(active.items()):
        if fp not in seen:
            if a.state == "firing" and rule.keep_firing_for > timedelta(0):
                since = a.keep_firing_since or now
                if now - since < rule.keep_firing_for:
                    active[fp] = replace(a, keep_firing_since=since)
                    continue
            if a.state == "pending" or (
                a.resolved_at is not None and now - a.resolved_at > RESOLVED_RETENTION
            ):
                del active[fp]
                continue
            if a.state != "inactive":
                active[fp] = replace(a, state="inactive", resolved_at=now)
            continue
        if a.state == "pending" and now - a.active_at >= rule.for_:
            active[fp] = replace(a, state="firing", fired_at=now)
    return active
