"""Bad settings stop the start with one line per problem naming the variable, never a secret."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import TypeAdapter, ValidationError

from autoscaler.cli import main
from autoscaler.durations import Duration, parse_duration
from autoscaler.rules.check import run_check
from autoscaler.server import HttpServer
from autoscaler.settings import (
    SECRET_FILES,
    SettingsError,
    env_name,
    load_settings,
    parse_listen,
    read_secret,
)
from tests.http_builders import serving

SECRET = "Sup3rS3cret!"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("AUTOSCALER_")]:
        monkeypatch.delenv(key)


def problems(**env: str) -> list[str]:
    """The start-up problems of this environment (none: [])."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        try:
            load_settings()
        except SettingsError as e:
            return e.problems
    return []


def plan(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, *flags: str, **env: str
) -> tuple[int, list[str]]:
    """``autoscaler plan`` with this environment: exit code and stderr lines."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        code = main(["plan", "--rules", str(tmp_path), *flags])
    err = capsys.readouterr().err
    assert "Traceback" not in err and SECRET not in err
    return code, err.splitlines()


# ---------------------------------------------------------------- 1. empty secret files


@pytest.mark.parametrize("field", SECRET_FILES)
def test_a_configured_empty_secret_file_refuses_to_start(
    field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "secret"
    empty.write_text("\n")
    name = env_name(field)
    assert problems(**{name: str(empty)}) == [f"{name}: the file it names is empty"]
    code, err = plan(capsys, tmp_path, **{name: str(empty)})
    assert code == 2 and err == [f"autoscaler: error: {name}: the file it names is empty"]


@pytest.mark.parametrize("field", SECRET_FILES)
def test_an_empty_secret_variable_is_refused_not_read_as_the_current_folder(field: str) -> None:
    name = env_name(field)
    assert problems(**{name: ""}) == [
        f"{name}: set but empty: name the secret file, or unset the variable"
    ]


def test_a_good_secret_file_is_read_and_an_unset_one_is_none(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    assert problems(AUTOSCALER_API_TOKEN_FILE=str(token)) == []
    assert read_secret(token, "AUTOSCALER_API_TOKEN_FILE") == "t0ken"
    assert read_secret(None, "AUTOSCALER_API_TOKEN_FILE") is None


class Silences:
    def list_alerts(self) -> list[dict[str, Any]]:
        return []

    def list_silences(self) -> list[dict[str, Any]]:
        return []

    def add_silence(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"id": "s1"}

    def expire_silence(self, silence_id: str) -> bool:
        return True


@pytest.fixture
def api() -> Iterator[Any]:
    """Start a server with this api_token; yield a POST /api/silences callable."""
    with ExitStack() as servers:

        def post(api_token: str | None, auth: str | None) -> int:
            server = servers.enter_context(serving(alerts=Silences(), api_token=api_token))
            headers = {"Authorization": auth} if auth is not None else {}
            url = f"http://127.0.0.1:{server.port}/api/silences"
            return requests.post(url, json={"matchers": []}, headers=headers, timeout=5).status_code

        yield post


def test_an_empty_api_token_locks_the_silences_api_rather_than_opening_it(api: Any) -> None:
    assert api("", None) == 401
    assert api("", "Bearer ") == 401
    assert api(None, None) == 200  # no token configured: none needed, as before
    assert api("t", "Bearer t") == 200


# ---------------------------------------------------------------- 2. errors name the variable


def test_a_secret_in_a_file_variable_is_never_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = "AUTOSCALER_INFLUXDB_PASSWORD_FILE: the file it names cannot be read"
    assert problems(AUTOSCALER_INFLUXDB_PASSWORD_FILE=SECRET) == [
        f"{line} (No such file or directory)"
    ]
    code, err = plan(capsys, tmp_path, AUTOSCALER_INFLUXDB_PASSWORD_FILE=SECRET)
    assert code == 2 and err == [f"autoscaler: error: {line} (No such file or directory)"]


def test_unreadable_secret_files_name_the_variable_not_the_path_or_content(tmp_path: Path) -> None:
    binary = tmp_path / SECRET
    binary.write_bytes(SECRET.encode() + b"\xff")
    for path, why in ((binary, "not UTF-8 text"), (tmp_path, "Is a directory")):
        found = problems(AUTOSCALER_WEBHOOK_TOKEN_FILE=str(path))
        assert found == [f"AUTOSCALER_WEBHOOK_TOKEN_FILE: the file it names cannot be read ({why})"]


# ---------------------------------------------------------------- 3. duration overflow


@pytest.mark.parametrize("text", ["99999999999d", "9" * 400 + "s", "9" * 400])
def test_an_overflowing_duration_is_a_clear_error(text: str) -> None:
    assert problems(AUTOSCALER_SOURCE_TIMEOUT=text) == [
        "AUTOSCALER_SOURCE_TIMEOUT: duration too large"
    ]


def test_the_parser_itself_raises_its_usual_value_error() -> None:
    with pytest.raises(ValueError, match=r"^duration too large$"):
        parse_duration("99999999999d")


@pytest.mark.parametrize(
    ("value", "why"),
    [(float("inf"), "duration too large"), (10**400, "duration too large"), (float("nan"), "NaN")],
)
def test_infinite_huge_or_nan_numbers_are_refused(value: float, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        TypeAdapter(Duration).validate_python(value)


def test_rules_report_an_overflowing_duration_on_its_line(tmp_path: Path) -> None:
    (tmp_path / "signals.yml").write_text(
        "signals:\n  ready:\n    swarm: {metric: nodes, state: ready}\n    max_age: 99999999999d\n"
    )
    out = io.StringIO()
    assert run_check([tmp_path], out) == 1
    assert out.getvalue().strip() == (
        f"{tmp_path / 'signals.yml'}:4: signals.ready.max_age: duration too large"
    )


# ---------------------------------------------------------------- 4. positive durations


@pytest.mark.parametrize(
    "name",
    [
        "AUTOSCALER_INTERVAL",
        "AUTOSCALER_SOURCE_TIMEOUT",
        "AUTOSCALER_MAX_BACKOFF",
        "AUTOSCALER_ALERTS_STALL_AFTER",
    ],
)
@pytest.mark.parametrize("value", ["0s", "0", "0ms"])
def test_a_zero_duration_is_refused_naming_the_variable(name: str, value: str) -> None:
    assert problems(**{name: value}) == [f"{name}: must be more than 0s, not 0s"]


def test_settings_take_a_bare_number_of_seconds_as_rules_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTOSCALER_INTERVAL", "30")
    monkeypatch.setenv("AUTOSCALER_SOURCE_TIMEOUT", " 1.5 ")
    s = load_settings()
    assert s.interval == timedelta(seconds=30) and s.source_timeout == timedelta(seconds=1.5)
    assert problems(AUTOSCALER_INTERVAL="5 min") == [
        "AUTOSCALER_INTERVAL: bad duration '5 min': use a number and a unit, e.g. 30s, 5m, 1h30m"
    ]


def test_a_flag_is_named_when_the_flag_gave_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--once", "--rules", str(tmp_path), "--interval", "0", "--listen", "x"])
    err = capsys.readouterr().err
    assert code == 2 and err.splitlines() == [
        "autoscaler: error: --interval: must be more than 0s, not 0s",
        "autoscaler: error: --listen: 'x' is not host:port with a port from 0 to 65535",
    ]


def test_a_healthz_window_too_long_to_compute_is_refused() -> None:
    found = problems(AUTOSCALER_INTERVAL="999999d", AUTOSCALER_HEALTHZ_INTERVALS="2000")
    assert found == ["AUTOSCALER_HEALTHZ_INTERVALS: 2000 intervals of 999999d is too long a window"]


@pytest.mark.parametrize(
    ("name", "value", "least"),
    [
        ("AUTOSCALER_LEDGER_MAX_BYTES", "0", 4096),  # 0 or less would never rotate
        ("AUTOSCALER_LEDGER_MAX_BYTES", "-1", 4096),
        ("AUTOSCALER_LEDGER_BACKUPS", "-1", 0),
        ("AUTOSCALER_WEBHOOK_MAX_BYTES", "0", 1024),  # would refuse every webhook
    ],
)
def test_sizes_and_counts_out_of_range_are_refused_naming_the_variable(
    name: str, value: str, least: int
) -> None:
    assert problems(**{name: value}) == [
        f"{name}: Input should be greater than or equal to {least} (got {value!r})"
    ]


# ---------------------------------------------------------------- 5. listen address


BAD_LISTEN = ["abc", "0.0.0.0:99999", "host:", "99999", ":x", "h:-1", "h:+80", "h:٨٠"]
BAD_LISTEN.append("h:" + "9" * 5000)  # past int()'s digit limit: still this message


@pytest.mark.parametrize("value", BAD_LISTEN)
def test_a_bad_listen_address_is_refused_naming_the_variable(value: str) -> None:
    assert problems(AUTOSCALER_LISTEN=value) == [
        f"AUTOSCALER_LISTEN: {value!r} is not host:port with a port from 0 to 65535"
    ]


def test_good_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen(":65535") == ("0.0.0.0", 65535)
    assert parse_listen("8080") == ("0.0.0.0", 8080)  # a port alone, as before
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)  # any free port, as tests use it
    assert parse_listen("[::]:8080") == ("::", 8080)
    assert parse_listen("[::1]:0") == ("::1", 0)
    with pytest.raises(ValueError, match=r"IPv6 address in brackets, as \[::1\]:8080"):
        parse_listen("::1:8080")
    with pytest.raises(ValueError, match="not host:port"):
        HttpServer("abc", None)  # type: ignore[arg-type]


def test_listen_flag_errors_name_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--once", "--rules", str(tmp_path), "--listen", "0.0.0.0:99999"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("autoscaler: error: --listen: '0.0.0.0:99999' is not")
    assert "Traceback" not in err


# ---------------------------------------------------------------- 6. one line per problem


def test_every_problem_is_one_line_naming_its_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = plan(
        capsys,
        tmp_path,
        AUTOSCALER_INTERVAL="soon",
        AUTOSCALER_HEALTHZ_INTERVALS="0",
        AUTOSCALER_DRY_RUN="maybe",
        AUTOSCALER_API_TOKEN_FILE="",
    )
    assert code == 2
    assert err == [
        "autoscaler: error: AUTOSCALER_INTERVAL: bad duration 'soon': use a number and a unit, "
        "e.g. 30s, 5m, 1h30m",
        "autoscaler: error: AUTOSCALER_DRY_RUN: Input should be a valid boolean, "
        "unable to interpret input (got 'maybe')",
        "autoscaler: error: AUTOSCALER_HEALTHZ_INTERVALS: Input should be greater than or "
        "equal to 1 (got '0')",
        "autoscaler: error: AUTOSCALER_API_TOKEN_FILE: set but empty: name the secret file, "
        "or unset the variable",
    ]


# ---------------------------------------------------------------- 7. log level


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        ([], {"AUTOSCALER_LOG_LEVEL": "verbose"}, "AUTOSCALER_LOG_LEVEL"),
        (["--log-level", "verbose"], {"AUTOSCALER_LOG_LEVEL": "DEBUG"}, "--log-level"),
    ],
)
def test_an_unknown_log_level_is_refused_with_the_accepted_ones(
    argv: list[str],
    env: dict[str, str],
    named: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main([*argv, "check", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"autoscaler: error: {named}: unknown level 'verbose': "
        "use DEBUG, INFO, WARNING, ERROR, CRITICAL\n"
    )


@pytest.mark.parametrize("level", ["warning", "WARN", "fatal"])  # logging's aliases too
def test_a_known_log_level_in_any_case_is_taken(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], level: str
) -> None:
    monkeypatch.setenv("AUTOSCALER_LOG_LEVEL", level)
    assert main(["check", str(Path(__file__).parents[1] / "rules")]) == 0
    assert capsys.readouterr().err == ""
