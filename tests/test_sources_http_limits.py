"""The source timeout bounds a whole read, and answers have a size limit.

``requests``' timeout bounds each socket read only: a backend (or a proxy in front of it)
that trickles its answer would hold the pass for hours. The servers here are real sockets
on loopback that answer slowly or hugely; each test stops what it starts.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from autoscaler.sources.actuator import ActuatorClient
from autoscaler.sources.errors import QueryRejected, SourceError
from autoscaler.sources.http_body import MAX_BODY_BYTES
from autoscaler.sources.influx import InfluxReader
from autoscaler.sources.prometheus import PrometheusClient

Respond = Callable[[socket.socket, threading.Event], None]


class RawServer:
    """Accepts connections on 127.0.0.1 and lets ``respond`` write whatever it wants."""

    def __init__(self, respond: Respond) -> None:
        self._respond = respond
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            self._respond(conn, self._stop)
        except OSError:
            pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        for conn in self._conns:  # a client still reading sees the end of the answer
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Respond], RawServer]]:
    started: list[RawServer] = []

    def start(respond: Respond) -> RawServer:
        server = RawServer(respond)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def trickle(content_type: str) -> Respond:
    """Headers at once, then one byte of a long body every 0.1 s (each read is quick)."""

    def respond(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type.encode() + b"\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        while not stop.wait(0.1):
            conn.sendall(b" ")

    return respond


def complete(content_type: str, body: bytes, encoding: str | None = None) -> Respond:
    def respond(conn: socket.socket, stop: threading.Event) -> None:
        extra = f"Content-Encoding: {encoding}\r\n" if encoding else ""
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{extra}"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        conn.sendall(head.encode() + body)

    return respond


def finishes_within(seconds: float, read: Callable[[], object]) -> BaseException | None:
    """Run ``read`` in a thread; the exception it raised (None if it returned). Fails the
    test when it is still running after ``seconds``."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            read()
            outcome.append(None)
        except BaseException as e:  # handed to the test
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert outcome, f"still reading after {time.monotonic() - started:.1f}s"
    return outcome[0]


def test_a_trickling_prometheus_answer_is_a_timeout(serve: Callable[[Respond], RawServer]) -> None:
    server = serve(trickle("application/json"))
    c = PrometheusClient(server.url, timeout=0.5)
    error = finishes_within(5, lambda: c.query("up"))
    assert isinstance(error, SourceError), error
    assert error.source == "prometheus"
    assert "timeout after 0.5s" in error.message


def test_a_trickling_replica_is_a_timeout_of_that_replica(
    serve: Callable[[Respond], RawServer],
) -> None:
    slow = serve(trickle("text/plain; version=0.0.4"))
    fine = serve(complete("text/plain; version=0.0.4", b"userLogins_total 3.0\n"))
    c = ActuatorClient(f"{fine.url}, {slow.url}", timeout=0.5)
    error = finishes_within(5, lambda: c.read("userLogins_total"))
    assert isinstance(error, SourceError), error
    assert f"replica {slow.url}: timeout after 0.5s" in error.message
    assert fine.url not in error.message


def test_a_huge_prometheus_answer_is_refused(serve: Callable[[Respond], RawServer]) -> None:
    """A query that matches far too much (here 40 MiB of series) is no answer."""
    one = b'{"metric":{"instance":"10.0.0.1:9100"},"value":[1.7e9,"1"]}'
    series = b",".join([one] * (40 * 1024 * 1024 // len(one)))
    body = b'{"status":"success","data":{"resultType":"vector","result":[' + series + b"]}}"
    assert len(body) > MAX_BODY_BYTES
    server = serve(complete("application/json", body))
    with pytest.raises(SourceError, match=f"answer larger than {MAX_BODY_BYTES} bytes"):
        PrometheusClient(server.url, timeout=10).query_vector("up")


def test_a_compressed_page_that_unpacks_huge_is_refused(
    serve: Callable[[Respond], RawServer],
) -> None:
    """The limit counts what the page unpacks to, not what crosses the network."""
    page = b"# padding\n" * (MAX_BODY_BYTES // 10 + 1) + b"userLogins_total 3.0\n"
    packed = gzip.compress(page)
    assert len(packed) < MAX_BODY_BYTES // 100
    server = serve(complete("text/plain; version=0.0.4", packed, encoding="gzip"))
    with pytest.raises(SourceError, match="answer larger than"):
        ActuatorClient(server.url, timeout=10).read("userLogins_total")


def test_a_trickling_influxdb_answer_is_a_timeout(serve: Callable[[Respond], RawServer]) -> None:
    server = serve(trickle("application/json"))
    reader = InfluxReader(server.url, "shinyproxy_usagestats", None, None, 0.5, MAX_BODY_BYTES)
    error = finishes_within(5, lambda: reader.query("SELECT count(data) FROM event"))
    assert isinstance(error, SourceError), error
    assert error.source == "influx"
    assert "timeout after 0.5s" in error.message


def test_a_huge_influxdb_answer_is_refused_and_a_small_one_read(
    serve: Callable[[Respond], RawServer],
) -> None:
    def answer(rows: int) -> bytes:
        values = ",".join(f'[{i},"euler"]' for i in range(rows))
        series = '{"name":"event","columns":["time","data"],"values":[' + values + "]}"
        return ('{"results":[{"statement_id":0,"series":[' + series + "]}]}").encode()

    huge = serve(complete("application/json", answer(2_000_000)))
    reader = InfluxReader(huge.url, "db", None, None, 10, 1024 * 1024)
    with pytest.raises(SourceError, match="answer larger than 1048576 bytes"):
        reader.query("SELECT data FROM event")
    small = serve(complete("application/json", answer(3)))
    reader = InfluxReader(small.url, "db", None, None, 10, 1024 * 1024)
    with pytest.raises(QueryRejected, match="not a number"):  # read whole: its last row
        reader.query("SELECT data FROM event")
