"""Delivery against real servers: aiosmtpd (STARTTLS and implicit TLS), a local Slack
webhook that answers 429 and 500 before ok, and the sidecar's alerting end to end."""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.header
import email.utils
import ipaddress
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


@pytest.mark.parametrize("form", ["http-date", "nan"])
def test_retry_after_http_date_is_waited_for_and_nan_falls_back(
    tmp_path: Path, slack: SlackServer, form: str
) -> None:
    """Retry-After may be an HTTP date (RFC 9110), e.g. from a proxy in front of the
    webhook: the retry waits until then, not the 1 s backoff that is sure to meet the
    429 again. A value that is no number ("nan") falls back to the backoff."""
    value = email.utils.formatdate(time.time() + 30, usegmt=True) if form == "http-date" else "nan"
    slack.script = [(429, {"Retry-After": value}, "rate_limited")]
    slept: list[float] = []
    integ = SlackIntegration(
        slack_config(tmp_path, slack.url), RateLimiter(interval=0), sleep=slept.append
    )
    integ.send(notification())
    assert len(slack.requests) == 2
    assert len(slept) == 1
    if form == "http-date":
        assert 20 <= slept[0] <= 30
    else:
        assert slept[0] == 1.0  # the first backoff; sleep(nan) would raise


def test_slack_colours_by_state_and_severity(tmp_path: Path, slack: SlackServer) -> None:
    integ = SlackIntegration(slack_config(tmp_path, slack.url), RateLimiter(interval=0))
    integ.send(notification(severity="warning"))
    integ.send(notification(status="resolved"))
    colours = [r[2]["attachments"][0]["color"] for r in slack.requests]
    assert colours == ["warning", "good"]


def test_slack_sends_at_most_one_message_per_second(tmp_path: Path, slack: SlackServer) -> None:
    """On a clock only the limiter's waits move (the wall clock made this depend on how
    fast each request reached the server): each message to the same webhook waits until a
    second after the one before."""
    now = [0.0]
    sent_at: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(clock=lambda: now[0], sleep=sleep)
    cfg = slack_config(tmp_path, slack.url)
    a, b = SlackIntegration(cfg, limiter), SlackIntegration(cfg, limiter)  # one webhook
    for integ in (a, b, a):
        integ.send(notification())
        sent_at.append(now[0])
    assert len(slack.requests) == 3  # none dropped
    assert sent_at == [0.0, 1.0, 2.0]


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
    # exactly Alertmanager's webhook message (notify/webhook), one alert left out
    assert set(body) == {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
    (alert,) = body["alerts"]
    assert set(alert) == {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }
    assert body["groupKey"] == "{}:{}"
    assert alert["labels"]["alertname"] == "AutoscalerScaleActionFailed"
    assert alert["status"] == "firing"
    assert alert["startsAt"] == NOW.isoformat()
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"  # Go's zero time while firing
    assert alert["fingerprint"] == n.alerts[0].fingerprint
    with pytest.raises(ValueError, match="url_file"):
        WebhookConfig(url="https://user:pw@example.org/hook")


def test_slack_ok_false_in_a_200_answer_is_a_failure_not_a_delivery(
    tmp_path: Path, slack: SlackServer
) -> None:
    """Slack's Web API (and proxies in front of it) answer HTTP 200 with ``"ok": false``
    when the message was not posted: that must not count as delivered."""
    refusal = '{"ok": false, "error": "invalid_blocks"}'
    slack.script = [(200, {"Content-Type": "application/json"}, refusal)]
    integ = SlackIntegration(slack_config(tmp_path, slack.url), RateLimiter(interval=0))
    with pytest.raises(DeliveryError, match=r"slack: HTTP 200 ok: false \(invalid_blocks\)"):
        integ.send(notification())
    assert len(slack.requests) == 1  # refused, not worth retrying at once
    slack.script = [(200, {"Content-Type": "application/json"}, '{"ok": true}')]
    integ.send(notification())  # the Web API's own "ok": true is a delivery
    integ.send(notification())  # and so is a webhook's plain "ok"
    assert len(slack.requests) == 3


def test_an_error_page_that_echoes_the_url_does_not_leak_it(
    tmp_path: Path, slack: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy or framework 404 often repeats the request line; the webhook's path is its
    secret, and the error text is logged."""
    from autoscaler.alerts.config import WebhookConfig
    from autoscaler.alerts.receivers.webhook import WebhookIntegration

    echo = (404, {}, f"Cannot POST {SECRET_PATH}?x=1")
    slack.script = [echo, echo]
    hook_file = tmp_path / "hook_url"
    hook_file.write_text(slack.url)
    integrations: list[Any] = [
        SlackIntegration(slack_config(tmp_path, slack.url), RateLimiter(interval=0)),
        WebhookIntegration(WebhookConfig(url_file=hook_file)),
    ]
    for integ in integrations:
        with pytest.raises(DeliveryError) as e:
            integ.send(notification())
        assert "HTTP 404 Cannot POST <secret>" in str(e.value)
        assert "SECRET" not in str(e.value)
    assert len(slack.requests) == 2


def many(n: int, summary: str = "") -> Notification:
    alerts = tuple(
        Alert(
            {"alertname": f"SessionWaiting{i:05d}", "severity": "warning"},
            {"summary": summary or f"app {i} has sessions waiting for a seat"},
            starts_at=NOW,
        )
        for i in range(n)
    )
    return Notification(
        receiver="ops",
        group_key="{}:{}",
        status="firing",
        alerts=alerts,
        group_labels={},
        common_labels={"severity": "warning"},
        common_annotations={},
        external_url="",
        now=NOW,
    )


def test_slack_text_of_thousands_of_alerts_stays_within_slacks_limit(
    tmp_path: Path, slack: SlackServer
) -> None:
    """Slack cuts a text beyond 40,000 characters without a word: the message must stop
    before, say how many alerts it leaves out, and count only those it shows as told."""
    integ = SlackIntegration(slack_config(tmp_path, slack.url), RateLimiter(interval=0))
    n = many(5000)
    integ.send(n)
    text = slack.requests[0][2]["attachments"][0]["text"]
    lines = text.split("\n")
    assert len(text) <= 40_000
    shown = len(lines) - 1
    assert lines[-1] == f"… and {5000 - shown} more alerts not shown"
    assert 500 < shown < 5000
    assert (
        lines[shown - 1]
        == f"• SessionWaiting{shown - 1:05d}: app {shown - 1} has sessions waiting for a seat"
    )
    assert integ.carried(n) == n.alerts[:shown]
    # a few alerts: all of them, nothing left out
    few = many(3)
    integ.send(few)
    assert len(slack.requests[1][2]["attachments"][0]["text"].split("\n")) == 3
    assert integ.carried(few) == few.alerts
    # one huge annotation common to all (the configured text): cut, the title too
    cfg = slack_config(tmp_path, slack.url, title="{{ .CommonAnnotations.summary }}")
    big = many(2, summary="x" * 100_000)
    SlackIntegration(cfg, RateLimiter(interval=0)).send(big)
    body = slack.requests[2][2]
    assert len(body["attachments"][0]["text"]) <= 40_000
    assert len(body["text"]) <= 1024 and len(body["attachments"][0]["title"]) <= 1024


# ---------------------------------------------------------------- email


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_cert(d: Path, names: list[x509.GeneralName]) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for ``names``: (cert, key)."""
    d.mkdir(parents=True, exist_ok=True)
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
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
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


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost: (cert, key)."""
    return make_cert(
        tmp_path_factory.mktemp("tls"),
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )


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


def _smtp(
    certs: tuple[Path, Path], implicit: bool, starttls: bool = True, inbox: Inbox | None = None
) -> Iterator[Smtp]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(certs[0]), str(certs[1]))
    inbox = inbox or Inbox()
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


def test_email_with_line_breaks_markup_and_non_ascii_in_labels(
    tmp_path: Path, smtp_starttls: Smtp, certs: tuple[Path, Path]
) -> None:
    """Label values go into headers and the HTML part: a line break can neither add a
    header (Bcc) nor make the message unbuildable, markup is escaped, non-ASCII is
    encoded."""
    cfg = email_config(tmp_path, smtp_starttls.port, certs[0]).model_copy(
        update={
            "headers": {"X-Team": "{{ .CommonLabels.team }}"},
            "html": "<p>team {{ .CommonLabels.team }}</p>",
        }
    )
    alert = Alert(
        {
            "alertname": "Überlast ✓\r\nBcc: thief@example.net",
            "severity": "critical",
            "team": "<b>web</b>\nX-Evil: 1",
        },
        {"summary": "s"},
        starts_at=NOW,
    )
    n = Notification(
        receiver="ops",
        group_key="{}:{}",
        status="firing",
        alerts=(alert,),
        group_labels={},
        common_labels=dict(alert.labels),
        common_annotations={},
        external_url="",
        now=NOW,
    )
    EmailIntegration(cfg, attempts=1).send(n)
    (msg,) = smtp_starttls.inbox.messages
    assert smtp_starttls.inbox.envelopes == [("autoscaler@example.org", ["ops@example.org"])]
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    subject = str(email.header.make_header(email.header.decode_header(msg["Subject"])))
    assert subject == "[FIRING:1] Überlast ✓ Bcc: thief@example.net"
    assert msg["X-Team"] == "<b>web</b> X-Evil: 1"
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in msg.walk()
        if not p.is_multipart()
    }
    html = parts["text/html"].replace("\r\n", "\n").strip()
    assert html == "<p>team &lt;b&gt;web&lt;/b&gt;\nX-Evil: 1</p>"
    assert "team = <b>web</b>" in parts["text/plain"]


def test_email_checks_the_certificate_against_tls_server_name(
    tmp_path: Path, certs: tuple[Path, Path]
) -> None:
    """A smarthost reached by address whose certificate names the server (server_name)."""
    cert, key = make_cert(tmp_path / "mail-tls", [x509.DNSName("mail.example.test")])
    with contextlib.contextmanager(_smtp)((cert, key), implicit=False) as smtp:
        cfg = email_config(tmp_path, smtp.port, cert)
        named = cfg.model_copy(
            update={
                "tls_config": cfg.tls_config.model_copy(update={"server_name": "mail.example.test"})
            }
        )
        EmailIntegration(named, attempts=1).send(notification())
        assert len(smtp.inbox.messages) == 1
        other = cfg.model_copy(
            update={"tls_config": cfg.tls_config.model_copy(update={"server_name": "other.test"})}
        )
        with pytest.raises(DeliveryError, match="TLS certificate not trusted"):
            EmailIntegration(other, attempts=1).send(notification())
        assert len(smtp.inbox.messages) == 1


class QuitFails(Inbox):
    """Takes the message, then answers QUIT with an error (a server shutting down, a
    proxy that mangles the goodbye)."""

    def __init__(self, reply: str) -> None:
        super().__init__()
        self.reply = reply

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        return self.reply


@pytest.mark.parametrize("reply", ["421 4.3.2 shutting down", "554 5.0.0 go away"])
def test_email_accepted_by_the_server_is_not_sent_again_when_quit_fails(
    tmp_path: Path, certs: tuple[Path, Path], reply: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The message is delivered once the server answers the data with 250: a failed QUIT
    neither repeats it (4xx was retried) nor reports a failure the dispatcher would
    retry with the same mail, again and again (5xx)."""
    with contextlib.contextmanager(_smtp)(certs, implicit=False, inbox=QuitFails(reply)) as smtp:
        cfg = email_config(tmp_path, smtp.port, certs[0])
        EmailIntegration(cfg, sleep=lambda s: None).send(notification())
        assert len(smtp.inbox.messages) == 1
    assert f"QUIT failed (SMTP {reply[:3]})" in caplog.text
    assert PASSWORD not in caplog.text


class RefusesOne(Inbox):
    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("gone@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_email_recipient_the_server_refuses_is_logged_not_dropped_silently(
    tmp_path: Path, certs: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """The server takes the message for one recipient and refuses the other: the mail is
    delivered (a retry would repeat it to the first), and the log says one did not get it."""
    with contextlib.contextmanager(_smtp)(certs, implicit=False, inbox=RefusesOne()) as smtp:
        cfg = email_config(tmp_path, smtp.port, certs[0]).model_copy(
            update={"to": "ops@example.org, gone@example.org"}
        )
        EmailIntegration(cfg, attempts=1).send(notification())
        assert smtp.inbox.envelopes == [("autoscaler@example.org", ["ops@example.org"])]
    assert "refused 1 of the recipients (SMTP 550)" in caplog.text
    assert PASSWORD not in caplog.text


def test_email_to_an_ipv6_smarthost_in_brackets(tmp_path: Path) -> None:
    """``[::1]:PORT`` is how Alertmanager (Go) writes an IPv6 smarthost; the brackets are
    no part of the address to connect to, nor of the name the certificate must hold."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            port = int(s.getsockname()[1])
    except OSError:
        pytest.skip("no IPv6 loopback here")
    cert, key = make_cert(tmp_path / "tls6", [x509.IPAddress(ipaddress.ip_address("::1"))])
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="::1",
        port=port,
        server_hostname="localhost",
        tls_context=ctx,
        require_starttls=True,
        authenticator=authenticator,
    )
    controller.start()
    try:
        cfg = email_config(tmp_path, port, cert).model_copy(update={"smarthost": f"[::1]:{port}"})
        EmailIntegration(cfg, attempts=1).send(notification())
    finally:
        controller.stop()
    _check_mail(inbox)


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


def test_a_hanging_slack_holds_up_neither_email_nor_the_alerting_thread(
    tmp_path: Path, smtp_starttls: Smtp, certs: tuple[Path, Path]
) -> None:
    """Slack takes the request and never answers (a stuck proxy): the same alert still
    reaches email at once, the stall check still runs on the alerting thread, and the
    control loop's hook returns at once."""
    from autoscaler.actuate.base import ActionResult
    from autoscaler.alerts.manager import Alerting
    from autoscaler.decide.plan_types import ScaleService
    from autoscaler.loop import PassResult
    from autoscaler.rules.reload import RulesStore

    release = threading.Event()
    received: list[dict[str, Any]] = []

    class Hanging(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            release.wait(30)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hanging)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
        rules = RulesStore(_rules(tmp_path, url, smtp_starttls.port, certs[0]))
        assert rules.refresh() == "loaded", rules.problems
        failed = ActionResult(
            action=ScaleService(service="api", current=1, desired=3, reason="load"),
            ok=False,
            message="swarm: update out of sequence",
        )
        alerting = Alerting(stall_after=dt.timedelta(seconds=1))
        alerting.after_pass(PassResult("test", True, 0.1, results=[failed]), rules)
        alerting.start(every=0.05)
        try:
            deadline = time.monotonic() + 8
            while not smtp_starttls.inbox.messages and time.monotonic() < deadline:
                time.sleep(0.05)
            assert received, "Slack was never called"
            assert not release.is_set()
            assert smtp_starttls.inbox.messages, "email waited for the hanging Slack"
            assert smtp_starttls.inbox.messages[0]["Subject"] == (
                "[FIRING:1] AutoscalerScaleActionFailed"
            )

            def stalled() -> bool:
                return any(
                    a["labels"]["alertname"] == "AutoscalerLoopStalled" and a["state"] == "firing"
                    for a in alerting.list_alerts()
                )

            deadline = time.monotonic() + 5
            while not stalled() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert stalled(), "the alerting thread is stuck behind Slack"
            started = time.monotonic()
            alerting.after_pass(PassResult("test", True, 0.1, results=[failed]), rules)
            assert time.monotonic() - started < 1.0
            assert len(received) == 1  # Slack's messages wait for Slack, one at a time
        finally:
            release.set()
            alerting.stop()
        assert len(received) >= 2  # released: what waited for Slack went out
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
