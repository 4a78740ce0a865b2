"""POST JSON with the retry rules every HTTP receiver shares.

HTTP 429 waits for ``Retry-After``; 5xx and connection failures are retried with a
capped exponential backoff; other 4xx fail at once (retrying cannot fix them). Errors
name the receiver and the status, never the URL: webhook URLs are secrets.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, unquote_plus

import requests

from autoscaler.alerts.dispatch import DeliveryError
from autoscaler.sources.http_errors import UNENCODABLE, describe_request_error, scrub_userinfo

MAX_RETRY_AFTER = 120.0
_URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")
"""urllib3's loggers that name a request's target (path and query) or its full URL."""


class _Redact(logging.Filter):
    """urllib3 logs request targets at DEBUG; a webhook's path or query is its secret."""

    def __init__(self) -> None:
        super().__init__("redact-secrets")
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            if any(s in text for s in self.secrets):
                for s in sorted(self.secrets, key=len, reverse=True):  # longest first
                    text = text.replace(s, "<secret>")
                record.msg, record.args = text, ()
        return True


_redact = _Redact()


def keep_out_of_logs(url: str) -> None:
    """Redact this URL's request target (path and query) wherever urllib3 would log it.

    Registered: the target as requests sends it (``https://host?token=X`` is sent as
    ``/?token=X``, and characters may be percent-encoded), the path and query as written,
    and the query alone (a proxy logs the full URL; any form then still holds it).
    """
    for name in _URLLIB3_LOGGERS:
        logger = logging.getLogger(name)
        if _redact not in logger.filters:
            logger.addFilter(_redact)
    _redact.secrets.update(s for s in _targets(url) if len(s) > 1)


def _targets(url: str) -> set[str]:
    rest = url.split("://", 1)[-1]
    cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=-1)
    written = rest[cut:].split("#", 1)[0] if cut >= 0 else ""
    try:
        sent = requests.Request("POST", url).prepare().path_url
    except (requests.RequestException, ValueError):  # not sendable: nothing to log either
        sent = ""
    found: set[str] = set()
    for target in (written, sent):  # each whole, its path and its query
        path, _, query = target.partition("?")
        found |= {target, path, query}
    return found


class RateLimiter:
    """At most one request per ``interval`` seconds per key (e.g. per webhook)."""

    def __init__(
        self,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, key: str) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._last.get(key, -1e18) + self.interval)
            self._last[key] = start
        if start > now:
            self._sleep(start - now)


def retry_after(value: str | None, fallback: float, now: Callable[[], float] = time.time) -> float:
    """Seconds to wait: ``Retry-After`` is a number of seconds or an HTTP date (RFC 9110
    10.2.3); a value that is neither waits ``fallback``."""
    if value is None:
        return fallback
    try:
        seconds = float(value)
    except ValueError:
        try:
            at = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return fallback
        seconds = (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() - now()
    if math.isnan(seconds):  # float() takes "nan", which sleep() refuses
        return fallback
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def post_json(
    url: str,
    payload: Any,
    *,
    what: str,
    session: requests.Session,
    timeout: float = 10.0,
    attempts: int = 5,
    backoff: float = 1.0,
    max_backoff: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    before_each: Callable[[], None] | None = None,
    refused: Callable[[requests.Response], str | None] | None = None,
) -> requests.Response:
    """``refused``: the reason a 2xx answer gives for not taking the message (Slack's
    ``"ok": false``), or None; such an answer fails at once, as a 4xx does."""
    last = "no attempt"
    delay = backoff
    for attempt in range(1, attempts + 1):
        if before_each is not None:
            before_each()
        try:
            resp = session.post(url, json=payload, timeout=timeout)
        except requests.RequestException as e:
            last = describe_request_error(e, timeout)
        except UnicodeError:  # its text would hold the value; retrying cannot help
            raise DeliveryError(f"{what}: {UNENCODABLE}") from None
        else:
            if 200 <= resp.status_code < 300:
                why = refused(resp) if refused is not None else None
                if why is None:
                    return resp
                raise DeliveryError(f"{what}: HTTP {resp.status_code} {_shown(why, url)}")
            last = f"HTTP {resp.status_code}"
            if resp.status_code == 429:
                if attempt < attempts:
                    sleep(retry_after(resp.headers.get("Retry-After"), delay))
                    delay = min(delay * 2, max_backoff)
                continue
            if 400 <= resp.status_code < 500:
                detail = resp.text.strip().splitlines()[0] if resp.text.strip() else ""
                raise DeliveryError(
                    f"{what}: HTTP {resp.status_code} {_shown(detail, url)}".rstrip()
                )
        if attempt < attempts:
            sleep(delay)
            delay = min(delay * 2, max_backoff)
    raise DeliveryError(f"{what}: gave up after {attempts} attempts ({last})")


MIN_PIECE = 8
"""Pieces of a URL this long or longer are hidden on their own: a secret one (Slack's
24-character token, a token in the query) is long, while the short ones ("api", "v1",
"hook") are names that would mangle the server's own words."""


def _shown(text: str, url: str, most: int = 120) -> str:
    """An answer's text fit for a message: on one line, no part of the URL in it nor the
    Authorization header its ``user:pass@`` became, cut to ``most`` characters (after
    hiding: a cut secret would no longer be found)."""
    text = "".join(c for c in " ".join(text.split()) if c.isprintable())
    return _hide(scrub_userinfo(text), url)[:most]


def _hide(text: str, url: str) -> str:
    """A server that echoes the request (``Cannot POST /services/T0/B0/secret``) shows no
    part of the URL's path or query, however it writes it: whole or a piece of it,
    percent-encoded or decoded, or with ``/`` escaped as JSON may (``\\/``)."""
    for secret in sorted(_echoes(url), key=len, reverse=True):
        text = text.replace(secret, "<secret>")
    return text


def _echoes(url: str) -> set[str]:
    targets = {t for t in _targets(url) if len(t) > 1}
    pieces: set[str] = set()
    for target in targets:
        path, _, query = target.partition("?")
        pieces.update(path.split("/"))
        pieces.update(pair.rpartition("=")[2] for pair in query.split("&"))
    found = targets | {p for p in pieces if len(p) >= MIN_PIECE}
    forms = {form for s in found for form in (s, unquote(s), unquote_plus(s))}
    forms |= {s.replace("/", "\\/") for s in forms}
    return {s for s in forms if len(s) > 1}


class JsonPoster:
    """What a receiver that POSTs JSON keeps: its config, a session and its retry budget."""

    def __init__(
        self,
        cfg: Any,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 5,
    ) -> None:
        self.cfg = cfg
        self.send_resolved: bool = cfg.send_resolved
        self.session = session or requests.Session()
        self.sleep = sleep
        self.attempts = attempts
