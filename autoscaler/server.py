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
    class Handler(BaseHTTPRequestHandler):
        server_version = "autoscaler"
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

        def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def _not_allowed(self) -> None:
            self._json(405, {"error": f"method {self.command} not allowed"})

        do_PUT = do_PATCH = do_OPTIONS = _not_allowed

        def _json(self, code: int, obj: Any) -> None:
            self._send(code, json.dumps(obj).encode())

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(hooks.metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok, detail = hooks.healthy()
                self._json(200 if ok else 503, {"status": "ok" if ok else "failing", **detail})
            elif path in ("/api/alerts", "/api/silences") and hooks.alerts is not None:
                if path == "/api/alerts":
                    self._json(200, {"alerts": hooks.alerts.list_alerts()})
                else:
                    self._json(200, {"silences": hooks.alerts.list_silences()})
            elif path == "/plan":
                plan = hooks.last_plan()
                if plan is None:
                    self._json(404, {"error": "no pass has made a plan yet"})
                else:
                    self._json(200, plan)
            else:
                self._json(404, {"error": "not found"})

        def do_DELETE(self) -> None:
            path = self.path.split("?", 1)[0]
            if hooks.alerts is None or not path.startswith("/api/silences/"):
                self._json(404, {"error": "not found"})
            elif not self._api_authorised():
                self._json(401, {"error": "missing or wrong bearer token"})
            elif hooks.alerts.expire_silence(path.removeprefix("/api/silences/")):
                self._json(200, {"status": "expired"})
            else:
                self._json(404, {"error": "no such active silence"})

        def _silence(self) -> None:
            assert hooks.alerts is not None
            if not self._api_authorised():
                self._json(401, {"error": "missing or wrong bearer token"})
                return
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

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/api/silences" and hooks.alerts is not None:
                self._silence()
                return
            if path != "/webhook/alertmanager":
                self._json(404, {"error": "not found"})
                return
            code, msg = self._webhook()
            hooks.metrics.webhook_requests.labels(str(code)).inc()
            self._json(code, msg)

        def _webhook(self) -> tuple[int, dict[str, Any]]:
            if not self._authorised():
                return 401, {"error": "missing or wrong bearer token"}
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
