"""The ``autoscaler`` command: run, check, plan (and the lab's commands)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoscaler import __version__

if TYPE_CHECKING:
    from autoscaler.loop import PassResult

log = logging.getLogger("autoscaler")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}  # as Python's logging takes them

FLAG_SETTINGS = (
    "rules",
    "interval",
    "listen",
    "docker_host",
    "prometheus_url",
    "actuator",
    "influxdb_url",
    "ledger",
)
"""Settings a command-line flag of the same name overrides."""


def _setting_name(args: argparse.Namespace, field: str) -> str:
    """What a problem with ``field`` should name: its flag when given, else its variable."""
    from autoscaler.settings import env_name

    if getattr(args, field, None) is not None:
        return "--" + field.replace("_", "-")
    return env_name(field)


def _settings(args: argparse.Namespace) -> Any:
    from autoscaler.settings import load_settings

    overrides = {k: getattr(args, k) for k in FLAG_SETTINGS if getattr(args, k, None) is not None}
    if getattr(args, "dry_run", False):
        overrides["dry_run"] = True
    return load_settings(overrides, {k: _setting_name(args, k) for k in overrides})


def _add_backend_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", type=Path, help="policy folder or file (default: rules/)")
    p.add_argument("--docker-host", help="Docker API of a manager (default: DOCKER_HOST)")
    p.add_argument("--prometheus-url", help="Prometheus base URL")
    p.add_argument("--actuator", help="ShinyProxy actuator URLs or tasks.<service>:9090")
    p.add_argument("--influxdb-url", help="InfluxDB 1.x base URL")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoscaler",
        description="Autoscaler and monitoring sidecar for ShinyProxy on Docker Swarm.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        help=f"{', '.join(LOG_LEVELS)} (default: AUTOSCALER_LOG_LEVEL or INFO)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the sidecar: scheduled and event-driven passes")
    _add_backend_flags(run)
    run.add_argument("--interval", help="time between passes (15s)")
    run.add_argument("--listen", help="address of the HTTP endpoints (0.0.0.0:8080)")
    run.add_argument("--ledger", help="decision ledger file (empty: no ledger)")
    run.add_argument("--once", action="store_true", help="run one pass and exit")
    run.add_argument("--dry-run", action="store_true", help="decide and log, change nothing")

    check = sub.add_parser("check", help="validate policy files or folders")
    check.add_argument("paths", nargs="*", type=Path, help="files or folders (default: rules/)")

    plan = sub.add_parser("plan", help="print what a pass would do now, changing nothing")
    _add_backend_flags(plan)
    plan.add_argument("--json", action="store_true", help="print JSON instead of a table")
    plan.add_argument("--snapshot", type=Path, help="replay a saved snapshot instead of reading")
    plan.add_argument("--save-snapshot", type=Path, help="also write the snapshot read to FILE")

    creds = sub.add_parser(
        "aws-credentials",
        help="keep the instance role's credentials written to a file for the sidecar "
        "(a task on the host's network: stack.aws-role.yml)",
    )
    creds.add_argument("--out", type=Path, required=True, help="the file; its folder must exist")
    creds.add_argument("--every", default="5m", help="time between writes (5m)")
    creds.add_argument("--once", action="store_true", help="write once; exit 1 when that fails")
    creds.set_defaults(handler=cmd_aws_credentials)

    try:
        from autoscaler.lab.cli import add_lab_parser
    except ImportError:  # the lab is optional in a minimal install
        pass
    else:
        add_lab_parser(sub)
    try:
        from autoscaler.sim.cli import add_simulate_parser
    except ImportError:  # the simulator is optional in a minimal install
        pass
    else:
        add_simulate_parser(sub)
    from autoscaler.alerts.cli import add_alerts_parser

    add_alerts_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from autoscaler.logsetup import configure_logging

    source = "--log-level" if args.log_level else "AUTOSCALER_LOG_LEVEL"
    level = args.log_level or os.environ.get("AUTOSCALER_LOG_LEVEL") or "INFO"
    name = LOG_ALIASES.get(level.upper(), level.upper())
    if name not in LOG_LEVELS:  # logging would quietly take INFO instead
        return _error(ValueError(f"{source}: unknown level {level!r}: use {', '.join(LOG_LEVELS)}"))
    configure_logging(name)
    try:
        if args.command == "check":
            from autoscaler.rules.check import run_check

            return run_check(args.paths or [Path("rules")], sys.stdout)
        if args.command == "plan":
            return cmd_plan(args)
        if args.command == "run":
            return cmd_run(args)
        handler = getattr(args, "handler", None)
        if handler is not None:
            return int(handler(args))
    except KeyboardInterrupt:
        return 130
    except (OSError, RuntimeError, ValueError) as e:
        return _error(e)
    except Exception as e:
        if type(e).__module__.partition(".")[0] != "docker":  # a bug: keep its traceback
            raise
        return _error(e)  # e.g. a DOCKER_HOST docker refuses: its text quotes the URL
    return 2


def _error(e: BaseException) -> int:
    """Print a startup error, a line per problem; any ``user:pass@`` of a URL shows as ``***@``."""
    from autoscaler.settings import SettingsError
    from autoscaler.sources.http_errors import scrub_userinfo

    for problem in e.problems if isinstance(e, SettingsError) else [str(e)]:
        print(f"autoscaler: error: {scrub_userinfo(problem)}", file=sys.stderr)
    return 2


def cmd_plan(args: argparse.Namespace) -> int:
    from autoscaler.decide import plan as make_plan
    from autoscaler.decide.plan_types import Memory
    from autoscaler.render import print_plan_json, print_plan_table
    from autoscaler.rules.loader import load_rules
    from autoscaler.snapshot import Snapshot

    settings = _settings(args)
    loaded = load_rules(settings.rules)
    if loaded.policies is None:
        for p in loaded.problems:
            print(p, file=sys.stderr)
        return 1
    if args.snapshot:
        snapshot = Snapshot.from_json(args.snapshot.read_bytes())
    else:
        from autoscaler.providers.build import build_providers
        from autoscaler.sources.collect import collect
        from autoscaler.wiring import build_backends, docker_client

        backends = build_backends(
            settings,
            docker_client(settings, _setting_name(args, "docker_host")),
            build_providers(settings),
        )
        snapshot = collect(backends, loaded.policies.signals)
    if args.save_snapshot:
        args.save_snapshot.write_text(snapshot.to_json(), encoding="utf-8")
    result = make_plan(snapshot, loaded.policies, Memory()).model_copy(
        update={"snapshot_digest": snapshot.digest()}
    )
    if args.json:
        print_plan_json(result, snapshot, sys.stdout)
    else:
        print_plan_table(result, snapshot, sys.stdout)
    return 0


def once_exit_code(result: PassResult) -> int:
    """``run --once``: 1 when the pass failed or one of its actions failed, for scripts."""
    failed = any(not (r.ok or r.skipped or r.dry_run) for r in result.results)
    return 0 if result.ok and not failed else 1


def cmd_run(args: argparse.Namespace) -> int:
    from autoscaler.alerts.wiring import build_alerting
    from autoscaler.event_batching import EventBatching
    from autoscaler.events import DockerEventWatcher
    from autoscaler.ledger import Ledger
    from autoscaler.loop import Reconciler, Runner
    from autoscaler.metrics import SidecarMetrics
    from autoscaler.providers.build import build_providers
    from autoscaler.render import plan_dict
    from autoscaler.rules.reload import RulesStore
    from autoscaler.server import HttpServer, ServerHooks
    from autoscaler.settings import env_name, parse_listen, read_secret
    from autoscaler.wiring import build_actuator, build_backends, docker_client

    settings = _settings(args)
    client = docker_client(settings, _setting_name(args, "docker_host"))
    providers = build_providers(settings)
    rules = RulesStore(settings.rules)
    metrics = SidecarMetrics()
    ledger = (
        Ledger(settings.ledger, settings.ledger_max_bytes, settings.ledger_backups)
        if settings.ledger is not None
        else None
    )
    alerting = build_alerting(settings, metrics)
    reconciler = Reconciler(
        rules=rules,
        backends=build_backends(settings, client, providers),
        actuator=build_actuator(settings, client, rules, providers),
        metrics=metrics,
        ledger=ledger,
        dry_run=settings.dry_run,
        alerting=alerting,
    )
    if args.once:
        result = reconciler.run_pass("once")
        if result.plan is not None:
            from autoscaler.render import print_plan_table

            assert result.snapshot is not None
            print_plan_table(result.plan, result.snapshot, sys.stdout)
        for r in result.results:
            print(f"{'ok' if r.ok else 'skipped' if r.skipped else 'FAILED'}: {r.message}")
        if result.error:
            print(f"pass failed: {result.error}", file=sys.stderr)
        return once_exit_code(result)

    started_at = datetime.now(UTC)
    batching = EventBatching(
        idle=settings.event_batch_idle, max=settings.event_batch_max, gap=settings.event_min_gap
    )
    runner = Runner(reconciler, settings.interval, settings.max_backoff, batching)
    window = settings.interval * settings.healthz_intervals

    def healthy() -> tuple[bool, dict[str, Any]]:
        last = reconciler.last_success_at
        return reconciler.healthy(window, started_at), {
            "last_success": last.isoformat() if last else None,
            "consecutive_failures": runner.failures,
        }

    def last_plan() -> dict[str, Any] | None:
        last = reconciler.last_planned
        if last is None or last.plan is None:
            return None
        return plan_dict(last.plan, last.snapshot)

    hooks = ServerHooks(
        metrics=metrics,
        healthy=healthy,
        last_plan=last_plan,
        trigger=runner.trigger_now,
        webhook_token=read_secret(settings.webhook_token_file, env_name("webhook_token_file")),
        webhook_max_bytes=settings.webhook_max_bytes,
        alerts=alerting,
        api_token=read_secret(settings.api_token_file, env_name("api_token_file")),
    )
    try:
        server = HttpServer(settings.listen, hooks)
    except OSError as e:  # in use, not an address of this host, a name that does not resolve
        where = f"{_setting_name(args, 'listen')}: cannot listen on {settings.listen!r}"
        raise RuntimeError(f"{where} ({e.strerror or type(e).__name__})") from None
    watcher = DockerEventWatcher(client, runner.trigger, on_reconnect=runner.trigger_now)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    alerting.start()
    runner.start()
    watcher.start()
    log.info(
        "running: rules %s, every %s, http %s:%d%s",
        settings.rules,
        settings.interval,
        parse_listen(settings.listen)[0],
        server.port,  # the one chosen, for port 0
        " (dry run)" if settings.dry_run else "",
    )
    stop.wait()
    # The runner first: the pass in progress starts no further action from now on, while
    # the event watcher (up to 5 s) and the alerting (up to 10 s) stop.
    runner.stop()
    watcher.stop()
    alerting.stop()
    server.stop()
    if ledger is not None:
        ledger.close()
    log.info("stopped")
    return 0


def cmd_aws_credentials(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from autoscaler.durations import parse_duration
    from autoscaler.providers.role_credentials import (
        RoleCredentialsError,
        fetch_from_instance_metadata,
        keep_written,
        write_atomically,
    )

    every = parse_duration(args.every)
    if not timedelta(seconds=10) <= every <= timedelta(minutes=30):
        # IMDS offers new credentials at least 5 minutes before the old ones expire
        raise ValueError(f"--every {args.every}: give 10s to 30m")
    if not args.out.parent.is_dir():
        raise ValueError(f"--out {args.out}: folder {args.out.parent} does not exist")
    if args.once:
        try:
            write_atomically(args.out, fetch_from_instance_metadata())
        except RoleCredentialsError as e:
            print(f"autoscaler aws-credentials: {e}", file=sys.stderr)
            return 1
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    log.info("writing role credentials to %s every %s", args.out, args.every)
    keep_written(args.out, every, stop)
    return 0
