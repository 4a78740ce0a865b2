"""Machines and nodes of pools the rules no longer have (pure).

A pool deleted from the rules, or renamed, leaves its machines running: no pass launches,
pauses, drains or terminates a machine whose pool it does not know, so they would be paid
for unseen. They are reported (a decision and the AutoscalerPoolNotInRules alert), never
acted on: a pool may be missing only because a file was moved for a while, and its nodes
may hold sessions. Putting the pool back with ``max: 0`` retires them safely.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from autoscaler.decide.plan_types import Decision, StrayPool
from autoscaler.decide.pools import labels as L
from autoscaler.decide.pools.inventory import node_loads
from autoscaler.snapshot import Snapshot

RUNNING = ("pending", "running")
STOPPED = ("stopping", "stopped")


def find_strays(pools: Collection[str], snapshot: Snapshot) -> tuple[StrayPool, ...]:
    """Per pool name the rules lack: its machines (by the pool tag) and its Swarm nodes (by
    the pool label), sorted by name. Machines going away (shutting down) are not counted."""
    running: Counter[str] = Counter()
    stopped: Counter[str] = Counter()
    for inst in snapshot.instances or ():
        if inst.pool in pools:
            continue
        if inst.state in RUNNING:
            running[inst.pool] += 1
        elif inst.state in STOPPED:
            stopped[inst.pool] += 1
    nodes: Counter[str] = Counter()
    sessions: Counter[str] = Counter()
    swarm = snapshot.swarm
    loads = node_loads(swarm.sessions) if swarm is not None else {}
    for node in swarm.nodes if swarm is not None else ():
        pool = node.labels.get(L.POOL)
        if not pool or pool in pools:
            continue
        nodes[pool] += 1
        _, users, shared = loads.get(node.id, (0, 0, 0))
        sessions[pool] += users + shared
    names = sorted(set(running) | set(stopped) | set(nodes))
    return tuple(
        StrayPool(
            pool=n,
            running=running[n],
            stopped=stopped[n],
            nodes=nodes[n],
            sessions=sessions[n],
            machines_known=snapshot.instances is not None,
            nodes_known=swarm is not None,
        )
        for n in names
    )


def describe(stray: StrayPool) -> str:
    """One line: what is left of the pool and what to do about it."""
    parts, unknown = [], []
    machines = stray.running + stray.stopped
    if machines:
        parts.append(f"{machines} machine(s) ({stray.running} running, {stray.stopped} stopped)")
    if stray.nodes:
        parts.append(f"{stray.nodes} Swarm node(s) holding {stray.sessions} session(s)")
    if not stray.machines_known:
        unknown.append("its machines not listed (provider unreadable)")
    if not stray.nodes_known:
        unknown.append("its nodes and sessions unknown (Swarm unreadable)")
    return (
        f"pool {stray.pool} is not in the rules but {' and '.join(parts)} still carry its name"
        f"{''.join(f'; {u}' for u in unknown)}: nothing scales, pauses or terminates them; to "
        "retire them without ending a session, put the pool back with min: 0 and max: 0 "
        "until they are gone"
    )


def stray_decision(stray: StrayPool) -> Decision:
    return Decision(
        policy=stray.pool, subject=f"pool {stray.pool}", outcome="hold", reasons=(describe(stray),)
    )
