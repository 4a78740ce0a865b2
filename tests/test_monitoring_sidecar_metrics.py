"""The sidecar's gauges follow the rules in force: nothing stays behind at its last value.

Alert rules read these gauges directly (alerting/rules/autoscaler.yml, capacity.yml): a
desired-replicas series left over from a policy that is now disabled, paused or deleted
keeps `AutoscalerReplicasNotConverging` firing for ever, a deleted signal that was missing
keeps `AutoscalerSignalMissing` firing, and a deleted pool keeps its nodes "launching". The
passes run through the real reconciler, rules store and planner; only the Swarm, Prometheus
and the actuator are the fakes of tests/test_loop.py.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from autoscaler.ledger import Ledger
from autoscaler.loop import Reconciler
from autoscaler.metrics import SidecarMetrics
from autoscaler.rules.reload import RulesStore
from autoscaler.sources.collect import Backends
from tests.pools_builders import node, pending, pool, run, sessions, snapshot
from tests.test_loop import RULES, Clock, FakeProm, FakeSwarm, RecordingActuator

SERVICE = {"policy": "api", "service": "api"}
DESIRED = "autoscaler_service_desired_replicas"
CURRENT = "autoscaler_service_current_replicas"


def _reconciler(tmp_path: Path) -> tuple[Reconciler, Path, FakeProm]:
    """A pass wants 4 replicas of api, which stays at 2 (every scale action fails)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yml").write_text(RULES)
    clock = Clock()
    swarm, prom = FakeSwarm(), FakeProm(clock)
    rec = Reconciler(
        rules=RulesStore(rules),
        backends=Backends(swarm=swarm, prometheus=prom),
        actuator=RecordingActuator(swarm, fail=True),
        metrics=SidecarMetrics(),
        ledger=Ledger(tmp_path / "ledger.jsonl"),
        clock=clock,
    )
    prom.value = 40.0
    assert rec.run_pass().ok
    return rec, rules / "a.yml", prom


def _value(rec: Reconciler, name: str, labels: dict[str, str]) -> float | None:
    return rec.metrics.registry.get_sample_value(name, labels)


def test_a_service_that_does_not_converge_shows_desired_and_current(tmp_path: Path) -> None:
    rec, _, _ = _reconciler(tmp_path)
    assert _value(rec, DESIRED, SERVICE) == 4
    assert _value(rec, CURRENT, SERVICE) == 2


def test_a_disabled_policy_wants_no_replicas(tmp_path: Path) -> None:
    rec, rules, _ = _reconciler(tmp_path)
    rules.write_text(RULES.replace("    min: 1\n", "    enabled: false\n    min: 1\n"))
    r = rec.run_pass()
    assert r.plan is not None and r.plan.decisions[0].outcome == "disabled"
    # The old code kept desired 4 against current 2: AutoscalerReplicasNotConverging fired
    # for as long as the policy stayed disabled.
    assert _value(rec, DESIRED, SERVICE) is None
    assert _value(rec, CURRENT, SERVICE) is None


def test_a_paused_service_keeps_its_current_replicas_but_wants_none(tmp_path: Path) -> None:
    rec, _, _ = _reconciler(tmp_path)
    swarm = rec.backends.swarm
    assert isinstance(swarm, FakeSwarm)
    original = swarm.read

    def paused() -> object:
        state = original()
        svc = state.services[0].model_copy(update={"labels": {"autoscaler.pause": "true"}})
        return state.model_copy(update={"services": (svc,)})

    swarm.read = paused  # type: ignore[method-assign,assignment]
    r = rec.run_pass()
    assert r.plan is not None and r.plan.decisions[0].outcome == "paused"
    assert _value(rec, CURRENT, SERVICE) == 2
    assert _value(rec, DESIRED, SERVICE) is None


def test_a_deleted_policy_and_signal_leave_no_series(tmp_path: Path) -> None:
    rec, rules, prom = _reconciler(tmp_path)
    prom.value = None  # Prometheus down: the signal is missing, its source down
    rec.run_pass()
    assert _value(rec, "autoscaler_signal_missing", {"signal": "rps"}) == 1
    assert _value(rec, "autoscaler_source_up", {"source": "prometheus"}) == 0
    rules.write_text("signals: {}\nservices: {}\n")
    r = rec.run_pass()
    assert r.ok and rec.rules.generation == 2
    text = generate_latest(rec.metrics.registry).decode()
    for gone in (
        'policy="api"',
        'signal="rps"',
        'autoscaler_source_up{source="prometheus"}',
    ):
        line = next((ln for ln in text.splitlines() if gone in ln and ln[0] != "#"), None)
        # Decision counters keep their history; gauges must not.
        assert line is None or line.startswith("autoscaler_decisions_total"), line


def test_the_value_of_a_signal_that_went_missing_is_not_shown_as_current(
    tmp_path: Path,
) -> None:
    rec, _, prom = _reconciler(tmp_path)
    assert _value(rec, "autoscaler_signal_value", {"signal": "rps"}) == 40
    prom.value = None
    rec.run_pass()
    assert _value(rec, "autoscaler_signal_missing", {"signal": "rps"}) == 1
    assert _value(rec, "autoscaler_signal_value", {"signal": "rps"}) is None
    prom.value = 30.0
    rec.run_pass()
    assert _value(rec, "autoscaler_signal_value", {"signal": "rps"}) == 30
    assert _value(rec, "autoscaler_signal_missing", {"signal": "rps"}) == 0


def test_a_deleted_pool_leaves_no_series() -> None:
    registry = CollectorRegistry()
    metrics = SidecarMetrics(registry)
    plan = run(snapshot([node("a")], sessions("a", 2) + pending(1)), pool())
    metrics.observe_plan(plan, {})
    assert registry.get_sample_value("autoscaler_pending_sessions", {"pool": "web"}) == 1
    assert registry.get_sample_value("autoscaler_pool_nodes", {"pool": "web", "state": "active"})
    metrics.observe_plan(plan.model_copy(update={"pools": ()}), {})
    text = generate_latest(registry).decode()
    assert [ln for ln in text.splitlines() if 'pool="web"' in ln] == []


def test_session_tasks_are_counted_swarm_wide_and_absent_when_the_swarm_is_unread() -> None:
    """SessionTasksPending (alerting/rules/capacity.yml) reads this: it must exist without
    node pools, count users' sessions only, and vanish rather than read 0 when unknown."""
    registry = CollectorRegistry()
    metrics = SidecarMetrics(registry)
    tasks = sessions("a", 3) + sessions("a", 2, user=False, start=10) + pending(2)
    metrics.observe_snapshot(snapshot([node("a")], tasks))
    get = registry.get_sample_value
    assert get("autoscaler_session_tasks", {"state": "live"}) == 3
    assert get("autoscaler_session_tasks", {"state": "pending"}) == 2
    metrics.observe_snapshot(snapshot([node("a")]).model_copy(update={"swarm": None}))
    assert get("autoscaler_session_tasks", {"state": "pending"}) is None


def test_join_wait_is_the_age_of_the_oldest_machine_on_its_way() -> None:
    """PoolNodesNotJoining reads it: a machine launched 5 minutes ago with no node yet and
    one 2 minutes ago make 300 s; with none on its way it is 0."""
    from datetime import timedelta

    from tests.pools_builders import machine

    registry = CollectorRegistry()
    metrics = SidecarMetrics(registry)
    on_the_way = [machine("b", age=timedelta(minutes=5)), machine("c", age=timedelta(minutes=2))]
    plan = run(snapshot([node("a")], machines=[machine("a"), *on_the_way]), pool())
    metrics.observe_plan(plan, {})
    assert registry.get_sample_value("autoscaler_pool_join_wait_seconds", {"pool": "web"}) == 300
    metrics.observe_plan(run(snapshot([node("a")]), pool()), {})
    assert registry.get_sample_value("autoscaler_pool_join_wait_seconds", {"pool": "web"}) == 0


def test_version_start_time_and_skipped_actions_are_exported() -> None:
    import time

    from autoscaler import __version__
    from autoscaler.actuate.base import ActionResult
    from autoscaler.decide.plan_types import RemoveNode, TerminateInstance

    before = time.time()
    m = SidecarMetrics()
    get = m.registry.get_sample_value
    assert get("autoscaler_build_info", {"version": __version__}) == 1
    assert before - 1 <= (get("autoscaler_start_time_seconds") or 0) <= time.time()
    assert get("autoscaler_last_success_timestamp_seconds") == 0  # no pass yet

    gone = RemoveNode(node_id="n1", hostname="w1", pool="workers", reason="drained")
    term = TerminateInstance(instance_id="i-1", pool="workers", provider="ec2", reason="r")
    m.observe_results(
        [
            ActionResult(action=gone, ok=False, message="refused"),
            ActionResult(action=term, ok=False, message="not terminated", skipped=True),
        ]
    )
    actions = "autoscaler_actions_total"
    assert get(actions, {"kind": "remove_node", "result": "error"}) == 1
    assert get(actions, {"kind": "terminate_instance", "result": "skipped"}) == 1
    assert get(actions, {"kind": "terminate_instance", "result": "error"}) is None


def test_machines_of_a_pool_the_rules_lack_are_exported_and_go_with_them() -> None:
    from tests.pools_builders import machine

    registry = CollectorRegistry()
    metrics = SidecarMetrics(registry)
    machines = [
        machine("a"),
        machine("o", pool_name="old"),
        machine("w", pool_name="old", state="stopped"),
    ]
    nodes = [node("a"), node("o", pool_name="old")]
    metrics.observe_plan(run(snapshot(nodes, sessions("o", 2), machines), pool()), {})
    get = registry.get_sample_value
    want = {"running": 1, "stopped": 1, "nodes": 1, "sessions": 2}
    assert {k: get("autoscaler_pool_strays", {"pool": "old", "kind": k}) for k in want} == want
    # the provider unreadable: its machines are unknown, not zero
    unread = snapshot(nodes, sessions("o", 2)).model_copy(update={"instances": None})
    metrics.observe_plan(run(unread, pool()), {})
    assert get("autoscaler_pool_strays", {"pool": "old", "kind": "running"}) is None
    assert get("autoscaler_pool_strays", {"pool": "old", "kind": "sessions"}) == 2
    metrics.observe_plan(run(snapshot([node("a")]), pool()), {})
    assert get("autoscaler_pool_strays", {"pool": "old", "kind": "sessions"}) is None
