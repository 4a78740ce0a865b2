"""Human and JSON views of a plan."""

from __future__ import annotations

import json
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from autoscaler.decide.plan_types import Plan
from autoscaler.snapshot import Snapshot


def plan_dict(plan: Plan, snapshot: Snapshot | None = None) -> dict[str, Any]:
    """The plan as JSON-ready data (memory is internal and left out)."""
    out: dict[str, Any] = plan.model_dump(mode="json", exclude={"memory"})
    if snapshot is not None:
        out["sources"] = {k: v.model_dump(mode="json") for k, v in snapshot.sources.items()}
        out["signals"] = {
            k: {"value": v.value, "error": v.error} for k, v in snapshot.signals.items()
        }
    return out


def print_plan_json(plan: Plan, snapshot: Snapshot | None, out: TextIO) -> None:
    json.dump(plan_dict(plan, snapshot), out, indent=2)
    out.write("\n")


def print_plan_table(plan: Plan, snapshot: Snapshot, out: TextIO) -> None:
    console = Console(file=out, width=140, highlight=False, soft_wrap=False)
    console.print(f"plan at {plan.at.isoformat()}  snapshot {plan.snapshot_digest}")
    bad = [f"{k}: {v.error}" for k, v in sorted(snapshot.sources.items()) if not v.ok]
    for line in bad:
        console.print(f"[yellow]source {line}[/yellow]")
    sig = Table("signal", "source", "value", "note", title="signals", title_justify="left")
    for name, v in sorted(snapshot.signals.items()):
        sig.add_row(name, v.source, "-" if v.value is None else f"{v.value:g}", v.error or "")
    console.print(sig)
    table = Table(
        "policy",
        "subject",
        "outcome",
        "current",
        "desired",
        "reasons",
        title="decisions",
        title_justify="left",
    )
    for d in plan.decisions:
        table.add_row(
            d.policy,
            d.subject,
            d.outcome,
            "-" if d.current is None else str(d.current),
            "-" if d.desired is None else str(d.desired),
            "\n".join(d.reasons),
        )
    console.print(table)
    if plan.actions:
        for a in plan.actions:
            console.print(f"action: {a.kind} {a.model_dump(exclude={'kind'})}")
    else:
        console.print("no actions")
