"""Grafana provisioning and dashboards: a lint, and the queries on a real influxd and Prometheus.

Grafana itself does not run here, so the lint checks what Grafana would only show as an
empty or broken panel: valid JSON, stable unique uids, datasources referred to by the
provisioned uids (file provisioning does not resolve ``${DS_...}`` import inputs), every
PromQL target parses and names only metrics that exist, every template variable is
defined, and every InfluxQL query reads ShinyProxy's usage events as they are written.
A real influxd runs the usage-history queries on events written the way ShinyProxy writes
them, and a real Prometheus runs every PromQL target (the ShinyProxy ones against a scraped
ShinyProxy 3.2 actuator page, where none may come back empty).
"""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.test_alert_rules import allowed_metric_names, promql_metric_names, promtool

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yml"
PROVIDERS = ROOT / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
MONITORING_DOC = ROOT / "docs" / "monitoring.md"

UID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
GRAFANA_BUILTINS = {
    "__rate_interval",
    "__interval",
    "__range",
    "__interval_ms",
    "__range_s",
    "__from",
    "__to",
    "timeFilter",
    "__timeFilter",
}
# $__rate_interval and friends become durations; other variables become a regex inside a
# label matcher, which is the only place the dashboards use them.
DURATION_VARS = re.compile(r"\$\{?(__rate_interval|__interval|__range)\b\}?")
VARIABLE_USE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")

# ShinyProxy's InfluxDB usage statistics: measurement "event", tags username and type,
# one string field data; only these event types are ever written.
INFLUX_MEASUREMENT = "event"
INFLUX_IDENTIFIERS = {"event", "username", "type", "data", "time"}
INFLUX_EVENT_TYPES = {"Login", "Logout", "ProxyStart", "ProxyStop"}


# ---------------------------------------------------------------- the lint


def provisioned_datasources() -> dict[str, str]:
    """uid -> type of every provisioned datasource."""
    doc = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    return {d["uid"]: d["type"] for d in doc["datasources"]}


def _panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in doc.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def _defined_variables(doc: dict[str, Any]) -> set[str]:
    return {v["name"] for v in doc.get("templating", {}).get("list", [])} | GRAFANA_BUILTINS


def _used_variables(text: str) -> set[str]:
    return {
        next(g for g in m.groups() if g)
        for m in VARIABLE_USE.finditer(text)
        if not any(g and g.isdigit() for g in m.groups())
    }


def lint_promql(expr: str, defined: set[str], allowed: set[str]) -> list[str]:
    problems = [f"undefined variable ${v}" for v in sorted(_used_variables(expr) - defined)]
    substituted = DURATION_VARS.sub("5m", expr)
    substituted = VARIABLE_USE.sub(
        lambda m: m.group(0) if any(g and g.isdigit() for g in m.groups()) else ".*",
        substituted,
    )
    try:
        unknown = promql_metric_names(substituted) - allowed
    except ValueError as e:
        return [*problems, f"does not parse: {e}"]
    return problems + [f"unknown metric {n}" for n in sorted(unknown)]


def lint_influxql(query: str) -> list[str]:
    problems = []
    if not query.lstrip().upper().startswith("SELECT"):
        problems.append("not a SELECT")
    if "$timeFilter" not in query:
        problems.append("no $timeFilter: the panel would read all history")
    for m in re.findall(r'FROM\s+"?(\w+)"?', query, flags=re.I):
        if m != INFLUX_MEASUREMENT:
            problems.append(f"measurement {m} is not written by ShinyProxy")
    for ident in re.findall(r'"(\w+)"', query):
        if ident not in INFLUX_IDENTIFIERS and not re.search(rf'AS\s+"{ident}"', query):
            problems.append(f"identifier {ident} is neither a tag nor the field of an event")
    for value in re.findall(r"\"type\"\s*=\s*'(\w+)'", query):
        if value not in INFLUX_EVENT_TYPES:
            problems.append(f"event type {value} is never written to InfluxDB")
    return problems


def lint_dashboard(
    doc: dict[str, Any], datasources: dict[str, str], allowed: set[str]
) -> list[str]:
    problems: list[str] = []
    uid = doc.get("uid")
    if not isinstance(uid, str) or not UID.match(uid):
        problems.append(f"uid {uid!r} is not a stable short uid")
    if not doc.get("title"):
        problems.append("no title")
    if doc.get("id") is not None:
        problems.append("id must be null in a provisioned dashboard")
    text = json.dumps(doc)
    if "${DS_" in text or "__inputs" in doc:
        problems.append("import inputs (${DS_...}) are not resolved by file provisioning")
    defined = _defined_variables(doc)
    ids = [p.get("id") for p in _panels(doc)]
    if len(ids) != len(set(ids)):
        problems.append("panel ids are not unique")

    def check_ds(where: str, ds: Any) -> str | None:
        if not isinstance(ds, dict) or ds.get("uid") not in datasources:
            problems.append(f"{where}: datasource {ds!r} is not a provisioned uid")
            return None
        if datasources[ds["uid"]] != ds.get("type"):
            problems.append(f"{where}: datasource type {ds.get('type')!r} does not match")
        return str(ds["uid"])

    for var in doc.get("templating", {}).get("list", []):
        where = f"variable {var.get('name')}"
        if var.get("type") != "query":
            continue
        check_ds(where, var.get("datasource"))
        query = var.get("query")
        q = query.get("query", "") if isinstance(query, dict) else str(query)
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q.strip())
        if not m:
            problems.append(f"{where}: expected label_values(<selector>, <label>), got {q!r}")
        else:
            problems += [f"{where}: {p}" for p in lint_promql(m.group(1), defined, allowed)]

    for panel in _panels(doc):
        if panel.get("type") in ("row", "text"):
            continue
        where = f"panel {panel.get('title')!r}"
        pos = panel.get("gridPos", {})
        if not pos or pos.get("x", 0) + pos.get("w", 0) > 24:
            problems.append(f"{where}: gridPos outside the 24 columns")
        panel_uid = check_ds(where, panel.get("datasource"))
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{where}: no query")
        for t in targets:
            uid_t = check_ds(
                f"{where} {t.get('refId')}", t.get("datasource", panel.get("datasource"))
            )
            kind = datasources.get(uid_t or panel_uid or "")
            if kind == "prometheus":
                if not t.get("expr"):
                    problems.append(f"{where}: empty PromQL")
                    continue
                problems += [f"{where}: {p}" for p in lint_promql(t["expr"], defined, allowed)]
            elif kind == "influxdb":
                if not t.get("rawQuery"):
                    problems.append(f"{where}: InfluxDB targets are raw InfluxQL here")
                problems += [f"{where}: {p}" for p in lint_influxql(t.get("query", ""))]
    return problems


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


# ---------------------------------------------------------------- the shipped dashboards


def test_there_are_the_five_dashboards() -> None:
    titles = {_load(p)["title"] for p in DASHBOARDS}
    assert titles == {
        "ShinyProxy usage",
        "Capacity and autoscaler",
        "Swarm nodes",
        "Traefik",
        "Usage history",
    }


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_passes_the_lint(path: Path) -> None:
    problems = lint_dashboard(_load(path), provisioned_datasources(), allowed_metric_names())
    assert problems == []


def _count_bars() -> list[tuple[str, dict[str, Any]]]:
    """Panels that draw, per bar, how many events a counter saw (increase())."""
    return [
        (f"{path.name}: {panel['title']}", panel)
        for path in DASHBOARDS
        for panel in _panels(_load(path))
        if panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {}).get("drawStyle")
        == "bars"
        and any("increase(" in t.get("expr", "") for t in panel.get("targets", []))
    ]


def test_count_bars_have_a_bar_per_window_so_no_event_is_counted_twice() -> None:
    """A bar is the increase over its window; windows longer than the step between bars
    overlap ($__rate_interval is at least 4 scrape intervals, the step at 6 hours about
    20 s), so each event showed in about three bars. The window is the step itself, and
    the step at least 1m (4 scrape intervals of 15 s) so every window holds samples."""
    bars = _count_bars()
    assert len(bars) >= 5
    for where, panel in bars:
        for target in panel["targets"]:
            assert "[$__interval]" in target["expr"], where
            assert "$__rate_interval" not in target["expr"], where
        assert panel.get("interval") == "1m", where


def test_dashboard_uids_and_titles_are_unique() -> None:
    docs = [_load(p) for p in DASHBOARDS]
    assert len({d["uid"] for d in docs}) == len(docs)
    assert len({d["title"] for d in docs}) == len(docs)


def test_datasources_have_fixed_unique_uids_and_point_at_the_stack() -> None:
    doc = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    uids = [d["uid"] for d in doc["datasources"]]
    assert len(uids) == len(set(uids))
    urls = {d["type"]: d["url"] for d in doc["datasources"]}
    assert urls == {"prometheus": "http://prometheus:9090", "influxdb": "http://influxdb:8086"}
    influx = next(d for d in doc["datasources"] if d["type"] == "influxdb")
    assert influx["jsonData"]["dbName"] == "shinyproxy_usagestats"


def test_every_datasource_is_used_by_a_dashboard() -> None:
    used = {
        p["datasource"]["uid"]
        for path in DASHBOARDS
        for p in _panels(_load(path))
        if p.get("type") != "row"
    }
    assert used == set(provisioned_datasources())


def test_dashboard_provider_reads_the_folder_the_stack_mounts() -> None:
    provider = yaml.safe_load(PROVIDERS.read_text(encoding="utf-8"))["providers"][0]
    stack = yaml.safe_load((ROOT / "stack.yml").read_text(encoding="utf-8"))
    targets = {c["target"] for c in stack["services"]["grafana"]["configs"]}
    folder = provider["options"]["path"]
    assert {f"{folder}/{p.name}" for p in DASHBOARDS} <= targets
    assert f"/etc/grafana/provisioning/dashboards/{PROVIDERS.name}" in targets
    assert f"/etc/grafana/provisioning/datasources/{DATASOURCES.name}" in targets


def test_every_dashboard_is_described_in_the_monitoring_doc() -> None:
    text = MONITORING_DOC.read_text(encoding="utf-8")
    for path in DASHBOARDS:
        doc = _load(path)
        assert f"### {doc['title']}" in text, doc["title"]
        for panel in _panels(doc):
            if panel.get("type") != "row":
                assert panel.get("description"), f"{doc['title']}: {panel['title']}"


# ---------------------------------------------------------------- the lint bites


def _mutated(change: Any) -> list[str]:
    doc = copy.deepcopy(_load(DASHBOARDS[0]))
    change(doc)
    return lint_dashboard(doc, provisioned_datasources(), allowed_metric_names())


def _first_prom_target(doc: dict[str, Any]) -> dict[str, Any]:
    return next(t for p in _panels(doc) for t in p.get("targets", []) if "expr" in t)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(uid="Shiny Usage!"), "stable short uid"),
        (lambda d: d.update(id=7), "id must be null"),
        (
            lambda d: d["panels"][1].update(datasource={"type": "prometheus", "uid": "${DS_PROM}"}),
            "import inputs",
        ),
        (
            lambda d: d["panels"][1].update(datasource={"type": "prometheus", "uid": "other"}),
            "not a provisioned uid",
        ),
        (
            lambda d: d["panels"][1].update(
                datasource={"type": "influxdb", "uid": "shiny-prometheus"}
            ),
            "does not match",
        ),
        (
            lambda d: _first_prom_target(d).update(expr="sum(proxiesRunning)"),
            "unknown metric proxiesRunning",
        ),
        (
            lambda d: _first_prom_target(d).update(expr="sum(rate(appStarts_total[5m])"),
            "does not parse",
        ),
        (
            lambda d: _first_prom_target(d).update(expr='max(absolute_users_active{x=~"$nodes"})'),
            "undefined variable $nodes",
        ),
        (lambda d: d["panels"][2].update(gridPos={"h": 4, "w": 12, "x": 16, "y": 0}), "gridPos"),
        (lambda d: d["panels"][3].update(id=d["panels"][2]["id"]), "panel ids"),
    ],
)
def test_the_lint_finds(change: Any, expected: str) -> None:
    problems = _mutated(change)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('SELECT count("data") FROM "event" WHERE "type" = \'Login\'', "$timeFilter"),
        (
            'SELECT count("data") FROM "event" WHERE "type" = \'ProxyStartFailed\' AND $timeFilter',
            "never written",
        ),
        ('SELECT count("data") FROM "events" WHERE $timeFilter', "measurement events"),
        ('SELECT count("spec_id") FROM "event" WHERE $timeFilter', "identifier spec_id"),
        ('DROP MEASUREMENT "event"', "not a SELECT"),
    ],
)
def test_the_influxql_lint_finds(query: str, expected: str) -> None:
    assert any(expected in p for p in lint_influxql(query))


# ---------------------------------------------------------------- InfluxQL on a real influxd

# What ShinyProxy writes: no timestamp (InfluxDB stamps the arrival), only spaces escaped.
EVENTS = [
    'event,username=alice,type=Login data=""',
    'event,username=alice,type=ProxyStart data="euler"',
    'event,username=bob,type=Login data=""',
    'event,username=bob,type=ProxyStart data="euler"',
    'event,username=bob,type=ProxyStart data="gauss"',
    'event,username=carol\\ d,type=Login data=""',
    'event,username=carol\\ d,type=ProxyStart data="euler"',
    'event,username=alice,type=ProxyStop data="euler"',
    'event,username=alice,type=Login data=""',
    'event,username=alice,type=Logout data=""',
]


def _influx_targets() -> dict[str, str]:
    out = {}
    for path in DASHBOARDS:
        for panel in _panels(_load(path)):
            for t in panel.get("targets", []):
                if t.get("datasource", {}).get("type") == "influxdb":
                    out[panel["title"]] = t["query"]
    return out


def _run(url: str, database: str, query: str) -> list[dict[str, Any]]:
    q = query.replace("$timeFilter", "time > now() - 7d").replace("$__interval", "1h")
    resp = requests.get(f"{url}/query", params={"db": database, "q": q, "epoch": "s"}, timeout=10)
    assert resp.status_code == 200, resp.text
    result = resp.json()["results"][0]
    assert "error" not in result, f"{result['error']}: {q}"
    series: list[dict[str, Any]] = result.get("series", [])
    return series


def _column_total(series: list[dict[str, Any]], column: str) -> float:
    total = 0.0
    for s in series:
        i = s["columns"].index(column)
        total += sum(row[i] or 0 for row in s["values"])
    return total


@pytest.mark.real
def test_usage_history_queries_run_on_a_real_influxd(usagestats: Any) -> None:
    url, db = usagestats.url, usagestats.database
    for line in EVENTS:
        resp = requests.post(f"{url}/write", params={"db": db}, data=line.encode(), timeout=5)
        assert resp.status_code == 204, resp.text
    targets = _influx_targets()
    assert len(targets) == 8
    results = {title: _run(url, db, q) for title, q in targets.items()}
    for title, series in results.items():
        assert series, f"{title}: no rows"
    logins = sum(1 for e in EVENTS if "type=Login" in e)
    starts = sum(1 for e in EVENTS if "type=ProxyStart" in e)
    assert _column_total(results["Logins per hour"], "count") == logins
    assert _column_total(results["Logins per day"], "count") == logins
    assert _column_total(results["App starts per hour"], "count") == starts
    assert _column_total(results["App starts per day"], "count") == starts
    assert _column_total(results["Users per day"], "count") == 3
    top_apps = results["Top apps"][0]
    assert top_apps["columns"] == ["time", "app", "username"]
    apps = [row[1] for row in top_apps["values"]]
    assert sorted(apps) == ["euler", "euler", "euler", "gauss"]
    assert {row[2] for row in top_apps["values"]} == {"alice", "bob", "carol d"}
    recent = results["Recent events"][0]
    assert len(recent["values"]) == len(EVENTS)


# ---------------------------------------------------------------- PromQL on a real Prometheus


def _prom_targets(path: Path) -> list[tuple[str, str]]:
    doc = _load(path)
    return [
        (panel["title"], t["expr"])
        for panel in _panels(doc)
        for t in panel.get("targets", [])
        if "expr" in t
    ]


def _as_grafana_sends_it(expr: str) -> str:
    expr = DURATION_VARS.sub("1m", expr)
    return VARIABLE_USE.sub(
        lambda m: m.group(0) if any(g and g.isdigit() for g in m.groups()) else ".*", expr
    )


def _instant(url: str, expr: str) -> dict[str, Any]:
    resp = requests.post(f"{url}/api/v1/query", data={"query": expr}, timeout=10)
    body: dict[str, Any] = resp.json()
    assert resp.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    return body


@pytest.mark.real
def test_prometheus_accepts_every_dashboard_query(prometheus: Any) -> None:
    for path in DASHBOARDS:
        for title, expr in _prom_targets(path):
            _instant(prometheus.url, _as_grafana_sends_it(expr))
            assert title


@pytest.mark.real
def test_shinyproxy_usage_panels_show_a_shinyproxy_32_replica(prometheus: Any) -> None:
    # The fixture's Prometheus scrapes a ShinyProxy 3.2 actuator page every second.
    path = next(p for p in DASHBOARDS if p.name == "shinyproxy-usage.json")
    empty = []
    for title, expr in _prom_targets(path):
        query = _as_grafana_sends_it(expr)
        deadline = time.monotonic() + 15
        while not _instant(prometheus.url, query)["data"]["result"]:
            if time.monotonic() > deadline:
                empty.append(f"{title}: {query}")
                break
            time.sleep(0.5)
    assert empty == []


# ---------------------------------------------------------------- single panels, by promtool


def _panel_expr(dashboard: str, title: str) -> str:
    doc = _load(ROOT / "grafana" / "dashboards" / dashboard)
    (expr,) = [
        t["expr"] for p in _panels(doc) if p.get("title") == title for t in p.get("targets", [])
    ]
    return str(expr)


def test_certificate_panel_shows_the_renewed_certificate(tmp_path: Path) -> None:
    # After a renewal Traefik reports both certificates of a name (another serial) until it
    # restarts: the panel must show the new one's expiry, not the one it replaced.
    day = 86400
    expr = _panel_expr("traefik.json", "Certificates: time to expiry")
    series = [
        ('traefik_tls_certs_not_after{cn="shiny.example.org", serial="1"}', 10 * day),
        ('traefik_tls_certs_not_after{cn="shiny.example.org", serial="2"}', 90 * day),
        ('traefik_tls_certs_not_after{cn="old.example.org", serial="3"}', 5 * day),
    ]
    unit_test = {
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": f"{v}x10"} for s, v in series],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "0m",
                        "exp_samples": [
                            {"labels": '{cn="shiny.example.org"}', "value": 90 * day},
                            {"labels": '{cn="old.example.org"}', "value": 5 * day},
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "certificates_test.yml"
    path.write_text(yaml.safe_dump(unit_test), encoding="utf-8")
    res = promtool("test", "rules", path)
    assert res.returncode == 0, res.stdout + res.stderr
