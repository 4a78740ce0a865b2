"""Passes asked for by events: batched until quiet, spaced from the last pass, and held to
the scheduled pass while passes fail. The runner's monotonic clock is a fake the tests move,
so whether a pass is due never depends on how fast the machine is."""

from __future__ import annotations

import inspect
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.event_batching import EventBatching, event_pass_due
from autoscaler.loop import Runner
from autoscaler.settings import Settings, SettingsError, load_settings
from tests.test_lifecycle_runner import SlowActuator, Swarm, reconciler, running, wait_for
from tests.test_loop import setup


class Mono:
    """The runner's monotonic clock: it moves only when a test moves it."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def batching(idle: float, most: float, gap: float) -> EventBatching:
    return EventBatching(
        idle=timedelta(seconds=idle), max=timedelta(seconds=most), gap=timedelta(seconds=gap)
    )


PAUSE = 0.05
"""Real time left between asks: an unbatched runner would start a pass in it."""


def test_when_an_event_pass_is_due() -> None:
    b = batching(idle=1, most=10, gap=5)
    assert event_pass_due(100, 100, None, b) == 101, "quiet for the idle wait"
    assert event_pass_due(100, 104.5, None, b) == 105.5, "each event extends the wait"
    assert event_pass_due(100, 109.5, None, b) == 110, "but never past the batch's max"
    assert event_pass_due(100, 100, 99, b) == 104, "not sooner than the gap after a pass"
    assert event_pass_due(100, 100, 90, b) == 101, "a gap long past holds nothing back"


def test_a_burst_of_events_makes_one_pass_once_they_are_quiet(tmp_path: Path) -> None:
    swarm, mono = Swarm(), Mono()
    rec = reconciler(tmp_path, swarm, SlowActuator())
    with running(rec, batching=batching(idle=0.2, most=10, gap=0), monotonic=mono) as runner:
        assert runner.passes_done.wait(5)  # the first scheduled pass
        for i in range(10):
            mono.t = 1000 + 0.1 * i  # each within the idle wait of the one before
            runner.trigger(f"docker:service:update{i}")
            time.sleep(PAUSE)
        assert swarm.reads == 1, "a pass started while events still came"
        mono.t = 1001.2  # quiet for longer than the idle wait after the last
        assert wait_for(lambda: swarm.reads == 2)
    assert rec.last is not None
    assert rec.last.trigger == ",".join(f"docker:service:update{i}" for i in range(10))


def test_a_steady_stream_of_events_gets_a_pass_at_the_batchs_max(tmp_path: Path) -> None:
    swarm, mono = Swarm(), Mono()
    rec = reconciler(tmp_path, swarm, SlowActuator())
    with running(rec, batching=batching(idle=0.5, most=2, gap=0), monotonic=mono) as runner:
        assert runner.passes_done.wait(5)
        for i in range(5):
            mono.t = 1000 + 0.4 * i  # never quiet for 0.5 s
            runner.trigger(f"ev{i}")
            time.sleep(PAUSE)
        assert swarm.reads == 1
        mono.t = 1002  # 2 s after the first event, 0.4 s after the last
        assert wait_for(lambda: swarm.reads == 2), "the stream held the pass back past its max"
    assert rec.last is not None and rec.last.trigger == "ev0,ev1,ev2,ev3,ev4"


def test_an_event_right_after_a_pass_waits_for_the_gap(tmp_path: Path) -> None:
    swarm, mono = Swarm(), Mono()
    rec = reconciler(tmp_path, swarm, SlowActuator())
    with running(rec, batching=batching(idle=0.1, most=10, gap=0.3), monotonic=mono) as runner:
        assert runner.passes_done.wait(5)  # it ended at 1000
        runner.trigger("alertmanager:autoscaler")
        mono.t = 1000.2  # quiet for longer than the idle wait, within the gap
        time.sleep(0.4)  # the events job looked again (every 0.1 s) and found it not due
        assert swarm.reads == 1, "an event pass started within the gap after a pass"
        mono.t = 1000.3
        assert wait_for(lambda: swarm.reads == 2)
    assert rec.last is not None and rec.last.trigger == "alertmanager:autoscaler"


def test_events_during_a_failure_streak_wait_for_the_scheduled_pass(tmp_path: Path) -> None:
    """A failing backend is not read once per event: the backed-off scheduled pass takes
    the events' asks, and an event never brings it forward."""
    rec, swarm, *_ = setup(tmp_path)
    swarm.down = True
    mono = Mono()
    runner = Runner(
        rec,
        interval=timedelta(hours=1),
        max_backoff=timedelta(hours=2),
        batching=batching(idle=0.1, most=1, gap=0),
        monotonic=mono,
    )
    runner.start()
    try:
        assert wait_for(lambda: runner.failures == 1)
        for i in range(5):
            runner.trigger(f"ev{i}")
            mono.t += 60  # far past the idle wait, the batch's max and the gap
            time.sleep(PAUSE)
        time.sleep(0.2)
        assert swarm.reads == 1, "an event started a pass before the backoff ended"
        job = runner.scheduler.get_job("interval")
        assert job.trigger.interval == timedelta(hours=2), "an event changed the backoff"
        swarm.down = False
        runner.scheduler.modify_job("interval", next_run_time=datetime.now(UTC))  # it ends
        assert wait_for(lambda: swarm.reads == 2)
        assert wait_for(lambda: runner.failures == 0)
        assert rec.last is not None and rec.last.trigger == "ev0,ev1,ev2,ev3,ev4,schedule"
        runner.trigger("after")  # the streak is over: events have their own passes again
        mono.t += 1
        assert wait_for(lambda: swarm.reads == 3)
        assert rec.last.trigger == "after"
    finally:
        runner.stop()


def test_scheduled_passes_keep_their_timing_whatever_the_gap(tmp_path: Path) -> None:
    swarm = Swarm()
    rec = reconciler(tmp_path, swarm, SlowActuator())
    hour = batching(idle=3600, most=3600, gap=3600)
    with running(rec, every=timedelta(seconds=0.2), batching=hour, monotonic=Mono()) as runner:
        runner.trigger("docker:node:update")
        assert wait_for(lambda: swarm.reads >= 3), "the gap held a scheduled pass back"
    assert rec.last is not None and rec.last.trigger == "schedule"


def test_stop_while_an_event_pass_is_not_due_yet_returns(tmp_path: Path) -> None:
    """Its job keeps looking again (the fake clock never moves); stop() must not wait on
    it, nor it on the scheduler stop() is shutting down."""
    swarm = Swarm()
    rec = reconciler(tmp_path, swarm, SlowActuator())
    with running(rec, batching=batching(idle=0.01, most=1, gap=0), monotonic=Mono()) as runner:
        assert runner.passes_done.wait(5)
        runner.trigger("docker:service:update")
        time.sleep(0.1)  # several looks, each adding the job again
        stopper = threading.Thread(target=runner.stop)
        stopper.start()
        stopper.join(30)
        assert not stopper.is_alive(), "stop() hung"
    assert swarm.reads == 1


def test_a_batch_wait_too_long_for_a_date_is_held_to_the_scheduled_pass(tmp_path: Path) -> None:
    swarm = Swarm()
    rec = reconciler(tmp_path, swarm, SlowActuator())
    forever = EventBatching(idle=timedelta.max, max=timedelta.max, gap=timedelta.max)
    with running(rec, batching=forever) as runner:
        assert runner.passes_done.wait(5)
        before = datetime.now(UTC)
        runner.trigger("docker:service:update")  # would overflow the job's date
        job = runner.scheduler.get_job("events")
        assert job is not None and job.next_run_time <= before + timedelta(hours=1, minutes=1)


def test_batch_settings_defaults_and_validation() -> None:
    s = Settings()
    assert (s.event_batch_idle, s.event_batch_max, s.event_min_gap) == (
        timedelta(0),
        timedelta(seconds=10),
        timedelta(seconds=1),
    )
    assert EventBatching() == EventBatching(
        idle=s.event_batch_idle, max=s.event_batch_max, gap=s.event_min_gap
    )
    off = load_settings({"event_batch_idle": "0", "event_batch_max": "0", "event_min_gap": "0"})
    assert off.event_batch_max == timedelta(0)
    with pytest.raises(SettingsError) as e:
        load_settings({"event_batch_idle": "20s"})
    assert e.value.problems == [
        "AUTOSCALER_EVENT_BATCH_MAX: must be at least AUTOSCALER_EVENT_BATCH_IDLE (20s), not 10s"
    ]


class _Built(Exception):
    pass


def test_autoscaler_run_gives_the_runner_the_batch_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import autoscaler.loop
    from autoscaler.cli import build_parser, cmd_run

    got: list[object] = []

    def record(*args: object, **kwargs: object) -> None:
        got.append(inspect.signature(Runner).bind(*args, **kwargs).arguments.get("batching"))
        raise _Built  # the runner is all this test needs of `run`

    (tmp_path / "rules").mkdir()
    for name, value in {
        "EVENT_BATCH_IDLE": "2s",
        "EVENT_BATCH_MAX": "30s",
        "EVENT_MIN_GAP": "0",
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
        "LEDGER": "",
        "ALERTS_STATE_DIR": "",
    }.items():
        monkeypatch.setenv(f"AUTOSCALER_{name}", value)
    monkeypatch.setattr(autoscaler.loop, "Runner", record)
    with pytest.raises(_Built):
        cmd_run(build_parser().parse_args(["run", "--rules", str(tmp_path / "rules")]))
    assert got == [batching(idle=2, most=30, gap=0)]


def test_a_webhook_pass_starts_at_once_whatever_the_batching(tmp_path: Path) -> None:
    """An Alertmanager webhook is grouped and spaced by Alertmanager already, and sent to be
    acted on: neither the gap, nor the idle wait, nor a failure streak holds it back."""
    rec, swarm, *_ = setup(tmp_path)
    swarm.down = True
    hour = batching(idle=3600, most=3600, gap=3600)
    runner = Runner(rec, timedelta(hours=1), timedelta(hours=2), batching=hour, monotonic=Mono())
    runner.start()
    try:
        assert wait_for(lambda: runner.failures == 1)
        runner.trigger("docker:node:update")  # waits: within the gap, in a failure streak
        swarm.down = False
        runner.trigger_now("alertmanager:autoscaler")
        assert wait_for(lambda: runner.failures == 0)
        assert rec.last is not None
        assert rec.last.trigger == "docker:node:update,alertmanager:autoscaler"
    finally:
        runner.stop()


def test_autoscaler_run_passes_webhooks_at_once_and_docker_events_batched() -> None:
    import ast

    import autoscaler.cli

    tree = ast.parse(inspect.getsource(autoscaler.cli.cmd_run))
    hooks = next(
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and ast.unparse(n.func) == "ServerHooks"
    )
    given = {k.arg: ast.unparse(k.value) for k in hooks.keywords}
    assert given["trigger"] == "runner.trigger_now"
    watcher = next(
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and ast.unparse(n.func) == "DockerEventWatcher"
    )
    assert [ast.unparse(a) for a in watcher.args][1] == "runner.trigger"
    reconnect = {k.arg: ast.unparse(k.value) for k in watcher.keywords}["on_reconnect"]
    assert reconnect == "runner.trigger_now"
