"""Floats printed as other languages print them: their shared first step."""

from __future__ import annotations

from decimal import Decimal


def shortest_digits(value: float) -> tuple[str, str, int]:
    """(sign, digits, point) of a finite, non-zero float: the shortest digits that read back
    as the same float (no trailing zeros), and the decimal exponent of the first one.
    1234.5 -> ("", "12345", 3); -0.001 -> ("-", "1", -3)."""
    sign, digits_t, exp = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exp, int)
    digits = "".join(map(str, digits_t))
    return ("-" if sign else ""), digits, len(digits) + exp - 1
