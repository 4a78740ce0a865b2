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
    print(
        f"OK: {len(result.files)} files, {len(result.policies.signals)} signals, "
        f"{len(result.policies.services)} service policies",
        file=out,
    )
    return 0
