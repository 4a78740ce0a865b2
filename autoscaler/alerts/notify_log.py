"""What was sent to whom: keeps a restart from re-sending within ``repeat_interval``.

One entry per (group, receiver, integration): the fingerprints of the firing and
resolved alerts last notified, and when. Written atomically after every change.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from autoscaler.alerts.atomic import write_atomic

log = logging.getLogger(__name__)

RETENTION = timedelta(hours=120)


@dataclass(frozen=True)
class Entry:
    firing: frozenset[str]
    resolved: frozenset[str]
    timestamp: datetime
    sent: frozenset[str] = frozenset()
    """The firing alerts the message itself held: a webhook's max_alerts leaves some out,
    and only these were told to someone."""


class NotifyLog:
    def __init__(self, path: Path | None = None, retention: timedelta = RETENTION) -> None:
        self.path = path
        self.retention = retention
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            self._entries = {
                key: Entry(
                    frozenset(e["firing"]),
                    frozenset(e["resolved"]),
                    datetime.fromisoformat(e["timestamp"]),
                    frozenset(e.get("sent", ())),  # older logs: none counted as told
                )
                for key, e in raw["entries"].items()
            }
        except (OSError, ValueError, KeyError, TypeError) as e:
            # An unreadable log only risks a repeated message, never a lost one.
            log.warning("notification log %s unreadable (%s): starting empty", path, e)
            self._entries = {}

    def get(self, key: str) -> Entry | None:
        with self._lock:
            return self._entries.get(key)

    def entries(self) -> dict[str, Entry]:
        with self._lock:
            return dict(self._entries)

    def log(
        self,
        key: str,
        firing: set[str],
        resolved: set[str],
        now: datetime,
        sent: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        with self._lock:
            self._entries[key] = Entry(frozenset(firing), frozenset(resolved), now, frozenset(sent))
            cutoff = now - self.retention
            self._entries = {k: e for k, e in self._entries.items() if e.timestamp >= cutoff}
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        data = {
            "entries": {
                k: {
                    "firing": sorted(e.firing),
                    "resolved": sorted(e.resolved),
                    "timestamp": e.timestamp.isoformat(),
                    "sent": sorted(e.sent),
                }
                for k, e in self._entries.items()
            }
        }
        write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True))
