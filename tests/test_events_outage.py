"""A broken event stream is logged when it breaks and when it works again, not per retry."""

from __future__ import annotations

import logging
import threading
from typing import Any

import docker.errors
import pytest

from autoscaler.events import DockerEventWatcher
from tests.fixtures_swarm import wait_until


class OpenStream:
    """An event stream that yields ``events`` and then stays open until closed."""

    def __init__(self, events: list[dict[str, str]]) -> None:
        self.events = list(events)
        self.closed = threading.Event()

    def __iter__(self) -> OpenStream:
        return self

    def __next__(self) -> dict[str, str]:
        if self.events:
            return self.events.pop(0)
        self.closed.wait()
        raise StopIteration

    def close(self) -> None:
        self.closed.set()


class FlakyEngine:
    """Refuses the event stream ``down`` times, then serves one that delivers an event;
    ``down_again`` more refusals follow once that stream is closed by ``cut()``."""

    def __init__(self, down: int, down_again: int = 0) -> None:
        self.plan = ["down"] * down + ["up"] + ["down"] * down_again + ["up"]
        self.attempts = 0
        self.streams: list[OpenStream] = []

    def events(self, **kwargs: Any) -> Any:
        step = self.plan[min(self.attempts, len(self.plan) - 1)]
        self.attempts += 1
        if step == "down":
            raise docker.errors.APIError("Cannot connect to the Docker daemon")
        stream = OpenStream([{"Type": "service", "Action": "create"}])
        self.streams.append(stream)
        return stream

    def cut(self) -> None:
        self.streams[-1].close()


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "autoscaler.events" and r.levelno == level
    ]


def test_an_engine_down_for_many_attempts_is_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="autoscaler.events")
    engine = FlakyEngine(down=8)
    seen: list[str] = []
    watcher = DockerEventWatcher(engine, seen.append, max_backoff=0.02, first_delay=0.01)
    watcher.start()
    try:
        wait_until(lambda: "docker:service:create" in seen, 10, "the event after the outage")
        wait_until(lambda: records(caplog, logging.INFO), 10, "the line saying it is back")
    finally:
        watcher.stop()
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert "Cannot connect to the Docker daemon" in warnings[0]
    assert len(records(caplog, logging.DEBUG)) == 7  # the other attempts stay findable
    (back,) = records(caplog, logging.INFO)
    assert "works again" in back and "8 failure(s)" in back


def test_a_second_outage_after_recovery_is_warned_about_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="autoscaler.events")
    engine = FlakyEngine(down=3, down_again=4)
    seen: list[str] = []
    watcher = DockerEventWatcher(engine, seen.append, max_backoff=0.02, first_delay=0.01)
    watcher.start()
    try:
        wait_until(lambda: len(engine.streams) == 1 and seen, 10, "the first stream")
        wait_until(lambda: records(caplog, logging.INFO), 10, "the first recovery")
        engine.cut()  # the engine restarts: the working stream ends
        wait_until(lambda: len(records(caplog, logging.INFO)) == 2, 10, "the second recovery")
    finally:
        watcher.stop()
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 2, warnings
    assert "failed" in warnings[0] and "ended" in warnings[1]
    assert "3 failure(s)" in records(caplog, logging.INFO)[0]
    assert "5 failure(s)" in records(caplog, logging.INFO)[1]  # the end, then 4 refusals
    assert seen.count("docker:reconnected") == 2


def test_a_stream_that_first_opens_after_failed_attempts_asks_for_a_catch_up_pass() -> None:
    """The sidecar started while the manager was unreachable: its passes failed and are
    backed off, so the stream's first opening must ask for a pass at once."""
    engine = FlakyEngine(down=2)
    seen: list[str] = []
    watcher = DockerEventWatcher(engine, seen.append, max_backoff=0.02, first_delay=0.01)
    watcher.start()
    try:
        wait_until(lambda: "docker:service:create" in seen, 10, "the first event")
    finally:
        watcher.stop()
    assert seen == ["docker:reconnected", "docker:service:create"]


def test_a_stream_open_at_the_first_attempt_asks_for_no_extra_pass() -> None:
    """At start the scheduled pass runs at once; the first stream adds nothing to it."""
    engine = FlakyEngine(down=0)
    seen: list[str] = []
    watcher = DockerEventWatcher(engine, seen.append, max_backoff=0.02, first_delay=0.01)
    watcher.start()
    try:
        wait_until(lambda: "docker:service:create" in seen, 10, "the first event")
    finally:
        watcher.stop()
    assert seen == ["docker:service:create"]


def test_the_catch_up_pass_goes_where_it_is_run_at_once() -> None:
    """Events are spaced and held while passes fail; the catch-up after an outage is not:
    a manager reachable again is what ends a streak of failing passes."""
    engine = FlakyEngine(down=2)
    events: list[str] = []
    at_once: list[str] = []
    watcher = DockerEventWatcher(
        engine, events.append, max_backoff=0.02, first_delay=0.01, on_reconnect=at_once.append
    )
    watcher.start()
    try:
        wait_until(lambda: "docker:service:create" in events, 10, "the first event")
    finally:
        watcher.stop()
    assert (at_once, events) == (["docker:reconnected"], ["docker:service:create"])
