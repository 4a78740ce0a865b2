"""An EC2 warm pool in the simulator: the production planner fills and uses it, a launch
starts stopped warm machines first, and the books count what it costs."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import autoscaler.decide
from autoscaler.cli import build_parser, main
from autoscaler.decide.plan_types import (
    FillWarmPool,
    LaunchNodes,
    Memory,
    Plan,
    RetireWarmMachine,
    TerminateInstance,
)
from autoscaler.decide.pools.inventory import take_inventory
from autoscaler.decide.pools.launch_config import launch_config, stale_because
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.schema import Policies
from autoscaler.sim.arrivals import Arrival, Workload
from autoscaler.sim.cluster import ReadyTime, SimCluster
from autoscaler.sim.observe import Observer
from autoscaler.sim.planner import PlannerController, warm_look
from autoscaler.sim.runner import SimParams, simulate
from autoscaler.sim.setup import override
from autoscaler.snapshot import Snapshot

T0 = datetime(2024, 5, 6, 8, tzinfo=UTC)
POOL: dict[str, Any] = {
    "provider": "local",
    "min": 1,
    "max": 10,
    "seats_per_node": 4,
    "headroom": {"seats": 0, "node_ready_time": "2m"},
    "scale_in": {"unneeded_for": "5m", "drain_for": "30s"},
    "join_timeout": "10m",
    "prices": {"local": 0.5},
    "max_cost_per_hour": 2.0,
}
LOCAL = PoolPolicy.model_validate(POOL)
# fixed draws: a new machine is Ready 100 s after its launch, a started warm one 10 s after
PARAMS = SimParams(
    seats_per_node=4,
    max_nodes=10,
    ready_time=ReadyTime(100.0, 100.0),
    price=0.5,
    warm_ready_time=ReadyTime(10.0, 10.0),
    warm_price=0.01,
)


def policies(warm: int) -> Policies:
    return Policies(pools={"web": override(LOCAL, None, None, warm)})


def step() -> Workload:
    """Eight long sessions at once, one second after a pass: twice the one node's seats."""
    arrivals = tuple(Arrival(1801.0, 9000.0) for _ in range(8))
    return Workload(T0, datetime(2024, 5, 6, 11, tzinfo=UTC), arrivals, "step")


def run(warm: int) -> Any:
    params = replace(PARAMS, warm_pool=warm)
    return simulate(step(), PlannerController("p", "web", policies(warm), T0), params)


def test_a_burst_fails_starts_without_a_warm_pool_and_none_with_one() -> None:
    cold, warm = run(0), run(1)
    # by hand, without: node 0 seats four at 1801; the pass at 1815 launches one machine,
    # Ready at 1915, labelled at 1920: the other four failed at 1861. Empty, it is paused
    # after 5 minutes (2220), drained (2235) and removed and terminated 30 s later (2265)
    assert cold.failed_starts == 4
    assert cold.node_seconds == pytest.approx(10800 + (2265 - 1815))
    assert cold.warm_price is None and "warm_stopped_hours" not in cold.summary()
    # with one: the pass at 0 fills it (pulling to 100, then stopped); the launch at 1815
    # starts it, Ready at 1825: the four waiting take its seats after 24 s. The pass at
    # 1830 sees none left and fills one more (pulling to 1930, then stopped to the end)
    assert warm.failed_starts == 0
    assert sorted(warm.waits) == [0.0] * 4 + [24.0] * 4
    assert warm.warm_started == 1
    # paid as nodes: node 0 (10800 s), the started one (1815 to 10800: 8985 s) and both
    # warm machines' pulls (100 s each) = 19,985 s; stopped: 100 to 1815 (1715 s) and
    # 1930 to 10800 (8870 s) = 10,585 s = 2.940 h
    assert warm.node_seconds == pytest.approx(10800 + 8985 + 100 + 100)
    assert warm.warm_stopped_seconds == pytest.approx(1715 + 8870)
    s = warm.summary()
    assert s["node_hours"] == pytest.approx(19985 / 3600, abs=0.005)  # 5.55
    assert s["warm_stopped_hours"] == pytest.approx(2.94)
    assert s["warm_stopped_cost"] == pytest.approx(0.03)  # 2.940 h x 0.01
    # 5.5514 h x 0.5 + 2.9403 h x 0.01 = 2.7757 + 0.0294 = 2.8051
    assert s["cost"] == pytest.approx(2.81)
    assert s["warm_starts"] == 1
    assert sum(s["node_hours_by_use"].values()) == pytest.approx(s["node_hours"], abs=0.02)


def test_the_production_planner_fills_and_uses_the_warm_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = autoscaler.decide.plan
    planned: list[tuple[float, str, int]] = []

    def spy(snapshot: Snapshot, pols: Policies, memory: Memory) -> Plan:
        plan = real(snapshot, pols, memory)
        t = (snapshot.taken_at - T0).total_seconds()
        for a in plan.actions:
            if isinstance(a, FillWarmPool | LaunchNodes | RetireWarmMachine):
                planned.append((t, a.kind, getattr(a, "count", 1)))
        return plan

    monkeypatch.setattr(autoscaler.decide, "plan", spy)
    r = run(2)
    # two at the start; one launch, which starts one of them; the next pass refills it
    assert planned == [
        (0.0, "fill_warm_pool", 2),
        (1815.0, "launch_nodes", 1),
        (1830.0, "fill_warm_pool", 1),
    ]
    assert (r.actions["fill_warm_pool"], r.actions["launch_nodes"]) == (3, 1)
    assert r.failed_starts == 0 and r.warm_started == 1


def test_warm_machines_look_current_to_the_production_inventory() -> None:
    pols = policies(1)
    policy = pols.pools["web"]
    cluster = SimCluster(step().arrivals, 4, ReadyTime(100.0, 100.0), seed=1)
    c = PlannerController("p", "web", pols, T0)
    c.start(cluster)
    c.step(cluster)  # at 0: fills one
    assert c.actions["fill_warm_pool"] == 1
    observer = Observer(cluster, T0, "web", warm_look("web", policy))
    for t, state in ((50.0, "running"), (150.0, "stopped")):
        cluster.advance(t)
        snap = observer.snapshot(pols.signals)
        assert Snapshot.model_validate(snap.model_dump()) == snap  # a real snapshot
        inv = take_inventory("web", policy, snap)
        (m,) = inv.warm_machines
        assert (m.state, m.warm, m.id) == (state, True, "i-warm0")
        assert stale_because(m, policy, launch_config(policy)) is None
        assert all(x.instance is None or x.instance.id != m.id for x in inv.members)


def test_a_launch_starts_stopped_warm_machines_first_then_new_ones() -> None:
    pols = policies(3)
    cluster = SimCluster((), 4, ReadyTime(100.0, 100.0), seed=1, warm_ready_time=ReadyTime(10, 10))
    c = PlannerController("p", "web", pols, T0)
    c.start(cluster)
    cluster.fill_warm(2)  # pulling until 100
    cluster.advance(60.0)
    cluster.fill_warm(1)  # pulling until 160
    cluster.advance(120.0)
    c.apply(cluster, LaunchNodes(pool="web", provider="ec2", count=4, reason="", token="t"))
    # the two stopped ones start (Ready at 130); the one still pulling is not started; two
    # new machines make up the four (Ready at 220)
    booting = sorted(n.ready_at for n in cluster.current if not n.joined)
    assert booting == [130.0, 130.0, 220.0, 220.0]
    assert [m.instance_id for m in cluster.warm.current] == ["i-warm2"]
    assert cluster.stats.warm_started == 2


def test_a_retired_warm_machine_costs_nothing_more() -> None:
    pols = policies(2)
    cluster = SimCluster((), 4, ReadyTime(100.0, 100.0), seed=1, warm_ready_time=ReadyTime(10, 10))
    c = PlannerController("p", "web", pols, T0)
    c.start(cluster)
    cluster.fill_warm(2)
    cluster.advance(400.0)

    def retire(iid: str) -> RetireWarmMachine:
        return RetireWarmMachine(instance_id=iid, pool="web", provider="ec2", reason="")

    def terminate(iid: str) -> TerminateInstance:
        return TerminateInstance(instance_id=iid, pool="web", provider="ec2", reason="")

    c.apply(cluster, retire("i-warm0"))
    c.apply(cluster, retire("i-warm0"))  # gone already
    c.apply(cluster, retire("i-nope"))
    cluster.advance(1000.0)
    c.apply(cluster, LaunchNodes(pool="web", provider="ec2", count=1, reason="", token="t"))
    c.apply(cluster, retire("i-warm1"))  # a launch started it: kept
    c.apply(cluster, terminate("i-warm1"))
    cluster.fill_warm(1)  # i-warm2, pulling 1000 to 1100
    cluster.advance(1050.0)
    c.apply(cluster, terminate("i-warm2"))  # as after a join_timeout: ended while pulling
    assert (c.actions["retire_warm_machine"], c.refused["retire_warm_machine"]) == (1, 3)
    assert (c.actions["terminate_instance"], c.refused["terminate_instance"]) == (1, 1)
    assert cluster.warm.current == []
    # by hand over [0, 2000]: pulling 0 to 100 twice and 1000 to 1050 (250 s); stopped:
    # i-warm0 100 to 400 (300 s), i-warm1 100 to 1000 (900 s), when the launch started it
    assert cluster.warm.seconds(0.0, 2000.0) == (250.0, 1200.0)


def test_the_pool_runs_as_an_ec2_pool_only_with_a_warm_pool() -> None:
    assert override(LOCAL, None, None, 0) == override(LOCAL, None, None) == LOCAL
    warm = override(LOCAL, None, None, 3)
    assert warm.provider == "ec2" and warm.ec2 is not None and warm.ec2.warm_pool == 3
    # its own instance type: the price and the cost cap stay
    assert (warm.node_price(), warm.max_cost_per_hour) == (0.5, 2.0)
    section = {"ami": "ami-1", "instance_types": ["m6i.xlarge"], "subnets": ["s-1"]}
    prices = {"m6i.xlarge": 0.5}
    ec2 = {**POOL, "provider": "ec2", "prices": prices, "ec2": {**section, "warm_pool": 5}}
    # a pool's own warm pool is simulated as the rules say; --warm-pool replaces it
    for asked, size in ((None, 5), (2, 2), (0, 0)):
        got = override(PoolPolicy.model_validate(ec2), None, None, asked).ec2
        assert got is not None and got.warm_pool == size


RULES = """
pools:
  web:
    provider: local
    min: 1
    max: 10
    seats_per_node: 4
    headroom: {seats: 0, node_ready_time: 2m}
    prices: {local: 0.5}
    max_cost_per_hour: 2.0
    scale_in: {unneeded_for: 5m, drain_for: 30s}
    join_timeout: 10m
"""


def sessions_case(tmp_path: Path, rules_text: str = RULES) -> list[str]:
    """``simulate`` arguments for the burst of the first test, from a sessions file."""
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "pools.yml").write_text(rules_text, encoding="utf-8")
    rows = ["start,end"] + ["2024-05-06T08:30:01Z,2024-05-06T11:00:01Z"] * 8
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("\n".join(rows) + "\n", encoding="utf-8")
    argv = ["simulate", "--sessions", str(sessions), "--rules", str(rules), "--no-progress"]
    argv += ["--from", "2024-05-06T08:00:00Z", "--to", "2024-05-06T11:00:00Z", "--no-plot"]
    argv += ["--warmup", "0s", "--ready-time", "100s", "--ready-time-p90", "100s"]
    return [*argv, "--baselines", "oracle"]


def test_simulate_reports_the_warm_pool(tmp_path: Path) -> None:
    argv = sessions_case(tmp_path)
    assert main([*argv, "--out", str(tmp_path / "cold")]) == 0
    cold = json.loads((tmp_path / "cold" / "summary.json").read_text())
    assert "warm_pool" not in cold["params"]
    assert "warm_stopped_hours" not in cold["results"]["policy:web"]
    warm_argv = ["--warm-pool", "1", "--warm-ready-time", "10s,10s", "--warm-price", "0.01"]
    assert main([*argv, *warm_argv, "--out", str(tmp_path / "warm")]) == 0
    summary = json.loads((tmp_path / "warm" / "summary.json").read_text())
    params = summary["params"]
    assert params["warm_pool"] == 1
    assert (params["warm_ready_time_median_s"], params["warm_ready_time_p90_s"]) == (10, 10)
    assert params["warm_price_per_hour"] == 0.01
    # the case of the first test, from the command line
    web = summary["results"]["policy:web"]
    assert (cold["results"]["policy:web"]["failed_starts"], web["failed_starts"]) == (4, 0)
    assert (web["warm_stopped_hours"], web["cost"]) == (2.94, 2.81)
    report = (tmp_path / "warm" / "report.md").read_text()
    assert "| warm starts | stopped h |" in report and "Warm pool of 1:" in report


def test_warm_ready_time_defaults_and_median_alone() -> None:
    base = ["simulate", "--trace", "t.csv", "--warm-pool", "2"]
    assert build_parser().parse_args(base).warm_ready_time is None  # 40s,60s in setup
    args = build_parser().parse_args([*base, "--warm-ready-time", "30s"])
    assert args.warm_ready_time == (30.0, 45.0)  # the default's spread: 1.5 x
    assert build_parser().parse_args([*base, "--warm-ready-time", "1m,90"]).warm_ready_time == (
        60.0,
        90.0,
    )


@pytest.mark.parametrize(
    ("option", "value", "rule"),
    [
        ("--warm-pool", "-1", "a whole number, 0 or more"),
        ("--warm-pool", "1.5", "a whole number, 0 or more"),
        ("--warm-ready-time", "60s,40s", "MEDIAN[,P90]"),
        ("--warm-ready-time", "soon", "MEDIAN[,P90]"),
        ("--warm-ready-time", "0s", "MEDIAN[,P90]"),
        ("--warm-ready-time", "1s,2s,3s", "MEDIAN[,P90]"),
        ("--warm-ready-time", "40s,", "MEDIAN[,P90]"),
        ("--warm-price", "-0.01", "a finite number, 0 or more"),
        ("--warm-price", "nan", "a finite number, 0 or more"),
    ],
)
def test_bad_warm_options_are_refused_naming_the_option(
    option: str, value: str, rule: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["simulate", "--trace", "t.csv", option, value])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"autoscaler simulate: error: argument {option}: must be {rule}")
    assert last.endswith(f"(got {value})")


@pytest.mark.parametrize("given", [[], ["--warm-pool", "0"]])
@pytest.mark.parametrize(
    ("option", "value"), [("--warm-price", "0.01"), ("--warm-ready-time", "30s")]
)
def test_warm_settings_without_a_warm_pool_are_refused(
    tmp_path: Path, given: list[str], option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*sessions_case(tmp_path), *given]
    assert main([*argv, option, value, "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == (
        f"autoscaler simulate: {option} is for a warm pool (--warm-pool N, N above 0)\n"
    )
    assert not (tmp_path / "out").exists()


def test_an_ec2_pools_own_warm_pool_is_simulated_as_the_rules_say(tmp_path: Path) -> None:
    ec2 = RULES.replace("provider: local", "provider: ec2").replace(
        "prices: {local: 0.5}",
        "prices: {m6i.xlarge: 0.5}\n    ec2: {ami: ami-1, instance_types: [m6i.xlarge], "
        "subnets: [s-1], warm_pool: 1}",
    )
    argv = [*sessions_case(tmp_path, ec2), "--warm-ready-time", "10s,10s", "--warm-price", "0.01"]
    assert main([*argv, "--out", str(tmp_path / "own")]) == 0
    summary = json.loads((tmp_path / "own" / "summary.json").read_text())
    assert summary["params"]["warm_pool"] == 1
    # the figures of the first test, where the warm pool came from --warm-pool 1
    web = summary["results"]["policy:web"]
    assert (web["failed_starts"], web["warm_stopped_hours"], web["cost"]) == (0, 2.94, 2.81)
    assert main([*argv, "--warm-pool", "0", "--out", str(tmp_path / "none")]) == 1
