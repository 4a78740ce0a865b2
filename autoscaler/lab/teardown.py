"""Find and remove what engines leave behind: processes, mounts, cgroups, shim sockets.

Everything here is keyed on paths the lab owns (its root folder, its cgroup names), never on
process names, so two labs, or anything else on the machine, are never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
SHIM_SOCKET_DIR = Path("/run/containerd/s")
MNT_DETACH = 2


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_alive(pid: int) -> bool:
    """Running and not a zombie (a zombie holds nothing, it only waits for its parent)."""
    stat = _read(Path(f"/proc/{pid}/stat"))
    if not stat:
        return False
    state = stat.rpartition(")")[2].split()[:1]
    return state != ["Z"]


def owns(pid: int, marker: str) -> bool:
    """True when the process's command line names ``marker`` (guards against reused pids)."""
    return any(marker in part for part in cmdline(pid))


def processes_naming(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if (
            entry.name.isdigit()
            and int(entry.name) != os.getpid()
            and owns(int(entry.name), marker)
        ):
            found.append(int(entry.name))
    return found


def cgroup_dirs(parent: str) -> list[Path]:
    """Every existing cgroup directory (all hierarchies) at or under ``parent``."""
    name = parent.strip("/")
    if not name or not CGROUP_ROOT.is_dir():
        return []
    dirs: list[Path] = []
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / name
        if top.is_dir():
            dirs.extend(sorted((Path(d) for d, _, _ in os.walk(top)), key=lambda p: -len(p.parts)))
    return dirs


def cgroup_processes(parent: str) -> list[int]:
    pids: set[int] = set()
    for directory in cgroup_dirs(parent):
        for line in _read(directory / "cgroup.procs").split():
            pids.add(int(line))
    return sorted(pids)


def remove_cgroups(parent: str) -> list[str]:
    problems = []
    for directory in cgroup_dirs(parent):
        try:
            directory.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append(f"cgroup {directory}: {exc}")
    return problems


def shim_socket(pid: int) -> Path | None:
    """The socket a containerd v2 shim listens on (it leaves it behind when killed)."""
    args = cmdline(pid)
    if not args or not args[0].endswith("containerd-shim-runc-v2"):
        return None
    try:
        ns = args[args.index("-namespace") + 1]
        task_id = args[args.index("-id") + 1]
        address = args[args.index("-address") + 1]
    except (ValueError, IndexError):
        return None
    digest = hashlib.sha256(os.path.join(address, ns, task_id).encode()).hexdigest()
    return SHIM_SOCKET_DIR / digest


def signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if is_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if is_alive(p)]
    return alive


def stop_child(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM a child process, SIGKILL it if it is still there after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def stop_processes(pids: list[int], grace: float) -> list[int]:
    """SIGTERM, wait up to ``grace`` seconds, SIGKILL; returns pids that still would not die."""
    signal_all(pids, signal.SIGTERM)
    left = wait_gone(pids, grace)
    signal_all(left, signal.SIGKILL)
    return wait_gone(left, 5.0)


def kill_cgroups(cgroup_parents: list[str]) -> list[int]:
    """SIGKILL every process in these cgroup trees; returns those still alive after 5 s."""
    pids = sorted({p for parent in cgroup_parents for p in cgroup_processes(parent)})
    signal_all(pids, signal.SIGKILL)
    return wait_gone(pids, 5.0)


def kill_leftovers(root: Path, cgroup_parents: list[str]) -> list[str]:
    """SIGKILL container processes (by cgroup) and containerd/shims (by command line)."""
    in_cgroups = [p for parent in cgroup_parents for p in cgroup_processes(parent)]
    naming_root = processes_naming(f"{root}/")
    sockets = [s for s in (shim_socket(p) for p in naming_root) if s is not None]
    pids = sorted(set(in_cgroups) | set(naming_root))
    signal_all(pids, signal.SIGKILL)
    stuck = wait_gone(pids, 5.0)
    for sock in sockets:
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
    return [f"process {p} would not die" for p in stuck]


def _unescape(field: str) -> str:
    """Mount points in mountinfo escape space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or under ``root``, newest first (the order they must be undone)."""
    prefix = str(root).rstrip("/")
    points = []
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = _unescape(fields[4])
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return list(reversed(points))


def unmount_all(root: Path) -> list[str]:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    for _ in range(5):
        points = mounts_under(root)
        if not points:
            return []
        for point in points:
            if libc.umount2(point.encode(), 0) != 0:
                libc.umount2(point.encode(), MNT_DETACH)
    return [f"still mounted: {p}" for p in mounts_under(root)]
