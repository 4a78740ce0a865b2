"""Silences: matcher sets with a start, an end, an author and a comment; kept on disk."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from autoscaler.alerts.matchers import Matcher, matches_all, parse_matchers
from autoscaler.atomic import write_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str

    def state(self, now: datetime) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    @cached_property
    def parsed(self) -> list[Matcher]:
        return [m for text in self.matchers for m in parse_matchers(text)]

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        if self.state(now) != "active":
            return False
        return matches_all(self.parsed, labels)

    def to_json(self, now: datetime) -> dict[str, Any]:
        d = asdict(self)
        d["matchers"] = list(self.matchers)
        d["starts_at"] = self.starts_at.isoformat()
        d["ends_at"] = self.ends_at.isoformat()
        d["state"] = self.state(now)
        return d


class Silences:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._items: dict[str, Silence] = {}
        self._lock = threading.Lock()
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        """A corrupt file, or one from an older version, never stops the sidecar: what
        cannot be read is left out, with an error."""
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(rows, list):
                raise ValueError("not a list of silences")
        except (OSError, ValueError, RecursionError) as e:
            log.error("silences file %s unreadable (%s): no silences loaded", path, e)
            return
        for i, d in enumerate(rows):
            try:
                s = _silence(d)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                log.error("silence %d of %s not loaded: %s", i + 1, path, e)
                continue
            try:  # one a newer check refuses (a Perl-only regex) must not stop all
                s.parsed  # noqa: B018 (compiled once, here)
            except ValueError as e:
                log.error("silence %s not loaded: %s", s.id, e)
                continue
            self._items[s.id] = s

    def add(
        self,
        matchers: Sequence[str],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
    ) -> Silence:
        if not matchers:
            raise ValueError("a silence needs at least one matcher")
        parsed = [m for text in matchers for m in parse_matchers(text)]
        if not parsed:
            raise ValueError("a silence needs at least one matcher")
        if all(m.matches({}) for m in parsed):
            raise ValueError("these matchers match every alert: name at least one label value")
        if ends_at <= starts_at:
            raise ValueError("a silence must end after it starts")
        if not created_by.strip() or not comment.strip():
            raise ValueError("a silence needs an author (created_by) and a comment")
        s = Silence(uuid.uuid4().hex[:12], tuple(matchers), starts_at, ends_at, created_by, comment)
        with self._lock:
            self._commit({**self._items, s.id: s})
        return s

    def expire(self, silence_id: str, now: datetime) -> bool:
        with self._lock:
            s = self._items.get(silence_id)
            if s is None or s.state(now) == "expired":
                return False
            start = min(s.starts_at, now)
            ended = Silence(s.id, s.matchers, start, now, s.created_by, s.comment)
            self._commit({**self._items, silence_id: ended})
            return True

    def all(self) -> list[Silence]:
        with self._lock:
            return sorted(self._items.values(), key=lambda s: s.starts_at)

    def muting(self, labels: Mapping[str, str], now: datetime) -> list[str]:
        return [s.id for s in self.all() if s.mutes(labels, now)]

    def _commit(self, items: dict[str, Silence]) -> None:
        """Saved first, then in force: a change that cannot be saved (a full disk) raises
        and changes nothing, so the error the caller gets is the whole truth."""
        if self.path is not None:
            rows = [s.to_json(s.starts_at) for s in items.values()]
            for r in rows:
                r.pop("state")
            write_atomic(self.path, json.dumps(rows, indent=1))
        self._items = items


def _silence(d: Any) -> Silence:
    def text(key: str) -> str:
        value = d[key]
        if not isinstance(value, str):
            raise TypeError(f"{key!r} is not text")
        return value

    def time(key: str) -> datetime:
        t = datetime.fromisoformat(text(key))
        return t if t.tzinfo else t.replace(tzinfo=UTC)  # written as UTC

    matchers = d["matchers"]
    if not isinstance(matchers, list) or not all(isinstance(m, str) for m in matchers):
        raise TypeError("'matchers' is not a list of text")
    return Silence(
        text("id"),
        tuple(matchers),
        time("starts_at"),
        time("ends_at"),
        text("created_by"),
        text("comment"),
    )
