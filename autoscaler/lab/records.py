"""The lab's own record of what it created (``<root>/engines.json``).

Each piece is written down before it is created, so a lab that crashed half way can be
torn down later from this file alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "engines.json"


@dataclass
class EngineRecord:
    """One engine: enough to find and remove everything it made."""

    name: str
    """Also the node's hostname."""
    role: str
    tag: str
    """Short tag for folder, namespace and cgroup names: "m", "w1", "w2", ..."""
    dir: str
    netns: str
    veth: str
    ip: str
    cgroup_parent: str
    pid: int | None = None
    node_id: str | None = None

    @property
    def socket(self) -> Path:
        return Path(self.dir) / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log_file(self) -> Path:
        return Path(self.dir) / "dockerd.log"

    @property
    def pidfile(self) -> Path:
        return Path(self.dir) / "docker.pid"


@dataclass
class LabRecord:
    suffix: str
    """Six hex digits found in every namespace, link and cgroup name of the lab."""
    subnet: str | None = None
    bridge: str | None = None
    next_worker: int = 1
    engines: dict[str, EngineRecord] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> LabRecord:
        raw = json.loads(text)
        engines = {k: EngineRecord(**v) for k, v in raw.pop("engines", {}).items()}
        return cls(**raw, engines=engines)


def save_record(root: Path, record: LabRecord) -> None:
    """Atomically: a crash never leaves half a file."""
    path = root / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(record.to_json())
    os.replace(tmp, path)


def load_record(root: Path) -> LabRecord | None:
    path = root / STATE_FILE
    return LabRecord.from_json(path.read_text()) if path.exists() else None
