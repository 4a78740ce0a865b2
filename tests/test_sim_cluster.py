"""The simulated pool's bookkeeping on traces small enough to check by hand."""

from __future__ import annotations

import pytest

from autoscaler.sim.arrivals import Arrival
from autoscaler.sim.cluster import ReadyTime, SimCluster
from autoscaler.sim.oracle import oracle, peak_concurrency
from autoscaler.sim.runner import Usage

FIXED_150 = ReadyTime(150.0, 150.0)


def cluster(arrivals: list[Arrival], seats: int = 4, ready: ReadyTime = FIXED_150) -> SimCluster:
    return SimCluster(arrivals, seats, ready, seed=1, service_wait=60.0)


def test_little_law_on_a_constant_load() -> None:
    # one arrival a minute, 10 minutes each: L = lambda * W = 10 sessions at all times
    arrivals = [Arrival(60.0 * i, 600.0) for i in range(120)]
    c = cluster(arrivals)
    c.add_ready(3)  # 12 seats: enough
    seen = []
    for minute in range(11, 120):
        c.advance(minute * 60.0 + 30)
        seen.append(c.live())
    assert seen == [10] * len(seen)
    c.advance(7200.0)
    assert (c.stats.sessions, c.stats.failed, c.stats.killed) == (120, 0, 0)
    assert c.node_seconds(0, 7200) == 3 * 7200


def test_spread_placement_takes_the_node_with_fewest_tasks() -> None:
    c = cluster([Arrival(float(i), 1000.0) for i in range(7)])
    a, b, d = c.add_ready(3)
    c.advance(3.0)  # four sessions: one each, then the first node again
    assert [len(n.sessions) for n in (a, b, d)] == [2, 1, 1]
    c.set_availability(b, "pause")
    c.advance(6.0)  # a paused node takes nothing new
    assert [len(n.sessions) for n in (a, b, d)] == [3, 1, 3]


def test_one_burst_with_known_failures() -> None:
    # 10 sessions at t=0 on one 4-seat node; a node launched at t=0 is ready at t=150,
    # after the 60 s service wait: 4 start, 6 fail at t=60
    c = cluster([Arrival(0.0, 3600.0) for _ in range(10)])
    c.add_ready(1)
    c.launch(1)
    c.advance(59.0)
    assert (c.live(), c.waiting(), c.stats.failed) == (4, 6, 0)
    c.advance(60.0)
    assert (c.live(), c.waiting(), c.stats.failed) == (4, 0, 6)
    assert c.stats.failed_at == [60.0] * 6
    c.advance(3600.0)
    assert c.counts()["active"] == 2
    assert c.stats.waits == [0.0] * 4


def test_a_node_ready_within_the_wait_saves_the_starts() -> None:
    c = cluster([Arrival(0.0, 3600.0) for _ in range(6)], ready=ReadyTime(45.0, 45.0))
    c.add_ready(1)
    c.launch(1)
    c.advance(100.0)
    assert (c.live(), c.stats.failed) == (6, 0)
    assert sorted(c.stats.waits) == [0.0] * 4 + [45.0, 45.0]


def test_a_seat_freed_by_an_ending_session_is_taken_by_a_waiting_start() -> None:
    c = cluster([Arrival(0.0, 30.0), Arrival(10.0, 100.0)], seats=1)
    c.add_ready(1)
    c.advance(200.0)
    assert (c.stats.failed, c.stats.waits) == (0, [0.0, 20.0])


def test_drain_kills_exactly_the_sessions_on_that_node() -> None:
    c = cluster([Arrival(float(i), 1000.0) for i in range(5)])
    a, b = c.add_ready(2)
    c.advance(10.0)
    on_a, on_b = set(a.sessions), set(b.sessions)
    assert (len(on_a), len(on_b)) == (3, 2)
    c.set_availability(b, "drain")
    assert c.stats.killed == 2
    assert not b.sessions and set(a.sessions) == on_a
    assert set(c.sessions) == on_a
    c.advance(2000.0)  # the survivors end normally
    assert (c.stats.killed, c.live()) == (2, 0)


def test_killed_users_come_back_for_what_was_left_of_their_session() -> None:
    c = SimCluster([Arrival(float(i), 1000.0) for i in range(5)], 4, FIXED_150, 1, 60.0, 0.0, 20)
    a, b = c.add_ready(2)
    c.advance(10.0)  # a holds the sessions of 0, 2, 4; b those of 1, 3
    c.set_availability(b, "drain")
    assert (c.stats.killed, c.stats.reopened, len(c.sessions)) == (2, 0, 3)
    c.advance(30.0)  # both users come back 20 s later: a has one seat left
    assert (c.stats.reopened, c.live(), c.waiting(), len(a.sessions)) == (2, 4, 1, 4)
    c.advance(90.0)  # nothing frees a seat within the service wait: the other fails
    assert (c.stats.failed, c.stats.failed_at, c.live()) == (1, [90.0], 4)
    # user 1 (first back) got the seat, for what was left: 1000 - (10 - 1) s from 30
    c.advance(1003.0)
    assert c.live() == 2  # those of 0 and 2 ended at 1000 and 1002
    c.advance(1004.0)
    assert c.live() == 1  # that of 4 at 1004; user 1's goes on
    c.advance(1020.0)
    assert c.live() == 1
    c.advance(1021.0)
    assert (c.live(), c.stats.sessions, c.stats.waits) == (0, 5, [0.0] * 6)


def test_no_user_comes_back_unless_asked() -> None:
    c = cluster([Arrival(0.0, 1000.0)])
    (a,) = c.add_ready(1)
    c.advance(1.0)
    c.set_availability(a, "drain")
    c.add_ready(1)
    c.advance(2000.0)
    assert (c.stats.killed, c.stats.reopened, c.live(), c.stats.waits) == (1, 0, 0, [0.0])


def test_pause_keeps_sessions_and_resume_places_waiting_starts_at_once() -> None:
    c = cluster([Arrival(0.0, 1000.0), Arrival(5.0, 1000.0)], seats=1)
    (a,) = c.add_ready(1)
    c.advance(1.0)
    c.set_availability(a, "pause")
    c.advance(20.0)
    assert (c.live(), c.waiting()) == (1, 1)
    (b,) = c.add_ready(1)  # capacity appears: the waiting start takes it at once
    assert (c.live(), c.waiting(), c.stats.waits) == (2, 0, [0.0, 20.0 - 5.0])
    assert len(b.sessions) == 1 and len(a.sessions) == 1


def test_billing_runs_from_launch_to_termination() -> None:
    c = cluster([])
    (n,) = c.launch(1)
    c.advance(1000.0)
    assert n.state == "active"
    c.terminate(n)
    c.advance(5000.0)
    assert c.node_seconds(0, 5000) == 1000.0
    assert c.node_seconds(500, 5000) == 500.0
    assert n.state == "down"


def test_warmup_is_not_counted() -> None:
    c = SimCluster([Arrival(0.0, 10.0), Arrival(100.0, 10.0)], 1, FIXED_150, 1, count_from=50.0)
    c.advance(200.0)
    assert (c.stats.sessions, c.stats.failed) == (1, 1)


def test_oracle_is_ceil_of_concurrency_paid_one_ready_time_ahead() -> None:
    # 5 sessions from t=600 to t=1200 on 4-seat nodes: 2 nodes, paid from 600 - 150
    arrivals = [Arrival(600.0, 600.0) for _ in range(5)]
    assert peak_concurrency(arrivals) == 5
    r = oracle(arrivals, 4, ready_time=150.0, duration=1800.0, cell=15.0)
    assert r.node_seconds == pytest.approx(2 * (1200 - 450))
    assert r.launches == 2
    assert r.sessions == 5


def test_ready_time_draws_have_the_asked_median() -> None:
    import random
    import statistics

    rng = random.Random(1)
    draws = sorted(ReadyTime(150, 200).draw(rng) for _ in range(20_000))
    assert statistics.median(draws) == pytest.approx(150, rel=0.03)
    assert draws[18_000] == pytest.approx(200, rel=0.05)
    with pytest.raises(ValueError):
        ReadyTime(200, 100)


def test_usage_splits_paid_seats_by_what_they_are_for() -> None:
    c = cluster([Arrival(0.0, 3600.0) for _ in range(5)])
    a, b, d, e = c.add_ready(4)
    c.advance(1.0)
    assert [len(n.sessions) for n in (a, b, d, e)] == [2, 1, 1, 1]  # spread
    c.set_availability(b, "pause")  # holds 1 session: emptying
    c.set_availability(d, "drain")  # kills its session: retiring
    c.terminate(e)  # costs nothing from now on
    c.launch(1)
    usage = Usage()
    usage.add(c, 10.0)
    assert usage.seat_seconds == {
        "sessions": 30.0,  # 2 on a, 1 on b
        "free_active": 20.0,  # 2 free on a
        "free_paused": 30.0,  # 3 free on b
        "booting": 40.0,  # the launched machine's 4 seats
        "retiring": 40.0,  # the drained node d
    }
    assert sum(usage.shares().values()) == pytest.approx(1.0)
    c.set_availability(b, "active")
    c.set_availability(b, "pause")
    c.advance(4000.0)  # every session has ended: b is paused and empty
    after = Usage()
    after.add(c, 1.0)
    assert after.seat_seconds["retiring"] == 8.0 and after.seat_seconds["free_paused"] == 0.0
