"""The ``local`` node provider: machines are the lab's engines (one dockerd per node).

A launch records the machine as ``pending`` in a JSON file in the lab folder and boots the
engine in the background after the pool's ``boot_delay`` (like a cloud boot); the engine
then runs the lab's join script, exactly as an EC2 worker runs its user-data. The file is
the provider's memory, so a restarted sidecar lists the same machines; a machine whose boot
died with the sidecar never joins and is terminated by the join timeout.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autoscaler.decide.pools import labels as L
from autoscaler.providers.base import ProviderError
from autoscaler.rules.pools import PoolPolicy
from autoscaler.snapshot import Instance
from autoscaler.sources.errors import SourceError

log = logging.getLogger(__name__)

STATE_FILE = "pool-machines.json"
BootFn = Callable[..., Any]
"""``boot(root, name=..., boot_delay=...)`` -> an object with ``ip``; raises on failure."""
RetireFn = Callable[[Path, str], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _lab_hooks() -> tuple[BootFn, RetireFn]:
    from autoscaler.lab.lab import boot_worker, retire_worker

    return boot_worker, retire_worker


class LocalProvider:
    name = "local"

    def __init__(
        self,
        lab_root: Path,
        cluster: str,
        boot: BootFn | None = None,
        retire: RetireFn | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._root = lab_root.absolute()
        self._cluster = cluster
        self._boot = boot
        self._retire = retire
        self._clock = clock
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    # ---------------------------------------------------------------- state file

    @contextlib.contextmanager
    def _records(self) -> Iterator[dict[str, dict[str, Any]]]:
        """The machines by id, locked across threads and processes; saved on exit."""
        path = self._root / STATE_FILE
        with self._lock, open(self._root / f".{STATE_FILE}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                records: dict[str, dict[str, Any]] = (
                    json.loads(path.read_text()) if path.exists() else {}
                )
                yield records
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(records, indent=1, sort_keys=True))
                tmp.replace(path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _hooks(self) -> tuple[BootFn, RetireFn]:
        if self._boot is None or self._retire is None:
            boot, retire = _lab_hooks()
            self._boot = self._boot or boot
            self._retire = self._retire or retire
        return self._boot, self._retire

    # ---------------------------------------------------------------- interface

    def list_instances(self) -> tuple[Instance, ...]:
        if not self._root.is_dir():
            raise SourceError("local", f"no lab folder {self._root}")
        try:
            with self._records() as records:
                rows = [dict(r) for r in records.values()]
        except (OSError, ValueError) as exc:
            raise SourceError("local", f"cannot read {STATE_FILE}: {exc}") from exc
        return tuple(_instance(r, self._cluster) for r in sorted(rows, key=lambda r: r["id"]))

    def launch(self, pool: str, policy: PoolPolicy, count: int, token: str) -> list[str]:
        boot, _ = self._hooks()
        now = L.stamp(self._clock())
        with self._records() as records:
            again = [r["id"] for r in records.values() if r.get("token") == token]
            if again:
                return sorted(again)  # the same launch asked twice: nothing more
            new = []
            for _ in range(count):
                suffix = secrets.token_hex(3)
                rec = {
                    "id": f"lab-{suffix}",
                    "name": f"{pool}-{suffix}",
                    "pool": pool,
                    "state": "pending",
                    "launched_at": now,
                    "token": token,
                    "ip": "",
                }
                records[rec["id"]] = rec
                new.append(rec)
        delay = policy.local.boot_delay.total_seconds()
        for rec in new:
            t = threading.Thread(
                target=self._boot_one,
                args=(boot, rec["id"], rec["name"], delay),
                name=f"boot-{rec['name']}",
                daemon=True,
            )
            self.threads.append(t)
            t.start()
        return [r["id"] for r in new]

    def _boot_one(self, boot: BootFn, machine_id: str, name: str, delay: float) -> None:
        try:
            booted = boot(self._root, name=name, boot_delay=delay)
        except Exception as exc:  # the machine stays pending: the join timeout ends it
            log.error("lab machine %s did not boot: %s", name, exc)
            return
        with self._records() as records:
            rec = records.get(machine_id)
            cancelled = rec is None or rec["state"] in ("shutting-down", "terminated")
            if rec is not None and not cancelled:
                rec["state"] = "running"
                rec["ip"] = str(getattr(booted, "ip", ""))
        if cancelled:  # terminated while booting: no orphan engine
            self._retire_quietly(name)

    def terminate(self, instance_id: str, pool: str) -> str:
        with self._records() as records:
            rec = records.get(instance_id)
            if rec is None:
                return f"{instance_id} already gone"
            if rec["pool"] != pool:
                raise ProviderError(f"{instance_id} is not a machine of pool {pool}")
            rec["state"] = "shutting-down"
            name = rec["name"]
        self._retire_quietly(name)
        with self._records() as records:
            records.pop(instance_id, None)
        return f"terminated {instance_id} ({name})"

    def _retire_quietly(self, name: str) -> None:
        _, retire = self._hooks()
        try:
            retire(self._root, name)
        except Exception as exc:  # an engine that never booted has nothing to retire
            log.info("retiring %s: %s", name, exc)

    def wait_boots(self, timeout: float = 120.0) -> None:
        """Wait for background boots (tests, shutdown)."""
        for t in list(self.threads):
            t.join(timeout)


def _instance(rec: dict[str, Any], cluster: str) -> Instance:
    launched = L.parse_stamp(rec.get("launched_at")) or datetime.fromtimestamp(0, UTC)
    return Instance(
        id=rec["id"],
        pool=rec["pool"],
        state=rec["state"],
        launched_at=launched,
        instance_type="local",
        private_dns=rec["name"],
        private_ip=rec.get("ip", ""),
        tags={
            L.TAG_POOL: rec["pool"],
            L.TAG_CLUSTER: cluster,
            L.TAG_LAUNCHED_AT: rec["launched_at"],
        },
    )
