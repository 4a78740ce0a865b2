"""The warm pool is topped up by decide, pass by pass (pure: literal snapshots)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from autoscaler.decide.plan_types import FillWarmPool, PoolMemory, RetireWarmMachine
from autoscaler.decide.pools import labels as L
from autoscaler.decide.pools.inventory import take_inventory
from autoscaler.decide.pools.launch_config import launch_config
from autoscaler.rules.pools import PoolPolicy
from autoscaler.snapshot import Instance
from tests.pools_builders import (
    POOL,
    T0,
    kinds,
    machine,
    node,
    on,
    pool,
    reasons,
    run,
    sessions,
    snapshot,
)

EC2 = {"ami": "ami-1", "instance_types": ["m6i.xlarge"], "subnets": ["subnet-1"]}


def ec2_pool(warm: int, **overrides: Any) -> PoolPolicy:
    return pool(provider="ec2", ec2={**EC2, "warm_pool": warm}, **overrides)


def ec2_machine(name: str, state: str, age: timedelta, warm: bool, **update: Any) -> Instance:
    """A machine as the pool launches it now (type, subnet and launch-config tag)."""
    inst = machine(name, state=state, age=age, warm=warm)
    tags = {L.TAG_LAUNCH_CONFIG: launch_config(ec2_pool(0))}
    shape = {"instance_type": "m6i.xlarge", "subnet": "subnet-1", "tags": tags, **update}
    return inst.model_copy(update=shape)


def warm_machine(name: str, state: str, **update: Any) -> Instance:
    return ec2_machine(name, state, timedelta(minutes=1), True, **update)


def fills(plan: Any) -> list[FillWarmPool]:
    return [a for a in on(plan, "fill_warm_pool") if isinstance(a, FillWarmPool)]


def test_an_empty_warm_pool_is_filled_at_once() -> None:
    p = run(snapshot([node("a")]), ec2_pool(2))
    (fill,) = fills(p)
    assert (fill.pool, fill.provider, fill.count) == (POOL, "ec2", 2)
    assert fill.reason == "warm pool 0 of 2"
    assert fill.token == f"{POOL}-warm-{int(T0.timestamp())}-2"
    assert p.memory.pools[POOL].warm_filled_at == T0


def test_machines_pulling_images_and_stopped_ones_both_count() -> None:
    machines = [machine("a"), warm_machine("w1", "pending"), warm_machine("w2", "stopped")]
    p = run(snapshot([node("a")], machines=machines), ec2_pool(2))
    assert fills(p) == []
    assert p.pools[0].nodes["warm"] == 2


def test_a_warm_machine_is_neither_capacity_nor_a_launch_on_its_way() -> None:
    machines = [machine("a"), warm_machine("w1", "running"), warm_machine("w2", "stopping")]
    snap = snapshot([node("a")], machines=machines)
    inv = take_inventory(POOL, ec2_pool(2), snap)
    assert inv.counts()["launching"] == 0
    assert [m.name for m in inv.members] == ["a"]
    assert inv.warm == 2


def test_a_started_warm_machine_is_replaced() -> None:
    # a launch started w1: its tag no longer says warm, so it is a machine on its way
    started = machine("w1", state="pending", age=timedelta(seconds=5))
    machines = [machine("a"), started, warm_machine("w2", "stopped")]
    p = run(snapshot([node("a")], machines=machines), ec2_pool(2))
    (fill,) = fills(p)
    assert fill.count == 1
    assert p.pools[0].nodes["launching"] == 1


def test_a_fill_is_not_repeated_while_its_machines_may_be_unlisted() -> None:
    policy = ec2_pool(2)
    snap = snapshot([node("a")])
    just = PoolMemory(warm_filled_at=T0 - timedelta(seconds=30))
    p = run(snap, policy, just)
    assert fills(p) == []
    assert "warm pool 0 of 2: filled at 11:59:30Z" in reasons(p)
    assert p.memory.pools[POOL].warm_filled_at == just.warm_filled_at
    later = PoolMemory(warm_filled_at=T0 - timedelta(minutes=3))
    p = run(snap, policy, later)
    assert [f.count for f in fills(p)] == [2]
    assert p.memory.pools[POOL].warm_filled_at == T0


def test_no_fill_without_a_warm_pool_or_without_the_machines() -> None:
    assert "fill_warm_pool" not in kinds(run(snapshot([node("a")]), ec2_pool(0)))
    unknown = snapshot([node("a")]).model_copy(update={"instances": None})
    assert "fill_warm_pool" not in kinds(run(unknown, ec2_pool(2)))
    # a local pool keeps no warm pool, whatever its ec2 section says
    local = pool(ec2={**EC2, "warm_pool": 2})
    assert "fill_warm_pool" not in kinds(run(snapshot([node("a")]), local))


def test_a_lost_warm_machine_is_replaced_and_terminating_ones_do_not_count() -> None:
    machines = [machine("a"), warm_machine("w1", "stopped"), warm_machine("w2", "shutting-down")]
    p = run(snapshot([node("a")], machines=machines), ec2_pool(2))
    assert [f.count for f in fills(p)] == [1]
    assert "terminate_instance" not in kinds(p)  # going away already: not a retiring node
    assert p.pools[0].nodes["removed"] == 0


def test_a_stopped_machine_whose_start_failed_still_counts() -> None:
    # a launch tagged it warm=false, then EC2 refused to start it: a launch starts it again
    fell_back = ec2_machine("w1", "stopped", timedelta(minutes=1), warm=False)
    machines = [machine("a"), fell_back, warm_machine("w2", "stopped")]
    p = run(snapshot([node("a")], machines=machines), ec2_pool(2))
    assert fills(p) == [] and p.pools[0].nodes["warm"] == 2


def test_a_warm_machine_that_never_powers_off_is_terminated_and_replaced() -> None:
    stuck = ec2_machine("w1", "running", timedelta(minutes=11), warm=True)
    machines = [machine("a"), stuck, warm_machine("w2", "stopped")]
    p = run(snapshot([node("a")], machines=machines), ec2_pool(2))
    (term,) = on(p, "terminate_instance")
    assert getattr(term, "instance_id", None) == "i-w1"
    (alert,) = on(p, "notify")
    assert "warm-pool machine i-w1 not powered off within join_timeout 10m" in alert.summary
    assert [f.count for f in fills(p)] == [1]
    assert p.pools[0].nodes["warm"] == 1


def test_a_node_from_a_started_warm_machine_joins_even_before_its_tag_is_listed() -> None:
    # the launch retagged it warm=false and started it; the listing still says warm
    started = ec2_machine("w1", "running", timedelta(seconds=90), warm=True)
    newcomer = node("w1", pool_name=None)
    p = run(snapshot([node("a"), newcomer], machines=[machine("a"), started]), ec2_pool(1))
    (label,) = on(p, "label_node")
    assert getattr(label, "hostname", None) == "w1"
    assert p.pools[0].nodes["warm"] == 0 and [f.count for f in fills(p)] == [1]


def retired(plan: Any) -> list[RetireWarmMachine]:
    return [a for a in on(plan, "retire_warm_machine") if isinstance(a, RetireWarmMachine)]


def test_a_lowered_warm_pool_terminates_its_extra_stopped_machines() -> None:
    # w1's start fell back to stopped (no longer tagged warm): it may fail again, so it goes
    # first; then the oldest; w4 still pulls images and is left to power off
    fell_back = ec2_machine("w1", "stopped", timedelta(minutes=5), warm=False)
    old = warm_machine("w2", "stopped", launched_at=T0 - timedelta(days=2))
    new = warm_machine("w3", "stopped")
    pulling = warm_machine("w4", "running")
    machines = [machine("a"), fell_back, new, old, pulling]
    p = run(snapshot([node("a")], machines=machines), ec2_pool(2))
    assert [(r.instance_id, r.provider) for r in retired(p)] == [("i-w1", "ec2"), ("i-w2", "ec2")]
    assert retired(p)[0].reason == "warm pool 4 of 2: i-w1 not needed"
    assert fills(p) == []
    # only stopped ones go: with one wanted, all three, and w4 stays
    p = run(snapshot([node("a")], machines=machines), ec2_pool(1))
    assert [r.instance_id for r in retired(p)] == ["i-w1", "i-w2", "i-w3"]
    # set to 0: w4 goes too, once it has powered off
    p = run(snapshot([node("a")], machines=[machine("a"), pulling]), ec2_pool(0))
    assert retired(p) == []
    stopped = pulling.model_copy(update={"state": "stopped"})
    p = run(snapshot([node("a")], machines=[machine("a"), stopped]), ec2_pool(0))
    assert [r.instance_id for r in retired(p)] == ["i-w4"] and fills(p) == []


def test_a_stale_warm_machine_is_terminated_and_replaced() -> None:
    current = warm_machine("w1", "stopped")
    stale = {
        "w2": {"tags": {L.TAG_LAUNCH_CONFIG: "0123456789abcdef"}},
        "w3": {"tags": {}},  # launched before machines carried the tag
        "w4": {"instance_type": "m5.large"},
        "w5": {"subnet": "subnet-9"},
    }
    machines = [machine("a"), current] + [warm_machine(n, "stopped", **u) for n, u in stale.items()]
    p = run(snapshot([node("a")], machines=machines), ec2_pool(2))
    assert [r.instance_id for r in retired(p)] == ["i-w2", "i-w3", "i-w4", "i-w5"]
    why = {r.instance_id: r.reason for r in retired(p)}
    assert why["i-w4"] == "warm-pool machine i-w4 is stale: instance type m5.large no longer listed"
    assert why["i-w5"] == "warm-pool machine i-w5 is stale: subnet subnet-9 no longer listed"
    assert "another image" in why["i-w2"] and "another image" in why["i-w3"]
    (fill,) = fills(p)
    assert (fill.count, fill.reason) == (1, "warm pool 1 of 2")


def test_a_stale_machine_still_pulling_images_is_left_to_power_off_but_not_counted() -> None:
    pulling = warm_machine("w1", "running", tags={})
    p = run(snapshot([node("a")], machines=[machine("a"), pulling]), ec2_pool(1))
    assert retired(p) == []
    assert [f.count for f in fills(p)] == [1]


def test_an_edit_of_what_a_machine_is_makes_the_warm_pool_stale() -> None:
    base = launch_config(ec2_pool(0))
    same = [ec2_pool(3), ec2_pool(0, max=9), pool(provider="ec2", ec2={**EC2, "spot": True})]
    assert {launch_config(p) for p in same} == {base}
    edits = [
        {"ami": "ami-2"},
        {"root_volume_gb": 60},
        {"instance_profile": "other"},
        {"security_groups": ["sg-2"]},
        {"join_parameter": "/other"},
    ]
    digests = {launch_config(pool(provider="ec2", ec2={**EC2, **e})) for e in edits}
    digests.add(launch_config(ec2_pool(0, images=["r-app:2"])))
    assert len(digests) == len(edits) + 1 and base not in digests


def test_a_new_boot_script_makes_the_warm_pool_stale(monkeypatch: Any) -> None:
    import autoscaler.decide.pools.launch_config as lc

    before = launch_config(ec2_pool(0))
    monkeypatch.setattr(lc, "script_body", lambda: "#!/bin/bash\necho another script\n")
    lc._script_digest.cache_clear()
    try:
        assert launch_config(ec2_pool(0)) != before
    finally:
        monkeypatch.undo()
        lc._script_digest.cache_clear()
    assert launch_config(ec2_pool(0)) == before


def test_extra_warm_machines_are_left_to_a_launch_but_stale_ones_never() -> None:
    # sessions wait and nothing is free: the pass launches, and a launch starts warm
    # machines first, so the extra current one is kept for it; the stale one is not used
    machines = [
        machine("a"),
        warm_machine("w1", "stopped"),
        warm_machine("w2", "stopped"),
        warm_machine("w3", "stopped", tags={}),
    ]
    waiting = sessions("a", 8) + sessions(None, 12, state="pending")
    busy = snapshot([node("a")], waiting, machines)
    p = run(busy, ec2_pool(1))
    assert "launch_nodes" in kinds(p)
    assert [r.instance_id for r in retired(p)] == ["i-w3"]


def test_no_warm_machine_is_retired_while_the_machines_are_unknown_or_elsewhere() -> None:
    machines = [machine("a"), warm_machine("w1", "stopped"), warm_machine("w2", "stopped")]
    unknown = snapshot([node("a")], machines=machines).model_copy(update={"instances": None})
    assert retired(run(unknown, ec2_pool(0))) == []
    local = pool(ec2={**EC2, "warm_pool": 0})
    assert retired(run(snapshot([node("a")], machines=machines), local)) == []


def test_no_warm_machine_goes_as_one_too_many_while_a_launch_is_on_its_way() -> None:
    # the last pass launched and started w1; EC2's list still says stopped (its tags too),
    # so the pool looks one too many: a retirement would end the machine the launch needs
    taken = warm_machine("w1", "stopped", launched_at=T0 - timedelta(days=3))
    machines = [machine("a"), taken, warm_machine("w2", "stopped"), warm_machine("w3", "stopped")]
    snap = snapshot([node("a")], machines=machines)
    launched = PoolMemory(launched_at=T0 - timedelta(seconds=20), launched=1)
    assert retired(run(snap, ec2_pool(2), launched)) == []
    settled = PoolMemory(launched_at=T0 - timedelta(minutes=3), launched=1)
    assert [r.instance_id for r in retired(run(snap, ec2_pool(2), settled))] == ["i-w1"]


def test_a_machine_a_launch_took_lately_is_never_retired() -> None:
    # its retag (warm=false, launched-at now) is listed before its start: whether it is one
    # too many or stale, it is on its way to become a node (also after a sidecar restart)
    taken = ec2_machine("w1", "stopped", timedelta(seconds=30), warm=False)
    machines = [machine("a"), taken, warm_machine("w2", "stopped"), warm_machine("w3", "stopped")]
    assert retired(run(snapshot([node("a")], machines=machines), ec2_pool(2))) == []
    stale = taken.model_copy(update={"tags": {}})
    assert retired(run(snapshot([node("a")], machines=[machine("a"), stale]), ec2_pool(0))) == []
    # once the launch has settled it is one whose start fell back to stopped: it goes first
    fell_back = ec2_machine("w1", "stopped", timedelta(minutes=3), warm=False)
    machines[1] = fell_back
    p = run(snapshot([node("a")], machines=machines), ec2_pool(2))
    assert [r.instance_id for r in retired(p)] == ["i-w1"]


def test_a_machine_listed_stopped_that_a_node_runs_on_is_never_retired() -> None:
    # minutes after a launch started it, w1 has joined and holds sessions, and EC2's list
    # still says stopped (its tags too): its node, unlabelled yet or labelled without the
    # machine's id, has its host name
    lagging = warm_machine("w1", "stopped", launched_at=T0 - timedelta(days=3))
    busy = sessions("w1", 2)
    for joined in (node("w1", pool_name=None), node("w1", extra={L.INSTANCE: ""})):
        snap = snapshot([node("a"), joined], busy, [machine("a"), lagging])
        for policy in (ec2_pool(0), ec2_pool(1, images=["r-app:2"])):  # one too many; stale
            p = run(snap, policy)
            assert retired(p) == [], policy
            assert p.pools[0].nodes["warm"] == 0
    # a node elsewhere does not keep a warm machine
    other = node("b", pool_name=None)
    p = run(snapshot([node("a"), other], machines=[machine("a"), lagging]), ec2_pool(0))
    assert [r.instance_id for r in retired(p)] == ["i-w1"]


def test_the_order_of_images_or_security_groups_renews_nothing() -> None:
    two = {"security_groups": ["sg-1", "sg-2"]}
    before = launch_config(pool(provider="ec2", images=["a:1", "b:1"], ec2={**EC2, **two}))
    turned = {"security_groups": ["sg-2", "sg-1"]}
    after = launch_config(pool(provider="ec2", images=["b:1", "a:1"], ec2={**EC2, **turned}))
    assert before == after
