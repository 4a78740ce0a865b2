"""End to end in a real Swarm with the local provider: the sidecar's own pass (collect ->
plan -> dispatch) grows a pool for a burst of sessions, shrinks it without killing any
session, and terminates a machine that never joins."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
from prometheus_client import CollectorRegistry

from autoscaler.actuate.dispatch import Dispatcher
from autoscaler.actuate.machines import MachineActuator
from autoscaler.actuate.nodes import NodeActuator
from autoscaler.actuate.swarm import SwarmActuator
from autoscaler.decide.pools import labels as L
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
from tests.fixtures_swarm import lab_folder, need_swarm_lab

pytestmark = [pytest.mark.real, pytest.mark.slow]
log = logging.getLogger(__name__)

RULES = """\
pools:
  web:
    provider: local
    min: 1
    max: 3
    seats_per_node: 4
    headroom: {{seats: 1}}
    scale_in: {{unneeded_for: 3s, drain_for: 1s}}
    join_timeout: {join_timeout}
    local: {{boot_delay: 1s}}
"""
START_TIMEOUT = 60.0
"""ShinyProxy's service-wait-time: a session not running by then has failed."""


@dataclass
class PoolLab:
    root: Path
    cluster: SwarmCluster
    client: docker.DockerClient
    provider: LocalProvider
    reconciler: Reconciler
    created: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)

    def run_until(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        """Run sidecar passes until ``check`` holds; sessions' start times are noted."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.reconciler.run_pass("test")
            assert result.ok, result.error
            for r in result.results:
                log.info("%s: %s", "ok" if r.ok else "FAILED", r.message)
            self.note_starts()
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached in {timeout:g}s")
            time.sleep(0.3)

    def note_starts(self) -> None:
        for sid in self.created:
            if sid not in self.started and self.task_state(sid) == "running":
                self.started[sid] = time.monotonic()

    def tasks(self, sid: str) -> list[dict[str, Any]]:
        return list(self.client.api.tasks(filters={"service": sid}))

    def task_state(self, sid: str) -> str:
        tasks = self.tasks(sid)
        return str(tasks[0]["Status"]["State"]) if tasks else "none"

    def task_node(self, sid: str) -> str:
        return str(self.tasks(sid)[0].get("NodeID", ""))

    def session(self, user: str) -> str:
        svc = create_session_service(
            self.client,
            user_id=user,
            cpu_reservation=0.5,  # 2 CPUs per lab engine: 4 sessions per node
            memory_reservation=None,
            command=("sleep", "3600"),
        )
        self.created[svc.id] = time.monotonic()
        return svc.id

    def end_session(self, sid: str) -> None:
        """A user logs out: the session must still be running at that moment."""
        assert self.task_state(sid) == "running", f"session {sid} was killed"
        self.client.api.remove_service(sid)

    def engines(self) -> tuple[Any, ...]:
        """The lab's worker engines as recorded on disk (the provider adds them there)."""
        attached = SwarmCluster.attach(self.root / "swarm")
        try:
            return attached.workers
        finally:
            attached.client().close()

    def at_min(self) -> bool:
        """One active pool node, and exactly the machines behind the pool's nodes."""
        nodes = self.pool_nodes()
        machines = self.provider.list_instances()
        names = {n["Description"]["Hostname"] for n in nodes}
        return (
            len(nodes) == 1
            and len(self.active()) == 1
            and {m.private_dns for m in machines} == names
            and all(m.state == "running" for m in machines)
        )

    def end_all_sessions(self) -> None:
        for sid in list(self.created):
            with contextlib.suppress(docker.errors.NotFound):
                self.client.api.remove_service(sid)
        self.created.clear()

    def pool_nodes(self) -> list[dict[str, Any]]:
        return [
            n for n in self.client.api.nodes() if n["Spec"].get("Labels", {}).get(L.POOL) == "web"
        ]

    def active(self) -> list[dict[str, Any]]:
        return [
            n
            for n in self.pool_nodes()
            if n["Status"]["State"] == "ready" and n["Spec"]["Availability"] == "active"
        ]


@pytest.fixture(scope="module")
def pool_lab() -> Iterator[PoolLab]:
    need_swarm_lab()
    root = lab_folder("pool-")
    cluster = None
    try:
        cluster = SwarmCluster.start(root / "swarm", workers=0)
        client = cluster.client()
        manager = client.api.nodes()[0]
        spec = {**manager["Spec"], "Availability": "drain"}  # sessions only on pool nodes
        client.api.update_node(manager["ID"], manager["Version"]["Index"], spec)
        (root / "rules").mkdir()
        (root / "rules" / "pools.yml").write_text(RULES.format(join_timeout="90s"))
        provider = LocalProvider(root, "lab")
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
        yield PoolLab(root, cluster, client, provider, reconciler)
        provider.wait_boots()
    finally:
        if cluster is not None:
            stop_everything(cluster, root)
        shutil.rmtree(root, ignore_errors=True)


def test_burst_grows_then_shrinks_without_killing_a_session(pool_lab: PoolLab) -> None:
    lab = pool_lab
    t0 = time.monotonic()
    lab.run_until(lambda: len(lab.active()) == 1, 90, "first pool node")
    first_node_s = time.monotonic() - t0

    # a burst beyond one node's four seats
    burst = [lab.session(f"u{i}") for i in range(7)]
    lab.run_until(lambda: all(lab.task_state(s) == "running" for s in burst), 120, "burst placed")
    waits = {s: lab.started[s] - lab.created[s] for s in burst}
    log.info("first node %.1fs; session waits %s", first_node_s, sorted(waits.values()))
    assert max(waits.values()) < START_TIMEOUT, waits
    assert len(lab.active()) == 2
    machines = lab.provider.list_instances()
    assert len(machines) == 2  # no double launch

    # the burst ends but for one session on each node
    by_node: dict[str, list[str]] = {}
    for s in burst:
        by_node.setdefault(lab.task_node(s), []).append(s)
    keep = {node: sids[0] for node, sids in by_node.items()}
    assert len(keep) == 2
    for s in burst:
        if s not in keep.values():
            lab.end_session(s)

    # surplus: one node is paused, and stays paused while its session runs
    def paused() -> list[dict[str, Any]]:
        return [n for n in lab.pool_nodes() if n["Spec"]["Availability"] == "pause"]

    (node,) = lab.run_until(paused, 30, "a node paused")
    assert node["Spec"]["Labels"][L.STATE] == "paused"
    holder = keep[node["ID"]]
    for _ in range(8):
        lab.run_until(lambda: True, 1, "a pass")
        assert lab.task_state(holder) == "running"
        assert node["ID"] in {n["ID"] for n in paused()}

    # its last session ends: drained, removed, terminated; the pool is back at its minimum
    lab.end_session(holder)
    gone = node["ID"]

    def back_to_min() -> bool:
        ids = {n["ID"] for n in lab.client.api.nodes()}
        return gone not in ids and len(lab.provider.list_instances()) == 1

    lab.run_until(back_to_min, 60, "pool back at min")
    survivor = next(s for s in keep.values() if s != holder)
    assert lab.task_state(survivor) == "running"  # zero sessions killed
    assert len(lab.active()) == 1
    assert gone not in {w.node_id for w in lab.engines()}
    lab.end_session(survivor)


def test_a_machine_that_never_joins_is_terminated(pool_lab: PoolLab) -> None:
    lab = pool_lab
    (lab.root / "rules" / "pools.yml").write_text(RULES.format(join_timeout="8s"))

    def never_joins(root: Path, name: str, boot_delay: float) -> Any:
        return boot_worker(root, name=name, boot_delay=boot_delay, join_script="exit 1", timeout=20)

    lab.provider._boot = never_joins
    lab.run_until(lab.at_min, 60, "the pool at its minimum")
    for user in ("a", "b", "c", "d"):  # four used + one seat of headroom: a second node
        lab.session(user)

    def notified() -> bool:
        last = lab.reconciler.last
        assert last is not None and last.plan is not None
        return any(a.kind == "notify" for a in last.plan.actions)

    lab.run_until(notified, 60, "join timeout alert")
    last = lab.reconciler.last
    assert last is not None
    terminations = [r for r in last.results if r.action.kind == "terminate_instance"]
    assert terminations and all(r.ok for r in terminations)
    # back to normal boots: the pool settles at its minimum with no machine left over
    lab.end_all_sessions()
    lab.provider._boot = None
    lab.provider.wait_boots()
    (lab.root / "rules" / "pools.yml").write_text(RULES.format(join_timeout="30s"))
    lab.run_until(lab.at_min, 90, "the pool back at its minimum")
    machines = {i.private_dns for i in lab.provider.list_instances()}
    assert {w.name for w in lab.engines()} == machines  # no engine left behind


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sidecar(lab: PoolLab) -> Iterator[subprocess.Popen[bytes]]:
    """``autoscaler run`` as its own process, on the lab; killed by pid afterwards."""
    env = {
        **os.environ,
        "AUTOSCALER_RULES": str(lab.root / "rules"),
        "AUTOSCALER_DOCKER_HOST": lab.cluster.manager_host,
        "AUTOSCALER_LAB_ROOT": str(lab.root),
        "AUTOSCALER_CLUSTER": "lab",
        "AUTOSCALER_INTERVAL": "1s",
        "AUTOSCALER_LISTEN": f"127.0.0.1:{_free_port()}",
        "AUTOSCALER_LEDGER": str(lab.root / "ledger.jsonl"),
    }
    out = (lab.root / "sidecar.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "run"], env=env, stdout=out, stderr=out
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        out.close()


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout:g}s")
        time.sleep(0.2)
    return value


@pytest.mark.parametrize("kill_after", [0.0, 0.7, 1.4])
def test_sigkill_during_scale_in_converges(pool_lab: PoolLab, kill_after: float) -> None:
    lab = pool_lab
    (lab.root / "rules" / "pools.yml").write_text(RULES.format(join_timeout="30s"))
    lab.end_all_sessions()
    with sidecar(lab):
        wait_for(lab.at_min, 90, "pool at min")
        sessions = [lab.session(f"k{i}") for i in range(5)]  # 5 + 1 headroom: 2 nodes
        wait_for(lambda: all(lab.task_state(s) == "running" for s in sessions), 90, "placed")
        launched = {i.id for i in lab.provider.list_instances()}
        keep = sessions[0]
        for s in sessions[1:]:
            lab.end_session(s)
        # the node without `keep` is paused, drained, removed and terminated; kill midway
        wait_for(
            lambda: (
                any(n["Spec"]["Availability"] != "active" for n in lab.pool_nodes())
                or len(lab.pool_nodes()) == 1
            ),
            60,
            "scale-in started",
        )
        time.sleep(kill_after)
    # killed (SIGKILL, by pid); a new sidecar carries on from the cluster's state alone
    with sidecar(lab):
        try:
            wait_for(lab.at_min, 90, "converged after restart")
        except TimeoutError:
            state = [
                (n["Description"]["Hostname"], n["Status"]["State"], n["Spec"]["Availability"])
                for n in lab.pool_nodes()
            ]
            lines = (lab.root / "sidecar.log").read_text(errors="replace").splitlines()
            tail = "\n".join(ln for ln in lines if "apscheduler" not in ln)[-5000:]
            machines = [(m.id, m.state, m.private_dns) for m in lab.provider.list_instances()]
            raise AssertionError(f"nodes {state}, machines {machines}\n{tail}") from None
        assert lab.task_state(keep) == "running"  # no session lost
        assert {i.id for i in lab.provider.list_instances()} <= launched  # no double launch
    lab.end_session(keep)


def test_a_deleted_pool_is_reported_then_retired_without_ending_a_session(
    pool_lab: PoolLab,
) -> None:
    """Deleted from the rules, the pool's node and machine are reported and left alone; put
    back with max 0, the node is paused, waits for its session, then leaves."""
    lab = pool_lab
    rules = lab.root / "rules" / "pools.yml"
    rules.write_text(RULES.format(join_timeout="30s"))
    lab.end_all_sessions()
    lab.run_until(lab.at_min, 90, "the pool at its minimum")
    user = lab.session("stays")
    lab.run_until(lambda: lab.task_state(user) == "running", 60, "the session placed")
    (node,) = lab.pool_nodes()
    (machine,) = lab.provider.list_instances()

    rules.write_text("pools: {}\n")
    for _ in range(3):
        result = lab.reconciler.run_pass("test")
        assert result.ok and result.plan is not None, result.error
        assert result.plan.actions == ()
    (stray,) = result.plan.strays
    assert (stray.pool, stray.running, stray.nodes, stray.sessions) == ("web", 1, 1, 1)
    assert {n["ID"] for n in lab.pool_nodes()} == {node["ID"]}
    assert lab.active() and lab.task_state(user) == "running"

    rules.write_text(
        RULES.format(join_timeout="30s").replace("min: 1", "min: 0").replace("max: 3", "max: 0")
    )

    def paused() -> bool:
        return [n["Spec"]["Availability"] for n in lab.pool_nodes()] == ["pause"]

    lab.run_until(paused, 30, "the node paused")
    for _ in range(5):
        lab.run_until(lambda: True, 1, "a pass")
        assert paused() and lab.task_state(user) == "running"
    lab.end_session(user)

    def gone() -> bool:
        return not lab.pool_nodes() and not lab.provider.list_instances()

    lab.run_until(gone, 60, "the retired pool's node and machine gone")
    assert machine.private_dns not in {w.name for w in lab.engines()}


def stop_everything(cluster: SwarmCluster, root: Path) -> None:
    """Also the engines the provider added: they are in engines.json, not in ``cluster``."""
    try:
        SwarmCluster.attach(root / "swarm").stop()
    finally:
        cluster.stop()
