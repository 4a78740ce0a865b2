"""A scrape job without any target is an alert, not silence.

With `tasks.<service>` DNS and Docker-socket discovery, a service with no running task (or a
Docker socket Prometheus cannot read) leaves its job with no target at all: `up == 0` never
happens and every alert on that job's metrics just stays quiet. For each job of
alerting/prometheus.yml a real Prometheus runs the shipped rules twice: once with every job
answering, once with that one job gone; something more must fire (or be pending) the
second time.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from autoscaler.lab.backends import start_prometheus
from autoscaler.lab.exposition_server import ExpositionServer
from tests.fixtures_backends import need_binary

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_CONFIG = ROOT / "alerting" / "prometheus.yml"
RULE_FILES = sorted((ROOT / "alerting" / "rules").glob("*.yml"))

# Jobs whose absence no rule can or needs to report, and why.
EXEMPT = {
    # Prometheus cannot report its own absence: the Watchdog stopping does.
    "prometheus": "self",
    # Grafana only draws dashboards; no alert reads its metrics.
    "grafana": "dashboards only",
}
# Labels the stack's relabelling gives node-level targets (prometheus.yml).
NODE_LABELS = {"node": "worker-1", "node_id": "n1", "node_availability": "active"}


def stack_jobs() -> list[str]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    return [job["job_name"] for job in config["scrape_configs"]]


def _get(url: str, path: str, **params: str) -> Any:
    return requests.get(f"{url}{path}", params=params, timeout=5).json()["data"]


@pytest.fixture(scope="module")
def target() -> Iterator[ExpositionServer]:
    """One endpoint that answers every scrape (each job's `up` is 1)."""
    with ExpositionServer("# nothing\n") as server:
        yield server


def active_alerts(target: ExpositionServer, jobs: list[str]) -> set[str]:
    """Alerts pending or firing on the shipped rules while only ``jobs`` have a target."""
    need_binary("prometheus", "prometheus")
    folder = Path(tempfile.mkdtemp(prefix="test-guards-"))
    backend = None
    try:
        scrape: list[dict[str, Any]] = [
            {
                "job_name": job,
                "metrics_path": "/actuator/prometheus",
                "static_configs": [
                    {
                        "targets": [f"{target.host}:{target.port}"],
                        "labels": NODE_LABELS if job in ("node-exporter", "cadvisor") else {},
                    }
                ],
            }
            for job in jobs
        ]
        backend = start_prometheus(folder, scrape, rule_files=RULE_FILES, scrape_interval="1s")
        # every group evaluated after the first scrape of every job: the Watchdog is up,
        # then one more evaluation interval
        deadline = time.monotonic() + 30
        while True:
            up = _get(backend.url, "/api/v1/query", query="count(up)")["result"]
            alerts = _get(backend.url, "/api/v1/alerts")["alerts"]
            if (up or not jobs) and any(a["labels"]["alertname"] == "Watchdog" for a in alerts):
                break
            assert time.monotonic() < deadline, "Prometheus evaluated no rule"
            time.sleep(0.2)
        time.sleep(2)
        alerts = _get(backend.url, "/api/v1/alerts")["alerts"]
        return {a["labels"]["alertname"] for a in alerts}
    finally:
        if backend is not None:
            backend.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def baseline(target: ExpositionServer) -> set[str]:
    return active_alerts(target, stack_jobs())


def test_the_exemptions_name_jobs_of_the_stack() -> None:
    assert set(EXEMPT) <= set(stack_jobs())


@pytest.mark.real
@pytest.mark.parametrize("job", [j for j in stack_jobs() if j not in EXEMPT])
def test_a_job_without_targets_raises_an_alert(
    job: str, target: ExpositionServer, baseline: set[str]
) -> None:
    assert "Watchdog" in baseline  # the rules were evaluated
    gone = active_alerts(target, [j for j in stack_jobs() if j != job])
    assert gone - baseline, f"nothing fires when job {job} has no target"
