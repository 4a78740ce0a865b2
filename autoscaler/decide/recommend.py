"""What each rule of a policy recommends, and the combined recommendation.

Like HPA with several metrics, the combined recommendation is the largest one. A rule
whose signal is unusable recommends nothing and reports why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from autoscaler.decide import hpa
from autoscaler.decide.signals import SignalReading
from autoscaler.decide.text import num
from autoscaler.rules.schema import ServicePolicy, Step, TargetTracking


@dataclass(frozen=True)
class RuleResult:
    replicas: int | None
    """None: this rule recommends nothing (step not matched, or signal unusable)."""
    reason: str
    usable: bool = True


def target_tracking(
    rule: TargetTracking, reading: SignalReading, current: int, tolerance: float
) -> RuleResult:
    if reading.value is None:
        return RuleResult(None, reading.problem or f"signal {rule.signal} missing", usable=False)
    v = reading.value
    if rule.average_value is not None:
        target = f"target {num(rule.average_value)}/replica"
        desired, ratio = hpa.get_external_per_pod_metric_replicas(
            current, v, rule.average_value, tolerance
        )
    else:
        assert rule.value is not None  # the schema requires one of the two
        target = f"target {num(rule.value)}"
        ratio = v / rule.value
        desired = hpa.get_usage_ratio_replica_count(current, ratio, tolerance)
    head = f"{rule.signal}={num(v)} ({target})"
    if current != 0 and abs(1.0 - ratio) <= tolerance:
        return RuleResult(desired, f"{head}: within tolerance (ratio {ratio:.2f}) -> {desired}")
    shown = f"ratio {ratio:.2f}" if math.isfinite(ratio) else f"from {current}"
    return RuleResult(desired, f"{head} -> {desired} ({shown})")


def step(rule: Step, reading: SignalReading, current: int) -> RuleResult:
    if reading.value is None:
        return RuleResult(None, reading.problem or f"signal {rule.signal} missing", usable=False)
    v = reading.value
    if rule.above is not None:
        matched, bound = v > rule.above, f"above {num(rule.above)}"
    else:
        assert rule.below is not None  # the schema requires one of the two
        matched, bound = v < rule.below, f"below {num(rule.below)}"
    head = f"{rule.signal}={num(v)}"
    if not matched:
        return RuleResult(None, f"{head}: step '{bound}' not matched")
    if rule.set is not None:
        return RuleResult(rule.set, f"{head} {bound} -> set {rule.set}")
    assert rule.change is not None
    desired = max(0, current + rule.change)
    return RuleResult(desired, f"{head} {bound} -> {current}{rule.change:+d} = {desired}")


@dataclass(frozen=True)
class Combined:
    replicas: int | None
    """The largest recommendation; None when no rule had a usable signal."""
    reasons: tuple[str, ...]
    problems: tuple[str, ...]
    """Why signals were unusable, one entry per signal."""


def combine(policy: ServicePolicy, readings: Mapping[str, SignalReading], current: int) -> Combined:
    results = [
        target_tracking(t, readings[t.signal], current, policy.tolerance)
        for t in policy.target_tracking
    ] + [step(s, readings[s.signal], current) for s in policy.steps]
    problems = tuple(dict.fromkeys(r.reason for r in results if not r.usable))
    reasons = tuple(r.reason for r in results if r.usable)
    if not any(r.usable for r in results):
        return Combined(None, reasons, problems)
    recommended = [r.replicas for r in results if r.replicas is not None]
    if not recommended:
        return Combined(current, (*reasons, f"no rule recommends a change: {current}"), problems)
    return Combined(max(recommended), reasons, problems)
