"""Retiring a pool with ``max: 0``: every node is paused and leaves once its sessions end,
nothing is launched, no session is ended (pure)."""

from __future__ import annotations

from datetime import timedelta

from autoscaler.decide.plan_types import Plan, PoolMemory
from autoscaler.decide.pools import labels as L
from autoscaler.snapshot import Node
from tests.pools_builders import (
    T0,
    hosts,
    kinds,
    node,
    on,
    pending,
    pool,
    reasons,
    run,
    run_pools,
    sessions,
    snapshot,
)

RETIRED = pool(min=0, max=0, headroom={"seats": 2}, scale_in={"unneeded_for": "15s"})
SPARE = PoolMemory(unneeded_since=T0 - timedelta(minutes=1))


def paused(name: str) -> Node:
    return node(name, state="paused", extra={L.PAUSED_AT: L.stamp(T0 - timedelta(hours=1))})


def test_a_retired_pool_pauses_even_the_last_node_holding_sessions() -> None:
    """With headroom.seats 2 the last active node would otherwise stay active for ever."""
    p = run(snapshot([node("a")], sessions("a", 3)), RETIRED, memory=SPARE)
    assert hosts(p, "pause_node") == ["a"]
    assert "max 0: the pool is retired" in reasons(p)


def test_a_retired_pool_pauses_the_emptiest_node_first_one_per_step() -> None:
    nodes = [node("full"), node("half"), node("empty")]
    sess = sessions("full", 4) + sessions("half", 2)
    p = run(snapshot(nodes, sess), RETIRED, memory=SPARE)
    assert hosts(p, "pause_node") == ["empty"]


def test_a_retired_pool_waits_unneeded_for_like_any_scale_in() -> None:
    p = run(snapshot([node("a")], sessions("a", 1)), RETIRED)
    assert kinds(p) == []
    assert "pausing waits until" in reasons(p)


def test_a_retired_pool_never_ends_a_session() -> None:
    p = run(snapshot([paused("p")], sessions("p", 2)), RETIRED)
    assert kinds(p) == []
    assert "waiting for 2 session(s) to end" in reasons(p)


def test_a_paused_node_of_a_retired_pool_leaves_once_empty() -> None:
    p = run(snapshot([paused("p")]), RETIRED)
    assert hosts(p, "drain_node") == ["p"]


def test_a_retired_pool_resumes_nothing_and_launches_nothing_for_waiting_sessions() -> None:
    nodes = [paused("p")]
    p = run(snapshot(nodes, sessions("p", 1) + pending(5)), RETIRED)
    assert not on(p, "resume_node") and not on(p, "launch_nodes")
    assert "5 session(s) of its apps waiting: not launched for here" in reasons(p)


def test_a_retired_pool_reports_no_shortage() -> None:
    """AutoscalerPoolAtMax must not fire for a pool retired on purpose."""
    p: Plan = run(snapshot([node("a")], sessions("a", 4) + pending(3)), RETIRED)
    status = p.pools[0]
    assert status.short_nodes == 0
    assert status.wanted_nodes == 0
    assert status.seats["headroom"] == 0


def test_the_apps_of_a_retired_pool_are_launched_for_by_the_catch_all_pool() -> None:
    """Its waiting sessions are the rest's: the pool without apps launches for them."""
    pools = {"rest": pool(), "old": pool(min=0, max=0, apps=["euler"])}
    nodes = [node("r", pool_name="rest")]
    p = run_pools(snapshot(nodes, sessions("r", 4) + pending(6, spec="euler")), pools)
    launches = on(p, "launch_nodes")
    assert [getattr(a, "pool", "") for a in launches] == ["rest"]


def test_a_retired_pool_keeps_no_warm_machine() -> None:
    from tests.test_pools_warm import ec2_pool, fills, retired, warm_machine

    machines = [warm_machine("w1", "stopped"), warm_machine("w2", "stopped")]
    policy = ec2_pool(2, min=0, max=0)
    p = run(snapshot([], machines=machines), policy)
    assert sorted(r.instance_id for r in retired(p)) == ["i-w1", "i-w2"]
    assert fills(p) == []
