"""Floats printed as other languages print them: their shared first step."""

from __future__ import annotations

import math
from decimal import Decimal


def special(value: float, zero: str) -> str | None:
    """NaN, +Inf and -Inf as Prometheus writes them, and zero as ``zero`` (``-`` before it
    for -0.0); None for any other value, which goes through ``shortest_digits``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-" + zero if math.copysign(1.0, value) < 0 else zero
    return None


def shortest_digits(value: float) -> tuple[str, str, int]:
    """(sign, digits, point) of a finite, non-zero float: the shortest digits that read back
    as the same float (no trailing zeros), and the decimal exponent of the first one.
    1234.5 -> ("", "12345", 3); -0.001 -> ("-", "1", -3)."""
    sign, digits_t, exp = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exp, int)
    digits = "".join(map(str, digits_t))
    return ("-" if sign else ""), digits, len(digits) + exp - 1
