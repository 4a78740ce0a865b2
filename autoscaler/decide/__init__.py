"""Decisions, without I/O: a Snapshot, the policies and the memory in; a Plan out."""

from __future__ import annotations

from autoscaler.decide.plan_types import (
    Action,
    Decision,
    Memory,
    Plan,
    PoolMemory,
    PoolStatus,
    ServiceMemory,
)
from autoscaler.decide.pools import plan_pools
from autoscaler.decide.pools.strays import find_strays, stray_decision, unread
from autoscaler.decide.services import ServiceOutcome, decide_service, subject_of
from autoscaler.rules.schema import Policies, ServicePolicy
from autoscaler.snapshot import Snapshot

__all__ = ["plan"]


def plan(snapshot: Snapshot, policies: Policies, memory: Memory) -> Plan:
    """Decide every service policy, then every node pool (each sorted by name), and report
    the machines and nodes of pools the rules do not have.

    Pure: no I/O and no clock; the time is ``snapshot.taken_at`` and the result depends
    only on the arguments, so a live pass, a dry run and a replay agree. The returned
    Plan carries the next Memory, pruned to what the windows and periods still need.
    Its ``snapshot_digest`` is left for the caller to stamp (hashing a large snapshot is
    not decision work). One policy's defect never stops the others: it gets an error.
    """
    decisions: list[Decision] = []
    actions: list[Action] = []
    services: dict[str, ServiceMemory] = {}
    decided_by: dict[str, str] = {}
    for name in sorted(policies.services):
        policy = policies.services[name]
        subject = subject_of(name, policy)
        if subject in decided_by:
            outcome = _duplicate(name, subject, decided_by[subject])
        else:
            decided_by[subject] = name
            outcome = _decide_one(name, subject, policy, snapshot, policies, memory)
            if outcome.memory is not None:
                services[subject] = outcome.memory
        decisions.append(outcome.decision)
        if outcome.action is not None:
            actions.append(outcome.action)
    pools: dict[str, PoolMemory] = {}
    statuses: list[PoolStatus] = []
    for name, pool in plan_pools(policies.pools, snapshot, policies.signals, memory.pools):
        decisions.append(pool.decision)
        actions += pool.actions
        if pool.memory is not None:
            pools[name] = pool.memory
        if pool.status is not None:
            statuses.append(pool.status)
    strays = find_strays(policies.pools.keys(), snapshot, memory.strays)
    decisions += [stray_decision(s) for s in strays]
    return Plan(
        at=snapshot.taken_at,
        actions=tuple(actions),
        decisions=tuple(decisions),
        memory=Memory(services=services, pools=pools, strays=strays),
        pools=tuple(statuses),
        strays=strays,
        strays_unread=unread(snapshot),
    )


def _decide_one(
    name: str,
    subject: str,
    policy: ServicePolicy,
    snapshot: Snapshot,
    policies: Policies,
    memory: Memory,
) -> ServiceOutcome:
    previous = memory.services.get(subject)
    try:
        return decide_service(name, policy, snapshot, policies.signals, previous)
    except Exception as e:  # a defect in one policy's decision must not stop the others
        reason = f"internal error, nothing decided: {e!r}"
        return ServiceOutcome(
            subject,
            Decision(policy=name, subject=subject, outcome="error", reasons=(reason,)),
            memory=previous,
        )


def _duplicate(name: str, subject: str, first: str) -> ServiceOutcome:
    reason = f"service {subject} is already scaled by policy {first}"
    return ServiceOutcome(
        subject, Decision(policy=name, subject=subject, outcome="error", reasons=(reason,))
    )
