"""Routing of actions to actuators, and the dry-run twin of node and machine actions."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from autoscaler.actuate.base import ActionResult
from autoscaler.actuate.dispatch import Dispatcher, LogNotifier
from autoscaler.decide.plan_types import (
    Action,
    DrainNode,
    LabelNode,
    LaunchNodes,
    Notify,
    PauseNode,
    RemoveNode,
    ResumeNode,
    ScaleService,
    TerminateInstance,
)
from autoscaler.settings import Settings
from autoscaler.wiring import build_actuator

AT = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
NODE = {"node_id": "n1", "hostname": "web-1", "pool": "web", "reason": "why"}
ACTIONS: list[Action] = [
    ScaleService(service="api", current=1, desired=2, reason="why"),
    LaunchNodes(pool="web", provider="ec2", count=2, reason="why", token="t"),
    TerminateInstance(instance_id="i-1", pool="web", provider="ec2", reason="why"),
    PauseNode(**NODE, at=AT),
    ResumeNode(**NODE),
    DrainNode(**NODE, at=AT, end_sessions=True),
    RemoveNode(**NODE),
    LabelNode(**NODE, labels={"autoscaler.state": "active", "autoscaler.paused-at": ""}),
    Notify(alert="PoolNodeJoinTimeout", summary="never joined"),
]


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[str] = []

    def execute(self, action: Action) -> ActionResult:
        self.seen.append(action.kind)
        return ActionResult(action=action, ok=True, message=self.name)


def test_each_kind_reaches_its_actuator() -> None:
    parts = {n: Recorder(n) for n in ("services", "nodes", "machines", "notify")}
    dispatcher = Dispatcher(**parts)  # type: ignore[arg-type]
    routed = {a.kind: dispatcher.execute(a).message for a in ACTIONS}
    assert routed == {
        "scale_service": "services",
        "launch_nodes": "machines",
        "terminate_instance": "machines",
        "pause_node": "nodes",
        "resume_node": "nodes",
        "drain_node": "nodes",
        "remove_node": "nodes",
        "label_node": "nodes",
        "notify": "notify",
    }


def test_missing_actuator_is_a_failed_result_not_an_exception() -> None:
    result = Dispatcher(services=Recorder("s")).execute(ACTIONS[1])
    assert not result.ok and "no actuator configured for launch_nodes" in result.message
    alert = Dispatcher(services=Recorder("s")).execute(ACTIONS[-1])
    assert alert.ok  # alerts are at least logged


def test_dry_run_changes_nothing_and_says_what_it_would_do() -> None:
    client: Any = None  # a dry run must not need (or touch) the engine
    actuator = build_actuator(Settings(dry_run=True), client)
    messages = [actuator.execute(a) for a in ACTIONS]
    assert all(r.ok and r.dry_run for r in messages)
    text = [r.message for r in messages]
    assert text[1] == "would launch 2 node(s) for pool web (ec2) (why)"
    assert text[2] == "would terminate i-1 of pool web (why)"
    assert text[3] == "would pause web-1 (why)"
    assert text[5] == "would drain web-1 ENDING its sessions (why)"
    assert text[7] == "would label web-1: -autoscaler.paused-at, autoscaler.state=active (why)"
    assert text[8] == "would alert PoolNodeJoinTimeout: never joined"


def test_an_alert_raised_every_pass_is_logged_once_an_hour(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    notifier = LogNotifier(repeat=3600, clock=lambda: now[0])
    waiting = Notify(alert="AutoscalerSessionsEndedByScaleIn", summary="3 sessions on w1")
    other = Notify(alert="AutoscalerNodeJoinTimeout", summary="i-1 did not join")
    with caplog.at_level(logging.WARNING, logger="autoscaler.actuate.dispatch"):
        for _ in range(240):  # an hour of 15 s passes, less one
            assert notifier.execute(waiting).ok
            now[0] += 15
        notifier.execute(other)
        notifier.execute(waiting.model_copy(update={"summary": "2 sessions on w1"}))
        now[0] += 15
        notifier.execute(waiting)  # an hour after it was first logged
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [
        "ALERT AutoscalerSessionsEndedByScaleIn [warning]: 3 sessions on w1",
        "ALERT AutoscalerNodeJoinTimeout [warning]: i-1 did not join",
        "ALERT AutoscalerSessionsEndedByScaleIn [warning]: 2 sessions on w1",
        "ALERT AutoscalerSessionsEndedByScaleIn [warning]: 3 sessions on w1",
    ]
