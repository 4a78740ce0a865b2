"""The ledger over months: a full disk, a path it cannot write, rotation without backups."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autoscaler.ledger import Ledger
from tests.test_ledger import record


def test_no_backups_still_bounds_the_file(tmp_path: Path) -> None:
    """AUTOSCALER_LEDGER_BACKUPS=0: keep no old file, not grow for ever."""
    path = tmp_path / "decisions.jsonl"
    ledger = Ledger(path, max_bytes=2000, backups=0)
    for _ in range(40):
        record(ledger)
    ledger.close()
    assert [p.name for p in tmp_path.iterdir()] == ["decisions.jsonl"]
    assert 0 < path.stat().st_size <= 2000
    for line in path.read_text().splitlines():
        json.loads(line)


# A full disk, in a child process: RLIMIT_FSIZE makes writes past the limit fail (EFBIG)
# after writing what fits, as ENOSPC does, without filling a real disk.
FULL_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from autoscaler.ledger import Ledger
    from tests.test_ledger import record

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    path = Path(sys.argv[1])
    ledger = Ledger(path)
    record(ledger)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size * 3 // 2, hard))
    record(ledger)  # half of it fits
    record(ledger)
    ledger.close()  # SIGTERM while the disk is still full
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    ledger = Ledger(path)  # the restarted sidecar, once there is space again
    record(ledger)
    ledger.close()
    """
)


def test_full_disk_leaves_no_broken_line_and_stopping_does_not_fail(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    run = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr and "Logging error" not in run.stderr
    lines = path.read_text().splitlines()
    for line in lines:
        json.loads(line)  # not half a line, nor half of one glued to the next
    assert len(lines) == 2


def test_an_unwritable_ledger_is_reported_and_retried_not_a_failed_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A volume mounted wrong must not crash-loop the sidecar: it decides on, unrecorded."""
    blocker = tmp_path / "ledger"
    blocker.write_text("a file where the ledger's folder should be")
    path = blocker / "decisions.jsonl"
    with caplog.at_level(logging.WARNING, logger="autoscaler.ledger"):
        ledger = Ledger(path)
        for _ in range(3):
            record(ledger)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, "reported once, not once a pass"
    assert str(path) in errors[0].getMessage()
    blocker.unlink()  # the operator fixes the volume
    record(ledger)
    ledger.close()
    assert len(path.read_text().splitlines()) == 1


def test_a_full_device_is_one_error_line_not_a_traceback_per_pass(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    full = Path("/dev/full")
    if not full.exists():
        pytest.skip("no /dev/full")
    with caplog.at_level(logging.WARNING, logger="autoscaler.ledger"):
        ledger = Ledger(full)
        for _ in range(3):
            record(ledger)
        ledger.close()
    assert "Logging error" not in capfd.readouterr().err
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "/dev/full" in errors[0].getMessage()
