"""An actuator that only says what it would do, for every action kind: the same Plan, no writes."""

from __future__ import annotations

import logging

from autoscaler.actuate.base import ActionResult
from autoscaler.decide.plan_types import (
    Action,
    DrainNode,
    FillWarmPool,
    LabelNode,
    LaunchNodes,
    Notify,
    PauseNode,
    RemoveNode,
    ResumeNode,
    RetireWarmMachine,
    ScaleService,
    TerminateInstance,
)

log = logging.getLogger(__name__)


def describe(action: Action) -> str:
    """What the action would do, as one line: "would ..."."""
    if isinstance(action, ScaleService):
        return (
            f"would scale {action.service} from {action.current} to {action.desired}"
            f" ({action.reason})"
        )
    if isinstance(action, LaunchNodes):
        what = f"launch {action.count} node(s) for pool {action.pool} ({action.provider})"
    elif isinstance(action, FillWarmPool):
        what = f"add {action.count} machine(s) to the warm pool of {action.pool}"
    elif isinstance(action, RetireWarmMachine):
        what = f"terminate warm-pool machine {action.instance_id} of {action.pool}"
    elif isinstance(action, TerminateInstance):
        what = f"terminate {action.instance_id} of pool {action.pool}"
    elif isinstance(action, PauseNode):
        what = f"pause {action.hostname}"
    elif isinstance(action, ResumeNode):
        what = f"resume {action.hostname}"
    elif isinstance(action, DrainNode):
        what = f"drain {action.hostname}" + (" ENDING its sessions" if action.end_sessions else "")
    elif isinstance(action, RemoveNode):
        what = f"remove {action.hostname} from the Swarm"
    elif isinstance(action, LabelNode):
        shown = ", ".join(f"{k}={v}" if v else f"-{k}" for k, v in sorted(action.labels.items()))
        what = f"label {action.hostname}: {shown}"
    elif isinstance(action, Notify):
        return f"would alert {action.alert}: {action.summary}"
    else:
        return f"would {action.kind}"
    return f"would {what} ({action.reason})"


class DryRunActuator:
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log

    def execute(self, action: Action) -> ActionResult:
        message = describe(action)
        self._log.info("%s", message)
        return ActionResult(action=action, ok=True, message=message, dry_run=True)
