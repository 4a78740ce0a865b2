"""The reconcile pass and the runner, with fakes at our own interfaces (fast, no I/O)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import autoscaler.rules.loader
import autoscaler.rules.reload
from autoscaler.actuate.base import ActionResult
from autoscaler.actuate.dryrun import DryRunActuator
from autoscaler.decide.plan_types import Action, RemoveNode, ScaleService, TerminateInstance
from autoscaler.ledger import Ledger
from autoscaler.loop import PassResult, Reconciler, Runner, backoff_delay
from autoscaler.metrics import SidecarMetrics
from autoscaler.rules.reload import RulesStore
from autoscaler.snapshot import Service, SwarmState
from autoscaler.sources.collect import Backends
from autoscaler.sources.errors import SourceError
from autoscaler.sources.reading import Reading
from tests.test_lifecycle_runner import AT_ONCE, wait_for

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

RULES = """
signals:
  rps:
    prometheus: {query: 'sum(rate(http_requests_total[1m]))'}
services:
  api:
    min: 1
    max: 10
    target_tracking:
      - {signal: rps, average_value: 10}
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class FakeSwarm:
    def __init__(self) -> None:
        self.replicas = 2
        self.down = False
        self.reads = 0
        self.delay = 0.0

    def read(self) -> SwarmState:
        self.reads += 1
        time.sleep(self.delay)
        if self.down:
            raise SourceError("swarm", "Cannot connect to the Docker daemon")
        return SwarmState(
            services=(
                Service(
                    id="s1",
                    name="api",
                    mode="replicated",
                    replicas=self.replicas,
                    running=self.replicas,
                    version=5,
                ),
            )
        )


class FakeProm:
    def __init__(self, clock: Clock) -> None:
        self.value: float | None = 20.0
        self.clock = clock
        self.lag = timedelta(0)
        """How old the samples are when read (a stuck exporter)."""

    def query(self, promql: str) -> Reading:
        if self.value is None:
            raise SourceError("prometheus", "connection refused")
        return Reading(value=self.value, observed_at=self.clock() - self.lag)


class RecordingActuator:
    def __init__(self, swarm: FakeSwarm, fail: bool = False) -> None:
        self.swarm, self.fail = swarm, fail
        self.calls: list[Action] = []

    def execute(self, action: Action) -> ActionResult:
        self.calls.append(action)
        if self.fail:
            raise RuntimeError("boom")
        self.swarm.replicas = action.desired
        return ActionResult(action=action, ok=True, message=f"scaled to {action.desired}")


def setup(
    tmp_path: Path, fail: bool = False
) -> tuple[Reconciler, FakeSwarm, FakeProm, RecordingActuator, Clock]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yml").write_text(RULES)
    clock = Clock()
    swarm, prom = FakeSwarm(), FakeProm(clock)
    act = RecordingActuator(swarm, fail)
    rec = Reconciler(
        rules=RulesStore(rules),
        backends=Backends(swarm=swarm, prometheus=prom),
        actuator=act,
        metrics=SidecarMetrics(),
        ledger=Ledger(tmp_path / "ledger.jsonl"),
        clock=clock,
    )
    return rec, swarm, prom, act, clock


def metric(rec: Reconciler, name: str, labels: dict[str, str] | None = None) -> float | None:
    return rec.metrics.registry.get_sample_value(name, labels or {})


def test_pass_scales_records_and_measures(tmp_path: Path) -> None:
    rec, swarm, prom, act, _ = setup(tmp_path)
    prom.value = 40.0
    r = rec.run_pass("test")
    assert r.ok and [a.desired for a in act.calls] == [4]
    assert swarm.replicas == 4
    assert metric(rec, "autoscaler_passes_total", {"result": "ok"}) == 1
    assert metric(rec, "autoscaler_actions_total", {"kind": "scale_service", "result": "ok"}) == 1
    assert (
        metric(rec, "autoscaler_service_desired_replicas", {"policy": "api", "service": "api"}) == 4
    )
    assert metric(rec, "autoscaler_signal_value", {"signal": "rps"}) == 40
    line = json.loads((tmp_path / "ledger.jsonl").read_text().splitlines()[0])
    assert line["trigger"] == "test" and line["actions"][0]["ok"] is True
    assert line["snapshot"] == r.plan.snapshot_digest != ""  # type: ignore[union-attr]


def test_prometheus_down_holds_and_is_reported(tmp_path: Path) -> None:
    rec, _swarm, prom, act, _ = setup(tmp_path)
    prom.value = None
    r = rec.run_pass()
    assert r.ok, "a signal backend down is not a failed pass"
    assert act.calls == []
    assert r.plan is not None and r.plan.decisions[0].outcome == "hold"
    assert any("connection refused" in x for x in r.plan.decisions[0].reasons)
    assert metric(rec, "autoscaler_source_up", {"source": "prometheus"}) == 0
    assert metric(rec, "autoscaler_signal_missing", {"signal": "rps"}) == 1


def test_swarm_down_fails_the_pass_and_acts_on_nothing(tmp_path: Path) -> None:
    rec, swarm, _prom, act, _ = setup(tmp_path)
    swarm.down = True
    r = rec.run_pass()
    assert not r.ok and "Docker daemon" in (r.error or "")
    assert act.calls == []
    assert metric(rec, "autoscaler_passes_total", {"result": "error"}) == 1


def test_broken_rules_keep_last_good_policies(tmp_path: Path) -> None:
    rec, _swarm, prom, _act, _ = setup(tmp_path)
    rec.run_pass()
    (tmp_path / "rules" / "a.yml").write_text(RULES.replace("max: 10", "max: ten"))
    prom.value = 60.0
    r = rec.run_pass()
    assert metric(rec, "autoscaler_rules_valid") == 0
    assert metric(rec, "autoscaler_rules_reloads_total", {"result": "error"}) == 1
    assert r.plan is not None and [a.desired for a in r.plan.actions] == [6], (
        "the last good policy still scales"
    )


def test_rules_caught_while_being_written_are_no_reload_and_keep_the_policies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec, _swarm, prom, _act, _ = setup(tmp_path)
    rec.run_pass()
    rules = tmp_path / "rules" / "a.yml"
    rules.write_text(RULES.replace("max: 10", "max: 1"))  # the first half of "max: 12"
    reads = 0

    def read_then_write_the_rest(paths: list[Path]) -> Any:
        nonlocal reads
        reads += 1
        found = autoscaler.rules.loader.read_sources(paths)
        if reads == 1:
            rules.write_text(RULES.replace("max: 10", "max: 12"))
        return found

    monkeypatch.setattr(autoscaler.rules.reload, "read_sources", read_then_write_the_rest)
    prom.value = 60.0
    r = rec.run_pass()
    assert r.plan is not None and [a.desired for a in r.plan.actions] == [6], (
        "the policy in force (max 10) decides, not the half-written one (max 1)"
    )
    assert metric(rec, "autoscaler_rules_reloads_total", {"result": "ok"}) == 1
    assert metric(rec, "autoscaler_rules_reloads_total", {"result": "error"}) == 0
    assert metric(rec, "autoscaler_rules_valid") == 1
    rec.run_pass()
    assert rec.rules.generation == 2 and rec.rules.policies.services["api"].max == 12
    assert metric(rec, "autoscaler_rules_reloads_total", {"result": "ok"}) == 2


def test_actuator_exception_is_a_failed_action_not_a_dead_loop(tmp_path: Path) -> None:
    rec, _swarm, prom, _act, _ = setup(tmp_path, fail=True)
    prom.value = 40.0
    r = rec.run_pass()
    assert r.ok and len(r.results) == 1 and not r.results[0].ok
    assert (
        metric(rec, "autoscaler_actions_total", {"kind": "scale_service", "result": "error"}) == 1
    )


def test_memory_carries_stabilisation_between_passes(tmp_path: Path) -> None:
    rec, _swarm, prom, act, clock = setup(tmp_path)
    prom.value = 20.0  # 2 replicas wanted = current
    rec.run_pass()
    prom.value = 5.0
    clock.now = T0 + timedelta(seconds=60)
    r = rec.run_pass()
    assert act.calls == [] and r.plan is not None
    assert any("stabilis" in x for x in r.plan.decisions[0].reasons)
    clock.now = T0 + timedelta(minutes=6)
    rec.run_pass()
    assert [a.desired for a in act.calls] == [1]


RATE_LIMITED = (
    RULES
    + """
    behavior:
      scale_up:
        policies: [{type: replicas, value: 2, period: 1m}]
"""
)


@pytest.mark.parametrize("outcome", ["failed", "dry run"])
def test_a_scale_that_did_not_happen_does_not_count_against_the_rate_limit(
    tmp_path: Path, outcome: str
) -> None:
    """HPA records a scale event only once the update succeeded. Counted anyway, a failed
    scale-up (2 -> 4, at most 2 a minute) would hold the retry back for the minute, and a
    dry run would plan limits the live sidecar would never hit."""
    rec, swarm, prom, _act, clock = setup(tmp_path, fail=outcome == "failed")
    (tmp_path / "rules" / "a.yml").write_text(RATE_LIMITED)
    if outcome == "dry run":
        rec.actuator = DryRunActuator()
    prom.value = 40.0  # 4 replicas wanted
    first = rec.run_pass()
    assert first.plan is not None and [a.desired for a in first.plan.actions] == [4]
    clock.now = T0 + timedelta(seconds=15)
    second = rec.run_pass()
    assert swarm.replicas == 2  # nothing changed
    assert second.plan is not None and [a.desired for a in second.plan.actions] == [4], (
        second.plan.decisions[0].reasons
    )


def test_a_scale_that_happened_counts_against_the_rate_limit(tmp_path: Path) -> None:
    rec, swarm, prom, act, clock = setup(tmp_path)
    (tmp_path / "rules" / "a.yml").write_text(RATE_LIMITED)
    prom.value = 80.0  # 8 wanted, at most 2 more a minute
    rec.run_pass()
    clock.now = T0 + timedelta(seconds=15)
    r = rec.run_pass()
    assert [a.desired for a in act.calls] == [4] and swarm.replicas == 4
    assert r.plan is not None and r.plan.actions == ()


def test_healthy_window(tmp_path: Path) -> None:
    rec, swarm, *_rest, clock = setup(tmp_path)
    window = timedelta(minutes=1)
    assert rec.healthy(window, started_at=T0)
    clock.now = T0 + timedelta(minutes=2)
    assert not rec.healthy(window, started_at=T0), "never succeeded since start"
    rec.run_pass()
    assert rec.healthy(window, started_at=T0)
    swarm.down = True
    clock.now = T0 + timedelta(minutes=4)
    rec.run_pass()
    assert not rec.healthy(window, started_at=T0)


def test_backoff_is_capped() -> None:
    i, cap = timedelta(seconds=15), timedelta(minutes=5)
    assert [backoff_delay(i, cap, n).total_seconds() for n in range(7)] == [
        15,
        30,
        60,
        120,
        240,
        300,
        300,
    ]
    assert backoff_delay(i, cap, 10_000) == cap
    day = timedelta(days=1)  # a long interval after many failures: no overflow
    assert backoff_delay(day, cap, 10_000) == day
    assert backoff_delay(day, timedelta(days=3), 10_000) == timedelta(days=3)


def test_runner_coalesces_triggers_during_a_pass(tmp_path: Path) -> None:
    rec, swarm, *_ = setup(tmp_path)
    swarm.delay = 0.3
    runner = Runner(
        rec, interval=timedelta(hours=1), max_backoff=timedelta(hours=1), batching=AT_ONCE
    )
    runner.start()
    try:
        deadline = time.monotonic() + 5
        while swarm.reads < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # the scheduled first pass is now running
        threads = [threading.Thread(target=runner.trigger, args=(f"ev{i}",)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(1.5)
        assert swarm.reads == 2, "20 events during one pass make exactly one more pass"
        assert rec.last is not None and rec.last.trigger.startswith("ev")
    finally:
        runner.stop()


def test_runner_backs_off_while_passes_fail(tmp_path: Path) -> None:
    rec, swarm, *_ = setup(tmp_path)
    swarm.down = True
    runner = Runner(rec, interval=timedelta(seconds=1), max_backoff=timedelta(seconds=4))

    def interval() -> timedelta:
        return runner.scheduler.get_job("interval").trigger.interval  # type: ignore[no-any-return]

    runner.start()
    try:
        assert wait_for(lambda: interval() == timedelta(seconds=2)), interval()
        assert runner.failures == 1
        swarm.down = False  # the next scheduled pass, 2 s later, succeeds
        assert wait_for(lambda: interval() == timedelta(seconds=1)), interval()
        assert runner.failures == 0
    finally:
        runner.stop()


class RefusingRemovals:
    """Removes nothing (the node, read again, was set active by hand); records the rest."""

    def __init__(self) -> None:
        self.done: list[str] = []

    def execute(self, action: Action) -> ActionResult:
        if isinstance(action, RemoveNode):
            return ActionResult(action=action, ok=False, message="neither down nor drained")
        self.done.append(action.kind)
        return ActionResult(action=action, ok=True, message="done")


def test_a_machine_whose_node_was_not_removed_is_not_terminated(tmp_path: Path) -> None:
    rec, *_ = setup(tmp_path)
    act = RefusingRemovals()
    rec.actuator = act
    node = {"node_id": "n1", "hostname": "w1", "pool": "workers"}
    term = {"pool": "workers", "provider": "ec2", "reason": "drained"}
    results = rec._execute_all(
        (
            RemoveNode(**node, reason="drained"),
            TerminateInstance(instance_id="i-1", after_removal_of="n1", **term),
            TerminateInstance(instance_id="i-2", **term),  # its node is already gone
        )
    )
    assert [r.ok for r in results] == [False, False, True]
    assert [r.skipped for r in results] == [False, True, False]
    assert "its node was not removed" in results[1].message
    assert act.done == ["terminate_instance"]


def test_a_skipped_termination_is_not_a_second_failed_action() -> None:
    from autoscaler.alerts.builtin import PassFacts, _failed_actions

    node = {"node_id": "n1", "hostname": "w1", "pool": "workers"}
    term = {"pool": "workers", "provider": "ec2", "reason": "drained"}
    remove = RemoveNode(**node, reason="drained")
    skip = TerminateInstance(instance_id="i-1", after_removal_of="n1", **term)
    results = [
        ActionResult(action=remove, ok=False, message="neither down nor drained"),
        ActionResult(action=skip, ok=False, message="not terminated", skipped=True),
    ]
    samples = _failed_actions(PassFacts(now=T0, results=results))
    assert [s.labels["action"] for s in samples] == ["remove_node"]


def test_run_once_exits_1_when_an_action_failed_but_not_for_a_skip_or_dry_run() -> None:
    from autoscaler.cli import once_exit_code

    scale = ScaleService(service="api", current=1, desired=2, reason="why")

    def result(ok: bool = True, **outcome: Any) -> PassResult:
        done = ActionResult(action=scale, ok=outcome.pop("action_ok", True), message="", **outcome)
        return PassResult("once", ok, 0.1, results=[done])

    assert once_exit_code(result()) == 0
    assert once_exit_code(result(action_ok=False)) == 1
    assert once_exit_code(result(action_ok=False, skipped=True)) == 0
    assert once_exit_code(result(action_ok=False, dry_run=True)) == 0
    assert once_exit_code(result(ok=False)) == 1


def test_a_pass_that_raises_keeps_the_last_plan_for_the_plan_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec, *_ = setup(tmp_path)
    good = rec.run_pass("first")
    assert good.ok and good.plan is not None

    def broken(trigger: str, t0: float) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(rec, "_pass", broken)
    bad = rec.run_pass("second")
    assert not bad.ok and bad.plan is None
    assert rec.last is bad
    assert rec.last_planned is good  # /plan still shows what the sidecar last decided
