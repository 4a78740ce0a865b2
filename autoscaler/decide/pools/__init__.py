"""Worker node pools: sizing in seats and the node lifecycle, as pure decisions."""

from __future__ import annotations

from collections.abc import Mapping

from autoscaler.decide.plan_types import Decision, PoolMemory
from autoscaler.decide.pools.planner import PoolOutcome, decide_pool
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.schema import Signal
from autoscaler.snapshot import Snapshot

__all__ = ["PoolOutcome", "decide_pool", "plan_pools"]


def plan_pools(
    pools: Mapping[str, PoolPolicy],
    snapshot: Snapshot,
    signals: Mapping[str, Signal],
    memory: Mapping[str, PoolMemory],
) -> list[tuple[str, PoolOutcome]]:
    """Decide every pool, sorted by name. Pure.

    A pool whose decision raises (a defect) gets an error decision, keeps its memory and
    acts on nothing; the other pools are decided as usual. A pool without ``apps`` counts
    the waiting sessions of the apps no other enabled pool lists: each waiting session is
    launched for once, by the pool that names its app. A disabled or retired (``max: 0``)
    pool launches for none: its apps are the rest's.
    """
    out: list[tuple[str, PoolOutcome]] = []
    for name in sorted(pools):
        elsewhere = frozenset(
            app for other, p in pools.items() if other != name and p.launches for app in p.apps
        )
        try:
            outcome = decide_pool(name, pools[name], snapshot, signals, memory.get(name), elsewhere)
        except Exception as e:
            outcome = PoolOutcome(
                Decision(
                    policy=name,
                    subject=f"pool {name}",
                    outcome="error",
                    reasons=(f"internal error, nothing decided: {e!r}",),
                ),
                memory=memory.get(name),
            )
        out.append((name, outcome))
    return out
