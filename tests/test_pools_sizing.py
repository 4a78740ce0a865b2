"""Pool sizing, pure: seats in use + waiting + headroom -> nodes, within min, max, cost."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from autoscaler.decide import plan
from autoscaler.decide.plan_types import LaunchNodes, Memory, PoolMemory, ResumeNode
from autoscaler.decide.pools import labels as L
from autoscaler.rules.schema import Policies, Signal
from tests.pools_builders import (
    POOL,
    T0,
    hosts,
    kinds,
    machine,
    node,
    on,
    pending,
    pool,
    reasons,
    run,
    sessions,
    snapshot,
)


def launched(p: Any) -> int:
    return sum(a.count for a in on(p, "launch_nodes") if isinstance(a, LaunchNodes))


@pytest.mark.parametrize(
    ("case", "active", "used", "waiting", "overrides", "launch"),
    [
        ("empty pool gets its min", 0, 0, 0, {}, 1),
        ("fits: 2 nodes, 7 used + 0 waiting + 0 headroom", 2, 7, 0, {}, 0),
        ("headroom seats need a third node", 2, 7, 0, {"headroom": {"seats": 2}}, 1),
        ("waiting sessions need nodes", 1, 0, 9, {}, 2),
        ("min raises the count", 1, 0, 0, {"min": 3}, 2),
        ("max caps the count", 1, 4, 40, {"max": 3}, 2),
        (
            "cost cap caps the count",
            1,
            4,
            40,
            {"prices": {"local": 0.5}, "max_cost_per_hour": 1.6},
            2,
        ),
        ("full nodes plus one seat of headroom", 2, 8, 0, {"headroom": {"seats": 1}}, 1),
    ],
)
def test_launch_table(
    case: str, active: int, used: int, waiting: int, overrides: dict[str, Any], launch: int
) -> None:
    names = [f"w{i}" for i in range(active)]
    sess = [s for i, n in enumerate(names) for s in sessions(n, min(4, used - 4 * i))]
    p = run(snapshot([node(n) for n in names], sess + pending(waiting)), pool(**overrides))
    assert launched(p) == launch, (case, reasons(p))
    assert not on(p, "pause_node"), case


def test_refusals_are_reasons() -> None:
    sess = sessions("w0", 4) + pending(40)
    at_max = run(snapshot([node("w0")], sess), pool(max=3))
    assert "at max 3" in reasons(at_max)
    capped = run(
        snapshot([node("w0")], sess),
        pool(prices={"local": 0.5}, max_cost_per_hour=1.6, max=10),
    )
    assert "cost cap $1.60/h allows 3 node(s) at $0.50/h" in reasons(capped)
    assert launched(capped) == 2


def test_machines_at_max_block_launch_even_when_paused() -> None:
    """Paused and draining machines still count against max and cost."""
    nodes = [node("a"), node("p1", state="paused"), node("d1", state="draining")]
    extra = {"autoscaler.paused-at": "2024-05-06T11:59:00Z"}
    nodes[1] = node("p1", state="paused", extra=extra)
    sess = sessions("a", 4) + sessions("p1", 4, start=10) + pending(8)
    p = run(snapshot(nodes, sess), pool(max=3))
    # the paused node is resumed (it has no free seat but is capacity), nothing launched
    assert launched(p) == 0
    assert [a.hostname for a in on(p, "resume_node") if isinstance(a, ResumeNode)] == ["p1"]
    assert "at max 3" in reasons(p)


def test_resume_before_launch() -> None:
    extra = {"autoscaler.paused-at": "2024-05-06T11:00:00Z"}
    nodes = [
        node("a"),
        node("p-full", state="paused", extra=extra),
        node("p-empty", state="paused", extra=extra),
    ]
    sess = sessions("a", 4) + sessions("p-full", 3, start=10) + pending(12)
    p = run(snapshot(nodes, sess), pool())
    resumed = [a.hostname for a in on(p, "resume_node") if isinstance(a, ResumeNode)]
    assert resumed == ["p-full", "p-empty"]
    # 12 waiting: the resumed nodes free 1 + 4 seats, the other 7 need 2 more nodes
    assert launched(p) == 2
    assert "resume 2 paused node(s) before launching" in reasons(p)
    # a resumed node is not drained in the same pass, even when empty
    assert not on(p, "drain_node")


def test_resume_only_what_is_short_fullest_first() -> None:
    extra = {"autoscaler.paused-at": "2024-05-06T11:00:00Z"}
    nodes = [
        node("a"),
        node("p1", state="paused", extra=extra),
        node("p2", state="paused", extra=extra),
    ]
    sess = sessions("a", 4) + sessions("p1", 1, start=10) + sessions("p2", 2, start=20)
    p = run(snapshot(nodes, sess + pending(1)), pool())
    assert [a.hostname for a in on(p, "resume_node") if isinstance(a, ResumeNode)] == ["p2"]
    assert launched(p) == 0
    # p1 keeps waiting for its session to end
    assert not [a for a in on(p, "drain_node") if getattr(a, "hostname", "") == "p1"]


@pytest.mark.parametrize(
    ("at", "launch", "why"),
    [
        (T0, 3, "min 4"),  # Monday 14:00 in Brussels: office hours
        (T0 - timedelta(days=1), 0, None),  # Sunday
        (T0 + timedelta(hours=6), 0, None),  # Monday 20:00 in Brussels: closed
    ],
)
def test_scheduled_minimum(at: Any, launch: int, why: str | None) -> None:
    sched = [{"cron": "0 8 * * 1-5", "duration": "10h", "timezone": "Europe/Brussels", "min": 4}]
    p = run(snapshot([node("a")], at=at), pool(schedules=sched))
    assert launched(p) == launch, reasons(p)
    if why:
        assert why in reasons(p)


ARRIVALS = {"arrivals": Signal.model_validate({"influx": {"query": "SELECT 1"}})}


def test_headroom_from_arrivals() -> None:
    headroom = {"seats": 1, "signal": "arrivals", "node_ready_time": "3m"}
    snap = snapshot([node("a")], signals={"arrivals": 2.0})
    p = run(snap, pool(headroom=headroom), signals=ARRIVALS)
    # 2 arrivals/min x 3 min = 6 seats of headroom -> 2 nodes
    assert launched(p) == 1
    assert p.pools[0].seats["headroom"] == 6
    assert "2 arrivals/min over 3m" in reasons(p)


def test_headroom_from_a_count_over_a_longer_span() -> None:
    headroom = {"signal": "arrivals", "signal_per": "15m", "node_ready_time": "2m"}
    snap = snapshot([node("a")], signals={"arrivals": 45.0})  # 3 per minute
    p = run(snap, pool(headroom=headroom), signals=ARRIVALS)
    assert p.pools[0].seats["headroom"] == 6


@pytest.mark.parametrize(
    ("arrivals", "reserve_seats", "headroom", "launches"),
    [
        (0.0, 0, 1, 0),  # quiet: 1 seat at once is free on the one node
        (0.0, 6, 6, 1),  # quiet, but 6 seats kept within reach: 3 free + a machine
        (0.0, 3, 3, 0),  # 3 free already
        (4.0, 3, 8, 2),  # busy: the arrivals of 2 minutes exceed the floor
        (None, 6, 6, 1),  # the floor holds without the signal too
    ],
)
def test_reserve_seats_is_a_floor_under_the_arrivals(
    arrivals: float | None, reserve_seats: int, headroom: int, launches: int
) -> None:
    room = {"seats": 1, "reserve_seats": reserve_seats, "signal": "arrivals",
            "node_ready_time": "2m"}  # fmt: skip
    snap = snapshot([node("a")], sessions("a", 1), signals={"arrivals": arrivals})
    p = run(snap, pool(headroom=room), signals=ARRIVALS)
    assert p.pools[0].seats["headroom"] == headroom, reasons(p)
    assert launched(p) == launches, reasons(p)
    if reserve_seats and arrivals is not None:
        assert f"reserve at least {reserve_seats}" in reasons(p)


def test_missing_arrivals_uses_fixed_headroom_and_never_scales_in() -> None:
    headroom = {"seats": 1, "signal": "arrivals"}
    nodes = [node("a"), node("b"), node("c")]
    snap = snapshot(nodes, signals={"arrivals": None})
    memory = PoolMemory(unneeded_since=T0 - timedelta(hours=1))
    p = run(snap, pool(headroom=headroom), memory=memory, signals=ARRIVALS)
    assert kinds(p) == []
    assert p.pools[0].seats["headroom"] == 1
    assert "no scale-in while the headroom signal is unusable" in reasons(p)


def test_missing_arrivals_keeps_an_empty_paused_node() -> None:
    """Its seats may be what the reserve needs: without the signal nothing tells, so it is
    kept rather than drained (and resumed, not launched, when seats run short)."""
    headroom = {"seats": 1, "signal": "arrivals", "node_ready_time": "5m"}
    paused = node("p", state="paused", extra={L.PAUSED_AT: L.stamp(T0 - timedelta(minutes=5))})
    nodes = [node("a"), paused]
    missing = run(snapshot(nodes, signals={"arrivals": None}), pool(headroom=headroom),
                  signals=ARRIVALS)  # fmt: skip
    assert kinds(missing) == [], reasons(missing)
    assert "p paused and empty: kept (no scale-in without the headroom)" in reasons(missing)
    known = run(snapshot(nodes, signals={"arrivals": 0.0}), pool(headroom=headroom),
                signals=ARRIVALS)  # fmt: skip
    assert kinds(known) == ["drain_node"]


def test_in_flight_machines_count() -> None:
    machines = [machine("a"), machine("new", age=timedelta(minutes=2))]
    p = run(snapshot([node("a")], sessions("a", 4) + pending(3), machines), pool())
    assert launched(p) == 0
    assert p.pools[0].nodes["launching"] == 1


def test_unlisted_launch_is_not_repeated() -> None:
    """The provider's list may lag behind a launch: memory covers the gap."""
    memory = PoolMemory(launched_at=T0 - timedelta(seconds=20), launched=2)
    snap = snapshot([node("a")], sessions("a", 4) + pending(8))
    assert launched(run(snap, pool(), memory=memory)) == 0
    later = PoolMemory(launched_at=T0 - timedelta(minutes=5), launched=2)
    assert launched(run(snap, pool(), memory=later)) == 2


def test_a_second_launch_before_the_first_is_listed_launches_nothing_twice() -> None:
    """Passes come every second on Docker events; the provider's list may lag longer."""
    nodes = [node("a")]
    policies = Policies(pools={POOL: pool(max=20)})
    first = run(snapshot(nodes, sessions("a", 4) + pending(8)), pool(max=20))
    assert launched(first) == 2
    # more sessions wait: two more machines, while the first two are not listed yet
    at = T0 + timedelta(seconds=5)
    second = plan(snapshot(nodes, sessions("a", 4) + pending(16), at=at), policies, first.memory)
    assert launched(second) == 2
    assert second.memory.pools[POOL].launched == 4
    # the same demand, nothing listed yet: all four are on their way
    for seconds in (10, 60, 119):
        at = T0 + timedelta(seconds=seconds)
        third = plan(snapshot(nodes, sessions("a", 4) + pending(16), at=at), policies,
                     second.memory)  # fmt: skip
        assert launched(third) == 0, reasons(third)
        assert "4 machine(s) of the last launch not listed yet" in reasons(third)
    # listed: the first launch's two, then all four (launched by the provider's clock)
    two = [machine(f"n{i}", age=timedelta(seconds=-1)) for i in range(2)]
    at = T0 + timedelta(seconds=10)
    snap = snapshot(nodes, sessions("a", 4) + pending(16), [machine("a"), *two], at=at)
    assert launched(plan(snap, policies, second.memory)) == 0
    assert reasons(plan(snap, policies, second.memory)).count("2 machine(s) of the last") == 1


def test_launch_memory_and_token() -> None:
    p = run(snapshot([node("a")], sessions("a", 4) + pending(1)), pool())
    (action,) = on(p, "launch_nodes")
    assert isinstance(action, LaunchNodes)
    assert action.token == f"{POOL}-{int(T0.timestamp())}-1"
    assert p.memory.pools[POOL].launched == 1
    assert p.memory.pools[POOL].launched_at == T0


def test_unknown_machines_mean_no_launch() -> None:
    snap = snapshot([node("a")], sessions("a", 4) + pending(5)).model_copy(
        update={"instances": None}
    )
    p = run(snap, pool())
    assert launched(p) == 0
    assert "machines unknown" in reasons(p)


def test_apps_filter_counts_only_the_pools_apps() -> None:
    snap = snapshot([node("a")], pending(8, spec="other") + pending(1, spec="euler"))
    assert launched(run(snap, pool(apps=["euler"]))) == 0
    assert launched(run(snap, pool())) == 2


def test_seats_from_node_resources() -> None:
    big = node("a").model_copy(update={"nano_cpus": 8_000_000_000, "memory_bytes": 16 << 30})
    p = run(snapshot([big]), pool(seat={"cpus": 1, "memory_mb": 4096}, headroom={"seats": 1}))
    assert p.pools[0].seats["free"] == 4  # min(8 cpus / 1, 16 GiB / 4 GiB)


def test_seats_are_what_the_nodes_other_tasks_leave() -> None:
    # node-exporter, cAdvisor, ... reserve their share: Swarm fits sessions in the rest
    busy = node("a").model_copy(
        update={
            "nano_cpus": 4_000_000_000,
            "memory_bytes": 16 << 30,
            "reserved_nano_cpus": 150_000_000,
            "reserved_memory_bytes": 256 << 20,
        }
    )
    p = run(snapshot([busy]), pool(seat={"cpus": 0.5}, headroom={"seats": 1}))
    assert p.pools[0].seats["free"] == 7  # 3.85 CPUs / 0.5, not 4 / 0.5
    p = run(snapshot([busy]), pool(seat={"memory_mb": 2048}, headroom={"seats": 1}))
    assert p.pools[0].seats["free"] == 7  # 15.75 GiB / 2 GiB


def test_seats_count_whole_units_as_swarm_does() -> None:
    left = node("a").model_copy(
        update={"nano_cpus": 4_000_000_000, "reserved_nano_cpus": 700_000_000}
    )
    p = run(snapshot([left]), pool(seat={"cpus": 1.1}, headroom={"seats": 1}))
    assert p.pools[0].seats["free"] == 3  # 3.3 / 1.1 in floating point is 2.999...


def test_status_for_metrics() -> None:
    nodes = [node("a"), node("b")]
    p = run(snapshot(nodes, sessions("a", 3) + sessions("b", 1, user=False) + pending(2)), pool())
    status = p.pools[0]
    assert status.seats == {"used": 4, "free": 4, "headroom": 0, "wanted": 6}
    assert status.live_sessions == 3
    assert status.pending_sessions == 2
    assert status.nodes["active"] == 2
    assert status.wanted_nodes == 2


def test_swarm_unreadable_decides_nothing() -> None:
    snap = snapshot([node("a")], pending(20)).model_copy(update={"swarm": None})
    p = run(snap, pool())
    assert kinds(p) == []
    assert p.decisions[0].outcome == "error"


def test_headroom_confidence_is_a_poisson_quantile() -> None:
    headroom = {"signal": "arrivals", "node_ready_time": "3m", "confidence": 0.95}
    snap = snapshot([node("a")], signals={"arrivals": 2.0})
    p = run(snap, pool(headroom=headroom), signals=ARRIVALS)
    # Poisson(6): P(N <= 9) = 0.916, P(N <= 10) = 0.957
    assert p.pools[0].seats["headroom"] == 10
    assert "node-ready time at 95% = 10" in reasons(p)


@pytest.mark.parametrize(
    ("mean", "p", "k"),
    [(0.0, 0.99, 0), (0.5, 0.5, 0), (6.0, 0.5, 6), (6.0, 0.95, 10), (1000.0, 0.99, 1074)],
)
def test_poisson_quantile(mean: float, p: float, k: int) -> None:
    from autoscaler.decide.pools.sizing import poisson_quantile

    assert poisson_quantile(mean, p) == k


SIX_SEATS = {"seats": 1, "signal": "arrivals", "node_ready_time": "3m"}  # 2/min -> 6


def test_paused_nodes_with_sessions_are_reserve() -> None:
    """Their free seats are a resume away: only what they cannot cover is launched."""
    nodes = [node("a"), node("p", state="paused", extra={"autoscaler.paused-at": "x"})]
    sess = sessions("a", 2) + sessions("p", 2, start=10)
    snap = snapshot(nodes, sess, signals={"arrivals": 2.0})
    p = run(snap, pool(headroom=SIX_SEATS), signals=ARRIVALS)
    # reserve: 2 free on a + 2 free on p = 4 of 6 wanted -> one node, p stays paused
    assert launched(p) == 1
    assert not on(p, "resume_node")
    assert "4 within a node-ready time, 6 wanted" in reasons(p)


def test_an_empty_paused_node_is_resumed_rather_than_a_launch() -> None:
    extra = {"autoscaler.paused-at": "2024-05-06T11:00:00Z"}
    nodes = [node("a"), node("p", state="paused", extra=extra)]
    snap = snapshot(nodes, sessions("a", 2), signals={"arrivals": 2.0})
    p = run(snap, pool(headroom=SIX_SEATS), signals=ARRIVALS)
    assert hosts(p, "resume_node") == ["p"]
    assert launched(p) == 0
    assert not on(p, "drain_node")  # resumed, so not drained as an empty paused node


def test_seats_wanted_at_once_resume_the_fullest_paused_node() -> None:
    extra = {"autoscaler.paused-at": "2024-05-06T11:00:00Z"}
    nodes = [
        node("a"),
        node("p1", state="paused", extra=extra),
        node("p3", state="paused", extra=extra),
    ]
    sess = sessions("a", 4) + sessions("p1", 1, start=10) + sessions("p3", 3, start=20)
    p = run(snapshot(nodes, sess), pool(headroom={"seats": 1}))
    assert hosts(p, "resume_node") == ["p3"]  # 1 free seat is enough; p1 keeps emptying
    assert launched(p) == 0


def test_a_machine_listed_then_retired_inside_the_settle_time_is_not_awaited_again() -> None:
    """Two launches a few seconds apart, both listed; the first machine is then retired (a
    quick scale-in) and drops off the provider's list: it arrived, it is not on its way."""
    policies = Policies(pools={POOL: pool(max=20)})
    nodes = [node("a")]
    first = plan(snapshot(nodes, sessions("a", 4) + pending(1)), policies, Memory())
    at = T0 + timedelta(seconds=5)
    second = plan(snapshot(nodes, sessions("a", 4) + pending(5), at=at), policies, first.memory)
    assert launched(first) == 1 and launched(second) == 1
    both = [machine(f"n{i}", age=timedelta(seconds=-6 * i)) for i in range(2)]
    at = T0 + timedelta(seconds=20)
    seen = plan(snapshot(nodes, sessions("a", 4), [machine("a"), *both], at=at), policies,
                second.memory)  # fmt: skip
    assert seen.memory.pools[POOL].listed == ("i-n0", "i-n1")
    # n0 retired and gone from the list; a burst wants one more machine now
    at = T0 + timedelta(seconds=40)
    snap = snapshot(nodes, sessions("a", 4) + pending(5), [machine("a"), both[1]], at=at)
    again = plan(snap, policies, seen.memory)
    assert launched(again) == 1, reasons(again)
    assert "not listed yet" not in reasons(again)
