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


class DuplicateLabelSet(ValueError):
    """Two series of one evaluation are one alert once the rule's labels are applied."""

    MESSAGE = "vector contains metrics with the same labelset after applying alert labels"

    def __init__(self, labels: Mapping[str, str]) -> None:
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(labels.items()))
        super().__init__(f"{self.MESSAGE}: {{{shown}}}")


def _resolver(sample: Sample) -> templating.Resolver:
    def resolve(path: str) -> object:
        if path in ("$value", ".Value"):
            return sample.value
        for prefix in ("$labels.", ".Labels."):
            if path.startswith(prefix):
                return sample.labels.get(path[len(prefix) :], "")
        return ""

    return resolve


def alert_labels(rule: RuleSpec, sample: Sample) -> dict[str, str]:
    """As Prometheus: the series' labels without ``__name__``, then the rule's labels
    templated with the series' labels and value; a label that is empty is removed (an
    empty value is no label to Prometheus and Alertmanager)."""
    labels = {k: v for k, v in sample.labels.items() if k != "__name__"}
    resolve = _resolver(sample)
    for name, text in rule.labels.items():
        value = _render(text, resolve)
        if value:
            labels[name] = value
        else:
            labels.pop(name, None)
    labels["severity"] = rule.severity
    labels["alertname"] = rule.name
    return labels


def render_annotations(rule: RuleSpec, sample: Sample) -> dict[str, str]:
    resolve = _resolver(sample)
    out = {k: _render(v, resolve) for k, v in rule.annotations.items()}
    out.update(sample.info)
    if rule.runbook and "runbook_url" not in out:
        out["runbook_url"] = rule.runbook
    return out


def _render(text: str, resolve: templating.Resolver) -> str:
    """One annotation or label; a template that fails on this value must not stop every
    alert."""
    try:
        return templating.render(text, resolve)
    except Exception as e:
        return f"{text} (not rendered: {type(e).__name__})"


def evaluate(
    rule: RuleSpec,
    samples: Iterable[Sample],
    previous: Mapping[str, ActiveAlert],
    now: datetime,
    *,
    unique: bool = True,
) -> dict[str, ActiveAlert]:
    """The rule's alerts after one evaluation at ``now``, keyed by fingerprint.

    With ``unique``, two samples that make the same alert raise DuplicateLabelSet, as
    Prometheus fails the evaluation: which of them the alert stands for would be arbitrary.
    Without it the last one is taken."""
    found: dict[str, tuple[dict[str, str], Sample]] = {}
    for sample in samples:
        labels = alert_labels(rule, sample)
        fp = fingerprint(labels)
        if unique and fp in found:
            raise DuplicateLabelSet(labels)
        found[fp] = (labels, sample)

    active = dict(previous)
    seen = set(found)
    for fp, (labels, sample) in found.items():
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
