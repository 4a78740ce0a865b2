"""Render the worker's user-data: a header of shell-quoted settings + the fixed script.

The join token is never part of the user-data (anyone who can describe the instance can
read it): the script reads it from an SSM SecureString at boot.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from importlib import resources

MAX_USER_DATA = 16 * 1024
"""EC2's limit on user-data before base64."""


@dataclass(frozen=True)
class JoinSettings:
    pool: str
    cluster: str
    region: str
    join_parameter: str
    images: tuple[str, ...] = ()
    ssm_endpoint: str = ""
    """Only for tests and private endpoints; empty: the region's public endpoint."""
    warm: bool = False
    """Pull the images, then power off without joining (a warm-pool machine)."""
    join_attempts: int = 30
    extra_env: dict[str, str] = field(default_factory=dict)


def script_body() -> str:
    return resources.files("autoscaler.userdata").joinpath("worker.sh").read_text("utf-8")


def render_user_data(settings: JoinSettings) -> str:
    values = {
        "AUTOSCALER_POOL": settings.pool,
        "AUTOSCALER_CLUSTER": settings.cluster,
        "AUTOSCALER_REGION": settings.region,
        "AUTOSCALER_JOIN_PARAMETER": settings.join_parameter,
        "AUTOSCALER_IMAGES": " ".join(settings.images),
        "AUTOSCALER_SSM_ENDPOINT": settings.ssm_endpoint,
        "AUTOSCALER_WARM": "1" if settings.warm else "0",
        "AUTOSCALER_JOIN_ATTEMPTS": str(settings.join_attempts),
        **settings.extra_env,
    }
    for name, value in values.items():
        if not name.isidentifier():
            raise ValueError(f"not a shell variable name: {name!r}")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            # quoted, a newline is inert in the header, but the script edits its own copy
            # line by line and writes the pool's name into a systemd unit
            raise ValueError(f"{name}: control characters are not allowed: {value!r}")
    header = "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())
    body = script_body()
    shebang, _, rest = body.partition("\n")
    text = f"{shebang}\n# settings (rendered)\n{header}{rest}"
    if len(text.encode()) > MAX_USER_DATA:
        raise ValueError(f"user-data of {len(text.encode())} bytes exceeds EC2's 16 KiB")
    return text
