"""The ``pools`` section of the policy language: worker node pools sized in session seats."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from autoscaler.model import Written
from autoscaler.rules.windows import CronWindow, RuleDuration


def _positive(v: timedelta, what: str = "duration") -> timedelta:
    if v <= timedelta(0):
        raise ValueError(f"{what} must be longer than 0s")
    return v


class SeatSize(Written):
    """What one session reserves; a node's seats = min(cpus, memory) it can hold."""

    cpus: float | None = Field(default=None, gt=0)
    memory_mb: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _some(self) -> SeatSize:
        if self.cpus is None and self.memory_mb is None:
            raise ValueError("a seat sets 'cpus', 'memory_mb' or both")
        return self


class Headroom(Written):
    """Free seats kept ahead of demand: ``seats`` free on active nodes at all times, and
    room for the arrivals of one ``node_ready_time`` on active nodes, on paused nodes that
    still hold sessions (resumed at once) and on machines on their way."""

    seats: int = Field(default=0, ge=0)
    reserve_seats: int = Field(default=0, ge=0)
    """Room for at least this many sessions within one node_ready_time, whatever the
    arrivals signal says: at quiet hours a few arrivals a minute still come in bursts that
    a Poisson count at the quiet rate does not cover."""
    signal: str | None = None
    """A signal counting session arrivals (InfluxDB ProxyStart events, the actuator ...)."""
    signal_per: RuleDuration = timedelta(minutes=1)
    """The span the signal counts arrivals over: 15m for a count of the last 15 minutes."""
    node_ready_time: RuleDuration = timedelta(minutes=3)
    """Launch + boot + join + image pull: how far ahead capacity must be."""
    confidence: float | None = Field(default=None, gt=0, lt=1)
    """Cover the arrivals of one node_ready_time with this probability (Poisson arrivals at
    the signal's rate); unset: the expected number of arrivals."""
    stabilization_window: RuleDuration = timedelta(0)
    """Plan by the highest arrivals reading of this span (0: the current one only): bursts
    come in clusters, and a pool that lets its reserve go the moment one has passed meets
    the next one short. As HPA's scale-down stabilisation, it never delays a scale-up."""

    @field_validator("signal_per", "node_ready_time")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        return _positive(v)


class ScaleIn(Written):
    unneeded_for: RuleDuration = timedelta(minutes=10)
    """A node must be spare this long before it is paused."""
    nodes_per_step: int = Field(default=1, ge=1)
    """At most this many nodes paused per pass."""
    allow_ending_sessions: bool = False
    """Whether a paused node may ever be drained while it still holds user sessions."""
    session_grace: RuleDuration = timedelta(hours=8)
    """With allow_ending_sessions: how long a paused node waits for its sessions to end."""
    ending_notice: RuleDuration = timedelta(minutes=5)
    """With allow_ending_sessions: time between a receiver accepting the alert and the drain
    that ends sessions."""
    drain_for: RuleDuration = timedelta(seconds=30)
    """Time a drained node gets for its infrastructure tasks to move before removal."""

    @field_validator("unneeded_for", "session_grace", "drain_for")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        return _positive(v)


class Ec2Pool(Written):
    """How the ``ec2`` provider launches this pool's instances."""

    launch_template: str | None = None
    """A launch template name or id (lt-...); its values are used where nothing below is set."""
    launch_template_version: str = "$Default"
    ami: str | None = None
    instance_types: tuple[str, ...] = Field(min_length=1)
    """Tried in order: on InsufficientInstanceCapacity the next type (and subnet) is used."""
    subnets: tuple[str, ...] = Field(min_length=1)
    security_groups: tuple[str, ...] = ()
    instance_profile: str | None = None
    """Name or ARN of the worker's instance profile (reads the join token from SSM)."""
    key_name: str | None = None
    spot: bool = False
    """Ask for Spot capacity first; on-demand when Spot has none."""
    warm_pool: int = Field(default=0, ge=0)
    """Stopped instances (images pulled) kept for this pool; a launch starts them before it
    runs any new one, and the pool is topped up whenever it holds fewer."""
    join_parameter: str = "/autoscaler/swarm/worker-join"
    """SSM SecureString holding the worker join token and the manager address."""
    root_volume_gb: int | None = Field(default=None, ge=1, le=16384)
    """Size of each machine's root disk (gp3, deleted with the machine). Unset: the size the
    image (or the launch template) gives, 8 GB on Ubuntu's, which a few R images fill."""

    @model_validator(mode="after")
    def _image(self) -> Ec2Pool:
        if not self.launch_template and not self.ami:
            raise ValueError("set 'launch_template' or 'ami'")
        if self.root_volume_gb is not None and not self.ami:
            # the root device's name comes from the image; a template names its own disks
            raise ValueError(
                "'root_volume_gb' needs 'ami' (with a launch template alone, size the disk there)"
            )
        return self


class LocalPool(Written):
    """The lab's provider: one more engine per node, joined after ``boot_delay``."""

    boot_delay: RuleDuration = timedelta(seconds=5)


class PoolSchedule(CronWindow):
    """A recurring window (cron start + duration, in a time zone) with a minimum of nodes."""

    min: int = Field(ge=0)


class PoolPolicy(Written):
    """A pool of worker nodes the autoscaler launches, pauses, drains and terminates."""

    provider: Literal["ec2", "local"]
    enabled: bool = True
    min: int = Field(default=0, ge=0)
    max: int = Field(ge=0)
    seats_per_node: int = Field(ge=1)
    """Sessions one node holds; with ``seat`` set, a Ready node's own resources decide instead."""
    seat: SeatSize | None = None
    apps: tuple[str, ...] = ()
    """ShinyProxy spec ids whose waiting sessions this pool launches for; empty: every app
    no other enabled, unretired pool lists. Placement stays Swarm's: ShinyProxy sets no
    constraint, so a session of any app may start on any pool's node."""
    images: tuple[str, ...] = ()
    """App images a new node pulls before it joins."""
    headroom: Headroom = Headroom()
    schedules: tuple[PoolSchedule, ...] = ()
    max_cost_per_hour: float | None = Field(default=None, gt=0)
    prices: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    """Price per hour per instance type; the dearest of the pool's types is assumed."""
    scale_in: ScaleIn = ScaleIn()
    join_timeout: RuleDuration = timedelta(minutes=10)
    """An instance whose node is not Ready in the Swarm by then is terminated."""
    ec2: Ec2Pool | None = None
    local: LocalPool = LocalPool()

    @field_validator("join_timeout")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        return _positive(v)

    @model_validator(mode="after")
    def _consistent(self) -> PoolPolicy:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        if self.provider == "ec2" and self.ec2 is None:
            raise ValueError("provider ec2 needs an 'ec2' section")
        if self.max_cost_per_hour is not None and not self.instance_prices():
            raise ValueError("max_cost_per_hour needs 'prices' for the pool's instance types")
        price = self.node_price() or 0.0  # what the cap is counted in
        if self.max_cost_per_hour is not None and self.max_cost_per_hour < price:
            raise ValueError(
                f"max_cost_per_hour ({self.max_cost_per_hour:g}) is below the price of one "
                f"node ({price:g}, the dearest of its instance types): it allows no node"
            )
        for s in self.schedules:
            if s.min > self.max:
                raise ValueError(f"a schedule's min ({s.min}) is above max ({self.max})")
        return self

    @property
    def retired(self) -> bool:
        """``max: 0``: the pool launches nothing and its nodes leave as their sessions end."""
        return self.max == 0

    @property
    def launches(self) -> bool:
        """Whether the pool launches for the waiting sessions of its apps."""
        return self.enabled and not self.retired

    def instance_types(self) -> tuple[str, ...]:
        return self.ec2.instance_types if self.ec2 else ("local",)

    def instance_prices(self) -> list[float]:
        return [self.prices[t] for t in self.instance_types() if t in self.prices]

    def node_price(self) -> float | None:
        """The dearest known price of the pool's instance types (cost caps err low)."""
        prices = self.instance_prices()
        return max(prices) if prices else None
