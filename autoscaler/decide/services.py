"""One service policy at one snapshot -> a Decision, at most one ScaleService, next memory.

The order follows the HPA controller: bounds first (a count outside min/max is corrected
at once), then the metrics' recommendation, then stabilisation, then rate limits and
min/max. Every step that changes or blocks the answer leaves a reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from autoscaler.decide import hpa
from autoscaler.decide.memory import prune, record_scale, seed, window
from autoscaler.decide.plan_types import Decision, Recommendation, ScaleService, ServiceMemory
from autoscaler.decide.recommend import combine
from autoscaler.decide.schedule import Bounds, effective_bounds
from autoscaler.decide.signals import read_signal
from autoscaler.decide.text import clock, rate, span
from autoscaler.rules.schema import ScalingRules, ServicePolicy, Signal
from autoscaler.snapshot import Service, Snapshot

PAUSE_VALUES = frozenset({"true", "yes", "1", "on"})

Outcome = Literal["scale", "hold", "paused", "disabled", "error"]


@dataclass(frozen=True)
class ServiceOutcome:
    subject: str
    """The Swarm service name, which also keys its memory."""
    decision: Decision
    action: ScaleService | None = None
    memory: ServiceMemory | None = None


def subject_of(name: str, policy: ServicePolicy) -> str:
    return policy.service or name


def decide_service(
    name: str,
    policy: ServicePolicy,
    snapshot: Snapshot,
    signals: Mapping[str, Signal],
    memory: ServiceMemory | None,
) -> ServiceOutcome:
    """Decide one policy. Pure: the result depends only on the arguments."""
    subject = subject_of(name, policy)
    kept = prune(memory, snapshot.taken_at, policy.behavior)

    def stop(outcome: Outcome, reason: str, current: int | None = None) -> ServiceOutcome:
        decision = Decision(
            policy=name, subject=subject, outcome=outcome, current=current, reasons=(reason,)
        )
        return ServiceOutcome(subject, decision, memory=kept)

    if not policy.enabled:
        return stop("disabled", "policy disabled (enabled: false)")
    if snapshot.swarm is None:
        status = snapshot.sources.get("swarm")
        why = status.error if status is not None and status.error else "no Swarm state"
        return stop("hold", f"swarm unreadable: {why}")
    service = snapshot.swarm.service(subject)
    if service is None:
        return stop("error", f"service {subject} not found in the Swarm")
    if service.is_session:
        return stop("error", f"service {subject} is a ShinyProxy session: never scaled")
    if service.mode != "replicated" or service.replicas is None:
        return stop("error", f"service {subject} is not replicated (mode {service.mode})")
    current = service.replicas
    paused_by = _pause_label(service, policy.pause_label)
    if paused_by is not None:
        return stop("paused", f"paused by label {paused_by}", current)
    mem = seed(memory, snapshot.taken_at, current)
    return _scale(name, policy, snapshot, signals, service, mem)


def _pause_label(service: Service, label: str) -> str | None:
    value = service.labels.get(label)
    if value is not None and value.strip().lower() in PAUSE_VALUES:
        return f"{label}={value}"
    return None


def _scale(
    name: str,
    policy: ServicePolicy,
    snapshot: Snapshot,
    signals: Mapping[str, Signal],
    service: Service,
    mem: ServiceMemory,
) -> ServiceOutcome:
    now, subject = snapshot.taken_at, service.name
    current = service.replicas or 0
    bounds = effective_bounds(policy, now)
    reasons = list(bounds.reasons)

    def finish(desired: int, mem: ServiceMemory) -> ServiceOutcome:
        mem = record_scale(mem, now, current, desired)
        if desired == current:
            reasons.append(f"holding at {current}")
        else:
            reasons.append(f"scaling {current} -> {desired}")
        decision = Decision(
            policy=name,
            subject=subject,
            outcome="scale" if desired != current else "hold",
            current=current,
            desired=desired,
            reasons=tuple(reasons),
        )
        action = None
        if desired != current:
            # the closing "scaling a -> b" repeats the action's own fields
            summary = "; ".join(r.replace("\n", " ") for r in reasons[:-1] or reasons)
            action = ScaleService(service=subject, current=current, desired=desired, reason=summary)
        return ServiceOutcome(subject, decision, action, prune(mem, now, policy.behavior))

    if current > bounds.max:
        reasons.append(f"above max {bounds.max}")
        return finish(bounds.max, mem)
    if current < bounds.min:
        reasons.append(f"below min {bounds.min}")
        return finish(bounds.min, mem)

    readings = {n: read_signal(n, snapshot, signals) for n in policy.signal_names()}
    combined = combine(policy, readings, current)
    reasons.extend(combined.problems)
    reasons.extend(combined.reasons)
    if combined.replicas is None:
        if policy.on_missing == "hold":
            reasons.append("no usable signal (on_missing: hold)")
            return finish(current, mem)
        assert policy.fallback_replicas is not None  # the schema requires it for fallback
        fallback = _clamp(policy.fallback_replicas, bounds)
        if fallback <= current:  # nothing is taken away on data nobody can read
            reasons.append(f"no usable signal: hold (fallback {fallback} never scales down)")
            return finish(current, mem)
        raw = fallback
        reasons.append(f"no usable signal: fallback to {raw} replicas")
    elif combined.problems and combined.replicas < current:
        # the missing signal might be the one that keeps the count up
        reasons.append(f"not scaling down to {combined.replicas} while a signal is missing")
        return finish(current, mem)
    else:
        raw = combined.replicas

    up, down = policy.behavior.up(), policy.behavior.down()
    st = hpa.stabilize_recommendation_with_behaviors(
        mem.recommendations, now, current, raw, window(up), window(down)
    )
    if st.replicas > raw:
        reasons.append(_stabilising("down", mem.recommendations, now, raw, window(down), st))
    elif st.replicas < raw:
        reasons.append(_stabilising("up", mem.recommendations, now, raw, window(up), st))
    mem = mem.model_copy(update={"recommendations": st.recommendations})

    conv = hpa.convert_desired_replicas_with_behavior_rate(
        current, st.replicas, bounds.min, bounds.max, mem.events, up, down, now
    )
    if conv.replicas != st.replicas:
        reasons.append(_limited(conv, current, bounds, up, down))
    return finish(conv.replicas, mem)


def _clamp(n: int, bounds: Bounds) -> int:
    return max(bounds.min, min(bounds.max, n))


def _stabilising(
    direction: str,
    history: tuple[Recommendation, ...],
    now: datetime,
    raw: int,
    span_: timedelta,
    st: hpa.Stabilized,
) -> str:
    cutoff = now - span_
    if direction == "down":
        blocking = [r.at for r in history if r.at > cutoff and r.replicas > raw]
        extreme = f"highest recommendation {st.down_recommendation}"
    else:
        blocking = [r.at for r in history if r.at > cutoff and r.replicas < raw]
        extreme = f"lowest recommendation {st.up_recommendation}"
    until = max(blocking, default=now) + span_
    return (
        f"scale-{direction} stabilising until {clock(until)} "
        f"({extreme} in last {span(span_)}): {st.replicas} instead of {raw}"
    )


def _limited(
    conv: hpa.Converted, current: int, bounds: Bounds, up: ScalingRules, down: ScalingRules
) -> str:
    if conv.condition == "TooManyReplicas":
        return f"at max {bounds.max}"
    if conv.condition == "TooFewReplicas":
        return f"at min {bounds.min}"
    direction, rules = ("up", up) if conv.condition == "ScaleUpLimit" else ("down", down)
    limit = conv.limit
    if limit is None or limit.policy is None:
        if rules.select_policy == "disabled":
            return f"scale-{direction} disabled (select_policy: disabled)"
        return f"scale-{direction} blocked: no rate policies"
    text = f"scale-{direction} limited to {conv.replicas} by rate policy ({rate(limit.policy)})"
    if limit.period_start is not None and limit.period_start != current:
        moved = current - limit.period_start
        text += f", {moved:+d} already in the last {span(limit.policy.period)}"
    return text
