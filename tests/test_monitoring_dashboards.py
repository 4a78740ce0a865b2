"""Dashboards and alert rules against what the sidecar really exports.

tests/test_dashboards.py checks metric *names* against an allow-list, and
tests/test_dashboards_e2e.py needs a Swarm. Here, without one:

- every panel of a dashboard with a variable (``$pool``, ``$spec``, ...) filters by it
  whenever the metric it reads carries that label: a panel that ignores the variable shows
  every pool while the dashboard says "pool b". Which metric carries which label is read
  from the real sidecar's /metrics and from a ShinyProxy 3.2 actuator page;
- a real Prometheus scrapes the real sidecar's HTTP server (``/metrics``, as the stack's
  ``autoscaler`` job does) after real passes, and every ``autoscaler_*`` selector of every
  alert rule and dashboard (labels and label values included) must match a series, and
  every panel of the *Capacity and autoscaler* dashboard must show data, per pool too.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import requests
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.actuate.base import ActionResult
from autoscaler.decide.plan_types import Plan, PoolStatus, ScaleService, StrayPool
from autoscaler.lab.backends import PrometheusBackend, start_prometheus
from autoscaler.ledger import Ledger
from autoscaler.loop import Reconciler
from autoscaler.metrics import SidecarMetrics
from autoscaler.rules.reload import RulesStore
from autoscaler.server import HttpServer, ServerHooks
from autoscaler.sources.collect import Backends
from tests.fixtures_backends import exposition_text, need_binary
from tests.test_alert_rules import allowed_metric_names
from tests.test_dashboards import DASHBOARDS, _load, _panels
from tests.test_loop import Clock, FakeProm, FakeSwarm, RecordingActuator

ROOT = Path(__file__).resolve().parents[1]
RULE_FILES = sorted((ROOT / "alerting" / "rules").glob("*.yml"))
TOKEN = "monitoring-test-token"

# A signal that goes missing (rps) and one that stays (pending). Two service policies: api
# scales (and its actions fail, so desired != current), ghost names a service that does not
# exist (a decision error).
RULES = """
signals:
  rps:
    prometheus: {query: 'sum(rate(http_requests_total[1m]))'}
  pending:
    swarm: {metric: pending_sessions}
services:
  api:
    min: 1
    max: 10
    target_tracking:
      - {signal: rps, average_value: 10}
  ghost:
    service: shiny_ghost
    min: 1
    max: 3
    target_tracking:
      - {signal: rps, average_value: 10}
"""

# What the planner reports for two pools (autoscaler/decide/pools/planner.py `_status`).
POOLS = (
    PoolStatus(
        pool="a",
        nodes={"launching": 1, "joining": 1, "active": 2, "paused": 0, "warm": 1},
        seats={"used": 5, "free": 3, "headroom": 2, "wanted": 9},
        wanted_nodes=3,
        cost_per_hour=0.3,
        live_sessions=5,
        pending_sessions=1,
    ),
    PoolStatus(
        pool="b",
        nodes={"launching": 0, "joining": 0, "active": 1, "paused": 1, "warm": 0},
        seats={"used": 2, "free": 0, "headroom": 1, "wanted": 3},
        wanted_nodes=1,
        cost_per_hour=0.1,
        live_sessions=2,
        pending_sessions=3,
    ),
)


def busy_sidecar(tmp_path: Path) -> SidecarMetrics:
    """A sidecar after real passes that touched every metric it exports."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yml").write_text(RULES)
    clock = Clock()
    swarm, prom = FakeSwarm(), FakeProm(clock)
    prom.value = 40.0
    rec = Reconciler(
        rules=RulesStore(rules),
        backends=Backends(swarm=swarm, prometheus=prom),
        actuator=RecordingActuator(swarm, fail=True),
        metrics=SidecarMetrics(),
        ledger=Ledger(tmp_path / "ledger.jsonl"),
        clock=clock,
    )
    assert rec.run_pass().ok
    prom.value = None  # Prometheus down: the signal goes missing, its source down
    assert rec.run_pass().ok
    metrics = rec.metrics
    stray = StrayPool(pool="old", running=1, stopped=1, nodes=1, sessions=2)
    metrics.pools.observe(Plan(at=datetime.now(UTC), pools=POOLS, strays=(stray,)))
    action = ScaleService(service="api", current=2, desired=4, reason="test")
    metrics.observe_results([ActionResult(action=action, ok=True, message="would", dry_run=True)])
    metrics.notifications.labels("slack", "error").inc()
    metrics.notifications.labels("email", "ok").inc()
    metrics.alerts.labels("AutoscalerSourceDown", "pending").set(1)
    return metrics


# ---------------------------------------------------------------- which metric has which label


def exported_labels(text: str) -> dict[str, set[str]]:
    """Sample name -> label names, from Prometheus exposition text."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


@pytest.fixture(scope="module")
def known_labels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    sidecar = busy_sidecar(tmp_path_factory.mktemp("sidecar"))
    sidecar.webhook_requests.labels("401").inc()  # what the server counts per call
    known = exported_labels(generate_latest(sidecar.registry).decode())
    known.update(exported_labels(exposition_text("3.2")))
    return known


def _selectors(expr: str) -> list[Any]:
    out, stack = [], [promql_parser.parse(expr)]
    while stack:
        node = stack.pop()
        if isinstance(node, promql_parser.VectorSelector):
            out.append(node)
        elif isinstance(node, promql_parser.MatrixSelector):
            out.append(node.vector_selector)
        for attr in ("expr", "lhs", "rhs", "param", "args"):
            child = getattr(node, attr, None)
            if isinstance(child, list):
                stack.extend(child)
            elif child is not None:
                stack.append(child)
    return out


def _grafana_ready(expr: str) -> str:
    """Variables as Grafana fills them in: durations, and a regex for the others."""
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)\}?", "1m", expr)
    return re.sub(r"\$\{?(\w+)(?::\w+)?\}?", lambda m: f"__var_{m.group(1)}__", expr)


def variable_filter_problems(doc: dict[str, Any], known: dict[str, set[str]]) -> list[str]:
    """Panels reading a metric with a variable's label without filtering by the variable."""
    variables = {}
    for var in doc.get("templating", {}).get("list", []):
        query = var.get("query")
        q = query.get("query", "") if isinstance(query, dict) else str(query)
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q.strip())
        if m:
            variables[var["name"]] = m.group(2)
    problems = []
    for panel in _panels(doc):
        for t in panel.get("targets", []):
            if "expr" not in t:
                continue
            for sel in _selectors(_grafana_ready(t["expr"])):
                for name, label in variables.items():
                    if label not in known.get(sel.name or "", set()):
                        continue
                    if not any(
                        m.name == label and f"__var_{name}__" in m.value
                        for m in sel.matchers.matchers
                    ):
                        problems.append(
                            f"{panel['title']!r} {t.get('refId')}: {sel.name} has {label} "
                            f"but ignores ${name}"
                        )
    return problems


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_filter_by_the_dashboard_variables(
    path: Path, known_labels: dict[str, set[str]]
) -> None:
    assert variable_filter_problems(_load(path), known_labels) == []


def test_the_variable_lint_finds_a_panel_that_ignores_its_variable(
    known_labels: dict[str, set[str]],
) -> None:
    doc = _load(ROOT / "grafana" / "dashboards" / "capacity-autoscaler.json")
    target = next(
        t
        for p in _panels(doc)
        for t in p.get("targets", [])
        if "autoscaler_pool_seats" in t.get("expr", "")
    )
    target["expr"] = 'sum(autoscaler_pool_seats{kind="used"})'
    problems = variable_filter_problems(doc, known_labels)
    assert len(problems) == 1 and "ignores $pool" in problems[0]
    # and the sidecar's metrics really are known: a pool gauge has the pool label
    assert {"pool", "kind"} <= known_labels["autoscaler_pool_seats"]
    assert "spec_id" in known_labels["appStarts_total"]


# ---------------------------------------------------------------- a real Prometheus


@dataclass
class ScrapedSidecar:
    prometheus: PrometheusBackend
    url: str
    """The sidecar's own HTTP server."""

    def query(self, expr: str) -> list[dict[str, Any]]:
        resp = requests.post(
            f"{self.prometheus.url}/api/v1/query", data={"query": expr}, timeout=10
        )
        body = resp.json()
        assert resp.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScrapedSidecar]:
    need_binary("prometheus", "prometheus")
    metrics = busy_sidecar(tmp_path_factory.mktemp("scraped"))
    hooks = ServerHooks(
        metrics=metrics,
        healthy=lambda: (True, {}),
        last_plan=lambda: None,
        trigger=lambda _why: None,
        webhook_token=TOKEN,
    )
    server = HttpServer("127.0.0.1:0", hooks)
    server.start()
    folder = Path(tempfile.mkdtemp(prefix="test-monitoring-"))
    backend: PrometheusBackend | None = None
    try:
        url = f"http://127.0.0.1:{server.port}"
        body = json.dumps(
            {"version": "4", "status": "firing", "receiver": "autoscaler", "alerts": []}
        )
        for token in (TOKEN, "wrong"):  # one accepted call, one refused (401)
            requests.post(
                f"{url}/webhook/alertmanager",
                data=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                timeout=5,
            )
        backend = start_prometheus(
            folder,
            [
                {
                    "job_name": "autoscaler",
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}],
                }
            ],
            scrape_interval="1s",
        )
        sidecar = ScrapedSidecar(backend, url)
        # rate() and increase() need two samples of each series
        deadline = time.monotonic() + 30
        while not sidecar.query('count_over_time(up{job="autoscaler"}[1m]) >= 3'):
            assert time.monotonic() < deadline, "Prometheus did not scrape the sidecar"
            time.sleep(0.3)
        yield sidecar
    finally:
        if backend is not None:
            backend.stop()
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _selector_text(sel: Any) -> str:
    ops = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}
    matchers = [
        f"{m.name}{ops[str(m.op).rsplit('.', 1)[-1]]}{json.dumps(m.value)}"
        for m in sel.matchers.matchers
        if "__var_" not in m.value
    ]
    return f"{sel.name}{{{', '.join(matchers)}}}"


def _sidecar_selectors() -> dict[str, str]:
    """Selector text -> where it is used, for every autoscaler_* selector."""
    out: dict[str, str] = {}
    for f in RULE_FILES:
        for group in yaml.safe_load(f.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                for sel in _selectors(rule["expr"]):
                    if (sel.name or "").startswith("autoscaler_"):
                        out.setdefault(_selector_text(sel), f"{f.name}: {rule.get('alert')}")
    for path in DASHBOARDS:
        doc = _load(path)
        for panel in _panels(doc):
            for t in panel.get("targets", []):
                for sel in _selectors(_grafana_ready(t.get("expr", "") or "vector(0)")):
                    if (sel.name or "").startswith("autoscaler_"):
                        out.setdefault(_selector_text(sel), f"{path.name}: {panel['title']}")
    return out


def test_the_selectors_cover_rules_and_dashboards() -> None:
    selectors = _sidecar_selectors()
    assert 'autoscaler_actions_total{result="dry_run"}' in selectors
    assert 'autoscaler_session_tasks{state="pending"}' in selectors
    assert "autoscaler_pass_duration_seconds_bucket{}" in selectors


@pytest.mark.real
def test_every_sidecar_selector_of_rules_and_dashboards_matches_a_series(
    scraped: ScrapedSidecar,
) -> None:
    empty = [
        f"{where}: {sel}" for sel, where in _sidecar_selectors().items() if not scraped.query(sel)
    ]
    assert empty == []
    # a label value the sidecar never writes matches nothing: the check can fail
    assert not scraped.query('autoscaler_pool_seats{kind="spare"}')


def test_every_allow_listed_sidecar_metric_is_exported(known_labels: dict[str, set[str]]) -> None:
    """tests/data/metric_names.txt is what the lint of rules and dashboards trusts; for the
    sidecar's own names it must agree with what autoscaler/metrics.py exports."""
    listed = {n for n in allowed_metric_names() if n.startswith("autoscaler_")}
    assert listed and sorted(listed - set(known_labels)) == []


def _capacity_targets() -> list[tuple[str, str]]:
    doc = _load(ROOT / "grafana" / "dashboards" / "capacity-autoscaler.json")
    return [
        (f"{p['title']} {t['refId']}", t["expr"])
        for p in _panels(doc)
        for t in p.get("targets", [])
        if "expr" in t
    ]


def _with_pool(expr: str, pool: str) -> str:
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)\}?", "1m", expr)
    return expr.replace("$pool", pool)


@pytest.mark.real
def test_every_capacity_panel_shows_the_sidecar(scraped: ScrapedSidecar) -> None:
    empty = [
        title for title, expr in _capacity_targets() if not scraped.query(_with_pool(expr, ".*"))
    ]
    assert empty == []


@pytest.mark.real
def test_capacity_panels_add_up_the_pools_and_show_one_when_chosen(
    scraped: ScrapedSidecar,
) -> None:
    targets = dict(_capacity_targets())
    for title, every, only_b in (
        ("Sessions A", 7, 2),  # live sessions: 5 in a, 2 in b
        ("Sessions B", 4, 3),  # pending: 1 in a, 3 in b
    ):
        for pool, expected in ((".*", every), ("b", only_b)):
            result = scraped.query(_with_pool(targets[title], pool))
            assert [float(r["value"][1]) for r in result] == [expected], (title, pool)
