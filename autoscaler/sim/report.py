"""Write a run's results: summary.json, report.md (the comparison table) and timeline.png."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autoscaler.sim.runner import USES, RunResult

COLUMNS = (
    ("sessions", "sessions"),
    ("failed_starts", "failed starts"),
    ("failed_start_pct", "failed %"),
    ("sessions_killed", "killed"),
    ("node_hours", "node-hours"),
    ("cost", "cost"),
    ("seat_wait_p95_s", "seat wait p95 (s)"),
    ("actions", "actions"),
)


def summary(params: Mapping[str, Any], results: Sequence[RunResult]) -> dict[str, Any]:
    return {"params": dict(params), "results": {r.name: r.summary() for r in results}}


def table(results: Sequence[RunResult], oracle: str = "oracle") -> str:
    """The comparison as a Markdown table, with node-hours relative to the oracle."""
    base = next((r.node_hours for r in results if r.name == oracle), 0.0)
    columns = list(COLUMNS)
    if any(r.sessions_reopened for r in results):  # only when killed users come back
        columns.insert(4, ("sessions_reopened", "reopened"))
    if any(r.warm_price is not None for r in results):  # only with a warm pool
        at = columns.index(("node_hours", "node-hours")) + 1
        columns[at:at] = [("warm_starts", "warm starts"), ("warm_stopped_hours", "stopped h")]
    head = ["policy", *(title for _, title in columns), "x oracle"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        s = r.summary()
        ratio = f"{r.node_hours / base:.2f}" if base > 0 else "-"
        cells = [r.name, *(_cell(s[k]) for k, _ in columns), ratio]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


USE_TITLES = {
    "sessions": "holding sessions",
    "free_active": "free, active nodes",
    "free_paused": "free, paused nodes emptying",
    "booting": "booting",
    "retiring": "retiring",
}


def uses_table(results: Sequence[RunResult]) -> str:
    """Where each policy's node-hours went (USES), in node-hours and shares."""
    head = ["policy", *(USE_TITLES[k] for k in USES)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [r.name]
        for k in USES:
            share = r.usage.get(k, 0.0)
            cells.append(f"{r.node_hours * share:,.0f} ({share:.0%})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) >= 1 or v == 0 else f"{v:.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def markdown(params: Mapping[str, Any], results: Sequence[RunResult], command: str) -> str:
    rows = "\n".join(f"- {k}: `{v}`" for k, v in params.items())
    detail = "\n".join(
        f"- {r.name}: "
        + (", ".join(f"{k} {n}" for k, n in sorted(r.actions.items())) or "no actions")
        + (f"; {r.plan_calls} planner passes in {r.seconds:.1f} s" if r.plan_calls else "")
        for r in results
    )
    return (
        "# Simulation report\n\n"
        f"Command:\n\n    {command}\n\n"
        f"## Results\n\n{table(results)}\n"
        "failed %: starts that found no seat within the service wait time; killed: sessions "
        "ended by a drain; reopened (with --reopen-after): their users' new starts, whose "
        "failures count as failed starts; node-hours: machine time from launch to "
        "termination; oracle: ceil(concurrent sessions / seats) paid from one ready time "
        "ahead, the lower bound.\n\n"
        f"{_warm(params)}"
        f"{_carried(params)}"
        f"## Where the node-hours go\n\n{uses_table(results)}\n"
        "Seats by use, sampled at every pass, in node-hours (seat-hours / seats per node). "
        "Holding sessions is the same for every policy that ends no session early; a policy "
        "that kills sessions pays less for it. Free on paused nodes: nodes that take no new "
        "session and wait for their last ones to end (their seats are reserve).\n\n"
        f"## Actions\n\n{detail}\n\n## Parameters\n\n{rows}\n"
    )


def _warm(params: Mapping[str, Any]) -> str:
    """What the warm-pool columns mean, in a run with a warm pool."""
    if not params.get("warm_pool"):
        return ""
    return (
        f"Warm pool of {params['warm_pool']}: warm starts are launches that started a stopped "
        "warm machine; stopped h: hours warm machines waited stopped, at "
        f"{params['warm_price_per_hour']:g} per hour, included in the cost. Node-hours "
        "include the warm machines' time pulling images, paid as nodes.\n\n"
    )


def _carried(params: Mapping[str, Any]) -> str:
    """The sessions running when the window opened, when there were any."""
    n = params.get("carried_in") or 0
    if not n:
        return ""
    return (
        f"Carried in: {n:,} session{'s' if n != 1 else ''} already running when the window "
        "opened. Every policy and the oracle start with them seated on the initial pool; "
        "they are not counted as sessions, starts or failed starts.\n\n"
    )


def write(
    out: Path,
    params: Mapping[str, Any],
    results: Sequence[RunResult],
    command: str,
    plot: bool = True,
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "summary.json", out / "report.md"]
    written[0].write_text(json.dumps(summary(params, results), indent=2) + "\n", "utf-8")
    written[1].write_text(markdown(params, results, command), "utf-8")
    if plot:
        written.append(timeline_png(out / "timeline.png", results))
    return written


def timeline_png(path: Path, results: Sequence[RunResult]) -> Path:
    """Demand and seats, nodes by state (of the first result: the policy under test),
    and failed starts over time for every result."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError(
            f"{path.name} needs matplotlib (pip install matplotlib), or use --no-plot"
        ) from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main = results[0]
    hours = [s.t / 3600 for s in main.timeline]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(12, 9), sharex=True)
    ax1.plot(hours, [s.demand for s in main.timeline], label="demand (sessions)", lw=0.8)
    ax1.plot(hours, [s.seats for s in main.timeline], label=f"seats ({main.name})", lw=0.8)
    oracle = next((r for r in results if r.name == "oracle"), None)
    if oracle is not None:
        ax1.plot(
            [s.t / 3600 for s in oracle.timeline],
            [s.seats for s in oracle.timeline],
            label="seats (oracle)",
            lw=0.6,
            ls="--",
        )
    ax1.set_ylabel("sessions / seats")
    ax1.legend(loc="upper right", fontsize=8)
    states = ("active", "launching", "paused", "draining")
    ax2.stackplot(
        hours,
        *[[s.nodes.get(k, 0) for s in main.timeline] for k in states],
        labels=list(states),
    )
    ax2.set_ylabel(f"nodes ({main.name})")
    ax2.legend(loc="upper right", fontsize=8)
    for r in results:
        if r.name == "oracle":
            continue
        ax3.plot([s.t / 3600 for s in r.timeline], [s.failed for s in r.timeline], label=r.name)
    ax3.set_ylabel("failed starts (cumulative)")
    ax3.set_xlabel("hours since the window's start")
    ax3.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
