"""Sweep the shipped pool's headroom and scale-in settings on one window of the trace.

    python bench/simulate/sweep.py [FROM TO]     # default: the July piece

Prints one line per setting: failed starts %, sessions killed, node-hours / oracle, and the
pause, resume and launch counts. Two worker processes; the arrivals and the ready-time draws
are the same for every setting (seed 1995).
"""

from __future__ import annotations

import itertools
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from autoscaler.rules.loader import load_rules
from autoscaler.rules.pools import PoolPolicy
from autoscaler.sim.arrivals import Workload, from_rates
from autoscaler.sim.cluster import ReadyTime
from autoscaler.sim.planner import PlannerController
from autoscaler.sim.runner import SimParams, simulate, simulate_oracle
from autoscaler.sim.setup import override
from autoscaler.sim.trace import parse_time, read_rates

HERE = Path(__file__).resolve().parent
TRACE = HERE.parents[2] / "shared" / "traces" / "nasa-http-1995-per-minute.csv"
PARAMS = SimParams(
    seats_per_node=8, max_nodes=40, ready_time=ReadyTime(150, 200), warmup=3600, seed=1995
)
JULY = ("1995-07-01T00:00:00-04:00", "1995-07-28T13:33:00-04:00")
GRID = list(
    itertools.product(
        (0, 2, 4),  # headroom.seats
        ("30s", "1m", "90s", "2m"),  # headroom.node_ready_time
        ("2m", "3m", "5m"),  # scale_in.unneeded_for
        (1,),  # scale_in.nodes_per_step
    )
)


def workload(start: str, end: str) -> Workload:
    return from_rates(read_rates(TRACE, parse_time(start), parse_time(end)), 200, PARAMS.seed)


def one(job: tuple[Workload, tuple[Any, ...]]) -> str:
    w, (seats, ready, unneeded, step) = job
    policies = load_rules(HERE.parents[1] / "rules").policies
    assert policies is not None
    data = override(policies.pools["workers"], PARAMS.seats_per_node, PARAMS.max_nodes).model_dump()
    data["headroom"].update(seats=seats, node_ready_time=ready)
    data["scale_in"].update(unneeded_for=unneeded, nodes_per_step=step)
    pools = {"workers": PoolPolicy.model_validate(data)}
    policies = policies.model_copy(update={"pools": pools})
    r = simulate(w, PlannerController("p", "workers", policies, w.start), PARAMS)
    oracle = simulate_oracle(w, PARAMS).node_hours
    s = r.summary()
    a = r.actions
    return (
        f"seats={seats} ready={ready} unneeded={unneeded} step={step}: "
        f"failed {s['failed_start_pct']}% killed {s['sessions_killed']} "
        f"x oracle {r.node_hours / oracle:.3f} "
        f"(pause {a['pause_node']}, resume {a['resume_node']}, launch {a['launch_nodes']})"
    )


def main(argv: list[str]) -> int:
    start, end = argv if len(argv) == 2 else JULY
    w = workload(start, end)
    with ProcessPoolExecutor(2) as pool:
        for line in pool.map(one, [(w, g) for g in GRID]):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
