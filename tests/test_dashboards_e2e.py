"""Every dashboard query on the real lab: a Swarm, the ShinyProxy stand-in, the sidecar,
Prometheus scraping them and InfluxDB holding the usage events.

Each PromQL target runs on the lab's Prometheus and each InfluxQL target on its InfluxDB,
with Grafana's variables filled in as Grafana would. Every query must be accepted, and every
query must return data unless it is on the explicit list of panels the lab cannot feed
(``EXPECTED_EMPTY``); that list must be exactly the set that came back empty, so a dashboard
that quietly queries nothing fails here.

Two differences between the lab's Prometheus and the stack's (alerting/prometheus.yml) are
bridged while substituting, not by weakening the dashboards:
- the stack's node-exporter job is ``node-exporter`` and its relabelling adds a ``node``
  label (the node's hostname); the lab scrapes its one node exporter as job ``node`` with no
  ``node`` label. So ``job="node-exporter"`` is read as ``job="node"``, and every label
  matcher on a dashboard variable (``node=~"$node"``, ``spec_id=~"$spec"``, ...) becomes
  ``=~".*"``, which also matches a missing label, as Grafana's "All" does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from docker.types import ServiceMode

from autoscaler.lab import lab as lab_mod
from autoscaler.lab.demo import lab_env
from autoscaler.lab.load import LoadDriver, LoadReport, burst_plan
from autoscaler.lab.ports import free_port
from autoscaler.lab.standin.server import USER_HEADER
from autoscaler.lab.teardown import stop_child
from tests.fixtures_swarm import swarm_lab_missing
from tests.realparts import missing_real_part

pytestmark = [pytest.mark.real, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
DEMO_RULES = ROOT / "autoscaler" / "lab" / "demo_rules"
DEMO_SERVICE = "demo-api"  # the service autoscaler/lab/demo_rules scales
WEBHOOK_TOKEN = "e2e-dashboards"

DURATIONS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
INFLUX_TIME_FILTER = "time > now() - 1h"
INFLUX_INTERVAL = "1m"
SINGLE_VALUE_PANELS = {"stat", "gauge", "bargauge"}
LAB_JOBS = {"node-exporter": "node"}
"""The stack's scrape job names -> the lab's (autoscaler/lab/lab.py ``_scrape_configs``)."""

# (dashboard uid, panel title, refId, or "var:<name>" for a template variable's query)
EXPECTED_EMPTY: dict[tuple[str, str, str], str] = {
    # -- pool cost: the demo policies' pool (autoscaler/lab/demo_rules) sets no prices.
    ("shiny-capacity", "Cost per hour", "A"): "the lab's demo pool has no prices",
    # -- machines of pools the rules lack: the lab's pool is in its rules.
    ("shiny-capacity", "Machines of pools not in the rules", "A"): "every lab pool is in the rules",
    # -- the sidecar's notifications: counted per delivery, and the lab configures no alert
    #    receiver for the sidecar.
    ("shiny-capacity", "Notifications", "A"): "no alert receivers configured",
    # -- ShinyProxy's seats_* meters exist only for apps with pre-initialised, shared
    #    containers (minimum-seats-available); the lab's apps have one container per user.
    **{
        ("shiny-usage", title, ref): "no container pre-initialisation in the lab"
        for title, ref in [
            ("Free seats", "A"),
            ("Seats", "A"),
            ("Seats", "B"),
            ("Seats", "C"),
            ("Seat wait time", "A"),
        ]
    },
    # -- cAdvisor is a stack service, not part of the lab.
    **{
        ("shiny-nodes", title, "A"): "no cAdvisor in the lab"
        for title in [
            "Swarm containers per node",
            "CPU by service (top 10)",
            "Memory by service (top 10)",
        ]
    },
    # -- the lab's node exporter is scraped without the stack's relabelling, so it has no
    #    `node` label to list (the panels still match it through `node=~".*"`).
    ("shiny-nodes", "var:node", "var"): "no node label without the stack's relabelling",
    # -- Traefik is a stack service, not part of the lab.
    **{
        ("shiny-traefik", title, "A"): "no Traefik in the lab"
        for title in [
            "Requests by service",
            "Responses by status class",
            "4xx by service",
            "5xx by service",
            "Refused requests (401, 403)",
            "5xx share",
            "Latency p50",
            "Latency p95",
            "Latency p99",
            "Entry points",
            "Open connections",
            "Servers up",
            "Certificates: time to expiry",
            "Configuration reloads",
        ]
    },
    ("shiny-traefik", "var:service", "var"): "no Traefik in the lab",
}


# ---------------------------------------------------------------- the queries


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    kind: str  # "prometheus" or "influxdb"
    text: str
    panel_type: str = "timeseries"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dashboard, self.panel, self.ref)


def _panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in doc.get("panels", []):
        yield p
        yield from _panels(p)


def _variable_value(var: dict[str, Any]) -> str:
    """What Grafana puts in for a variable by default: its current value, "All" as the
    all-value (``.*``), or else its first option."""
    current = var.get("current") or {}
    value = current.get("value")
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    if value == "$__all" or (value is None and var.get("includeAll")):
        return str(var.get("allValue") or ".*")
    if value:
        return str(value)
    options = var.get("options") or []
    return str(options[0]["value"]) if options else ".*"


def substitute_promql(expr: str, variables: dict[str, str]) -> str:
    for name, value in DURATIONS.items():
        expr = re.sub(rf"\$\{{{name}\}}|\${name}\b", value, expr)
    names = "|".join(re.escape(n) for n in variables)
    if names:
        # a label matcher on a dashboard variable matches anything, a missing label too
        var_ref = rf"(?:\$(?:{names})\b|\$\{{(?:{names})(?::\w+)?\}}|\[\[(?:{names})\]\])"
        expr = re.sub(rf'(\w+)\s*=~?\s*"[^"]*{var_ref}[^"]*"', r'\1=~".*"', expr)
        for name, value in variables.items():
            expr = re.sub(rf"\$\{{{name}(?::\w+)?\}}|\${name}\b|\[\[{name}\]\]", value, expr)
    for stack_job, lab_job in LAB_JOBS.items():
        expr = re.sub(rf'job\s*=\s*"{re.escape(stack_job)}"', f'job="{lab_job}"', expr)
    return expr


def substitute_influxql(query: str) -> str:
    query = query.replace("$timeFilter", INFLUX_TIME_FILTER)
    return re.sub(r"\$\{?__interval\}?", INFLUX_INTERVAL, query)


def dashboard_queries() -> list[Query]:
    out: list[Query] = []
    for path in DASHBOARDS:
        doc = json.loads(path.read_text(encoding="utf-8"))
        uid = doc["uid"]
        variables = {v["name"]: _variable_value(v) for v in doc["templating"]["list"]}
        for var in doc["templating"]["list"]:
            query = var.get("query")
            q = query.get("query", "") if isinstance(query, dict) else str(query)
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q.strip())
            assert m, f"{uid} variable {var['name']}: {q!r}"
            # the values Grafana would offer: the label's values on the selector's series
            if "{" in m.group(1):
                sel = m.group(1).rstrip("}") + f', {m.group(2)}!=""}}'
                expr = f"count by ({m.group(2)}) ({sel})"
            else:
                expr = f'count by ({m.group(2)}) ({m.group(1)}{{{m.group(2)}!=""}})'
            out.append(
                Query(uid, f"var:{var['name']}", "var", "prometheus", substitute_promql(expr, {}))
            )
        for panel in _panels(doc):
            for t in panel.get("targets") or []:
                ds = t.get("datasource") or panel.get("datasource") or {}
                if ds.get("type") == "influxdb":
                    text = substitute_influxql(t["query"])
                    kind = "influxdb"
                else:
                    text = substitute_promql(t["expr"], variables)
                    kind = "prometheus"
                out.append(Query(uid, panel["title"], t["refId"], kind, text, panel["type"]))
    return out


# ---------------------------------------------------------------- the substitution itself


def test_substitution_fills_grafana_variables() -> None:
    got = substitute_promql(
        'sum(rate(x{node=~"$node", mode="idle", a="${spec:regex}"}[$__rate_interval]))'
        ' + up{job="node-exporter"} + y[$__range] + z[${__interval}]',
        {"node": ".*", "spec": "euler"},
    )
    assert got == (
        'sum(rate(x{node=~".*", mode="idle", a=~".*"}[1m])) + up{job="node"} + y[1h] + z[15s]'
    )
    assert substitute_influxql("SELECT 1 FROM e WHERE $timeFilter GROUP BY time($__interval)") == (
        "SELECT 1 FROM e WHERE time > now() - 1h GROUP BY time(1m)"
    )


def test_every_dashboard_target_is_collected_once() -> None:
    queries = dashboard_queries()
    keys = [q.key for q in queries]
    assert len(keys) == len(set(keys)), "refIds must be unique within a panel"
    assert {q.dashboard for q in queries} == {
        "shiny-usage",
        "shiny-capacity",
        "shiny-nodes",
        "shiny-traefik",
        "shiny-history",
    }
    assert set(EXPECTED_EMPTY) <= set(keys), set(EXPECTED_EMPTY) - set(keys)
    # "$1" in label_replace is a regex group, not a variable
    left = [q.text for q in queries if re.search(r"\$\{?[A-Za-z_]|\[\[", q.text)]
    assert left == []


# ---------------------------------------------------------------- against the lab


def _prom(url: str, expr: str) -> dict[str, Any]:
    resp = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body: dict[str, Any] = resp.json()
    if body.get("status") != "success":
        raise AssertionError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
    data: dict[str, Any] = body["data"]
    return data


def _prom_value(url: str, expr: str) -> float:
    result = _prom(url, expr)["result"]
    return float(result[0]["value"][1]) if result else float("nan")


def _influx(url: str, query: str) -> list[dict[str, Any]]:
    resp = requests.get(
        f"{url}/query", params={"db": lab_mod.USAGE_DB, "q": query, "epoch": "s"}, timeout=10
    )
    if resp.status_code != 200:
        raise AssertionError(f"{query}: HTTP {resp.status_code} {resp.text[:200]}")
    result = resp.json()["results"][0]
    if "error" in result:
        raise AssertionError(f"{query}: {result['error']}")
    series: list[dict[str, Any]] = result.get("series", [])
    return series


def _wait_for(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, AssertionError, KeyError, IndexError) as e:
            last = e
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


class _Load:
    """A LoadDriver run in a thread, cancelled (sessions stopped) at the end."""

    def __init__(self, url: str, app: str, sessions: int, hold_s: float) -> None:
        self.driver = LoadDriver(url, app, timeout=60)
        self.report: LoadReport | None = None
        self.thread = threading.Thread(
            target=self._run, args=(burst_plan(sessions, hold_s),), daemon=True
        )
        self.thread.start()

    def _run(self, plan: Any) -> None:
        self.report = self.driver.run(plan)

    def stop(self) -> None:
        self.driver.cancel()
        self.thread.join(timeout=30)


def test_every_dashboard_query_runs_on_the_lab() -> None:
    why = swarm_lab_missing()
    if why:
        missing_real_part(why)
    tmp = Path(tempfile.mkdtemp(prefix="dash-", dir="/tmp"))  # engine sockets: short paths
    port = free_port()
    opts = lab_mod.LabOptions(workers=2, sidecar_target=f"127.0.0.1:{port}", service_wait_time=3.0)
    running: lab_mod.RunningLab | None = None
    sidecar: subprocess.Popen[bytes] | None = None
    loads: list[_Load] = []
    try:
        running = lab_mod.up(tmp / "lab", opts)  # removes what it started when it fails
        client = running.cluster.client() if running.cluster else None
        assert client is not None
        client.services.create(
            "local/busybox:1",
            command=["sleep", "86400"],
            name=DEMO_SERVICE,
            mode=ServiceMode("replicated", 1),
        )
        token_file = tmp / "webhook-token"
        token_file.write_text(WEBHOOK_TOKEN)
        env = {
            **os.environ,
            **lab_env(running.root),
            "AUTOSCALER_RULES": str(DEMO_RULES),
            "AUTOSCALER_INTERVAL": "2s",
            "AUTOSCALER_LISTEN": f"127.0.0.1:{port}",
            "AUTOSCALER_LEDGER": str(tmp / "decisions.jsonl"),
            "AUTOSCALER_WEBHOOK_TOKEN_FILE": str(token_file),
        }
        with (tmp / "sidecar.log").open("wb") as log:
            sidecar = subprocess.Popen(
                [sys.executable, "-m", "autoscaler", "run"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        sp = running.endpoint("shinyproxy")
        prom = running.endpoint("prometheus")
        # counters scraped at zero first, or increase() would not count their first change
        _wait_for(
            "the stand-in's counters at zero",
            lambda: _prom(prom, 'startFailed_total{spec_id="huge"} == 0')["result"],
            30,
        )
        # sessions that stay, sessions that end (usage time, stops, logouts), one that
        # cannot start (start failures), and one whose service is removed (a crash)
        loads = [
            _Load(sp, "euler", sessions=4, hold_s=600),
            _Load(sp, "euler", sessions=2, hold_s=3),
            _Load(sp, "dashboard", sessions=2, hold_s=600),
            _Load(sp, "huge", sessions=1, hold_s=600),
        ]
        sidecar_url = f"http://127.0.0.1:{port}"
        _wait_for("the sidecar", lambda: requests.get(f"{sidecar_url}/healthz", timeout=2), 30)
        hook = requests.post(
            f"{sidecar_url}/webhook/alertmanager",
            json={"receiver": "e2e", "status": "resolved", "alerts": []},
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
            timeout=10,
        )
        assert hook.status_code == 200, hook.text

        def up_dashboard_session() -> str | None:
            rows = requests.get(f"{sp}/admin/data", headers={USER_HEADER: "admin"}, timeout=5)
            return next(
                (
                    str(r["backendContainerName"])
                    for r in rows.json()["data"]
                    if r["appName"] == "dashboard" and r["status"] == "Up"
                ),
                None,
            )

        _wait_for("a dashboard session", up_dashboard_session, 30)
        service_id = up_dashboard_session()
        assert service_id is not None
        client.services.get(service_id).remove()  # the stand-in sees it gone: a crash

        # every change has been scraped, each job a few times, and the sidecar has acted
        ready = {
            "sidecar scraped 3 times": 'count_over_time(up{job="autoscaler"}[1m]) >= 3',
            "stand-in scraped 3 times": 'count_over_time(up{job="shinyproxy"}[1m]) >= 3',
            "node exporter scraped 3 times": 'count_over_time(up{job="node"}[1m]) >= 3',
            "a start failure": 'sum(startFailed_total{spec_id="huge"}) > 0',
            "a crash": 'sum(appCrashes_total{spec_id="dashboard"}) > 0',
            "ended sessions": 'sum(usageTime_seconds_count{spec_id="euler"}) >= 2',
            "apps running refreshed": 'sum(absolute_apps_running{spec_id="euler"}) > 0',
            "a scaling action": 'sum(autoscaler_actions_total{kind="scale_service"}) > 0',
            "the webhook call": 'sum(autoscaler_webhook_requests_total{result="200"}) > 0',
        }
        for what, expr in ready.items():
            _wait_for(what, lambda e=expr: _prom(prom, e)["result"], 60)
        # the ended events have had a scrape after them, for rate() over the last minute
        time.sleep(6)

        influx = running.endpoint("influxdb")
        errors: dict[tuple[str, str, str], str] = {}
        empty: set[tuple[str, str, str]] = set()
        queries = dashboard_queries()
        for q in queries:
            try:
                if q.kind == "influxdb":
                    got: list[Any] = _influx(influx, q.text)
                else:
                    data = _prom(prom, q.text)
                    # a scalar answer is one sample, like a one-series vector
                    got = data["result"] if data["resultType"] == "vector" else [data]
            except AssertionError as e:
                errors[q.key] = str(e)
                continue
            nan_only = q.kind == "prometheus" and all(
                str(r.get("value", r.get("result"))[1]) == "NaN" for r in got
            )
            # a single-value panel shows NaN as its value: that is no data too
            if not got or (nan_only and q.panel_type in SINGLE_VALUE_PANELS):
                empty.add(q.key)
        assert errors == {}
        assert empty == set(EXPECTED_EMPTY), (
            f"empty but should have data: {sorted(empty - set(EXPECTED_EMPTY))}; "
            f"expected empty but have data: {sorted(set(EXPECTED_EMPTY) - empty)}"
        )
        # and the data is what the lab did, not just series at zero
        assert _prom_value(prom, 'sum(increase(startFailed_total{spec_id=~".*"}[1h]))') >= 1
        assert _prom_value(prom, 'sum(increase(appCrashes_total{spec_id=~".*"}[1h]))') >= 1
        assert _prom_value(prom, "max by (service) (autoscaler_service_desired_replicas)") >= 2
        starts = _influx(
            influx,
            substitute_influxql(
                'SELECT count("data") FROM "event" WHERE "type" = \'ProxyStart\' AND $timeFilter'
            ),
        )
        assert starts[0]["values"][0][1] >= 7  # 4 + 2 euler, 2 dashboard; never the huge one
    finally:
        for load in loads:
            load.driver.cancel()
        for load in loads:
            load.stop()
        if sidecar is not None:
            stop_child(sidecar)
        if running is not None:
            running.down()
        shutil.rmtree(tmp, ignore_errors=True)
