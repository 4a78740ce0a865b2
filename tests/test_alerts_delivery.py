"""Delivery against real servers: aiosmtpd (STARTTLS and implicit TLS), a local Slack
webhook that answers 429 and 500 before ok, and the sidecar's alerting end to end."""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import itertools
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import generate_latest

from autoscaler.alerts.config import EmailConfig, SlackConfig
from autoscaler.alerts.dispatch import DeliveryError
from autoscaler.alerts.model import Alert, Notification
from autoscaler.alerts.receivers.email import EmailIntegration
from autoscaler.alerts.receivers.http import RateLimiter
from autoscaler.alerts.receivers.slack import SlackIntegration

NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
SECRET_PATH = "/services/T0SECRET/B0SECRET/xoxSECRETtoken42"
PASSWORD = "s3cret-Passw0rd!"


def notification(status: str = "firing", severity: str = "critical") -> Notification:
    alert = Alert(
        {"alertname": "AutoscalerScaleActionFailed", "severity": severity, "subject": "api"},
        {"summary": "scale of api failed"},
        starts_at=NOW,
        ends_at=NOW if status == "resolved" else None,
    )
    return Notification(
        receiver="ops",
        group_key="{}:{}",
        status=status,
        alerts=(alert,),
        group_labels={"alertname": alert.name},
        common_labels=dict(alert.labels),
        common_annotations=dict(alert.annotations),
        external_url="",
        now=NOW,
    )


# ---------------------------------------------------------------- Slack


@dataclass
class SlackServer:
    script: list[tuple[int, dict[str, str], str]]
    """Responses to give in order; after the script, 200 ok."""
    requests: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    state = SlackServer(script=[])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append((time.monotonic(), self.path, body))
            code, headers, text = state.script.pop(0) if state.script else (200, {}, "ok")
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text.encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def slack_config(tmp_path: Path, url: str, **extra: Any) -> SlackConfig:
    secret = tmp_path / "slack_url"
    secret.write_text(url + "\n", encoding="utf-8")
    return SlackConfig.model_validate({"api_url_file": str(secret), **extra})


def test_slack_waits_for_retry_after_and_retries_5xx(
    tmp_path: Path, slack: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    slack.script = [(429, {"Retry-After": "2"}, "rate_limited"), (500, {}, "oops")]
    integ = SlackIntegration(slack_config(tmp_path, slack.url, channel="#ops"), RateLimiter())
    integ.send(notification())
    assert len(slack.requests) == 3
    (t1, path, body), (t2, _, _), (t3, _, _) = slack.requests
    assert path == SECRET_PATH
    assert t2 - t1 >= 2.0  # Retry-After honoured
    assert t3 - t2 >= 1.0  # backoff after the 500
    attachment = body["attachments"][0]
    assert attachment["color"] == "danger"
    assert attachment["title"] == "[FIRING] AutoscalerScaleActionFailed"
    assert attachment["text"] == "scale of api failed"
    assert body["channel"] == "#ops"
    assert "SECRET" not in caplog.text


def test_slack_colours_by_state_and_severity(tmp_path: Path, slack: SlackServer) -> None:
    integ = SlackIntegration(slack_config(tmp_path, slack.url), RateLimiter(interval=0))
    integ.send(notification(severity="warning"))
    integ.send(notification(status="resolved"))
    colours = [r[2]["attachments"][0]["color"] for r in slack.requests]
    assert colours == ["warning", "good"]


def test_slack_sends_at_most_one_message_per_second(tmp_path: Path, slack: SlackServer) -> None:
    limiter = RateLimiter()
    cfg = slack_config(tmp_path, slack.url)
    a, b = SlackIntegration(cfg, limiter), SlackIntegration(cfg, limiter)  # one webhook
    for integ in (a, b, a):
        integ.send(notification())
    times = [r[0] for r in slack.requests]
    assert len(times) == 3  # none dropped
    assert all(later - earlier >= 0.99 for earlier, later in itertools.pairwise(times))


def test_slack_failure_never_shows_the_webhook_url(tmp_path: Path, slack: SlackServer) -> None:
    slack.script = [(500, {}, "x")] * 3 + [(404, {}, "no_service")]
    integ = SlackIntegration(
        slack_config(tmp_path, slack.url), RateLimiter(interval=0), attempts=3, max_backoff=0.1
    )
    with pytest.raises(DeliveryError) as gave_up:
        integ.send(notification())
    assert "gave up after 3 attempts (HTTP 500)" in str(gave_up.value)
    with pytest.raises(DeliveryError) as refused:
        integ.send(notification())
    assert "HTTP 404 no_service" in str(refused.value)
    for e in (gave_up.value, refused.value):
        assert "SECRET" not in str(e) and "127.0.0.1" not in str(e)


def test_slack_config_refuses_an_inline_url() -> None:
    with pytest.raises(ValueError, match="api_url_file"):
        SlackConfig.model_validate({"api_url": "https://hooks.slack.com/services/X"})


def test_webhook_posts_alertmanagers_json(tmp_path: Path, slack: SlackServer) -> None:
    from autoscaler.alerts.config import WebhookConfig
    from autoscaler.alerts.receivers.webhook import WebhookIntegration

    secret = tmp_path / "hook_url"
    secret.write_text(slack.url)
    integ = WebhookIntegration(WebhookConfig(url_file=secret, max_alerts=1))
    n = notification()
    integ.send(Notification(**{**n.__dict__, "alerts": n.alerts * 2}))
    body = slack.requests[0][2]
    assert (body["version"], body["status"], body["receiver"], body["truncatedAlerts"]) == (
        "4",
        "firing",
        "ops",
        1,
    )
    assert body["alerts"][0]["labels"]["alertname"] == "AutoscalerScaleActionFailed"
    assert body["alerts"][0]["status"] == "firing"
    with pytest.raises(ValueError, match="url_file"):
        WebhookConfig(url="https://user:pw@example.org/hook")


# ---------------------------------------------------------------- email


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost: (cert, key)."""
    d = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = d / "cert.pem", d / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@dataclass
class Smtp:
    inbox: Inbox
    port: int


def _smtp(certs: tuple[Path, Path], implicit: bool, starttls: bool = True) -> Iterator[Smtp]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(certs[0]), str(certs[1]))
    inbox = Inbox()
    port = free_port()
    kwargs: dict[str, Any] = {"authenticator": authenticator}
    if implicit:
        # aiosmtpd only counts STARTTLS as TLS for AUTH; this session is TLS from the start.
        kwargs.update(ssl_context=ctx, auth_require_tls=False)
    elif starttls:
        kwargs.update(tls_context=ctx, require_starttls=True)
    else:
        kwargs["auth_require_tls"] = False
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, server_hostname="localhost", **kwargs
    )
    controller.start()
    try:
        yield Smtp(inbox, port)
    finally:
        controller.stop()


@pytest.fixture
def smtp_starttls(certs: tuple[Path, Path]) -> Iterator[Smtp]:
    yield from _smtp(certs, implicit=False)


@pytest.fixture
def smtp_implicit(certs: tuple[Path, Path]) -> Iterator[Smtp]:
    yield from _smtp(certs, implicit=True)


@pytest.fixture
def smtp_plain(certs: tuple[Path, Path]) -> Iterator[Smtp]:
    yield from _smtp(certs, implicit=False, starttls=False)


def email_config(tmp_path: Path, port: int, ca: Path, password: str = PASSWORD) -> EmailConfig:
    secret = tmp_path / "smtp_password"
    secret.write_text(password + "\n", encoding="utf-8")
    return EmailConfig.model_validate(
        {
            "to": "ops@example.org",
            "from": "autoscaler@example.org",
            "smarthost": f"127.0.0.1:{port}",
            "auth_username": "autoscaler",
            "auth_password_file": str(secret),
            "tls_config": {"ca_file": str(ca)},
            "headers": {"X-Team": "{{ .GroupLabels.alertname }}"},
        }
    )


def _check_mail(inbox: Inbox) -> None:
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert msg["Subject"] == "[FIRING:1] AutoscalerScaleActionFailed"
    assert msg["X-Team"] == "AutoscalerScaleActionFailed"
    assert inbox.envelopes == [("autoscaler@example.org", ["ops@example.org"])]
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in msg.walk()
        if not p.is_multipart()
    }
    assert set(parts) == {"text/plain", "text/html"}
    assert "summary: scale of api failed" in parts["text/plain"]
    assert "<table" in parts["text/html"] and "subject=api" in parts["text/html"]


def test_email_over_starttls_with_auth(
    tmp_path: Path, smtp_starttls: Smtp, certs: tuple[Path, Path]
) -> None:
    EmailIntegration(email_config(tmp_path, smtp_starttls.port, certs[0])).send(notification())
    _check_mail(smtp_starttls.inbox)


def test_email_over_implicit_tls(
    tmp_path: Path, smtp_implicit: Smtp, certs: tuple[Path, Path]
) -> None:
    integ = EmailIntegration(
        email_config(tmp_path, smtp_implicit.port, certs[0]),
        implicit_tls_ports=frozenset({smtp_implicit.port}),
    )
    integ.send(notification())
    _check_mail(smtp_implicit.inbox)


def test_email_refuses_a_server_without_starttls(
    tmp_path: Path, smtp_plain: Smtp, certs: tuple[Path, Path]
) -> None:
    with pytest.raises(DeliveryError, match="does not offer STARTTLS") as e:
        EmailIntegration(email_config(tmp_path, smtp_plain.port, certs[0])).send(notification())
    assert PASSWORD not in str(e.value)
    assert smtp_plain.inbox.messages == []


def test_email_untrusted_certificate_and_wrong_password_are_clear(
    tmp_path: Path, smtp_starttls: Smtp, certs: tuple[Path, Path]
) -> None:
    cfg = email_config(tmp_path, smtp_starttls.port, certs[0])
    untrusted = cfg.model_copy(
        update={"tls_config": cfg.tls_config.model_copy(update={"ca_file": None})}
    )
    with pytest.raises(DeliveryError, match="TLS certificate not trusted"):
        EmailIntegration(untrusted, attempts=1).send(notification())
    wrong = email_config(tmp_path, smtp_starttls.port, certs[0], password="wrong-" + PASSWORD)
    with pytest.raises(DeliveryError, match="refused the login") as e:
        EmailIntegration(wrong).send(notification())
    assert PASSWORD not in str(e.value)


def test_email_config_refuses_an_inline_password() -> None:
    with pytest.raises(ValueError, match="auth_password_file"):
        EmailConfig.model_validate(
            {"to": "a@b.c", "from": "d@e.f", "smarthost": "h:25", "auth_password": "x"}
        )


# ---------------------------------------------------------------- end to end


def _rules(tmp_path: Path, slack_url: str, smtp_port: int, ca: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    (tmp_path / "slack_url").write_text(slack_url, encoding="utf-8")
    (tmp_path / "smtp_password").write_text(PASSWORD, encoding="utf-8")
    (rules / "alerts.yml").write_text(
        f"""
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: ops
    slack_configs:
      - api_url_file: {tmp_path / "slack_url"}
        send_resolved: true
    email_configs:
      - to: ops@example.org
        from: autoscaler@example.org
        smarthost: 127.0.0.1:{smtp_port}
        auth_username: autoscaler
        auth_password_file: {tmp_path / "smtp_password"}
        tls_config: {{ca_file: {ca}}}
""",
        encoding="utf-8",
    )
    return rules


def test_sidecar_alert_reaches_slack_and_email_once_across_a_restart(
    tmp_path: Path,
    slack: SlackServer,
    smtp_starttls: Smtp,
    certs: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from autoscaler.actuate.base import ActionResult
    from autoscaler.alerts.manager import Alerting
    from autoscaler.decide.plan_types import ScaleService
    from autoscaler.loop import PassResult
    from autoscaler.metrics import SidecarMetrics
    from autoscaler.rules.reload import RulesStore

    caplog.set_level(logging.DEBUG)
    rules = RulesStore(_rules(tmp_path, slack.url, smtp_starttls.port, certs[0]))
    assert rules.refresh() == "loaded", rules.problems
    clock = [NOW]
    failed = ActionResult(
        action=ScaleService(service="api", current=1, desired=3, reason="load"),
        ok=False,
        message="swarm: update out of sequence",
    )
    result = PassResult("test", True, 0.1, results=[failed])

    def start(state: Path) -> tuple[Alerting, SidecarMetrics]:
        metrics = SidecarMetrics()
        alerting = Alerting(metrics=metrics, state_dir=state, clock=lambda: clock[0])
        return alerting, metrics

    alerting, metrics = start(tmp_path / "state")
    alerting.after_pass(result, rules)
    alerting.tick()
    assert len(slack.requests) == 1 and len(smtp_starttls.inbox.messages) == 1
    body = slack.requests[0][2]["attachments"][0]
    assert body["title"] == "[FIRING] AutoscalerScaleActionFailed"
    assert alerting.list_alerts()[0]["annotations"]["error"] == "swarm: update out of sequence"
    text = generate_latest(metrics.registry).decode()
    assert 'autoscaler_notifications_total{receiver="ops",result="ok"} 2.0' in text
    assert 'autoscaler_alerts{alertname="AutoscalerScaleActionFailed",state="firing"} 1.0' in text

    # Restart: state from the volume; the same failure again within repeat_interval.
    clock[0] = NOW + dt.timedelta(minutes=3)
    alerting, metrics = start(tmp_path / "state")
    alerting.after_pass(result, rules)
    alerting.tick()
    clock[0] += dt.timedelta(minutes=2)
    alerting.tick()
    assert len(slack.requests) == 1 and len(smtp_starttls.inbox.messages) == 1

    # The action works again: after keep_firing_for (15m) the alert resolves, once.
    ok = PassResult("test", True, 0.1, results=[])
    for minutes in range(0, 20):
        clock[0] = NOW + dt.timedelta(minutes=5 + minutes)
        alerting.after_pass(ok, rules)
        alerting.tick()
    assert [r[2]["attachments"][0]["color"] for r in slack.requests] == ["danger", "good"]
    assert len(smtp_starttls.inbox.messages) == 1  # email: send_resolved is false

    everything = caplog.text + generate_latest(metrics.registry).decode()
    assert "SECRET" not in everything and PASSWORD not in everything
