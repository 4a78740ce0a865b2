"""Docker events -> immediate passes: a node changes, a session service appears or goes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

WATCHED_TYPES = ["node", "service"]


class DockerEventWatcher:
    """Follows the manager's event stream in a thread; reconnects with capped backoff."""

    def __init__(
        self,
        client: Any,
        on_event: Callable[[str], None],
        max_backoff: float = 30.0,
        first_delay: float = 1.0,
    ) -> None:
        self.client = client
        self.on_event = on_event
        self.max_backoff = max_backoff
        self.first_delay = first_delay
        self._stop = threading.Event()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, name="docker-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # closing a dead stream may fail; we are leaving anyway
                log.debug("closing the event stream failed", exc_info=True)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        delays = retry_delays(self.first_delay, self.max_backoff)
        while not self._stop.is_set():
            try:
                self._stream = self.client.events(decode=True, filters={"type": WATCHED_TYPES})
                delays = retry_delays(self.first_delay, self.max_backoff)
                for ev in self._stream:
                    if self._stop.is_set():
                        return
                    self.on_event(f"docker:{ev.get('Type', '?')}:{ev.get('Action', '?')}")
            except Exception as e:
                if self._stop.is_set():
                    return
                delay = next(delays)
                log.warning("docker event stream failed (%s); retrying in %.1fs", e, delay)
                self._stop.wait(delay)


def retry_delays(first: float, cap: float) -> Iterator[float]:
    """Waits before each reconnection: doubling from ``first``, never above ``cap``."""
    delay = min(first, cap)
    while True:
        yield delay
        delay = min(delay * 2, cap)
