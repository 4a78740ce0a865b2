"""A large synthetic cluster for benchmarks: N nodes, T session tasks, P service policies."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from autoscaler.rules.schema import Policies, ServicePolicy, Signal
from autoscaler.snapshot import Node, Service, Session, SignalValue, Snapshot, SwarmState

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def big_snapshot(
    nodes: int = 200, tasks: int = 5000, policies: int = 100, seed: int = 1
) -> tuple[Snapshot, Policies]:
    rng = random.Random(seed)
    node_list = tuple(
        Node(
            id=f"n{i:04d}",
            hostname=f"worker-{i}",
            role="worker" if i else "manager",
            availability="active",
            state="ready",
            addr=f"10.0.{i // 250}.{i % 250}",
            labels={"autoscaler.pool": "shiny"},
            nano_cpus=4_000_000_000,
            memory_bytes=16 << 30,
        )
        for i in range(nodes)
    )
    sessions = tuple(
        Session(
            service_id=f"s{i:05d}",
            service_name=f"sp-service-{i:05d}-0",
            proxy_id=f"{i:05d}",
            spec_id=f"app{i % 7}",
            user_id=f"user{i}",
            node_id=node_list[rng.randrange(1, nodes)].id if i % 50 else None,
            state="running" if i % 50 else "pending",
            created_at=NOW,
        )
        for i in range(tasks)
    )
    services = tuple(
        Service(
            id=f"svc{i}",
            name=f"api{i}",
            mode="replicated",
            replicas=2 + i % 5,
            running=2 + i % 5,
            version=10 + i,
        )
        for i in range(policies)
    ) + tuple(
        Service(
            id=s.service_id,
            name=s.service_name,
            mode="replicated",
            replicas=1,
            running=1,
            version=1,
            is_session=True,
        )
        for s in sessions
    )
    signals = {
        f"rps{i}": SignalValue(
            name=f"rps{i}",
            source="prometheus",
            value=rng.uniform(0, 200),
            observed_at=NOW - timedelta(seconds=5),
        )
        for i in range(policies)
    }
    pol = Policies(
        signals={
            name: Signal.model_validate({"prometheus": {"query": f"sum(rate(x{i}[1m]))"}})
            for i, name in enumerate(signals)
        },
        services={
            f"api{i}": ServicePolicy.model_validate(
                {
                    "min": 1,
                    "max": 20,
                    "target_tracking": [{"signal": f"rps{i}", "average_value": 20}],
                    "schedules": [
                        {
                            "cron": f"0 {6 + i % 10} * * 1-5",
                            "duration": "10h",
                            "timezone": "Europe/Berlin",
                            "min": 2,
                        }
                    ],
                }
            )
            for i in range(policies)
        },
    )
    snap = Snapshot(
        taken_at=NOW,
        swarm=SwarmState(nodes=node_list, services=services, sessions=sessions),
        signals=signals,
    )
    return snap, pol
