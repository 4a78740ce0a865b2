"""Headroom settings over seeds: what `headroom.stabilization_window` and
`headroom.reserve_seats` buy on July.

    python bench/simulate/windows.py          # about 8 minutes on 2 cores
    python bench/simulate/windows.py --plot   # only rewrite windows.md and windows.png

One seed moves failed starts by a dozen between neighbouring settings, more than most
differences between them, so each setting of SETTINGS (the shipped `rules/pools.yml`
pool, resized as in run.py, with its headroom changed) runs July once per seed of
seeds.py. Writes results/windows.json (every run and each setting's means),
results/windows.md (the table, with the baselines' means from results/seeds.json) and
results/windows.png (mean failed starts against mean node-hours).
"""

from __future__ import annotations

import json
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from run import RESULTS, rerun_or_replot
from seeds import RIVALS, SEEDS
from sweep import PARAMS, shipped_with, workload

from autoscaler.sim.planner import PlannerController
from autoscaler.sim.runner import simulate, simulate_oracle

SHIPPED = "shipped"
SETTINGS: dict[str, dict[str, Any]] = {
    "no window (shipped until now)": {
        "seats": 2,
        "node_ready_time": "100s",
        "stabilization_window": "0s",
    },
    "1h window, 1 seat at once": {
        "seats": 1,
        "node_ready_time": "90s",
        "stabilization_window": "1h",
    },
    "2h window, 1 seat at once": {
        "seats": 1,
        "node_ready_time": "80s",
        "stabilization_window": "2h",
    },
    SHIPPED: {},
    "reserve of 5 seats": {
        "seats": 1,
        "reserve_seats": 5,
        "node_ready_time": "70s",
    },
    "reserve of 6 seats": {
        "seats": 1,
        "reserve_seats": 6,
        "node_ready_time": "60s",
        "confidence": 0.9,
    },
}
"""Label -> headroom settings over the shipped ones ({}: rules/pools.yml as it is)."""
SHOWN = ("seats", "reserve_seats", "node_ready_time", "confidence", "stabilization_window")
"""The headroom settings each row records."""


def one(job: tuple[str, int]) -> dict[str, Any]:
    label, seed = job
    params = replace(PARAMS, seed=seed)
    w = workload(seed)
    policies, pool = shipped_with(SETTINGS[label])
    r = simulate(w, PlannerController("p", "workers", policies, w.start), params)
    oracle = simulate_oracle(w, params).node_hours
    headroom = pool.headroom.model_dump(mode="json")
    return {
        "setting": label,
        "seed": seed,
        "headroom": {k: headroom[k] for k in SHOWN},
        **r.summary(),
        "x_oracle": round(r.node_hours / oracle, 3),
    }


def compute() -> dict[str, Any]:
    jobs = [(label, seed) for label in SETTINGS for seed in SEEDS]
    with ProcessPoolExecutor(2) as pool:  # two cores here
        runs = list(pool.map(one, jobs))
    means = {}
    for label in SETTINGS:
        mine = [r for r in runs if r["setting"] == label]
        means[label] = {
            "headroom": mine[0]["headroom"],
            **{
                col: round(statistics.fmean(r[col] for r in mine), 3)
                for col in ("failed_starts", "node_hours", "x_oracle", "seat_wait_p95_s")
            },
            "seat_wait_p95_s_max": max(r["seat_wait_p95_s"] for r in mine),
            "at_most_1.25x": sum(1 for r in mine if r["x_oracle"] <= 1.25),
        }
    return {"seeds": list(SEEDS), "means": means, "runs": runs}


def rivals() -> dict[str, dict[str, float]]:
    """The baselines' means over the same seeds, from seeds.py's results (if run)."""
    path = RESULTS / "seeds.json"
    if not path.exists():
        return {}
    spread = json.loads(path.read_text())["spread"]
    return {
        name: {col: spread[name][col]["mean"] for col in ("failed_starts", "node_hours")}
        for name in RIVALS
    }


def markdown(data: dict[str, Any]) -> str:
    seeds = ", ".join(str(s) for s in data["seeds"])
    n = len(data["seeds"])
    lines = [
        f"July, 200 peak sessions, 8 seats per node; mean over seeds {seeds}.",
        "",
        "| setting | " + " / ".join(SHOWN) + " | failed starts | "
        f"node-hours | x oracle | at most 1.25x (of {n}) | seat wait p95 (s), worst seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, m in data["means"].items():
        h = m["headroom"]
        how = " / ".join(str(h[k]) for k in SHOWN)
        lines.append(
            f"| {label} | {how} | {m['failed_starts']:.1f} | {m['node_hours']:,.0f} | "
            f"{m['x_oracle']:.3f} | {m['at_most_1.25x']} | {m['seat_wait_p95_s_max']:.1f} |"
        )
    for name, r in rivals().items():
        lines.append(
            f"| {name} (kills sessions) | | {r['failed_starts']:.1f} | {r['node_hours']:,.0f} "
            "| | | |"
        )
    return "\n".join(lines) + "\n"


def plot(data: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (label, m) in enumerate(data["means"].items()):
        star = label == SHIPPED
        at = (m["node_hours"], m["failed_starts"])
        ax.scatter(
            [at[0]],
            [at[1]],
            marker="*" if star else "o",
            s=220 if star else 50,
            color="tab:green" if star else "tab:blue",
        )
        offset = (6, 10 if i % 2 else -14)  # neighbours sit close: alternate above, below
        ax.annotate(label, at, xytext=offset, textcoords="offset points", fontsize=8)
    # cluster-autoscaler-style fails ~30 times as many: off this scale (see windows.md)
    hpa = rivals().get("hpa-style")
    if hpa is not None:
        text = "hpa-style (kills sessions)"
        ax.scatter([hpa["node_hours"]], [hpa["failed_starts"]], marker="x", s=80, label=text)
    ax.set_xlabel(f"node-hours (July), mean of {len(data['seeds'])} seeds")
    ax.set_ylabel("failed starts, mean")
    ax.set_title("Headroom settings over seeds (NASA July, 200 peak, 8 seats)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(RESULTS / "windows.png", dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    title = "Headroom settings over seeds"
    return rerun_or_replot(argv, "windows", title, compute, markdown, plot)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
