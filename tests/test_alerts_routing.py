"""Routing parity: our receivers for a label set equal what ``amtool config routes test`` says.

The trees include Alertmanager's own routing test cases (dispatch/route_test.go).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from autoscaler.alerts.config import RoutingConfig, load_routing_file
from autoscaler.alerts.matchers import parse_matchers
from autoscaler.alerts.routing import Route, receivers_for
from tests.realparts import missing_real_part

AM_ROUTE_MATCH = """
receiver: 'notify-def'
routes:
- match:
    owner: 'team-A'
  receiver: 'notify-A'
  routes:
  - match:
      env: 'testing'
    receiver: 'notify-testing'
    group_by: [...]
  - match:
      env: "production"
    receiver: 'notify-productionA'
    group_wait: 1m
    continue: true
  - match_re:
      env: "produ.*"
      job: ".*"
    receiver: 'notify-productionB'
    group_wait: 30s
    group_interval: 5m
    repeat_interval: 1h
    group_by: ['job']
- match_re:
    owner: 'team-(B|C)'
  group_by: ['foo', 'bar']
  group_wait: 2m
  receiver: 'notify-BC'
- match:
    group_by: 'role'
  group_by: ['role']
  routes:
  - match:
      env: 'testing'
    receiver: 'notify-testing'
    routes:
    - match:
        wait: 'long'
      group_wait: 2m
"""

AM_ROUTE_MATCHERS = """
receiver: 'notify-def'
routes:
- matchers: ['{owner="team-A"}', '{level!="critical"}']
  receiver: 'notify-A'
  routes:
  - matchers: ['{env="testing"}', '{baz!~".*quux"}']
    receiver: 'notify-testing'
    group_by: [...]
  - matchers: ['{env="production"}']
    receiver: 'notify-productionA'
    group_wait: 1m
    continue: true
  - matchers: [ env=~"produ.*", job=~".*"]
    receiver: 'notify-productionB'
    group_wait: 30s
    group_interval: 5m
    repeat_interval: 1h
    group_by: ['job']
- matchers: [owner=~"team-(B|C)"]
  group_by: ['foo', 'bar']
  group_wait: 2m
  receiver: 'notify-BC'
- matchers: [group_by="role"]
  group_by: ['role']
  routes:
  - matchers: ['{env="testing"}']
    receiver: 'notify-testing'
    routes:
    - matchers: [wait="long"]
      group_wait: 2m
"""

AM_ROUTE_MATCHERS_AND_MATCH = """
receiver: 'notify-def'
routes:
- matchers: ['{owner="team-A"}', '{level!="critical"}']
  receiver: 'notify-A'
  routes:
  - matchers: ['{env="testing"}', '{baz!~".*quux"}']
    receiver: 'notify-testing'
    group_by: [...]
  - match:
      env: "production"
    receiver: 'notify-productionA'
    group_wait: 1m
    continue: true
  - matchers: [ env=~"produ.*", job=~".*"]
    receiver: 'notify-productionB'
    group_wait: 30s
    group_interval: 5m
    repeat_interval: 1h
    group_by: ['job']
- match_re:
    owner: 'team-(B|C)'
  group_by: ['foo', 'bar']
  group_wait: 2m
  receiver: 'notify-BC'
- matchers: [group_by="role"]
  group_by: ['role']
  routes:
  - matchers: ['{env="testing"}']
    receiver: 'notify-testing'
    routes:
    - matchers: [wait="long"]
      group_wait: 2m
"""

# Our own: continue chains at several depths, negative and regex matchers on missing
# labels, anchoring (a regex that would match a substring must not), a child without
# a receiver, and the same receiver reached twice.
CONTINUE_AND_NEGATIVES = """
receiver: ops
group_by: [alertname]
routes:
- matchers: [severity=~"crit|critical"]
  receiver: pager
  continue: true
  routes:
  - matchers: [team="db"]
    receiver: db-pager
    continue: true
  - matchers: [team=~"d."]
    receiver: db-chat
- matchers: [team!="web"]
  receiver: chat
  continue: true
  routes:
  - matchers: [service!~"shiny.*"]
    receiver: infra
  - matchers: [service=~"shiny"]
- match_re:
    service: "proxy"
  receiver: proxy-team
- matchers: [env=""]
  receiver: no-env
  continue: true
- receiver: ops
  matchers: [alertname=~".+"]
  continue: true
- receiver: chat
"""

TREES = {
    "am_route_match": AM_ROUTE_MATCH,
    "am_route_matchers": AM_ROUTE_MATCHERS,
    "am_route_matchers_and_match": AM_ROUTE_MATCHERS_AND_MATCH,
    "continue_and_negatives": CONTINUE_AND_NEGATIVES,
}

LABEL_SETS = [
    {},
    {"owner": "team-A"},
    {"owner": "team-A", "env": "unset"},
    {"owner": "team-C"},
    {"owner": "team-A", "env": "testing"},
    {"owner": "team-A", "env": "production"},
    {"owner": "team-A", "env": "production", "level": "critical"},
    {"owner": "team-A", "env": "testing", "baz": "fooquux"},
    {"owner": "xteam-B"},
    {"group_by": "role"},
    {"env": "testing", "group_by": "role"},
    {"env": "testing", "group_by": "role", "wait": "long"},
    {"severity": "crit", "team": "db"},
    {"severity": "critical", "team": "dx", "service": "shiny-app"},
    {"severity": "warning", "team": "web", "service": "proxy"},
    {"severity": "warning", "team": "web", "service": "myproxy"},
    {"team": "web", "env": "prod"},
    {"team": "web", "env": "prod", "alertname": "X"},
    {"service": "shiny"},
    {"service": "shinyproxy", "team": "ops"},
]


def _receiver_names(route: dict[str, object]) -> set[str]:
    names = {str(route["receiver"])} if route.get("receiver") else set()
    for child in route.get("routes") or []:  # type: ignore[attr-defined]
        names |= _receiver_names(child)
    return names


def _write(tmp_path: Path, name: str, tree_yaml: str) -> Path:
    route = yaml.safe_load(tree_yaml)
    doc = {"route": route, "receivers": [{"name": n} for n in sorted(_receiver_names(route))]}
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _args(labels: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in labels.items()]


def _amtool(path: Path, labels: dict[str, str]) -> str:
    out = subprocess.run(
        ["amtool", "config", "routes", "test", f"--config.file={path}", *_args(labels)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def amtool() -> None:
    if shutil.which("amtool") is None:
        missing_real_part("amtool not installed (apt-get install prometheus-alertmanager)")


@pytest.mark.parametrize("tree", sorted(TREES))
def test_receivers_equal_amtool(amtool: None, tmp_path: Path, tree: str) -> None:
    path = _write(tmp_path, tree, TREES[tree])
    root = Route.build(load_routing_file(path).route)
    seen = set()
    for labels in LABEL_SETS:
        ours = ",".join(receivers_for(root, labels))
        assert ours == _amtool(path, labels), f"{tree} {labels}"
        seen.add(ours)
    assert len(seen) >= 3, "the label sets must exercise several branches of the tree"


def test_cli_prints_what_amtool_prints(amtool: None, tmp_path: Path) -> None:
    path = _write(tmp_path, "cli", AM_ROUTE_MATCH)
    labels = {"owner": "team-A", "env": "production"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "autoscaler",
            "alerts",
            "test-route",
            "--config",
            str(path),
            *_args(labels),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout == _amtool(path, labels) + "\n"
    assert out.stdout == "notify-productionA,notify-productionB\n"


def test_options_are_inherited_like_alertmanager() -> None:
    """Route options from AM's TestRouteMatch expectations (not only the receiver)."""
    root = Route.build(
        RoutingConfig.model_validate(
            {
                "route": yaml.safe_load(AM_ROUTE_MATCH),
                "receivers": [{"name": n} for n in _receiver_names(yaml.safe_load(AM_ROUTE_MATCH))],
            }
        ).route
    )
    bc = root.match({"owner": "team-C"})[0].opts
    assert (bc.receiver, bc.group_by, bc.group_wait) == (
        "notify-BC",
        frozenset({"foo", "bar"}),
        timedelta(minutes=2),
    )
    assert bc.group_interval == timedelta(minutes=5) and bc.repeat_interval == timedelta(hours=4)
    testing = root.match({"owner": "team-A", "env": "testing"})[0].opts
    assert testing.group_by_all and testing.group_by == frozenset()
    a, b = (r.opts for r in root.match({"owner": "team-A", "env": "production"}))
    assert a.group_wait == timedelta(minutes=1) and b.repeat_interval == timedelta(hours=1)
    assert b.group_by == frozenset({"job"})
    wait = root.match({"env": "testing", "group_by": "role", "wait": "long"})[0]
    assert wait.opts.receiver == "notify-testing" and wait.opts.group_by == frozenset({"role"})
    assert wait.opts.group_wait == timedelta(minutes=2)
    assert wait.key() == '{}/{group_by="role"}/{env="testing"}/{wait="long"}'


def test_group_by_all_is_inherited_until_a_child_sets_group_by() -> None:
    """AM's TestInheritParentGroupByAll."""
    cfg = RoutingConfig.model_validate(
        {
            "route": {
                "receiver": "r",
                "routes": [
                    {
                        "match": {"env": "parent"},
                        "group_by": ["..."],
                        "routes": [
                            {"match": {"env": "child1"}},
                            {"match": {"env": "child2"}, "group_by": ["foo"]},
                        ],
                    }
                ],
            },
            "receivers": [{"name": "r"}],
        }
    )
    parent = Route.build(cfg.route).routes[0]
    assert parent.opts.group_by_all
    assert parent.routes[0].opts.group_by_all
    assert not parent.routes[1].opts.group_by_all


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('a="b', "closing quote"),
        ("a=~(", "bad regular expression"),
        ("9a=b", "bad matcher"),
    ],
)
def test_bad_matchers_are_clear_errors(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_matchers(text)


def test_matcher_syntax_variants() -> None:
    ms = parse_matchers('{a="x,y", b=~"c|d", c!=e,d!~"f\\"g"}')
    assert [(m.name, m.op, m.value) for m in ms] == [
        ("a", "=", "x,y"),
        ("b", "=~", "c|d"),
        ("c", "!=", "e"),
        ("d", "!~", 'f"g'),
    ]
    assert ms[1].matches({"b": "d"}) and not ms[1].matches({"b": "dd"})  # anchored


@pytest.mark.parametrize(
    ("route", "error"),
    [
        ({"receiver": "nope"}, "undefined receiver 'nope'"),
        ({"receiver": "r", "matchers": ["a=b"]}, "root route must not have matchers"),
        ({"routes": [{"receiver": "r"}]}, "default 'receiver'"),
        ({"receiver": "r", "group_by": ["...", "a"]}, "must be alone"),
        ({"receiver": "r", "routes": [{"mute_time_intervals": ["x"]}]}, "undefined time interval"),
    ],
)
def test_bad_trees_are_refused(route: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        RoutingConfig.model_validate({"route": route, "receivers": [{"name": "r"}]})


def test_unimplemented_alertmanager_options_are_named() -> None:
    with pytest.raises(ValueError, match="'pagerduty_configs' is not supported"):
        RoutingConfig.model_validate(
            {
                "route": {"receiver": "r"},
                "receivers": [{"name": "r", "pagerduty_configs": [{}]}],
            }
        )
