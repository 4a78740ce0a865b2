"""The decision ledger: one parseable JSON line per pass, rotated by size."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from autoscaler.actuate.base import ActionResult
from autoscaler.decide.plan_types import Decision, Plan, ScaleService
from autoscaler.ledger import Ledger
from autoscaler.snapshot import Snapshot, SourceStatus, SwarmState

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _entry_parts() -> tuple[Snapshot, Plan, list[ActionResult]]:
    snap = Snapshot(
        taken_at=NOW,
        swarm=SwarmState(),
        sources={
            "prometheus": SourceStatus(name="prometheus", ok=False, error="connection refused")
        },
    )
    action = ScaleService(service="api", current=2, desired=4, reason="api_rps=80 -> 4")
    plan = Plan(
        at=NOW,
        snapshot_digest=snap.digest(),
        actions=(action,),
        decisions=(
            Decision(
                policy="api",
                subject="api",
                outcome="scale",
                current=2,
                desired=4,
                reasons=("api_rps=80 (target 20/replica) -> 4",),
            ),
        ),
    )
    return snap, plan, [ActionResult(action=action, ok=True, message="scaled api 2 -> 4")]


def record(ledger: Ledger, dry_run: bool = False) -> bool:
    """The line of one pass of ``_entry_parts``."""
    snap, plan, results = _entry_parts()
    return ledger.record(
        trigger="schedule",
        snapshot=snap,
        plan=plan,
        results=results,
        rules_generation=1,
        dry_run=dry_run,
    )


def test_one_line_per_pass_with_reasons(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l" / "decisions.jsonl")
    snap, _, _ = _entry_parts()
    for _ in range(3):
        record(ledger)
    ledger.close()
    lines = (tmp_path / "l" / "decisions.jsonl").read_text().splitlines()
    assert len(lines) == 3
    e = json.loads(lines[0])
    assert e["snapshot"] == snap.digest()
    assert e["sources"] == {"prometheus": "connection refused"}
    assert e["actions"][0]["desired"] == 4 and e["actions"][0]["ok"] is True
    assert e["decisions"][0]["reasons"] == ["api_rps=80 (target 20/replica) -> 4"]


def test_rotates_by_size_and_keeps_backups(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    ledger = Ledger(path, max_bytes=2000, backups=2)
    for _ in range(40):
        record(ledger, dry_run=True)
    ledger.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["decisions.jsonl", "decisions.jsonl.1", "decisions.jsonl.2"]
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 2000
        for line in p.read_text().splitlines():
            assert json.loads(line)["dry_run"] is True
