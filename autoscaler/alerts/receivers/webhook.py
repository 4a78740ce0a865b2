"""A generic webhook: Alertmanager's webhook JSON (version 4), POSTed to a URL."""

from __future__ import annotations

import dataclasses

from autoscaler.alerts.config import WebhookConfig
from autoscaler.alerts.dispatch import DeliveryError
from autoscaler.alerts.model import Alert, Notification
from autoscaler.alerts.receivers.http import JsonPoster, keep_out_of_logs, post_json
from autoscaler.settings import read_secret


class WebhookIntegration(JsonPoster):
    kind = "webhook"
    cfg: WebhookConfig

    def carried(self, notification: Notification) -> tuple[Alert, ...]:
        """The alerts a message holds: the first ``max_alerts`` (0: all)."""
        most = self.cfg.max_alerts
        return notification.alerts[:most] if most else notification.alerts

    def send(self, notification: Notification) -> None:
        try:
            url = self.cfg.url or read_secret(self.cfg.url_file)
        except RuntimeError as e:
            raise DeliveryError(f"webhook: {e}") from None
        if not url:
            raise DeliveryError("webhook: no URL")
        keep_out_of_logs(url)
        alerts = self.carried(notification)
        truncated = len(notification.alerts) - len(alerts)
        body = dataclasses.replace(notification, alerts=alerts)
        post_json(
            url,
            body.to_webhook_json(truncated),
            what="webhook",
            session=self.session,
            attempts=self.attempts,
            sleep=self.sleep,
        )
