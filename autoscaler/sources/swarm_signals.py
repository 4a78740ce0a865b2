"""Built-in signals computed from a SwarmState (pure: counting, no I/O)."""

from __future__ import annotations

from autoscaler.rules.schema import SwarmSource
from autoscaler.snapshot import SwarmState


def swarm_signal(state: SwarmState, spec: SwarmSource) -> float:
    """The value of a built-in swarm signal. Raises LookupError for an unknown service."""
    if spec.metric == "live_sessions":
        return sum(
            1
            for s in state.sessions
            if s.is_user_session and s.is_live and spec.spec_id in (None, s.spec_id)
        )
    if spec.metric == "pending_sessions":
        return sum(
            1
            for s in state.sessions
            if s.is_user_session and s.is_pending and spec.spec_id in (None, s.spec_id)
        )
    if spec.metric == "pending_no_resources":
        return sum(1 for t in state.pending_tasks if t.lacks_resources)
    if spec.metric == "service_replicas":
        assert spec.service is not None  # validated by the schema
        svc = state.service(spec.service)
        if svc is None:
            raise LookupError(f"service {spec.service!r} not found in the swarm")
        return svc.running
    return sum(
        1
        for n in state.nodes
        if spec.state in (None, n.state)
        and spec.availability in (None, n.availability)
        and spec.role in (None, n.role)
        and all(n.labels.get(k) == v for k, v in spec.labels.items())
    )
