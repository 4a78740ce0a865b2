"""From command-line options to a ready run: the workload, the pool policy, the parameters."""

from __future__ import annotations

import argparse
import math
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from autoscaler.durations import parse_duration
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.schema import Policies
from autoscaler.sim.arrivals import (
    SessionLengths,
    Workload,
    arrival_rates,
    from_rates,
    from_sessions,
    pair_events,
    read_session_csv,
)
from autoscaler.sim.baselines import NAMES as BASELINES
from autoscaler.sim.cluster import WARM_READY, ReadyTime
from autoscaler.sim.controller import Controller
from autoscaler.sim.oracle import peak_concurrency
from autoscaler.sim.planner import Planner, PlannerController
from autoscaler.sim.runner import (
    WARM_PRICE,
    Progress,
    RunResult,
    SimParams,
    simulate,
    simulate_oracle,
)
from autoscaler.sim.trace import not_utf8, parse_time, read_rates

MOST_ARRIVALS = 10_000_000
"""Sessions a trace may make: about 100 times the two-month benchmark's."""
MOST_PASSES = 10_000_000
"""Passes a run may take: about 30 times the two-month benchmark's at 15 s."""


class SetupError(ValueError):
    """Options or rules that cannot make a run."""


@dataclass(frozen=True)
class Setup:
    workload: Workload
    policies: Policies
    pool: str
    params: SimParams
    params_json: dict[str, Any]
    baselines: tuple[str, ...]


def prepare(args: argparse.Namespace, now: datetime | None = None) -> Setup:
    try:
        lengths = SessionLengths(args.session_median, args.session_p90, args.session_cap)
    except ValueError as e:
        raise SetupError(f"--session-median, --session-p90, --session-cap: {e}") from None
    workload = load_workload(args, lengths, now or datetime.now(UTC))
    policies, pool = load_pool(args)
    policy = policies.pools[pool]
    warm_pool, warm_ready, warm_price = warm_options(args, warm_size(policy))
    p90 = args.ready_time_p90 if args.ready_time_p90 is not None else args.ready_time * 4 / 3
    try:
        ready = ReadyTime(args.ready_time, p90)
    except ValueError as e:
        raise SetupError(str(e)) from None
    if args.tick <= 0:
        raise SetupError("--tick must be positive")
    if workload.seconds / args.tick > MOST_PASSES:  # a run of hours: refuse it up front
        raise SetupError(
            f"--tick {args.tick:g}s makes {workload.seconds / args.tick:.3g} passes over the "
            f"window, above {MOST_PASSES:,}"
        )
    if args.event_passes is not None and not 0 < args.event_passes <= args.tick:
        raise SetupError("--event-passes needs a gap above 0 and at most --tick")
    params = SimParams(
        seats_per_node=policy.seats_per_node,
        max_nodes=policy.max,
        ready_time=ready,
        service_wait=args.service_wait,
        tick=args.tick,
        event_gap=args.event_passes,
        reopen_after=args.reopen_after,
        price=args.price if args.price is not None else (policy.node_price() or 1.0),
        seed=args.seed,
        warmup=min(args.warmup, workload.seconds / 2),
        warm_pool=warm_pool,
        warm_ready_time=warm_ready,
        warm_price=warm_price,
    )
    baselines = parse_baselines(args.baselines)
    described = {
        "source": workload.source,
        "from": workload.start.isoformat(),
        "to": workload.end.isoformat(),
        "arrivals": len(workload.arrivals),
        "carried_in": len(workload.carried),
        "lookback_s": lookback(args) if args.influx else None,
        "peak_sessions": args.peak_sessions if args.trace else None,
        "session_median_min": lengths.median_minutes,
        "session_p90_min": lengths.p90_minutes,
        "session_cap_min": lengths.cap_minutes,
        "seed": args.seed,
        "rules": str(args.rules),
        "pool": pool,
        "seats_per_node": params.seats_per_node,
        "max_nodes": params.max_nodes,
        "ready_time_median_s": ready.median,
        "ready_time_p90_s": ready.p90,
        "service_wait_s": params.service_wait,
        "tick_s": params.tick,
        "event_gap_s": params.event_gap,
        "reopen_after_s": params.reopen_after,
        "warmup_s": params.warmup,
        "price_per_node_hour": params.price,
    }
    if warm_pool:  # recorded only when simulated: runs without one keep their parameters
        described |= {
            "warm_pool": warm_pool,
            "warm_ready_time_median_s": warm_ready.median,
            "warm_ready_time_p90_s": warm_ready.p90,
            "warm_price_per_hour": warm_price,
        }
    return Setup(workload, policies, pool, params, described, tuple(baselines))


def warm_size(policy: PoolPolicy) -> int:
    """The warm pool the planner tends for the pool (EC2 pools only)."""
    return policy.ec2.warm_pool if policy.provider == "ec2" and policy.ec2 is not None else 0


def warm_options(args: argparse.Namespace, size: int) -> tuple[int, ReadyTime, float]:
    """``size``: the pool's warm pool, as --warm-pool or the rules set it; then
    --warm-ready-time (median, p90) and --warm-price, which only mean something with a
    warm pool, so they are refused without one."""
    times = getattr(args, "warm_ready_time", None)
    price = getattr(args, "warm_price", None)
    for given, option in ((times, "--warm-ready-time"), (price, "--warm-price")):
        if given is not None and not size:
            raise SetupError(f"{option} is for a warm pool (--warm-pool N, N above 0)")
    ready = ReadyTime(*times) if times is not None else WARM_READY
    return size, ready, WARM_PRICE if price is None else float(price)


def parse_baselines(text: str) -> list[str]:
    chosen = [b.strip() for b in text.split(",") if b.strip() and b.strip() != "none"]
    bad = [b for b in chosen if b not in BASELINES]
    if bad:
        raise SetupError(f"unknown baseline {', '.join(bad)}: choose from {', '.join(BASELINES)}")
    return chosen


def load_workload(args: argparse.Namespace, lengths: SessionLengths, now: datetime) -> Workload:
    if getattr(args, "lookback", None) is not None and args.influx is None:
        # a sessions file gives both ends of every session: nothing to look back for
        raise SetupError("--lookback is for --influx (events read before the window)")
    if getattr(args, "since", None) is not None and args.influx is None:
        # a trace or a sessions file is windowed with --from and --to
        raise SetupError("--since is for --influx; window a trace or sessions file with --from")
    if args.trace is not None:
        points = read_rates(args.trace, args.start, args.end)
        try:
            # the draws take time and memory in proportion: refuse a run of hours up front
            mean = lengths.mean_minutes()
            expected = sum(arrival_rates(points, args.peak_sessions, mean))
            if expected > MOST_ARRIVALS:
                raise ValueError(
                    f"--peak-sessions {args.peak_sessions:g} with sessions of {mean:.3g} min on "
                    f"average make about {expected:.3g} arrivals, above {MOST_ARRIVALS:,}"
                )
            return from_rates(points, args.peak_sessions, args.seed, lengths)
        except ValueError as e:
            raise SetupError(f"{args.trace}: {e}") from None
    if args.sessions is not None:
        try:
            spans = read_session_csv(args.sessions)
        except UnicodeDecodeError:
            raise not_utf8(args.sessions) from None
        try:
            return from_sessions(spans, str(args.sessions), args.start, args.end)
        except ValueError as e:
            raise SetupError(str(e)) from None
    from autoscaler.sim.usage import read_events
    from autoscaler.sources.errors import NoData, SourceError
    from autoscaler.sources.http_errors import redact_url

    begin = args.start or since(args.since, now)
    end = args.end or now
    try:  # the lookback pairs the stops of sessions already running when the window opens
        first = begin - timedelta(seconds=lookback(args))
    except OverflowError:
        raise SetupError(f"--lookback from {begin}: too far back") from None
    try:
        events = read_events(args.influx, args.db, first, end)
    except (SourceError, NoData) as e:
        raise SetupError(str(e)) from None
    source = f"InfluxDB {redact_url(args.influx)}"
    try:  # only stops of sessions started before the lookback, say
        return from_sessions(pair_events(events, end), source, begin, end)
    except ValueError as e:
        raise SetupError(str(e)) from None


LOOKBACK = 86400.0
"""Seconds of events read before an InfluxDB window (--lookback): sessions started within
it and still running when the window opens are carried in."""


def lookback(args: argparse.Namespace) -> float:
    value = getattr(args, "lookback", None)
    return LOOKBACK if value is None else float(value)


def since(text: str | None, now: datetime) -> datetime:
    """A timestamp, or a duration back from ``now`` (default 7 days)."""
    if not text:
        return now - parse_duration("7d")
    try:
        return parse_time(text)
    except ValueError:
        pass
    try:
        return now - parse_duration(text)
    except ValueError:
        raise SetupError(f"--since {text!r}: a timestamp or a duration such as 7d") from None
    except OverflowError:  # before year 1, or more days than a timedelta holds
        raise SetupError(f"--since {text!r}: too far back") from None


def load_pool(args: argparse.Namespace) -> tuple[Policies, str]:
    """The rules, with the pool under test adjusted by --seats-per-node and --max-nodes."""
    from autoscaler.rules.loader import load_rules

    loaded = load_rules(args.rules)
    if loaded.policies is None:
        raise SetupError("\n".join(str(p) for p in loaded.problems) or f"{args.rules}: no rules")
    policies = loaded.policies
    pools = sorted(policies.pools)
    name = args.pool
    if name is None:
        if len(pools) != 1:
            raise SetupError(f"choose a pool with --pool ({', '.join(pools) or 'none defined'})")
        name = pools[0]
    if name not in policies.pools:
        raise SetupError(f"no pool {name!r} in {args.rules} (pools: {', '.join(pools) or 'none'})")
    warm = getattr(args, "warm_pool", None)
    policy = override(policies.pools[name], args.seats_per_node, args.max_nodes, warm)
    return policies.model_copy(update={"pools": {**policies.pools, name: policy}}), name


def override(
    policy: PoolPolicy, seats: int | None, max_nodes: int | None, warm_pool: int | None = None
) -> PoolPolicy:
    """The pool with other seats or max; a cost cap below the new max is raised to it (the
    cap is a budget, not part of the sizing under test). ``warm_pool`` replaces its own
    ``ec2.warm_pool`` (without it, the rules' stands). The planner tends a warm pool for ec2
    pools only, so with one a pool of another provider is run as an ec2 pool, with a
    placeholder ec2 section that launches its own instance types (their prices and the cost
    cap stay as they are)."""
    data = policy.model_dump()
    if warm_pool and policy.provider != "ec2":
        data["provider"] = "ec2"
    if data.get("ec2"):
        if warm_pool is not None:
            data["ec2"]["warm_pool"] = warm_pool
    elif warm_pool:
        data["ec2"] = {
            "ami": "ami-simulated",
            "instance_types": list(policy.instance_types()),
            "subnets": ["subnet-simulated"],
            "warm_pool": warm_pool,
        }
    if seats is not None:
        data.update(seats_per_node=seats, seat=None)
    if max_nodes is not None:
        data["max"] = max_nodes
        data["min"] = min(data["min"], max_nodes)
        price = policy.node_price()
        cap = policy.max_cost_per_hour
        if cap is not None and price and math.floor(cap / price + 1e-9) < max_nodes:
            data["max_cost_per_hour"] = price * max_nodes
    try:
        return PoolPolicy.model_validate(data)
    except ValueError as e:
        raise SetupError(f"pool override: {e}") from None


def controllers(setup: Setup, planner: Planner | None = None) -> list[Controller]:
    """The policy under test first, then the simulated baselines."""
    from autoscaler.sim.baselines import ClusterAutoscalerStyle, HotBuffer, HpaStyle, StaticPeak

    p = setup.params
    out: list[Controller] = [
        PlannerController(
            f"policy:{setup.pool}", setup.pool, setup.policies, setup.workload.start, planner
        )
    ]
    made: dict[str, Callable[[], Controller]] = {
        "static-peak": lambda: StaticPeak(
            math.ceil(
                peak_concurrency(setup.workload.carried + setup.workload.arrivals)
                / p.seats_per_node
            )
        ),
        "hpa-style": lambda: HpaStyle(p.max_nodes),
        "cluster-autoscaler-style": lambda: ClusterAutoscalerStyle(p.max_nodes),
        "hot-buffer": lambda: HotBuffer(p.max_nodes),
    }
    out += [made[b]() for b in setup.baselines if b in made]
    return out


def run_all(
    setup: Setup, show_progress: bool = False, planner: Planner | None = None, jobs: int = 1
) -> list[RunResult]:
    """Every controller on the same arrivals and ready-time draws, then the oracle.

    With ``jobs`` above 1 the baselines and the oracle run in a second process while this
    one runs the policy, the longest run by far. Each run draws from its own seeded
    generator, so the results are the same either way."""
    runs = controllers(setup, planner)
    policy, baselines = runs[:1], runs[1:]
    if jobs < 2 or not (baselines or "oracle" in setup.baselines):
        with _progress(show_progress, setup.workload.seconds * len(runs)) as advance:
            return _simulate_all(setup, runs, advance)
    # forkserver: a fork of this process could inherit a lock held by another thread
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver")) as pool:
        others = pool.submit(_baselines, setup)
        with _progress(show_progress, setup.workload.seconds) as advance:
            mine = _simulate_all(setup, policy, advance, oracle=False)
        return mine + others.result()


def _simulate_all(
    setup: Setup, runs: list[Controller], advance: Progress, oracle: bool = True
) -> list[RunResult]:
    results = [simulate(setup.workload, c, setup.params, advance) for c in runs]
    if oracle and "oracle" in setup.baselines:
        results.append(simulate_oracle(setup.workload, setup.params))
    return results


def _baselines(setup: Setup) -> list[RunResult]:
    """The baselines and the oracle, in a worker process."""
    return _simulate_all(setup, controllers(setup)[1:], lambda _: None)


class _progress:
    """A rich progress bar on stderr over simulated time, or nothing."""

    def __init__(self, show: bool, total: float) -> None:
        self.show = show
        self.total = total
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if not self.show:
            return lambda _: None
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("simulating"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.__enter__()
        self._task = self._bar.add_task("sim", total=self.total)
        return lambda s: self._bar.advance(self._task, s)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
