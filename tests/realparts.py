"""Tests that need a real part (dockerd, Prometheus, InfluxDB, ...) skip where it is missing,
except in CI (AUTOSCALER_REQUIRE_REAL=1), where a missing part must fail the run."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing_real_part(reason: str) -> NoReturn:
    if os.environ.get("AUTOSCALER_REQUIRE_REAL") == "1":
        pytest.fail(f"required real part missing: {reason}", pytrace=False)
    pytest.skip(reason)
