"""Read a per-minute rate trace (``<timestamp>,<count>`` rows) into plain points.

Timestamps may be ISO 8601 with or without an offset, or ``YYYY-MM-DD HH:MM:SS``; a time
without an offset is taken as UTC. A first row that has neither a time nor a count is a header.
Every problem names the file and the line.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_NEWLINE = re.compile(rb"\r\n|\r|\n")
"""Line ends as a file opened with ``newline=""`` splits lines."""


class TraceError(ValueError):
    """A malformed input file: the message starts with ``FILE:LINE:``."""


@dataclass(frozen=True)
class RatePoint:
    at: datetime
    """Start of the minute, timezone-aware."""
    count: float


def parse_time(text: str) -> datetime:
    """An aware datetime from ISO 8601 (offset optional) or ``YYYY-MM-DD HH:MM:SS``."""
    # a byte order mark (a CSV saved as "CSV UTF-8" by Excel) opens the first cell: it is
    # not part of the time, and a first row that fails would be taken for a header
    s = text.lstrip("\ufeff").strip()
    if not s:
        raise ValueError("empty timestamp")
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(
            f"bad timestamp {text.strip()[:40]!r}: use ISO 8601 or YYYY-MM-DD HH:MM:SS"
        ) from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def is_time(text: str) -> bool:
    try:
        parse_time(text)
    except ValueError:
        return False
    return True


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_rates(
    path: Path, start: datetime | None = None, end: datetime | None = None
) -> list[RatePoint]:
    """Points of ``path`` with ``start <= at < end``, in file order (which must be time order)."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            points = parse_rates(f, str(path))
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    chosen = [p for p in points if (start is None or p.at >= start) and (end is None or p.at < end)]
    if not chosen:
        raise TraceError(f"{path}: no rows between {start or 'the start'} and {end or 'the end'}")
    return chosen


def not_utf8(path: Path) -> TraceError:
    """The TraceError for a file that is not UTF-8, at its first bad line (the decoder's
    own error counts bytes in the chunk it read, not lines)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = len(_NEWLINE.findall(data, 0, e.start)) + 1
        return TraceError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x})")
    return TraceError(f"{path}: not UTF-8 text")


def parse_rates(lines: Iterable[str], name: str) -> list[RatePoint]:
    """Parse CSV rows; raise TraceError ``NAME:LINE: message`` at the first bad row."""
    points: list[RatePoint] = []
    previous: datetime | None = None
    for n, row in enumerate(csv.reader(lines), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 2:
            raise TraceError(f"{name}:{n}: expected two columns <timestamp>,<count>")
        if n == 1 and not _is_number(row[1]) and not is_time(row[0]):
            continue  # header; a first data row with a bad count is an error like any other
        try:
            at = parse_time(row[0])
        except ValueError as e:
            raise TraceError(f"{name}:{n}: {e}") from None
        try:
            count = float(row[1])
        except ValueError:
            raise TraceError(f"{name}:{n}: count {row[1].strip()[:40]!r} is not a number") from None
        if not math.isfinite(count) or count < 0:
            raise TraceError(f"{name}:{n}: count must be a finite number >= 0, not {row[1]}")
        if previous is not None and at <= previous:
            raise TraceError(f"{name}:{n}: time {row[0].strip()} is not after the row before")
        previous = at
        points.append(RatePoint(at, count))
    if not points:
        raise TraceError(f"{name}:1: no data rows")
    return points
