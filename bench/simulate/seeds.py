"""The July benchmark over several seeds: one seed's arrivals and ready-time draws can
flatter or hurt a policy by a dozen failed starts, more than most differences between
settings. Each seed draws new arrivals and lengths from the same rates.

    python bench/simulate/seeds.py          # about 2.5 minutes on 2 cores
    python bench/simulate/seeds.py --plot   # only rewrite seeds.md and seeds.png
    python bench/simulate/seeds.py --reopen-after 1m [--plot]   # killed users come back

Runs the July scenario of run.py (the shipped rules/pools.yml and every baseline) once
per seed in SEEDS, adds the packing floor (autoscaler/sim/floor.py: what never killing a
session costs before any headroom or boot time) and writes results/seeds.json (each
seed's summaries, each policy's mean, min and max, and the goal checked seed by seed),
results/seeds.md (the table) and results/seeds.png (failed starts against node-hours,
one point per seed and policy). With ``--reopen-after DURATION`` the users of killed
sessions start again that long after (``autoscaler simulate --reopen-after``), and the
files are results/seeds-reopen.{json,md,png}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from run import COMMON, RESULTS, SCENARIOS, rerun_or_replot

from autoscaler.sim.cli import add_simulate_parser
from autoscaler.sim.floor import packing_floor
from autoscaler.sim.setup import Setup, prepare, run_all

SEEDS = (1995, 1, 2, 3, 4, 5, 6, 7)
POLICY = "policy:workers"
RIVALS = ("hpa-style", "cluster-autoscaler-style")
FLOOR = "packing-floor"
PLOTTED = (POLICY, *RIVALS, FLOOR, "oracle")
COLUMNS = ("failed_starts", "sessions_killed", "node_hours", "x_oracle")


def july(seed: int, *extra: str) -> tuple[Setup, float, dict[str, dict[str, Any]]]:
    """One July run of run.py's scenario (``extra`` arguments appended): its setup, the
    oracle's node-hours and every policy's summary with its node-hours over the oracle's."""
    parser = argparse.ArgumentParser(prog="autoscaler")
    add_simulate_parser(parser.add_subparsers(dest="command"))
    argv = ["simulate", *COMMON, *SCENARIOS["july"], "--seed", str(seed), *extra]
    setup = prepare(parser.parse_args(argv))
    results = run_all(setup)
    oracle = next(r for r in results if r.name == "oracle").node_hours
    out = {r.name: {**r.summary(), "x_oracle": round(r.node_hours / oracle, 3)} for r in results}
    return setup, oracle, out


def one(seed: int, extra: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    setup, oracle, out = july(seed, *extra)
    w, p = setup.workload, setup.params
    floor = packing_floor(w.arrivals, p.seats_per_node, w.seconds, p.warmup) / 3600
    out[FLOOR] = {
        "failed_starts": 0,
        "sessions_killed": 0,
        "node_hours": round(floor, 2),
        "x_oracle": round(floor / oracle, 3),
    }
    return out


def goal(run: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """The benchmark's goal for one seed (bench/simulate/README.md)."""
    p = run[POLICY]
    checks = {
        "failed_at_most_0.5pct": p["failed_start_pct"] <= 0.5,
        "none_killed": p["sessions_killed"] == 0,
        "at_most_1.25x_oracle": p["x_oracle"] <= 1.25,
    }
    for rival in RIVALS:
        r = run[rival]
        checks[f"beats_{rival}"] = (
            p["failed_starts"] < r["failed_starts"] and p["node_hours"] <= r["node_hours"]
        )
    return checks


def spread(runs: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Mean, min and max of each column, per policy."""
    names = next(iter(runs.values())).keys()
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        out[name] = {}
        for col in COLUMNS:
            values = [run[name][col] for run in runs.values()]
            out[name][col] = {
                "mean": round(statistics.fmean(values), 3),
                "min": min(values),
                "max": max(values),
            }
    return out


def markdown(data: dict[str, Any]) -> str:
    seeds = ", ".join(str(s) for s in data["seeds"])
    back = data.get("reopen_after")
    came = f" Killed users start again {back} later." if back else ""
    lines = [
        f"July, 200 peak sessions, 8 seats per node, seeds {seeds}: mean (min to max).{came}",
        "",
        "| policy | failed starts | sessions killed | node-hours | x oracle |",
        "|---|---|---|---|---|",
    ]
    for name, cols in data["spread"].items():
        cells = []
        for col in COLUMNS:
            c = cols[col]
            digits = 3 if col == "x_oracle" else 1 if col == "failed_starts" else 0
            ends = 3 if col == "x_oracle" else 0
            mean = f"{c['mean']:,.{digits}f}"
            low, high = (f"{c[k]:,.{ends}f}" for k in ("min", "max"))
            cells.append(f"{mean} ({low} to {high})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "The goal, seed by seed (met in how many of them):", ""]
    total = len(data["seeds"])
    for check in next(iter(data["goal"].values())):
        met = sum(1 for g in data["goal"].values() if g[check])
        lines.append(f"- {check}: {met} of {total}")
    return "\n".join(lines) + "\n"


def plot(data: dict[str, Any], stem: str = "seeds") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, marker in zip(PLOTTED, ("*", "x", "+", "|", "o"), strict=True):
        runs = data["runs"].values()
        xs = [run[name]["node_hours"] for run in runs]
        ys = [run[name]["failed_starts"] for run in runs]
        killed = data["spread"][name]["sessions_killed"]["mean"]
        text = f"{name} ({killed:,.0f} killed)" if killed else name
        ax.scatter(xs, ys, marker=marker, s=70, label=text)
    ax.set_yscale("symlog", linthresh=10)
    ax.set_xlabel("node-hours (July)")
    ax.set_ylabel("failed starts")
    ax.set_title(f"One point per seed ({len(data['seeds'])} seeds): NASA July, 200 peak, 8 seats")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{stem}.png", dpi=110)
    plt.close(fig)


def compute(reopen_after: str | None = None) -> dict[str, Any]:
    extra = ("--reopen-after", reopen_after) if reopen_after else ()
    with ProcessPoolExecutor(2) as pool:  # two cores here
        done = pool.map(one, SEEDS, [extra] * len(SEEDS))
        runs = dict(zip((str(s) for s in SEEDS), done, strict=True))
    return {
        "seeds": list(SEEDS),
        "reopen_after": reopen_after,
        "spread": spread(runs),
        "goal": {seed: goal(run) for seed, run in runs.items()},
        "runs": runs,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="seeds.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--plot", action="store_true", help="only rewrite the .md and .png")
    parser.add_argument("--reopen-after", metavar="DURATION", help="killed users come back")
    args = parser.parse_args(argv)
    reopen_after: str | None = args.reopen_after
    stem = "seeds-reopen" if reopen_after else "seeds"
    title = "The July benchmark over seeds"
    if reopen_after:
        title += ", killed users coming back"
    return rerun_or_replot(
        ["--plot"] if args.plot else [],
        stem,
        title,
        lambda: compute(reopen_after),
        markdown,
        lambda data: plot(data, stem),
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
