"""Environment and secret files -> one typed Settings object.

Every field can be set as ``AUTOSCALER_<FIELD>`` in the environment. Secrets are
never values in the environment itself: a ``*_file`` field names a file (a Docker
secret under /run/secrets) and ``read_secret`` reads it when needed.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field
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
    log_level: str = "INFO"


def read_secret(path: Path | None) -> str | None:
    """Read a secret file, stripped; None when unset. Errors name the file, not its content."""
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise RuntimeError(f"cannot read secret file {path}: {e.strerror}") from None
