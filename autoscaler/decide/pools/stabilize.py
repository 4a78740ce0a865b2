"""The arrivals reading a pool plans by: the highest of ``headroom.stabilization_window``.

Pure. Kubernetes' HPA keeps the highest recommendation of its scale-down stabilisation
window; the pool keeps the highest arrivals reading of its window instead, so the reserve
sized from it outlasts a burst by the window and a following burst finds it. Only readings
that can still become the window's highest are remembered (a monotonic queue): a flat or
rising signal keeps one, and never more than one per pass of the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from autoscaler.decide.plan_types import Reading
from autoscaler.decide.signals import SignalReading
from autoscaler.decide.text import num, span, utc


@dataclass(frozen=True)
class Stabilized:
    reading: SignalReading | None
    """What the pool plans by: the highest usable reading of the window."""
    memory: tuple[Reading, ...]
    reason: str | None = None
    """Set when the window's highest is not the current reading."""


def stabilize(
    current: SignalReading | None,
    window: timedelta,
    remembered: tuple[Reading, ...],
    now: datetime,
) -> Stabilized:
    """The highest reading within ``window`` of ``now``, ``current`` included.

    An unusable current reading stays unusable (no reading stands in for a backend that is
    down), but the window's readings are kept for when it is back.
    """
    if window <= timedelta(0):
        return Stabilized(current, ())
    at = utc(now)
    # oldest first and each higher than every later one: expired readings are a prefix,
    # and readings no higher than the current one (never again the highest) a suffix
    start = 0
    while start < len(remembered) and remembered[start].at <= at - window:
        start += 1
    if current is None or current.value is None:
        return Stabilized(current, remembered[start:])
    value = current.value
    end = len(remembered)
    while end > start and remembered[end - 1].value <= value:
        end -= 1
    # built from a datetime and a float this function holds: nothing left to validate
    kept = (*remembered[start:end], Reading.model_construct(at=at, value=value))
    top = kept[0]
    if top.value <= value:
        return Stabilized(current, kept)
    ago = int((at - top.at).total_seconds() // 60)
    reason = (
        f"arrivals signal {current.name} reads {num(value)}; planned by {num(top.value)}, "
        f"its highest of the last {span(window)} ({ago} min ago)"
    )
    return Stabilized(SignalReading(current.name, top.value), kept, reason)
