"""ShinyProxy's actuator across every replica: ``/actuator/prometheus`` and ``/actuator/health``.

Endpoints are base URLs (``http://sp1:9090``) or DNS names (``tasks.shinyproxy[:9090]``)
that are resolved to every replica's address at each read, so replicas that come and
go are followed. Either may carry basic-auth credentials (``http://user:pass@sp1:9090``,
``user:pass@tasks.shinyproxy:9090``): they are sent to every replica, never shown. One
``scrape_all()`` fetches each replica once; any number of signals are then read from that
scrape. A replica that fails makes every value of the scrape an error: a partial sum would
undercount.
"""

from __future__ import annotations

import ipaddress
import socket
import statistics
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import requests
from prometheus_client.metrics_core import Metric

from autoscaler.sources.errors import NoData, SourceError
from autoscaler.sources.exposition import ExpositionError, SeriesKey, parse, select_series
from autoscaler.sources.http_body import MAX_BODY_BYTES, BodyError, read_body
from autoscaler.sources.http_errors import (
    UNENCODABLE,
    describe_request_error,
    hide_userinfo,
    require_latin1,
    scrub_userinfo,
    split_base_url,
    url_credentials,
)
from autoscaler.sources.reading import Reading

SOURCE = "actuator"
DEFAULT_PORT = 9090
Resolver = Callable[[str, int], list[str]]

_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "sum": lambda xs: float(sum(xs)),
    "max": max,
    "min": min,
    "avg": statistics.fmean,
}


def resolve_all(host: str, port: int) -> list[str]:
    """One address per replica ``host`` resolves to (for ``tasks.<service>``: one per
    running task). On a dual-stack network every task has an IPv4 and an IPv6 address:
    scraping both would count each replica twice, so IPv4 is taken when there is any."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    v4 = {str(info[4][0]) for info in infos if info[0] == socket.AF_INET}
    return sorted(v4 or {str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class _Replica:
    url: str
    """Base URL without credentials; names the replica in messages."""
    auth: tuple[str, str] | None = None


@dataclass(frozen=True)
class _DnsEndpoint:
    host: str
    port: int
    auth: tuple[str, str] | None = None


@dataclass(frozen=True)
class ReplicaScrape:
    url: str
    fetched_at: datetime
    families: list[Metric] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class ActuatorScrape:
    """One fetch of every replica; read as many signals from it as needed."""

    replicas: tuple[ReplicaScrape, ...]
    error: str | None = None
    """Set when the replicas themselves could not be found (DNS)."""

    @property
    def failed(self) -> dict[str, str]:
        return {r.url: r.error for r in self.replicas if r.error is not None}

    def value(self, metric: str, labels: Mapping[str, str], aggregate: str) -> Reading:
        """Each matching series' non-NaN samples of every replica combined (sum, max, min,
        avg), and the series added up."""
        combine = _AGGREGATES.get(aggregate)
        if combine is None:
            raise ValueError(f"aggregate {aggregate!r}: expected one of {', '.join(_AGGREGATES)}")
        if self.error is not None:
            raise SourceError(SOURCE, self.error)
        failed = self.failed
        if failed:
            which = "; ".join(f"replica {url}: {err}" for url, err in failed.items())
            raise SourceError(
                SOURCE,
                f"{len(failed)} of {len(self.replicas)} replicas failed ({which}); "
                "a partial result would undercount",
            )
        # each series (one per app, say) across the replicas first, then the series added
        # up: `max` of a per-app gauge every replica reports alike is the apps' total, not
        # the busiest app's count
        series: dict[SeriesKey, list[float]] = {}
        for r in self.replicas:
            for key, v in select_series(r.families, metric, labels):
                series.setdefault(key, []).append(v)
        if not series:
            wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            raise NoData(
                f"actuator: no value for {metric}{{{wanted}}} on {len(self.replicas)} replicas"
            )
        return Reading(
            value=float(sum(combine(values) for values in series.values())),
            observed_at=min(r.fetched_at for r in self.replicas),
        )


class ActuatorClient:
    """Reads ShinyProxy's management endpoints on every replica. ``timeout`` bounds each
    replica's scrape as a whole; pages over ``max_bytes`` are refused."""

    def __init__(
        self,
        endpoints: str,
        timeout: float,
        session: requests.Session | None = None,
        resolve: Resolver = resolve_all,
        max_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._endpoints = _parse_endpoints(endpoints)
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._session = session or requests.Session()
        self._resolve = resolve

    def replicas(self) -> list[str]:
        """Base URLs of the replicas right now (resolves DNS names); SourceError if none."""
        return [r.url for r in self._replicas()]

    def scrape_all(self) -> ActuatorScrape:
        """Fetch ``/actuator/prometheus`` once from every replica, in parallel."""
        try:
            replicas = self._replicas()
        except SourceError as e:
            return ActuatorScrape(replicas=(), error=e.message)
        with ThreadPoolExecutor(max_workers=min(8, len(replicas))) as pool:
            scrapes = tuple(pool.map(self._scrape_one, replicas))
        return ActuatorScrape(replicas=scrapes)

    def read(
        self, metric: str, labels: Mapping[str, str] | None = None, aggregate: str = "sum"
    ) -> Reading:
        """One value now; for several signals call ``scrape_all()`` once and read from it."""
        return self.scrape_all().value(metric, labels or {}, aggregate)

    def health(self) -> dict[str, str]:
        """Spring Boot health status per replica ("UP", "DOWN", or why it did not answer)."""
        replicas = self._replicas()
        with ThreadPoolExecutor(max_workers=min(8, len(replicas))) as pool:
            statuses = list(pool.map(self._health_one, replicas))
        return {r.url: status for r, status in zip(replicas, statuses, strict=True)}

    def _replicas(self) -> list[_Replica]:
        found: dict[str, _Replica] = {}
        for ep in self._endpoints:
            if isinstance(ep, _Replica):
                found.setdefault(ep.url, ep)
                continue
            try:
                addresses = self._resolve(ep.host, ep.port)
            except OSError as e:
                raise SourceError(
                    SOURCE, f"cannot resolve {ep.host}: {describe_request_error(e, 0)}"
                ) from None
            if not addresses:
                raise SourceError(SOURCE, f"{ep.host} resolved to no address")
            for addr in addresses:
                url = f"http://{_host_in_url(addr)}:{ep.port}"
                found.setdefault(url, _Replica(url, ep.auth))
        return list(found.values())

    def _get(
        self, replica: _Replica, path: str, accept: str, stream: bool = False
    ) -> requests.Response:
        return self._session.get(
            replica.url + path,
            auth=replica.auth,
            timeout=self._timeout,
            headers={"Accept": accept},
            stream=stream,
        )

    def _scrape_one(self, replica: _Replica) -> ReplicaScrape:
        deadline = time.monotonic() + self._timeout
        try:
            resp = self._get(replica, "/actuator/prometheus", "text/plain;version=0.0.4", True)
            body = read_body(resp, deadline, self._timeout, self._max_bytes)
        except requests.RequestException as e:
            return _failed(replica, describe_request_error(e, self._timeout))
        except UnicodeError:  # its text would hold the value: the password
            return _failed(replica, UNENCODABLE)
        except BodyError as e:
            return _failed(replica, str(e))
        fetched_at = datetime.now(UTC)
        if resp.status_code != 200:
            return _failed(replica, f"HTTP {resp.status_code}")
        try:
            families = parse(body.decode("utf-8", "replace"))  # the format's encoding
        except ExpositionError as e:  # it quotes the page: a proxy's may echo the request
            return _failed(replica, scrub_userinfo(str(e)))
        if not any(f.samples for f in families):  # a live actuator always has some
            return _failed(replica, "page without any sample")
        return ReplicaScrape(url=replica.url, fetched_at=fetched_at, families=families)

    def _health_one(self, replica: _Replica) -> str:
        try:
            resp = self._get(replica, "/actuator/health", "application/json")
        except requests.RequestException as e:
            return f"UNREACHABLE ({describe_request_error(e, self._timeout)})"
        except UnicodeError:
            return f"UNREACHABLE ({UNENCODABLE})"
        try:
            status = resp.json().get("status")
        except (ValueError, AttributeError):
            status = None
        return str(status) if isinstance(status, str) else f"UNKNOWN (HTTP {resp.status_code})"


def _failed(replica: _Replica, error: str) -> ReplicaScrape:
    return ReplicaScrape(url=replica.url, fetched_at=datetime.now(UTC), error=error)


def _host_in_url(addr: str) -> str:
    try:
        return f"[{addr}]" if ipaddress.ip_address(addr).version == 6 else addr
    except ValueError:
        return addr


def _parse_endpoints(spec: str) -> list[_Replica | _DnsEndpoint]:
    entries = [e.strip() for e in spec.split(",") if e.strip()]
    if not entries:
        raise ValueError("actuator endpoints: empty (give base URLs or tasks.<service>:9090)")
    return [_parse_endpoint(e) for e in entries]


def _parse_endpoint(entry: str) -> _Replica | _DnsEndpoint:
    """Messages quote the entry with any ``user:pass@`` as ``***@``."""
    shown = hide_userinfo(entry)
    if "://" in entry:
        url, auth = split_base_url(entry.rstrip("/"), "actuator endpoint", "AUTOSCALER_ACTUATOR")
        _check_auth(shown, auth)
        return _Replica(url=url, auth=auth)
    parts = urlsplit(f"//{entry}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"actuator endpoint {shown!r}: invalid port") from None
    if not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ValueError(f"actuator endpoint {shown!r}: expected tasks.<service>[:port]")
    auth = url_credentials(parts)
    _check_auth(shown, auth)
    return _DnsEndpoint(host=parts.hostname, port=port, auth=auth)


def _check_auth(shown: str, auth: tuple[str, str] | None) -> None:
    if auth is not None:
        require_latin1(
            f"actuator endpoint {shown!r} (AUTOSCALER_ACTUATOR): its user name or password",
            *auth,
        )
