"""Servers that echo the request in their error answers: a proxy's error page, a framework's
"Cannot POST /path", a debug page that lists the headers. What they echo (a webhook URL's
path and query, the Authorization header of basic auth) must not reach the sidecar's
errors, plans, ledger or logs.

Real parts: HTTP servers on loopback, requests, and the ``autoscaler`` command itself.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from autoscaler.alerts.config import AlertmanagerForward, SlackConfig, WebhookConfig
from autoscaler.alerts.dispatch import DeliveryError
from autoscaler.alerts.receivers.alertmanager import AlertmanagerIntegration
from autoscaler.alerts.receivers.http import RateLimiter
from autoscaler.alerts.receivers.slack import SlackIntegration
from autoscaler.alerts.receivers.webhook import WebhookIntegration
from autoscaler.sources.errors import SourceError
from autoscaler.sources.prometheus import PrometheusClient
from tests.test_secret_leaks import notification

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "PromPassw0rd9"
BASIC = base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
SLACK_TOKEN = "XxSlackWebhookSecret0123"

Answer = Callable[[BaseHTTPRequestHandler, str], tuple[int, str]]
"""(the request, its body) -> (status, body of the answer)."""


class EchoServer:
    """Answers every request as ``answer`` says, from what the request held."""

    def __init__(self, answer: Answer) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                status, text = answer(self, body)
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def prometheus_echo(status: int) -> Answer:
    """Prometheus' error JSON whose text repeats the request line and its headers."""

    def answer(req: BaseHTTPRequestHandler, body: str) -> tuple[int, str]:
        headers = ", ".join(f"{k}: {v}" for k, v in req.headers.items())
        error = f"{req.command} {req.path} ({headers})"
        return status, json.dumps({"status": "error", "errorType": "bad_data", "error": error})

    return answer


def leaked(text: str) -> list[str]:
    return [s for s in (PASSWORD, BASIC, BASIC.rstrip("=")) if s in text]


@pytest.mark.parametrize("status", [200, 400, 401, 500, 502])
def test_an_echoed_authorization_header_is_hidden_in_source_errors(status: int) -> None:
    server = EchoServer(prometheus_echo(status))
    try:
        client = PrometheusClient(f"http://ops:{PASSWORD}@127.0.0.1:{server.port}", 2)
        with pytest.raises(SourceError) as e:
            client.query("sum(up)")
    finally:
        server.stop()
    text = f"{e.value} {e.value!r}"
    assert not leaked(text), text
    assert "/api/v1/query" in text and "Basic ***" in text  # the echo is still told


def test_plan_and_ledger_show_no_echoed_credentials(tmp_path: Path) -> None:
    """`autoscaler plan` and `run --once` at DEBUG, every backend answering with its echo."""
    server = EchoServer(prometheus_echo(500))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yml").write_text(
        "signals:\n"
        "  up: {prometheus: {query: 'sum(up)'}}\n"
        "  logins: {actuator: {metric: userLogins_total}}\n"
        "services:\n"
        "  api:\n"
        "    service: api\n"
        "    min: 1\n"
        "    max: 5\n"
        "    target_tracking:\n"
        "      - {signal: up, average_value: 1}\n"
        "      - {signal: logins, average_value: 1}\n"
    )
    ledger = tmp_path / "ledger.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AUTOSCALER_LOG_LEVEL": "DEBUG",
        "AUTOSCALER_RULES": str(rules),
        "AUTOSCALER_DOCKER_HOST": "tcp://127.0.0.1:1",  # down
        "AUTOSCALER_PROMETHEUS_URL": f"http://ops:{PASSWORD}@127.0.0.1:{server.port}",
        "AUTOSCALER_ACTUATOR": f"http://ops:{PASSWORD}@127.0.0.1:{server.port}",
        "AUTOSCALER_LEDGER": str(ledger),
        "AUTOSCALER_ALERTS_STATE_DIR": "",
    }
    try:
        runs = [
            subprocess.run(
                [sys.executable, "-m", "autoscaler", *argv],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                cwd=ROOT,
            )
            for argv in (["plan", "--json"], ["run", "--once"])
        ]
    finally:
        server.stop()
    plan = json.loads(runs[0].stdout)
    assert "Basic ***" in plan["sources"]["prometheus"]["error"]  # the echo was read
    for run in runs:
        assert not leaked(run.stdout + run.stderr), run.stdout + run.stderr
        assert "Traceback" not in run.stderr
    assert "Basic ***" in ledger.read_text()
    assert not leaked(ledger.read_text())


# ---------------------------------------------------------------- alert receivers


ECHOES: dict[str, Answer] = {
    # a framework's 404, its JSON escaping "/" as PHP's json_encode and others do
    "json-escaped": lambda r, b: (
        404,
        json.dumps({"error": f"Cannot POST {r.path}"}).replace("/", "\\/"),
    ),
    # the target as the server decoded it
    "decoded": lambda r, b: (400, f"no route for {urllib.parse.unquote(r.path)}"),
    # only the last piece of the path, as a token lookup says it
    "piece": lambda r, b: (403, f"unknown token {r.path.rsplit('/', 1)[-1].split('=')[-1]}"),
    # Slack's "ok": false, its reason quoting the path
    "ok-false": lambda r, b: (200, json.dumps({"ok": False, "error": f"no_service {r.path}"})),
    # ... or only the token
    "ok-false-piece": lambda r, b: (
        200,
        json.dumps({"ok": False, "error": r.path.rsplit("/", 1)[-1].split("=")[-1]}),
    ),
}


TARGETS = (f"/services/T0AAAAAAA/B0BBBBBBB/{SLACK_TOKEN}", f"/hook?token={SLACK_TOKEN}%21")
CASES = [
    (kind, echo, target)
    for kind in ("slack", "webhook")
    for echo in sorted(ECHOES)
    for target in TARGETS
    if kind == "slack" or not echo.startswith("ok-false")  # a webhook takes any 200
]


@pytest.mark.parametrize(("kind", "echo", "target"), CASES)
def test_a_failed_delivery_never_quotes_the_url_the_server_echoes(
    kind: str, echo: str, target: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = EchoServer(ECHOES[echo])
    url_file = tmp_path / "url"
    url_file.write_text(f"http://127.0.0.1:{server.port}{target}")
    integration: SlackIntegration | WebhookIntegration
    if kind == "slack":
        integration = SlackIntegration(
            SlackConfig(api_url_file=url_file), RateLimiter(0), sleep=lambda s: None, attempts=1
        )
    else:
        integration = WebhookIntegration(
            WebhookConfig(url_file=url_file), sleep=lambda s: None, attempts=1
        )
    try:
        with pytest.raises(DeliveryError) as e:
            integration.send(notification())
    finally:
        server.stop()
    text = f"{e.value} {e.value!r}"
    assert SLACK_TOKEN not in text and SLACK_TOKEN[:12] not in text, text
    assert f"{kind}: HTTP " in text and "<secret>" in text
    assert SLACK_TOKEN not in caplog.text


def test_a_forward_to_alertmanager_never_quotes_the_credentials_the_server_echoes() -> None:
    """The URL's ``user:pass@`` goes as basic auth: an error page that lists the headers
    holds it in base64."""
    server = EchoServer(lambda r, b: (401, f"not allowed: {r.headers.get('Authorization')}"))
    forward = AlertmanagerIntegration(
        AlertmanagerForward(url=f"http://ops:{PASSWORD}@127.0.0.1:{server.port}"),
        sleep=lambda s: None,
        attempts=1,
    )
    try:
        with pytest.raises(DeliveryError) as e:
            forward.send(notification())
    finally:
        server.stop()
    text = f"{e.value} {e.value!r}"
    assert not leaked(text), text
    assert "alertmanager: HTTP 401" in text and "Basic ***" in text


def echo_text(status: int) -> Answer:
    """A page (not the backend's format) that repeats the request line and its headers."""

    def answer(req: BaseHTTPRequestHandler, body: str) -> tuple[int, str]:
        # the credentials first: a message cut short must not hide them by luck
        auth = req.headers.get("Authorization", "")
        return status, f"<html>Authorization: {auth} for {req.command} {req.path}</html>\n"

    return answer


@pytest.mark.parametrize("status", [200, 400, 500])
def test_an_influxdb_that_echoes_the_request_leaks_no_credentials(status: int) -> None:
    from autoscaler.sources.influx import InfluxReader

    server = EchoServer(echo_text(status))
    try:
        reader = InfluxReader(f"http://ops:{PASSWORD}@127.0.0.1:{server.port}", "db", None, None, 2)
        with pytest.raises(SourceError) as e:
            reader.query('SELECT count("data") FROM "event"')
        reader.close()
    finally:
        server.stop()
    text = f"{e.value} {e.value!r}"
    assert not leaked(text), text


def test_an_actuator_page_that_echoes_the_request_leaks_no_credentials() -> None:
    from autoscaler.sources.actuator import ActuatorClient

    server = EchoServer(echo_text(200))
    try:
        scrape = ActuatorClient(f"http://ops:{PASSWORD}@127.0.0.1:{server.port}", 2).scrape_all()
    finally:
        server.stop()
    ((_, error),) = scrape.failed.items()
    assert "invalid exposition text" in error
    assert not leaked(error), error


def test_a_routing_file_error_quotes_no_value(tmp_path: Path) -> None:
    # pydantic's text quotes the input, YAML's a snippet of the line
    secret = f"https://hooks.slack.com/services/T0/B0/{SLACK_TOKEN}"
    bad_value = tmp_path / "am.yml"
    # Alertmanager's global key, written where it does not belong
    bad_value.write_text(
        f"route:\n  receiver: ops\n  slack_api_url: '{secret}'\nreceivers: [{{name: ops}}]\n"
    )
    bad_yaml = tmp_path / "am2.yml"
    bad_yaml.write_text(f"route:\n  receiver: ops\n  x: '{secret}' ]\n")
    for path in (bad_value, bad_yaml):
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "autoscaler",
                "alerts",
                "test-route",
                "--config",
                str(path),
                "a=b",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert run.returncode == 1, run.stderr
        assert SLACK_TOKEN not in run.stdout + run.stderr, run.stderr
        assert str(path) in run.stderr
