"""When a pass asked for by Docker events may start: pure, shared by the sidecar's runner
and the simulator's event passes, so a backtest times them as the sidecar does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class EventBatching:
    """How passes asked for by events are spaced and batched. A rolling update or a crowd
    of users starting sessions sends an event a moment, and each pass reads every backend
    (EC2 among them, whose API limits the requests it takes). The optional idle wait and
    its cap are Karpenter's batching of pending pods (BATCH_IDLE_DURATION and
    BATCH_MAX_DURATION)."""

    idle: timedelta = timedelta(0)
    """A pass waits until no event came for this long (0: the first event starts it)..."""
    max: timedelta = timedelta(seconds=10)
    """...but not longer than this after the first event it is for."""
    gap: timedelta = timedelta(seconds=1)
    """Nor does it start sooner than this after the end of the last pass."""


def event_pass_due(
    first: float, last: float, ended: float | None, batching: EventBatching
) -> float:
    """When (in seconds, on any one clock) a pass for events asked first at ``first`` and
    last at ``last`` may start, the last pass having ended at ``ended``."""
    due = min(last + batching.idle.total_seconds(), first + batching.max.total_seconds())
    return due if ended is None else max(due, ended + batching.gap.total_seconds())
