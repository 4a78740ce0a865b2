"""App specs, written with ShinyProxy's own keys (``container-cpu-request`` ...)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_memory(text: str | int) -> int:
    """``512m``, ``2g``, ``1Gi`` or a number of bytes -> bytes."""
    if isinstance(text, int):
        return text
    m = _MEMORY.match(text.strip())
    if not m:
        raise ValueError(f"bad memory size {text!r}: use e.g. 256m or 2g")
    return int(float(m.group(1)) * _MEMORY_UNITS[m.group(2).lower()])


class AppSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    display_name: str = Field(default="", alias="display-name")
    container_image: str = Field(default="local/busybox:1", alias="container-image")
    container_cmd: tuple[str, ...] = Field(
        default=("httpd", "-f", "-p", "3838"), alias="container-cmd"
    )
    port: int = 3838
    cpu_request: float | None = Field(default=None, alias="container-cpu-request", gt=0)
    memory_request: int | None = Field(default=None, alias="container-memory-request")
    cpu_limit: float | None = Field(default=None, alias="container-cpu-limit", gt=0)
    memory_limit: int | None = Field(default=None, alias="container-memory")
    max_lifetime_minutes: int = Field(default=-1, alias="max-lifetime")
    heartbeat_timeout_ms: int | None = Field(default=None, alias="heartbeat-timeout")
    """Per-app override of proxy.heartbeat-timeout, in ms; None uses the global one."""
    max_instances: int = Field(default=1, alias="max-instances")
    """Per user; -1 is unlimited."""
    max_total_instances: int = Field(default=-1, alias="max-total-instances")

    @field_validator("memory_request", "memory_limit", mode="before")
    @classmethod
    def _memory(cls, v: object) -> object:
        return parse_memory(v) if isinstance(v, str | int) and not isinstance(v, bool) else v

    @property
    def name(self) -> str:
        return self.display_name or self.id


class SpecsFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    specs: tuple[AppSpec, ...]


def load_specs(path: Path | None = None) -> tuple[AppSpec, ...]:
    """Read a specs file (default: the lab's own apps.yml); errors name the file and field."""
    if path is None:
        text = resources.files("autoscaler.lab.standin").joinpath("apps.yml").read_text()
        where = "apps.yml (built in)"
    else:
        text = path.read_text(encoding="utf-8")
        where = str(path)
    try:
        data = yaml.safe_load(text)
        specs = SpecsFile.model_validate(data).specs
    except (yaml.YAMLError, ValidationError) as e:
        raise ValueError(f"{where}: {e}") from None
    ids = [s.id for s in specs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"{where}: duplicate spec ids {dupes}")
    return specs
