"""Docker events from a real swarm manager trigger passes; the watcher stops cleanly."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import docker
import docker.errors
import pytest
from docker.types import ServiceMode

from autoscaler.events import DockerEventWatcher, retry_delays
from tests.fixtures_swarm import wait_until


@pytest.mark.real
def test_service_and_node_events_reach_the_trigger(swarm_client: docker.DockerClient) -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def on_event(reason: str) -> None:
        with lock:
            seen.append(reason)

    watcher = DockerEventWatcher(swarm_client, on_event)
    watcher.start()
    try:
        time.sleep(0.5)  # the stream is open
        swarm_client.services.create(
            "local/busybox:1",
            command=["sleep", "600"],
            name="events-probe",
            mode=ServiceMode("replicated", 1),
        )
        wait_until(lambda: "docker:service:create" in seen, 15, "service create event")
        node = swarm_client.nodes.list(filters={"role": "worker"})[0]
        spec = {**node.attrs["Spec"], "Availability": "pause"}
        swarm_client.api.update_node(node.id, node.attrs["Version"]["Index"], spec)
        wait_until(lambda: "docker:node:update" in seen, 15, "node update event")
    finally:
        t0 = time.monotonic()
        watcher.stop()
        assert time.monotonic() - t0 < 6, "stop() must not hang on the open stream"
    assert not watcher._thread.is_alive()


class DownEngine:
    """A Docker client whose event stream always fails: it counts the attempts."""

    def __init__(self) -> None:
        self.attempts = 0

    def events(self, **kwargs: Any) -> Any:
        self.attempts += 1
        raise docker.errors.APIError("Cannot connect to the Docker daemon")


def test_engine_down_is_retried_not_fatal() -> None:
    engine = DownEngine()
    watcher = DockerEventWatcher(engine, lambda r: None, max_backoff=0.04, first_delay=0.01)
    watcher.start()
    try:
        wait_until(lambda: engine.attempts >= 6, timeout=10, what="six connection attempts")
        assert watcher._thread.is_alive()
    finally:
        watcher.stop()
    assert not watcher._thread.is_alive()
    attempts = engine.attempts
    time.sleep(0.1)
    assert engine.attempts == attempts  # stopped: no more attempts


def test_retry_delays_double_up_to_the_cap() -> None:
    assert list(itertools.islice(retry_delays(1.0, 30.0), 7)) == [1, 2, 4, 8, 16, 30, 30]
    assert list(itertools.islice(retry_delays(1.0, 0.2), 3)) == [0.2, 0.2, 0.2]
