"""The July benchmark with an EC2 warm pool of 0, 1, 2 and 4 stopped machines, and with a
warm pool of 1 and a shorter ``headroom.node_ready_time`` (most launches then start a warm
machine, Ready in about 40 s instead of 150 s).

    python bench/simulate/warm.py           # about 2 minutes on 2 cores

Runs the July scenario of run.py (the shipped rules/pools.yml, run as an ec2 pool) with
``autoscaler simulate --warm-pool N`` and the oracle, at the default warm ready time
(median 40 s, p90 60 s) and stopped price (0.008 per hour), and writes results/warm.json
(each run's summary of the policy, the oracle's node-hours) and results/warm.md (the
table in bench/simulate/README.md, "Warm pools").
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from run import COMMON, RESULTS, ROOT, SCENARIOS

from autoscaler.sim.cli import add_simulate_parser
from autoscaler.sim.setup import prepare, run_all

SHIPPED_READY = "80s"
VARIANTS = ((0, SHIPPED_READY), (1, SHIPPED_READY), (2, SHIPPED_READY), (4, SHIPPED_READY),
            (1, "40s"), (1, "30s"))  # fmt: skip
"""(warm_pool, headroom.node_ready_time) of each run."""
TRACE_NAME = "../shared/traces/nasa-http-1995-per-minute.csv"
POLICY = "policy:workers"


def rules_with(ready: str, into: Path) -> Path:
    """A copy of the shipped rules with another ``headroom.node_ready_time``."""
    for f in (ROOT / "rules").glob("*.yml"):
        shutil.copy(f, into / f.name)
    pools = into / "pools.yml"
    text = pools.read_text(encoding="utf-8")
    shipped = f"node_ready_time: {SHIPPED_READY}"
    if text.count(shipped) != 1:
        raise SystemExit(f"rules/pools.yml no longer has one {shipped!r}")
    pools.write_text(text.replace(shipped, f"node_ready_time: {ready}"), encoding="utf-8")
    return into


def one(variant: tuple[int, str]) -> dict[str, Any]:
    size, ready = variant
    parser = argparse.ArgumentParser(prog="autoscaler")
    add_simulate_parser(parser.add_subparsers(dest="command"))
    argv = ["simulate", *COMMON, *SCENARIOS["july"], "--baselines", "oracle"]
    argv += ["--warm-pool", str(size)]
    with tempfile.TemporaryDirectory() as tmp:
        if ready != SHIPPED_READY:
            argv[argv.index("--rules") + 1] = str(rules_with(ready, Path(tmp)))
        setup = prepare(parser.parse_args(argv))
        results = {r.name: r for r in run_all(setup)}
    policy, oracle = results[POLICY], results["oracle"]
    return {
        "warm_pool": size,
        "node_ready_time": ready,
        # as run.py records them: the paths within the project, not this machine's
        "params": {
            **setup.params_json,
            "trace": TRACE_NAME,
            "rules": "rules" if ready == SHIPPED_READY else f"rules, node_ready_time {ready}",
        },
        "policy": policy.summary(),
        "oracle_node_hours": round(oracle.node_hours, 2),
        "oracle_cost": round(oracle.cost, 2),
        "x_oracle": round(policy.node_hours / oracle.node_hours, 3),
    }


def markdown(runs: list[dict[str, Any]]) -> str:
    lines = [
        "July, 200 peak sessions, 8 seats per node, seed 1995, node ready time median 150 s "
        "(p90 200 s), warm ready time median 40 s (p90 60 s), 0.10 per node-hour, 0.008 per "
        "stopped warm-machine hour. x oracle: node-hours over the oracle's.",
        "",
        "| warm pool | node_ready_time | failed starts | sessions killed | node-hours "
        "| warm starts | stopped hours | stopped cost | cost | x oracle |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        p = run["policy"]
        cells = [
            str(run["warm_pool"]),
            run["node_ready_time"]
            + (" (shipped)" if run["node_ready_time"] == SHIPPED_READY else ""),
            f"{p['failed_starts']:,}",
            f"{p['sessions_killed']:,}",
            f"{p['node_hours']:,.0f}",
            f"{p.get('warm_starts', 0):,}",
            f"{p.get('warm_stopped_hours', 0.0):,.0f}",
            f"{p.get('warm_stopped_cost', 0.0):,.2f}",
            f"{p['cost']:,.2f}",
            f"{run['x_oracle']:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    with ProcessPoolExecutor(2) as pool:  # one run per core
        runs = list(pool.map(one, VARIANTS))
    (RESULTS / "warm.json").write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")
    text = markdown(runs)
    (RESULTS / "warm.md").write_text(f"# Warm pools\n\n{text}", encoding="utf-8")
    print(text + f"wrote {RESULTS / 'warm.json'} and warm.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
