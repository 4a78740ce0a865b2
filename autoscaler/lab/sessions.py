"""Create Swarm services the way ShinyProxy 3.2 creates a user's session ("proxy").

One service per container of a proxy, named ``sp-service-<proxyId>-<index>``; ShinyProxy's
runtime values are labels on the container spec (not on the service), restart policy
``none``, and the app's CPU/memory requests and limits become reservations and limits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from autoscaler.lab.image import BUSYBOX_IMAGE
from autoscaler.snapshot import DELEGATE_LABEL, PROXIED_APP_LABEL, SESSION_LABEL_PREFIX, USER_LABEL

APP_PORT = 3838


@dataclass(frozen=True)
class SessionService:
    id: str
    name: str
    proxy_id: str
    labels: dict[str, str]


def session_labels(
    *,
    proxy_id: str,
    spec_id: str,
    user_id: str | None,
    instance: str,
    created_at: datetime,
    container_index: int = 0,
    user_groups: Sequence[str] = (),
    realm_id: str | None = None,
    heartbeat_timeout_ms: int | None = None,
    max_lifetime_minutes: int | None = None,
) -> dict[str, str]:
    """The container labels of one proxy container; ``user_id=None`` makes a delegate (spare)."""
    p = SESSION_LABEL_PREFIX
    labels = {
        PROXIED_APP_LABEL: "true",
        f"{p}sp-instance": instance,
        f"{p}sp-proxy-id": proxy_id,
        f"{p}sp-spec-id": spec_id,
        f"{p}sp-proxy-created-timestamp": str(int(created_at.timestamp() * 1000)),
        f"{p}sp-container-index": str(container_index),
    }
    if user_id is None:
        labels[DELEGATE_LABEL] = "true"
    else:
        labels[USER_LABEL] = user_id
        labels[f"{p}sp-user-groups"] = ",".join(user_groups)
    if realm_id is not None:
        labels[f"{p}sp-realm-id"] = realm_id
    if heartbeat_timeout_ms is not None:
        labels[f"{p}sp-heartbeat-timeout"] = str(heartbeat_timeout_ms)
    if max_lifetime_minutes is not None:
        labels[f"{p}sp-max-lifetime"] = str(max_lifetime_minutes)
    return labels


def create_session_service(
    client: Any,
    *,
    spec_id: str = "01_hello",
    user_id: str | None = "alice",
    proxy_id: str | None = None,
    instance: str = "lab",
    created_at: datetime | None = None,
    memory_reservation: int | None = 32 * 1024 * 1024,
    cpu_reservation: float | None = 0.1,
    memory_limit: int | None = None,
    cpu_limit: float | None = None,
    image: str = BUSYBOX_IMAGE,
    command: Sequence[str] = ("httpd", "-f", "-p", str(APP_PORT)),
    networks: Sequence[str] = (),
    container_index: int = 0,
    user_groups: Sequence[str] = (),
    heartbeat_timeout_ms: int | None = None,
    max_lifetime_minutes: int | None = None,
) -> SessionService:
    """Create one session service on the swarm behind ``client`` (a docker.DockerClient)."""
    proxy_id = proxy_id or str(uuid.uuid4())
    labels = session_labels(
        proxy_id=proxy_id,
        spec_id=spec_id,
        user_id=user_id,
        instance=instance,
        created_at=created_at or datetime.now(UTC),
        container_index=container_index,
        user_groups=user_groups,
        heartbeat_timeout_ms=heartbeat_timeout_ms,
        max_lifetime_minutes=max_lifetime_minutes,
    )
    env = []
    if user_id is not None:
        env = [f"SHINYPROXY_USERNAME={user_id}", f"SHINYPROXY_USERGROUPS={','.join(user_groups)}"]
    task_template: dict[str, Any] = {
        "ContainerSpec": {
            "Image": image,
            "Labels": labels,
            "Command": list(command),
            "Env": env,
            "DNSConfig": {},
        },
        "Resources": {
            "Reservations": _resources(cpu_reservation, memory_reservation),
            "Limits": _resources(cpu_limit, memory_limit),
        },
        "RestartPolicy": {"Condition": "none"},
    }
    if networks:
        task_template["Networks"] = [{"Target": n} for n in networks]
    name = f"sp-service-{proxy_id}-{container_index}"
    created = client.api.create_service(task_template, name=name)
    return SessionService(id=created["ID"], name=name, proxy_id=proxy_id, labels=labels)


def _resources(cpus: float | None, memory: int | None) -> dict[str, int]:
    out: dict[str, int] = {}
    if cpus:
        out["NanoCPUs"] = int(cpus * 1e9)
    if memory:
        out["MemoryBytes"] = memory
    return out
