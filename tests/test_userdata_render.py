"""The worker's user-data: rendered settings are inert data, the script is valid bash."""

from __future__ import annotations

import subprocess

import pytest

from autoscaler.userdata import JoinSettings, render_user_data
from autoscaler.userdata.render import MAX_USER_DATA

BASE = JoinSettings(
    pool="web",
    cluster="shiny",
    region="eu-west-1",
    join_parameter="/autoscaler/swarm/worker-join",
    images=("ghcr.io/org/app:1.2", "rocker/shiny:4"),
)


def header_values(script: str, *names: str) -> list[str]:
    """Run only the rendered header in bash and print the variables it set."""
    header = script.split("set -euo pipefail")[0]
    show = "".join(f'printf "%s\\0" "${name}"\n' for name in names)
    out = subprocess.run(["bash", "-c", header + show], capture_output=True, check=True)
    return out.stdout.decode().split("\0")[:-1]


def test_script_is_valid_bash() -> None:
    script = render_user_data(BASE)
    assert script.startswith("#!/bin/bash\n")
    subprocess.run(["bash", "-n"], input=script.encode(), check=True)


def test_settings_are_in_the_header() -> None:
    script = render_user_data(BASE)
    assert header_values(
        script,
        "AUTOSCALER_POOL",
        "AUTOSCALER_IMAGES",
        "AUTOSCALER_JOIN_PARAMETER",
        "AUTOSCALER_WARM",
    ) == ["web", "ghcr.io/org/app:1.2 rocker/shiny:4", "/autoscaler/swarm/worker-join", "0"]
    warm = render_user_data(JoinSettings(**{**BASE.__dict__, "warm": True}))
    assert header_values(warm, "AUTOSCALER_WARM") == ["1"]


def test_values_cannot_inject_commands(tmp_path: object) -> None:
    nasty = "web'; echo INJECTED; x='$(echo INJECTED)`echo INJECTED`"
    script = render_user_data(JoinSettings(**{**BASE.__dict__, "pool": nasty}))
    (value,) = header_values(script, "AUTOSCALER_POOL")
    assert value == nasty


def test_the_script_reads_the_token_from_ssm_never_holds_it() -> None:
    script = render_user_data(BASE)
    assert "ssm get-parameter" in script and "--with-decryption" in script
    assert "SWMTKN" not in script
    assert "set -x" not in script  # the token must not be traced into logs


def test_bad_variable_names_and_oversize_are_refused() -> None:
    with pytest.raises(ValueError, match="not a shell variable name"):
        render_user_data(JoinSettings(**{**BASE.__dict__, "extra_env": {"A B": "1"}}))
    many = tuple(f"registry.example.com/team/app-{i}:1.0.0" for i in range(600))
    with pytest.raises(ValueError, match=f"exceeds EC2's {MAX_USER_DATA // 1024} KiB"):
        render_user_data(JoinSettings(**{**BASE.__dict__, "images": many}))
