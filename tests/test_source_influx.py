"""InfluxReader against a real influxd holding ShinyProxy's usage events.

Events are written exactly as ShinyProxy's InfluxDBCollector does: one line per POST to
/write?db=..., measurement ``event``, tags ``username`` (spaces escaped) and ``type``, a
string field ``data``, and no timestamp (the server stamps it).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from autoscaler.lab.backends import InfluxBackend, influxd_config, wait_ready
from autoscaler.lab.ports import free_port
from autoscaler.sources.errors import NoData, QueryRejected, SourceError
from autoscaler.sources.http_body import MAX_BODY_BYTES
from autoscaler.sources.influx import InfluxReader
from tests.fixtures_backends import USAGESTATS_DB, InfluxLab, need_binary

pytestmark = pytest.mark.real

STARTS_LAST_5M = (
    'SELECT count("data") FROM "event" WHERE "type" = \'ProxyStart\' AND time > now() - 5m'
)


def shinyproxy_line(user: str, event_type: str, data: str | None) -> str:
    """The body ShinyProxy posts for one event (InfluxDBCollector.accept)."""
    return (
        f"event,username={user.replace(' ', chr(92) + ' ')},"
        f'type={event_type.replace(" ", chr(92) + " ")} data="{data or ""}"'
    )


def post(lab: InfluxLab, body: str, db: str | None = None) -> int:
    url = f"{lab.url}/write?db={db or lab.database}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}  # HttpURLConnection's
    return requests.post(url, data=body.encode("utf-8"), headers=headers, timeout=5).status_code


def reader(
    lab: InfluxLab, username: str | None = None, password: str | None = None, timeout: float = 5.0
) -> InfluxReader:
    """As the sidecar builds it: each answer bounded in time and size."""
    return InfluxReader(lab.url, lab.database, username, password, timeout, MAX_BODY_BYTES)


def test_line_format_matches_shinyproxy() -> None:
    assert shinyproxy_line("alice", "ProxyStart", "euler") == (
        'event,username=alice,type=ProxyStart data="euler"'
    )
    assert shinyproxy_line("alice smith", "Login", None) == (
        'event,username=alice\\ smith,type=Login data=""'
    )


def test_count_of_proxy_starts_in_the_last_5_minutes(usagestats: InfluxLab) -> None:
    events = [
        ("alice", "Login", None),
        ("alice", "ProxyStart", "euler"),
        ("bob", "ProxyStart", "euler"),
        ("alice smith", "ProxyStart", "06_tabsets"),
        ("alice", "ProxyStop", "euler"),
        ("bob", "Logout", None),
    ]
    for event in events:
        assert post(usagestats, shinyproxy_line(*event)) == 204
    before = datetime.now(UTC)
    reading = reader(usagestats).query(STARTS_LAST_5M)
    assert reading.value == 3.0
    assert before - timedelta(seconds=1) <= reading.observed_at <= datetime.now(UTC)
    spaced = "SELECT count(data) FROM event WHERE username = 'alice smith'"
    assert reader(usagestats).query(spaced).value == 1.0
    logins = "SELECT count(data) FROM event WHERE type = 'Login' AND time > now() - 5m"
    assert reader(usagestats).query(logins).value == 1.0


def test_group_by_time_gives_the_newest_bucket(usagestats: InfluxLab) -> None:
    ten_minutes_ago_ns = time.time_ns() - 10 * 60 * 10**9
    old = f"{shinyproxy_line('carol', 'ProxyStart', 'euler')} {ten_minutes_ago_ns}"
    assert post(usagestats, old) == 204
    # one request, so the server stamps the three with the same time (one bucket)
    batch = "\n".join(shinyproxy_line(u, "ProxyStart", "euler") for u in ("ann", "ben", "cy"))
    assert post(usagestats, batch) == 204
    grouped = (
        "SELECT count(data) FROM event WHERE type = 'ProxyStart' AND time > now() - 1h "
        "GROUP BY time(1m) fill(none)"
    )
    assert reader(usagestats).query(grouped).value == 3.0
    assert reader(usagestats).query(grouped + " ORDER BY time DESC").value == 3.0
    assert reader(usagestats).query(STARTS_LAST_5M).value == 3.0


def test_field_selects_the_column(usagestats: InfluxLab) -> None:
    assert post(usagestats, shinyproxy_line("alice", "ProxyStart", "euler")) == 204
    q = "SELECT count(data) AS starts FROM event WHERE type = 'ProxyStart'"
    assert reader(usagestats).query(q, field="starts").value == 1.0
    with pytest.raises(QueryRejected, match="column 'stops' not in the result"):
        reader(usagestats).query(q, field="stops")


def test_text_value_is_not_a_number(usagestats: InfluxLab) -> None:
    assert post(usagestats, shinyproxy_line("alice", "ProxyStart", "euler")) == 204
    with pytest.raises(QueryRejected, match="not a number"):
        reader(usagestats).query("SELECT last(data) FROM event")


def test_empty_result_is_no_data(usagestats: InfluxLab) -> None:
    assert post(usagestats, shinyproxy_line("alice", "ProxyStart", "euler")) == 204
    never_written = "SELECT count(data) FROM event WHERE type = 'ProxyStartFailed'"
    with pytest.raises(NoData, match="empty result"):
        reader(usagestats).query(never_written)


def test_wrong_database_is_a_source_error(usagestats: InfluxLab) -> None:
    with pytest.raises(SourceError, match="database not found: no_such_db") as e:
        reader(usagestats).query(STARTS_LAST_5M, database="no_such_db")
    assert e.value.source == "influx"
    assert not isinstance(e.value, QueryRejected)  # a setting to fix, reported as down
    wrong_default = InfluxReader(usagestats.url, "other_db", None, None, timeout=5)
    with pytest.raises(SourceError, match="database not found"):
        wrong_default.query(STARTS_LAST_5M)


def test_query_error_is_a_rejected_query(usagestats: InfluxLab) -> None:
    with pytest.raises(QueryRejected, match="query error"):
        reader(usagestats).query("SELECT count(data) FROM")


def test_influxd_stopped_is_a_source_error_without_the_password(
    fresh_influxd: InfluxLab,
) -> None:
    r = reader(fresh_influxd, username="stats", password="s3cret-pw", timeout=2.0)
    assert post(fresh_influxd, shinyproxy_line("alice", "ProxyStart", "euler")) == 204
    assert r.query(STARTS_LAST_5M).value == 1.0
    fresh_influxd.backend.stop()
    with pytest.raises(SourceError, match="connection refused") as e:
        r.query(STARTS_LAST_5M)
    assert e.value.source == "influx"
    assert "s3cret-pw" not in str(e.value)


def test_url_credentials_are_not_shown(usagestats: InfluxLab) -> None:
    r = InfluxReader(
        usagestats.url.replace("http://", "http://stats:s3cret-pw@"),
        usagestats.database,
        None,
        None,
        timeout=5,
    )
    assert "s3cret-pw" not in r.url
    with pytest.raises(ValueError, match="expected http") as e:
        InfluxReader("influx://stats:s3cret-pw@db:8086", "x", None, None, timeout=1)
    assert "s3cret-pw" not in str(e.value)


def test_several_series_are_refused_not_the_first_one_read(usagestats: InfluxLab) -> None:
    """GROUP BY a tag gives one series per tag value: reading the first one (alphabetical,
    "Login" before "ProxyStart") would be a guess, like several Prometheus series."""
    for event in [("alice", "Login", None), ("bob", "ProxyStart", "euler")]:
        assert post(usagestats, shinyproxy_line(*event)) == 204
    assert post(usagestats, shinyproxy_line("cy", "ProxyStart", "euler")) == 204
    by_type = "SELECT count(data) FROM event WHERE time > now() - 5m GROUP BY type"
    with pytest.raises(QueryRejected, match=r"2 series \(grouped by type\)") as e:
        reader(usagestats).query(by_type)
    assert e.value.source == "influx"
    one_type = "SELECT count(data) FROM event WHERE type = 'ProxyStart' GROUP BY type"
    assert reader(usagestats).query(one_type).value == 2.0


def influxd_with(
    backend_dir: Path, name: str, configure: Callable[[str], str]
) -> Iterator[InfluxLab]:
    """A real influxd whose configuration ``configure`` changes, with the usage database."""
    need_binary("influxd", "influxdb")
    http_port, rpc_port = free_port(), free_port()
    config = configure(influxd_config(backend_dir / "home", http_port, rpc_port))
    (backend_dir / "influxd.conf").write_text(config)
    log_path = backend_dir / "influxd.log"
    log = log_path.open("ab")
    binary = shutil.which("influxd") or "influxd"
    process = subprocess.Popen(
        [binary, "run", "-config", str(backend_dir / "influxd.conf")], stdout=log, stderr=log
    )
    backend = InfluxBackend(name, process, f"http://127.0.0.1:{http_port}", log_path, log)
    try:
        assert wait_ready(f"{backend.url}/ping", process, 30, (204,)), backend.log_tail()
        backend.create_database(USAGESTATS_DB)
        yield InfluxLab(backend, USAGESTATS_DB)
    finally:
        backend.stop()


@pytest.fixture
def limited_influxd(backend_dir: Path) -> Iterator[InfluxLab]:
    """A real influxd that returns at most 3 rows per answer (``max-row-limit``)."""

    def limit(config: str) -> str:
        limited = config.replace(
            "auth-enabled = false", "auth-enabled = false\n  max-row-limit = 3"
        )
        assert "max-row-limit = 3" in limited
        return limited

    yield from influxd_with(backend_dir, "influxd-limited", limit)


def test_an_answer_cut_at_the_row_limit_is_refused(limited_influxd: InfluxLab) -> None:
    """Cut at max-row-limit, the newest rows (those read) are the ones left out: the
    value read would be an old one, reported as fresh."""
    now_ns = time.time_ns()
    lines = [
        f"{shinyproxy_line('u', 'ProxyStart', 'euler')} {now_ns - m * 60 * 10**9}"
        for m in range(10, 0, -1)
    ]
    assert post(limited_influxd, "\n".join(lines)) == 204
    per_minute = (
        "SELECT count(data) FROM event WHERE time > now() - 15m GROUP BY time(1m) fill(none)"
    )
    with pytest.raises(QueryRejected, match="max-row-limit"):
        reader(limited_influxd).query(per_minute)
    newest = per_minute + " ORDER BY time DESC LIMIT 1"
    assert reader(limited_influxd).query(newest).value == 1.0


def test_a_chunked_read_gets_every_chunk_and_fails_on_an_error_in_any(
    limited_influxd: InfluxLab,
) -> None:
    """series() (long reads: backtests) is not cut at max-row-limit, and an error that
    comes after rows were sent (with HTTP 200, in a later chunk) fails the whole read
    instead of leaving the rows before it to pass as complete."""
    now_ns = time.time_ns()
    lines = [f"{shinyproxy_line(f'u{i}', 'ProxyStart', 'euler')} {now_ns - i}" for i in range(10)]
    assert post(limited_influxd, "\n".join(lines)) == 204
    r = InfluxReader(limited_influxd.url, limited_influxd.database, None, None, timeout=5)
    query = 'SELECT "data", "username" FROM "event"'
    series = r.series(query, chunk_size=4)
    assert len(series) == 3  # one series, in three chunks
    assert sorted(row[2] for s in series for row in s["values"]) == sorted(
        f"u{i}" for i in range(10)
    )
    no_rp = f'SELECT "data" FROM "{limited_influxd.database}"."no_rp"."event"'
    with pytest.raises(QueryRejected, match="retention policy not found: no_rp"):
        r.series(f"{query}; {no_rp}", chunk_size=4)
    with pytest.raises(SourceError, match="database not found: other_db"):
        r.series(query, database="other_db")


@pytest.fixture
def one_query_influxd(backend_dir: Path) -> Iterator[InfluxLab]:
    """A real influxd that runs one query at a time (``max-concurrent-queries = 1``)."""
    yield from influxd_with(
        backend_dir,
        "influxd-one-query",
        lambda config: config + "\n[coordinator]\n  max-concurrent-queries = 1\n",
    )


def test_a_server_too_busy_to_run_the_query_is_down_not_a_rejected_query(
    one_query_influxd: InfluxLab,
) -> None:
    """InfluxDB says "max-concurrent-queries limit exceeded" (and "query-timeout limit
    exceeded") as a statement's error in an HTTP 200 answer, like a query's own fault; but
    the query is fine and the server is not read: the source is down, as Prometheus' 503
    on a timeout is."""
    now_ns = time.time_ns()
    row = shinyproxy_line("u", "ProxyStart", "e" * 2000)
    lines = [f"{row} {now_ns - i}" for i in range(5000)]  # 10 MB of rows
    assert post(one_query_influxd, "\n".join(lines)) == 204
    assert reader(one_query_influxd).query(STARTS_LAST_5M).value == 5000.0  # a sound query
    with _held_query(one_query_influxd, 'SELECT "data" FROM "event"'):
        with pytest.raises(SourceError, match="max-concurrent-queries limit exceeded") as e:
            reader(one_query_influxd).query(STARTS_LAST_5M)
        assert not isinstance(e.value, QueryRejected)


@contextlib.contextmanager
def _held_query(lab: InfluxLab, influxql: str) -> Iterator[None]:
    """A chunked read that nobody reads past its first bytes: with a small receive buffer
    (kernel autotuning would take in tens of MB), influxd cannot write the rest, so the
    query runs, and holds its slot, until the connection closes."""
    query = urlencode({"db": lab.database, "q": influxql, "chunked": "true", "chunk_size": "1"})
    host, port = urlsplit(lab.url).netloc.split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.settimeout(10)
        sock.connect((host, int(port)))
        sock.sendall(f"GET /query?{query} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        first = b""
        while b'"results"' not in first:  # the first rows are out: the query runs
            chunk = sock.recv(4096)
            assert chunk, first
            first += chunk
        yield
    finally:
        sock.close()


def test_a_url_that_is_not_influxdbs_query_api_is_down_not_a_rejected_query(
    usagestats: InfluxLab,
) -> None:
    """A wrong path (here a prefix influxd does not serve) answers 404: no query was run."""
    wrong = InfluxReader(f"{usagestats.url}/influx", usagestats.database, None, None, 5)
    with pytest.raises(SourceError, match="HTTP 404") as e:
        wrong.query(STARTS_LAST_5M)
    assert not isinstance(e.value, QueryRejected)


class CannedInflux:
    """Loopback HTTP that answers every query with a fixed JSON body."""

    def __init__(self) -> None:
        self.body = b"{}"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            do_POST = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def canned_influx() -> Iterator[CannedInflux]:
    canned = CannedInflux()
    thread = threading.Thread(target=canned.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield canned
    finally:
        canned.server.shutdown()
        thread.join()
        canned.server.server_close()


def _series(**kw: Any) -> dict[str, Any]:
    return {"results": [{"statement_id": 0, "series": [{"name": "event", **kw}]}]}


MALFORMED = {
    "a list": [],
    "results not a list": {"results": "x"},
    "no result": {"results": []},
    "no columns": _series(values=[[1, 2]]),
    "short row": _series(columns=["time", "count"], values=[[1]]),
    "text time": _series(columns=["time", "count"], values=[[1, 2], ["x", 3]]),
}


@pytest.mark.parametrize(
    "error", ["query-timeout limit exceeded", "query engine shutdown", "query interrupted"]
)
def test_a_query_the_server_stopped_is_down_not_rejected(
    canned_influx: CannedInflux, error: str
) -> None:
    """The other words of InfluxDB 1.x (query/executor.go) for a query it did not finish,
    in the answer influxd 1.6 sends with ``[coordinator] query-timeout`` exceeded."""
    body = {"results": [{"statement_id": 0, "error": error}]}
    canned_influx.body = json.dumps(body).encode()
    r = InfluxReader(canned_influx.url, "db", None, None, timeout=2)
    with pytest.raises(SourceError, match=f"server error: {error}") as e:
        r.query("SELECT count(data) FROM event")
    assert not isinstance(e.value, QueryRejected)


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_answer_is_a_source_error(canned_influx: CannedInflux, body: Any) -> None:
    """A proxy or another service at the InfluxDB URL: a SourceError, never another
    exception (collect() would not catch it and the whole pass would stop)."""
    canned_influx.body = json.dumps(body).encode()
    r = InfluxReader(canned_influx.url, "db", None, None, timeout=2)
    with pytest.raises(SourceError, match="invalid answer") as e:
        r.query("SELECT count(data) FROM event")
    assert not isinstance(e.value, QueryRejected)
