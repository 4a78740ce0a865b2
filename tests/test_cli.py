"""The commands as a user runs them: check, plan (live and replayed), run --once --dry-run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import pytest
from docker.types import ServiceMode

from autoscaler.lab.engines import SwarmCluster

BAD = Path(__file__).parent / "data" / "rules" / "bad"

RULES = """
signals:
  nodes_ready:
    swarm: {metric: nodes, state: ready}
services:
  api:
    service: cli-api
    min: 1
    max: 5
    target_tracking:
      - {signal: nodes_ready, average_value: 1}
"""


def autoscaler(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "autoscaler", *args],
        capture_output=True,
        text=True,
        timeout=120,
        # alert state in memory: by default it goes to ./state, the checkout
        env={**os.environ, "AUTOSCALER_ALERTS_STATE_DIR": "", **(env or {})},
    )


def test_check_ok_and_broken_never_a_traceback() -> None:
    ok = autoscaler("check", "rules/")
    assert ok.returncode == 0 and ok.stdout.startswith("OK:")
    bad = autoscaler("check", str(BAD))
    assert bad.returncode == 1
    assert "Traceback" not in bad.stdout + bad.stderr
    lines = bad.stdout.splitlines()
    assert len(lines) >= len(list(BAD.glob("*.yml"))) - 1
    assert all(line.startswith(str(BAD)) for line in lines), lines[:3]
    missing = autoscaler("check", "/nonexistent/rules")
    assert missing.returncode == 1 and "no such file" in missing.stdout


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    (tmp_path / "r.yml").write_text(RULES)
    return tmp_path


@pytest.mark.real
def test_plan_live_save_and_replay(
    swarm_cluster: SwarmCluster, swarm_client: docker.DockerClient, rules: Path, tmp_path: Path
) -> None:
    swarm_client.services.create(
        "local/busybox:1",
        command=["sleep", "600"],
        name="cli-api",
        mode=ServiceMode("replicated", 1),
    )
    env = {"AUTOSCALER_DOCKER_HOST": swarm_cluster.manager_host}
    snap = tmp_path / "snap.json"
    live = autoscaler(
        "plan", "--rules", str(rules), "--json", "--save-snapshot", str(snap), env=env
    )
    assert live.returncode == 0, live.stderr
    plan = json.loads(live.stdout)
    # 3 ready nodes / 1 per replica -> 3 replicas wanted
    assert [(a["service"], a["current"], a["desired"]) for a in plan["actions"]] == [
        ("cli-api", 1, 3)
    ]
    assert plan["signals"]["nodes_ready"]["value"] == 3
    # a replay of the saved snapshot decides the same, with no engine at all
    replay = autoscaler(
        "plan",
        "--rules",
        str(rules),
        "--json",
        "--snapshot",
        str(snap),
        env={"AUTOSCALER_DOCKER_HOST": "unix:///nonexistent.sock"},
    )
    assert replay.returncode == 0, replay.stderr
    again = json.loads(replay.stdout)
    assert again["actions"] == plan["actions"]
    assert again["snapshot_digest"] == plan["snapshot_digest"]
    table = autoscaler("plan", "--rules", str(rules), "--snapshot", str(snap))
    assert "cli-api" in table.stdout and "nodes_ready" in table.stdout
    # nothing was changed by plan
    spec = swarm_client.api.inspect_service("cli-api")["Spec"]
    assert spec["Mode"]["Replicated"]["Replicas"] == 1


@pytest.mark.real
def test_run_once_dry_run_changes_nothing(
    swarm_cluster: SwarmCluster, swarm_client: docker.DockerClient, rules: Path, tmp_path: Path
) -> None:
    swarm_client.services.create(
        "local/busybox:1",
        command=["sleep", "600"],
        name="cli-api",
        mode=ServiceMode("replicated", 1),
    )
    out = autoscaler(
        "run",
        "--once",
        "--dry-run",
        "--rules",
        str(rules),
        "--ledger",
        str(tmp_path / "l.jsonl"),
        env={"AUTOSCALER_DOCKER_HOST": swarm_cluster.manager_host},
    )
    assert out.returncode == 0, out.stderr
    assert "would scale cli-api from 1 to 3" in out.stdout
    spec = swarm_client.api.inspect_service("cli-api")["Spec"]
    assert spec["Mode"]["Replicated"]["Replicas"] == 1
    entry = json.loads((tmp_path / "l.jsonl").read_text().splitlines()[0])
    assert entry["dry_run"] is True and entry["actions"][0]["desired"] == 3


def test_run_once_with_engine_down_fails_cleanly(rules: Path) -> None:
    out = autoscaler(
        "run",
        "--once",
        "--rules",
        str(rules),
        "--ledger",
        "",
        env={"AUTOSCALER_DOCKER_HOST": "unix:///nonexistent.sock"},
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "pass failed: swarm" in out.stderr


def test_version_is_the_installed_package_version() -> None:
    from importlib.metadata import version

    out = subprocess.run(
        [sys.executable, "-m", "autoscaler", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"autoscaler {version('shiny-swarm-autoscaler')}"
