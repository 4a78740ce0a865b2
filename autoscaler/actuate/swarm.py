"""Writes to the Swarm: scale a replicated service, re-checking the service first.

The plan was made from a snapshot that may be seconds old. Before writing, the service is
read again and the change is refused when it no longer applies: a ShinyProxy session
service (one per user, never scaled), a global service, replicas that someone else has
changed since the snapshot, or a service whose update or rollback is in progress or paused:
any update of the spec makes the engine take the current spec as the one to roll back to
and forget the update's state, so scaling then would resume an update paused because its
new tasks failed, and leave a rollback nothing to go back to.

The update carries the version just read, so a concurrent change in between is rejected by
the engine ("update out of sequence"); that is retried once from a fresh read. Like
``docker service scale``, the spec goes back unchanged apart from the replica count, so
running tasks are left alone.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import docker
import docker.errors
import requests

from autoscaler.actuate.base import ActionResult
from autoscaler.decide.plan_types import Action, ScaleService
from autoscaler.sources.swarm import is_session_service

log = logging.getLogger(__name__)

OUT_OF_SEQUENCE = "update out of sequence"
_ENGINE_ERRORS = (docker.errors.DockerException, requests.RequestException, OSError)
UNSETTLED = {
    "updating": "update in progress",
    "paused": "update paused",
    "rollback_started": "rollback in progress",
    "rollback_paused": "rollback paused",
}
"""UpdateStatus states of an update or rollback not finished: the service is not scaled."""


class _Refused(Exception):
    """The action no longer applies to the service as it is now."""


class SwarmActuator:
    def __init__(self, client: docker.DockerClient) -> None:
        self._api = client.api

    def execute(self, action: Action) -> ActionResult:
        if not isinstance(action, ScaleService):
            return ActionResult(
                action=action, ok=False, message=f"{action.kind} is not a Swarm service action"
            )
        try:
            message = self._scale(action)
        except _Refused as exc:
            log.warning("not scaling %s: %s", action.service, exc)
            return ActionResult(action=action, ok=False, message=str(exc))
        except _ENGINE_ERRORS as exc:
            text = _error_text(exc)
            log.error("scaling %s failed: %s", action.service, text)
            return ActionResult(action=action, ok=False, message=f"engine error: {text}")
        log.info("%s", message)
        return ActionResult(action=action, ok=True, message=message)

    def _scale(self, action: ScaleService) -> str:
        for attempt in (1, 2):
            service = self._checked_service(action)
            if action.current == action.desired:
                return f"{action.service} already at {action.desired} replicas"
            try:
                self._update_replicas(service, action.desired)
            except docker.errors.APIError as exc:
                if attempt == 1 and OUT_OF_SEQUENCE in _error_text(exc):
                    log.info("%s changed while scaling; reading it again", action.service)
                    continue
                raise
            return f"scaled {action.service} from {action.current} to {action.desired}"
        raise AssertionError("unreachable")  # pragma: no cover

    def _update_replicas(self, service: Any, replicas: int) -> None:
        """Send back the spec exactly as read, only the replica count changed.

        (A spec re-read with defaults filled in, as docker-py's ``fetch_current_spec`` does,
        differs from the stored one, and the engine would restart every running task.)
        """
        spec = copy.deepcopy(service["Spec"])
        spec["Mode"]["Replicated"]["Replicas"] = replicas
        api = self._api
        response = api.post(
            f"{api.base_url}/v{api.api_version}/services/{service['ID']}/update",
            params={"version": service["Version"]["Index"]},
            json=spec,
            timeout=api.timeout,
        )
        try:
            response.raise_for_status()
        except requests.HTTPError as exc:
            raise docker.errors.create_api_error_from_http_exception(exc) from exc

    def _checked_service(self, action: ScaleService) -> Any:
        try:
            service = self._api.inspect_service(action.service)
        except docker.errors.NotFound as exc:
            raise _Refused(f"service {action.service} not found") from exc
        if is_session_service(service):
            raise _Refused(f"{action.service} is a ShinyProxy session service: never scaled")
        mode = service["Spec"].get("Mode", {})
        if "Replicated" not in mode:
            kind = next(iter(mode), "unknown").lower()
            raise _Refused(f"{action.service} is a {kind} service: only replicated ones scale")
        unsettled = UNSETTLED.get((service.get("UpdateStatus") or {}).get("State", ""))
        if unsettled is not None:
            raise _Refused(f"{action.service}: {unsettled}; not scaled until it is over")
        replicas = int(mode["Replicated"].get("Replicas", 0))
        if replicas != action.current:
            raise _Refused(
                f"{action.service} has {replicas} replicas, the plan expected {action.current}:"
                " changed by someone else since the snapshot; skipped"
            )
        return service


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc)
