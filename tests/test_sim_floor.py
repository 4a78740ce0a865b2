"""The packing floor (best fit, instant nodes, no headroom) on traces checked by hand."""

from __future__ import annotations

import pytest

from autoscaler.sim.arrivals import Arrival
from autoscaler.sim.floor import packing_floor
from autoscaler.sim.oracle import oracle


def test_a_node_is_paid_until_its_last_session_ends() -> None:
    # two seats: B joins A's node and leaves; C then joins it too; one node for 0..130
    arrivals = [Arrival(0.0, 100.0), Arrival(10.0, 10.0), Arrival(30.0, 100.0)]
    assert packing_floor(arrivals, 2, 1000.0) == 130.0


def test_new_sessions_go_to_the_fullest_node_so_the_other_empties() -> None:
    # A holds node 1 for 1000 s; C opens node 2 (node 1 full) and ends at 12, closing it;
    # D then takes the free seat beside A instead of opening a node
    arrivals = [Arrival(0, 1000), Arrival(1, 10), Arrival(2, 10), Arrival(20, 10)]
    assert packing_floor(arrivals, 2, 5000.0) == 1000.0 + 10.0


def test_counts_only_the_window() -> None:
    assert packing_floor([Arrival(0.0, 100.0)], 4, 80.0, count_from=50.0) == 30.0
    assert packing_floor([Arrival(0.0, 10.0)], 4, 80.0, count_from=50.0) == 0.0


def test_equals_the_oracle_when_sessions_cannot_fragment() -> None:
    # eight sessions that start and end together fill two nodes of four exactly
    arrivals = [Arrival(0.0, 60.0)] * 8
    bound = oracle(arrivals, 4, ready_time=0.0, duration=120.0, cell=1.0)
    assert packing_floor(arrivals, 4, 120.0) == bound.node_seconds == 120.0


def test_is_never_below_the_oracle() -> None:
    arrivals = [Arrival(7.0 * i, 30.0 + (i * 37) % 200) for i in range(300)]
    bound = oracle(arrivals, 3, ready_time=0.0, duration=3000.0, cell=1.0)
    assert packing_floor(arrivals, 3, 3000.0) >= bound.node_seconds > 0


def test_needs_seats() -> None:
    with pytest.raises(ValueError, match="seats"):
        packing_floor([Arrival(0.0, 1.0)], 0, 10.0)
