"""A pool whose provider this sidecar has not configured: it says so, raises an alert, and
acts on no machine (no launch, and no removal of a down node as if its machine were gone)."""

from __future__ import annotations

from autoscaler.alerts.builtin import BUILTINS, PassFacts, pool_conditions
from autoscaler.sources.collect import Backends, collect
from tests.pools_builders import kinds, node, pending, pool, reasons, run, sessions, snapshot
from tests.test_collect import STATE, FakeSwarm


def test_a_pool_of_an_unconfigured_provider_launches_nothing_and_says_why() -> None:
    busy = [node("w1")]
    snap = snapshot(busy, [*sessions("w1", 4), *pending(6)]).model_copy(
        update={"providers": ("ec2",)}
    )
    p = run(snap, pool())  # provider: local
    assert "launch_nodes" not in kinds(p)
    assert "provider 'local' is not configured in this sidecar" in reasons(p)
    assert "AUTOSCALER_LAB_ROOT" in reasons(p)
    assert [s.provider_missing for s in p.pools] == ["local"]
    assert pool_conditions(p)["pool_provider_missing"][0].labels == {
        "pool": "web",
        "provider": "local",
    }
    (alert,) = [b for b in BUILTINS if b.name == "AutoscalerPoolProviderMissing"]
    fired = alert.condition(PassFacts(now=snap.taken_at, conditions=pool_conditions(p)))
    assert [f.labels["provider"] for f in fired] == ["local"]

    configured = run(snap.model_copy(update={"providers": ("ec2", "local")}), pool())
    assert "launch_nodes" in kinds(configured)  # the same pool, its provider configured
    assert [s.provider_missing for s in configured.pools] == [None]
    assert pool_conditions(configured)["pool_provider_missing"] == []


def test_unknown_providers_change_nothing() -> None:
    """Replayed snapshots and the simulator do not say which providers exist."""
    snap = snapshot([node("w1")], [*sessions("w1", 4), *pending(6)])
    assert snap.providers is None
    assert "launch_nodes" in kinds(run(snap, pool()))


def test_a_down_node_is_not_removed_as_if_its_machine_were_gone() -> None:
    down = node("w1", ready="down")
    snap = snapshot([node("w0"), down], machines=[]).model_copy(update={"providers": ("ec2",)})
    p = run(snap, pool(min=1))
    assert "remove_node" not in kinds(p) and "terminate_instance" not in kinds(p)
    # with its provider configured, a down node whose machine is gone is removed
    gone = run(snap.model_copy(update={"providers": ("local",)}), pool(min=1))
    assert "remove_node" in kinds(gone)


def test_collect_records_the_configured_providers() -> None:
    snap = collect(Backends(swarm=FakeSwarm(STATE), providers=("ec2",)), {})
    assert snap.providers == ("ec2",)
    assert collect(Backends(swarm=FakeSwarm(STATE)), {}).providers is None
