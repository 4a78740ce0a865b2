"""A signal's usable value at the snapshot's time, or why it is not usable.

Missing, failed, stale and non-finite values are never read as zero: they come back
without a value and with the reason, so the caller can refuse to scale down on them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

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
    sv = snapshot.signals.get(name)
    if sv is None:
        return SignalReading(name, None, f"signal {name} missing: not read in this pass")
    if sv.value is None:
        why = sv.error or "no value"
        return SignalReading(name, None, f"signal {name} missing: {why}")
    if not math.isfinite(sv.value):
        return SignalReading(name, None, f"signal {name} unusable: value is {sv.value}")
    # a value without a timestamp was read in this very pass
    if sv.observed_at is not None:
        age = utc(snapshot.taken_at) - utc(sv.observed_at)
        if age > definition.max_age:
            return SignalReading(
                name,
                None,
                f"signal {name} stale (age {seconds(age)} > {seconds(definition.max_age)})",
            )
    return SignalReading(name, sv.value)


def reading_of(name: str, snapshot: Snapshot, definitions: Mapping[str, Signal]) -> SignalReading:
    """``read_signal`` for a signal the snapshot holds; without its definition at hand (no
    ``max_age`` to judge by), the value as read."""
    if name in definitions:
        return read_signal(name, snapshot, definitions)
    sv = snapshot.signals.get(name)
    if sv is None or sv.value is None or not math.isfinite(sv.value):
        why = (sv.error if sv is not None else None) or "no value"
        return SignalReading(name, None, f"signal {name} missing: {why}")
    return SignalReading(name, sv.value)
