"""One actuator in front of several: each action kind goes to the actuator that owns it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from autoscaler.actuate.base import ActionResult, Actuator
from autoscaler.decide.plan_types import NODE_ACTIONS, PROVIDER_ACTIONS, Action, Notify

log = logging.getLogger(__name__)


class LogNotifier:
    """Alerts raised by decisions, logged (alert delivery takes them from the plan).

    A decision raises its alert again at every pass while the condition holds; the log gets
    it once, then again every ``repeat`` while it stays the same, not every 15 seconds.
    """

    def __init__(self, repeat: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._repeat = repeat
        self._clock = clock
        self._logged_at: dict[tuple[str, str, str], float] = {}

    def execute(self, action: Action) -> ActionResult:
        if not isinstance(action, Notify):
            return ActionResult(action=action, ok=False, message=f"{action.kind} is not an alert")
        key = (action.alert, action.severity, action.summary)
        now = self._clock()
        last = self._logged_at.get(key)
        if last is not None and now - last < self._repeat:
            return ActionResult(action=action, ok=True, message=f"alert {action.alert} raised")
        self._logged_at = {k: t for k, t in self._logged_at.items() if now - t < self._repeat}
        self._logged_at[key] = now
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
