"""`autoscaler lab demo` stopped the ways a user stops it: nothing may be left, and the next
demo must run without a manual `lab down`.

Each test runs the real command in a subprocess and interrupts it as a user would: the
reader of its output goes away (`scripts/demo | head`), the terminal closes (a real pty
hung up: SIGHUP), Ctrl-C pressed again and again while it tears down, the process killed,
a second demo started beside a running one. Everything a test starts is stopped by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.lab import lab as lab_mod
from autoscaler.lab import teardown
from autoscaler.lab.engines import SwarmCluster
from tests.fixtures_swarm import lab_folder, need_swarm_lab
from tests.test_lab_lifecycle import lab_root, leftovers

pytestmark = [pytest.mark.real, pytest.mark.slow]

DEMO = [sys.executable, "-u", "-m", "autoscaler", "lab", "demo"]
SHORT = ["--sessions", "2", "--duration", "20s"]
"""Enough for the lab, the sidecar and live sessions; interrupted long before the end."""


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    """A short folder (engine sockets live under it); whatever a test left is removed."""
    with lab_root("li-", "d", parent_dir="/tmp") as root:
        yield root


@contextlib.contextmanager
def started(args: list[str], **kw: object) -> Iterator[subprocess.Popen[str]]:
    """A demo process; killed by its pid if the test ends while it still runs."""
    proc = subprocess.Popen(args, text=True, **kw)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def read_until(proc: subprocess.Popen[str], text: str, timeout: float = 90) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the demo ended before {text!r}: {lines}")
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} within {timeout}s: {lines}")


def suffix_of(root: Path) -> str:
    return str(json.loads((root / "swarm" / "engines.json").read_text())["suffix"])


def test_output_closed_by_its_reader_still_removes_the_lab(demo_dir: Path) -> None:
    # `scripts/demo | head`: once head exits, every print fails with BrokenPipeError
    with started([*DEMO, "--dir", str(demo_dir), *SHORT], stdout=subprocess.PIPE) as proc:
        read_until(proc, "pool nodes")
        suffix = suffix_of(demo_dir)
        assert proc.stdout is not None
        proc.stdout.close()
        proc.wait(timeout=90)
    assert leftovers(demo_dir, suffix) == []


def _spawn_on_a_terminal(args: list[str]) -> tuple[int, int]:
    """(pid, master fd) of ``args`` run with a new pty as its controlling terminal."""
    pid, master = pty.fork()
    if pid == 0:  # the child: only exec (or exit) after a fork
        try:
            os.execv(args[0], args)
        finally:
            os._exit(127)
    return pid, master


def _read_pty_until(master: int, text: str, timeout: float = 90) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen and time.monotonic() < deadline:
        if select.select([master], [], [], 1)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the demo ended and closed the terminal's other side
                break
            seen += chunk
    assert text.encode() in seen, seen.decode(errors="replace")
    return seen.decode(errors="replace")


def _wait_pid(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.1)
    return None


def test_terminal_closing_removes_the_lab(demo_dir: Path) -> None:
    pid, master = _spawn_on_a_terminal([*DEMO, "--dir", str(demo_dir), *SHORT])
    status: int | None = None
    try:
        _read_pty_until(master, "pool nodes")
        suffix = suffix_of(demo_dir)
        os.close(master)  # the terminal window closes: the kernel sends SIGHUP
        master = -1
        status = _wait_pid(pid, 90)
        assert status is not None, "the demo did not end after its terminal closed"
    finally:
        if master >= 0:
            os.close(master)
        if status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert leftovers(demo_dir, suffix) == []


def test_ctrl_c_pressed_again_during_teardown_still_removes_everything(demo_dir: Path) -> None:
    with started(
        [*DEMO, "--dir", str(demo_dir), *SHORT], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as proc:
        read_until(proc, "pool nodes")
        suffix = suffix_of(demo_dir)
        proc.send_signal(signal.SIGINT)
        lines = read_until(proc, "stopping the lab", timeout=30)
        # an impatient user: Ctrl-C (and a SIGTERM) every 0.1 s until it is over
        for n in range(400):
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGTERM if n % 5 == 4 else signal.SIGINT)
            time.sleep(0.1)
        rest, _ = proc.communicate(timeout=60)
    assert leftovers(demo_dir, suffix) == []
    # 130 from the CLI; a Ctrl-C or SIGTERM landing after the teardown, as Python exits,
    # ends it by that signal itself, which is fine: by then nothing is left
    assert proc.returncode in (130, -signal.SIGINT, -signal.SIGTERM), proc.returncode
    out = "".join(lines) + rest
    assert "interrupted" in out and "nothing is left running" in out, out


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
            if stat and int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_next_demo_runs_after_a_killed_one(demo_dir: Path) -> None:
    sidecars: list[int] = []
    try:
        with started([*DEMO, "--dir", str(demo_dir), *SHORT], stdout=subprocess.PIPE) as proc:
            read_until(proc, "pool nodes")
            first = suffix_of(demo_dir)
            sidecars = [
                p for p in children(proc.pid) if teardown.cmdline(p)[-2:] == ["autoscaler", "run"]
            ]
            assert sidecars, "the demo runs its sidecar as a child"
            proc.kill()  # a crash: no Python code runs any more
        # the sidecar must not outlive the demo: nothing else would ever stop it
        assert teardown.wait_gone(sidecars, 15) == []
    finally:
        teardown.stop_processes(sidecars, 5)  # by pid, should this test fail
    assert leftovers(demo_dir, first) != []
    again = subprocess.run(
        [*DEMO, "--dir", str(demo_dir), "--sessions", "1", "--duration", "3s"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "earlier" in again.stdout, again.stdout
    assert leftovers(demo_dir, first) == []
    assert not demo_dir.exists()


def test_a_second_demo_beside_a_running_one_is_refused_and_harms_nothing(
    demo_dir: Path,
) -> None:
    ledger = demo_dir.with_name(demo_dir.name + "-output") / "decisions.jsonl"
    with started(
        [*DEMO, "--dir", str(demo_dir), *SHORT], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as proc:
        read_until(proc, "pool nodes")
        suffix = suffix_of(demo_dir)
        read_until(proc, "pool nodes")  # a pass of the sidecar has written its ledger
        assert ledger.exists()
        second = subprocess.run(
            [*DEMO, "--dir", str(demo_dir), *SHORT],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"another demo (pid {proc.pid})" in second.stderr, second.stderr
        assert ledger.exists(), "the refused demo removed the running demo's ledger"
        assert lab_mod.status(demo_dir)["nodes"], "the running demo's lab was touched"
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=90)
    assert proc.returncode == 130
    assert leftovers(demo_dir, suffix) == []


def test_a_containerd_stack_dump_stays_in_the_lab_folder() -> None:
    # dockerd's containerd dumps its stacks on SIGUSR1 into $TMPDIR (os.TempDir), which
    # litters /tmp with containerd.<pid>.stacks.log files no `lab down` removes
    need_swarm_lab()
    folder = lab_folder("li-")
    dumps: list[Path] = []
    try:
        with SwarmCluster.start(folder / "lab", workers=0, image=False) as cluster:
            containerd = [
                p
                for p in teardown.processes_naming(f"{cluster.root_dir}/")
                if Path((teardown.cmdline(p) or [""])[0]).name == "containerd"
            ]
            assert containerd, "the engine runs its own containerd"
            dumps = [Path(f"/tmp/containerd.{p}.stacks.log") for p in containerd]
            teardown.signal_all(containerd, signal.SIGUSR1)
            inside = list(cluster.root_dir.rglob("containerd.*.stacks.log"))
            deadline = time.monotonic() + 10
            while not inside and not any(d.exists() for d in dumps):
                assert time.monotonic() < deadline, "containerd wrote no stack dump"
                time.sleep(0.1)
                inside = list(cluster.root_dir.rglob("containerd.*.stacks.log"))
            assert not any(d.exists() for d in dumps), "a stack dump went to /tmp"
    finally:
        for d in dumps:  # this test's own dumps, should it fail
            d.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
