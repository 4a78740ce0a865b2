"""The HTTP endpoints over a real socket on loopback."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from autoscaler.metrics import SidecarMetrics
from autoscaler.server import HttpServer, ServerHooks
from tests.http_builders import serving

TOKEN = "s3cret-token"


@pytest.fixture
def server() -> Iterator[tuple[str, list[str], dict[str, Any]]]:
    triggers: list[str] = []
    state: dict[str, Any] = {"healthy": True, "plan": None}
    hooks = ServerHooks(
        metrics=SidecarMetrics(),
        healthy=lambda: (state["healthy"], {"last_success": None}),
        last_plan=lambda: state["plan"],
        trigger=triggers.append,
        webhook_token=TOKEN,
        webhook_max_bytes=1000,
    )
    srv = HttpServer("127.0.0.1:0", hooks)
    srv.start()
    try:
        yield f"http://127.0.0.1:{srv.port}", triggers, state
    finally:
        srv.stop()


ALERT = {
    "version": "4",
    "status": "firing",
    "receiver": "autoscaler",
    "alerts": [{"status": "firing", "labels": {"alertname": "SeatsShort"}}],
}


def post(url: str, body: bytes, token: str | None = TOKEN) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(url + "/webhook/alertmanager", data=body, headers=headers, timeout=5)


def test_webhook_good_token_triggers_a_pass(server: Any) -> None:
    url, triggers, _ = server
    r = post(url, json.dumps(ALERT).encode())
    assert r.status_code == 200 and r.json() == {"status": "accepted", "alerts": 1}
    assert triggers == ["alertmanager:autoscaler"]


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", ""])
def test_webhook_bad_token_is_401_and_triggers_nothing(server: Any, token: str | None) -> None:
    url, triggers, _ = server
    r = post(url, json.dumps(ALERT).encode(), token=token)
    assert r.status_code == 401
    assert TOKEN not in r.text
    assert triggers == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1,2]",
        b'{"alerts": "x"}',
        b'{"alerts": [1]}',
        b'{"status": "odd", "alerts": []}',
        b"\xff\xfe",
        b"{" + b" " * 2000 + b"}",
        b"[" * 999,  # nested too deeply for the JSON parser
    ],
)
def test_webhook_malformed_or_oversized_is_400(server: Any, body: bytes) -> None:
    url, triggers, _ = server
    r = post(url, body)
    assert r.status_code == 400
    assert "error" in r.json()
    assert triggers == []


def test_webhook_without_configured_token_refuses_everything() -> None:
    with serving() as srv:
        r = post(f"http://127.0.0.1:{srv.port}", json.dumps(ALERT).encode(), token="")
        assert r.status_code == 401


def test_metrics_healthz_plan(server: Any) -> None:
    url, _, state = server
    post(url, json.dumps(ALERT).encode())
    text = requests.get(url + "/metrics", timeout=5).text
    assert 'autoscaler_webhook_requests_total{result="200"} 1.0' in text
    assert "autoscaler_passes_total" in text
    assert requests.get(url + "/healthz", timeout=5).status_code == 200
    state["healthy"] = False
    r = requests.get(url + "/healthz", timeout=5)
    assert r.status_code == 503 and r.json()["status"] == "failing"
    assert requests.get(url + "/plan", timeout=5).status_code == 404
    state["plan"] = {"actions": []}
    assert requests.get(url + "/plan", timeout=5).json() == {"actions": []}
    assert requests.get(url + "/nope", timeout=5).status_code == 404


@pytest.mark.parametrize("header", [f"bearer {TOKEN}", f"BEARER  {TOKEN} "])
def test_the_bearer_scheme_is_read_in_any_case(server: Any, header: str) -> None:
    url, triggers, _ = server
    headers = {"Authorization": header}
    r = requests.post(url + "/webhook/alertmanager", data=json.dumps(ALERT), headers=headers)
    assert r.status_code == 200 and triggers == ["alertmanager:autoscaler"]
    for wrong in (f"Basic {TOKEN}", f"Bearer{TOKEN}", f"Bearer {TOKEN[:-1]}", TOKEN):
        r = requests.post(
            url + "/webhook/alertmanager", data=json.dumps(ALERT), headers={"Authorization": wrong}
        )
        assert r.status_code == 401, wrong


def test_a_content_length_is_ascii_digits(server: Any) -> None:
    url, triggers, _ = server
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(ALERT).encode()
    head = (
        f"POST /webhook/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Length: {str(len(body))[0]}_{str(len(body))[1:]}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(head.encode() + body)
        answer = b"".join(iter(lambda: conn.recv(4096), b"")).decode()  # to the close
    assert answer.startswith("HTTP/1.0 400") and "Content-Length required" in answer
    assert triggers == []


def test_head_and_other_methods(server: Any) -> None:
    url, _, _ = server
    head = requests.head(url + "/healthz", timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) > 0  # what a GET would send
    for method in ("PUT", "PATCH", "OPTIONS"):
        r = requests.request(method, url + "/healthz", timeout=5)
        assert r.status_code == 405 and r.json() == {"error": f"method {method} not allowed"}


def test_a_client_that_stalls_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Half a request, then nothing: the connection is closed after the read timeout
    instead of holding a thread forever."""
    monkeypatch.setattr("autoscaler.server.READ_TIMEOUT", 0.5)
    with serving(webhook_token=TOKEN) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as conn:
            conn.sendall(b"POST /webhook/alertmanager HTTP/1.1\r\nContent-Len")
            assert conn.recv(4096) == b""  # closed by the server, not by our own timeout
        assert requests.get(f"http://127.0.0.1:{srv.port}/healthz", timeout=5).ok


def test_a_client_that_drips_is_cut_off_at_the_request_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A byte every 0.1 s never trips the read timeout; the whole request has a deadline."""
    monkeypatch.setattr("autoscaler.server.REQUEST_DEADLINE", 0.5)
    request = b"POST /webhook/alertmanager HTTP/1.1\r\nContent-Length: 200\r\n\r\n" + b" " * 200
    with serving(webhook_token=TOKEN) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as conn:
            cut = False
            for byte in request:  # 264 bytes: 26 s if nobody cuts it off
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    cut = True
                    break
                readable, _, _ = select.select([conn], [], [], 0.1)
                if readable:
                    cut = conn.recv(4096) == b""
                    break
            assert cut, "the server read the whole dripped request"
        assert requests.get(f"http://127.0.0.1:{srv.port}/healthz", timeout=5).ok


def test_connections_over_the_limit_are_closed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("autoscaler.server.MAX_CONNECTIONS", 2)
    url_of = "http://127.0.0.1:{}/healthz".format
    with serving() as srv:
        idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(2)]
        try:
            for conn in idle:  # half a request each: both hold a slot, waiting for the rest
                conn.sendall(b"GET /healthz HTTP/1.1\r\n")
            # connections are accepted in order, so the third finds both slots taken
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as third:
                try:
                    third.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    answer = third.recv(4096)
                except ConnectionResetError:
                    answer = b""
                assert answer == b""  # closed, not served
        finally:
            for conn in idle:
                conn.close()
        for _ in range(50):  # the slots come back once the idle ones are gone
            try:
                if requests.get(url_of(srv.port), timeout=5).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            raise AssertionError("no slot came back after the idle connections closed")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/webhook/alertmanager", "POST"),  # someone trying the webhook by hand
        ("HEAD", "/webhook/alertmanager", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/plan", "GET, HEAD"),
        ("PUT", "/metrics", "GET, HEAD"),
    ],
)
def test_a_known_path_with_the_wrong_method_is_405_naming_the_right_ones(
    server: Any, method: str, path: str, allow: str
) -> None:
    """RFC 9110 15.5.6: 405 (not 404: the path exists) with an Allow header."""
    url, triggers, _ = server
    r = requests.request(method, url + path, timeout=5)
    assert (r.status_code, r.headers.get("Allow")) == (405, allow)
    assert triggers == []


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_an_unknown_path_is_404_whatever_the_method(server: Any, method: str) -> None:
    url, _, _ = server
    r = requests.request(method, url + "/nope", timeout=5)
    assert r.status_code == 404 and "Allow" not in r.headers


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_401_names_the_bearer_scheme(server: Any, token: str | None) -> None:
    """RFC 9110 15.5.2: a 401 carries WWW-Authenticate (RFC 6750 3 gives the Bearer form)."""
    url, _, _ = server
    r = post(url, json.dumps(ALERT).encode(), token=token)
    assert r.status_code == 401
    assert r.headers.get("WWW-Authenticate") == 'Bearer realm="autoscaler"'


def test_a_hook_that_fails_is_a_500_and_a_logged_error(caplog: pytest.LogCaptureFixture) -> None:
    """Not a connection dropped without an answer, and the server goes on serving."""

    def last_plan() -> dict[str, Any]:
        raise ValueError("a plan that cannot be rendered")

    with serving(last_plan=last_plan) as srv, caplog.at_level("ERROR", "autoscaler.server"):
        url = f"http://127.0.0.1:{srv.port}"
        r = requests.get(url + "/plan", timeout=5)
        assert r.status_code == 500 and "log" in r.json()["error"]
        assert "cannot be rendered" not in r.text  # details go to the log, not the client
        assert "GET '/plan' failed" in caplog.text and "cannot be rendered" in caplog.text
        assert requests.get(url + "/healthz", timeout=5).status_code == 200


def test_an_ipv6_listen_address_serves() -> None:
    """``AUTOSCALER_LISTEN=[::]:8080`` on a Swarm with IPv6: every interface, IPv4 too."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    hooks = ServerHooks(
        metrics=SidecarMetrics(),
        healthy=lambda: (True, {}),
        last_plan=lambda: None,
        trigger=lambda reason: None,
        webhook_token=TOKEN,
        webhook_max_bytes=1000,
    )
    srv = HttpServer("[::]:0", hooks)
    srv.start()
    try:
        for host in ("[::1]", "127.0.0.1"):
            assert requests.get(f"http://{host}:{srv.port}/healthz", timeout=5).status_code == 200
    finally:
        srv.stop()
