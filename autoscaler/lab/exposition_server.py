"""A stand-in for one ShinyProxy replica's management port: serves exposition text
at ``/actuator/prometheus`` and Spring Boot health at ``/actuator/health``.

The text, the health status and a forced HTTP status can be changed while it runs.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ExpositionServer:
    def __init__(self, text: str = "", host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._text = text
        self._health = "UP"
        self._force_status: int | None = None
        self._requests: dict[str, int] = {}
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the management port, e.g. http://127.0.0.1:41234."""
        return f"http://{self.host}:{self.port}"

    def set_text(self, text: str) -> None:
        with self._lock:
            self._text = text

    def set_health(self, status: str) -> None:
        """Health status to report ("UP", "DOWN", ...); DOWN answers HTTP 503 like Spring."""
        with self._lock:
            self._health = status

    def fail_with(self, status: int | None) -> None:
        """Answer every request with this HTTP status (None: behave normally)."""
        with self._lock:
            self._force_status = status

    def requests_for(self, path: str) -> int:
        """How many requests ``path`` has received."""
        with self._lock:
            return self._requests.get(path, 0)

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"exposition-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _answer(self, path: str) -> tuple[int, str, bytes]:
        with self._lock:
            self._requests[path] = self._requests.get(path, 0) + 1
            forced, text, health = self._force_status, self._text, self._health
        if forced is not None:
            return forced, "text/plain", b"forced failure\n"
        if path == "/actuator/prometheus":
            return 200, CONTENT_TYPE, text.encode("utf-8")
        if path == "/actuator/health":
            body = json.dumps({"status": health}).encode()
            return (200 if health == "UP" else 503), "application/json", body
        return 404, "text/plain", b"not found\n"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, ctype, body = outer._answer(self.path.split("?", 1)[0])
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
