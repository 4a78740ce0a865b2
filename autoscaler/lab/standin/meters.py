"""A small Micrometer-like meter registry: counters, gauges and timers with tags.

Names and tag keys are kept in Micrometer's own form (``appStarts``, ``spec.id``); the
Prometheus naming happens when the registry is rendered (see ``exposition``).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

MeterType = Literal["counter", "gauge", "timer"]
TagItems = tuple[tuple[str, str], ...]

MAX_WINDOW_SECONDS = 120.0
"""Micrometer's default distribution expiry: a timer's max forgets values after 2 minutes."""


def _tags(tags: Mapping[str, str]) -> TagItems:
    return tuple(sorted(tags.items()))


@dataclass
class TimerValue:
    count: int = 0
    total_seconds: float = 0.0
    recent: deque[tuple[float, float]] = field(default_factory=deque)
    """(recorded at, seconds) within the max window."""

    def record(self, seconds: float, now: float) -> None:
        self.count += 1
        self.total_seconds += seconds
        self.recent.append((now, seconds))

    def max(self, now: float) -> float:
        while self.recent and now - self.recent[0][0] > MAX_WINDOW_SECONDS:
            self.recent.popleft()
        return max((v for _, v in self.recent), default=0.0)


@dataclass(frozen=True)
class MeterSample:
    """One meter as read at render time."""

    name: str
    type: MeterType
    tags: TagItems
    value: float = 0.0
    count: int = 0
    total_seconds: float = 0.0
    max_seconds: float = 0.0


class MeterRegistry:
    """Thread-safe meters keyed by (name, tags); common tags are added to every meter."""

    def __init__(self, common_tags: Mapping[str, str], clock: Callable[[], float]) -> None:
        self._common = dict(common_tags)
        self._clock = clock
        self._lock = threading.Lock()
        self._types: dict[str, MeterType] = {}
        self._counters: dict[tuple[str, TagItems], float] = {}
        self._gauges: dict[tuple[str, TagItems], Callable[[], float] | float] = {}
        self._timers: dict[tuple[str, TagItems], TimerValue] = {}

    def _key(self, name: str, kind: MeterType, tags: Mapping[str, str]) -> tuple[str, TagItems]:
        known = self._types.setdefault(name, kind)
        if known != kind:
            raise ValueError(f"meter {name} is a {known}, not a {kind}")
        return name, _tags({**self._common, **tags})

    def register_counter(self, name: str, tags: Mapping[str, str] | None = None) -> None:
        with self._lock:
            self._counters.setdefault(self._key(name, "counter", tags or {}), 0.0)

    def increment(self, name: str, tags: Mapping[str, str] | None = None) -> None:
        with self._lock:
            key = self._key(name, "counter", tags or {})
            self._counters[key] = self._counters.get(key, 0.0) + 1.0

    def gauge(
        self, name: str, tags: Mapping[str, str] | None, value: Callable[[], float] | float
    ) -> None:
        """Register (or replace) a gauge: a number, or a function read at render time."""
        with self._lock:
            self._gauges[self._key(name, "gauge", tags or {})] = value

    def has_gauge(self, name: str, tags: Mapping[str, str] | None = None) -> bool:
        with self._lock:
            return (name, _tags({**self._common, **(tags or {})})) in self._gauges

    def remove_gauge(self, name: str, tags: Mapping[str, str]) -> None:
        with self._lock:
            self._gauges.pop((name, _tags({**self._common, **tags})), None)

    def register_timer(self, name: str, tags: Mapping[str, str] | None = None) -> None:
        with self._lock:
            self._timers.setdefault(self._key(name, "timer", tags or {}), TimerValue())

    def record(self, name: str, tags: Mapping[str, str], seconds: float) -> None:
        with self._lock:
            key = self._key(name, "timer", tags)
            self._timers.setdefault(key, TimerValue()).record(max(seconds, 0.0), self._clock())

    def counter_value(self, name: str, tags: Mapping[str, str] | None = None) -> float:
        with self._lock:
            return self._counters.get((name, _tags({**self._common, **(tags or {})})), 0.0)

    def samples(self) -> list[MeterSample]:
        """Every meter's current value; gauge functions are called outside the lock."""
        with self._lock:
            counters = list(self._counters.items())
            gauges = list(self._gauges.items())
            now = self._clock()
            timers = [
                MeterSample(
                    n,
                    "timer",
                    t,
                    count=v.count,
                    total_seconds=v.total_seconds,
                    max_seconds=v.max(now),
                )
                for (n, t), v in self._timers.items()
            ]
        out = [MeterSample(n, "counter", t, value=v) for (n, t), v in counters]
        for (n, t), g in gauges:
            out.append(MeterSample(n, "gauge", t, value=_read_gauge(g)))
        return out + timers


def _read_gauge(g: Callable[[], float] | float) -> float:
    if not callable(g):
        return float(g)
    try:
        return float(g())
    except Exception:
        # Micrometer reports a gauge whose function fails as NaN.
        return math.nan
