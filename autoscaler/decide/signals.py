"""A signal's usable value at the snapshot's time, or why it is not usable.

Missing, failed, stale and non-finite values are never read as zero: they come back
without a value and with the reason, so the caller can refuse to scale down on them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from autoscaler.decide.text import seconds, utc
from autoscaler.rules.schema import Signal
from autoscaler.snapshot import Snapshot


@dataclass(frozen=True)
class SignalReading:
    name: str
    value: float | None
    """A finite, fresh value; None when the signal cannot be used."""
    problem: str | None = None
    """Why ``value`` is None, as a reason people read."""

    @property
    def usable(self) -> bool:
        return self.value is not None


def read_signal(name: str, snapshot: Snapshot, definitions: Mapping[str, Signal]) -> SignalReading:
    """The value of ``name`` in ``snapshot``, judged against its definition's ``max_age``."""
    definition = definitions.get(name)
    if definition is None:
        return SignalReading(name, None, f"signal {name} missing: not defined in signals")
    return _judge(name, snapshot, definition.max_age)


def reading_of(name: str, snapshot: Snapshot, definitions: Mapping[str, Signal]) -> SignalReading:
    """``read_signal`` for a signal the snapshot holds; without its definition at hand (no
    ``max_age`` to judge by), the value as read."""
    definition = definitions.get(name)
    return _judge(name, snapshot, definition.max_age if definition is not None else None)


def _judge(name: str, snapshot: Snapshot, max_age: timedelta | None) -> SignalReading:
    sv = snapshot.signals.get(name)
    if sv is None:
        return SignalReading(name, None, f"signal {name} missing: not read in this pass")
    if sv.value is None:
        why = sv.error or "no value"
        return SignalReading(name, None, f"signal {name} missing: {why}")
    if not math.isfinite(sv.value):
        return SignalReading(name, None, f"signal {name} unusable: value is {sv.value}")
    # a value without a timestamp was read in this very pass
    if max_age is not None and sv.observed_at is not None:
        age = utc(snapshot.taken_at) - utc(sv.observed_at)
        if age > max_age:
            # rounded up: a truncated 120.4s would read "age 120s > 120s"
            shown = f"{math.ceil(age.total_seconds())}s"
            return SignalReading(
                name, None, f"signal {name} stale (age {shown} > {seconds(max_age)})"
            )
    return SignalReading(name, sv.value)
