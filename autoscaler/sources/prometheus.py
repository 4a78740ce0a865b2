"""Prometheus HTTP API, instant queries: one number (signals) or every series (alert rules)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import requests

from autoscaler.sources.errors import NoData, QueryRejected, SourceError
from autoscaler.sources.http_errors import (
    UNENCODABLE,
    describe_request_error,
    hide_userinfo,
    require_latin1,
    split_credentials,
)
from autoscaler.sources.reading import Reading

SOURCE = "prometheus"

Series = tuple[dict[str, str], float]
"""One series of an instant vector: its labels and its value."""


class PrometheusClient:
    """Reads single values from Prometheus. Credentials in the URL are sent, never shown.

    Credentials HTTP basic auth cannot carry (outside Latin-1) are refused here, at start-up.
    """

    def __init__(
        self, base_url: str, timeout: float, session: requests.Session | None = None
    ) -> None:
        url, auth = split_credentials(base_url.rstrip("/"))
        if auth is not None:
            require_latin1(
                f"Prometheus URL {hide_userinfo(base_url)!r} (AUTOSCALER_PROMETHEUS_URL): "
                "its user name or password",
                *auth,
            )
        self._base = url
        self._auth = auth
        self._timeout = timeout
        self._session = session or requests.Session()

    @property
    def url(self) -> str:
        """The base URL without credentials."""
        return self._base

    def query(self, promql: str) -> Reading:
        """Evaluate ``promql`` now; it must give one sample (aggregate with sum(...) etc.)."""
        return _single_reading(self._instant(promql), promql)

    def query_vector(self, promql: str) -> list[Series]:
        """Every series the expression gives now, NaN ones left out (empty when none)."""
        data = self._instant(promql)
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" and isinstance(result, list) and len(result) == 2:
            return _finite([({}, result[1])])
        if kind != "vector" or not isinstance(result, list):
            raise QueryRejected(SOURCE, f"expected an instant vector, got {kind}")
        return _finite([(dict(s.get("metric") or {}), s["value"][1]) for s in result])

    def _instant(self, promql: str) -> dict[str, Any]:
        """The ``data`` of an instant query; every failure is a SourceError."""
        try:
            resp = self._session.get(
                f"{self._base}/api/v1/query",
                params={"query": promql},
                auth=self._auth,
                timeout=self._timeout,
            )
        except requests.RequestException as e:
            raise SourceError(SOURCE, describe_request_error(e, self._timeout)) from None
        except UnicodeError:  # its text would hold the value: the password
            raise SourceError(SOURCE, UNENCODABLE) from None
        body = _json_or_none(resp)
        if resp.status_code in (400, 422):
            raise QueryRejected(SOURCE, f"query rejected: {_error_text(body)}")
        if resp.status_code != 200:
            detail = f" ({_error_text(body)})" if body is not None else ""
            raise SourceError(SOURCE, f"HTTP {resp.status_code}{detail}")
        if body is None or body.get("status") != "success":
            raise SourceError(SOURCE, "invalid answer (not a Prometheus API response)")
        data = body.get("data")
        return data if isinstance(data, dict) else {}

    def ready(self) -> bool:
        """True when Prometheus answers /-/ready with 200."""
        try:
            resp = self._session.get(
                f"{self._base}/-/ready", auth=self._auth, timeout=self._timeout
            )
        except (requests.RequestException, UnicodeError):
            return False
        return resp.status_code == 200


def _json_or_none(resp: requests.Response) -> dict[str, Any] | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _error_text(body: dict[str, Any] | None) -> str:
    if body is None:
        return "no error detail"
    kind = body.get("errorType")
    text = str(body.get("error", "no error detail"))
    return f"{kind}: {text}" if kind else text


def _single_reading(data: dict[str, Any], promql: str) -> Reading:
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar" and isinstance(result, list):
        return _reading(result, promql)
    if kind == "vector" and isinstance(result, list):
        if not result:
            raise NoData(f"prometheus: empty result for {promql}")
        if len(result) > 1:
            raise QueryRejected(
                SOURCE,
                f"query returned {len(result)} series, expected one: "
                f"aggregate it, e.g. sum({promql})",
            )
        return _reading(result[0].get("value", []), promql)
    if kind == "matrix":
        raise QueryRejected(SOURCE, "query returned a range vector: use an instant expression")
    raise QueryRejected(SOURCE, f"unsupported result type {kind!r}")


def _reading(sample: list[Any], promql: str) -> Reading:
    try:
        ts, raw = float(sample[0]), float(sample[1])
    except (IndexError, TypeError, ValueError):
        raise SourceError(SOURCE, "invalid sample in answer") from None
    if not math.isfinite(raw):
        raise NoData(f"prometheus: {promql} is {sample[1]} (no value)")
    return Reading(value=raw, observed_at=datetime.fromtimestamp(ts, UTC))


def _finite(rows: list[tuple[dict[str, str], Any]]) -> list[Series]:
    out = []
    for labels, raw in rows:
        try:
            v = float(raw)
        except (TypeError, ValueError):
            continue
        if not math.isnan(v):
            out.append((labels, v))
    return out
