"""The user-data for real: a new lab engine runs the rendered script, reads the join token
from moto's SSM (never from its user-data) and joins the lab's Swarm."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from autoscaler.lab.engines import JoinInfo, SwarmCluster, WorkerEngine
from autoscaler.providers.ssm import JoinParameter, swarm_join_info
from autoscaler.userdata import JoinSettings, render_user_data
from tests.realparts import missing_real_part

pytestmark = [pytest.mark.real, pytest.mark.slow]
REGION = "eu-west-1"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def moto_on_bridge(swarm_cluster: SwarmCluster) -> Iterator[str]:
    """moto on the lab bridge's host address, so a worker's namespace can reach it."""
    host = str(ip_network(swarm_cluster.subnet)[1])
    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    try:
        _, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def workdir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="userdata-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_rendered_user_data_joins_the_swarm(
    swarm_cluster: SwarmCluster, moto_on_bridge: str, workdir: Path, monkeypatch: Any
) -> None:
    aws = shutil.which("aws")
    if aws is None:
        missing_real_part("the AWS CLI is not installed (pip install awscli)")
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    ssm = boto3.client("ssm", region_name=REGION, endpoint_url=moto_on_bridge)
    parameter = f"/autoscaler/swarm/join-{secrets.token_hex(3)}"
    token, managers = swarm_join_info(swarm_cluster.client().api)
    assert JoinParameter(ssm, parameter).ensure(token, managers)

    script = render_user_data(
        JoinSettings(
            pool="web",
            cluster="lab",
            region=REGION,
            join_parameter=parameter,
            ssm_endpoint=moto_on_bridge,
            extra_env={"AUTOSCALER_INSTALL_AT_BOOT": "0"},
        )
    )
    assert token not in script
    path = workdir / "user-data.sh"
    path.write_text(script)
    log_file = workdir / "join.log"
    env = {
        **CREDS,
        "AUTOSCALER_LOG": str(log_file),
        "PATH": f"{os.path.dirname(os.path.realpath(aws))}:/usr/sbin:/usr/bin:/sbin:/bin",
    }
    outcome: dict[str, Any] = {}

    def run_user_data(worker: WorkerEngine, info: JoinInfo) -> None:
        done = swarm_cluster.run_on(worker.name, f"bash {path}", env, timeout=120)
        outcome["rc"], outcome["err"] = done.returncode, done.stderr

    name = f"ud{secrets.token_hex(3)}"
    worker = None
    try:
        worker = swarm_cluster.add_worker(name, join=run_user_data, timeout=150)
        assert outcome["rc"] == 0, outcome["err"]
        nodes = {n["Description"]["Hostname"]: n for n in swarm_cluster.client().api.nodes()}
        assert nodes[name]["Status"]["State"] == "ready"
        assert nodes[name]["Spec"]["Role"] == "worker"
        text = log_file.read_text()
        assert "joined pool web" in text
        assert token not in text and token not in outcome["err"]
    finally:
        if worker is not None or name in {w.name for w in swarm_cluster.workers}:
            swarm_cluster.remove_worker(name)
