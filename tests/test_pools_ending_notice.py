"""A pool that allows ending sessions ends them only `ending_notice` after a receiver took
the alert that says so: the loop, the planner and the alerting together, on one paused
node, while the receiver first refuses and then accepts."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from autoscaler.actuate.base import ActionResult
from autoscaler.alerts.config import ReceiverConfig
from autoscaler.alerts.dispatch import Integration
from autoscaler.alerts.manager import Alerting
from autoscaler.decide.plan_types import Action, DrainNode, LabelNode, Notify, Plan
from autoscaler.decide.pools import labels as L
from autoscaler.loop import PassResult, Reconciler
from autoscaler.metrics import SidecarMetrics
from autoscaler.rules.reload import RulesStore
from autoscaler.snapshot import Instance, Node, SwarmState
from autoscaler.sources.collect import Backends
from tests.pools_builders import POOL, T0, machine, node, sessions
from tests.test_alerts_dispatch import Recorder
from tests.test_loop import Clock

RULES = f"""
pools:
  {POOL}:
    provider: local
    min: 1
    max: 10
    seats_per_node: 4
    scale_in:
      unneeded_for: 10m
      allow_ending_sessions: true
      session_grace: 2h
      ending_notice: 5m
route:
  receiver: ops
  group_by: [alertname, node]
  group_wait: 0s
  group_interval: 1m
receivers:
  - name: ops
    webhook_configs:
      - url_file: /run/secrets/ops_hook   # the tests send to a recorder instead
"""


class Pool:
    """A Swarm of two pool nodes (one paused for three hours, one session on each) whose
    node labels and availability the actions change, and the machines behind them."""

    def __init__(self) -> None:
        paused_at = {L.PAUSED_AT: L.stamp(T0 - timedelta(hours=3))}
        self.nodes = {"a": node("a"), "p": node("p", state="paused", extra=paused_at)}
        self.sessions = sessions("a", 1) + sessions("p", 1, start=10)
        self.done: list[Action] = []

    def read(self) -> SwarmState:
        return SwarmState(nodes=tuple(self.nodes.values()), sessions=tuple(self.sessions))

    def list_instances(self) -> tuple[Instance, ...]:
        return tuple(machine(name) for name in self.nodes)

    def execute(self, action: Action) -> ActionResult:
        self.done.append(action)
        if isinstance(action, LabelNode | DrainNode):
            n = self.nodes[action.hostname]
            labels = {**n.labels, **getattr(action, "labels", {})}
            update: dict[str, object] = {"labels": {k: v for k, v in labels.items() if v}}
            if isinstance(action, DrainNode):
                update["availability"] = "drain"
            self.nodes[action.hostname] = Node.model_validate({**n.model_dump(), **update})
        return ActionResult(action=action, ok=True, message="done")

    def drained(self) -> bool:
        return any(isinstance(a, DrainNode) for a in self.done)


def test_sessions_end_a_notice_after_the_alert_reached_a_receiver(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "pools.yml").write_text(RULES)
    clock, pool, receiver = Clock(), Pool(), Recorder()
    clock.now = T0
    receiver.fail = True
    store = RulesStore(rules)
    assert store.refresh() == "loaded", store.problems

    def build(config: ReceiverConfig) -> list[Integration]:
        return [receiver]

    alerting = Alerting(clock=clock, state_dir=tmp_path / "state", build_integrations=build)
    loop = Reconciler(
        rules=store,
        backends=Backends(swarm=pool, instances=pool),
        actuator=pool,
        metrics=SidecarMetrics(),
        clock=clock,
        alerting=alerting,
    )

    def minute() -> str:
        result = loop.run_pass()
        alerting.tick(clock.now)
        clock.now += timedelta(minutes=1)
        assert result.plan is not None
        return " | ".join(d for x in result.plan.decisions for d in x.reasons)

    # raised and marked at once, then refused by the receiver for 20 minutes: nothing ends
    for _ in range(20):
        why = minute()
        assert not pool.drained()
    assert pool.nodes["p"].labels[L.NOTIFIED_AT] == "2024-05-06T12:00:00Z"
    assert "alert raised at 12:00:00Z not delivered to any receiver yet: none ended" in why
    assert L.DELIVERED_AT not in pool.nodes["p"].labels and not receiver.sent

    # the receiver takes it; the delivery is marked and the notice runs from there
    receiver.fail = False
    while L.DELIVERED_AT not in pool.nodes["p"].labels:
        assert clock.now < T0 + timedelta(minutes=40), "the delivery was never marked"
        minute()
    (sent,) = receiver.sent
    (alert,) = sent.alerts
    assert alert.labels["alertname"] == "AutoscalerSessionsEndedByScaleIn"
    assert alert.labels["node"] == "p" and alert.labels["pool"] == POOL
    assert "1 session(s) on p will be ended 5m after" in alert.annotations["summary_detail"]
    delivered = L.parse_stamp(pool.nodes["p"].labels[L.DELIVERED_AT])
    assert delivered is not None and delivered >= T0 + timedelta(minutes=20)
    while not pool.drained():
        assert clock.now < delivered + timedelta(minutes=7), "never drained"
        before = clock.now
        minute()
    assert before >= delivered + timedelta(minutes=5)  # the pass that drained
    (drain,) = [a for a in pool.done if isinstance(a, DrainNode)]
    assert drain.end_sessions and drain.hostname == "p"
    assert len(receiver.sent) == 1  # one message, however many passes raised it again


def notice_pass(at: datetime, *nodes: str) -> PassResult:
    """A pass whose plan announces that the sessions on ``nodes`` will be ended."""
    notices = tuple(
        Notify(alert="PoolEndingSessions", summary="t", labels={"pool": POOL, "node": n})
        for n in nodes
    )
    return PassResult("t", True, 0, plan=Plan(at=at, actions=notices))


def test_a_delivery_is_remembered_across_a_restart_and_a_silence_holds_one(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "pools.yml").write_text(RULES)
    store = RulesStore(rules)
    store.refresh()
    clock, receiver = Clock(), Recorder()
    clock.now = T0

    def start() -> Alerting:
        alerting = Alerting(
            clock=clock, state_dir=tmp_path / "state", build_integrations=lambda r: [receiver]
        )
        alerting.configure(store.policies)
        return alerting

    first = start()
    hold = {"matchers": ["node=q"], "duration_seconds": 3600, "created_by": "ops", "comment": "t"}
    first.add_silence(hold)
    first.after_pass(notice_pass(clock.now, "p", "q"))
    first.tick(clock.now)
    assert first.notices_delivered() == {f"{POOL}/p": T0}  # q is silenced: told nobody
    assert [a.labels["node"] for n in receiver.sent for a in n.alerts] == ["p"]

    clock.now += timedelta(minutes=1)
    second = start()  # a restart: the notification log is read again
    assert second.notices_delivered() == {}  # no alert known yet
    second.after_pass(notice_pass(clock.now, "p", "q"))
    second.tick(clock.now)
    assert second.notices_delivered() == {f"{POOL}/p": T0}
    assert len(receiver.sent) == 1  # not sent again


class FirstOnly(Recorder):
    """A receiver whose messages hold one alert, as a webhook with max_alerts: 1."""

    def carried(self, notification: Any) -> Any:
        return notification.alerts[:1]


def test_an_alert_a_message_left_out_was_not_delivered(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "pools.yml").write_text(
        RULES.replace("group_by: [alertname, node]", "group_by: [alertname]")
    )
    store = RulesStore(rules)
    store.refresh()
    clock, receiver = Clock(), FirstOnly()
    clock.now = T0
    alerting = Alerting(clock=clock, build_integrations=lambda r: [receiver])
    alerting.configure(store.policies)
    alerting.after_pass(notice_pass(clock.now, "p", "q"))
    alerting.tick(clock.now)
    (sent,) = receiver.sent
    assert len(sent.alerts) == 2  # the message built; the receiver keeps only the first
    told = sent.alerts[0].labels["node"]
    assert alerting.notices_delivered() == {f"{POOL}/{told}": T0}
