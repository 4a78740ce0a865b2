"""A manager carrying the pool's labels (a pool machine promoted to manager, or a manager
labelled by hand) is never planned to be paused, drained, removed or terminated: the actuator
would refuse each such action at every pass, and a terminated machine would leave raft."""

from __future__ import annotations

from datetime import timedelta

from autoscaler.decide.pools import labels as L
from tests.pools_builders import (
    T0,
    hosts,
    kinds,
    machine,
    node,
    pool,
    reasons,
    run,
    sessions,
    snapshot,
)
from tests.test_pools_lifecycle import LONG_AGO

RETIRING = ("pause_node", "drain_node", "remove_node", "terminate_instance")


def test_an_empty_manager_is_not_paused_when_spare_and_a_worker_is_instead() -> None:
    nodes = [node("mgr", role="manager"), node("w1"), node("w2")]
    p = run(snapshot(nodes, sessions("w1", 1) + sessions("w2", 2)), pool(min=0), LONG_AGO)
    assert hosts(p, "pause_node") == ["w1"]


def test_a_paused_manager_is_never_drained() -> None:
    mgr = node("mgr", role="manager", state="paused", extra={L.PAUSED_AT: L.stamp(T0)})
    p = run(snapshot([mgr, node("w1")], sessions("w1", 3)), pool(min=0), LONG_AGO)
    assert "mgr" not in hosts(p, "drain_node")
    assert "mgr is a manager, pause: left alone" in reasons(p)


def test_a_draining_manager_is_neither_removed_nor_its_machine_terminated() -> None:
    since = {L.DRAINING_AT: L.stamp(T0 - timedelta(hours=1))}
    mgr = node("mgr", role="manager", state="draining", extra=since)
    p = run(snapshot([mgr, node("w1")], sessions("w1", 3)), pool(min=0), LONG_AGO)
    assert not [k for k in kinds(p) if k in ("remove_node", "terminate_instance")]


def test_an_unreachable_manager_without_a_state_label_is_not_a_join_that_timed_out() -> None:
    # after a leader election Swarm reports managers unknown too; this one never got its
    # autoscaler.state label (labelled by hand with the pool only)
    mgr = node("mgr", role="manager", ready="unknown")
    mgr = mgr.model_copy(update={"labels": {L.POOL: "web", L.INSTANCE: "i-mgr"}})
    p = run(snapshot([mgr, node("w1")], sessions("w1", 3)), pool(min=0), LONG_AGO)
    assert "terminate_instance" not in kinds(p)


def test_a_down_manager_whose_machine_is_gone_is_not_removed() -> None:
    mgr = node("mgr", role="manager", ready="down")
    machines = [machine("mgr", state="terminated"), machine("w1")]
    p = run(snapshot([mgr, node("w1")], sessions("w1", 3), machines), pool(min=0), LONG_AGO)
    assert "remove_node" not in kinds(p)


def test_a_ready_active_manager_of_the_pool_still_counts_as_capacity() -> None:
    # 4 free seats on the manager keep the headroom: nothing launched
    nodes = [node("mgr", role="manager"), node("w1")]
    p = run(snapshot(nodes, sessions("w1", 4)), pool(min=0, headroom={"seats": 2}))
    assert "launch_nodes" not in kinds(p)
    assert not [k for k in kinds(p) if k in RETIRING]
