"""The messages of the PromQL alert shipped in rules/alerts.yml say what the expression means.

The sidecar sends an ``expr`` rule's PromQL to Prometheus and renders the annotations with
the answer's value, as Prometheus would. promtool evaluates the shipped expression on
Traefik counters where 6 % of the requests fail and renders the shipped summary; the
sidecar's own renderer must print the same text for that value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from autoscaler.alerts.evaluate import RuleSpec, Sample, render_annotations
from tests.test_alert_rules import promtool

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_ALERTS = ROOT / "rules" / "alerts.yml"

# 94 answers a second and 6 errors: 6 % fail. A quiet service fails half of its two
# requests a minute: too little traffic for the critical alert.
TRAEFIK_SERIES = [
    ('traefik_service_requests_total{service="api@swarm", code="200"}', "0+5640x30"),
    ('traefik_service_requests_total{service="api@swarm", code="502"}', "0+360x30"),
    ('traefik_service_requests_total{service="quiet@swarm", code="200"}', "0+1x30"),
    ('traefik_service_requests_total{service="quiet@swarm", code="502"}', "0+1x30"),
]
EXPECTED_SUMMARY = "api@swarm: 6.0 % of requests fail"


def _shipped(name: str) -> dict[str, Any]:
    rule: dict[str, Any] = yaml.safe_load(SHIPPED_ALERTS.read_text(encoding="utf-8"))["alerts"][
        name
    ]
    return rule


def test_api_errors_summary_prints_the_share_of_failed_requests(tmp_path: Path) -> None:
    rule = _shipped("ApiErrorsHigh")
    rules = {
        "groups": [
            {
                "name": "shipped",
                "rules": [
                    {
                        "alert": "ApiErrorsHigh",
                        "expr": rule["expr"],
                        "for": rule["for"],
                        "annotations": rule["annotations"],
                    }
                ],
            }
        ]
    }
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    unit_test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in TRAEFIK_SERIES],
                "promql_expr_test": [
                    {
                        "expr": rule["expr"],
                        "eval_time": "20m",
                        "exp_samples": [{"labels": '{service="api@swarm"}', "value": 6}],
                    }
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "20m",
                        "alertname": "ApiErrorsHigh",
                        "exp_alerts": [
                            {
                                "exp_labels": {"service": "api@swarm"},
                                "exp_annotations": {"summary": EXPECTED_SUMMARY},
                            }
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "api_errors_test.yml"
    path.write_text(yaml.safe_dump(unit_test), encoding="utf-8")
    res = promtool("test", "rules", path)
    assert res.returncode == 0, res.stdout + res.stderr

    spec = RuleSpec(name="ApiErrorsHigh", annotations=rule["annotations"])
    sample = Sample(labels={"service": "api@swarm"}, value=6.0)
    assert render_annotations(spec, sample)["summary"] == EXPECTED_SUMMARY
