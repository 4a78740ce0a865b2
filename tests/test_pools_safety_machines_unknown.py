"""While a pool's machines cannot be listed (the provider is down, or not configured in this
sidecar), no node of it is drained or removed: a drained node is never resumed, so its seats
would be lost while no launch can replace them, and a node removed from the Swarm leaves a
machine that runs on, paid and unseen, until it passes for a join that timed out."""

from __future__ import annotations

from datetime import timedelta

from autoscaler.decide.pools import labels as L
from autoscaler.snapshot import Snapshot
from tests.pools_builders import POOL, T0, kinds, node, pool, reasons, run, sessions, snapshot

ENDING = {"allow_ending_sessions": True, "session_grace": "2h", "ending_notice": "5m"}


def ago(minutes: float) -> str:
    return L.stamp(T0 - timedelta(minutes=minutes))


def unlisted(snap: Snapshot) -> Snapshot:
    return snap.model_copy(update={"instances": None})


def unconfigured(snap: Snapshot) -> Snapshot:
    return snap.model_copy(update={"providers": ("ec2",)})  # the pool's provider is local


def test_an_empty_paused_node_is_kept_until_its_machine_is_known() -> None:
    nodes = [node("a"), node("p", state="paused", extra={L.PAUSED_AT: ago(5)})]
    snap = snapshot(nodes, sessions("a", 1))
    assert kinds(run(snap, pool())) == ["drain_node"]  # listed: drained as usual
    for blind in (unlisted(snap), unconfigured(snap)):
        p = run(blind, pool())
        assert "drain_node" not in kinds(p)
        assert "p paused and empty: kept (machines unknown: no drain)" in reasons(p)


def test_a_drained_node_stays_in_the_swarm_until_its_machine_can_go_with_it() -> None:
    nodes = [node("a"), node("d", state="draining", extra={L.DRAINING_AT: ago(5)})]
    snap = snapshot(nodes, sessions("a", 1))
    assert kinds(run(snap, pool())) == ["remove_node", "terminate_instance"]
    for blind in (unlisted(snap), unconfigured(snap)):
        p = run(blind, pool())
        assert "remove_node" not in kinds(p)
        assert "d drained: kept in the Swarm until the machines are listed" in reasons(p)


def test_sessions_are_not_ended_while_the_machines_are_unknown() -> None:
    marks = {L.PAUSED_AT: ago(130), L.NOTIFIED_AT: ago(10), L.DELIVERED_AT: ago(6)}
    nodes = [node("a"), node("p", state="paused", extra=marks)]
    snap = snapshot(nodes, sessions("a", 1) + sessions("p", 1, start=10))
    assert "drain_node" in kinds(run(snap, pool(scale_in=ENDING)))
    p = run(unlisted(snap), pool(scale_in=ENDING))
    assert kinds(p) == ["notify"]  # the alert stays firing; the drain waits
    assert "machines unknown: none ended until they are listed" in reasons(p)
    assert p.pools[0].pool == POOL
