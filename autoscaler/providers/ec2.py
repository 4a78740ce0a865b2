"""EC2 node provider (boto3): launch, list and terminate a pool's instances.

- Launch: stopped warm-pool instances are started first; then new instances, trying each
  instance type in order and each subnet, moving on when EC2 has no capacity there. With
  ``spot`` each place is asked for Spot first and on-demand second. A place that had no
  capacity is tried last for a few minutes (UNAVAILABLE_FOR).
- Every instance requires IMDSv2 (HttpTokens required, hop limit 1: containers on the node
  cannot reach the instance's credentials) and carries the tags autoscaler:pool,
  autoscaler:cluster, autoscaler:launched-at; the user-data holds no secret.
- Idempotent: each run_instances call has a ClientToken derived from the cluster, the
  action's token and the place tried, so a retried call starts nothing more (and another
  cluster's launch in the same account never answers for ours: tokens are account-wide).
- Terminate refuses an instance whose cluster or pool tag is not ours.
- Warm pool (``warm_pool``): machines tagged autoscaler:warm=true pull the images and power
  off; decide asks for new ones whenever the pool has fewer (``fill_warm_pool``), and a
  launch starts them before it runs any new instance.
- A launch template named by $Default or $Latest: the number it gives is read at each launch
  and launched with, so the machine is what its digest says; each listing reads what it
  gives now for the warm machines' templates, one call for them all (launch_config).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from autoscaler.decide.pools import labels as L
from autoscaler.decide.pools.launch_config import (
    EC2_TEMPLATE_ID,
    follows_template,
    launch_config,
    stale_because,
)
from autoscaler.providers.aws_errors import unreachable
from autoscaler.providers.base import ProviderError
from autoscaler.rules.pools import Ec2Pool, PoolPolicy
from autoscaler.snapshot import Instance, LaunchTemplateNow
from autoscaler.sources.errors import SourceError

log = logging.getLogger(__name__)

SOURCE = "ec2"
TAG_WARM = "autoscaler:warm"
CAPACITY_ERRORS = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientHostCapacity",
        "InsufficientCapacity",
        "InsufficientReservedInstanceCapacity",
        "Unsupported",  # the type is not offered in this subnet's zone
        "InsufficientFreeAddressesInSubnet",  # a full subnet: the next one may have room
    }
)
SPOT_ERRORS = CAPACITY_ERRORS | {
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
    "InsufficientSpotCapacity",
    "UnfulfillableCapacity",
}
START_SKIPPED = CAPACITY_ERRORS | {
    "IncorrectInstanceState",
    "InvalidInstanceID.NotFound",
    "InvalidParameterValue",
}
"""Why one stopped machine did not start while the next may: its zone or type is full, it
is no longer stopped (the list lagged), or it cannot start at all (no root volume)."""
LAUNCH_CALLS = ("RunInstances", "StartInstances")
LISTED_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")
INTERRUPTION_CODES = frozenset(
    {"marked-for-termination", "marked-for-stop", "marked-for-hibernation"}
)
"""Spot request status codes of an interruption notice: the machine goes within 2 minutes."""
TEMPLATE_NOT_FOUND = frozenset(
    {
        "InvalidLaunchTemplateId.NotFound",
        "InvalidLaunchTemplateId.Malformed",
        "InvalidLaunchTemplateName.NotFoundException",
    }
)
"""One launch template named that EC2 does not know: it refuses the whole call."""
UNAVAILABLE_FOR = timedelta(minutes=3)
"""How long a place that had no capacity is tried last, as Karpenter caches unavailable
offerings: a shortage of a type in a zone lasts minutes to hours, and each refused call is
a round trip (and retry quota) before the place that has room."""
Place = tuple[str, str, str]
"""Instance type, subnet, market."""
STARTED_LATELY = timedelta(minutes=2)
"""How long a warm machine a launch took is kept from retirement whatever state is listed
(EC2's lists lag a start); as long as decide counts a launch on its way (LAUNCH_SETTLE)."""


class OutOfCapacity(ProviderError):
    """No instance type, subnet or market had room for the machines asked for."""


def boto_config(retry_mode: str = "standard", max_attempts: int = 5, timeout: float = 10) -> Config:
    """botocore's own retries (standard or adaptive): bounded, with backoff and jitter.
    ``max_attempts`` counts every attempt, the first included (botocore's own
    ``max_attempts`` key would count the retries only: one attempt more than asked)."""
    return Config(
        retries={"mode": retry_mode, "total_max_attempts": max_attempts},
        connect_timeout=timeout,
        read_timeout=timeout,
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _capacity_is_final(response: Any = None, operation: Any = None, **_: Any) -> None:
    """botocore's ``needs-retry`` hook for a launch call: a capacity error is raised at once.

    EC2 answers InsufficientInstanceCapacity with HTTP 500, which botocore retries as a
    transient error, with backoff, on every attempt it has, before the next instance type
    or subnet is tried; each retry also spends botocore's retry quota, which then is not
    there for throttling. Registered for the call itself, this runs before botocore's own
    handler (registered for the service) and ends the call with the error EC2 gave.
    """
    if not response:
        return
    parsed = response[1]
    code = parsed.get("Error", {}).get("Code") if isinstance(parsed, dict) else None
    if code in SPOT_ERRORS:
        raise ClientError(parsed, getattr(operation, "name", "RunInstances"))


def _client_token(token: str, *parts: str) -> str:
    """At most 64 ASCII characters, stable for the same action and place."""
    digest = hashlib.sha256("|".join((token, *parts)).encode()).hexdigest()[:20]
    return f"{token[:40]}-{digest}"


class Ec2Provider:
    name = "ec2"

    def __init__(
        self,
        client: Any,
        cluster: str,
        user_data: Callable[[str, PoolPolicy, bool], str],
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """``user_data(pool, policy, warm)`` renders the boot script (see autoscaler.userdata)."""
        self._ec2 = client
        events = getattr(getattr(client, "meta", None), "events", None)
        if events is not None:  # a boto3 client (the unique id: once per client)
            for call in LAUNCH_CALLS:
                events.register(
                    f"needs-retry.ec2.{call}",
                    _capacity_is_final,
                    unique_id=f"autoscaler-capacity-is-final-{call}",
                )
        self._cluster = cluster
        self._user_data = user_data
        self._clock = clock
        self._spot_error: str | None = None
        self._template_errors: dict[str, str] = {}
        """Per launch template reference: why it was last unreadable (logged on a change)."""
        self._no_capacity: dict[Place, datetime] = {}
        """Places (instance type, subnet, market) EC2 last had no capacity in, and when."""
        self._root_devices: dict[str, tuple[str, int]] = {}
        """Per image: its root device's name and its snapshot's size in GB."""

    # ---------------------------------------------------------------- read

    def list_instances(self) -> tuple[Instance, ...]:
        """The cluster's machines, warm-pool ones marked ``warm``; a warm-pool machine
        launched from a launch template carries that template as EC2 describes it now."""
        return tuple(self._with_templates(self._listed()))

    def _listed(self) -> list[Instance]:
        try:
            pages = self._ec2.get_paginator("describe_instances").paginate(
                Filters=[
                    {"Name": f"tag:{L.TAG_CLUSTER}", "Values": [self._cluster]},
                    {"Name": "instance-state-name", "Values": list(LISTED_STATES)},
                ]
            )
            raw = [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
        except ClientError as exc:
            raise SourceError(SOURCE, f"describe_instances refused: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise SourceError(SOURCE, unreachable(exc, "EC2")) from exc
        found = [i for i in (_instance(r) for r in raw) if i is not None]
        spot = [r["InstanceId"] for r in raw if r.get("InstanceLifecycle") == "spot"]
        noticed = self._interruption_notices(spot) if spot else set()
        marked = [
            i.model_copy(update={"interrupted": True}) if i.id in noticed else i for i in found
        ]
        return sorted(marked, key=_by_id)

    def _interruption_notices(self, instance_ids: list[str]) -> set[str]:
        """The Spot machines EC2 has given an interruption notice. Unreadable (a policy
        without ec2:DescribeSpotInstanceRequests), none is known: the nodes stay as they
        were until their machines go, which is logged once per cause."""
        noticed: set[str] = set()
        try:
            pages = self._ec2.get_paginator("describe_spot_instance_requests")
            for start in range(0, len(instance_ids), 100):  # EC2 takes 200 values a filter
                chunk = instance_ids[start : start + 100]
                for page in pages.paginate(Filters=[{"Name": "instance-id", "Values": chunk}]):
                    for req in page.get("SpotInstanceRequests", []):
                        if req.get("Status", {}).get("Code") in INTERRUPTION_CODES:
                            noticed.add(str(req.get("InstanceId", "")))
        except (ClientError, BotoCoreError) as exc:
            why = _text(exc)
            if why != self._spot_error:
                log.warning("Spot interruption notices unreadable (%s): none is acted on", why)
            self._spot_error = why
            return set()
        self._spot_error = None
        return noticed

    def _with_templates(self, found: list[Instance]) -> list[Instance]:
        """Only warm-pool machines are judged by their template: no call without one."""
        judged = {i.id: i.tags[EC2_TEMPLATE_ID] for i in found if _from_template(i)}
        if not judged:
            return found
        now = self._templates(set(judged.values()))
        return [
            i.model_copy(update={"launch_template": now[judged[i.id]]}) if i.id in judged else i
            for i in found
        ]

    def _templates(self, refs: Collection[str]) -> dict[str, LaunchTemplateNow]:
        """The launch templates named (ids or names) as EC2 describes them now, one call per
        kind; one it could not describe says why, logged once per template while it lasts."""
        ids = sorted(r for r in refs if r.startswith("lt-"))
        names = sorted(r for r in refs if not r.startswith("lt-"))
        found: dict[str, LaunchTemplateNow] = {}
        if ids:
            found |= self._describe_templates(ids, by_id=True)
        if names:
            found |= self._describe_templates(names, by_id=False)
        for ref, lt in found.items():
            # per template: listings (by the machines' ids) and launches (by the pool's
            # reference) read different ones, and each cause is worth one line, not one a pass
            changed = lt.error is not None and lt.error != self._template_errors.get(ref)
            if changed and lt.gone:
                log.info("launch template %s does not exist (machines from it are renewed)", ref)
            elif changed:
                log.warning(
                    "launch template %s unknown (%s): $Default or $Latest launched as named, "
                    "and warm machines not judged on its version",
                    ref,
                    lt.error,
                )
            if lt.error is None:
                self._template_errors.pop(ref, None)
            else:
                self._template_errors[ref] = lt.error
        return found

    def _describe_templates(self, refs: list[str], by_id: bool) -> dict[str, LaunchTemplateNow]:
        # by name a filter: with LaunchTemplateNames, one name EC2 does not know fails them all
        params: dict[str, Any] = (
            {"LaunchTemplateIds": refs}
            if by_id
            else {"Filters": [{"Name": "launch-template-name", "Values": refs}]}
        )
        try:
            pages = self._ec2.get_paginator("describe_launch_templates").paginate(**params)
            raw = [t for page in pages for t in page.get("LaunchTemplates", [])]
        except ClientError as exc:
            code = _code(exc)
            if code in TEMPLATE_NOT_FOUND and len(refs) > 1:
                # EC2 does not say which one: asked one by one, the others are still read
                return {r: self._describe_templates([r], by_id)[r] for r in refs}
            if code in TEMPLATE_NOT_FOUND:
                return {r: _unknown_template(r, "not found", gone=True) for r in refs}
            return {r: _unknown_template(r, f"EC2 refused ({code})") for r in refs}
        except BotoCoreError as exc:
            return {r: _unknown_template(r, unreachable(exc, "EC2")) for r in refs}
        described: dict[str, LaunchTemplateNow] = {}
        for t in raw:
            lt = LaunchTemplateNow(
                id=str(t["LaunchTemplateId"]),
                name=str(t.get("LaunchTemplateName", "")),
                default_version=t.get("DefaultVersionNumber"),
                latest_version=t.get("LatestVersionNumber"),
            )
            described[lt.id] = described[lt.name] = lt
        return {r: described.get(r) or _unknown_template(r, "not found", gone=True) for r in refs}

    def _in_force(self, policy: PoolPolicy) -> int | None:
        """The number the pool's $Default or $Latest gives now, launched with so that the
        machine is what its digest says even if the template changes meanwhile. None for a
        pool that names a number or no template, or when unknown: launched as named then."""
        ec2 = policy.ec2
        if ec2 is None or ec2.launch_template is None or not follows_template(policy):
            return None
        lt = self._templates([ec2.launch_template])[ec2.launch_template]
        return lt.version(ec2.launch_template_version)

    # ---------------------------------------------------------------- launch

    def launch(self, pool: str, policy: PoolPolicy, count: int, token: str) -> list[str]:
        ec2 = policy.ec2
        if ec2 is None:
            raise ProviderError(f"pool {pool} has no ec2 section")
        version = self._in_force(policy)
        started = self._start_warm(pool, policy, count, version)
        if len(started) >= count:
            return started
        try:
            launched = self._run(pool, policy, ec2, count - len(started), token, version=version)
        except OutOfCapacity as exc:
            if not started:
                raise
            # as any launch short of capacity: what did start is reported, not a failure
            log.warning("started %d of %d for %s: %s", len(started), count, pool, exc)
            return started
        except ProviderError as exc:
            if not started:
                raise
            raise ProviderError(f"{exc}{_before(started)}") from exc
        return started + launched

    def _start_warm(
        self, pool: str, policy: PoolPolicy, count: int, version: int | None
    ) -> list[str]:
        """Started one by one: StartInstances fails as a whole when any one machine cannot
        start (no capacity for its type in its zone, not stopped after all), and a warm
        machine that keeps failing would otherwise hold back every other one, each launch.
        A stale machine (launched with what the pool no longer says) is never started;
        ``version``: what the pool's $Default or $Latest gives now (_in_force)."""
        digest = launch_config(policy, version)
        listed = [
            i
            for i in self.list_instances()  # with their templates: a gone one is stale
            if i.pool == pool
            and i.state == "stopped"
            and stale_because(i, policy, digest, version) is None
        ]
        # still tagged warm first: a machine whose earlier start fell back to stopped may
        # fail again, and would otherwise be tried first at every launch
        stopped = [i.id for i in sorted(listed, key=lambda i: (not i.warm, i.id))]
        started: list[str] = []
        for iid in stopped:
            if len(started) >= count:
                break
            try:
                # no longer warm: from now on decide counts it as launching
                self._ec2.create_tags(
                    Resources=[iid],
                    Tags=[
                        {"Key": TAG_WARM, "Value": "false"},
                        {"Key": L.TAG_LAUNCHED_AT, "Value": L.stamp(self._clock())},
                    ],
                )
                self._ec2.start_instances(InstanceIds=[iid])
            except ClientError as exc:
                log.warning("starting warm instance %s of %s failed: %s", iid, pool, _text(exc))
                if _code(exc) in START_SKIPPED:
                    continue  # this machine only: the next one may start
                break
            except BotoCoreError as exc:
                log.warning("starting warm instances of %s failed: %s", pool, _text(exc))
                break
            started.append(iid)
        if started:
            log.info("started %d warm instance(s) of %s", len(started), pool)
        return started

    def _run(
        self,
        pool: str,
        policy: PoolPolicy,
        ec2: Ec2Pool,
        count: int,
        token: str,
        warm: bool = False,
        version: int | None = None,
    ) -> list[str]:
        """``warm``: machines for the warm pool (on-demand only: Spot cannot be stopped);
        ``version``: the launch template version to launch with (_in_force)."""
        errors: list[str] = []
        markets = ("spot", "on-demand") if ec2.spot and not warm else ("on-demand",)
        places = self._places(ec2, markets)
        tokens = {p: _client_token(token, self._cluster, *p) for p in places}
        # calls of this launch that already went through (a retry, a restart), wherever
        # they are in this order: one lookup for every place
        earlier = self._launched_with(list(tokens.values()))
        launched = sorted(i for ids in earlier.values() for i in ids)
        for place in places:
            itype, subnet, market = place
            missing = count - len(launched)
            if missing <= 0:
                return launched
            client_token = tokens[place]
            if client_token in earlier:
                continue
            params = self._params(pool, policy, ec2, itype, subnet, market, missing, warm, version)
            params["ClientToken"] = client_token
            for spec in params["TagSpecifications"]:
                spec["Tags"].append({"Key": L.TAG_TOKEN, "Value": client_token})
            try:
                answer = self._ec2.run_instances(**params)
            except ClientError as exc:
                code = _code(exc)
                fallback = SPOT_ERRORS if market == "spot" else CAPACITY_ERRORS
                if code not in fallback:
                    raise ProviderError(
                        f"run_instances refused ({code}): {_text(exc)}{_before(launched)}"
                    ) from exc
                errors.append(f"{itype} {market} in {subnet}: {code}")
                self._no_capacity[place] = self._clock()
                log.info(
                    "no capacity: %s %s in %s (%s): tried last for %s",
                    itype,
                    market,
                    subnet,
                    code,
                    UNAVAILABLE_FOR,
                )
                continue
            except BotoCoreError as exc:
                raise ProviderError(f"{unreachable(exc, 'EC2')}{_before(launched)}") from exc
            self._no_capacity.pop(place, None)
            ids = [i["InstanceId"] for i in answer.get("Instances", [])]
            log.info("launched %s %s %s in %s: %s", pool, itype, market, subnet, ids)
            launched += ids
        if len(launched) < count:
            tried = "; ".join(errors) or "no instance type and subnet left"
            if launched:
                log.warning("launched %d of %d for %s: %s", len(launched), count, pool, tried)
                return launched
            raise OutOfCapacity(f"no capacity for pool {pool}: {tried}")
        return launched

    def _places(self, ec2: Ec2Pool, markets: tuple[str, ...]) -> list[Place]:
        """Every instance type in order, in each subnet, in each market; the places that had
        no capacity within UNAVAILABLE_FOR come last (still tried: a launch that tried
        nothing would leave users waiting for a shortage that may be over)."""
        now = self._clock()
        self._no_capacity = {
            p: at for p, at in self._no_capacity.items() if now - at < UNAVAILABLE_FOR
        }
        places = [(t, s, m) for t in ec2.instance_types for s in ec2.subnets for m in markets]
        return sorted(places, key=lambda p: p in self._no_capacity)  # stable otherwise

    def _launched_with(self, client_tokens: list[str]) -> dict[str, list[str]]:
        """Client token -> this cluster's machines launched with it (tokens without: absent)."""
        try:
            pages = self._ec2.get_paginator("describe_instances").paginate(
                Filters=[
                    {"Name": f"tag:{L.TAG_TOKEN}", "Values": client_tokens},
                    {"Name": f"tag:{L.TAG_CLUSTER}", "Values": [self._cluster]},
                    {"Name": "instance-state-name", "Values": list(LISTED_STATES)},
                ]
            )
            found = [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
        except (ClientError, BotoCoreError) as exc:
            raise ProviderError(f"cannot check for an earlier launch: {_text(exc)}") from exc
        out: dict[str, list[str]] = {}
        for inst in found:
            used = _tags(inst.get("Tags", [])).get(L.TAG_TOKEN, "")
            out.setdefault(used, []).append(str(inst["InstanceId"]))
        return {t: sorted(ids) for t, ids in out.items()}

    def _params(
        self,
        pool: str,
        policy: PoolPolicy,
        ec2: Ec2Pool,
        itype: str,
        subnet: str,
        market: str,
        count: int,
        warm: bool = False,
        version: int | None = None,
    ) -> dict[str, Any]:
        tags = [
            {"Key": "Name", "Value": f"{self._cluster}-{pool}"},
            {"Key": L.TAG_POOL, "Value": pool},
            {"Key": L.TAG_CLUSTER, "Value": self._cluster},
            {"Key": L.TAG_LAUNCHED_AT, "Value": L.stamp(self._clock())},
            {"Key": L.TAG_LAUNCH_CONFIG, "Value": launch_config(policy, version)},
        ]
        if warm:
            tags.append({"Key": TAG_WARM, "Value": "true"})
        params: dict[str, Any] = {
            "MinCount": count,  # all or nothing per place: a short place is skipped
            "MaxCount": count,
            "InstanceType": itype,
            "SubnetId": subnet,
            "UserData": self._render(pool, policy, warm),
            "MetadataOptions": {
                "HttpTokens": "required",
                "HttpEndpoint": "enabled",
                "HttpPutResponseHopLimit": 1,
            },
            # a list per resource: tags added to one must not appear twice in the other
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": list(tags)},
                {"ResourceType": "volume", "Tags": list(tags)},
            ],
        }
        if ec2.launch_template:
            key = (
                "LaunchTemplateId"
                if ec2.launch_template.startswith("lt-")
                else "LaunchTemplateName"
            )
            params["LaunchTemplate"] = {
                key: ec2.launch_template,
                "Version": ec2.launch_template_version if version is None else str(version),
            }
        if ec2.ami:
            params["ImageId"] = ec2.ami
            if ec2.root_volume_gb is not None:
                params["BlockDeviceMappings"] = self._root_disk(ec2.ami, ec2.root_volume_gb)
        if ec2.security_groups:
            params["SecurityGroupIds"] = list(ec2.security_groups)
        if ec2.instance_profile:
            key = "Arn" if ec2.instance_profile.startswith("arn:") else "Name"
            params["IamInstanceProfile"] = {key: ec2.instance_profile}
        if ec2.key_name:
            params["KeyName"] = ec2.key_name
        if warm:
            # it powers itself off once the images are pulled: that must stop it, whatever
            # the launch template or AMI says (terminate would lose it and launch another)
            params["InstanceInitiatedShutdownBehavior"] = "stop"
        if market == "spot":
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {
                    "SpotInstanceType": "one-time",
                    "InstanceInterruptionBehavior": "terminate",
                },
            }
        return params

    def _root_disk(self, ami: str, size: int) -> list[dict[str, Any]]:
        """The root disk at ``size`` GB. It must be named as the image names its root device:
        under another name EC2 adds a second disk and keeps the image's small root."""
        if ami not in self._root_devices:
            try:
                images = self._ec2.describe_images(ImageIds=[ami])["Images"]
            except ClientError as exc:
                raise ProviderError(f"image {ami} unreadable ({_code(exc)})") from exc
            except BotoCoreError as exc:
                raise ProviderError(unreachable(exc, "EC2")) from exc
            if not images or not images[0].get("RootDeviceName"):
                raise ProviderError(f"image {ami} not found, or without a root device")
            device = str(images[0]["RootDeviceName"])
            snapshot = next(
                (
                    int(m.get("Ebs", {}).get("VolumeSize") or 0)
                    for m in images[0].get("BlockDeviceMappings", ())
                    if m.get("DeviceName") == device
                ),
                0,
            )
            self._root_devices[ami] = (device, snapshot)
        device, snapshot = self._root_devices[ami]
        if size < snapshot:
            raise ProviderError(
                f"root_volume_gb {size} is smaller than image {ami}'s root disk ({snapshot} GB)"
            )
        ebs = {"VolumeSize": size, "VolumeType": "gp3", "DeleteOnTermination": True}
        return [{"DeviceName": device, "Ebs": ebs}]

    def _render(self, pool: str, policy: PoolPolicy, warm: bool) -> str:
        try:
            return self._user_data(pool, policy, warm)
        except ValueError as exc:  # too large, a value it cannot hold: no launch, said why
            raise ProviderError(f"user-data of pool {pool}: {exc}") from exc

    # ---------------------------------------------------------------- terminate

    def terminate(self, instance_id: str, pool: str) -> str:
        found = self._own(instance_id, pool)
        if found is None:
            return f"{instance_id} already gone"
        if found["State"]["Name"] in ("shutting-down", "terminated"):
            return f"{instance_id} already terminating"
        return self._terminate(instance_id)

    def _own(self, instance_id: str, pool: str) -> Mapping[str, Any] | None:
        """The machine as EC2 describes it now; None when it is gone. Refused unless it is
        this cluster's and the pool's."""
        try:
            answer = self._ec2.describe_instances(InstanceIds=[instance_id])
        except ClientError as exc:
            if _code(exc) == "InvalidInstanceID.NotFound":
                return None
            raise ProviderError(f"describe_instances refused ({_code(exc)})") from exc
        except BotoCoreError as exc:
            raise ProviderError(unreachable(exc, "EC2")) from exc
        found = [i for r in answer["Reservations"] for i in r["Instances"]]
        if not found:
            return None
        tags = _tags(found[0].get("Tags", ()))
        if tags.get(L.TAG_CLUSTER) != self._cluster or tags.get(L.TAG_POOL) != pool:
            raise ProviderError(
                f"{instance_id} is not an instance of pool {pool} in cluster {self._cluster}: "
                "never terminated"
            )
        first: Mapping[str, Any] = found[0]
        return first

    def _terminate(self, instance_id: str) -> str:
        try:
            self._ec2.terminate_instances(InstanceIds=[instance_id])
        except (ClientError, BotoCoreError) as exc:
            raise ProviderError(f"terminate_instances failed: {_text(exc)}") from exc
        return f"terminated {instance_id}"

    # ---------------------------------------------------------------- warm pool

    def retire_warm(self, instance_id: str, pool: str) -> str:
        """Terminate a warm-pool machine the pool no longer wants; refused once a launch
        has started it (no longer tagged warm, and running: it is becoming a node), and
        while its start may not be described yet: a launch retags and stamps a machine
        before it starts it, and describe_instances may say stopped for a while after."""
        found = self._own(instance_id, pool)
        if found is None:
            return f"{instance_id} already gone"
        state = found["State"]["Name"]
        if state in ("shutting-down", "terminated"):
            return f"{instance_id} already terminating"
        tags = _tags(found.get("Tags", ()))
        if tags.get(TAG_WARM) != "true":
            taken = L.parse_stamp(tags.get(L.TAG_LAUNCHED_AT))
            lately = taken is not None and self._clock() - taken < STARTED_LATELY
            if lately or state not in ("stopping", "stopped"):
                raise ProviderError(f"{instance_id} was started by a launch: kept")
        return self._terminate(instance_id)

    def fill_warm_pool(self, pool: str, policy: PoolPolicy, token: str) -> list[str]:
        """Launch stopped-to-be machines until the pool has ``warm_pool`` of them: they pull
        the images and power off; ``launch`` starts them later (much faster than a launch).
        Counted again here, so a fill decided on an older listing launches no more."""
        ec2 = policy.ec2
        if ec2 is None or ec2.warm_pool <= 0:
            return []
        version = self._in_force(policy)
        digest = launch_config(policy, version)
        warm = [
            i
            for i in self.list_instances()
            if i.pool == pool
            and i.in_warm_pool
            and stale_because(i, policy, digest, version) is None
        ]
        missing = ec2.warm_pool - len(warm)
        if missing <= 0:
            return []
        return self._run(pool, policy, ec2, missing, token, warm=True, version=version)


def _tags(raw: Iterable[Mapping[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw}


def _by_id(i: Instance) -> str:
    return i.id


def _instance(raw: Mapping[str, Any]) -> Instance | None:
    tags = _tags(raw.get("Tags", ()))
    pool = tags.get(L.TAG_POOL)
    if not pool:
        return None
    state = raw["State"]["Name"]
    launched = L.parse_stamp(tags.get(L.TAG_LAUNCHED_AT))
    if launched is None:
        launch_time = raw.get("LaunchTime")
        launched = launch_time if isinstance(launch_time, datetime) else datetime.now(UTC)
    return Instance(
        id=raw["InstanceId"],
        pool=pool,
        state=state,
        launched_at=launched,
        instance_type=raw.get("InstanceType", ""),
        private_dns=raw.get("PrivateDnsName", ""),
        private_ip=raw.get("PrivateIpAddress", ""),
        subnet=raw.get("SubnetId", ""),
        tags=tags,
        # pulling images or stopped: neither capacity nor a join (Instance.alive)
        warm=tags.get(TAG_WARM) == "true",
    )


def _from_template(inst: Instance) -> bool:
    return inst.in_warm_pool and EC2_TEMPLATE_ID in inst.tags


def _unknown_template(ref: str, why: str, gone: bool = False) -> LaunchTemplateNow:
    if ref.startswith("lt-"):
        return LaunchTemplateNow(id=ref, error=why, gone=gone)
    return LaunchTemplateNow(id="", name=ref, error=why, gone=gone)


def _before(ids: list[str]) -> str:
    """What a failed launch had started already: machines that run and cost all the same."""
    return f"; started before that: {', '.join(ids)}" if ids else ""


def _text(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', '')}: {err.get('Message', '')}"
    if isinstance(exc, BotoCoreError):
        return unreachable(exc, "EC2")
    return type(exc).__name__
