"""Trace replay: request rates -> session arrivals (Little's law) and lognormal lengths."""

from __future__ import annotations

import random
import statistics
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.lab.load import burst_plan
from autoscaler.lab.trace import (
    PlannedSession,
    RatePoint,
    SessionLengths,
    peak_concurrency,
    plan_sessions,
    poisson,
    read_trace,
    smooth,
)
from tests.realparts import missing_real_part

NASA = Path(__file__).resolve().parents[2] / "shared" / "traces" / "nasa-http-1995-per-minute.csv"
T0 = datetime.fromisoformat("1995-07-03T00:00:00-04:00")


def flat(minutes: int, requests: float = 100.0) -> list[RatePoint]:
    return [RatePoint(T0 + timedelta(minutes=i), requests) for i in range(minutes)]


def test_session_lengths_have_the_chosen_median_and_90th_percentile() -> None:
    lengths = SessionLengths()
    rng = random.Random(7)
    draws = sorted(lengths.draw_seconds(rng) / 60 for _ in range(40_000))
    assert statistics.median(draws) == pytest.approx(12.0, rel=0.04)
    assert draws[int(0.9 * len(draws))] == pytest.approx(50.0, rel=0.06)
    assert max(draws) <= 480.0
    assert statistics.fmean(draws) == pytest.approx(lengths.mean_minutes(), rel=0.03)


def test_poisson_draws_have_the_right_mean_also_for_large_rates() -> None:
    rng = random.Random(3)
    for lam in (0.3, 4.0, 95.0):
        mean = statistics.fmean(poisson(rng, lam) for _ in range(4000))
        assert mean == pytest.approx(lam, rel=0.05)
    assert poisson(rng, 0.0) == 0


def test_a_steady_peak_rate_gives_the_peak_concurrency_by_littles_law() -> None:
    # 12 hours at the peak rate: once warmed up, about peak_sessions are alive at once
    plan = plan_sessions(flat(720), peak_sessions=40, seed=11)
    lengths = SessionLengths()
    assert len(plan) == pytest.approx(720 * 40 / lengths.mean_minutes(), rel=0.1)
    at = 6 * 3600.0
    alive = sum(1 for s in plan if s.start_s <= at < s.start_s + s.length_s)
    assert 25 <= alive <= 60


def test_plans_are_reproducible_by_seed_and_follow_the_rate() -> None:
    points = flat(60, 10.0) + [RatePoint(T0 + timedelta(minutes=60 + i), 100.0) for i in range(60)]
    a = plan_sessions(points, 30, seed=5)
    assert a == plan_sessions(points, 30, seed=5)
    assert a != plan_sessions(points, 30, seed=6)
    quiet = sum(1 for s in a if s.start_s < 3600)
    busy = sum(1 for s in a if 3900 <= s.start_s < 7200)
    assert busy > 4 * quiet
    assert all(isinstance(s, PlannedSession) for s in a)


def test_smoothing_is_a_trailing_five_minute_mean_that_keeps_gaps() -> None:
    points = [RatePoint(T0 + timedelta(minutes=i), float(v)) for i, v in enumerate([0, 10, 20])]
    points.append(RatePoint(T0 + timedelta(minutes=60), 50.0))  # after a gap
    assert smooth(points) == [0.0, 5.0, 10.0, 50.0]


def test_window_selects_a_slice_and_an_empty_slice_is_an_error() -> None:
    plan = plan_sessions(flat(120), 10, seed=1, start=T0 + timedelta(minutes=60),
                         window=timedelta(minutes=30))  # fmt: skip
    assert plan and all(0 <= s.start_s < 1800 for s in plan)
    with pytest.raises(ValueError, match="no rows"):
        plan_sessions(flat(10), 10, seed=1, start=T0 + timedelta(days=3))


def test_bad_rows_name_their_line(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("minute,requests\n1995-07-01T00:00:00-04:00,4\nyesterday,5\n")
    with pytest.raises(ValueError, match=r"t\.csv:3"):
        read_trace(f)


def test_peak_concurrency_and_burst_plan() -> None:
    plan = burst_plan(5, 10.0, ramp_s=5.0)
    assert [s.start_s for s in plan] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert peak_concurrency(plan) == 5
    assert peak_concurrency([PlannedSession(0, 1), PlannedSession(1, 1)]) == 1
    with pytest.raises(ValueError):
        burst_plan(0, 10.0)


def test_the_nasa_trace_replays_at_a_bounded_peak() -> None:
    if not NASA.exists():
        missing_real_part(f"trace not found at {NASA}")
    points = read_trace(NASA)
    assert len(points) == 84_334
    assert sum(p.count for p in points) == 3_461_610
    day = plan_sessions(points, 200, seed=1, start=datetime.fromisoformat(
        "1995-07-05T00:00:00-04:00"), window=timedelta(days=1))  # fmt: skip
    assert 0 < peak_concurrency(day) <= 260
