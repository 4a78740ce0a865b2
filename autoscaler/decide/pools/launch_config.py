"""What a pool's machines are launched with, as a short digest tagged on each of them.

A warm-pool machine keeps what it was launched with (image, disk, instance profile, the app
images it pulled, the boot script) for as long as it waits stopped. The digest tells which
ones an edit of the pool, or a new version of the boot script, has made stale: those are
replaced, never started, so no node comes up with what the pool no longer says.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache

from autoscaler.decide.pools import labels as L
from autoscaler.rules.pools import PoolPolicy
from autoscaler.snapshot import Instance
from autoscaler.userdata.render import script_body

PER_MACHINE = frozenset({"instance_types", "subnets"})
"""Lists a machine is one choice of: checked against the machine's own type and subnet."""
NOT_THE_MACHINE = frozenset({"spot", "warm_pool"})
"""Settings of how many machines and how they are bought, not of what one is."""


@cache
def _script_digest() -> str:
    return hashlib.sha256(script_body().encode()).hexdigest()


def launch_config(policy: PoolPolicy) -> str:
    """16 hex digits; the same for every policy that launches the same machine."""
    # sets, not sequences: listed in another order, they make the same machine
    shape: dict[str, object] = {"images": sorted(policy.images), "script": _script_digest()}
    if policy.ec2 is not None:
        ec2 = policy.ec2.model_dump(mode="json", exclude=set(PER_MACHINE | NOT_THE_MACHINE))
        shape["ec2"] = {**ec2, "security_groups": sorted(policy.ec2.security_groups)}
    text = json.dumps(shape, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stale_because(inst: Instance, policy: PoolPolicy, digest: str) -> str | None:
    """Why the machine is not what the pool launches now; None when it is. ``digest``:
    ``launch_config(policy)``, computed once per pass."""
    ec2 = policy.ec2
    if ec2 is None:
        return "the pool has no ec2 section"
    if inst.instance_type and inst.instance_type not in ec2.instance_types:
        return f"instance type {inst.instance_type} no longer listed"
    if inst.subnet and inst.subnet not in ec2.subnets:
        return f"subnet {inst.subnet} no longer listed"
    if inst.tags.get(L.TAG_LAUNCH_CONFIG) != digest:
        return "launched with another image, disk, profile, app images or boot script"
    return None
