"""Two `lab up` in one folder at the same moment: one claims it, the other is refused."""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path

import pytest

from autoscaler.lab import lab as lab_mod
from autoscaler.lab.errors import LabError


def test_up_waits_for_the_folder_and_then_sees_the_lab_claimed_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[object] = []
    monkeypatch.setattr(lab_mod, "_start_all", lambda *args: started.append(args))
    errors: list[BaseException] = []

    def second_up() -> None:
        try:
            lab_mod.up(tmp_path)
        except BaseException as e:
            errors.append(e)

    with (tmp_path / ".lab.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a first `lab up` is between its check and claim
        up = threading.Thread(target=second_up)
        up.start()
        time.sleep(0.5)  # room for the second to get past an unguarded check
        lab_mod.LabState(dir=str(tmp_path), started_at="now").save()  # the first claims
        fcntl.flock(lock, fcntl.LOCK_UN)
    up.join(timeout=10)
    assert not up.is_alive()
    assert not started, "the second `lab up` started engines in a claimed folder"
    assert len(errors) == 1 and isinstance(errors[0], LabError)
    assert "already runs" in str(errors[0])
