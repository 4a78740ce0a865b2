"""A real Docker Swarm (a manager and two workers, each a dockerd of its own) for the session.

Skipped with the reason when not root or when dockerd, nsenter, unshare, ip or busybox is
missing. Stopped, with its namespaces, veths, mounts and folder, when the session ends,
also after failures.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from autoscaler.lab import dockerd
from autoscaler.lab.engines import SwarmCluster
from autoscaler.lab.removal import STOP_GRACE, engine_pid
from autoscaler.lab.teardown import stop_processes
from tests.realparts import missing_real_part

log = logging.getLogger(__name__)

NEEDED = {
    "dockerd": "docker.io",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "ip": "iproute2",
    "busybox": "busybox-static",
}


def swarm_lab_missing() -> str | None:
    """Why a real swarm cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "a real swarm needs root (dockerd, network namespaces)"
    for binary, package in NEEDED.items():
        if shutil.which(binary) is None:
            return f"{binary} not installed (apt-get install {package})"
    return None


def need_swarm_lab() -> None:
    reason = swarm_lab_missing()
    if reason:
        missing_real_part(reason)


def lab_folder(prefix: str) -> Path:
    """A short private folder (engine sockets live under it and must stay short)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A run stopped by SIGTERM (``timeout pytest ...``) still tears the lab down: pytest
    runs fixture teardowns after a KeyboardInterrupt, not after a bare SIGTERM."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def swarm_cluster() -> Iterator[SwarmCluster]:
    need_swarm_lab()
    folder = lab_folder("swarm-")
    cluster = None
    with sigterm_as_interrupt():
        try:
            cluster = SwarmCluster.start(folder / "lab", workers=2)
            log.info("swarm_cluster started in %.2fs", cluster.start_seconds)
            yield cluster
        finally:
            if cluster is not None:
                cluster.stop()
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def swarm_client(swarm_cluster: SwarmCluster) -> Iterator[docker.DockerClient]:
    """The manager's client; services created during the test are removed afterwards and
    every node is set back to ``active``, so tests sharing the swarm do not see each other."""
    client = swarm_cluster.client()
    before = {s["ID"] for s in client.api.services()}
    try:
        yield client
    finally:
        for svc in client.api.services():
            if svc["ID"] not in before:
                with contextlib.suppress(docker.errors.NotFound):
                    client.api.remove_service(svc["ID"])
        for node in client.api.nodes():
            if node["Spec"].get("Availability") != "active":
                spec = {**node["Spec"], "Availability": "active"}
                client.api.update_node(node["ID"], node["Version"]["Index"], spec)


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met after {timeout:g}s")
        time.sleep(0.1)


def running_tasks(client: docker.DockerClient, service: str) -> list[dict[str, Any]]:
    tasks = client.api.tasks(filters={"service": service, "desired-state": "running"})
    return [t for t in tasks if t["Status"]["State"] == "running"]


def restart_engine(cluster: SwarmCluster, name: str, down_for: float = 0.0) -> None:
    """Stop one engine of the lab by its pid (SIGTERM, as a restart of dockerd does), leave
    it down ``down_for`` seconds, and start it again on the same folders and socket."""
    rec = cluster._engine(name)
    pid = engine_pid(rec)
    if pid is not None and stop_processes([pid], STOP_GRACE):
        raise RuntimeError(f"engine {name} (pid {pid}) would not stop")
    cluster._reap([name])
    time.sleep(down_for)
    proc = cluster._launch(rec)
    api = dockerd.wait_ready(rec, proc, time.monotonic() + 60, lambda: False)
    api.close()
