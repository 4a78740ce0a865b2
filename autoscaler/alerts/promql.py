"""Instant PromQL queries that may return many series: one alert per series."""

from __future__ import annotations

import math
from typing import Any

import requests

from autoscaler.sources.errors import SourceError
from autoscaler.sources.http_errors import describe_request_error, split_credentials

SOURCE = "prometheus"

Series = tuple[dict[str, str], float]


class VectorQuery:
    """Credentials in the base URL are sent, never shown."""

    def __init__(
        self, base_url: str, timeout: float = 10.0, session: requests.Session | None = None
    ) -> None:
        self._base, self._auth = split_credentials(base_url.rstrip("/"))
        self._timeout = timeout
        self._session = session or requests.Session()

    def query_vector(self, promql: str) -> list[Series]:
        """Every series the expression returns now (empty when none); SourceError when down."""
        try:
            resp = self._session.get(
                f"{self._base}/api/v1/query",
                params={"query": promql},
                auth=self._auth,
                timeout=self._timeout,
            )
        except requests.RequestException as e:
            raise SourceError(SOURCE, describe_request_error(e, self._timeout)) from None
        try:
            body: Any = resp.json()
        except ValueError:
            body = None
        if resp.status_code != 200 or not isinstance(body, dict):
            why = body.get("error") if isinstance(body, dict) else None
            raise SourceError(SOURCE, f"HTTP {resp.status_code}" + (f" ({why})" if why else ""))
        data = body.get("data") or {}
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" and isinstance(result, list) and len(result) == 2:
            return _finite([({}, result[1])])
        if kind != "vector" or not isinstance(result, list):
            raise SourceError(SOURCE, f"expected an instant vector, got {kind}")
        return _finite([(dict(s.get("metric") or {}), s["value"][1]) for s in result])


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
