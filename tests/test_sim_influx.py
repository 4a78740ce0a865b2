"""Backtest input from a real influxd holding ShinyProxy usage events."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from autoscaler.cli import main
from autoscaler.sim.arrivals import pair_events
from autoscaler.sim.usage import read_events
from autoscaler.sources.errors import NoData, SourceError
from tests.fixtures_backends import InfluxLab

pytestmark = pytest.mark.real

T0 = datetime(2024, 5, 6, 8, tzinfo=UTC)


def write_events(lab: InfluxLab, events: list[tuple[int, str, str, str]]) -> None:
    """ShinyProxy's line format, stamped in the past (seconds after T0) for a backtest."""
    lines = []
    for offset, user, kind, spec in events:
        ns = int((T0 + timedelta(seconds=offset)).timestamp()) * 1_000_000_000
        lines.append(f'event,username={user},type={kind} data="{spec}" {ns}')
    r = requests.post(
        f"{lab.url}/write?db={lab.database}", data="\n".join(lines).encode(), timeout=5
    )
    assert r.status_code == 204, r.text


def pool_rules(tmp_path: Path) -> Path:
    """A rules folder with one small pool of the lab's provider."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "p.yml").write_text(
        "pools:\n  web:\n    provider: local\n    max: 4\n    seats_per_node: 2\n",
        encoding="utf-8",
    )
    return rules


EVENTS = [
    (0, "alice", "Login", ""),
    (10, "alice", "ProxyStart", "euler"),
    (20, "bob", "ProxyStart", "euler"),
    (30, "alice", "ProxyStart", "gauss"),
    (600, "alice", "ProxyStop", "euler"),
    (1200, "bob", "ProxyStop", "euler"),
    (1300, "carol", "ProxyStop", "euler"),  # started before the window
]


def test_events_are_read_and_paired(usagestats: InfluxLab) -> None:
    write_events(usagestats, EVENTS)
    until = T0 + timedelta(hours=1)
    events = read_events(usagestats.url, usagestats.database, T0, until)
    assert sorted((e.user, e.type, e.spec) for e in events) == sorted(
        (u, k, s) for _, u, k, s in EVENTS if k != "Login"
    )
    at = [T0 + timedelta(seconds=s) for s in (10, 20, 30, 600, 1200)]
    assert pair_events(events, until) == [(at[0], at[3]), (at[1], at[4]), (at[2], until)]
    with pytest.raises(NoData):
        read_events(usagestats.url, usagestats.database, until, until + timedelta(hours=1))


def test_simulate_from_influx(usagestats: InfluxLab, tmp_path: Path) -> None:
    write_events(usagestats, EVENTS)
    rules = pool_rules(tmp_path)
    out = tmp_path / "out"
    argv = ["simulate", "--influx", usagestats.url, "--db", usagestats.database]
    argv += ["--from", "2024-05-06T08:00:00Z", "--to", "2024-05-06T09:00:00Z"]
    argv += ["--rules", str(rules), "--warmup", "0s", "--no-plot", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["results"]["oracle"]["sessions"] == 3
    assert summary["results"]["policy:web"]["sessions"] == 3
    assert summary["params"]["source"].startswith("InfluxDB http://127.0.0.1:")


def test_more_events_than_one_chunk_are_all_read(usagestats: InfluxLab) -> None:
    """InfluxDB sends a chunked answer in chunks of 10,000 rows: a week of a busy server
    is several chunks, and every one of them is read."""
    sessions = 5_001
    events: list[tuple[int, str, str, str]] = []
    for i in range(sessions):
        events += [(i, f"u{i}", "ProxyStart", "euler"), (i + 600, f"u{i}", "ProxyStop", "euler")]
    write_events(usagestats, events)
    until = T0 + timedelta(hours=3)
    read = read_events(usagestats.url, usagestats.database, T0, until)
    assert len(read) == 2 * sessions
    spans = pair_events(read, until)
    assert len(spans) == sessions
    assert {end - start for start, end in spans} == {timedelta(seconds=600)}


@pytest.mark.parametrize("form", ["--influx URL", "--influx=URL", "--infl URL"])
def test_the_influx_password_stays_out_of_what_is_written(
    usagestats: InfluxLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """report.md records the command line: credentials in the URL (the only way to give
    them) are left out of it, however the option was written."""
    write_events(usagestats, EVENTS)
    rules = pool_rules(tmp_path)
    url = usagestats.url.replace("http://", "http://stats:s3cret-pw@")
    out = tmp_path / "out"
    argv = ["simulate", *form.replace("URL", url).split(), "--db", usagestats.database]
    argv += ["--from", "2024-05-06T08:00:00Z", "--to", "2024-05-06T09:00:00Z"]
    argv += ["--rules", str(rules), "--baselines", "oracle", "--warmup", "0s"]
    argv += ["--no-plot", "--no-progress", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["autoscaler", *argv])
    assert main(argv) == 0
    report = (out / "report.md").read_text()
    assert f"autoscaler simulate {form.split()[0].split('=')[0]}" in report
    assert usagestats.url in report
    for written in out.iterdir():
        assert "s3cret-pw" not in written.read_text(), written.name


def test_a_database_that_is_down_is_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://user:secret@127.0.0.1:{port}"
    with pytest.raises(SourceError) as err:
        read_events(url, "db", T0, T0 + timedelta(hours=1), timeout=2)
    assert "secret" not in str(err.value)


def test_a_window_with_only_stops_is_refused_clearly(
    usagestats: InfluxLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Events, but no session starting in the window (only stops of sessions started
    before it): the run is refused with the reason, as for an empty sessions file."""
    write_events(usagestats, [(60, "carol", "ProxyStop", "euler")])
    argv = ["simulate", "--influx", usagestats.url, "--db", usagestats.database]
    argv += ["--from", "2024-05-06T08:00:00Z", "--to", "2024-05-06T09:00:00Z"]
    argv += ["--warmup", "0s", "--no-plot", "--no-progress", "--out", str(tmp_path / "out")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("autoscaler simulate: InfluxDB http://127.0.0.1:")
    assert "no sessions" in err
    assert not (tmp_path / "out").exists()
