"""Real Prometheus and InfluxDB for adapter tests, each in a temporary folder of its own.

Skipped with the reason when the Debian binary is not installed. Everything started here
is stopped by pid and its folder removed, also when a test fails.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from autoscaler.lab.backends import (
    Backend,
    InfluxBackend,
    PrometheusBackend,
    start_influxd,
    start_prometheus,
)
from autoscaler.lab.exposition_server import ExpositionServer
from tests.realparts import missing_real_part

EXPOSITION_DIR = Path(__file__).parent / "data" / "exposition"
USAGESTATS_DB = "shinyproxy_usagestats"
SCRAPE_JOB = "shinyproxy"


def need_binary(binary: str, package: str) -> None:
    if shutil.which(binary) is None:
        missing_real_part(f"{binary} not installed (apt-get install {package})")


def exposition_text(version: str) -> str:
    """A ShinyProxy actuator page as written by that version (tests/data/exposition)."""
    return (EXPOSITION_DIR / f"shinyproxy-{version}.txt").read_text(encoding="utf-8")


@dataclass
class PrometheusLab:
    backend: PrometheusBackend
    target: ExpositionServer
    """The fake ShinyProxy replica Prometheus scrapes every second (job "shinyproxy")."""

    @property
    def url(self) -> str:
        return self.backend.url


@dataclass
class InfluxLab:
    backend: InfluxBackend
    database: str

    @property
    def url(self) -> str:
        return self.backend.url

    @property
    def write_url(self) -> str:
        """ShinyProxy's ``proxy.usage-stats-url`` for this database."""
        return f"{self.url}/write?db={self.database}"


def wait_for_query(url: str, promql: str, timeout: float = 30.0) -> None:
    """Wait until ``promql`` returns a non-empty vector (e.g. after the first scrape)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=2)
        if resp.ok and resp.json()["data"]["result"]:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{promql} still empty after {timeout:g}s at {url}")


def _stop_all(*things: Backend | ExpositionServer | None) -> None:
    for thing in things:
        if thing is not None:
            thing.stop()


def _prometheus_lab() -> Iterator[PrometheusLab]:
    need_binary("prometheus", "prometheus")
    folder = Path(tempfile.mkdtemp(prefix="test-prometheus-"))
    target: ExpositionServer | None = None
    backend: PrometheusBackend | None = None
    try:
        target = ExpositionServer(exposition_text("3.2")).start()
        backend = start_prometheus(
            folder,
            [
                {
                    "job_name": SCRAPE_JOB,
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "metrics_path": "/actuator/prometheus",
                    "static_configs": [{"targets": [f"{target.host}:{target.port}"]}],
                }
            ],
            scrape_interval="1s",
        )
        wait_for_query(backend.url, f'appStarts_total{{job="{SCRAPE_JOB}"}}')
        yield PrometheusLab(backend, target)
    finally:
        _stop_all(backend, target)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def prometheus() -> Iterator[PrometheusLab]:
    """A real Prometheus that has scraped a ShinyProxy 3.2 actuator page at least once."""
    yield from _prometheus_lab()


@pytest.fixture
def fresh_prometheus() -> Iterator[PrometheusLab]:
    """Like ``prometheus`` but owned by one test (which may stop it)."""
    yield from _prometheus_lab()


def _influx_lab() -> Iterator[InfluxLab]:
    need_binary("influxd", "influxdb")
    folder = Path(tempfile.mkdtemp(prefix="test-influxd-"))
    backend: InfluxBackend | None = None
    try:
        backend = start_influxd(folder)
        backend.create_database(USAGESTATS_DB)
        yield InfluxLab(backend, USAGESTATS_DB)
    finally:
        _stop_all(backend)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def influxd() -> Iterator[InfluxLab]:
    """A real influxd with the database shinyproxy_usagestats (shared by the session)."""
    yield from _influx_lab()


@pytest.fixture
def usagestats(influxd: InfluxLab) -> InfluxLab:
    """The session's influxd with shinyproxy_usagestats emptied for this test."""
    influxd.backend.drop_database(USAGESTATS_DB)
    influxd.backend.create_database(USAGESTATS_DB)
    return influxd


@pytest.fixture
def fresh_influxd() -> Iterator[InfluxLab]:
    """An influxd owned by one test (which may stop it)."""
    yield from _influx_lab()


@pytest.fixture
def backend_dir() -> Iterator[Path]:
    """An empty folder for backends a test starts itself; removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="test-backends-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto's server (EC2, SSM, IAM and the instance metadata service) on a free port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
