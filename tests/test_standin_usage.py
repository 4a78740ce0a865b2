"""Usage events: ShinyProxy's exact InfluxDB line, its request, and a real influxd."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import requests

from autoscaler.lab.standin.usage import InfluxUsageWriter, event_line, redact
from tests.fixtures_backends import InfluxLab


def test_lines_are_shinyproxys_format() -> None:
    line = event_line("alice", "ProxyStart", "euler")
    assert line == 'event,username=alice,type=ProxyStart data="euler"'
    assert event_line("alice", "Login", None) == 'event,username=alice,type=Login data=""'
    # only spaces are escaped in tag values, as InfluxDBCollector does
    assert event_line("Jane Doe", "Logout", "") == 'event,username=Jane\\ Doe,type=Logout data=""'
    assert event_line("a,b=c", "ProxyStop", "x") == 'event,username=a,b=c,type=ProxyStop data="x"'


def test_redact_drops_credentials() -> None:
    url = "http://bob:secret@127.0.0.1:8086/write?db=usage&u=bob&p=secret"
    assert redact(url) == "http://127.0.0.1:8086/write?db=usage"


def test_rejects_a_url_that_is_not_a_write_url() -> None:
    with pytest.raises(ValueError, match="write"):
        InfluxUsageWriter("http://user:pw@127.0.0.1:1/query")


class _Capture(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, str | None, bytes]]] = []
    status: ClassVar[int] = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append((self.command, self.path, self.headers.get("Content-Type"), body))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Capture]]]:
    handler = type("Capture", (_Capture,), {"seen": [], "status": 204})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_posts_the_bytes_shinyproxy_posts(receiver: tuple[str, type[_Capture]]) -> None:
    url, handler = receiver
    writer = InfluxUsageWriter(f"{url}/write?db=shinyproxy_usagestats")
    try:
        writer.submit("alice", "ProxyStart", "euler")
        writer.flush()
    finally:
        writer.close()
    assert handler.seen == [
        (
            "POST",
            "/write?db=shinyproxy_usagestats",
            "application/x-www-form-urlencoded",
            b'event,username=alice,type=ProxyStart data="euler"',
        )
    ]
    assert writer.stats.written == 1


def test_only_204_counts_as_written(receiver: tuple[str, type[_Capture]]) -> None:
    url, handler = receiver
    handler.status = 200
    writer = InfluxUsageWriter(f"{url}/write?db=x")
    try:
        writer.submit("alice", "Login", None)
        writer.flush()
    finally:
        writer.close()
    assert (writer.stats.written, writer.stats.failed) == (0, 1)
    assert "200" in writer.stats.last_error


def test_influx_down_is_reported_without_secrets() -> None:
    writer = InfluxUsageWriter("http://u:topsecret@127.0.0.1:9/write?db=x&p=topsecret")
    try:
        writer.submit("alice", "Login", None)
        writer.flush()
    finally:
        writer.close()
    assert writer.stats.failed == 1
    assert "topsecret" not in writer.stats.last_error


@pytest.mark.real
def test_real_influxd_stores_the_events_with_receive_time(usagestats: InfluxLab) -> None:
    writer = InfluxUsageWriter(usagestats.write_url)
    try:
        writer.submit("Jane Doe", "Login", None)
        writer.submit("Jane Doe", "ProxyStart", "euler")
        writer.flush()
    finally:
        writer.close()
    assert writer.stats.written == 2, writer.stats.last_error
    r = requests.get(
        f"{usagestats.url}/query",
        params={"db": "shinyproxy_usagestats", "q": "SELECT * FROM event", "epoch": "s"},
        timeout=5,
    )
    series = r.json()["results"][0]["series"][0]
    rows = [dict(zip(series["columns"], v, strict=True)) for v in series["values"]]
    assert {(row["username"], row["type"], row["data"]) for row in rows} == {
        ("Jane Doe", "Login", ""),
        ("Jane Doe", "ProxyStart", "euler"),
    }
    assert all(row["time"] > 1_600_000_000 for row in rows)
