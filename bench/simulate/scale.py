"""The July benchmark at several pool sizes: how the shipped policy compares with the
baselines as the peak grows from a handful of nodes to over a hundred.

    python bench/simulate/scale.py          # about 6 minutes on 2 cores
    python bench/simulate/scale.py --plot   # only rewrite scale.md and scale.png

Runs the July scenario of run.py (the shipped rules/pools.yml, `hpa-style`,
`cluster-autoscaler-style` and the oracle) for each peak in PEAKS and seed in SEEDS, with
`--max-nodes` raised with the peak so that no policy meets the cap, and writes
results/scale.json (every run and the goal's checks), results/scale.md (the table) and
results/scale.png (failed starts and node-hours against the peak).
"""

from __future__ import annotations

import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from run import RESULTS, rerun_or_replot
from seeds import POLICY, RIVALS, goal, july

PEAKS = (100, 200, 400, 800)
SEEDS = (1995, 1, 2)
SHOWN = (POLICY, *RIVALS)
Job = tuple[int, int]
"""(peak sessions, seed)"""


def max_nodes(peak: int) -> int:
    return max(40, peak // 5)


def one(job: Job) -> dict[str, dict[str, Any]]:
    peak, seed = job
    extra = ["--peak-sessions", str(peak), "--max-nodes", str(max_nodes(peak))]
    extra += ["--baselines", ",".join((*RIVALS, "oracle"))]
    return july(seed, *extra)[2]


def means(data: dict[str, Any], peak: int, name: str, col: str) -> float:
    return statistics.fmean(data["runs"][f"{peak}/{s}"][name][col] for s in data["seeds"])


def markdown(data: dict[str, Any]) -> str:
    seeds = ", ".join(str(s) for s in data["seeds"])
    lines = [
        f"July, 8 seats per node, 150 s median ready time; mean over seeds {seeds}.",
        "",
        "| peak sessions | policy | failed starts | sessions killed | node-hours | x oracle |",
        "|---|---|---|---|---|---|",
    ]
    for peak in data["peaks"]:
        for name in SHOWN:
            cells = [
                f"{means(data, peak, name, 'failed_starts'):,.1f}",
                f"{means(data, peak, name, 'sessions_killed'):,.0f}",
                f"{means(data, peak, name, 'node_hours'):,.0f}",
                f"{means(data, peak, name, 'x_oracle'):.3f}",
            ]
            lines.append(f"| {peak} | {name} | " + " | ".join(cells) + " |")
    lines += ["", "The goal's checks, seed by seed (met in how many of them):", ""]
    checks = list(next(iter(data["goal"].values())))
    lines += ["| peak sessions | " + " | ".join(checks) + " |", "|---|" + "---|" * len(checks)]
    for peak in data["peaks"]:
        runs = [data["goal"][f"{peak}/{s}"] for s in data["seeds"]]
        met = [f"{sum(1 for g in runs if g[c])} of {len(runs)}" for c in checks]
        lines.append(f"| {peak} | " + " | ".join(met) + " |")
    return "\n".join(lines) + "\n"


def plot(data: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peaks = data["peaks"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, marker in zip(SHOWN, ("*", "x", "+"), strict=True):
        failed = [means(data, p, name, "failed_starts") for p in peaks]
        ratio = [means(data, p, name, "x_oracle") for p in peaks]
        killed = [
            means(data, p, name, "sessions_killed") / means(data, p, name, "sessions")
            for p in peaks
        ]
        label = f"{name} (kills {min(killed):.0%} to {max(killed):.0%})" if any(killed) else name
        ax1.plot(peaks, failed, marker=marker, ms=9, label=label)
        ax2.plot(peaks, ratio, marker=marker, ms=9, label=label)
    ax1.set_yscale("symlog", linthresh=1)
    ax1.set_ylim(bottom=0)
    ax1.set_ylabel("failed starts (mean over seeds)")
    ax2.set_ylabel("node-hours / oracle (mean over seeds)")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(peaks, [str(p) for p in peaks])
        ax.set_xlabel("peak concurrent sessions")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("NASA July, 8 seats per node: the shipped policy and the baselines by pool size")
    fig.tight_layout()
    fig.savefig(RESULTS / "scale.png", dpi=110)
    plt.close(fig)


def compute() -> dict[str, Any]:
    jobs = [(p, s) for p in sorted(PEAKS, reverse=True) for s in SEEDS]  # longest first
    with ProcessPoolExecutor(2) as pool:  # two cores here
        runs = {f"{p}/{s}": r for (p, s), r in zip(jobs, pool.map(one, jobs), strict=True)}
    return {
        "peaks": list(PEAKS),
        "seeds": list(SEEDS),
        "max_nodes": {str(p): max_nodes(p) for p in PEAKS},
        "goal": {key: goal(run) for key, run in runs.items()},
        "runs": runs,
    }


def main(argv: list[str]) -> int:
    title = "The July benchmark by pool size"
    return rerun_or_replot(argv, "scale", title, compute, markdown, plot)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
