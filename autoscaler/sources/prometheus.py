"""Prometheus HTTP API, instant queries: one number (signals) or every series (alert rules)."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from typing import Any

import requests

from autoscaler.sources.errors import NoData, QueryRejected, SourceError
from autoscaler.sources.http_body import MAX_BODY_BYTES, BodyError, read_body
from autoscaler.sources.http_errors import (
    UNENCODABLE,
    describe_request_error,
    hide_userinfo,
    require_latin1,
    scrub_userinfo,
    split_base_url,
)
from autoscaler.sources.reading import Reading

SOURCE = "prometheus"

Series = tuple[dict[str, str], float]
"""One series of an instant vector: its labels and its value."""


class PrometheusClient:
    """Reads single values from Prometheus. Credentials in the URL are sent, never shown.

    Credentials HTTP basic auth cannot carry (outside Latin-1) are refused here, at start-up.
    ``timeout`` bounds each query as a whole; answers over ``max_bytes`` are refused.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float,
        session: requests.Session | None = None,
        max_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        url, auth = split_base_url(
            base_url.rstrip("/"), "Prometheus URL", "AUTOSCALER_PROMETHEUS_URL"
        )
        if auth is not None:
            require_latin1(
                f"Prometheus URL {hide_userinfo(base_url)!r} (AUTOSCALER_PROMETHEUS_URL): "
                "its user name or password",
                *auth,
            )
        self._base = url
        self._auth = auth
        self._timeout = timeout
        self._max_bytes = max_bytes
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
        if kind == "scalar" and isinstance(result, list):
            return _finite([({}, _sample(result)[1])])
        if kind != "vector" or not isinstance(result, list):
            raise QueryRejected(SOURCE, f"expected an instant vector, got {kind}")
        return _finite([(_labels(s), _sample(_value_of(s))[1]) for s in result])

    def _instant(self, promql: str) -> dict[str, Any]:
        """The ``data`` of an instant query; every failure is a SourceError."""
        deadline = time.monotonic() + self._timeout
        try:
            resp = self._session.get(
                f"{self._base}/api/v1/query",
                params={"query": promql},
                auth=self._auth,
                timeout=self._timeout,
                stream=True,
            )
            text = read_body(resp, deadline, self._timeout, self._max_bytes)
        except requests.RequestException as e:
            raise SourceError(SOURCE, describe_request_error(e, self._timeout)) from None
        except UnicodeError:  # its text would hold the value: the password
            raise SourceError(SOURCE, UNENCODABLE) from None
        except BodyError as e:
            raise SourceError(SOURCE, str(e)) from None
        body = _json_or_none(text)
        if resp.status_code in (400, 422):
            raise QueryRejected(SOURCE, f"query rejected: {_error_text(body)}")
        if resp.status_code != 200:
            detail = f" ({_error_text(body)})" if body is not None else ""
            raise SourceError(SOURCE, f"HTTP {resp.status_code}{detail}")
        if body is not None and body.get("status") == "error":  # an error, said with HTTP 200
            raise SourceError(SOURCE, f"error answer: {_error_text(body)}")
        if body is None or body.get("status") != "success":
            raise SourceError(SOURCE, "invalid answer (not a Prometheus API response)")
        _refuse_partial(body.get("warnings"))
        data = body.get("data")
        if not isinstance(data, dict):
            raise SourceError(SOURCE, "invalid answer (no data)")
        return data

    def ready(self) -> bool:
        """True when Prometheus answers /-/ready with 200."""
        try:
            resp = self._session.get(
                f"{self._base}/-/ready", auth=self._auth, timeout=self._timeout
            )
        except (requests.RequestException, UnicodeError):
            return False
        return resp.status_code == 200


def _json_or_none(text: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _error_text(body: dict[str, Any] | None) -> str:
    if body is None:
        return "no error detail"
    kind = scrub_userinfo(str(body.get("errorType") or ""))[:40]
    text = scrub_userinfo(str(body.get("error", "no error detail")))[:300]
    return f"{kind}: {text}" if kind else text


_NOT_A_COUNTER = "might not be a counter"


def _refuse_partial(warnings: Any) -> None:
    """An answer with warnings may lack data (a remote-read or store that failed, a
    partial response of Thanos or Mimir): a partial sum would undercount, so it is no
    answer. PromQL's own warnings fault the query; its infos (newer Prometheus versions
    list them apart, older ones among the warnings) change nothing."""
    if not warnings:
        return
    texts = [w for w in map(str, warnings if isinstance(warnings, list) else [warnings])]
    # Prometheus 2.48 and 2.49 said "might not be a counter" as a warning, later an info
    texts = [t for t in texts if not t.startswith("PromQL info:") and _NOT_A_COUNTER not in t]
    if not texts:
        return
    shown = scrub_userinfo("; ".join(texts))[:300]
    if all(t.startswith("PromQL warning:") for t in texts):
        raise QueryRejected(SOURCE, f"query has warnings: {shown}")
    raise SourceError(SOURCE, f"answer may be partial (warnings: {shown})")


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
        return _reading(_value_of(result[0]), promql)
    if kind == "matrix":
        raise QueryRejected(SOURCE, "query returned a range vector: use an instant expression")
    raise QueryRejected(SOURCE, f"unsupported result type {kind!r}")


def _invalid(what: str) -> SourceError:
    return SourceError(SOURCE, f"invalid answer ({what})")


def _labels(series: Any) -> dict[str, str]:
    if not isinstance(series, dict):
        raise _invalid("a series that is not an object")
    labels = series.get("metric") or {}
    if not isinstance(labels, dict):
        raise _invalid("labels that are not an object")
    return {str(k): str(v) for k, v in labels.items()}


def _value_of(series: Any) -> Any:
    """The ``[time, "value"]`` of one series of an instant vector."""
    if not isinstance(series, dict):
        raise _invalid("a series that is not an object")
    if "value" not in series and "histogram" in series:
        raise QueryRejected(SOURCE, "query returned a histogram, not a number")
    return series.get("value")


def _sample(sample: Any) -> tuple[datetime, float]:
    """``[time, "value"]`` -> its time and value; SourceError when it is not that."""
    if not isinstance(sample, list) or len(sample) != 2:
        raise _invalid("a sample that is not [time, value]")
    try:
        ts, raw = float(sample[0]), float(sample[1])
        at = datetime.fromtimestamp(ts, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise _invalid("a sample that is not [time, value]") from None
    return at, raw


def _reading(sample: Any, promql: str) -> Reading:
    at, raw = _sample(sample)
    if math.isnan(raw):  # 0/0: a ratio of nothing, as empty as no answer
        raise NoData(f"prometheus: {promql} is {sample[1]} (no value)")
    if math.isinf(raw):  # a quantile past the last bucket: very high, never 0
        raise QueryRejected(SOURCE, f"{promql} is {sample[1]}: not a number to scale on")
    return Reading(value=raw, observed_at=at)


def _finite(rows: list[tuple[dict[str, str], float]]) -> list[Series]:
    return [(labels, v) for labels, v in rows if not math.isnan(v)]
