"""A simulated Swarm pool with ShinyProxy's rules, in seconds since the workload's start.

- A new session takes a seat on the active node with the fewest tasks that has room
  (Swarm's spread placement); with no seat it waits, and fails after ``service_wait``
  (ShinyProxy's ``service-wait-time``, 60 s). There is no queue beyond that wait.
- A session stays on its node until it ends; draining a node ends (kills) its sessions.
  Optionally their users open the app again after ``reopen_after`` seconds, for what was
  left of their session: a new start, which takes a seat or fails like any other.
- A launched machine joins as a Ready node after a drawn ready time; a paused node takes
  no new session and is resumed at once; a terminated machine stops costing money.
- An EC2 pool's warm machines (autoscaler.sim.warm) are filled with the launch ready time
  (they pull the images), and a launch starts stopped ones first: each joins after a
  draw of the shorter warm ready time.
- Sessions carried in (running when the window opens) are seated on the initial pool,
  which is made large enough for them, by the same spread placement; they are neither
  arrivals nor starts of the window.

Pure bookkeeping: the controller (the production planner or a baseline) decides, this
module only keeps the books.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from autoscaler.sim.arrivals import Z90, Arrival
from autoscaler.sim.warm import WarmMachine, WarmPool

Availability = Literal["active", "pause", "drain"]


@dataclass(frozen=True)
class ReadyTime:
    """Launch-to-Ready time of a node: lognormal by median and 90th percentile (seconds)."""

    median: float = 150.0
    p90: float = 200.0

    def __post_init__(self) -> None:
        if not 0 < self.median <= self.p90:
            raise ValueError("ready time needs 0 < median <= 90th percentile")

    def draw(self, rng: random.Random) -> float:
        if self.p90 == self.median:
            return self.median
        sigma = math.log(self.p90 / self.median) / Z90
        return rng.lognormvariate(math.log(self.median), sigma)


WARM_READY = ReadyTime(40.0, 60.0)
"""Start-to-Ready time of a stopped warm machine (start, boot, Docker, join; the images
are there already): an assumption, docs/simulate.md."""


@dataclass
class SimSession:
    id: int
    arrival: float
    length: float
    node: SimNode | None = None
    started: float | None = None
    done: bool = False
    """Ended, failed or killed: holds no seat and waits for nothing."""
    cache: tuple[SimNode | None, object] | None = None
    """The controller's view of this session and the node it was made for."""


@dataclass
class SimNode:
    """A machine and, once it has joined, its Swarm node."""

    index: int
    seats: int
    launched_at: float
    ready_at: float
    joined: bool = False
    availability: Availability = "active"
    labels: dict[str, str] = field(default_factory=dict)
    sessions: set[int] = field(default_factory=set)
    removed: bool = False
    """Left the Swarm."""
    terminated_at: float | None = None
    version: int = 0
    """Bumped on every change, so views of the node can be cached."""

    @property
    def id(self) -> str:
        return f"node{self.index}"

    @property
    def hostname(self) -> str:
        return f"sim-{self.index}"

    @property
    def instance_id(self) -> str:
        return f"i-sim{self.index}"

    @property
    def alive(self) -> bool:
        return self.terminated_at is None

    @property
    def in_swarm(self) -> bool:
        return self.joined and not self.removed

    @property
    def state(self) -> str:
        """launching, active, paused, draining; down (machine gone, node still listed),
        left (out of the Swarm, machine still running), gone (both)."""
        if not self.joined:
            return "launching" if self.alive else "gone"
        if self.removed:
            return "gone" if not self.alive else "left"
        if not self.alive:
            return "down"
        return {"active": "active", "pause": "paused", "drain": "draining"}[self.availability]

    def touch(self) -> None:
        self.version += 1


@dataclass
class Stats:
    sessions: int = 0
    failed: int = 0
    killed: int = 0
    reopened: int = 0
    """Starts of users whose session was killed (counted in ``failed`` when they fail)."""
    waits: list[float] = field(default_factory=list)
    starts: deque[float] = field(default_factory=deque)
    """Times of successful starts (for arrival-rate signals)."""
    failed_at: list[float] = field(default_factory=list)
    warm_started: int = 0
    """Stopped warm machines a launch started."""


_READY, _END, _TIMEOUT, _REOPEN = 0, 1, 2, 3


def _stale(kind: int, obj: object) -> bool:
    """An event whose processing would change nothing, now or later."""
    if kind == _READY:
        return not cast(SimNode, obj).alive
    if kind == _END:
        return cast(SimSession, obj).done
    if kind == _TIMEOUT:
        s = cast(SimSession, obj)
        return s.done or s.node is not None
    return False


class SimCluster:
    """The pool's machines, nodes and sessions over simulated time."""

    def __init__(
        self,
        arrivals: Sequence[Arrival],
        seats_per_node: int,
        ready_time: ReadyTime,
        seed: int,
        service_wait: float = 60.0,
        count_from: float = 0.0,
        reopen_after: float | None = None,
        carried: Sequence[Arrival] = (),
        earlier_starts: Sequence[float] = (),
        warm_ready_time: ReadyTime = WARM_READY,
    ) -> None:
        if seats_per_node < 1:
            raise ValueError("seats per node must be at least 1")
        self.now = 0.0
        self.seats_per_node = seats_per_node
        self.service_wait = service_wait
        self.count_from = count_from
        """Sessions arriving (and kills happening) before this time are not counted."""
        self.reopen_after = reopen_after
        """Seconds after a kill when its user opens the app again; None: they do not."""
        self.nodes: list[SimNode] = []
        self.current: list[SimNode] = []
        """Nodes not yet both out of the Swarm and terminated."""
        self.sessions: dict[int, SimSession] = {}
        """Sessions that hold a seat or wait for one."""
        self.session_changes: list[int] = []
        """Ids of the sessions that came, went or took a seat, in that order, so views of
        them can be kept up to date without rereading every session."""
        self.pending: deque[SimSession] = deque()
        self.stats = Stats()
        self.stats.starts.extend(sorted(earlier_starts))
        self._arrivals = arrivals
        self._carried = carried
        """Sessions running at 0 (``Workload.carried``), seated by the first add_ready."""
        self._carried_seated = not carried
        self._next = 0
        self._events: list[tuple[float, int, int, object]] = []
        self._seq = 0
        self._ready_time = ready_time
        self._rng = random.Random(seed)
        self.warm = WarmPool()
        self._warm_ready_time = warm_ready_time
        # a stream of its own: the launches draw the same ready times with a warm pool
        self._warm_rng = random.Random(f"{seed}:warm")

    # ---------------------------------------------------------------- time

    def advance(self, to: float) -> None:
        """Process every arrival and event up to and including ``to``."""
        arrivals, events = self._arrivals, self._events
        while True:
            t_arr = arrivals[self._next].at if self._next < len(arrivals) else math.inf
            t_evt = events[0][0] if events else math.inf
            if min(t_arr, t_evt) > to:
                break
            if t_arr <= t_evt:
                self.now = t_arr
                self._arrive(self._next, arrivals[self._next])
                self._next += 1
            else:
                t, _, kind, obj = heapq.heappop(events)
                self.now = t
                if kind == _READY:
                    self._join(obj)  # type: ignore[arg-type]
                elif kind == _END:
                    self._end(obj)  # type: ignore[arg-type]
                elif kind == _REOPEN:
                    self._reopen(obj)  # type: ignore[arg-type]
                else:
                    self._timeout(obj)  # type: ignore[arg-type]
        self.now = to

    def next_event_at(self) -> float:
        """When the next arrival or event (a join, an end, a failed start) happens.
        Events that can no longer happen (the end of a session already killed, the
        timeout of a start that took a seat, the join of a machine terminated while it
        booted) are dropped first: nothing would happen then, so no pass is due."""
        arrivals, events = self._arrivals, self._events
        while events and _stale(events[0][2], events[0][3]):
            heapq.heappop(events)
        t_arr = arrivals[self._next].at if self._next < len(arrivals) else math.inf
        return min(t_arr, events[0][0] if events else math.inf)

    def _push(self, t: float, kind: int, obj: object) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, kind, obj))

    # ---------------------------------------------------------------- sessions

    def _arrive(self, i: int, a: Arrival) -> None:
        if a.at >= self.count_from:
            self.stats.sessions += 1
        self._start(SimSession(i, a.at, a.length))

    def _start(self, s: SimSession) -> None:
        self.sessions[s.id] = s
        self.session_changes.append(s.id)
        if not self._place(s):
            self.pending.append(s)
            self._push(s.arrival + self.service_wait, _TIMEOUT, s)

    def _place(self, s: SimSession) -> bool:
        best: SimNode | None = None
        for n in self.current:
            if (
                n.joined
                and not n.removed
                and n.availability == "active"
                and n.terminated_at is None
                and len(n.sessions) < n.seats
                and (best is None or len(n.sessions) < len(best.sessions))
            ):
                best = n
        if best is None:
            return False
        best.sessions.add(s.id)
        s.node, s.started = best, self.now
        self.session_changes.append(s.id)
        if s.arrival >= self.count_from:
            self.stats.waits.append(self.now - s.arrival)
        self.stats.starts.append(self.now)
        self._push(self.now + s.length, _END, s)
        return True

    def _place_pending(self) -> None:
        while self.pending:
            s = self.pending[0]
            if s.done or s.node is not None:
                self.pending.popleft()
                continue
            if not self._place(s):
                return
            self.pending.popleft()

    def _end(self, s: SimSession) -> None:
        if s.done:
            return
        self._release(s)
        self._place_pending()

    def _timeout(self, s: SimSession) -> None:
        if s.done or s.node is not None:
            return
        s.done = True
        self.sessions.pop(s.id, None)
        self.session_changes.append(s.id)
        if s.arrival >= self.count_from:
            self.stats.failed += 1
            self.stats.failed_at.append(self.now)

    def _release(self, s: SimSession) -> None:
        s.done = True
        self.sessions.pop(s.id, None)
        self.session_changes.append(s.id)
        if s.node is not None:
            s.node.sessions.discard(s.id)

    def live(self) -> int:
        return sum(1 for s in self.sessions.values() if s.node is not None)

    def waiting(self) -> int:
        return len(self.sessions) - self.live()

    # ---------------------------------------------------------------- machines and nodes

    def add_ready(self, count: int, labels: dict[str, str] | None = None) -> list[SimNode]:
        """Nodes that are already part of the pool when the simulation starts. The first
        call opens the pool as it stood: at least enough nodes for the sessions carried
        in, and those sessions seated on them."""
        if not self._carried_seated:
            count = max(count, math.ceil(len(self._carried) / self.seats_per_node))
        out = []
        for _ in range(count):
            n = SimNode(len(self.nodes), self.seats_per_node, self.now, self.now, joined=True)
            n.labels = {k: v.format(instance=n.instance_id) for k, v in (labels or {}).items()}
            self.nodes.append(n)
            self.current.append(n)
            out.append(n)
        if not self._carried_seated:
            self._seat_carried()
        self._place_pending()
        return out

    def carried_seated(self) -> bool:
        """Whether the sessions carried in hold their seats (or there are none)."""
        return self._carried_seated

    def _seat_carried(self) -> None:
        """Each running session on the active node with the fewest tasks (as Swarm spread
        them when they started), ending when it ended. Not a start of the window: it is
        not counted and no wait is recorded (its start is among ``earlier_starts``)."""
        self._carried_seated = True
        base = len(self._arrivals)
        for i, a in enumerate(self._carried):
            s = SimSession(base + i, a.at, a.length)
            self.sessions[s.id] = s
            self.session_changes.append(s.id)
            node = min(
                (n for n in self.current if n.in_swarm and n.availability == "active"),
                key=lambda n: len(n.sessions),
            )
            node.sessions.add(s.id)
            s.node, s.started = node, a.at
            self._push(max(self.now, a.at + a.length), _END, s)

    def launch(self, count: int) -> list[SimNode]:
        return [self._machine(self._ready_time.draw(self._rng)) for _ in range(count)]

    def _machine(self, ready_in: float) -> SimNode:
        """A machine paid from now, joining as a node ``ready_in`` seconds later."""
        ready = self.now + ready_in
        n = SimNode(len(self.nodes), self.seats_per_node, self.now, ready)
        self.nodes.append(n)
        self.current.append(n)
        self._push(ready, _READY, n)
        return n

    def fill_warm(self, count: int) -> list[WarmMachine]:
        """Warm machines that pull the images (the launch ready time) and power off."""
        return [
            self.warm.add(self.now, self.now + self._ready_time.draw(self._warm_rng))
            for _ in range(count)
        ]

    def start_warm(self, count: int) -> list[SimNode]:
        """Up to ``count`` stopped warm machines started: each is a machine paid as a node
        from now, joining after a draw of the warm ready time."""
        out = []
        for _ in self.warm.take(self.now, count):
            out.append(self._machine(self._warm_ready_time.draw(self._warm_rng)))
            if self.now >= self.count_from:
                self.stats.warm_started += 1
        return out

    def _join(self, n: SimNode) -> None:
        if not n.alive:
            return
        n.joined = True
        n.touch()
        self._place_pending()

    def set_availability(self, n: SimNode, availability: Availability) -> None:
        n.availability = availability
        n.touch()
        if availability == "drain":
            self._kill(n)
        elif availability == "active":
            self._place_pending()

    def _kill(self, n: SimNode) -> None:
        for sid in sorted(n.sessions):
            s = self.sessions.get(sid)
            if s is None:
                continue
            self._release(s)
            if self.now >= self.count_from:
                self.stats.killed += 1
            self._reopen_later(s)
        n.sessions.clear()

    def _reopen_later(self, killed: SimSession) -> None:
        if self.reopen_after is None or killed.started is None:
            return
        left = killed.started + killed.length - self.now
        if left <= 0:
            return
        at = self.now + self.reopen_after
        # ids above every arrival's and carried session's, so they never collide with one
        sid = len(self._arrivals) + len(self._carried) + self._seq
        self._push(at, _REOPEN, SimSession(sid, at, left))

    def _reopen(self, s: SimSession) -> None:
        if s.arrival >= self.count_from:
            self.stats.reopened += 1
        self._start(s)

    def label(self, n: SimNode, labels: dict[str, str]) -> None:
        """Set labels; an empty value removes the label (as the node actuator does)."""
        for k, v in labels.items():
            if v:
                n.labels[k] = v
            else:
                n.labels.pop(k, None)
        n.touch()

    def remove(self, n: SimNode) -> None:
        """Leave the Swarm; whatever still ran there ends."""
        self._kill(n)
        n.removed = True
        n.touch()
        self._prune()

    def terminate(self, n: SimNode) -> None:
        if n.terminated_at is not None:
            return
        n.terminated_at = self.now
        if n.in_swarm:
            self._kill(n)  # the machine is gone: its node goes down with its tasks
        n.touch()
        self._prune()

    def _prune(self) -> None:
        self.current = [n for n in self.current if n.state not in ("gone",)]

    def by_id(self, node_id: str) -> SimNode | None:
        if node_id.startswith("node"):
            i = int(node_id[4:])
        elif node_id.startswith("i-sim"):
            i = int(node_id[5:])
        else:
            return None
        return self.nodes[i] if 0 <= i < len(self.nodes) else None

    # ---------------------------------------------------------------- books

    def counts(self) -> dict[str, int]:
        out = {"launching": 0, "active": 0, "paused": 0, "draining": 0, "down": 0}
        for n in self.current:
            st = n.state
            if st in out:
                out[st] += 1
        return out

    def active_seats(self) -> int:
        return sum(n.seats for n in self.current if n.state == "active")

    def node_seconds(self, start: float, end: float) -> float:
        """Machine time billed within [start, end]: from launch to termination."""
        total = 0.0
        for n in self.nodes:
            a = max(start, n.launched_at)
            b = min(end, n.terminated_at if n.terminated_at is not None else end)
            total += max(0.0, b - a)
        return total
