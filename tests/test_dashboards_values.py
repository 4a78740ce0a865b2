"""What single dashboard panels show for known series, evaluated by promtool.

tests/test_dashboards.py checks that every query parses and names metrics that exist; here
a panel's own PromQL runs on input series shaped as the stack exports them, and the values
it returns are compared with what the panel claims to show: a zero where nothing went
wrong, nothing (not a reassuring zero) where the exporter is not scraped, and each backend
server once however many Traefik instances report it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.test_alert_rules import promtool

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "grafana" / "dashboards"


def panel_expr(dashboard: str, title: str, ref: str = "A") -> str:
    """The panel's query with Grafana's variables filled in as for "All" and a 1m step."""
    doc = json.loads((DASHBOARDS / dashboard).read_text(encoding="utf-8"))
    panels = [p for row in doc["panels"] for p in [row, *row.get("panels", [])]]
    (expr,) = [
        t["expr"]
        for p in panels
        if p.get("title") == title
        for t in p.get("targets", [])
        if t.get("refId") == ref
    ]
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)\}?", "1m", str(expr))
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def evaluate(
    tmp_path: Path, expr: str, series: dict[str, str], expected: list[tuple[str, float]]
) -> None:
    """Runs ``expr`` at 10m on ``series`` (promtool notation, one sample a minute) and
    fails unless it returns exactly ``expected`` (labels, value)."""
    unit_test = {
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "10m",
                        "exp_samples": [{"labels": ls, "value": v} for ls, v in expected],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "panel_test.yml"
    path.write_text(yaml.safe_dump(unit_test), encoding="utf-8")
    res = promtool("test", "rules", path)
    assert res.returncode == 0, f"{expr}\n{res.stdout}{res.stderr}"


# ---------------------------------------------------------------- Capacity and autoscaler


def _sources(**up: int) -> dict[str, str]:
    return {
        f'autoscaler_source_up{{job="autoscaler", source="{name}"}}': f"{value}x12"
        for name, value in up.items()
    }


def test_sources_down_counts_the_sources_that_did_not_answer(tmp_path: Path) -> None:
    expr = panel_expr("capacity-autoscaler.json", "Sources down")
    evaluate(tmp_path, expr, _sources(swarm=1, prometheus=0, influx=0), [("{}", 2)])
    evaluate(tmp_path, expr, _sources(swarm=1, prometheus=1), [("{}", 0)])


def test_sources_down_shows_nothing_while_the_sidecar_is_not_scraped(tmp_path: Path) -> None:
    # With the sidecar down there is no autoscaler_source_up at all: a green "0 sources
    # down" would read a dead autoscaler as a healthy one.
    expr = panel_expr("capacity-autoscaler.json", "Sources down")
    evaluate(tmp_path, expr, {'up{job="autoscaler"}': "0x12"}, [])


# ---------------------------------------------------------------- Traefik


def traffic(per_second: int) -> dict[str, str]:
    """Two services behind Traefik, each sent ``per_second`` requests a second: shinyproxy
    only ever answered 200 (no 4xx or 5xx series exist for it), api answered 1 request in
    10 with a 500 and 2 in 10 with a 404."""
    in_ten = {
        ("shinyproxy@swarm", "200"): 10,
        ("api@swarm", "200"): 7,
        ("api@swarm", "404"): 2,
        ("api@swarm", "500"): 1,
    }
    return {
        f'traefik_service_requests_total{{service="{svc}", code="{code}"}}': (
            f"0+{n * per_second * 6}x12"  # a sample a minute
        )
        for (svc, code), n in in_ten.items()
    }


TRAFFIC = traffic(10)
SHINYPROXY = '{service="shinyproxy@swarm"}'
API = '{service="api@swarm"}'


def test_5xx_share_is_zero_for_a_service_without_server_errors(tmp_path: Path) -> None:
    expr = panel_expr("traefik.json", "5xx share")
    evaluate(tmp_path, expr, TRAFFIC, [(SHINYPROXY, 0), (API, 0.1)])


def test_5xx_by_service_is_zero_for_a_service_without_server_errors(tmp_path: Path) -> None:
    expr = panel_expr("traefik.json", "5xx by service")
    evaluate(tmp_path, expr, TRAFFIC, [(SHINYPROXY, 0), (API, 1)])


def test_4xx_by_service_is_zero_for_a_service_without_client_errors(tmp_path: Path) -> None:
    expr = panel_expr("traefik.json", "4xx by service")
    evaluate(tmp_path, expr, TRAFFIC, [(SHINYPROXY, 0), (API, 2)])


def test_5xx_share_shows_nothing_for_a_service_without_requests(tmp_path: Path) -> None:
    # a service that served nothing has no share to show (not a 0 % that looks healthy)
    evaluate(tmp_path, panel_expr("traefik.json", "5xx share"), traffic(0), [])


def _server_up(instance: str, url: str, value: int) -> tuple[str, str]:
    labels = f'instance="{instance}", service="shinyproxy@swarm", url="{url}"'
    return f"traefik_service_server_up{{{labels}}}", f"{value}x12"


def test_servers_up_counts_each_server_once_whatever_the_traefik_instances(
    tmp_path: Path,
) -> None:
    # Traefik runs on every manager and each instance health-checks every server itself,
    # so each server is reported once per instance.
    series = dict(
        [
            _server_up("manager-1:8082", "http://10.0.1.5:8080", 1),
            _server_up("manager-2:8082", "http://10.0.1.5:8080", 1),
            _server_up("manager-3:8082", "http://10.0.1.5:8080", 1),
            _server_up("manager-1:8082", "http://10.0.1.6:8080", 1),
            _server_up("manager-2:8082", "http://10.0.1.6:8080", 1),
            _server_up("manager-3:8082", "http://10.0.1.6:8080", 1),
        ]
    )
    evaluate(tmp_path, panel_expr("traefik.json", "Servers up"), series, [(SHINYPROXY, 2)])


def test_servers_up_counts_a_server_one_instance_finds_down_as_down(tmp_path: Path) -> None:
    series = dict(
        [
            _server_up("manager-1:8082", "http://10.0.1.5:8080", 1),
            _server_up("manager-2:8082", "http://10.0.1.5:8080", 1),
            _server_up("manager-1:8082", "http://10.0.1.6:8080", 1),
            _server_up("manager-2:8082", "http://10.0.1.6:8080", 0),
        ]
    )
    evaluate(tmp_path, panel_expr("traefik.json", "Servers up"), series, [(SHINYPROXY, 1)])


def test_panel_expr_fills_in_the_variables() -> None:
    expr = panel_expr("traefik.json", "5xx share")
    assert "$" not in expr and 'service=~".*"' in expr and "[1m]" in expr
