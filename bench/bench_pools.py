"""A pool in a real lab Swarm (local provider) under a compressed trace of sessions.

Measures, per launched node, the time from the pass that decided the launch to the node
being Ready (able to accept a session), the engine's own boot time within it, and so the
sidecar's share; and, for the trace, sessions started / failed (not running within 60 s,
as ShinyProxy gives up) / killed (ended by anything but their user), and node-minutes.

    python -m bench.bench_pools        (root: it boots dockerd engines)
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from autoscaler.actuate.dispatch import Dispatcher
from autoscaler.actuate.machines import MachineActuator
from autoscaler.actuate.nodes import NodeActuator
from autoscaler.actuate.swarm import SwarmActuator
from autoscaler.decide.plan_types import LaunchNodes
from autoscaler.lab.engines import SwarmCluster
from autoscaler.lab.lab import boot_worker
from autoscaler.lab.sessions import create_session_service
from autoscaler.loop import Reconciler
from autoscaler.metrics import SidecarMetrics
from autoscaler.providers.local import LocalProvider
from autoscaler.rules.reload import RulesStore
from autoscaler.sources.collect import Backends
from autoscaler.sources.ec2 import ProviderInstances
from autoscaler.sources.swarm import SwarmReader
from bench.report import write_result

RULES = """\
pools:
  web:
    provider: local
    min: 1
    max: 10
    seats_per_node: 4
    headroom: {seats: 2}
    scale_in: {unneeded_for: 20s, drain_for: 2s}
    join_timeout: 90s
    local: {boot_delay: 0s}
"""
START_TIMEOUT = 60.0
PASS_EVERY = 1.0


@dataclass
class Session:
    arrive: float
    leave: float
    sid: str = ""
    started: float | None = None
    outcome: str = "waiting"


@dataclass
class Run:
    boots: dict[str, tuple[float, float]] = field(default_factory=dict)
    decided: dict[str, float] = field(default_factory=dict)


def trace(seed: int = 7) -> list[Session]:
    """A compressed day: a rise, a peak, a fall (seconds since the start)."""
    rng = random.Random(seed)
    out, t = [], 5.0
    for rate, span in ((0.3, 40), (0.8, 40), (0.2, 40)):  # arrivals per second
        end = t + span
        while t < end:
            t += rng.expovariate(rate)
            out.append(Session(arrive=t, leave=t + rng.uniform(20, 60)))
    return out


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bpool-", dir="/tmp"))
    cluster = None
    try:
        cluster = SwarmCluster.start(root / "swarm", workers=0)
        client = cluster.client()
        manager = client.api.nodes()[0]
        spec = {**manager["Spec"], "Availability": "drain"}
        client.api.update_node(manager["ID"], manager["Version"]["Index"], spec)
        (root / "rules").mkdir()
        (root / "rules" / "pools.yml").write_text(RULES)
        result = run(root, client)
        write_result("pools", result)
    finally:
        if cluster is not None:
            stop_everything(cluster, root)
        shutil.rmtree(root, ignore_errors=True)


def run(root: Path, client: Any) -> dict[str, Any]:
    stats = Run()

    def timed_boot(r: Path, name: str, boot_delay: float) -> Any:
        began = time.monotonic()
        booted = boot_worker(r, name=name, boot_delay=boot_delay)
        stats.boots[name] = (began, time.monotonic())
        return booted

    provider = LocalProvider(root, "bench", boot=timed_boot)
    rules = RulesStore(root / "rules")
    reconciler = Reconciler(
        rules=rules,
        backends=Backends(
            swarm=SwarmReader(client), instances=ProviderInstances({"local": provider})
        ),
        actuator=Dispatcher(
            services=SwarmActuator(client),
            nodes=NodeActuator(client),
            machines=MachineActuator({"local": provider}, lambda: rules.policies),
        ),
        metrics=SidecarMetrics(CollectorRegistry()),
    )
    sessions = trace()
    t0 = time.monotonic()
    end = t0 + max(s.leave for s in sessions) + 60
    node_seconds = 0.0
    last = t0
    pass_seconds: list[float] = []
    while time.monotonic() < end:
        began = time.monotonic()
        result = reconciler.run_pass("bench")
        pass_seconds.append(result.seconds)
        for r in result.results:
            if isinstance(r.action, LaunchNodes) and r.ok:
                for mid in r.message.split(": ", 1)[1].split(", "):
                    stats.decided[mid.replace("lab-", "web-")] = began
        now = time.monotonic()
        node_seconds += len(provider.list_instances()) * (now - last)
        last = now
        step_sessions(client, sessions, now - t0)
        time.sleep(max(0.0, PASS_EVERY - (time.monotonic() - began)))
    provider.wait_boots()
    for s in sessions:
        if s.sid and s.outcome == "running":
            client.api.remove_service(s.sid)
    return report(stats, sessions, node_seconds, pass_seconds)


def step_sessions(client: Any, sessions: list[Session], t: float) -> None:
    for s in sessions:
        if s.outcome == "waiting" and t >= s.arrive:
            s.sid = create_session_service(
                client,
                user_id=f"u{id(s)}",
                cpu_reservation=0.5,
                memory_reservation=None,
                command=("sleep", "3600"),
            ).id
            s.outcome = "pending"
        if s.outcome not in ("pending", "running"):
            continue
        tasks = client.api.tasks(filters={"service": s.sid})
        state = tasks[0]["Status"]["State"] if tasks else "none"
        if s.outcome == "pending":
            if state == "running":
                s.outcome, s.started = "running", t
            elif t - s.arrive > START_TIMEOUT:
                client.api.remove_service(s.sid)  # ShinyProxy gives up and deletes it
                s.outcome = "failed"
        elif state != "running":
            s.outcome = "killed"
        elif t >= s.leave:
            client.api.remove_service(s.sid)
            s.outcome = "ended"


def report(
    stats: Run, sessions: list[Session], node_seconds: float, pass_seconds: list[float]
) -> dict[str, Any]:
    nodes = []
    for name, decided in sorted(stats.decided.items()):
        if name not in stats.boots:
            continue
        boot_began, joined = stats.boots[name]  # boot_worker returns once the node is Ready
        nodes.append(
            {
                "node": name,
                "decision_to_ready_s": round(joined - decided, 2),
                "engine_boot_and_join_s": round(joined - boot_began, 2),
                "sidecar_share_s": round(boot_began - decided, 3),
            }
        )
    waits = [s.started - s.arrive for s in sessions if s.started is not None]
    return {
        "parameters": {
            "seats_per_node": 4,
            "headroom": 2,
            "max": 10,
            "boot_delay_s": 0,
            "pass_every_s": PASS_EVERY,
        },
        "nodes": nodes,
        "sessions": {
            "total": len(sessions),
            "started": sum(1 for s in sessions if s.started is not None),
            "failed": sum(1 for s in sessions if s.outcome == "failed"),
            "killed": sum(1 for s in sessions if s.outcome == "killed"),
            "max_wait_s": round(max(waits), 2) if waits else None,
        },
        "node_minutes": round(node_seconds / 60, 2),
        "pass_median_ms": round(sorted(pass_seconds)[len(pass_seconds) // 2] * 1000, 1),
    }


def stop_everything(cluster: SwarmCluster, root: Path) -> None:
    """Also the engines the provider added: they are in engines.json, not in ``cluster``."""
    try:
        SwarmCluster.attach(root / "swarm").stop()
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
