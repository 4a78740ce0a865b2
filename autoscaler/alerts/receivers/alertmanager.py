"""Forward alerts to an existing Alertmanager (``POST /api/v2/alerts``).

Alertmanager resolves an alert by itself once its ``endsAt`` passes, so every send of a
firing alert sets ``endsAt`` three repeat intervals ahead; the group's repeats keep it
alive, and a sidecar that stops lets it resolve instead of firing forever. A repeat waits
for the group's next flush, so the margin is at least three group intervals too (as
Prometheus' notifier takes the larger of its resend delay and the rule's interval).
"""

from __future__ import annotations

from typing import Any

from autoscaler.alerts.config import AlertmanagerForward
from autoscaler.alerts.model import Notification
from autoscaler.alerts.receivers.http import JsonPoster, post_json


def _ts(value: Any) -> str:
    return str(value.isoformat())


def forward_payload(n: Notification) -> list[dict[str, Any]]:
    ends_firing = n.now + 3 * max(n.repeat_interval, n.group_interval)
    out = []
    for a in n.alerts:
        item: dict[str, Any] = {
            "labels": dict(a.labels),
            "annotations": dict(a.annotations),
            "endsAt": _ts(a.ends_at if a.resolved(n.now) else ends_firing),
        }
        if a.starts_at is not None:
            item["startsAt"] = _ts(a.starts_at)
        if a.generator_url:
            item["generatorURL"] = a.generator_url
        out.append(item)
    return out


class AlertmanagerIntegration(JsonPoster):
    kind = "alertmanager"
    cfg: AlertmanagerForward

    def send(self, notification: Notification) -> None:
        post_json(
            f"{self.cfg.url}/api/v2/alerts",
            forward_payload(notification),
            what="alertmanager",
            session=self.session,
            attempts=self.attempts,
            sleep=self.sleep,
        )
