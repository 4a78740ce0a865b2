"""How numbers, times and rate policies read in decision reasons."""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime, timedelta

from autoscaler.durations import format_duration
from autoscaler.rules.schema import RatePolicy


def num(v: float) -> str:
    """120.0 -> "120", 0.8500001 -> "0.85"."""
    if math.isfinite(v) and v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}"


def utc(t: datetime) -> datetime:
    """``t`` in UTC; a naive time is taken to be UTC already."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def clock(t: datetime) -> str:
    """A UTC wall-clock time, e.g. ``12:04:00Z``."""
    return _clock(t)


@functools.lru_cache(maxsize=4096)  # the same paused-at and window times recur every pass
def _clock(t: datetime) -> str:
    return utc(t).strftime("%H:%M:%SZ")


def span(d: timedelta) -> str:
    return format_duration(d)


def seconds(d: timedelta) -> str:
    return f"{int(d.total_seconds())}s"


def rate(policy: RatePolicy) -> str:
    """``4 replicas per 15s`` / ``100% per 1m``."""
    amount = f"{policy.value}%" if policy.type == "percent" else f"{policy.value} replicas"
    return f"{amount} per {span(policy.period)}"
