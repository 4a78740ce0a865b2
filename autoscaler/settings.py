"""Environment and secret files -> one typed Settings object.

Every field can be set as ``AUTOSCALER_<FIELD>`` in the environment. Secrets are
never values in the environment itself: a ``*_file`` field names a file (a Docker
secret under /run/secrets) and ``read_secret`` reads it when needed.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from autoscaler.durations import Duration


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
    ledger_max_bytes: int = 10 * 1024 * 1024
    ledger_backups: int = 5
    healthz_intervals: int = Field(default=4, ge=1)
    """/healthz fails when no pass has succeeded for this many intervals."""
    max_backoff: Duration = timedelta(minutes=5)
    """Cap of the delay between passes while passes keep failing."""
    webhook_max_bytes: int = 1024 * 1024
    alerts_state_dir: Path | None = Path("state/alerts")
    """Notification log and silences (keep it on a volume); empty keeps them in memory."""
    api_token_file: Path | None = None
    """Bearer token for creating and expiring silences over HTTP; unset: no token needed."""
    external_url: str = ""
    """This sidecar's URL as notifications should link to it."""
    alerts_stall_after: Duration = timedelta(minutes=5)
    """AutoscalerLoopStalled fires when no pass has succeeded for this long."""

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
    ssm_kms_key_id: str | None = None
    """KMS key of the join-token SecureString; unset: the account's aws/ssm key."""
    lab_root: Path | None = None
    """Folder of a running `autoscaler lab`: turns the local provider on."""


def read_secret(path: Path | None) -> str | None:
    """Read a secret file, stripped; None when unset. Errors name the file, not its content."""
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise RuntimeError(f"cannot read secret file {path}: {e.strerror}") from None
