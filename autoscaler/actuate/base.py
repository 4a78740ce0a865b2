"""What every actuator returns, and the one method it has."""

from __future__ import annotations

from typing import Protocol

from autoscaler.decide.plan_types import Action
from autoscaler.model import Frozen


class ActionResult(Frozen):
    """The outcome of one action: done, refused or failed (``ok``), and why.

    ``skipped``: not attempted because an earlier action of the pass failed; that
    failure is the one reported, so a skip does not count as a failure of its own.
    """

    action: Action
    ok: bool
    message: str
    dry_run: bool = False
    skipped: bool = False


class Actuator(Protocol):
    def execute(self, action: Action) -> ActionResult:
        """Carry out ``action``; report failures in the result, never by raising."""
        ...
