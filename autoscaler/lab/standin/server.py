"""The stand-in's HTTP side: ShinyProxy's API answers, the actuator, and /admin/data."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from autoscaler.lab.standin.exposition import CONTENT_TYPE as PROM_CONTENT_TYPE
from autoscaler.lab.standin.exposition import Style, render
from autoscaler.lab.standin.meters import MeterRegistry
from autoscaler.lab.standin.proxies import LimitReached, Proxy, ProxyService, StartFailed
from autoscaler.lab.standin.usage import InfluxUsageWriter

log = logging.getLogger(__name__)

USER_HEADER = "X-SP-UserId"
GROUPS_HEADER = "X-SP-UserGroups"
_PROXY = re.compile(r"^/api/proxy/([^/]+)$")
_PROXY_STATUS = re.compile(r"^/api/proxy/([^/]+)/status$")
_HEARTBEAT = re.compile(r"^/heartbeat/([^/]+)$")


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{(s % 3600) // 60:02d}:{s % 60:02d}"


def admin_row(
    p: Proxy, now_ms: int, heartbeat_age: float | None, instance_id: str
) -> dict[str, Any]:
    """One entry of ShinyProxy's /admin/data."""
    image, _, tag = p.spec.container_image.partition(":")
    hb = p.spec.heartbeat_timeout_ms
    return {
        "status": p.status.value,
        "proxyId": p.id,
        "userId": p.user_id,
        "appName": p.spec.id,
        "instanceName": "Default",
        "endpoint": "N/A",
        "uptime": _hms((now_ms - p.startup_ms) / 1000) if p.startup_ms > 0 else "N/A",
        "lastHeartBeat": "N/A" if heartbeat_age is None else _hms(heartbeat_age),
        "imageName": image,
        "imageTag": tag or "N/A",
        "heartbeatTimeout": _hms(hb / 1000) if hb is not None and hb != -1 else None,
        "maxLifetime": (
            _hms(p.spec.max_lifetime_minutes * 60) if p.spec.max_lifetime_minutes != -1 else None
        ),
        "spInstance": instance_id,
        "backendContainerName": p.service_id or "N/A",
        "parameters": None,
    }


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        service: ProxyService,
        meters: MeterRegistry,
        usage: InfluxUsageWriter | None,
        admins: frozenset[str],
        style: Style = "micrometer",
    ) -> None:
        super().__init__(address, Handler)
        self.service = service
        self.meters = meters
        self.usage = usage
        self.admins = admins
        self.style: Style = style


class Handler(BaseHTTPRequestHandler):
    server: StandinServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- plumbing -------------------------------------------------------------------------

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, payload: Any) -> None:
        self._send(code, json.dumps(payload).encode(), "application/json")

    def _ok(self, data: Any, code: int = 200) -> None:
        self._json(code, {"status": "success", "data": data})

    def _fail(self, code: int, status: str, data: Any) -> None:
        self._json(code, {"status": status, "data": data})

    def _user(self) -> str | None:
        user = self.headers.get(USER_HEADER)
        auth = self.headers.get("Authorization", "")
        if not user and auth.startswith("Basic "):
            try:
                user = base64.b64decode(auth[6:]).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                user = None
        return user.strip() if user and user.strip() else None

    def _groups(self) -> tuple[str, ...]:
        raw = self.headers.get(GROUPS_HEADER, "")
        return tuple(g.strip() for g in raw.split(",") if g.strip())

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else None

    def _authenticated(self) -> str | None:
        user = self._user()
        if user is None:
            self._fail(401, "error", "unauthorized")
            return None
        self.server.service.touch(user)
        return user

    # -- routes ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        svc = self.server.service
        if path in ("/actuator/health", "/actuator/health/liveness", "/actuator/health/readiness"):
            body: dict[str, Any] = {"status": "UP"}
            if path == "/actuator/health":
                body["groups"] = ["liveness", "readiness"]
            self._json(200, body)
        elif path == "/actuator/prometheus":
            text = render(self.server.meters.samples(), self.server.style)
            self._send(200, text.encode(), PROM_CONTENT_TYPE)
        elif path == "/actuator/recyclable":
            self._json(200, {"isRecyclable": not svc.proxies(), "activeConnections": 0})
        elif path == "/lab/standin":
            self._json(200, self._lab_state())
        elif path == "/api/proxyspec":
            if (self._authenticated()) is not None:
                self._ok([{"id": s.id, "displayName": s.name} for s in svc.specs.values()])
        elif path == "/api/proxy":
            user = self._authenticated()
            if user is not None:
                self._ok([p.to_api() for p in svc.proxies(user)])
        elif (m := _PROXY.match(path)) is not None:
            user = self._authenticated()
            if user is not None:
                p = svc.get(m.group(1))
                if p is None or p.user_id != user:
                    self._fail(404, "error", "not found")
                else:
                    self._ok(p.to_api())
        elif path == "/admin/data":
            self._admin_data()
        else:
            self._fail(404, "error", "not found")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        svc = self.server.service
        if path == "/login":
            if self._authenticated() is not None:
                self._ok(None)
        elif path == "/logout":
            user = self._authenticated()
            if user is not None:
                svc.logout(user)
                self._ok(None)
        elif (m := _HEARTBEAT.match(path)) is not None:
            if self._authenticated() is not None:
                if svc.heartbeat(m.group(1)):
                    self._ok(None)
                else:
                    self._fail(404, "error", "not found")
        elif (m := _PROXY.match(path)) is not None:
            self._start(m.group(1))
        elif (m := _PROXY_STATUS.match(path)) is not None:
            self._change_status(m.group(1))
        else:
            self._fail(404, "error", "not found")

    def do_PUT(self) -> None:
        path = self.path.split("?", 1)[0]
        if (m := _PROXY_STATUS.match(path)) is not None:
            self._change_status(m.group(1))
        else:
            self._fail(404, "error", "not found")

    def do_DELETE(self) -> None:
        path = self.path.split("?", 1)[0]
        if (m := _PROXY.match(path)) is not None:
            user = self._authenticated()
            if user is not None:
                self._stop(user, m.group(1))
        else:
            self._fail(404, "error", "not found")

    # -- actions --------------------------------------------------------------------------

    def _start(self, spec_id: str) -> None:
        user = self._authenticated()
        if user is None:
            return
        svc = self.server.service
        if spec_id not in svc.specs:
            self._fail(404, "error", "not found")
            return
        try:
            proxy = svc.start(spec_id, user, self._groups())
        except LimitReached as e:
            self._fail(400, "fail", str(e))
        except StartFailed as e:
            self._fail(500, "error", f"Failed to start proxy: {e}")
        else:
            self._ok(proxy.to_api(), 201)

    def _stop(self, user: str, proxy_id: str) -> None:
        svc = self.server.service
        p = svc.get(proxy_id)
        if p is None or (p.user_id != user and user not in self.server.admins):
            self._fail(404, "error", "not found")
            return
        svc.stop(proxy_id)
        self._ok(None)

    def _change_status(self, proxy_id: str) -> None:
        user = self._authenticated()
        if user is None:
            return
        try:
            body = self._body()
        except ValueError:
            self._fail(400, "fail", "invalid JSON")
            return
        desired = body.get("desiredState") if isinstance(body, dict) else None
        if desired != "Stopping":
            self._fail(400, "fail", "only desiredState Stopping is supported here")
            return
        self._stop(user, proxy_id)

    def _admin_data(self) -> None:
        user = self._authenticated()
        if user is None:
            return
        if user not in self.server.admins:
            self._fail(403, "fail", "forbidden")
            return
        svc = self.server.service
        now_ms = int(time.time() * 1000)
        mono = time.monotonic()
        rows = []
        for p in svc.proxies():
            age = mono - p.last_heartbeat if p.last_heartbeat else None
            rows.append(admin_row(p, now_ms, age, svc.settings.instance_id))
        self._ok(rows)

    def _lab_state(self) -> dict[str, Any]:
        usage = self.server.usage
        return {
            "proxies": len(self.server.service.proxies()),
            "usage_written": usage.stats.written if usage else 0,
            "usage_failed": usage.stats.failed if usage else 0,
            "usage_last_error": usage.stats.last_error if usage else "",
        }
