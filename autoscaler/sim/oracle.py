"""The physical limit: a controller that knows the future.

Every session is served the moment it arrives; nodes are counted as ceil(concurrent
sessions / seats) with no fragmentation, and each node is paid for from one ready time
before it is needed. Nothing fails and nothing is killed: the cost lower bound.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from autoscaler.sim.arrivals import Arrival


@dataclass(frozen=True)
class OracleResult:
    sessions: int
    node_seconds: float
    launches: int
    nodes: list[int]
    """Nodes paid for in each cell of ``cell`` seconds from the start."""
    cell: float


def _events(arrivals: Sequence[Arrival]) -> list[tuple[float, int]]:
    """Starts (+1) and ends (-1), an end before a start at the same instant."""
    return sorted([(a.at, 1) for a in arrivals] + [(a.at + a.length, -1) for a in arrivals])


def concurrency_per_cell(arrivals: Sequence[Arrival], cell: float, cells: int) -> list[int]:
    """The largest number of sessions running at once within each cell."""
    events = _events(arrivals)
    out: list[int] = []
    running, j = 0, 0
    for i in range(cells):
        start, end = i * cell, (i + 1) * cell
        while j < len(events) and events[j][0] <= start:
            running += events[j][1]
            j += 1
        top = running
        while j < len(events) and events[j][0] < end:
            running += events[j][1]
            top = max(top, running)
            j += 1
        out.append(top)
    return out


def peak_concurrency(arrivals: Sequence[Arrival]) -> int:
    running = best = 0
    for _, d in _events(arrivals):
        running += d
        best = max(best, running)
    return best


def oracle(
    arrivals: Sequence[Arrival],
    seats_per_node: int,
    ready_time: float,
    duration: float,
    count_from: float = 0.0,
    cell: float = 15.0,
) -> OracleResult:
    """Node-seconds of the oracle over [count_from, duration). Sessions with a negative
    ``at`` (carried in) run from 0 and are not counted as sessions."""
    cells = max(1, math.ceil(duration / cell))
    need = [math.ceil(c / seats_per_node) for c in concurrency_per_cell(arrivals, cell, cells)]
    lead = max(0, math.ceil(ready_time / cell))
    paid = _forward_max(need, lead)
    first = int(count_from // cell)
    # each cell counted for its part within [count_from, duration), as every policy's
    # machine time is: the window need not start or end on a cell's boundary
    node_seconds = sum(
        n * max(0.0, min((i + 1) * cell, duration) - max(i * cell, count_from))
        for i, n in enumerate(paid[first:], start=first)
    )
    launches = sum(max(0, b - a) for a, b in zip(paid[first:], paid[first + 1 :], strict=False))
    sessions = sum(1 for a in arrivals if count_from <= a.at < duration)
    return OracleResult(sessions, node_seconds, launches + paid[first], paid, cell)


def _forward_max(values: list[int], lead: int) -> list[int]:
    """out[i] = max(values[i : i + lead + 1]) (a node needed at i is paid from i - lead)."""
    out = [0] * len(values)
    window: deque[int] = deque()
    for i in range(len(values) - 1, -1, -1):
        while window and values[window[-1]] <= values[i]:
            window.pop()
        window.append(i)
        while window[0] > i + lead:
            window.popleft()
        out[i] = values[window[0]]
    return out
