"""The decision ledger: one JSON line per pass, size-rotated.

Answers "why did it (not) scale at 03:12?" after the fact: the snapshot digest, every
action and its result, and every decision with all its reasons.
"""

from __future__ import annotations

import json
import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from autoscaler.actuate.base import ActionResult
from autoscaler.decide.plan_types import Plan
from autoscaler.snapshot import Snapshot


class Ledger:
    def __init__(self, path: Path, max_bytes: int = 10 * 1024 * 1024, backups: int = 5) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The stdlib handler gives us size rotation with atomic renames; no logger is involved.
        self._handler = RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self.path = path

    def record(
        self,
        *,
        trigger: str,
        snapshot: Snapshot,
        plan: Plan,
        results: list[ActionResult],
        rules_generation: int,
        dry_run: bool,
    ) -> None:
        self._handler.handle(
            logging.makeLogRecord(
                {
                    "msg": entry_json(
                        trigger=trigger,
                        snapshot=snapshot,
                        plan=plan,
                        results=results,
                        rules_generation=rules_generation,
                        dry_run=dry_run,
                    )
                }
            )
        )

    def close(self) -> None:
        self._handler.close()


def entry_json(
    *,
    trigger: str,
    snapshot: Snapshot,
    plan: Plan,
    results: list[ActionResult],
    rules_generation: int,
    dry_run: bool,
) -> str:
    entry: dict[str, Any] = {
        "at": plan.at.isoformat(),
        "trigger": trigger,
        "snapshot": plan.snapshot_digest or snapshot.digest(),
        "rules_generation": rules_generation,
        "dry_run": dry_run,
        "sources": {k: (None if v.ok else v.error) for k, v in sorted(snapshot.sources.items())},
        "actions": [
            {
                **r.action.model_dump(mode="json"),
                "ok": r.ok,
                **({"skipped": True} if r.skipped else {}),
                "result": r.message,
            }
            for r in results
        ],
        "decisions": [d.model_dump(mode="json") for d in plan.decisions],
    }
    return json.dumps(entry, separators=(",", ":"), sort_keys=False)
