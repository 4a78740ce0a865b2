"""Invariants of the pool planner on generated snapshots (hypothesis).

Whatever the nodes, labels, sessions, machines, signals and memory: no error and a reason
for the decision; a drain or a removal never ends a session the pool may not end (and one
it may, only ending_notice after the alert was delivered); no manager is paused, drained,
removed or its machine terminated; no machine is terminated while a node of the pool on it
holds sessions; nothing is paused, drained, removed or launched without the machines' list,
nothing scaled in without the headroom signal; the same plan twice, and
the same actions whatever the order of the snapshot's lists.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.decide import plan
from autoscaler.decide.plan_types import Action, Memory, Plan, PoolMemory, Reading
from autoscaler.decide.pools import labels as L
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.schema import Policies, Signal
from autoscaler.snapshot import (
    SEAT_STATES,
    Instance,
    Node,
    Session,
    SignalValue,
    Snapshot,
    SwarmState,
    notice_key,
)

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
POOL = "web"
TASK_STATES = [*sorted(SEAT_STATES), "complete", "shutdown", "failed", "rejected", "orphaned",
               "remove", "unknown"]  # fmt: skip
STAMPS = [L.stamp(T0 - timedelta(minutes=m)) for m in (0, 1, 4, 5, 6, 59, 60, 61, 120)]
SIGNALS = {"arr": Signal.model_validate({"prometheus": {"query": "vector(1)"}, "max_age": "2m"})}


@st.composite
def policies(draw: st.DrawFn) -> PoolPolicy:
    low = draw(st.integers(0, 3))
    raw: dict[str, Any] = {
        "provider": draw(st.sampled_from(["local", "ec2"])),
        "min": low,
        "max": draw(st.integers(low, 6)),
        "seats_per_node": draw(st.integers(1, 4)),
        "headroom": {"seats": draw(st.integers(0, 3)), "reserve_seats": draw(st.integers(0, 4))},
        "scale_in": {
            "unneeded_for": draw(st.sampled_from(["1s", "10m"])),
            "nodes_per_step": draw(st.integers(1, 3)),
            "allow_ending_sessions": draw(st.booleans()),
            "session_grace": "1h",
            "ending_notice": "5m",
            "drain_for": "30s",
        },
    }
    if draw(st.booleans()):
        window = draw(st.sampled_from(["0s", "10m"]))
        raw["headroom"] |= {"signal": "arr", "stabilization_window": window}
    if draw(st.booleans()):
        raw |= {"prices": {"local": 1.0, "m5": 1.0}, "max_cost_per_hour": draw(st.integers(1, 6))}
    if draw(st.booleans()):
        raw["seat"] = {"cpus": 1.0}  # nodes without resources fall back; small ones hold 0
    if draw(st.booleans()):
        top = min(low + 1, raw["max"])
        raw["schedules"] = [{"cron": "0 8 * * 1-5", "duration": "10h", "min": top}]
    if raw["provider"] == "ec2":
        warm = draw(st.integers(0, 2))
        raw["ec2"] = {"ami": "ami-1", "instance_types": ["m5"], "subnets": ["s"], "warm_pool": warm}
    return PoolPolicy.model_validate(raw)


@st.composite
def pool_node(draw: st.DrawFn, i: int) -> Node:
    labels: dict[str, str] = {}
    availability = draw(st.sampled_from(["active", "pause", "drain"]))
    if draw(st.booleans()):
        labels[L.POOL] = draw(st.sampled_from([POOL, POOL, "other"]))
        state = draw(st.sampled_from(["active", "paused", "draining", "", "weird"]))
        if state:
            labels[L.STATE] = state
        if draw(st.integers(0, 3)):  # mostly as the autoscaler leaves them
            availability = {"paused": "pause", "draining": "drain"}.get(state, "active")
        if draw(st.booleans()):
            labels[L.INSTANCE] = f"i-{draw(st.integers(0, 7))}"
        for key in (L.PAUSED_AT, L.DRAINING_AT, L.NOTIFIED_AT, L.DELIVERED_AT):
            if draw(st.booleans()):
                labels[key] = draw(
                    st.sampled_from([*STAMPS, "garbage", L.stamp(T0 + timedelta(minutes=3))])
                )
    return Node(
        id=f"id{i}",
        hostname=draw(st.sampled_from([f"n{i}", f"n{i}", "n0", f"n{i}.internal"])),
        role=draw(st.sampled_from(["worker", "worker", "manager"])),
        availability=availability,
        state=draw(st.sampled_from(["ready", "ready", "down", "unknown", "disconnected", "x"])),
        addr=f"10.0.0.{i}",
        labels=labels,
        nano_cpus=draw(st.sampled_from([0, 500_000_000, 2_000_000_000])),
        joined_at=draw(st.sampled_from([None, T0 - timedelta(hours=2), T0 - timedelta(minutes=1)])),
    )


@st.composite
def machine(draw: st.DrawFn, j: int) -> Instance:
    states = ["pending", "running", "stopping", "stopped", "shutting-down", "terminated"]
    ages = [timedelta(0), timedelta(minutes=1), timedelta(minutes=10), timedelta(hours=1)]
    return Instance(
        id=f"i-{j}",
        pool=draw(st.sampled_from([POOL, POOL, "other"])),
        state=draw(st.sampled_from(states)),
        launched_at=T0 - draw(st.sampled_from(ages)),
        instance_type="m5",
        private_dns=draw(st.sampled_from(["", f"n{j}", f"n{j}.internal"])),
        private_ip=draw(st.sampled_from(["", f"10.0.0.{j}"])),
        warm=draw(st.booleans()),
    )


@st.composite
def session(draw: st.DrawFn, k: int, nodes: int) -> Session:
    user = draw(st.booleans())
    return Session(
        service_id=f"s{k}",
        service_name=f"s{k}",
        proxy_id=f"p{k}",
        spec_id=draw(st.sampled_from(["a", "b"])),
        user_id=f"u{k}" if user else None,
        node_id=draw(st.sampled_from([None, *(f"id{i}" for i in range(nodes))])),
        state=draw(st.sampled_from(TASK_STATES)),
        shared=not user,
    )


Case = tuple[PoolPolicy, Snapshot, PoolMemory | None]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    policy = draw(policies())
    n = draw(st.integers(0, 6))
    nodes = [draw(pool_node(i)) for i in range(n)]
    machines = [draw(machine(j)) for j in range(draw(st.integers(0, 8)))]
    sess = [draw(session(k, n)) for k in range(draw(st.integers(0, 12)))]
    signals = {}
    if draw(st.booleans()):
        value = draw(st.sampled_from([None, 0.0, 1.0, 5.0, 30.0, float("nan")]))
        age = draw(st.sampled_from([timedelta(0), timedelta(minutes=2), timedelta(minutes=3)]))
        signals["arr"] = SignalValue(name="arr", source="prometheus", value=value,
                                     observed_at=T0 - age)  # fmt: skip
    delivered = {
        notice_key(POOL, nd.hostname): T0 - timedelta(minutes=draw(st.sampled_from([0, 6, 120])))
        for nd in nodes
        if draw(st.booleans())
    }
    snap = Snapshot(
        taken_at=T0,
        swarm=SwarmState(nodes=tuple(nodes), sessions=tuple(sess)),
        instances=None if draw(st.integers(0, 5)) == 0 else tuple(machines),
        signals=signals,
        notices_delivered=delivered,
    )
    memory = None
    if draw(st.booleans()):
        readings = draw(st.sampled_from([(), ((5, 50.0),), ((30, 9.0),)]))
        memory = PoolMemory(
            unneeded_since=T0 - timedelta(minutes=draw(st.sampled_from([0, 5, 20]))),
            launched_at=draw(st.sampled_from([None, T0 - timedelta(minutes=1)])),
            launched=draw(st.integers(0, 3)),
            arrivals=tuple(Reading(at=T0 - timedelta(minutes=m), value=v) for m, v in readings),
        )
    return policy, snap, memory


def run(policy: PoolPolicy, snap: Snapshot, memory: PoolMemory | None) -> Plan:
    mem = Memory(pools={POOL: memory} if memory else {})
    return plan(snap, Policies(pools={POOL: policy}, signals=SIGNALS), mem)


def occupied(snap: Snapshot, node_id: str) -> int:
    """User sessions and pre-initialised containers with a task on the node, not finished."""
    assert snap.swarm is not None
    return sum(
        1
        for s in snap.swarm.sessions
        if s.node_id == node_id and s.state in SEAT_STATES and (s.is_user_session or s.shared)
    )


def headroom_unusable(policy: PoolPolicy, snap: Snapshot) -> bool:
    if policy.headroom.signal is None:
        return False
    value = snap.signals.get(policy.headroom.signal)
    return (
        value is None
        or value.value is None
        or value.value != value.value
        or value.observed_at is None
        or T0 - value.observed_at > timedelta(minutes=2)
    )


def check_node_action(policy: PoolPolicy, snap: Snapshot, a: Action) -> None:
    assert snap.swarm is not None
    n = next(x for x in snap.swarm.nodes if x.id == getattr(a, "node_id", None))
    if a.kind != "label_node":
        assert n.labels.get(L.POOL) == POOL, ("a node not of the pool", a)
    if a.kind in ("pause_node", "drain_node", "remove_node"):
        assert n.role == "worker", ("a manager is never paused, drained or removed", a)
        # without the machines' list a retired node's machine could not be terminated
        assert snap.instances is not None, ("retires a node of unknown machines", a)
    users = occupied(snap, n.id)
    if a.kind == "pause_node":
        assert n.availability == "active" and snap.instances is not None
        assert not headroom_unusable(policy, snap)
    if a.kind == "drain_node":
        assert n.availability == "pause" and n.labels.get(L.STATE) == "paused"
        ends = getattr(a, "end_sessions", False)
        if not users:
            assert not ends and not headroom_unusable(policy, snap)
            return
        assert ends and policy.scale_in.allow_ending_sessions, ("drain ends sessions", a)
        paused = L.parse_stamp(n.labels.get(L.PAUSED_AT))
        notified = L.parse_stamp(n.labels.get(L.NOTIFIED_AT))
        delivered = L.parse_stamp(n.labels.get(L.DELIVERED_AT))
        assert paused and notified and delivered
        assert paused <= notified <= delivered
        assert delivered + policy.scale_in.ending_notice <= T0
        assert paused + policy.scale_in.session_grace <= T0
    if a.kind == "remove_node":
        assert n.state == "down" or n.availability == "drain"
        if n.state != "down":
            assert not users or policy.scale_in.allow_ending_sessions, ("removal ends", a)


def machine_nodes(snap: Snapshot, instance_id: str) -> list[Node]:
    assert snap.swarm is not None
    out = []
    for n in snap.swarm.nodes:
        if n.labels.get(L.POOL, POOL) != POOL:
            continue
        named = n.labels.get(L.INSTANCE)
        if named == instance_id or (not named and n.hostname.split(".")[0] == instance_id):
            out.append(n)
    return out


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(cases())
def test_pool_plans_keep_their_invariants(case: Case) -> None:
    policy, snap, memory = case
    p = run(policy, snap, memory)
    (decision,) = [d for d in p.decisions if d.policy == POOL]
    # machines of other pools are the rules' strays: reported, never acted on
    assert {s.pool for s in p.strays} <= {"other"}
    assert all(d.outcome == "hold" for d in p.decisions if d.policy != POOL)
    assert decision.outcome != "error", decision.reasons
    assert decision.reasons
    removed = set()
    for a in p.actions:
        if a.kind in ("pause_node", "resume_node", "drain_node", "remove_node", "label_node"):
            check_node_action(policy, snap, a)
        if a.kind == "remove_node":
            removed.add(a.node_id)
        if a.kind in ("launch_nodes", "fill_warm_pool", "terminate_instance"):
            assert snap.instances is not None
        if a.kind == "launch_nodes":
            assert a.count > 0
        if a.kind == "terminate_instance":
            for n in machine_nodes(snap, a.instance_id):
                assert n.role == "worker", ("terminates a manager's machine", a, n)
                if n.state == "down" or (n.id in removed and a.after_removal_of == n.id):
                    continue
                assert not occupied(snap, n.id), ("terminates a node with sessions", a, n)

    assert run(policy, snap, memory) == p

    assert snap.swarm is not None
    if len({n.hostname.split(".")[0] for n in snap.swarm.nodes}) < len(snap.swarm.nodes):
        return  # ties between equal host names follow the snapshot's order
    rng = random.Random(1)
    nodes, sess = list(snap.swarm.nodes), list(snap.swarm.sessions)
    machines = list(snap.instances or ())
    for seq in (nodes, sess, machines):
        rng.shuffle(seq)
    shuffled = snap.model_copy(
        update={
            "swarm": SwarmState(nodes=tuple(nodes), sessions=tuple(sess)),
            "instances": tuple(machines) if snap.instances is not None else None,
        }
    )

    def key(a: Action) -> str:  # a join-timeout alert names the first unknown worker
        return a.model_dump_json(exclude={"summary"})

    assert sorted(map(key, run(policy, shuffled, memory).actions)) == sorted(map(key, p.actions))
