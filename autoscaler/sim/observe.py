"""What the sidecar would read from the simulated cluster: a real Snapshot.

Models are built with ``model_construct`` from values this module makes itself (fixed
literals, ints, datetimes and str labels of the right types), so validation could only
repeat what the types already guarantee; each node, machine and session model is cached
and rebuilt only when that object changed.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from autoscaler.decide.pools import labels as L
from autoscaler.rules.schema import Signal
from autoscaler.sim.cluster import SimCluster, SimNode, SimSession
from autoscaler.sim.warm import WarmMachine
from autoscaler.snapshot import (
    Instance,
    Node,
    PendingTask,
    Session,
    SignalValue,
    Snapshot,
    SwarmState,
    notice_key,
)
from autoscaler.sources.swarm_signals import swarm_signal

SPEC = "app"
_WINDOW = re.compile(r"now\(\)\s*-\s*(\d+)([smh])")
_COUNT = re.compile(r"^\s*SELECT\s+count\([^)]*\)\s*(?:([*/])\s*(\d+(?:\.\d+)?))?\s+FROM", re.I)
_UNIT = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class MachineLook:
    """What the EC2 provider lists of a warm machine besides its state: the planner takes
    one of another type, subnet or launch configuration for stale (launch_config)."""

    instance_type: str = ""
    subnet: str = ""
    tags: dict[str, str] = field(default_factory=dict)


class Observer:
    """Builds the Snapshot of one pool's simulated cluster at the cluster's current time."""

    def __init__(
        self, cluster: SimCluster, start: datetime, pool: str, warm_look: MachineLook | None = None
    ) -> None:
        self.cluster = cluster
        self.start = start
        self.pool = pool
        self.warm_look = warm_look or MachineLook()
        self._nodes: dict[int, tuple[int, Node]] = {}
        self._machines: dict[int, Instance] = {}
        self._warm: dict[tuple[int, bool], Instance] = {}
        self._sessions: dict[int, Session] = {}
        self._waiting: dict[int, PendingTask] = {}
        self._views: tuple[tuple[Session, ...], tuple[PendingTask, ...]] = ((), ())
        self._seen = 0
        """How many of the cluster's session changes the views above include."""

    def at(self, t: float) -> datetime:
        return self.start + timedelta(seconds=t)

    def snapshot(self, signals: Mapping[str, Signal]) -> Snapshot:
        c = self.cluster
        now = self.at(c.now)
        nodes = tuple(self._node(n) for n in c.current if n.in_swarm)
        machines = tuple(self._machine(n) for n in c.current if n.alive)
        if c.warm.current:
            machines += tuple(self._warm_machine(m) for m in c.warm.current)
        sessions, pending = self._session_views()
        swarm = SwarmState.model_construct(
            nodes=nodes, services=(), sessions=sessions, pending_tasks=pending
        )
        values = {name: self._signal(name, sig, swarm, now) for name, sig in signals.items()}
        # a receiver that accepts every alert the moment it is raised
        delivered = {
            notice_key(self.pool, n.hostname): stamp
            for n in nodes
            if (stamp := L.parse_stamp(n.labels.get(L.NOTIFIED_AT))) is not None
        }
        return Snapshot.model_construct(
            taken_at=now,
            swarm=swarm,
            signals=values,
            sources={},
            instances=machines,
            notices_delivered=delivered,
        )

    def _node(self, n: SimNode) -> Node:
        cached = self._nodes.get(n.index)
        if cached is not None and cached[0] == n.version:
            return cached[1]
        model = Node.model_construct(
            id=n.id,
            hostname=n.hostname,
            role="worker",
            availability=n.availability,
            state="ready" if n.alive else "down",
            addr="",
            labels=dict(n.labels),
            nano_cpus=0,
            memory_bytes=0,
        )
        self._nodes[n.index] = (n.version, model)
        return model

    def _machine(self, n: SimNode) -> Instance:
        cached = self._machines.get(n.index)
        if cached is None:
            cached = Instance.model_construct(
                id=n.instance_id,
                pool=self.pool,
                state="running",
                launched_at=self.at(n.launched_at),
                instance_type="sim",
                private_dns=n.hostname,
                private_ip="",
                tags={},
            )
            self._machines[n.index] = cached
        return cached

    def _warm_machine(self, m: WarmMachine) -> Instance:
        """Running while it pulls the images, then stopped; tagged warm either way."""
        stopped = m.stopped(self.cluster.now)
        cached = self._warm.get((m.index, stopped))
        if cached is None:
            look = self.warm_look
            cached = Instance.model_construct(
                id=m.instance_id,
                pool=self.pool,
                state="stopped" if stopped else "running",
                launched_at=self.at(m.launched_at),
                instance_type=look.instance_type,
                private_dns="",
                private_ip="",
                subnet=look.subnet,
                tags=dict(look.tags),
                warm=True,
                interrupted=False,
            )
            self._warm.pop((m.index, not stopped), None)
            self._warm[(m.index, stopped)] = cached
        return cached

    def _session_views(self) -> tuple[tuple[Session, ...], tuple[PendingTask, ...]]:
        """The sessions and the pending tasks, in the cluster's order. Only the sessions
        that came, went or took a seat since the last pass are looked at: a session enters
        these dicts at its first change, its start, so their order is the cluster's."""
        c = self.cluster
        changes = c.session_changes
        if self._seen == len(changes):
            return self._views
        views, waiting = self._sessions, self._waiting
        for sid in changes[self._seen :]:
            s = c.sessions.get(sid)
            if s is None:  # ended, failed or killed
                views.pop(sid, None)
                waiting.pop(sid, None)
                continue
            views[sid] = self._session(s)
            if s.node is not None:
                waiting.pop(sid, None)
            elif sid not in waiting:
                waiting[sid] = self._pending_task(s)
        self._seen = len(changes)
        self._views = (tuple(views.values()), tuple(waiting.values()))
        return self._views

    def _session(self, s: SimSession) -> Session:
        # the view is rebuilt only when the session got (or lost) its node
        if s.cache is not None and s.cache[0] is s.node:
            return cast(Session, s.cache[1])
        model = Session.model_construct(
            service_id=f"svc{s.id}",
            service_name=f"sp-service-{s.id}-0",
            proxy_id=f"p{s.id}",
            spec_id=SPEC,
            user_id=f"u{s.id}",
            node_id=s.node.id if s.node is not None else None,
            state="running" if s.node is not None else "pending",
            message="",
            created_at=self.at(s.arrival),
            shared=False,
        )
        s.cache = (s.node, model)
        return model

    def _pending_task(self, s: SimSession) -> PendingTask:
        return PendingTask.model_construct(
            task_id=f"t{s.id}",
            service_id=f"svc{s.id}",
            service_name=f"sp-service-{s.id}-0",
            state="pending",
            message="no suitable node (insufficient resources on nodes)",
            error="",
            since=self.at(s.arrival),
        )

    def _signal(self, name: str, sig: Signal, swarm: SwarmState, now: datetime) -> SignalValue:
        value: float | None = None
        error: str | None = None
        if sig.swarm is not None:
            try:
                value = float(swarm_signal(swarm, sig.swarm))
            except LookupError as e:
                error = str(e)
        elif sig.influx is not None and (counted := _count_query(sig.influx.query)) is not None:
            window, scale = counted
            value = self.starts_within(window) * scale
        else:
            error = f"{sig.source} signal not simulated (only counts of ProxyStart events are)"
        return SignalValue.model_construct(
            name=name, source=sig.source, value=value, observed_at=now, error=error
        )

    def starts_within(self, window: float) -> int:
        """Successful session starts in the last ``window`` seconds: what an InfluxQL count
        of ProxyStart events reads (ShinyProxy writes no event for a failed start)."""
        starts = self.cluster.stats.starts
        while starts and starts[0] <= self.cluster.now - 86400:
            starts.popleft()  # a day back is more than any signal window
        return len(starts) - bisect.bisect_right(starts, self.cluster.now - window)


@functools.lru_cache(maxsize=64)  # the same few queries, every pass
def _count_query(query: str) -> tuple[float, float] | None:
    """(window seconds, factor) of ``SELECT count(..) [/ or * N] FROM .. 'ProxyStart' ..
    time > now() - W``; None for any other query."""
    count, window = _COUNT.search(query), _WINDOW.search(query)
    if count is None or window is None or "'ProxyStart'" not in query:
        return None
    seconds = float(int(window.group(1)) * _UNIT[window.group(2)])
    op, number = count.group(1), count.group(2)
    if op is None:
        return seconds, 1.0
    n = float(number)
    if op == "/" and n == 0:
        return None
    return seconds, (1.0 / n if op == "/" else n)
