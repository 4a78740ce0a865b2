"""Slack incoming webhooks: one attachment per notification, coloured by state and severity."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from autoscaler.alerts import templating
from autoscaler.alerts.config import SlackConfig
from autoscaler.alerts.dispatch import DeliveryError
from autoscaler.alerts.model import Alert, Notification
from autoscaler.alerts.receivers.http import RateLimiter, keep_out_of_logs, post_json
from autoscaler.settings import read_secret

SEVERITY_COLOURS = {"critical": "danger", "warning": "warning", "info": "#439FE0"}


def colour(n: Notification) -> str:
    if n.status == "resolved":
        return "good"
    severities = {a.labels.get("severity", "") for a in n.firing}
    for level in ("critical", "warning", "info"):
        if level in severities:
            return SEVERITY_COLOURS[level]
    return "danger"


MAX_TEXT = 40_000
"""Slack cuts a message's text beyond 40,000 characters: the alerts past it would be
lost without a word, so the text stops before and says how many are left out."""
MAX_TITLE = 1024
"""As Alertmanager cuts a Slack title."""
MAX_LINE = 2000
"""One alert's line in the default text: one huge annotation cannot hide every other."""


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _more(n: int) -> str:
    return f"… and {n} more alert{'s' if n != 1 else ''} not shown"


def alert_lines(alerts: Sequence[Alert]) -> tuple[str, int]:
    """The default text, one line per alert as long as they fit; and how many did."""
    lines = [
        _cut(
            f"• {a.labels.get('alertname', '')}: {a.annotations.get('summary', '')}".rstrip(": "),
            MAX_LINE,
        )
        for a in alerts
    ]
    room = MAX_TEXT - len(_more(len(lines))) - 1
    shown, size = 0, 0
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if size + len(line) > (MAX_TEXT if last else room):
            break
        size += len(line) + 1
        shown += 1
    text = "\n".join(lines[:shown])
    if shown < len(lines):
        text = f"{text}\n{_more(len(lines) - shown)}" if shown else _more(len(lines))
    return text, shown


def _text(cfg: SlackConfig, n: Notification) -> tuple[str, int]:
    """The attachment's text and how many of the alerts it tells of (the leading ones)."""
    text = templating.render(cfg.text, n.field)
    if text.strip():
        return _cut(text, MAX_TEXT), len(n.alerts)
    return alert_lines(n.alerts)


def slack_payload(cfg: SlackConfig, n: Notification) -> dict[str, Any]:
    title = _cut(templating.render(cfg.title, n.field), MAX_TITLE)
    text, _ = _text(cfg, n)
    payload: dict[str, Any] = {
        "text": title,
        "attachments": [
            {"color": cfg.color or colour(n), "title": title, "text": text, "fallback": title}
        ],
    }
    for key in ("channel", "username", "icon_emoji"):
        if getattr(cfg, key):
            payload[key] = getattr(cfg, key)
    return payload


def refused(resp: requests.Response) -> str | None:
    """Slack's reason when an HTTP 200 answer says ``"ok": false`` (its Web API, or a
    proxy in front of it); None for an accepted message (a webhook answers ``ok``)."""
    try:
        body = resp.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("ok") is not False:
        return None
    # whole: post_json hides any part of the URL in it before it cuts it short
    why = str(body.get("error") or "").strip()
    return f"ok: false ({why or 'no reason given'})"


class SlackIntegration:
    kind = "slack"

    def __init__(
        self,
        cfg: SlackConfig,
        limiter: RateLimiter,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 5,
        max_backoff: float = 30.0,
        timeout: float = 10.0,
    ) -> None:
        self.cfg = cfg
        self.send_resolved = cfg.send_resolved
        self.limiter = limiter
        self.session = session or requests.Session()
        self.sleep = sleep
        self.attempts = attempts
        self.max_backoff = max_backoff
        self.timeout = timeout

    def carried(self, notification: Notification) -> tuple[Alert, ...]:
        """The alerts the message tells of: the default text leaves out those past
        Slack's limit."""
        return notification.alerts[: _text(self.cfg, notification)[1]]

    def send(self, notification: Notification) -> None:
        try:
            # errors name the key, not its value: that may be the secret itself, written
            # where its file belongs
            url = read_secret(self.cfg.api_url_file, "api_url_file")
        except RuntimeError as e:
            raise DeliveryError(f"slack: {e}") from None
        if not url or not url.startswith(("http://", "https://")):
            raise DeliveryError(f"slack: {self.cfg.api_url_file} holds no http(s) URL")
        keep_out_of_logs(url)
        key = hashlib.sha256(url.encode()).hexdigest()
        post_json(
            url,
            slack_payload(self.cfg, notification),
            what="slack",
            session=self.session,
            timeout=self.timeout,
            attempts=self.attempts,
            max_backoff=self.max_backoff,
            sleep=self.sleep,
            before_each=lambda: self.limiter.wait(key),
            refused=refused,
        )
