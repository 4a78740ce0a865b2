"""The policy under test: every pass builds a real Snapshot of the simulated pool, calls the
production planner ``autoscaler.decide.plan`` and carries out the returned actions with the
node actuator's rules (a drain follows a pause and is refused while user sessions run unless
the action says to end them; only drained or down nodes are removed) and the EC2 provider's
for a warm pool (a launch starts stopped warm machines first)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime

from autoscaler.decide.plan_types import (
    Action,
    DrainNode,
    FillWarmPool,
    LabelNode,
    LaunchNodes,
    Memory,
    PauseNode,
    Plan,
    RemoveNode,
    ResumeNode,
    RetireWarmMachine,
    TerminateInstance,
)
from autoscaler.decide.pools import labels as L
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.schema import Policies
from autoscaler.sim.cluster import SimCluster, SimNode
from autoscaler.sim.observe import MachineLook, Observer
from autoscaler.snapshot import Snapshot

Planner = Callable[[Snapshot, Policies, Memory], Plan]


def production_planner() -> Planner:
    """``autoscaler.decide.plan``, looked up when called: the function the sidecar runs."""
    import autoscaler.decide

    return autoscaler.decide.plan


class PlannerController:
    """Drives one pool of ``policies`` with the production planner."""

    def __init__(
        self,
        name: str,
        pool: str,
        policies: Policies,
        start: datetime,
        planner: Planner | None = None,
    ) -> None:
        if pool not in policies.pools:
            known = ", ".join(sorted(policies.pools)) or "none"
            raise ValueError(f"no pool {pool!r} in the rules (pools: {known})")
        self.name = name
        self.pool = pool
        # only the pool under test and the signal it reads: services, other pools and
        # alert rules have nothing to act on here, and every signal read costs time
        policy = policies.pools[pool]
        wanted = policy.headroom.signal
        signals = {k: v for k, v in policies.signals.items() if k == wanted}
        self.policies = Policies.model_construct(
            **{**dict(policies), "services": {}, "pools": {pool: policy}, "signals": signals}
        )
        self.start_at = start
        self.planner = planner or production_planner()
        self.memory = Memory()
        self.actions: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._not_removed: set[str] = set()
        """Nodes whose removal this pass refused: their machines are not terminated."""
        self.calls = 0
        self.on_events = True
        """The sidecar also runs a pass on Docker events (SimParams.event_gap)."""
        self._observer: Observer | None = None

    def start(self, cluster: SimCluster) -> None:
        policy = self.policies.pools[self.pool]
        self._observer = Observer(cluster, self.start_at, self.pool, warm_look(self.pool, policy))
        initial = max(1, policy.min)
        labels = {L.POOL: self.pool, L.STATE: "active", L.INSTANCE: "{instance}"}
        cluster.add_ready(initial, labels)

    def step(self, cluster: SimCluster) -> None:
        assert self._observer is not None, "start() first"
        snap = self._observer.snapshot(self.policies.signals)
        result = self.planner(snap, self.policies, self.memory)
        self.calls += 1
        self.memory = result.memory
        self._not_removed.clear()
        for action in result.actions:
            self.apply(cluster, action)

    def apply(self, c: SimCluster, a: Action) -> None:
        """Carry out one action as the actuators would (refusals are counted)."""
        if isinstance(a, LaunchNodes | FillWarmPool | RetireWarmMachine):
            self._provider_action(c, a)
            return
        if isinstance(a, TerminateInstance) and c.warm.by_id(a.instance_id) is not None:
            # a warm machine still pulling images after join_timeout
            self._end_warm(c, a, a.instance_id)
            return
        if isinstance(a, TerminateInstance):
            n = c.by_id(a.instance_id)
            if n is None or not n.alive or a.after_removal_of in self._not_removed:
                self.refused[a.kind] += 1
                return
            c.terminate(n)
            self.actions[a.kind] += 1
            return
        if not isinstance(a, PauseNode | ResumeNode | DrainNode | RemoveNode | LabelNode):
            self.actions[a.kind] += 1  # notifications, service scaling: nothing to simulate
            return
        n = c.by_id(a.node_id)
        if n is None or not n.in_swarm or not self._allowed(n, a):
            self.refused[a.kind] += 1
            if isinstance(a, RemoveNode):
                self._not_removed.add(a.node_id)
            return
        if isinstance(a, PauseNode):
            c.set_availability(n, "pause")
            c.label(n, {L.STATE: "paused", L.PAUSED_AT: L.stamp(a.at), **L.NO_NOTICE})
        elif isinstance(a, ResumeNode):
            c.set_availability(n, "active")
            c.label(n, {L.STATE: "active", L.PAUSED_AT: "", **L.NO_NOTICE})
        elif isinstance(a, DrainNode):
            c.set_availability(n, "drain")
            c.label(n, {L.STATE: "draining", L.DRAINING_AT: L.stamp(a.at)})
        elif isinstance(a, RemoveNode):
            c.remove(n)
        else:
            c.label(n, a.labels)
        self.actions[a.kind] += 1

    def _provider_action(
        self, c: SimCluster, a: LaunchNodes | FillWarmPool | RetireWarmMachine
    ) -> None:
        """As the EC2 provider carries them out (a pool without warm machines launches)."""
        if isinstance(a, LaunchNodes):
            started = c.start_warm(a.count)  # stopped warm machines first
            c.launch(a.count - len(started))
            self.actions[a.kind] += a.count
        elif isinstance(a, FillWarmPool):
            # the provider counts again: a fill decided on an older listing adds no more
            ec2 = self.policies.pools[self.pool].ec2
            missing = (ec2.warm_pool if ec2 is not None else 0) - len(c.warm.current)
            self.actions[a.kind] += len(c.fill_warm(max(0, missing)))
        else:
            self._end_warm(c, a, a.instance_id)

    def _end_warm(self, c: SimCluster, a: Action, instance_id: str) -> None:
        """Terminate a warm machine; refused once a launch has started it (or it is gone)."""
        m = c.warm.by_id(instance_id)
        if m is None or m.ended_at is not None:
            self.refused[a.kind] += 1
            return
        c.warm.end(m, c.now)
        self.actions[a.kind] += 1

    @staticmethod
    def _allowed(n: SimNode, a: Action) -> bool:
        if isinstance(a, PauseNode):
            return n.availability == "active"
        if isinstance(a, ResumeNode):
            return n.availability == "pause" and n.labels.get(L.STATE) == "paused"
        if isinstance(a, DrainNode):
            return n.availability == "pause" and (a.end_sessions or not n.sessions)
        if isinstance(a, RemoveNode):
            return not n.alive or (n.availability == "drain" and not n.sessions)
        return True


def warm_look(pool: str, policy: PoolPolicy) -> MachineLook | None:
    """How the EC2 provider lists the pool's warm machines: the first instance type and
    subnet, tagged with the pool's launch configuration, so the planner counts them as
    current. None for a pool without an ec2 section (it has no warm pool)."""
    if policy.ec2 is None:
        return None
    from autoscaler.decide.pools.launch_config import launch_config

    tags = {L.TAG_POOL: pool, L.TAG_LAUNCH_CONFIG: launch_config(policy)}
    return MachineLook(policy.ec2.instance_types[0], policy.ec2.subnets[0], tags)
