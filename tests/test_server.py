"""The HTTP endpoints over a real socket on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from autoscaler.metrics import SidecarMetrics
from autoscaler.server import HttpServer, ServerHooks

TOKEN = "s3cret-token"


@pytest.fixture
def server() -> Iterator[tuple[str, list[str], dict[str, Any]]]:
    triggers: list[str] = []
    state: dict[str, Any] = {"healthy": True, "plan": None}
    hooks = ServerHooks(
        metrics=SidecarMetrics(),
        healthy=lambda: (state["healthy"], {"last_success": None}),
        last_plan=lambda: state["plan"],
        trigger=triggers.append,
        webhook_token=TOKEN,
        webhook_max_bytes=1000,
    )
    srv = HttpServer("127.0.0.1:0", hooks)
    srv.start()
    try:
        yield f"http://127.0.0.1:{srv.port}", triggers, state
    finally:
        srv.stop()


ALERT = {
    "version": "4",
    "status": "firing",
    "receiver": "autoscaler",
    "alerts": [{"status": "firing", "labels": {"alertname": "SeatsShort"}}],
}


def post(url: str, body: bytes, token: str | None = TOKEN) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(url + "/webhook/alertmanager", data=body, headers=headers, timeout=5)


def test_webhook_good_token_triggers_a_pass(server: Any) -> None:
    url, triggers, _ = server
    r = post(url, json.dumps(ALERT).encode())
    assert r.status_code == 200 and r.json() == {"status": "accepted", "alerts": 1}
    assert triggers == ["alertmanager:autoscaler"]


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", ""])
def test_webhook_bad_token_is_401_and_triggers_nothing(server: Any, token: str | None) -> None:
    url, triggers, _ = server
    r = post(url, json.dumps(ALERT).encode(), token=token)
    assert r.status_code == 401
    assert TOKEN not in r.text
    assert triggers == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1,2]",
        b'{"alerts": "x"}',
        b'{"alerts": [1]}',
        b'{"status": "odd", "alerts": []}',
        b"\xff\xfe",
        b"{" + b" " * 2000 + b"}",
    ],
)
def test_webhook_malformed_or_oversized_is_400(server: Any, body: bytes) -> None:
    url, triggers, _ = server
    r = post(url, body)
    assert r.status_code == 400
    assert "error" in r.json()
    assert triggers == []


def test_webhook_without_configured_token_refuses_everything() -> None:
    hooks = ServerHooks(
        metrics=SidecarMetrics(),
        healthy=lambda: (True, {}),
        last_plan=lambda: None,
        trigger=lambda r: None,
        webhook_token=None,
    )
    srv = HttpServer("127.0.0.1:0", hooks)
    srv.start()
    try:
        r = post(f"http://127.0.0.1:{srv.port}", json.dumps(ALERT).encode(), token="")
        assert r.status_code == 401
    finally:
        srv.stop()


def test_metrics_healthz_plan(server: Any) -> None:
    url, _, state = server
    post(url, json.dumps(ALERT).encode())
    text = requests.get(url + "/metrics", timeout=5).text
    assert 'autoscaler_webhook_requests_total{result="200"} 1.0' in text
    assert "autoscaler_passes_total" in text
    assert requests.get(url + "/healthz", timeout=5).status_code == 200
    state["healthy"] = False
    r = requests.get(url + "/healthz", timeout=5)
    assert r.status_code == 503 and r.json()["status"] == "failing"
    assert requests.get(url + "/plan", timeout=5).status_code == 404
    state["plan"] = {"actions": []}
    assert requests.get(url + "/plan", timeout=5).json() == {"actions": []}
    assert requests.get(url + "/nope", timeout=5).status_code == 404
