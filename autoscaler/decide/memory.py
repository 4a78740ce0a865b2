"""The per-service history decide keeps between passes: seeding, recording and pruning."""

from __future__ import annotations

from datetime import datetime, timedelta

from autoscaler.decide.plan_types import Recommendation, ScaleEvent, ServiceMemory
from autoscaler.rules.schema import Behavior, ScalingRules


def seed(mem: ServiceMemory | None, now: datetime, current: int) -> ServiceMemory:
    """A service without recommendations starts as if it had just recommended ``current``.

    So a restart (or lost memory) never scales down before one scale-down window.
    """
    mem = mem or ServiceMemory()
    if mem.recommendations:
        return mem
    return mem.model_copy(update={"recommendations": (Recommendation(at=now, replicas=current),)})


def record_scale(mem: ServiceMemory, now: datetime, current: int, desired: int) -> ServiceMemory:
    if desired == current:
        return mem
    event = ScaleEvent(at=now, change=desired - current)
    return mem.model_copy(update={"events": (*mem.events, event)})


def window(rules: ScalingRules) -> timedelta:
    return rules.stabilization_window or timedelta(0)


def longest_period(rules: ScalingRules) -> timedelta:
    return max((p.period for p in rules.policies or ()), default=timedelta(0))


def prune(mem: ServiceMemory | None, now: datetime, behavior: Behavior) -> ServiceMemory | None:
    """Drop what no window or period can use any more; None when nothing is left."""
    if mem is None:
        return None
    up, down = behavior.up(), behavior.down()
    keep_since = now - max(window(up), window(down))
    recommendations = tuple(r for r in mem.recommendations if r.at >= keep_since)
    # each direction's limit also counts the other direction's events in its own periods
    events_since = now - max(longest_period(up), longest_period(down))
    events = tuple(e for e in mem.events if e.at >= events_since)
    if not recommendations and not events:
        return None
    return ServiceMemory(recommendations=recommendations, events=events)
