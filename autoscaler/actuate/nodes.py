"""Writes to Swarm nodes: pause, resume, drain, remove and label a pool's nodes.

The plan was made from a snapshot; each write reads the node (and, before a drain or a
removal, its tasks) again and refuses when the action no longer applies. Guarantees that
hold whatever the plan says:

- a node without the pool's ``autoscaler.pool`` label is never paused, drained or removed;
  it is labelled only when it carries no pool label at all and is a worker;
- a node holding a user session is never drained unless the action says ``end_sessions``
  (the planner sets it only where the policy allows it, after an alert), and never
  removed while one runs there. Even then the node must carry the ``autoscaler.notified-at``
  mark of that alert and the ``autoscaler.notice-delivered-at`` mark of a receiver having
  accepted it since, and, with the rules at hand, its pool must still say
  ``allow_ending_sessions`` and ``ending_notice`` must have passed since the delivery;
- drain follows pause: a node that is not paused is not drained;
- a manager (by role, or still a raft member while being demoted) is never paused, drained
  or removed, whatever its labels: the sidecar itself runs on one;
- a node that has left the Swarm already counts as removed, so its machine may go.

A task counts as a session there while it is not finished and Swarm means it to run
(desired state ``running``, or ``ready``: a restart waiting out its delay, started on that
node once the delay is over).

Lifecycle marks go into the same node update as the availability, so a node is never
paused without its ``autoscaler.paused-at`` mark.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from typing import Any

import docker
import docker.errors
import requests

from autoscaler.actuate.base import ActionResult
from autoscaler.decide.plan_types import (
    Action,
    DrainNode,
    LabelNode,
    NodeAction,
    PauseNode,
    RemoveNode,
    ResumeNode,
)
from autoscaler.decide.pools import labels as L
from autoscaler.decide.text import clock, utc
from autoscaler.rules.schema import Policies
from autoscaler.snapshot import DELEGATE_LABEL, USER_LABEL

log = logging.getLogger(__name__)

OUT_OF_SEQUENCE = "update out of sequence"
FINISHED = frozenset({"complete", "failed", "shutdown", "rejected", "orphaned", "remove"})
MEANT_TO_RUN = frozenset({"running", "ready"})
"""Desired states of a task that runs or will: ``ready`` is a restart waiting out its delay."""
_ENGINE_ERRORS = (docker.errors.DockerException, requests.RequestException, OSError)


class Refused(Exception):
    """The action no longer applies to the node as it is now."""


class Gone(Refused):
    """The node is no longer in the Swarm (removed by hand, or by an earlier pass)."""


class NodeActuator:
    def __init__(
        self, client: docker.DockerClient, policies: Callable[[], Policies] | None = None
    ) -> None:
        """``policies``: the rules now in force, to check an ending drain against them."""
        self._api = client.api
        self._policies = policies

    def execute(self, action: Action) -> ActionResult:
        if not isinstance(action, NodeAction):
            return ActionResult(
                action=action, ok=False, message=f"{action.kind} is not a node action"
            )
        try:
            message = self._apply(action)
        except Refused as exc:
            log.warning("not doing %s on %s: %s", action.kind, action.hostname, exc)
            return ActionResult(action=action, ok=False, message=str(exc))
        except _ENGINE_ERRORS as exc:
            text = _error_text(exc)
            log.error("%s on %s failed: %s", action.kind, action.hostname, text)
            return ActionResult(action=action, ok=False, message=f"engine error: {text}")
        log.info("%s", message)
        return ActionResult(action=action, ok=True, message=message)

    def _apply(self, action: NodeAction) -> str:
        if isinstance(action, RemoveNode):
            return self._remove(action)
        handlers: dict[type, Callable[[Any, Any], tuple[dict[str, Any], str]]] = {
            PauseNode: self._pause,
            ResumeNode: self._resume,
            DrainNode: self._drain,
            LabelNode: self._label,
        }
        handler = handlers.get(type(action))
        if handler is None:
            raise Refused(f"{type(action).__name__} is not handled here")
        for attempt in (1, 2):
            node = self._node(action)
            spec, message = handler(action, node)
            try:
                self._update(node, spec)
            except docker.errors.APIError as exc:
                if attempt == 1 and OUT_OF_SEQUENCE in _error_text(exc):
                    continue
                raise
            return message
        raise AssertionError("unreachable")  # pragma: no cover

    # ---------------------------------------------------------------- one per action

    def _pause(self, action: PauseNode, node: Any) -> tuple[dict[str, Any], str]:
        self._owned(action, node)
        _not_a_manager(action, node)
        if _availability(node) != "active":
            raise Refused(f"{action.hostname} is {_availability(node)}, not active: not paused")
        labels = {L.STATE: "paused", L.PAUSED_AT: L.stamp(action.at), **L.NO_NOTICE}
        return _spec(node, "pause", labels), f"paused {action.hostname} ({action.reason})"

    def _resume(self, action: ResumeNode, node: Any) -> tuple[dict[str, Any], str]:
        self._owned(action, node)
        if _availability(node) != "pause" or _labels(node).get(L.STATE) != "paused":
            raise Refused(f"{action.hostname} is not paused by the autoscaler: not resumed")
        labels = {L.STATE: "active", L.PAUSED_AT: "", **L.NO_NOTICE}
        return _spec(node, "active", labels), f"resumed {action.hostname} ({action.reason})"

    def _drain(self, action: DrainNode, node: Any) -> tuple[dict[str, Any], str]:
        self._owned(action, node)
        _not_a_manager(action, node)
        if _availability(node) != "pause":
            raise Refused(f"{action.hostname} is {_availability(node)}: drain follows pause")
        users = self.user_sessions(node["ID"])
        if users and not action.end_sessions:
            raise Refused(
                f"{action.hostname} holds {users} user session(s) or pre-initialised "
                "container(s): not drained (draining would end them)"
            )
        if users:
            self._may_end_sessions(action, node, users)
        labels = {L.STATE: "draining", L.DRAINING_AT: L.stamp(action.at)}
        ended = f", ending {users} session(s)" if users else ""
        return _spec(node, "drain", labels), f"drained {action.hostname}{ended} ({action.reason})"

    def _may_end_sessions(self, action: DrainNode, node: Any, users: int) -> None:
        """The conditions for ending sessions, read again from the node and the rules."""
        held = f"{action.hostname} holds {users} user session(s): not drained"
        notified = L.parse_stamp(_labels(node).get(L.NOTIFIED_AT))
        if notified is None:
            raise Refused(f"{held}, no alert was raised for them")
        delivered = L.parse_stamp(_labels(node).get(L.DELIVERED_AT))
        if delivered is None or delivered < notified:
            raise Refused(f"{held}, the alert raised at {clock(notified)} was not delivered")
        if self._policies is None:
            return
        pool = self._policies().pools.get(action.pool)
        rules = pool.scale_in if pool is not None else None
        if rules is None or not rules.allow_ending_sessions:
            raise Refused(f"{held}, pool {action.pool} does not allow ending sessions")
        if utc(action.at) < delivered + rules.ending_notice:
            raise Refused(f"{held} before {clock(delivered + rules.ending_notice)}")

    def _label(self, action: LabelNode, node: Any) -> tuple[dict[str, Any], str]:
        bad = [k for k in action.labels if not k.startswith("autoscaler.")]
        if bad:
            raise Refused(f"only autoscaler.* labels are set, not {', '.join(sorted(bad))}")
        current = _labels(node).get(L.POOL)
        if current is None:
            if action.labels.get(L.POOL) != action.pool:
                raise Refused(f"{action.hostname} is not in pool {action.pool}: not labelled")
            if node["Spec"].get("Role") != "worker":
                raise Refused(f"{action.hostname} is a manager: never joins a pool")
        elif current != action.pool:
            raise Refused(f"{action.hostname} belongs to pool {current}, not {action.pool}")
        shown = ", ".join(f"{k}={v}" if v else f"-{k}" for k, v in sorted(action.labels.items()))
        return _spec(node, None, action.labels), f"labelled {action.hostname}: {shown}"

    def _remove(self, action: RemoveNode) -> str:
        try:
            node = self._node(action)
        except Gone:  # what the removal was for: its machine may go
            return f"{action.hostname} already left the Swarm"
        self._owned(action, node)
        _not_a_manager(action, node)
        down = node.get("Status", {}).get("State") == "down"
        if not down and _availability(node) != "drain":
            raise Refused(f"{action.hostname} is neither down nor drained: not removed")
        users = 0 if down else self.user_sessions(node["ID"])
        if users:
            raise Refused(
                f"{action.hostname} still holds {users} user session(s) or pre-initialised "
                "container(s): not removed"
            )
        try:
            self._api.remove_node(node["ID"], force=True)
        except docker.errors.NotFound:
            return f"{action.hostname} already left the Swarm"
        return f"removed {action.hostname} from the Swarm ({action.reason})"

    # ---------------------------------------------------------------- reads

    def user_sessions(self, node_id: str) -> int:
        """ShinyProxy containers with a task on the node that has not finished and that hold
        or may hold a user's work: user sessions and pre-initialised (shared) containers."""
        tasks = self._api.tasks(filters={"node": node_id})
        return sum(1 for t in tasks if _may_hold_users(t))

    def _node(self, action: NodeAction) -> Any:
        try:
            node = self._api.inspect_node(action.node_id)
        except docker.errors.NotFound as exc:
            raise Gone(f"node {action.hostname} ({action.node_id}) not found") from exc
        hostname = node.get("Description", {}).get("Hostname", "")
        if hostname and hostname != action.hostname:
            raise Refused(f"node {action.node_id} is {hostname}, not {action.hostname}")
        return node

    @staticmethod
    def _owned(action: NodeAction, node: Any) -> None:
        pool = _labels(node).get(L.POOL)
        if pool != action.pool:
            owner = f"pool {pool}" if pool else "no pool"
            raise Refused(f"{action.hostname} has {owner}, not {action.pool}: never touched")

    def _update(self, node: Any, spec: dict[str, Any]) -> None:
        self._api.update_node(node["ID"], node["Version"]["Index"], spec)


def _not_a_manager(action: NodeAction, node: Any) -> None:
    if node["Spec"].get("Role") == "manager" or node.get("ManagerStatus"):
        raise Refused(f"{action.hostname} is a manager: never paused, drained or removed")


def _labels(node: Any) -> dict[str, str]:
    return dict(node["Spec"].get("Labels") or {})


def _availability(node: Any) -> str:
    return str(node["Spec"].get("Availability", "active"))


def _spec(node: Any, availability: str | None, labels: Mapping[str, str]) -> dict[str, Any]:
    """The node's spec as read, with the availability and labels changed (empty = removed)."""
    spec: dict[str, Any] = copy.deepcopy(node["Spec"])
    merged = dict(spec.get("Labels") or {})
    for key, value in labels.items():
        if value:
            merged[key] = value
        else:
            merged.pop(key, None)
    spec["Labels"] = merged
    if availability is not None:
        spec["Availability"] = availability
    return spec


def _may_hold_users(task: Mapping[str, Any]) -> bool:
    labels = task.get("Spec", {}).get("ContainerSpec", {}).get("Labels") or {}
    # users claim the seats of a pre-initialised container without its labels changing
    shared = labels.get(DELEGATE_LABEL, "").lower() == "true"
    if USER_LABEL not in labels and not shared:
        return False
    state = task.get("Status", {}).get("State", "")
    return task.get("DesiredState") in MEANT_TO_RUN and state not in FINISHED


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc)
