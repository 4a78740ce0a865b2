"""A schedule's min at the edges of its window, pass after pass, as HPA treats minReplicas."""

from __future__ import annotations

from datetime import datetime, timedelta

from autoscaler.decide import plan
from autoscaler.decide.plan_types import Memory
from tests.test_decide_plan import T0, one, policy, rules, snap, svc

# Monday to Friday 08:00-18:00 in Berlin (CEST on T0): 06:00Z-16:00Z
WORKDAY = {"cron": "0 8 * * 1-5", "duration": "10h", "timezone": "Europe/Berlin", "min": 6}


def _passes(start: datetime, end: datetime, current: int) -> list[tuple[datetime, int, int]]:
    """(time, current, desired) of a pass every 15 s, each applied before the next."""
    pol = rules(api=policy(schedules=[WORKDAY]))
    memory, at, out = Memory(), start, []
    while at < end:
        p = plan(snap(svc("api", current), at=at, rps=20), pol, memory)  # 20 rps: 1 replica
        desired = one(p).desired
        assert desired is not None
        out.append((at, current, desired))
        memory, current, at = p.memory, desired, at + timedelta(seconds=15)
    return out


def test_window_opening_raises_the_count_at_once() -> None:
    passes = _passes(T0.replace(hour=5, minute=59), T0.replace(hour=6, minute=1), 1)
    changes = [(at, c, d) for at, c, d in passes if c != d]
    # 1 -> 6 in one step: past the default +4 per 15 s rate policy
    assert changes == [(T0.replace(hour=6), 1, 6)]


def test_window_closing_lowers_the_count_to_the_signals_at_once() -> None:
    passes = _passes(T0.replace(hour=15, minute=50), T0.replace(hour=16, minute=10), 2)
    changes = [(at, c, d) for at, c, d in passes if c != d]
    # the 5-minute scale-down stabilisation saw only the signals' 1 during the window
    assert changes == [(T0.replace(hour=15, minute=50), 2, 6), (T0.replace(hour=16), 6, 1)]
