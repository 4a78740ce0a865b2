"""Docker events -> immediate passes: a node changes, a session service appears or goes."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

WATCHED_TYPES = ["node", "service"]


class DockerEventWatcher:
    """Follows the manager's event stream in a thread; reconnects with capped backoff.

    A stream that fails or ends (the engine restarted, a proxy cut it) is opened again
    after a wait that doubles until an event comes through or a stream stays open for
    ``max_backoff``, so an engine that closes every stream at once is not asked again in a
    busy loop. Events of the time in between are lost: once the stream is open again, one
    ``docker:reconnected`` pass makes up for them, also when the first attempt failed. It
    goes to ``on_reconnect`` (by default ``on_event``): the sidecar runs it at once, past
    the spacing of event passes and past the backoff of failing ones, since a manager
    reachable again is what ends such a streak.

    An outage is logged twice, not once per attempt: a warning when it begins and a line
    when the stream works again; the attempts in between go to debug.

    A stream over TCP (``DOCKER_HOST=tcp://...``) gets TCP keepalive: an idle stream whose
    path silently died (a NAT gateway or load balancer dropped the flow after its idle
    timeout, a manager that lost power) would otherwise block for ever, since docker reads
    events without a timeout and a quiet Swarm sends nothing. The probes also keep such a
    flow from going idle in the first place.
    """

    def __init__(
        self,
        client: Any,
        on_event: Callable[[str], None],
        max_backoff: float = 30.0,
        first_delay: float = 1.0,
        keepalive: Keepalive | None = None,
        on_reconnect: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.keepalive = keepalive or Keepalive()
        self.on_event = on_event
        self.on_reconnect = on_reconnect or on_event
        self.max_backoff = max_backoff
        self.first_delay = first_delay
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, name="docker-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            stream = self._stream
        _close(stream)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        delays = retry_delays(self.first_delay, self.max_backoff)
        outage = Outage()
        attempted = False
        while not self._stop.is_set():
            stream = None
            try:
                stream = self.client.events(decode=True, filters={"type": WATCHED_TYPES})
                with self._lock:
                    self._stream = stream
                self.keepalive.apply(stream)
                if self._stop.is_set():  # stop() came while connecting: it saw no stream
                    return
                # Not the first attempt: events were missed since the last stream, or since
                # the first attempt failed (passes, failing too, may be backed off minutes).
                if attempted:
                    self.on_reconnect("docker:reconnected")
                opened = time.monotonic()
                for ev in stream:
                    if self._stop.is_set():
                        return
                    delays = retry_delays(self.first_delay, self.max_backoff)
                    outage.over(opened)
                    self.on_event(f"docker:{ev.get('Type', '?')}:{ev.get('Action', '?')}")
                if self._stop.is_set():
                    return
                if time.monotonic() - opened >= self.max_backoff:  # it worked for a while
                    delays = retry_delays(self.first_delay, self.max_backoff)
                    outage.over(opened)
                delay = next(delays)
                outage.failed("docker event stream ended; reconnecting in %.1fs", delay)
            except Exception as e:
                if self._stop.is_set():
                    return
                delay = next(delays)
                outage.failed("docker event stream failed (%s); retrying in %.1fs", e, delay)
            finally:
                attempted = True
                with self._lock:
                    self._stream = None
                _close(stream)
            self._stop.wait(delay)


class Outage:
    """Logs a broken event stream once when it breaks and once when it works again: an
    engine down for an hour would otherwise leave a warning every ``max_backoff``."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.attempts = 0

    def failed(self, msg: str, *args: object) -> None:
        if self.since is None:
            self.since, self.attempts = time.monotonic(), 1
            log.warning(msg + " (further attempts are logged at debug level)", *args)
        else:
            self.attempts += 1
            log.debug(msg, *args)

    def over(self, opened: float) -> None:
        """The stream opened at ``opened`` has proved to work (an event came through, or it
        stayed open a while)."""
        if self.since is None:
            return
        down, attempts = max(0.0, opened - self.since), self.attempts
        self.since, self.attempts = None, 0
        log.info(
            "docker event stream works again after %.0fs and %d failure(s)",
            down,
            attempts,
        )


class Keepalive:
    """TCP keepalive for an event stream: ``idle`` seconds of silence, then ``count`` probes
    ``interval`` apart, so a dead path fails the read after about idle + count x interval.

    60 s idle stays below the idle timeouts of AWS NAT gateways and load balancers (350 s).
    """

    def __init__(self, idle: int = 60, interval: int = 10, count: int = 6) -> None:
        self.idle, self.interval, self.count = idle, interval, count

    def apply(self, stream: Any) -> bool:
        """Switch keepalive on for the stream's socket; False when it is not TCP (a unix
        socket cannot die silently; ssh:// has its own keepalive)."""
        sock = tcp_socket(stream)
        if sock is None:
            return False
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, self.idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, self.interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, self.count)
        return True


def tcp_socket(stream: Any) -> socket.socket | None:
    """The TCP socket under docker's event stream, or None (unix socket, ssh, unknown)."""
    try:
        raw = stream._response.raw._fp.fp.raw  # urllib3 -> http.client -> SocketIO
    except AttributeError:
        return None
    sock = getattr(raw, "_sock", raw)  # a SocketIO wraps the socket; TLS is one already
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        return sock
    return None


def _close(stream: Any) -> None:
    if stream is None:
        return
    try:
        stream.close()
    except Exception:  # closing a dead stream may fail; it is given up anyway
        log.debug("closing the event stream failed", exc_info=True)


def retry_delays(first: float, cap: float) -> Iterator[float]:
    """Waits before each reconnection: doubling from ``first``, never above ``cap``."""
    delay = min(first, cap)
    while True:
        yield delay
        delay = min(delay * 2, cap)
