"""``autoscaler check``: validate rules files without running anything."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from autoscaler.rules.loader import load_paths


def run_check(paths: Sequence[Path], out: TextIO) -> int:
    """Print one line per problem (or one OK line); 0 when valid, 1 when not.

    All paths together form one rule set, as if their files sat in one folder.
    """
    result = load_paths(paths)
    if result.policies is None:
        for problem in result.problems:
            print(problem, file=out)
        return 1
    pol = result.policies
    print(
        f"OK: {len(result.files)} files, {len(pol.signals)} signals, "
        f"{len(pol.services)} service policies, {len(pol.pools)} pools, "
        f"{len(pol.alerts)} alerts",
        file=out,
    )
    return 0
