"""Run controllers over one workload on identical simulated pools, and the oracle."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from autoscaler.event_batching import EventBatching, event_pass_due
from autoscaler.sim.arrivals import Workload
from autoscaler.sim.cluster import WARM_READY, ReadyTime, SimCluster
from autoscaler.sim.controller import Controller
from autoscaler.sim.oracle import oracle

Progress = Callable[[float], None]
"""Called with simulated seconds done since the last call."""
WARM_PRICE = 0.008
"""Per hour of a stopped warm machine: its disk, 100 GB of gp3 at 0.08 per GB-month (an
assumption, docs/simulate.md)."""


@dataclass(frozen=True)
class SimParams:
    seats_per_node: int
    max_nodes: int
    ready_time: ReadyTime = field(default_factory=ReadyTime)
    service_wait: float = 60.0
    tick: float = 15.0
    """Seconds between two passes of a controller (the sidecar's interval)."""
    event_gap: float | None = None
    """With a value, the policy also gets a pass at every event of the pool (an arrival, a
    session's end or failure, a node joining), at most one per this many seconds: the
    passes the sidecar runs on Docker events. Baselines keep their interval."""
    reopen_after: float | None = None
    """With a value, users whose session a drain killed open the app again this many
    seconds later, for what was left of it (None: they do not come back)."""
    price: float = 1.0
    """Per node-hour."""
    seed: int = 1
    warmup: float = 0.0
    """Seconds at the start not counted (the pool settles from its initial size)."""
    sample: float = 300.0
    """Seconds between two timeline samples."""
    warm_pool: int = 0
    """The policy's ``ec2.warm_pool`` (setup.override): with a value, the results report
    the warm pool's stopped hours and their cost."""
    warm_ready_time: ReadyTime = WARM_READY
    """Start-to-Ready time of a stopped warm machine."""
    warm_price: float = WARM_PRICE
    """Per hour of a stopped warm machine."""


@dataclass
class Sample:
    t: float
    demand: int
    """Sessions running or waiting for a seat."""
    seats: int
    nodes: dict[str, int]
    failed: int
    """Failed starts so far."""


USES = ("sessions", "free_active", "free_paused", "booting", "retiring")
"""What a node's seats were paid for: holding a session, free on an active node (headroom),
free on a paused node that still holds sessions (emptying, and reserve), a machine not yet
in the Swarm, or free on a node on its way out (draining, or paused and empty)."""


@dataclass
class Usage:
    """Paid seat-seconds by use (USES), sampled at every pass after its actions."""

    seat_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(USES, 0.0))

    def add(self, c: SimCluster, dt: float) -> None:
        acc = self.seat_seconds
        if c.warm.current:  # warm machines pulling images: paid as nodes, not yet nodes
            acc["booting"] += c.warm.pulling(c.now) * c.seats_per_node * dt
        for n in c.current:
            if not n.alive:
                continue  # a terminated machine costs nothing
            if not n.joined:
                acc["booting"] += n.seats * dt
                continue
            used = len(n.sessions)
            free = max(0, n.seats - used) * dt
            acc["sessions"] += used * dt
            if n.removed:
                acc["retiring"] += free
            elif n.availability == "active":
                acc["free_active"] += free
            elif n.availability == "pause" and used:
                acc["free_paused"] += free
            else:  # draining, or paused and empty: on its way out
                acc["retiring"] += free

    def shares(self) -> dict[str, float]:
        total = sum(self.seat_seconds.values())
        return {k: v / total if total else 0.0 for k, v in self.seat_seconds.items()}


@dataclass
class RunResult:
    name: str
    sessions: int
    failed_starts: int
    sessions_killed: int
    node_seconds: float
    price: float
    waits: list[float]
    actions: Counter[str]
    timeline: list[Sample] = field(default_factory=list)
    plan_calls: int = 0
    seconds: float = 0.0
    """Wall-clock time the run took."""
    usage: dict[str, float] = field(default_factory=dict)
    """Share of the paid node time by use (USES), summing to 1."""
    sessions_reopened: int = 0
    """Starts of users whose session was killed (SimParams.reopen_after)."""
    warm_price: float | None = None
    """Per stopped warm-machine hour, in a run with a warm pool; None: no warm pool."""
    warm_stopped_seconds: float = 0.0
    """Stopped warm machines' time (``node_seconds`` has the time they pulled images)."""
    warm_started: int = 0

    @property
    def node_hours(self) -> float:
        return self.node_seconds / 3600.0

    def summary(self) -> dict[str, object]:
        pct = 100.0 * self.failed_starts / self.sessions if self.sessions else 0.0
        return {
            "sessions": self.sessions,
            "failed_starts": self.failed_starts,
            "failed_start_pct": round(pct, 3),
            "sessions_killed": self.sessions_killed,
            "sessions_reopened": self.sessions_reopened,
            "node_hours": round(self.node_hours, 2),
            "cost": round(self.cost, 2),
            "seat_wait_p95_s": round(percentile(self.waits, 95), 1),
            "actions": sum(self.actions.values()),
            "node_hours_by_use": {
                k: round(self.node_hours * self.usage.get(k, 0.0), 2) for k in USES
            },
            **self._warm_summary(),
        }

    @property
    def cost(self) -> float:
        if self.warm_price is None:
            return self.node_hours * self.price
        return self.node_hours * self.price + self.warm_stopped_hours * self.warm_price

    @property
    def warm_stopped_hours(self) -> float:
        return self.warm_stopped_seconds / 3600.0

    def _warm_summary(self) -> dict[str, object]:
        """Only in runs with a warm pool: the results of the others keep their shape."""
        if self.warm_price is None:
            return {}
        return {
            "warm_starts": self.warm_started,
            "warm_stopped_hours": round(self.warm_stopped_hours, 2),
            "warm_stopped_cost": round(self.warm_stopped_hours * self.warm_price, 2),
        }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[k]


def simulate(
    workload: Workload,
    controller: Controller,
    params: SimParams,
    progress: Progress | None = None,
) -> RunResult:
    import time

    began = time.perf_counter()
    cluster = SimCluster(
        workload.arrivals,
        params.seats_per_node,
        params.ready_time,
        params.seed,
        params.service_wait,
        count_from=params.warmup,
        reopen_after=params.reopen_after,
        carried=workload.carried,
        earlier_starts=workload.earlier_starts,
        warm_ready_time=params.warm_ready_time,
    )
    controller.start(cluster)
    if not cluster.carried_seated():  # a controller that opened no pool: one for them
        cluster.add_ready(0)
    duration = workload.seconds
    timeline: list[Sample] = []
    usage = Usage()
    next_sample = 0.0
    done = 0.0
    t = 0.0
    gap = params.event_gap if getattr(controller, "on_events", False) else None
    last = -math.inf
    while t < duration:
        if gap is not None:
            last = _event_passes(cluster, controller, t, gap, last)
        cluster.advance(t)
        controller.step(cluster)
        last = t
        if t >= params.warmup:
            usage.add(cluster, min(params.tick, duration - t))
        if t >= next_sample:
            timeline.append(_sample(cluster))
            next_sample += params.sample
        if progress is not None and t - done >= 3600:
            progress(t - done)
            done = t
        t += params.tick
    cluster.advance(duration)
    timeline.append(_sample(cluster))
    if progress is not None:
        progress(duration - done)
    stats = cluster.stats
    pulling, stopped = cluster.warm.seconds(params.warmup, duration)
    return RunResult(
        name=controller.name,
        sessions=stats.sessions,
        failed_starts=stats.failed,
        sessions_killed=stats.killed,
        # warm machines pulling images are paid as nodes
        node_seconds=cluster.node_seconds(params.warmup, duration) + pulling,
        price=params.price,
        waits=stats.waits,
        actions=Counter(controller.actions),
        timeline=timeline,
        plan_calls=getattr(controller, "calls", 0),
        seconds=time.perf_counter() - began,
        usage=usage.shares(),
        sessions_reopened=stats.reopened,
        warm_price=params.warm_price if params.warm_pool else None,
        warm_stopped_seconds=stopped,
        warm_started=stats.warm_started,
    )


def _event_passes(
    cluster: SimCluster, controller: Controller, until: float, gap: float, last: float
) -> float:
    """The passes events ask for before the interval pass at ``until``, timed as the
    sidecar times them (event_pass_due, its default batching with ``gap``): events within
    the gap after the last pass wait and share one pass. Returns when the last pass ran."""
    batching = EventBatching(gap=timedelta(seconds=gap))
    while True:
        first = latest = cluster.next_event_at()
        if first >= until:
            return last
        cluster.advance(first)
        due = event_pass_due(first, latest, last, batching)
        while (later := cluster.next_event_at()) < min(due, until):
            cluster.advance(later)  # one more event for the same pass
            latest = later
            due = event_pass_due(first, latest, last, batching)
        if due >= until:  # the interval pass at ``until`` sees them
            return last
        cluster.advance(due)
        controller.step(cluster)
        last = due


def _sample(c: SimCluster) -> Sample:
    return Sample(c.now, len(c.sessions), c.active_seats(), c.counts(), c.stats.failed)


def simulate_oracle(workload: Workload, params: SimParams) -> RunResult:
    """The lower bound, with the same result fields (it fails, waits and kills nothing)."""
    running = workload.carried + workload.arrivals  # carried in: running from 0, not counted
    r = oracle(
        running,
        params.seats_per_node,
        params.ready_time.median,
        workload.seconds,
        count_from=params.warmup,
        cell=params.tick,
    )
    step = max(1, round(params.sample / r.cell))
    timeline = [
        Sample(i * r.cell, 0, n * params.seats_per_node, {"active": n}, 0)
        for i, n in enumerate(r.nodes)
        if i % step == 0
    ]
    busy = sum(
        max(0.0, min(a.at + a.length, workload.seconds) - max(a.at, params.warmup)) for a in running
    )
    paid = r.node_seconds * params.seats_per_node
    in_use = min(1.0, busy / paid) if paid > 0 else 0.0
    return RunResult(
        name="oracle",
        sessions=r.sessions,
        failed_starts=0,
        sessions_killed=0,
        node_seconds=r.node_seconds,
        price=params.price,
        waits=[],
        actions=Counter({"launch_nodes": r.launches}),
        timeline=timeline,
        usage={**dict.fromkeys(USES, 0.0), "sessions": in_use, "free_active": 1.0 - in_use},
        warm_price=params.warm_price if params.warm_pool else None,
    )
