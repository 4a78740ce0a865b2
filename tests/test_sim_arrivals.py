"""Rates -> arrivals by Little's law; lognormal lengths; usage events paired into sessions."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.sim.arrivals import (
    Event,
    SessionLengths,
    arrival_rates,
    from_rates,
    from_sessions,
    pair_events,
    poisson,
    smooth,
)
from autoscaler.sim.oracle import concurrency_per_cell
from autoscaler.sim.trace import RatePoint

T0 = datetime(1995, 7, 3, 4, tzinfo=UTC)


def flat(minutes: int, count: float = 100.0) -> list[RatePoint]:
    return [RatePoint(T0 + timedelta(minutes=i), count) for i in range(minutes)]


def test_smooth_is_a_trailing_five_minute_mean_that_keeps_gaps() -> None:
    pts = [RatePoint(T0 + timedelta(minutes=i), float(i)) for i in range(7)]
    pts.append(RatePoint(T0 + timedelta(minutes=60), 100.0))  # after a gap: alone
    assert smooth(pts) == [0, 0.5, 1, 1.5, 2, 3, 4, 100]


def test_little_law_rate_on_a_constant_load() -> None:
    lengths = SessionLengths()
    rates = arrival_rates(flat(30), peak_sessions=200, mean_minutes=lengths.mean_minutes())
    assert rates == pytest.approx([200 / lengths.mean_minutes()] * 30)


def test_lognormal_lengths_have_the_asked_median_and_p90() -> None:
    lengths = SessionLengths(12, 50, 480)
    rng = random.Random(7)
    draws = sorted(lengths.draw_seconds(rng) / 60 for _ in range(40_000))
    assert statistics.median(draws) == pytest.approx(12, rel=0.04)
    assert draws[int(0.9 * len(draws))] == pytest.approx(50, rel=0.05)
    assert max(draws) <= 480
    assert statistics.fmean(draws) == pytest.approx(lengths.mean_minutes(), rel=0.03)


def test_poisson_mean_and_reproducibility() -> None:
    draws = [poisson(random.Random(s), 40.0) for s in range(3000)]
    assert statistics.fmean(draws) == pytest.approx(40, rel=0.02)
    assert statistics.variance(draws) == pytest.approx(40, rel=0.1)
    with pytest.raises(ValueError, match="negative"):
        poisson(random.Random(1), -1)


def test_constant_trace_reaches_the_peak_concurrency_by_little_law() -> None:
    # 2 days flat: after the first hours the mean concurrency is L* = 80
    lengths = SessionLengths(12, 50, 480)
    w = from_rates(flat(2 * 1440), peak_sessions=80, seed=3, lengths=lengths)
    again = from_rates(flat(2 * 1440), peak_sessions=80, seed=3, lengths=lengths)
    assert w.arrivals == again.arrivals  # the seed fixes everything
    assert w.seconds == 2 * 86400
    cells = concurrency_per_cell(w.arrivals, 60.0, 2 * 1440)
    steady = cells[720:]
    assert statistics.fmean(steady) == pytest.approx(80, rel=0.06)


def test_pairing_of_usage_events() -> None:
    t = [T0 + timedelta(minutes=i) for i in range(10)]
    events = [
        Event(t[0], "alice", "ProxyStart", "euler"),
        Event(t[1], "alice", "ProxyStart", "euler"),  # a second tab of the same app
        Event(t[2], "bob", "ProxyStop", "euler"),  # its start was before the window
        Event(t[3], "alice", "ProxyStop", "euler"),  # ends the oldest open one
        Event(t[4], "alice", "ProxyStart", "gauss"),
        Event(t[5], "alice", "Login", ""),
        Event(t[6], "alice", "ProxyStop", "gauss"),
    ]
    until = t[9]
    assert pair_events(reversed(events), until) == [(t[0], t[3]), (t[1], until), (t[4], t[6])]


def test_recorded_sessions_become_a_workload() -> None:
    spans = [(T0 + timedelta(minutes=5), T0 + timedelta(minutes=35)), (T0, T0 + timedelta(hours=1))]
    w = from_sessions(spans, "s.csv")
    assert [(a.at, a.length) for a in w.arrivals] == [(0, 3600), (300, 1800)]
    assert w.end == T0 + timedelta(hours=1)
    with pytest.raises(ValueError, match="no session starts"):
        from_sessions(spans, "s.csv", start=T0 + timedelta(hours=2))
