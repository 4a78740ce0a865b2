"""Several pools at once, each serving some apps. ShinyProxy on Swarm gives its session
services no placement constraints, so Swarm may place a session of any app on any pool's
node: a waiting session is launched for once, by the pool that names its app, while a
node's sessions count for the node's pool whatever their app."""

from __future__ import annotations

from datetime import timedelta

from autoscaler.decide.plan_types import LaunchNodes, Plan
from autoscaler.decide.pools import labels as L
from autoscaler.snapshot import Session
from tests.pools_builders import T0, node, on, pending, pool, reasons, run_pools, sessions
from tests.pools_builders import snapshot as snap


def launches(p: Plan) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in on(p, "launch_nodes"):
        assert isinstance(a, LaunchNodes)
        out[a.pool] = out.get(a.pool, 0) + a.count
    return out


def status(p: Plan, name: str) -> dict[str, int]:
    (s,) = [s for s in p.pools if s.pool == name]
    return {"pending": s.pending_sessions, "used": s.seats["used"], "live": s.live_sessions}


FULL = [node("w1"), node("g1", pool_name="gpu")]
"""One node in each pool, each filled below with four sessions (four seats a node)."""


def busy(extra: list[Session]) -> list[Session]:
    return sessions("w1", 4) + sessions("g1", 4, spec="model") + extra


def test_waiting_sessions_of_a_listed_app_are_launched_for_by_its_pool_only() -> None:
    pools = {"web": pool(), "gpu": pool(apps=["model"])}
    p = run_pools(snap(FULL, busy(pending(4, spec="model"))), pools)
    assert launches(p) == {"gpu": 1}
    assert status(p, "gpu")["pending"] == 4
    assert status(p, "web")["pending"] == 0


def test_a_pool_without_apps_counts_the_apps_no_other_pool_lists() -> None:
    pools = {"web": pool(), "gpu": pool(apps=["model"])}
    p = run_pools(snap(FULL, busy(pending(4, spec="euler"))), pools)
    assert launches(p) == {"web": 1}
    assert status(p, "web")["pending"] == 4
    assert status(p, "gpu")["pending"] == 0


def test_the_apps_of_a_disabled_pool_fall_to_the_pool_without_apps() -> None:
    pools = {"web": pool(), "gpu": pool(apps=["model"], enabled=False)}
    p = run_pools(snap(FULL, busy(pending(4, spec="model"))), pools)
    assert launches(p) == {"web": 1}


def test_pools_that_list_their_apps_each_count_only_their_own() -> None:
    pools = {"web": pool(apps=["euler", "dash"]), "gpu": pool(apps=["model"])}
    waiting = pending(4, spec="model") + pending(2, spec="dash") + pending(3, spec="unlisted")
    p = run_pools(snap(FULL, busy(waiting)), pools)
    assert status(p, "gpu")["pending"] == 4
    assert status(p, "web")["pending"] == 2


def test_sessions_count_for_the_pool_of_their_node_whatever_the_app() -> None:
    # Swarm placed three sessions of the gpu pool's app on a web node
    nodes = [node("w1"), node("w2"), node("g1", pool_name="gpu")]
    here = sessions("w1", 1) + sessions("w2", 3, spec="model") + sessions("g1", 1, spec="model")
    p = run_pools(snap(nodes, here), {"web": pool(), "gpu": pool(apps=["model"])})
    assert status(p, "web")["used"] == 4
    assert status(p, "web")["live"] == 4
    assert status(p, "gpu")["used"] == 1


def test_a_paused_node_holding_another_pools_app_is_not_drained() -> None:
    paused_at = {L.PAUSED_AT: L.stamp(T0 - timedelta(hours=9))}
    nodes = [node("w1"), node("w2", state="paused", extra=paused_at), node("g1", pool_name="gpu")]
    here = sessions("w2", 1, spec="model")
    pools = {"web": pool(apps=["euler"]), "gpu": pool(apps=["model"])}
    p = run_pools(snap(nodes, here), pools)
    assert on(p, "drain_node") == []
    assert "w2 paused since" in reasons(p)
    assert "waiting for 1 session(s) to end" in reasons(p)


def test_a_drained_node_holding_another_pools_app_is_not_removed() -> None:
    drained = {L.DRAINING_AT: L.stamp(T0 - timedelta(hours=1))}
    nodes = [node("w1"), node("w2", state="draining", extra=drained), node("g1", pool_name="gpu")]
    here = sessions("w2", 1, spec="model")
    pools = {"web": pool(apps=["euler"]), "gpu": pool(apps=["model"])}
    p = run_pools(snap(nodes, here), pools)
    assert on(p, "remove_node") == []
    assert on(p, "terminate_instance") == []
    assert "w2 drained but still holds 1 user session(s)" in reasons(p)
