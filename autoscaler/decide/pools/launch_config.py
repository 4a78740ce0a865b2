"""What a pool's machines are launched with, as a short digest tagged on each of them.

A warm-pool machine keeps what it was launched with (image, disk, instance profile, the app
images it pulled, the boot script) for as long as it waits stopped. The digest tells which
ones an edit of the pool, or a new version of the boot script, has made stale: those are
replaced, never started, so no node comes up with what the pool no longer says.

A launch template named by ``$Default`` or ``$Latest`` gives another version once the
template changes, the pool unchanged. So the digest holds the number it gave at launch (the
provider launches with that number), and a machine is judged against the number it gives
now, read from EC2 in the same pass (``Instance.launch_template``). When that is not known
the machine is judged on everything else, as EC2 says it was launched: never stale for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from autoscaler.decide.pools import labels as L
from autoscaler.rules.pools import PoolPolicy
from autoscaler.snapshot import Instance
from autoscaler.userdata.render import script_body

PER_MACHINE = frozenset({"instance_types", "subnets"})
"""Lists a machine is one choice of: checked against the machine's own type and subnet."""
NOT_THE_MACHINE = frozenset({"spot", "warm_pool"})
"""Settings of how many machines and how they are bought, not of what one is."""
SELECTORS = frozenset({"$Default", "$Latest"})
"""Launch template versions that EC2 resolves at each launch: they change with the template."""
EC2_TEMPLATE_ID = "aws:ec2launchtemplate:id"
EC2_TEMPLATE_VERSION = "aws:ec2launchtemplate:version"
"""Tags EC2 puts on every machine launched from a launch template: which one, and the version
number it used (no one can edit them)."""


@cache
def _script_digest() -> str:
    return hashlib.sha256(script_body().encode()).hexdigest()


def follows_template(policy: PoolPolicy) -> bool:
    """The pool names its launch template by $Default or $Latest."""
    ec2 = policy.ec2
    if ec2 is None or not ec2.launch_template:
        return False
    return ec2.launch_template_version in SELECTORS


def launch_config(policy: PoolPolicy, version: int | None = None) -> str:
    """16 hex digits; the same for every policy that launches the same machine. ``version``:
    the number the pool's $Default or $Latest gives (ignored for a pool that names a number
    or no template), so it is the digest of a pool that names that number."""
    # sets, not sequences: listed in another order, they make the same machine
    shape: dict[str, object] = {"images": sorted(policy.images), "script": _script_digest()}
    if policy.ec2 is not None:
        ec2 = policy.ec2.model_dump(mode="json", exclude=set(PER_MACHINE | NOT_THE_MACHINE))
        if version is not None and follows_template(policy):
            ec2["launch_template_version"] = str(version)
        shape["ec2"] = {**ec2, "security_groups": sorted(policy.ec2.security_groups)}
    text = json.dumps(shape, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class InForce:
    """The version a pool's $Default or $Latest gives now."""

    number: int | None = None
    unknown: str | None = None
    """Why it is not known (then ``number`` is None): no machine is judged on it."""


def in_force(policy: PoolPolicy, machines: Iterable[Instance]) -> InForce:
    """Read from the pool's machines' launch templates as EC2 described them in this pass.
    Nothing (``InForce()``) for a pool that names a number or no template, or without a
    machine launched from one."""
    ec2 = policy.ec2
    if ec2 is None or not follows_template(policy):
        return InForce()
    unknown: str | None = None
    for inst in machines:
        lt = inst.launch_template
        if lt is None:
            if EC2_TEMPLATE_ID in inst.tags:
                unknown = unknown or "its machines' launch template not read"
        elif lt.gone:
            continue  # stale whatever the version (stale_because)
        elif lt.error is not None:
            unknown = lt.error  # its name unknown too: it may be the pool's template
        elif ec2.launch_template in (lt.id, lt.name):
            number = lt.version(ec2.launch_template_version)
            if number is not None:
                return InForce(number=number)
    return InForce(unknown=unknown)


def stale_because(
    inst: Instance, policy: PoolPolicy, digest: str, version: int | None = None
) -> str | None:
    """Why the machine is not what the pool launches now; None when it is. ``digest``:
    ``launch_config(policy, version)``, computed once per pass; ``version``: the number the
    pool's $Default or $Latest gives now, None when unknown (or when the pool names none)."""
    ec2 = policy.ec2
    if ec2 is None:
        return "the pool has no ec2 section"
    if inst.instance_type and inst.instance_type not in ec2.instance_types:
        return f"instance type {inst.instance_type} no longer listed"
    if inst.subnet and inst.subnet not in ec2.subnets:
        return f"subnet {inst.subnet} no longer listed"
    lt = inst.launch_template
    if lt is not None and lt.gone:
        # made again under the same name, the template may even give the same number
        return f"launched from launch template {lt.id or lt.name}, which no longer exists"
    tag = inst.tags.get(L.TAG_LAUNCH_CONFIG)
    if tag == digest:
        return None
    launched = _launched_version(inst) if follows_template(policy) else None
    # launched with all the pool says but the version, which EC2 records: its digest holds
    # that number, or (launched before digests did) the $Default or $Latest itself
    if launched is not None and tag in (launch_config(policy, launched), launch_config(policy)):
        if version is None or launched == version:
            return None  # the version in force, or unknown: never stale for what is unknown
        selector = ec2.launch_template_version
        return (
            f"launched with version {launched} of launch template {ec2.launch_template}, "
            f"and {selector} is now version {version}"
        )
    return "launched with another image, disk, profile, app images or boot script"


def _launched_version(inst: Instance) -> int | None:
    text = inst.tags.get(EC2_TEMPLATE_VERSION, "")
    return int(text) if text.isdigit() else None
