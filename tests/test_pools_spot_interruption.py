"""A Spot machine with an interruption notice: paused at once, never resumed, replaced.

EC2 takes the machine back within two minutes, sessions and all. Nothing can save those
sessions, but no new one may start there; draining would only end them sooner. The
provider reads the notices from the Spot requests (moto's server does not keep a request
for a Spot RunInstances, so those answers are given by the test).
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from autoscaler.alerts.builtin import pool_conditions
from autoscaler.providers.ec2 import Ec2Provider, boto_config
from autoscaler.snapshot import Instance
from tests.pools_builders import hosts, machine, node, on, pool, run, sessions, snapshot

REGION = "eu-west-1"


def interrupted(name: str) -> Instance:
    return machine(name).model_copy(update={"interrupted": True})


HEADROOM = {"headroom": {"seats": 2}}  # two seats free at once, wherever they are


# ---------------------------------------------------------------- the planner


def test_an_interrupted_active_node_is_paused_and_replaced_not_drained() -> None:
    snap = snapshot(
        [node("a"), node("b")],
        sessions("a", 3) + sessions("b", 4, start=10),
        machines=[interrupted("a"), machine("b")],
    )
    plan = run(snap, pool(**HEADROOM))
    assert hosts(plan, "pause_node") == ["a"]
    assert "Spot interruption notice" in on(plan, "pause_node")[0].reason  # type: ignore[attr-defined]
    assert on(plan, "drain_node") == [] and on(plan, "remove_node") == []
    assert on(plan, "terminate_instance") == []
    # b, full, is all the capacity left: the headroom asks for another node
    assert [a.count for a in on(plan, "launch_nodes")] == [1]  # type: ignore[attr-defined]
    (notice,) = pool_conditions(plan)["spot_interruption"]
    assert notice.labels == {"pool": "web", "node": "a"}
    assert "its 3 session(s) end with it" in notice.info["summary_detail"]


def test_a_paused_interrupted_node_is_never_resumed() -> None:
    """Seats are short and a's machine still runs, but it goes within two minutes: a new
    machine is launched instead of resuming a."""
    snap = snapshot(
        [node("a", state="paused"), node("b")],
        sessions("a", 1) + sessions("b", 4, start=10),
        machines=[interrupted("a"), machine("b")],
    )
    plan = run(snap, pool(**HEADROOM))
    assert on(plan, "resume_node") == []
    assert on(plan, "pause_node") == []  # already paused
    assert on(plan, "launch_nodes")
    assert pool_conditions(plan)["spot_interruption"]


def test_an_interrupted_machine_does_not_count_against_max() -> None:
    """At max 2 with one of them going: the replacement may be launched."""
    snap = snapshot(
        [node("a"), node("b")],
        sessions("a", 4) + sessions("b", 4, start=10),
        machines=[interrupted("a"), machine("b")],
    )
    plan = run(snap, pool(max=2, **HEADROOM))
    assert [a.count for a in on(plan, "launch_nodes")] == [1]  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the provider


class SpotRequests:
    """A real boto3 EC2 client whose describe_spot_instance_requests answers are given."""

    def __init__(self, client: Any, codes: dict[str, str], refuse: bool = False) -> None:
        self._client, self.codes, self.refuse = client, codes, refuse
        self.asked: list[list[str]] = []

    def get_paginator(self, name: str) -> Any:
        if name != "describe_spot_instance_requests":
            return self._client.get_paginator(name)
        return self

    def paginate(self, Filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        (ids,) = [f["Values"] for f in Filters if f["Name"] == "instance-id"]
        self.asked.append(list(ids))
        if self.refuse:
            error = {"Error": {"Code": "UnauthorizedOperation", "Message": "not allowed"}}
            raise ClientError(error, "DescribeSpotInstanceRequests")
        requests = [
            {"InstanceId": i, "Status": {"Code": self.codes[i]}} for i in ids if i in self.codes
        ]
        return [{"SpotInstanceRequests": requests}]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def launch_two(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str, str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    ec2 = boto3.client(
        "ec2", region_name=REGION, endpoint_url=moto_url, config=boto_config("standard", 2, 5)
    )
    ami = ec2.describe_images(
        Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}]
    )["Images"][0]["ImageId"]
    tags = [
        {"Key": "autoscaler:cluster", "Value": "spot"},
        {"Key": "autoscaler:pool", "Value": "web"},
    ]
    spec = [{"ResourceType": "instance", "Tags": tags}]
    spot = {"MarketType": "spot", "SpotOptions": {"SpotInstanceType": "one-time"}}
    (on_spot,) = ec2.run_instances(
        ImageId=ami, MinCount=1, MaxCount=1, TagSpecifications=spec, InstanceMarketOptions=spot
    )["Instances"]
    (on_demand,) = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, TagSpecifications=spec)[
        "Instances"
    ]
    return ec2, on_spot["InstanceId"], on_demand["InstanceId"]


def test_the_provider_marks_a_spot_machine_with_an_interruption_notice(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ec2, on_spot, on_demand = launch_two(moto_url, monkeypatch)
    client = SpotRequests(ec2, {on_spot: "marked-for-termination"})
    listed = {i.id: i for i in Ec2Provider(client, "spot", lambda *a: "").list_instances()}
    assert listed[on_spot].interrupted and not listed[on_demand].interrupted
    assert client.asked == [[on_spot]]  # on-demand machines are not asked about
    client.codes[on_spot] = "fulfilled"
    listed = {i.id: i for i in Ec2Provider(client, "spot", lambda *a: "").list_instances()}
    assert not listed[on_spot].interrupted


def test_unreadable_notices_leave_the_machines_listed_and_are_logged_once(
    moto_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A policy without ec2:DescribeSpotInstanceRequests: the list is still good, no
    notice is known (the node stays until its machine goes), and the log says why once."""
    ec2, on_spot, _ = launch_two(moto_url, monkeypatch)
    client = SpotRequests(ec2, {on_spot: "marked-for-termination"}, refuse=True)
    provider = Ec2Provider(client, "spot", lambda *a: "")
    with caplog.at_level(logging.WARNING, "autoscaler.providers.ec2"):
        for _ in range(3):
            listed = {i.id: i for i in provider.list_instances()}
            assert on_spot in listed and not listed[on_spot].interrupted
    warnings = [r for r in caplog.records if "interruption notices unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "UnauthorizedOperation" in warnings[0].getMessage()
