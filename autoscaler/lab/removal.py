"""Stop a lab's engines and remove everything they made, from its record alone.

Order matters: container processes first (an app running as PID 1 ignores SIGTERM, and
the engine would wait out each task's stop grace period), then the engines (SIGTERM, wait,
SIGKILL), then whatever they left (containerd, shims, mounts), then namespaces, veths,
the bridge, cgroups and the folder.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from autoscaler.lab import netns, teardown
from autoscaler.lab.errors import LabError
from autoscaler.lab.records import EngineRecord, LabRecord, load_record

STOP_GRACE = 10.0


def cleanup(root_dir: Path, grace: float = STOP_GRACE) -> None:
    """Tear down a lab from its engines.json alone (after a crash); a no-op if there is none."""
    root = Path(root_dir).absolute()
    record = load_record(root)
    if record is None:
        return
    problems = stop_engines(list(record.engines.values()), grace)
    problems += remove_lab(root, record)
    if problems:
        raise LabError("lab cleanup incomplete: " + "; ".join(problems))


def engine_pid(rec: EngineRecord) -> int | None:
    """The engine's pid, only if that pid still runs this engine's dockerd (pids get reused)."""
    candidates = [rec.pid]
    with contextlib.suppress(OSError, ValueError):
        candidates.append(int(rec.pidfile.read_text().strip()))
    for pid in candidates:
        if pid and teardown.is_alive(pid) and teardown.owns(pid, f"{rec.dir}/"):
            return pid
    return None


def stop_engines(records: list[EngineRecord], grace: float) -> list[str]:
    teardown.kill_cgroups([r.cgroup_parent for r in records])
    pids = [p for p in (engine_pid(r) for r in records) if p is not None]
    stuck = teardown.stop_processes(pids, grace)
    return [f"engine pid {p} would not die" for p in stuck]


def remove_engine_leftovers(root: Path, records: list[EngineRecord]) -> list[str]:
    """Everything under ``root`` and everything named in ``records``; returns what stayed."""
    problems = teardown.kill_leftovers(root, [r.cgroup_parent for r in records])
    problems += teardown.unmount_all(root)
    for rec in records:
        try:
            netns.delete_namespace(rec.netns)
            netns.delete_link(rec.veth)
        except LabError as exc:
            problems.append(str(exc))
        problems += teardown.remove_cgroups(rec.cgroup_parent)
    if not teardown.mounts_under(root):
        shutil.rmtree(root, ignore_errors=True)
    if root.exists():
        problems.append(f"folder {root} could not be removed")
    return problems


def remove_lab(root: Path, record: LabRecord) -> list[str]:
    problems = remove_engine_leftovers(root, list(record.engines.values()))
    if record.bridge:
        try:
            netns.delete_link(record.bridge)
        except LabError as exc:
            problems.append(str(exc))
    return problems
