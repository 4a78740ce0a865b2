"""Every machine and node of one pool, each in exactly one lifecycle state.

Pure. The state is read from the Snapshot alone (node labels, availability, readiness,
the provider's instances), so a restarted sidecar sees what the last one left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Literal

from autoscaler.decide.pools import labels as L
from autoscaler.decide.text import utc
from autoscaler.rules.pools import PoolPolicy
from autoscaler.snapshot import SEAT_STATES, Instance, Node, Session, Snapshot

State = Literal[
    "launching",  # a machine, no node in the Swarm yet
    "joining",  # a node in the Swarm, not Ready or not labelled yet
    "active",
    "paused",
    "draining",
    "removed",  # out of the Swarm, its machine shutting down: termination is repeated
    "terminated",  # a down node whose machine is gone: to remove from the Swarm
    "join_timeout",  # never became a Ready node within join_timeout
    "down",  # down, or out of reach after it joined, its machine still running: left alone
    "held",  # paused or drained by someone else, or a manager not active: left alone
    "interrupted",  # its Spot machine goes within two minutes: paused, replaced, left to go
]
STATES: tuple[State, ...] = (
    "launching",
    "joining",
    "active",
    "paused",
    "draining",
    "removed",
    "terminated",
    "join_timeout",
    "down",
    "held",
    "interrupted",
)


@dataclass(frozen=True)
class Member:
    state: State
    node: Node | None = None
    instance: Instance | None = None
    seats: int = 0
    used: int = 0
    """Session containers (user sessions and spare pre-initialised ones) on the node."""
    user_sessions: int = 0
    """User sessions on the node, in any state short of finished."""
    shared: int = 0
    """Pre-initialised containers on the node: users of an app with container sharing
    claim their seats inside ShinyProxy, unseen from the Swarm."""
    needs_label: bool = False
    """A Ready node of ours that does not carry the pool's labels yet."""
    maybe_node: str = ""
    """A machine past its join timeout: an unlabelled worker that joined since its launch
    and matches no machine, which may be this machine's node (sessions may run there)."""

    @property
    def occupied(self) -> int:
        """Containers whose end may end a user's work: such a node is never drained unless
        the policy allows ending sessions."""
        return self.user_sessions + self.shared

    @property
    def name(self) -> str:
        if self.node is not None:
            return self.node.hostname
        return self.instance.id if self.instance is not None else "?"

    @property
    def instance_id(self) -> str | None:
        if self.instance is not None:
            return self.instance.id
        if self.node is not None:
            return self.node.labels.get(L.INSTANCE) or None
        return None


@dataclass(frozen=True)
class Inventory:
    pool: str
    members: tuple[Member, ...]
    pending: int
    """Session containers of the pool's apps that wait for a node."""
    instances_known: bool
    warm_machines: tuple[Instance, ...] = ()
    """Warm-pool machines of the pool: stopped, or on their way to it."""

    @property
    def warm(self) -> int:
        return len(self.warm_machines)

    @cached_property
    def _by_state(self) -> dict[State, list[Member]]:
        # a pass asks a dozen times: one scan of the members serves them all
        out: dict[State, list[Member]] = {}
        for m in self.members:
            out.setdefault(m.state, []).append(m)
        return out

    def having(self, *states: State) -> list[Member]:
        if len(states) == 1:
            return list(self._by_state.get(states[0], ()))
        return [m for m in self.members if m.state in states]

    def count(self, *states: State) -> int:
        return sum(len(self._by_state.get(s, ())) for s in states)

    def counts(self) -> dict[str, int]:
        """Members in each state, every state listed."""
        by = self._by_state
        return {s: len(by.get(s, ())) for s in STATES}


def machines_known(policy: PoolPolicy, snapshot: Snapshot) -> bool:
    """Whether the snapshot lists the pool's machines: its provider was read, and is one this
    sidecar has configured (a pool of an unconfigured provider has no list at all)."""
    configured = snapshot.providers is None or policy.provider in snapshot.providers
    return snapshot.instances is not None and configured


def take_inventory(
    name: str, policy: PoolPolicy, snapshot: Snapshot, elsewhere: frozenset[str] = frozenset()
) -> Inventory:
    """``elsewhere``: the apps other enabled pools list, whose waiting sessions a pool
    without ``apps`` leaves to them."""
    swarm = snapshot.swarm
    nodes = swarm.nodes if swarm is not None else ()
    sessions = swarm.sessions if swarm is not None else ()
    loads = node_loads(sessions)
    instances = tuple(i for i in snapshot.instances or () if i.pool == name)
    alive = [i for i in instances if i.alive]
    mine = [n for n in nodes if n.labels.get(L.POOL) == name]
    newcomers = [n for n in nodes if L.POOL not in n.labels and n.role == "worker"]
    app_sessions = [s for s in sessions if serves(policy, s.spec_id, elsewhere)]

    members: list[Member] = []
    matched: set[str] = set()
    by_id = {i.id: i for i in instances}
    for node in mine:
        # by its instance-id label (any state of the machine), else by host name or address
        inst = _instance_of(node, alive, by_id)
        if inst is not None:
            matched.add(inst.id)
        members.append(_classify(node, inst, policy, snapshot, loads))
    # a warm-pool machine never joins: one with a node was started by a launch whose
    # warm=false tag is not listed yet
    joinable = [i for i in instances if i.alive or (i.warm and i.state in ("pending", "running"))]
    strangers: list[Node] = []
    for node in newcomers:
        unmatched = [i for i in joinable if i.id not in matched]
        inst = _instance_of(node, unmatched, {i.id: i for i in unmatched})
        if inst is None:
            strangers.append(node)  # not known to be ours: never touched
            continue
        matched.add(inst.id)
        members.append(_newcomer(node, inst, policy, snapshot, loads))
    for inst in instances:
        if inst.state == "shutting-down" and inst.id not in matched and not inst.warm:
            members.append(Member("removed", instance=inst))
    for inst in alive:
        if inst.id in matched:
            continue
        age = utc(snapshot.taken_at) - utc(inst.launched_at)
        if age < policy.join_timeout:
            members.append(Member("launching", instance=inst))
            continue
        maybe = next((n.hostname for n in strangers if _joined_since(n, inst)), "")
        members.append(Member("join_timeout", instance=inst, maybe_node=maybe))
    pending = sum(1 for s in app_sessions if s.node_id is None and s.is_pending)
    claimed = {m.node.id for m in members if m.node is not None and m.instance is not None}
    loose = [n for n in (*mine, *newcomers) if n.id not in claimed]
    warm: list[Instance] = []
    for inst in instances:
        if not inst.in_warm_pool or inst.id in matched:
            continue
        if any(_instance_of(n, [inst], {inst.id: inst}) is inst for n in loose):
            # a node of the Swarm has its host name or address: a launch started it, and
            # EC2's list still says stopped. Not the warm pool's: never terminated as such
            continue
        age = utc(snapshot.taken_at) - utc(inst.launched_at)
        if inst.state in ("pending", "running") and age >= policy.join_timeout:
            members.append(Member("join_timeout", instance=inst))  # never powered off
        else:
            warm.append(inst)
    known = machines_known(policy, snapshot)
    return Inventory(name, tuple(members), pending, known, tuple(warm))


def serves(policy: PoolPolicy, spec_id: str, elsewhere: frozenset[str]) -> bool:
    """Whether a waiting session of ``spec_id`` is this pool's to launch for: one of its
    ``apps``, or, without ``apps``, one no other pool lists (else both would launch for
    it). Where the session then runs is Swarm's choice, not the pool's."""
    return spec_id in policy.apps if policy.apps else spec_id not in elsewhere


def _joined_since(node: Node, inst: Instance) -> bool:
    """Whether the node may have joined after the machine was launched (a minute of clock
    skew allowed; unknown counts as yes)."""
    if node.joined_at is None:
        return True
    return utc(node.joined_at) >= utc(inst.launched_at) - timedelta(minutes=1)


def _instance_of(
    node: Node, instances: list[Instance], by_id: dict[str, Instance]
) -> Instance | None:
    """The machine behind a node: by the instance-id label, else by host name (the private
    DNS name's, or the instance id of EC2's resource-name host names) or address."""
    wanted = node.labels.get(L.INSTANCE)
    if wanted:
        return by_id.get(wanted)
    host = node.hostname.split(".")[0]
    if host in by_id and by_id[host] in instances:
        return by_id[host]
    for inst in instances:
        dns = inst.private_dns.split(".")[0]
        if (dns and dns == host) or (inst.private_ip and inst.private_ip == node.addr):
            return inst
    return None


Loads = dict[str, tuple[int, int, int]]
"""Node id -> (session containers, user sessions, pre-initialised containers) on it, in any
state short of finished."""


def node_loads(sessions: tuple[Session, ...]) -> Loads:
    """Counted once per pass: a scan of every session per node is quadratic."""
    out: Loads = {}
    for s in sessions:
        node = s.node_id
        if node is None or s.state not in SEAT_STATES:
            continue
        used, users, shared = out.get(node, (0, 0, 0))
        out[node] = (used + 1, users + s.is_user_session, shared + s.shared)
    return out


def node_seats(node: Node, policy: PoolPolicy) -> int:
    """Seats of a Ready node: from its resources when the policy sizes a seat, else the set
    number (also when the node reports no resources). Its other tasks' reservations are
    taken off first: the Swarm scheduler fits a session only in what they leave."""
    seat = policy.seat
    if seat is None:
        return policy.seats_per_node
    fits: list[int] = []
    if seat.cpus is not None and node.nano_cpus > 0:
        # in whole units, as Swarm counts: 3 CPUs / 0.1 in floating point is 29.999...
        free = max(0, node.nano_cpus - node.reserved_nano_cpus)
        fits.append(free // max(1, round(seat.cpus * 1e9)))
    if seat.memory_mb is not None and node.memory_bytes > 0:
        free = max(0, node.memory_bytes - node.reserved_memory_bytes)
        fits.append(free // max(1, round(seat.memory_mb * 1024 * 1024)))
    return min(fits) if fits else policy.seats_per_node


def _classify(
    node: Node,
    inst: Instance | None,
    policy: PoolPolicy,
    snapshot: Snapshot,
    loads: Loads,
) -> Member:
    used, users, shared = loads.get(node.id, (0, 0, 0))
    label = node.labels.get(L.STATE, "")

    def member(state: State, needs_label: bool = False) -> Member:
        seats = node_seats(node, policy) if state in ("active", "paused") else 0
        return Member(state, node, inst, seats, used, users, shared, needs_label)

    if node.role == "manager":
        # a pool machine promoted to manager (or a manager labelled by hand): raft and the
        # sidecar need it, so it is never paused, drained, removed or its machine ended.
        # Ready and active it takes sessions like any node; otherwise it is left alone
        if node.state != "ready":
            return member("down")
        return member(
            "active" if node.availability == "active" else "held",
            needs_label=node.availability == "active"
            and (label != "active" or _missing_instance(node, inst)),
        )
    if node.state == "down":
        # gone: its machine is listed as not running, or it names one no longer listed. A
        # node that names no machine (labelled by hand) may just be out of reach for a
        # moment: removing it from the Swarm would end its sessions
        known = inst is not None or bool(node.labels.get(L.INSTANCE))
        gone = machines_known(policy, snapshot) and known and (inst is None or not inst.alive)
        return member("terminated" if gone else "down")
    if node.state != "ready":
        # unknown or disconnected: Swarm says so of every node for a moment after a leader
        # election or a missed heartbeat. A node that was Ready once (it carries our state
        # label) or holds sessions is out of reach, not late: left alone, never terminated.
        if label or used:
            return member("down")
        return member(_joining_or_timeout(inst, policy, snapshot))
    if inst is not None and inst.interrupted:
        return member("interrupted")  # whatever its availability: never resumed again
    if node.availability == "active":
        return member("active", needs_label=label != "active" or _missing_instance(node, inst))
    if node.availability == "pause":
        return member("paused" if label == "paused" else "held")
    return member("draining" if label == "draining" else "held")


def _missing_instance(node: Node, inst: Instance | None) -> bool:
    return inst is not None and node.labels.get(L.INSTANCE) != inst.id


def _joining_or_timeout(inst: Instance | None, policy: PoolPolicy, snapshot: Snapshot) -> State:
    if inst is None:
        return "joining"
    age = utc(snapshot.taken_at) - utc(inst.launched_at)
    return "join_timeout" if age >= policy.join_timeout else "joining"


def _newcomer(
    node: Node,
    inst: Instance,
    policy: PoolPolicy,
    snapshot: Snapshot,
    loads: Loads,
) -> Member:
    """A node our machine brought into the Swarm, not labelled yet: capacity once Ready."""
    used, users, shared = loads.get(node.id, (0, 0, 0))
    if node.state == "ready" and node.availability == "active":
        return Member("active", node, inst, node_seats(node, policy), used, users, shared, True)
    if node.state == "ready":
        return Member("held", node, inst, 0, used, users, shared)
    if used:  # it was Ready long enough to take sessions: out of reach, not late
        return Member("down", node, inst, 0, used, users, shared)
    state = _joining_or_timeout(inst, policy, snapshot)
    return Member(state, node, inst, 0, used, users, shared, needs_label=True)
