"""Pool gauges from a plan, on a private registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from autoscaler.metrics import SidecarMetrics
from tests.pools_builders import node, pending, pool, run, sessions, snapshot


def test_pool_gauges() -> None:
    registry = CollectorRegistry()
    metrics = SidecarMetrics(registry)
    nodes = [
        node("a"),
        node("b", state="paused", extra={"autoscaler.paused-at": "2024-05-06T11:00:00Z"}),
    ]
    plan = run(
        snapshot(nodes, sessions("a", 4) + sessions("b", 1, start=9) + pending(2)),
        pool(prices={"local": 0.25}, max_cost_per_hour=2),
    )
    metrics.observe_plan(plan, {})

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"pool": "web", **labels})

    assert value("autoscaler_pool_nodes", state="active") == 1
    assert value("autoscaler_pool_nodes", state="paused") == 1
    assert value("autoscaler_pool_seats", kind="used") == 4
    assert value("autoscaler_pool_seats", kind="wanted") == 6
    assert value("autoscaler_pool_seats", kind="free") == 0
    assert value("autoscaler_pool_cost_per_hour") == 0.5
    assert value("autoscaler_live_sessions") == 5
    assert value("autoscaler_pending_sessions") == 2
    # pool decisions do not pose as services
    assert (
        registry.get_sample_value(
            "autoscaler_service_desired_replicas", {"policy": "web", "service": "pool web"}
        )
        is None
    )
