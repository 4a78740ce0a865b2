"""The ShinyProxy stand-in against a real lab Swarm (2 workers), as the autoscaler sees it.

Sessions become services on workers with ShinyProxy's labels; a start that cannot be placed
fails after the (shortened) service wait time; draining a worker turns its sessions into
crashes; the actuator parses with prometheus_client; InfluxDB holds ShinyProxy's events.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.lab.lab import LabOptions, RunningLab, up
from autoscaler.lab.load import LoadDriver, burst_plan
from autoscaler.lab.standin.server import USER_HEADER
from tests.realparts import missing_real_part

pytestmark = [pytest.mark.real, pytest.mark.slow]

WAIT = 6.0
"""The lab's service-wait-time here (ShinyProxy's default is 60 s)."""
BINARIES = (
    "dockerd",
    "ip",
    "nsenter",
    "unshare",
    "busybox",
    "prometheus",
    "prometheus-alertmanager",
    "prometheus-node-exporter",
    "influxd",
)


@pytest.fixture(scope="module")
def lab() -> Iterator[RunningLab]:
    if os.geteuid() != 0:
        missing_real_part("the lab needs root (network namespaces, dockerd)")
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        missing_real_part(f"not installed: {', '.join(missing)}")
    parent = Path(tempfile.mkdtemp(prefix="lab-"))
    running: RunningLab | None = None
    try:
        running = up(parent / "l", LabOptions(workers=2, service_wait_time=WAIT))
        yield running
    finally:
        try:
            if running is not None:
                running.down()
        finally:
            shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="module")
def api(lab: RunningLab) -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=lab.endpoint("docker_host"), timeout=30)
    yield client
    client.close()


def call(lab: RunningLab, method: str, path: str, user: str, **kw: Any) -> requests.Response:
    return requests.request(method, lab.endpoint("shinyproxy") + path,
                            headers={USER_HEADER: user}, timeout=60, **kw)  # fmt: skip


def start(lab: RunningLab, user: str, app: str = "euler") -> dict[str, Any]:
    r = call(lab, "POST", f"/api/proxy/{app}", user)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "success"
    return dict(body["data"])


def metrics(lab: RunningLab) -> dict[str, Any]:
    r = requests.get(lab.endpoint("actuator") + "/actuator/prometheus", timeout=10)
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def value(lab: RunningLab, family: str, sample: str, **labels: str) -> float:
    for s in metrics(lab)[family].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    return math.nan


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def node_names(api: docker.APIClient) -> dict[str, str]:
    return {n["ID"]: n["Description"]["Hostname"] for n in api.nodes()}


def seats_per_worker(api: docker.APIClient) -> int:
    cpus = min(n["Description"]["Resources"]["NanoCPUs"] for n in api.nodes()
               if n["Spec"]["Role"] == "worker")  # fmt: skip
    return int(cpus // 500_000_000)  # the euler app reserves 0.5 CPU


def test_sessions_become_shinyproxy_services_on_workers(
    lab: RunningLab, api: docker.APIClient
) -> None:
    proxies = [start(lab, f"ana-{i}") for i in range(3)]
    names = node_names(api)
    for p in proxies:
        svc = api.inspect_service(f"sp-service-{p['id']}-0")
        spec = svc["Spec"]["TaskTemplate"]
        labels = spec["ContainerSpec"]["Labels"]
        assert labels["openanalytics.eu/sp-proxied-app"] == "true"
        assert labels["openanalytics.eu/sp-proxy-id"] == p["id"]
        assert labels["openanalytics.eu/sp-spec-id"] == "euler"
        assert labels["openanalytics.eu/sp-user-id"] == p["userId"]
        assert spec["Resources"]["Reservations"]["NanoCPUs"] == 500_000_000
        assert spec["RestartPolicy"]["Condition"] == "none"
        assert "Labels" not in svc["Spec"] or not svc["Spec"]["Labels"]
        tasks = api.tasks(filters={"service": svc["ID"]})
        assert [t["Status"]["State"] for t in tasks] == ["running"]
        assert names[tasks[0]["NodeID"]].startswith("worker-")
    # a user sees only their own proxies; an admin sees all in /admin/data
    mine = call(lab, "GET", "/api/proxy", "ana-0").json()["data"]
    assert [p["id"] for p in mine] == [proxies[0]["id"]]
    admin = call(lab, "GET", "/admin/data", "admin").json()
    rows = {row["proxyId"]: row for row in admin["data"]}
    assert {p["id"] for p in proxies} <= rows.keys()
    row = rows[proxies[1]["id"]]
    assert (row["status"], row["userId"], row["appName"], row["imageName"], row["imageTag"]) == (
        "Up",
        "ana-1",
        "euler",
        "local/busybox",
        "1",
    )
    assert call(lab, "GET", "/admin/data", "ana-1").status_code == 403
    for p in proxies:
        assert call(lab, "DELETE", f"/api/proxy/{p['id']}", p["userId"]).status_code == 200
    remaining = {s["Spec"]["Name"] for s in api.services()}
    assert not {f"sp-service-{p['id']}-0" for p in proxies} & remaining


def test_a_start_that_cannot_be_placed_fails_after_the_wait_time(
    lab: RunningLab, api: docker.APIClient
) -> None:
    before = value(lab, "startFailed", "startFailed_total", spec_id="huge")
    began = time.monotonic()
    r = call(lab, "POST", "/api/proxy/huge", "bea")
    took = time.monotonic() - began
    assert r.status_code == 500
    assert r.json()["status"] == "error"
    assert "insufficient resources" in r.json()["data"]
    assert WAIT <= took < WAIT + 5
    assert value(lab, "startFailed", "startFailed_total", spec_id="huge") == before + 1
    assert not [s for s in api.services() if s["Spec"]["Name"].startswith("sp-service-")]
    assert call(lab, "GET", "/api/proxy", "bea").json()["data"] == []


def test_draining_a_worker_turns_its_sessions_into_crashes(
    lab: RunningLab, api: docker.APIClient
) -> None:
    driver = LoadDriver(lab.endpoint("shinyproxy"), "euler", heartbeat_rate=0.5)
    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.update(
        driver.run(burst_plan(4, hold_s=25.0)).summary()))  # fmt: skip
    runner.start()
    try:
        eventually(lambda: len(running_session_tasks(api)) == 4)
        by_node = running_session_tasks(api)
        victim = next(n for n in node_names(api).items() if n[1] == "worker-1")[0]
        on_victim = sum(1 for node in by_node.values() if node == victim)
        assert on_victim > 0
        crashes_before = value(lab, "appCrashes", "appCrashes_total", spec_id="euler")
        set_availability(api, victim, "drain")
        eventually(lambda: value(lab, "appCrashes", "appCrashes_total", spec_id="euler")
                   == crashes_before + on_victim)  # fmt: skip
        assert len(running_session_tasks(api)) == 4 - on_victim
        driver.cancel()
    finally:
        driver.cancel()
        runner.join(60)
        set_availability(api, victim, "active")
    assert result["killed"] == on_victim
    assert result["started"] == 4 and result["failed"] == 0


def running_session_tasks(api: docker.APIClient) -> dict[str, str]:
    out = {}
    for t in api.tasks(filters={"desired-state": "running"}):
        labels = t["Spec"]["ContainerSpec"].get("Labels", {})
        if "openanalytics.eu/sp-user-id" in labels and t["Status"]["State"] == "running":
            out[t["ServiceID"]] = t["NodeID"]
    return out


def set_availability(api: docker.APIClient, node_id: str, availability: str) -> None:
    node = api.inspect_node(node_id)
    api.update_node(node_id, node["Version"]["Index"],
                    {**node["Spec"], "Availability": availability})  # fmt: skip


def test_a_burst_beyond_capacity_fails_the_excess_after_the_wait_time(
    lab: RunningLab, api: docker.APIClient
) -> None:
    capacity = 2 * seats_per_worker(api)
    driver = LoadDriver(lab.endpoint("shinyproxy"), "euler", heartbeat_rate=1.0)
    summary = driver.run(burst_plan(capacity + 2, hold_s=WAIT + 3)).summary()
    assert summary["started"] == capacity, summary["failure_reasons"]
    assert summary["failed"] == 2
    assert summary["failure_reasons"] == {"no node had room (start timed out)": 2}
    assert summary["completed"] == capacity


def test_the_exposition_has_shinyproxys_names_types_and_labels(lab: RunningLab) -> None:
    fams = metrics(lab)
    expected = {
        "userLogins": "counter", "userLogouts": "counter", "authFailed": "counter",
        "appStarts": "counter", "appStops": "counter", "startFailed": "counter",
        "appCrashes": "counter", "absolute_users_logged_in": "gauge",
        "absolute_users_active": "gauge", "absolute_apps_running": "gauge",
        "startupTime_seconds": "summary", "usageTime_seconds": "summary",
        "applicationStartupTime_seconds": "summary", "imagePullTime_seconds": "summary",
        "containerScheduleTime_seconds": "summary", "containerStartupTime_seconds": "summary",
        "startupTime_seconds_max": "gauge",
    }  # fmt: skip
    assert {name: fams[name].type for name in expected} == expected
    for fam in fams.values():
        for s in fam.samples:
            assert {"shinyproxy_instance", "shinyproxy_realm"} <= s.labels.keys()
    starts = {s.labels["spec_id"] for s in fams["appStarts"].samples}
    assert starts == {"euler", "dashboard", "huge"}
    sched = fams["containerScheduleTime_seconds"].samples[0].labels
    assert sched["container_idx"] == "0"


def test_prometheus_scrapes_the_stand_in(lab: RunningLab) -> None:
    url = lab.endpoint("prometheus") + "/api/v1/query"

    def scraped() -> bool:
        r = requests.get(url, params={"query": 'appStarts_total{job="shinyproxy"}'}, timeout=5)
        return bool(r.ok and r.json()["data"]["result"])

    eventually(scraped, timeout=30)


def test_influxdb_holds_shinyproxys_usage_events(lab: RunningLab) -> None:
    user = f"Cleo {time.monotonic_ns()}"
    p = start(lab, user)
    call(lab, "DELETE", f"/api/proxy/{p['id']}", user)
    call(lab, "POST", "/logout", user)
    influx = lab.endpoint("influxdb")

    def rows() -> list[dict[str, Any]]:
        r = requests.get(f"{influx}/query", timeout=5, params={
            "db": "shinyproxy_usagestats", "epoch": "ms",
            "q": f"SELECT * FROM event WHERE username = '{user}'"})  # fmt: skip
        series = r.json()["results"][0].get("series", [])
        if not series:
            return []
        return [dict(zip(series[0]["columns"], v, strict=True)) for v in series[0]["values"]]

    eventually(lambda: len(rows()) == 4, timeout=10)
    got = sorted((r["type"], r["data"]) for r in rows())
    assert got == [("Login", ""), ("Logout", ""), ("ProxyStart", "euler"), ("ProxyStop", "euler")]
    assert set(rows()[0]) == {"time", "username", "type", "data"}
    now_ms = time.time() * 1000
    assert all(abs(now_ms - r["time"]) < 60_000 for r in rows())  # stamped on receipt
