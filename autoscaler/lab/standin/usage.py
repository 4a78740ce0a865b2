"""ShinyProxy's usage events in InfluxDB 1.x line protocol, posted without a timestamp.

ShinyProxy's InfluxDBCollector formats ``event,username=%s,type=%s data="%s"`` escaping only
spaces in the two tag values, posts it with Java's HttpURLConnection defaults and counts only
HTTP 204 as success. InfluxDB stamps the receive time.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import requests

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-www-form-urlencoded"
"""What HttpURLConnection sends for a POST body when no content type is set."""


def event_line(username: str, event_type: str, data: str | None) -> str:
    """One event exactly as ShinyProxy writes it (no timestamp, no trailing newline)."""
    user = username.replace(" ", "\\ ")
    kind = event_type.replace(" ", "\\ ")
    return f'event,username={user},type={kind} data="{data or ""}"'


def redact(url: str) -> str:
    """The URL without user info or query secrets, for logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    query = "&".join(q for q in parts.query.split("&") if q.startswith("db="))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@dataclass
class UsageStats:
    written: int = 0
    failed: int = 0
    last_error: str = ""


class InfluxUsageWriter:
    """Posts events from a background thread so a slow or absent InfluxDB never blocks a start."""

    def __init__(self, write_url: str, timeout: float = 5.0) -> None:
        if "/write?db=" not in write_url:
            raise ValueError(f"not an InfluxDB 1.x write URL (no /write?db=): {redact(write_url)}")
        self._url = write_url
        self._timeout = timeout
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._session = requests.Session()
        self.stats = UsageStats()
        self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
        self._thread.start()

    def submit(self, username: str, event_type: str, data: str | None) -> None:
        self._queue.put(event_line(username, event_type, data))

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every submitted event was posted (or failed)."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        done.wait(timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=self._timeout + 1)

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            try:
                if body is None:
                    return
                self._post(body)
            finally:
                self._queue.task_done()

    def _post(self, body: str) -> None:
        try:
            r = self._session.post(
                self._url,
                data=body.encode("utf-8"),
                headers={"Content-Type": CONTENT_TYPE},
                timeout=self._timeout,
            )
        except requests.RequestException as e:
            self._fail(f"cannot reach {redact(self._url)}: {type(e).__name__}")
            return
        if r.status_code == 204:
            self.stats.written += 1
        else:
            self._fail(f"{redact(self._url)} answered {r.status_code}: {r.text[:200]}")

    def _fail(self, message: str) -> None:
        self.stats.failed += 1
        self.stats.last_error = message
        log.warning("usage event not written: %s", message)
