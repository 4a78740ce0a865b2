"""The warm pool is topped up by decide, pass by pass (pure: literal snapshots)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from autoscaler.decide.plan_types import FillWarmPool, PoolMemory
from autoscaler.decide.pools.inventory import take_inventory
from autoscaler.rules.pools import PoolPolicy
from autoscaler.snapshot import Instance
from tests.pools_builders import POOL, T0, kinds, machine, node, on, pool, reasons, run, snapshot

EC2 = {"ami": "ami-1", "instance_types": ["m6i.xlarge"], "subnets": ["subnet-1"]}


def ec2_pool(warm: int, **overrides: Any) -> PoolPolicy:
    return pool(provider="ec2", ec2={**EC2, "warm_pool": warm}, **overrides)


def warm_machine(name: str, state: str) -> Instance:
    return machine(name, state=state, age=timedelta(minutes=1), warm=True)


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
    machines = [machine("a"), machine("w1", state="stopped"), warm_machine("w2", "stopped")]
    p = run(snapshot([node("a")], machines=machines), ec2_pool(2))
    assert fills(p) == [] and p.pools[0].nodes["warm"] == 2


def test_a_warm_machine_that_never_powers_off_is_terminated_and_replaced() -> None:
    stuck = machine("w1", state="running", age=timedelta(minutes=11), warm=True)
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
    started = machine("w1", state="running", age=timedelta(seconds=90), warm=True)
    newcomer = node("w1", pool_name=None)
    p = run(snapshot([node("a"), newcomer], machines=[machine("a"), started]), ec2_pool(1))
    (label,) = on(p, "label_node")
    assert getattr(label, "hostname", None) == "w1"
    assert p.pools[0].nodes["warm"] == 0 and [f.count for f in fills(p)] == [1]
