"""The pools section of the rules: the shipped example loads, mistakes name file:line:field."""

from __future__ import annotations

from pathlib import Path

from autoscaler.rules.loader import RuleSource, load_rules, load_sources

RULES = Path(__file__).parent.parent / "rules"


def problems(text: str) -> list[str]:
    result = load_sources([RuleSource("p.yml", text.encode())])
    assert result.policies is None
    return [str(p) for p in result.problems]


def test_shipped_pool_loads() -> None:
    result = load_rules(RULES)
    assert result.policies is not None, [str(p) for p in result.problems]
    pool = result.policies.pools["workers"]
    assert pool.provider == "local" and pool.min == 1 and pool.seats_per_node == 4
    assert pool.headroom.signal in result.policies.signals


GOOD = """\
pools:
  web:
    provider: local
    max: 4
    seats_per_node: 4
"""


def test_minimal_pool() -> None:
    result = load_sources([RuleSource("p.yml", GOOD.encode())])
    assert result.policies is not None
    assert result.policies.pools["web"].scale_in.allow_ending_sessions is False


def test_field_errors_name_the_line() -> None:
    (negative,) = problems(GOOD.replace("max: 4", "max: -1"))
    assert negative.startswith("p.yml:4: pools.web.max:") and "got -1" in negative
    (typo,) = problems(GOOD + "    sets_per_node: 3\n")
    assert typo.startswith("p.yml:6: pools.web.sets_per_node: unknown key")
    assert "did you mean 'seats_per_node'" in typo


def test_consistency_errors() -> None:
    (ec2,) = problems(GOOD.replace("provider: local", "provider: ec2"))
    assert ec2.startswith("p.yml:2: pools.web:") and "needs an 'ec2' section" in ec2
    (bounds,) = problems(GOOD + "    min: 5\n")
    assert "min (5) is above max (4)" in bounds
    (cost,) = problems(GOOD + "    max_cost_per_hour: 2\n")
    assert "needs 'prices'" in cost
    (ami,) = problems(
        GOOD.replace("provider: local", "provider: ec2")
        + "    ec2:\n      instance_types: [m5.large]\n      subnets: [s-1]\n"
    )
    assert ami.startswith("p.yml:6: pools.web.ec2:") and "'launch_template' or 'ami'" in ami


def test_headroom_signal_must_exist() -> None:
    (unknown,) = problems(GOOD + "    headroom:\n      signal: arrivls\n")
    assert unknown.startswith("p.yml:7: pools.web.headroom.signal: unknown signal 'arrivls'")


TWO = (
    GOOD
    + """\
  gpu:
    provider: local
    max: 2
    seats_per_node: 1
"""
)


def test_two_pools_that_would_launch_for_the_same_session_are_refused() -> None:
    (both_all,) = problems(TWO)
    assert both_all.startswith("p.yml:6: pools.gpu: a second pool without 'apps'")
    assert "pool 'web' at p.yml:2" in both_all
    (same,) = problems(
        TWO.replace("max: 4", "max: 4\n    apps: [dash]") + "    apps: [model, dash]\n"
    )
    assert same.startswith("p.yml:11: pools.gpu.apps[1]: app 'dash' is also listed by pool 'web'")
    split = TWO + "    apps: [model]\n"
    assert load_sources([RuleSource("p.yml", split.encode())]).policies is not None
    off = TWO + "    enabled: false\n"  # a disabled pool counts nothing
    assert load_sources([RuleSource("p.yml", off.encode())]).policies is not None
    retired = TWO.replace("max: 2", "max: 0")  # nor does a retired one
    assert load_sources([RuleSource("p.yml", retired.encode())]).policies is not None


def test_pool_defined_twice() -> None:
    result = load_sources([RuleSource("a.yml", GOOD.encode()), RuleSource("b.yml", GOOD.encode())])
    assert result.policies is None
    assert any("pool 'web' is defined twice" in str(p) for p in result.problems)


ENDING = GOOD + "    scale_in:\n      allow_ending_sessions: true\n"
ROUTE = """\
route:
  receiver: {default}
  routes:
    - receiver: {special}
      matchers: ['alertname="AutoscalerSessionsEndedByScaleIn"', 'pool="web"']
receivers:
  - name: quiet
  - name: team
    webhook_configs:
      - url_file: /run/secrets/hook
"""


def test_ending_sessions_needs_a_receiver_for_its_alert() -> None:
    (alone,) = problems(ENDING)
    assert alone.startswith("p.yml:7: pools.web.scale_in.allow_ending_sessions:")
    assert "no receiver would get the AutoscalerSessionsEndedByScaleIn alert (no route)" in alone
    (quiet,) = problems(ENDING + ROUTE.format(default="team", special="quiet"))
    assert "(it goes to quiet, which sends nothing)" in quiet
    told = ROUTE.format(default="quiet", special="team")
    assert load_sources([RuleSource("p.yml", (ENDING + told).encode())]).policies is not None
    # the route in another file of the same rules
    split = [RuleSource("p.yml", ENDING.encode()), RuleSource("r.yml", told.encode())]
    assert load_sources(split).policies is not None
    # a pool that ends no session needs no route
    assert load_sources([RuleSource("p.yml", GOOD.encode())]).policies is not None


def test_nan_and_infinity_are_refused() -> None:
    """YAML reads .nan and .inf as numbers; no policy could mean them (a NaN price made
    every pass an internal error, an infinite cost cap overflowed)."""
    (price,) = problems(GOOD + "    prices: {local: .nan}\n")
    assert price.startswith("p.yml:6: pools.web.prices.local: must be a finite number")
    (cap,) = problems(GOOD + "    prices: {local: 0.1}\n    max_cost_per_hour: .inf\n")
    assert cap.startswith("p.yml:7: pools.web.max_cost_per_hour: must be a finite number")
    alert = "alerts:\n  Busy:\n    signal: s\n    op: '>'\n    value: -.inf\n"
    signal = "signals:\n  s:\n    prometheus: {query: up}\n"
    (value,) = problems(signal + alert)
    assert value.startswith("p.yml:8: alerts.Busy.value: must be a finite number")


def test_prices_caps_and_schedules_that_cannot_work_are_refused() -> None:
    (negative,) = problems(GOOD + "    prices: {local: -0.1}\n")
    assert negative.startswith("p.yml:6: pools.web.prices.local: must be greater than or equal")
    (cap,) = problems(GOOD + "    prices: {local: 0.5}\n    max_cost_per_hour: 0.4\n")
    assert "max_cost_per_hour (0.4) is below the price of one node (0.5" in cap
    never = GOOD + "    schedules:\n      - {cron: '0 8 30 2 *', duration: 1h, min: 1}\n"
    (cron,) = problems(never)
    assert cron.startswith("p.yml:7: pools.web.schedules[0].cron: cron expression '0 8 30 2 *'")
    assert cron.endswith("never fires")
    leap = never.replace("30 2", "29 2")  # once in four years is fine
    assert load_sources([RuleSource("p.yml", leap.encode())]).policies is not None


def test_ending_sessions_routed_by_node_reaches_its_receiver() -> None:
    """The alert always carries its node: a route on node=~".+" is one that reaches it."""
    route = (
        "route:\n  receiver: quiet\n  routes:\n    - receiver: team\n"
        "      matchers: ['node=~\".+\"']\n"
        "receivers:\n  - name: quiet\n  - name: team\n"
        "    webhook_configs:\n      - url_file: /run/secrets/hook\n"
    )
    enders = GOOD + "    scale_in:\n      allow_ending_sessions: true\n"
    result = load_sources([RuleSource("p.yml", (enders + route).encode())])
    assert result.policies is not None, [str(p) for p in result.problems]
