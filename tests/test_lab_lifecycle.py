"""`autoscaler lab up / status / add-worker / remove-worker / down`, as a user runs them.

Each test runs the real command in a subprocess (so the lab outlives the command that
started it, as it does for a user) and checks that `down` leaves nothing behind: no process,
namespace, link, mount or folder, also after an `up` that was killed half way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from autoscaler.lab import lab as lab_mod
from autoscaler.lab import teardown
from tests.realparts import missing_real_part

pytestmark = [pytest.mark.real, pytest.mark.slow]

BINARIES = (
    "dockerd",
    "ip",
    "nsenter",
    "unshare",
    "busybox",
    "prometheus",
    "prometheus-alertmanager",
    "prometheus-node-exporter",
    "influxd",
)


def need_lab() -> None:
    if os.geteuid() != 0:
        missing_real_part("the lab needs root (network namespaces, dockerd)")
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        missing_real_part(f"not installed: {', '.join(missing)}")


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", "lab", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@contextlib.contextmanager
def lab_root(prefix: str, name: str, parent_dir: str | None = None) -> Iterator[Path]:
    """A lab folder inside a new temporary one; the lab a test left there and the
    folder are removed afterwards."""
    need_lab()
    parent = Path(tempfile.mkdtemp(prefix=prefix, dir=parent_dir))
    root = parent / name
    try:
        yield root
    finally:
        try:
            lab_mod.down(root)
        finally:
            shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def lab_dir() -> Iterator[Path]:
    with lab_root("lab-", "l") as root:
        yield root


def leftovers(root: Path, suffix: str) -> list[str]:
    """Everything of the lab still on the machine."""
    found = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        parts = teardown.cmdline(int(pid_dir.name))
        if any(str(root) in part for part in parts):
            found.append(f"process {pid_dir.name}: {parts[:3]}")
    if suffix:
        found += (
            [f"netns {n}" for n in os.listdir("/run/netns") if suffix in n]
            if os.path.isdir("/run/netns")
            else []
        )
        found += [f"link {n}" for n in os.listdir("/sys/class/net") if suffix in n]
    found += [f"mount {m}" for m in teardown.mounts_under(root)]
    if root.exists():
        found.append(f"folder {root}")
    return found


def swarm_suffix(root: Path) -> str:
    return str(json.loads((root / "swarm" / "engines.json").read_text())["suffix"])


def test_up_status_workers_down(lab_dir: Path) -> None:
    began = time.monotonic()
    done = cli("up", "--dir", str(lab_dir), "--workers", "2", "--pool", "lab", "--json")
    assert done.returncode == 0, done.stderr
    up_seconds = time.monotonic() - began
    state = json.loads(done.stdout)
    assert state["status"] == "up"
    assert json.loads((lab_dir / "lab.json").read_text())["endpoints"] == state["endpoints"]
    suffix = swarm_suffix(lab_dir)
    print(f"lab up took {up_seconds:.1f}s (lab.json: {state['up_seconds']}s)")

    status = json.loads(cli("status", "--dir", str(lab_dir), "--json").stdout)
    nodes = status["nodes"]
    assert sorted(n["hostname"] for n in nodes) == ["manager", "worker-1", "worker-2"]
    assert all(n["state"] == "ready" for n in nodes)
    assert {n["hostname"]: n["availability"] for n in nodes}["manager"] == "drain"
    assert {n["hostname"]: n["pool"] for n in nodes}["worker-1"] == "lab"
    down_ones = {k for k, e in status["endpoints"].items() if not e["up"]}
    assert down_ones == {"sidecar_metrics"}  # no sidecar runs in this test
    assert status["sessions"]["counters"]["appStarts"] == 0
    env = (lab_dir / "lab.env").read_text()
    assert f"AUTOSCALER_PROMETHEUS_URL={state['endpoints']['prometheus']}" in env
    assert requests.get(f"{state['endpoints']['prometheus']}/api/v1/targets", timeout=5).ok

    added = cli(
        "add-worker", "--dir", str(lab_dir), "--boot-delay", "1s", "--pool", "lab", "--json"
    )
    assert added.returncode == 0, added.stderr
    worker = json.loads(added.stdout)
    assert worker["name"] == "worker-3" and worker["boot_seconds"] >= 1.0
    nodes = json.loads(cli("status", "--dir", str(lab_dir), "--json").stdout)["nodes"]
    new = [n for n in nodes if n["hostname"] == "worker-3"]
    assert new and new[0]["state"] == "ready" and new[0]["pool"] == "lab"
    assert new[0]["id"] == worker["node_id"]
    engines = json.loads((lab_dir / "swarm" / "engines.json").read_text())["engines"]
    sock = Path(engines["worker-3"]["dir"]) / "docker.sock"
    engine = docker.APIClient(base_url=f"unix://{sock}", timeout=10)
    try:
        assert engine.images(name="local/busybox:1"), "a booted worker needs the app image"
    finally:
        engine.close()

    removed = cli("remove-worker", "--dir", str(lab_dir), "worker-3")
    assert removed.returncode == 0, removed.stderr
    nodes = json.loads(cli("status", "--dir", str(lab_dir), "--json").stdout)["nodes"]
    assert "worker-3" not in [n["hostname"] for n in nodes]

    first = cli("down", "--dir", str(lab_dir))
    assert first.returncode == 0, first.stderr
    assert leftovers(lab_dir, suffix) == []
    again = cli("down", "--dir", str(lab_dir))
    assert again.returncode == 0 and "nothing to do" in again.stdout


def _wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


def test_down_after_a_killed_up_leaves_nothing(lab_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "lab", "up", "--dir", str(lab_dir),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # kill it while engines and backends are starting
        def started() -> bool:
            try:
                state = json.loads((lab_dir / "lab.json").read_text())
                engines = json.loads((lab_dir / "swarm" / "engines.json").read_text())
            except (OSError, ValueError):
                return False
            return bool(state["processes"]) and any(
                e.get("pid") for e in engines["engines"].values()
            )

        _wait_for(started, 60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    suffix = swarm_suffix(lab_dir)
    assert leftovers(lab_dir, suffix) != []  # there is something to clean up
    done = cli("down", "--dir", str(lab_dir))
    assert done.returncode == 0, done.stderr
    assert leftovers(lab_dir, suffix) == []


def test_a_second_up_in_the_same_folder_is_refused(lab_dir: Path) -> None:
    lab_dir.mkdir(parents=True)
    (lab_dir / "lab.json").write_text("{}")
    done = cli("up", "--dir", str(lab_dir), "--workers", "0")
    assert done.returncode == 2
    assert "already runs" in done.stderr
    (lab_dir / "lab.json").unlink()
