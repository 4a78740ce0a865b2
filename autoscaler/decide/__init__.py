"""Decisions, without I/O: a Snapshot, the policies and the memory in; a Plan out."""

from __future__ import annotations

from autoscaler.decide.plan_types import Decision, Memory, Plan, ScaleService, ServiceMemory
from autoscaler.decide.services import ServiceOutcome, decide_service, subject_of
from autoscaler.rules.schema import Policies
from autoscaler.snapshot import Snapshot

__all__ = ["plan"]


def plan(snapshot: Snapshot, policies: Policies, memory: Memory) -> Plan:
    """Decide every service policy (sorted by name) for one snapshot.

    Pure: no I/O and no clock; the time is ``snapshot.taken_at`` and the result depends
    only on the arguments, so a live pass, a dry run and a replay agree. The returned
    Plan carries the next Memory, pruned to what the windows and periods still need.
    """
    decisions: list[Decision] = []
    actions: list[ScaleService] = []
    services: dict[str, ServiceMemory] = {}
    decided_by: dict[str, str] = {}
    for name in sorted(policies.services):
        policy = policies.services[name]
        subject = subject_of(name, policy)
        if subject in decided_by:
            outcome = _duplicate(name, subject, decided_by[subject])
        else:
            decided_by[subject] = name
            outcome = decide_service(
                name, policy, snapshot, policies.signals, memory.services.get(subject)
            )
            if outcome.memory is not None:
                services[subject] = outcome.memory
        decisions.append(outcome.decision)
        if outcome.action is not None:
            actions.append(outcome.action)
    return Plan(
        at=snapshot.taken_at,
        actions=tuple(actions),
        decisions=tuple(decisions),
        memory=Memory(services=services),
    )


def _duplicate(name: str, subject: str, first: str) -> ServiceOutcome:
    reason = f"service {subject} is already scaled by policy {first}"
    return ServiceOutcome(
        subject, Decision(policy=name, subject=subject, outcome="error", reasons=(reason,))
    )
