"""Read the Swarm (nodes, services, ShinyProxy sessions, pending tasks) in three API calls.

One list of nodes, one of services and ONE of tasks (all services at once, through the
low-level API): the cost stays flat however many services and tasks there are.
``swarm_state`` turns those three answers into a SwarmState without any I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
import requests

from autoscaler.snapshot import (
    DELEGATE_LABEL,
    PENDING_STATES,
    PROXIED_APP_LABEL,
    SESSION_LABEL_PREFIX,
    USER_LABEL,
    Node,
    PendingTask,
    Service,
    Session,
    SwarmState,
)
from autoscaler.sources.errors import SourceError

SOURCE = "swarm"
_CREDENTIALS = re.compile(r"(//)[^/@\s]+@")
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


class SwarmReader:
    """Reads a SwarmState from a manager; any failure is a SourceError("swarm", ...)."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._api = client.api

    def read(self) -> SwarmState:
        try:
            nodes = self._api.nodes()
            services = self._api.services()
            tasks = self._api.tasks()
        except docker.errors.APIError as exc:
            raise SourceError(SOURCE, _clean(f"engine refused: {exc.explanation or exc}")) from exc
        except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
            raise SourceError(SOURCE, _clean(f"engine unreachable: {exc}")) from exc
        try:
            return swarm_state(nodes, services, tasks)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SourceError(SOURCE, f"unexpected answer from the engine: {exc!r}") from exc


def swarm_state(
    nodes: Iterable[Mapping[str, Any]],
    services: Iterable[Mapping[str, Any]],
    tasks: Iterable[Mapping[str, Any]],
) -> SwarmState:
    """Pure: the engine's node, service and task lists -> SwarmState."""
    node_list = [_node(n) for n in nodes]
    up_nodes = {n.id for n in node_list if n.state != "down"}
    tasks_by_service: dict[str, list[Mapping[str, Any]]] = {}
    for task in tasks:
        tasks_by_service.setdefault(task.get("ServiceID", ""), []).append(task)

    service_list: list[Service] = []
    sessions: list[Session] = []
    pending: list[PendingTask] = []
    reserved: dict[str, tuple[int, int]] = {}
    for raw in services:
        svc_tasks = tasks_by_service.get(raw["ID"], [])
        service = _service(raw, svc_tasks, up_nodes)
        service_list.append(service)
        if service.is_session:
            sessions.append(_session(raw, svc_tasks))
        else:
            for t in svc_tasks:
                _add_reservation(reserved, t)
        pending.extend(_pending(t, service) for t in svc_tasks if _is_pending(t))
    if reserved:
        node_list = [
            n.model_copy(
                update={
                    "reserved_nano_cpus": reserved[n.id][0],
                    "reserved_memory_bytes": reserved[n.id][1],
                }
            )
            if n.id in reserved
            else n
            for n in node_list
        ]
    return SwarmState(
        nodes=tuple(node_list),
        services=tuple(service_list),
        sessions=tuple(sessions),
        pending_tasks=tuple(pending),
    )


def _node(raw: Mapping[str, Any]) -> Node:
    spec, status = raw.get("Spec", {}), raw.get("Status", {})
    resources = raw.get("Description", {}).get("Resources", {})
    return Node(
        id=raw["ID"],
        hostname=raw.get("Description", {}).get("Hostname", ""),
        role=spec["Role"],
        availability=spec["Availability"],
        state=status.get("State", "unknown"),
        addr=status.get("Addr", ""),
        labels=dict(spec.get("Labels") or {}),
        nano_cpus=int(resources.get("NanoCPUs", 0)),
        memory_bytes=int(resources.get("MemoryBytes", 0)),
        joined_at=parse_time(raw.get("CreatedAt")),
    )


def container_labels(raw_service: Mapping[str, Any]) -> dict[str, str]:
    spec = raw_service.get("Spec", {})
    return dict(spec.get("TaskTemplate", {}).get("ContainerSpec", {}).get("Labels") or {})


def is_session_service(raw_service: Mapping[str, Any]) -> bool:
    """ShinyProxy marks its proxies on the container spec, not on the service."""
    return container_labels(raw_service).get(PROXIED_APP_LABEL, "").lower() == "true"


def _service(raw: Mapping[str, Any], tasks: list[Mapping[str, Any]], up_nodes: set[str]) -> Service:
    spec = raw["Spec"]
    mode_spec = spec.get("Mode", {})
    replicas: int | None = None
    if "Replicated" in mode_spec:
        mode = "replicated"
        replicas = int(mode_spec["Replicated"].get("Replicas", 0))
    elif "Global" in mode_spec:
        mode = "global"
    else:
        mode = "other"
    running = sum(
        1
        for t in tasks
        if t.get("DesiredState") == "running"
        and t.get("Status", {}).get("State") == "running"
        and t.get("NodeID") in up_nodes
    )
    return Service(
        id=raw["ID"],
        name=spec["Name"],
        mode=mode,
        replicas=replicas,
        running=running,
        version=int(raw.get("Version", {}).get("Index", 0)),
        labels=dict(spec.get("Labels") or {}),
        is_session=is_session_service(raw),
    )


def _session(raw: Mapping[str, Any], tasks: list[Mapping[str, Any]]) -> Session:
    labels = container_labels(raw)
    p = SESSION_LABEL_PREFIX
    delegate = labels.get(DELEGATE_LABEL, "").lower() == "true"
    newest = max(tasks, key=_task_order, default=None)
    if newest is None:
        node_id, state, message = None, "new", "no task yet"
    else:
        status = newest.get("Status", {})
        node_id = newest.get("NodeID") or None
        state = status.get("State", "unknown")
        message = _message(status)
    return Session(
        service_id=raw["ID"],
        service_name=raw["Spec"]["Name"],
        proxy_id=labels.get(f"{p}sp-proxy-id") or raw["Spec"]["Name"],
        spec_id=labels.get(f"{p}sp-spec-id", ""),
        # a user label, even empty, makes it a user's session, as the actuator counts it
        user_id=None if delegate else labels.get(USER_LABEL),
        node_id=node_id,
        state=state,
        message=message,
        created_at=_epoch_ms(labels.get(f"{p}sp-proxy-created-timestamp")),
        shared=delegate,
    )


_TERMINAL = frozenset({"complete", "shutdown", "failed", "rejected", "orphaned", "remove"})


def _add_reservation(into: dict[str, tuple[int, int]], task: Mapping[str, Any]) -> None:
    """Count a task's reservations against its node while it holds them: placed there,
    meant to run and not ended (as the Swarm scheduler keeps a task's resources)."""
    node = task.get("NodeID")
    state = task.get("Status", {}).get("State", "")
    if not node or task.get("DesiredState") not in ("running", "ready") or state in _TERMINAL:
        return
    asked = (task.get("Spec", {}).get("Resources") or {}).get("Reservations") or {}
    cpus, memory = into.get(node, (0, 0))
    into[node] = (cpus + int(asked.get("NanoCPUs", 0)), memory + int(asked.get("MemoryBytes", 0)))


def _is_pending(task: Mapping[str, Any]) -> bool:
    return (
        task.get("DesiredState") == "running"
        and task.get("Status", {}).get("State") in PENDING_STATES
    )


def _pending(task: Mapping[str, Any], service: Service) -> PendingTask:
    status = task.get("Status", {})
    return PendingTask(
        task_id=task["ID"],
        service_id=service.id,
        service_name=service.name,
        state=status.get("State", "unknown"),
        message=status.get("Message", ""),
        error=status.get("Err", ""),
        since=parse_time(status.get("Timestamp")),
    )


def _message(status: Mapping[str, Any]) -> str:
    message, err = status.get("Message", ""), status.get("Err", "")
    return f"{message}: {err}" if message and err else (err or message)


def _task_order(task: Mapping[str, Any]) -> tuple[datetime, int]:
    created = parse_time(task.get("CreatedAt")) or datetime.min.replace(tzinfo=UTC)
    return created, int(task.get("Version", {}).get("Index", 0))


def parse_time(text: str | None) -> datetime | None:
    """Docker's RFC 3339 times carry nanoseconds; Python keeps microseconds."""
    if not text:
        return None
    match = _TIME.match(text)
    if not match:
        return None
    whole, fraction, zone = match.groups()
    micro = (fraction or ".0")[1:7].ljust(6, "0")
    zone = "+00:00" if zone in (None, "Z") else zone
    parsed = datetime.fromisoformat(f"{whole}.{micro}{zone}")
    return None if parsed.year < 1971 else parsed  # the engine's zero time means "never"


def _epoch_ms(text: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(text or "") / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _clean(message: str) -> str:
    return _CREDENTIALS.sub(r"\1***@", message)
