"""What decide returns: typed actions, a decision (with reasons) per policy, and memory."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from autoscaler.model import Frozen


class ScaleService(Frozen):
    kind: Literal["scale_service"] = "scale_service"
    service: str
    current: int
    desired: int
    reason: str


class LaunchNodes(Frozen):
    """Start ``count`` new machines for a pool (warm stopped ones first, then new ones)."""

    kind: Literal["launch_nodes"] = "launch_nodes"
    pool: str
    provider: str
    count: int
    reason: str
    token: str
    """Idempotency key: a retried launch with the same token starts nothing more."""


class FillWarmPool(Frozen):
    """Launch machines that pull the images and power off: a later launch starts them in
    seconds instead of minutes. ``count`` is what the snapshot lacked; the provider counts
    again before launching, so a fill decided on an older listing launches no more."""

    kind: Literal["fill_warm_pool"] = "fill_warm_pool"
    pool: str
    provider: str
    count: int
    reason: str
    token: str
    """Idempotency key, as for LaunchNodes."""


class RetireWarmMachine(Frozen):
    """Terminate a stopped warm-pool machine: one more than ``warm_pool`` asks for, or one
    launched with what the pool no longer says. The provider refuses it once a launch has
    started the machine (it is on its way to become a node)."""

    kind: Literal["retire_warm_machine"] = "retire_warm_machine"
    instance_id: str
    pool: str
    provider: str
    reason: str


class NodeAction(Frozen):
    node_id: str
    hostname: str
    pool: str
    reason: str


class PauseNode(NodeAction):
    """Availability pause: sessions keep running, nothing new is placed."""

    kind: Literal["pause_node"] = "pause_node"
    at: datetime


class ResumeNode(NodeAction):
    kind: Literal["resume_node"] = "resume_node"


class DrainNode(NodeAction):
    """Availability drain; refused while a user session runs there unless ``end_sessions``."""

    kind: Literal["drain_node"] = "drain_node"
    at: datetime
    end_sessions: bool = False


class RemoveNode(NodeAction):
    """Leave the Swarm: a drained node, or a down node whose machine is gone."""

    kind: Literal["remove_node"] = "remove_node"


class LabelNode(NodeAction):
    """Set (and with an empty value, remove) ``autoscaler.*`` labels of a pool's node."""

    kind: Literal["label_node"] = "label_node"
    labels: dict[str, str]


class TerminateInstance(Frozen):
    kind: Literal["terminate_instance"] = "terminate_instance"
    instance_id: str
    pool: str
    provider: str
    reason: str
    after_removal_of: str | None = None
    """The id of a node this pass removes from the Swarm first: no termination if that
    removal is refused or fails (the node, as read again, may hold sessions by then)."""


class Notify(Frozen):
    """An alert raised by a decision (a node that never joined, sessions about to end)."""

    kind: Literal["notify"] = "notify"
    alert: str
    severity: Literal["info", "warning", "critical"] = "warning"
    summary: str
    labels: dict[str, str] = Field(default_factory=dict)


NODE_ACTIONS = ("pause_node", "resume_node", "drain_node", "remove_node", "label_node")
PROVIDER_ACTIONS = ("launch_nodes", "terminate_instance", "fill_warm_pool", "retire_warm_machine")

Action = Annotated[
    ScaleService
    | LaunchNodes
    | FillWarmPool
    | RetireWarmMachine
    | PauseNode
    | ResumeNode
    | DrainNode
    | RemoveNode
    | LabelNode
    | TerminateInstance
    | Notify,
    Field(discriminator="kind"),
]
"""Every action kind."""


class Decision(Frozen):
    """The outcome for one policy, including every reason not to act."""

    policy: str
    subject: str
    outcome: Literal["scale", "hold", "paused", "disabled", "error"]
    current: int | None = None
    desired: int | None = None
    reasons: tuple[str, ...] = ()


class Recommendation(Frozen):
    at: datetime
    replicas: int


class ScaleEvent(Frozen):
    at: datetime
    change: int
    """Positive for scale-up, negative for scale-down."""


class ServiceMemory(Frozen):
    recommendations: tuple[Recommendation, ...] = ()
    events: tuple[ScaleEvent, ...] = ()


class Reading(Frozen):
    at: datetime
    value: float


class PoolMemory(Frozen):
    unneeded_since: datetime | None = None
    """Since when the pool has had more nodes than it wants (scale-in waits unneeded_for)."""
    launched_at: datetime | None = None
    launched: int = 0
    """The last launch, counted as on its way until its machines are listed."""
    launches_since: datetime | None = None
    """The first of the launches counted in ``launched`` when the last came while an earlier
    one was still counted: their machines are listed from then on."""
    listed: tuple[str, ...] = ()
    """Machines of those launches seen listed so far: one retired since (and no longer
    listed) has still arrived, and is not counted as on its way again."""
    warm_filled_at: datetime | None = None
    """The last fill of the warm pool: none again until its machines can be listed."""
    arrivals: tuple[Reading, ...] = ()
    """Arrivals readings within headroom.stabilization_window that may still be its highest:
    oldest first, each higher than every later one."""


class StrayPool(Frozen):
    """Machines or Swarm nodes that name a pool the rules do not have (deleted or renamed):
    nothing launches, pauses or terminates them, and they are still paid for."""

    pool: str
    running: int = 0
    """Machines pending or running."""
    stopped: int = 0
    """Machines stopped or stopping (a warm pool's)."""
    nodes: int = 0
    """Swarm nodes labelled with the pool."""
    sessions: int = 0
    """User sessions and pre-initialised containers on those nodes."""
    machines_known: bool = True
    """False while the provider's machines cannot be listed: running and stopped are not 0."""
    nodes_known: bool = True
    """False while the Swarm cannot be read: nodes and sessions are not 0."""


class Memory(Frozen):
    """The only state decide keeps between passes: stabilisation and rate-limit history.

    Losing it is safe: a service seen for the first time is treated as if it had
    recommended its current replicas just now, so no scale-down happens before a
    full scale-down stabilisation window has passed.
    """

    services: dict[str, ServiceMemory] = Field(default_factory=dict)
    pools: dict[str, PoolMemory] = Field(default_factory=dict)
    strays: tuple[StrayPool, ...] = ()
    """The last pass's strays: carried while the provider or the Swarm cannot be read."""


class PoolStatus(Frozen):
    """A pool as one pass saw it: nodes per lifecycle state, seats, cost (for metrics)."""

    pool: str
    nodes: dict[str, int] = Field(default_factory=dict)
    seats: dict[str, int] = Field(default_factory=dict)
    """used, free, headroom, wanted."""
    wanted_nodes: int = 0
    cost_per_hour: float | None = None
    live_sessions: int = 0
    pending_sessions: int = 0
    short_nodes: int = 0
    """Nodes the seats call for beyond what max or the cost cap allow (0: not limited)."""
    join_wait_seconds: float = 0.0
    """How long ago the oldest machine still launching or joining was launched (0: none):
    one that works joins in minutes, whatever the length of a scale-out."""
    provider_missing: str | None = None
    """The pool's provider when this sidecar has not configured it (nothing is launched)."""


class Plan(Frozen):
    at: datetime
    snapshot_digest: str = ""
    actions: tuple[Action, ...] = ()
    decisions: tuple[Decision, ...] = ()
    memory: Memory = Memory()
    pools: tuple[PoolStatus, ...] = ()
    strays: tuple[StrayPool, ...] = ()
    strays_unread: str | None = None
    """Why ``strays`` may be incomplete this pass (a source unread): their alert holds."""
