"""The Swarm read side against a real swarm: nodes, services, sessions, pending tasks."""

from __future__ import annotations

import copy
import shutil
from datetime import UTC, datetime
from typing import Any

import docker
import pytest

from autoscaler.lab.engines import SwarmCluster
from autoscaler.lab.image import BUSYBOX_IMAGE
from autoscaler.lab.sessions import create_session_service
from autoscaler.snapshot import SwarmState
from autoscaler.sources.errors import SourceError
from autoscaler.sources.swarm import SwarmReader, parse_time, swarm_state
from tests.fixtures_swarm import lab_folder, need_swarm_lab, running_tasks, wait_until

HUGE = 10 * 1024**4  # 10 TiB: more memory than any node of this machine has


def read_until(reader: SwarmReader, check: Any, what: str) -> SwarmState:
    def attempt() -> SwarmState | None:
        state = reader.read()
        return state if check(state) else None

    result: SwarmState = wait_until(attempt, what=what)
    return result


def web_service(client: docker.DockerClient, name: str, replicas: int) -> str:
    svc = client.services.create(
        BUSYBOX_IMAGE,
        ["httpd", "-f", "-p", "3838"],
        name=name,
        labels={"autoscaler.policy": "web"},
        mode=docker.types.ServiceMode("replicated", replicas=replicas),
    )
    return str(svc.id)


@pytest.mark.real
def test_nodes(swarm_cluster: SwarmCluster, swarm_client: docker.DockerClient) -> None:
    worker = swarm_cluster.workers[0]
    node = swarm_client.nodes.get(worker.node_id)
    node.update({**node.attrs["Spec"], "Labels": {"autoscaler.pool": "lab"}})
    try:
        state = SwarmReader(swarm_client).read()
        by_host = {n.hostname: n for n in state.nodes}
        assert set(by_host) == {"manager", "worker-1", "worker-2"}
        assert by_host["manager"].role == "manager"
        assert by_host[worker.name].role == "worker"
        assert by_host[worker.name].addr == worker.ip
        assert by_host[worker.name].labels == {"autoscaler.pool": "lab"}
        # the Swarm was made on the manager, which the workers joined after
        manager_joined = by_host["manager"].joined_at
        assert manager_joined is not None and manager_joined.tzinfo is not None
        assert all((n.joined_at or manager_joined) >= manager_joined for n in state.nodes)
        assert all(n.joined_at is not None for n in state.nodes)
        for n in state.nodes:
            assert (n.state, n.availability) == ("ready", "active")
            assert n.nano_cpus >= 1_000_000_000
            assert n.memory_bytes > 0
    finally:
        node.reload()
        node.update({**node.attrs["Spec"], "Labels": {}})


@pytest.mark.real
def test_services_and_sessions(swarm_client: docker.DockerClient) -> None:
    web_id = web_service(swarm_client, "web", 2)
    agent = swarm_client.services.create(
        BUSYBOX_IMAGE, ["sleep", "3600"], name="agent", mode=docker.types.ServiceMode("global")
    )
    created = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    alice = create_session_service(swarm_client, user_id="alice", created_at=created)
    spare = create_session_service(swarm_client, user_id=None, spec_id="02_spare")
    reader = SwarmReader(swarm_client)
    state = read_until(
        reader,
        lambda s: (
            s.service("web").running == 2
            and s.service("agent").running == 3
            and all(x.state == "running" for x in s.sessions)
            and len(s.sessions) == 2
        ),
        "services and sessions running",
    )

    web = state.service("web")
    assert web is not None
    assert (web.id, web.mode, web.replicas, web.is_session) == (web_id, "replicated", 2, False)
    assert web.labels == {"autoscaler.policy": "web"}
    assert web.version == swarm_client.api.inspect_service(web_id)["Version"]["Index"]
    glob = state.service("agent")
    assert glob is not None
    assert (glob.id, glob.mode, glob.replicas) == (agent.id, "global", None)

    session_service = state.service(alice.name)
    assert session_service is not None and session_service.is_session
    assert session_service.labels == {}  # ShinyProxy's labels sit on the container spec only

    sessions = {s.service_name: s for s in state.sessions}
    mine = sessions[alice.name]
    assert (mine.proxy_id, mine.spec_id, mine.user_id) == (alice.proxy_id, "01_hello", "alice")
    assert mine.created_at == created
    assert mine.is_user_session and mine.is_live
    assert mine.node_id in {n.id for n in state.nodes}
    delegate = sessions[spare.name]
    assert delegate.user_id is None and not delegate.is_user_session
    assert delegate.spec_id == "02_spare"
    assert not state.pending_tasks


@pytest.mark.real
def test_a_session_too_big_for_any_node_stays_pending(swarm_client: docker.DockerClient) -> None:
    big = create_session_service(swarm_client, user_id="bob", memory_reservation=HUGE)
    reader = SwarmReader(swarm_client)
    state = read_until(
        reader,
        lambda s: any(t.service_name == big.name and t.error for t in s.pending_tasks),
        "the scheduler's reason",
    )
    task = next(t for t in state.pending_tasks if t.service_name == big.name)
    assert task.state == "pending"
    assert task.lacks_resources
    assert "insufficient resources on 3 nodes" in task.error
    assert task.since is not None
    session = next(s for s in state.sessions if s.service_name == big.name)
    assert session.is_pending and not session.is_live
    assert session.node_id is None
    assert "insufficient resources" in session.message
    service = state.service(big.name)
    assert service is not None and service.running == 0


@pytest.mark.real
def test_pause_and_drain_show_in_the_read(
    swarm_cluster: SwarmCluster, swarm_client: docker.DockerClient
) -> None:
    one, two = swarm_cluster.workers[:2]
    for worker, availability in ((one, "pause"), (two, "drain")):
        node = swarm_client.nodes.get(worker.node_id)
        node.update({**node.attrs["Spec"], "Availability": availability})
    state = SwarmReader(swarm_client).read()
    by_host = {n.hostname: n.availability for n in state.nodes}
    assert by_host == {"manager": "active", one.name: "pause", two.name: "drain"}


@pytest.mark.real
def test_one_call_per_list(swarm_client: docker.DockerClient) -> None:
    web_service(swarm_client, "counted", 3)
    for _ in range(3):
        create_session_service(swarm_client)
    wait_until(lambda: len(running_tasks(swarm_client, "counted")) == 3)
    paths: list[str] = []

    def record(response: Any, *args: Any, **kwargs: Any) -> None:
        paths.append(response.request.path_url.split("?")[0].rsplit("/", 1)[-1])

    swarm_client.api.hooks["response"].append(record)
    try:
        SwarmReader(swarm_client).read()
    finally:
        swarm_client.api.hooks["response"].remove(record)
    assert paths == ["nodes", "services", "tasks"]


@pytest.mark.real
def test_a_worker_is_not_a_manager(swarm_cluster: SwarmCluster) -> None:
    with pytest.raises(SourceError) as err:
        SwarmReader(swarm_cluster.workers[0].client()).read()
    assert err.value.source == "swarm"
    assert "not a swarm manager" in err.value.message


@pytest.mark.real
def test_a_stopped_engine_is_a_source_error() -> None:
    need_swarm_lab()
    folder = lab_folder("swarm-down-")
    cluster = None
    try:
        cluster = SwarmCluster.start(folder / "lab", workers=0, image=False)
        client = docker.DockerClient(base_url=cluster.manager_host, version="1.41", timeout=5)
        reader = SwarmReader(client)
        assert len(reader.read().nodes) == 1
        cluster.stop()
        with pytest.raises(SourceError) as err:
            reader.read()
        assert err.value.source == "swarm"
        assert "unreachable" in err.value.message
        client.close()
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


# -- the pure part: engine answers -> SwarmState ------------------------------------------

NODE = {
    "ID": "n1",
    "Description": {"Hostname": "w1", "Resources": {"NanoCPUs": 2_000_000_000, "MemoryBytes": 8}},
    "Spec": {"Role": "worker", "Availability": "active", "Labels": {}},
    "Status": {"State": "ready", "Addr": "10.0.0.2"},
}
SESSION = {
    "ID": "s1",
    "Version": {"Index": 7},
    "Spec": {
        "Name": "sp-service-p1-0",
        "Mode": {"Replicated": {"Replicas": 1}},
        "TaskTemplate": {
            "ContainerSpec": {
                "Labels": {
                    "openanalytics.eu/sp-proxied-app": "true",
                    "openanalytics.eu/sp-proxy-id": "p1",
                    "openanalytics.eu/sp-spec-id": "app",
                    "openanalytics.eu/sp-user-id": "u",
                    "openanalytics.eu/sp-proxy-created-timestamp": "not-a-number",
                }
            }
        },
    },
}


def task(n: int, service: str, state: str, desired: str = "running", node: str = "n1") -> dict:
    return {
        "ID": f"t{n}",
        "ServiceID": service,
        "NodeID": node,
        "DesiredState": desired,
        "CreatedAt": f"2025-01-01T00:00:{n % 60:02d}.{n:09d}Z",
        "Version": {"Index": n},
        "Status": {"State": state, "Message": "m", "Timestamp": "2025-01-01T00:00:00.5Z"},
    }


def test_the_newest_task_gives_a_session_its_state() -> None:
    tasks = [task(1, "s1", "failed", desired="shutdown"), task(2, "s1", "running")]
    state = swarm_state([NODE], [SESSION], tasks)
    (session,) = state.sessions
    assert (session.state, session.node_id) == ("running", "n1")
    assert session.created_at is None  # a bad timestamp label is no time, not the epoch


def reserving(t: dict, cpus: int, memory: int) -> dict:
    spec = {"Resources": {"Reservations": {"NanoCPUs": cpus, "MemoryBytes": memory}}}
    return {**t, "Spec": spec}


def test_a_node_carries_the_reservations_of_its_tasks_that_are_not_sessions() -> None:
    exporter = {"ID": "g1", "Spec": {"Name": "node-exporter", "Mode": {"Global": {}}}}
    tasks = [
        reserving(task(1, "g1", "running"), 100_000_000, 64 << 20),
        reserving(task(2, "g1", "preparing"), 50_000_000, 32 << 20),
        reserving(task(3, "g1", "shutdown", desired="shutdown"), 900_000_000, 1 << 30),
        reserving(task(4, "g1", "failed"), 900_000_000, 1 << 30),  # ended: holds nothing
        reserving(task(5, "s1", "running"), 500_000_000, 1 << 30),  # a session: a seat
    ]
    (node,) = swarm_state([NODE], [exporter, SESSION], tasks).nodes
    assert (node.reserved_nano_cpus, node.reserved_memory_bytes) == (150_000_000, 96 << 20)


def test_tasks_on_a_down_node_do_not_count_as_running() -> None:
    down = {**NODE, "ID": "n2", "Status": {"State": "down"}}
    tasks = [task(1, "s1", "running", node="n2")]
    assert swarm_state([NODE, down], [SESSION], tasks).services[0].running == 0


def test_five_thousand_tasks_give_each_session_its_running_task() -> None:
    """Four shut-down tasks and one running per session service (restarts): one session
    each, running."""
    services, tasks = [], []
    for s in range(1000):
        svc = copy.deepcopy(SESSION)
        svc["ID"] = f"s{s}"
        svc["Spec"]["Name"] = f"sp-service-p{s}-0"
        services.append(svc)
        for k in range(5):
            n = s * 5 + k
            tasks.append(task(n, f"s{s}", "running" if k == 4 else "shutdown", desired="shutdown"))
        tasks[-1]["DesiredState"] = "running"
    state = swarm_state([NODE], services, tasks)
    assert len(state.sessions) == 1000
    assert all(s.state == "running" for s in state.sessions)
    assert {s.service_id for s in state.sessions} == {f"s{s}" for s in range(1000)}
    assert sum(s.running for s in state.services) == 1000


def test_docker_times_keep_microseconds_and_drop_the_zero_time() -> None:
    assert parse_time("2025-01-02T03:04:05.123456789Z") == datetime(
        2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC
    )
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("garbage") is None


def test_a_session_with_an_empty_user_label_is_still_a_users_session() -> None:
    """The actuator refuses to drain a node under any task with the user label; the planner
    must count the same session, or it plans a drain that is refused at every pass."""
    from autoscaler.snapshot import PROXIED_APP_LABEL, USER_LABEL
    from autoscaler.sources.swarm import _session

    def raw(labels: dict[str, str]) -> dict[str, object]:
        container = {"Labels": {PROXIED_APP_LABEL: "true", **labels}}
        return {"ID": "s1", "Spec": {"Name": "sp-1", "TaskTemplate": {"ContainerSpec": container}}}

    task = {"NodeID": "n1", "Status": {"State": "running"}, "DesiredState": "running"}
    assert _session(raw({USER_LABEL: ""}), [task]).is_user_session
    assert _session(raw({USER_LABEL: "alice"}), [task]).user_id == "alice"
    assert not _session(raw({}), [task]).is_user_session
