"""Alerting with real backends: forwarding to a real Alertmanager, PromQL alert rules on a
real Prometheus (one alert per series), and the shipped example routed like amtool does."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from autoscaler.alerts.config import AlertmanagerForward, AlertRule
from autoscaler.alerts.manager import Alerting
from autoscaler.alerts.model import Alert, Notification
from autoscaler.alerts.receivers.alertmanager import AlertmanagerIntegration
from autoscaler.lab.backends import Backend, start_alertmanager
from autoscaler.loop import PassResult
from autoscaler.rules.schema import Policies
from autoscaler.sources.errors import QueryRejected, SourceError
from autoscaler.sources.prometheus import PrometheusClient
from tests.fixtures_backends import PrometheusLab, need_binary
from tests.realparts import missing_real_part

ROOT = Path(__file__).resolve().parent.parent

AM_CONFIG = """
route:
  receiver: blackhole
  group_wait: 1h
receivers:
  - name: blackhole
"""


@pytest.fixture
def alertmanager() -> Iterator[Backend]:
    need_binary("prometheus-alertmanager", "prometheus-alertmanager")
    folder = Path(tempfile.mkdtemp(prefix="test-alertmanager-"))
    backend = start_alertmanager(folder, AM_CONFIG)
    try:
        yield backend
    finally:
        backend.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _notification(alerts: tuple[Alert, ...], now: dt.datetime, status: str) -> Notification:
    return Notification(
        receiver="am",
        group_key="k",
        status=status,
        alerts=alerts,
        group_labels={},
        common_labels={},
        common_annotations={},
        external_url="",
        now=now,
        repeat_interval=dt.timedelta(minutes=10),
    )


def _active(url: str) -> list[dict[str, Any]]:
    resp = requests.get(f"{url}/api/v2/alerts", params={"active": "true"}, timeout=5)
    resp.raise_for_status()
    return [a for a in resp.json() if a["status"]["state"] == "active"]


def _wait(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_alerts_are_forwarded_to_a_real_alertmanager(alertmanager: Backend) -> None:
    now = dt.datetime.now(dt.UTC)
    alert = Alert(
        {"alertname": "AutoscalerSourceDown", "backend": "influx", "severity": "warning"},
        {"summary": "Backend influx does not answer"},
        starts_at=now,
    )
    integ = AlertmanagerIntegration(AlertmanagerForward(url=alertmanager.url))
    integ.send(_notification((alert,), now, "firing"))
    active = _wait(lambda: _active(alertmanager.url))
    assert len(active) == 1
    assert active[0]["labels"] == alert.labels
    assert active[0]["annotations"] == alert.annotations
    ends = dt.datetime.fromisoformat(active[0]["endsAt"].replace("Z", "+00:00"))
    assert ends - now >= dt.timedelta(minutes=29)  # three repeat intervals ahead

    # Resolved a moment ago (an endsAt still ahead would not win over the earlier one).
    later = dt.datetime.now(dt.UTC)
    done = Alert(alert.labels, alert.annotations, starts_at=now, ends_at=later)
    integ.send(_notification((done,), later, "resolved"))
    assert _wait(lambda: not _active(alertmanager.url))


def test_a_down_alertmanager_is_a_delivery_error_not_silence() -> None:
    from autoscaler.alerts.dispatch import DeliveryError

    now = dt.datetime.now(dt.UTC)
    integ = AlertmanagerIntegration(
        AlertmanagerForward(url="http://127.0.0.1:9"), attempts=2, sleep=lambda s: None
    )
    with pytest.raises(DeliveryError, match="connection refused"):
        integ.send(_notification((Alert({"alertname": "X"}, starts_at=now),), now, "firing"))


@pytest.mark.real
def test_promql_rule_yields_one_alert_per_series(prometheus: PrometheusLab) -> None:
    query = PrometheusClient(prometheus.url, 10.0)
    rows = query.query_vector('up{job="shinyproxy"} == 1 or vector(2)')
    assert sorted(v for _, v in rows) == [1.0, 2.0]
    policies = Policies(
        alerts={
            "TargetUp": AlertRule.model_validate(
                {
                    "expr": 'up{job="shinyproxy"} == 1 '
                    'or label_replace(vector(1), "job", "other", "", "")',
                    "severity": "info",
                    "annotations": {"summary": "{{ $labels.job }} is {{ $value }}"},
                }
            ),
        }
    )
    alerting = Alerting(prometheus=query)
    alerting.configure(policies)
    alerting.after_pass(PassResult("t", True, 0.0))
    firing = sorted(
        (a["labels"]["job"], a["annotations"]["summary"], a["state"])
        for a in alerting.list_alerts()
        if a["labels"]["alertname"] == "TargetUp"
    )
    assert firing == [
        ("other", "other is 1", "firing"),
        ("shinyproxy", "shinyproxy is 1", "firing"),
    ]
    with pytest.raises(SourceError, match="prometheus"):
        PrometheusClient(prometheus.url, 10.0).query_vector("rate(up[")


def test_promql_rule_keeps_its_state_while_prometheus_is_down() -> None:
    alerting = Alerting(prometheus=PrometheusClient("http://127.0.0.1:9", timeout=1))
    alerting.configure(Policies(alerts={"X": AlertRule.model_validate({"expr": "up"})}))
    alerting.after_pass(PassResult("t", True, 0.0))
    assert [a for a in alerting.list_alerts() if a["labels"]["alertname"] == "X"] == []
    # no signal reads Prometheus here: the failed rule itself reports it down
    (down,) = [a for a in alerting.list_alerts() if a["labels"].get("backend") == "prometheus"]
    assert down["labels"]["alertname"] == "AutoscalerSourceDown"
    assert down["state"] == "pending" and "refused" in down["annotations"]["error"]


class RejectingPrometheus:
    def query_vector(self, promql: str) -> list[tuple[dict[str, str], float]]:
        raise QueryRejected("prometheus", "expected an instant vector, got matrix")


def test_a_rejected_promql_rule_does_not_report_prometheus_down() -> None:
    alerting = Alerting(prometheus=RejectingPrometheus())
    alerting.configure(Policies(alerts={"X": AlertRule.model_validate({"expr": "up[5m]"})}))
    alerting.after_pass(PassResult("t", True, 0.0))
    assert [a["labels"]["alertname"] for a in alerting.list_alerts()] == []


def test_shipped_example_routes_like_amtool(tmp_path: Path) -> None:
    if shutil.which("amtool") is None:
        missing_real_part("amtool not installed (apt-get install prometheus-alertmanager)")
    data = yaml.safe_load((ROOT / "rules" / "alerts.yml").read_text(encoding="utf-8"))
    am = tmp_path / "alertmanager.yml"
    am.write_text(
        yaml.safe_dump(
            {k: data[k] for k in ("route", "receivers", "inhibit_rules", "time_intervals")}
        )
    )
    for labels in (["severity=critical", "alertname=X"], ["severity=info"], ["severity=warning"]):
        ours = subprocess.run(
            [
                "python",
                "-m",
                "autoscaler",
                "alerts",
                "test-route",
                "--config",
                str(ROOT / "rules" / "alerts.yml"),
                *labels,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        theirs = subprocess.run(
            ["amtool", "config", "routes", "test", f"--config.file={am}", *labels],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert ours == theirs, labels
