"""The decision ledger: one JSON line per pass, size-rotated.

Answers "why did it (not) scale at 03:12?" after the fact: the snapshot digest, every
action and its result, and every decision with all its reasons.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

from autoscaler.actuate.base import ActionResult
from autoscaler.decide.plan_types import Plan
from autoscaler.snapshot import Snapshot

log = logging.getLogger(__name__)

REPORT_EVERY = 3600.0
"""Seconds between error lines while the ledger stays unwritable (not one per pass)."""


class Ledger:
    """Appends each line with one unbuffered write, and takes back what a failed write left.

    A ledger that cannot be written (a full disk, a volume mounted wrong) never stops the
    sidecar nor fails a pass: the error is logged, the line is lost, and every pass tries
    again. A partial line is truncated away, so every line of the file parses.
    """

    def __init__(self, path: Path, max_bytes: int = 10 * 1024 * 1024, backups: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = max(0, backups)
        self._lock = threading.Lock()
        self._reported_at = float("-inf")
        self.error: str | None = None
        """Why the last line could not be written; None once one was."""
        try:  # report a path it cannot write at start, not at the first pass
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self._failed(e)

    def record(
        self,
        *,
        trigger: str,
        snapshot: Snapshot,
        plan: Plan,
        results: list[ActionResult],
        rules_generation: int,
        dry_run: bool,
    ) -> bool:
        """Append the line of a pass; False (and logged) when it could not be written."""
        line = entry_json(
            trigger=trigger,
            snapshot=snapshot,
            plan=plan,
            results=results,
            rules_generation=rules_generation,
            dry_run=dry_run,
        )
        data = (line + "\n").encode("utf-8")
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._append(data)
            except OSError as e:
                self._failed(e)
                return False
            if self.error is not None:
                self.error = None
                log.info("ledger %s: written again", self.path)
            return True

    def _append(self, data: bytes) -> None:
        # Opened per line: a file removed or moved by hand is created again, not written
        # on unseen while it holds the disk space.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            info = os.fstat(fd)
            regular = stat.S_ISREG(info.st_mode)
            size = info.st_size
            if regular and self.max_bytes > 0 and size > 0 and size + len(data) > self.max_bytes:
                os.close(fd)
                fd = -1
                self._rotate()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                size = os.fstat(fd).st_size
            try:
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(f"only {written} of {len(data)} bytes written")
            except OSError:
                if regular:  # half a line would be glued to the next one
                    try:
                        os.ftruncate(fd, size)
                    except OSError:
                        log.debug("ledger: truncating a partial line failed", exc_info=True)
                raise
        finally:
            if fd >= 0:
                os.close(fd)

    def _rotate(self) -> None:
        """decisions.jsonl -> .1 -> .2 ...; with no backups the file starts again empty."""
        if self.backups == 0:
            os.truncate(self.path, 0)
            return
        for i in range(self.backups - 1, 0, -1):
            older = Path(f"{self.path}.{i}")
            if older.exists():
                os.replace(older, f"{self.path}.{i + 1}")
        os.replace(self.path, f"{self.path}.1")

    def _failed(self, e: OSError) -> None:
        now = time.monotonic()
        # the path named: the folder on the way may be what is wrong
        why = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else str(e)
        if self.error is None or now - self._reported_at >= REPORT_EVERY:
            log.error(
                "ledger %s: cannot write (%s); passes go on unrecorded until it can", self.path, why
            )
            self._reported_at = now
        self.error = why

    def close(self) -> None:
        """Nothing is held open between lines; kept for callers."""


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
