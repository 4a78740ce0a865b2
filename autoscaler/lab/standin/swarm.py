"""The stand-in's only writer to the Swarm: one service per session, as ShinyProxy makes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import docker
from docker.errors import APIError, NotFound
from docker.types import ContainerSpec, Resources, RestartPolicy, TaskTemplate

LABEL = "openanalytics.eu/"
TERMINAL_STATES = frozenset({"complete", "shutdown", "failed", "rejected", "orphaned", "remove"})
LOST_NODE_STATES = frozenset({"down", "unknown", "disconnected"})


@dataclass(frozen=True)
class SessionServiceRequest:
    name: str
    image: str
    command: tuple[str, ...]
    labels: dict[str, str]
    env: dict[str, str]
    nano_cpus_reservation: int | None
    memory_reservation: int | None
    nano_cpus_limit: int | None
    memory_limit: int | None


@dataclass(frozen=True)
class TaskView:
    """The newest task of a session service."""

    state: str
    desired_state: str
    node_id: str
    container_id: str
    message: str
    error: str

    @property
    def is_running(self) -> bool:
        return self.state == "running"

    @property
    def has_ended(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def left_pending(self) -> bool:
        return self.state not in ("new", "pending", "allocated")


@dataclass(frozen=True)
class SwarmView:
    """One read of every task and node: newest task per service id, node states."""

    tasks: dict[str, TaskView]
    node_states: dict[str, str]

    def node_lost(self, node_id: str) -> bool:
        return self.node_states.get(node_id, "unknown") in LOST_NODE_STATES


class SessionBackend(Protocol):
    def create(self, request: SessionServiceRequest) -> str: ...
    def task(self, service_id: str) -> TaskView | None: ...
    def remove(self, service_id: str) -> None: ...
    def observe(self) -> SwarmView: ...


def _newest(tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not tasks:
        return None
    return max(tasks, key=lambda t: (t.get("CreatedAt", ""), t.get("Version", {}).get("Index", 0)))


def _task_view(t: dict[str, Any]) -> TaskView:
    status = t.get("Status", {})
    return TaskView(
        state=status.get("State", ""),
        desired_state=t.get("DesiredState", ""),
        node_id=t.get("NodeID", ""),
        container_id=status.get("ContainerStatus", {}).get("ContainerID", ""),
        message=status.get("Message", ""),
        error=status.get("Err", ""),
    )


class DockerSessionBackend:
    """Docker Engine API of a Swarm manager, through the docker SDK."""

    def __init__(self, docker_host: str, timeout: float = 30.0) -> None:
        self._client = docker.DockerClient(
            base_url=docker_host, timeout=int(timeout), max_pool_size=64
        )
        self._api = self._client.api

    def close(self) -> None:
        self._client.close()

    def ping(self) -> bool:
        try:
            return bool(self._api.ping())
        except Exception:
            return False

    def create(self, request: SessionServiceRequest) -> str:
        spec = ContainerSpec(
            image=request.image,
            command=list(request.command),
            env=request.env,
            labels=request.labels,
        )
        resources = Resources(
            cpu_reservation=request.nano_cpus_reservation,
            mem_reservation=request.memory_reservation,
            cpu_limit=request.nano_cpus_limit,
            mem_limit=request.memory_limit,
        )
        template = TaskTemplate(
            container_spec=spec,
            resources=resources,
            restart_policy=RestartPolicy(condition="none"),
        )
        created = self._api.create_service(template, name=request.name)
        return str(created["ID"])

    def task(self, service_id: str) -> TaskView | None:
        newest = _newest(self._api.tasks(filters={"service": service_id}))
        return _task_view(newest) if newest else None

    def remove(self, service_id: str) -> None:
        try:
            self._api.remove_service(service_id)
        except NotFound:
            pass
        except APIError as e:
            if e.status_code != 404:
                raise

    def observe(self) -> SwarmView:
        by_service: dict[str, list[dict[str, Any]]] = {}
        for t in self._api.tasks():
            by_service.setdefault(t.get("ServiceID", ""), []).append(t)
        tasks = {}
        for sid, ts in by_service.items():
            newest = _newest(ts)
            if newest is not None:
                tasks[sid] = _task_view(newest)
        nodes = {n["ID"]: n.get("Status", {}).get("State", "unknown") for n in self._api.nodes()}
        return SwarmView(tasks=tasks, node_states=nodes)
