"""The baselines on hand-checkable demand: what each one is known to do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.sim.arrivals import Arrival, Workload
from autoscaler.sim.baselines import ClusterAutoscalerStyle, HotBuffer, HpaStyle, StaticPeak
from autoscaler.sim.cluster import ReadyTime
from autoscaler.sim.runner import SimParams, simulate, simulate_oracle

T0 = datetime(2024, 5, 6, 8, tzinfo=UTC)
PARAMS = SimParams(seats_per_node=4, max_nodes=20, ready_time=ReadyTime(100.0, 100.0))


def workload(arrivals: list[Arrival], hours: float = 3.0) -> Workload:
    return Workload(T0, T0 + timedelta(hours=hours), tuple(arrivals), "hand")


def wave() -> Workload:
    """12 sessions (3 nodes' worth) for an hour from t=1800, spread over two minutes."""
    return workload([Arrival(1800.0 + 10.0 * i, 3600.0) for i in range(12)])


def test_static_peak_never_fails_and_pays_for_the_peak_all_the_time() -> None:
    r = simulate(wave(), StaticPeak(3), PARAMS)
    assert (r.failed_starts, r.sessions_killed) == (0, 0)
    assert r.node_hours == pytest.approx(9.0)


def test_cluster_autoscaler_only_reacts_to_pending_tasks() -> None:
    r = simulate(wave(), ClusterAutoscalerStyle(20), PARAMS)
    # one node for 12 sessions arriving within 2 minutes: nodes come 100 s after the
    # first pending task, so some starts have already waited too long
    assert r.failed_starts > 0
    assert r.actions["launch_nodes"] >= 2
    # after the wave the unneeded nodes go after 10 minutes; none held a session
    assert r.sessions_killed == 0
    assert r.timeline[-1].nodes["active"] == 1


def test_hpa_style_scales_in_by_draining_busy_nodes() -> None:
    # many short sessions keep every node a little busy; as they dwindle, HPA drains
    # nodes that still hold a session
    arrivals = [Arrival(600.0 + 20.0 * i, 600.0 + 30.0 * (i % 40)) for i in range(300)]
    r = simulate(workload(arrivals), HpaStyle(20), PARAMS)
    assert r.sessions_killed > 0
    assert r.actions["drain_node"] > 0


def test_hot_buffer_keeps_one_spare_node_and_kills_nothing() -> None:
    r = simulate(wave(), HotBuffer(20), PARAMS)
    assert r.sessions_killed == 0
    assert r.timeline[0].nodes["active"] == 1  # the spare
    peak = max(s.nodes["active"] + s.nodes["launching"] for s in r.timeline)
    assert peak == 12 // 4 + 1


def test_oracle_is_below_every_simulated_policy() -> None:
    w = wave()
    o = simulate_oracle(w, PARAMS)
    assert o.failed_starts == 0 and o.sessions == 12
    for c in (StaticPeak(3), ClusterAutoscalerStyle(20), HotBuffer(20), HpaStyle(20)):
        assert simulate(w, c, PARAMS).node_hours >= o.node_hours
