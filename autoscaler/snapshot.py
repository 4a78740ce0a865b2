"""The frozen Snapshot: everything one pass knows, as plain values that round-trip JSON."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import Field

from autoscaler.model import Frozen

SESSION_LABEL_PREFIX = "openanalytics.eu/"
USER_LABEL = "openanalytics.eu/sp-user-id"
PROXIED_APP_LABEL = "openanalytics.eu/sp-proxied-app"
DELEGATE_LABEL = "openanalytics.eu/sp-delegate-proxy"


class Node(Frozen):
    id: str
    hostname: str
    role: Literal["manager", "worker"]
    availability: Literal["active", "pause", "drain"]
    state: str
    """Swarm node state: ready, down, unknown, disconnected."""
    addr: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    nano_cpus: int = 0
    memory_bytes: int = 0
    reserved_nano_cpus: int = 0
    """Reservations of the tasks on the node that are not users' sessions (global services
    such as node-exporter, ShinyProxy, ...): the Swarm scheduler places a session only in
    what they leave."""
    reserved_memory_bytes: int = 0
    joined_at: datetime | None = None
    """When the node joined the Swarm (its CreatedAt); None when unknown."""


class Service(Frozen):
    id: str
    name: str
    mode: Literal["replicated", "global", "other"]
    replicas: int | None
    """Desired replicas of a replicated service; None for global ones."""
    running: int
    version: int
    labels: dict[str, str] = Field(default_factory=dict)
    is_session: bool = False
    """A ShinyProxy per-session service (container label sp-proxied-app): never scaled."""


PENDING_STATES = frozenset(
    {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
)
"""Task states before ``running`` (Swarm's whole sequence): a session on its way to running."""
SEAT_STATES = PENDING_STATES | {"running"}
"""Task states of a session that holds a seat (or will once it has a node)."""


class Session(Frozen):
    """One ShinyProxy proxy container: a Swarm service with ShinyProxy's container labels."""

    service_id: str
    service_name: str
    proxy_id: str
    spec_id: str
    user_id: str | None
    """None for a pre-initialised (delegate) container, whose labels never name a user."""
    node_id: str | None
    state: str
    """The newest task's state: running, pending, assigned, preparing, starting, ..."""
    message: str = ""
    created_at: datetime | None = None
    shared: bool = False
    """A pre-initialised container (sp-delegate-proxy): users of an app with container
    sharing claim its seats inside ShinyProxy, and its labels never change to say so."""

    @property
    def is_user_session(self) -> bool:
        return self.user_id is not None

    @property
    def is_live(self) -> bool:
        return self.state == "running"

    @property
    def is_pending(self) -> bool:
        return self.state in PENDING_STATES


class PendingTask(Frozen):
    """A task the Swarm has not started, with the scheduler's reason."""

    task_id: str
    service_id: str
    service_name: str
    state: str
    message: str
    error: str = ""
    since: datetime | None = None

    @property
    def lacks_resources(self) -> bool:
        text = f"{self.message} {self.error}".lower()
        return "insufficient resources" in text or "no suitable node" in text


class SwarmState(Frozen):
    nodes: tuple[Node, ...] = ()
    services: tuple[Service, ...] = ()
    sessions: tuple[Session, ...] = ()
    pending_tasks: tuple[PendingTask, ...] = ()

    def service(self, name: str) -> Service | None:
        for s in self.services:
            if s.name == name:
                return s
        return None


class LaunchTemplateNow(Frozen):
    """The launch template a machine was launched from, as EC2 describes it in this pass:
    the versions its $Default and $Latest give now, or why they are not known."""

    id: str
    name: str = ""
    default_version: int | None = None
    latest_version: int | None = None
    error: str | None = None
    """Why the versions are not known (template not found, EC2 unreadable): never a value."""
    gone: bool = False
    """EC2 says no such template exists (deleted, perhaps made again under the same name):
    a machine launched from it is not what the pool launches now."""

    def version(self, selector: str) -> int | None:
        """The number ``$Default`` or ``$Latest`` gives now; None when not known."""
        return self.default_version if selector == "$Default" else self.latest_version


class Instance(Frozen):
    """A machine a node provider launched for a pool, as its provider lists it."""

    id: str
    pool: str
    state: Literal["pending", "running", "stopping", "stopped", "shutting-down", "terminated"]
    launched_at: datetime
    instance_type: str = ""
    private_dns: str = ""
    """Host name the machine's engine reports to the Swarm (ip-10-0-1-5...)."""
    private_ip: str = ""
    subnet: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    warm: bool = False
    """A warm-pool machine: pulling the images, then stopped until a launch starts it."""
    interrupted: bool = False
    """A Spot interruption notice: the provider takes the machine back within two minutes."""
    launch_template: LaunchTemplateNow | None = None
    """A warm-pool machine launched from a launch template: that template now. None for the
    others, and when not read (the lab, the simulator, older snapshots)."""

    @property
    def alive(self) -> bool:
        """Capacity now or soon: running or starting, and not a warm-pool machine."""
        return self.state in ("pending", "running") and not self.warm

    @property
    def in_warm_pool(self) -> bool:
        """Stopped (a launch starts it before running a new machine; a failed start leaves
        it so), or a warm-pool machine still pulling the images."""
        return self.state in ("stopping", "stopped") or (
            self.warm and self.state in ("pending", "running")
        )


class SignalValue(Frozen):
    """A signal as read: a number, or no number and the reason why."""

    name: str
    source: str
    value: float | None
    observed_at: datetime | None = None
    error: str | None = None
    """Why there is no value: the backend is down, the answer was empty, ..."""


class SourceStatus(Frozen):
    name: str
    ok: bool
    error: str | None = None
    seconds: float = 0.0


def notice_key(pool: str, node: str) -> str:
    """The key of Snapshot.notices_delivered: the pool and the node's host name."""
    return f"{pool}/{node}"


class Snapshot(Frozen):
    taken_at: datetime
    swarm: SwarmState | None
    """None when the Swarm could not be read: nothing is decided on a guess."""
    signals: dict[str, SignalValue] = Field(default_factory=dict)
    sources: dict[str, SourceStatus] = Field(default_factory=dict)
    instances: tuple[Instance, ...] | None = None
    """The pools' machines from the node provider; None when not read (no decisions on them)."""
    providers: tuple[str, ...] | None = None
    """The node providers this sidecar has configured; None when not known (older snapshots,
    the simulator): a pool of another provider has no machines to decide on."""
    notices_delivered: dict[str, datetime] = Field(default_factory=dict)
    """``notice_key(pool, node)`` -> the last time a receiver accepted the alert that the
    node's sessions will be ended (the sidecar's alerting; empty without it, and then none
    is ended)."""

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    @classmethod
    def from_json(cls, text: str | bytes) -> Snapshot:
        return cls.model_validate_json(text)

    def digest(self) -> str:
        """A short, stable fingerprint of the content (for the decision ledger)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]
