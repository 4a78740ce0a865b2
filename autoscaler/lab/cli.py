"""``autoscaler lab ...``: up, status, down, add-worker, remove-worker, load."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from autoscaler.durations import parse_duration

DEFAULT_DIR = Path("lab")


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return parse_duration(text).total_seconds()


def add_lab_parser(subparsers: Any) -> None:
    """Register ``lab`` and its subcommands on the main CLI's subparsers."""
    lab = subparsers.add_parser(
        "lab", help="a local multi-node Swarm with a ShinyProxy stand-in and its backends"
    )
    sub = lab.add_subparsers(dest="lab_command", required=True)

    def with_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--dir", type=Path, default=DEFAULT_DIR, help="the lab's folder (default: ./lab)"
        )
        return p

    p = with_dir(sub.add_parser("up", help="start a lab and print its endpoints"))
    p.add_argument("--workers", type=int, default=2, help="worker engines (default 2)")
    p.add_argument(
        "--service-wait-time",
        type=_seconds,
        default=60.0,
        help="how long a session may stay pending before its start fails (60s)",
    )
    p.add_argument(
        "--heartbeat-timeout",
        type=_seconds,
        default=-1.0,
        help="stop sessions without heartbeat for this long (default: never)",
    )
    p.add_argument(
        "--sidecar-target",
        default="127.0.0.1:8080",
        help="host:port of the sidecar's /metrics for Prometheus",
    )
    p.add_argument("--specs", type=Path, help="app specs YAML for the stand-in")
    p.add_argument("--pool", help="label the first workers autoscaler.pool=POOL")
    p.add_argument(
        "--manager-takes-sessions",
        action="store_true",
        help="keep the manager active (default: drained)",
    )
    p.add_argument("--json", action="store_true", help="print lab.json instead of text")
    p.set_defaults(handler=cmd_up)

    p = with_dir(sub.add_parser("status", help="nodes, sessions and endpoints of the lab"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)

    p = with_dir(sub.add_parser("down", help="stop everything and remove the lab's folder"))
    p.set_defaults(handler=cmd_down)

    p = with_dir(sub.add_parser("add-worker", help="boot and join one more worker"))
    p.add_argument("--name", help="hostname (default worker-N)")
    p.add_argument(
        "--boot-delay",
        type=_seconds,
        default=0.0,
        help="wait this long first, like a cloud instance booting",
    )
    p.add_argument(
        "--join-script",
        type=Path,
        help="shell script run in the new engine to join (default: docker swarm join)",
    )
    p.add_argument("--pool", help="label the node autoscaler.pool=POOL")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_add_worker)

    p = with_dir(sub.add_parser("remove-worker", help="stop a worker and remove its node"))
    p.add_argument("name")
    p.set_defaults(handler=cmd_remove_worker)

    p = with_dir(sub.add_parser("load", help="drive sessions: a burst, or a replayed trace"))
    p.add_argument("--app", default="euler", help="spec id to start (default euler)")
    p.add_argument("--sessions", type=int, help="burst: this many sessions")
    p.add_argument("--duration", type=_seconds, help="burst: each held this long (e.g. 2m)")
    p.add_argument("--ramp", type=_seconds, default=0.0, help="burst: spread starts over this")
    p.add_argument("--trace", type=Path, help="replay: a <time>,<requests> per-minute CSV")
    p.add_argument("--speed", type=float, default=60.0, help="replay: times real time (60)")
    p.add_argument(
        "--peak-sessions",
        type=int,
        default=20,
        help="replay: concurrency at the trace's peak rate (20)",
    )
    p.add_argument("--seed", type=int, default=1, help="replay: random seed (1)")
    p.add_argument(
        "--start",
        type=datetime.fromisoformat,
        help="replay: trace time to start at (default: the first row)",
    )
    p.add_argument(
        "--window",
        type=parse_duration,
        default=parse_duration("24h"),
        help="replay: how much trace time to replay (24h)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_load)

    p = with_dir(
        sub.add_parser(
            "demo", help="a lab, the sidecar against it and a burst of sessions; then down"
        )
    )
    p.add_argument("--workers", type=int, default=1, help="pool workers at start (1)")
    p.add_argument("--sessions", type=int, default=10, help="users in the burst (10)")
    p.add_argument("--duration", type=_seconds, default=90.0, help="each session (90s)")
    p.add_argument("--rules", type=Path, help="policies (default: the demo's own)")
    p.set_defaults(handler=cmd_demo)


def _print_endpoints(state: Any) -> None:
    print(f"lab up in {state.up_seconds}s at {state.dir}")
    for name, url in state.endpoints.items():
        print(f"  {name:<16} {url}")
    print(f"  settings for the sidecar: {Path(state.dir) / 'lab.env'}")
    print(f"  stop it with: autoscaler lab down --dir {state.dir}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """SIGTERM (`kill`) and SIGHUP (the terminal closing) stop `up` and the demo as Ctrl-C
    does, removing what they started; by default either would end Python on the spot and
    leave engines, namespaces and the folder behind."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)


def cmd_up(args: argparse.Namespace) -> int:
    from autoscaler.lab.lab import LabOptions, up

    opts = LabOptions(
        workers=args.workers,
        service_wait_time=args.service_wait_time,
        heartbeat_timeout=args.heartbeat_timeout,
        sidecar_target=args.sidecar_target,
        specs=args.specs,
        pool=args.pool,
        manager_takes_sessions=args.manager_takes_sessions,
    )
    say = (lambda _m: None) if args.json else (lambda m: print(m, file=sys.stderr))
    _stop_on_signals()  # must still remove what was started
    lab = up(args.dir, opts, say)
    if args.json:
        print(json.dumps(lab.state.__dict__, indent=1))
    else:
        _print_endpoints(lab.state)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from autoscaler.lab.lab import status

    s = status(args.dir)
    if args.json:
        print(json.dumps(s, indent=1))
        return 0
    print(f"lab at {s['dir']}: {s['status']}")
    print(
        f"{'NODE':<12} {'HOSTNAME':<12} {'ROLE':<8} {'AVAIL':<7} {'STATE':<8} {'POOL':<10} SESSIONS"
    )
    for n in s["nodes"]:
        print(
            f"{n['id'][:12]:<12} {n['hostname']:<12} {n['role']:<8} {n['availability']:<7} "
            f"{n['state']:<8} {n['pool'] or '-':<10} {n['sessions']}"
        )
    if "swarm_error" in s:
        print(s["swarm_error"])
    sess = s["sessions"]
    print(f"sessions: {sess.get('live', '?')} live, {sess.get('pending', '?')} pending")
    counters = sess.get("counters")
    if counters is None:
        print("counters: the stand-in does not answer")
    else:
        print("counters: " + ", ".join(f"{k} {v:g}" for k, v in sorted(counters.items())))
    for name, e in s["endpoints"].items():
        print(f"  {'up  ' if e['up'] else 'DOWN'} {name:<16} {e['url']}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from autoscaler.lab.lab import down

    for line in down(args.dir) or ["nothing to do: no lab there"]:
        print(line)
    return 0


def cmd_add_worker(args: argparse.Namespace) -> int:
    from autoscaler.lab.lab import JOIN_SCRIPT, POOL_LABEL, boot_worker

    script = args.join_script.read_text() if args.join_script else JOIN_SCRIPT
    labels = {POOL_LABEL: args.pool} if args.pool else None
    w = boot_worker(args.dir, args.name, args.boot_delay, script, labels)
    if args.json:
        print(json.dumps(w.__dict__))
    else:
        print(f"{w.name} joined as node {w.node_id} ({w.ip}) in {w.boot_seconds}s")
    return 0


def cmd_remove_worker(args: argparse.Namespace) -> int:
    from autoscaler.lab.lab import retire_worker

    retire_worker(args.dir, args.name)
    print(f"{args.name} removed")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from autoscaler.lab.demo import run_demo

    _stop_on_signals()
    summary = run_demo(
        args.dir.absolute(),
        workers=args.workers,
        sessions=args.sessions,
        hold_s=args.duration,
        rules=args.rules,
    )
    return 0 if summary["killed"] == 0 else 1


def cmd_load(args: argparse.Namespace) -> int:
    from autoscaler.lab.lab import LabState
    from autoscaler.lab.load import LoadDriver, burst_plan
    from autoscaler.lab.trace import peak_concurrency, plan_sessions, read_trace

    state = LabState.load(args.dir.absolute())
    if args.trace is not None:
        if args.sessions is not None:
            print("lab load: use either --sessions or --trace", file=sys.stderr)
            return 2
        plan = plan_sessions(
            read_trace(args.trace), args.peak_sessions, args.seed, args.start, args.window
        )
        span = max((s.start_s + s.length_s for s in plan), default=0.0) / args.speed
        print(
            f"replaying {len(plan)} sessions (peak {peak_concurrency(plan)} at once) "
            f"over about {span / 60:.1f} min, seed {args.seed}",
            file=sys.stderr,
        )
        speed = args.speed
    else:
        if args.sessions is None or args.duration is None:
            print("lab load: give --sessions N --duration D, or --trace FILE", file=sys.stderr)
            return 2
        plan = burst_plan(args.sessions, args.duration, args.ramp)
        speed = 1.0
    driver = LoadDriver(state.endpoints["shinyproxy"], args.app)
    signal.signal(signal.SIGINT, lambda *_: driver.cancel())
    signal.signal(signal.SIGTERM, lambda *_: driver.cancel())
    summary = driver.run(plan, speed).summary()
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        w = summary["wait_for_seat_s"]
        print(
            f"started {summary['started']}, failed {summary['failed']}, "
            f"killed {summary['killed']}, completed {summary['completed']} "
            f"of {summary['planned']} in {summary['elapsed_s']}s"
        )
        print(f"wait for a seat: p50 {w['p50']}s, p95 {w['p95']}s, max {w['max']}s")
        for reason, n in summary["failure_reasons"].items():
            print(f"  failed {n}x: {reason}")
    return 0
