"""``python -m autoscaler.lab.standin``: run the stand-in until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import get_args

from autoscaler.lab.standin.exposition import Style
from autoscaler.lab.standin.meters import MeterRegistry
from autoscaler.lab.standin.proxies import ProxyService, Settings
from autoscaler.lab.standin.server import StandinServer
from autoscaler.lab.standin.specs import load_specs
from autoscaler.lab.standin.swarm import DockerSessionBackend
from autoscaler.lab.standin.usage import InfluxUsageWriter

log = logging.getLogger("autoscaler.lab.standin")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m autoscaler.lab.standin",
        description="A ShinyProxy 3.2 stand-in that starts sessions as Swarm services.",
    )
    p.add_argument(
        "--docker-host", required=True, help="a Swarm manager, e.g. unix:///.../docker.sock"
    )
    p.add_argument("--listen", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    p.add_argument("--ready-file", type=Path, help="write {pid, port} here once listening")
    p.add_argument("--specs", type=Path, help="app specs YAML (default: the lab's apps)")
    p.add_argument(
        "--usage-stats-url",
        default="",
        help="InfluxDB 1.x write URL, e.g. http://127.0.0.1:8086/write?db=shinyproxy_usagestats",
    )
    p.add_argument(
        "--service-wait-time",
        type=float,
        default=60.0,
        help="seconds a session task may stay pending before the start fails",
    )
    p.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=60.0,
        help="seconds without heartbeat before a session is stopped; -1 disables",
    )
    p.add_argument("--max-total-instances", type=int, default=-1)
    p.add_argument("--realm-id", default="")
    p.add_argument("--admin-users", default="admin", help="comma-separated admin user ids")
    p.add_argument(
        "--poll-interval",
        type=float,
        default=0.5,
        help="seconds between task checks while a session starts",
    )
    p.add_argument(
        "--reconcile-interval",
        type=float,
        default=2.0,
        help="seconds between checks for sessions the Swarm ended",
    )
    p.add_argument(
        "--refresh-interval",
        type=float,
        default=20.0,
        help="seconds between refreshes of absolute_apps_running (ShinyProxy: 20)",
    )
    p.add_argument("--exposition-style", choices=get_args(Style), default="micrometer")
    p.add_argument("--log-level", default="INFO")
    return p


def _instance_id(specs_text: str, realm: str) -> str:
    return hashlib.sha1(f"{specs_text}\n{realm}".encode()).hexdigest()


def _write_ready(path: Path, port: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "port": port}))
    tmp.replace(path)


def _every(stop: threading.Event, seconds: float, fn: object, name: str) -> threading.Thread:
    assert callable(fn)

    def loop() -> None:
        while not stop.wait(seconds):
            try:
                fn()
            except Exception as e:
                log.warning("%s failed: %s", name, e)

    t = threading.Thread(target=loop, name=name, daemon=True)
    t.start()
    return t


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        specs = load_specs(args.specs)
    except (OSError, ValueError) as e:
        log.error("%s", e)
        return 2
    instance = _instance_id(json.dumps([s.model_dump() for s in specs]), args.realm_id)
    meters = MeterRegistry(
        {"shinyproxy_instance": instance, "shinyproxy_realm": args.realm_id}, time.monotonic
    )
    usage = InfluxUsageWriter(args.usage_stats_url) if args.usage_stats_url else None
    backend = DockerSessionBackend(args.docker_host)
    settings = Settings(
        instance_id=instance,
        realm_id=args.realm_id,
        service_wait_time=args.service_wait_time,
        poll_interval=args.poll_interval,
        heartbeat_timeout=args.heartbeat_timeout,
        max_total_instances=args.max_total_instances,
    )
    service = ProxyService(specs, backend, meters, usage, settings)
    admins = frozenset(u.strip() for u in args.admin_users.split(",") if u.strip())
    server = StandinServer(
        (args.listen, args.port), service, meters, usage, admins, args.exposition_style
    )
    port = server.server_address[1]
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.refresh()
    _every(stop, args.reconcile_interval, service.reconcile, "reconcile")
    _every(stop, args.refresh_interval, service.refresh, "refresh")
    serving = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    serving.start()
    if args.ready_file:
        _write_ready(args.ready_file, port)
    log.info("ShinyProxy stand-in on http://%s:%d (swarm %s)", args.listen, port, args.docker_host)
    stop.wait()
    log.info("stopping: ending %d sessions", len(service.proxies()))
    server.shutdown()
    for p in service.proxies():
        service.stop(p.id)
    if usage is not None:
        usage.flush(5.0)
        usage.close()
    backend.close()
    server.server_close()
    return 0
