"""Pool gauges: nodes per lifecycle state, seats, cost, sessions (from a Plan's PoolStatus)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Gauge

from autoscaler.decide.plan_types import Plan

SEAT_KINDS = ("used", "free", "headroom", "wanted")
MACHINE_KINDS = ("running", "stopped")
NODE_KINDS = ("nodes", "sessions")

Labels = tuple[str, ...]


def publish(gauge: Gauge, values: Mapping[Labels, float], before: set[Labels]) -> set[Labels]:
    """Set ``gauge`` to ``values`` and remove the label sets of ``before`` not among them.

    A gauge of a signal, service or pool that is gone from the rules (or has no value now)
    must not stay at its last value: alerts such as AutoscalerSignalMissing and
    AutoscalerReplicasNotConverging would fire on it for ever. Series are set before stale
    ones are removed, never cleared first, so a scrape in between sees no gap.
    Returns the label sets now published (``before`` of the next call).
    """
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
    for labels in before - values.keys():
        with contextlib.suppress(KeyError):  # already gone
            gauge.remove(*labels)
    return set(values)


class PoolMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.nodes = Gauge(
            "autoscaler_pool_nodes",
            "Nodes of a pool by lifecycle state.",
            ["pool", "state"],
            registry=r,
        )
        self.seats = Gauge(
            "autoscaler_pool_seats",
            "Session seats of a pool: used, free, headroom, wanted.",
            ["pool", "kind"],
            registry=r,
        )
        self.wanted_nodes = Gauge(
            "autoscaler_pool_wanted_nodes", "Nodes the pool wants.", ["pool"], registry=r
        )
        self.cost = Gauge(
            "autoscaler_pool_cost_per_hour",
            "Hourly cost of the pool's machines at the dearest listed price.",
            ["pool"],
            registry=r,
        )
        self.live = Gauge(
            "autoscaler_live_sessions", "User sessions on pool nodes.", ["pool"], registry=r
        )
        self.pending = Gauge(
            "autoscaler_pending_sessions",
            "Session tasks of the pool's apps waiting for a node.",
            ["pool"],
            registry=r,
        )
        self.join_wait = Gauge(
            "autoscaler_pool_join_wait_seconds",
            "How long ago the oldest machine still launching or joining was launched (0: none).",
            ["pool"],
            registry=r,
        )
        self.strays = Gauge(
            "autoscaler_pool_strays",
            "Machines (running, stopped) and Swarm nodes (nodes, and their sessions) of a "
            "pool the rules lack: nothing looks after them.",
            ["pool", "kind"],
            registry=r,
        )
        self._published: dict[int, set[Labels]] = {}

    def observe(self, plan: Plan) -> None:
        """The pools of this plan; the series of a pool no longer in the rules go away."""
        nodes: dict[Labels, float] = {}
        seats: dict[Labels, float] = {}
        wanted: dict[Labels, float] = {}
        cost: dict[Labels, float] = {}
        live: dict[Labels, float] = {}
        pending: dict[Labels, float] = {}
        join_wait: dict[Labels, float] = {}
        for status in plan.pools:
            p = status.pool
            for state, count in status.nodes.items():
                nodes[(p, state)] = count
            for kind in SEAT_KINDS:
                seats[(p, kind)] = status.seats.get(kind, 0)
            wanted[(p,)] = status.wanted_nodes
            if status.cost_per_hour is not None:
                cost[(p,)] = status.cost_per_hour
            live[(p,)] = status.live_sessions
            pending[(p,)] = status.pending_sessions
            join_wait[(p,)] = status.join_wait_seconds
        strays: dict[Labels, float] = {}
        for stray in plan.strays:
            # a source that cannot be read is unknown, not zero: its kinds go unpublished
            kinds = (MACHINE_KINDS if stray.machines_known else ()) + (
                NODE_KINDS if stray.nodes_known else ()
            )
            for kind in kinds:
                strays[(stray.pool, kind)] = getattr(stray, kind)
        for gauge, values in (
            (self.strays, strays),
            (self.nodes, nodes),
            (self.seats, seats),
            (self.wanted_nodes, wanted),
            (self.cost, cost),
            (self.live, live),
            (self.pending, pending),
            (self.join_wait, join_wait),
        ):
            self._published[id(gauge)] = publish(
                gauge, values, self._published.get(id(gauge), set())
            )
