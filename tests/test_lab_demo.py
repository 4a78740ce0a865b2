"""The README's first command: `autoscaler lab demo` on a real lab, then nothing left."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from autoscaler.lab.demo import run_demo
from tests.fixtures_swarm import swarm_lab_missing
from tests.realparts import missing_real_part

pytestmark = [pytest.mark.real, pytest.mark.slow]


def test_demo_scales_with_sessions_and_leaves_nothing() -> None:
    why = swarm_lab_missing()
    if why:
        missing_real_part(why)
    tmp_path = Path(tempfile.mkdtemp(prefix="demo-", dir="/tmp"))  # engine sockets: short
    root = tmp_path / "demo"
    lines: list[str] = []
    try:
        summary = run_demo(root, sessions=6, hold_s=25, ramp_s=6, settle_s=120, say=lines.append)
        check(summary, tmp_path, root, lines)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def check(summary: dict[str, Any], tmp_path: Path, root: Path, lines: list[str]) -> None:
    assert summary["started"] == 6 and summary["killed"] == 0 and summary["failed"] == 0
    ledger = [
        json.loads(x)
        for x in (tmp_path / "demo-output" / "decisions.jsonl").read_text().splitlines()
    ]
    done = [a for e in ledger for a in e["actions"] if a["ok"]]
    desired = [a["desired"] for a in done if a["kind"] == "scale_service"]
    assert max(desired) == 2, desired  # 6 live sessions / 3 per replica
    assert desired[-1] == 1, "back to min after the sessions ended"
    kinds = [a["kind"] for a in done]
    # 6 sessions + 1 free seat on 4-seat nodes: the pool grows to 2 nodes, then back to 1
    assert kinds.count("launch_nodes") == 1, kinds
    assert kinds.count("terminate_instance") == 1, kinds
    assert kinds.index("pause_node") < kinds.index("drain_node") < kinds.index("remove_node")
    assert any("-> scale demo-api 1 -> 2" in x for x in lines), lines
    assert "pool nodes 1 active/0 paused/0 drained" in [x for x in lines if "pool" in x][-1]
    assert lines[-1] == "== done: nothing is left running"
    assert not root.exists()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(root) not in ps
    mine = f"swl-{summary['lab_suffix']}-"
    left = [n for n in os.popen("ip netns list").read().split() if n.startswith(mine)]
    assert not left, f"namespaces left behind: {left}"
