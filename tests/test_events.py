"""Docker events from a real swarm manager trigger passes; the watcher stops cleanly."""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from typing import Any

import docker
import docker.errors
import pytest
from docker.types import ServiceMode

from autoscaler.events import DockerEventWatcher, retry_delays
from autoscaler.lab.engines import SwarmCluster
from autoscaler.lab.image import BUSYBOX_IMAGE
from tests.fixtures_swarm import restart_engine, wait_until


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
        assert time.monotonic() - t0 < 3, "stop() must not hang on the open stream"
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
    t0 = time.monotonic()
    watcher.start()
    try:
        wait_until(lambda: engine.attempts >= 6, timeout=10, what="six connection attempts")
        assert time.monotonic() - t0 >= 0.01 + 0.02 + 0.04 * 3  # waited between attempts
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


class ClosingEngine:
    """An engine (or a proxy in front of it) that closes every event stream at once."""

    def __init__(self) -> None:
        self.attempts = 0

    def events(self, **kwargs: Any) -> Any:
        self.attempts += 1
        return iter(())


def test_a_stream_that_ends_at_once_is_not_reopened_in_a_busy_loop() -> None:
    engine = ClosingEngine()
    seen: list[str] = []
    watcher = DockerEventWatcher(engine, seen.append, max_backoff=0.2, first_delay=0.05)
    watcher.start()
    try:
        time.sleep(1.0)
    finally:
        watcher.stop()
    assert not watcher._thread.is_alive()
    # 0.05 + 0.1 + 0.2 + 0.2 ... within one second: about 7 streams, not thousands
    assert 3 <= engine.attempts <= 10, engine.attempts
    assert seen == ["docker:reconnected"] * (engine.attempts - 1)


class SlowToConnect:
    """A real engine's client whose event stream opens only once ``release`` is set."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.connecting = threading.Event()
        self.release = threading.Event()

    def events(self, **kwargs: Any) -> Any:
        self.connecting.set()
        self.release.wait(10)
        return self.client.events(**kwargs)


@pytest.mark.real
def test_stop_while_the_stream_is_being_opened(swarm_client: docker.DockerClient) -> None:
    """stop() sees no stream to close yet: the thread must not go on to wait for events."""
    engine = SlowToConnect(swarm_client)
    watcher = DockerEventWatcher(engine, lambda r: None)
    watcher.start()
    try:
        assert engine.connecting.wait(5)
        stopper = threading.Thread(target=watcher.stop)
        t0 = time.monotonic()
        stopper.start()
        wait_until(watcher._stop.is_set, 5, "stop asked")
        engine.release.set()
        stopper.join(10)
        assert time.monotonic() - t0 < 3, "stop() waited for an event that never came"
        assert not watcher._thread.is_alive()
    finally:
        engine.release.set()
        stream = watcher._stream
        if stream is not None:  # the old thread left waiting on it: let it go
            stream.close()


@pytest.mark.real
def test_a_restarted_engine_is_followed_again_and_a_pass_covers_the_gap(
    swarm_cluster: SwarmCluster,
) -> None:
    """Events of the restart itself are lost; one pass on reconnection makes up for them."""
    name = f"ev{secrets.token_hex(3)}"
    engine = swarm_cluster.add_worker(name, join=False)  # an engine of its own to restart
    client = engine.client()
    seen: list[str] = []
    lock = threading.Lock()

    def on_event(reason: str) -> None:
        with lock:
            seen.append(reason)

    def count(reason: str) -> int:
        with lock:
            return seen.count(reason)

    watcher = DockerEventWatcher(client, on_event, max_backoff=0.5, first_delay=0.1)
    watcher.start()
    try:
        client.api.init_swarm(advertise_addr=engine.ip, listen_addr=f"{engine.ip}:2377")
        time.sleep(0.5)  # the stream is open
        mode = ServiceMode("replicated", 0)
        client.services.create(BUSYBOX_IMAGE, ["sleep", "600"], name="before", mode=mode)
        wait_until(lambda: count("docker:service:create") == 1, 15, "first event")
        assert count("docker:reconnected") == 0

        restart_engine(swarm_cluster, name, down_for=1.0)
        wait_until(lambda: count("docker:reconnected") == 1, 30, "a pass on reconnection")
        client.services.create(BUSYBOX_IMAGE, ["sleep", "600"], name="after", mode=mode)
        wait_until(lambda: count("docker:service:create") == 2, 15, "events after the restart")
        assert count("docker:reconnected") == 1
    finally:
        watcher.stop()
        client.close()
        swarm_cluster.remove_worker(name)
    assert not watcher._thread.is_alive()
