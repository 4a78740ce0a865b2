"""Durations as people write them in policies: ``90s``, ``5m``, ``1h30m``, ``250ms``, ``2d``."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_BARE_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def _from_seconds(seconds: float) -> timedelta:
    """A timedelta, or ValueError where timedelta would overflow or cannot hold the value."""
    try:
        if math.isnan(seconds):
            raise ValueError("a duration must be a number, not NaN")
        return timedelta(seconds=seconds)
    except OverflowError:  # also inf, and an int too big for a float
        raise ValueError("duration too large") from None


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m`` style text; raise ValueError naming what is wrong."""
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise ValueError(f"bad duration {text!r}: use a number and a unit, e.g. 30s, 5m, 1h30m")
    return _from_seconds(total)


def format_duration(d: timedelta) -> str:
    """The shortest ``1h30m`` form of a duration (whole seconds, or ms below one second)."""
    secs = d.total_seconds()
    if secs < 1 and secs != 0:
        return f"{round(secs * 1000)}ms"
    out, rest = "", round(secs)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    if rest or not out:
        out += f"{rest}s"
    return out


def _coerce(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a duration is text like 30s or 5m, not true/false")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return _from_seconds(value)
    if isinstance(value, str):
        # A bare number is seconds, as in YAML; the environment only holds text.
        if _BARE_SECONDS.fullmatch(value.strip()):
            return _from_seconds(float(value))
        return parse_duration(value)
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A timedelta field that accepts ``30s``/``5m``/``1h30m`` or a number of seconds."""
