"""A generic webhook: Alertmanager's webhook JSON (version 4), POSTed to a URL."""

from __future__ import annotations

import dataclasses

from autoscaler.alerts.config import WebhookConfig
from autoscaler.alerts.dispatch import DeliveryError
from autoscaler.alerts.model import Alert, Notification, common
from autoscaler.alerts.receivers.http import JsonPoster, keep_out_of_logs, post_json
from autoscaler.settings import read_secret


def carried_only(notification: Notification, alerts: tuple[Alert, ...]) -> Notification:
    """The message about ``alerts`` alone. As Alertmanager (notify/webhook builds its
    template data after truncating), status and common labels and annotations describe the
    alerts the message holds, never those ``max_alerts`` left out."""
    if len(alerts) == len(notification.alerts):
        return notification
    firing = any(not a.resolved(notification.now) for a in alerts)
    return dataclasses.replace(
        notification,
        alerts=alerts,
        status="firing" if firing else "resolved",
        common_labels=common([a.labels for a in alerts]),
        common_annotations=common([a.annotations for a in alerts]),
    )


class WebhookIntegration(JsonPoster):
    kind = "webhook"
    cfg: WebhookConfig

    def carried(self, notification: Notification) -> tuple[Alert, ...]:
        """The alerts a message holds: the first ``max_alerts`` (0: all)."""
        most = self.cfg.max_alerts
        return notification.alerts[:most] if most else notification.alerts

    def send(self, notification: Notification) -> None:
        try:
            # errors name the key, not its value: that may be the secret itself, written
            # where its file belongs
            url = self.cfg.url or read_secret(self.cfg.url_file, "url_file")
        except RuntimeError as e:
            raise DeliveryError(f"webhook: {e}") from None
        if not url:
            raise DeliveryError("webhook: no URL")
        if not url.startswith(("http://", "https://")):
            # a file, read at each send: retrying cannot fix it, and its text is a secret
            raise DeliveryError(f"webhook: {self.cfg.url_file} holds no http(s) URL")
        keep_out_of_logs(url)
        alerts = self.carried(notification)
        truncated = len(notification.alerts) - len(alerts)
        post_json(
            url,
            carried_only(notification, alerts).to_webhook_json(truncated),
            what="webhook",
            session=self.session,
            attempts=self.attempts,
            sleep=self.sleep,
        )
