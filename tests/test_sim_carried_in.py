"""Sessions already running when a backtest's window opens are carried in: every run starts
with them seated, and they are neither arrivals, starts nor failed starts of the window."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import autoscaler.decide
from autoscaler.cli import main
from autoscaler.decide.plan_types import Memory, Plan
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.schema import Policies
from autoscaler.sim.arrivals import Arrival, Workload, from_sessions, pair_events
from autoscaler.sim.baselines import ClusterAutoscalerStyle, HotBuffer, HpaStyle, StaticPeak
from autoscaler.sim.cluster import ReadyTime, SimCluster
from autoscaler.sim.controller import Controller
from autoscaler.sim.observe import Observer
from autoscaler.sim.planner import PlannerController
from autoscaler.sim.runner import SimParams, simulate, simulate_oracle
from autoscaler.sim.usage import read_events
from autoscaler.snapshot import Snapshot
from tests.fixtures_backends import InfluxLab
from tests.test_sim_influx import write_events

T0 = datetime(2024, 5, 6, 8, tzinfo=UTC)
FIXED = ReadyTime(150.0, 150.0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# Three sessions run when the window [T0, T0 + 2h) opens (one to its end), one ended
# before it, one starts in it.
SPANS = [
    (at(-3 * 3600), at(3600)),
    (at(-1200), at(1800)),
    (at(-3600), at(7200)),
    (at(-7200), at(-3600)),
    (at(300), at(900)),
]


def window() -> Workload:
    return from_sessions(SPANS, "s", T0, at(7200))


def test_sessions_running_at_the_window_start_are_carried_in() -> None:
    w = window()
    assert [(a.at, a.length) for a in w.arrivals] == [(300.0, 600.0)]
    assert [(a.at, a.at + a.length) for a in w.carried] == [
        (-3 * 3600.0, 3600.0),
        (-3600.0, 7200.0),
        (-1200.0, 1800.0),
    ]
    # every start of the day before, ended or not, for counts of recent ProxyStarts
    assert w.earlier_starts == (-3 * 3600.0, -7200.0, -3600.0, -1200.0)


def test_a_window_with_only_running_sessions_is_a_workload() -> None:
    w = from_sessions([(at(-600), at(600))], "s", T0, at(3600))
    assert (w.arrivals, len(w.carried)) == ((), 1)
    with pytest.raises(ValueError, match=r"no session starts .* and none runs"):
        from_sessions([(at(-600), T0)], "s", T0, at(3600))  # ended as the window opened


def test_carried_sessions_are_seated_by_spread_placement_and_not_counted() -> None:
    carried = [Arrival(-100.0 * i, 1000.0 + 100.0 * i) for i in range(5, 0, -1)]
    c = SimCluster([Arrival(10.0, 60.0)], 2, FIXED, 1, carried=carried)
    nodes = c.add_ready(1)  # asked for one: three are needed for five sessions on 2 seats
    assert [len(n.sessions) for n in nodes] == [2, 2, 1]
    big = SimCluster([], 2, FIXED, 1, carried=carried)
    assert [len(n.sessions) for n in big.add_ready(5)] == [1, 1, 1, 1, 1]  # spread out
    c.advance(5.0)
    assert (c.live(), c.stats.sessions, c.stats.failed, c.stats.waits) == (5, 0, 0, [])
    c.advance(1000.0)  # each ends when it ended: all at 1000 s from the window's start
    assert c.live() == 0
    assert (c.stats.sessions, len(c.stats.waits)) == (1, 1)


def test_a_drained_carried_session_is_killed_and_reopened_for_what_was_left() -> None:
    c = SimCluster([], 2, FIXED, 1, reopen_after=30.0, carried=[Arrival(-600.0, 1600.0)])
    (a,) = c.add_ready(0)
    (b,) = c.add_ready(1)
    c.advance(100.0)
    c.set_availability(a, "drain")
    assert c.stats.killed == 1
    c.advance(130.0)
    (s,) = c.sessions.values()
    assert (s.node, s.started, s.length) == (b, 130.0, 900.0)  # 1000 s end, less 100 s


def test_recent_starts_before_the_window_count_in_a_start_count_signal() -> None:
    """A count of ProxyStart events over the last 15 minutes, read as the window opens,
    holds the starts of the 15 minutes before it, ended sessions included."""
    spans = [(at(-600), at(-300)), (at(-300), at(600)), (at(-1200), at(600)), (at(60), at(90))]
    w = from_sessions(spans, "s", T0, at(3600))
    c = SimCluster(w.arrivals, 2, FIXED, 1, carried=w.carried, earlier_starts=w.earlier_starts)
    c.add_ready(2)
    look = Observer(c, T0, "web")
    assert look.starts_within(900) == 2
    c.advance(120.0)
    assert look.starts_within(900) == 3


def pool() -> Policies:
    return Policies(
        pools={
            "web": PoolPolicy.model_validate(
                {"provider": "local", "min": 1, "max": 6, "seats_per_node": 2}
            )
        }
    )


PARAMS = SimParams(seats_per_node=2, max_nodes=6, ready_time=FIXED)


def test_the_policy_run_starts_with_the_carried_sessions_seated() -> None:
    seen: list[Snapshot] = []

    def spy(snapshot: Snapshot, pols: Policies, memory: Memory) -> Plan:
        seen.append(snapshot)
        return autoscaler.decide.plan(snapshot, pols, memory)

    w = window()
    r = simulate(w, PlannerController("policy:web", "web", pool(), T0, spy), PARAMS)
    first = seen[0]
    assert first.taken_at == T0
    assert len(first.swarm.nodes) == 2
    running = [s for s in first.swarm.sessions if s.node_id is not None]
    assert len(running) == 3 and not first.swarm.pending_tasks
    assert sorted(s.created_at for s in running) == [at(-3 * 3600), at(-3600), at(-1200)]
    assert Counter(s.node_id for s in running) == {"node0": 2, "node1": 1}
    assert (r.sessions, r.failed_starts, r.sessions_killed) == (1, 0, 0)
    assert r.timeline[0].demand == 3


class FirstLook:
    """A controller that notes what its first pass sees, then lets another one decide."""

    def __init__(self, inner: Controller) -> None:
        self.inner = inner
        self.name = inner.name
        self.actions: Counter[str] = inner.actions
        self.seen: tuple[int, int] | None = None

    def start(self, cluster: SimCluster) -> None:
        self.inner.start(cluster)

    def step(self, cluster: SimCluster) -> None:
        if self.seen is None:
            self.seen = (cluster.live(), cluster.waiting())
        self.inner.step(cluster)


@pytest.mark.parametrize(
    "baseline",
    [StaticPeak(1), HpaStyle(6), ClusterAutoscalerStyle(6), HotBuffer(6, spare=0)],
    ids=lambda b: b.name,
)
def test_every_baseline_starts_with_the_carried_sessions_seated(baseline: Controller) -> None:
    look = FirstLook(baseline)
    r = simulate(window(), look, PARAMS)
    assert look.seen == (3, 0)
    assert (r.sessions, r.failed_starts) == (1, 0)


def test_the_oracle_pays_for_the_carried_sessions() -> None:
    """Two nodes until 30 min (three or four sessions), then one: 2.5 node-hours, where
    the window's own arrival alone would need a node for ten minutes."""
    w = window()
    r = simulate_oracle(w, PARAMS)
    assert r.node_hours == pytest.approx(2.5)
    assert r.sessions == 1
    alone = simulate_oracle(Workload(w.start, w.end, w.arrivals, "s"), PARAMS)
    assert alone.node_hours == pytest.approx(750 / 3600)  # from one ready time ahead


def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir(parents=True)
    (folder / "p.yml").write_text(
        "pools:\n  web:\n    provider: local\n    max: 6\n    seats_per_node: 2\n",
        encoding="utf-8",
    )
    return folder


def run(tmp_path: Path, source: list[str], name: str = "out") -> dict[str, object]:
    out = tmp_path / name
    argv = ["simulate", *source, "--rules", str(rules(tmp_path / name))]
    argv += ["--warmup", "0s", "--no-plot", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    summary["report"] = (out / "report.md").read_text()
    return summary


def test_a_sessions_file_carries_in_the_sessions_running_at_from(tmp_path: Path) -> None:
    csv = tmp_path / "sessions.csv"
    rows = [f"{s.isoformat()},{e.isoformat()}" for s, e in SPANS]
    csv.write_text("start,end\n" + "\n".join(rows) + "\n", encoding="utf-8")
    window = ["--from", "2024-05-06T08:00:00Z", "--to", "2024-05-06T10:00:00Z"]
    got = run(tmp_path, ["--sessions", str(csv), *window])
    params, results = got["params"], got["results"]
    assert isinstance(params, dict) and isinstance(results, dict)
    assert (params["carried_in"], params["arrivals"], params["lookback_s"]) == (3, 1, None)
    assert "Carried in: 3 sessions already running" in str(got["report"])
    assert results["oracle"]["node_hours"] == 2.5
    for name, result in results.items():
        assert (result["sessions"], result["failed_starts"]) == (1, 0), name
    whole = run(tmp_path, ["--sessions", str(csv)], "whole")  # from the first start
    assert isinstance(whole["params"], dict)
    assert (whole["params"]["carried_in"], whole["params"]["arrivals"]) == (0, 5)
    assert "Carried in" not in str(whole["report"])


def test_lookback_is_refused_without_influx(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "sessions.csv"
    csv.write_text(f"{T0.isoformat()},{at(60).isoformat()}\n", encoding="utf-8")
    argv = ["simulate", "--sessions", str(csv), "--lookback", "2h", "--out", str(tmp_path / "o")]
    assert main([*argv, "--no-plot", "--no-progress"]) == 1
    assert "--lookback is for --influx" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_since_is_refused_without_influx(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "sessions.csv"
    csv.write_text(f"{T0.isoformat()},{at(60).isoformat()}\n", encoding="utf-8")
    argv = ["simulate", "--sessions", str(csv), "--since", "2d", "--out", str(tmp_path / "o")]
    assert main([*argv, "--no-plot", "--no-progress"]) == 1  # it was silently ignored
    assert "--since is for --influx" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ShinyProxy usage events around the window [T0, T0 + 2h) in a real influxd
EVENTS = [
    (-3 * 3600, "alice", "ProxyStart", "euler"),
    (-1200, "bob", "ProxyStart", "euler"),
    (-3600, "dave", "ProxyStart", "gauss"),  # never stopped: runs to the window's end
    (-7200, "erin", "ProxyStart", "euler"),
    (-3600, "erin", "ProxyStop", "euler"),  # ended before the window
    (-30 * 3600, "carol", "ProxyStart", "euler"),  # older than the day looked back
    (300, "frank", "ProxyStart", "euler"),
    (600, "carol", "ProxyStop", "euler"),
    (900, "frank", "ProxyStop", "euler"),
    (1800, "bob", "ProxyStop", "euler"),
    (3600, "alice", "ProxyStop", "euler"),
]
INFLUX_WINDOW = ["--from", "2024-05-06T08:00:00Z", "--to", "2024-05-06T10:00:00Z"]


@pytest.mark.real
def test_influx_sessions_running_at_the_window_start_are_carried_in(
    usagestats: InfluxLab, tmp_path: Path
) -> None:
    write_events(usagestats, EVENTS)
    source = ["--influx", usagestats.url, "--db", usagestats.database, *INFLUX_WINDOW]
    got = run(tmp_path, source)
    params, results = got["params"], got["results"]
    assert isinstance(params, dict) and isinstance(results, dict)
    # carol's session started before the day looked back: her stop is ignored
    assert (params["carried_in"], params["arrivals"], params["lookback_s"]) == (3, 1, 86400.0)
    assert "Carried in: 3 sessions" in str(got["report"])
    assert results["oracle"]["node_hours"] == 2.5  # two nodes for 30 min, then one
    for name, result in results.items():
        assert (result["sessions"], result["failed_starts"]) == (1, 0), name
    # the planner and the baselines pay for the carried sessions too
    assert min(r["node_hours"] for r in results.values()) >= 2.5

    longer = run(tmp_path, [*source, "--lookback", "31h"], "longer")
    assert isinstance(longer["params"], dict)
    assert longer["params"]["carried_in"] == 4  # carol's session too

    none = run(tmp_path, [*source, "--lookback", "0s"], "none")
    assert isinstance(none["params"], dict) and isinstance(none["results"], dict)
    assert (none["params"]["carried_in"], none["params"]["arrivals"]) == (0, 1)
    assert none["results"]["oracle"]["node_hours"] < 0.5


@pytest.mark.real
def test_influx_read_looks_back_and_pairs_the_stops_in_the_window(usagestats: InfluxLab) -> None:
    write_events(usagestats, EVENTS)
    events = read_events(usagestats.url, usagestats.database, at(-86400), at(7200))
    assert len(events) == len(EVENTS) - 1  # carol's start is older than the day
    w = from_sessions(pair_events(events, at(7200)), "influx", T0, at(7200))
    assert [(a.at, a.at + a.length) for a in w.carried] == [
        (-3 * 3600.0, 3600.0),
        (-3600.0, 7200.0),
        (-1200.0, 1800.0),
    ]
    assert [(a.at, a.length) for a in w.arrivals] == [(300.0, 600.0)]
