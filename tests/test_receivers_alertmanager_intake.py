"""A real Alertmanager posting its webhook to the sidecar's ``/webhook/alertmanager``,
configured as docs/operations.md shows (a bearer token read from a file)."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from autoscaler.lab.backends import Backend, start_alertmanager
from autoscaler.metrics import SidecarMetrics
from autoscaler.server import HttpServer, ServerHooks
from tests.fixtures_backends import need_binary

TOKEN = "intake-token-7f3a"


@pytest.fixture
def intake() -> Iterator[tuple[HttpServer, list[str], SidecarMetrics]]:
    triggers: list[str] = []
    metrics = SidecarMetrics()
    hooks = ServerHooks(
        metrics=metrics,
        healthy=lambda: (True, {}),
        last_plan=lambda: None,
        trigger=triggers.append,
        webhook_token=TOKEN,
    )
    server = HttpServer("127.0.0.1:0", hooks)
    server.start()
    try:
        yield server, triggers, metrics
    finally:
        server.stop()


def _alertmanager(folder: Path, port: int, token: str) -> Backend:
    need_binary("prometheus-alertmanager", "prometheus-alertmanager")
    (folder / "token").write_text(token + "\n", encoding="utf-8")
    return start_alertmanager(
        folder,
        f"""
route:
  receiver: autoscaler
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: autoscaler
    webhook_configs:
      - url: http://127.0.0.1:{port}/webhook/alertmanager
        send_resolved: true
        max_alerts: 50
        http_config:
          authorization:
            credentials_file: {folder / "token"}
""",
    )


def _fire(am: Backend) -> None:
    alert = {
        "labels": {"alertname": "ShinyProxySeatsShort", "severity": "warning"},
        "annotations": {"summary": "seats are short"},
        "startsAt": dt.datetime.now(dt.UTC).isoformat(),
    }
    requests.post(f"{am.url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()


def _count(metrics: SidecarMetrics, code: str) -> float:
    value = metrics.registry.get_sample_value("autoscaler_webhook_requests_total", {"result": code})
    return value or 0.0


def _wait_for(check: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_a_real_alertmanagers_webhook_triggers_a_pass(
    intake: tuple[HttpServer, list[str], SidecarMetrics],
) -> None:
    server, triggers, metrics = intake
    folder = Path(tempfile.mkdtemp(prefix="test-intake-am-"))
    am = _alertmanager(folder, server.port, TOKEN)
    try:
        _fire(am)
        _wait_for(lambda: triggers)
    finally:
        am.stop()
        shutil.rmtree(folder, ignore_errors=True)
    assert triggers[0] == "alertmanager:autoscaler"
    assert _count(metrics, "200") >= 1
    assert _count(metrics, "400") == 0


def test_a_real_alertmanager_with_the_wrong_token_is_refused(
    intake: tuple[HttpServer, list[str], SidecarMetrics],
) -> None:
    server, triggers, metrics = intake
    folder = Path(tempfile.mkdtemp(prefix="test-intake-am-"))
    am = _alertmanager(folder, server.port, "not-the-token")
    try:
        _fire(am)
        _wait_for(lambda: _count(metrics, "401") >= 1)
    finally:
        am.stop()
        shutil.rmtree(folder, ignore_errors=True)
    assert _count(metrics, "401") >= 1
    assert triggers == []
