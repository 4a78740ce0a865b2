"""What never killing a session costs on its own: the packing floor.

The oracle counts ceil(concurrent sessions / seats) nodes, as if sessions could move.
They cannot: a node is paid until its last session ends. Here every session takes a
seat on the fullest node with room (best fit, what the pool planner steers Swarm
towards), a new node is ready the instant none has room, no seat is kept free and a
node is gone the instant it empties. No policy that leaves sessions alone and does not
know how long they will last does much better; the distance between this and the oracle
is the price of not killing sessions, not of any headroom or boot time.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

from autoscaler.sim.arrivals import Arrival


@dataclass
class _Node:
    opened: float
    used: int = 0
    serial: int = 0


@dataclass(order=True)
class _End:
    at: float
    serial: int
    node: _Node = field(compare=False)


def packing_floor(
    arrivals: Sequence[Arrival], seats_per_node: int, duration: float, count_from: float = 0.0
) -> float:
    """Node-seconds over [count_from, duration) of best fit with instant nodes."""
    if seats_per_node <= 0:
        raise ValueError("seats per node must be positive")
    open_nodes: list[_Node] = []
    ends: list[_End] = []
    paid = 0.0

    def close(node: _Node, at: float) -> float:
        open_nodes.remove(node)
        return max(0.0, min(at, duration) - max(node.opened, count_from))

    for serial, a in enumerate(sorted(arrivals, key=lambda a: a.at)):
        while ends and ends[0].at <= a.at:
            end = heapq.heappop(ends)
            end.node.used -= 1
            if end.node.used == 0:
                paid += close(end.node, end.at)
        roomy = [n for n in open_nodes if n.used < seats_per_node]
        if roomy:
            node = max(roomy, key=lambda n: (n.used, -n.serial))
        else:
            node = _Node(opened=a.at, serial=serial)
            open_nodes.append(node)
        node.used += 1
        heapq.heappush(ends, _End(a.at + a.length, serial, node))
    while ends:
        end = heapq.heappop(ends)
        end.node.used -= 1
        if end.node.used == 0:
            paid += close(end.node, end.at)
    return paid
