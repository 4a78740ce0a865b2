"""An actuator that only says what it would do: the same Plan, no writes."""

from __future__ import annotations

import logging

from autoscaler.actuate.base import ActionResult
from autoscaler.decide.plan_types import Action, ScaleService

log = logging.getLogger(__name__)


def describe(action: Action) -> str:
    if isinstance(action, ScaleService):
        return (
            f"would scale {action.service} from {action.current} to {action.desired}"
            f" ({action.reason})"
        )
    return f"would {action.kind} ({action!r})"


class DryRunActuator:
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log

    def execute(self, action: Action) -> ActionResult:
        message = describe(action)
        self._log.info("%s", message)
        return ActionResult(action=action, ok=True, message=message, dry_run=True)
