"""Built-in alerts and the loop's hook: each failure of the sidecar becomes an alert."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.alerts.config import ReceiverConfig
from autoscaler.alerts.dispatch import Integration
from autoscaler.alerts.manager import Alerting
from autoscaler.decide.plan_types import Notify, Plan
from autoscaler.ledger import Ledger
from autoscaler.loop import PassResult, Reconciler
from autoscaler.metrics import SidecarMetrics
from autoscaler.rules.reload import RulesStore
from autoscaler.rules.schema import Policies, Signal
from autoscaler.snapshot import Session, SignalValue, Snapshot, SwarmState
from autoscaler.sources.collect import Backends
from tests.test_alerts_dispatch import Recorder
from tests.test_loop import T0, Clock, FakeProm, FakeSwarm, RecordingActuator

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
alerts:
  BusyApi:
    signal: rps
    op: ">"
    value: 15
    for: 1m
    annotations: {summary: "{{ $value }} requests per second"}
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
receivers:
  - name: ops
"""


_started: list[Alerting] = []


@pytest.fixture(autouse=True)
def _stop_alerting() -> Iterator[None]:
    """Every Alerting a test set up stops its sending threads, even when the test fails."""
    try:
        yield
    finally:
        while _started:
            _started.pop().stop()


def setup(
    tmp_path: Path, fail: bool = False, state_dir: Path | None = None
) -> tuple[Reconciler, Alerting, Recorder, Clock, FakeProm, FakeSwarm]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yml").write_text(RULES)
    clock = Clock()
    swarm, prom = FakeSwarm(), FakeProm(clock)
    recorder = Recorder(send_resolved=True)

    def build(receiver: ReceiverConfig) -> list[Integration]:
        return [recorder]

    metrics = SidecarMetrics()
    alerting = Alerting(metrics=metrics, clock=clock, build_integrations=build, state_dir=state_dir)
    _started.append(alerting)
    rec = Reconciler(
        rules=RulesStore(rules),
        backends=Backends(swarm=swarm, prometheus=prom),
        actuator=RecordingActuator(swarm, fail),
        metrics=metrics,
        clock=clock,
        alerting=alerting,
    )
    return rec, alerting, recorder, clock, prom, swarm


def states(alerting: Alerting) -> dict[str, str]:
    return {
        a["labels"]["alertname"]
        + "".join(
            f",{k}={v}"
            for k, v in sorted(a["labels"].items())
            if k not in ("alertname", "severity", "source")
        ): a["state"]
        for a in alerting.list_alerts()
    }


def test_threshold_alert_goes_pending_firing_and_is_delivered(tmp_path: Path) -> None:
    rec, alerting, recorder, clock, prom, _ = setup(tmp_path)
    prom.value = 20.0
    rec.run_pass()
    assert states(alerting) == {"BusyApi": "pending"}
    clock.now += timedelta(minutes=1)
    rec.run_pass()
    alerting.tick()
    assert states(alerting) == {"BusyApi": "firing"}
    assert recorder.names() == [[("BusyApi", "firing")]]
    assert recorder.sent[0].alerts[0].annotations["summary"] == "20 requests per second"
    assert (
        rec.metrics.registry.get_sample_value(
            "autoscaler_alerts", {"alertname": "BusyApi", "state": "firing"}
        )
        == 1
    )


def passes_for_minutes(rec: Reconciler, alerting: Alerting, clock: Clock, n: int) -> dict[str, str]:
    """A pass a minute for ``n`` minutes, then the alert states."""
    for _ in range(n):
        rec.run_pass()
        clock.now += timedelta(minutes=1)
    alerting.tick()
    return states(alerting)


def test_a_missing_signal_never_fires_but_is_reported(tmp_path: Path) -> None:
    rec, alerting, _recorder, clock, prom, _ = setup(tmp_path)
    prom.value = None  # Prometheus down: rps is missing
    got = passes_for_minutes(rec, alerting, clock, 7)
    assert "BusyApi" not in got
    assert got["AutoscalerSourceDown,backend=prometheus"] == "firing"
    assert got["AutoscalerSignalStale,backend=prometheus,signal=rps"] == "firing"
    prom.value = 1.0
    rec.run_pass()
    got = states(alerting)
    assert got["AutoscalerSourceDown,backend=prometheus"] == "resolved"


def test_a_stale_signal_never_fires_but_is_reported(tmp_path: Path) -> None:
    rec, alerting, _recorder, clock, prom, _ = setup(tmp_path)
    prom.value, prom.lag = 20.0, timedelta(minutes=5)  # above BusyApi's 15, but old
    missing = {"signal": "rps"}
    got = passes_for_minutes(rec, alerting, clock, 7)
    assert "BusyApi" not in got
    assert got["AutoscalerSignalStale,backend=prometheus,signal=rps"] == "firing"
    (stale,) = [a for a in alerting.list_alerts() if a["labels"]["alertname"].endswith("Stale")]
    assert "stale (age 300s > 120s)" in stale["annotations"]["error"]
    assert rec.metrics.registry.get_sample_value("autoscaler_signal_missing", missing) == 1
    prom.lag = timedelta(seconds=10)
    rec.run_pass()
    assert states(alerting)["BusyApi"] == "pending"
    assert rec.metrics.registry.get_sample_value("autoscaler_signal_missing", missing) == 0


def test_a_firing_alert_is_not_resolved_while_its_signal_is_missing(tmp_path: Path) -> None:
    rec, alerting, recorder, clock, prom, _ = setup(tmp_path)
    prom.value = 20.0
    assert passes_for_minutes(rec, alerting, clock, 2)["BusyApi"] == "firing"
    prom.value = None  # Prometheus down: nothing says the load went down
    got = passes_for_minutes(rec, alerting, clock, 7)
    assert got["BusyApi"] == "firing"
    assert got["AutoscalerSourceDown,backend=prometheus"] == "firing"
    assert ("BusyApi", "resolved") not in [n for sent in recorder.names() for n in sent]
    prom.value = 1.0  # back, and below the threshold: now it is known to be over
    rec.run_pass()
    assert states(alerting)["BusyApi"] == "resolved"


def test_a_firing_alert_whose_rule_is_removed_is_resolved(tmp_path: Path) -> None:
    rec, alerting, recorder, clock, prom, _ = setup(tmp_path)
    prom.value = 20.0
    assert passes_for_minutes(rec, alerting, clock, 2)["BusyApi"] == "firing"
    rules = tmp_path / "rules" / "a.yml"
    start, end = RULES.index("  BusyApi:"), RULES.index("route:")
    rules.write_text(RULES[:start] + "  {}\n" + RULES[end:])
    got = passes_for_minutes(rec, alerting, clock, 6)
    assert "BusyApi" not in got
    sent = [n for batch in recorder.names() for n in batch]
    assert sent.count(("BusyApi", "resolved")) == 1
    assert sent.count(("BusyApi", "firing")) == 1  # and never repeated as firing


def test_failed_scale_action_fires_and_holds(tmp_path: Path) -> None:
    rec, alerting, _recorder, _clock, prom, _ = setup(tmp_path, fail=True)
    prom.value = 40.0
    rec.run_pass()
    alerting.tick()
    fired = [
        a
        for a in alerting.list_alerts()
        if a["labels"]["alertname"] == "AutoscalerScaleActionFailed"
    ]
    assert len(fired) == 1 and fired[0]["state"] == "firing"
    assert fired[0]["labels"]["subject"] == "api"
    assert "boom" in fired[0]["annotations"]["error"]
    assert fired[0]["annotations"]["runbook_url"].endswith("#autoscalerscaleactionfailed")


def test_invalid_rules_fire_the_reload_alert(tmp_path: Path) -> None:
    rec, alerting, _, clock, _, _ = setup(tmp_path)
    rec.run_pass()
    (tmp_path / "rules" / "a.yml").write_text(RULES.replace("max: 10", "max: ten"))
    clock.now += timedelta(seconds=15)
    rec.run_pass()
    fired = [
        a
        for a in alerting.list_alerts()
        if a["labels"]["alertname"] == "AutoscalerRulesReloadFailed"
    ]
    assert fired and fired[0]["state"] == "firing"
    assert "max" in fired[0]["annotations"]["error"]


def test_an_unwritable_ledger_fires_its_alert_until_lines_are_written_again(
    tmp_path: Path,
) -> None:
    rec, alerting, _, clock, _, _ = setup(tmp_path)
    blocker = tmp_path / "volume"
    blocker.write_text("a file where the ledger's folder should be (a volume mounted wrong)")
    rec.ledger = Ledger(blocker / "decisions.jsonl")
    rec.run_pass()
    alerting.tick()
    fired = [
        a
        for a in alerting.list_alerts()
        if a["labels"]["alertname"] == "AutoscalerLedgerNotWritten"
    ]
    assert [a["state"] for a in fired] == ["firing"]
    assert str(blocker) in fired[0]["annotations"]["error"]
    failed = {"result": "failed"}
    assert rec.metrics.registry.get_sample_value("autoscaler_ledger_lines_total", failed) == 1
    blocker.unlink()  # fixed: lines are written again
    for _ in range(2):
        clock.now += timedelta(minutes=5, seconds=1)  # past keep_firing_for
        rec.run_pass()
    alerting.tick()
    assert "AutoscalerLedgerNotWritten" not in {
        a["labels"]["alertname"] for a in alerting.list_alerts() if a["state"] == "firing"
    }
    written = {"result": "written"}
    assert rec.metrics.registry.get_sample_value("autoscaler_ledger_lines_total", written) == 2


def test_loop_stalled_fires_on_the_timer_thread_and_resolves(tmp_path: Path) -> None:
    rec, alerting, recorder, clock, _, swarm = setup(tmp_path)
    rec.run_pass()
    clock.now += timedelta(minutes=4)
    alerting.tick()
    assert "AutoscalerLoopStalled" not in states(alerting)
    swarm.down = True  # passes fail: no successful pass
    rec.run_pass()
    clock.now += timedelta(minutes=2)
    alerting.tick()
    assert states(alerting)["AutoscalerLoopStalled"] == "firing"
    assert [("AutoscalerLoopStalled", "firing")] in recorder.names()
    swarm.down = False
    rec.run_pass()
    alerting.tick()
    assert states(alerting)["AutoscalerLoopStalled"] == "resolved"


def test_a_bug_in_alerting_never_breaks_a_pass(tmp_path: Path) -> None:
    rec, alerting, *_ = setup(tmp_path)

    def broken(result: PassResult, rules: RulesStore | None = None) -> None:
        raise RuntimeError("alerting bug")

    alerting.after_pass = broken  # type: ignore[method-assign]
    assert rec.run_pass().ok


def _snapshot(clock: Clock, **signals: float | None) -> Snapshot:
    return Snapshot(
        taken_at=clock.now,
        swarm=SwarmState(),
        signals={n: SignalValue(name=n, source="actuator", value=v) for n, v in signals.items()},
    )


def test_session_start_failures_rising(tmp_path: Path) -> None:
    clock = Clock()
    alerting = Alerting(clock=clock)
    alerting.configure(
        Policies(
            signals={"failed": Signal.model_validate({"actuator": {"metric": "startFailed_total"}})}
        )
    )
    for value in (3.0, 3.0, 3.0):
        alerting.after_pass(PassResult("t", True, 0, snapshot=_snapshot(clock, failed=value)))
        clock.now += timedelta(minutes=1)
    assert "AutoscalerSessionStartFailures" not in states(alerting)
    alerting.after_pass(PassResult("t", True, 0, snapshot=_snapshot(clock, failed=5.0)))
    a = [
        x
        for x in alerting.list_alerts()
        if x["labels"]["alertname"] == "AutoscalerSessionStartFailures"
    ]
    assert a[0]["state"] == "firing" and a[0]["value"] == 2
    # ShinyProxy restarted (counter reset to 1): still counted as an increase.
    clock.now += timedelta(minutes=1)
    alerting.after_pass(PassResult("t", True, 0, snapshot=_snapshot(clock, failed=1.0)))
    assert states(alerting)["AutoscalerSessionStartFailures"] == "firing"
    clock.now += timedelta(minutes=11)  # no new failure for a window: resolved
    alerting.after_pass(PassResult("t", True, 0, snapshot=_snapshot(clock, failed=1.0)))
    assert states(alerting)["AutoscalerSessionStartFailures"] == "resolved"


def test_pending_session_tasks_fire_after_five_minutes() -> None:
    clock = Clock()
    alerting = Alerting(clock=clock)
    waiting = Session(
        service_id="s",
        service_name="sp-1",
        proxy_id="p",
        spec_id="euler",
        user_id="jo",
        node_id=None,
        state="pending",
        created_at=T0,
    )
    snap = Snapshot(taken_at=T0, swarm=SwarmState(sessions=(waiting,)))
    for _ in range(6):
        alerting.after_pass(PassResult("t", True, 0, snapshot=snap))
        clock.now += timedelta(minutes=1)
    a = [
        x
        for x in alerting.list_alerts()
        if x["labels"]["alertname"] == "AutoscalerSessionTasksPending"
    ]
    assert a[0]["state"] == "firing" and a[0]["annotations"]["summary"].startswith("1 app")


def test_pool_alerts_fire_only_when_the_plan_says_so() -> None:
    clock = Clock()
    alerting = Alerting(clock=clock)
    alerting.after_pass(PassResult("t", True, 0))
    assert not {
        "AutoscalerPoolAtMax",
        "AutoscalerNodeDidNotJoin",
        "AutoscalerSessionsEndedByScaleIn",
    } & set(states(alerting))
    alerting.after_pass(join_timeout_pass("apps"))
    got = [
        x for x in alerting.list_alerts() if x["labels"]["alertname"] == "AutoscalerNodeDidNotJoin"
    ]
    assert got[0]["labels"]["pool"] == "apps" and got[0]["state"] == "firing"
    assert got[0]["annotations"]["summary"] == "A new node of pool apps did not join the Swarm"


def test_pool_conditions_come_from_the_plan() -> None:
    from datetime import UTC, datetime

    from autoscaler.alerts.builtin import pool_conditions
    from autoscaler.decide.plan_types import Notify, Plan, PoolStatus, StrayPool

    at = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    plan = Plan(
        at=at,
        pools=(PoolStatus(pool="a", short_nodes=2), PoolStatus(pool="b", short_nodes=0)),
        strays=(
            StrayPool(pool="old", running=2, stopped=1, nodes=2, sessions=3),
            StrayPool(pool="hand", nodes=1),
        ),
        actions=(
            Notify(
                alert="PoolNodeJoinTimeout", summary="x", labels={"pool": "a", "instance": "i-1"}
            ),
            Notify(alert="PoolEndingSessions", summary="y", labels={"pool": "b", "node": "w2"}),
        ),
    )
    c = pool_conditions(plan)
    assert [(s.labels, s.value) for s in c["pool_at_max"]] == [({"pool": "a"}, 2)]
    assert [s.labels for s in c["node_did_not_join"]] == [{"pool": "a", "instance": "i-1"}]
    assert [s.labels for s in c["sessions_ended_by_scale_in"]] == [{"pool": "b", "node": "w2"}]
    # machines when it has any, else its nodes (labelled by hand, no machine of ours)
    assert [(s.labels, s.value) for s in c["pool_not_in_rules"]] == [
        ({"pool": "old"}, 3),
        ({"pool": "hand"}, 1),
    ]
    detail = c["pool_not_in_rules"][0].info["summary_detail"]
    assert "3 machine(s) (2 running, 1 stopped)" in detail
    assert "2 Swarm node(s) holding 3 session(s)" in detail
    assert pool_conditions(None) == {
        "pool_at_max": [],
        "node_did_not_join": [],
        "sessions_ended_by_scale_in": [],
        "pool_provider_missing": [],
        "spot_interruption": [],
    }  # no plan: whether a pool lacks its rules is not known, so not said (the alert holds)


def test_machines_of_a_pool_the_rules_lack_alert_after_ten_minutes() -> None:
    from autoscaler.decide.plan_types import StrayPool

    clock = Clock()
    alerting = Alerting(clock=clock)
    stray = StrayPool(pool="old", running=2)
    for minute in range(11):
        plan = Plan(at=clock.now, strays=(stray,))
        alerting.after_pass(PassResult("t", True, 0, plan=plan))
        want = "firing" if minute == 10 else "pending"
        assert states(alerting)["AutoscalerPoolNotInRules,pool=old"] == want
        clock.now += timedelta(minutes=1)
    got = [
        x for x in alerting.list_alerts() if x["labels"]["alertname"] == "AutoscalerPoolNotInRules"
    ]
    assert got[0]["state"] == "firing" and got[0]["labels"]["pool"] == "old"
    assert got[0]["annotations"]["summary"].startswith("2 machine(s) or node(s) of pool old")
    assert "2 running" in got[0]["annotations"]["summary_detail"]


def test_the_stray_alert_holds_while_the_machines_cannot_be_listed() -> None:
    """Not read is not none: a firing alert neither resolves nor starts over."""
    from autoscaler.decide.plan_types import StrayPool

    clock = Clock()
    alerting = Alerting(clock=clock)
    key = "AutoscalerPoolNotInRules,pool=old"
    stray = StrayPool(pool="old", running=2)
    for _ in range(11):
        alerting.after_pass(PassResult("t", True, 0, plan=Plan(at=clock.now, strays=(stray,))))
        clock.now += timedelta(minutes=1)
    assert states(alerting)[key] == "firing"
    unread = Plan(at=clock.now, strays_unread="the node provider's machines cannot be listed")
    for _ in range(3):
        alerting.after_pass(PassResult("t", True, 0, plan=unread))
        alerting.after_pass(PassResult("t", False, 0, error="boom"))  # no plan at all
        clock.now += timedelta(minutes=1)
    assert states(alerting)[key] == "firing"
    alerting.after_pass(PassResult("t", True, 0, plan=Plan(at=clock.now)))  # listed: gone
    assert states(alerting)[key] == "resolved"


def join_timeout_pass(pool: str, instance: str = "i-1") -> PassResult:
    """A pass whose plan gave up on a machine that never joined (as the pool planner does)."""
    plan = Plan(
        at=datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
        actions=(
            Notify(
                alert="PoolNodeJoinTimeout",
                summary="never joined",
                labels={"pool": pool, "instance": instance},
            ),
        ),
    )
    return PassResult("t", True, 0, plan=plan)


def test_sends_are_remembered_at_least_as_long_as_the_longest_repeat_interval(
    tmp_path: Path,
) -> None:
    """Forgotten before its repeat_interval, a send would be repeated early (the log keeps
    120 h by default, as Alertmanager's --data.retention)."""
    from autoscaler.alerts.notify_log import RETENTION
    from autoscaler.rules.loader import load_rules

    _, alerting, *_ = setup(tmp_path)
    assert alerting.nflog.retention == RETENTION
    rules = tmp_path / "rules" / "a.yml"
    long = RULES.replace(
        "  group_interval: 1m\n",
        "  group_interval: 1m\n  routes:\n    - {matchers: ['a=\"b\"'], repeat_interval: 10d}\n",
    )
    rules.write_text(long)
    policies = load_rules(tmp_path / "rules").policies
    assert policies is not None
    alerting.configure(policies)
    assert alerting.nflog.retention == timedelta(days=11)


def test_an_alert_firing_before_a_restart_is_resolved_after_it(tmp_path: Path) -> None:
    """The rules' states are kept on disk: after a restart the alert is neither forgotten
    (no "resolved" would ever come) nor sent again as new."""
    state = tmp_path / "state"
    (tmp_path / "before").mkdir()
    rec, alerting, recorder, clock, prom, _ = setup(tmp_path / "before", state_dir=state)
    prom.value = 20.0
    rec.run_pass()
    clock.now += timedelta(minutes=1)
    rec.run_pass()
    alerting.tick()
    assert recorder.names() == [[("BusyApi", "firing")]]
    alerting.stop()

    (tmp_path / "after").mkdir()
    rec, alerting, recorder, clock2, prom, _ = setup(tmp_path / "after", state_dir=state)
    clock2.now = clock.now + timedelta(minutes=2)
    prom.value = 20.0  # still busy: known, not new
    rec.run_pass()
    alerting.tick()
    assert states(alerting)["BusyApi"] == "firing" and recorder.sent == []
    prom.value = 1.0
    clock2.now += timedelta(minutes=1)
    rec.run_pass()
    alerting.tick()
    assert recorder.names() == [[("BusyApi", "resolved")]]


def test_unreadable_alert_states_start_empty(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    for n, text in enumerate(['{"rules": {"BusyApi": {"x": {"state": "odd"}}}}', "{not json"]):
        (state / "alerts.json").write_text(text)
        (tmp_path / str(n)).mkdir()
        _, alerting, *_ = setup(tmp_path / str(n), state_dir=state)
        assert alerting.list_alerts() == []
