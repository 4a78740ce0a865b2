"""Silences and alert listing over the sidecar's HTTP API and the ``autoscaler alerts`` CLI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from autoscaler.alerts.manager import Alerting
from autoscaler.cli import main
from tests.http_builders import serving
from tests.test_alerts_builtin import join_timeout_pass
from tests.test_loop import Clock

TOKEN = "api-token-0123456789"


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[tuple[str, Alerting, Path, Clock]]:
    clock = Clock()
    alerting = Alerting(clock=clock, state_dir=tmp_path / "state")
    alerting.after_pass(join_timeout_pass("apps"))
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with serving(alerts=alerting, api_token=TOKEN) as server:
        yield f"http://127.0.0.1:{server.port}", alerting, token_file, clock


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["alerts", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_silence_list_and_unsilence_from_the_cli(
    sidecar: tuple[str, Alerting, Path, Clock], capsys: pytest.CaptureFixture[str]
) -> None:
    url, alerting, token, clock = sidecar
    code, out, _ = cli(capsys, "list", "--url", url)
    assert code == 0 and "firing    AutoscalerNodeDidNotJoin" in out and "silenced" not in out

    code, _, err = cli(
        capsys,
        "silence",
        "--url",
        url,
        "--author",
        "jo",
        "--comment",
        "x",
        "alertname=AutoscalerNodeDidNotJoin",
    )
    assert code == 2 and "401" in err  # no token: refused
    empty = token.parent / "empty"
    empty.write_text("\n")
    code, _, err = cli(capsys, "unsilence", "--url", url, "--token-file", str(empty), "x")
    assert (code, err.strip()) == (2, "autoscaler: error: --token-file: the file it names is empty")

    code, out, _ = cli(
        capsys,
        "silence",
        "--url",
        url,
        "--token-file",
        str(token),
        "--author",
        "jo",
        "--comment",
        "new AMI is being rolled out",
        "--duration",
        "2h",
        'alertname="AutoscalerNodeDidNotJoin"',
        "pool=~app.*",
    )
    assert code == 0
    silence_id = out.strip()
    listed = requests.get(f"{url}/api/silences", timeout=5).json()["silences"]
    assert [(s["id"], s["state"], s["created_by"], s["comment"]) for s in listed] == [
        (silence_id, "active", "jo", "new AMI is being rolled out")
    ]
    code, out, _ = cli(capsys, "list", "--url", url)
    assert "(silenced)" in out
    alerts = requests.get(f"{url}/api/alerts", timeout=5).json()["alerts"]
    assert alerts[0]["silenced_by"] == [silence_id]

    clock.now += timedelta(minutes=1)
    code, out, _ = cli(capsys, "unsilence", "--url", url, "--token-file", str(token), silence_id)
    assert code == 0 and silence_id in out
    assert alerting.list_silences()[0]["state"] == "expired"
    code, _, err = cli(capsys, "unsilence", "--url", url, "--token-file", str(token), silence_id)
    assert code == 2 and "no such active silence" in err
    # Persisted: a restart sees the expired silence.
    assert Alerting(state_dir=alerting.silences.path.parent).list_silences()[0]["id"] == silence_id  # type: ignore[union-attr]


def test_a_silence_that_cannot_be_saved_is_a_500_the_cli_reports(
    sidecar: tuple[str, Alerting, Path, Clock],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A state folder that cannot be written (here: a file in its place) is an answer and an
    error in the sidecar's log, not a dropped connection the CLI takes for an unreachable
    sidecar while the sidecar logs nothing above DEBUG."""
    url, alerting, token, _ = sidecar
    assert alerting.silences.path is not None
    state = alerting.silences.path.parent
    shutil.rmtree(state)
    state.write_text("")
    argv = ["--url", url, "--token-file", str(token), "--author", "jo", "--comment", "c"]
    with caplog.at_level("ERROR", "autoscaler.server"):
        code, _, err = cli(capsys, "silence", *argv, "alertname=X")
    assert code == 2 and "POST /api/silences: HTTP 500" in err
    assert "POST '/api/silences' failed" in caplog.text and "FileExistsError" in caplog.text
    assert alerting.silences.all() == []  # a 500 changed nothing: a retry makes no second one


GOOD = {"matchers": ["alertname=X"], "duration_seconds": 3600, "created_by": "jo", "comment": "c"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"matchers": ["alertname=X"], "created_by": "jo", "comment": "c"}, "duration_seconds"),
        ({"matchers": "alertname=X", "duration_seconds": 60}, "list of strings"),
        (
            {"matchers": ['a="b'], "duration_seconds": 60, "created_by": "jo", "comment": "c"},
            "closing quote",
        ),
        ({"matchers": ["alertname=X"], "duration_seconds": 60, "created_by": "jo"}, "comment"),
        (
            {"matchers": ["alertname=X"], "ends_at": "tomorrow", "created_by": "j", "comment": "c"},
            "ISO 8601",
        ),
        # RE2, as Alertmanager: Perl-only syntax is refused, nothing can backtrack for hours
        (GOOD | {"matchers": ["alertname=~(?:()|()){27}(?!)"]}, "invalid perl operator"),
        (GOOD | {"duration_seconds": True}, "a number"),
        (GOOD | {"duration_seconds": float("nan")}, "above 0 and at most 3650 days"),
        (GOOD | {"duration_seconds": 1e308}, "above 0 and at most 3650 days"),
        (GOOD | {"starts_at": "9999-12-31T23:00:00Z"}, "after the year 9999"),
        (GOOD | {"created_by": {"a": 1}}, "'created_by' must be text"),
        (GOOD | {"ends_at": "9999-12-31T00:00:00Z"}, "a silence lasts at most 3650 days"),
    ],
)
def test_bad_silences_are_clear_400s(
    sidecar: tuple[str, Alerting, Path, Clock], body: dict[str, Any], error: str
) -> None:
    url, *_ = sidecar
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    data = json.dumps(body)  # NaN as Python writes it: what a careless client sends
    resp = requests.post(f"{url}/api/silences", data=data, timeout=5, headers=headers)
    assert resp.status_code == 400 and error in resp.json()["error"]
    assert sidecar[1].list_silences() == []  # nothing half made


def test_test_route_reports_a_bad_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "am.yml"
    bad.write_text("route:\n  receiver: nope\nreceivers:\n  - name: ops\n")
    code, _, err = cli(capsys, "test-route", "--config", str(bad), "a=b")
    assert code == 1 and "undefined receiver 'nope'" in err and len(err.splitlines()) == 1


def test_test_route_reads_a_rules_folder_as_the_sidecar_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = Path(__file__).parent.parent / "rules"
    code, out, _ = cli(
        capsys, "test-route", "--config", str(shipped), "alertname=X", "severity=critical"
    )
    assert code == 0 and out.strip() == "ops-email,ops-slack"

    (tmp_path / "a.yml").write_text("signals: {}\n")
    code, _, err = cli(capsys, "test-route", "--config", str(tmp_path), "a=b")
    assert code == 1 and "no rules file has a 'route'" in err
    (tmp_path / "a.yml").write_text("services: {api: {max: two}}\n")
    code, _, err = cli(capsys, "test-route", "--config", str(tmp_path), "a=b")
    assert code == 1 and f"{tmp_path / 'a.yml'}:1: services.api.max" in err
