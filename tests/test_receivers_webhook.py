"""The webhook receiver beside a real Alertmanager: the same alerts, the same message."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from autoscaler.alerts.config import RouteConfig, WebhookConfig
from autoscaler.alerts.dispatch import CompiledConfig, DeliveryError, Dispatcher
from autoscaler.alerts.model import Alert, Notification
from autoscaler.alerts.notify_log import NotifyLog
from autoscaler.alerts.receivers.webhook import WebhookIntegration
from autoscaler.alerts.routing import Route
from autoscaler.alerts.silences import Silences
from autoscaler.lab.backends import start_alertmanager
from tests.fixtures_backends import need_binary

NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


class Capture:
    """A webhook endpoint that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                capture.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.bodies


@pytest.fixture
def capture() -> Iterator[Capture]:
    c = Capture()
    c.thread.start()
    try:
        yield c
    finally:
        c.server.shutdown()
        c.server.server_close()
        c.thread.join(5)


def _dispatch_once(alerts: list[Alert], integration: WebhookIntegration, now: dt.datetime) -> None:
    route = RouteConfig.model_validate(
        {"receiver": "hook", "group_by": ["alertname"], "group_wait": "0s"}
    )
    config = CompiledConfig(Route.build(route), {"hook": [integration]})
    dispatcher = Dispatcher(config, NotifyLog(), Silences())
    dispatcher.put(alerts, now)
    dispatcher.tick(now)
    dispatcher.close()


def test_a_truncated_webhook_message_describes_the_alerts_it_carries_as_alertmanager_does(
    capture: Capture,
) -> None:
    need_binary("prometheus-alertmanager", "prometheus-alertmanager")
    labels = [
        {"alertname": "SeatsShort", "node": "a", "severity": "critical"},
        {"alertname": "SeatsShort", "node": "b", "severity": "warning"},
    ]
    notes = [{"summary": "node a is full"}, {"summary": "node b is full"}]
    folder = Path(tempfile.mkdtemp(prefix="test-webhook-am-"))
    am = start_alertmanager(
        folder,
        f"""
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
receivers:
  - name: hook
    webhook_configs:
      - url: {capture.url}
        max_alerts: 1
""",
    )
    try:
        started = dt.datetime.now(dt.UTC)
        posted = [
            {"labels": ls, "annotations": ns, "startsAt": started.isoformat()}
            for ls, ns in zip(labels, notes, strict=True)
        ]
        requests.post(f"{am.url}/api/v2/alerts", json=posted, timeout=5).raise_for_status()
        (theirs,) = capture.wait(1)[:1]
    finally:
        am.stop()
        shutil.rmtree(folder, ignore_errors=True)

    alerts = [Alert(ls, ns, starts_at=started) for ls, ns in zip(labels, notes, strict=True)]
    _dispatch_once(alerts, WebhookIntegration(WebhookConfig(url=capture.url, max_alerts=1)), NOW)
    ours = capture.wait(2)[1]

    fields = ("status", "truncatedAlerts", "groupLabels", "commonLabels", "commonAnnotations")
    assert {k: ours[k] for k in fields} == {k: theirs[k] for k in fields}
    assert ours["commonLabels"]["severity"] == "critical"  # the carried alert's, node a
    assert [a["labels"] for a in ours["alerts"]] == [a["labels"] for a in theirs["alerts"]]


def test_a_truncated_webhook_message_whose_carried_alerts_resolved_is_resolved(
    capture: Capture,
) -> None:
    resolved = Alert({"alertname": "X", "node": "a"}, starts_at=NOW, ends_at=NOW)
    firing = Alert({"alertname": "X", "node": "b"}, starts_at=NOW)
    n = Notification(
        receiver="hook",
        group_key='{}:{alertname="X"}',
        status="firing",
        alerts=(resolved, firing),
        group_labels={"alertname": "X"},
        common_labels={"alertname": "X"},
        common_annotations={},
        external_url="",
        now=NOW,
    )
    WebhookIntegration(WebhookConfig(url=capture.url, max_alerts=1)).send(n)
    (body,) = capture.wait(1)
    assert (body["status"], body["truncatedAlerts"]) == ("resolved", 1)
    assert [a["status"] for a in body["alerts"]] == ["resolved"]
    assert body["commonLabels"] == {"alertname": "X", "node": "a"}


def test_a_url_file_without_an_http_url_fails_at_once_naming_the_file(tmp_path: Path) -> None:
    url_file = tmp_path / "hook_url"
    url_file.write_text("hooks.example.org/T0SECRET/B0SECRET\n", encoding="utf-8")
    slept: list[float] = []
    integ = WebhookIntegration(WebhookConfig(url_file=url_file), sleep=slept.append)
    n = Notification(
        receiver="hook",
        group_key="{}:{}",
        status="firing",
        alerts=(Alert({"alertname": "X"}, starts_at=NOW),),
        group_labels={},
        common_labels={"alertname": "X"},
        common_annotations={},
        external_url="",
        now=NOW,
    )
    with pytest.raises(DeliveryError) as e:
        integ.send(n)
    assert str(e.value) == f"webhook: {url_file} holds no http(s) URL"
    assert slept == []  # not retried: the file is wrong until someone fixes it
