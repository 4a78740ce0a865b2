"""ShinyProxy usage events from InfluxDB 1.x: ProxyStart and ProxyStop in a time range."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from influxdb import InfluxDBClient
from influxdb.exceptions import InfluxDBClientError, InfluxDBServerError

from autoscaler.sim.arrivals import Event
from autoscaler.sources.errors import NoData, SourceError
from autoscaler.sources.http_errors import describe_request_error, redact_url

SOURCE = "influx"


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def read_events(
    url: str, database: str, since: datetime, until: datetime, timeout: float = 30.0
) -> list[Event]:
    """Every ProxyStart and ProxyStop in [since, until); SourceError when InfluxDB fails,
    NoData when there is none."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"InfluxDB URL {redact_url(url)!r}: expected http(s)://host:port")
    client = InfluxDBClient(
        host=parts.hostname,
        port=parts.port or (443 if parts.scheme == "https" else 8086),
        username=parts.username,
        password=parts.password,
        database=database,
        ssl=parts.scheme == "https",
        verify_ssl=parts.scheme == "https",
        timeout=timeout,
        retries=1,
        path=parts.path.rstrip("/"),
    )
    query = (
        'SELECT "data", "type", "username" FROM "event" '
        "WHERE (\"type\" = 'ProxyStart' OR \"type\" = 'ProxyStop') "
        f"AND time >= '{_rfc3339(since)}' AND time < '{_rfc3339(until)}'"
    )
    try:
        result = client.query(query, database=database, epoch="ms", chunked=True)
    except requests.RequestException as e:
        raise SourceError(SOURCE, describe_request_error(e, timeout)) from None
    except (InfluxDBClientError, InfluxDBServerError) as e:
        text = str(e)[:300]
        if parts.password:
            text = text.replace(parts.password, "***")
        raise SourceError(SOURCE, f"{redact_url(url)}: {text}") from None
    finally:
        client.close()
    events = _events(result.raw if hasattr(result, "raw") else {})
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
