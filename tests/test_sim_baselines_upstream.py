"""Audit of the simulator's baselines, oracle and event passes against the systems they
imitate (Kubernetes HPA, cluster-autoscaler, osparc's hot buffer), on hand-checkable
pools driven pass by pass."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.sim.arrivals import Arrival, Workload
from autoscaler.sim.baselines import ClusterAutoscalerStyle, HotBuffer, HpaStyle, StaticPeak
from autoscaler.sim.cluster import ReadyTime, SimCluster
from autoscaler.sim.runner import SimParams, simulate, simulate_oracle

T0 = datetime(2024, 5, 6, 8, tzinfo=UTC)
FIXED_100 = ReadyTime(100.0, 100.0)


def cluster(arrivals: list[Arrival], seats: int = 4) -> SimCluster:
    return SimCluster(arrivals, seats, FIXED_100, seed=1, service_wait=60.0)


def nodes(c: SimCluster) -> int:
    """Machines of the pool: active or launching."""
    return sum(1 for n in c.current if n.state in ("active", "launching"))


# ---------------------------------------------------------------- hpa-style


def test_hpa_scale_down_window_is_five_minutes_with_upstream_strict_cutoff() -> None:
    # 8 sessions on 4 nodes of 4 seats (50%, target 70%: desired 3 at once, but the
    # stabilisation holds 4 while a recommendation of 4 is in the window). Upstream keeps
    # a recommendation while its time is strictly after now - 300 s: one made at t=0 no
    # longer counts at t=300.
    c = cluster([Arrival(float(i + 1), 10_000.0) for i in range(8)])
    c.add_ready(4)
    hpa = HpaStyle(20)
    c.advance(0.0)
    hpa._history.append((0.0, 4))  # the recommendation of a busier moment
    for t in range(0, 301, 15):
        c.advance(float(t))
        hpa.step(c)
        if t < 300:
            assert nodes(c) == 4, t
    assert nodes(c) == 3


def test_hpa_stabilisation_only_holds_never_scales_up_on_an_old_recommendation() -> None:
    # upstream: the recommendation is current clamped to [min of the up window, max of
    # the down window]; a high recommendation in the window keeps nodes, it never adds
    # any. target 30% lets the rate limit (+100% or +4 a pass) bind: 40 sessions on 10
    # nodes of 4 ask for 34, the pass adds 10; then every session ends.
    c = cluster([Arrival(1.0 + i * 0.1, 60.0) for i in range(40)])
    c.add_ready(10)
    hpa = HpaStyle(100, target=0.3)
    c.advance(15.0)
    hpa.step(c)
    assert nodes(c) == 20
    c.advance(75.0)  # all ended
    hpa.step(c)
    assert nodes(c) == 20
    assert hpa.actions["launch_nodes"] == 10


# ---------------------------------------------------------------- cluster-autoscaler-style


def test_cluster_autoscaler_unneeded_nodes_are_found_cumulatively() -> None:
    # three 8-seat nodes with 3 sessions each (37.5%, under 50%): each one's sessions fit
    # on the other two, but not once another's have moved there. cluster-autoscaler's
    # simulation removes the nodes it found unneeded from the destinations and places
    # their pods first (a persisted snapshot), so only one of the three is unneeded.
    c = cluster([Arrival(1.0 + i, 100_000.0) for i in range(9)], seats=8)
    a, b, d = c.add_ready(3)
    ca = ClusterAutoscalerStyle(10)
    drained: dict[int, float] = {}
    for t in range(0, 1801, 15):
        c.advance(float(t))
        ca.step(c)
        for n in (a, b, d):
            if not n.alive and n.index not in drained:
                drained[n.index] = float(t)
    assert [len(n.sessions) for n in (a, b, d) if n.alive] == [3]
    # the first after 10 minutes unneeded; the second only unneeded once the first has
    # gone, so 10 minutes after that
    first, second = sorted(drained.values())
    assert first == 600.0
    assert second == 1215.0


def test_cluster_autoscaler_keeps_the_timer_of_a_node_already_unneeded() -> None:
    # a (3 of 8 seats) and b (3) are under 50%, d (5) is not: 13 free seats hold one of
    # them. a is found unneeded first; when b drops to 2 sessions, a keeps its place in
    # the simulation (cluster-autoscaler sorts earlier candidates first) and its timer
    # runs on: a goes 10 minutes after it was first found unneeded.
    lengths = [100_000.0] * 11
    lengths[4] = 300.0  # b's second session ends at 305
    c = cluster([Arrival(1.0 + i, lengths[i]) for i in range(11)], seats=8)
    (a,) = c.add_ready(1)
    c.advance(3.5)
    (b,) = c.add_ready(1)
    c.advance(6.5)
    c.set_availability(a, "pause")
    c.set_availability(b, "pause")
    (d,) = c.add_ready(1)
    c.advance(11.5)
    c.set_availability(a, "active")
    c.set_availability(b, "active")
    assert [len(n.sessions) for n in (a, b, d)] == [3, 3, 5]
    ca = ClusterAutoscalerStyle(10)
    for t in range(15, 616, 15):
        c.advance(float(t))
        ca.step(c)
    assert (a.alive, b.alive, d.alive) == (False, True, True)
    assert len(b.sessions) == 2


# ---------------------------------------------------------------- hot-buffer


def test_hot_buffer_removes_a_node_only_a_minute_after_it_emptied() -> None:
    # one seat a node. b holds a session from t=6 to t=20; the pass at 15 launches (the
    # spare is taken), the pass at 30 first sees b empty: b goes at 90, not at 60 (when it
    # would have been empty for a minute had it not been used in between)
    c = cluster([Arrival(5.0, 100_000.0), Arrival(6.0, 14.0)], seats=1)
    _, b = c.add_ready(2)
    hb = HotBuffer(10)
    gone = None
    for t in range(0, 181, 15):
        c.advance(float(t))
        hb.step(c)
        if gone is None and not b.alive:
            gone = float(t)
    assert gone == 90.0


# ---------------------------------------------------------------- oracle


def test_oracle_stays_below_a_policy_when_the_window_ends_mid_pass() -> None:
    # a 100 s window (passes every 15 s), one seat, one session throughout: one node for
    # 100 s at the very least; the oracle must not pay for the rest of the last pass
    w = Workload(T0, T0 + timedelta(seconds=100), (Arrival(0.0, 100.0),), "hand")
    params = SimParams(seats_per_node=1, max_nodes=5, ready_time=ReadyTime(15.0, 15.0))
    o = simulate_oracle(w, params)
    static = simulate(w, StaticPeak(1), params)
    assert o.node_seconds == pytest.approx(100.0)
    assert o.node_seconds <= static.node_seconds


def test_oracle_counts_from_the_warmup_exactly() -> None:
    # a warmup that does not fall on a pass boundary: counted from it, as every policy is
    w = Workload(T0, T0 + timedelta(seconds=300), (Arrival(0.0, 300.0),), "hand")
    params = SimParams(
        seats_per_node=1, max_nodes=5, ready_time=ReadyTime(15.0, 15.0), warmup=100.0
    )
    o = simulate_oracle(w, params)
    static = simulate(w, StaticPeak(1), params)
    assert static.node_seconds == pytest.approx(200.0)
    assert o.node_seconds == pytest.approx(200.0)


# ---------------------------------------------------------------- event passes


class Recorder:
    """A controller that does nothing but note when it ran."""

    name = "recorder"
    on_events = True

    def __init__(self) -> None:
        self.actions: Counter[str] = Counter()
        self.at: list[float] = []

    def start(self, cluster: SimCluster) -> None:
        cluster.add_ready(1)

    def step(self, cluster: SimCluster) -> None:
        self.at.append(cluster.now)


def test_event_passes_only_at_real_events() -> None:
    # one seat. A from t=2 to t=12; B arrives at t=5, waits, takes A's seat at t=12 and
    # ends at t=112. Passes: the interval ones, at both arrivals, at t=12 and at t=112;
    # none at t=65, when B's start would have failed had it still waited (nothing
    # happens then: the sidecar sees no event)
    w = Workload(T0, T0 + timedelta(seconds=150), (Arrival(2.0, 10.0), Arrival(5.0, 100.0)), "h")
    params = SimParams(seats_per_node=1, max_nodes=5, event_gap=1.0)
    rec = Recorder()
    r = simulate(w, rec, params)
    assert r.failed_starts == 0
    ticks = [15.0 * i for i in range(10)]
    assert sorted(rec.at) == sorted([*ticks, 2.0, 5.0, 12.0, 112.0])


def test_event_passes_none_when_a_killed_session_would_have_ended() -> None:
    w = Workload(T0, T0 + timedelta(seconds=150), (Arrival(7.0, 100.0),), "hand")
    params = SimParams(seats_per_node=4, max_nodes=5, event_gap=1.0)

    class Killer(Recorder):
        def step(self, cluster: SimCluster) -> None:
            super().step(cluster)
            if cluster.now == 30.0:
                n = cluster.current[0]
                cluster.set_availability(n, "drain")

    rec = Killer()
    r = simulate(w, rec, params)
    assert r.sessions_killed == 1
    assert 107.0 not in rec.at
