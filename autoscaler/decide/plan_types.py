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


Action = Annotated[ScaleService, Field(discriminator="kind")]
"""Every action kind; later kinds (nodes, notifications) join this union."""


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


class Memory(Frozen):
    """The only state decide keeps between passes: stabilisation and rate-limit history.

    Losing it is safe: a service seen for the first time is treated as if it had
    recommended its current replicas just now, so no scale-down happens before a
    full scale-down stabilisation window has passed.
    """

    services: dict[str, ServiceMemory] = Field(default_factory=dict)


class Plan(Frozen):
    at: datetime
    snapshot_digest: str = ""
    actions: tuple[Action, ...] = ()
    decisions: tuple[Decision, ...] = ()
    memory: Memory = Memory()
