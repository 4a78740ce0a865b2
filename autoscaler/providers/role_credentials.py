"""The manager's instance-role credentials, handed to the sidecar through a file.

A container is one network hop beyond its instance. With IMDSv2 required and the default
hop limit of 1, which keeps every container on the manager (user sessions among them) away
from the manager's role, the sidecar on its overlay network gets no credentials from the
instance metadata service. A small task on the host's network, zero hops away, reads them
there and writes them into a volume only the sidecar mounts (``autoscaler aws-credentials``);
the sidecar reads that file again whenever its copy nears expiry.

The file has the JSON shape of AWS's ``credential_process`` output, so other AWS tools can
read it too (``credential_process = cat FILE``). Neither side ever logs a key.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.credentials import CredentialProvider, DeferredRefreshableCredentials
from botocore.exceptions import CredentialRetrievalError

from autoscaler.atomic import write_atomic

log = logging.getLogger(__name__)

METHOD = "autoscaler-role-file"
FILE_VERSION = 1
RETRY_AFTER_FAILURE = timedelta(seconds=30)


class RoleCredentialsError(Exception):
    """The instance metadata service gave no role credentials (the message holds no key)."""


@dataclass(frozen=True)
class RoleCredentials:
    role: str
    access_key: str
    secret_key: str
    token: str
    expiration: datetime

    def __repr__(self) -> str:  # a stray log line or traceback must not carry the keys
        return f"RoleCredentials(role={self.role!r}, expiration={self.expiration.isoformat()})"

    def document(self) -> dict[str, Any]:
        """The ``credential_process`` JSON."""
        return {
            "Version": FILE_VERSION,
            "AccessKeyId": self.access_key,
            "SecretAccessKey": self.secret_key,
            "SessionToken": self.token,
            "Expiration": self.expiration.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def fetch_from_instance_metadata() -> RoleCredentials:
    """The instance role's current credentials, from IMDS as botocore's own chain reads it
    (``AWS_EC2_METADATA_SERVICE_ENDPOINT``, ``AWS_METADATA_SERVICE_TIMEOUT`` and
    ``..._NUM_ATTEMPTS``, ``AWS_EC2_METADATA_DISABLED``; IMDSv2 first)."""
    import botocore.session
    from botocore.utils import InstanceMetadataFetcher

    session = botocore.session.get_session()
    fetcher = InstanceMetadataFetcher(
        timeout=float(session.get_config_variable("metadata_service_timeout")),
        num_attempts=int(session.get_config_variable("metadata_service_num_attempts")),
        config={
            "ec2_metadata_service_endpoint": session.get_config_variable(
                "ec2_metadata_service_endpoint"
            ),
            "ec2_metadata_service_endpoint_mode": session.get_config_variable(
                "ec2_metadata_service_endpoint_mode"
            ),
        },
    )
    found = fetcher.retrieve_iam_role_credentials()
    if not found:
        raise RoleCredentialsError(
            "the instance metadata service gave no role credentials: the instance has no "
            "instance profile, or this task does not run on the host's network (with IMDSv2 "
            "and hop limit 1 a container cannot reach it)"
        )
    return RoleCredentials(
        role=str(found.get("role_name", "")),
        access_key=found["access_key"],
        secret_key=found["secret_key"],
        token=found["token"],
        expiration=_parse_expiration(str(found["expiry_time"])),
    )


def write_atomically(path: Path, creds: RoleCredentials) -> None:
    """Replace ``path`` whole (a reader never sees half a file), readable by its owner only
    (write_atomic's temporary file is created 0600 and renamed into place)."""
    write_atomic(path, json.dumps(creds.document()))


def keep_written(
    path: Path,
    every: timedelta,
    stop: threading.Event,
    fetch: Callable[[], RoleCredentials] = fetch_from_instance_metadata,
) -> None:
    """Write the role's credentials to ``path`` every ``every`` until ``stop``; after a
    failure, again in 30 s (the file last written stays valid until its expiration)."""
    failing = True  # the first success is logged
    while not stop.is_set():
        try:
            creds = fetch()
            write_atomically(path, creds)
        except Exception as e:  # whatever it is, the next try may work: the task stays up
            log.warning("role credentials not written to %s: %s", path, _describe(e))
            failing, wait = True, RETRY_AFTER_FAILURE
        else:
            level = logging.INFO if failing else logging.DEBUG
            log.log(
                level,
                "wrote the credentials of role %s to %s, valid until %s",
                creds.role or "?",
                path,
                creds.expiration.isoformat(),
            )
            failing, wait = False, every
        stop.wait(wait.total_seconds())


def read_role_file(path: Path) -> dict[str, str]:
    """botocore's refresh metadata from a file ``keep_written`` wrote; every problem is a
    CredentialRetrievalError naming the file, never a value from it."""

    def refused(why: str) -> CredentialRetrievalError:
        return CredentialRetrievalError(provider=METHOD, error_msg=f"{path}: {why}")

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise refused("no such file (is the aws-credentials service running?)") from None
    except OSError as e:
        raise refused(e.strerror or type(e).__name__) from None
    except ValueError:
        raise refused("not JSON") from None
    keys = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
    if not isinstance(doc, dict) or doc.get("Version") != FILE_VERSION:
        raise refused(f"not a version {FILE_VERSION} credentials document")
    missing = [k for k in keys if not isinstance(doc.get(k), str) or not doc[k]]
    if missing:
        raise refused(f"{', '.join(missing)} missing")
    try:
        _parse_expiration(doc["Expiration"])
    except ValueError:
        raise refused("Expiration is not a time") from None
    return {
        "access_key": doc["AccessKeyId"],
        "secret_key": doc["SecretAccessKey"],
        "token": doc["SessionToken"],
        "expiry_time": doc["Expiration"],
    }


class RoleFileProvider(CredentialProvider):  # type: ignore[misc]  # botocore is untyped
    """A credential provider for botocore's chain: the file, read at first use and again
    when the copy in hand nears expiry. A missing file fails the call that needs it, not
    the client: the sidecar may start before the file is first written."""

    METHOD = METHOD
    CANONICAL_NAME = "custom-autoscaler-role-file"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def load(self) -> DeferredRefreshableCredentials:
        return DeferredRefreshableCredentials(
            refresh_using=lambda: read_role_file(self.path), method=METHOD
        )


def _parse_expiration(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _describe(e: BaseException) -> str:
    """Our own errors in full; others by type (botocore's texts may quote an answer)."""
    if isinstance(e, RoleCredentialsError):
        return str(e)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return type(e).__name__
