"""Exposition parsing of every ShinyProxy version, and ActuatorClient against live replicas.

The replicas are real HTTP servers on 127.0.0.0/8 serving the recorded pages; only DNS
(``tasks.<service>``) is answered by a stand-in resolver.
"""

from __future__ import annotations

import math
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from autoscaler.lab.exposition_server import ExpositionServer
from autoscaler.sources.actuator import ActuatorClient
from autoscaler.sources.errors import NoData, SourceError
from autoscaler.sources.exposition import ExpositionError, parse, select
from tests.fixtures_backends import exposition_text

VERSIONS = ["2.5", "2.6", "3.0", "3.1", "3.2"]
V = {v: tuple(int(x) for x in v.split(".")) for v in VERSIONS}

H, T = {"spec_id": "01_hello"}, {"spec_id": "06_tabsets"}

# (version, sample name, labels, values in page order) as recorded in tests/data/exposition.
KNOWN: list[tuple[str, str, dict[str, str], list[float]]] = [
    ("2.5", "userLogins_total", {}, [17.0]),
    ("2.5", "appStarts_total", {}, [7.0, 2.0]),
    ("2.5", "appStarts_total", H, [7.0]),
    ("2.5", "startFailed_total", {}, [1.0]),
    ("2.5", "startFailed_total", H, []),  # no spec_id before 3.1
    ("2.5", "startFailed_total", {"spec_id": ""}, [1.0]),  # "" matches "absent", as in PromQL
    ("2.5", "absolute_users_active", {}, []),  # since 2.6
    ("2.5", "startupTime_seconds_count", T, [2.0]),
    ("2.5", "startupTime_seconds_sum", H, [29.412]),
    ("2.5", "startupTime_seconds_max", H, [6.203]),
    ("2.5", "startupTime_seconds", {}, []),  # summaries have no bare sample
    ("2.5", "usageTime_seconds_count", {}, [5.0, 1.0]),
    ("2.5", "applicationStartupTime_seconds_count", {}, []),  # since 3.0
    ("2.5", "jvm_memory_used_bytes", {"id": "G1 Old Gen"}, [36700160.0]),
    ("2.6", "userLogins_total", {}, [18.0]),
    ("2.6", "absolute_users_logged_in", {}, [5.0]),
    ("2.6", "absolute_users_active", {}, [3.0]),
    ("2.6", "absolute_apps_running", {}, [3.0]),  # 06_tabsets is NaN: dropped
    ("2.6", "absolute_apps_running", T, []),
    ("2.6", "appCrashes_total", {}, []),
    ("3.0", "absolute_users_active", {}, []),  # NaN before the first refresh
    ("3.0", "absolute_users_logged_in", {"shinyproxy_realm": ""}, [5.0]),
    ("3.0", "applicationStartupTime_seconds_count", H, [7.0]),
    ("3.0", "containerScheduleTime_seconds_sum", {"container_idx": "0", **T}, [3.1]),
    ("3.0", "imagePullTime_seconds_count", {}, [0.0, 0.0]),
    ("3.0", "startFailed_total", {}, [1.0]),
    ("3.0", "seats_unclaimed", {}, []),
    ("3.1", "startFailed_total", {}, [2.0, 0.0]),
    ("3.1", "startFailed_total", H, [2.0]),
    ("3.1", "appCrashes_total", H, [1.0]),
    ("3.1", "seats_unclaimed", {}, [2.0, 0.0]),
    ("3.1", "seats_claimed", T, [1.0]),
    ("3.1", "seats_creating", {}, [0.0, 1.0]),
    ("3.1", "seats_wait_time_seconds_count", H, [4.0]),
    ("3.1", "seats_wait_time_seconds_max", T, [12.5]),
    ("3.1", "absolute_users_logged_in", {"shinyproxy_realm": "prod"}, [5.0]),
    ("3.1", "absolute_users_logged_in", {"shinyproxy_realm": ""}, []),
    ("3.1", "appInfo", {}, []),
    ("3.2", "userLogins_total", {}, [14.0]),
    ("3.2", "appInfo", {}, [10.0, 10.0, 10.0, 1.0]),
    ("3.2", "appInfo", {"user_id": "anne smith"}, [10.0]),
    ("3.2", "appInfo", {"user_id": "jack", **T}, [1.0]),
    ("3.2", "appStarts_total", {"spec_id": "01_hello", "shinyproxy_realm": "prod"}, [7.0]),
    ("3.2", "http_server_requests_seconds_count", {"uri": "/heartbeat/{proxyId}"}, [20311.0]),
]


@pytest.mark.parametrize(("version", "metric", "labels", "expected"), KNOWN)
def test_select_known_values(
    version: str, metric: str, labels: dict[str, str], expected: list[float]
) -> None:
    assert select(exposition_text(version), metric, labels) == expected


def _samples(version: str) -> list[tuple[str, str, dict[str, str], float]]:
    return [
        (f.name, f.type, s.labels, s.value)
        for f in parse(exposition_text(version))
        for s in f.samples
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_pages_follow_micrometer_conventions(version: str) -> None:
    samples = _samples(version)
    assert len(samples) > 30
    for name, kind, labels, _ in samples:
        assert {"shinyproxy_instance", "shinyproxy_realm"} <= labels.keys(), name
        assert kind in ("counter", "gauge", "summary"), name  # no histograms
    families = {f.name: f for f in parse(exposition_text(version))}
    for f in families.values():
        names = {s.name for s in f.samples}
        if f.type == "counter":
            assert names == {f.name + "_total"}
        if f.type == "summary":
            assert names == {f.name + "_count", f.name + "_sum"}
            assert families[f.name + "_max"].type == "gauge"


# spec_id appears on exactly these ShinyProxy metrics, from these versions
SPEC_ID_SINCE = {
    "appStarts": (2, 5),
    "appStops": (2, 5),
    "startFailed": (3, 1),
    "appCrashes": (3, 1),
    "absolute_apps_running": (2, 6),
    "startupTime_seconds": (2, 5),
    "usageTime_seconds": (2, 5),
    "applicationStartupTime_seconds": (3, 0),
    "imagePullTime_seconds": (3, 0),
    "containerScheduleTime_seconds": (3, 0),
    "containerStartupTime_seconds": (3, 0),
    "seats_unclaimed": (3, 1),
    "seats_claimed": (3, 1),
    "seats_creating": (3, 1),
    "seats_wait_time_seconds": (3, 1),
    "appInfo": (3, 2),
}
# metrics that exist only from a version on
SINCE = {
    "absolute_users_logged_in": (2, 6),
    "absolute_users_active": (2, 6),
    "absolute_apps_running": (2, 6),
    "appCrashes": (3, 1),
    "applicationStartupTime_seconds": (3, 0),
    "imagePullTime_seconds": (3, 0),
    "seats_claimed": (3, 1),
    "seats_wait_time_seconds": (3, 1),
    "appInfo": (3, 2),
}


@pytest.mark.parametrize("version", VERSIONS)
def test_spec_id_and_metrics_per_version(version: str) -> None:
    families = {f.name: f for f in parse(exposition_text(version))}
    for name, since in SINCE.items():
        assert (name in families) == (V[version] >= since), (version, name)
    for f in families.values():
        base = f.name.removesuffix("_max")
        has_spec = any("spec_id" in s.labels for s in f.samples)
        should = base in SPEC_ID_SINCE and V[version] >= SPEC_ID_SINCE[base]
        assert has_spec == should, (version, f.name)


def test_nan_is_in_the_page_but_never_selected() -> None:
    values = [v for n, _, labels, v in _samples("2.6") if labels.get("spec_id") == "06_tabsets"]
    assert any(math.isnan(v) for v in values)
    assert select(exposition_text("2.6"), "absolute_apps_running", T) == []


def test_families_can_be_parsed_once_and_selected_many_times() -> None:
    families = parse(exposition_text("3.1"))
    assert select(families, "appStarts_total", H) == [7.0]
    assert select(families, "appStarts_total", H) == [7.0]


def test_invalid_text_is_an_exposition_error() -> None:
    with pytest.raises(ExpositionError, match="invalid exposition text"):
        parse('appStarts_total{spec_id="01_hello" 3\n')


def test_a_page_that_is_no_exposition_is_quoted_short() -> None:
    # a proxy's login page instead of the metrics: the parser's message quotes its line
    with pytest.raises(ExpositionError) as caught:
        parse("<html>" + "x" * 5000 + "\n")
    assert len(str(caught.value)) < 250


# ---------------------------------------------------------------- ActuatorClient


@pytest.fixture
def replicas() -> Iterator[tuple[ExpositionServer, ExpositionServer]]:
    """Two replicas mid-upgrade: one on 3.2, one still on 3.1."""
    with (
        ExpositionServer(exposition_text("3.2")) as a,
        ExpositionServer(exposition_text("3.1")) as b,
    ):
        yield a, b


def _endpoints(*servers: ExpositionServer) -> str:
    return ", ".join(s.url for s in servers)


@pytest.mark.parametrize(
    ("aggregate", "expected"), [("sum", 27.0), ("max", 14.0), ("min", 13.0), ("avg", 13.5)]
)
def test_aggregates_over_replicas(
    replicas: tuple[ExpositionServer, ExpositionServer], aggregate: str, expected: float
) -> None:
    reading = ActuatorClient(_endpoints(*replicas), timeout=2).read(
        "userLogins_total", {}, aggregate
    )
    assert reading.value == expected
    assert reading.observed_at.tzinfo is not None


def test_one_fetch_per_replica_for_many_signals(
    replicas: tuple[ExpositionServer, ExpositionServer],
) -> None:
    scrape = ActuatorClient(_endpoints(*replicas), timeout=2).scrape_all()
    assert scrape.value("appStarts_total", H, "sum").value == 14.0
    assert scrape.value("absolute_users_active", {}, "sum").value == 6.0
    assert scrape.value("seats_unclaimed", {}, "max").value == 2.0
    assert scrape.value("startupTime_seconds_count", {}, "sum").value == 18.0
    assert [r.requests_for("/actuator/prometheus") for r in replicas] == [1, 1]


def test_max_of_a_per_app_gauge_is_the_total_over_the_apps() -> None:
    # in HA mode every replica reports each app's count from the shared store: max over
    # the replicas per app, then the apps added up
    def page(instance: str) -> str:
        return (
            "# TYPE absolute_apps_running gauge\n"
            f'absolute_apps_running{{spec_id="euler",shinyproxy_instance="{instance}"}} 3\n'
            f'absolute_apps_running{{spec_id="dash",shinyproxy_instance="{instance}"}} 5\n'
        )

    with ExpositionServer(page("a1")) as a, ExpositionServer(page("b2")) as b:
        scrape = ActuatorClient(_endpoints(a, b), timeout=2).scrape_all()
    assert scrape.value("absolute_apps_running", {}, "max").value == 8.0
    assert scrape.value("absolute_apps_running", {}, "sum").value == 16.0
    assert scrape.value("absolute_apps_running", {"spec_id": "dash"}, "max").value == 5.0


def test_no_matching_sample_is_no_data(
    replicas: tuple[ExpositionServer, ExpositionServer],
) -> None:
    c = ActuatorClient(_endpoints(*replicas), timeout=2)
    with pytest.raises(NoData, match="proxiesRunning"):
        c.read("proxiesRunning")
    with pytest.raises(NoData):  # NaN on both replicas
        c.read("absolute_apps_running", T)


def test_unknown_aggregate_is_refused(replicas: tuple[ExpositionServer, ExpositionServer]) -> None:
    scrape = ActuatorClient(_endpoints(*replicas), timeout=2).scrape_all()
    with pytest.raises(ValueError, match="median"):
        scrape.value("userLogins_total", {}, "median")


def test_replica_down_fails_the_whole_read(
    replicas: tuple[ExpositionServer, ExpositionServer],
) -> None:
    a, b = replicas
    c = ActuatorClient(_endpoints(a, b), timeout=2)
    assert c.read("userLogins_total").value == 27.0
    b.stop()
    with pytest.raises(SourceError, match="connection refused") as e:
        c.read("userLogins_total")
    assert e.value.source == "actuator"
    assert b.url in str(e.value) and a.url not in str(e.value)
    assert "undercount" in str(e.value)


def test_replica_http_error_and_bad_page(
    replicas: tuple[ExpositionServer, ExpositionServer],
) -> None:
    a, b = replicas
    c = ActuatorClient(_endpoints(a, b), timeout=2)
    a.fail_with(500)
    with pytest.raises(SourceError, match=re.escape(f"{a.url}: HTTP 500")):
        c.read("userLogins_total")
    a.fail_with(None)
    b.set_text("this is { not exposition\n")
    with pytest.raises(SourceError, match=re.escape(f"{b.url}: invalid exposition text")):
        c.read("userLogins_total")


@pytest.mark.parametrize("page", ["", "\n", "# HELP userLogins_total logins\n"])
def test_a_replica_with_an_empty_page_fails_the_read(
    replicas: tuple[ExpositionServer, ExpositionServer], page: str
) -> None:
    """HTTP 200 and nothing in it (a proxy's empty answer): not "no sessions there",
    which would leave that replica out of the sum, and out of an on_empty: zero total."""
    a, b = replicas
    c = ActuatorClient(_endpoints(a, b), timeout=2)
    b.set_text(page)
    with pytest.raises(SourceError, match=re.escape(f"{b.url}: page without any sample")) as e:
        c.read("userLogins_total")
    assert "undercount" in str(e.value)
    a.set_text(page)
    with pytest.raises(SourceError, match="2 of 2 replicas failed"):
        c.read("userLogins_total")


def test_health_per_replica(replicas: tuple[ExpositionServer, ExpositionServer]) -> None:
    a, b = replicas
    c = ActuatorClient(_endpoints(a, b), timeout=2)
    assert c.health() == {a.url: "UP", b.url: "UP"}
    b.set_health("DOWN")
    assert c.health() == {a.url: "UP", b.url: "DOWN"}
    a.stop()
    assert c.health()[a.url] == "UNREACHABLE (connection refused)"


# ---------------------------------------------------------------- tasks.<service>


@pytest.fixture
def swarm_replicas() -> Iterator[list[ExpositionServer]]:
    """Three replicas on one port, on 127.0.0.2/3/4, as tasks of a Swarm service would be."""
    servers: list[ExpositionServer] = []
    try:
        first = ExpositionServer(exposition_text("3.2"), host="127.0.0.2").start()
        servers.append(first)
        for host in ("127.0.0.3", "127.0.0.4"):
            servers.append(ExpositionServer(exposition_text("3.1"), host, first.port).start())
        yield servers
    finally:
        for s in servers:
            s.stop()


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names answered by the stand-in resolver; every other name goes to the real one."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            if not answers[host]:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, int(port), 0, 0))
                if ":" in ip
                else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port)))
                for ip in answers[host]
            ]
        if isinstance(host, str) and host.startswith("tasks."):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_tasks_name_is_resolved_to_every_replica_at_each_read(
    swarm_replicas: list[ExpositionServer], dns: dict[str, list[str]]
) -> None:
    port = swarm_replicas[0].port
    dns["tasks.shinyproxy"] = ["127.0.0.2", "127.0.0.3"]
    c = ActuatorClient(f"tasks.shinyproxy:{port}", timeout=2)
    assert c.replicas() == [f"http://127.0.0.2:{port}", f"http://127.0.0.3:{port}"]
    assert c.read("userLogins_total").value == 14.0 + 13.0
    dns["tasks.shinyproxy"] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]  # scaled to 3
    assert c.read("userLogins_total").value == 14.0 + 13.0 + 13.0
    assert [s.requests_for("/actuator/prometheus") for s in swarm_replicas] == [2, 2, 1]


def test_a_dual_stack_task_is_scraped_once(
    swarm_replicas: list[ExpositionServer], dns: dict[str, list[str]]
) -> None:
    """On an overlay network with IPv6, tasks.<service> answers an A and an AAAA record
    per task; both reach the same replica (here its IPv4-mapped IPv6 address)."""
    port = swarm_replicas[0].port
    dns["tasks.shinyproxy"] = ["127.0.0.2", "::ffff:127.0.0.2", "127.0.0.3", "::ffff:127.0.0.3"]
    c = ActuatorClient(f"tasks.shinyproxy:{port}", timeout=2)
    assert c.replicas() == [f"http://127.0.0.2:{port}", f"http://127.0.0.3:{port}"]
    assert c.read("userLogins_total").value == 14.0 + 13.0
    assert [s.requests_for("/actuator/prometheus") for s in swarm_replicas] == [1, 1, 0]


def test_an_ipv6_only_network_is_read(
    swarm_replicas: list[ExpositionServer], dns: dict[str, list[str]]
) -> None:
    port = swarm_replicas[0].port
    dns["tasks.shinyproxy"] = ["::ffff:127.0.0.2"]
    c = ActuatorClient(f"tasks.shinyproxy:{port}", timeout=2)
    assert c.replicas() == [f"http://[::ffff:127.0.0.2]:{port}"]
    assert c.read("userLogins_total").value == 14.0


def test_tasks_name_default_port_is_9090(dns: dict[str, list[str]]) -> None:
    dns["tasks.shinyproxy"] = ["127.0.0.9"]
    assert ActuatorClient("tasks.shinyproxy", timeout=1).replicas() == ["http://127.0.0.9:9090"]


def test_unresolvable_name_is_a_source_error(dns: dict[str, list[str]]) -> None:
    dns["tasks.gone"] = []
    c = ActuatorClient("tasks.gone:9090", timeout=1)
    with pytest.raises(SourceError, match=r"cannot resolve tasks\.gone: name resolution failed"):
        c.read("userLogins_total")
    with pytest.raises(SourceError, match="cannot resolve"):
        c.health()


@pytest.mark.parametrize(
    "bad", ["", " , ", "ftp://sp:9090", "tasks.shinyproxy:http", "tasks.sp:9090/actuator"]
)
def test_invalid_endpoints_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="actuator endpoint"):
        ActuatorClient(bad, timeout=1)


def test_credentials_in_endpoints_are_not_shown(
    replicas: tuple[ExpositionServer, ExpositionServer],
) -> None:
    a = replicas[0]
    c = ActuatorClient(a.url.replace("http://", "http://ops:s3cret@"), timeout=2)
    assert c.replicas() == [a.url]
    assert c.read("userLogins_total").value == 14.0
    a.stop()
    with pytest.raises(SourceError) as e:
        c.read("userLogins_total")
    assert "s3cret" not in str(e.value) and "ops" not in str(e.value)
