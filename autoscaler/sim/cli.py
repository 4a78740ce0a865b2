"""``autoscaler simulate``: replay demand through the production planner and the baselines."""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoscaler.durations import parse_duration
from autoscaler.sim.baselines import NAMES as BASELINES

if TYPE_CHECKING:
    from autoscaler.sim.setup import Setup


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return parse_duration(text).total_seconds()


_LONGEST = timedelta.max.total_seconds()
"""Durations become timestamps (``--since``, the planner's snapshots): none may exceed this."""


def _number(
    parse: Callable[[str], float],
    rule: str,
    least: float = 0.0,
    most: float = math.inf,
    zero: bool = False,
    scale: float = 1.0,
) -> Callable[[str], float]:
    """An argparse type: ``parse(text) * scale``, where ``parse(text)`` must be 0 (if
    ``zero``) or finite, above 0 and within [least, most]. nan, inf or a negative would make
    a run that hangs or reports nonsense; a duration longer than a timedelta overflows, and
    one below 1ms spreads a lognormal's draws beyond what a float holds."""

    def check(text: str) -> float:
        try:
            value = parse(text)
        except (ValueError, OverflowError):  # OverflowError: more days than a timedelta holds
            value = math.nan
        allowed = (zero and value == 0) or (value > 0 and least <= value <= most)
        if not (math.isfinite(value) and allowed):
            raise argparse.ArgumentTypeError(f"must be {rule} (got {text})")
        return value * scale

    return check


def _whole(least: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``least``."""

    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(
                f"must be a whole number, {least} or more (got {text})"
            )
        return value

    return check


_DURATION = "a duration from 1ms to 999999999d, such as 30s or 5m"
_NUMBER = _number(float, "a finite number above 0")
_PRICE = _number(float, "a finite number, 0 or more", zero=True)
_SECONDS = _number(_seconds, _DURATION, least=0.001, most=_LONGEST)
_SECONDS_0 = _number(_seconds, "0 or " + _DURATION, least=0.001, most=_LONGEST, zero=True)
_MINUTES = _number(_seconds, _DURATION, least=0.001, most=_LONGEST, scale=1 / 60)
_WARM_SPREAD = 1.5
"""A warm ready time's 90th percentile over its median when only the median is given (the
default's, 60 s over 40 s)."""


def _ready_times(text: str) -> tuple[float, float]:
    """An argparse type: ``MEDIAN[,P90]``, two durations, the 90th percentile not below the
    median (without it: 1.5 x the median)."""
    refused = argparse.ArgumentTypeError(
        f"must be MEDIAN[,P90], each {_DURATION}, the 90th percentile not below the median "
        f"(got {text})"
    )
    parts = text.split(",")
    if len(parts) > 2:
        raise refused
    try:
        median = _SECONDS(parts[0])
        p90 = _SECONDS(parts[1]) if len(parts) == 2 else median * _WARM_SPREAD
    except argparse.ArgumentTypeError:
        raise refused from None
    if p90 < median:
        raise refused
    return median, p90


def _time(text: str) -> datetime:
    from autoscaler.sim.trace import parse_time

    return parse_time(text)


_BACK = _number(
    lambda text: parse_duration(text).total_seconds(),
    "a timestamp or a duration from 1ms to 999999999d, such as 7d",
    least=0.001,
    most=_LONGEST,
)


def _since(text: str) -> str:
    """A timestamp, or a duration back from now that a timedelta holds (setup.since
    takes it from now)."""
    try:
        _time(text)
    except ValueError:
        _BACK(text)
    return text


def add_simulate_parser(subparsers: Any) -> None:
    """Register ``simulate`` on the main CLI's subparsers."""
    p = subparsers.add_parser(
        "simulate",
        help="backtest a pool policy on a trace or recorded sessions, beside the baselines",
        description="Replay session demand through the production planner on a simulated "
        "Swarm pool, and through the baselines on the same arrivals (docs/simulate.md).",
    )
    src = p.add_argument_group("demand (one of)")
    one = src.add_mutually_exclusive_group(required=True)
    one.add_argument(
        "--trace", type=Path, metavar="FILE", help="CSV of <timestamp>,<count per minute>"
    )
    one.add_argument(
        "--sessions", type=Path, metavar="FILE", help="CSV of <start>,<end> per session"
    )
    one.add_argument("--influx", metavar="URL", help="InfluxDB 1.x with ShinyProxy usage events")
    src.add_argument(
        "--db",
        default="shinyproxy_usagestats",
        metavar="NAME",
        help="InfluxDB database (default: shinyproxy_usagestats)",
    )
    src.add_argument(
        "--since",
        type=_since,
        help="with --influx: a time or a duration back from now (7d); default 7d",
    )
    src.add_argument(
        "--lookback",
        type=_SECONDS_0,
        metavar="DURATION",
        help="with --influx: events read before the window, so that sessions running when "
        "it opens are carried in (1d; 0 reads none)",
    )
    src.add_argument("--from", dest="start", type=_time, help="window start (a timestamp)")
    src.add_argument("--to", dest="end", type=_time, help="window end (exclusive)")
    arr = p.add_argument_group("arrivals from a trace")
    arr.add_argument(
        "--peak-sessions", type=_NUMBER, default=200.0, metavar="N", help="peak concurrency (200)"
    )
    arr.add_argument(
        "--session-median", type=_MINUTES, default=12.0, metavar="D", help="median length (12m)"
    )
    arr.add_argument(
        "--session-p90", type=_MINUTES, default=50.0, metavar="D", help="90th percentile (50m)"
    )
    arr.add_argument(
        "--session-cap", type=_MINUTES, default=480.0, metavar="D", help="longest session (8h)"
    )
    arr.add_argument(
        "--seed", type=_whole(0), default=1, help="random seed (arrivals, ready times; default: 1)"
    )
    pol = p.add_argument_group("the pool")
    pol.add_argument("--rules", type=Path, default=Path("rules"), help="policy folder (rules/)")
    pol.add_argument("--pool", help="pool under test (default: the only pool in the rules)")
    pol.add_argument("--seats-per-node", type=_whole(1), help="override the pool's seats_per_node")
    pol.add_argument(
        "--max-nodes", type=_whole(1), help="override the pool's max (and its cost cap)"
    )
    pol.add_argument("--ready-time", type=_SECONDS, default=150.0, help="median (150s)")
    pol.add_argument("--ready-time-p90", type=_SECONDS, help="90th percentile (4/3 x median)")
    pol.add_argument("--service-wait", type=_SECONDS_0, default=60.0, help="start timeout (60s)")
    pol.add_argument("--price", type=_PRICE, help="per node-hour (default: the pool's price, 1)")
    pol.add_argument(
        "--warm-pool",
        type=_whole(0),
        metavar="N",
        help="simulate an EC2 warm pool of N stopped machines (ec2.warm_pool); a pool of "
        "another provider is run as an ec2 pool (default: none)",
    )
    pol.add_argument(
        "--warm-ready-time",
        type=_ready_times,
        metavar="MEDIAN[,P90]",
        help="with --warm-pool: start-to-Ready time of a stopped warm machine (40s,60s; "
        "P90 1.5 x MEDIAN when left out)",
    )
    pol.add_argument(
        "--warm-price",
        type=_PRICE,
        metavar="PER_HOUR",
        help="with --warm-pool: per hour of a stopped warm machine, its disk (0.008)",
    )
    pol.add_argument(
        "--reopen-after",
        type=_SECONDS_0,
        metavar="DURATION",
        help="users whose session a drain killed open the app again this long after, for "
        "what was left of it (default: they do not come back)",
    )
    run = p.add_argument_group("the run")
    run.add_argument("--tick", type=_SECONDS, default=15.0, help="time between passes (15s)")
    run.add_argument(
        "--event-passes",
        type=_SECONDS,
        nargs="?",
        const=1.0,
        metavar="GAP",
        help="also a pass of the policy at every arrival, session end, failed start and join, "
        "timed as the sidecar's passes on Docker events: none sooner than GAP after the "
        "last pass (1s, as AUTOSCALER_EVENT_MIN_GAP)",
    )
    run.add_argument("--warmup", type=_SECONDS_0, default=3600.0, help="not counted (1h)")
    run.add_argument(
        "--baselines",
        default=",".join(BASELINES),
        help=f"comma list of {', '.join(BASELINES)}, or none",
    )
    run.add_argument("--out", type=Path, default=Path("simulation"), help="output folder")
    run.add_argument("--no-plot", action="store_true", help="skip timeline.png")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--jobs",
        type=_whole(1),
        default=None,
        help="processes: 2 runs the baselines beside the policy (default: 2 when there "
        "are two cores and the run spans a day or more, else 1)",
    )
    p.set_defaults(handler=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    from autoscaler.sim.report import table, write
    from autoscaler.sim.setup import SetupError, prepare, run_all
    from autoscaler.sim.trace import TraceError

    try:
        setup = prepare(args)
    except (TraceError, SetupError) as e:
        print(f"autoscaler simulate: {e}", file=sys.stderr)
        return 1
    results = run_all(setup, show_progress=not args.no_progress, jobs=_jobs(args.jobs, setup))
    given = _without_secrets(sys.argv[1:], args.influx)
    command = (
        shlex.join(["autoscaler", *given])
        if "simulate" in given
        else "autoscaler simulate (parameters below)"
    )
    written = write(args.out, setup.params_json, results, command, plot=not args.no_plot)
    sys.stdout.write(table(results))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _without_secrets(argv: list[str], influx: str | None) -> list[str]:
    """The command line as report.md records it: the InfluxDB URL (where credentials can
    only be given as ``user:password@``) as the parameters show it, wherever it appears
    (``--influx URL``, ``--influx=URL``, an abbreviation of the option)."""
    if not influx:
        return argv
    from autoscaler.sources.http_errors import redact_url

    return [a.replace(influx, redact_url(influx)) for a in argv]


def _jobs(asked: int | None, setup: Setup) -> int:
    """A second process pays for its start only on runs of a day or more."""
    if asked is not None:
        return max(1, asked)
    return 2 if (os.cpu_count() or 1) >= 2 and setup.workload.seconds >= 86400 else 1
