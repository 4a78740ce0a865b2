"""The replica arithmetic of the Kubernetes Horizontal Pod Autoscaler, as pure functions.

A port of ``pkg/controller/podautoscaler`` (``replica_calculator.go`` and
``horizontal.go``): function names follow upstream's so the two read side by side,
and the rounding, the strict/inclusive time comparisons and the int32 limits are
kept as they are there; percent rate policies alone are computed exactly, not in
float64. Time is always passed in (``now``); nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Literal

from autoscaler.decide.plan_types import Recommendation, ScaleEvent
from autoscaler.rules.schema import RatePolicy, ScalingRules

MAX_INT32 = 2**31 - 1
MIN_INT32 = -(2**31)

# ---------------------------------------------------------------- replica calculation


def _ceil_int32(x: float) -> int:
    if x > MAX_INT32:
        return MAX_INT32
    if x < MIN_INT32:
        return MIN_INT32
    return math.ceil(x)


def get_usage_ratio_replica_count(current: int, usage_ratio: float, tolerance: float) -> int:
    """Replicas for a per-replica target (``value``): ceil(ratio * current) outside tolerance.

    With 0 replicas there is nothing to be tolerant about: scale to ceil(ratio).
    """
    if current != 0:
        if abs(1.0 - usage_ratio) <= tolerance:
            return current
        return _ceil_int32(usage_ratio * current)
    return _ceil_int32(usage_ratio)


def get_external_per_pod_metric_replicas(
    current: int, usage: float, target_average: float, tolerance: float
) -> tuple[int, float]:
    """Replicas for a total divided by a per-replica average (``average_value``).

    Returns (replicas, usage ratio). The ratio is usage / (target * current); with 0
    replicas it is infinite (or undefined for 0 usage, which upstream keeps at 0).
    """
    if current == 0:
        if usage == 0:
            return 0, math.nan
        return _ceil_int32(usage / target_average), math.copysign(math.inf, usage)
    ratio = usage / (target_average * current)
    if abs(1.0 - ratio) > tolerance:
        return _ceil_int32(usage / target_average), ratio
    return current, ratio


# ---------------------------------------------------------------- stabilisation


@dataclass(frozen=True)
class Stabilized:
    replicas: int
    recommendations: tuple[Recommendation, ...]
    """The history with this pass's unstabilised recommendation recorded."""
    up_recommendation: int
    """Lowest recommendation inside the scale-up window (including this one)."""
    down_recommendation: int
    """Highest recommendation inside the scale-down window (including this one)."""


def stabilize_recommendation_with_behaviors(
    history: Sequence[Recommendation],
    now: datetime,
    current: int,
    desired: int,
    up_window: timedelta,
    down_window: timedelta,
) -> Stabilized:
    """Keep the recommendation between the lowest recent one (up) and the highest (down).

    Upstream reuses one slot whose sample is obsolete for both windows instead of
    appending; kept here so the stored order matches its tests.
    """
    up_rec = desired
    up_cutoff = now - up_window
    down_rec = desired
    down_cutoff = now - down_window
    found_old, old_index = False, 0
    for i, rec in enumerate(history):
        if rec.at > up_cutoff:
            up_rec = min(rec.replicas, up_rec)
        if rec.at > down_cutoff:
            down_rec = max(rec.replicas, down_rec)
        if rec.at < up_cutoff and rec.at < down_cutoff:
            found_old, old_index = True, i

    recommendation = current
    if recommendation < up_rec:
        recommendation = up_rec
    if recommendation > down_rec:
        recommendation = down_rec

    new = Recommendation(at=now, replicas=desired)
    stored = list(history)
    if found_old:
        stored[old_index] = new
    else:
        stored.append(new)
    return Stabilized(recommendation, tuple(stored), up_rec, down_rec)


# ---------------------------------------------------------------- rate limits


@dataclass(frozen=True)
class Limit:
    """The replica count one direction's rate policies allow, and which policy set it."""

    replicas: int
    policy: RatePolicy | None = None
    period_start: int | None = None
    """Replicas at the start of the chosen policy's period (current minus its changes)."""


def split_events(events: Sequence[ScaleEvent]) -> tuple[list[ScaleEvent], list[ScaleEvent]]:
    """Scale-up and scale-down events, each with a positive ``change`` as upstream keeps them."""
    ups = [e for e in events if e.change > 0]
    downs = [ScaleEvent(at=e.at, change=-e.change) for e in events if e.change < 0]
    return ups, downs


def get_replicas_change_per_period(
    period: timedelta, events: Sequence[ScaleEvent], now: datetime
) -> int:
    cutoff = now - period
    return sum(e.change for e in events if e.at > cutoff)


def _period_start(
    current: int,
    policy: RatePolicy,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    now: datetime,
) -> int:
    added = get_replicas_change_per_period(policy.period, up_events, now)
    deleted = get_replicas_change_per_period(policy.period, down_events, now)
    return current - added + deleted


def calculate_scale_up_limit_with_scaling_rules(
    current: int,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: datetime,
) -> Limit:
    """The most replicas the scale-up policies allow now (before clamping to current)."""
    if rules.select_policy == "disabled":
        return Limit(current)
    pick_min = rules.select_policy == "min"
    result = Limit(MAX_INT32 if pick_min else MIN_INT32)
    for policy in rules.policies or ():
        start = _period_start(current, policy, up_events, down_events, now)
        if policy.type == "replicas":
            proposed = start + policy.value
        else:
            # rounded up, or a small percentage of a small count would never add a replica;
            # exact, where upstream's float64 lets 50 + 10% come to ceil(55.00000000000001)
            proposed = math.ceil(Fraction(start * (100 + policy.value), 100))
        if (proposed < result.replicas) if pick_min else (proposed > result.replicas):
            result = Limit(proposed, policy, start)
    return result


def calculate_scale_down_limit_with_behaviors(
    current: int,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: datetime,
) -> Limit:
    """The fewest replicas the scale-down policies allow now (before clamping to current)."""
    if rules.select_policy == "disabled":
        return Limit(current)
    pick_min_change = rules.select_policy == "min"
    result = Limit(MIN_INT32 if pick_min_change else MAX_INT32)
    for policy in rules.policies or ():
        start = _period_start(current, policy, up_events, down_events, now)
        if policy.type == "replicas":
            proposed = start - policy.value
        else:
            # truncated as upstream's int32(), but exact: its float64 takes 5 - 80% to 0, not 1
            proposed = math.trunc(Fraction(start * (100 - policy.value), 100))
        better = proposed > result.replicas if pick_min_change else proposed < result.replicas
        if better:
            result = Limit(proposed, policy, start)
    return result


Condition = Literal[
    "DesiredWithinRange", "ScaleUpLimit", "TooManyReplicas", "ScaleDownLimit", "TooFewReplicas"
]


@dataclass(frozen=True)
class Converted:
    replicas: int
    condition: Condition
    limit: Limit | None = None
    """The rate limit of the direction the change went, when one was computed."""


def convert_desired_replicas_with_behavior_rate(
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    events: Sequence[ScaleEvent],
    up: ScalingRules,
    down: ScalingRules,
    now: datetime,
) -> Converted:
    """Apply the rate policies, then min/max, to a stabilised recommendation."""
    up_events, down_events = split_events(events)
    if desired > current:
        limit = calculate_scale_up_limit_with_scaling_rules(
            current, up_events, down_events, up, now
        )
        # a policy shortened after many recent scale-ups would otherwise ask to scale down
        ceiling = max(limit.replicas, current)
        condition: Condition
        if max_replicas > ceiling:
            allowed, condition = ceiling, "ScaleUpLimit"
        else:
            allowed, condition = max_replicas, "TooManyReplicas"
        if desired > allowed:
            return Converted(allowed, condition, limit)
        return Converted(desired, "DesiredWithinRange", limit)
    if desired < current:
        limit = calculate_scale_down_limit_with_behaviors(
            current, up_events, down_events, down, now
        )
        floor = min(limit.replicas, current)
        if min_replicas < floor:
            allowed, condition = floor, "ScaleDownLimit"
        else:
            allowed, condition = min_replicas, "TooFewReplicas"
        if desired < allowed:
            return Converted(allowed, condition, limit)
        return Converted(desired, "DesiredWithinRange", limit)
    return Converted(desired, "DesiredWithinRange")
