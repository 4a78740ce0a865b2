"""The policies people would otherwise pick, on the same simulated pool and arrivals.

- static-peak: enough nodes for the window's peak, all the time.
- hpa-style: target tracking of seat utilisation (70%), 5 min scale-down stabilisation;
  scale-in drains the emptiest nodes (their sessions end).
- cluster-autoscaler-style: adds nodes only for pending session tasks; a node below 50%
  whose sessions would fit elsewhere (on the nodes left once those found unneeded before
  it have gone, as cluster-autoscaler's simulation finds them) is unneeded, and after
  10 min it is drained.
- hot-buffer: nodes for the sessions and pending tasks plus one spare node; only empty
  surplus nodes are removed.
The oracle (the lower bound) is in ``oracle.py``.
"""

from __future__ import annotations

import math
from collections import Counter, deque

from autoscaler.sim.cluster import SimCluster, SimNode
from autoscaler.sim.controller import retire

NAMES = ("static-peak", "hpa-style", "cluster-autoscaler-style", "hot-buffer", "oracle")
"""Every baseline a run can include (the oracle is computed, not simulated)."""


def _active(c: SimCluster) -> list[SimNode]:
    return [n for n in c.current if n.state == "active"]


def _launching(c: SimCluster) -> list[SimNode]:
    return [n for n in c.current if n.state == "launching"]


class StaticPeak:
    def __init__(self, nodes: int, name: str = "static-peak") -> None:
        self.name = name
        self.nodes = nodes
        self.actions: Counter[str] = Counter()

    def start(self, cluster: SimCluster) -> None:
        cluster.add_ready(self.nodes)

    def step(self, cluster: SimCluster) -> None:
        return None


class HpaStyle:
    """Kubernetes HPA on nodes: desired = ceil(used seats / (target * seats per node))."""

    def __init__(
        self,
        max_nodes: int,
        target: float = 0.7,
        stabilisation: float = 300.0,
        tolerance: float = 0.1,
        min_nodes: int = 1,
        name: str = "hpa-style",
    ) -> None:
        self.name = name
        self.max_nodes = max_nodes
        self.target = target
        self.stabilisation = stabilisation
        self.tolerance = tolerance
        self.min_nodes = min_nodes
        self.actions: Counter[str] = Counter()
        self._history: deque[tuple[float, int]] = deque()

    def start(self, cluster: SimCluster) -> None:
        cluster.add_ready(self.min_nodes)

    def step(self, c: SimCluster) -> None:
        active, launching = _active(c), _launching(c)
        current = len(active) + len(launching)
        used = sum(len(n.sessions) for n in active)
        capacity = sum(n.seats for n in active)
        raw = math.ceil(used / (self.target * c.seats_per_node) - 1e-9)
        if capacity and abs(used / capacity / self.target - 1) <= self.tolerance:
            raw = current
        raw = min(self.max_nodes, max(self.min_nodes, raw))
        self._history.append((c.now, raw))
        # upstream keeps a recommendation while its time is strictly after now - window
        while self._history[0][0] <= c.now - self.stabilisation:
            self._history.popleft()
        # upstream: current, raised to the lowest recommendation of the scale-up window
        # (0 s: this one) and lowered to the highest of the scale-down window: an old
        # high recommendation holds nodes, it never adds any
        desired = raw if raw > current else min(current, max(r for _, r in self._history))
        if desired > current:
            up = min(desired - current, max(current, 4))  # HPA: +100% or +4 per 15 s
            c.launch(up)
            self.actions["launch_nodes"] += up
        elif desired < current:
            victims = launching + sorted(active, key=lambda n: (len(n.sessions), n.index))
            for n in victims[: current - desired]:
                retire(c, n, self.actions)


class ClusterAutoscalerStyle:
    """cluster-autoscaler: scale up for pending tasks; scale down nodes unneeded for 10 min."""

    def __init__(
        self,
        max_nodes: int,
        unneeded_for: float = 600.0,
        delay_after_add: float = 600.0,
        utilisation: float = 0.5,
        min_nodes: int = 1,
        name: str = "cluster-autoscaler-style",
    ) -> None:
        self.name = name
        self.max_nodes = max_nodes
        self.unneeded_for = unneeded_for
        self.delay_after_add = delay_after_add
        self.utilisation = utilisation
        self.min_nodes = min_nodes
        self.actions: Counter[str] = Counter()
        self._since: dict[int, float] = {}
        self._last_add = -math.inf

    def start(self, cluster: SimCluster) -> None:
        cluster.add_ready(self.min_nodes)

    def step(self, c: SimCluster) -> None:
        active, launching = _active(c), _launching(c)
        pending = c.waiting()
        coming = sum(n.seats for n in launching)
        if pending > coming:
            room = self.max_nodes - len(active) - len(launching)
            up = min(room, math.ceil((pending - coming) / c.seats_per_node))
            if up > 0:
                c.launch(up)
                self.actions["launch_nodes"] += up
                self._last_add = c.now
        self._scale_down(c, active)

    def _scale_down(self, c: SimCluster, active: list[SimNode]) -> None:
        self._update_unneeded(c, active)
        if c.now - self._last_add < self.delay_after_add:
            return
        ripe = [n for n in active if c.now - self._since.get(n.index, c.now) >= self.unneeded_for]
        ripe.sort(key=lambda n: (len(n.sessions), n.index))
        keep = len(active) - self.min_nodes
        busy_done = False
        for n in ripe[: max(0, keep)]:
            if n.sessions:
                if busy_done:
                    continue  # one non-empty node per pass, as cluster-autoscaler does
                busy_done = True
            self._since.pop(n.index, None)
            retire(c, n, self.actions)

    def _update_unneeded(self, c: SimCluster, active: list[SimNode]) -> None:
        """Which nodes are unneeded now, as cluster-autoscaler's removal simulation finds
        them: the candidates (under the utilisation threshold) in its order (empty ones
        first, then those already unneeded, then the emptiest), each unneeded if its
        sessions fit on the free seats of the other nodes left, the sessions of those
        found unneeded before it included (its simulation keeps each removal found).
        With identical nodes and one seat a session, a node's sessions fit on the others
        exactly when the free seats of all the nodes left hold a whole node."""
        free = sum(n.seats - len(n.sessions) for n in active)
        candidates = [n for n in active if len(n.sessions) < self.utilisation * n.seats]
        candidates.sort(
            key=lambda n: (bool(n.sessions), n.index not in self._since, len(n.sessions), n.index)
        )
        unneeded: set[int] = set()
        for n in candidates:
            if free >= n.seats:
                unneeded.add(n.index)
                free -= n.seats  # the node goes; its sessions take seats on the others
        self._since = {
            n.index: self._since.get(n.index, c.now) for n in active if n.index in unneeded
        }


class HotBuffer:
    """Nodes for the sessions and pending tasks plus ``spare`` free nodes (osparc-style)."""

    def __init__(
        self,
        max_nodes: int,
        spare: int = 1,
        empty_for: float = 60.0,
        name: str = "hot-buffer",
    ) -> None:
        self.name = name
        self.max_nodes = max_nodes
        self.spare = spare
        self.empty_for = empty_for
        self.actions: Counter[str] = Counter()
        self._empty: dict[int, float] = {}

    def start(self, cluster: SimCluster) -> None:
        cluster.add_ready(self.spare)

    def step(self, c: SimCluster) -> None:
        active, launching = _active(c), _launching(c)
        used = sum(len(n.sessions) for n in active)
        need = math.ceil((used + c.waiting()) / c.seats_per_node)
        wanted = min(self.max_nodes, need + self.spare)
        current = len(active) + len(launching)
        empty = [n for n in active if not n.sessions]
        # on every pass, so a node that held a session in between starts its minute again
        self._empty = {n.index: self._empty.get(n.index, c.now) for n in empty}
        if wanted > current:
            c.launch(wanted - current)
            self.actions["launch_nodes"] += wanted - current
            return
        ripe = [n for n in empty if c.now - self._empty[n.index] >= self.empty_for]
        for n in ripe[: current - wanted]:
            self._empty.pop(n.index, None)
            retire(c, n, self.actions)
