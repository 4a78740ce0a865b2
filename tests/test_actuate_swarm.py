"""The Swarm actuator against a real swarm: it scales, it refuses, it never raises."""

from __future__ import annotations

import logging
import subprocess
from typing import Any

import docker
import pydantic
import pytest

from autoscaler.actuate.base import ActionResult, Actuator
from autoscaler.actuate.dryrun import DryRunActuator
from autoscaler.actuate.swarm import SwarmActuator
from autoscaler.decide.plan_types import ScaleService
from autoscaler.lab.dockerd import engine_env
from autoscaler.lab.engines import SwarmCluster
from autoscaler.lab.image import BUSYBOX_IMAGE
from autoscaler.lab.sessions import create_session_service
from autoscaler.sources.swarm import SwarmReader
from tests.fixtures_swarm import wait_until

pytestmark = pytest.mark.real


def web(client: docker.DockerClient, replicas: int, name: str = "web") -> str:
    svc = client.services.create(
        BUSYBOX_IMAGE,
        ["httpd", "-f", "-p", "3838"],
        name=name,
        mode=docker.types.ServiceMode("replicated", replicas=replicas),
    )
    return str(svc.id)


def replicas(client: docker.DockerClient, name: str) -> int:
    return int(client.api.inspect_service(name)["Spec"]["Mode"]["Replicated"]["Replicas"])


def wait_running(client: docker.DockerClient, name: str, count: int) -> None:
    reader = SwarmReader(client)

    def converged() -> bool:
        service = reader.read().service(name)
        return service is not None and service.running == count

    wait_until(converged, timeout=60, what=f"{name} running {count}")


def scale(name: str, current: int, desired: int) -> ScaleService:
    return ScaleService(service=name, current=current, desired=desired, reason="test")


def running_task_ids(client: docker.DockerClient, name: str) -> set[str]:
    tasks = client.api.tasks(filters={"service": name, "desired-state": "running"})
    return {t["ID"] for t in tasks if t["Status"]["State"] == "running"}


def test_scales_a_replicated_service_up_and_down(swarm_client: docker.DockerClient) -> None:
    web(swarm_client, 1)
    wait_running(swarm_client, "web", 1)
    first = running_task_ids(swarm_client, "web")
    actuator: Actuator = SwarmActuator(swarm_client)

    up = actuator.execute(scale("web", 1, 3))
    assert (up.ok, up.dry_run) == (True, False), up.message
    assert replicas(swarm_client, "web") == 3
    wait_running(swarm_client, "web", 3)
    assert first < running_task_ids(swarm_client, "web")  # scaling restarts nobody

    down = actuator.execute(scale("web", 3, 1))
    assert down.ok, down.message
    assert "from 3 to 1" in down.message
    wait_running(swarm_client, "web", 1)
    assert replicas(swarm_client, "web") == 1


def test_refuses_a_session_service(swarm_client: docker.DockerClient) -> None:
    session = create_session_service(swarm_client)
    before = swarm_client.api.inspect_service(session.name)["Version"]["Index"]
    result = SwarmActuator(swarm_client).execute(scale(session.name, 1, 2))
    assert not result.ok
    assert "session" in result.message
    after = swarm_client.api.inspect_service(session.name)
    assert after["Version"]["Index"] == before
    assert replicas(swarm_client, session.name) == 1


def test_refuses_a_global_service(swarm_client: docker.DockerClient) -> None:
    swarm_client.services.create(
        BUSYBOX_IMAGE, ["sleep", "3600"], name="agent", mode=docker.types.ServiceMode("global")
    )
    result = SwarmActuator(swarm_client).execute(scale("agent", 3, 4))
    assert not result.ok
    assert "global" in result.message
    assert "Global" in swarm_client.api.inspect_service("agent")["Spec"]["Mode"]


def operator(cluster: SwarmCluster, *args: str) -> None:
    """The docker CLI, as an operator runs it against the manager.

    (Not docker-py's ``scale`` or ``update_service(fetch_current_spec=True)``: they send the
    spec back with defaults filled in, which restarts every task, a rolling update.)
    """
    env = {**engine_env(), "DOCKER_HOST": cluster.manager_host}
    done = subprocess.run(
        ["docker", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_skips_when_someone_else_changed_the_replicas(
    swarm_cluster: SwarmCluster, swarm_client: docker.DockerClient
) -> None:
    web(swarm_client, 1)
    operator(swarm_cluster, "service", "scale", "--detach", "web=2")  # after the snapshot
    result = SwarmActuator(swarm_client).execute(scale("web", 1, 4))
    assert not result.ok
    assert "changed by someone else" in result.message
    assert "has 2 replicas" in result.message
    assert replicas(swarm_client, "web") == 2


def test_retries_once_when_the_update_is_out_of_sequence(
    swarm_cluster: SwarmCluster, swarm_client: docker.DockerClient
) -> None:
    web(swarm_client, 1)
    other = swarm_cluster.client()  # another writer on the same manager
    seen: list[str] = []

    def concurrent_change(response: Any, *args: Any, **kwargs: Any) -> None:
        request = response.request
        if request.method == "GET" and request.path_url.endswith("/services/web") and not seen:
            seen.append("changed")  # right after the actuator read version N, bump it to N+1
            operator(
                swarm_cluster, "service", "update", "--detach", "--label-add", "touched=yes", "web"
            )
        if request.method == "POST" and "/update" in request.path_url:
            seen.append(f"update {response.status_code}: {response.text.strip()[:80]}")

    swarm_client.api.hooks["response"].append(concurrent_change)
    try:
        result = SwarmActuator(swarm_client).execute(scale("web", 1, 2))
    finally:
        swarm_client.api.hooks["response"].remove(concurrent_change)
    assert result.ok, result.message
    assert seen[0] == "changed"
    assert "out of sequence" in seen[1]
    assert seen[2].startswith("update 200")
    spec = other.api.inspect_service("web")["Spec"]
    assert spec["Mode"]["Replicated"]["Replicas"] == 2
    assert spec["Labels"] == {"touched": "yes"}  # the other writer's change survives


def test_an_operator_scaling_between_read_and_write_wins(
    swarm_cluster: SwarmCluster, swarm_client: docker.DockerClient
) -> None:
    """``docker service scale web=5`` right after the actuator read the service: the write
    is rejected as out of sequence, the fresh read shows 5, and the actuator gives way."""
    web(swarm_client, 1)
    done: list[str] = []

    def operator_scales(response: Any, *args: Any, **kwargs: Any) -> None:
        request = response.request
        if request.method == "GET" and request.path_url.endswith("/services/web") and not done:
            done.append("scaled")
            operator(swarm_cluster, "service", "scale", "--detach", "web=5")
        if request.method == "POST" and "/update" in request.path_url:
            done.append(f"update {response.status_code}: {response.text.strip()[:80]}")

    swarm_client.api.hooks["response"].append(operator_scales)
    try:
        result = SwarmActuator(swarm_client).execute(scale("web", 1, 2))
    finally:
        swarm_client.api.hooks["response"].remove(operator_scales)
    assert done[0] == "scaled"
    assert "out of sequence" in done[1]
    assert len(done) == 2  # read again, and not written a second time
    assert not result.ok
    assert "has 5 replicas, the plan expected 1" in result.message
    assert replicas(swarm_client, "web") == 5


def update_state(client: docker.DockerClient, name: str) -> str | None:
    status = client.api.inspect_service(name).get("UpdateStatus") or {}
    return status.get("State")


def env_of(spec: dict[str, Any]) -> Any:
    return spec["TaskTemplate"]["ContainerSpec"].get("Env")


def test_refuses_while_a_rolling_update_is_in_progress(swarm_client: docker.DockerClient) -> None:
    """Any spec update makes the engine forget the update's state and take the current spec
    as the one to roll back to: the old one would be lost, so no scaling until it is over."""
    swarm_client.services.create(
        BUSYBOX_IMAGE,
        ["sleep", "3600"],
        name="web",
        mode=docker.types.ServiceMode("replicated", replicas=3),
        update_config=docker.types.UpdateConfig(parallelism=1, delay=600 * 10**9),
    )
    wait_running(swarm_client, "web", 3)
    swarm_client.services.get("web").update(env=["RELEASE=2"])
    wait_until(lambda: update_state(swarm_client, "web") == "updating", 30, "update started")

    result = SwarmActuator(swarm_client).execute(scale("web", 3, 4))
    assert not result.ok
    assert result.message == "web: update in progress; not scaled until it is over"
    after = swarm_client.api.inspect_service("web")
    assert after["Spec"]["Mode"]["Replicated"]["Replicas"] == 3
    assert after["UpdateStatus"]["State"] == "updating"
    assert env_of(after["Spec"]) == ["RELEASE=2"]
    assert env_of(after["PreviousSpec"]) is None  # what a rollback goes back to, kept


def test_refuses_a_service_whose_failed_update_is_paused(
    swarm_client: docker.DockerClient,
) -> None:
    """An update paused because its new tasks fail is not resumed by a scale-up."""
    swarm_client.services.create(
        BUSYBOX_IMAGE,
        ["sleep", "3600"],
        name="web",
        mode=docker.types.ServiceMode("replicated", replicas=3),
        update_config=docker.types.UpdateConfig(
            parallelism=1, failure_action="pause", monitor=5 * 10**9, max_failure_ratio=0
        ),
        restart_policy=docker.types.RestartPolicy(condition="none"),
    )
    wait_running(swarm_client, "web", 3)
    swarm_client.services.get("web").update(command=["sh", "-c", "exit 3"])
    wait_until(lambda: update_state(swarm_client, "web") == "paused", 60, "update paused")
    before = swarm_client.api.inspect_service("web")

    result = SwarmActuator(swarm_client).execute(scale("web", 3, 4))
    assert not result.ok
    assert result.message == "web: update paused; not scaled until it is over"
    after = swarm_client.api.inspect_service("web")
    assert after["Version"]["Index"] == before["Version"]["Index"]
    assert after["UpdateStatus"]["State"] == "paused"
    assert after["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]["Command"] == ["sleep", "3600"]


def test_a_missing_service_is_reported(swarm_client: docker.DockerClient) -> None:
    result = SwarmActuator(swarm_client).execute(scale("no-such-service", 1, 2))
    assert not result.ok
    assert "not found" in result.message


def test_an_unreachable_engine_is_reported_not_raised(tmp_path: Any) -> None:
    client = docker.DockerClient(base_url=f"unix://{tmp_path}/absent.sock", version="1.41")
    result = SwarmActuator(client).execute(scale("web", 1, 2))
    assert not result.ok
    assert result.message.startswith("engine error")


def test_dry_run_changes_nothing(
    swarm_client: docker.DockerClient, caplog: pytest.LogCaptureFixture
) -> None:
    web(swarm_client, 1)
    before = swarm_client.api.inspect_service("web")["Version"]["Index"]
    action = ScaleService(service="web", current=1, desired=3, reason="cpu 91% > 70%")
    with caplog.at_level(logging.INFO, logger="autoscaler.actuate.dryrun"):
        result = DryRunActuator().execute(action)
    assert (result.ok, result.dry_run) == (True, True)
    assert result.message == "would scale web from 1 to 3 (cpu 91% > 70%)"
    assert result.message in caplog.text
    assert swarm_client.api.inspect_service("web")["Version"]["Index"] == before
    assert replicas(swarm_client, "web") == 1


def test_results_are_frozen() -> None:
    result = ActionResult(action=scale("web", 1, 2), ok=True, message="done", dry_run=False)
    with pytest.raises(pydantic.ValidationError):
        result.ok = False  # type: ignore[misc]
    assert ActionResult.model_validate_json(result.model_dump_json()) == result
