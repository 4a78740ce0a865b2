"""Bearer token files hold what every client can send: printable ASCII.

Alertmanager (Go) and curl put a token's bytes on the wire as they are; the server reads
header bytes as Latin-1 (RFC 9110), so a UTF-8 token with an ``ä`` could never match.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from autoscaler.settings import SettingsError, env_name, load_settings, read_secret
from tests.http_builders import serving


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("AUTOSCALER_")]:
        monkeypatch.delenv(key)


def start_problems(monkeypatch: pytest.MonkeyPatch, field: str, token_file: Path) -> list[str]:
    monkeypatch.setenv(env_name(field), str(token_file))
    try:
        load_settings()
    except SettingsError as e:
        return e.problems
    return []


def raw_webhook(port: int, token: bytes) -> bytes:
    """POST the webhook as Alertmanager does: the token's bytes, unencoded; the status line."""
    body = b'{"alerts": []}'
    head = (
        b"POST /webhook/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token
    ) + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(head + body)
        return b"".join(iter(lambda: conn.recv(4096), b"")).split(b"\r\n", 1)[0]


@pytest.mark.parametrize("field", ["webhook_token_file", "api_token_file"])
@pytest.mark.parametrize("token", ["pässwort", "first line\nsecond line"])
def test_a_token_no_client_could_send_refuses_the_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, field: str, token: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n", encoding="utf-8")
    found = start_problems(monkeypatch, field, token_file)
    name = env_name(field)
    assert found == [f"{name}: the token in the file it names must be printable ASCII"]
    assert not any(part in "".join(found) for part in token.split())  # never the token


def test_a_printable_ascii_token_is_taken_and_matches_what_alertmanager_sends(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = "Zq!$&'()*+,;=:@ ~8"  # punctuation and an inner space: fine on the wire
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    assert start_problems(monkeypatch, "webhook_token_file", token_file) == []
    read = read_secret(token_file, env_name("webhook_token_file"))
    with serving(webhook_token=read) as srv:
        assert raw_webhook(srv.port, token.encode()) == b"HTTP/1.0 200 OK"
        assert raw_webhook(srv.port, b"wrong") == b"HTTP/1.0 401 Unauthorized"
