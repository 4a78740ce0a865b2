"""One actuator in front of several: each action kind goes to the actuator that owns it."""

from __future__ import annotations

import logging

from autoscaler.actuate.base import ActionResult, Actuator
from autoscaler.decide.plan_types import NODE_ACTIONS, PROVIDER_ACTIONS, Action, Notify

log = logging.getLogger(__name__)


class LogNotifier:
    """Alerts raised by decisions, logged; used when no alert delivery is wired in."""

    def execute(self, action: Action) -> ActionResult:
        if not isinstance(action, Notify):
            return ActionResult(action=action, ok=False, message=f"{action.kind} is not an alert")
        log.warning("ALERT %s [%s]: %s", action.alert, action.severity, action.summary)
        return ActionResult(action=action, ok=True, message=f"alert {action.alert} logged")


class Dispatcher:
    def __init__(
        self,
        *,
        services: Actuator,
        nodes: Actuator | None = None,
        machines: Actuator | None = None,
        notify: Actuator | None = None,
    ) -> None:
        self._services = services
        self._nodes = nodes
        self._machines = machines
        self._notify = notify or LogNotifier()

    def route(self, action: Action) -> Actuator | None:
        if action.kind in NODE_ACTIONS:
            return self._nodes
        if action.kind in PROVIDER_ACTIONS:
            return self._machines
        if action.kind == "notify":
            return self._notify
        return self._services

    def execute(self, action: Action) -> ActionResult:
        actuator = self.route(action)
        if actuator is None:
            return ActionResult(
                action=action, ok=False, message=f"no actuator configured for {action.kind}"
            )
        return actuator.execute(action)
