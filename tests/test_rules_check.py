"""``autoscaler check``: a line per problem or an OK summary, exit 0 or 1; shipped rules pass."""

from __future__ import annotations

import io
from pathlib import Path

from autoscaler.rules.check import run_check
from autoscaler.rules.loader import load_rules

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "rules"


def _check(*paths: Path) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = run_check(list(paths), out)
    return code, out.getvalue().splitlines()


def test_shipped_rules_pass() -> None:
    code, lines = _check(ROOT / "rules")
    assert code == 0, lines
    result = load_rules(ROOT / "rules")
    assert result.policies is not None
    p = result.policies
    assert lines == [
        f"OK: {len(result.files)} files, {len(p.signals)} signals, {len(p.services)} service "
        f"policies, {len(p.pools)} pools, {len(p.alerts)} alerts"
    ]


def test_shipped_rules_cover_the_stack() -> None:
    policies = load_rules(ROOT / "rules").policies
    assert policies is not None
    proxy = policies.services["shinyproxy"]
    assert (proxy.service, proxy.min, proxy.max) == ("shiny_shinyproxy", 1, 3)
    assert proxy.target_tracking[0].average_value == 150
    assert any(s.min is not None and s.min > proxy.min for s in proxy.schedules)
    api = policies.services["shiny_api"]
    rate = policies.signals[api.target_tracking[0].signal].prometheus
    assert rate is not None
    assert 'service="api@swarm"' in rate.query
    assert api.steps
    sources = {s.source for s in policies.signals.values()}
    assert sources == {"prometheus", "actuator", "influx", "swarm"}
    starts = [s for s in policies.signals.values() if s.influx is not None]
    assert [s.on_empty for s in starts] == ["zero"]


def test_invalid_prints_one_line_per_problem() -> None:
    folder = DATA / "bad_sets" / "signal_twice"
    code, lines = _check(folder)
    assert code == 1
    assert lines == [str(p) for p in load_rules(folder).problems]
    assert len(lines) == 1


def test_missing_path_fails(tmp_path: Path) -> None:
    code, lines = _check(ROOT / "rules", tmp_path / "nope")
    assert code == 1
    assert lines == [f"{tmp_path / 'nope'}: no such file or folder"]


def test_several_paths_are_one_set() -> None:
    split = DATA / "good_sets" / "split"
    assert _check(split / "20-services.yml")[0] == 1  # its signal is in the other file
    code, lines = _check(split / "10-signals.yml", split / "20-services.yml")
    assert (code, lines) == (0, ["OK: 2 files, 1 signals, 1 service policies, 0 pools, 0 alerts"])


def test_an_empty_folder_or_file_is_refused(tmp_path: Path) -> None:
    assert _check(tmp_path) == (1, [f"{tmp_path}: no rules files (*.yaml, *.yml) in the folder"])
    (tmp_path / "a.yml").write_text("# all commented out\n")
    empty = "the file is empty: write {} to keep an empty rules file on purpose"
    assert _check(tmp_path) == (1, [f"{tmp_path / 'a.yml'}:1: {empty}"])
    (tmp_path / "a.yml").write_text("{}\n")
    assert _check(tmp_path) == (
        0,
        ["OK: 1 files, 0 signals, 0 service policies, 0 pools, 0 alerts"],
    )
