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
from autoscaler.decide.text import clock, num, span, utc


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
    since = utc(now) - window
    kept = tuple(r for r in remembered if utc(r.at) > since)
    if current is None or current.value is None:
        return Stabilized(current, kept)
    value = current.value
    # a reading no higher than the current one can never again be the highest
    kept = (*(r for r in kept if r.value > value), Reading(at=now, value=value))
    top = kept[0]
    if top.value <= value:
        return Stabilized(current, kept)
    reason = (
        f"arrivals signal {current.name} reads {num(value)}; planned by {num(top.value)}, "
        f"its highest of the last {span(window)} (at {clock(top.at)})"
    )
    return Stabilized(SignalReading(current.name, top.value), kept, reason)
