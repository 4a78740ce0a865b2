"""PrometheusClient against a real Prometheus scraping a ShinyProxy 3.2 actuator page."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.lab.backends import start_prometheus
from autoscaler.lab.exposition_server import ExpositionServer
from autoscaler.lab.ports import free_port
from autoscaler.rules.schema import Signal
from autoscaler.sources.collect import Backends, collect
from autoscaler.sources.errors import NoData, QueryRejected, SourceError
from autoscaler.sources.prometheus import PrometheusClient
from tests.fixtures_backends import PrometheusLab, need_binary

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


def test_credentials_in_the_url_are_never_shown(prometheus: PrometheusLab) -> None:
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


# ---------------------------------------------------------------- answers a Prometheus
# (or a proxy in front of it: Thanos, Mimir, an ingress) may give, served over real HTTP


class CannedAnswer:
    """A loopback HTTP server answering every GET with ``status`` and ``body``."""

    def __init__(self) -> None:
        self.status, self.body = 200, b"{}"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, body: Any, status: int = 200) -> None:
        self.status, self.body = status, json.dumps(body).encode()


@pytest.fixture
def canned() -> Iterator[CannedAnswer]:
    server = CannedAnswer()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        thread.join()
        server.server.server_close()


def vector(*series: Any) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": list(series)}}


MALFORMED = {
    "series is a list": vector(["x"]),
    "series is a string": vector("abc"),
    "value is null": vector({"metric": {}, "value": None}),
    "time out of range": vector({"metric": {}, "value": [1e20, "1"]}),
    "time is NaN": vector({"metric": {}, "value": ["NaN", "1"]}),
    "value is no number": vector({"metric": {}, "value": [1.7e9, "many"]}),
    "scalar of three": {"status": "success", "data": {"resultType": "scalar", "result": [1, 2, 3]}},
    "data is a list": {"status": "success", "data": []},
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_answer_is_a_source_error(canned: CannedAnswer, body: Any) -> None:
    """Never another exception: collect() catches SourceError only, and anything else
    would stop the whole pass."""
    canned.answer(body)
    c = client(canned.url)
    for read in (c.query, c.query_vector):
        with pytest.raises(SourceError, match="invalid answer") as e:
            read("up")
        assert not isinstance(e.value, QueryRejected)


def test_a_malformed_answer_does_not_stop_the_pass(canned: CannedAnswer) -> None:
    canned.answer(vector({"metric": {}, "value": [1e20, "1"]}))
    snap = collect(
        Backends(prometheus=client(canned.url)),
        {"x": Signal.model_validate({"prometheus": {"query": "up"}, "on_empty": "zero"})},
    )
    assert snap.signals["x"].value is None
    assert "invalid answer" in (snap.signals["x"].error or "")
    assert snap.sources["prometheus"].ok is False


def test_a_histogram_is_a_rejected_query(canned: CannedAnswer) -> None:
    canned.answer(vector({"metric": {}, "histogram": [1.7e9, {"count": "3", "sum": "1"}]}))
    c = client(canned.url)
    for read in (c.query, c.query_vector):
        with pytest.raises(QueryRejected, match="histogram"):
            read("sum(latency_native)")


def test_an_error_said_with_http_200_keeps_its_words(canned: CannedAnswer) -> None:
    canned.answer({"status": "error", "errorType": "execution", "error": "store gateway down"})
    with pytest.raises(SourceError, match="execution: store gateway down"):
        client(canned.url).query("up")


def test_an_error_type_is_quoted_short_and_without_credentials(canned: CannedAnswer) -> None:
    # a proxy in front of Prometheus may put anything there, a URL with its login say
    kind = "http://admin:hunter2@upstream:9090/" + "x" * 200
    canned.answer({"status": "error", "errorType": kind, "error": "refused"})
    with pytest.raises(SourceError) as caught:
        client(canned.url).query("up")
    assert "hunter2" not in str(caught.value) and "x" * 60 not in str(caught.value)
    assert "refused" in str(caught.value)


def test_warnings_of_a_partial_answer_make_it_no_answer(canned: CannedAnswer) -> None:
    partial = "receive partial data: store 10.0.0.7:10901 unavailable"
    canned.answer({**vector({"metric": {}, "value": [1.7e9, "4"]}), "warnings": [partial]})
    c = client(canned.url)
    for read in (c.query, c.query_vector):
        with pytest.raises(SourceError, match=r"may be partial.*store 10\.0\.0\.7") as e:
            read("sum(up)")
        assert not isinstance(e.value, QueryRejected)


def test_promql_infos_change_nothing_and_its_warnings_fault_the_query(
    canned: CannedAnswer,
) -> None:
    info = 'PromQL info: metric might not be a counter, name does not end in _total: "x"'
    canned.answer({**vector({"metric": {}, "value": [1.7e9, "4"]}), "warnings": [info]})
    assert client(canned.url).query("sum(rate(x[5m]))").value == 4.0
    said_as_a_warning = info.replace("PromQL info:", "PromQL warning:")  # 2.48, 2.49
    canned.answer(
        {**vector({"metric": {}, "value": [1.7e9, "4"]}), "warnings": [said_as_a_warning]}
    )
    assert client(canned.url).query("sum(rate(x[5m]))").value == 4.0
    mixed = 'PromQL warning: encountered a mix of histograms and floats for metric name "x"'
    canned.answer({**vector({"metric": {}, "value": [1.7e9, "4"]}), "warnings": [mixed]})
    with pytest.raises(QueryRejected, match="mix of histograms"):
        client(canned.url).query("sum(x)")


def test_a_failed_remote_read_is_no_answer(fresh_prometheus: PrometheusLab) -> None:
    """A real Prometheus whose remote storage is down answers with local data and a
    warning: the value may miss what the remote storage holds, and an empty answer is
    not "nothing happened" (it must not become 0 with on_empty: zero)."""
    q = 'sum(appStarts_total{job="shinyproxy"})'
    c = client(fresh_prometheus.url)
    assert c.query(q).value == 9.0
    config = yaml.safe_load(fresh_prometheus.backend.config_path.read_text())
    dead = f"http://reader:s3cret@127.0.0.1:{free_port()}/api/v1/read"
    config["remote_read"] = [{"url": dead, "read_recent": True}]
    fresh_prometheus.backend.config_path.write_text(yaml.safe_dump(config))
    fresh_prometheus.backend.reload()
    with pytest.raises(SourceError, match=r"may be partial.*remote_read") as e:
        c.query(q)
    assert "s3cret" not in str(e.value)
    never_started = 'sum(appStarts_total{spec_id="no_such_app"})'
    snap = collect(
        Backends(prometheus=c),
        {"n": Signal.model_validate({"prometheus": {"query": never_started}, "on_empty": "zero"})},
    )
    assert snap.signals["n"].value is None
    assert snap.sources["prometheus"].ok is False


READER_HASH = "$2b$04$Hcxgs5dmjJL7T0.YBVLeLeY6k1xjv/jqKlSzQ/zM7gFJPPKqrolhi"
"""bcrypt of "s3cret" (cost 4), as Prometheus' web config wants it."""


def test_credentials_reach_a_prometheus_that_requires_them(backend_dir: Path) -> None:
    """The URL's user and password are sent as basic auth (a Prometheus with
    basic_auth_users refuses a client that does not send them), and never shown."""
    need_binary("prometheus", "prometheus")
    web = backend_dir / "web.yml"
    web.write_text("{}\n")  # no auth until the backend is ready (the web config is re-read)
    prom = start_prometheus(backend_dir, [], extra_args=[f"--web.config.file={web}"])
    try:
        web.write_text(yaml.safe_dump({"basic_auth_users": {"reader": READER_HASH}}))
        with pytest.raises(SourceError, match="HTTP 401"):
            client(prom.url).query("vector(1)")
        authed = client(prom.url.replace("http://", "http://reader:s3cret@"))
        assert authed.query("vector(1)").value == 1.0
        assert authed.ready()
        wrong = client(prom.url.replace("http://", "http://reader:guess@"))
        with pytest.raises(SourceError, match="HTTP 401") as e:
            wrong.query("vector(1)")
        assert "guess" not in str(e.value) and "reader" not in str(e.value)
    finally:
        prom.stop()


def test_an_infinite_sample_is_rejected_not_empty(prometheus: PrometheusLab) -> None:
    with pytest.raises(QueryRejected, match=r"is \+Inf: not a number to scale on"):
        client(prometheus.url).query("vector(1) / vector(0)")
    with pytest.raises(NoData, match="NaN"):
        client(prometheus.url).query("vector(0) / vector(0)")
