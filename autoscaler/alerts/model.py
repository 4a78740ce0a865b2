"""An alert as routing and delivery see it: labels, annotations, start and (once) end."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


def fingerprint(labels: Mapping[str, str]) -> str:
    """Stable across restarts (the notification log relies on it), unlike hash()."""
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    """Set once the alert resolved; None while it fires."""
    generator_url: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    def resolved(self, now: datetime) -> bool:
        return self.ends_at is not None and self.ends_at <= now

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "status": "resolved" if self.resolved(now) else "firing",
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": self.starts_at.isoformat() if self.starts_at else None,
            "endsAt": self.ends_at.isoformat() if self.ends_at else "0001-01-01T00:00:00Z",
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class Notification:
    """One message to one receiver about one group (Alertmanager's template data)."""

    receiver: str
    group_key: str
    status: str
    alerts: tuple[Alert, ...]
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str
    now: datetime
    repeat_interval: timedelta = timedelta(hours=4)
    group_interval: timedelta = timedelta(minutes=5)

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if not a.resolved(self.now)]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.resolved(self.now)]

    def field(self, path: str) -> Any:
        """Resolve a template field such as ``.CommonLabels.alertname``."""
        simple = {
            ".Status": self.status,
            ".Receiver": self.receiver,
            ".ExternalURL": self.external_url,
            ".GroupKey": self.group_key,
            ".Alerts": list(self.alerts),
            ".Alerts.Firing": self.firing,
            ".Alerts.Resolved": self.resolved,
        }
        if path in simple:
            return simple[path]
        for prefix, values in (
            (".CommonLabels.", self.common_labels),
            (".GroupLabels.", self.group_labels),
            (".CommonAnnotations.", self.common_annotations),
        ):
            if path.startswith(prefix):
                return values.get(path[len(prefix) :], "")
        return ""

    def to_webhook_json(self, truncated: int = 0) -> dict[str, Any]:
        """Alertmanager's webhook payload, version 4."""
        return {
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": truncated,
            "status": self.status,
            "receiver": self.receiver,
            "groupLabels": self.group_labels,
            "commonLabels": self.common_labels,
            "commonAnnotations": self.common_annotations,
            "externalURL": self.external_url,
            "alerts": [a.to_json(self.now) for a in self.alerts],
        }


def common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    out = dict(maps[0])
    for m in maps[1:]:
        out = {k: v for k, v in out.items() if m.get(k) == v}
    return out
