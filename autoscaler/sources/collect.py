"""Read every backend once and assemble one frozen Snapshot.

A backend that fails is recorded in ``Snapshot.sources`` and its signals carry the
error: they are missing, never zero. One failing backend never stops the others.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from autoscaler.rules.schema import ActuatorSource, Signal
from autoscaler.snapshot import Instance, SignalValue, Snapshot, SourceStatus, SwarmState
from autoscaler.sources.errors import NoData, QueryRejected, SourceError
from autoscaler.sources.reading import Reading
from autoscaler.sources.swarm_signals import swarm_signal

log = logging.getLogger(__name__)


class SwarmSourceLike(Protocol):
    def read(self) -> SwarmState: ...


class InstancesLike(Protocol):
    def list_instances(self) -> tuple[Instance, ...]: ...


class PrometheusLike(Protocol):
    def query(self, promql: str) -> Reading: ...


class ActuatorScrapeLike(Protocol):
    def value(self, metric: str, labels: Mapping[str, str], aggregate: str) -> Reading: ...


class ActuatorLike(Protocol):
    def scrape_all(self) -> ActuatorScrapeLike: ...


class InfluxLike(Protocol):
    def query(
        self, influxql: str, field: str | None = None, database: str | None = None
    ) -> Reading: ...


@dataclass
class Backends:
    """The read side of one deployment; a backend left as None is "not configured"."""

    swarm: SwarmSourceLike | None = None
    prometheus: PrometheusLike | None = None
    actuator: ActuatorLike | None = None
    influx: InfluxLike | None = None
    instances: InstancesLike | None = None
    """The node providers' machines (pools); None: no pool provider configured."""
    providers: tuple[str, ...] | None = None
    """The names of the configured node providers; None: not known (tests, replays)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _SourceTimer:
    """Records, per backend, whether every call succeeded and how long they took."""

    def __init__(self) -> None:
        self.status: dict[str, SourceStatus] = {}

    def record(self, name: str, seconds: float, error: str | None) -> None:
        old = self.status.get(name)
        total = seconds + (old.seconds if old else 0.0)
        first_error = old.error if old and old.error else error
        self.status[name] = SourceStatus(
            name=name, ok=first_error is None, error=first_error, seconds=round(total, 6)
        )


def collect(
    backends: Backends,
    signals: Mapping[str, Signal],
    now: Callable[[], datetime] = _utcnow,
) -> Snapshot:
    """Read the Swarm and every signal; never raises for a backend failure."""
    timer = _SourceTimer()
    swarm: SwarmState | None = None
    if backends.swarm is None:
        timer.record("swarm", 0.0, "not configured")
    else:
        t0 = time.monotonic()
        try:
            swarm = backends.swarm.read()
            timer.record("swarm", time.monotonic() - t0, None)
        except SourceError as e:
            timer.record("swarm", time.monotonic() - t0, e.message)
            log.warning("swarm unreadable: %s", e.message)

    instances: tuple[Instance, ...] | None = None
    if backends.instances is not None:
        t0 = time.monotonic()
        try:
            instances = backends.instances.list_instances()
            timer.record("instances", time.monotonic() - t0, None)
        except SourceError as e:
            timer.record("instances", time.monotonic() - t0, e.message)
            log.warning("machines unreadable: %s", e.message)

    values: dict[str, SignalValue] = {}
    scrape: ActuatorScrapeLike | SourceError | None = None
    for name in sorted(signals):
        sig = signals[name]
        source = sig.source
        t0 = time.monotonic()
        error: str | None = None
        try:
            if source == "actuator" and scrape is None and backends.actuator is not None:
                try:
                    scrape = backends.actuator.scrape_all()
                except SourceError as e:
                    scrape = e
            reading = _read_one(sig, backends, swarm, scrape, now)
            values[name] = SignalValue(
                name=name, source=source, value=reading.value, observed_at=reading.observed_at
            )
        except NoData as e:
            if sig.on_empty == "zero":
                values[name] = SignalValue(name=name, source=source, value=0.0, observed_at=now())
            else:
                values[name] = _missing(name, source, f"no data{': ' + str(e) if str(e) else ''}")
        except QueryRejected as e:  # the backend answered: it is up, this query is wrong
            values[name] = _missing(name, source, f"{source}: {e.message}")
        except SourceError as e:
            error = e.message
            values[name] = _missing(name, source, f"{source} unavailable: {e.message}")
        except LookupError as e:
            values[name] = _missing(name, source, str(e).strip("'\""))
        if source != "swarm":
            timer.record(source, time.monotonic() - t0, error)
    return Snapshot(
        taken_at=now(),
        swarm=swarm,
        signals=values,
        sources=timer.status,
        instances=instances,
        providers=backends.providers,
    )


def _missing(name: str, source: str, why: str) -> SignalValue:
    return SignalValue(name=name, source=source, value=None, error=why)


def _read_one(
    sig: Signal,
    backends: Backends,
    swarm: SwarmState | None,
    scrape: ActuatorScrapeLike | SourceError | None,
    now: Callable[[], datetime],
) -> Reading:
    if sig.swarm is not None:
        if swarm is None:
            raise SourceError("swarm", "swarm unreadable")
        return Reading(value=swarm_signal(swarm, sig.swarm), observed_at=now())
    if sig.prometheus is not None:
        if backends.prometheus is None:
            raise SourceError("prometheus", "not configured (set AUTOSCALER_PROMETHEUS_URL)")
        return _finite(backends.prometheus.query(sig.prometheus.query), "prometheus")
    if sig.actuator is not None:
        if scrape is None:
            raise SourceError("actuator", "not configured (set AUTOSCALER_ACTUATOR)")
        if isinstance(scrape, SourceError):
            raise scrape
        a: ActuatorSource = sig.actuator
        return _finite(scrape.value(a.metric, a.labels, a.aggregate), "actuator")
    if sig.influx is not None:
        if backends.influx is None:
            raise SourceError("influx", "not configured (set AUTOSCALER_INFLUXDB_URL)")
        i = sig.influx
        return _finite(backends.influx.query(i.query, i.field, database=i.database), "influx")
    raise AssertionError("a signal has exactly one source")


def _finite(r: Reading, source: str) -> Reading:
    """NaN is an empty answer; an infinite value is unusable, never read as 0."""
    if math.isnan(r.value):
        raise NoData(f"value is {r.value}")
    if math.isinf(r.value):
        raise QueryRejected(source, f"value is {r.value}: not a number to scale on")
    return r
