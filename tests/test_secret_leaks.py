"""Secrets never reach logs or error messages: the join token at DEBUG, a webhook's query
string, credentials HTTP cannot encode, an actuator entry's ``user:pass@``, a Docker host
URL's password. Each test feeds a fake secret and looks for it where it must not be.

Real parts: moto's in-process AWS, HTTP servers on loopback, requests and urllib3.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto import mock_aws

from autoscaler.alerts.config import WebhookConfig
from autoscaler.alerts.dispatch import DeliveryError
from autoscaler.alerts.model import Notification
from autoscaler.alerts.receivers.http import post_json
from autoscaler.alerts.receivers.webhook import WebhookIntegration
from autoscaler.cli import main
from autoscaler.logsetup import AWS_SDK_LOGGERS
from autoscaler.providers.build import aws_client
from autoscaler.providers.ssm import JoinParameter
from autoscaler.settings import Settings
from autoscaler.sources.actuator import ActuatorClient
from autoscaler.sources.errors import SourceError
from autoscaler.sources.influx import InfluxReader
from autoscaler.sources.prometheus import PrometheusClient
from autoscaler.wiring import build_backends, docker_client

TOKEN = "SWMTKN-1-FAKEJOINTOKENabcdefghijklmnopqrstuvwxyz0123456789-fakesecret"
PW = "Secr3t€Pass"
"""A password with a character outside Latin-1."""
SECRET = "s3cretPW"
REGION = "eu-west-1"


@pytest.fixture(autouse=True)
def sdk_log_levels() -> Iterator[None]:
    """The logging setup under test changes global loggers: put them back afterwards."""
    names = [*AWS_SDK_LOGGERS, *(n for n in logging.Logger.manager.loggerDict if "." in n)]
    saved = {n: logging.getLogger(n).level for n in names}
    yield
    for n, level in saved.items():
        logging.getLogger(n).setLevel(level)


# ---------------------------------------------------------------- HTTP on loopback


class Server:
    """Records each request (target and headers); answers with ``body``, or 401 when
    ``basic_auth`` is set and the request does not carry it."""

    def __init__(self, body: bytes, content_type: str, basic_auth: str | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                outer.requests.append((self.path, dict(self.headers)))
                if self.command == "POST":
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                want = f"Basic {base64.b64encode((basic_auth or '').encode()).decode()}"
                if basic_auth is not None and self.headers.get("Authorization") != want:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def ok_server() -> Iterator[Server]:
    s = Server(b'{"status": "success", "data": {}}', "application/json")
    yield s
    s.stop()


def bad_header_session() -> requests.Session:
    """A session whose every request carries a header value outside Latin-1."""
    session = requests.Session()
    session.headers["X-Token"] = PW
    return session


def notification() -> Notification:
    return Notification(
        receiver="ops",
        group_key="{}:{}",
        status="firing",
        alerts=(),
        group_labels={},
        common_labels={},
        common_annotations={},
        external_url="",
        now=dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC),
    )


# ---------------------------------------------------------------- 1. AWS SDK at DEBUG


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SSM"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def publish_twice(ssm: Any) -> None:
    """A first launch (get: not found, then put) and a restarted sidecar (get, decrypted)."""
    assert JoinParameter(ssm, "/autoscaler/swarm/worker-join").ensure(TOKEN, ["10.0.0.1:2377"])
    assert not JoinParameter(ssm, "/autoscaler/swarm/worker-join").ensure(TOKEN, ["10.0.0.1:2377"])


def test_debug_logging_setup_keeps_the_aws_sdk_quiet(
    fake_aws: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert main(["--log-level", "DEBUG", "check", str(tmp_path / "none")]) == 1
    publish_twice(boto3.client("ssm", region_name=REGION))  # any client, not only ours
    assert TOKEN not in caplog.text
    assert "FAKEJOINTOKEN" not in caplog.text
    assert "join parameter /autoscaler/swarm/worker-join updated" in caplog.text
    assert logging.getLogger("autoscaler").isEnabledFor(logging.DEBUG)  # ours still DEBUG
    for name in AWS_SDK_LOGGERS:
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG)


def test_the_sidecars_aws_clients_never_log_request_bodies(
    fake_aws: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # set up by someone else, not by the sidecar's cli
    publish_twice(aws_client(Settings(aws_region=REGION), "ssm"))
    assert "FAKEJOINTOKEN" not in caplog.text
    assert "join parameter /autoscaler/swarm/worker-join updated" in caplog.text


# ---------------------------------------------------------------- 2. webhook URL in logs


@pytest.mark.parametrize("target", ["?token=QUERYSECRET", "/hook?token=QUERYSECRET"])
def test_webhook_query_string_is_redacted_in_urllib3_logs(
    ok_server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture, target: str
) -> None:
    caplog.set_level(logging.DEBUG)
    url_file = tmp_path / "url"
    url_file.write_text(ok_server.url + target)
    hook = WebhookIntegration(WebhookConfig(url_file=url_file), sleep=lambda s: None)
    hook.send(notification())
    assert ok_server.requests[0][0].endswith("token=QUERYSECRET")  # sent as written
    assert "QUERYSECRET" not in caplog.text
    sent = [r.getMessage() for r in caplog.records if r.name == "urllib3.connectionpool"]
    assert any('"POST <secret> HTTP/1.1" 200' in m for m in sent), sent


# ---------------------------------------------------------------- 3. credentials outside Latin-1


def test_credentials_outside_latin1_are_refused_at_startup(tmp_path: Path) -> None:
    cases: list[tuple[Any, str]] = [
        (lambda: PrometheusClient(f"http://admin:{PW}@127.0.0.1:9", 1), "PROMETHEUS_URL"),
        (lambda: ActuatorClient(f"http://ops:{PW}@sp1:9090", 1), "AUTOSCALER_ACTUATOR"),
        (lambda: ActuatorClient(f"ops:{PW}@tasks.sp:9090", 1), "AUTOSCALER_ACTUATOR"),
        (lambda: InfluxReader(f"http://u:{PW}@db:8086", "x", None, None, 1), "INFLUXDB_URL"),
    ]
    password_file = tmp_path / "influx_password"
    password_file.write_text(PW + "\n")
    settings = Settings(influxdb_url="http://db:8086", influxdb_password_file=password_file)
    cases.append((lambda: build_backends(settings, None), str(password_file)))
    for make, named in cases:
        with pytest.raises(ValueError) as e:
            make()
        text = f"{e.value} {e.value!r}"
        assert PW not in text and "Secr3t" not in text
        assert named in text and "outside Latin-1" in text


def test_unencodable_request_is_a_source_error_with_a_fixed_text(ok_server: Server) -> None:
    prometheus = PrometheusClient(ok_server.url, 2, session=bad_header_session())
    with pytest.raises(SourceError) as e:
        prometheus.query("up")
    assert "Secr3t" not in f"{e.value} {e.value!r}"
    assert "could not be encoded" in str(e.value) and e.value.source == "prometheus"
    assert not prometheus.ready()

    actuator = ActuatorClient(ok_server.url, 2, session=bad_header_session())
    scrape = actuator.scrape_all()
    assert "Secr3t" not in repr(scrape) and "could not be encoded" in repr(scrape)
    assert "Secr3t" not in repr(actuator.health())

    influx = InfluxReader(ok_server.url, "db", None, None, 2)
    influx._client._session.headers["X-Token"] = PW  # e.g. a proxy's token
    with pytest.raises(SourceError) as e:
        influx.raw("SELECT 1")
    assert "Secr3t" not in f"{e.value} {e.value!r}" and "could not be encoded" in str(e.value)

    with pytest.raises(DeliveryError) as d:
        post_json(ok_server.url, {}, what="webhook", session=bad_header_session(), attempts=1)
    assert "Secr3t" not in f"{d.value} {d.value!r}" and "could not be encoded" in str(d.value)
    assert ok_server.requests == []  # nothing was sent


# ---------------------------------------------------------------- 4. actuator entries


@pytest.mark.parametrize(
    "entry",
    [
        f"ops:{SECRET}@tasks.sp:http",
        f"ops:{SECRET}@tasks.sp:9090/actuator",
        f"http://ops:{SECRET}@sp1:notaport",
        f"ftp://ops:{SECRET}@sp1:9090",
        f"http://ops:{SECRET}@/",
    ],
)
def test_malformed_actuator_entry_is_quoted_without_credentials(entry: str) -> None:
    with pytest.raises(ValueError, match="actuator endpoint") as e:
        ActuatorClient(entry, timeout=1)
    assert SECRET not in str(e.value) and "ops" not in str(e.value)
    assert "***@" in str(e.value)


def test_credentials_of_a_dns_endpoint_are_sent_to_every_replica() -> None:
    page = b"# TYPE userLogins_total counter\nuserLogins_total 3.0\n"
    replica = Server(page, "text/plain; version=0.0.4", basic_auth=f"ops:{SECRET}")
    try:
        c = ActuatorClient(
            f"ops:{SECRET}@tasks.sp:{replica.port}", 2, resolve=lambda h, p: ["127.0.0.1"]
        )
        assert c.replicas() == [replica.url]  # no credentials in the replica's name
        assert c.read("userLogins_total").value == 3.0
    finally:
        replica.stop()


def test_percent_encoded_credentials_are_decoded_before_they_are_sent() -> None:
    """A password holding @ or : can only be written %40 or %3A in a URL; the server must
    get the password, not its spelling."""
    password = "p@ss:w rd"
    spelled = "p%40ss%3Aw%20rd"
    page = b"# TYPE userLogins_total counter\nuserLogins_total 3.0\n"
    vector = b'{"status": "success", "data": {"resultType": "vector", "result": []}}'
    replica = Server(page, "text/plain; version=0.0.4", basic_auth=f"ops:{password}")
    prometheus = Server(vector, "application/json", basic_auth=f"ops:{password}")
    try:
        by_url = ActuatorClient(f"http://ops:{spelled}@127.0.0.1:{replica.port}", 2)
        assert by_url.read("userLogins_total").value == 3.0
        by_dns = ActuatorClient(
            f"ops:{spelled}@tasks.sp:{replica.port}", 2, resolve=lambda h, p: ["127.0.0.1"]
        )
        assert by_dns.read("userLogins_total").value == 3.0
        url = f"http://ops:{spelled}@127.0.0.1:{prometheus.port}"
        assert PrometheusClient(url, 2).query_vector("up") == []
    finally:
        replica.stop()
        prometheus.stop()


# ---------------------------------------------------------------- 5. Docker host URL


def test_docker_host_with_credentials_is_a_clear_error_without_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"https://admin:{SECRET}@docker.example:2376"
    with pytest.raises(RuntimeError) as e:
        docker_client(Settings(docker_host=url))
    text = f"{e.value} {e.value!r}"
    assert SECRET not in text and "admin" not in text
    assert "AUTOSCALER_DOCKER_HOST 'https://***@docker.example:2376'" in text
    assert "no password" in text

    code = main(["run", "--once", "--docker-host", url, "--rules", str(tmp_path), "--ledger", ""])
    out = capsys.readouterr()
    assert code == 2
    assert SECRET not in out.out + out.err and "Traceback" not in out.err
    assert out.err.startswith("autoscaler: error: --docker-host 'https://***@")  # as given

    with pytest.MonkeyPatch.context() as env:
        env.setenv("AUTOSCALER_DOCKER_HOST", url)
        code = main(["run", "--once", "--rules", str(tmp_path), "--ledger", ""])
    out = capsys.readouterr()
    assert code == 2 and SECRET not in out.out + out.err
    assert out.err.startswith("autoscaler: error: AUTOSCALER_DOCKER_HOST 'https://***@")


def test_docker_host_from_the_environment_is_scrubbed_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"tcp://admin:{SECRET}@docker.example:2376")
    assert "DOCKER_HOST" in os.environ
    with pytest.raises(RuntimeError, match=r"^DOCKER_HOST 'tcp://\*\*\*@docker") as e:
        docker_client(Settings())
    assert SECRET not in str(e.value)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("x https://admin:pa/ss@h:1/p y", "x https://***@h:1/p y"),
        ("error 'http://u:p?#q\"@host' z", "error 'http://***@host' z"),
        ("http://host/path ok", "http://host/path ok"),
        ("see https://h/a and mail@x.org", "see https://h/a and mail@x.org"),
    ],
)
def test_error_texts_hide_userinfo_whatever_the_password_holds(text: str, shown: str) -> None:
    from autoscaler.sources.http_errors import scrub_userinfo

    assert scrub_userinfo(text) == shown
