"""One pool at one snapshot -> actions, a Decision with every reason, and the next memory.

Pure. Order: the lifecycle of each node first (label newcomers, end timed-out joins, move
paused nodes on when their sessions have ended, remove drained and vanished nodes), then
seats: resume paused nodes (fullest first) when seats are wanted at once, launch only for
what the reserve still lacks, and pause the emptiest active nodes the pool can spare once
that has lasted ``unneeded_for``, so new sessions pack onto the fullest nodes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from autoscaler.decide.plan_types import (
    Action,
    Decision,
    DrainNode,
    FillWarmPool,
    LabelNode,
    LaunchNodes,
    Notify,
    PauseNode,
    PoolMemory,
    PoolStatus,
    Reading,
    RemoveNode,
    ResumeNode,
    TerminateInstance,
)
from autoscaler.decide.pools import labels as L
from autoscaler.decide.pools.inventory import Inventory, Member, take_inventory
from autoscaler.decide.pools.sizing import Sizing, cost_cap_text, size
from autoscaler.decide.pools.stabilize import stabilize
from autoscaler.decide.pools.warm import tend_warm_pool
from autoscaler.decide.signals import read_signal
from autoscaler.decide.text import clock, span, utc
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.schema import Signal
from autoscaler.snapshot import Node, Snapshot, notice_key

LAUNCH_SETTLE = timedelta(minutes=2)
"""A launch counts as on its way this long even when the provider does not list it yet."""
LAUNCH_SKEW = timedelta(seconds=30)


@dataclass(frozen=True)
class PoolOutcome:
    decision: Decision
    actions: tuple[Action, ...] = ()
    memory: PoolMemory | None = None
    status: PoolStatus | None = None


@dataclass
class _Pass:
    name: str
    policy: PoolPolicy
    now: datetime
    actions: list[Action] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    spare: bool = False
    """A node could be paused this pass (the unneeded_for clock runs)."""
    delivered: Mapping[str, datetime] = field(default_factory=dict)
    """Snapshot.notices_delivered."""
    in_use: Mapping[str, Node] = field(default_factory=dict)
    """Instance id -> a node of the pool that runs on it and is not leaving."""
    machines_known: bool = True
    """The pool's machines were listed: without them a retired node's machine could not be
    terminated, so no node is drained or removed (a drained node is never resumed)."""

    def node(self, m: Member) -> dict[str, str]:
        assert m.node is not None
        return {"node_id": m.node.id, "hostname": m.node.hostname, "pool": self.name}

    def runs_another_node(self, m: Member) -> bool:
        """Whether m's machine also runs another node of the pool, one that is not leaving:
        m is then an older node of it (the engine left and joined the Swarm again)."""
        if m.instance is None or m.node is None:
            return False
        other = self.in_use.get(m.instance.id)
        return other is not None and other.id != m.node.id

    def terminate(self, m: Member, reason: str, after_removal: bool = False) -> None:
        if self.runs_another_node(m):  # that node may hold sessions
            assert m.instance is not None
            self.reasons.append(f"{reason}; machine {m.instance.id} kept: it runs another node")
            return
        if m.instance is not None:
            self.actions.append(
                TerminateInstance(
                    instance_id=m.instance.id,
                    pool=self.name,
                    provider=self.policy.provider,
                    reason=reason,
                    after_removal_of=m.node.id if after_removal and m.node else None,
                )
            )


def decide_pool(
    name: str,
    policy: PoolPolicy,
    snapshot: Snapshot,
    signals: Mapping[str, Signal],
    memory: PoolMemory | None,
    elsewhere: frozenset[str] = frozenset(),
) -> PoolOutcome:
    """Decide one pool. Pure: the result depends only on the arguments. ``elsewhere``: the
    apps other enabled pools list."""
    subject = f"pool {name}"
    if not policy.enabled:
        decision = Decision(
            policy=name, subject=subject, outcome="disabled", reasons=("pool disabled",)
        )
        return PoolOutcome(decision, memory=memory)
    if snapshot.swarm is None:
        reason = "Swarm unreadable: nothing decided for the pool"
        decision = Decision(policy=name, subject=subject, outcome="error", reasons=(reason,))
        return PoolOutcome(decision, memory=memory)
    now = snapshot.taken_at
    inv = take_inventory(name, policy, snapshot, elsewhere)
    arrivals = (
        read_signal(policy.headroom.signal, snapshot, signals) if policy.headroom.signal else None
    )
    held = stabilize(
        arrivals,
        policy.headroom.stabilization_window,
        memory.arrivals if memory is not None else (),
        now,
    )
    sizing = size(policy, inv, held.reading, now)
    p = _Pass(
        name,
        policy,
        now,
        delivered=snapshot.notices_delivered,
        in_use=_in_use(inv),
        machines_known=inv.instances_known,
    )
    if held.reason is not None:
        p.reasons.append(held.reason)
    p.reasons += sizing.reasons
    missing = _provider_missing(policy, snapshot)
    if missing is not None:
        p.reasons.append(missing)
    elif not inv.instances_known:
        p.reasons.append("machines unknown (provider not read): no launch, no termination")
    resumed = _scale(p, inv, sizing, memory)
    _lifecycle(p, inv, resumed, sizing.headroom_known)
    launching = any(isinstance(a, LaunchNodes) for a in p.actions)
    warm = tend_warm_pool(name, policy, inv, memory, now, LAUNCH_SETTLE, launching)
    p.actions += warm.retire
    if warm.action is not None:
        p.actions.append(warm.action)
    if warm.reason is not None:
        p.reasons.append(warm.reason)
    next_memory = _next_memory(p, inv, memory, held.memory)
    outcome = "scale" if p.actions else "hold"
    decision = Decision(
        policy=name,
        subject=subject,
        outcome=outcome,
        current=_have(inv),
        desired=sizing.wanted_nodes,
        reasons=tuple(p.reasons),
    )
    status = _status(name, policy, inv, sizing, snapshot.taken_at)
    if missing is not None:
        status = status.model_copy(update={"provider_missing": policy.provider})
    return PoolOutcome(decision, tuple(p.actions), next_memory, status)


PROVIDER_SETTINGS = {"ec2": "AUTOSCALER_AWS_REGION", "local": "AUTOSCALER_LAB_ROOT (the lab)"}


def _provider_missing(policy: PoolPolicy, snapshot: Snapshot) -> str | None:
    if snapshot.providers is None or policy.provider in snapshot.providers:
        return None
    needs = PROVIDER_SETTINGS.get(policy.provider, "its settings")
    return (
        f"provider '{policy.provider}' is not configured in this sidecar (it needs {needs}): "
        "no launch, no termination"
    )


# ---------------------------------------------------------------- sizing moves
#
# Swarm places a new session on the active node with the fewest tasks, which spreads the
# sessions over every node and keeps all of them alive. Availability steers it instead:
# only the fullest nodes stay active, just enough for the seats wanted at once, so new
# sessions pack onto them (best fit) while the other nodes are paused and empty out. A
# paused node that still holds sessions is paid for anyway, so its free seats are reserve:
# it is resumed the moment they are needed, before any machine is launched.


def _in_use(inv: Inventory) -> dict[str, Node]:
    leaving = ("draining", "removed", "terminated", "join_timeout")
    return {
        m.instance.id: m.node
        for m in inv.members
        if m.instance is not None and m.node is not None and m.state not in leaving
    }


def _have(inv: Inventory) -> int:
    """Nodes that are or will soon be capacity: active, joining, launching."""
    return inv.count("active", "joining", "launching")


def _free(m: Member) -> int:
    return max(0, m.seats - m.used)


def _unlisted(inv: Inventory, memory: PoolMemory | None, now: datetime) -> int:
    """Machines of the last launch the provider does not list yet (its lists may lag)."""
    if memory is None or memory.launched_at is None:
        return 0
    if utc(now) - utc(memory.launched_at) >= LAUNCH_SETTLE:
        return 0
    return max(0, memory.launched - len(_seen(inv, memory)))


def _seen(inv: Inventory, memory: PoolMemory) -> set[str]:
    """Machines of the launches in ``memory`` listed now or at an earlier pass."""
    assert memory.launched_at is not None
    since = utc(memory.launches_since or memory.launched_at) - LAUNCH_SKEW
    now = {
        m.instance.id
        for m in inv.members
        if m.instance is not None and utc(m.instance.launched_at) >= since
    }
    return now | set(memory.listed)


def _machines(inv: Inventory) -> int:
    """Machines that count against max and the cost cap: timed-out joins and interrupted
    Spot machines are going away, unless one is kept because it may be an unrecognised
    worker's machine."""
    gone = ("removed", "terminated", "join_timeout", "interrupted")
    return len([m for m in inv.members if m.state not in gone or m.maybe_node])


@dataclass
class _Seats:
    """Free seats of one pass, by how soon a session can take them."""

    at_once: int
    """Wanted free on active nodes: headroom.seats + sessions waiting."""
    reserve_wanted: int
    """Wanted within one node-ready time: the headroom + sessions waiting."""
    active: int
    """Free on active nodes."""
    reserve: int
    """Free on active nodes, on paused nodes holding user sessions, on machines on their way."""
    active_nodes: int
    coming: int
    """Machines on their way (joining, launching, launched but not listed yet)."""


def _scale(p: _Pass, inv: Inventory, sizing: Sizing, memory: PoolMemory | None) -> set[str]:
    unlisted = _unlisted(inv, memory, p.now)
    if unlisted:
        p.reasons.append(f"{unlisted} machine(s) of the last launch not listed yet")
    active = inv.having("active")
    # best fit: the fullest paused node first, since its sessions keep it alive anyway
    paused = sorted(inv.having("paused"), key=lambda m: (-m.used, m.name))
    coming = inv.count("joining", "launching") + unlisted
    # a retired pool serves none of the waiting sessions: another pool or nobody will
    waiting = 0 if sizing.retiring else inv.pending
    seats = _Seats(
        at_once=0 if sizing.retiring else p.policy.headroom.seats + waiting,
        reserve_wanted=sizing.headroom + waiting,
        active=sum(_free(m) for m in active),
        reserve=0,
        active_nodes=len(active),
        coming=coming,
    )
    resumed = _resume_for_now(p, paused, seats, sizing.low)
    rest = [m for m in paused if m not in resumed]
    seats.reserve = (
        seats.active
        + sum(_free(m) for m in rest if m.occupied > 0)
        + coming * p.policy.seats_per_node
    )
    p.reasons.append(
        f"{seats.active} free seat(s) on {seats.active_nodes} active node(s), "
        f"{seats.at_once} wanted at once; {seats.reserve} within a node-ready time, "
        f"{seats.reserve_wanted} wanted"
    )
    resumed += _resume_for_reserve(p, [m for m in rest if m.occupied == 0], seats)
    launched = _launch(p, inv, sizing, seats, unlisted)
    if resumed:
        p.reasons.append(f"resume {len(resumed)} paused node(s) before launching")
    elif not launched:
        _pack(p, sizing, memory, active, seats)
    return {m.node.id for m in resumed if m.node is not None}


def _resume_for_now(p: _Pass, paused: list[Member], seats: _Seats, low: int) -> list[Member]:
    """Resume paused nodes, fullest first, until the seats wanted at once are free and the
    active and coming nodes reach the minimum."""
    out: list[Member] = []
    for m in paused:
        short = seats.active < seats.at_once
        if not short and seats.active_nodes + seats.coming >= low:
            break
        why = (
            f"{seats.at_once - seats.active} seat(s) short at once" if short else f"below min {low}"
        )
        p.actions.append(ResumeNode(**p.node(m), reason=f"{why}: resume ({_free(m)} free)"))
        seats.active += _free(m)
        seats.active_nodes += 1
        out.append(m)
    return out


def _resume_for_reserve(p: _Pass, empty: list[Member], seats: _Seats) -> list[Member]:
    """Keep (resume) paused nodes without sessions, which would be drained, when the reserve
    needs their seats: cheaper and sooner than a launch."""
    out: list[Member] = []
    for m in empty:
        if seats.reserve >= seats.reserve_wanted:
            break
        why = f"reserve {seats.reserve_wanted - seats.reserve} seat(s) short"
        p.actions.append(ResumeNode(**p.node(m), reason=f"{why}: resume rather than launch"))
        seats.active += _free(m)
        seats.reserve += _free(m)
        seats.active_nodes += 1
        out.append(m)
    return out


def _launch(p: _Pass, inv: Inventory, sizing: Sizing, seats: _Seats, unlisted: int) -> bool:
    per_node = p.policy.seats_per_node
    for_seats = max(0, math.ceil((seats.reserve_wanted - seats.reserve) / per_node))
    for_min = max(0, sizing.low - seats.active_nodes - seats.coming)
    wanted = max(for_seats, for_min)
    if wanted <= 0:
        return False
    count = wanted
    machines = _machines(inv) + unlisted
    if machines + count > p.policy.max:
        count = max(0, p.policy.max - machines)
        p.reasons.append(f"at max {p.policy.max}: {machines} machine(s) exist")
    if sizing.cost_cap_nodes is not None and machines + count > sizing.cost_cap_nodes:
        count = max(0, sizing.cost_cap_nodes - machines)
        p.reasons.append(cost_cap_text(p.policy, sizing.cost_cap_nodes))
    if not inv.instances_known:
        count = 0
    settling = sum(
        1 for m in inv.having("down") if m.node is not None and m.node.state == "unknown"
    )
    if count > 0 and settling:
        # a new Swarm leader reports every node unknown until its next heartbeat (seconds),
        # and one that misses it is marked down: a launch now would replace live capacity
        p.reasons.append(
            f"{settling} node(s) in state unknown (a Swarm leader election?): "
            "no launch until they report"
        )
        count = 0
    if count <= 0:
        return False
    reason = (
        f"{seats.reserve_wanted - seats.reserve} seat(s) short within a node-ready time"
        if for_seats >= for_min
        else f"{for_min} node(s) short of min {sizing.low}"
    )
    token = f"{p.name}-{int(utc(p.now).timestamp())}-{count}"
    p.actions.append(
        LaunchNodes(
            pool=p.name, provider=p.policy.provider, count=count, reason=reason, token=token
        )
    )
    return True


def _pack(
    p: _Pass,
    sizing: Sizing,
    memory: PoolMemory | None,
    active: list[Member],
    seats: _Seats,
) -> None:
    """Pause the emptiest active nodes the seats wanted at once can do without: one holding
    sessions keeps its free seats in reserve and empties; one without is drained, so only
    when the reserve can spare it. A node without a machine of ours (labelled by hand) could
    leave the Swarm but its machine would keep running: it is capacity, never paused; so is
    a manager, which is never paused at all (the actuator would refuse it every pass)."""
    candidates = sorted(
        (m for m in active if m.instance is not None and m.node and m.node.role == "worker"),
        key=lambda m: (m.used, m.occupied, m.name),
    )
    spare: list[tuple[Member, int]] = []  # with the seats left free on active nodes
    free, reserve, nodes = seats.active, seats.reserve, seats.active_nodes
    for m in candidates:
        if len(spare) >= p.policy.scale_in.nodes_per_step or nodes - 1 < sizing.low:
            break
        # only ever the emptiest: pausing a fuller node instead would leave the new
        # sessions to the emptier one and keep both alive
        empties = m.occupied == 0
        if free - _free(m) < seats.at_once:
            break
        if empties and reserve - _free(m) < seats.reserve_wanted:
            break  # the reserve needs it: it stays, active
        free -= _free(m)
        spare.append((m, free))
        nodes -= 1
        reserve -= _free(m) if empties else 0
    if not spare:
        return
    if not sizing.headroom_known:
        p.reasons.append("no scale-in while the headroom signal is unusable")
        return
    p.spare = True
    since = memory.unneeded_since if memory and memory.unneeded_since else p.now
    waited = utc(p.now) - utc(since)
    need = p.policy.scale_in.unneeded_for
    if waited < need:
        p.reasons.append(
            f"{len(spare)} node(s) spare since {clock(since)}: pausing waits until "
            f"{clock(utc(since) + need)} (unneeded_for {span(need)})"
        )
        return
    # A newcomer is labelled `active` in this very pass, which would overwrite a pause
    # (the node would then look "paused by someone else" and never be retired); it may
    # also be the emptiest node, so the whole step waits one pass for its label.
    if any(m.needs_label for m in active):
        p.reasons.append("a node just joined: scale-in waits until it is labelled")
        return
    for m, left in spare:
        what = (
            f"it empties while {m.occupied} session(s) end"
            if m.occupied
            else "no user session: then drained"
        )
        reason = (
            f"spare for {span(waited)}: pause the emptiest node ({m.used} session "
            f"container(s); {what}); {left} seat(s) stay free on active nodes, "
            f"{seats.at_once} wanted at once"
        )
        p.actions.append(PauseNode(**p.node(m), reason=reason, at=p.now))


# ---------------------------------------------------------------- lifecycle


def _lifecycle(p: _Pass, inv: Inventory, resumed: set[str], headroom_known: bool) -> None:
    """``headroom_known``: False while the arrivals signal is unusable; the reserve then
    cannot be judged, so an empty paused node is kept rather than drained."""
    for m in inv.members:
        if m.needs_label and m.node is not None:
            _label_newcomer(p, m)
        if m.state == "paused" and m.node is not None and m.node.id not in resumed:
            _paused(p, m, headroom_known)
        elif m.state == "draining" and m.node is not None:
            _draining(p, m)
        elif m.state == "removed" and inv.instances_known:
            # idempotent: a provider that stopped halfway (a restart) finishes the job
            p.terminate(m, f"{m.name} out of the Swarm and shutting down")
        elif m.state == "terminated" and m.node is not None:
            p.actions.append(RemoveNode(**p.node(m), reason="node down and its machine is gone"))
        elif m.state == "join_timeout" and p.runs_another_node(m):
            assert m.node is not None and m.instance is not None
            p.reasons.append(
                f"{m.name} not Ready, but its machine {m.instance.id} runs node "
                f"{p.in_use[m.instance.id].hostname} ({p.in_use[m.instance.id].id}): an older "
                "node of it, left alone"
            )
        elif m.state == "join_timeout" and inv.instances_known:
            limit = span(p.policy.join_timeout)
            why = f"{m.name} not a Ready Swarm node within join_timeout {limit}"
            if m.instance is not None and m.instance.warm:
                why = f"warm-pool machine {m.name} not powered off within join_timeout {limit}"
            verdict = "terminating it"
            if m.maybe_node:  # sessions may run there: a person decides
                verdict = (
                    f"not terminated: worker {m.maybe_node} joined since and matches no "
                    f"machine; label it {L.INSTANCE}={m.name} if it is this one, or remove "
                    "it from the Swarm"
                )
            p.actions.append(
                Notify(
                    alert="PoolNodeJoinTimeout",
                    summary=f"pool {p.name}: {why}; {verdict}",
                    labels={"pool": p.name, "instance": m.instance_id or ""},
                )
            )
            if m.maybe_node:
                p.reasons.append(f"{why}; {verdict}")
            else:
                p.terminate(m, why)
        elif m.state == "held" and m.node is not None and m.node.role == "manager":
            p.reasons.append(f"{m.name} is a manager, {m.node.availability}: left alone")
        elif m.state == "held":
            p.reasons.append(f"{m.name} paused or drained by someone else: left alone")
        elif m.state == "interrupted" and m.node is not None:
            _interrupted(p, m)


def _interrupted(p: _Pass, m: Member) -> None:
    """EC2 takes this Spot machine back within two minutes, with the sessions on it: no new
    session may start there. Paused, not drained (draining would end its sessions sooner),
    never resumed, and not counted: a replacement is sized as for any missing node."""
    assert m.node is not None
    fate = f"its {m.occupied} session(s) end with it" if m.occupied else "it holds no session"
    why = f"{m.name}: Spot interruption notice, the machine goes within two minutes; {fate}"
    if m.node.availability == "active":
        p.actions.append(PauseNode(**p.node(m), reason=f"{why}: no new session there", at=p.now))
    else:
        p.reasons.append(why)
    p.actions.append(
        Notify(
            alert="PoolSpotInterruption",
            summary=f"pool {p.name}: {why}",
            labels={"pool": p.name, "node": m.name},
        )
    )


def _label_newcomer(p: _Pass, m: Member) -> None:
    assert m.node is not None
    labels = {L.POOL: p.name}
    if m.state == "active":
        labels[L.STATE] = "active"
    if m.instance is not None:
        labels[L.INSTANCE] = m.instance.id
    wanted = {k: v for k, v in labels.items() if m.node.labels.get(k) != v}
    if wanted:
        p.actions.append(LabelNode(**p.node(m), labels=wanted, reason="joined the pool"))


def _paused(p: _Pass, m: Member, headroom_known: bool) -> None:
    assert m.node is not None
    paused_at = L.parse_stamp(m.node.labels.get(L.PAUSED_AT))
    if paused_at is None:  # unreadable: the wait starts now, never earlier
        p.actions.append(
            LabelNode(**p.node(m), labels={L.PAUSED_AT: L.stamp(p.now)}, reason="paused-at unset")
        )
        return
    if m.occupied == 0 and not headroom_known:
        p.reasons.append(f"{m.name} paused and empty: kept (no scale-in without the headroom)")
        return
    if m.occupied == 0 and not p.machines_known:
        p.reasons.append(f"{m.name} paused and empty: kept (machines unknown: no drain)")
        return
    if m.occupied == 0:
        reason = "paused and holds no user session: drain (infrastructure tasks move)"
        p.actions.append(DrainNode(**p.node(m), reason=reason, at=p.now))
        return
    rules = p.policy.scale_in
    waiting = f"{m.name} paused since {clock(paused_at)}: waiting for {m.occupied} session(s)"
    if not rules.allow_ending_sessions or utc(p.now) < utc(paused_at) + rules.session_grace:
        p.reasons.append(waiting + " to end")
        return
    # Sessions end only `ending_notice` after a receiver accepted the alert that says so:
    # raised (and marked) first, raised again every pass until they end, so it stays firing
    # and reaches a receiver that was down; its delivery is marked; the drain comes last.
    summary = (
        f"pool {p.name}: {m.occupied} session(s) on {m.name} will be ended "
        f"{span(rules.ending_notice)} after this alert is delivered (paused for more than "
        f"{span(rules.session_grace)})"
    )
    p.actions.append(
        Notify(alert="PoolEndingSessions", summary=summary, labels={"pool": p.name, "node": m.name})
    )
    notified = L.parse_stamp(m.node.labels.get(L.NOTIFIED_AT))
    if notified is not None and notified < paused_at:
        # raised for an earlier wait (marks a pause or resume did not clear, or paused-at
        # rewritten since): it told nobody about this one
        notified = None
    if notified is None:
        p.actions.append(
            LabelNode(**p.node(m), labels={L.NOTIFIED_AT: L.stamp(p.now)}, reason="alert raised")
        )
        p.reasons.append(waiting + "; alert raised: ending them once it is delivered")
        return
    delivered = L.parse_stamp(m.node.labels.get(L.DELIVERED_AT))
    if delivered is None or delivered < notified:
        seen = p.delivered.get(notice_key(p.name, m.name))
        if seen is not None and utc(seen) >= notified:
            reason = f"alert raised at {clock(notified)} delivered at {clock(seen)}"
            labels = {L.DELIVERED_AT: L.stamp(seen)}
            p.actions.append(LabelNode(**p.node(m), labels=labels, reason=reason))
        else:
            p.reasons.append(
                waiting + f"; alert raised at {clock(notified)} not delivered to any "
                "receiver yet: none ended"
            )
        return
    if utc(p.now) >= delivered + rules.ending_notice and not p.machines_known:
        p.reasons.append(waiting + "; machines unknown: none ended until they are listed")
    elif utc(p.now) >= delivered + rules.ending_notice:
        reason = (
            f"session_grace {span(rules.session_grace)} over, alert delivered at {clock(delivered)}"
        )
        p.actions.append(DrainNode(**p.node(m), reason=reason, at=p.now, end_sessions=True))
    else:
        p.reasons.append(waiting + f"; ending them after {clock(delivered + rules.ending_notice)}")


def _draining(p: _Pass, m: Member) -> None:
    assert m.node is not None
    since = L.parse_stamp(m.node.labels.get(L.DRAINING_AT)) or p.now
    if utc(p.now) < since + p.policy.scale_in.drain_for:
        p.reasons.append(f"{m.name} draining since {clock(since)}")
        return
    if not p.machines_known:
        # removed now, its machine would run on unseen until it timed out as a failed join
        p.reasons.append(f"{m.name} drained: kept in the Swarm until the machines are listed")
        return
    if m.occupied and not p.policy.scale_in.allow_ending_sessions:
        # removal would end them: wait for Swarm to move or finish them
        p.reasons.append(
            f"{m.name} drained but still holds {m.occupied} user session(s) or "
            "pre-initialised container(s): not removed"
        )
        return
    p.actions.append(RemoveNode(**p.node(m), reason="drained"))
    p.terminate(m, f"{m.name} drained and removed from the Swarm", after_removal=True)


# ---------------------------------------------------------------- memory and status


def _next_memory(
    p: _Pass, inv: Inventory, memory: PoolMemory | None, arrivals: tuple[Reading, ...]
) -> PoolMemory:
    since = (memory.unneeded_since if memory else None) or p.now
    launches = [a for a in p.actions if isinstance(a, LaunchNodes)]
    launched_at, launched = (memory.launched_at, memory.launched) if memory else (None, 0)
    first = (memory.launches_since or launched_at) if memory else None
    seen = _seen(inv, memory) if memory is not None and launched_at is not None else set()
    if launched_at is not None and utc(p.now) - utc(launched_at) >= LAUNCH_SETTLE:
        launched_at, launched, first, seen = None, 0, None, set()
    if launches:
        # a launch while the last one still counts adds to it: both are on their way until
        # listed (forgetting the first would launch its machines a second time)
        if launched_at is None:
            first, seen = None, set()
        launched_at, launched = p.now, launched + launches[0].count
    filled_at = memory.warm_filled_at if memory else None
    if any(isinstance(a, FillWarmPool) for a in p.actions):
        filled_at = p.now
    if filled_at is not None and utc(p.now) - utc(filled_at) >= LAUNCH_SETTLE:
        filled_at = None
    return PoolMemory(
        unneeded_since=since if p.spare else None,
        launched_at=launched_at,
        launched=launched,
        launches_since=first if first != launched_at else None,
        listed=tuple(sorted(seen)),
        warm_filled_at=filled_at,
        arrivals=arrivals,
    )


def _status(
    name: str, policy: PoolPolicy, inv: Inventory, sizing: Sizing, now: datetime
) -> PoolStatus:
    nodes = inv.counts()
    on_the_way = [
        utc(now) - utc(m.instance.launched_at)
        for m in inv.having("launching", "joining")
        if m.instance is not None
    ]
    nodes["warm"] = inv.warm
    capacity = sum(m.seats for m in inv.having("active"))
    price = policy.node_price()
    machines = _machines(inv)
    live = sum(m.user_sessions for m in inv.members)
    return PoolStatus(
        pool=name,
        nodes=nodes,
        seats={
            "used": sizing.used,
            "free": max(0, capacity - sizing.used),
            "headroom": sizing.headroom,
            "wanted": sizing.wanted_seats,
        },
        wanted_nodes=sizing.wanted_nodes,
        cost_per_hour=round(price * machines, 4) if price is not None else None,
        live_sessions=live,
        pending_sessions=sizing.pending,
        short_nodes=max(0, sizing.raw_nodes - sizing.wanted_nodes),
        join_wait_seconds=max([0.0, *(w.total_seconds() for w in on_the_way)]),
    )
