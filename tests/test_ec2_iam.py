"""The shipped IAM policies: valid documents (moto's IAM), least privilege, tag conditions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

IAM = Path(__file__).parent.parent / "iam"
DESTRUCTIVE = {"ec2:TerminateInstances", "ec2:StartInstances", "ec2:StopInstances"}


def doc(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((IAM / name).read_text())
    return data


def statements(name: str) -> list[dict[str, Any]]:
    return list(doc(name)["Statement"])


def actions(st: dict[str, Any]) -> set[str]:
    a = st["Action"]
    return {a} if isinstance(a, str) else set(a)


@pytest.fixture(scope="module")
def iam(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[Any]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield boto3.client("iam", region_name="us-east-1", endpoint_url=f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        yield mp


@pytest.mark.parametrize("name", ["sidecar-policy.json", "worker-policy.json"])
def test_documents_are_accepted_by_iam(iam: Any, name: str) -> None:
    created = iam.create_policy(
        PolicyName=name.removesuffix(".json"), PolicyDocument=(IAM / name).read_text()
    )
    assert created["Policy"]["Arn"].endswith(name.removesuffix(".json"))


def test_worker_role_can_be_created_with_its_trust(iam: Any) -> None:
    role = iam.create_role(
        RoleName="shiny-swarm-worker",
        AssumeRolePolicyDocument=(IAM / "worker-trust.json").read_text(),
    )
    assert role["Role"]["RoleName"] == "shiny-swarm-worker"


@pytest.mark.parametrize("name", ["sidecar-policy.json", "worker-policy.json"])
def test_no_wildcard_actions_and_only_allow(name: str) -> None:
    for st in statements(name):
        assert st["Effect"] == "Allow"
        assert all("*" not in a.split(":")[1] for a in actions(st)), st["Sid"]


def test_sidecar_touches_only_its_clusters_instances() -> None:
    for st in statements("sidecar-policy.json"):
        if actions(st) & DESTRUCTIVE:
            assert st["Condition"] == {
                "StringEquals": {"ec2:ResourceTag/autoscaler:cluster": "shiny"}
            }
            assert st["Resource"] == "arn:aws:ec2:*:*:instance/*"


def test_sidecar_launches_only_tagged_instances() -> None:
    launch = [
        st
        for st in statements("sidecar-policy.json")
        if "ec2:RunInstances" in actions(st) and "arn:aws:ec2:*:*:instance/*" in st["Resource"]
    ]
    (st,) = launch
    assert st["Condition"]["StringEquals"] == {"aws:RequestTag/autoscaler:cluster": "shiny"}
    tagging = [s for s in statements("sidecar-policy.json") if s["Sid"] == "TagOnlyAtLaunch"]
    assert tagging[0]["Condition"] == {"StringEquals": {"ec2:CreateAction": "RunInstances"}}


def test_sidecar_passes_only_the_worker_role() -> None:
    (st,) = [s for s in statements("sidecar-policy.json") if "iam:PassRole" in actions(s)]
    assert st["Resource"].endswith(":role/shiny-swarm-worker")
    assert st["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


def test_worker_reads_only_the_join_parameter_and_writes_nothing() -> None:
    every = set().union(*(actions(s) for s in statements("worker-policy.json")))
    assert not {a for a in every if a.startswith(("ec2:", "iam:", "ssm:Put", "ssm:Delete"))}
    (ssm,) = [s for s in statements("worker-policy.json") if "ssm:GetParameter" in actions(s)]
    assert ssm["Resource"] == "arn:aws:ssm:*:*:parameter/autoscaler/swarm/worker-join"
