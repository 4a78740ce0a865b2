"""Environment and secret files -> one typed Settings object.

Every field can be set as ``AUTOSCALER_<FIELD>`` in the environment. Secrets are
never values in the environment itself: a ``*_file`` field names a file (a Docker
secret under /run/secrets) and ``read_secret`` reads it when needed.

``load_settings`` is how commands build them: every problem is one line naming the
variable, and the configured secret files are checked before anything starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from autoscaler.durations import Duration, format_duration

# The secret files of the sidecar. An empty one is refused at start rather than read as
# "no secret", for a reason per setting:
SECRET_FILES = (
    # the silences API would need no token at all: anyone could create or expire silences;
    "api_token_file",
    # no bearer token can match an empty one: every webhook call would get 401, unexplained;
    "webhook_token_file",
    # InfluxDB would silently get the URL's password or none; leave it unset to mean none.
    "influxdb_password_file",
)

BEARER_TOKEN_FILES = ("api_token_file", "webhook_token_file")
"""Secret files holding a bearer token: printable ASCII only (RFC 6750's token is ASCII).
Alertmanager and curl send a token's UTF-8 bytes as they are, which the server reads as
Latin-1 (RFC 9110): a token with any other character could never match."""


def env_name(field: str) -> str:
    """The environment variable of a Settings field."""
    return f"AUTOSCALER_{field.upper()}"


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port``, ``[IPv6]:port`` or ``port`` -> (host, port); no host: every IPv4
    interface (``[::]``: every interface, IPv4 too); port 0: any free port."""
    host, _, port = text.strip().rpartition(":")
    if not (port.isascii() and port.isdigit() and len(port) <= 5) or int(port) > 65535:
        raise ValueError(f"{text!r} is not host:port with a port from 0 to 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:  # "::1:8080" could be ::1 port 8080, or ::1:8080 with none
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, as [::1]:8080")
    return host or "0.0.0.0", int(port)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOSCALER_", extra="ignore", frozen=True)

    rules: Path = Path("rules")
    """Folder (or file) of YAML policies; re-read on every pass when it changed."""
    interval: Duration = timedelta(seconds=15)
    """Time between scheduled reconcile passes."""
    dry_run: bool = False
    """Decide and log "would ...", but never change the cluster."""
    docker_host: str | None = None
    """Docker Engine API of a manager; default: DOCKER_HOST or the local socket."""
    prometheus_url: str | None = None
    """Base URL of Prometheus, e.g. http://prometheus:9090; unset: its signals are missing."""
    actuator: str | None = None
    """ShinyProxy management endpoints: comma-separated base URLs, or tasks.<service>:9090."""
    influxdb_url: str | None = None
    """InfluxDB 1.x base URL, e.g. http://influxdb:8086."""
    influxdb_database: str = "shinyproxy_usagestats"
    influxdb_username: str | None = None
    influxdb_password_file: Path | None = None
    source_timeout: Duration = timedelta(seconds=5)
    """Per-request timeout of every read-side backend."""
    listen: str = "0.0.0.0:8080"
    """Address of /metrics, /healthz, /plan and the webhook receivers."""
    webhook_token_file: Path | None = None
    """Bearer token for POST /webhook/alertmanager; unset: the webhook is refused (401)."""
    ledger: Path | None = Path("ledger/decisions.jsonl")
    """Decision ledger (one JSON line per pass); empty disables it."""
    ledger_max_bytes: int = Field(default=10 * 1024 * 1024, ge=4096)
    """Rotate the ledger past this size (a pass's line can take a few KiB)."""
    ledger_backups: int = Field(default=5, ge=0)
    healthz_intervals: int = Field(default=4, ge=1)
    """/healthz fails when no pass has succeeded for this many intervals."""
    max_backoff: Duration = timedelta(minutes=5)
    """Cap of the delay between passes while passes keep failing."""
    event_batch_idle: Duration = timedelta(0)
    """A pass asked for by events waits until no event came for this long (0: at once)..."""
    event_batch_max: Duration = timedelta(seconds=10)
    """...but not longer than this after the first of them (Karpenter's batch window)."""
    event_min_gap: Duration = timedelta(seconds=1)
    """Least time from the end of a pass to the start of one asked for by events."""
    webhook_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    alerts_state_dir: Path | None = Path("state/alerts")
    """Notification log and silences (keep it on a volume); empty keeps them in memory."""
    api_token_file: Path | None = None
    """Bearer token for creating and expiring silences over HTTP; unset: no token needed."""
    external_url: str = ""
    """This sidecar's URL as notifications should link to it."""
    alerts_stall_after: Duration = timedelta(minutes=5)
    """AutoscalerLoopStalled fires when no pass has succeeded for this long."""

    @field_validator("interval", "source_timeout", "max_backoff", "alerts_stall_after")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):  # 0 would spin the loop, or time out every backend read
            raise ValueError(f"must be more than 0s, not {format_duration(v)}")
        return v

    @field_validator("event_batch_max")
    @classmethod
    def _not_shorter_than_idle(cls, v: timedelta, info: ValidationInfo) -> timedelta:
        idle = info.data.get("event_batch_idle")  # absent when it was invalid itself
        if idle is not None and v < idle:  # the idle wait could then never end a batch
            why = f"must be at least {env_name('event_batch_idle')} ({format_duration(idle)})"
            raise ValueError(f"{why}, not {format_duration(v)}")
        return v

    @field_validator("healthz_intervals")
    @classmethod
    def _window_fits(cls, v: int, info: ValidationInfo) -> int:
        interval = info.data.get("interval")  # absent when it was invalid itself
        if interval is not None and v > timedelta.max / interval:
            raise ValueError(f"{v} intervals of {format_duration(interval)} is too long a window")
        return v

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        parse_listen(v)
        return v

    @field_validator(*SECRET_FILES, mode="before")
    @classmethod
    def _not_empty(cls, v: object) -> object:
        if v == "":  # Path("") is ".": the start would fail later, naming no file
            raise ValueError("set but empty: name the secret file, or unset the variable")
        return v

    @field_validator("alerts_state_dir", mode="before")
    @classmethod
    def _empty_keeps_in_memory(cls, v: object) -> object:
        return None if v in ("", None) else v

    @field_validator("ledger", mode="before")
    @classmethod
    def _empty_disables(cls, v: object) -> object:
        return None if v in ("", None) else v

    cluster: str = "shiny"
    """Name of this Swarm in the autoscaler:cluster tag of every machine a pool launches."""
    aws_region: str | None = None
    """Region of the ec2 pools; unset: the ec2 provider is off."""
    aws_endpoint_url: str | None = None
    """Override of the AWS endpoints (a private endpoint, or a test server)."""
    aws_retry_mode: Literal["standard", "adaptive"] = "standard"
    """botocore's retry mode; adaptive also rate-limits the client when throttled."""
    aws_max_attempts: int = Field(default=5, ge=1, le=20)
    aws_credentials_file: Path | None = None
    """Role credentials that `autoscaler aws-credentials` keeps written (stack.aws-role.yml);
    unset: botocore's own chain (environment, shared files, instance metadata)."""
    ssm_kms_key_id: str | None = None
    """KMS key of the join-token SecureString; unset: the account's aws/ssm key."""
    lab_root: Path | None = None
    """Folder of a running `autoscaler lab`: turns the local provider on."""


class SettingsError(ValueError):
    """Settings a command cannot start with: one line per problem, each naming its variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def load_settings(
    overrides: Mapping[str, Any] | None = None, names: Mapping[str, str] | None = None
) -> Settings:
    """Settings from the environment, ``overrides`` (e.g. command-line flags) winning.

    ``names`` maps a field to what its problems should be called (its flag, say); by default
    its variable. Every configured secret file must be readable and not empty.
    """
    names = names or {}
    try:
        settings = Settings(**(overrides or {}))
    except ValidationError as e:
        raise SettingsError([_problem(err, names) for err in e.errors()]) from None
    problems = []
    for field in SECRET_FILES:
        name = names.get(field, env_name(field))
        try:
            text = read_secret(getattr(settings, field), name)
        except RuntimeError as e:
            problems.append(str(e))
            continue
        if field in BEARER_TOKEN_FILES and text and not (text.isascii() and text.isprintable()):
            problems.append(f"{name}: the token in the file it names must be printable ASCII")
    if problems:
        raise SettingsError(problems)
    return settings


def _problem(err: ErrorDetails, names: Mapping[str, str]) -> str:
    field = str(err["loc"][0]) if err["loc"] else ""
    name = names.get(field, env_name(field))
    if err["type"] == "value_error":  # our own validators: their text is the message
        return f"{name}: {err['ctx']['error']}"
    if field.endswith("_file"):  # its value could be a secret set in the wrong variable
        return f"{name}: {err['msg']}"
    return f"{name}: {err['msg']} (got {err['input']!r})"


def read_secret(path: Path | None, setting: str | None = None) -> str | None:
    """Read a secret file, stripped; None when unset. Errors never hold its content.

    With ``setting`` (the variable naming the file) errors name it rather than the path,
    which may be a secret set in the wrong variable, and an empty file is an error too.
    """
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        why = (e.strerror or type(e).__name__) if isinstance(e, OSError) else "not UTF-8 text"
        if setting is None:
            raise RuntimeError(f"cannot read secret file {path}: {why}") from None
        raise RuntimeError(f"{setting}: the file it names cannot be read ({why})") from None
    if setting is not None and not text:
        raise RuntimeError(f"{setting}: the file it names is empty")
    return text
