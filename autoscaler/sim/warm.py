"""The simulated warm pool of an EC2 pool (``ec2.warm_pool``), in seconds since the start.

A warm machine is launched by a fill and pulls the images, paid as a node, then powers off
and waits stopped, paid for its disk only, until a launch starts it (it becomes a node, see
SimCluster.start_warm) or it is terminated. It is never capacity and never a node.

Pure bookkeeping: the production planner decides when to fill, start and retire.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class WarmMachine:
    index: int
    launched_at: float
    stopped_at: float
    """When it has pulled the images and powered off."""
    ended_at: float | None = None
    """Started by a launch (from then on it is a node's machine) or terminated."""

    @property
    def instance_id(self) -> str:
        return f"i-warm{self.index}"

    def stopped(self, now: float) -> bool:
        return self.ended_at is None and now >= self.stopped_at


class WarmPool:
    """Every warm machine of one run; ``current`` holds those not yet started or gone."""

    def __init__(self) -> None:
        self.machines: list[WarmMachine] = []
        self.current: list[WarmMachine] = []
        """Kept apart: a month of fills leaves thousands ended, and every pass lists these."""

    def add(self, now: float, stopped_at: float) -> WarmMachine:
        m = WarmMachine(len(self.machines), now, stopped_at)
        self.machines.append(m)
        self.current.append(m)
        return m

    def take(self, now: float, count: int) -> list[WarmMachine]:
        """Up to ``count`` stopped machines, oldest first, ended here: a launch starts only
        machines that have powered off (the EC2 provider starts state ``stopped`` only)."""
        taken = [m for m in self.current if m.stopped(now)][:count]
        for m in taken:
            self.end(m, now)
        return taken

    def end(self, m: WarmMachine, now: float) -> None:
        if m.ended_at is None:
            m.ended_at = now
            self.current.remove(m)

    def pulling(self, now: float) -> int:
        return sum(1 for m in self.current if now < m.stopped_at)

    def by_id(self, instance_id: str) -> WarmMachine | None:
        if not instance_id.startswith("i-warm"):
            return None
        try:
            i = int(instance_id[6:])
        except ValueError:
            return None
        return self.machines[i] if 0 <= i < len(self.machines) else None

    def seconds(self, start: float, end: float) -> tuple[float, float]:
        """Machine time within [start, end]: (pulling, paid as a node; stopped, paid for
        the disk)."""
        pulling = stopped = 0.0
        for m in self.machines:
            gone = m.ended_at if m.ended_at is not None else end
            pulling += _overlap(m.launched_at, min(m.stopped_at, gone), start, end)
            stopped += _overlap(m.stopped_at, gone, start, end)
        return pulling, stopped


def _overlap(a: float, b: float, start: float, end: float) -> float:
    return max(0.0, min(b, end) - max(a, start))
