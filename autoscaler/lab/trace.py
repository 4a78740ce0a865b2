"""Turn a request-rate trace into ShinyProxy session arrivals and lengths.

The recipe (see docs/lab.md): smooth the per-minute requests with a trailing 5-minute mean
r(t); with a chosen peak concurrency L* and mean session length E[S], Little's law gives the
arrival rate lambda(t) = r(t) * L* / (max(r) * E[S]) per minute; arrivals of each minute are
Poisson(lambda(t)) from a recorded seed, and each session's length is lognormal (median 12
min, 90th percentile 50 min, capped at 8 h). The lognormal is an assumption, not a measurement.
Pure functions: no clock, no I/O except ``read_trace``.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

Z90 = 1.2815515655446004
"""The standard normal's 90th percentile."""


@dataclass(frozen=True)
class RatePoint:
    at: datetime
    requests: float


@dataclass(frozen=True)
class SessionLengths:
    median_minutes: float = 12.0
    p90_minutes: float = 50.0
    cap_minutes: float = 480.0

    def __post_init__(self) -> None:
        if not 0 < self.median_minutes < self.p90_minutes:
            raise ValueError("session lengths need 0 < median < 90th percentile")
        if self.cap_minutes <= 0:
            raise ValueError("the session length cap must be positive")

    @property
    def mu(self) -> float:
        return math.log(self.median_minutes)

    @property
    def sigma(self) -> float:
        return (math.log(self.p90_minutes) - self.mu) / Z90

    def mean_minutes(self) -> float:
        """E[min(S, cap)] of the lognormal, in closed form."""
        mu, s, c = self.mu, self.sigma, self.cap_minutes
        phi = _normal_cdf
        below = math.exp(mu + s * s / 2) * phi((math.log(c) - mu - s * s) / s)
        return below + c * (1 - phi((math.log(c) - mu) / s))

    def draw_minutes(self, rng: random.Random) -> float:
        return min(rng.lognormvariate(self.mu, self.sigma), self.cap_minutes)


@dataclass(frozen=True)
class PlannedSession:
    start_s: float
    """Seconds after the window's start (trace time)."""
    length_s: float


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def read_trace(path: Path) -> list[RatePoint]:
    """Read ``<timestamp>,<requests>`` rows (a header row is skipped); errors name the line."""
    points: list[RatePoint] = []
    with path.open(newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if not row or (n == 1 and not row[-1].strip().replace(".", "", 1).isdigit()):
                continue
            try:
                points.append(RatePoint(datetime.fromisoformat(row[0]), float(row[1])))
            except (ValueError, IndexError) as e:
                raise ValueError(f"{path}:{n}: expected <ISO time>,<requests>: {e}") from None
    if not points:
        raise ValueError(f"{path}: no rows")
    return points


def smooth(points: list[RatePoint], minutes: int = 5) -> list[RatePoint]:
    """Trailing mean over the last ``minutes`` minutes of real time (gaps stay gaps)."""
    out: list[RatePoint] = []
    window: list[RatePoint] = []
    total = 0.0
    span = timedelta(minutes=minutes)
    for p in points:
        window.append(p)
        total += p.requests
        while window[0].at <= p.at - span:
            total -= window.pop(0).requests
        out.append(RatePoint(p.at, total / len(window)))
    return out


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth's method, split into chunks so large rates do not underflow)."""
    if lam < 0:
        raise ValueError("a rate cannot be negative")
    count = 0
    while lam > 0:
        chunk = min(lam, 30.0)
        lam -= chunk
        limit, k, p = math.exp(-chunk), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        count += k
    return count


def arrival_rates(
    smoothed: list[RatePoint], peak_sessions: int, mean_minutes: float, peak_rate: float
) -> list[float]:
    """lambda(t) per minute by Little's law."""
    if peak_rate <= 0:
        raise ValueError("the trace has no requests at all")
    return [p.requests * peak_sessions / (peak_rate * mean_minutes) for p in smoothed]


def plan_sessions(
    points: list[RatePoint],
    peak_sessions: int,
    seed: int,
    start: datetime | None = None,
    window: timedelta | None = None,
    lengths: SessionLengths | None = None,
) -> list[PlannedSession]:
    """Arrivals and lengths for the trace slice [start, start + window), reproducible by seed.

    The peak rate is the whole trace's smoothed maximum, so ``peak_sessions`` means the same
    concurrency whichever slice is replayed.
    """
    if peak_sessions <= 0:
        raise ValueError("peak sessions must be positive")
    lengths = lengths or SessionLengths()
    smoothed = smooth(points)
    peak = max(p.requests for p in smoothed)
    begin = start or smoothed[0].at
    end = begin + window if window is not None else smoothed[-1].at + timedelta(minutes=1)
    chosen = [p for p in smoothed if begin <= p.at < end]
    if not chosen:
        raise ValueError(f"the trace has no rows between {begin} and {end}")
    rates = arrival_rates(chosen, peak_sessions, lengths.mean_minutes(), peak)
    rng = random.Random(seed)
    planned: list[PlannedSession] = []
    for p, lam in zip(chosen, rates, strict=True):
        offset = (p.at - begin).total_seconds()
        for _ in range(poisson(rng, lam)):
            planned.append(
                PlannedSession(offset + 60 * rng.random(), 60 * lengths.draw_minutes(rng))
            )
    planned.sort(key=lambda s: s.start_s)
    return planned


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
