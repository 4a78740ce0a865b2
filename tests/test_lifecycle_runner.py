"""The runner over a long life: stopping during a pass or an action, clock jumps, bursts."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import apscheduler.executors.base
import apscheduler.schedulers.base
import apscheduler.triggers.date
import apscheduler.triggers.interval
import pytest

import autoscaler.loop
from autoscaler.actuate.base import ActionResult
from autoscaler.decide.plan_types import Action
from autoscaler.event_batching import EventBatching
from autoscaler.ledger import Ledger
from autoscaler.loop import Reconciler, Runner
from autoscaler.metrics import SidecarMetrics
from autoscaler.rules.reload import RulesStore
from autoscaler.snapshot import Service, SwarmState
from autoscaler.sources.collect import Backends
from autoscaler.sources.reading import Reading

RULES_ONE = """
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
TWO_SERVICES = RULES_ONE + RULES_ONE.split("services:\n", 1)[1].replace("api:", "web:")


class Swarm:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.reads = 0
        self.reading = threading.Event()

    def read(self) -> SwarmState:
        self.reads += 1
        self.reading.set()
        time.sleep(self.delay)
        return SwarmState(
            services=tuple(
                Service(id=n, name=n, mode="replicated", replicas=2, running=2, version=1)
                for n in ("api", "web")
            )
        )


class Prom:
    def query(self, promql: str) -> Reading:
        return Reading(value=40.0, observed_at=autoscaler.loop.datetime.now(autoscaler.loop.UTC))


class SlowActuator:
    """Each action takes ``seconds``; ``started`` is set when the first one begins."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.started = threading.Event()
        self.done: list[str] = []

    def execute(self, action: Action) -> ActionResult:
        self.started.set()
        time.sleep(self.seconds)
        self.done.append(getattr(action, "service", action.kind))
        return ActionResult(action=action, ok=True, message="scaled")


def reconciler(tmp_path: Path, swarm: Swarm, actuator: Any) -> Reconciler:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yml").write_text(TWO_SERVICES)
    return Reconciler(
        rules=RulesStore(rules),
        backends=Backends(swarm=swarm, prometheus=Prom()),
        actuator=actuator,
        metrics=SidecarMetrics(),
        ledger=Ledger(tmp_path / "ledger.jsonl"),
    )


def wait_for(cond: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


AT_ONCE = EventBatching(idle=timedelta(0), max=timedelta(0), gap=timedelta(0))
"""Event passes as soon as no pass runs: what coalescing and stopping are tested with."""


@contextlib.contextmanager
def running(
    rec: Reconciler,
    every: timedelta = timedelta(hours=1),
    batching: EventBatching = AT_ONCE,
    monotonic: Callable[[], float] = time.monotonic,
) -> Iterator[Runner]:
    """A started runner (its first pass at once), stopped on leaving, even on failure."""
    runner = Runner(
        rec,
        interval=every,
        max_backoff=max(every, timedelta(seconds=1)),
        batching=batching,
        monotonic=monotonic,
    )
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


def test_stop_finishes_the_pass_in_progress_and_starts_no_other(tmp_path: Path) -> None:
    """SIGTERM during a pass, with an event queued behind it: one pass, not two."""
    swarm = Swarm(delay=0.5)
    rec = reconciler(tmp_path, swarm, SlowActuator())
    with running(rec) as runner:
        assert swarm.reading.wait(5)
        runner.trigger("docker:service:update")  # merged into one more pass, normally
        time.sleep(0.1)
    assert swarm.reads == 1, "a pass was started after the stop"
    time.sleep(0.3)
    runner.trigger("alertmanager:late")  # a webhook after the stop starts nothing either
    time.sleep(0.3)
    assert swarm.reads == 1


def test_stop_during_an_action_starts_no_further_action_and_records_the_pass(
    tmp_path: Path,
) -> None:
    """Swarm gives 10 s: the action in progress ends, the others are recorded as skipped."""
    swarm = Swarm()
    act = SlowActuator(seconds=0.5)
    rec = reconciler(tmp_path, swarm, act)
    with running(rec):
        assert act.started.wait(5)
    assert act.done == ["api"], "the second action was started after the stop"
    lines = (tmp_path / "ledger.jsonl").read_text().splitlines()
    assert len(lines) == 1
    actions = json.loads(lines[0])["actions"]
    assert [(a["service"], a["ok"], a.get("skipped", False)) for a in actions] == [
        ("api", True, False),
        ("web", False, True),
    ]
    assert "stopping" in actions[1]["result"]


class _Shifted(datetime):
    """The wall clock as NTP or a restored VM may set it: ``offset`` from the real one."""

    offset = timedelta(0)

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime.now(tz) + cls.offset


@pytest.fixture
def wall_clock(monkeypatch: pytest.MonkeyPatch) -> type[_Shifted]:
    _Shifted.offset = timedelta(0)
    for module in (
        apscheduler.schedulers.base,
        apscheduler.executors.base,
        apscheduler.triggers.interval,
        apscheduler.triggers.date,
        autoscaler.loop,
    ):
        monkeypatch.setattr(module, "datetime", _Shifted)
    monkeypatch.setattr(autoscaler.loop, "CLOCK_CHECK", 0.2)
    return _Shifted


def test_wall_clock_set_back_does_not_stop_scheduled_passes(
    tmp_path: Path, wall_clock: type[_Shifted]
) -> None:
    swarm = Swarm()
    rec = reconciler(tmp_path, swarm, SlowActuator())
    with running(rec, every=timedelta(seconds=0.3)):
        assert wait_for(lambda: swarm.reads >= 2)
        wall_clock.offset = -timedelta(hours=1)
        before = swarm.reads
        assert wait_for(lambda: swarm.reads >= before + 3, seconds=4), (
            "no scheduled pass for an hour after the clock was set back an hour"
        )


def test_a_burst_of_events_during_a_pass_logs_no_skipped_jobs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stack deploy sends hundreds of events; none of them is a warning."""
    swarm = Swarm(delay=0.5)
    rec = reconciler(tmp_path, swarm, SlowActuator())
    with running(rec) as runner:
        assert swarm.reading.wait(5)
        with caplog.at_level(logging.WARNING):
            for i in range(50):
                runner.trigger(f"docker:service:update{i % 3}")
            assert wait_for(lambda: swarm.reads == 2)
            time.sleep(0.7)
    assert swarm.reads == 2
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert rec.last is not None
    assert rec.last.trigger == ",".join(f"docker:service:update{i}" for i in range(3))


@pytest.mark.parametrize(
    ("ask", "job", "reason"),
    [
        ("trigger", "events", "docker:service:update"),  # a rolling update's events
        ("trigger_now", "now", "alertmanager:group"),  # Alertmanager, a webhook per group
    ],
)
def test_asks_spread_over_a_pass_make_one_more_pass_and_log_no_skipped_jobs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, ask: str, job: str, reason: str
) -> None:
    """Asks throughout a pass, each seen by the scheduler before the next, still make one
    more pass, and none of them is a warning."""
    swarm = Swarm(delay=1.0)
    rec = reconciler(tmp_path, swarm, SlowActuator())
    with running(rec) as runner:
        assert swarm.reading.wait(5)
        with caplog.at_level(logging.WARNING):
            for i in range(6):
                getattr(runner, ask)(f"{reason}{i}")
                # its drain job, if one was added, is handed to the executor before the next
                assert wait_for(lambda: runner.scheduler.get_job(job) is None)
            assert wait_for(lambda: swarm.reads == 2)
    assert swarm.reads == 2
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert rec.last is not None
    assert rec.last.trigger == ",".join(f"{reason}{i}" for i in range(6))


def test_sigterm_during_a_pass_records_it_and_exits_0(tmp_path: Path) -> None:
    """`autoscaler run` as Swarm stops it: the pass in progress ends in its ledger line."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.yml").write_text(RULES_ONE)
    silent = socket.socket()  # a Prometheus that accepts and never answers: a slow pass
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    env = {
        **os.environ,
        "AUTOSCALER_DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
        "AUTOSCALER_PROMETHEUS_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
        "AUTOSCALER_SOURCE_TIMEOUT": "3s",
        "AUTOSCALER_RULES": str(tmp_path / "rules"),
        "AUTOSCALER_LEDGER": str(tmp_path / "ledger.jsonl"),
        "AUTOSCALER_LISTEN": "127.0.0.1:0",
        "AUTOSCALER_INTERVAL": "1h",
        "AUTOSCALER_ALERTS_STATE_DIR": str(tmp_path / "alerts"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "run"],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "running:" in line:
                break
        time.sleep(1.0)  # inside the first pass, waiting for Prometheus
        assert not (tmp_path / "ledger.jsonl").exists()
        proc.send_signal(signal.SIGTERM)
        # a deadlocked shutdown never ends: Swarm would kill it (exit 137), here the wait
        # times out
        rest = proc.communicate(timeout=30)[1]
        assert proc.returncode == 0, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        silent.close()
    lines = (tmp_path / "ledger.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["trigger"] == "schedule"


def test_a_wall_clock_set_back_does_not_keep_failing_passes_healthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/healthz after the clock went back an hour: the monotonic clock still counts."""
    wall = [datetime(2026, 12, 7, 12, 0, tzinfo=UTC)]
    mono = [1000.0]
    monkeypatch.setattr(autoscaler.loop.time, "monotonic", lambda: mono[0])
    rec = reconciler(tmp_path, Swarm(), SlowActuator())
    rec.clock = lambda: wall[0]
    started = wall[0]
    assert rec.run_pass().ok
    window = timedelta(minutes=1)
    assert rec.healthy(window, started)
    wall[0] -= timedelta(hours=1)  # NTP steps the clock back; passes fail from now on
    mono[0] += 120.0
    wall[0] += timedelta(seconds=120)
    assert not rec.healthy(window, started)
