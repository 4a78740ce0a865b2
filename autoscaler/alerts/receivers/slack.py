"""Slack incoming webhooks: one attachment per notification, coloured by state and severity."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import requests

from autoscaler.alerts import templating
from autoscaler.alerts.config import SlackConfig
from autoscaler.alerts.dispatch import DeliveryError
from autoscaler.alerts.model import Notification
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


def slack_payload(cfg: SlackConfig, n: Notification) -> dict[str, Any]:
    title = templating.render(cfg.title, n.field)
    text = templating.render(cfg.text, n.field)
    if not text.strip():
        text = "\n".join(
            f"• {a.labels.get('alertname', '')}: {a.annotations.get('summary', '')}".rstrip(": ")
            for a in n.alerts
        )
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

    def send(self, notification: Notification) -> None:
        try:
            url = read_secret(self.cfg.api_url_file)
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
        )
