"""The sidecar's HTTP server for tests: a free loopback port, idle hooks, always stopped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from autoscaler.metrics import SidecarMetrics
from autoscaler.server import HttpServer, ServerHooks


@contextmanager
def serving(**hooks: Any) -> Iterator[HttpServer]:
    """A started server whose hooks are healthy and do nothing unless ``hooks`` says."""
    base: dict[str, Any] = {
        "metrics": SidecarMetrics(),
        "healthy": lambda: (True, {}),
        "last_plan": lambda: None,
        "trigger": lambda reason: None,
        "webhook_token": None,
    }
    server = HttpServer("127.0.0.1:0", ServerHooks(**{**base, **hooks}))
    server.start()
    try:
        yield server
    finally:
        server.stop()
