"""Prometheus configuration and alert rules, checked by the real promtool.

Every alert has promtool unit tests (alerting/tests/) that show it firing and staying quiet,
every PromQL selector names a metric that exists (tests/data/metric_names.txt), and every
runbook link lands on a section of docs/monitoring.md. The "bites" tests feed promtool
broken copies to prove each check fails when it should.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from tests.realparts import missing_real_part

ROOT = Path(__file__).resolve().parents[1]
ALERTING = ROOT / "alerting"
PROMETHEUS_CONFIG = ALERTING / "prometheus.yml"
RULE_FILES = sorted((ALERTING / "rules").glob("*.yml"))
UNIT_TEST_FILES = sorted((ALERTING / "tests").glob("*.yml"))
MONITORING_DOC = ROOT / "docs" / "monitoring.md"
METRIC_NAMES = ROOT / "tests" / "data" / "metric_names.txt"
SEVERITIES = {"critical", "warning", "info", "none"}


# ---------------------------------------------------------------- helpers (also used by
# tests/test_dashboards.py)


def allowed_metric_names() -> set[str]:
    lines = METRIC_NAMES.read_text(encoding="utf-8").splitlines()
    return {ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")}


def _children(node: Any) -> list[Any]:
    out: list[Any] = []
    for attr in ("expr", "lhs", "rhs", "vector_selector", "param", "args"):
        child = getattr(node, attr, None)
        if isinstance(child, list):
            out.extend(child)
        elif child is not None:
            out.append(child)
    return out


def promql_metric_names(expr: str) -> set[str]:
    """Metric names of every selector in ``expr``; raises ValueError when it does not parse.

    A selector without a literal name (``{__name__=~"..."}``) yields ``"<regex>"`` so the
    caller's allow-list check reports it instead of letting it through.
    """
    names: set[str] = set()
    stack: list[Any] = [promql_parser.parse(expr)]
    while stack:
        node = stack.pop()
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            else:
                literal = [
                    m.value
                    for m in node.matchers.matchers
                    if m.name == "__name__"
                    and str(m.op).endswith("Equal")
                    and "Not" not in str(m.op)
                ]
                names.update(literal or ["<regex>"])
        stack.extend(_children(node))
    return names


def markdown_anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    anchors: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def _need(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        missing_real_part(f"{binary} not installed (apt-get install {package})")
    return path


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = _need("promtool", "prometheus")
    return subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def _rules() -> list[dict[str, Any]]:
    out = []
    for f in RULE_FILES:
        for group in yaml.safe_load(f.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                out.append({**rule, "_file": f.name})
    return out


def _alert_rules() -> list[dict[str, Any]]:
    return [r for r in _rules() if "alert" in r]


def _unit_test_cases() -> list[dict[str, Any]]:
    cases = []
    for f in UNIT_TEST_FILES:
        doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        for group in doc["tests"]:
            cases.extend(group.get("alert_rule_test", []))
    return cases


# ---------------------------------------------------------------- the real tools


def test_prometheus_config_passes_promtool_and_loads_every_rule_file() -> None:
    res = promtool("check", "config", PROMETHEUS_CONFIG)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(RULE_FILES)} rule files found" in res.stdout
    for f in RULE_FILES:
        assert f.name in res.stdout


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_rule_file_passes_promtool_check_rules(rule_file: Path) -> None:
    res = promtool("check", "rules", rule_file)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_rule_unit_tests_pass() -> None:
    assert UNIT_TEST_FILES, "no promtool unit tests in alerting/tests"
    res = promtool("test", "rules", *UNIT_TEST_FILES)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("SUCCESS") == len(UNIT_TEST_FILES), res.stdout


# ---------------------------------------------------------------- coverage and conventions


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    firing = {c["alertname"] for c in _unit_test_cases() if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in _unit_test_cases() if not c.get("exp_alerts")}
    alerts = {r["alert"] for r in _alert_rules()}
    assert sorted(alerts - firing) == [], "alerts without a unit test that fires them"
    # The Watchdog fires by design; every other alert must be shown to stay quiet too.
    assert sorted(alerts - quiet - {"Watchdog"}) == [], "alerts never shown to stay quiet"


def test_unit_tests_name_only_existing_alerts() -> None:
    # `exp_alerts: []` for an alert that was renamed would pass without testing anything.
    alerts = {r["alert"] for r in _alert_rules()}
    named = {c["alertname"] for c in _unit_test_cases()}
    assert sorted(named - alerts) == []


def test_unit_tests_load_the_shipped_rule_files() -> None:
    loaded: set[Path] = set()
    for f in UNIT_TEST_FILES:
        doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        for rel in doc["rule_files"]:
            path = (f.parent / rel).resolve()
            assert path.is_file(), f"{f.name}: {rel} does not exist"
            loaded.add(path)
    assert loaded == {p.resolve() for p in RULE_FILES}


def test_alert_names_are_unique() -> None:
    names = [r["alert"] for r in _alert_rules()]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_alerts_carry_routing_labels() -> None:
    # Checked on what promtool showed firing, so labels computed by the expression count.
    for case in _unit_test_cases():
        for exp in case.get("exp_alerts") or []:
            labels = exp["exp_labels"]
            where = f"{case['alertname']} at {case['eval_time']}"
            assert labels.get("severity") in SEVERITIES, where
            assert labels.get("service"), f"{where}: no service label to route by"
            assert labels.get("category"), where


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda r: r["alert"])
def test_alert_has_summary_description_and_runbook(rule: dict[str, Any]) -> None:
    ann = rule.get("annotations", {})
    assert ann.get("summary", "").strip()
    assert ann.get("description", "").strip()
    assert ann.get("runbook_url") == f"docs/monitoring.md#{rule['alert'].lower()}"
    assert rule.get("labels", {}).get("severity") in SEVERITIES


def test_every_runbook_link_lands_on_a_section_of_the_monitoring_doc() -> None:
    anchors = markdown_anchors(MONITORING_DOC)
    missing = [
        r["alert"]
        for r in _alert_rules()
        if r["annotations"]["runbook_url"].split("#", 1)[1] not in anchors
    ]
    assert missing == []


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r.get("alert") or r.get("record"))
def test_rule_queries_only_metrics_that_exist(rule: dict[str, Any]) -> None:
    unknown = promql_metric_names(rule["expr"]) - allowed_metric_names()
    assert unknown == set(), f"{rule['_file']}: not in tests/data/metric_names.txt"


# ---------------------------------------------------------------- the checks bite


def test_lint_rejects_metrics_from_tutorials_that_do_not_exist() -> None:
    allowed = allowed_metric_names()
    for expr in (
        "sum(proxiesRunning)",
        'histogram_quantile(0.9, rate(http_request_duration_seconds_bucket{job="shinyproxy"}[5m]))',
        '{__name__=~"app.*"}',
    ):
        assert promql_metric_names(expr) - allowed, expr
    with pytest.raises(ValueError):
        promql_metric_names("sum(rate(appStarts_total[5m])")


def _copy_alerting(tmp_path: Path) -> Path:
    dest = tmp_path / "alerting"
    shutil.copytree(ALERTING, dest)
    return dest


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}: update this test"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_promtool_rejects_a_rule_that_does_not_parse(tmp_path: Path) -> None:
    rules = _copy_alerting(tmp_path) / "rules" / "availability.yml"
    _edit(rules, 'up{job="shinyproxy"} == 0 or', 'up{job="shinyproxy"} == or')
    res = promtool("check", "rules", rules)
    assert res.returncode != 0
    assert "ShinyProxyDown" in res.stdout + res.stderr or "parse error" in res.stderr


def test_promtool_rejects_a_broken_annotation_template(tmp_path: Path) -> None:
    rules = _copy_alerting(tmp_path) / "rules" / "capacity.yml"
    _edit(
        rules,
        '"No free seat for app {{ $labels.spec_id }}"',
        '"No free seat for app {{ $labels.spec_id }"',
    )
    res = promtool("check", "rules", rules)
    assert res.returncode != 0, res.stdout


def test_unit_tests_fail_when_a_threshold_changes(tmp_path: Path) -> None:
    copy = _copy_alerting(tmp_path)
    _edit(copy / "rules" / "capacity.yml", ") > 30", ") > 60")
    res = promtool("test", "rules", copy / "tests" / "capacity_test.yml")
    assert res.returncode != 0
    assert "ShinyProxySlowAppStartup" in res.stdout + res.stderr


def test_unit_tests_fail_when_the_new_series_case_is_dropped(tmp_path: Path) -> None:
    # Without "or startFailed_total" the first failure of an app is never seen.
    copy = _copy_alerting(tmp_path)
    _edit(copy / "rules" / "capacity.yml", "            or startFailed_total\n", "")
    res = promtool("test", "rules", copy / "tests" / "capacity_test.yml")
    assert res.returncode != 0
    assert "ShinyProxyStartFailures" in res.stdout + res.stderr


def test_promtool_rejects_a_broken_relabel_regex(tmp_path: Path) -> None:
    config = _copy_alerting(tmp_path) / "prometheus.yml"
    _edit(config, "regex: (.+_)?cadvisor", "regex: (.+_?cadvisor")
    res = promtool("check", "config", config)
    assert res.returncode != 0


def test_promtool_rejects_a_config_whose_rules_are_broken(tmp_path: Path) -> None:
    copy = _copy_alerting(tmp_path)
    _edit(copy / "rules" / "resources.yml", "for: 15m", "for: fifteen minutes")
    res = promtool("check", "config", copy / "prometheus.yml")
    assert res.returncode != 0
