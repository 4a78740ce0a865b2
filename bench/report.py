"""Benchmarks write their figures here: bench/results/<name>.json (+ a plot where useful)."""

from __future__ import annotations

import json
import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, round(p * (len(ms) - 1)))], 3)

    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 3),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(ms[-1], 3),
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "benchmark": name,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        **data,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(data, indent=2))
    return path


def plot_samples(name: str, samples_s: list[float], goal_ms: float, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = [s * 1000 for s in samples_s]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(range(1, len(ms) + 1), ms, ".", markersize=4, label="each run")
    ax.axhline(goal_ms, color="red", linestyle="--", label=f"goal {goal_ms:g} ms")
    ax.axhline(statistics.median(ms), color="green", label=f"median {statistics.median(ms):.1f} ms")
    ax.set_xlabel("run")
    ax.set_ylabel("ms")
    ax.set_title(title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _cpus() -> int:
    import os

    return os.cpu_count() or 0
