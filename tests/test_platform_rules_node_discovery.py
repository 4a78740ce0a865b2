"""Where Prometheus looks for each node's exporter, found the Swarm way.

The node-exporter job of alerting/prometheus.yml lists the Swarm's nodes through the Docker
API (dockerswarm_sd_configs, role nodes) and scrapes each at its address, port 9100. Docker
reports the address of some managers as 0.0.0.0 (a leader that did not create the Swarm,
moby/moby#35437; prometheus/prometheus#11060) or 127.0.0.1 (moby/moby#30119) while their
manager address (host:2377) is right. A real Prometheus reads the shipped job from a
stand-in Docker API here, and every node must be scraped at an address that reaches it: a
scrape of 0.0.0.0 reaches the Prometheus container itself, so SwarmNodeDown would page for
a healthy manager and mute every other alert about it.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from autoscaler.lab.backends import start_prometheus
from tests.fixtures_backends import need_binary

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_CONFIG = ROOT / "alerting" / "prometheus.yml"


def _node(hostname: str, role: str, addr: str, manager_addr: str | None = None) -> dict[str, Any]:
    """A node as the Docker Engine API lists it (GET /nodes)."""
    node: dict[str, Any] = {
        "ID": f"id-{hostname}",
        "Spec": {"Role": role, "Availability": "active", "Labels": {}},
        "Description": {
            "Hostname": hostname,
            "Platform": {"Architecture": "x86_64", "OS": "linux"},
            "Engine": {"EngineVersion": "26.1.4"},
        },
        "Status": {"State": "ready", "Addr": addr},
    }
    if manager_addr is not None:
        node["ManagerStatus"] = {
            "Leader": addr == "0.0.0.0",
            "Reachability": "reachable",
            "Addr": manager_addr,
        }
    return node


NODES = [
    # The leader after a fail-over: Docker's node address is 0.0.0.0.
    _node("manager-2", "manager", "0.0.0.0", "10.0.1.12:2377"),
    _node("manager-1", "manager", "10.0.1.11", "10.0.1.11:2377"),
    _node("worker-1", "worker", "10.0.2.21"),
    # An IPv6 manager address keeps its brackets.
    _node("manager-3", "manager", "0.0.0.0", "[fd00::13]:2377"),
    # The first manager of some Swarms reports its loopback address (moby/moby#30119).
    _node("manager-4", "manager", "127.0.0.1", "10.0.1.14:2377"),
]
EXPECTED = {
    "manager-2": "10.0.1.12:9100",
    "manager-1": "10.0.1.11:9100",
    "worker-1": "10.0.2.21:9100",
    "manager-3": "[fd00::13]:9100",
    "manager-4": "10.0.1.14:9100",
}


class _DockerApi(BaseHTTPRequestHandler):
    """Just enough of the Engine API for Prometheus' Swarm discovery: ping and node list."""

    def _answer(self, body: bytes) -> None:
        path = self.path.split("?", 1)[0]
        if path.endswith("/_ping"):
            payload, ctype = b"OK", "text/plain"
        elif path.endswith("/nodes"):
            payload, ctype = json.dumps(NODES).encode(), "application/json"
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Api-Version", "1.41")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def do_GET(self) -> None:
        self._answer(b"body")

    def do_HEAD(self) -> None:
        self._answer(b"")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def docker_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DockerApi)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def shipped_node_exporter_job(docker_host: str) -> dict[str, Any]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "node-exporter"]
    job = copy.deepcopy(job)
    (sd,) = job["dockerswarm_sd_configs"]
    assert sd["host"] == "unix:///var/run/docker.sock"
    sd["host"] = docker_host
    sd["refresh_interval"] = "1s"
    return dict(job)


def scrape_addresses(docker_host: str) -> dict[str, str]:
    """node label -> address scraped, as a real Prometheus relabels the shipped job."""
    need_binary("prometheus", "prometheus")
    folder = Path(tempfile.mkdtemp(prefix="test-node-discovery-"))
    backend = None
    try:
        backend = start_prometheus(folder, [shipped_node_exporter_job(docker_host)])
        deadline = time.monotonic() + 30
        while True:
            data = requests.get(f"{backend.url}/api/v1/targets", timeout=5).json()["data"]
            active = data["activeTargets"]
            if len(active) == len(NODES):
                return {t["labels"]["node"]: urlsplit(t["scrapeUrl"]).netloc for t in active}
            assert time.monotonic() < deadline, f"Prometheus found {len(active)} node(s)"
            time.sleep(0.2)
    finally:
        if backend is not None:
            backend.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.real
def test_every_node_is_scraped_at_an_address_that_reaches_it(docker_api: str) -> None:
    assert scrape_addresses(docker_api) == EXPECTED
