"""Hot reload of the rules: re-validate when the files change, keep the last good set otherwise.

A broken edit never takes effect and never empties the running policies: the store keeps
serving the last valid set and reports what is wrong until the files are fixed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from autoscaler.rules.loader import Problem, RuleSource, load_sources, read_sources
from autoscaler.rules.schema import Policies

log = logging.getLogger(__name__)


class ReloadOutcome(StrEnum):
    UNCHANGED = "unchanged"
    """The files are byte for byte what was last read: nothing re-validated."""
    LOADED = "loaded"
    """The files changed and are valid: their policies are now in use."""
    INVALID = "invalid"
    """The files changed and have problems: the previous policies stay in use."""
    CHANGING = "changing"
    """The files changed again while being read: nothing validated, read again next time."""


SETTLE = 0.5
"""Seconds between the two reads of files that changed. An editor or ``cp`` writing a file
in place, or a ``git pull`` of several files, can be caught halfway, and half a file may
still parse (``max: 4`` of ``max: 40``): changed files count only when read twice alike."""


def fingerprint(sources: Sequence[RuleSource], problems: Sequence[Problem]) -> str:
    """A digest of every file's name and bytes (and of read errors, which are content too)."""
    h = hashlib.sha256()
    for s in sources:
        h.update(s.name.encode("utf-8", "surrogateescape") + b"\0")
        h.update(len(s.data).to_bytes(8, "big") + s.data)
    for p in problems:
        h.update(str(p).encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RulesStore:
    """The policies in use, read from a rules file or folder.

    Before the first valid load ``policies`` is empty, so nothing is scaled.
    """

    def __init__(
        self,
        path: Path,
        clock: Callable[[], datetime] = _utcnow,
        settle: float = SETTLE,
    ) -> None:
        self.path = path
        self._clock = clock
        self._settle = settle
        self.policies = Policies()
        self.problems: list[Problem] = []
        """What is wrong with the files as they are now; empty when they are in use."""
        self.generation = 0
        """Incremented by each valid load; 0 until the first one."""
        self.loaded_at: datetime | None = None
        """When the policies in use were loaded."""
        self.files: list[str] = []
        """The files of the policies in use."""
        self._fingerprint: str | None = None

    def refresh(self) -> ReloadOutcome:
        """Re-read the files; validate and swap in the policies only when the bytes changed
        and a second read ``settle`` seconds later finds the same bytes."""
        sources, read_problems = read_sources([self.path])
        digest = fingerprint(sources, read_problems)
        if digest == self._fingerprint:
            return ReloadOutcome.UNCHANGED
        time.sleep(self._settle)
        if fingerprint(*read_sources([self.path])) != digest:
            # not remembered: the next refresh sees a change and reads twice again
            log.info("rules %s are being written; reading them again next pass", self.path)
            return ReloadOutcome.CHANGING
        self._fingerprint = digest
        result = load_sources(sources, read_problems)
        if result.policies is None:
            self.problems = result.problems
            kept = f"keeping generation {self.generation}" if self.generation else "nothing loaded"
            for p in result.problems:
                log.error("rules invalid (%s): %s", kept, p)
            return ReloadOutcome.INVALID
        self.policies = result.policies
        self.problems = []
        self.files = result.files
        self.generation += 1
        self.loaded_at = self._clock()
        log.info(
            "rules loaded: generation %d, %d files, %d signals, %d service policies",
            self.generation,
            len(result.files),
            len(self.policies.signals),
            len(self.policies.services),
        )
        return ReloadOutcome.LOADED
