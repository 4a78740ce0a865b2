"""The warm pool of an EC2 pool: stopped machines with the images pulled, kept at its size.

Pure. A launch starts warm machines before it runs new ones (seconds instead of minutes),
so the pool asks for more whenever it holds fewer current ones than ``ec2.warm_pool``: at
start-up, after a launch used some, after one was lost. A fill counts as on its way for
the settle time, as a launch does, because the provider's lists may lag.

Stopped machines the pool no longer wants are terminated: those beyond ``warm_pool`` (it
was lowered), and stale ones, launched with another image, disk, profile, app images or
boot script than the pool says now, or another version of its launch template than its
$Default or $Latest gives now (launch_config). A stopped machine runs nothing, so no
session is ever at stake; one still pulling images is left to power off first. EC2's lists
lag: a machine a launch started may be listed stopped for a while after, so none is
terminated as one too many while a launch is on its way, and none a launch took lately
(no longer tagged warm, its launched-at stamp reset) is terminated at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from autoscaler.decide.plan_types import FillWarmPool, PoolMemory, RetireWarmMachine
from autoscaler.decide.pools.inventory import Inventory
from autoscaler.decide.pools.launch_config import InForce, in_force, launch_config, stale_because
from autoscaler.decide.text import clock, utc
from autoscaler.rules.pools import PoolPolicy
from autoscaler.snapshot import Instance


@dataclass(frozen=True)
class WarmPoolMove:
    action: FillWarmPool | None = None
    reason: str | None = None
    retire: tuple[RetireWarmMachine, ...] = field(default=())


def tend_warm_pool(
    name: str,
    policy: PoolPolicy,
    inv: Inventory,
    memory: PoolMemory | None,
    now: datetime,
    settle: timedelta,
    launching: bool = False,
) -> WarmPoolMove:
    """``launching``: this pass launches, and a launch starts warm machines first, so the
    ones beyond ``warm_pool`` are left to it rather than terminated; so does a launch of
    the last ``settle`` (``memory``), whose started machines may still be listed stopped."""
    if policy.provider != "ec2" or not inv.instances_known:
        return WarmPoolMove()
    # a retired pool (max 0) keeps none: its stopped machines are terminated
    wanted = policy.ec2.warm_pool if policy.ec2 is not None and not policy.retired else 0
    version = in_force(policy, inv.warm_machines)
    digest = launch_config(policy, version.number)
    stale = {
        i.id: why
        for i in inv.warm_machines
        if (why := stale_because(i, policy, digest, version.number))
    }
    unknown = _unknown_version(policy, version)
    current = [i for i in inv.warm_machines if i.id not in stale]
    taken = {i.id for i in inv.warm_machines if _taken_lately(i, now, settle)}
    launched = memory.launched_at if memory is not None else None
    on_its_way = launched is not None and utc(now) - utc(launched) < settle
    retire = [
        RetireWarmMachine(
            instance_id=i.id,
            pool=name,
            provider=policy.provider,
            reason=f"warm-pool machine {i.id} is stale: {why}",
        )
        for i in inv.warm_machines
        if i.state == "stopped" and i.id not in taken and (why := stale.get(i.id))
    ]
    surplus = len(current) - wanted
    if surplus > 0 and not (launching or on_its_way or taken):
        stopped = sorted((i for i in current if i.state == "stopped"), key=_first_to_go)
        retire += [
            RetireWarmMachine(
                instance_id=i.id,
                pool=name,
                provider=policy.provider,
                reason=f"warm pool {len(current)} of {wanted}: {i.id} not needed",
            )
            for i in stopped[:surplus]
        ]
    missing = wanted - len(current)
    if missing <= 0:
        return WarmPoolMove(reason=unknown, retire=tuple(retire))
    filled = memory.warm_filled_at if memory is not None else None
    if filled is not None and utc(now) - utc(filled) < settle:
        waiting = f"warm pool {len(current)} of {wanted}: filled at {clock(filled)}"
        reason = "; ".join(r for r in (waiting, unknown) if r)
        return WarmPoolMove(reason=reason, retire=tuple(retire))
    action = FillWarmPool(
        pool=name,
        provider=policy.provider,
        count=missing,
        reason=f"warm pool {len(current)} of {wanted}",
        token=f"{name}-warm-{int(utc(now).timestamp())}-{missing}",
    )
    return WarmPoolMove(action=action, reason=unknown, retire=tuple(retire))


def _unknown_version(policy: PoolPolicy, version: InForce) -> str | None:
    """Why the warm machines are not judged on their launch template version, if so."""
    if version.unknown is None or policy.ec2 is None:
        return None
    ec2 = policy.ec2
    return (
        f"launch template {ec2.launch_template} {ec2.launch_template_version} unknown "
        f"({version.unknown}): warm machines not judged on its version"
    )


def _taken_lately(inst: Instance, now: datetime, settle: timedelta) -> bool:
    """A launch started it (it retags it warm=false and stamps it first) less than
    ``settle`` ago: it is on its way to become a node, whatever state is listed."""
    return not inst.warm and utc(now) - utc(inst.launched_at) < settle


def _first_to_go(inst: Instance) -> tuple[bool, datetime, str]:
    """A machine whose start fell back to stopped (no longer tagged warm) first, since it
    may not start again; then the oldest."""
    return (inst.warm, utc(inst.launched_at), inst.id)
