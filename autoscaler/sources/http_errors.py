"""Short, secret-free descriptions of HTTP failures, shared by the HTTP-based sources."""

from __future__ import annotations

import http.client
import re
import socket
import ssl
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

import requests


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """Return the URL without ``user:pass@`` and the credentials (None when there are none)."""
    parts = urlsplit(url)
    auth = url_credentials(parts)
    if auth is None:
        return url, None
    return urlunsplit(_without_userinfo(parts)), auth


def url_credentials(parts: SplitResult) -> tuple[str, str] | None:
    """The user name and password of a URL, percent-decoded as in a browser or curl (a
    password holding ``@`` or ``:`` can only be written %40, %3A); None when it has none."""
    if parts.username is None and parts.password is None:
        return None
    return unquote(parts.username or ""), unquote(parts.password or "")


_ENCODE_HINT = "write / ? # @ : in a user name or password as %2F %3F %23 %40 %3A"


def split_base_url(url: str, name: str, setting: str) -> tuple[str, tuple[str, str] | None]:
    """An http(s) base URL without its ``user:pass@``, and the credentials (None when there
    are none). A malformed URL is a ValueError that names ``name`` and ``setting`` and
    quotes the URL with anything that may be userinfo hidden: urlsplit's own error quotes
    the "port", which in ``user:pa/ss@host`` is part of the password."""
    shown = f"{name} {hide_userinfo(url)!r} ({setting})"
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(f"{shown}: invalid URL") from None
    # "/", "?" or "#" in a password end the host part early: the rest, and the password
    # with it, would be sent as a path to another host and quoted wherever the URL is
    if "@" in parts.path + parts.query + parts.fragment:
        raise ValueError(f"{shown}: '@' after the host ({_ENCODE_HINT})")
    try:
        parts.port  # noqa: B018  # raises on a port that is no number
    except ValueError:
        raise ValueError(f"{shown}: invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{shown}: expected http(s)://host:port")
    return split_credentials(url)


def redact_url(url: str) -> str:
    """The URL as it may appear in messages: no credentials, no query string. Never
    raises: a URL that urlsplit cannot take apart, or that has an ``@`` past its host (a
    password holding ``/``), is hidden as ``hide_userinfo`` does."""
    try:
        parts = urlsplit(url)
        clean = _without_userinfo(parts)
    except ValueError:
        clean = None
    if clean is None or "@" in parts.path + parts.query + parts.fragment:
        return hide_userinfo(url.split("#", 1)[0]).split("?", 1)[0]
    return urlunsplit(clean._replace(query="", fragment=""))


def _without_userinfo(parts: SplitResult) -> SplitResult:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return parts._replace(netloc=netloc)


UNENCODABLE = (
    "request could not be encoded: a user name, password or token has a character outside Latin-1"
)
"""The fixed text of a UnicodeError while sending: the exception's own text (its repr
above all) carries the value that could not be encoded, i.e. the secret."""

_USERINFO_IN_TEXT = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)\S*@")
"""Up to the last ``@`` before a blank: a password may hold ``/``, ``?``, ``#`` or quotes
(more than the userinfo may go: hiding too much is the safe side)."""


def hide_userinfo(entry: str) -> str:
    """``entry`` (a URL or ``host:port``, as given) fit to quote in a message: anything
    that may be ``user:pass@`` shows as ``***@`` and a query string as ``?***``.

    Works on the text, so it also holds for entries that ``urlsplit`` cannot parse: all
    up to the last ``@`` after the scheme is hidden (a password may hold ``@``, ``/``...).
    """
    scheme, sep, rest = entry.partition("://")
    if not sep:
        scheme, rest = "", entry
    else:
        scheme += sep
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    if "?" in rest:
        rest = rest.split("?", 1)[0] + "?***"
    return scheme + rest


_CREDENTIALS_IN_TEXT = re.compile(
    r"\b(Basic|Bearer)(\s+)(?!(?:realm|scope|charset|error)=)[A-Za-z0-9._~+/\\-]+=*",
    re.IGNORECASE,
)
"""An Authorization value (RFC 9110 11.4: scheme, then a token68; ``\\/`` as JSON escapes
``/``); ``Bearer realm="x"`` is a challenge (RFC 6750 3), no credential."""


def scrub_userinfo(text: str) -> str:
    """Free text (an error message) with the ``user:pass@`` of every URL in it as ``***@``
    and every ``Basic``/``Bearer`` credential as ``***``: a server or proxy that echoes the
    request in its error page echoes the Authorization header too, whose base64 is the
    password."""
    return _CREDENTIALS_IN_TEXT.sub(r"\1\2***", _USERINFO_IN_TEXT.sub(r"\1***@", text))


def latin1_problem(*values: str | None) -> bool:
    """True when a value has a character HTTP cannot send in a header (basic auth and
    other header values are Latin-1). Never raises, so no exception holds the value."""
    return any(v is not None and any(ord(c) > 0xFF for c in v) for v in values)


def require_latin1(where: str, *values: str | None) -> None:
    """ValueError when a credential could not be sent. ``where`` is the subject of the
    message and names the setting or file ("AUTOSCALER_X_FILE /run/secrets/x: the token");
    the value itself is never shown."""
    if latin1_problem(*values):
        raise ValueError(
            f"{where} has a character outside Latin-1, which HTTP basic auth and headers "
            "cannot carry: use ASCII credentials"
        )


def describe_request_error(exc: BaseException, timeout: float) -> str:
    """Name the kind of failure ("timeout after 5s", "connection refused", ...).

    The exception text itself is not used: it may carry URLs, hosts or credentials.
    """
    if isinstance(exc, UnicodeError):
        return UNENCODABLE
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
