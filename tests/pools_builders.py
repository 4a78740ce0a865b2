"""Literal snapshots of pools for the pure pool tests: nodes, sessions, machines."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from autoscaler.decide import plan
from autoscaler.decide.plan_types import Action, Memory, Plan, PoolMemory
from autoscaler.decide.pools import labels as L
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.schema import Policies, Signal
from autoscaler.snapshot import Instance, Node, Session, SignalValue, Snapshot, SwarmState

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)  # a Monday
POOL = "web"


def pool(**overrides: Any) -> PoolPolicy:
    base: dict[str, Any] = {
        "provider": "local",
        "min": 1,
        "max": 10,
        "seats_per_node": 4,
        "scale_in": {"unneeded_for": "10m", "drain_for": "30s"},
        "join_timeout": "10m",
    }
    return PoolPolicy.model_validate({**base, **overrides})


def node(
    name: str,
    *,
    state: str = "active",
    availability: str | None = None,
    ready: str = "ready",
    pool_name: str | None = POOL,
    extra: dict[str, str] | None = None,
    instance: str | None = None,
    role: str = "worker",
) -> Node:
    """A node in lifecycle ``state`` (its labels and availability set to match)."""
    labels: dict[str, str] = {}
    if pool_name is not None:
        labels[L.POOL] = pool_name
        labels[L.STATE] = state
        labels[L.INSTANCE] = instance or f"i-{name}"
    labels.update(extra or {})
    avail = availability or {"paused": "pause", "draining": "drain"}.get(state, "active")
    return Node(
        id=f"id-{name}",
        hostname=name,
        role=role,  # type: ignore[arg-type]
        availability=avail,  # type: ignore[arg-type]
        state=ready,
        addr=f"10.0.0.{abs(hash(name)) % 200 + 2}",
        labels=labels,
    )


def machine(
    name: str,
    *,
    state: str = "running",
    age: timedelta = timedelta(hours=1),
    pool_name: str = POOL,
    dns: str | None = None,
    warm: bool = False,
) -> Instance:
    return Instance(
        id=f"i-{name}",
        pool=pool_name,
        state=state,  # type: ignore[arg-type]
        launched_at=T0 - age,
        instance_type="local",
        private_dns=dns if dns is not None else name,
        warm=warm,
    )


def sessions(node_name: str | None, count: int, *, user: bool = True, state: str = "running",
             spec: str = "euler", start: int = 0) -> list[Session]:  # fmt: skip
    return [
        Session(
            service_id=f"s-{node_name}-{spec}-{i}",
            service_name=f"sp-service-{node_name}-{i}",
            proxy_id=f"p-{node_name}-{spec}-{i}",
            spec_id=spec,
            user_id=f"u{i}" if user else None,
            node_id=f"id-{node_name}" if node_name else None,
            state=state,
            shared=not user,  # a container with no user is a pre-initialised one
        )
        for i in range(start, start + count)
    ]


def pending(count: int, spec: str = "euler") -> list[Session]:
    return sessions(None, count, state="pending", spec=spec, start=1000)


def snapshot(
    nodes: Sequence[Node],
    sess: Sequence[Session] = (),
    machines: Sequence[Instance] | None = None,
    *,
    at: datetime = T0,
    signals: dict[str, float | None] | None = None,
) -> Snapshot:
    """Machines default to one running machine per pool node (of the node's pool),
    launched an hour ago."""
    if machines is None:
        machines = [
            machine(n.hostname, pool_name=n.labels[L.POOL]) for n in nodes if L.POOL in n.labels
        ]
    values = {
        k: SignalValue(name=k, source="influx", value=v, observed_at=at, error=None)
        for k, v in (signals or {}).items()
    }
    return Snapshot(
        taken_at=at,
        swarm=SwarmState(nodes=tuple(nodes), sessions=tuple(sess)),
        instances=tuple(machines),
        signals=values,
    )


def run(
    snap: Snapshot,
    policy: PoolPolicy,
    memory: PoolMemory | None = None,
    signals: dict[str, Signal] | None = None,
) -> Plan:
    policies = Policies(pools={POOL: policy}, signals=signals or {})
    mem = Memory(pools={POOL: memory} if memory else {})
    return plan(snap, policies, mem)


def run_pools(
    snap: Snapshot, policies: dict[str, PoolPolicy], memory: dict[str, PoolMemory] | None = None
) -> Plan:
    """Several pools planned together, as the sidecar plans every pool of its rules."""
    return plan(snap, Policies(pools=policies), Memory(pools=memory or {}))


def kinds(p: Plan) -> list[str]:
    return [a.kind for a in p.actions]


def on(p: Plan, kind: str) -> list[Action]:
    return [a for a in p.actions if a.kind == kind]


def hosts(p: Plan, kind: str) -> list[str]:
    """Host names of the actions of one kind, in plan order."""
    return [getattr(a, "hostname", "") for a in on(p, kind)]


def reasons(p: Plan) -> str:
    return " | ".join(r for d in p.decisions for r in d.reasons)
