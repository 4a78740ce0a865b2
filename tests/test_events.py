"""Docker events from a real swarm manager trigger passes; the watcher stops cleanly."""

from __future__ import annotations

import threading
import time

import docker
from docker.types import ServiceMode

from autoscaler.events import DockerEventWatcher
from tests.fixtures_swarm import wait_until


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


def test_engine_down_is_retried_not_fatal() -> None:
    client = docker.DockerClient(
        base_url="unix:///nonexistent/docker.sock", timeout=1, version="1.41"
    )
    watcher = DockerEventWatcher(client, lambda r: None, max_backoff=0.2)
    watcher.start()
    time.sleep(0.5)
    assert watcher._thread.is_alive(), "keeps retrying with capped backoff"
    watcher.stop()
    assert not watcher._thread.is_alive()
