"""The simulator drives the production planner, and carries out its actions faithfully."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

import autoscaler.decide
from autoscaler.decide.plan_types import Memory, Plan
from autoscaler.decide.pools import labels as L
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.schema import Policies, Signal
from autoscaler.sim.arrivals import Arrival, Workload
from autoscaler.sim.cluster import ReadyTime
from autoscaler.sim.planner import PlannerController, production_planner
from autoscaler.sim.runner import SimParams, simulate
from autoscaler.snapshot import Snapshot

T0 = datetime(2024, 5, 6, 8, tzinfo=UTC)


def policies(**pool: Any) -> Policies:
    base: dict[str, Any] = {
        "provider": "local",
        "min": 1,
        "max": 10,
        "seats_per_node": 4,
        "headroom": {"seats": 2, "node_ready_time": "2m"},
        "scale_in": {"unneeded_for": "5m", "drain_for": "30s"},
        "join_timeout": "10m",
    }
    return Policies(pools={"web": PoolPolicy.model_validate({**base, **pool})})


def burst(count: int = 20, at: float = 1800.0, length: float = 1800.0) -> Workload:
    """Sessions trickling in over a minute from ``at``, then nothing: up, then down."""
    arrivals = tuple(Arrival(at + 3.0 * i, length) for i in range(count))
    return Workload(T0, datetime(2024, 5, 6, 11, tzinfo=UTC), arrivals, "burst")


PARAMS = SimParams(seats_per_node=4, max_nodes=10, ready_time=ReadyTime(100.0, 100.0))


def test_the_planner_is_the_production_one() -> None:
    assert production_planner() is autoscaler.decide.plan
    c = PlannerController("p", "web", policies(), T0)
    assert c.planner is autoscaler.decide.plan


def test_every_pass_goes_through_autoscaler_decide_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    real = autoscaler.decide.plan
    seen: list[Snapshot] = []

    def spy(snapshot: Snapshot, pols: Policies, memory: Memory) -> Plan:
        seen.append(snapshot)
        return real(snapshot, pols, memory)

    monkeypatch.setattr(autoscaler.decide, "plan", spy)
    w = burst()
    result = simulate(w, PlannerController("p", "web", policies(), T0), PARAMS)
    assert len(seen) == result.plan_calls == int(w.seconds / PARAMS.tick)
    assert seen[0].taken_at == T0
    assert (seen[1].taken_at - seen[0].taken_at).total_seconds() == PARAMS.tick
    # the snapshots are real ones: they survive full validation unchanged
    busiest = max(seen, key=lambda s: len(s.swarm.sessions) if s.swarm else 0)
    assert busiest.swarm is not None and len(busiest.swarm.sessions) >= 15
    assert Snapshot.model_validate(busiest.model_dump()) == busiest
    assert all(n.labels.get(L.POOL) == "web" for n in busiest.swarm.nodes)
    monkeypatch.undo()
    again = simulate(w, PlannerController("p", "web", policies(), T0), PARAMS)
    assert again.summary() == result.summary()  # the spy changed nothing


def test_a_planner_that_never_acts_leaves_the_pool_alone() -> None:
    def idle(snapshot: Snapshot, pols: Policies, memory: Memory) -> Plan:
        return Plan(at=snapshot.taken_at)

    r = simulate(burst(), PlannerController("p", "web", policies(), T0, idle), PARAMS)
    assert r.plan_calls > 0
    assert sum(r.actions.values()) == 0
    assert r.failed_starts == 20 - 4  # one node of four seats
    assert r.node_hours == pytest.approx(3.0)


def test_the_pool_grows_for_a_burst_and_retires_without_killing() -> None:
    r = simulate(burst(), PlannerController("p", "web", policies(), T0), PARAMS)
    assert r.sessions == 20
    assert r.sessions_killed == 0
    assert r.actions["launch_nodes"] >= 4  # 20 sessions + 2 headroom: 6 nodes
    assert r.actions["label_node"] >= r.actions["launch_nodes"]  # newcomers join the pool
    # after the burst every extra node was paused, drained, removed and terminated
    assert r.actions["pause_node"] >= r.actions["launch_nodes"]
    assert r.actions["drain_node"] == r.actions["remove_node"] == r.actions["terminate_instance"]
    assert r.actions["terminate_instance"] >= r.actions["launch_nodes"]
    assert r.timeline[-1].nodes["active"] == 1
    # by hand: sessions arrive at 1800 + 3i; the first node seats i = 0..3; the pass at
    # 1815 sees waiting starts and launches; that node is Ready at 1915, when only i = 19
    # (arrived 1857) is still within its 60 s wait: 15 starts fail, one waited 58 s
    assert r.failed_starts == 15
    assert sorted(r.waits) == [0.0] * 4 + [58.0]


def test_passes_on_events_act_at_the_arrival_not_at_the_next_tick() -> None:
    tick = simulate(burst(), PlannerController("p", "web", policies(), T0), PARAMS)
    events = replace(PARAMS, event_gap=1.0)
    r = simulate(burst(), PlannerController("p", "web", policies(), T0), events)
    # by hand: the arrival at 1806 leaves one seat free, below the two wanted at once, and
    # its pass launches a node, Ready at 1906: in time for i = 16..19 (arrived 1848 to
    # 1857), where the launch of the 1815 tick came in time for i = 19 alone
    assert tick.failed_starts == 15
    assert r.failed_starts == 12
    assert sorted(r.waits) == [0.0] * 4 + [49.0, 52.0, 55.0, 58.0]
    assert r.plan_calls > tick.plan_calls == int(burst().seconds / PARAMS.tick)
    assert r.sessions_killed == 0


def test_passes_on_events_share_one_pass_within_the_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    real = autoscaler.decide.plan
    at: list[float] = []

    def spy(snapshot: Snapshot, pols: Policies, memory: Memory) -> Plan:
        at.append((snapshot.taken_at - T0).total_seconds())
        return real(snapshot, pols, memory)

    monkeypatch.setattr(autoscaler.decide, "plan", spy)
    gap = 10.0
    r = simulate(
        burst(), PlannerController("p", "web", policies(), T0), replace(PARAMS, event_gap=gap)
    )
    assert len(at) == r.plan_calls
    between = [t for t in at if t % PARAMS.tick]
    assert between  # arrivals every 3 s ask for passes between the ticks
    for before, t in itertools.pairwise(at):
        assert t > before
        if t % PARAMS.tick:  # an event's pass waits out the gap after any pass
            assert t - before >= gap
    # the arrivals at 1800 + 3i: the tick at 1800 sees the first; those at 1803 to 1809
    # wait for one pass at 1810; the tick at 1815 sees 1812 and 1815; 1818 to 1824 share
    # 1825; and so on, one pass 10 s after each tick
    assert [t for t in between if 1800 < t < 1860] == [1810.0, 1825.0, 1840.0, 1855.0]


def test_baselines_keep_their_interval() -> None:
    from autoscaler.sim.baselines import HpaStyle

    plain = simulate(burst(), HpaStyle(10), PARAMS)
    events = simulate(burst(), HpaStyle(10), replace(PARAMS, event_gap=1.0))
    assert events.summary() == plain.summary()


def test_headroom_from_the_arrivals_signal_avoids_failures() -> None:
    signal = Signal.model_validate(
        {
            "influx": {
                "query": 'SELECT count("data") / 15 FROM "event" WHERE "type" = '
                "'ProxyStart' AND time > now() - 15m"
            },
            "max_age": "5m",
            "on_empty": "zero",
        }
    )
    # a fast ramp: arrivals every 10 s, 10 minutes each (60 sessions once steady)
    arrivals = tuple(Arrival(10.0 * i, 600.0) for i in range(600))
    w = Workload(T0, datetime(2024, 5, 6, 11, tzinfo=UTC), arrivals, "steady")
    fixed = simulate(w, PlannerController("p", "web", policies(max=25), T0), PARAMS)
    room = {"seats": 2, "signal": "arrivals", "node_ready_time": "3m"}
    pols = policies(max=25, headroom=room)
    pols = pols.model_copy(update={"signals": {"arrivals": signal}})
    ahead = simulate(w, PlannerController("p", "web", pols, T0), PARAMS)
    assert ahead.failed_starts < fixed.failed_starts
    assert ahead.sessions_killed == fixed.sessions_killed == 0


def test_a_stabilization_window_keeps_the_reserve_for_the_next_burst() -> None:
    """Bursts of 12 and 8 five-minute sessions 40 minutes apart; the reserve is the last 15
    minutes' arrivals. Without a window it is gone when the second burst comes (nodes
    retired, starts fail); with a 1-hour window it is still there, at a price. Only the
    second burst is counted (the first meets no reserve either way)."""
    signal = Signal.model_validate(
        {
            "influx": {
                "query": 'SELECT count("data") FROM "event" WHERE "type" = '
                "'ProxyStart' AND time > now() - 15m"
            },
            "max_age": "5m",
            "on_empty": "zero",
        }
    )
    bursts = [1800.0 + 5.0 * i for i in range(12)] + [4200.0 + 5.0 * i for i in range(8)]
    arrivals = tuple(Arrival(t, 300.0) for t in bursts)
    w = Workload(T0, datetime(2024, 5, 6, 10, tzinfo=UTC), arrivals, "two bursts")
    room: dict[str, Any] = {"seats": 2, "signal": "arrivals", "signal_per": "15m"}
    room["node_ready_time"] = "15m"

    def run(**extra: str) -> Any:
        pols = policies(headroom={**room, **extra}, scale_in={"unneeded_for": "15s"})
        pols = pols.model_copy(update={"signals": {"arrivals": signal}})
        counted = replace(PARAMS, warmup=3600.0)
        return simulate(w, PlannerController("p", "web", pols, T0), counted)

    plain, held = run(), run(stabilization_window="1h")
    assert plain.failed_starts > 0
    assert held.failed_starts == 0
    assert held.sessions_killed == plain.sessions_killed == 0
    assert held.node_hours > plain.node_hours


def test_unknown_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="no pool 'db'"):
        PlannerController("p", "db", policies(), T0)


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        ('count("data")', 30.0),  # a count over the window
        ('count("data") / 15', 2.0),  # per minute
        ('count("data") * 4', 120.0),
        ('mean("x")', None),  # not a count of starts: not simulated
    ],
)
def test_influx_start_counts_are_simulated(select: str, expected: float | None) -> None:
    from autoscaler.sim.cluster import SimCluster
    from autoscaler.sim.observe import Observer

    # one start every 30 s for an hour; the query looks at the last 15 minutes
    c = SimCluster([Arrival(30.0 * i, 7200.0) for i in range(120)], 100, PARAMS.ready_time, 1)
    c.add_ready(2)
    c.advance(3599.0)
    query = f'SELECT {select} FROM "event" WHERE "type" = \'ProxyStart\' AND time > now() - 15m'
    signal = Signal.model_validate({"influx": {"query": query}})
    snap = Observer(c, T0, "web").snapshot({"s": signal})
    assert snap.signals["s"].value == expected
    assert (snap.signals["s"].error is None) == (expected is not None)


def test_actions_follow_the_node_actuator_rules() -> None:
    from autoscaler.decide.plan_types import DrainNode, PauseNode, RemoveNode
    from autoscaler.sim.cluster import SimCluster

    c = SimCluster([Arrival(float(i), 7200.0) for i in range(6)], 4, PARAMS.ready_time, 1)
    ctl = PlannerController("p", "web", policies(), T0)
    ctl.start(c)  # one node of the pool
    (extra,) = c.add_ready(1, {L.POOL: "web", L.STATE: "active"})
    c.advance(10.0)
    first = c.nodes[0]
    on_first, on_extra = set(first.sessions), set(extra.sessions)
    assert (len(on_first), len(on_extra)) == (3, 3)
    where = {"node_id": extra.id, "hostname": extra.hostname, "pool": "web", "reason": "t"}
    ctl.apply(c, DrainNode(**where, at=T0))  # not paused: refused
    ctl.apply(c, PauseNode(**where, at=T0))
    ctl.apply(c, DrainNode(**where, at=T0))  # holds user sessions: refused
    ctl.apply(c, RemoveNode(**where))  # not drained: refused
    assert ctl.refused == {"drain_node": 2, "remove_node": 1}
    assert extra.labels[L.STATE] == "paused" and L.PAUSED_AT in extra.labels
    assert c.stats.killed == 0
    ctl.apply(c, DrainNode(**where, at=T0, end_sessions=True))
    # exactly the sessions on that node ended; the others run on
    assert c.stats.killed == 3
    assert set(c.sessions) == on_first and set(first.sessions) == on_first
    ctl.apply(c, RemoveNode(**where))
    assert extra.removed and ctl.actions["remove_node"] == 1


def test_the_session_views_follow_every_change_of_the_pool() -> None:
    from autoscaler.sim.cluster import SimCluster
    from autoscaler.sim.observe import Observer

    # starts that take a seat, wait, fail, end and are killed (and come back)
    arrivals = [Arrival(7.0 * i, 40.0 + 31.0 * (i % 5)) for i in range(60)]
    c = SimCluster(arrivals, 2, PARAMS.ready_time, 1, 60.0, 0.0, reopen_after=5.0)
    _, b = c.add_ready(2)
    o = Observer(c, T0, "web")
    kinds = set()
    for t in range(0, 480, 10):
        c.advance(float(t))
        if t == 200:
            c.set_availability(b, "drain")
        if t == 300:
            c.add_ready(1)
        swarm = o.snapshot({}).swarm
        assert swarm is not None
        expected = [(f"svc{s.id}", s.node.id if s.node else None) for s in c.sessions.values()]
        assert [(s.service_id, s.node_id) for s in swarm.sessions] == expected
        waiting = [f"svc{s.id}" for s in c.sessions.values() if s.node is None]
        assert [p.service_id for p in swarm.pending_tasks] == waiting
        kinds.add((bool(waiting), bool(expected)))
    assert c.stats.failed > 0 and c.stats.killed > 0 and c.stats.reopened > 0
    assert kinds >= {(True, True), (False, True)}


def test_a_pool_that_allows_ending_sessions_ends_them_after_the_notice() -> None:
    """Every fifth session lasts 3 hours; with 20 minutes of grace and 5 of notice the
    paused nodes holding one are drained (the simulated receiver takes every alert at
    once), where the pool that ends none keeps them for the hours those sessions last."""
    arrivals = tuple(Arrival(1800 + 30.0 * i, 10800.0 if i % 5 == 0 else 600.0) for i in range(20))
    w = Workload(T0, datetime(2024, 5, 6, 12, tzinfo=UTC), arrivals, "long")
    keep = {"unneeded_for": "5m", "drain_for": "30s"}
    end = {**keep, "allow_ending_sessions": True, "session_grace": "20m", "ending_notice": "5m"}
    kept = simulate(w, PlannerController("p", "web", policies(scale_in=keep), T0), PARAMS)
    ended = simulate(w, PlannerController("p", "web", policies(scale_in=end), T0), PARAMS)
    assert kept.sessions_killed == 0 and "notify" not in kept.actions
    assert ended.sessions_killed == 3  # the long sessions not on the node that stays active
    # per node: the alert raised and marked, its delivery marked, the alert raised every
    # pass (15 s) until the drain 5 minutes after the delivery
    assert ended.actions["label_node"] == kept.actions["label_node"] + 2 * 3
    assert ended.actions["notify"] >= 3 * 5 * 4
    assert ended.failed_starts == kept.failed_starts == 0
    assert ended.node_hours < kept.node_hours - 5


def test_event_passes_are_timed_by_the_sidecars_own_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same function decides when the sidecar and the simulator run an event pass, and
    the simulator's default GAP is the sidecar's default gap, its other settings too."""
    import autoscaler.sim.runner
    from autoscaler.cli import build_parser
    from autoscaler.event_batching import EventBatching, event_pass_due
    from autoscaler.settings import Settings

    seen: list[EventBatching] = []

    def spy(first: float, last: float, ended: float | None, batching: EventBatching) -> float:
        seen.append(batching)
        return event_pass_due(first, last, ended, batching)

    monkeypatch.setattr(autoscaler.sim.runner, "event_pass_due", spy)
    args = ["simulate", "--trace", "t.csv", "--event-passes"]
    gap = build_parser().parse_args(args).event_passes
    simulate(burst(), PlannerController("p", "web", policies(), T0), replace(PARAMS, event_gap=gap))
    s = Settings()
    sidecar = EventBatching(idle=s.event_batch_idle, max=s.event_batch_max, gap=s.event_min_gap)
    assert seen and set(seen) == {sidecar}
