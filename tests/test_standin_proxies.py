"""Session lifecycle rules of the stand-in, against a scripted backend (no Swarm needed).

The Swarm side is exercised for real in test_standin_swarm.py; here the backend is a fake of
the stand-in's own SessionBackend interface, so each rule is checked quickly and exactly.
"""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.lab.standin.exposition import render
from autoscaler.lab.standin.meters import MeterRegistry
from autoscaler.lab.standin.proxies import LimitReached, ProxyService, Settings, StartFailed
from autoscaler.lab.standin.specs import AppSpec, load_specs
from autoscaler.lab.standin.swarm import SessionServiceRequest, SwarmView, TaskView

EULER = AppSpec.model_validate(
    {"id": "euler", "container-cpu-request": 0.5, "container-memory-request": "128m"}
)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class ScriptedBackend:
    """Tasks go running after ``start_after`` seconds of polling, or never (None)."""

    def __init__(self, clock: Clock, start_after: float | None = 1.0) -> None:
        self.clock = clock
        self.start_after = start_after
        self.created: dict[str, tuple[SessionServiceRequest, float]] = {}
        self.removed: list[str] = []
        self.override: dict[str, TaskView] = {}
        self.node_states = {"n1": "ready"}

    def create(self, request: SessionServiceRequest) -> str:
        sid = f"svc{len(self.created)}"
        self.created[sid] = (request, self.clock())
        return sid

    def task(self, service_id: str) -> TaskView | None:
        if service_id in self.override:
            return self.override[service_id]
        _, at = self.created[service_id]
        running = self.start_after is not None and self.clock() - at >= self.start_after
        state = "running" if running else "pending"
        msg = "" if running else "no suitable node (insufficient resources on 3 nodes)"
        return TaskView(state, "running", "n1" if running else "", "c1" if running else "", msg, "")

    def remove(self, service_id: str) -> None:
        self.removed.append(service_id)

    def observe(self) -> SwarmView:
        tasks = {}
        for sid in self.created:
            if sid not in self.removed:
                t = self.task(sid)
                assert t is not None
                tasks[sid] = t
        return SwarmView(tasks, dict(self.node_states))


class Events:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str | None]] = []

    def submit(self, username: str, event_type: str, data: str | None) -> None:
        self.lines.append((username, event_type, data))


def make(
    start_after: float | None = 1.0,
    wait: float = 60.0,
    specs: tuple[AppSpec, ...] = (EULER,),
    heartbeat_timeout: float = -1.0,
) -> tuple[ProxyService, ScriptedBackend, MeterRegistry, Events, Clock]:
    clock = Clock()
    backend = ScriptedBackend(clock, start_after)
    meters = MeterRegistry({"shinyproxy_instance": "i1", "shinyproxy_realm": ""}, clock)
    events = Events()
    svc = ProxyService(
        specs,
        backend,
        meters,
        events,
        Settings(
            instance_id="i1",
            service_wait_time=wait,
            poll_interval=0.5,
            heartbeat_timeout=heartbeat_timeout,
        ),
        wall=lambda: 1_700_000_000.0 + clock.t,
        mono=clock,
        sleep=clock.sleep,
    )
    return svc, backend, meters, events, clock


def metric(meters: MeterRegistry, name: str, **labels: str) -> float:
    for fam in text_string_to_metric_families(render(meters.samples())):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise KeyError(name)


def test_a_start_creates_shinyproxys_service_and_counts_it() -> None:
    svc, backend, meters, events, _ = make()
    proxy = svc.start("euler", "alice", ("scientists",))
    request, _ = backend.created[proxy.service_id]
    assert request.name == f"sp-service-{proxy.id}-0"
    assert request.labels["openanalytics.eu/sp-proxied-app"] == "true"
    assert request.labels["openanalytics.eu/sp-proxy-id"] == proxy.id
    assert request.labels["openanalytics.eu/sp-spec-id"] == "euler"
    assert request.labels["openanalytics.eu/sp-user-id"] == "alice"
    assert request.labels["openanalytics.eu/sp-user-groups"] == "scientists"
    assert request.labels["openanalytics.eu/sp-instance"] == "i1"
    assert request.labels["openanalytics.eu/sp-container-index"] == "0"
    created = request.labels["openanalytics.eu/sp-proxy-created-timestamp"]
    assert created == str(proxy.created_ms)
    assert request.labels["openanalytics.eu/sp-public-path"] == f"/app_proxy/{proxy.id}/"
    assert request.nano_cpus_reservation == 500_000_000
    assert request.memory_reservation == 128 * 1024**2
    assert proxy.status == "Up" and proxy.node_id == "n1"
    assert metric(meters, "appStarts_total", spec_id="euler") == 1
    assert metric(meters, "startupTime_seconds_count", spec_id="euler") == 1
    assert metric(meters, "startupTime_seconds_sum", spec_id="euler") == pytest.approx(1.0)
    assert metric(meters, "userLogins_total") == 1
    assert events.lines == [("alice", "Login", None), ("alice", "ProxyStart", "euler")]
    assert metric(meters, "appInfo", proxy_id=proxy.id) == 10


def test_a_start_still_pending_after_the_wait_time_fails_and_removes_the_service() -> None:
    svc, backend, meters, events, clock = make(start_after=None, wait=60.0)
    with pytest.raises(StartFailed, match="insufficient resources"):
        svc.start("euler", "bob")
    assert clock.t == pytest.approx(160.0)
    assert backend.removed == ["svc0"]
    assert svc.proxies() == []
    assert metric(meters, "startFailed_total", spec_id="euler") == 1
    assert metric(meters, "appStarts_total", spec_id="euler") == 0
    # ProxyStartFailed is never written to InfluxDB
    assert [e[1] for e in events.lines] == ["Login"]
    assert 100 in [s.value for s in _app_info(meters)]


def _app_info(meters: MeterRegistry) -> list[object]:
    fams = text_string_to_metric_families(render(meters.samples()))
    return [s for f in fams if f.name == "appInfo" for s in f.samples]


def test_a_start_that_runs_just_in_time_succeeds() -> None:
    svc, _, meters, _, _ = make(start_after=59.0, wait=60.0)
    svc.start("euler", "carol")
    assert metric(meters, "appStarts_total", spec_id="euler") == 1


def test_a_task_that_ended_turns_the_session_into_a_crash() -> None:
    svc, backend, meters, events, clock = make()
    proxy = svc.start("euler", "dave")
    clock.t += 30
    backend.override[proxy.service_id] = TaskView("shutdown", "shutdown", "n1", "c1", "", "")
    assert svc.reconcile() == [proxy.id]
    assert svc.proxies() == []
    assert backend.removed == [proxy.service_id]
    assert metric(meters, "appCrashes_total", spec_id="euler") == 1
    assert metric(meters, "appStops_total", spec_id="euler") == 1
    assert metric(meters, "usageTime_seconds_sum", spec_id="euler") == pytest.approx(30.0)
    assert events.lines[-1] == ("dave", "ProxyStop", "euler")
    assert metric(meters, "appInfo", proxy_id=proxy.id) == 50


def test_a_lost_node_or_a_vanished_service_is_a_crash() -> None:
    svc, backend, meters, _, clock = make()
    a = svc.start("euler", "erin")
    b = svc.start("euler", "frank")
    clock.t += 1
    backend.node_states["n1"] = "down"
    backend.removed.append(b.service_id)  # vanished from the Swarm
    assert sorted(svc.reconcile()) == sorted([a.id, b.id])
    assert metric(meters, "appCrashes_total", spec_id="euler") == 2


def test_a_healthy_session_is_left_alone_and_a_user_stop_is_not_a_crash() -> None:
    svc, _, meters, events, clock = make()
    proxy = svc.start("euler", "gina")
    clock.t += 5
    assert svc.reconcile() == []
    assert svc.stop(proxy.id) is True
    assert svc.stop(proxy.id) is False
    assert metric(meters, "appStops_total", spec_id="euler") == 1
    assert metric(meters, "appCrashes_total", spec_id="euler") == 0
    assert events.lines[-1] == ("gina", "ProxyStop", "euler")


def test_apps_running_is_nan_until_a_refresh_saw_the_spec_up() -> None:
    svc, _, meters, _, clock = make()
    svc.refresh()
    assert math.isnan(metric(meters, "absolute_apps_running", spec_id="euler"))
    proxy = svc.start("euler", "hank")
    assert math.isnan(metric(meters, "absolute_apps_running", spec_id="euler"))
    svc.refresh()
    assert metric(meters, "absolute_apps_running", spec_id="euler") == 1
    svc.stop(proxy.id)
    svc.refresh()
    assert metric(meters, "absolute_apps_running", spec_id="euler") == 0
    # the stopped proxy's appInfo series stays for two minutes, then goes
    assert metric(meters, "appInfo", proxy_id=proxy.id) == 40
    clock.t += 121
    svc.refresh()
    assert _app_info(meters) == []


def test_logout_stops_the_users_sessions_and_is_an_event() -> None:
    svc, _, meters, events, _ = make()
    svc.start("euler", "ivy")
    svc.logout("ivy")
    assert svc.proxies() == []
    assert metric(meters, "userLogouts_total") == 1
    assert metric(meters, "absolute_users_logged_in") == 0
    assert events.lines[-1] == ("ivy", "Logout", None)


def test_heartbeat_timeout_stops_a_silent_session() -> None:
    svc, _, meters, _, clock = make(heartbeat_timeout=60)
    kept = svc.start("euler", "jo")
    dropped = svc.start("euler", "kim")
    clock.t += 50
    svc.heartbeat(kept.id)
    clock.t += 20
    svc.reconcile()
    assert [p.id for p in svc.proxies()] == [kept.id]
    assert dropped.id not in [p.id for p in svc.proxies()]
    assert metric(meters, "appCrashes_total", spec_id="euler") == 0


def test_max_instances_per_user() -> None:
    svc, _, _, _, _ = make()
    svc.start("euler", "lee")
    with pytest.raises(LimitReached):
        svc.start("euler", "lee")
    svc.start("euler", "max")


def test_the_built_in_specs_load() -> None:
    ids = [s.id for s in load_specs()]
    assert "euler" in ids and "huge" in ids
