"""Who decides in a simulated run: the production planner, or a baseline."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from autoscaler.sim.cluster import SimCluster, SimNode


class Controller(Protocol):
    name: str
    actions: Counter[str]
    """Actions carried out, by kind (launches, pauses, drains ...)."""

    def start(self, cluster: SimCluster) -> None:
        """Set up the pool as it stands when the window opens."""

    def step(self, cluster: SimCluster) -> None:
        """One pass at ``cluster.now``."""


def retire(cluster: SimCluster, node: SimNode, actions: Counter[str]) -> None:
    """Take a node away at once: drain it (ending its sessions), remove it, terminate it."""
    if node.in_swarm:
        cluster.set_availability(node, "drain")
        cluster.remove(node)
        actions["drain_node"] += 1
        actions["remove_node"] += 1
    cluster.terminate(node)
    actions["terminate_instance"] += 1
