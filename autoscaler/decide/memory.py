"""The per-service history decide keeps between passes: seeding, recording and pruning."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from autoscaler.decide.plan_types import (
    Memory,
    Recommendation,
    ScaleEvent,
    ScaleService,
    ServiceMemory,
)
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


def forget_undone(memory: Memory, at: datetime, undone: Iterable[ScaleService]) -> Memory:
    """``memory`` without the scale events of ``undone``: scales planned at ``at`` that
    failed, were skipped or were only planned (a dry run). As HPA records an event only
    once the update succeeded: a rate period must not count a change that never happened,
    or a failed scale-up would hold the retry back for a whole period, and a dry run would
    show limits the live sidecar would not hit."""
    services = dict(memory.services)
    for action in undone:
        mem = services.get(action.service)
        if mem is None:
            continue
        event = ScaleEvent(at=at, change=action.desired - action.current)
        if event in mem.events:
            events = list(mem.events)
            events.remove(event)
            services[action.service] = mem.model_copy(update={"events": tuple(events)})
    return memory.model_copy(update={"services": services})


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
