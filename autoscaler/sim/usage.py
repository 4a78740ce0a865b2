"""ShinyProxy usage events from InfluxDB 1.x: ProxyStart and ProxyStop in a time range."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from autoscaler.sim.arrivals import Event
from autoscaler.sources.errors import NoData, SourceError
from autoscaler.sources.influx import InfluxReader

_COLUMNS = ("time", "data", "type", "username")


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
        series = reader.series(query)
    finally:
        reader.close()
    events = _events(series)
    if not events:
        raise NoData(f"influx: no ProxyStart/ProxyStop events in {database} from {since}")
    return events


def _events(series: list[dict[str, Any]]) -> list[Event]:
    out: list[Event] = []
    for one in series:
        cols = one.get("columns")
        rows = one.get("values") or []
        if not isinstance(cols, list) or not all(c in cols for c in _COLUMNS):
            raise _invalid(f"columns {str(cols)[:100]}")
        at, data, typ, user = (cols.index(c) for c in _COLUMNS)
        for row in rows:
            if not isinstance(row, list) or len(row) != len(cols):
                raise _invalid("rows that do not match the columns")
            if isinstance(row[at], bool) or not isinstance(row[at], int | float):
                raise _invalid("a time that is not epoch milliseconds")
            out.append(
                Event(
                    at=datetime.fromtimestamp(row[at] / 1000, UTC),
                    user=str(row[user] or ""),
                    type=str(row[typ] or ""),
                    spec=str(row[data] or ""),
                )
            )
    return out


def _invalid(what: str) -> SourceError:
    return SourceError("influx", f"invalid answer ({what})")
