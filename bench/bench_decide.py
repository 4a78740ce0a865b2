"""decide alone: 200 nodes, 5,000 session tasks, 100 service policies (goal: median < 20 ms)."""

from __future__ import annotations

import time
from datetime import timedelta

from autoscaler.decide import plan
from autoscaler.decide.plan_types import Memory
from bench.report import plot_samples, summary_ms, write_result
from bench.synthetic import big_snapshot

RUNS = 60


def main() -> None:
    snap, policies = big_snapshot(nodes=200, tasks=5000, policies=100)
    memory = Memory()
    plan(snap, policies, memory)  # warm-up: imports, caches
    samples = []
    for i in range(RUNS):
        # advance the clock like the live loop does (one pass per 15 s)
        now = snap.taken_at + timedelta(seconds=15 * (i + 1))
        snap_i = snap.model_copy(update={"taken_at": now})
        t0 = time.perf_counter()
        result = plan(snap_i, policies, memory)
        samples.append(time.perf_counter() - t0)
        memory = result.memory
    stats = summary_ms(samples)
    write_result(
        "decide",
        {
            "params": {"nodes": 200, "session_tasks": 5000, "policies": 100, "runs": RUNS},
            "goal": "median < 20 ms",
            "met": stats["median_ms"] < 20,
            "timing": stats,
            "decisions": len(result.decisions),
        },
    )
    plot_samples("decide", samples, 20, "decide: 200 nodes, 5,000 tasks, 100 policies")


if __name__ == "__main__":
    main()
