"""The stack's Alertmanager configuration, checked by amtool and a real Alertmanager.

amtool validates the file, answers "which receivers get this label set" for a table of
alerts, and renders the notification templates. A real Alertmanager (loopback only, every
destination rewritten to a closed local port) shows inhibition working as configured.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from autoscaler.lab.backends import Backend, start_alertmanager
from tests.realparts import missing_real_part

ROOT = Path(__file__).resolve().parents[1]
ALERTING = ROOT / "alerting"
CONFIG = ALERTING / "alertmanager.yml"
TEMPLATES = ALERTING / "templates"
STACK = ROOT / "stack.yml"

# label set -> receivers, in the order amtool reports them
ROUTES = [
    ({"alertname": "Watchdog", "severity": "none", "service": "monitoring"}, ["blackhole"]),
    (
        {
            "alertname": "ShinyProxyDown",
            "severity": "critical",
            "service": "shinyproxy",
            "category": "availability",
        },
        ["oncall"],
    ),
    (
        {
            "alertname": "SwarmNodeDown",
            "severity": "critical",
            "service": "node",
            "category": "capacity",
            "node": "worker-1",
        },
        ["autoscaler", "oncall"],
    ),
    (
        {
            "alertname": "ShinyProxyStartFailures",
            "severity": "warning",
            "service": "shinyproxy",
            "category": "capacity",
            "spec_id": "euler",
        },
        ["autoscaler", "slack-apps"],
    ),
    (
        {
            "alertname": "PoolHeadroomShort",
            "severity": "warning",
            "service": "autoscaler",
            "category": "capacity",
            "pool": "shiny",
        },
        ["autoscaler", "slack-platform"],
    ),
    (
        {
            "alertname": "NodeHighCpu",
            "severity": "warning",
            "service": "node",
            "category": "resources",
        },
        ["slack-platform"],
    ),
    (
        {
            "alertname": "CadvisorDown",
            "severity": "warning",
            "service": "containers",
            "category": "availability",
            "node": "worker-1",
        },
        ["slack-platform"],
    ),
    (
        {
            "alertname": "SwarmDiscoveryFailing",
            "severity": "critical",
            "service": "prometheus",
            "category": "availability",
        },
        ["oncall"],
    ),
    (
        {
            "alertname": "AutoscalerSourceDown",
            "severity": "warning",
            "service": "autoscaler",
            "category": "autoscaler",
        },
        ["slack-platform"],
    ),
    (
        {
            "alertname": "TraefikHighServerErrorRate",
            "severity": "warning",
            "service": "api",
            "category": "availability",
        },
        ["slack-apps"],
    ),
    (
        {
            "alertname": "TraefikAuthFailureBurst",
            "severity": "warning",
            "service": "shinyproxy",
            "category": "security",
        },
        ["slack-apps"],
    ),
]

# Keys that would hold a secret in the file itself; the stack reads every secret from a file.
PLAINTEXT_SECRET_KEYS = {
    "api_url",
    "slack_api_url",
    "auth_password",
    "smtp_auth_password",
    "credentials",
    "password",
    "bearer_token",
}


def amtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("amtool")
    if exe is None:
        missing_real_part("amtool not installed (apt-get install prometheus-alertmanager)")
    return subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def _config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return loaded


def _walk(node: Any, path: str = "") -> list[tuple[str, str, Any]]:
    out: list[tuple[str, str, Any]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((f"{path}.{k}", str(k), v))
            out.extend(_walk(v, f"{path}.{k}"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_walk(v, f"{path}[{i}]"))
    return out


# ---------------------------------------------------------------- amtool


def test_amtool_accepts_the_config_and_finds_the_templates() -> None:
    res = amtool("check-config", CONFIG)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 templates" in res.stdout
    assert "SUCCESS" in res.stdout


@pytest.mark.parametrize(("labels", "receivers"), ROUTES, ids=[r[0]["alertname"] for r in ROUTES])
def test_routing(labels: dict[str, str], receivers: list[str]) -> None:
    res = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={','.join(receivers)}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_receiver_is_used_by_a_route() -> None:
    defined = {r["name"] for r in _config()["receivers"]}
    routed = {name for _, receivers in ROUTES for name in receivers}
    assert defined == routed


def test_routing_check_bites() -> None:
    labels = ROUTES[1][0]
    res = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        "--verify.receivers=slack-apps",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert res.returncode != 0


def test_amtool_rejects_a_route_to_an_undefined_receiver(tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    shutil.copytree(TEMPLATES, tmp_path / "templates")
    text = CONFIG.read_text(encoding="utf-8")
    assert "  receiver: slack-apps\n" in text
    broken.write_text(text.replace("  receiver: slack-apps\n", "  receiver: nobody\n", 1))
    res = amtool("check-config", broken)
    assert res.returncode != 0
    assert "nobody" in res.stdout + res.stderr


def test_amtool_rejects_an_unknown_field(tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    shutil.copytree(TEMPLATES, tmp_path / "templates")
    text = CONFIG.read_text(encoding="utf-8")
    broken.write_text(text.replace("auth_password_file:", "auth_pasword_file:"))
    res = amtool("check-config", broken)
    assert res.returncode != 0


# ---------------------------------------------------------------- secrets


def test_no_secret_is_written_in_the_config() -> None:
    found = [path for path, key, _ in _walk(_config()) if key in PLAINTEXT_SECRET_KEYS]
    assert found == []


def test_secret_files_are_docker_secrets_of_the_alertmanager_service() -> None:
    files = {
        str(value)
        for _, key, value in _walk(_config())
        if key.endswith("_file") and isinstance(value, str)
    }
    assert files, "expected *_file settings for the Slack URL, SMTP password and token"
    stack = yaml.safe_load(STACK.read_text(encoding="utf-8"))
    mounted = {f"/run/secrets/{s}" for s in stack["services"]["alertmanager"]["secrets"]}
    assert files <= mounted
    assert {
        "/run/secrets/slack_webhook_url",
        "/run/secrets/smtp_password",
        "/run/secrets/autoscaler_webhook_token",
    } <= files


def test_inhibition_compares_labels() -> None:
    rules = _config()["inhibit_rules"]
    assert rules and all(r.get("equal") for r in rules)
    assert any(
        r["source_matchers"][0] == 'severity = "critical"'
        and r["target_matchers"] == ['severity = "warning"']
        for r in rules
    )


# ---------------------------------------------------------------- templates


def _template_data(status: str, severity: str) -> dict[str, Any]:
    labels = {
        "alertname": "SwarmNodeDown",
        "severity": severity,
        "service": "node",
        "node": "worker-1",
    }
    alert = {
        "status": status,
        "labels": labels,
        "annotations": {
            "summary": "Node worker-1 is down",
            "description": "Node worker-1 has not answered for 2 minutes.",
            "runbook_url": "docs/monitoring.md#swarmnodedown",
        },
        "startsAt": "2026-11-22T03:04:05Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": "f1",
    }
    return {
        "receiver": "oncall",
        "status": status,
        "alerts": [alert],
        "groupLabels": {"alertname": "SwarmNodeDown"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
    }


def _render(tmp_path: Path, text: str, data: dict[str, Any]) -> str:
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data))
    res = amtool(
        "template",
        "render",
        f"--template.glob={TEMPLATES}/*.tmpl",
        f"--template.data={data_file}",
        f"--template.text={text}",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_slack_template_renders_a_firing_critical_alert(tmp_path: Path) -> None:
    data = _template_data("firing", "critical")
    assert _render(tmp_path, '{{ template "shiny.slack.color" . }}', data).strip() == "danger"
    title = _render(tmp_path, '{{ template "shiny.slack.title" . }}', data).strip()
    assert title == "[FIRING:1] SwarmNodeDown (node)"
    body = _render(tmp_path, '{{ template "shiny.slack.text" . }}', data)
    assert "*Node worker-1 is down*" in body
    assert "Node worker-1 has not answered for 2 minutes." in body
    assert "Node: worker-1" in body
    assert "Since: 2026-11-22 03:04 UTC" in body
    assert "Runbook: docs/monitoring.md#swarmnodedown" in body


def test_templates_render_a_resolved_alert(tmp_path: Path) -> None:
    data = _template_data("resolved", "critical")
    assert _render(tmp_path, '{{ template "shiny.slack.color" . }}', data).strip() == "good"
    assert _render(tmp_path, '{{ template "shiny.email.subject" . }}', data).strip() == (
        "[RESOLVED] SwarmNodeDown (node)"
    )
    html = _render(tmp_path, '{{ template "shiny.email.html" . }}', data)
    assert "<h3>Node worker-1 is down (resolved)</h3>" in html
    text = _render(tmp_path, '{{ template "shiny.email.text" . }}', data)
    assert "Severity: critical  Service: node" in text


def test_every_template_the_config_uses_is_defined() -> None:
    used = set()
    for _, _, value in _walk(_config()):
        if isinstance(value, str) and "{{ template" in value:
            used.add(value.split('"')[1])
    defined = set()
    for line in (TEMPLATES / "shiny.tmpl").read_text(encoding="utf-8").splitlines():
        if '{{ define "' in line:
            defined.add(line.split('"')[1])
    assert used and used <= defined


# ---------------------------------------------------------------- a real Alertmanager


def _loopback_config(directory: Path) -> str:
    """The shipped config with every destination on a closed loopback port."""
    closed = "127.0.0.1:9"
    for name, content in (
        ("slack_webhook_url", f"http://{closed}/slack"),
        ("smtp_password", "not-a-password"),
        ("autoscaler_webhook_token", "token"),
    ):
        (directory / name).write_text(content)
    text = CONFIG.read_text(encoding="utf-8").replace("/run/secrets/", f"{directory}/")
    text = text.replace("smtp.example.com:587", closed)
    text = text.replace("http://autoscaler:8080/", f"http://{closed}/")
    assert "example.com:" not in text and "autoscaler:8080" not in text
    shutil.copytree(TEMPLATES, directory / "templates")
    return text


@pytest.fixture
def alertmanager(tmp_path: Path) -> Any:
    if shutil.which("prometheus-alertmanager") is None:
        missing_real_part(
            "prometheus-alertmanager not installed (apt-get install prometheus-alertmanager)"
        )
    backend: Backend | None = None
    try:
        backend = start_alertmanager(tmp_path, _loopback_config(tmp_path))
        yield backend
    finally:
        if backend is not None:
            backend.stop()


def _post(url: str, alerts: list[dict[str, str]]) -> None:
    now = datetime.now(UTC).isoformat()
    body = [
        {"labels": a, "annotations": {"summary": a["alertname"]}, "startsAt": now} for a in alerts
    ]
    requests.post(f"{url}/api/v2/alerts", json=body, timeout=5).raise_for_status()


def _states(url: str, expected: int, timeout: float = 15.0) -> dict[tuple[str, str], Any]:
    deadline = time.monotonic() + timeout
    while True:
        alerts = requests.get(f"{url}/api/v2/alerts", timeout=5).json()
        states = {(a["labels"]["alertname"], a["labels"].get("node", "")): a for a in alerts}
        settled = all(a["status"]["state"] != "unprocessed" for a in alerts)
        if (len(states) == expected and settled) or time.monotonic() > deadline:
            return states
        time.sleep(0.2)


@pytest.mark.real
def test_a_real_alertmanager_inhibits_warnings_of_the_same_service_and_node(
    alertmanager: Backend,
) -> None:
    _post(
        alertmanager.url,
        [
            {"alertname": "ShinyProxyDown", "severity": "critical", "service": "shinyproxy"},
            {
                "alertname": "ShinyProxyStartFailures",
                "severity": "warning",
                "service": "shinyproxy",
                "category": "capacity",
                "spec_id": "euler",
            },
            {"alertname": "TraefikHighServerErrorRate", "severity": "warning", "service": "api"},
            {
                "alertname": "SwarmNodeDown",
                "severity": "critical",
                "service": "node",
                "node": "worker-1",
            },
            {
                "alertname": "NodeMemoryExhausted",
                "severity": "critical",
                "service": "node",
                "node": "worker-1",
            },
            {
                "alertname": "NodeHighCpu",
                "severity": "warning",
                "service": "node",
                "node": "worker-2",
            },
        ],
    )
    deadline = time.monotonic() + 15
    while True:
        states = _states(alertmanager.url, expected=6)
        suppressed = {k for k, a in states.items() if a["status"]["state"] == "suppressed"}
        if len(suppressed) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert suppressed == {("ShinyProxyStartFailures", ""), ("NodeMemoryExhausted", "worker-1")}
    for key in (
        ("ShinyProxyDown", ""),
        ("TraefikHighServerErrorRate", ""),
        ("SwarmNodeDown", "worker-1"),
        ("NodeHighCpu", "worker-2"),
    ):
        assert states[key]["status"]["state"] == "active", key
        assert states[key]["status"]["inhibitedBy"] == []
    receivers = {r["name"] for r in states[("ShinyProxyStartFailures", "")]["receivers"]}
    assert receivers == {"autoscaler", "slack-apps"}


@pytest.mark.real
def test_a_full_pool_mutes_its_short_headroom_but_not_the_autoscalers_own_warnings(
    alertmanager: Backend,
) -> None:
    """A full pool is a symptom: the autoscaler's failing actions or a source down may be
    its cause, and must reach someone."""
    autoscaler = {"service": "autoscaler", "severity": "warning"}
    full = {**autoscaler, "alertname": "PoolSeatsExhausted", "severity": "critical"}
    _post(
        alertmanager.url,
        [
            {**full, "pool": "web"},
            {**autoscaler, "alertname": "PoolHeadroomShort", "pool": "web"},
            {**autoscaler, "alertname": "PoolHeadroomShort", "pool": "gpu"},
            {**autoscaler, "alertname": "AutoscalerActionsFailing"},
            {**autoscaler, "alertname": "AutoscalerSourceDown", "source": "influx"},
        ],
    )

    def suppressed() -> set[tuple[str, str]]:
        alerts = requests.get(f"{alertmanager.url}/api/v2/alerts", timeout=5).json()
        assert len(alerts) == 5
        assert all(a["status"]["state"] != "unprocessed" for a in alerts)
        return {
            (a["labels"]["alertname"], a["labels"].get("pool", ""))
            for a in alerts
            if a["status"]["state"] == "suppressed"
        }

    deadline = time.monotonic() + 15
    while True:
        try:
            found = suppressed()
        except AssertionError:
            found = set()
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    time.sleep(1)  # a wrong suppression would show by now too
    assert suppressed() == {("PoolHeadroomShort", "web")}
