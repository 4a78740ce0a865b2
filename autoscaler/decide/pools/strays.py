"""Machines and nodes of pools the rules no longer have (pure).

A pool deleted from the rules, or renamed, leaves its machines running: no pass launches,
pauses, drains or terminates a machine whose pool it does not know, so they would be paid
for unseen. They are reported (a decision and the AutoscalerPoolNotInRules alert), never
acted on: a pool may be missing only because a file was moved for a while, and its nodes
may hold sessions. Putting the pool back with ``max: 0`` retires them safely.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from autoscaler.decide.plan_types import Decision, StrayPool
from autoscaler.decide.pools import labels as L
from autoscaler.decide.pools.inventory import node_loads
from autoscaler.snapshot import Instance, Snapshot, SwarmState

RUNNING = ("pending", "running")
STOPPED = ("stopping", "stopped")


def find_strays(
    pools: Collection[str], snapshot: Snapshot, last: Sequence[StrayPool] = ()
) -> tuple[StrayPool, ...]:
    """Per pool name the rules lack: its machines (by the pool tag) and its Swarm nodes (by
    the pool label), sorted by name. Machines going away (shutting down) are not counted.

    ``last``: the strays of the pass before. While the machines (or the Swarm) cannot be
    read, what they showed then is carried, marked unknown, so a stray does not vanish
    (and its alert start over) each time the provider fails to answer: unread is never
    read as none."""
    machines = _machines(pools, _listed(snapshot))
    nodes = _nodes(pools, snapshot.swarm)
    before = {s.pool: s for s in last if s.pool not in pools}
    names = set(machines or {}) | set(nodes or {})
    for name, old in before.items():
        if (machines is None and old.running + old.stopped) or (nodes is None and old.nodes):
            names.add(name)
    out = []
    for name in sorted(names):
        old = before.get(name, StrayPool(pool=name))
        running, stopped = (
            machines.get(name, (0, 0)) if machines is not None else (old.running, old.stopped)
        )
        count, held = nodes.get(name, (0, 0)) if nodes is not None else (old.nodes, old.sessions)
        out.append(
            StrayPool(
                pool=name,
                running=running,
                stopped=stopped,
                nodes=count,
                sessions=held,
                machines_known=machines is not None,
                nodes_known=nodes is not None,
            )
        )
    return tuple(out)


def unread(snapshot: Snapshot) -> str | None:
    """Why the strays of this pass may be incomplete (a source could not be read), or None."""
    if snapshot.swarm is None:
        return "the Swarm cannot be read"
    if _listed(snapshot) is None:
        return "the node provider's machines cannot be listed"
    return None


def _listed(snapshot: Snapshot) -> Sequence[Instance] | None:
    """The machines as listed; None when they could not be. Without any node provider
    configured there is nothing to list, which is not an outage: none."""
    if snapshot.instances is None and snapshot.providers == ():
        return ()
    return snapshot.instances


def _machines(
    pools: Collection[str], instances: Sequence[Instance] | None
) -> dict[str, tuple[int, int]] | None:
    """Pool -> (running, stopped) machines of pools the rules lack; None: not listed."""
    if instances is None:
        return None
    counts: dict[str, tuple[int, int]] = {}
    for inst in instances:
        if inst.pool in pools or inst.state not in RUNNING + STOPPED:
            continue
        running, stopped = counts.get(inst.pool, (0, 0))
        up = inst.state in RUNNING
        counts[inst.pool] = (running + up, stopped + (not up))
    return counts


def _nodes(pools: Collection[str], swarm: SwarmState | None) -> dict[str, tuple[int, int]] | None:
    """Pool -> (nodes, sessions on them) of pools the rules lack; None: Swarm unreadable."""
    if swarm is None:
        return None
    loads = node_loads(swarm.sessions)
    counts: dict[str, tuple[int, int]] = {}
    for node in swarm.nodes:
        pool = node.labels.get(L.POOL)
        if not pool or pool in pools:
            continue
        count, held = counts.get(pool, (0, 0))
        _, users, shared = loads.get(node.id, (0, 0, 0))
        counts[pool] = (count + 1, held + users + shared)
    return counts


def describe(stray: StrayPool) -> str:
    """One line: what is left of the pool and what to do about it."""
    parts, unknown = [], []
    machines = stray.running + stray.stopped
    if machines:
        parts.append(f"{machines} machine(s) ({stray.running} running, {stray.stopped} stopped)")
    if stray.nodes:
        parts.append(f"{stray.nodes} Swarm node(s) holding {stray.sessions} session(s)")
    if not stray.machines_known:
        unknown.append("machines as last listed: the provider cannot be read now")
    if not stray.nodes_known:
        unknown.append("nodes as last read: the Swarm cannot be read now")
    note = f" ({'; '.join(unknown)})" if unknown else ""
    return (
        f"pool {stray.pool} is not in the rules but {' and '.join(parts)} still carry its name"
        f"{note}: nothing scales, pauses or terminates them; to retire them without ending a "
        "session, put the pool back with min: 0 and max: 0 until they are gone"
    )


def stray_decision(stray: StrayPool) -> Decision:
    return Decision(
        policy=stray.pool, subject=f"pool {stray.pool}", outcome="hold", reasons=(describe(stray),)
    )
