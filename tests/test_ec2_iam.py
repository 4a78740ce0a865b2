"""The shipped IAM policies: valid documents (moto's IAM), least privilege, tag conditions."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from autoscaler.providers.ec2 import Ec2Provider, boto_config
from autoscaler.providers.ssm import JoinParameter
from autoscaler.rules.pools import Ec2Pool, PoolPolicy
from autoscaler.userdata import JoinSettings, render_user_data

IAM = Path(__file__).parent.parent / "iam"
DESTRUCTIVE = {"ec2:TerminateInstances", "ec2:StartInstances", "ec2:StopInstances"}
REGION = "eu-west-1"
AMAZON_LINUX = {"Name": "name", "Values": ["amzn2-ami-hvm-*"]}


def doc(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((IAM / name).read_text())
    return data


def statements(name: str) -> list[dict[str, Any]]:
    return list(doc(name)["Statement"])


def actions(st: dict[str, Any]) -> set[str]:
    a = st["Action"]
    return {a} if isinstance(a, str) else set(a)


@pytest.fixture(scope="module")
def iam(moto_url: str) -> Any:
    return boto3.client("iam", region_name="us-east-1", endpoint_url=moto_url)


@pytest.fixture(scope="module", autouse=True)
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
    guarded = set()
    for st in statements("sidecar-policy.json"):
        if actions(st) & DESTRUCTIVE:
            guarded |= actions(st) & DESTRUCTIVE
            assert st["Condition"] == {
                "StringEquals": {"ec2:ResourceTag/autoscaler:cluster": "shiny"}
            }
            assert st["Resource"] == "arn:aws:ec2:*:*:instance/*"
    assert {"ec2:TerminateInstances", "ec2:StartInstances"} <= guarded


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


# ---------------------------------------------------------------- the calls the code makes


class Calls:
    """Every API operation a boto3 client sends (botocore's own events), with its params."""

    def __init__(self, *clients: Any) -> None:
        self.made: list[tuple[str, str, dict[str, Any]]] = []
        for client in clients:
            prefix = client.meta.service_model.signing_name
            client.meta.events.register(
                "before-parameter-build", lambda prefix=prefix, **kw: self._record(prefix, **kw)
            )

    def _record(self, prefix: str, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.made.append((prefix, model.name, params))

    def actions(self) -> set[str]:
        return {f"{prefix}:{name}" for prefix, name, _ in self.made}


def allowed(name: str) -> set[str]:
    return set().union(*(actions(s) for s in statements(name)))


def resource_type(arn: str) -> str:
    return arn.split(":")[5].split("/")[0]


@pytest.fixture(scope="module")
def sidecar_calls(moto_url: str) -> Calls:
    """The sidecar's whole EC2 and SSM life on moto: publish the join token, list, launch
    (on-demand, Spot, from the warm pool), fill the warm pool, terminate."""
    cfg = boto_config("standard", 2, 5)
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_url, config=cfg)
    ssm = boto3.client("ssm", region_name=REGION, endpoint_url=moto_url, config=cfg)
    setup = boto3.client("ec2", region_name=REGION, endpoint_url=moto_url, config=cfg)
    vpc = setup.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnet = setup.create_subnet(VpcId=vpc, CidrBlock="10.8.1.0/24")["Subnet"]["SubnetId"]
    # filtered: all of moto's 1,000+ images take longer than the client's 5 s read timeout
    ami = setup.describe_images(Owners=["amazon"], Filters=[AMAZON_LINUX])["Images"][0]["ImageId"]
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_url)
    trust = (IAM / "worker-trust.json").read_text()
    iam.create_role(RoleName="calls-worker", AssumeRolePolicyDocument=trust)
    iam.create_instance_profile(InstanceProfileName="calls-worker")
    iam.add_role_to_instance_profile(InstanceProfileName="calls-worker", RoleName="calls-worker")
    calls = Calls(ec2, ssm)

    def user_data(pool: str, p: PoolPolicy, warm: bool) -> str:
        return render_user_data(JoinSettings(pool, "shiny", REGION, "/x", warm=warm))

    def pool(**ec2_section: Any) -> PoolPolicy:
        section = Ec2Pool(ami=ami, instance_types=("m5.large",), subnets=(subnet,))
        return PoolPolicy(
            provider="ec2",
            max=9,
            seats_per_node=4,
            ec2=section.model_copy(update=ec2_section),
        )

    JoinParameter(ssm, "/autoscaler/swarm/worker-join").ensure("SWMTKN-1-x", ["10.0.0.1:2377"])
    p = Ec2Provider(ec2, "shiny", user_data)
    p.list_instances()
    (worker,) = p.launch("web", pool(instance_profile="calls-worker"), 1, "t-1")
    p.launch("web", pool(spot=True, root_volume_gb=40), 1, "t-2")
    p.list_instances()  # a Spot machine listed: its interruption notice is read too
    (warm,) = p.fill_warm_pool("web", pool(warm_pool=1), "t-3")
    setup.stop_instances(InstanceIds=[warm])  # the machine powers itself off
    p.launch("web", pool(warm_pool=1), 1, "t-4")
    template = {"ImageId": ami}
    setup.create_launch_template(LaunchTemplateName="calls-worker", LaunchTemplateData=template)
    p.launch("web", pool(ami=None, launch_template="calls-worker"), 1, "t-5")  # reads $Default
    p.terminate(worker, "web")
    return calls


def test_the_sidecar_policy_allows_every_call_the_code_makes(sidecar_calls: Calls) -> None:
    made = sidecar_calls.actions()
    assert {"ec2:RunInstances", "ec2:StartInstances", "ec2:TerminateInstances"} <= made
    assert {"ec2:CreateTags", "ssm:PutParameter", "ssm:GetParameter"} <= made
    assert {"ec2:DescribeSpotInstanceRequests", "ec2:DescribeImages"} <= made
    assert made <= allowed("sidecar-policy.json")


def test_the_sidecar_policy_allows_nothing_the_code_does_not_call(sidecar_calls: Calls) -> None:
    on_services = {a for a in allowed("sidecar-policy.json") if a.startswith(("ec2:", "ssm:"))}
    assert on_services - sidecar_calls.actions() == set()


def test_tag_conditions_only_on_resources_the_launch_tags(sidecar_calls: Calls) -> None:
    # aws:RequestTag is evaluated per resource of the request: a resource type under that
    # condition but not in the TagSpecifications (a Spot request) makes EC2 refuse the launch
    tagged = {
        spec["ResourceType"]
        for _, name, params in sidecar_calls.made
        if name == "RunInstances"
        for spec in params["TagSpecifications"]
        if any(t["Key"] == "autoscaler:cluster" for t in spec["Tags"])
    }
    conditioned = [
        st
        for st in statements("sidecar-policy.json")
        if "ec2:RunInstances" in actions(st) and "aws:RequestTag" in json.dumps(st)
    ]
    assert conditioned
    for st in conditioned:
        assert {resource_type(r) for r in st["Resource"]} <= tagged, st["Sid"]
    spot = [
        params
        for _, name, params in sidecar_calls.made
        if name == "RunInstances" and "InstanceMarketOptions" in params
    ]
    assert spot  # the Spot launch needs its request allowed without the tag condition
    unconditioned = {
        resource_type(r)
        for st in statements("sidecar-policy.json")
        if "ec2:RunInstances" in actions(st) and "Condition" not in st
        for r in st["Resource"]
    }
    assert "spot-instances-request" in unconditioned


def test_the_join_parameter_is_within_both_policies(sidecar_calls: Calls) -> None:
    default = Ec2Pool.model_fields["join_parameter"].default
    names = {
        params["Name"]
        for prefix, _, params in sidecar_calls.made
        if prefix == "ssm" and "Name" in params
    }
    assert names == {default}
    arn = f"arn:aws:ssm:{REGION}:123456789012:parameter{default}"
    for name in ("sidecar-policy.json", "worker-policy.json"):
        resources = [
            r
            for st in statements(name)
            if "ssm:GetParameter" in actions(st)
            for r in ([st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"])
        ]
        assert any(fnmatch.fnmatchcase(arn, r) for r in resources), name
