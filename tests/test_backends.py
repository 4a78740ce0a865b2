"""The real backends start on loopback ports, answer, and are gone after stop()."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from autoscaler.lab.backends import (
    Backend,
    BackendError,
    start_alertmanager,
    start_influxd,
    start_node_exporter,
    start_prometheus,
    wait_ready,
)
from autoscaler.lab.exposition_server import ExpositionServer
from autoscaler.lab.ports import free_port, owns_listener
from tests.fixtures_backends import exposition_text, need_binary

pytestmark = pytest.mark.real

AM_CONFIG = """\
route:
  receiver: nobody
  group_wait: 0s
receivers:
  - name: nobody
"""


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def assert_stops(backend: Backend) -> None:
    assert backend.alive()
    backend.stop()
    assert not backend.alive()
    assert pid_gone(backend.pid)
    backend.stop()  # idempotent


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_prometheus_starts_scrapes_and_stops(backend_dir: Path) -> None:
    need_binary("prometheus", "prometheus")
    with ExpositionServer(exposition_text("3.1")) as target:
        prom = start_prometheus(
            backend_dir,
            [
                {
                    "job_name": "shinyproxy",
                    "metrics_path": "/actuator/prometheus",
                    "static_configs": [{"targets": [f"{target.host}:{target.port}"]}],
                }
            ],
            scrape_interval="1s",
        )
        try:
            assert prom.url.startswith("http://127.0.0.1:")
            assert (backend_dir / "prometheus.log").exists()
            deadline = time.monotonic() + 30
            while target.requests_for("/actuator/prometheus") == 0:
                assert time.monotonic() < deadline, "Prometheus never scraped the target"
                time.sleep(0.2)
        finally:
            assert_stops(prom)


def test_prometheus_with_rules_sends_alerts_to_alertmanager(backend_dir: Path) -> None:
    need_binary("prometheus", "prometheus")
    need_binary("prometheus-alertmanager", "prometheus-alertmanager")
    rules = backend_dir / "rules.yml"
    rules.write_text("groups:\n- name: t\n  rules:\n  - alert: AlwaysFiring\n    expr: vector(1)\n")
    am = start_alertmanager(backend_dir, AM_CONFIG)
    try:
        prom = start_prometheus(
            backend_dir,
            [],
            rule_files=[rules],
            alertmanager_url=am.url,
            scrape_interval="1s",
            # the first evaluation may run before the Alertmanager is discovered
            extra_args=["--rules.alert.resend-delay=1s"],
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                alerts = requests.get(f"{am.url}/api/v2/alerts", timeout=2).json()
                if any(a["labels"]["alertname"] == "AlwaysFiring" for a in alerts):
                    break
                assert time.monotonic() < deadline, "alert never reached Alertmanager"
                time.sleep(0.3)
        finally:
            assert_stops(prom)
    finally:
        assert_stops(am)


def test_node_exporter_serves_metrics_and_textfiles(backend_dir: Path) -> None:
    need_binary("prometheus-node-exporter", "prometheus-node-exporter")
    textfile = backend_dir / "node-exporter-textfile"
    textfile.mkdir()
    (textfile / "node_meta.prom").write_text('node_meta{node_name="worker-1"} 1\n')
    node = start_node_exporter(backend_dir)
    try:
        text = requests.get(f"{node.url}/metrics", timeout=5).text
        assert "node_cpu_seconds_total" in text
        assert 'node_meta{node_name="worker-1"} 1' in text
    finally:
        assert_stops(node)


def test_influxd_starts_creates_database_and_stops(backend_dir: Path) -> None:
    need_binary("influxd", "influxdb")
    influx = start_influxd(backend_dir)
    try:
        assert influx.url.startswith("http://127.0.0.1:")
        conf = (backend_dir / "influxd.conf").read_text()
        assert 'bind-address = "127.0.0.1:' in conf and "auth-enabled = false" in conf
        influx.create_database("shinyproxy_usagestats")
        show = requests.get(f"{influx.url}/query", params={"q": "SHOW DATABASES"}, timeout=5)
        assert ["shinyproxy_usagestats"] in show.json()["results"][0]["series"][0]["values"]
        assert (backend_dir / "influxd" / "meta").is_dir()
    finally:
        assert_stops(influx)


def test_two_influxd_side_by_side(backend_dir: Path) -> None:
    need_binary("influxd", "influxdb")
    a = start_influxd(backend_dir, name="influx-a")
    try:
        b = start_influxd(backend_dir, name="influx-b")
        try:
            assert a.url != b.url
        finally:
            assert_stops(b)
    finally:
        assert_stops(a)


def test_bad_config_fails_with_the_log_tail(backend_dir: Path) -> None:
    need_binary("prometheus-alertmanager", "prometheus-alertmanager")
    with pytest.raises(BackendError, match=r"alertmanager exited with code \d+") as e:
        start_alertmanager(backend_dir, "route: [this is not a route\n")
    assert "alertmanager.log" in str(e.value)
    assert "yaml" in str(e.value).lower() or "config" in str(e.value).lower()


def test_stop_escalates_to_sigkill(backend_dir: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ignoring SIGTERM', flush=True); time.sleep(120)"
    )
    log_path = backend_dir / "stubborn.log"
    log = log_path.open("ab")
    proc = subprocess.Popen([sys.executable, "-c", stubborn], stdout=log, stderr=log)
    backend = Backend("stubborn", proc, "http://127.0.0.1:1", log_path, log)
    try:
        deadline = time.monotonic() + 10
        while "ignoring" not in backend.log_tail():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        backend.stop(timeout=0.5)
        assert time.monotonic() - started < 5
        assert proc.returncode == -9
        assert pid_gone(backend.pid)
    finally:
        backend.stop()


def test_wait_ready_gives_up_in_bounded_time() -> None:
    started = time.monotonic()
    assert not wait_ready(f"http://127.0.0.1:{free_port()}/-/ready", timeout=0.5)
    assert time.monotonic() - started < 3


def test_port_taken_by_another_server_is_detected_and_retried(
    backend_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_binary("prometheus-alertmanager", "prometheus-alertmanager")
    import autoscaler.lab.backends as backends

    with ExpositionServer() as squatter:
        squatter.fail_with(200)  # answers "ready" on every path
        ports = iter([squatter.port])
        monkeypatch.setattr(backends, "free_port", lambda: next(ports, None) or free_port())
        am = start_alertmanager(backend_dir, AM_CONFIG)
        try:
            assert am.url != squatter.url
            assert owns_listener(am.pid, int(am.url.rsplit(":", 1)[1]))
            assert not owns_listener(am.pid, squatter.port)
            assert owns_listener(os.getpid(), squatter.port)
            assert "address already in use" in am.log_tail(200).lower()
        finally:
            assert_stops(am)
