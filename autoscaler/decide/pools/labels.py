"""Where a pool node's lifecycle lives: Swarm node labels and provider tags."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType

POOL = "autoscaler.pool"
STATE = "autoscaler.state"
INSTANCE = "autoscaler.instance-id"
PAUSED_AT = "autoscaler.paused-at"
DRAINING_AT = "autoscaler.draining-at"
NOTIFIED_AT = "autoscaler.notified-at"
"""When the alert that sessions will be ended was raised (allow_ending_sessions only)."""
DELIVERED_AT = "autoscaler.notice-delivered-at"
"""When a receiver accepted that alert: the ending notice runs from here."""
NO_NOTICE: Mapping[str, str] = MappingProxyType({NOTIFIED_AT: "", DELIVERED_AT: ""})
"""Written with a pause or a resume: it starts a new wait, for which no alert counts yet."""

TAG_POOL = "autoscaler:pool"
TAG_CLUSTER = "autoscaler:cluster"
TAG_LAUNCHED_AT = "autoscaler:launched-at"
TAG_TOKEN = "autoscaler:launch-token"
TAG_LAUNCH_CONFIG = "autoscaler:launch-config"
"""The digest of what the machine was launched with (autoscaler.decide.pools.launch_config)."""


def stamp(t: datetime) -> str:
    """A label value for a time: ISO 8601 in UTC, to the second."""
    aware = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stamp(text: str | None) -> datetime | None:
    """A time written by ``stamp``; None for a missing or unreadable value."""
    if not text:
        return None
    return _parse_stamp(text)


@functools.lru_cache(maxsize=4096)  # each node's marks are read again every pass
def _parse_stamp(text: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
