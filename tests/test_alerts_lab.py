"""The alerting guide's first steps on a real lab: one alert and one route written into a
copy of the lab's demo rules, checked, route-tested, then received by Slack and by email
(STARTTLS, login) from the sidecar while users hold sessions, and resolved when they leave.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import requests
from docker.types import ServiceMode

from autoscaler.lab import lab as lab_mod
from autoscaler.lab.demo import demo_rules, lab_env
from autoscaler.lab.load import LoadDriver, LoadReport, burst_plan
from autoscaler.lab.ports import free_port
from autoscaler.lab.teardown import stop_child
from tests import test_alerts_delivery as delivery
from tests.fixtures_swarm import swarm_lab_missing
from tests.realparts import missing_real_part

pytestmark = [pytest.mark.real, pytest.mark.slow]

certs = delivery.certs  # a self-signed certificate for 127.0.0.1
slack = delivery.slack  # a local Slack webhook whose URL path is a secret

ALERT = "LabSessionsBusy"
RECEIVER = "lab-team"
DEMO_SERVICE = "demo-api"  # the service the demo rules scale
PASSWORD = delivery.PASSWORD


@pytest.fixture
def smtp(certs: tuple[Path, Path]) -> Iterator[delivery.Smtp]:
    """aiosmtpd that requires STARTTLS before the login."""
    yield from delivery._smtp(certs, implicit=False)


def write_rules(folder: Path, secrets: Path, slack_url: str, smtp_port: int, ca: Path) -> Path:
    """The demo rules plus one user-written alert file; returns that file."""
    shutil.copy(demo_rules() / "demo.yml", folder / "demo.yml")
    (secrets / "slack_webhook_url").write_text(slack_url + "\n", encoding="utf-8")
    (secrets / "smtp_password").write_text(PASSWORD + "\n", encoding="utf-8")
    mine = folder / "my-alerts.yml"
    mine.write_text(
        f"""
alerts:
  {ALERT}:
    signal: live_sessions
    op: ">"
    value: 2
    for: 0s
    severity: warning
    annotations:
      summary: "{{{{ $value }}}} sessions live in the lab"

route:
  receiver: {RECEIVER}
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h

receivers:
  - name: {RECEIVER}
    slack_configs:
      - api_url_file: {secrets / "slack_webhook_url"}
        send_resolved: true
    email_configs:
      - to: team@example.org
        from: autoscaler@example.org
        smarthost: 127.0.0.1:{smtp_port}
        auth_username: autoscaler
        auth_password_file: {secrets / "smtp_password"}
        tls_config: {{ca_file: {ca}}}
        send_resolved: true
""",
        encoding="utf-8",
    )
    return mine


def autoscaler_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def slack_titles(server: delivery.SlackServer) -> list[str]:
    return [str(r[2]["attachments"][0]["title"]) for r in list(server.requests)]


def mails(inbox: delivery.Inbox, status: str) -> list[Message]:
    prefix = f"[{status}:"
    return [
        m
        for m in list(inbox.messages)
        if str(m["Subject"]).startswith(prefix) and str(m["Subject"]).endswith(f"] {ALERT}")
    ]


def parts(msg: Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in msg.walk():
        if not p.is_multipart():
            payload = p.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out[p.get_content_type()] = payload.decode()
    return out


class Load:
    """Sessions of one app held in a thread until ``stop`` ends them."""

    def __init__(self, url: str, app: str, sessions: int) -> None:
        self.driver = LoadDriver(url, app, user_prefix="alerts", timeout=60)
        self.report: LoadReport | None = None
        self.thread = threading.Thread(
            target=self._run, args=(burst_plan(sessions, hold_s=600),), daemon=True
        )
        self.thread.start()

    def _run(self, plan: Any) -> None:
        self.report = self.driver.run(plan)

    def stop(self) -> LoadReport | None:
        self.driver.cancel()
        self.thread.join(timeout=60)
        return self.report


def test_a_users_alert_reaches_slack_and_email_from_the_lab(
    slack: delivery.SlackServer, smtp: delivery.Smtp, certs: tuple[Path, Path]
) -> None:
    why = swarm_lab_missing()
    if why:
        missing_real_part(why)
    tmp = Path(tempfile.mkdtemp(prefix="alr-", dir="/tmp"))  # engine sockets: short paths
    rules, secrets = tmp / "rules", tmp / "secrets"
    rules.mkdir()
    secrets.mkdir()
    mine = write_rules(rules, secrets, slack.url, smtp.port, certs[0])

    # 1. the new user's checks, before anything runs
    check = autoscaler_cli("check", str(rules))
    assert check.returncode == 0, check.stdout + check.stderr
    route = autoscaler_cli(
        "alerts", "test-route", "--config", str(mine), f"alertname={ALERT}", "severity=warning"
    )
    assert route.returncode == 0, route.stderr
    assert route.stdout.strip() == RECEIVER

    slack_port = slack.url.split(":")[2].split("/")[0]
    port = free_port()
    opts = lab_mod.LabOptions(
        workers=2, sidecar_target=f"127.0.0.1:{port}", pool="workers", service_wait_time=10.0
    )
    running: lab_mod.RunningLab | None = None
    sidecar: subprocess.Popen[bytes] | None = None
    load: Load | None = None
    log_path = tmp / "sidecar.log"
    try:
        running = lab_mod.up(tmp / "lab", opts)  # removes what it started when it fails
        client = running.cluster.client() if running.cluster else None
        assert client is not None
        client.services.create(
            "local/busybox:1",
            command=["sleep", "86400"],
            name=DEMO_SERVICE,
            mode=ServiceMode("replicated", 1),
        )
        env = {
            **os.environ,
            **lab_env(running.root),
            "AUTOSCALER_RULES": str(rules),
            "AUTOSCALER_INTERVAL": "2s",
            "AUTOSCALER_LISTEN": f"127.0.0.1:{port}",
            "AUTOSCALER_LEDGER": str(tmp / "decisions.jsonl"),
            "AUTOSCALER_ALERTS_STATE_DIR": str(tmp / "alerts-state"),
            "AUTOSCALER_LOG_LEVEL": "DEBUG",
        }
        with log_path.open("wb") as log:
            sidecar = subprocess.Popen(
                [sys.executable, "-m", "autoscaler", "run"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        sidecar_url = f"http://127.0.0.1:{port}"
        wait_for("the sidecar", lambda: _answers(f"{sidecar_url}/healthz"), 30)

        # 2. users arrive: 4 live sessions > 2
        load = Load(running.endpoint("shinyproxy"), "euler", sessions=4)
        wait_for(
            "the Slack message",
            lambda: f"[FIRING] {ALERT}" in slack_titles(slack),
            60,
        )
        firing_mail = wait_for("the email", lambda: mails(smtp.inbox, "FIRING"), 30)[0]
        body = next(r[2] for r in slack.requests if r[2]["attachments"][0]["title"].endswith(ALERT))
        assert body["attachments"][0]["color"] == "warning"
        assert "sessions live in the lab" in body["attachments"][0]["text"]
        mail = parts(firing_mail)
        assert set(mail) == {"text/plain", "text/html"}
        assert ALERT in mail["text/plain"] and "sessions live in the lab" in mail["text/plain"]
        assert ALERT in mail["text/html"] and "<table" in mail["text/html"]
        assert ("autoscaler@example.org", ["team@example.org"]) in smtp.inbox.envelopes
        alerts = requests.get(f"{sidecar_url}/api/alerts", timeout=10).json()["alerts"]
        mine_now = [a for a in alerts if a["labels"]["alertname"] == ALERT]
        assert [a["state"] for a in mine_now] == ["firing"], alerts

        # 3. users leave: the route sends resolved notices
        report = load.stop()
        load = None
        assert report is not None and report.started == 4, report and report.summary()
        wait_for(
            "the resolved Slack message",
            lambda: f"[RESOLVED] {ALERT}" in slack_titles(slack),
            60,
        )
        resolved = wait_for("the resolved email", lambda: mails(smtp.inbox, "RESOLVED"), 30)
        assert ALERT in parts(resolved[0])["text/plain"]
        resolved_slack = [
            r[2]["attachments"][0]
            for r in slack.requests
            if r[2]["attachments"][0]["title"] == f"[RESOLVED] {ALERT}"
        ]
        assert resolved_slack[0]["color"] == "good"
        assert slack_titles(slack).count(f"[FIRING] {ALERT}") == 1
        assert len(mails(smtp.inbox, "FIRING")) == 1
    finally:
        if load is not None:
            load.stop()
        if sidecar is not None:
            stop_child(sidecar)
        if running is not None:
            running.down()
        log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
        shutil.rmtree(tmp, ignore_errors=True)
    # secrets never reach the sidecar's log, which (at DEBUG) records each webhook request
    assert f'127.0.0.1:{slack_port} "POST' in log_text, log_text[-2000:]
    assert delivery.SECRET_PATH not in log_text and "SECRET" not in log_text
    assert PASSWORD not in log_text


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
        return True
    except requests.RequestException:
        return False
