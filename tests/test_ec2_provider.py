"""The EC2 provider and the SSM join parameter against moto's server (real HTTP, real boto3)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from autoscaler.decide.pools import labels as L
from autoscaler.providers.base import ProviderError
from autoscaler.providers.ec2 import Ec2Provider, boto_config
from autoscaler.providers.ssm import JoinParameter
from autoscaler.rules.pools import PoolPolicy
from autoscaler.snapshot import LaunchTemplateNow
from autoscaler.sources.errors import SourceError
from autoscaler.userdata import JoinSettings, render_user_data

REGION = "eu-west-1"
AMAZON_LINUX = {"Name": "name", "Values": ["amzn2-ami-hvm-*"]}
CLUSTER = "test-cluster"
NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
SECRET = "SWMTKN-1-secret-token-value"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    cfg = boto_config("standard", 2, 5)
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_url, config=cfg)
    ssm = boto3.client("ssm", region_name=REGION, endpoint_url=moto_url, config=cfg)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24")["Subnet"]["SubnetId"]
        for i in (1, 2)
    ]
    sg = ec2.create_security_group(GroupName=f"w-{vpc}", Description="w", VpcId=vpc)["GroupId"]
    # filtered: all of moto's 1,000+ images take longer than the client's 5 s read timeout
    ami = ec2.describe_images(Owners=["amazon"], Filters=[AMAZON_LINUX])["Images"][0]["ImageId"]
    iam = boto3.client("iam", region_name=REGION, endpoint_url=moto_url, config=cfg)
    profiles = iam.list_instance_profiles()["InstanceProfiles"]  # moto's state is per process
    if "shiny-worker" not in {p["InstanceProfileName"] for p in profiles}:
        iam.create_role(RoleName="shiny-worker", AssumeRolePolicyDocument=TRUST)
        iam.create_instance_profile(InstanceProfileName="shiny-worker")
        iam.add_role_to_instance_profile(
            InstanceProfileName="shiny-worker", RoleName="shiny-worker"
        )
    yield {"ec2": ec2, "ssm": ssm, "subnets": subnets, "sg": sg, "ami": ami, "url": moto_url}
    ids = [
        i["InstanceId"]
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    if ids:
        ec2.terminate_instances(InstanceIds=ids)


def policy(aws: dict[str, Any], **ec2: Any) -> PoolPolicy:
    section = {
        "ami": aws["ami"],
        "instance_types": ["m6i.xlarge", "m5.xlarge"],
        "subnets": aws["subnets"],
        "security_groups": [aws["sg"]],
        "instance_profile": "shiny-worker",
        **ec2,
    }
    return PoolPolicy.model_validate(
        {"provider": "ec2", "max": 5, "seats_per_node": 4, "images": ["r-app:1"], "ec2": section}
    )


def user_data(pool: str, p: PoolPolicy, warm: bool) -> str:
    settings = JoinSettings(pool, CLUSTER, REGION, "/autoscaler/join", p.images, warm=warm)
    return render_user_data(settings)


def provider(client: Any, cluster: str = CLUSTER) -> Ec2Provider:
    return Ec2Provider(client, cluster, user_data, clock=lambda: NOW)


def describe(ec2: Any, ids: list[str]) -> list[dict[str, Any]]:
    answer = ec2.describe_instances(InstanceIds=ids)
    return [i for r in answer["Reservations"] for i in r["Instances"]]


class NoCapacity:
    """The boto3 client, except that some instance types (or Spot) have no capacity."""

    def __init__(
        self,
        client: Any,
        types: set[str],
        spot: bool = False,
        code: str = "InsufficientInstanceCapacity",
    ) -> None:
        self._client = client
        self.types = types
        self.spot = spot
        self.code = code
        self.calls: list[tuple[str, str, str]] = []

    def run_instances(self, **params: Any) -> Any:
        market = params.get("InstanceMarketOptions", {}).get("MarketType", "on-demand")
        self.calls.append((params["InstanceType"], params["SubnetId"], market))
        if params["InstanceType"] in self.types or (self.spot and market == "spot"):
            error = {"Code": self.code, "Message": "refused"}
            raise ClientError({"Error": error}, "RunInstances")
        return self._client.run_instances(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_launch_tags_imdsv2_and_user_data(aws: dict[str, Any]) -> None:
    ids = provider(aws["ec2"]).launch("web", policy(aws), 2, "web-1-2")
    assert len(ids) == 2
    for inst in describe(aws["ec2"], ids):
        tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
        assert tags[L.TAG_POOL] == "web"
        assert tags[L.TAG_CLUSTER] == CLUSTER
        assert tags[L.TAG_LAUNCHED_AT] == "2024-05-06T12:00:00Z"
        assert inst["InstanceType"] == "m6i.xlarge"
        assert inst["SubnetId"] == aws["subnets"][0]
        assert inst["MetadataOptions"]["HttpTokens"] == "required"
        assert [g["GroupId"] for g in inst["SecurityGroups"]] == [aws["sg"]]
    attr = aws["ec2"].describe_instance_attribute(InstanceId=ids[0], Attribute="userData")
    script = base64.b64decode(attr["UserData"]["Value"]).decode()
    assert "AUTOSCALER_POOL=web" in script and "AUTOSCALER_IMAGES=r-app:1" in script
    assert "SWMTKN" not in script


def test_list_shows_only_this_clusters_pool_machines(aws: dict[str, Any]) -> None:
    mine = provider(aws["ec2"]).launch("web", policy(aws), 1, "web-list")
    theirs = provider(aws["ec2"], cluster="other").launch("web", policy(aws), 1, "o-list")
    aws["ec2"].run_instances(ImageId=aws["ami"], MinCount=1, MaxCount=1)  # untagged
    listed = provider(aws["ec2"]).list_instances()
    assert [i.id for i in listed] == mine
    (inst,) = listed
    assert inst.pool == "web" and inst.state in ("pending", "running")
    assert inst.launched_at == NOW and inst.private_dns and inst.private_ip
    assert theirs[0] not in {i.id for i in listed}


def test_client_token_makes_launch_idempotent(aws: dict[str, Any]) -> None:
    p = provider(aws["ec2"])
    first = p.launch("web", policy(aws), 2, "web-same-token")
    again = p.launch("web", policy(aws), 2, "web-same-token")
    assert sorted(first) == sorted(again)
    assert len(p.list_instances()) == 2
    other = p.launch("web", policy(aws), 1, "web-another-token")
    assert not set(other) & set(first)
    tokens = {
        i["InstanceId"]: {t["Key"]: t["Value"] for t in i["Tags"]}[L.TAG_TOKEN]
        for i in describe(aws["ec2"], first + other)
    }
    assert tokens[first[0]] == tokens[first[1]] != tokens[other[0]]
    assert all(len(t) <= 64 for t in tokens.values())  # EC2's ClientToken limit


def test_capacity_error_falls_back_to_next_type_then_subnet(aws: dict[str, Any]) -> None:
    client = NoCapacity(aws["ec2"], {"m6i.xlarge"})
    ids = provider(client).launch("web", policy(aws), 1, "web-fallback")
    (inst,) = describe(aws["ec2"], ids)
    assert inst["InstanceType"] == "m5.xlarge"
    s1, s2 = aws["subnets"]
    assert client.calls == [
        ("m6i.xlarge", s1, "on-demand"),
        ("m6i.xlarge", s2, "on-demand"),
        ("m5.xlarge", s1, "on-demand"),
    ]


def test_a_place_without_capacity_is_tried_last_for_three_minutes(aws: dict[str, Any]) -> None:
    client = NoCapacity(aws["ec2"], {"m6i.xlarge"})
    now = [NOW]
    p = Ec2Provider(client, CLUSTER, user_data, clock=lambda: now[0])
    s1 = aws["subnets"][0]
    p.launch("web", policy(aws), 1, "web-ice-1")
    assert len(client.calls) == 3  # both m6i.xlarge places refused, then m5.xlarge
    client.calls.clear()
    now[0] = NOW + timedelta(minutes=2)
    p.launch("web", policy(aws), 1, "web-ice-2")
    assert client.calls == [("m5.xlarge", s1, "on-demand")]  # no round trip to refusals
    client.calls.clear()
    now[0] = NOW + timedelta(minutes=5)  # past the three minutes: the pool's order again
    client.types = set()  # the shortage is over
    ids = p.launch("web", policy(aws), 1, "web-ice-3")
    assert client.calls == [("m6i.xlarge", s1, "on-demand")]
    assert describe(aws["ec2"], ids)[0]["InstanceType"] == "m6i.xlarge"


def test_places_without_capacity_are_still_tried_when_the_others_have_none(
    aws: dict[str, Any],
) -> None:
    client = NoCapacity(aws["ec2"], {"m6i.xlarge"})
    p = provider(client)
    p.launch("web", policy(aws), 1, "web-ice-a")
    client.calls.clear()
    client.types = {"m5.xlarge"}  # the shortage moved: the places tried last have room again
    ids = p.launch("web", policy(aws), 1, "web-ice-b")
    s1, s2 = aws["subnets"]
    assert client.calls == [
        ("m5.xlarge", s1, "on-demand"),
        ("m5.xlarge", s2, "on-demand"),
        ("m6i.xlarge", s1, "on-demand"),
    ]
    assert describe(aws["ec2"], ids)[0]["InstanceType"] == "m6i.xlarge"
    client.calls.clear()
    p.launch("web", policy(aws), 1, "web-ice-c")  # it had room: no longer tried last
    assert client.calls[0] == ("m6i.xlarge", s1, "on-demand")


def test_a_retried_launch_starts_nothing_more_when_its_places_come_in_another_order(
    aws: dict[str, Any],
) -> None:
    """The call went through at the first place; by the retry, that place had a capacity
    error for another launch and comes last: its machine is still found, none is added."""
    first = provider(aws["ec2"]).launch("web", policy(aws), 1, "web-retry")
    client = NoCapacity(aws["ec2"], {"m6i.xlarge"})
    p = provider(client)
    with pytest.raises(ProviderError):
        p.launch("web", policy(aws, instance_types=["m6i.xlarge"]), 1, "web-other")
    client.types = set()
    client.calls.clear()
    again = p.launch("web", policy(aws), 1, "web-retry")
    assert again == first and client.calls == []
    assert len(p.list_instances()) == 1


def test_no_capacity_anywhere_is_an_error_naming_each_place(aws: dict[str, Any]) -> None:
    client = NoCapacity(aws["ec2"], {"m6i.xlarge", "m5.xlarge"})
    with pytest.raises(ProviderError, match=r"no capacity for pool web: m6i\.xlarge on-demand"):
        provider(client).launch("web", policy(aws), 1, "web-none")
    assert len(client.calls) == 4
    assert provider(aws["ec2"]).list_instances() == ()


def test_spot_falls_back_to_on_demand(aws: dict[str, Any]) -> None:
    client = NoCapacity(aws["ec2"], set(), spot=True)
    ids = provider(client).launch("web", policy(aws, spot=True), 1, "web-spot")
    assert len(ids) == 1
    assert client.calls[:2] == [
        ("m6i.xlarge", aws["subnets"][0], "spot"),
        ("m6i.xlarge", aws["subnets"][0], "on-demand"),
    ]


def test_other_errors_are_not_retried_elsewhere(aws: dict[str, Any]) -> None:
    client = NoCapacity(aws["ec2"], {"m6i.xlarge"}, code="UnauthorizedOperation")
    with pytest.raises(ProviderError, match=r"run_instances refused \(UnauthorizedOperation\)"):
        provider(client).launch("web", policy(aws), 1, "web-unauthorized")
    assert len(client.calls) == 1


def test_terminate_only_the_pools_machines(aws: dict[str, Any]) -> None:
    p = provider(aws["ec2"])
    (mine,) = p.launch("web", policy(aws), 1, "web-term")
    (other_pool,) = p.launch("batch", policy(aws), 1, "batch-term")
    stranger = aws["ec2"].run_instances(ImageId=aws["ami"], MinCount=1, MaxCount=1)
    stranger_id = stranger["Instances"][0]["InstanceId"]
    with pytest.raises(ProviderError, match="never terminated"):
        p.terminate(stranger_id, "web")
    with pytest.raises(ProviderError, match="never terminated"):
        p.terminate(other_pool, "web")
    assert p.terminate(mine, "web") == f"terminated {mine}"
    assert describe(aws["ec2"], [mine])[0]["State"]["Name"] in ("shutting-down", "terminated")
    assert "already" in p.terminate(mine, "web")
    states = {i["InstanceId"]: i["State"]["Name"] for i in describe(aws["ec2"], [stranger_id])}
    assert states[stranger_id] in ("pending", "running")
    assert mine not in {i.id for i in p.list_instances()}


def test_warm_pool_is_started_before_launching(aws: dict[str, Any]) -> None:
    p = provider(aws["ec2"])
    pol = policy(aws, warm_pool=1)
    (warm,) = p.fill_warm_pool("web", pol, "web-warm")
    (listed,) = p.list_instances()
    assert listed.warm and not listed.alive  # still pulling images: neither capacity nor a join
    assert p.fill_warm_pool("web", pol, "web-warm-2") == []  # already one on its way
    aws["ec2"].stop_instances(InstanceIds=[warm])
    assert [i.state for i in p.list_instances()] in (["stopping"], ["stopped"])
    attr = aws["ec2"].describe_instance_attribute(InstanceId=warm, Attribute="userData")
    assert "AUTOSCALER_WARM=1" in base64.b64decode(attr["UserData"]["Value"]).decode()
    waiter_state = describe(aws["ec2"], [warm])[0]["State"]["Name"]
    if waiter_state != "stopped":
        pytest.skip(f"moto left the machine {waiter_state}")
    ids = p.launch("web", pol, 2, "web-after-warm")
    assert ids[0] == warm and len(ids) == 2
    assert {i.id: i.state for i in p.list_instances()}[warm] in ("pending", "running")


def test_unreachable_ec2_is_a_source_error() -> None:
    client = boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=boto_config("standard", 1, 1),
    )
    with pytest.raises(SourceError, match="EC2 unreachable"):
        provider(client).list_instances()


# ---------------------------------------------------------------- SSM join parameter


def test_join_token_written_as_secure_string_and_readable(aws: dict[str, Any]) -> None:
    name = "/autoscaler/test/join-1"
    param = JoinParameter(aws["ssm"], name)
    assert param.ensure(SECRET, ["10.0.0.5:2377"]) is True
    raw = aws["ssm"].get_parameter(Name=name)["Parameter"]
    assert raw["Type"] == "SecureString"
    value = aws["ssm"].get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    assert raw["Value"] != value  # not the plain value unless asked to decrypt
    assert json.loads(value) == {"token": SECRET, "managers": ["10.0.0.5:2377"]}
    # unchanged: not rewritten, also by a new writer (after a restart)
    assert param.ensure(SECRET, ["10.0.0.5:2377"]) is False
    assert JoinParameter(aws["ssm"], name).ensure(SECRET, ["10.0.0.5:2377"]) is False
    version = aws["ssm"].get_parameter(Name=name)["Parameter"]["Version"]
    # rotated token: rewritten
    assert param.ensure(SECRET + "-rotated", ["10.0.0.5:2377"]) is True
    assert aws["ssm"].get_parameter(Name=name)["Parameter"]["Version"] == version + 1


def test_join_parameter_refuses_empty_values(aws: dict[str, Any]) -> None:
    with pytest.raises(ProviderError, match="no join token"):
        JoinParameter(aws["ssm"], "/autoscaler/test/join-2").ensure("", ["10.0.0.5:2377"])


def test_decide_keeps_the_warm_pool_topped_up(aws: dict[str, Any]) -> None:
    """decide -> MachineActuator -> EC2 and back: filled, not twice, refilled after a launch."""
    from autoscaler.actuate.machines import MachineActuator
    from autoscaler.decide import plan
    from autoscaler.decide.plan_types import Memory
    from autoscaler.rules.schema import Policies
    from autoscaler.snapshot import Snapshot, SwarmState

    p = provider(aws["ec2"])
    policies = Policies(pools={"web": policy(aws, warm_pool=2)})
    act = MachineActuator({"ec2": p}, lambda: policies)
    memory = Memory()

    def one_pass(at: datetime, lagging: bool = False) -> list[str]:
        nonlocal memory
        listed = () if lagging else p.list_instances()
        snap = Snapshot(taken_at=at, swarm=SwarmState(), instances=listed)
        result = plan(snap, policies, memory)
        memory = result.memory
        done = [act.execute(a) for a in result.actions if a.kind == "fill_warm_pool"]
        assert all(r.ok for r in done), [r.message for r in done]
        return [r.message for r in done]

    (message,) = one_pass(NOW)
    assert message.startswith("2 warm machine(s) on their way for pool web: i-")
    warm = [i for i in p.list_instances() if i.pool == "web"]
    assert len(warm) == 2 and all(i.warm and not i.alive for i in warm)
    assert one_pass(NOW, lagging=True) == []  # unlisted yet, but on their way: not again
    assert one_pass(NOW + timedelta(minutes=5)) == []  # listed: the pool is full
    aws["ec2"].stop_instances(InstanceIds=[i.id for i in warm])
    raw = {d["InstanceId"]: d["State"]["Name"] for d in describe(aws["ec2"], [i.id for i in warm])}
    if set(raw.values()) != {"stopped"}:
        pytest.skip(f"moto left the machines {sorted(set(raw.values()))}")
    assert {i.id: i.state for i in p.list_instances() if i.id in raw} == raw  # listed as EC2 says
    (started,) = p.launch("web", policies.pools["web"], 1, "web-uses-warm")
    assert started in {i.id for i in warm}
    (message,) = one_pass(NOW + timedelta(minutes=10))
    assert message.startswith("1 warm machine(s) on their way")
    listed = p.list_instances()
    assert sum(i.warm for i in listed) == 2 and [i.id for i in listed if i.alive] == [started]


class Recording:
    """The boto3 client, keeping the parameters of every run_instances call."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.runs: list[dict[str, Any]] = []

    def run_instances(self, **params: Any) -> Any:
        self.runs.append(params)
        return self._client.run_instances(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_each_tag_is_asked_for_once_per_resource(aws: dict[str, Any]) -> None:
    # EC2 refuses a tag key given twice for one resource (moto does not check)
    client = Recording(aws["ec2"])
    p = provider(client)
    p.launch("web", policy(aws), 1, "web-tags")
    p.fill_warm_pool("web", policy(aws, warm_pool=1), "web-tags-warm")
    assert len(client.runs) == 2
    for params in client.runs:
        for spec in params["TagSpecifications"]:
            keys = [t["Key"] for t in spec["Tags"]]
            assert len(keys) == len(set(keys)), (spec["ResourceType"], keys)
            assert "autoscaler:launch-token" in keys


def test_the_warm_pool_falls_back_on_capacity_and_is_never_spot(aws: dict[str, Any]) -> None:
    short = NoCapacity(aws["ec2"], {"m6i.xlarge"})
    p = provider(short)
    (warm,) = p.fill_warm_pool("web", policy(aws, warm_pool=1, spot=True), "web-warm-fallback")
    assert [(t, market) for t, _, market in short.calls] == [
        ("m6i.xlarge", "on-demand"),
        ("m6i.xlarge", "on-demand"),  # the second subnet
        ("m5.xlarge", "on-demand"),
    ]
    (inst,) = describe(aws["ec2"], [warm])
    assert inst["InstanceType"] == "m5.xlarge"
    assert {"Key": "autoscaler:warm", "Value": "true"} in inst["Tags"]


def test_launch_from_a_launch_template(aws: dict[str, Any]) -> None:
    name = f"shiny-worker-{aws['sg'][-6:]}"
    aws["ec2"].create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": aws["ami"]}
    )
    pol = policy(aws, ami=None, launch_template=name)
    (iid,) = provider(aws["ec2"]).launch("web", pol, 1, "web-template")
    (inst,) = describe(aws["ec2"], [iid])
    assert inst["ImageId"] == aws["ami"]
    assert inst["MetadataOptions"]["HttpTokens"] == "required"


def root_volumes(ec2: Any, iid: str) -> list[tuple[str, int, str]]:
    vols = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])
    return sorted(
        (v["Attachments"][0]["Device"], v["Size"], v["VolumeType"]) for v in vols["Volumes"]
    )


def test_the_root_disk_is_resized_under_the_images_own_device_name(aws: dict[str, Any]) -> None:
    (image,) = aws["ec2"].describe_images(ImageIds=[aws["ami"]])["Images"]
    device = image["RootDeviceName"]
    (iid,) = provider(aws["ec2"]).launch("web", policy(aws, root_volume_gb=60), 1, "web-disk")
    # one disk, the root one: under another name EC2 would add a second beside the image's
    assert root_volumes(aws["ec2"], iid) == [(device, 60, "gp3")]


def test_a_root_disk_smaller_than_the_image_is_refused_before_any_launch(
    aws: dict[str, Any],
) -> None:
    (image,) = aws["ec2"].describe_images(ImageIds=[aws["ami"]])["Images"]
    (root,) = [
        m for m in image["BlockDeviceMappings"] if m["DeviceName"] == image["RootDeviceName"]
    ]
    small = root["Ebs"]["VolumeSize"] - 1
    client = NoCapacity(aws["ec2"], set())
    with pytest.raises(ProviderError, match=f"root_volume_gb {small} is smaller"):
        provider(client).launch("web", policy(aws, root_volume_gb=small), 1, "web-small")
    assert client.calls == []


def test_a_root_disk_of_an_unknown_image_is_a_provider_error(aws: dict[str, Any]) -> None:
    pol = policy(aws, ami="ami-0000000000000dead", root_volume_gb=40)
    with pytest.raises(ProviderError, match="image ami-0000000000000dead unreadable"):
        provider(aws["ec2"]).launch("web", pol, 1, "web-noimage")


def test_a_root_disk_size_needs_an_image_to_name_its_device(aws: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="'root_volume_gb' needs 'ami'"):
        policy(aws, ami=None, launch_template="shiny-worker", root_volume_gb=40)


def test_another_clusters_launch_with_the_same_token_is_not_ours(aws: dict[str, Any]) -> None:
    # tokens are pool-second-count: two clusters of one account (staging and production,
    # pool "web" in both) easily plan one in the same second; EC2's ClientToken is account-wide
    theirs = Recording(aws["ec2"])
    ours = Recording(aws["ec2"])
    other = provider(theirs, cluster="staging").launch("web", policy(aws), 1, "web-1715000000-1")
    mine = provider(ours).launch("web", policy(aws), 1, "web-1715000000-1")
    assert len(mine) == 1 and not set(mine) & set(other)
    assert [i.id for i in provider(aws["ec2"]).list_instances()] == mine
    assert [i.id for i in provider(aws["ec2"], cluster="staging").list_instances()] == other
    (their_run,) = theirs.runs
    (our_run,) = ours.runs
    assert their_run["ClientToken"] != our_run["ClientToken"]
    # and the same launch asked again in our cluster is still idempotent
    assert provider(ours).launch("web", policy(aws), 1, "web-1715000000-1") == mine
    assert len(ours.runs) == 1


def test_warm_machines_stop_when_they_power_off(aws: dict[str, Any]) -> None:
    # a launch template (or AMI) made for ephemeral workers often says terminate on shutdown:
    # a warm machine would then be gone after pulling its images, and be replaced, forever
    name = f"ephemeral-{aws['sg'][-6:]}"
    aws["ec2"].create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={
            "ImageId": aws["ami"],
            "InstanceInitiatedShutdownBehavior": "terminate",
        },
    )
    client = Recording(aws["ec2"])
    pol = policy(aws, ami=None, launch_template=name, warm_pool=1)
    (warm,) = provider(client).fill_warm_pool("web", pol, "web-warm-stop")
    provider(client).launch("web", pol, 1, "web-not-warm")  # the warm one still pulls: a new one
    warm_run, worker_run = client.runs
    assert warm_run["InstanceInitiatedShutdownBehavior"] == "stop"
    assert "InstanceInitiatedShutdownBehavior" not in worker_run  # the template decides
    attr = aws["ec2"].describe_instance_attribute(
        InstanceId=warm, Attribute="instanceInitiatedShutdownBehavior"
    )
    assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "stop"


def test_a_deleted_or_clear_text_join_parameter_is_written_again(aws: dict[str, Any]) -> None:
    name = "/autoscaler/test/join-3"
    param = JoinParameter(aws["ssm"], name)
    assert param.ensure(SECRET, ["10.0.0.5:2377"]) is True
    aws["ssm"].delete_parameter(Name=name)  # an operator cleaning up, a restore ...
    assert param.ensure(SECRET, ["10.0.0.5:2377"]) is True  # else no worker ever joins
    stored = aws["ssm"].get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert json.loads(stored["Value"])["token"] == SECRET and stored["Type"] == "SecureString"
    # the same value in clear (a String) is not good enough: rewritten encrypted
    aws["ssm"].delete_parameter(Name=name)
    aws["ssm"].put_parameter(Name=name, Type="String", Value=stored["Value"])
    assert param.ensure(SECRET, ["10.0.0.5:2377"]) is True
    assert aws["ssm"].get_parameter(Name=name)["Parameter"]["Type"] == "SecureString"
    assert param.ensure(SECRET, ["10.0.0.5:2377"]) is False


def stopped_warm_machine(aws: dict[str, Any], pol: PoolPolicy, token: str) -> str:
    (warm,) = provider(aws["ec2"]).fill_warm_pool("web", pol, token)
    aws["ec2"].stop_instances(InstanceIds=[warm])
    state = describe(aws["ec2"], [warm])[0]["State"]["Name"]
    assert state == "stopped", f"moto left the machine {state}"
    return warm


def test_a_launch_short_of_capacity_after_a_warm_start_reports_the_start(
    aws: dict[str, Any],
) -> None:
    pol = policy(aws, warm_pool=1)
    warm = stopped_warm_machine(aws, pol, "web-warm-short")
    client = NoCapacity(aws["ec2"], {"m6i.xlarge", "m5.xlarge"})
    # one machine started: as a launch that found room for some, not a failed launch
    assert provider(client).launch("web", pol, 2, "web-short") == [warm]
    assert len(client.calls) == 4
    assert {i.id: i.state for i in provider(aws["ec2"]).list_instances()}[warm] in (
        "pending",
        "running",
    )


def test_a_failed_launch_names_the_machines_it_started(aws: dict[str, Any]) -> None:
    pol = policy(aws, warm_pool=1)
    warm = stopped_warm_machine(aws, pol, "web-warm-refused")
    client = NoCapacity(aws["ec2"], {"m6i.xlarge"}, code="RequestLimitExceeded")
    with pytest.raises(ProviderError) as raised:
        provider(client).launch("web", pol, 2, "web-refused")
    text = str(raised.value)
    assert text.startswith("run_instances refused (RequestLimitExceeded)")
    assert text.endswith(f"started before that: {warm}")  # it runs and costs: say so


def test_user_data_it_cannot_render_is_a_provider_error(aws: dict[str, Any]) -> None:
    # the actuator reports ProviderErrors as a failed launch; anything else escapes it
    pol = policy(aws).model_copy(update={"images": ("web\nAUTOSCALER_WARM=1",)})
    with pytest.raises(ProviderError, match="user-data of pool web: AUTOSCALER_IMAGES"):
        provider(aws["ec2"]).launch("web", pol, 1, "web-bad-user-data")
    assert provider(aws["ec2"]).list_instances() == ()


# ---------------------------------------------------------------- capacity errors, as sent


class Refusing:
    """EC2's answer when a place has no room, on the real client's HTTP layer: moto always
    has capacity, and botocore's own retries must see the answer as EC2 sends it (a capacity
    error comes with HTTP 500, a full subnet with 400). Records every RunInstances sent."""

    def __init__(
        self,
        client: Any,
        code: str,
        status: int,
        types: Collection[str] = (),
        subnets: Collection[str] = (),
        spot: bool = False,
    ) -> None:
        self.code, self.status = code, status
        self.types, self.subnets, self.spot = types, subnets, spot
        self.sent: list[tuple[str, str, str]] = []
        client.meta.events.register_first("before-send.ec2.RunInstances", self._send)

    def _send(self, request: Any, **_: Any) -> AWSResponse | None:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        form = {k: v[0] for k, v in parse_qs(body).items()}
        place = (
            form["InstanceType"],
            form["SubnetId"],
            form.get("InstanceMarketOptions.MarketType", "on-demand"),
        )
        self.sent.append(place)
        refused = (
            place[0] in self.types or place[1] in self.subnets or (self.spot and place[2] == "spot")
        )
        if not refused:
            return None
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            f"<Code>{self.code}</Code><Message>no room here</Message></Error></Errors>"
            "<RequestID>6b8a4f7c-0000-4000-8000-000000000000</RequestID></Response>"
        ).encode()
        return AWSResponse(request.url, self.status, {}, _Body(xml))


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def no_room(url: str) -> AWSResponse:
    """StartInstances as EC2 answers it when the machine's zone has no room: HTTP 500."""
    xml = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        b"<Code>InsufficientInstanceCapacity</Code><Message>no room</Message></Error>"
        b"</Errors><RequestID>6b8a4f7c-0000-4000-8000-000000000001</RequestID></Response>"
    )
    return AWSResponse(url, 500, {}, _Body(xml))


def test_insufficient_capacity_moves_on_at_once_not_after_botocore_retries(
    aws: dict[str, Any],
) -> None:
    # EC2 sends InsufficientInstanceCapacity as HTTP 500, which botocore retries as transient
    # with backoff: the same full place asked again and again while a user's session waits
    refusing = Refusing(aws["ec2"], "InsufficientInstanceCapacity", 500, types={"m6i.xlarge"})
    (iid,) = provider(aws["ec2"]).launch("web", policy(aws), 1, "web-ice-500")
    (inst,) = describe(aws["ec2"], [iid])
    assert inst["InstanceType"] == "m5.xlarge"
    s1, s2 = aws["subnets"]
    assert refusing.sent == [
        ("m6i.xlarge", s1, "on-demand"),
        ("m6i.xlarge", s2, "on-demand"),
        ("m5.xlarge", s1, "on-demand"),
    ]


def test_a_full_subnet_moves_on_to_the_next_subnet(aws: dict[str, Any]) -> None:
    s1, s2 = aws["subnets"]
    Refusing(aws["ec2"], "InsufficientFreeAddressesInSubnet", 400, subnets={s1})
    (iid,) = provider(aws["ec2"]).launch("web", policy(aws), 1, "web-full-subnet")
    (inst,) = describe(aws["ec2"], [iid])
    assert (inst["InstanceType"], inst["SubnetId"]) == ("m6i.xlarge", s2)


def test_unfulfillable_spot_capacity_falls_back_to_on_demand(aws: dict[str, Any]) -> None:
    refusing = Refusing(aws["ec2"], "UnfulfillableCapacity", 400, spot=True)
    (iid,) = provider(aws["ec2"]).launch("web", policy(aws, spot=True), 1, "web-spot-none")
    (inst,) = describe(aws["ec2"], [iid])
    assert "InstanceLifecycle" not in inst  # on-demand
    assert [m for _, _, m in refusing.sent] == ["spot", "on-demand"]


@pytest.mark.parametrize("attempts", [1, 2])
def test_max_attempts_counts_every_attempt(attempts: int) -> None:
    # AUTOSCALER_AWS_MAX_ATTEMPTS is "botocore attempts per call": 1 means no retry
    client = boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=boto_config("standard", attempts, 1),
    )
    sent: list[str] = []
    client.meta.events.register("before-send.ec2.DescribeInstances", lambda **_: sent.append("x"))
    with pytest.raises(SourceError, match="EC2 unreachable"):
        provider(client).list_instances()
    assert len(sent) == attempts


def test_a_warm_machine_without_capacity_to_start_is_given_up_at_once(
    aws: dict[str, Any],
) -> None:
    # starting a stopped machine meets the same HTTP 500 InsufficientInstanceCapacity
    pol = policy(aws, warm_pool=1)
    warm = stopped_warm_machine(aws, pol, "web-warm-ice")
    starts: list[str] = []

    def refuse_start(request: Any, **_: Any) -> AWSResponse:
        starts.append(request.url)
        return no_room(request.url)

    aws["ec2"].meta.events.register_first("before-send.ec2.StartInstances", refuse_start)
    (iid,) = provider(aws["ec2"]).launch("web", pol, 1, "web-after-warm-ice")
    assert iid != warm and len(starts) == 1


def test_a_warm_machine_that_cannot_start_leaves_the_next_one_to_start(
    aws: dict[str, Any],
) -> None:
    # StartInstances fails as a whole when one of its machines cannot start: the zone of one
    # warm machine out of room must not keep every other warm machine stopped
    pol = policy(aws, warm_pool=2)
    first, second = provider(aws["ec2"]).fill_warm_pool("web", pol, "web-warm-two-zones")
    aws["ec2"].stop_instances(InstanceIds=[first, second])
    full = min(first, second)  # the one tried first
    asked: list[list[str]] = []

    def refuse_the_full_zone(request: Any, **_: Any) -> AWSResponse | None:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        ids = [v[0] for k, v in parse_qs(body).items() if k.startswith("InstanceId.")]
        asked.append(ids)
        return None if full not in ids else no_room(request.url)

    aws["ec2"].meta.events.register_first("before-send.ec2.StartInstances", refuse_the_full_zone)
    ids = provider(aws["ec2"]).launch("web", pol, 2, "web-after-full-zone")
    free = max(first, second)
    assert ids[0] == free and len(ids) == 2 and full not in ids
    states = {i.id: i.state for i in provider(aws["ec2"]).list_instances()}
    assert states[free] in ("pending", "running") and states[full] == "stopped"
    assert asked == [[full], [free]]


# ---------------------------------------------------------------- warm pool upkeep


def stopped_warm(aws: dict[str, Any], p: Ec2Provider, pol: PoolPolicy, token: str) -> list[str]:
    ids = p.fill_warm_pool("web", pol, token)
    aws["ec2"].stop_instances(InstanceIds=ids)
    states = {i["State"]["Name"] for i in describe(aws["ec2"], ids)}
    if states != {"stopped"}:
        pytest.skip(f"moto left the machines {sorted(states)}")
    return ids


def test_machines_carry_the_digest_of_what_they_were_launched_with(aws: dict[str, Any]) -> None:
    from autoscaler.decide.pools.launch_config import launch_config

    p = provider(aws["ec2"])
    pol = policy(aws, warm_pool=1)
    ids = p.launch("web", pol, 1, "web-digest") + p.fill_warm_pool("web", pol, "web-digest-w")
    for inst in describe(aws["ec2"], ids):
        assert {"Key": L.TAG_LAUNCH_CONFIG, "Value": launch_config(pol)} in inst["Tags"]
    listed = {i.id: i for i in p.list_instances()}
    assert {listed[i].subnet for i in ids} <= set(aws["subnets"])


def test_a_stale_warm_machine_is_never_started_nor_counted(aws: dict[str, Any]) -> None:
    p = provider(aws["ec2"])
    (warm,) = stopped_warm(aws, p, policy(aws, warm_pool=1), "web-stale")
    edited = policy(aws, warm_pool=1).model_copy(update={"images": ("r-app:2",)})
    (fresh,) = p.fill_warm_pool("web", edited, "web-stale-refill")  # the stale one not counted
    (launched,) = p.launch("web", edited, 1, "web-stale-launch")
    assert launched not in (warm, fresh)  # fresh still pulls; warm is stale: a new machine
    assert describe(aws["ec2"], [warm])[0]["State"]["Name"] == "stopped"


def test_a_launch_starts_machines_still_tagged_warm_first(aws: dict[str, Any]) -> None:
    p = provider(aws["ec2"])
    pol = policy(aws, warm_pool=2)
    first, second = sorted(stopped_warm(aws, p, pol, "web-order"))
    # a launch tagged ``first`` and its start fell back to stopped: it may fail again
    aws["ec2"].create_tags(Resources=[first], Tags=[{"Key": "autoscaler:warm", "Value": "false"}])
    assert p.launch("web", pol, 1, "web-order-launch") == [second]
    assert p.launch("web", pol, 1, "web-order-launch-2") == [first]  # still used when needed


def test_retiring_a_warm_machine_spares_one_a_launch_started(aws: dict[str, Any]) -> None:
    p = provider(aws["ec2"])
    pol = policy(aws, warm_pool=2)
    kept, extra = stopped_warm(aws, p, pol, "web-retire")
    with pytest.raises(ProviderError, match="not an instance of pool other"):
        p.retire_warm(extra, "other")
    assert p.retire_warm(extra, "web") == f"terminated {extra}"
    assert describe(aws["ec2"], [extra])[0]["State"]["Name"] in ("shutting-down", "terminated")
    assert "already" in p.retire_warm(extra, "web")
    assert p.launch("web", pol, 1, "web-retire-launch") == [kept]
    with pytest.raises(ProviderError, match=f"{kept} was started by a launch: kept"):
        p.retire_warm(kept, "web")
    assert describe(aws["ec2"], [kept])[0]["State"]["Name"] in ("pending", "running")


def test_retiring_spares_a_machine_a_launch_took_while_it_is_still_described_stopped(
    aws: dict[str, Any],
) -> None:
    # a launch retags and stamps a machine, then starts it, and describe_instances may say
    # stopped for a while: the retag is what tells it is on its way to become a node
    p = provider(aws["ec2"])
    (taken,) = stopped_warm(aws, p, policy(aws, warm_pool=1), "web-retire-lag")
    retag = [
        {"Key": "autoscaler:warm", "Value": "false"},
        {"Key": L.TAG_LAUNCHED_AT, "Value": L.stamp(NOW - timedelta(seconds=30))},
    ]
    aws["ec2"].create_tags(Resources=[taken], Tags=retag)
    with pytest.raises(ProviderError, match=f"{taken} was started by a launch: kept"):
        p.retire_warm(taken, "web")
    assert describe(aws["ec2"], [taken])[0]["State"]["Name"] == "stopped"
    # minutes later it is one whose start fell back to stopped: retired
    later = Ec2Provider(aws["ec2"], CLUSTER, user_data, clock=lambda: NOW + timedelta(minutes=3))
    assert later.retire_warm(taken, "web") == f"terminated {taken}"


def test_the_provider_spares_taken_machines_as_long_as_decide_counts_a_launch_on_its_way() -> None:
    from autoscaler.decide.pools.planner import LAUNCH_SETTLE
    from autoscaler.providers.ec2 import STARTED_LATELY

    assert STARTED_LATELY == LAUNCH_SETTLE


def test_decide_shrinks_and_renews_the_warm_pool(aws: dict[str, Any]) -> None:
    """decide -> MachineActuator -> EC2: a lowered warm_pool terminates the extra stopped
    machine; new app images replace the stale one."""

    p = provider(aws["ec2"])
    ids = stopped_warm(aws, p, policy(aws, warm_pool=2), "web-shrink")

    def one_pass(pol: PoolPolicy, at: datetime) -> list[str]:
        return provider_pass(p, pol, at)

    (message,) = one_pass(policy(aws, warm_pool=1), NOW + timedelta(minutes=5))
    assert message.startswith("retire_warm_machine: terminated i-")
    (left,) = [i.id for i in p.list_instances() if i.state == "stopped"]
    assert left in ids and message.endswith(next(i for i in ids if i != left))
    renewed = policy(aws, warm_pool=1).model_copy(update={"images": ("r-app:2",)})
    messages = one_pass(renewed, NOW + timedelta(minutes=10))
    assert messages[0] == f"retire_warm_machine: terminated {left}"
    assert messages[1].startswith("fill_warm_pool: 1 warm machine(s) on their way")


# ---------------------------------------------------------------- launch template versions


def provider_pass(p: Ec2Provider, pol: PoolPolicy, at: datetime) -> list[str]:
    """One pass of pool "web" from EC2's lists through decide to the provider's actions:
    what each provider action did."""
    from autoscaler.actuate.machines import MachineActuator
    from autoscaler.decide import plan
    from autoscaler.decide.plan_types import PROVIDER_ACTIONS, Memory
    from autoscaler.rules.schema import Policies
    from autoscaler.snapshot import Snapshot, SwarmState

    policies = Policies(pools={"web": pol})
    act = MachineActuator({"ec2": p}, lambda: policies)
    snap = Snapshot(taken_at=at, swarm=SwarmState(), instances=p.list_instances())
    done = [act.execute(a) for a in plan(snap, policies, Memory()).actions]
    assert all(r.ok for r in done), [r.message for r in done]
    return [f"{r.action.kind}: {r.message}" for r in done if r.action.kind in PROVIDER_ACTIONS]


def template_pool(aws: dict[str, Any], warm_pool: int) -> tuple[PoolPolicy, str]:
    """A pool launching from a new launch template's $Default (version 1: the fixture's
    image), and the template's id."""
    created = aws["ec2"].create_launch_template(
        LaunchTemplateName=template_name(aws), LaunchTemplateData={"ImageId": aws["ami"]}
    )
    return from_template(aws, warm_pool), created["LaunchTemplate"]["LaunchTemplateId"]


def template_name(aws: dict[str, Any]) -> str:
    return f"shiny-worker-{aws['sg'][-6:]}"


def from_template(aws: dict[str, Any], warm_pool: int) -> PoolPolicy:
    return policy(aws, ami=None, launch_template=template_name(aws), warm_pool=warm_pool)


def new_default(aws: dict[str, Any], template_id: str) -> str:
    """Version 2 of the template, with another image, made its default."""
    images = aws["ec2"].describe_images(Owners=["amazon"], Filters=[AMAZON_LINUX])["Images"]
    image = next(i["ImageId"] for i in images if i["ImageId"] != aws["ami"])
    aws["ec2"].create_launch_template_version(
        LaunchTemplateId=template_id, LaunchTemplateData={"ImageId": image}
    )
    aws["ec2"].modify_launch_template(LaunchTemplateId=template_id, DefaultVersion="2")
    return str(image)


def tag(inst: dict[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in inst.get("Tags", ()) if t["Key"] == key), None)


def test_a_new_default_version_renews_the_warm_pool(aws: dict[str, Any]) -> None:
    """decide -> MachineActuator -> EC2: with the template's default unchanged the warm
    machine is current; once a new version is its default, it is never started, retired,
    and replaced by one of the new version."""
    from autoscaler.decide.pools.launch_config import EC2_TEMPLATE_VERSION, launch_config

    pol, template_id = template_pool(aws, warm_pool=1)
    client = Recording(aws["ec2"])
    p = provider(client)
    (warm,) = stopped_warm(aws, p, pol, "web-lt")
    (inst,) = describe(aws["ec2"], [warm])
    assert client.runs[-1]["LaunchTemplate"]["Version"] == "1"  # the number, not $Default
    assert (tag(inst, EC2_TEMPLATE_VERSION), inst["ImageId"]) == ("1", aws["ami"])
    assert tag(inst, L.TAG_LAUNCH_CONFIG) == launch_config(pol, 1)

    def one_pass(at: datetime) -> list[str]:
        return provider_pass(p, pol, at)

    assert one_pass(NOW + timedelta(minutes=3)) == []  # the default is still version 1
    image = new_default(aws, template_id)
    (launched,) = p.launch("web", pol, 1, "web-lt-launch")
    assert launched != warm  # the stale machine is never started
    assert describe(aws["ec2"], [warm])[0]["State"]["Name"] == "stopped"
    # within the launched machine's join timeout: the pass is about the warm pool only
    retire, fill = one_pass(NOW + timedelta(minutes=5))
    assert retire == f"retire_warm_machine: terminated {warm}"
    assert fill.startswith("fill_warm_pool: 1 warm machine(s) on their way")
    (fresh,) = [i for i in p.list_instances() if i.warm]
    (raw,) = describe(aws["ec2"], [fresh.id])
    assert (tag(raw, EC2_TEMPLATE_VERSION), raw["ImageId"]) == ("2", image)
    assert fresh.tags[L.TAG_LAUNCH_CONFIG] == launch_config(pol, 2)
    assert client.runs[-1]["LaunchTemplate"]["Version"] == "2"


def test_pools_sharing_a_template_read_it_once_per_listing(aws: dict[str, Any]) -> None:
    pol, template_id = template_pool(aws, warm_pool=1)
    p = provider(aws["ec2"])
    ids = p.fill_warm_pool("web", pol, "web-shared") + p.fill_warm_pool("api", pol, "api-shared")
    asked: list[dict[str, Any]] = []
    aws["ec2"].meta.events.register(
        "before-parameter-build.ec2.DescribeLaunchTemplates",
        lambda params, **_: asked.append(dict(params)),
    )
    listed = {i.id: i for i in p.list_instances()}
    assert len(asked) == 1 and asked[0]["LaunchTemplateIds"] == [template_id]
    for iid in ids:
        lt = listed[iid].launch_template
        assert lt is not None and (lt.id, lt.default_version, lt.error) == (template_id, 1, None)
    assert all(i.launch_template is None for i in listed.values() if i.id not in ids)


def ec2_error(url: str, code: str, status: int) -> AWSResponse:
    """An error answer as EC2 sends it."""
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        f"<Code>{code}</Code><Message>refused</Message></Error></Errors>"
        "<RequestID>6b8a4f7c-0000-4000-8000-000000000002</RequestID></Response>"
    ).encode()
    return AWSResponse(url, status, {}, _Body(xml))


def refuse_templates(client: Any, code: str) -> None:
    """DescribeLaunchTemplates refused as EC2 refuses it (HTTP 403), whatever is asked."""

    def send(request: Any, **_: Any) -> AWSResponse:
        return ec2_error(request.url, code, 403)

    client.meta.events.register_first("before-send.ec2.DescribeLaunchTemplates", send)


def test_templates_that_cannot_be_read_judge_no_machine_stale(aws: dict[str, Any]) -> None:
    """A role without ec2:DescribeLaunchTemplates: launched with $Default as named, as
    before; a warm machine is still started, and decide says why it does not judge it."""
    from autoscaler.decide import plan
    from autoscaler.decide.plan_types import Memory
    from autoscaler.decide.pools.launch_config import launch_config
    from autoscaler.rules.schema import Policies
    from autoscaler.snapshot import Snapshot, SwarmState

    one, template_id = template_pool(aws, warm_pool=1)
    p = provider(aws["ec2"])
    (launched_before,) = stopped_warm(aws, p, one, "web-lt-down")  # digest with the number
    pol = from_template(aws, warm_pool=2)
    refuse_templates(aws["ec2"], "UnauthorizedOperation")
    client = Recording(aws["ec2"])
    p = provider(client)
    (as_named,) = stopped_warm(aws, p, pol, "web-lt-down-2")  # digest with $Default
    assert client.runs[-1]["LaunchTemplate"]["Version"] == "$Default"
    assert tag(describe(aws["ec2"], [as_named])[0], L.TAG_LAUNCH_CONFIG) == launch_config(pol)
    listed = p.list_instances()
    assert {i.launch_template.error for i in listed if i.launch_template} == {
        "EC2 refused (UnauthorizedOperation)"
    }
    snap = Snapshot(taken_at=NOW + timedelta(minutes=5), swarm=SwarmState(), instances=listed)
    result = plan(snap, Policies(pools={"web": pol}), Memory())
    assert [a.kind for a in result.actions] == []
    (decision,) = [d for d in result.decisions if d.policy == "web"]
    assert (
        f"launch template {template_name(aws)} $Default unknown (EC2 refused "
        "(UnauthorizedOperation)): warm machines not judged on its version"
    ) in decision.reasons
    new_default(aws, template_id)  # unseen: nothing is judged on it
    started = p.launch("web", pol, 2, "web-lt-down-launch")
    assert sorted(started) == sorted([launched_before, as_named])


def test_a_deleted_template_leaves_the_others_read(aws: dict[str, Any]) -> None:
    # EC2 refuses a whole DescribeLaunchTemplates when one id is gone, without saying which
    # (moto leaves it out instead: the refusal is sent as EC2 sends it)
    ec2 = aws["ec2"]
    made = {
        pool_name: ec2.create_launch_template(
            LaunchTemplateName=f"{template_name(aws)}-{pool_name}",
            LaunchTemplateData={"ImageId": aws["ami"]},
        )["LaunchTemplate"]["LaunchTemplateId"]
        for pool_name in ("web", "api")
    }
    p = provider(ec2)
    warm = {
        pool_name: p.fill_warm_pool(
            pool_name,
            policy(aws, ami=None, launch_template=template_id, warm_pool=1),
            f"{pool_name}-deleted",
        )[0]
        for pool_name, template_id in made.items()
    }
    ec2.delete_launch_template(LaunchTemplateId=made["api"])

    def send(request: Any, **_: Any) -> AWSResponse | None:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        asked = [
            v for k, vs in parse_qs(body).items() if k.startswith("LaunchTemplateId") for v in vs
        ]
        if made["api"] not in asked:
            return None
        return ec2_error(request.url, "InvalidLaunchTemplateId.NotFound", 400)

    ec2.meta.events.register_first("before-send.ec2.DescribeLaunchTemplates", send)
    listed = {i.id: i.launch_template for i in p.list_instances()}
    assert listed[warm["web"]] is not None and listed[warm["web"]].default_version == 1
    assert listed[warm["api"]] == LaunchTemplateNow(id=made["api"], error="not found", gone=True)


def test_a_warm_machine_of_a_template_made_again_under_its_name_is_renewed(
    aws: dict[str, Any],
) -> None:
    """Deleted and made again, the template may give the same version number: the machine
    was still launched from another template, and is replaced rather than started."""
    from autoscaler.decide import plan
    from autoscaler.decide.plan_types import Memory
    from autoscaler.rules.schema import Policies
    from autoscaler.snapshot import Snapshot, SwarmState

    ec2 = aws["ec2"]
    name = template_name(aws)
    data = {"ImageId": aws["ami"]}
    old = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)
    pol = policy(aws, ami=None, launch_template=name, warm_pool=1)
    p = provider(ec2)
    (warm,) = stopped_warm(aws, p, pol, "web-again")
    ec2.delete_launch_template(LaunchTemplateId=old["LaunchTemplate"]["LaunchTemplateId"])
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)  # version 1

    snap = Snapshot(
        taken_at=NOW + timedelta(minutes=5), swarm=SwarmState(), instances=p.list_instances()
    )
    result = plan(snap, Policies(pools={"web": pol}), Memory())
    assert [a.kind for a in result.actions] == ["retire_warm_machine", "fill_warm_pool"]
    assert "which no longer exists" in result.actions[0].reason
    (launched,) = p.launch("web", pol, 1, "web-again-launch")
    assert launched != warm  # never started
    assert describe(ec2, [warm])[0]["State"]["Name"] == "stopped"


def test_an_unreadable_template_is_logged_once_per_template_not_per_pass(
    aws: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Listings read the machines' template by id, launches the pool's by name: each is one
    line while the cause lasts, not one a pass."""
    pol, _ = template_pool(aws, warm_pool=1)
    p = provider(aws["ec2"])
    stopped_warm(aws, p, pol, "web-lt-log")
    refuse_templates(aws["ec2"], "UnauthorizedOperation")
    caplog.set_level(logging.WARNING, logger="autoscaler.providers.ec2")
    for i in range(3):
        p.list_instances()
        p.fill_warm_pool("web", pol, f"web-lt-log-{i}")
    lines = [r.getMessage() for r in caplog.records if "unknown (EC2 refused" in r.getMessage()]
    assert len(lines) == 2, lines
    assert {line.split()[2].startswith("lt-") for line in lines} == {True, False}
