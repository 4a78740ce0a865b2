"""``autoscaler alerts``: test a routing tree offline; list and silence on a running sidecar."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import requests

from autoscaler.durations import parse_duration
from autoscaler.settings import read_secret
from autoscaler.sources.http_errors import hide_userinfo, require_latin1

DEFAULT_URL = "http://127.0.0.1:8080"


def add_alerts_parser(sub: Any) -> None:
    alerts = sub.add_parser("alerts", help="alert routing, active alerts and silences")
    cmds = alerts.add_subparsers(dest="alerts_command", required=True)

    test = cmds.add_parser(
        "test-route",
        help="print the receivers an alert with these labels goes to (as amtool does)",
    )
    test.add_argument(
        "--config",
        type=Path,
        required=True,
        help="alertmanager.yml-style file, or a rules folder, with route and receivers",
    )
    test.add_argument("labels", nargs="*", help="label=value ...")
    test.set_defaults(handler=cmd_test_route)

    def remote(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--url",
            default=os.environ.get("AUTOSCALER_URL", DEFAULT_URL),
            help=f"the sidecar's HTTP address (default AUTOSCALER_URL or {DEFAULT_URL})",
        )
        p.add_argument(
            "--token-file", type=Path, help="bearer token file (AUTOSCALER_API_TOKEN_FILE)"
        )

    lst = cmds.add_parser("list", help="alerts pending, firing and recently resolved")
    remote(lst)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=cmd_list)

    sil = cmds.add_parser("silence", help="silence alerts that match every matcher")
    remote(sil)
    sil.add_argument("matchers", nargs="+", help='name=value, name=~"re", name!=value ...')
    sil.add_argument("--author", required=True)
    sil.add_argument("--comment", required=True)
    sil.add_argument("--duration", default="1h", help="how long (default 1h)")
    sil.set_defaults(handler=cmd_silence)

    uns = cmds.add_parser("unsilence", help="expire a silence now")
    remote(uns)
    uns.add_argument("id")
    uns.set_defaults(handler=cmd_unsilence)

    sils = cmds.add_parser("silences", help="list silences")
    remote(sils)
    sils.set_defaults(handler=cmd_silences)


def cmd_test_route(args: argparse.Namespace) -> int:
    from autoscaler.alerts.config import RoutingConfig, load_routing_file
    from autoscaler.alerts.matchers import parse_matcher
    from autoscaler.alerts.routing import Route, receivers_for

    if args.config.is_dir():  # a rules folder: its route, as the sidecar reads it
        from autoscaler.rules.loader import load_rules

        loaded = load_rules(args.config)
        if loaded.policies is None:
            for problem in loaded.problems:
                print(problem, file=sys.stderr)
            return 1
        if loaded.policies.route is None:
            print(f"autoscaler: error: {args.config}: no rules file has a 'route'", file=sys.stderr)
            return 1
        policies = loaded.policies
        cfg = RoutingConfig(
            route=policies.route,
            receivers=policies.receivers,
            inhibit_rules=policies.inhibit_rules,
            time_intervals=policies.time_intervals,
        )
    else:
        try:
            cfg = load_routing_file(args.config)
        except Exception as e:  # pydantic and YAML errors: one clear line
            print(f"autoscaler: error: {args.config}: {_one_line(e)}", file=sys.stderr)
            return 1
    labels: dict[str, str] = {}
    for text in args.labels:
        m = parse_matcher(text)
        if m.op != "=":
            print(f"autoscaler: error: {text!r}: labels are name=value", file=sys.stderr)
            return 1
        labels[m.name] = m.value
    print(",".join(receivers_for(Route.build(cfg.route), labels)))
    return 0


def _one_line(e: Exception) -> str:
    """The error without the values it is about: pydantic's text quotes each input and
    YAML's a snippet of the line, either of which may be a webhook URL or a password."""
    import yaml
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        mark = e.problem_mark
        return f"YAML: {e.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(e).split())


def _headers(args: argparse.Namespace) -> dict[str, str]:
    setting = "--token-file" if args.token_file else "AUTOSCALER_API_TOKEN_FILE"
    path = args.token_file or os.environ.get("AUTOSCALER_API_TOKEN_FILE")
    if not path:
        return {}
    token = read_secret(Path(path), setting)  # an empty file is an error, never "Bearer "
    assert token is not None
    require_latin1(f"{setting}: the token", token)
    return {"Authorization": f"Bearer {token}"}


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    url = args.url.rstrip("/") + path
    try:
        resp = requests.request(method, url, json=body, headers=_headers(args), timeout=10)
    except requests.RequestException as e:
        raise RuntimeError(
            f"cannot reach the sidecar at {hide_userinfo(args.url)}: {type(e).__name__}"
        ) from None
    try:
        data = resp.json()
    except ValueError:
        data = None
    if resp.status_code >= 300:
        why = data.get("error") if isinstance(data, dict) else resp.reason
        raise RuntimeError(f"{method} {path}: HTTP {resp.status_code}: {why}")
    return data


def cmd_list(args: argparse.Namespace) -> int:
    data = _call(args, "GET", "/api/alerts")
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    rows = data.get("alerts", [])
    if not rows:
        print("no alerts")
    for a in rows:
        labels = ",".join(f"{k}={v}" for k, v in sorted(a["labels"].items()) if k != "alertname")
        flags = " (silenced)" if a.get("silenced") else ""
        flags += " (inhibited)" if a.get("inhibited") else ""
        print(
            f"{a['state']:<9} {a['labels'].get('alertname', '?')} {{{labels}}} "
            f"since {a.get('active_at') or '-'}{flags}"
        )
    return 0


def cmd_silence(args: argparse.Namespace) -> int:
    from autoscaler.alerts.matchers import parse_matchers

    for m in args.matchers:
        parse_matchers(m)  # a typo is reported here, before anything is sent
    duration = parse_duration(args.duration)
    body = {
        "matchers": args.matchers,
        "duration_seconds": duration.total_seconds(),
        "created_by": args.author,
        "comment": args.comment,
    }
    data = _call(args, "POST", "/api/silences", body)
    print(data["id"])
    return 0


def cmd_unsilence(args: argparse.Namespace) -> int:
    _call(args, "DELETE", f"/api/silences/{args.id}")
    print(f"expired {args.id}")
    return 0


def cmd_silences(args: argparse.Namespace) -> int:
    data = _call(args, "GET", "/api/silences")
    for s in data.get("silences", []):
        print(
            f"{s['id']} {s['state']:<8} until {s['ends_at']} by {s['created_by']}: "
            f"{' '.join(s['matchers'])} ({s['comment']})"
        )
    return 0
