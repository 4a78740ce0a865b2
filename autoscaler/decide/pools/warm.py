"""The warm pool of an EC2 pool: stopped machines with the images pulled, kept topped up.

Pure. A launch starts warm machines before it runs new ones (seconds instead of minutes),
so the pool asks for more whenever it holds fewer than ``ec2.warm_pool``: at start-up,
after a launch used some, after one was lost. A fill counts as on its way for the settle
time, as a launch does, because the provider's lists may lag.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from autoscaler.decide.plan_types import FillWarmPool, PoolMemory
from autoscaler.decide.pools.inventory import Inventory
from autoscaler.decide.text import clock, utc
from autoscaler.rules.pools import PoolPolicy


@dataclass(frozen=True)
class WarmPoolMove:
    action: FillWarmPool | None = None
    reason: str | None = None


def top_up_warm_pool(
    name: str,
    policy: PoolPolicy,
    inv: Inventory,
    memory: PoolMemory | None,
    now: datetime,
    settle: timedelta,
) -> WarmPoolMove:
    wanted = policy.ec2.warm_pool if policy.ec2 is not None else 0
    if policy.provider != "ec2" or wanted <= 0 or not inv.instances_known:
        return WarmPoolMove()
    missing = wanted - inv.warm
    if missing <= 0:
        return WarmPoolMove()
    filled = memory.warm_filled_at if memory is not None else None
    if filled is not None and utc(now) - utc(filled) < settle:
        return WarmPoolMove(reason=f"warm pool {inv.warm} of {wanted}: filled at {clock(filled)}")
    action = FillWarmPool(
        pool=name,
        provider=policy.provider,
        count=missing,
        reason=f"warm pool {inv.warm} of {wanted}",
        token=f"{name}-warm-{int(utc(now).timestamp())}-{missing}",
    )
    return WarmPoolMove(action=action)
