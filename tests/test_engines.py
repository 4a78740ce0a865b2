"""The swarm lab itself: a real multi-node swarm, workers that come and go, and a teardown
(or a cleanup after a crash) that leaves nothing behind on the machine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from autoscaler.lab import teardown
from autoscaler.lab.engines import STATE_FILE, JoinInfo, SwarmCluster, WorkerEngine, cleanup
from autoscaler.lab.errors import LabError
from autoscaler.lab.image import BUSYBOX_IMAGE
from tests.fixtures_swarm import lab_folder, need_swarm_lab, running_tasks, wait_until

pytestmark = pytest.mark.real


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def _link_names() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    return {line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines()}


def _cgroups(suffix: str) -> list[Path]:
    return [d for d in Path("/sys/fs/cgroup").glob(f"*/swl-{suffix}-*") if d.is_dir()]


def leftovers(root: Path, suffix: str, pids: list[int]) -> list[str]:
    """Everything of one lab still on the machine; empty when the teardown was complete."""
    found = [f"process {p} alive" for p in pids if teardown.is_alive(p)]
    found += [f"process {p} names the lab" for p in teardown.processes_naming(f"{root}/")]
    found += [f"netns {n}" for n in _netns_names() if suffix in n]
    found += [f"link {n}" for n in _link_names() if suffix in n]
    found += [f"mount {m}" for m in teardown.mounts_under(root)]
    found += [f"cgroup {c}" for c in _cgroups(suffix)]
    if root.exists():
        found.append(f"folder {root}")
    return found


def lab_pids(root: Path, suffix: str) -> list[int]:
    """Engines, their containerd and shims, and every container process of the lab."""
    pids = set(teardown.processes_naming(f"{root}/"))
    for cgroup in _cgroups(suffix):
        pids.update(int(p) for p in (cgroup / "cgroup.procs").read_text().split())
    return sorted(pids)


def start_busy_service(client: docker.DockerClient, replicas: int) -> str:
    svc = client.services.create(
        BUSYBOX_IMAGE,
        ["httpd", "-f", "-p", "3838"],
        name="teardown-probe",
        mode=docker.types.ServiceMode("replicated", replicas=replicas),
    )
    wait_until(lambda: len(running_tasks(client, svc.id)) == replicas, what="tasks running")
    return str(svc.id)


def test_nodes_are_ready_with_their_hostnames(swarm_cluster: SwarmCluster) -> None:
    nodes = swarm_cluster.client().api.nodes()
    by_host = {n["Description"]["Hostname"]: n for n in nodes}
    assert set(by_host) == {"manager", "worker-1", "worker-2"}
    assert all(n["Status"]["State"] == "ready" for n in nodes)
    assert by_host["manager"]["Spec"]["Role"] == "manager"
    for worker in swarm_cluster.workers:
        node = by_host[worker.name]
        assert node["Spec"]["Role"] == "worker"
        assert node["Status"]["Addr"] == worker.ip
        assert node["ID"] == worker.node_id
        assert worker.client().info()["Name"] == worker.name
        assert worker.client().images.get(BUSYBOX_IMAGE)
    print(f"swarm lab (manager + 2 workers) started in {swarm_cluster.start_seconds:.2f}s")


def test_engines_json_describes_every_piece(swarm_cluster: SwarmCluster) -> None:
    state = json.loads((swarm_cluster.root_dir / STATE_FILE).read_text())
    assert state["subnet"] == swarm_cluster.subnet
    assert state["bridge"] in _link_names()
    for engine in state["engines"].values():
        assert engine["netns"] in _netns_names()
        assert engine["veth"] in _link_names()
        assert teardown.is_alive(engine["pid"])
        assert Path(engine["dir"], "docker.pid").read_text().strip() == str(engine["pid"])


def test_services_spread_over_all_nodes(swarm_client: docker.DockerClient) -> None:
    svc = swarm_client.services.create(
        BUSYBOX_IMAGE,
        ["httpd", "-f", "-p", "3838"],
        name="spread",
        mode=docker.types.ServiceMode("replicated", replicas=3),
    )

    def three_running() -> list[dict[str, Any]] | None:
        tasks = running_tasks(swarm_client, svc.id)
        return tasks if len(tasks) == 3 else None

    tasks = wait_until(three_running, what="three tasks running")
    nodes = {n["ID"] for n in swarm_client.api.nodes()}
    assert {t["NodeID"] for t in tasks} == nodes


def test_add_and_remove_a_worker(swarm_cluster: SwarmCluster) -> None:
    client = swarm_cluster.client()
    worker = swarm_cluster.add_worker()
    try:
        assert worker.name.startswith("worker-")
        node = client.api.inspect_node(worker.node_id)
        assert node["Status"]["State"] == "ready"
        assert node["Description"]["Hostname"] == worker.name
        assert worker.client().images.get(BUSYBOX_IMAGE)
    finally:
        swarm_cluster.remove_worker(worker.name)
    assert worker.node_id not in {n["ID"] for n in client.api.nodes()}
    assert worker.name not in {w.name for w in swarm_cluster.workers}
    assert not teardown.is_alive(worker.pid)
    assert worker.netns not in _netns_names()
    assert worker.veth not in _link_names()
    assert not worker.socket.parent.exists()


def test_a_worker_joins_with_a_user_data_script(swarm_cluster: SwarmCluster) -> None:
    script = textwrap.dedent(
        """\
        set -e
        test "$(hostname)" = "$WORKER_NAME"
        docker swarm join --token "$SWARM_JOIN_TOKEN" --advertise-addr "$WORKER_IP" "$SWARM_MANAGER"
        """
    )
    worker = swarm_cluster.add_worker("script-node", join=script)
    try:
        node = swarm_cluster.client().api.inspect_node(worker.node_id)
        assert node["Description"]["Hostname"] == "script-node"
        assert node["Status"]["Addr"] == worker.ip
    finally:
        swarm_cluster.remove_worker(worker.name)


def test_a_worker_joins_later_through_a_hook(swarm_cluster: SwarmCluster) -> None:
    calls: list[str] = []

    def join(worker: WorkerEngine, info: JoinInfo) -> None:
        calls.append(worker.name)
        worker.client().swarm.join(
            remote_addrs=[info.manager_addr], join_token=info.token, advertise_addr=worker.ip
        )

    idle = swarm_cluster.add_worker(join=False)
    hooked = swarm_cluster.add_worker(join=join)
    try:
        hostnames = {n["Description"]["Hostname"] for n in swarm_cluster.client().api.nodes()}
        assert idle.name not in hostnames
        assert hooked.name in hostnames
        assert calls == [hooked.name]
        assert idle.client().info()["Swarm"]["LocalNodeState"] == "inactive"
    finally:
        swarm_cluster.remove_worker(idle.name)
        swarm_cluster.remove_worker(hooked.name)


def test_a_worker_ready_only_after_its_timeout_is_refused(swarm_cluster: SwarmCluster) -> None:
    # every wait after the hook finds its condition already met at first look: the
    # overrun must still be caught
    timeout = 15.0
    began = time.monotonic()
    calls: list[str] = []

    def late_join(worker: WorkerEngine, info: JoinInfo) -> None:
        calls.append(worker.name)
        worker.client().swarm.join(
            remote_addrs=[info.manager_addr], join_token=info.token, advertise_addr=worker.ip
        )
        swarm_cluster.wait_nodes_ready([worker.name], timeout)
        time.sleep(max(began + timeout + 0.5 - time.monotonic(), 0.0))

    before = {w.name for w in swarm_cluster.workers}
    with pytest.raises(LabError, match="worker late was not up in time"):
        swarm_cluster.add_worker("late", join=late_join, timeout=timeout)
    assert calls == ["late"]
    assert {w.name for w in swarm_cluster.workers} == before
    # it had joined: its node is gone from the manager's list too
    assert "late" not in {n["Description"]["Hostname"] for n in swarm_cluster.client().api.nodes()}


def test_another_process_attaches_to_add_and_remove_workers(swarm_cluster: SwarmCluster) -> None:
    attached = SwarmCluster.attach(swarm_cluster.root_dir)
    assert attached.manager_addr == swarm_cluster.manager_addr
    assert {w.name for w in attached.workers} == {w.name for w in swarm_cluster.workers}
    worker = attached.add_worker()
    try:
        assert worker.client().images.get(BUSYBOX_IMAGE)
        node = swarm_cluster.client().api.inspect_node(worker.node_id)
        assert node["Status"]["State"] == "ready"
    finally:
        attached.remove_worker(worker.name)
    assert worker.netns not in _netns_names()


def test_a_worker_name_must_be_a_hostname(swarm_cluster: SwarmCluster) -> None:
    with pytest.raises(LabError, match="not a valid one"):
        swarm_cluster.add_worker("Bad Name;")


def test_a_failing_join_script_removes_the_new_worker(swarm_cluster: SwarmCluster) -> None:
    before = {w.name for w in swarm_cluster.workers}
    with pytest.raises(LabError, match="exited with 3"):
        swarm_cluster.add_worker("broken", join="echo no route >&2; exit 3")
    assert {w.name for w in swarm_cluster.workers} == before
    suffix = swarm_cluster.suffix
    lab_namespaces = {n for n in _netns_names() if n.startswith(f"swl-{suffix}-")}
    assert lab_namespaces == {f"swl-{suffix}-m"} | {w.netns for w in swarm_cluster.workers}
    assert "broken" not in {
        n["Description"]["Hostname"] for n in swarm_cluster.client().api.nodes()
    }


def test_stop_leaves_nothing_behind() -> None:
    need_swarm_lab()
    folder = lab_folder("swarm-stop-")
    root = folder / "lab"
    try:
        cluster = SwarmCluster.start(root, workers=1)
        start_busy_service(cluster.client(), replicas=2)
        pids = lab_pids(root, cluster.suffix)
        assert len(pids) >= 6  # two engines, their containerd, and two containers
        assert teardown.mounts_under(root)
        cluster.stop()
        assert leftovers(root, cluster.suffix, pids) == []
        cluster.stop()  # a second stop is a no-op
    finally:
        cleanup(root)
        shutil.rmtree(folder, ignore_errors=True)


CRASHING_RUN = """
import os, signal, sys, time
from pathlib import Path
from autoscaler.lab.engines import SwarmCluster
sys.path.insert(0, os.getcwd())
from tests.test_engines import start_busy_service
cluster = SwarmCluster.start(Path(sys.argv[1]), workers=1)
start_busy_service(cluster.client(), replicas=2)
print(cluster.suffix, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_cleanup_after_a_crash_from_engines_json_alone() -> None:
    need_swarm_lab()
    folder = lab_folder("swarm-crash-")
    root = folder / "lab"
    try:
        run = subprocess.run(
            [sys.executable, "-c", CRASHING_RUN, str(root)],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=Path(__file__).parent.parent,
            check=False,
        )
        assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
        suffix = run.stdout.split()[-1]
        state = json.loads((root / STATE_FILE).read_text())
        engine_pids = [e["pid"] for e in state["engines"].values()]
        pids = lab_pids(root, suffix)
        for pid in engine_pids:  # the engines crash too
            os.kill(pid, signal.SIGKILL)
        assert teardown.wait_gone(engine_pids, 5) == []
        assert teardown.mounts_under(root)

        cleanup(root)

        assert leftovers(root, suffix, pids) == []
        cleanup(root)  # nothing left to do: a no-op
    finally:
        cleanup(root)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_failed_start_says_why_and_cleans_up() -> None:
    need_swarm_lab()
    folder = lab_folder("swarm-fail-")
    root = folder / "lab"
    suffix = os.urandom(3).hex()
    (root / "w2").mkdir(parents=True)
    (root / "w2" / "data").write_text("not a folder: worker-2's engine cannot start")
    try:
        with pytest.raises(LabError) as failure:
            SwarmCluster.start(root, workers=2, suffix=suffix)
        message = str(failure.value)
        assert "worker-2" in message
        assert "last lines of" in message  # the engine's own words come with the error
        assert leftovers(root, suffix, []) == []
    finally:
        cleanup(root)
        shutil.rmtree(folder, ignore_errors=True)


def test_start_is_bounded_in_time() -> None:
    need_swarm_lab()
    folder = lab_folder("swarm-slow-")
    root = folder / "lab"
    suffix = os.urandom(3).hex()
    began = time.monotonic()
    try:
        with pytest.raises(LabError, match="in time"):
            SwarmCluster.start(root, workers=1, timeout=0.2, suffix=suffix)
        assert time.monotonic() - began < 30
        assert leftovers(root, suffix, []) == []
    finally:
        cleanup(root)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_folder_holding_a_lab_is_refused() -> None:
    folder = lab_folder("swarm-held-")
    try:
        (folder / STATE_FILE).write_text("{}")
        with pytest.raises(LabError, match="already holds a lab"):
            SwarmCluster.start(folder)
        assert (folder / STATE_FILE).read_text() == "{}"  # nothing of it was touched
    finally:
        shutil.rmtree(folder, ignore_errors=True)
