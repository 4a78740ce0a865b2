"""InfluxDB 1.x (ShinyProxy usage events): one InfluxQL query -> the newest row's value."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from influxdb import InfluxDBClient
from influxdb.exceptions import InfluxDBClientError, InfluxDBServerError

from autoscaler.sources.errors import NoData, QueryRejected, SourceError
from autoscaler.sources.http_body import BodyError, read_body
from autoscaler.sources.http_errors import (
    UNENCODABLE,
    describe_request_error,
    hide_userinfo,
    redact_url,
    require_latin1,
    scrub_userinfo,
    split_base_url,
)
from autoscaler.sources.reading import Reading

SOURCE = "influx"


class InfluxReader:
    """Runs InfluxQL SELECTs. ``observed_at`` is the time of the query: the answer covers
    the data up to now, whatever time column an aggregate reports."""

    def __init__(
        self,
        url: str,
        database: str,
        username: str | None,
        password: str | None,
        timeout: float,
        max_bytes: int | None = None,
    ) -> None:
        """``max_bytes``: bound each answer to this size and ``timeout`` in all (the
        sidecar's signals); None: only each socket read is bounded (long event reads)."""
        _, auth = split_base_url(url, "InfluxDB URL", "AUTOSCALER_INFLUXDB_URL")
        parts = urlsplit(url)
        self._url = redact_url(url)
        self._database = database
        in_url = auth or (None, None)
        self._password = password or in_url[1]
        require_latin1(
            f"InfluxDB URL {hide_userinfo(url)!r} (AUTOSCALER_INFLUXDB_URL): "
            "its user name or password",
            in_url[0],
            in_url[1],
        )
        self._timeout = timeout
        self._client = InfluxDBClient(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 8086),
            username=username or in_url[0],
            password=self._password,
            database=database,
            ssl=parts.scheme == "https",
            verify_ssl=parts.scheme == "https",
            timeout=timeout,
            retries=1,
            path=parts.path.rstrip("/"),
            session=_WholeAnswer(timeout, max_bytes) if max_bytes is not None else None,
        )

    @property
    def url(self) -> str:
        return self._url

    def query(
        self, influxql: str, field: str | None = None, database: str | None = None
    ) -> Reading:
        """Value of ``field`` (default: first non-time column) in the newest row of the one
        series; several series (GROUP BY a tag) are refused, as picking one would be a
        guess. ``database`` overrides the reader's default."""
        now = datetime.now(UTC)
        raw = self.raw(influxql, database)
        return Reading(value=_newest_value(raw, field, influxql), observed_at=now)

    def raw(self, influxql: str, database: str | None = None) -> Any:
        """The first result of a query as InfluxDB's JSON (times in epoch ms); every failure
        is a SourceError without the password."""
        db = database or self._database
        with self._answer(db):
            result = self._client.query(influxql, database=db, epoch="ms")
        if isinstance(result, list):
            if not result:
                raise _invalid("no result")
            result = result[0]
        return result.raw

    def series(
        self, influxql: str, database: str | None = None, chunk_size: int = 10_000
    ) -> list[dict[str, Any]]:
        """Every series of every chunk of a chunked answer (times in epoch ms), for reads of
        any length: max-row-limit cuts only unchunked answers. The client's own chunked read
        fails on a second chunk (msgpack) or drops an error that comes after the first rows
        (JSON), so the chunks are read here: an error in any of them fails the whole read."""
        db = database or self._database
        params = {"q": influxql, "db": db, "epoch": "ms", "chunked": "true"}
        params["chunk_size"] = str(chunk_size)
        out: list[dict[str, Any]] = []
        with self._answer(db):
            resp = self._client.request(
                "query", params=params, stream=True, headers={"Accept": "application/json"}
            )
            try:
                for line in resp.iter_lines():
                    if line.strip():
                        out += self._chunk_series(json.loads(line))
            finally:
                resp.close()
        return out

    @staticmethod
    def _chunk_series(chunk: Any) -> list[dict[str, Any]]:
        if not isinstance(chunk, dict):
            raise _invalid("a chunk that is not an object")
        results = chunk.get("results", [])
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise _invalid("results that are not objects")
        for error in [chunk.get("error"), *(r.get("error") for r in results)]:
            if error:  # as the client raises it for an unchunked answer (ResultSet)
                raise InfluxDBClientError(str(error))
        series = [s for r in results for s in r.get("series") or []]
        if not all(isinstance(s, dict) for s in series):
            raise _invalid("series that are not objects")
        return series

    def close(self) -> None:
        self._client.close()

    @contextmanager
    def _answer(self, db: str) -> Iterator[None]:
        """Every failure of a request and its answer as a SourceError without the password."""
        try:
            yield
        except _AnswerRefused as e:
            raise SourceError(SOURCE, str(e)) from None
        except requests.RequestException as e:
            raise SourceError(SOURCE, describe_request_error(e, self._timeout)) from None
        except UnicodeError:  # its text would hold the value: the password
            raise SourceError(SOURCE, UNENCODABLE) from None
        except InfluxDBServerError as e:
            raise SourceError(SOURCE, self._scrub(f"server error: {_text(e.args)}")) from None
        except InfluxDBClientError as e:
            text = self._scrub(_client_error(e, db))
            if text.startswith("query error"):
                raise QueryRejected(SOURCE, text) from None
            raise SourceError(SOURCE, text) from None
        except (AttributeError, TypeError, KeyError, IndexError, ValueError):
            # JSON (or msgpack) that is not InfluxDB's, or no JSON at all
            raise _invalid("not an InfluxDB 1.x response") from None

    def _scrub(self, message: str) -> str:
        if self._password:
            message = message.replace(self._password, "***")
        # and an Authorization header the server (or a proxy) echoes back
        return scrub_userinfo(message)


class _AnswerRefused(requests.RequestException):
    """An answer too slow or too large (http_body.BodyError, as the client raises it)."""


class _WholeAnswer(requests.Session):
    """The client's session, reading each answer whole within ``timeout`` and ``max_bytes``
    (requests' own timeout bounds each socket read: a trickling answer never ends)."""

    def __init__(self, timeout: float, max_bytes: int) -> None:
        super().__init__()
        self._timeout = timeout
        self._max_bytes = max_bytes

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self._timeout
        kwargs["stream"] = True
        resp = super().request(method, url, *args, **kwargs)
        try:
            body = read_body(resp, deadline, self._timeout, self._max_bytes)
        except BodyError as e:
            raise _AnswerRefused(str(e)) from None
        resp._content = body
        resp._content_consumed = True  # type: ignore[attr-defined]  # iter_lines reads _content
        return resp


def _text(args: tuple[Any, ...]) -> str:
    first = args[0] if args else ""
    text = first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)
    return text.strip()[:300]


_NOT_RUN = (
    "query-timeout limit exceeded",
    "max-concurrent-queries limit exceeded",
    "query interrupted",
    "query aborted",
    "query engine shutdown",
)
"""InfluxDB's words (query/executor.go) for a query it did not run to the end because it
is busy or stopping. They come as a statement's error in an HTTP 200 answer, like a
query's own faults, yet the same query succeeds once the server has room."""


def _client_error(e: InfluxDBClientError, db: str) -> str:
    """The message; it starts "query error" only when the query itself is at fault."""
    content = _text((e.content,))
    if "database not found" in content:
        return f"database not found: {db}"
    if e.code in (401, 403):
        return f"HTTP {e.code}: authorization failed"
    if e.code not in (None, 400):  # a wrong path (404), a proxy's 429: InfluxDB is not read
        return f"HTTP {e.code}: {content}"
    if any(words in content for words in _NOT_RUN):
        return f"server error: {content}"
    prefix = f"HTTP {e.code}: " if e.code else ""
    return f"query error: {prefix}{content}"


def _invalid(what: str) -> SourceError:
    return SourceError(SOURCE, f"invalid answer ({what})")


def _newest_value(raw: Any, field: str | None, influxql: str) -> float:
    if not isinstance(raw, dict):
        raise _invalid("a result that is not an object")
    series = raw.get("series") or []
    if not isinstance(series, list) or not all(isinstance(s, dict) for s in series):
        raise _invalid("series that are not objects")
    if len(series) > 1:
        tags = sorted({k for s in series for k in (s.get("tags") or {})})
        why = f"grouped by {', '.join(tags)}" if tags else "several measurements"
        raise QueryRejected(
            SOURCE, f"query returned {len(series)} series ({why}), expected one: aggregate them"
        )
    if not series or not series[0].get("values"):
        raise NoData(f"influx: empty result for {influxql}")
    if raw.get("partial") or series[0].get("partial"):  # cut at the server's max-row-limit
        raise QueryRejected(
            SOURCE, "answer cut short by the server (max-row-limit): the newest rows are missing"
        )
    columns = series[0].get("columns")
    rows = series[0]["values"]
    if not isinstance(columns, list) or not all(
        isinstance(row, list) and len(row) == len(columns) for row in rows
    ):
        raise _invalid("rows that do not match the columns")
    name = field or next((c for c in columns if c != "time"), None)
    if name is None or name not in columns:
        raise QueryRejected(
            SOURCE, f"column {name!r} not in the result (columns: {', '.join(map(str, columns))})"
        )
    if "time" in columns:
        t = columns.index("time")
        if not all(row[t] is None or isinstance(row[t], int | float) for row in rows):
            raise _invalid("a time that is not epoch milliseconds")
        rows = sorted(rows, key=lambda row: row[t] if row[t] is not None else -math.inf)
    value = rows[-1][columns.index(name)]
    if value is None:
        raise NoData(f"influx: newest row has no value for {name!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise QueryRejected(SOURCE, f"column {name!r} is not a number: {str(value)[:50]!r}")
    if not math.isfinite(value):
        raise NoData(f"influx: newest value of {name!r} is {value}")
    return float(value)
