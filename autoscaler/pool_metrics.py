"""Pool gauges: nodes per lifecycle state, seats, cost, sessions (from a Plan's PoolStatus)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from autoscaler.decide.plan_types import Plan

SEAT_KINDS = ("used", "free", "headroom", "wanted")


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

    def observe(self, plan: Plan) -> None:
        for status in plan.pools:
            p = status.pool
            for state, count in status.nodes.items():
                self.nodes.labels(p, state).set(count)
            for kind in SEAT_KINDS:
                self.seats.labels(p, kind).set(status.seats.get(kind, 0))
            self.wanted_nodes.labels(p).set(status.wanted_nodes)
            if status.cost_per_hour is not None:
                self.cost.labels(p).set(status.cost_per_hour)
            self.live.labels(p).set(status.live_sessions)
            self.pending.labels(p).set(status.pending_sessions)
