"""Sweep the pool's headroom settings without a stabilisation window on the July piece:
the cost / failed-starts frontier of the planner, against the baselines of the same run.
It chose the setting shipped before the window (windows.py compares windows over seeds).

    python bench/simulate/sweep.py          # about 3 minutes on 2 cores
    python bench/simulate/sweep.py --plot   # only redraw frontier.png from sweep.json

Each setting is the shipped `rules/pools.yml` pool (resized as in run.py) with
`headroom.node_ready_time`, `headroom.confidence` and `scale_in.unneeded_for` changed.
The arrivals and the ready-time draws are the same for every setting (seed 1995).
Writes results/sweep.json (one summary per setting) and results/frontier.png (failed
starts against node-hours, the baselines of results/july/summary.json as points); run
`python bench/simulate/run.py july` first for those.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from autoscaler.rules.loader import load_rules
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.schema import Policies
from autoscaler.sim.arrivals import Workload, from_rates
from autoscaler.sim.cluster import ReadyTime
from autoscaler.sim.planner import PlannerController
from autoscaler.sim.runner import SimParams, simulate, simulate_oracle
from autoscaler.sim.setup import override
from autoscaler.sim.trace import parse_time, read_rates

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TRACE = HERE.parents[2] / "shared" / "traces" / "nasa-http-1995-per-minute.csv"
PARAMS = SimParams(
    seats_per_node=8, max_nodes=40, ready_time=ReadyTime(150, 200), warmup=3600, seed=1995
)
JULY = ("1995-07-01T00:00:00-04:00", "1995-07-28T13:33:00-04:00")
Setting = tuple[str, float | None, str]
"""headroom.node_ready_time, headroom.confidence (None: expected arrivals), unneeded_for."""
SHIPPED: Setting = ("100s", 0.95, "15s")
"""Shipped until the stabilisation window came (bench/simulate/README.md)."""
GRID: list[Setting] = [
    ("1m", None, "15s"),
    ("30s", 0.95, "15s"),
    ("1m", 0.8, "15s"),
    ("1m", 0.9, "15s"),
    ("75s", 0.98, "15s"),
    ("90s", 0.95, "15s"),
    SHIPPED,
    ("100s", 0.95, "30s"),
    ("100s", 0.95, "3m"),
    ("90s", 0.98, "15s"),
    ("150s", 0.9, "15s"),
    ("150s", 0.95, "15s"),
]


def workload(seed: int = PARAMS.seed) -> Workload:
    rates = read_rates(TRACE, parse_time(JULY[0]), parse_time(JULY[1]))
    return from_rates(rates, 200, seed)


def shipped_with(
    headroom: dict[str, Any], scale_in: dict[str, Any] | None = None
) -> tuple[Policies, PoolPolicy]:
    """The shipped rules, pool `workers` resized as in run.py, with these settings changed."""
    policies = load_rules(HERE.parents[1] / "rules").policies
    assert policies is not None
    data = override(policies.pools["workers"], PARAMS.seats_per_node, PARAMS.max_nodes).model_dump()
    data["headroom"].update(headroom)
    data["scale_in"].update(scale_in or {})
    pool = PoolPolicy.model_validate(data)
    return policies.model_copy(update={"pools": {"workers": pool}}), pool


def one(job: tuple[Workload, Setting]) -> dict[str, Any]:
    w, (ready, confidence, unneeded) = job
    # the sweep that chose the setting shipped before the stabilisation window (windows.py
    # sweeps that): without it, so its rows stay what they were
    headroom = {
        "node_ready_time": ready,
        "confidence": confidence,
        "seats": 2,
        "stabilization_window": "0s",
    }
    policies, _ = shipped_with(headroom, {"unneeded_for": unneeded})
    r = simulate(w, PlannerController("p", "workers", policies, w.start), PARAMS)
    oracle = simulate_oracle(w, PARAMS).node_hours
    a = r.actions
    return {
        "node_ready_time": ready,
        "confidence": confidence,
        "unneeded_for": unneeded,
        **r.summary(),
        "x_oracle": round(r.node_hours / oracle, 3),
        "launches": a["launch_nodes"],
        "pauses": a["pause_node"],
        "resumes": a["resume_node"],
    }


def label(row: dict[str, Any]) -> str:
    how = f"{row['confidence']:.0%}" if row["confidence"] is not None else "mean"
    return f"{row['node_ready_time']} {how} {row['unneeded_for']}"


def plot(rows: list[dict[str, Any]], baselines: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    xs = [r["node_hours"] for r in rows]
    ax.scatter(xs, [r["failed_starts"] for r in rows], color="tab:blue", label="pool planner")
    for r in rows:
        ax.annotate(label(r), (r["node_hours"], r["failed_starts"]), fontsize=7)
        if (r["node_ready_time"], r["confidence"], r["unneeded_for"]) == SHIPPED:
            shipped = ([r["node_hours"]], [r["failed_starts"]])
            before = "shipped before the window"
            ax.scatter(*shipped, marker="*", s=220, color="tab:green", label=before)
    for name, b in baselines.items():
        if name in ("hpa-style", "cluster-autoscaler-style"):
            text = f"{name} ({b['sessions_killed']:,} killed)"
            ax.scatter([b["node_hours"]], [b["failed_starts"]], marker="x", s=80, label=text)
    ax.set_yscale("symlog", linthresh=10)
    ax.set_xlabel("node-hours (July)")
    ax.set_ylabel("failed starts")
    ax.set_title("Pool planner settings against the baselines (NASA July, 200 peak, 8 seats)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw(rows: list[dict[str, Any]]) -> None:
    july = RESULTS / "july" / "summary.json"
    baselines = json.loads(july.read_text())["results"] if july.exists() else {}
    plot(rows, baselines, RESULTS / "frontier.png")


def main(argv: list[str]) -> int:
    if argv == ["--plot"]:
        draw(json.loads((RESULTS / "sweep.json").read_text())["rows"])
        return 0
    w = workload()
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(2) as pool:
        for row in pool.map(one, [(w, g) for g in GRID]):
            rows.append(row)
            print(
                f"{label(row)}: failed {row['failed_starts']} ({row['failed_start_pct']}%) "
                f"killed {row['sessions_killed']} node-hours {row['node_hours']:,.0f} "
                f"x oracle {row['x_oracle']} (launch {row['launches']}, pause "
                f"{row['pauses']}, resume {row['resumes']})",
                flush=True,
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sweep.json").write_text(json.dumps({"window": JULY, "rows": rows}, indent=1))
    draw(rows)
    print(f"wrote {RESULTS / 'sweep.json'} and {RESULTS / 'frontier.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
