"""What was sent to whom: keeps a restart from re-sending within ``repeat_interval``.

One entry per (group, receiver, integration): the fingerprints of the firing and
resolved alerts last notified, and when. Written atomically, at most once a second
(``flush`` writes what is left): a file rewritten after each of thousands of messages
would take time in the square of their number. A crash may lose the last second, which
only repeats a message.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from autoscaler.atomic import write_atomic

log = logging.getLogger(__name__)

RETENTION = timedelta(hours=120)
SAVE_EVERY = 1.0
"""Seconds between two writes of the file."""


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
        self._write = threading.Lock()
        self._dirty = False
        self._saved_at = -SAVE_EVERY
        self._latest: datetime | None = None
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        """Whatever the file holds (corrupt, from an older version), the sidecar starts: an
        unreadable log or entry only risks a repeated message, never a lost one."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            entries = raw.get("entries") if isinstance(raw, dict) else None
            if not isinstance(entries, dict):
                raise ValueError("no 'entries' object")
        except (OSError, ValueError, RecursionError) as e:
            log.warning("notification log %s unreadable (%s): starting empty", path, e)
            return
        skipped = 0
        for key, item in entries.items():
            try:
                self._entries[key] = _entry(item)
            except (ValueError, KeyError, TypeError, AttributeError):
                skipped += 1
        if skipped:
            log.warning("notification log %s: %d unreadable entries left out", path, skipped)

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
            self._latest = now if self._latest is None else max(self._latest, now)
            self._dirty = True
            due = time.monotonic() - self._saved_at >= SAVE_EVERY
        if due:
            self.flush()

    def flush(self) -> None:
        """Write the log if it changed since the last write."""
        if self.path is None:
            return
        with self._write:  # one writer at a time; each writes everything known
            with self._lock:
                if not self._dirty:
                    return
                if self._latest is not None:
                    cutoff = self._latest - self.retention
                    self._entries = {
                        k: e for k, e in self._entries.items() if e.timestamp >= cutoff
                    }
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
                self._dirty = False
                self._saved_at = time.monotonic()
            try:
                write_atomic(self.path, json.dumps(data, sort_keys=True))
            except OSError as e:  # kept in memory; a restart may repeat a message
                log.error("notification log %s not written: %s", self.path, e)
                with self._lock:
                    self._dirty = True


def _entry(e: Any) -> Entry:
    def ids(value: Any) -> frozenset[str]:
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise TypeError("not a list of fingerprints")
        return frozenset(value)

    at = datetime.fromisoformat(e["timestamp"])
    if at.tzinfo is None:  # written as UTC
        at = at.replace(tzinfo=UTC)
    # older logs have no "sent": none counted as told
    return Entry(ids(e["firing"]), ids(e["resolved"]), at, ids(e.get("sent", [])))
