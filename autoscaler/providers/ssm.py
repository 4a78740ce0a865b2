"""Keep the worker join token and the managers' addresses in an SSM SecureString.

New workers read it at boot (see autoscaler/userdata/worker.sh); it is never written into
user-data, logs, metrics or plans. The stored value is read before every launch and
rewritten when it differs (the token was rotated, a manager moved, someone deleted or
changed the parameter) or is not a SecureString; compared by digest, so the token is not
kept around.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from autoscaler.providers.aws_errors import unreachable
from autoscaler.providers.base import ProviderError

log = logging.getLogger(__name__)


def join_value(token: str, managers: Sequence[str]) -> str:
    return json.dumps({"token": token, "managers": list(managers)}, sort_keys=True)


def swarm_join_info(docker_api: Any) -> tuple[str, list[str]]:
    """The worker join token and the reachable managers' addresses, from a manager."""
    swarm = docker_api.inspect_swarm()
    token = swarm["JoinTokens"]["Worker"]
    managers = [
        n["ManagerStatus"]["Addr"]
        for n in docker_api.nodes(filters={"role": "manager"})
        if n.get("ManagerStatus", {}).get("Reachability") == "reachable"
    ]
    return token, sorted(managers)


class JoinParameter:
    def __init__(self, ssm: Any, name: str, kms_key_id: str | None = None) -> None:
        self._ssm = ssm
        self.name = name
        self._kms = kms_key_id

    def ensure(self, token: str, managers: Sequence[str]) -> bool:
        """Write the value when the stored one differs, is missing or is not a SecureString
        (read again every time: what this process wrote earlier may be gone); True when
        written."""
        if not token or not managers:
            raise ProviderError("no join token or no reachable manager to publish")
        value = join_value(token, managers)
        if self._stored_digest() == _digest(value):
            return False
        params: dict[str, Any] = {
            "Name": self.name,
            "Value": value,
            "Type": "SecureString",
            "Overwrite": True,
            "Description": "Docker Swarm worker join token and manager addresses",
        }
        if self._kms:
            params["KeyId"] = self._kms
        try:
            self._ssm.put_parameter(**params)
        except (ClientError, BotoCoreError) as exc:
            raise ProviderError(f"cannot write SSM parameter {self.name}: {_code(exc)}") from exc
        log.info("join parameter %s updated (%d manager(s))", self.name, len(managers))
        return True

    def _stored_digest(self) -> str | None:
        """The digest of the stored value; None when there is none, or none that is
        encrypted (a String parameter holding the token in clear is rewritten)."""
        try:
            answer = self._ssm.get_parameter(Name=self.name, WithDecryption=True)
        except ClientError as exc:
            if _code(exc) == "ParameterNotFound":
                return None
            raise ProviderError(f"cannot read SSM parameter {self.name}: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise ProviderError(f"SSM unreachable: {type(exc).__name__}") from exc
        if answer["Parameter"].get("Type") != "SecureString":
            return None
        return _digest(str(answer["Parameter"]["Value"]))


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "error"))
    if isinstance(exc, BotoCoreError):
        return unreachable(exc, "SSM")
    return type(exc).__name__
