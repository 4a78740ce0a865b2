"""``autoscaler simulate`` end to end on small inputs: the files it writes and their shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoscaler.cli import build_parser, main

RESULT_KEYS = {
    "node_hours_by_use",
    "sessions",
    "failed_starts",
    "failed_start_pct",
    "sessions_killed",
    "sessions_reopened",
    "node_hours",
    "cost",
    "seat_wait_p95_s",
    "actions",
}
POOL = """
pools:
  web:
    provider: local
    min: 1
    max: 8
    seats_per_node: 4
    headroom: {seats: 2, node_ready_time: 3m}
    prices: {local: 0.5}
    scale_in: {unneeded_for: 5m, drain_for: 30s}
    join_timeout: 10m
"""


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "pools.yml").write_text(POOL, encoding="utf-8")
    return folder


def trace(tmp_path: Path) -> Path:
    """Six hours: quiet, a two-hour office peak, quiet again (no header, space format)."""
    rows = []
    for m in range(360):
        count = 100 if 120 <= m < 240 else 20
        rows.append(f"2024-05-06 {6 + m // 60:02d}:{m % 60:02d}:00,{count}")
    path = tmp_path / "trace.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_simulate_a_trace_writes_summary_report_and_plot(
    tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["simulate", "--trace", str(trace(tmp_path)), "--rules", str(rules)]
    argv += ["--peak-sessions", "20", "--seed", "5", "--warmup", "30m", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"params", "results"}
    names = ["policy:web", "static-peak", "hpa-style", "cluster-autoscaler-style", "hot-buffer"]
    assert list(summary["results"]) == [*names, "oracle"]
    for result in summary["results"].values():
        assert set(result) == RESULT_KEYS
    params = summary["params"]
    assert (params["seed"], params["peak_sessions"], params["pool"]) == (5, 20, "web")
    assert (params["seats_per_node"], params["price_per_node_hour"]) == (4, 0.5)
    assert params["event_gap_s"] is None
    web, oracle = summary["results"]["policy:web"], summary["results"]["oracle"]
    assert web["sessions"] == oracle["sessions"] > 100
    assert web["node_hours"] >= oracle["node_hours"] > 0
    assert web["cost"] == pytest.approx(web["node_hours"] * 0.5, abs=0.01)
    assert web["sessions_killed"] == 0
    for result in summary["results"].values():  # the uses split the node-hours
        assert sum(result["node_hours_by_use"].values()) == pytest.approx(
            result["node_hours"], abs=0.05
        )
    # sampled at every pass, the seats held by sessions match the sessions' exact length
    # where nothing failed or was killed; kills cut that time short
    held = {k: r["node_hours_by_use"]["sessions"] for k, r in summary["results"].items()}
    assert summary["results"]["static-peak"]["failed_starts"] == 0
    assert held["static-peak"] == pytest.approx(held["oracle"], rel=0.01)
    assert summary["results"]["hpa-style"]["sessions_killed"] > 0
    assert held["hpa-style"] < 0.95 * held["oracle"]
    report = (out / "report.md").read_text()
    assert "## Where the node-hours go" in report
    assert "| policy:web |" in report and "| oracle |" in report
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "| cluster-autoscaler-style |" in printed
    # the same seed gives the same answer, also with the baselines in a second process
    again = tmp_path / "again"
    assert main([*argv[:-1], str(again), "--no-progress", "--no-plot", "--jobs", "2"]) == 0
    assert json.loads((again / "summary.json").read_text()) == summary
    assert not (again / "timeline.png").exists()


def test_simulate_recorded_sessions_with_overrides(tmp_path: Path, rules: Path) -> None:
    rows = ["start,end,user"]
    for i in range(60):
        rows.append(f"2024-05-06T08:{i:02d}:00Z,2024-05-06T09:{i:02d}:00Z,u{i}")
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    argv = ["simulate", "--sessions", str(sessions), "--rules", str(rules), "--pool", "web"]
    argv += ["--seats-per-node", "8", "--max-nodes", "3", "--baselines", "oracle,static-peak"]
    argv += ["--warmup", "0s", "--to", "2024-05-06T11:00:00Z", "--no-progress", "--no-plot"]
    assert main([*argv, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["results"]) == ["policy:web", "static-peak", "oracle"]
    assert summary["params"]["max_nodes"] == 3
    static = summary["results"]["static-peak"]
    # 60 one-hour sessions, one a minute: 60 at once at 09:00 at most, 8 seats a node
    assert static["sessions"] == 60 and static["failed_starts"] == 0
    assert static["node_hours"] == pytest.approx(8 * 3.0)
    # max 3 nodes = 24 seats for 60 sessions; only the start at 08:59 can still get the
    # seat the first session frees at 09:00, so at least 35 starts fail
    assert summary["results"]["policy:web"]["failed_starts"] >= 60 - 24 - 1


def test_simulate_refuses_bad_options(
    tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["simulate", "--trace", str(trace(tmp_path)), "--rules", str(rules), "--no-progress"]
    assert main([*base, "--pool", "db", "--out", str(tmp_path / "a")]) == 1
    assert "no pool 'db'" in capsys.readouterr().err
    assert main([*base, "--baselines", "magic", "--out", str(tmp_path / "b")]) == 1
    assert "unknown baseline magic" in capsys.readouterr().err
    assert main([*base, "--from", "2030-01-01 00:00:00", "--out", str(tmp_path / "c")]) == 1
    assert "no rows between" in capsys.readouterr().err
    # the interval pass comes every 15 s anyway (a gap of 0 is refused by the parser)
    assert main([*base, "--event-passes", "20s", "--out", str(tmp_path / "e")]) == 1
    assert "--event-passes needs a gap above 0" in capsys.readouterr().err
    (rules / "bad.yml").write_text("pools:\n  web2:\n    provider: local\n", encoding="utf-8")
    assert main([*base, "--out", str(tmp_path / "d")]) == 1
    assert "bad.yml:2: pools.web2.max: missing" in capsys.readouterr().err


def test_since_is_a_time_or_a_duration_back_from_now() -> None:
    from datetime import UTC, datetime, timedelta

    from autoscaler.sim.setup import SetupError, since

    now = datetime(2024, 5, 13, 12, tzinfo=UTC)
    assert since(None, now) == now - timedelta(days=7)
    assert since("36h", now) == now - timedelta(hours=36)
    assert since("2024-05-01 00:00:00", now) == datetime(2024, 5, 1, tzinfo=UTC)
    with pytest.raises(SetupError, match="--since 'last week'"):
        since("last week", now)


def test_baselines_go_to_a_second_process_only_when_it_pays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace
    from typing import Any, cast

    from autoscaler.sim import cli

    def setup(days: float) -> Any:
        return cast(Any, SimpleNamespace(workload=SimpleNamespace(seconds=days * 86400)))

    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    assert cli._jobs(None, setup(61)) == 2
    assert cli._jobs(None, setup(0.25)) == 1  # a process costs more than it saves
    assert cli._jobs(1, setup(61)) == 1
    assert cli._jobs(0, setup(61)) == 1
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 1)
    assert cli._jobs(None, setup(61)) == 1
    assert cli._jobs(3, setup(1)) == 3


def test_killed_users_can_come_back(tmp_path: Path, rules: Path) -> None:
    argv = ["simulate", "--trace", str(trace(tmp_path)), "--rules", str(rules), "--seed", "5"]
    argv += ["--peak-sessions", "20", "--warmup", "0s", "--no-progress", "--no-plot"]
    argv += ["--baselines", "hpa-style,oracle"]
    runs = {}
    for name, extra in (("gone", []), ("back", ["--reopen-after", "10s"])):
        assert main([*argv, *extra, "--out", str(tmp_path / name)]) == 0
        runs[name] = json.loads((tmp_path / name / "summary.json").read_text())
    gone, back = (runs[k]["results"] for k in ("gone", "back"))
    assert runs["gone"]["params"]["reopen_after_s"] is None
    assert runs["back"]["params"]["reopen_after_s"] == 10.0
    assert gone["policy:web"] == back["policy:web"]  # it ends no session: nothing comes back
    hpa, hpa_back = gone["hpa-style"], back["hpa-style"]
    assert hpa["sessions_reopened"] == 0 < hpa["sessions_killed"]
    # every killed session had time left, so each comes back once (and may be killed again)
    assert hpa_back["sessions_reopened"] == hpa_back["sessions_killed"] > 0
    assert hpa_back["sessions"] == hpa["sessions"]  # arrivals from the trace only
    # the time the kills cut short is served after all, and paid for
    held = {
        k: r["hpa-style"]["node_hours_by_use"]["sessions"]
        for k, r in (("gone", gone), ("back", back))
    }
    assert held["back"] > held["gone"]
    assert hpa_back["node_hours"] > hpa["node_hours"]
    column = "| reopened |"
    assert column in (tmp_path / "back" / "report.md").read_text()
    assert column not in (tmp_path / "gone" / "report.md").read_text()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--peak-sessions", "inf"),  # the Poisson draws would never end
        ("--peak-sessions", "nan"),
        ("--peak-sessions", "0"),
        ("--session-median", "1e400"),
        ("--session-p90", "0.0001"),  # below 1ms: the lognormal's draws overflow
        ("--session-cap", "nan"),
        ("--session-cap", "inf"),
        ("--seed", "-1"),
        ("--seats-per-node", "0"),
        ("--max-nodes", "0"),
        ("--ready-time", "0"),
        ("--ready-time-p90", "nan"),
        ("--service-wait", "-5"),
        ("--price", "-1"),
        ("--price", "nan"),
        ("--reopen-after", "-1"),
        ("--tick", "nan"),
        ("--tick", "inf"),
        ("--tick", "99999999999d"),  # more days than a timedelta holds
        ("--tick", "1000000000d"),
        ("--event-passes", "0s"),
        ("--warmup", "nan"),
        ("--jobs", "0"),
        ("--since", "99999999999d"),
        ("--since", "0s"),
        ("--since", "last week"),
    ],
)
def test_numeric_options_are_refused_up_front_naming_the_option(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["simulate", "--trace", "t.csv", option, value])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"autoscaler simulate: error: argument {option}: must be ")
    assert last.endswith(f"(got {value})")


def test_numeric_options_keep_zero_where_it_means_something() -> None:
    argv = ["simulate", "--trace", "t.csv", "--warmup", "0", "--service-wait", "0s"]
    argv += ["--price", "0", "--reopen-after", "0", "--seed", "0", "--tick", "1ms"]
    args = build_parser().parse_args([*argv, "--session-cap", "1h30m", "--ready-time", "2m"])
    assert (args.warmup, args.service_wait, args.price, args.reopen_after) == (0, 0, 0, 0)
    assert (args.seed, args.tick, args.session_cap, args.ready_time) == (0, 0.001, 90, 120)
    assert build_parser().parse_args(["simulate", "--trace", "t.csv", "--tick", "999999999d"])


def test_runs_too_large_to_finish_are_refused(
    tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["simulate", "--trace", str(trace(tmp_path)), "--rules", str(rules), "--no-progress"]
    base += ["--out", str(tmp_path / "out")]
    assert main([*base, "--peak-sessions", "1e15"]) == 1
    assert "--peak-sessions 1e+15 with sessions of 22.2 min" in capsys.readouterr().err
    assert main([*base, "--session-cap", "1ms"]) == 1  # a tiny mean: as many arrivals
    assert "arrivals, above 10,000,000" in capsys.readouterr().err
    assert main([*base, "--tick", "1ms"]) == 1
    assert "--tick 0.001s makes 2.16e+07 passes" in capsys.readouterr().err
    assert main([*base, "--session-median", "1h"]) == 1  # the 90th percentile is 50m
    assert "--session-median, --session-p90, --session-cap: session lengths need" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_since_too_far_back_names_the_option(
    rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime

    from autoscaler.sim.setup import SetupError, since

    now = datetime(2024, 5, 13, 12, tzinfo=UTC)
    with pytest.raises(SetupError, match=r"^--since '999999d': too far back$"):  # before year 1
        since("999999d", now)
    # refused before InfluxDB is asked
    argv = ["simulate", "--influx", "http://127.0.0.1:9", "--since", "999999d"]
    assert main([*argv, "--rules", str(rules), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err == "autoscaler simulate: --since '999999d': too far back\n"
