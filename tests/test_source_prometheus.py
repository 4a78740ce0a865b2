"""PrometheusClient against a real Prometheus scraping a ShinyProxy 3.2 actuator page."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.lab.exposition_server import ExpositionServer
from autoscaler.lab.ports import free_port
from autoscaler.sources.errors import NoData, QueryRejected, SourceError
from autoscaler.sources.prometheus import PrometheusClient
from tests.fixtures_backends import PrometheusLab

pytestmark = pytest.mark.real


def client(url: str, timeout: float = 5.0) -> PrometheusClient:
    return PrometheusClient(url, timeout=timeout)


def test_single_sample_is_read_with_its_timestamp(prometheus: PrometheusLab) -> None:
    before = datetime.now(UTC)
    reading = client(prometheus.url).query('sum(appStarts_total{job="shinyproxy"})')
    assert reading.value == 9.0  # 7 for 01_hello + 2 for 06_tabsets in the 3.2 page
    assert reading.observed_at.tzinfo is not None
    assert before - timedelta(seconds=5) <= reading.observed_at <= datetime.now(UTC)


def test_label_filter_selects_one_series(prometheus: PrometheusLab) -> None:
    reading = client(prometheus.url).query('appStarts_total{spec_id="06_tabsets"}')
    assert reading.value == 2.0


def test_scalar_result(prometheus: PrometheusLab) -> None:
    assert client(prometheus.url).query("scalar(sum(seats_claimed))").value == 5.0


def test_empty_vector_is_no_data_not_zero(prometheus: PrometheusLab) -> None:
    with pytest.raises(NoData, match="empty result"):
        client(prometheus.url).query('appStarts_total{spec_id="no_such_app"}')


def test_nan_sample_is_no_data(prometheus: PrometheusLab) -> None:
    # ShinyProxy reports NaN for a gauge that has not been refreshed yet.
    with pytest.raises(NoData, match="NaN"):
        client(prometheus.url).query('absolute_apps_running{spec_id="06_tabsets"}')


def test_several_series_ask_for_aggregation(prometheus: PrometheusLab) -> None:
    with pytest.raises(QueryRejected, match=r"2 series.*sum\(appStarts_total\)") as e:
        client(prometheus.url).query("appStarts_total")
    assert e.value.source == "prometheus"


def test_bad_query_is_rejected(prometheus: PrometheusLab) -> None:
    with pytest.raises(QueryRejected, match="query rejected: bad_data") as e:
        client(prometheus.url).query("sum(appStarts_total")
    assert e.value.source == "prometheus"


def test_failed_evaluation_is_rejected(prometheus: PrometheusLab) -> None:
    # both sides have two series and nothing to match them on: many-to-many
    with pytest.raises(QueryRejected, match="query rejected: execution"):
        client(prometheus.url).query("appStarts_total + on() appStops_total")


def test_range_vector_is_refused(prometheus: PrometheusLab) -> None:
    with pytest.raises(QueryRejected, match="range vector"):
        client(prometheus.url).query("appStarts_total[1m]")


def test_ready(prometheus: PrometheusLab) -> None:
    assert client(prometheus.url).ready()


def test_credentials_are_sent_but_never_shown(prometheus: PrometheusLab) -> None:
    authed = prometheus.url.replace("http://", "http://reader:s3cret@")
    c = client(authed)
    assert c.query('sum(appStarts_total{job="shinyproxy"})').value == 9.0
    assert "s3cret" not in c.url
    refused = PrometheusClient(f"http://reader:s3cret@127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(SourceError) as e:
        refused.query("up")
    assert "s3cret" not in str(e.value) and "reader" not in str(e.value)


def test_stopped_mid_test_is_a_source_error(fresh_prometheus: PrometheusLab) -> None:
    c = client(fresh_prometheus.url, timeout=2)
    assert c.query('sum(appStarts_total{job="shinyproxy"})').value == 9.0
    fresh_prometheus.backend.stop()
    with pytest.raises(SourceError, match="connection refused") as e:
        c.query('sum(appStarts_total{job="shinyproxy"})')
    assert e.value.source == "prometheus"
    assert not isinstance(e.value, QueryRejected)  # down, not a wrong query
    assert not c.ready()


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts connections but never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def test_timeout_is_named(silent_listener: int) -> None:
    c = PrometheusClient(f"http://127.0.0.1:{silent_listener}", timeout=0.5)
    with pytest.raises(SourceError, match=r"timeout after 0\.5s"):
        c.query("up")


def test_http_5xx_is_named() -> None:
    with ExpositionServer() as server:
        server.fail_with(503)
        with pytest.raises(SourceError, match="HTTP 503"):
            client(server.url).query("up")
