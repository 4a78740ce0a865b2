"""How many seats a pool keeps free, and the nodes that makes: the figures each pass plans by.

Pure. The headroom is the largest of the fixed free seats, the reserve's floor
(``reserve_seats``) and the arrivals of one node-ready time (their expected number, or a
Poisson quantile of it). wanted seats =
sessions on the active nodes + session tasks waiting for a node + headroom; wanted nodes =
ceil(wanted seats / seats_per_node) within the (scheduled) minimum, the maximum and the
hourly cost cap: what the pool reports, while the planner moves seat by seat. Every bound
that changes the answer is a reason.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import datetime

from autoscaler.decide.pools.inventory import Inventory
from autoscaler.decide.schedule import active_window
from autoscaler.decide.signals import SignalReading
from autoscaler.decide.text import clock, num, span
from autoscaler.rules.pools import PoolPolicy


@dataclass(frozen=True)
class Headroom:
    seats: int
    known: bool
    """False when the arrivals signal is unusable: then no scale-in is decided on it."""
    reason: str


@dataclass(frozen=True)
class Sizing:
    used: int
    pending: int
    headroom: int
    wanted_seats: int
    wanted_nodes: int
    low: int
    """The minimum in force (the policy's, or a schedule's)."""
    cost_cap_nodes: int | None
    headroom_known: bool
    reasons: tuple[str, ...]
    raw_nodes: int = 0
    """Nodes the seats call for before min, max and the cost cap."""
    retiring: bool = False
    """``max: 0``: the pool keeps no seat free and launches nothing; its nodes are paused
    and leave as their sessions end."""


def poisson_quantile(mean: float, p: float) -> int:
    """The smallest k with P(N <= k) >= p for N ~ Poisson(mean)."""
    if mean <= 0:
        return 0
    return _poisson_quantile(mean, p)


@functools.lru_cache(maxsize=1024)  # the held arrivals reading changes rarely: most passes hit
def _poisson_quantile(mean: float, p: float) -> int:
    # log-space terms: exp(-mean) underflows for a mean above ~700
    k, log_term = 0, -mean
    cdf = math.exp(log_term)
    while cdf < p and k < mean + 50 * math.sqrt(mean) + 50:
        k += 1
        log_term += math.log(mean / k)
        cdf += math.exp(log_term)
    return k


def headroom(policy: PoolPolicy, arrivals: SignalReading | None) -> Headroom:
    """The largest of the fixed free seats, the reserve's floor and the arrivals during one
    node-ready time."""
    h = policy.headroom
    fixed = max(h.seats, h.reserve_seats)
    if h.signal is None:
        return Headroom(fixed, True, f"headroom {fixed} seats{_floor(h.reserve_seats)}")
    if arrivals is None or arrivals.value is None:
        why = arrivals.problem if arrivals is not None else f"signal {h.signal} missing"
        return Headroom(
            fixed, False, f"headroom {fixed} seats{_floor(h.reserve_seats)} ({why}: no scale-in)"
        )
    per_minute = max(0.0, arrivals.value) * 60 / h.signal_per.total_seconds()
    mean = per_minute * h.node_ready_time.total_seconds() / 60
    if h.confidence is None:
        expected, how = math.ceil(mean - 1e-9), ""
    else:
        expected, how = poisson_quantile(mean, h.confidence), f" at {h.confidence:.0%}"
    seats = max(fixed, expected)
    return Headroom(
        seats,
        True,
        f"headroom {seats} seats ({num(per_minute)} arrivals/min over "
        f"{span(h.node_ready_time)} node-ready time{how} = {expected}, fixed {h.seats}"
        f"{_floor(h.reserve_seats, ', ')})",
    )


def _floor(reserve_seats: int, sep: str = "; ") -> str:
    return f"{sep}reserve at least {reserve_seats}" if reserve_seats else ""


def scheduled_min(policy: PoolPolicy, now: datetime) -> tuple[int, list[str]]:
    """The policy's min, or the largest min of the schedule windows open at ``now``."""
    low, reasons = policy.min, []
    for s in policy.schedules:
        window = active_window(s, now)
        if window is not None and s.min > low:
            low = s.min
            reasons.append(
                f"schedule '{s.cron}' ({s.timezone}) until {clock(window.end)}: min {s.min}"
            )
    return low, reasons


def cost_cap_nodes(policy: PoolPolicy) -> int | None:
    """Machines the hourly budget pays for, at the dearest of the pool's prices."""
    price = policy.node_price()
    if policy.max_cost_per_hour is None or price is None or price <= 0:
        return None
    return math.floor(policy.max_cost_per_hour / price + 1e-9)


def cost_cap_text(policy: PoolPolicy, cap: int) -> str:
    return (
        f"cost cap ${policy.max_cost_per_hour or 0:.2f}/h allows {cap} node(s) "
        f"at ${policy.node_price() or 0:.2f}/h"
    )


RETIRING = (
    "max 0: the pool is retired: no seat kept free, nothing launched; its nodes are "
    "paused and leave as their sessions end"
)


def size(
    policy: PoolPolicy, inv: Inventory, arrivals: SignalReading | None, now: datetime
) -> Sizing:
    used = sum(m.used for m in inv.having("active"))
    if policy.retired:
        # min and every schedule's min are 0 too (validated against max)
        why = [RETIRING]
        if inv.pending:  # another pool may launch for them: not this one
            why.append(f"{inv.pending} session(s) of its apps waiting: not launched for here")
        return Sizing(used, inv.pending, 0, 0, 0, 0, None, True, tuple(why), retiring=True)
    room = headroom(policy, arrivals)
    wanted_seats = used + inv.pending + room.seats
    raw = math.ceil(wanted_seats / policy.seats_per_node)
    reasons = [
        f"wanted seats {wanted_seats} = {used} in use + {inv.pending} waiting + {room.reason}",
        f"{raw} node(s) of {policy.seats_per_node} seats",
    ]
    low, why_low = scheduled_min(policy, now)
    reasons += why_low
    nodes = raw
    if nodes < low:
        nodes = low
        reasons.append(f"at min {low}")
    if nodes > policy.max:
        nodes = policy.max
        reasons.append(f"at max {policy.max} (wants {raw})")
    cap = cost_cap_nodes(policy)
    if cap is not None and nodes > cap:
        nodes = cap
        reasons.append(cost_cap_text(policy, cap))
    return Sizing(
        used,
        inv.pending,
        room.seats,
        wanted_seats,
        nodes,
        low,
        cap,
        room.known,
        tuple(reasons),
        raw_nodes=raw,
    )
