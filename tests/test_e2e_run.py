"""End to end: `autoscaler run` (the real command, in its own process) against a real
swarm and a real Prometheus scales a real service up when its signal rises, back down
after the stabilisation window, and holds when Prometheus is stopped mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
from docker.types import ServiceMode

from autoscaler.lab.backends import PrometheusBackend, start_prometheus
from autoscaler.lab.engines import SwarmCluster
from autoscaler.lab.exposition_server import ExpositionServer
from autoscaler.lab.ports import free_port
from tests.fixtures_backends import need_binary
from tests.fixtures_swarm import wait_until

pytestmark = [pytest.mark.real, pytest.mark.slow]

SERVICE = "e2e-api"
RULES = f"""
signals:
  load:
    prometheus:
      query: sum(api_load)
    max_age: 30s
services:
  api:
    service: {SERVICE}
    min: 1
    max: 4
    target_tracking:
      - signal: load
        average_value: 10
    behavior:
      scale_down:
        stabilization_window: 6s
"""


def load_text(value: float) -> str:
    return f"# TYPE api_load gauge\napi_load {value}\n"


def replicas(client: docker.DockerClient) -> int:
    spec = client.api.inspect_service(SERVICE)["Spec"]
    return int(spec["Mode"]["Replicated"]["Replicas"])


@pytest.fixture
def target() -> Iterator[ExpositionServer]:
    with ExpositionServer(load_text(0)) as server:
        yield server


@pytest.fixture
def prometheus(tmp_path: Path, target: ExpositionServer) -> Iterator[PrometheusBackend]:
    need_binary("prometheus", "prometheus")
    (tmp_path / "prom").mkdir()
    backend = start_prometheus(
        tmp_path / "prom",
        [
            {
                "job_name": "api",
                "metrics_path": "/actuator/prometheus",
                "static_configs": [{"targets": [f"127.0.0.1:{target.port}"]}],
            }
        ],
        scrape_interval="1s",
    )
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture
def sidecar(
    tmp_path: Path,
    swarm_cluster: SwarmCluster,
    swarm_client: docker.DockerClient,
    prometheus: PrometheusBackend,
) -> Iterator[dict[str, Any]]:
    swarm_client.services.create(
        "local/busybox:1",
        command=["sleep", "3600"],
        name=SERVICE,
        mode=ServiceMode("replicated", 1),
    )
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "api.yml").write_text(RULES)
    port = free_port()
    env = {
        **os.environ,
        "AUTOSCALER_RULES": str(rules),
        "AUTOSCALER_INTERVAL": "1s",
        "AUTOSCALER_DOCKER_HOST": swarm_cluster.manager_host,
        "AUTOSCALER_PROMETHEUS_URL": prometheus.url,
        "AUTOSCALER_LISTEN": f"127.0.0.1:{port}",
        "AUTOSCALER_LEDGER": str(tmp_path / "ledger.jsonl"),
    }
    log = (tmp_path / "sidecar.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "run"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _get(url + "/healthz"), 30, "sidecar answering /healthz")
        yield {
            "proc": proc,
            "url": url,
            "ledger": tmp_path / "ledger.jsonl",
            "log": tmp_path / "sidecar.log",
        }
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def _get(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=2)
    except requests.RequestException:
        return None


def test_scales_up_down_and_holds_when_prometheus_stops(
    swarm_client: docker.DockerClient,
    target: ExpositionServer,
    prometheus: PrometheusBackend,
    sidecar: dict[str, Any],
) -> None:
    client, url = swarm_client, sidecar["url"]
    assert replicas(client) == 1

    target.set_text(load_text(35))  # 35 / 10 per replica -> 4
    wait_until(lambda: replicas(client) == 4, 30, "scale up to 4")
    wait_until(lambda: len(_running(client)) == 4, 60, "4 running tasks")

    t_down = time.monotonic()
    target.set_text(load_text(15))  # -> 2, but only after the 6 s stabilisation window
    wait_until(lambda: replicas(client) == 2, 40, "scale down to 2")
    assert time.monotonic() - t_down >= 5, "scale-down waited for its stabilisation window"

    prometheus.stop()
    target.set_text(load_text(0))  # would mean 1 replica, if an outage were read as zero
    time.sleep(10)
    assert replicas(client) == 2, "holds while Prometheus is down"

    metrics = requests.get(url + "/metrics", timeout=5).text
    assert 'autoscaler_source_up{source="prometheus"} 0.0' in metrics
    assert 'autoscaler_signal_missing{signal="load"} 1.0' in metrics
    plan = requests.get(url + "/plan", timeout=5).json()
    decision = plan["decisions"][0]
    assert decision["outcome"] == "hold"
    assert any("load" in r for r in decision["reasons"]), decision["reasons"]

    ledger = [json.loads(x) for x in sidecar["ledger"].read_text().splitlines()]
    scaled = [a["desired"] for e in ledger for a in e["actions"] if a["ok"]]
    assert scaled == [4, 2], scaled
    assert ledger[-1]["sources"]["prometheus"], "the outage is in the ledger"

    proc = sidecar["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, sidecar["log"].read_text()


def _running(client: docker.DockerClient) -> list[dict[str, Any]]:
    tasks = client.api.tasks(filters={"service": SERVICE, "desired-state": "running"})
    return [t for t in tasks if t["Status"]["State"] == "running"]
