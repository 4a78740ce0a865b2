"""Start one dockerd inside its network namespace, under a UTS namespace with its hostname.

Every engine gets its own data-root, exec-root, pidfile, socket, containerd namespaces and
cgroup parent, all named after the lab, so engines never share state or names. Engines do
not touch iptables, forwarding or bridges: the lab's namespaces need none of that.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from autoscaler.lab import netns
from autoscaler.lab.errors import LabError
from autoscaler.lab.records import EngineRecord

API_VERSION = "1.41"
"""Engine 20.10's API; newer engines still speak it, and a fixed version saves a round trip."""
CONNECT_ERRORS = (docker.errors.DockerException, requests.RequestException, OSError)


def dockerd_command(rec: EngineRecord, suffix: str) -> list[str]:
    engine_dir = Path(rec.dir)
    ns = f"swl-{suffix}-{rec.tag}"
    dockerd = [
        "dockerd",
        f"--config-file={engine_dir / 'daemon.json'}",
        f"--data-root={engine_dir / 'data'}",
        f"--exec-root={engine_dir / 'exec'}",
        f"--pidfile={rec.pidfile}",
        f"--host={rec.host}",
        f"--containerd-namespace={ns}",
        f"--containerd-plugins-namespace={ns}-p",
        f"--cgroup-parent={rec.cgroup_parent}",
        "--bridge=none",
        "--iptables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--userland-proxy=false",
        "--shutdown-timeout=2",
    ]
    # nsenter (net only), unshare (no --fork) and sh all exec: the pid stays dockerd's
    return [
        "nsenter",
        f"--net={netns.netns_path(rec.netns)}",
        "unshare",
        "--uts",
        "sh",
        "-c",
        'hostname "$0" && exec "$@"',
        rec.name,
        *dockerd,
    ]


def launch(rec: EngineRecord, suffix: str) -> subprocess.Popen[bytes]:
    engine_dir = Path(rec.dir)
    engine_dir.mkdir(parents=True, exist_ok=True)
    (engine_dir / "daemon.json").write_text(
        # keeps dockerd from writing its identity key to /etc/docker
        json.dumps({"deprecated-key-path": str(engine_dir / "key.json")})
    )
    # containerd (and the shims) write stack dumps (containerd.<pid>.stacks.log, on
    # SIGUSR1) to $TMPDIR: inside the engine's folder, `down` removes them with it
    tmp = engine_dir / "tmp"
    tmp.mkdir(exist_ok=True)
    with rec.log_file.open("ab") as out:
        return subprocess.Popen(
            dockerd_command(rec, suffix),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=engine_dir,
            env={**engine_env(), "TMPDIR": str(tmp)},
            start_new_session=True,
        )


def wait_ready(
    rec: EngineRecord,
    proc: subprocess.Popen[bytes],
    deadline: float,
    cancelled: Callable[[], bool],
) -> Any:
    """A docker.APIClient once the engine answers; LabError with its log tail otherwise."""
    api = docker.APIClient(base_url=rec.host, version=API_VERSION, timeout=5)
    while True:
        if proc.poll() is not None:
            api.close()
            raise LabError(f"engine {rec.name} exited with {proc.returncode}{log_tail(rec)}")
        try:
            if rec.socket.exists() and api.ping():
                return api
        except CONNECT_ERRORS:
            pass
        if cancelled() or time.monotonic() > deadline:
            api.close()
            raise LabError(f"engine {rec.name} did not answer in time{log_tail(rec)}")
        time.sleep(0.05)


def engine_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    # without this a swarm task first tries to pull its image from a registry
    env["DOCKER_SERVICE_PREFER_OFFLINE_IMAGE"] = "1"
    return env


def log_tail(rec: EngineRecord, lines: int = 15) -> str:
    try:
        text = rec.log_file.read_text(errors="replace")
    except OSError:
        return ""
    tail = "\n".join(text.splitlines()[-lines:])
    return f"\n--- last lines of {rec.log_file} ---\n{tail}" if tail else ""
