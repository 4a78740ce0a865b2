"""A ShinyProxy replica that goes away (the `shinyproxy` policy scales in, an upgrade
replaces it) must not cost its users their app.

What happens upstream, and what each setting below answers:
- Swarm sends SIGTERM and, after `stop_grace_period` (10 s by default), SIGKILL. Spring Boot's
  graceful shutdown (`server.shutdown`) answers new requests with 503 and waits up to
  `spring.lifecycle.timeout-per-shutdown-phase` for those under way; then the web server stops
  and closes every websocket it proxies. Traefik drops the replica at its next health check.
- The browser's app page reacts to the closed websocket as `proxy.default-websocket-
  reconnection-mode` says (ShinyProxySpecProvider.getRuntimeValues, default None: the page
  stays greyed out). With Auto, shiny.connections.js reconnects, up to 10 tries with a growing
  back-off; Traefik's sticky cookie falls back to a healthy replica, which finds the app in
  Redis.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from autoscaler.decide.hpa import convert_desired_replicas_with_behavior_rate
from autoscaler.decide.plan_types import ScaleEvent
from autoscaler.rules.loader import load_rules

ROOT = Path(__file__).resolve().parents[1]
SHINYPROXY_CONFIG = ROOT / "shinyproxy" / "application.yml"
STACK = ROOT / "stack.yml"

# ShinyProxy's WebsocketReconnectionMode enum (runtimevalues/WebsocketReconnectionMode.java).
RECONNECTION_MODES = {"None", "Auto", "Confirm"}
# Docker's default stop_grace_period.
DOCKER_STOP_GRACE = timedelta(seconds=10)
# How long the app page keeps trying (shiny.connections.js, ShinyProxy 3.2): 10 attempts, each
# checked for 2.5 s, with 1 s, 2 s ... 9 s of back-off between them.
RECONNECT_WINDOW = timedelta(seconds=10 * 2.5 + sum(range(1, 10)))

_DURATION = re.compile(r"(\d+)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def _duration(text: str) -> timedelta:
    """A simple duration as both Docker (Go) and Spring Boot write it: 45s, 2m, 500ms."""
    parts = _DURATION.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a simple duration: {text!r}"
    return timedelta(seconds=sum(int(n) * _UNIT[u] for n, u in parts))


def _app() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(SHINYPROXY_CONFIG.read_text(encoding="utf-8"))
    return doc


def _shinyproxy_service() -> dict[str, Any]:
    svc: dict[str, Any] = yaml.safe_load(STACK.read_text(encoding="utf-8"))["services"][
        "shinyproxy"
    ]
    return svc


def _labels() -> dict[str, str]:
    return dict(x.split("=", 1) for x in _shinyproxy_service()["deploy"]["labels"])


def test_app_pages_reconnect_by_themselves_when_their_replica_goes_away() -> None:
    proxy = _app()["proxy"]
    # once, under the exact name ShinyProxySpecProvider reads with Environment.getProperty
    assert [k for k in proxy if "reconnection" in k.lower()] == [
        "default-websocket-reconnection-mode"
    ]
    assert proxy["default-websocket-reconnection-mode"] == "Auto"
    for spec in proxy["specs"]:
        # an app's own mode overrides the default; the shipped Shiny app keeps Auto
        mode = spec.get("websocket-reconnection-mode", "Auto")
        assert mode in RECONNECTION_MODES - {"None"}, spec["id"]
    # The reconnect lands on another replica only because Traefik's sticky cookie gives way
    # to a healthy server, and that replica knows the app only through the shared store.
    labels = _labels()
    assert labels["traefik.http.services.shinyproxy.loadbalancer.sticky.cookie"] == "true"
    assert labels["traefik.http.services.shinyproxy.loadbalancer.healthcheck.path"]
    assert proxy["store-mode"] == "Redis"
    assert proxy["stop-proxies-on-shutdown"] is False


def test_a_stopping_replica_finishes_its_requests_before_docker_kills_it() -> None:
    app = _app()
    # ShinyProxy 3.1 runs a Spring Boot older than 3.4, whose default is immediate
    assert app["server"]["shutdown"] == "graceful"
    phase = _duration(app["spring"]["lifecycle"]["timeout-per-shutdown-phase"])
    grace = _duration(_shinyproxy_service().get("stop_grace_period", "10s"))
    assert grace > DOCKER_STOP_GRACE
    # the graceful phase, then Redis and the rest of the context close before SIGKILL
    assert grace >= phase + timedelta(seconds=10), (grace, phase)


def test_an_upgrade_starts_the_new_shinyproxy_before_it_stops_the_old() -> None:
    svc = _shinyproxy_service()
    # safe only because nothing binds a task to one place: state in Redis, no named
    # volume (the Docker socket is the host's), no host-mode port
    assert _app()["proxy"]["store-mode"] == "Redis"
    assert all(str(v).startswith("/") for v in svc.get("volumes", []))
    assert not svc.get("ports")
    update = svc["deploy"]["update_config"]
    assert update["order"] == "start-first"
    assert update["parallelism"] == 1
    # Swarm stops the old task once the new one is healthy (the executor's Start waits for
    # the health check), so a single replica is never missing while its users reconnect
    assert svc["healthcheck"]["test"]


def test_the_shipped_policy_removes_a_replica_only_after_the_last_ones_users_moved() -> None:
    result = load_rules(ROOT / "rules")
    assert result.policies is not None, result.problems
    policy = result.policies.services["shinyproxy"]
    down = policy.behavior.down()
    # A removed replica is gone after its stop grace period; Traefik sees it down at its
    # next health check; its users' pages need up to RECONNECT_WINDOW to land elsewhere.
    moved = (
        _duration(_shinyproxy_service()["stop_grace_period"])
        + _duration(_labels()["traefik.http.services.shinyproxy.loadbalancer.healthcheck.interval"])
        + RECONNECT_WINDOW
    )
    now = datetime(2025, 3, 3, 18, 0, tzinfo=UTC)
    # demand collapsed: from max, one pass removes one replica only
    first = convert_desired_replicas_with_behavior_rate(
        policy.max, policy.min, policy.min, policy.max, [], policy.behavior.up(), down, now
    )
    assert first.replicas == policy.max - 1, first
    # and while that replica's users are still moving, the next one stays
    later = now + moved
    second = convert_desired_replicas_with_behavior_rate(
        policy.max - 1,
        policy.min,
        policy.min,
        policy.max,
        [ScaleEvent(at=now, change=-1)],
        policy.behavior.up(),
        down,
        later,
    )
    assert second.replicas == policy.max - 1, second
    # a dip shorter than one removal's period does not start one
    assert down.stabilization_window is not None
    assert down.stabilization_window >= max(p.period for p in down.policies or ())
