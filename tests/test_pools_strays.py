"""Machines and nodes of a pool the rules lack: reported, never acted on (pure)."""

from __future__ import annotations

from autoscaler.decide.plan_types import StrayPool
from autoscaler.snapshot import Snapshot
from tests.pools_builders import (
    POOL,
    kinds,
    machine,
    node,
    pool,
    reasons,
    run,
    run_pools,
    sessions,
    snapshot,
)


def test_machines_and_nodes_of_a_deleted_pool_are_counted_by_state() -> None:
    nodes = [node("a"), node("o1", pool_name="old"), node("o2", pool_name="old", state="paused")]
    machines = [
        machine("a"),
        machine("o1", pool_name="old"),
        machine("o2", pool_name="old"),
        machine("o3", pool_name="old", state="stopped", warm=True),
        machine("o4", pool_name="old", state="shutting-down"),  # going away: not counted
    ]
    sess = sessions("a", 1) + sessions("o1", 2) + sessions("o2", 1, user=False)
    p = run(snapshot(nodes, sess, machines), pool())
    assert p.strays == (StrayPool(pool="old", running=2, stopped=1, nodes=2, sessions=3),)


def test_a_deleted_pool_is_never_acted_on() -> None:
    """Not even its empty, paused node: the pool may be back with the next edit."""
    nodes = [node("a"), node("o", pool_name="old", state="paused")]
    p = run(snapshot(nodes, sessions("a", 1)), pool())
    assert kinds(p) == []
    assert "pool old is not in the rules but 1 machine(s) (1 running, 0 stopped)" in reasons(p)
    assert "put the pool back with min: 0 and max: 0" in reasons(p)


def test_the_decision_of_a_deleted_pool_holds() -> None:
    p = run(snapshot([node("a"), node("o", pool_name="old")]), pool())
    stray = [d for d in p.decisions if d.policy == "old"]
    assert [(d.subject, d.outcome) for d in stray] == [("pool old", "hold")]


def test_a_disabled_pool_is_no_stray() -> None:
    nodes = [node("a"), node("g", pool_name="gpu")]
    p = run_pools(snapshot(nodes), {POOL: pool(), "gpu": pool(enabled=False)})
    assert p.strays == ()


def test_without_a_provider_the_nodes_are_still_reported() -> None:
    snap = snapshot([node("a"), node("o", pool_name="old")], sessions("o", 2))
    snap = Snapshot(taken_at=snap.taken_at, swarm=snap.swarm, instances=None)
    p = run(snap, pool())
    assert p.strays == (StrayPool(pool="old", nodes=1, sessions=2, machines_known=False),)
    assert "machines as last listed: the provider cannot be read now" in reasons(p)


def test_nodes_without_a_pool_label_are_no_stray() -> None:
    p = run(snapshot([node("a"), node("free", pool_name=None)]), pool())
    assert p.strays == ()


def test_a_stray_of_machines_outlives_a_pass_that_cannot_list_them() -> None:
    """Unread is not none: the stray is carried, marked unknown, so its alert goes on."""
    from autoscaler.decide import plan
    from autoscaler.decide.plan_types import Memory
    from autoscaler.rules.schema import Policies

    policies = Policies(pools={POOL: pool()})
    machines = [machine("a"), machine("o", pool_name="old"), machine("g", pool_name="gone")]
    first = plan(snapshot([node("a")], machines=machines), policies, Memory())
    assert [s.pool for s in first.strays] == ["gone", "old"]
    unread = snapshot([node("a")]).model_copy(update={"instances": None})
    second = plan(unread, policies, first.memory)
    assert second.strays == (
        StrayPool(pool="gone", running=1, machines_known=False),
        StrayPool(pool="old", running=1, machines_known=False),
    )
    assert "machines as last listed: the provider cannot be read now" in reasons(second)
    third = plan(unread, policies, second.memory)  # still carried while it lasts
    assert third.strays == second.strays
    listed = plan(snapshot([node("a")], machines=machines[:2]), policies, third.memory)
    assert listed.strays == (StrayPool(pool="old", running=1),)  # "gone" was terminated
    back = plan(unread, Policies(pools={POOL: pool(), "old": pool()}), listed.memory)
    assert back.strays == ()  # put back in the rules: no stray, remembered or not


def test_nodes_are_carried_while_the_swarm_cannot_be_read() -> None:
    from autoscaler.decide import plan
    from autoscaler.decide.plan_types import Memory
    from autoscaler.rules.schema import Policies

    policies = Policies(pools={POOL: pool()})
    nodes = [node("a"), node("o", pool_name="old")]
    first = plan(snapshot(nodes, sessions("o", 2), [machine("a")]), policies, Memory())
    unread = snapshot([], machines=[machine("a")]).model_copy(update={"swarm": None})
    second = plan(unread, policies, first.memory)
    assert second.strays == (StrayPool(pool="old", nodes=1, sessions=2, nodes_known=False),)


def test_without_any_provider_configured_only_nodes_are_reported_and_in_full() -> None:
    from autoscaler.decide.pools.strays import unread

    snap = snapshot([node("a"), node("o", pool_name="old")], sessions("o", 1))
    snap = snap.model_copy(update={"instances": None, "providers": ()})
    p = run(snap, pool())
    assert p.strays == (StrayPool(pool="old", nodes=1, sessions=1),)
    assert p.strays_unread is None and unread(snap) is None
    assert "cannot be read" not in reasons(p)
    # a provider configured but not answering: incomplete, and said so
    down = snap.model_copy(update={"providers": ("ec2",)})
    assert run(down, pool()).strays_unread == "the node provider's machines cannot be listed"
