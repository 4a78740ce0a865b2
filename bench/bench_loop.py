"""The loop against real local backends (a real swarm, Prometheus, InfluxDB, an actuator):

- pass: one whole pass with 20 signals (goal: median < 300 ms wall);
- webhook: Alertmanager webhook received -> scale call issued (goal: p99 < 250 ms);
- memory: resident memory of `autoscaler run` after an hour-equivalent of passes
  (240 passes, one per 15 s in production; goal: < 120 MB).

Run as root: python -m bench.bench_loop   (writes bench/results/{pass,webhook,memory}.json)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from docker.types import ServiceMode

from autoscaler.actuate.base import ActionResult
from autoscaler.actuate.swarm import SwarmActuator
from autoscaler.decide.plan_types import Action
from autoscaler.lab.backends import start_influxd, start_prometheus
from autoscaler.lab.engines import SwarmCluster
from autoscaler.lab.exposition_server import ExpositionServer
from autoscaler.lab.ports import free_port
from autoscaler.loop import Reconciler, Runner
from autoscaler.metrics import SidecarMetrics
from autoscaler.rules.reload import RulesStore
from autoscaler.server import HttpServer, ServerHooks
from autoscaler.sources.actuator import ActuatorClient
from autoscaler.sources.collect import Backends
from autoscaler.sources.influx import InfluxReader
from autoscaler.sources.prometheus import PrometheusClient
from autoscaler.sources.swarm import SwarmReader
from bench.report import plot_samples, summary_ms, write_result

TOKEN = "bench-token"
SERVICE = "bench-api"
EXPOSITION = Path(__file__).parent.parent / "tests/data/exposition/shinyproxy-3.2.txt"


def rules_text() -> str:
    """20 signals: 8 PromQL, 6 actuator, 3 InfluxQL, 3 built-in; one policy on `load`."""
    sig: list[str] = []
    for i in range(8):
        sig.append(f"  prom{i}:\n    prometheus: {{query: 'sum(up) * {i + 1}'}}")
    for i, m in enumerate(
        [
            "absolute_users_active",
            "absolute_users_logged_in",
            "appStarts_total",
            "appStops_total",
            "startFailed_total",
        ]
    ):
        sig.append(f"  act{i}:\n    actuator: {{metric: {m}}}")
    sig.append("  load:\n    actuator: {metric: bench_load}")
    for i in range(3):
        sig.append(
            f'  influx{i}:\n    influx: {{query: "SELECT count(data) FROM event WHERE '
            f"type = 'ProxyStart' AND time > now() - {i + 5}m\"}}\n    on_empty: zero"
        )
    sig.append("  live:\n    swarm: {metric: live_sessions}")
    sig.append("  pending:\n    swarm: {metric: pending_sessions}")
    sig.append("  ready:\n    swarm: {metric: nodes, state: ready}")
    return (
        "signals:\n"
        + "\n".join(sig)
        + f"""
services:
  api:
    service: {SERVICE}
    min: 1
    max: 3
    target_tracking:
      - {{signal: load, average_value: 10}}
    behavior:
      scale_down: {{stabilization_window: 0s}}
"""
    )


class TimedActuator:
    """The real Swarm actuator, noting when each scale call is issued."""

    def __init__(self, inner: SwarmActuator) -> None:
        self.inner = inner
        self.issued: list[float] = []
        self.event = threading.Event()

    def execute(self, action: Action) -> ActionResult:
        self.issued.append(time.perf_counter())
        self.event.set()
        return self.inner.execute(action)


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("needs root: it starts real dockerd engines")
    root = Path(tempfile.mkdtemp(prefix="bench-", dir="/tmp"))
    cluster = prom = influx = None
    target = ExpositionServer(EXPOSITION.read_text() + "bench_load 5\n").start()
    try:
        cluster = SwarmCluster.start(root / "lab", workers=2)
        (root / "prom").mkdir()
        (root / "influx").mkdir()
        prom = start_prometheus(
            root / "prom",
            [
                {
                    "job_name": "shinyproxy",
                    "metrics_path": "/actuator/prometheus",
                    "static_configs": [{"targets": [f"127.0.0.1:{target.port}"]}],
                }
            ],
            scrape_interval="1s",
        )
        influx = start_influxd(root / "influx")
        influx.create_database("shinyproxy_usagestats")
        client = cluster.client()
        client.services.create(
            "local/busybox:1",
            command=["sleep", "3600"],
            name=SERVICE,
            mode=ServiceMode("replicated", 1),
        )
        rules = root / "rules"
        rules.mkdir()
        (rules / "bench.yml").write_text(rules_text())
        time.sleep(3)  # first scrapes
        backends = Backends(
            swarm=SwarmReader(client),
            prometheus=PrometheusClient(prom.url, 5),
            actuator=ActuatorClient(target.url, 5),
            influx=InfluxReader(influx.url, "shinyproxy_usagestats", None, None, 5),
        )
        bench_pass(backends, rules, client)
        bench_webhook(backends, rules, client, target)
        bench_memory(cluster, prom.url, target.url, influx.url, rules, root)
    finally:
        target.stop()
        for b in (prom, influx):
            if b is not None:
                b.stop()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def bench_pass(backends: Backends, rules: Path, client: Any) -> None:
    actuator = TimedActuator(SwarmActuator(client))
    rec = Reconciler(
        rules=RulesStore(rules), backends=backends, actuator=actuator, metrics=SidecarMetrics()
    )
    rec.run_pass("warm-up")
    samples, missing = [], 0
    for _ in range(100):
        t0 = time.perf_counter()
        r = rec.run_pass("bench")
        samples.append(time.perf_counter() - t0)
        assert r.ok and r.snapshot is not None
        missing += sum(1 for v in r.snapshot.signals.values() if v.value is None)
    stats = summary_ms(samples)
    write_result(
        "pass",
        {
            "params": {
                "signals": 20,
                "passes": 100,
                "swarm_nodes": 3,
                "backends": ["swarm", "prometheus", "actuator", "influx"],
            },
            "goal": "median < 300 ms",
            "met": stats["median_ms"] < 300,
            "timing": stats,
            "missing_signal_reads": missing,
            "missing_in_last_pass": {
                k: v.error for k, v in r.snapshot.signals.items() if v.value is None
            },
        },
    )
    plot_samples("pass", samples, 300, "whole pass, 20 signals, real local backends")


def bench_webhook(backends: Backends, rules: Path, client: Any, target: ExpositionServer) -> None:
    actuator = TimedActuator(SwarmActuator(client))
    rec = Reconciler(
        rules=RulesStore(rules), backends=backends, actuator=actuator, metrics=SidecarMetrics()
    )
    runner = Runner(rec, interval=timedelta(hours=1), max_backoff=timedelta(hours=1))
    hooks = ServerHooks(
        metrics=rec.metrics,
        healthy=lambda: (True, {}),
        last_plan=lambda: None,
        trigger=runner.trigger_now,
        webhook_token=TOKEN,
    )
    server = HttpServer("127.0.0.1:0", hooks)
    server.start()
    runner.start()
    url = f"http://127.0.0.1:{server.port}/webhook/alertmanager"
    body = json.dumps(
        {
            "version": "4",
            "status": "firing",
            "receiver": "autoscaler",
            "alerts": [{"status": "firing", "labels": {"alertname": "Load"}}],
        }
    )
    session = requests.Session()
    samples: list[float] = []
    try:
        time.sleep(2)  # the first scheduled pass
        for i in range(60):
            target.set_text(EXPOSITION.read_text() + f"bench_load {25 if i % 2 == 0 else 5}\n")
            time.sleep(0.6)  # let the previous scale's Docker events settle
            actuator.event.clear()
            t0 = time.perf_counter()
            r = session.post(
                url, data=body, timeout=5, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert r.status_code == 200, r.text
            if not actuator.event.wait(5):
                raise RuntimeError(f"no scale call after webhook {i}")
            samples.append(actuator.issued[-1] - t0)
    finally:
        runner.stop()
        server.stop()
    stats = summary_ms(samples)
    write_result(
        "webhook",
        {
            "params": {"webhooks": len(samples), "signals": 20, "actuator": "real swarm"},
            "goal": "p99 < 250 ms",
            "met": stats["p99_ms"] < 250,
            "timing": stats,
        },
    )
    plot_samples("webhook", samples, 250, "Alertmanager webhook -> scale call issued")


def bench_memory(
    cluster: SwarmCluster,
    prom_url: str,
    actuator_url: str,
    influx_url: str,
    rules: Path,
    root: Path,
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "AUTOSCALER_RULES": str(rules),
        "AUTOSCALER_INTERVAL": "100ms",
        "AUTOSCALER_DOCKER_HOST": cluster.manager_host,
        "AUTOSCALER_PROMETHEUS_URL": prom_url,
        "AUTOSCALER_ACTUATOR": actuator_url,
        "AUTOSCALER_INFLUXDB_URL": influx_url,
        "AUTOSCALER_LISTEN": f"127.0.0.1:{port}",
        "AUTOSCALER_LEDGER": str(root / "ledger.jsonl"),
        "AUTOSCALER_DRY_RUN": "true",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rss: list[tuple[int, float]] = []
    try:
        deadline = time.monotonic() + 600
        passes = 0
        while passes < 240 and time.monotonic() < deadline:
            time.sleep(2)
            passes = _passes(port)
            rss.append((passes, _rss_mb(proc.pid)))
    finally:
        proc.terminate()
        proc.wait(20)
    final = rss[-1][1]
    write_result(
        "memory",
        {
            "params": {"passes": rss[-1][0], "interval": "100ms", "signals": 20},
            "goal": "< 120 MB resident",
            "met": final < 120,
            "rss_mb_final": final,
            "rss_mb_first": rss[0][1],
            "rss_mb_by_passes": rss,
        },
    )


def _passes(port: int) -> int:
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except requests.RequestException:
        return 0
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("autoscaler_passes_total{")
        )
    )


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


if __name__ == "__main__":
    main()
