"""The policy language: what ``rules/*.yml`` may say, as typed, frozen models.

Field-level checks live here (types, ranges, one-of); checks that need the whole
rule set (undefined signal names, duplicate names across files) live in ``loader``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from autoscaler.alerts.config import (
    AlertRule,
    InhibitRuleConfig,
    ReceiverConfig,
    RouteConfig,
)
from autoscaler.alerts.timeintervals import TimeInterval
from autoscaler.model import Written
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.windows import CronWindow, RuleDuration

# ---------------------------------------------------------------- signals


class PrometheusSource(Written):
    """Any PromQL instant query; the value is the single sample it returns."""

    query: str

    @field_validator("query")
    @classmethod
    def _parses(cls, v: str) -> str:
        import promql_parser

        try:
            promql_parser.parse(v)
        except ValueError as e:
            raise ValueError(f"PromQL does not parse: {e}") from None
        return v


class ActuatorSource(Written):
    """A metric from ShinyProxy's ``/actuator/prometheus``, across every replica."""

    metric: str = Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    labels: dict[str, str] = Field(default_factory=dict)
    aggregate: Literal["sum", "max", "min", "avg"] = "sum"


class InfluxSource(Written):
    """An InfluxQL query on ShinyProxy's usage events; the value is the newest row."""

    query: str
    database: str | None = None
    field: str | None = None

    @field_validator("query")
    @classmethod
    def _select_only(cls, v: str) -> str:
        if not v.lstrip().upper().startswith("SELECT"):
            raise ValueError("only SELECT queries are allowed")
        return v


SwarmMetric = Literal[
    "live_sessions",
    "pending_sessions",
    "pending_no_resources",
    "service_replicas",
    "nodes",
]


class SwarmSource(Written):
    """A built-in count read from the Swarm itself."""

    metric: SwarmMetric
    service: str | None = None
    spec_id: str | None = None
    state: Literal["ready", "down", "unknown", "disconnected"] | None = None
    availability: Literal["active", "pause", "drain"] | None = None
    role: Literal["manager", "worker"] | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fits_metric(self) -> SwarmSource:
        if self.metric == "service_replicas" and not self.service:
            raise ValueError("metric service_replicas needs 'service'")
        if self.service and self.metric != "service_replicas":
            raise ValueError("service filters metric 'service_replicas' only")
        node_only = (self.state, self.availability, self.role)
        if self.metric != "nodes" and (any(node_only) or self.labels):
            raise ValueError("state, availability, role and labels filter metric 'nodes' only")
        if self.spec_id and self.metric not in ("live_sessions", "pending_sessions"):
            raise ValueError("spec_id filters live_sessions and pending_sessions only")
        return self


class Signal(Written):
    """A named value the policies read. Exactly one source."""

    description: str = ""
    prometheus: PrometheusSource | None = None
    actuator: ActuatorSource | None = None
    influx: InfluxSource | None = None
    swarm: SwarmSource | None = None
    max_age: RuleDuration = timedelta(minutes=2)
    """Older than this, the value counts as missing (stale), never as zero."""
    on_empty: Literal["missing", "zero"] = "missing"
    """An empty answer is missing data unless the policy says it means zero."""

    @model_validator(mode="after")
    def _one_source(self) -> Signal:
        chosen = [k for k in ("prometheus", "actuator", "influx", "swarm") if getattr(self, k)]
        if len(chosen) != 1:
            raise ValueError(
                "a signal needs exactly one source of prometheus, actuator, influx, swarm"
                + (f" (has {', '.join(chosen)})" if chosen else "")
            )
        return self

    @property
    def source(self) -> str:
        for k in ("prometheus", "actuator", "influx", "swarm"):
            if getattr(self, k):
                return k
        raise AssertionError("validated to have one source")


# ---------------------------------------------------------------- services


class TargetTracking(Written):
    """HPA target tracking on one signal.

    ``average_value``: the signal is a total; desired = ceil(signal / average_value).
    ``value``: the signal is per replica; desired = ceil(current * signal / value).
    """

    signal: str
    value: float | None = Field(default=None, gt=0)
    average_value: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_target(self) -> TargetTracking:
        if (self.value is None) == (self.average_value is None):
            raise ValueError("set exactly one of 'value' or 'average_value'")
        return self


class Step(Written):
    """A threshold rule: when the signal is above (or below) a bound, change replicas."""

    signal: str
    above: float | None = None
    below: float | None = None
    change: int | None = None
    set: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _shape(self) -> Step:
        if (self.above is None) == (self.below is None):
            raise ValueError("set exactly one of 'above' or 'below'")
        if (self.change is None) == (self.set is None):
            raise ValueError("set exactly one of 'change' or 'set'")
        if self.change == 0:
            raise ValueError("'change' of 0 does nothing")
        return self


class RatePolicy(Written):
    """At most ``value`` replicas (or percent) of change per ``period``."""

    type: Literal["replicas", "percent"]
    value: int = Field(gt=0)
    period: RuleDuration

    @field_validator("period")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("period must be longer than 0s")
        return v


class ScalingRules(Written):
    """One direction of HPA ``behavior``: stabilisation window and rate policies."""

    stabilization_window: RuleDuration | None = None
    select_policy: Literal["max", "min", "disabled"] = "max"
    policies: tuple[RatePolicy, ...] | None = None

    @field_validator("policies")
    @classmethod
    def _not_empty(cls, v: tuple[RatePolicy, ...] | None) -> tuple[RatePolicy, ...] | None:
        # as HPA's validation: an empty list would freeze the direction under select_policy
        # max and lift every limit under min, neither of which it says
        if v is not None and not v:
            raise ValueError(
                "list at least one rate policy: leave 'policies' out for the defaults, "
                "or set select_policy: disabled to forbid this direction"
            )
        return v


SCALE_UP_DEFAULT = ScalingRules(
    stabilization_window=timedelta(0),
    policies=(
        RatePolicy(type="percent", value=100, period=timedelta(seconds=15)),
        RatePolicy(type="replicas", value=4, period=timedelta(seconds=15)),
    ),
)
SCALE_DOWN_DEFAULT = ScalingRules(
    stabilization_window=timedelta(minutes=5),
    policies=(RatePolicy(type="percent", value=100, period=timedelta(seconds=15)),),
)


class Behavior(Written):
    scale_up: ScalingRules = SCALE_UP_DEFAULT
    scale_down: ScalingRules = SCALE_DOWN_DEFAULT

    def up(self) -> ScalingRules:
        """Scale-up rules with HPA's defaults filled in where a field was left out."""
        return _fill(self.scale_up, SCALE_UP_DEFAULT)

    def down(self) -> ScalingRules:
        return _fill(self.scale_down, SCALE_DOWN_DEFAULT)


def _fill(rules: ScalingRules, default: ScalingRules) -> ScalingRules:
    return ScalingRules(
        stabilization_window=(
            rules.stabilization_window
            if rules.stabilization_window is not None
            else default.stabilization_window
        ),
        select_policy=rules.select_policy,
        policies=rules.policies if rules.policies is not None else default.policies,
    )


class Schedule(CronWindow):
    """A recurring window (cron start + duration, in a time zone) that overrides min/max."""

    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> Schedule:
        if self.min is None and self.max is None:
            raise ValueError("a schedule sets 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class ServicePolicy(Written):
    """Replica autoscaling of one Swarm service (ShinyProxy itself, an API ...)."""

    service: str | None = None
    """The Swarm service name; defaults to the policy's name."""
    enabled: bool = True
    min: int = Field(default=1, ge=0)
    max: int = Field(ge=0)
    target_tracking: tuple[TargetTracking, ...] = ()
    steps: tuple[Step, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    behavior: Behavior = Behavior()
    tolerance: float = Field(default=0.1, ge=0, lt=1)
    on_missing: Literal["hold", "fallback"] = "hold"
    """What to do when every signal is missing or stale: hold (default), or raise the count
    to at least fallback_replicas (never lower it)."""
    fallback_replicas: int | None = Field(default=None, ge=0)
    pause_label: str = "autoscaler.pause"
    """A service label; when set to true/yes/1 the policy takes no action."""

    @model_validator(mode="after")
    def _consistent(self) -> ServicePolicy:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        if not self.target_tracking and not self.steps:
            raise ValueError("a service policy needs target_tracking or steps")
        if self.on_missing == "fallback" and self.fallback_replicas is None:
            raise ValueError("on_missing: fallback needs fallback_replicas")
        return self

    def signal_names(self) -> list[str]:
        return [t.signal for t in self.target_tracking] + [s.signal for s in self.steps]


# ---------------------------------------------------------------- the whole set


class RulesFile(Written):
    """What one ``rules/*.yml`` file may contain (any subset of the sections)."""

    signals: dict[str, Signal] = Field(default_factory=dict)
    services: dict[str, ServicePolicy] = Field(default_factory=dict)
    alerts: dict[str, AlertRule] = Field(default_factory=dict)
    """Alert rules; routing below is in Alertmanager's own format (docs/alerting.md)."""
    route: RouteConfig | None = None
    receivers: tuple[ReceiverConfig, ...] = ()
    inhibit_rules: tuple[InhibitRuleConfig, ...] = ()
    time_intervals: tuple[TimeInterval, ...] = ()
    pools: dict[str, PoolPolicy] = Field(default_factory=dict)


class Policies(RulesFile):
    """Every policy from every file in ``rules/``, merged (the sections of one file, whole)."""
