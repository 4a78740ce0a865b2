"""The one value every read-side source returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Reading:
    """A number read from a backend and when it was true (timezone-aware UTC)."""

    value: float
    observed_at: datetime

    def __post_init__(self) -> None:
        if self.observed_at.tzinfo is None:
            raise ValueError("Reading.observed_at must be timezone-aware")
