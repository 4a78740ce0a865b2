"""Turn a request-rate trace into session arrivals for the lab's load driver.

The recipe is the simulator's (``autoscaler.sim.arrivals``, documented in docs/lab.md and
docs/simulate.md): a trailing 5-minute mean r(t), Little's law
lambda(t) = r(t) * L* / (max(r) * E[S]), Poisson arrivals from a recorded seed, lognormal
lengths. What the lab adds: a slice of the trace is replayed with max(r) of the whole
trace, so ``peak_sessions`` means the same concurrency whichever slice is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from autoscaler.sim.arrivals import SessionLengths, from_rates, poisson, smooth
from autoscaler.sim.trace import RatePoint, read_rates

__all__ = [
    "PlannedSession",
    "RatePoint",
    "SessionLengths",
    "peak_concurrency",
    "plan_sessions",
    "poisson",
    "read_trace",
    "smooth",
]


@dataclass(frozen=True)
class PlannedSession:
    start_s: float
    """Seconds after the window's start (trace time)."""
    length_s: float


def read_trace(path: Path) -> list[RatePoint]:
    """Every row of a rate trace; a bad row is a ``FILE:LINE: message`` error."""
    return read_rates(path)


def plan_sessions(
    points: list[RatePoint],
    peak_sessions: int,
    seed: int,
    start: datetime | None = None,
    window: timedelta | None = None,
    lengths: SessionLengths | None = None,
) -> list[PlannedSession]:
    """Arrivals and lengths for the slice [start, start + window), reproducible by seed."""
    if peak_sessions <= 0:
        raise ValueError("peak sessions must be positive")
    begin = start or points[0].at
    end = begin + window if window is not None else points[-1].at + timedelta(minutes=1)
    chosen = [p for p in points if begin <= p.at < end]
    if not chosen:
        raise ValueError(f"the trace has no rows between {begin} and {end}")
    workload = from_rates(
        chosen, peak_sessions, seed, lengths, peak_rate=max(smooth(points), default=0.0)
    )
    offset = (chosen[0].at - begin).total_seconds()
    return [PlannedSession(offset + a.at, a.length) for a in workload.arrivals]


def peak_concurrency(sessions: list[PlannedSession]) -> int:
    """The most sessions alive at once in a plan."""
    edges = sorted(
        [(s.start_s, 1) for s in sessions] + [(s.start_s + s.length_s, -1) for s in sessions],
        key=lambda e: (e[0], e[1]),
    )
    live = best = 0
    for _, d in edges:
        live += d
        best = max(best, live)
    return best
