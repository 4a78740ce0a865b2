"""ShinyProxy usage events from InfluxDB 1.x: ProxyStart and ProxyStop in a time range."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from autoscaler.sim.arrivals import Event
from autoscaler.sources.errors import NoData
from autoscaler.sources.influx import InfluxReader


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def read_events(
    url: str, database: str, since: datetime, until: datetime, timeout: float = 30.0
) -> list[Event]:
    """Every ProxyStart and ProxyStop in [since, until); SourceError when InfluxDB fails,
    NoData when there is none."""
    reader = InfluxReader(url, database, None, None, timeout)
    query = (
        'SELECT "data", "type", "username" FROM "event" '
        "WHERE (\"type\" = 'ProxyStart' OR \"type\" = 'ProxyStop') "
        f"AND time >= '{_rfc3339(since)}' AND time < '{_rfc3339(until)}'"
    )
    try:
        raw = reader.raw(query, chunked=True)
    finally:
        reader.close()
    events = _events(raw or {})
    if not events:
        raise NoData(f"influx: no ProxyStart/ProxyStop events in {database} from {since}")
    return events


def _events(raw: dict[str, Any]) -> list[Event]:
    out: list[Event] = []
    for series in raw.get("series") or []:
        cols: list[str] = series.get("columns", [])
        at, data, typ, user = (cols.index(c) for c in ("time", "data", "type", "username"))
        for row in series.get("values") or []:
            out.append(
                Event(
                    at=datetime.fromtimestamp(row[at] / 1000, UTC),
                    user=str(row[user] or ""),
                    type=str(row[typ] or ""),
                    spec=str(row[data] or ""),
                )
            )
    return out
