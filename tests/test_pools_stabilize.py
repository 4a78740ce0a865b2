"""headroom.stabilization_window: the pool plans by the window's highest arrivals reading."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from autoscaler.decide.plan_types import Reading
from autoscaler.decide.pools.stabilize import stabilize
from autoscaler.decide.signals import SignalReading
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.schema import Signal
from tests.pools_builders import POOL, T0, node, pool, reasons, run, sessions, snapshot

WINDOW = timedelta(minutes=30)


def replay(values: Sequence[float | None]) -> list[float | None]:
    """Feed one reading per one-minute pass; what each pass plans by."""
    memory: tuple[Reading, ...] = ()
    out: list[float | None] = []
    for i, v in enumerate(values):
        held = stabilize(SignalReading("arrivals", v), WINDOW, memory, T0 + timedelta(minutes=i))
        memory = held.memory
        out.append(held.reading.value if held.reading is not None else None)
    return out


def test_the_highest_reading_of_the_window_is_planned_by() -> None:
    assert replay([3, 9, 2, 5, 1]) == [3, 9, 9, 9, 9]


def test_a_high_reading_lasts_exactly_the_window() -> None:
    # 9 at minute 0; 30 one-minute passes later it is out of the window
    planned = replay([9.0] + [1.0] * 31)
    assert planned[29] == 9
    assert planned[30] == 1
    # after it, the next highest still inside the window takes over
    assert replay([9.0, 4.0] + [1.0] * 30)[30:] == [4, 1]


def test_memory_keeps_only_readings_that_can_still_be_highest() -> None:
    memory: tuple[Reading, ...] = ()
    for i, v in enumerate([5.0, 3.0, 4.0, 1.0, 2.0]):
        memory = stabilize(SignalReading("a", v), WINDOW, memory, T0 + timedelta(minutes=i)).memory
    assert [r.value for r in memory] == [5, 4, 2]
    # a thousand passes of a flat signal remember one reading
    for i in range(1000):
        at = T0 + timedelta(seconds=15 * i)
        memory = stabilize(SignalReading("a", 1.0), WINDOW, memory, at).memory
    assert len(memory) == 1


def test_an_unusable_reading_is_never_replaced_by_the_window() -> None:
    """A backend that is down is reported, not read as an old value (or as zero)."""
    assert replay([9, None, 2]) == [9, None, 9]
    held = stabilize(SignalReading("a", None, "signal a missing"), WINDOW, (), T0)
    assert held.reading is not None and held.reading.problem == "signal a missing"


def test_no_window_plans_by_the_current_reading_and_remembers_nothing() -> None:
    memory = (Reading(at=T0, value=50.0),)
    held = stabilize(SignalReading("a", 2.0), timedelta(0), memory, T0 + timedelta(minutes=1))
    assert held.reading == SignalReading("a", 2.0)
    assert held.memory == ()
    assert held.reason is None


ARRIVALS = {"arrivals": Signal.model_validate({"influx": {"query": "SELECT 1"}})}


def test_the_planner_keeps_the_reserve_after_a_burst() -> None:
    """2/min x 3 min = 6 seats of headroom: with the window, a quiet minute after 4/min
    still plans for 12 seats and keeps the second node; without it, the pool shrinks."""
    headroom = {"signal": "arrivals", "node_ready_time": "3m"}
    nodes = [node("a"), node("b")]

    def two_passes(policy: PoolPolicy) -> tuple[int, str]:
        burst = snapshot(nodes, sessions("a", 3), signals={"arrivals": 4.0})
        first = run(burst, policy, signals=ARRIVALS)
        memory = first.memory.pools[POOL]
        later = T0 + timedelta(minutes=20)
        quiet = snapshot(nodes, sessions("a", 3), at=later, signals={"arrivals": 1.0})
        after = run(quiet, policy, memory=memory, signals=ARRIVALS)
        return after.pools[0].seats["headroom"], reasons(after)

    held, why = two_passes(pool(headroom={**headroom, "stabilization_window": "30m"}))
    assert held == 12
    assert "reads 1; planned by 4, its highest of the last 30m (20 min ago)" in why
    plain, _ = two_passes(pool(headroom=headroom))
    assert plain == 3


def test_memory_of_a_pool_without_a_window_stays_empty() -> None:
    snap = snapshot([node("a")], signals={"arrivals": 4.0})
    p = run(snap, pool(headroom={"signal": "arrivals"}), signals=ARRIVALS)
    assert p.memory.pools[POOL].arrivals == ()


@pytest.mark.parametrize("bad", ["-5m", "soon"])
def test_a_bad_window_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        pool(headroom={"signal": "arrivals", "stabilization_window": bad})
