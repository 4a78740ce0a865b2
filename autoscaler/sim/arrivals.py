"""Session arrivals and lengths: from a request-rate trace, or from recorded sessions.

From a rate trace (the recipe of the traces' README): smooth the per-minute counts with a
trailing 5-minute mean r(t); with the chosen peak concurrency L* and mean session length E[S],
Little's law gives lambda(t) = r(t) * L* / (max r * E[S]) arrivals per minute; each minute's
arrivals are Poisson(lambda(t)) from a recorded seed, spread uniformly over the minute, and
each length is lognormal (median 12 min, 90th percentile 50 min, capped at 8 h by default).
The lognormal is an assumption about interactive apps, not a measurement.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from autoscaler.sim.trace import RatePoint, TraceError, is_time, parse_time

Z90 = 1.2815515655446004
"""The standard normal's 90th percentile."""


@dataclass(frozen=True)
class SessionLengths:
    """A lognormal session length in minutes, given by its median and 90th percentile."""

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
        """E[min(S, cap)], in closed form."""
        mu, s, c = self.mu, self.sigma, self.cap_minutes
        below = math.exp(mu + s * s / 2) * _phi((math.log(c) - mu - s * s) / s)
        return below + c * (1 - _phi((math.log(c) - mu) / s))

    def draw_seconds(self, rng: random.Random) -> float:
        return 60.0 * min(rng.lognormvariate(self.mu, self.sigma), self.cap_minutes)


@dataclass(frozen=True)
class Arrival:
    at: float
    """Seconds after the workload's start."""
    length: float
    """Seconds the session lasts once it has a seat."""


@dataclass(frozen=True)
class Workload:
    start: datetime
    end: datetime
    arrivals: tuple[Arrival, ...]
    """Sorted by ``at``."""
    source: str
    carried: tuple[Arrival, ...] = ()
    """Sessions already running when the window opens, sorted by ``at``: ``at`` is their
    start, before the window (negative), and ``at + length`` their end, after it. Every
    run starts with them seated; they are not arrivals of the window."""
    earlier_starts: tuple[float, ...] = ()
    """Seconds (negative) of the session starts in the day before the window, ended or not:
    what a count of recent ProxyStart events reads when the window opens."""

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def smooth(points: Sequence[RatePoint], minutes: int = 5) -> list[float]:
    """Trailing mean over the last ``minutes`` minutes of real time (gaps stay gaps)."""
    out: list[float] = []
    span = timedelta(minutes=minutes)
    first, total = 0, 0.0
    for i, p in enumerate(points):
        total += p.count
        while points[first].at <= p.at - span:
            total -= points[first].count
            first += 1
        out.append(total / (i - first + 1))
    return out


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw; large rates are split into chunks so exp(-lam) cannot underflow."""
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
    points: Sequence[RatePoint],
    peak_sessions: float,
    mean_minutes: float,
    peak_rate: float | None = None,
) -> list[float]:
    """lambda(t) in arrivals per minute for each point, by Little's law on the smoothed rate.

    ``peak_rate`` is max(r) of a larger trace these points were cut from, so that L* means
    the same whichever slice is replayed; by default the points' own smoothed maximum.
    """
    if peak_sessions <= 0:
        raise ValueError("peak sessions must be positive")
    r = smooth(points)
    peak = peak_rate if peak_rate is not None else max(r, default=0.0)
    if peak <= 0:
        raise ValueError("the trace has no requests in the chosen window")
    return [x * peak_sessions / (peak * mean_minutes) for x in r]


def from_rates(
    points: Sequence[RatePoint],
    peak_sessions: float,
    seed: int,
    lengths: SessionLengths | None = None,
    peak_rate: float | None = None,
) -> Workload:
    """Arrivals for the points' minutes, reproducible by ``seed`` (``peak_rate``: see
    ``arrival_rates``)."""
    lengths = lengths or SessionLengths()
    rates = arrival_rates(points, peak_sessions, lengths.mean_minutes(), peak_rate)
    rng = random.Random(seed)
    start = points[0].at
    out: list[Arrival] = []
    for p, lam in zip(points, rates, strict=True):
        base = (p.at - start).total_seconds()
        times = sorted(base + 60.0 * rng.random() for _ in range(poisson(rng, lam)))
        out += [Arrival(t, lengths.draw_seconds(rng)) for t in times]
    end = points[-1].at + timedelta(minutes=1)
    return Workload(start, end, tuple(out), f"rate trace, {len(points)} minutes")


# ---------------------------------------------------------------- recorded sessions


@dataclass(frozen=True)
class Event:
    """One ShinyProxy usage event."""

    at: datetime
    user: str
    type: str
    """ProxyStart or ProxyStop (others are ignored)."""
    spec: str


def pair_events(events: Iterable[Event], until: datetime) -> list[tuple[datetime, datetime]]:
    """(start, end) of each session: a ProxyStop ends the oldest open ProxyStart of the same
    user and spec; a start never stopped lasts until ``until``; a stop without a start (its
    start before the events read) is ignored."""
    open_: dict[tuple[str, str], list[datetime]] = {}
    out: list[tuple[datetime, datetime]] = []
    for e in sorted(events, key=lambda e: e.at):
        key = (e.user, e.spec)
        if e.type == "ProxyStart":
            open_.setdefault(key, []).append(e.at)
        elif e.type == "ProxyStop" and open_.get(key):
            out.append((open_[key].pop(0), e.at))
    out += [(t, until) for starts in open_.values() for t in starts]
    return sorted(out)


def from_sessions(
    spans: Sequence[tuple[datetime, datetime]],
    source: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Workload:
    """A workload of the recorded sessions starting in [start, end), carrying in those
    that started before ``start`` and were still running at it."""
    if not spans:
        raise ValueError(f"{source}: no sessions")
    begin = start or min(s for s, _ in spans)
    finish = end or max(e for _, e in spans)
    chosen = [(s, e) for s, e in spans if begin <= s < finish]
    running = [(s, e) for s, e in spans if s < begin < e]
    if not chosen and not running:
        raise ValueError(
            f"{source}: no session starts between {begin} and {finish}, and none runs at {begin}"
        )
    if finish <= begin:  # sessions running at ``begin`` would make a window of no time
        raise ValueError(f"{source}: the window from {begin} to {finish} is empty")
    day = begin - timedelta(days=1)
    earlier = sorted((s - begin).total_seconds() for s, _ in spans if day < s < begin)
    return Workload(
        begin,
        finish,
        _relative(chosen, begin),
        source,
        _relative(running, begin),
        tuple(earlier),
    )


def _relative(spans: list[tuple[datetime, datetime]], begin: datetime) -> tuple[Arrival, ...]:
    """Sessions in seconds from ``begin``, sorted by start."""
    spans_s = [((s - begin).total_seconds(), (e - s).total_seconds()) for s, e in spans]
    return tuple(Arrival(at, max(0.0, length)) for at, length in sorted(spans_s))


def read_session_csv(path: Path) -> list[tuple[datetime, datetime]]:
    """Rows ``start,end[,...]`` (a header row is allowed); errors name the file and line."""
    out: list[tuple[datetime, datetime]] = []
    with path.open(newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < 2:
                raise TraceError(f"{path}:{n}: expected <start>,<end>")
            try:
                s, e = parse_time(row[0]), parse_time(row[1])
            except ValueError as err:
                if n == 1 and not any(is_time(c) for c in row[:2]):
                    continue  # header; a first session with one bad time is an error
                raise TraceError(f"{path}:{n}: {err}") from None
            if e < s:
                raise TraceError(f"{path}:{n}: session ends before it starts")
            out.append((s, e))
    if not out:
        raise TraceError(f"{path}:1: no sessions")
    return out
