"""HTTP endpoints: /metrics, /healthz, /plan and POST /webhook/alertmanager."""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from autoscaler.metrics import SidecarMetrics
from autoscaler.settings import parse_listen

log = logging.getLogger(__name__)

READ_TIMEOUT = 30.0
"""Seconds a connection may stay silent before it is closed (per read)."""

REQUEST_DEADLINE = 60.0
"""Seconds one request may take in all, so a client that sends a byte now and then is cut off."""

MAX_CONNECTIONS = 64
"""Connections served at once; more are closed at once rather than each holding a thread."""


UNAUTHORISED = {"error": "missing or wrong bearer token"}
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="autoscaler"'}
"""Sent with every 401: RFC 9110 (15.5.2) requires it, RFC 6750 (3) gives its form."""


class AlertsApi(Protocol):
    def list_alerts(self) -> list[dict[str, Any]]: ...
    def list_silences(self) -> list[dict[str, Any]]: ...
    def add_silence(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def expire_silence(self, silence_id: str) -> bool: ...


@dataclass
class ServerHooks:
    """What the server needs from the rest of the sidecar, as plain callables."""

    metrics: SidecarMetrics
    healthy: Callable[[], tuple[bool, dict[str, Any]]]
    last_plan: Callable[[], dict[str, Any] | None]
    trigger: Callable[[str], None]
    webhook_token: str | None
    webhook_max_bytes: int = 1024 * 1024
    alerts: AlertsApi | None = None
    api_token: str | None = None
    """Required to create or expire silences when set; an empty one refuses every call."""


def validate_alertmanager_payload(body: bytes) -> tuple[dict[str, Any] | None, str]:
    """Parse an Alertmanager webhook body; return (payload, "") or (None, why it is bad)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"body is not JSON: {e}"
    except RecursionError:
        return None, "body is nested too deeply"
    if not isinstance(data, dict):
        return None, "body must be a JSON object"
    alerts = data.get("alerts")
    if not isinstance(alerts, list) or not all(isinstance(a, dict) for a in alerts):
        return None, "'alerts' must be a list of objects"
    if "status" in data and data["status"] not in ("firing", "resolved"):
        return None, "'status' must be firing or resolved"
    return data, ""


def make_handler(hooks: ServerHooks) -> type[BaseHTTPRequestHandler]:
    def allowed(path: str) -> tuple[str, ...]:
        """The methods ``path`` answers; none for a path that is not here."""
        if path in ("/metrics", "/healthz", "/plan"):
            return ("GET", "HEAD")
        if path == "/webhook/alertmanager":
            return ("POST",)
        if hooks.alerts is not None:
            if path == "/api/alerts":
                return ("GET", "HEAD")
            if path == "/api/silences":
                return ("GET", "HEAD", "POST")
            if path.startswith("/api/silences/"):
                return ("DELETE",)
        return ()

    class Handler(BaseHTTPRequestHandler):
        server_version = "autoscaler"
        _answered = False  # whether this request's answer has begun
        timeout = READ_TIMEOUT  # a client that stalls must not hold a thread forever

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

        def handle_one_request(self) -> None:
            # READ_TIMEOUT bounds each read; this bounds the whole request and its answer
            deadline = threading.Timer(REQUEST_DEADLINE, self._cut_off)
            deadline.daemon = True
            deadline.start()
            try:
                super().handle_one_request()
            finally:
                deadline.cancel()

        def _cut_off(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):  # already closed
                self.connection.shutdown(socket.SHUT_RDWR)  # wakes the blocked read or write

        def _send(
            self,
            code: int,
            body: bytes,
            ctype: str = "application/json",
            headers: dict[str, str] | None = None,
        ) -> None:
            self._answered = True
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
            self._send(code, json.dumps(obj).encode(), headers=headers)

        def _unauthorised(self) -> None:
            self._json(401, UNAUTHORISED, CHALLENGE)

        def _serve(self) -> None:
            self._answered = False
            path = self.path.split("?", 1)[0]
            methods = allowed(path)
            if not methods:
                self._json(404, {"error": "not found"})
            elif self.command not in methods:
                # RFC 9110 15.5.6: a 405 lists the methods the resource takes
                error = {"error": f"method {self.command} not allowed"}
                self._json(405, error, {"Allow": ", ".join(methods)})
            else:
                try:
                    self._route(path)
                except (ConnectionError, TimeoutError):
                    raise  # the client's connection failed: handle_error logs it quietly
                except Exception:
                    if self._answered:
                        raise
                    # A failure of the sidecar (a full disk under the silences, a bug) must
                    # be an answer and a logged traceback, not a dropped connection.
                    log.exception("http: %s %r failed", self.command, path)
                    if path == "/webhook/alertmanager":
                        hooks.metrics.webhook_requests.labels("500").inc()
                    self.close_connection = True  # a request body may be left unread
                    self._json(500, {"error": "internal error; the sidecar's log has details"})

        do_GET = do_HEAD = do_POST = do_DELETE = do_PUT = do_PATCH = do_OPTIONS = _serve

        def _route(self, path: str) -> None:
            if path == "/metrics":
                self._send(200, generate_latest(hooks.metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok, detail = hooks.healthy()
                self._json(200 if ok else 503, {"status": "ok" if ok else "failing", **detail})
            elif path == "/plan":
                plan = hooks.last_plan()
                if plan is None:
                    self._json(404, {"error": "no pass has made a plan yet"})
                else:
                    self._json(200, plan)
            elif path == "/webhook/alertmanager":
                code, msg = self._webhook()
                hooks.metrics.webhook_requests.labels(str(code)).inc()
                self._json(code, msg, CHALLENGE if code == 401 else None)
            else:
                self._alerts_api(path)

        def _alerts_api(self, path: str) -> None:
            assert hooks.alerts is not None  # allowed() routes nothing here without it
            if path == "/api/alerts":
                self._json(200, {"alerts": hooks.alerts.list_alerts()})
            elif self.command in ("GET", "HEAD"):
                self._json(200, {"silences": hooks.alerts.list_silences()})
            elif not self._api_authorised():
                self._unauthorised()
            elif self.command == "POST":
                self._silence()
            elif hooks.alerts.expire_silence(path.removeprefix("/api/silences/")):
                self._json(200, {"status": "expired"})
            else:
                self._json(404, {"error": "no such active silence"})

        def _silence(self) -> None:
            assert hooks.alerts is not None
            length = _length(self.headers.get("Content-Length")) or 0
            if length <= 0 or length > hooks.webhook_max_bytes:
                self.close_connection = True
                limit = hooks.webhook_max_bytes
                self._json(400, {"error": f"a JSON body of 1 to {limit} bytes is required"})
                return
            try:
                body = json.loads(self.rfile.read(length))
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                self._json(200, hooks.alerts.add_silence(body))
            except ValueError as e:  # JSONDecodeError is one too
                self._json(400, {"error": str(e)})
            except RecursionError:
                self._json(400, {"error": "the body is nested too deeply"})

        def _api_authorised(self) -> bool:
            if hooks.api_token is None:  # no token configured: none needed
                return True
            # An empty token (an empty secret file) must lock the API, not open it.
            return hooks.api_token != "" and _bearer(self.headers, hooks.api_token)

        def _webhook(self) -> tuple[int, dict[str, Any]]:
            if not self._authorised():
                return 401, UNAUTHORISED
            length = _length(self.headers.get("Content-Length"))
            if length is None:
                return 400, {"error": "Content-Length required"}
            if length > hooks.webhook_max_bytes:
                self.close_connection = True  # the unread body must not be parsed as a request
                return 400, {"error": f"body over {hooks.webhook_max_bytes} bytes"}
            payload, why = validate_alertmanager_payload(self.rfile.read(length))
            if payload is None:
                return 400, {"error": why}
            receiver = str(payload.get("receiver", ""))[:64]
            hooks.trigger(f"alertmanager:{receiver}" if receiver else "alertmanager")
            return 200, {"status": "accepted", "alerts": len(payload["alerts"])}

        def _authorised(self) -> bool:
            token = hooks.webhook_token
            return token is not None and token != "" and _bearer(self.headers, token)

    return Handler


def _bearer(headers: Any, token: str) -> bool:
    """``Authorization: Bearer TOKEN``; the scheme in any case (RFC 9110), in constant time."""
    scheme, _, got = headers.get("Authorization", "").strip().partition(" ")
    same = hmac.compare_digest(got.strip().encode(), token.encode())
    return scheme.lower() == "bearer" and same


def _length(text: str | None) -> int | None:
    """A Content-Length: ASCII digits only (int() would also take "1_3" or "١٣")."""
    if text is None or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``MAX_CONNECTIONS`` of them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        if ":" in address[0]:  # an IPv6 address; "::" takes IPv4 too (Linux's default)
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._refused_logged_at = float("-inf")

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            now = time.monotonic()
            if now - self._refused_logged_at >= 60:  # one line a minute, not one per attempt
                self._refused_logged_at = now
                log.warning("http: %d connections open; refusing more", MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            # a client gone mid-answer, or cut off at the deadline: not worth a traceback
            log.debug("http: connection error", exc_info=True)
        else:
            log.exception("http: error while serving a request")


class HttpServer:
    def __init__(self, listen: str, hooks: ServerHooks) -> None:
        self.httpd = _BoundedServer(parse_listen(listen), make_handler(hooks))
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        """The port listened on: the one given, or the free one chosen for port 0."""
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
