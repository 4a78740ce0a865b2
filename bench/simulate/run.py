"""Regenerate the simulation benchmark: the NASA-HTTP 1995 trace through the pool planner.

    python bench/simulate/run.py            # every scenario, one after the other (~2.5 min)
    python bench/simulate/run.py july       # one scenario

Each scenario runs ``autoscaler simulate`` with the parameters below (all recorded in its
summary.json) and writes bench/simulate/results/<scenario>/{summary.json,report.md,
timeline.png}. The policy under test is the shipped rules/pools.yml itself (pool `workers`,
resized to 8 seats per node and 40 nodes); bench/simulate/results/TABLES.md collects the
comparison tables and results/README-table.md the July one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autoscaler.sim.cli import add_simulate_parser
from autoscaler.sim.report import table, uses_table, write
from autoscaler.sim.setup import prepare, run_all

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT.parent / "shared" / "traces" / "nasa-http-1995-per-minute.csv"
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
COMMON = [
    "--trace", str(TRACE), "--rules", str(ROOT / "rules"), "--pool", "workers",
    "--peak-sessions", "200", "--seats-per-node", "8", "--max-nodes", "40",
    "--ready-time", "150s", "--ready-time-p90", "200s", "--tick", "15s",
    "--warmup", "1h", "--seed", "1995", "--no-progress",
]  # fmt: skip
SCENARIOS = {
    "july": ["--from", "1995-07-01T00:00:00-04:00", "--to", "1995-07-28T13:33:00-04:00"],
    "august": ["--from", "1995-08-01T00:00:00-04:00", "--to", "1995-09-01T00:00:00-04:00"],
    "two-months": [],
    "july-reopen": [
        "--from", "1995-07-01T00:00:00-04:00", "--to", "1995-07-28T13:33:00-04:00",
        "--reopen-after", "1m",
    ],
}  # fmt: skip
START = "<!-- results:start (written by run.py) -->"
END = "<!-- results:end -->"
USES_HEAD = "\nWhere the node-hours go (docs/simulate.md):\n\n"
NOTES = {
    "july": "The July piece (1995-07-01 to 07-28 13:32 EDT): the benchmark's goal.",
    "august": "The August piece, with the 37.7 h outage from 08-01 14:52 (no demand at all).",
    "two-months": "The whole trace (both pieces; the gap between them has no demand).",
    "july-reopen": "July again, but a user whose session a drain killed opens the app again "
    "a minute later, for what was left of it (`--reopen-after 1m`).",
}


def run(name: str) -> str:
    parser = argparse.ArgumentParser(prog="autoscaler")
    add_simulate_parser(parser.add_subparsers(dest="command"))
    out = RESULTS / name
    argv = ["simulate", *COMMON, *SCENARIOS[name], "--out", str(out)]
    args = parser.parse_args(argv)
    began = time.perf_counter()
    setup = prepare(args)
    results = run_all(setup, jobs=2)  # as `autoscaler simulate` on two cores
    took = time.perf_counter() - began
    params = {**setup.params_json, "trace": "../shared/traces/nasa-http-1995-per-minute.csv"}
    params["rules"] = "rules"
    params["wall_seconds"] = round(took, 1)
    command = "python bench/simulate/run.py " + name
    write(out, params, results, command)
    policy = results[0]
    print(
        f"{name}: {took:.0f} s in all; the policy's {policy.plan_calls} planner passes "
        f"took {policy.seconds:.0f} s",
        file=sys.stderr,
    )
    head = f"### {name}\n\n{NOTES[name]} {len(setup.workload.arrivals):,} arrivals.\n\n"
    return head + table(results) + USES_HEAD + uses_table(results)


def rerun_or_replot(
    argv: list[str],
    stem: str,
    title: str,
    compute: Callable[[], dict[str, Any]],
    markdown: Callable[[dict[str, Any]], str],
    plot: Callable[[dict[str, Any]], None],
) -> int:
    """A multi-run benchmark's main: compute (or, with --plot, reload) results/STEM.json,
    then write STEM.md and STEM.png from it."""
    path = RESULTS / f"{stem}.json"
    if argv == ["--plot"]:
        data = json.loads(path.read_text())
    else:
        data = compute()
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    text = markdown(data)
    (RESULTS / f"{stem}.md").write_text(f"# {title}\n\n{text}", "utf-8")
    plot(data)
    print(text + f"wrote {path}, {stem}.md and {stem}.png")
    return 0


def main(argv: list[str]) -> int:
    names = argv or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario {', '.join(unknown)}: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    if not TRACE.exists():
        print(f"{TRACE} not found", file=sys.stderr)
        return 1
    # one at a time, each on both cores, so wall_seconds is what the command takes here
    parts = [run(n) for n in names]
    text = "\n".join(parts)
    print(text)
    if not argv:
        header = "# Simulation benchmark results\n\nRegenerate: `python bench/simulate/run.py`\n\n"
        (RESULTS / "TABLES.md").write_text(header + text, encoding="utf-8")
        july = parts[names.index("july")].split("\n\n", 2)[2].split(USES_HEAD)[0]
        (RESULTS / "README-table.md").write_text(
            "Simulated on the NASA-HTTP July 1995 trace (200 peak sessions, 8 seats per node, "
            "150 s median ready time): the shipped `rules/pools.yml` (`policy:workers`) against "
            "the usual alternatives. Regenerate: `python bench/simulate/run.py`\n\n" + july,
            encoding="utf-8",
        )
        summaries = {n: json.loads((RESULTS / n / "summary.json").read_text()) for n in names}
        (RESULTS / "all.json").write_text(json.dumps(summaries, indent=1) + "\n", "utf-8")
        readme = HERE / "README.md"
        before, rest = readme.read_text(encoding="utf-8").split(START, 1)
        after = rest.split(END, 1)[1]
        readme.write_text(f"{before}{START}\n{text}{END}{after}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
