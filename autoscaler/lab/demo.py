"""``autoscaler lab demo``: a lab, the sidecar against it, a burst of sessions, then down.

What a new user sees: the lab coming up, the sidecar reading every backend, sessions
arriving, the autoscaler acting with its reasons, and everything removed at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any

import requests

from autoscaler.lab import lab as lab_mod
from autoscaler.lab import teardown
from autoscaler.lab.errors import LabError
from autoscaler.lab.load import LoadDriver, burst_plan
from autoscaler.lab.ports import free_port
from autoscaler.rules.schema import SwarmSource
from autoscaler.sources.swarm import SwarmReader
from autoscaler.sources.swarm_signals import swarm_signal

DEMO_SERVICE = "demo-api"
DEMO_POOL = "workers"
POOL_MIN = 1
"""The demo pool's minimum (demo_rules/demo.yml): the demo ends once the pool is back."""


def demo_rules() -> Path:
    """The demo's policies, shipped inside the package."""
    return Path(str(resources.files("autoscaler.lab") / "demo_rules"))


def lab_env(root: Path) -> dict[str, str]:
    """The sidecar's settings for this lab, from DIR/lab.env (KEY=VALUE lines)."""
    env: dict[str, str] = {}
    for line in (root / "lab.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            env[key.strip()] = value.strip().strip("'\"")
    return env


def run_demo(
    root: Path,
    workers: int = POOL_MIN,
    sessions: int = 10,
    hold_s: float = 90.0,
    ramp_s: float = 20.0,
    settle_s: float = 180.0,
    rules: Path | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the whole demo; everything it starts is stopped, also on failure or Ctrl-C.

    The lab's first ``workers`` workers form the pool; the demo waits, at most
    ``settle_s`` after the load, for the pool to shrink back to its minimum.
    """
    port = free_port()
    out = root.with_name(root.name + "-output")  # kept after the lab's folder is removed
    out.mkdir(parents=True, exist_ok=True)
    demo = DemoSettings(workers, sessions, hold_s, ramp_s, settle_s, rules)
    with _one_demo_at_a_time(root, out, say):
        return _run(root, out, port, demo, say)


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs: the pool's workers, the burst of sessions and the wait after it."""

    workers: int
    sessions: int
    hold_s: float
    ramp_s: float
    settle_s: float
    rules: Path | None


LAB_MARK = "lab-dir"
"""In DIR-output while the demo's lab exists: a lab there afterwards is the demo's own."""


@contextlib.contextmanager
def _one_demo_at_a_time(root: Path, out: Path, say: Callable[[str], None]) -> Iterator[None]:
    """Refuse a second demo on the same folder; remove what a killed demo left there.

    The lock is an flock, which the kernel drops when its holder dies however it dies
    (SIGKILL, a crash): holding it proves no demo runs, so a lab the mark says a demo
    started is a leftover, removed here instead of making the user run `lab down`.
    """
    lock: IO[str] = (out / "demo.lock").open("a+")
    mark = out / LAB_MARK
    held = False
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise LabError(
                f"another demo (pid {holder}) is running in {root}: wait for it, or stop it "
                "with Ctrl-C in its terminal; another --dir (LAB_DIR for scripts/demo) runs "
                "one beside it"
            ) from None
        held = True
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        if root.exists() and mark.exists() and mark.read_text() == str(root):
            say(f"== removing what an earlier demo left in {root}")
            lab_mod.down(root)
        elif lab_mod.holds_lab(root):  # a lab `lab up` started there is not the demo's
            raise LabError(
                f"a lab already runs in {root}: run `autoscaler lab down --dir {root}` first"
            )
        mark.write_text(str(root))
        yield
    finally:
        if held and not root.exists():  # the lab is gone: nothing for the next run to remove
            mark.unlink(missing_ok=True)
        lock.close()


def _run(
    root: Path, out: Path, port: int, demo: DemoSettings, say: Callable[[str], None]
) -> dict[str, Any]:
    ledger = out / "decisions.jsonl"
    ledger.unlink(missing_ok=True)
    opts = lab_mod.LabOptions(
        workers=demo.workers, sidecar_target=f"127.0.0.1:{port}", pool=DEMO_POOL
    )
    say(f"== starting a lab with {demo.workers} workers in {root}")
    running = lab_mod.up(root, opts, say=lambda m: say(f"   {m}"))
    sidecar: subprocess.Popen[bytes] | None = None
    interrupted = False
    try:
        cluster = running.cluster
        assert cluster is not None, "lab.up returns a lab with its swarm"
        client = cluster.client()
        from docker.types import ServiceMode

        client.services.create(
            "local/busybox:1",
            command=["sleep", "86400"],
            name=DEMO_SERVICE,
            mode=ServiceMode("replicated", 1),
        )
        env = {
            **os.environ,
            **lab_env(root),
            "AUTOSCALER_RULES": str(demo.rules or demo_rules()),
            "AUTOSCALER_INTERVAL": "5s",
            "AUTOSCALER_LISTEN": f"127.0.0.1:{port}",
            "AUTOSCALER_LEDGER": str(ledger),
        }
        say(f"== starting the sidecar (rules {env['AUTOSCALER_RULES']}, http://127.0.0.1:{port})")
        log = (out / "sidecar.log").open("wb")
        sidecar = subprocess.Popen(
            # --pdeathsig: SIGTERM once the demo is gone, even killed or crashed; the lab's
            # files do not name the sidecar, so nothing else (`lab down`, the next demo)
            # would ever stop it, and it would keep writing into DIR-output
            ["setpriv", "--pdeathsig", "TERM", "--", sys.executable, "-m", "autoscaler", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _wait_http(f"http://127.0.0.1:{port}/healthz", 30)
        say(
            f"== {demo.sessions} users open the 'euler' app over {demo.ramp_s:.0f}s, "
            f"each for {demo.hold_s:.0f}s"
        )
        driver = LoadDriver(running.endpoint("shinyproxy"), "euler", user_prefix="demo")
        result: dict[str, Any] = {}
        load = threading.Thread(
            target=lambda: result.update(
                report=driver.run(burst_plan(demo.sessions, demo.hold_s, demo.ramp_s))
            ),
            daemon=True,
        )
        t0 = time.monotonic()
        load.start()
        reader = SwarmReader(client)
        actions = _ActionFeed(ledger)
        settled_by = None
        while True:
            line, pool_nodes = _status(time.monotonic() - t0, reader)
            say(line)
            for action in actions.new():
                say(f"        {action}")
            if not load.is_alive():
                settled_by = settled_by or time.monotonic() + demo.settle_s
                if pool_nodes == POOL_MIN or time.monotonic() > settled_by:
                    break
            time.sleep(5)
        load.join()
        summary: dict[str, Any] = result["report"].summary()
        summary["lab_suffix"] = cluster.suffix
        say(
            f"== load done: {summary['started']} started, {summary['failed']} failed, "
            f"{summary['killed']} killed, {summary['completed']} completed"
        )
        say(
            f"== every decision with its reasons: {ledger}; the sidecar's log: "
            f"{out / 'sidecar.log'}"
        )
        return summary
    except KeyboardInterrupt:  # Ctrl-C, and SIGTERM/SIGHUP (see cli.cmd_demo)
        interrupted = True
        raise
    finally:
        # a second Ctrl-C, or output that is gone (`| head`, a closed terminal), must not
        # end this block before the lab is removed
        speak = lab_mod.quiet_on_closed_output(say)
        with lab_mod.signals_held():
            if sidecar is not None:
                teardown.stop_child(sidecar)
            speak("== interrupted: stopping the lab" if interrupted else "== stopping the lab")
            running.down()
        speak("== done: nothing is left running")


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


class _ActionFeed:
    """New actions in the sidecar's ledger since the last look, as one line each."""

    def __init__(self, ledger: Path) -> None:
        self.ledger, self.offset = ledger, 0

    def new(self) -> list[str]:
        if not self.ledger.exists():
            return []
        with self.ledger.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        lines = []
        for raw in complete.splitlines():
            entry = json.loads(raw)
            for a in entry.get("actions", []):
                done = "done" if a.get("ok") else f"FAILED: {a.get('result')}"
                what = (
                    f"scale {a['service']} {a['current']} -> {a['desired']}"
                    if a.get("kind") == "scale_service"
                    else str(a.get("kind"))
                )
                lines.append(f"-> {what}: {a.get('reason', '')} [{done}]")
        return lines


def _status(t: float, reader: SwarmReader) -> tuple[str, int | None]:
    """One line about the cluster, and how many nodes the pool has (None: unknown)."""
    try:
        state = reader.read()
    except Exception as e:  # a status line must never end the demo
        return f"t={t:5.0f}s swarm unreadable: {e}", None

    def count(**kw: Any) -> int:
        return int(swarm_signal(state, SwarmSource.model_validate(kw)))

    svc = state.service(DEMO_SERVICE)
    workers = [n for n in state.nodes if n.labels.get("autoscaler.pool") == DEMO_POOL]
    by_avail = {
        a: sum(1 for n in workers if n.availability == a and n.state == "ready")
        for a in ("active", "pause", "drain")
    }
    line = (
        f"t={t:5.0f}s pool nodes {by_avail['active']} active/{by_avail['pause']} paused"
        f"/{by_avail['drain']} drained | sessions live {count(metric='live_sessions')} "
        f"pending {count(metric='pending_sessions')} | {DEMO_SERVICE} "
        f"{svc.replicas if svc else '-'} replicas"
    )
    return line, len(workers)
