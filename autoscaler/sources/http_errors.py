"""Short, secret-free descriptions of HTTP failures, shared by the HTTP-based sources."""

from __future__ import annotations

import http.client
import socket
import ssl
from urllib.parse import SplitResult, urlsplit, urlunsplit

import requests


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """Return the URL without ``user:pass@`` and the credentials (None when there are none)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    auth = (parts.username or "", parts.password or "")
    return urlunsplit(_without_userinfo(parts)), auth


def redact_url(url: str) -> str:
    """The URL as it may appear in messages: no credentials, no query string."""
    parts = _without_userinfo(urlsplit(url))
    return urlunsplit(parts._replace(query="", fragment=""))


def _without_userinfo(parts: SplitResult) -> SplitResult:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return parts._replace(netloc=netloc)


def describe_request_error(exc: BaseException, timeout: float) -> str:
    """Name the kind of failure ("timeout after 5s", "connection refused", ...).

    The exception text itself is not used: it may carry URLs, hosts or credentials.
    """
    if isinstance(exc, requests.Timeout):
        return f"timeout after {timeout:g}s"
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "name resolution failed"
        if isinstance(cause, TimeoutError):
            return f"timeout after {timeout:g}s"
        if isinstance(cause, ssl.SSLError):
            return "TLS error"
        if isinstance(cause, ConnectionResetError | http.client.RemoteDisconnected):
            return "connection closed by the server"
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect"
    return f"request failed ({type(exc).__name__})"


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or any(cur is s for s in seen):
            continue
        seen.append(cur)
        linked = [cur.__cause__, cur.__context__, getattr(cur, "reason", None), *cur.args]
        todo.extend(e for e in linked if isinstance(e, BaseException))
    return seen
